-- Cloud objects the broker made for its users besides VMs, addresses and
-- volumes (security groups, VPCs, subnets, snapshots): one row per object,
-- keyed by (connector instance, kind, cloud id), naming the project it
-- belongs to, who made it and with which credential. `parent` is the object
-- it lives in or came from (a subnet's VPC, a group's VPC, a snapshot's
-- volume); `attrs` is a JSON object of the kind's own fields; `tags` a JSON
-- object. Ended objects keep their row with ended_at set; listings leave them out.
CREATE TABLE cloud_objects (
    instance      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    cloud_id      TEXT NOT NULL,
    project       TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    parent        TEXT,
    state         TEXT NOT NULL,
    attrs         TEXT NOT NULL DEFAULT '{}',
    tags          TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    ended_at      BIGINT,
    PRIMARY KEY (instance, kind, cloud_id)
);
CREATE INDEX cloud_objects_project ON cloud_objects (project, instance, kind, ended_at);
CREATE INDEX cloud_objects_user ON cloud_objects (user_name, ended_at);
