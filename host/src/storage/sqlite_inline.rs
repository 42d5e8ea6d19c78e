//! SQLite's hot path without a thread hop: one rusqlite connection to the same file, used on the
//! calling thread under a mutex, for the point statements a login, a token grant and a refresh
//! send (`insert`, `insert_many`, `get`, `get_with_parent`, `update`, `take`, `delete`).
//!
//! sqlx runs every SQLite statement on a worker thread of its own and hands rows back through
//! channels, and pings the connection on release: several thread wake-ups per statement, which on
//! this kind of machine cost more CPU than the statement (`docs/performance.md`: ~110 µs of CPU
//! per statement before, ~35 µs now). A point statement on an indexed key takes microseconds,
//! less than the RSA signature the same request computes on the same thread, so blocking for it
//! is the cheaper trade; the mutex serialises this process's statements, which SQLite does for
//! writers anyway. Migrations, garbage
//! collection, listing and the admin API stay on the sqlx pool (`sql.rs`), which opened, created
//! and migrated the file first: both see the same database, WAL and all. The trade: while another
//! connection holds the write lock (a garbage-collection batch, or a second process on the same
//! file), a statement here waits for it on the calling thread, up to the busy timeout, where it
//! used to wait on sqlx's thread.
//!
//! The SQL is `sql.rs`'s own (`$N` placeholders, bound here by name: SQLite numbers named
//! parameters in order of first appearance, which is not `N` in every statement).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, Row, Statement};

/// Columns of a stored record, in the order `GET` and `TAKE` return them: family, data, version,
/// expires_at (also what `sql.rs` decodes from sqlx).
pub(super) type RecordRow = (Option<String>, String, i64, i64);

/// Why an inline statement failed.
pub(super) enum Failed {
    /// A column did not decode: the row is corrupt.
    Decode(String),
    /// Anything else: the database is unavailable (or closed).
    Unavailable(String),
}

impl From<rusqlite::Error> for Failed {
    fn from(err: rusqlite::Error) -> Self {
        match err {
            rusqlite::Error::FromSqlConversionFailure(index, _, source) => {
                Failed::Decode(format!("column {index}: {source}"))
            }
            rusqlite::Error::InvalidColumnType(index, name, ty) => {
                Failed::Decode(format!("column {index} ({name}): unexpected {ty}"))
            }
            err => Failed::Unavailable(err.to_string()),
        }
    }
}

/// The connection; `None` once [`Inline::close`] ran.
pub(super) struct Inline {
    conn: Mutex<Option<Connection>>,
}

impl Inline {
    /// Opens the (existing, migrated) SQLite file at `path` as `sql.rs` configured it: WAL (a
    /// property of the file), `synchronous = NORMAL` and the same busy timeout.
    pub(super) fn open(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Self { conn: Mutex::new(Some(conn)) })
    }

    /// Closes the connection: every statement after this fails as unavailable.
    pub(super) fn close(&self) {
        drop(self.conn.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, Failed> {
        let guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let conn = guard.as_ref().ok_or_else(|| Failed::Unavailable("the storage is closed".into()))?;
        Ok(f(conn)?)
    }

    /// Rows changed by `sql` with `$1..$n` bound to `values`.
    pub(super) fn execute(&self, sql: &str, values: &[&dyn ToSql]) -> Result<u64, Failed> {
        self.with(|conn| execute(conn, sql, values))
    }

    /// `f` inside one transaction, committed when it answers `(true, _)` and rolled back
    /// otherwise: one commit (one WAL write) for several statements. `BEGIN IMMEDIATE` takes
    /// the write lock first, so a busy database makes it wait (up to the busy timeout) before
    /// anything ran rather than fail half-way.
    pub(super) fn transaction<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<(bool, T)>,
    ) -> Result<T, Failed> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let conn = guard.as_mut().ok_or_else(|| Failed::Unavailable("the storage is closed".into()))?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (commit, answer) = f(&tx)?;
        if commit {
            tx.commit()?;
        }
        // Dropping an uncommitted transaction rolls it back.
        Ok(answer)
    }

    /// The first row of `sql` with `$1..$n` bound to `values`, if any, read by `read`.
    pub(super) fn row<T>(
        &self,
        sql: &str,
        values: &[&dyn ToSql],
        read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, Failed> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            bind(&mut stmt, values)?;
            let mut rows = stmt.raw_query();
            // `DELETE … RETURNING` makes its change on the first step; the statement is reset
            // (and its write committed) when `rows` drops, with or without a row.
            rows.next()?.map(read).transpose()
        })
    }

    /// A record row: family, data, version, expires_at (columns 0–3).
    pub(super) fn record(row: &Row<'_>) -> rusqlite::Result<RecordRow> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
    }
}

/// Rows changed by `sql` on `conn` with `$1..$n` bound to `values`.
pub(super) fn execute(conn: &Connection, sql: &str, values: &[&dyn ToSql]) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, values)?;
    stmt.raw_execute().map(|n| n as u64)
}

/// Binds `values[i]` to the parameter named `$i+1`; a statement without that name is a bug here.
fn bind(stmt: &mut Statement<'_>, values: &[&dyn ToSql]) -> rusqlite::Result<()> {
    stmt.clear_bindings();
    for (i, value) in values.iter().enumerate() {
        let name = format!("${}", i + 1);
        let index = stmt.parameter_index(&name)?.ok_or_else(|| rusqlite::Error::InvalidParameterName(name))?;
        stmt.raw_bind_parameter(index, *value)?;
    }
    Ok(())
}
