-- Applications (issue 27): named, versioned documents (YAML or JSON) that
-- deployments launch. A version, once written, never changes: saving a
-- changed document under a name adds version N+1 (1 first); saving the same
-- text (same hash, the SHA-256 of the source) adds nothing. `origin` is the
-- file that declared it (`connectors.d/applications/lamp.yaml`) or `saved by
-- <user>`; `deleted_at` (ms) is set on every version of a deleted name, which
-- deployments that reference a version still read. Times in ms since the epoch.
CREATE TABLE applications (
    name       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    source     TEXT NOT NULL,
    hash       TEXT NOT NULL,
    origin     TEXT NOT NULL,
    created_by TEXT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT NULL,
    PRIMARY KEY (name, version)
);
