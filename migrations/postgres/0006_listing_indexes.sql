-- Indexes for paginated listings (newest first, keyset on created_at, id):
-- a page costs what it returns, whatever the history kept.
CREATE INDEX vms_user_created ON vms(user_name, created_at, id);
CREATE INDEX vms_created ON vms(created_at, id);
CREATE INDEX vms_launch ON vms(launch_id);
CREATE INDEX audit_log_actor ON audit_log(actor, id);
