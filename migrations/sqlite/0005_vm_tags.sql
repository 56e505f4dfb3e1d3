-- User tags of VMs (JSON object), also put on the cloud instance.
ALTER TABLE vms ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
