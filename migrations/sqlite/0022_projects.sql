-- Projects (issue 24): teams that own resources. Every user gets a personal
-- project named after them (project and user names share one namespace),
-- holding everything they owned; every owned resource gains the project it
-- belongs to (`user_name` stays: who created it). Grants of shared
-- credentials go to projects (today's grants to a user become grants to
-- their personal project). Quotas per (project, instance) have overrides and
-- lock rows of their own, beside the per-user ones. Audit records name
-- their project.
CREATE TABLE projects (
    name         TEXT PRIMARY KEY,
    description  TEXT NOT NULL DEFAULT '',
    -- The user whose personal project this is (NULL: a team project).
    personal_of  TEXT UNIQUE REFERENCES users(name) ON DELETE CASCADE,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE project_members (
    project    TEXT NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    added_by   TEXT NOT NULL,
    added_at   BIGINT NOT NULL,
    PRIMARY KEY (project, user_name)
);
CREATE INDEX project_members_by_user ON project_members (user_name, project);

INSERT INTO projects (name, description, personal_of, created_by, created_at, updated_at)
SELECT name, '', name, name, created_at, created_at FROM users;
INSERT INTO project_members (project, user_name, role, added_by, added_at)
SELECT name, name, 'owner', name, created_at FROM users;

-- VMs: the project, and the indexes the user ones had.
ALTER TABLE vms ADD COLUMN project TEXT NOT NULL DEFAULT '';
UPDATE vms SET project = user_name;
CREATE INDEX vms_project_instance_state ON vms (project, instance, state);
CREATE INDEX vms_project_created ON vms (project, created_at, id);
CREATE INDEX vms_project_instance_created ON vms (project, instance, created_at, id);

ALTER TABLE addresses ADD COLUMN project TEXT NOT NULL DEFAULT '';
UPDATE addresses SET project = user_name;
CREATE INDEX addresses_project_instance ON addresses (project, instance, ended_at);

ALTER TABLE volumes ADD COLUMN project TEXT NOT NULL DEFAULT '';
UPDATE volumes SET project = user_name;
CREATE INDEX volumes_project_instance ON volumes (project, instance, ended_at);

-- Key pairs are named per project (rebuilt: the key changes).
CREATE TABLE key_pairs_new (
    project     TEXT NOT NULL,
    name        TEXT NOT NULL,
    user_name   TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    public_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (project, name)
);
INSERT INTO key_pairs_new (project, name, user_name, public_key, fingerprint, created_at)
SELECT user_name, name, user_name, public_key, fingerprint, created_at FROM key_pairs;
DROP TABLE key_pairs;
ALTER TABLE key_pairs_new RENAME TO key_pairs;
CREATE INDEX key_pairs_by_user ON key_pairs (user_name);

-- Registered images: private to a project (NULL: the broker's public images).
ALTER TABLE images ADD COLUMN project TEXT;
UPDATE images SET project = owner WHERE owner IS NOT NULL;
CREATE INDEX images_project ON images (project);

-- An EC2 access key acts in one project (the personal one by default).
ALTER TABLE access_keys ADD COLUMN project TEXT NOT NULL DEFAULT '';
UPDATE access_keys SET project = user_name;

-- Grants of shared credentials go to projects.
CREATE TABLE credential_project_grants (
    credential_id TEXT NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,
    project       TEXT NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
    PRIMARY KEY (credential_id, project)
);
CREATE INDEX credential_project_grants_by_project ON credential_project_grants (project);
INSERT INTO credential_project_grants (credential_id, project)
SELECT credential_id, user_name FROM credential_grants;
DROP TABLE credential_grants;

-- Quotas per project and connector instance.
CREATE TABLE project_quota_overrides (
    project  TEXT NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
    instance TEXT NOT NULL,
    vm_limit BIGINT NOT NULL,
    PRIMARY KEY (project, instance)
);
CREATE TABLE project_quota_locks (
    project  TEXT NOT NULL,
    instance TEXT NOT NULL,
    version  BIGINT NOT NULL,
    PRIMARY KEY (project, instance)
);

-- Audit records name their project ('' for the broker's own, e.g. settings).
-- Before projects, everything a user did was in what is now their personal
-- project: their records go there.
ALTER TABLE audit_log ADD COLUMN project TEXT NOT NULL DEFAULT '';
UPDATE audit_log SET project = actor WHERE actor IN (SELECT name FROM users);
CREATE INDEX audit_log_project ON audit_log (project, id);
