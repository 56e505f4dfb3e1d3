-- Login throttling shared by every replica (it was per process, in memory).
-- login_attempts: one row per admitted sign-in attempt still counting
-- against its key (`u:<user>` or `a:<address>`); a successful sign-in takes
-- its rows back. throttle_keys: one row per key, written first in each
-- admission's transaction so that concurrent admissions for a key, on any
-- replica, take turns (row lock on PostgreSQL, the write lock on SQLite).
-- Rows older than the window are purged by the session-purge worker.
CREATE TABLE throttle_keys (
    key TEXT PRIMARY KEY,
    touched_at BIGINT NOT NULL
);
CREATE TABLE login_attempts (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX login_attempts_by_key ON login_attempts (key, at);
CREATE INDEX login_attempts_by_time ON login_attempts (at);
CREATE INDEX throttle_keys_by_time ON throttle_keys (touched_at);
