-- Identity, credential vault and audit log.
CREATE TABLE users (
    name           TEXT PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    is_admin       BIGINT NOT NULL DEFAULT 0,
    ssh_public_key TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    user_name    TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_name    TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens(user_name);

-- scope 'user': owner is the user's name; scope 'system': owner is the
-- shared credential's name. Secrets are sealed (key id, nonce, ciphertext).
CREATE TABLE credentials (
    id                TEXT PRIMARY KEY,
    scope             TEXT NOT NULL,
    owner             TEXT NOT NULL,
    instance          TEXT NOT NULL,
    access_key_hint   TEXT NOT NULL,
    access_key_sealed BLOB NOT NULL,
    secret_sealed     BLOB NOT NULL,
    key_id            TEXT NOT NULL,
    status            TEXT NOT NULL,
    status_message    TEXT NOT NULL,
    checked_at        BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (scope, owner, instance)
);

CREATE TABLE credential_grants (
    credential_id TEXT NOT NULL REFERENCES credentials(id) ON DELETE CASCADE,
    user_name     TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    PRIMARY KEY (credential_id, user_name)
);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail  TEXT NOT NULL
);
