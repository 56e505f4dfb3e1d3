-- Images registered through the EC2 front (RegisterImage) belong to the user
-- who registered them and are private to them; NULL is the broker's own
-- (public) images, as before.
ALTER TABLE images ADD COLUMN owner TEXT REFERENCES users(name) ON DELETE CASCADE;
CREATE INDEX images_owner ON images (owner);

-- A user's default EC2 region (connector instance), used by SigV2 requests
-- sent to plain /ec2 (SigV2 cannot name a region in its signature).
ALTER TABLE users ADD COLUMN default_ec2_region TEXT;

-- The key pair a VM was launched with (RunInstances KeyName), for
-- DescribeInstances' keyName and its key-name filter.
ALTER TABLE vms ADD COLUMN key_name TEXT;
