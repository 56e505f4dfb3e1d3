-- Provisioning: VMs (recorded before the cloud call), quota overrides, and
-- per (user, instance) lock rows that serialise quota admission across
-- replicas.
CREATE TABLE vms (
    id             TEXT PRIMARY KEY,
    launch_id      TEXT NOT NULL,
    launch_index   BIGINT NOT NULL,
    user_name      TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    instance       TEXT NOT NULL,
    credential_id  TEXT NOT NULL,
    client_token   TEXT NOT NULL,
    name           TEXT NOT NULL,
    image          TEXT NOT NULL,
    image_id       TEXT NOT NULL,
    instance_type  TEXT NOT NULL,
    state          TEXT NOT NULL,
    cloud_id       TEXT,
    private_ip     TEXT,
    public_ip      TEXT,
    error          TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (user_name, client_token, launch_index)
);
CREATE INDEX vms_user_instance_state ON vms(user_name, instance, state);
CREATE INDEX vms_cloud_id ON vms(instance, cloud_id);

CREATE TABLE quota_overrides (
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    instance  TEXT NOT NULL,
    vm_limit  BIGINT NOT NULL,
    PRIMARY KEY (user_name, instance)
);

CREATE TABLE quota_locks (
    user_name TEXT NOT NULL,
    instance  TEXT NOT NULL,
    version   BIGINT NOT NULL,
    PRIMARY KEY (user_name, instance)
);
