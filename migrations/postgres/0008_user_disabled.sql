-- Admins can disable an account: it can no longer sign in, and its sessions
-- and tokens stop working. NULL: enabled.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
