-- Foundation: system parameters set through the UI/API, leases for
-- single-runner background jobs, broker metadata.
CREATE TABLE system_params (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE broker_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
