//! Reads of VM records on PostgreSQL over connections of their own, a few
//! kept per thread (as many as its reads at once, up to four), not through
//! the pool: the pool pings a connection
//! before lending it and again when it comes back (two more round trips
//! to the server per query), and its connections' sockets belong to
//! whichever runtime opened them, so a read from another thread hops
//! threads for every message. Here a read is one round trip, on the
//! calling thread's runtime. `GET /vms/{id}` took 214 µs of broker CPU
//! before, 100 µs without the ping on acquire alone (bench/README.md).
//!
//! Invariants: only reads go this way, with the SQL and the binds of the
//! pool's path, decoded into the same records (the caller sorts them as
//! the pool's path does). A connection is taken out while it reads, so a
//! read cancelled midway drops its connection instead of keeping it; any
//! failure (connecting, reading, decoding, a connection the server ended)
//! drops the connection and sends the read down the pool's path, whose
//! errors keep the shape and classification the rest of the broker knows.
//! Connecting waits at most [`CONNECT_TIMEOUT`] before that fallback.

use crate::sqlite_read::Bind;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::ConnectOptions;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Duration;

/// Connections kept in all (a few per thread that reads: the HTTP workers
/// and the runtime's).
const MAX_KEPT: usize = 32;

/// Connections kept per thread: a worker serves several requests at once,
/// and a read that finds every one of its thread's connections busy opens
/// another (a new session: a server process forked and a SCRAM exchange,
/// about a millisecond of CPU on each side). With one kept per thread, two
/// requests at once on a worker opened a connection for every other read
/// (perf of a 100-VM page under wrk: 12% of the broker's samples in
/// `establish`, most of it SCRAM's PBKDF2).
const KEPT_PER_THREAD: usize = 4;

/// How long opening a connection may take before the read goes to the pool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of their own to one PostgreSQL database, one per thread.
pub(crate) struct PgReader {
    options: PgConnectOptions,
    kept: Mutex<Vec<(ThreadId, PgConnection)>>,
    /// Reads answered here (not sent down the pool's path).
    pub(crate) served: AtomicU64,
}

impl std::fmt::Debug for PgReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The options hold the password: not shown.
        f.debug_struct("PgReader").finish_non_exhaustive()
    }
}

impl PgReader {
    /// A reader of the database a `postgres://` URL names (none when the
    /// URL does not parse: the pool's path then serves every read).
    pub(crate) fn for_url(url: &str) -> Option<Self> {
        let options = url.parse::<PgConnectOptions>().ok()?.disable_statement_logging();
        Some(Self { options, kept: Mutex::new(Vec::new()), served: AtomicU64::new(0) })
    }

    /// This thread's connection, or a new one.
    async fn take(&self) -> Option<PgConnection> {
        let me = std::thread::current().id();
        let found = {
            let mut kept = self.kept.lock().ok()?;
            kept.iter().position(|(t, _)| *t == me).map(|i| kept.swap_remove(i).1)
        };
        if let Some(conn) = found {
            return Some(conn);
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, self.options.connect()).await {
            Ok(Ok(conn)) => Some(conn),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "postgres direct read: cannot connect; reading through the pool");
                None
            }
            Err(_) => {
                tracing::debug!("postgres direct read: connecting timed out; reading through the pool");
                None
            }
        }
    }

    /// Keeps `conn` for the thread the read ended on (the same runtime's),
    /// up to [`KEPT_PER_THREAD`] of them.
    fn keep(&self, conn: PgConnection) {
        let me = std::thread::current().id();
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() < MAX_KEPT && kept.iter().filter(|(t, _)| *t == me).count() < KEPT_PER_THREAD {
                kept.push((me, conn));
            }
        }
    }

    /// Connections kept now (tests).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn kept(&self) -> usize {
        self.kept.lock().map(|k| k.len()).unwrap_or(0)
    }

    /// The rows of `sql` (binds `$1`, `$2`, ... in `binds` order), each
    /// decoded by `row` (by column position: no lookup of each column's
    /// name), room made for `capacity` of them; `None`: read them through
    /// the pool instead.
    pub(crate) async fn rows_with<T>(
        &self,
        sql: &str,
        binds: &[Bind<'_>],
        capacity: usize,
        mut row: impl FnMut(&PgRow) -> Result<T, sqlx::Error>,
    ) -> Option<Vec<T>> {
        use futures::TryStreamExt;
        let mut conn = self.take().await?;
        let mut q = sqlx::query::<sqlx::Postgres>(sql);
        for b in binds {
            q = match b {
                Bind::Text(s) => q.bind(*s),
                Bind::Int(n) => q.bind(*n),
                Bind::Texts(l) => q.bind(*l),
            };
        }
        let mut out = Vec::with_capacity(capacity);
        let read: Result<(), sqlx::Error> = async {
            let mut rows = q.fetch(&mut conn);
            while let Some(r) = rows.try_next().await? {
                out.push(row(&r)?);
            }
            Ok(())
        }
        .await;
        match read {
            Ok(()) => {
                self.served.fetch_add(1, Ordering::Relaxed);
                self.keep(conn);
                Some(out)
            }
            Err(e) => {
                // The connection is dropped (a fresh one next time).
                tracing::debug!(error = %e, "postgres direct read failed; reading through the pool");
                None
            }
        }
    }
}
