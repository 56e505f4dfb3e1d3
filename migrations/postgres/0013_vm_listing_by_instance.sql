-- The EC2 front lists a user's VMs on one connector instance, newest first
-- (keyset on created_at, id): index exactly that, so a page costs what it
-- returns whatever the user keeps on other instances.
CREATE INDEX vms_user_instance_created ON vms(user_name, instance, created_at, id);
