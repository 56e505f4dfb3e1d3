-- Elastic IPs and volumes the broker made for its users (the EC2 front's
-- AllocateAddress/CreateVolume): who owns each cloud object, on which
-- connector instance, with which credential, and its last known state. The
-- EC2 front's Describe* answers from these rows; a user sees only their own.
-- Released addresses and deleted volumes keep their row with ended_at set.
CREATE TABLE addresses (
    instance       TEXT NOT NULL,
    allocation_id  TEXT NOT NULL,
    user_name      TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    credential_id  TEXT NOT NULL,
    public_ip      TEXT NOT NULL,
    state          TEXT NOT NULL,
    vm_id          TEXT,
    association_id TEXT,
    private_ip     TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    ended_at       BIGINT,
    PRIMARY KEY (instance, allocation_id)
);
CREATE INDEX addresses_user_instance ON addresses(user_name, instance, ended_at);

CREATE TABLE volumes (
    instance      TEXT NOT NULL,
    volume_id     TEXT NOT NULL,
    user_name     TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    credential_id TEXT NOT NULL,
    size_gib      BIGINT NOT NULL,
    zone          TEXT NOT NULL,
    volume_type   TEXT,
    state         TEXT NOT NULL,
    vm_id         TEXT,
    device        TEXT,
    attach_state  TEXT,
    tags          TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    ended_at      BIGINT,
    PRIMARY KEY (instance, volume_id)
);
CREATE INDEX volumes_user_instance ON volumes(user_name, instance, ended_at);
