//! Store errors.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("cannot connect to database {url}: {message}")]
    Connect { url: String, message: String },
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The database is unavailable for now, as reported by a layer that
    /// kept only the message (the sandbox connector's world store).
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether the error is a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => e.is_unique_violation(),
            StoreError::Conflict(_) => true,
            _ => false,
        }
    }

    /// Whether the database could not be reached or refused to work for a
    /// while (connection refused or lost, pool timeout, server shutting down
    /// or starting, SQLite busy beyond its timeout or read-only): the
    /// request may succeed later, and nothing was changed by it.
    pub fn is_unavailable(&self) -> bool {
        if let StoreError::Unavailable(_) = self {
            return true;
        }
        let StoreError::Db(e) = self else { return false };
        match e {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                true
            }
            sqlx::Error::Database(d) => match d.code() {
                // PostgreSQL: class 08 (connection exception), 57P01-57P03
                // (admin/crash shutdown, cannot connect now), 53300 (too many connections).
                Some(c) if c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300") => true,
                // SQLite primary result codes: 5 BUSY, 6 LOCKED, 8 READONLY, 10 IOERR, 13 FULL, 14 CANTOPEN.
                Some(c) => c.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14)),
                None => false,
            },
            _ => false,
        }
    }
}
