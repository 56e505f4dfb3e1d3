-- EC2 API access keys get a table of their own (issue 21, point 1): they
-- were credential rows of scope `ec2-access-key` with the public key id in
-- the `instance` column. The secret stays sealed with the master key
-- (bound, as before, to ('ec2-access-key', owner, key id), so the copied
-- rows open unchanged) and key rotation re-seals it; the sealed copy of the
-- public key id is not kept (the id is the primary key, in clear).
-- Every key of an existing user is carried over, then removed from
-- credentials; last_used_at was credentials.checked_at.
CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    user_name     TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    secret_sealed BYTEA NOT NULL,
    master_key_id TEXT NOT NULL,
    state         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    expires_at    BIGINT
);
CREATE INDEX access_keys_by_user ON access_keys (user_name, access_key_id);

INSERT INTO access_keys (access_key_id, user_name, secret_sealed, master_key_id, state, created_at, updated_at, last_used_at, expires_at)
SELECT instance, owner, secret_sealed, key_id, status, created_at, updated_at, checked_at, expires_at
FROM credentials
WHERE scope = 'ec2-access-key' AND owner IN (SELECT name FROM users);

DELETE FROM credentials
WHERE scope = 'ec2-access-key' AND instance IN (SELECT access_key_id FROM access_keys);
