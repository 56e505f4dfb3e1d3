//! Reads of VM records on SQLite made on the calling thread (rusqlite, on
//! the same database file), not through the sqlx driver's worker thread:
//! a read is then one call instead of two thread hops (a command to the
//! connection's worker and its answer back), whose context switches were
//! half the cost of `GET /vms/{id}`; a page of rows is read column by
//! column, without the JSON aggregate the sqlx path needs to cross threads
//! in one message.
//!
//! Invariants: only reads go this way (the connections are `query_only`),
//! with the SQL and the binds of the sqlx path, and rows are decoded into
//! the same records; only a file database is read so (a memory database is
//! private to its connection). Any failure here (opening, preparing,
//! reading, a value of an unexpected type) sends the read down the sqlx
//! path instead, so errors keep the shape and classification the rest of
//! the broker knows. A read in WAL mode never waits for a writer; the
//! connection's busy timeout is the pool's.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Idle connections kept (one per thread reading at once, about).
const MAX_IDLE: usize = 8;

/// A value bound to a `$N` parameter.
pub(crate) enum Bind<'a> {
    Text(&'a str),
    Int(i64),
    /// A list of texts as one parameter: PostgreSQL's `text[]` (`= ANY($1)`).
    /// SQLite has no arrays: a read binding one here fails (and goes to the
    /// pool's path), so SQL for SQLite spells a list out (`IN ($1, ...)`).
    Texts(&'a [&'a str]),
}

/// Read-only connections to one SQLite file, reused.
pub(crate) struct Reader {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    /// Reads answered here (not sent down the sqlx path).
    served: AtomicU64,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader of the file a `sqlite://` URL names; none for a memory
    /// database or a URL with options this reader would not honour.
    pub(crate) fn for_url(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, q),
            None => (rest, ""),
        };
        // Only `mode=rwc`/`mode=rw` (what `Store::connect` adds): anything
        // else (memory, read-only, shared cache, immutable) stays on sqlx.
        let plain = query.split('&').filter(|kv| !kv.is_empty()).all(|kv| kv == "mode=rwc" || kv == "mode=rw");
        if path.is_empty() || path == ":memory:" || path.starts_with("file:") || !plain {
            return None;
        }
        Some(Self { path: PathBuf::from(path), idle: Mutex::new(Vec::new()), served: AtomicU64::new(0) })
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = rusqlite::Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch("PRAGMA query_only = ON;")?;
        Ok(conn)
    }

    /// Runs `f` on a connection: `None` when it could not be opened or `f`
    /// failed (the caller then reads through sqlx).
    fn with<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>) -> Option<T> {
        let conn = match self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            Some(c) => c,
            None => match self.open() {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "sqlite direct read: cannot open; reading through the pool");
                    return None;
                }
            },
        };
        let out = f(&conn);
        match out {
            Ok(v) => {
                self.served.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut idle) = self.idle.lock() {
                    if idle.len() < MAX_IDLE {
                        idle.push(conn);
                    }
                }
                Some(v)
            }
            Err(e) => {
                // The connection is dropped (a fresh one next time).
                tracing::debug!(error = %e, "sqlite direct read failed; reading through the pool");
                None
            }
        }
    }

    /// The rows of `sql` (binds named `$1`, `$2`, ... in `binds` order),
    /// each decoded by `row` (room made for `capacity` of them); `None`:
    /// read it through sqlx instead.
    pub(crate) fn rows<T>(
        &self,
        sql: &str,
        binds: &[Bind<'_>],
        capacity: usize,
        mut row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Option<Vec<T>> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            for (i, b) in binds.iter().enumerate() {
                // `$N` is a named parameter to SQLite, numbered by where it
                // first appears: bind by name, as sqlx's numbering means.
                // Where `$N` is the N-th to appear (the SQL the store writes),
                // its index is N, read without a search of the names (which
                // is linear: quadratic over a page's `IN` list).
                let n = i + 1;
                let in_place = stmt.parameter_name(n).and_then(|s| s.strip_prefix('$')).and_then(|s| s.parse::<usize>().ok()) == Some(n);
                let at = if in_place { n } else { stmt.parameter_index(&format!("${n}"))?.unwrap_or(0) };
                if at == 0 {
                    continue;
                }
                match b {
                    Bind::Text(s) => stmt.raw_bind_parameter(at, s)?,
                    Bind::Int(n) => stmt.raw_bind_parameter(at, n)?,
                    Bind::Texts(_) => return Err(rusqlite::Error::InvalidParameterName(format!("${at} is a list: SQLite has no arrays"))),
                }
            }
            let mut rows = stmt.raw_query();
            let mut out = Vec::with_capacity(capacity);
            while let Some(r) = rows.next()? {
                out.push(row(r)?);
            }
            Ok(out)
        })
    }
}

#[cfg(any(test, feature = "testing"))]
impl crate::Store {
    /// Whether VM records are read directly (SQLite on a file).
    pub fn reads_directly(&self) -> bool {
        self.reader.is_some()
    }

    /// How many reads the direct reader answered (none without one).
    pub fn direct_reads_served(&self) -> u64 {
        self.reader.as_ref().map_or(0, |r| r.served.load(Ordering::Relaxed))
            + self.pg_reader.as_ref().map_or(0, |r| r.served.load(Ordering::Relaxed))
    }

    /// Whether VM records are read over connections of their own
    /// (PostgreSQL, `pg_read`).
    pub fn reads_postgres_directly(&self) -> bool {
        self.pg_reader.is_some()
    }

    /// Connections the PostgreSQL reader keeps for reuse now.
    pub fn postgres_connections_kept(&self) -> usize {
        self.pg_reader.as_ref().map(|r| r.kept()).unwrap_or(0)
    }

    /// This store reading every VM record through the pool (tests compare
    /// the direct reads with it).
    pub fn without_direct_reads(&self) -> crate::Store {
        let mut s = self.clone();
        s.reader = None;
        s.pg_reader = None;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::{Bind, Reader};

    #[test]
    fn a_list_parameter_is_refused_and_the_read_goes_to_the_pool() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let setup = rusqlite::Connection::open(&path).expect("open");
        setup.execute_batch("CREATE TABLE t (id TEXT); INSERT INTO t VALUES ('a'), ('b');").expect("setup");
        let reader = Reader::for_url(&format!("sqlite://{}?mode=rwc", path.display())).expect("a file URL");
        let one = |r: &rusqlite::Row<'_>| r.get::<_, String>(0);
        let ids = ["a", "b"];
        assert_eq!(reader.rows("SELECT id FROM t WHERE id = $1", &[Bind::Texts(&ids)], 2, one), None, "no arrays on SQLite");
        assert_eq!(reader.served.load(std::sync::atomic::Ordering::Relaxed), 0);
        let listed = reader.rows("SELECT id FROM t WHERE id IN ($1, $2) ORDER BY id", &[Bind::Text("a"), Bind::Text("b")], 2, one);
        assert_eq!(listed, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(reader.served.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
