-- The sandbox connector's simulated clouds, one JSON document per connector
-- instance, so a demo survives a restart and replicas share one sandbox.
-- Each sandbox call reads and writes its row in one transaction (the row
-- lock on PostgreSQL, the write lock on SQLite make callers take turns).
CREATE TABLE sandbox_worlds (
    instance TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
