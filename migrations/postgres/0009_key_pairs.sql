-- Named SSH key pairs per user (the EC2 front's CreateKeyPair/ImportKeyPair):
-- the public key only; a private key made by CreateKeyPair is shown once and
-- never stored.
CREATE TABLE key_pairs (
    user_name   TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_name, name)
);
