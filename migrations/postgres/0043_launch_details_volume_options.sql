-- What a VM was launched with, as the cloud answered the launch (EC2's
-- groupSet and blockDeviceMapping): its security groups (a JSON array of
-- {"id", "name"}) and the volumes the launch made (a JSON array of
-- {"device", "volume_id", "delete_on_termination", "root"}: the root volume
-- and those of BlockDeviceMapping.N). One row per VM launched since; VMs
-- launched before have none (an empty set).
CREATE TABLE vm_launch_details (
    vm_id      TEXT PRIMARY KEY,
    sec_groups TEXT NOT NULL DEFAULT '[]',
    devices    TEXT NOT NULL DEFAULT '[]'
);

-- A volume's options as given at CreateVolume (or as the cloud answered):
-- encrypted (0/1), provisioned IOPS, throughput (MiB/s) and the snapshot it
-- was made from; NULL where not given (volumes recorded before: NULL).
ALTER TABLE volumes ADD COLUMN encrypted BIGINT;
ALTER TABLE volumes ADD COLUMN iops BIGINT;
ALTER TABLE volumes ADD COLUMN throughput BIGINT;
ALTER TABLE volumes ADD COLUMN snapshot_id TEXT;
