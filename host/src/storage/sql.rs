//! The SQL storage backend: one implementation of [`Backend`] for SQLite, PostgreSQL and MySQL /
//! MariaDB, over sqlx.
//!
//! # Design: two typed pools, one dialect
//!
//! Every statement is written once, in SQL both databases accept: `$N` placeholders (sqlx's
//! SQLite driver maps `$N` to the N-th bind), `INSERT ... ON CONFLICT ... DO UPDATE ... WHERE`
//! (SQLite ≥ 3.24) and `DELETE ... RETURNING` (SQLite ≥ 3.35; the bundled SQLite is 3.46). The
//! `on_pool!` macro runs the same code against whichever typed pool ([`SqlitePool`] or
//! [`PgPool`]) is open.
//!
//! We do not use sqlx's `Any` driver because:
//! - SQLite needs per-connection settings (create the file, WAL, `busy_timeout`) that `Any` only
//!   takes as a URL, so a file path would have to round-trip through URL encoding;
//! - migrations need database-specific statements anyway (`BEGIN IMMEDIATE` in SQLite, an
//!   advisory lock in PostgreSQL);
//! - `Any` needs a process-wide driver registry installed before the first connection and converts
//!   every value through its own reduced type set at run time.
//!
//! The cost is that each operation is compiled twice, once per driver.
//!
//! # Atomicity
//!
//! Each operation is a single statement, so it is atomic in both databases without an explicit
//! transaction: `take` is one `DELETE ... RETURNING`, `update` one `UPDATE ... WHERE version = $N`
//! checked through its row count, and `insert` one upsert whose `DO UPDATE` only fires on an
//! expired row. In PostgreSQL a concurrent writer waits for the row lock and then re-checks the
//! `WHERE` clause against the committed row; SQLite serialises writers, and `busy_timeout` makes a
//! writer wait for the lock rather than fail.
//!
//! # MySQL / MariaDB
//!
//! MySQL gets its own statements (`?` placeholders, byte-wise `VARBINARY` ids; see
//! [`MYSQL_MIGRATIONS`]) and two operations of more than one statement:
//! - `insert` deletes the row if it has expired, then runs a plain `INSERT`; a duplicate-key
//!   error is the conflict. Deleting an expired row is safe at any moment (it is invisible and
//!   garbage), so the INSERT's unique check alone picks the winner. `ON DUPLICATE KEY UPDATE`
//!   would be one statement, but sqlx sets `CLIENT_FOUND_ROWS`, under which "inserted" and "a live
//!   row left alone" both report one row: the conflict could not be told.
//! - `take` is `SELECT ... FOR UPDATE` then `DELETE` in one transaction: MySQL 8 has no
//!   `DELETE ... RETURNING` (MariaDB 10.5+ has), and one code path serves both. A concurrent
//!   take waits on the row lock and then reads the committed state (locking reads see the
//!   latest row), finding it gone.
//!
//! Both retry a few times on a deadlock or lock wait timeout. Migrations hold `GET_LOCK` instead
//! of a transaction, since MySQL commits DDL at once.
//!
//! # Schema
//!
//! `portcullis_schema` holds the versions applied so far; [`MIGRATIONS`] lists the steps. They run
//! inside one transaction that first takes a lock (PostgreSQL: `pg_advisory_xact_lock`; SQLite:
//! `BEGIN IMMEDIATE`), so replicas starting at once on the same database migrate one at a time and
//! the second finds nothing left to do.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::backend::{Backend, Kind, Record, Result, StorageError, Swap, insert_then_update};
use super::sqlite_inline::{self, Failed, Inline, RecordRow};

/// Schema steps, oldest first; step `i` brings the schema to version `i + 1`. Append, never edit:
/// a released step has already run on someone's database.
const MIGRATIONS: &[&[&str]] = &[&[
    "CREATE TABLE IF NOT EXISTS portcullis_objects (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        family TEXT NULL,
        data TEXT NOT NULL,
        version BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (kind, id)
    )",
    "CREATE INDEX IF NOT EXISTS portcullis_objects_family ON portcullis_objects (kind, family)",
    "CREATE INDEX IF NOT EXISTS portcullis_objects_expires_at ON portcullis_objects (expires_at)",
]];

/// MySQL / MariaDB schema steps, numbered like [`MIGRATIONS`] (same schema, MySQL's types). Ids
/// and families are `VARBINARY`: compared byte for byte (no collation folds case or pads
/// spaces), and `kind` (64) + `id` (512) = 576 bytes stays under InnoDB's 767-byte index limit
/// even in the old COMPACT row format. MySQL has no `CREATE INDEX IF NOT EXISTS`, so the indexes
/// are part of the table. DDL is not transactional in MySQL: each step must be safe to re-run.
const MYSQL_MIGRATIONS: &[&[&str]] = &[&["CREATE TABLE IF NOT EXISTS portcullis_objects (
        kind VARBINARY(64) NOT NULL,
        id VARBINARY(512) NOT NULL,
        family VARBINARY(512) NULL,
        data LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        version BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (kind, id),
        INDEX portcullis_objects_family (kind, family),
        INDEX portcullis_objects_expires_at (expires_at)
    ) ENGINE = InnoDB"]];

/// Name of the MySQL `GET_LOCK` held while migrating, and how long a replica waits for it (s).
const MYSQL_MIGRATION_LOCK: &str = "portcullis_migrate";
const MYSQL_MIGRATION_WAIT: i64 = 60;

/// Key of the PostgreSQL advisory lock held while migrating ("portcull" in ASCII).
const MIGRATION_LOCK: i64 = 0x706F_7274_6375_6C6C;

/// How long a SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts at opening a SQLite file another process is switching to WAL (about 2 s in all).
const SQLITE_OPEN_RETRIES: u32 = 12;

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), or one of their extended codes (low byte).
fn is_sqlite_busy(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else { return false };
    db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// How long an operation waits for a free PostgreSQL connection (or to open one).
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// PostgreSQL connections per broker without `maxOpenConns`: Dex's default (`SetMaxOpenConns(5)`
/// in its `storage/sql`), so a database sized for a fleet of Dex replicas is not asked for twice
/// as many connections by the same fleet of ours.
const POSTGRES_MAX_CONNECTIONS: u32 = 5;

const INSERT: &str = "INSERT INTO portcullis_objects (kind, id, family, data, version, expires_at)
    VALUES ($1, $2, $3, $4, 1, $5)
    ON CONFLICT (kind, id) DO UPDATE
        SET family = excluded.family, data = excluded.data, version = 1, expires_at = excluded.expires_at
        WHERE portcullis_objects.expires_at <= $6";
/// `INSERT` for `n` records in one statement: `now` is `$1`, record `i` binds `$2+5i..$6+5i`.
fn insert_many_sql(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let b = 2 + 5 * i;
            format!("(${b}, ${}, ${}, ${}, 1, ${})", b + 1, b + 2, b + 3, b + 4)
        })
        .collect();
    format!(
        "INSERT INTO portcullis_objects (kind, id, family, data, version, expires_at) VALUES {}
    ON CONFLICT (kind, id) DO UPDATE
        SET family = excluded.family, data = excluded.data, version = 1, expires_at = excluded.expires_at
        WHERE portcullis_objects.expires_at <= $1",
        rows.join(", ")
    )
}
/// The most records one `insert_many` statement carries (SQLite binds at most 32766 values).
const INSERT_MANY_MAX: usize = 64;
const GET: &str = "SELECT family, data, version, expires_at FROM portcullis_objects
    WHERE kind = $1 AND id = $2 AND expires_at > $3";
/// `GET` and whether the record of kind `$4` named by the row's family is live (`get_with_parent`).
const GET_WITH_PARENT: &str = "SELECT r.family, r.data, r.version, r.expires_at,
        CAST(CASE WHEN EXISTS (SELECT 1 FROM portcullis_objects p
            WHERE p.kind = $4 AND p.id = r.family AND p.expires_at > $3) THEN 1 ELSE 0 END AS BIGINT)
    FROM portcullis_objects r WHERE r.kind = $1 AND r.id = $2 AND r.expires_at > $3";
const UPDATE: &str = "UPDATE portcullis_objects SET data = $1, expires_at = $2, version = version + 1
    WHERE kind = $3 AND id = $4 AND version = $5 AND expires_at > $6";
/// PostgreSQL's `insert_and_update` in one statement: the swap (`UPDATE`'s `$1..$6`), and the new
/// record (`$7..$11`) inserted only if the swap changed a row. A plain `INSERT`: an id taken by any
/// row fails the whole statement with a unique violation, which undoes the swap too.
const PG_INSERT_AND_UPDATE: &str = "WITH swapped AS (
        UPDATE portcullis_objects SET data = $1, expires_at = $2, version = version + 1
        WHERE kind = $3 AND id = $4 AND version = $5 AND expires_at > $6 RETURNING 1)
    INSERT INTO portcullis_objects (kind, id, family, data, version, expires_at)
        SELECT CAST($7 AS TEXT), CAST($8 AS TEXT), CAST($9 AS TEXT), CAST($10 AS TEXT), 1, CAST($11 AS BIGINT)
        FROM swapped";
const TAKE: &str = "DELETE FROM portcullis_objects WHERE kind = $1 AND id = $2 AND expires_at > $3
    RETURNING family, data, version, expires_at";
const DELETE: &str = "DELETE FROM portcullis_objects WHERE kind = $1 AND id = $2";
const DELETE_FAMILY: &str = "DELETE FROM portcullis_objects WHERE kind = $1 AND family = $2";
const LIST_FAMILY: &str = "SELECT id FROM portcullis_objects WHERE kind = $1 AND family = $2 AND expires_at > $3";
/// One bounded batch of garbage collection (`GC_BATCH` rows; the LIMIT is in the statement).
const COLLECT_GARBAGE: &str = "DELETE FROM portcullis_objects WHERE (kind, id) IN \
    (SELECT kind, id FROM portcullis_objects WHERE expires_at <= $1 LIMIT 1000)";
/// Rows one garbage-collection batch deletes at most: a statement that holds its locks briefly,
/// so logins interleave with a large collection.
pub const GC_BATCH: u64 = 1000;
/// Batches one collection run deletes at most (the next run, one upkeep period later, goes on).
pub const GC_MAX_BATCHES: u64 = 500;

// MySQL / MariaDB: `?` placeholders. `insert` is two statements (see "MySQL" in the module
// docs): drop an expired row, then a plain INSERT whose duplicate-key error is the conflict.
const MY_DELETE_EXPIRED: &str = "DELETE FROM portcullis_objects WHERE kind = ? AND id = ? AND expires_at <= ?";
const MY_INSERT: &str = "INSERT INTO portcullis_objects (kind, id, family, data, version, expires_at)
    VALUES (?, ?, ?, ?, 1, ?)";
const MY_GET: &str = "SELECT family, data, version, expires_at FROM portcullis_objects
    WHERE kind = ? AND id = ? AND expires_at > ?";
const MY_GET_WITH_PARENT: &str = "SELECT r.family, r.data, r.version, r.expires_at,
        CAST(CASE WHEN EXISTS (SELECT 1 FROM portcullis_objects p
            WHERE p.kind = ? AND p.id = r.family AND p.expires_at > ?) THEN 1 ELSE 0 END AS SIGNED)
    FROM portcullis_objects r WHERE r.kind = ? AND r.id = ? AND r.expires_at > ?";
const MY_GET_FOR_UPDATE: &str = "SELECT family, data, version, expires_at FROM portcullis_objects
    WHERE kind = ? AND id = ? AND expires_at > ? FOR UPDATE";
const MY_UPDATE: &str = "UPDATE portcullis_objects SET data = ?, expires_at = ?, version = version + 1
    WHERE kind = ? AND id = ? AND version = ? AND expires_at > ?";
const MY_DELETE: &str = "DELETE FROM portcullis_objects WHERE kind = ? AND id = ?";
const MY_DELETE_FAMILY: &str = "DELETE FROM portcullis_objects WHERE kind = ? AND family = ?";
const MY_LIST_FAMILY: &str = "SELECT id FROM portcullis_objects WHERE kind = ? AND family = ? AND expires_at > ?";
const MY_COLLECT_GARBAGE: &str = "DELETE FROM portcullis_objects WHERE expires_at <= ? LIMIT 1000";

/// A record's columns as MySQL returns them: `VARBINARY` and `_bin` text come back flagged
/// binary, which sqlx will not decode as `String`; they are checked as UTF-8 here.
type MyRecordRow = (Option<Vec<u8>>, Vec<u8>, i64, i64);

fn utf8(kind: Kind, column: &str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes)
        .map_err(|_| StorageError::Corrupt { kind: kind.as_str(), reason: format!("{column} is not UTF-8") })
}

fn my_record(kind: Kind, (family, data, version, expires_at): MyRecordRow) -> Result<Record> {
    let family = family.map(|f| utf8(kind, "family", f)).transpose()?;
    Ok(Record { data: utf8(kind, "data", data)?, family, version, expires_at })
}

/// MySQL's deadlock (1213) and lock wait timeout (1205): the statement may be retried.
fn is_mysql_retryable(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else { return false };
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|e| matches!(e.number(), 1213 | 1205))
}

/// Attempts at a MySQL operation that lost a deadlock.
const MYSQL_ATTEMPTS: u32 = 5;

fn to_record((family, data, version, expires_at): RecordRow) -> Record {
    Record { data, family, version, expires_at }
}

/// Runs `$body` with `$p` bound to whichever pool is open; the body is compiled once per driver.
/// A second arm gives MySQL its own body (its own placeholders and decoding).
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        on_pool!($pool, $p => $body, $p => $body)
    };
    ($pool:expr, $p:ident => $body:expr, $m:ident => $my:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
            Pool::Mysql($m) => $my,
        }
    };
}

/// Applies the missing [`MIGRATIONS`] inside the transaction `$tx`, which already holds the
/// migration lock, and commits.
macro_rules! migrate_in {
    ($tx:ident) => {{
        sqlx::query("CREATE TABLE IF NOT EXISTS portcullis_schema (version BIGINT NOT NULL PRIMARY KEY)")
            .execute(&mut *$tx)
            .await?;
        let (current,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM portcullis_schema").fetch_one(&mut *$tx).await?;
        for (version, steps) in (1_i64..).zip(MIGRATIONS) {
            if version <= current {
                continue;
            }
            for step in *steps {
                sqlx::query(step).execute(&mut *$tx).await?;
            }
            sqlx::query("INSERT INTO portcullis_schema (version) VALUES ($1)").bind(version).execute(&mut *$tx).await?;
        }
        $tx.commit().await?;
        Ok(current)
    }};
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    Mysql(MySqlPool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgres,
    Mysql,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
            Engine::Mysql => "MySQL",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Engine::Sqlite => "check that the file and its directory are writable and the disk is not full",
            Engine::Postgres => "is PostgreSQL running and reachable, and does the database exist?",
            Engine::Mysql => {
                "is MySQL / MariaDB running and reachable, does the database exist, and does the user have the grants \
                 (see README: Storage and its secrets)?"
            }
        }
    }
}

/// Where the records live, for error messages and `Debug`; never holds a password.
#[derive(Clone)]
struct Target {
    engine: Engine,
    location: String,
}

impl Target {
    fn unavailable(&self, doing: &str, err: impl fmt::Display) -> StorageError {
        let Target { engine, location } = self;
        StorageError::Unavailable(format!("{} at {location}: {doing}: {err}; {}", engine.name(), engine.hint()))
    }

    /// [`Self::operation_failed`] for a statement on the inline SQLite connection.
    fn inline_failed(&self, doing: &str, kind: Kind, err: Failed) -> StorageError {
        match err {
            Failed::Decode(reason) => StorageError::Corrupt { kind: kind.as_str(), reason },
            Failed::Unavailable(err) => self.unavailable(&format!("cannot {doing} {}", kind.as_str()), err),
        }
    }

    /// Maps a failed operation on `kind`: an undecodable column is corrupt data, anything else
    /// means the database is unavailable.
    fn operation_failed(&self, doing: &str, kind: Kind, err: sqlx::Error) -> StorageError {
        match err {
            sqlx::Error::ColumnDecode { index, source } => {
                StorageError::Corrupt { kind: kind.as_str(), reason: format!("column {index}: {source}") }
            }
            sqlx::Error::Decode(source) => StorageError::Corrupt { kind: kind.as_str(), reason: source.to_string() },
            err => self.unavailable(&format!("cannot {doing} {}", kind.as_str()), err),
        }
    }
}

/// Records in a `portcullis_objects` table of a SQLite file or a PostgreSQL database. Cheap to
/// clone: clones share one connection pool.
#[derive(Clone)]
pub struct SqlBackend {
    pool: Pool,
    target: Target,
    /// Statements sent to the database since it was opened (shared by clones): the test hook
    /// that keeps each login step within its budget (`statements`).
    statements: Arc<Statements>,
    /// SQLite: the connection the point statements run on, inline (`sqlite_inline`).
    inline: Option<Arc<Inline>>,
}

/// Statement counts: in all, and per kind of record (slot `Kind as usize`).
#[derive(Default)]
struct Statements {
    total: AtomicU64,
    by_kind: [AtomicU64; 32],
}

impl fmt::Debug for SqlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlBackend")
            .field("engine", &self.target.engine.name())
            .field("location", &self.target.location)
            .finish_non_exhaustive()
    }
}

/// Whether `path` is one of SQLite's names for a database in memory (or a `file:` URI) rather
/// than a file.
fn in_memory(path: &Path) -> bool {
    path.as_os_str() == ":memory:" || path.to_string_lossy().starts_with("file:")
}

/// Makes the SQLite file at `path` readable and writable by the broker's user only (0600): it
/// holds the signing keys' private PEM. Creates it so (whatever the umask) when `create` and it
/// is missing; an existing file open to others is fixed, with a warning.
fn make_private(path: &Path, create: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // SQLite's own names for a database in memory: no file to protect.
    if in_memory(path) {
        return Ok(());
    }
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    "the SQLite file was readable by other users (mode {mode:o}); changing it to 600: it holds the signing keys"
                );
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && create => {
            // create_new: if another replica created it meanwhile, leave theirs alone.
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
                Ok(_) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => make_private(path, false),
                Err(err) => Err(err),
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

impl SqlBackend {
    /// Opens the backend a storage URL names: `sqlite:PATH` (or `sqlite://PATH`) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (or `postgresql://`).
    pub async fn connect(url: &str) -> Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(StorageError::Unavailable(
                    "the storage URL `sqlite:` names no file; use sqlite:PATH, e.g. sqlite:/var/lib/portcullis/db.sqlite"
                        .to_owned(),
                ));
            }
            return Self::sqlite(Path::new(path)).await;
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::postgres(url).await;
        }
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            let location = redact(url);
            let options = MySqlConnectOptions::from_str(url).map_err(|err| {
                StorageError::Unavailable(format!(
                    "invalid MySQL URL {location}: {err}; expected mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
                ))
            })?;
            return Self::mysql(options).await;
        }
        // Only the scheme is echoed: the rest of the URL may hold a password.
        let scheme = url.split_once(':').map_or("(none)", |(scheme, _)| scheme);
        Err(StorageError::Unavailable(format!(
            "unsupported storage URL scheme `{scheme}`; use sqlite:PATH, postgres://USER@HOST:PORT/DATABASE \
             or mysql://USER@HOST:PORT/DATABASE"
        )))
    }

    /// Opens (creating it and its directory if missing) the SQLite database at `path`, in WAL
    /// mode, and brings its schema up to date.
    pub async fn sqlite(path: &Path) -> Result<Self> {
        let target = Target { engine: Engine::Sqlite, location: path.display().to_string() };
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            // 0700: the file holds the signing keys' private PEM. Only directories created
            // here get it; an existing directory is the operator's.
            let mut dir = std::fs::DirBuilder::new();
            dir.recursive(true);
            std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
            dir.create(parent)
                .map_err(|err| target.unavailable("cannot create the directory for the database file", err))?;
        }
        make_private(path, true).map_err(|err| target.unavailable("cannot make the database file private", err))?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: no fsync per commit, never corrupt; a power cut (not a crash of the
            // broker) may lose the last commits — at worst a login or refresh to redo.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        // Switching a new file to WAL takes a lock that SQLite's busy handler does not wait
        // for: two replicas opening the same new file at once may see SQLITE_BUSY. Retry briefly.
        let mut attempt = 0;
        let pool = loop {
            // No ping before each acquire (sqlx's default): an SQLite connection is a file in
            // this process, it cannot have hung up, and the ping is a round trip to the
            // connection's worker thread — as many thread hops as the statement itself.
            match SqlitePoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await
            {
                Ok(pool) => break pool,
                Err(err) if attempt < SQLITE_OPEN_RETRIES && is_sqlite_busy(&err) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Err(err) => return Err(target.unavailable("cannot open the database", err)),
            }
        };
        let mut backend = Self::start(Pool::Sqlite(pool), target).await?;
        // A database in memory (`:memory:`, a `file:` URI) is one per connection or shared
        // through sqlx's pool: its statements stay there.
        if !in_memory(path) {
            let inline = Inline::open(path, SQLITE_BUSY_TIMEOUT)
                .map_err(|err| backend.target.unavailable("cannot open the database", err))?;
            backend.inline = Some(Arc::new(inline));
        }
        // WAL mode has made the -wal and -shm files by now; SQLite gives them the database
        // file's mode, but ones left by an older broker may be readable by others.
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            make_private(Path::new(&side), false)
                .map_err(|err| backend.target.unavailable(&format!("cannot make the {suffix} file private"), err))?;
        }
        Ok(backend)
    }

    /// Connects to the PostgreSQL database at `url` and brings its schema up to date. The
    /// database itself must exist.
    pub async fn postgres(url: &str) -> Result<Self> {
        Self::postgres_with(url, None, None, None).await
    }

    /// [`Self::postgres`] with Dex's pool settings: most connections, how long to wait for one,
    /// how long one is kept.
    pub async fn postgres_with(
        url: &str,
        max_connections: Option<u32>,
        acquire_timeout: Option<Duration>,
        max_lifetime: Option<Duration>,
    ) -> Result<Self> {
        let target = Target { engine: Engine::Postgres, location: redact(url) };
        let options = PgConnectOptions::from_str(url).map_err(|err| {
            StorageError::Unavailable(format!(
                "invalid PostgreSQL URL {}: {err}; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
                target.location
            ))
        })?;
        let pool = PgPoolOptions::new()
            // Dex reads 0 as its default too.
            .max_connections(max_connections.filter(|n| *n > 0).unwrap_or(POSTGRES_MAX_CONNECTIONS))
            .acquire_timeout(acquire_timeout.unwrap_or(POSTGRES_ACQUIRE_TIMEOUT))
            .max_lifetime(max_lifetime);
        let pool = pool.connect_with(options).await.map_err(|err| target.unavailable("cannot connect", err))?;
        Self::start(Pool::Postgres(pool), target).await
    }

    /// Connects to the MySQL or MariaDB database `options` name and brings its schema up to date.
    /// The database itself must exist.
    pub async fn mysql(options: MySqlConnectOptions) -> Result<Self> {
        Self::mysql_with(options, None, None, None).await
    }

    /// [`Self::mysql`] with Dex's pool settings: most connections, how long to wait for one,
    /// how long one is kept.
    pub async fn mysql_with(
        options: MySqlConnectOptions,
        max_connections: Option<u32>,
        acquire_timeout: Option<Duration>,
        max_lifetime: Option<Duration>,
    ) -> Result<Self> {
        let location = match options.get_socket() {
            Some(socket) => format!("{}@unix:{}", options.get_username(), socket.display()),
            None => format!("{}@{}:{}", options.get_username(), options.get_host(), options.get_port()),
        };
        let location = format!("{location}/{}", options.get_database().unwrap_or(""));
        let target = Target { engine: Engine::Mysql, location };
        let pool = MySqlPoolOptions::new()
            .max_connections(max_connections.unwrap_or(10).max(1))
            .acquire_timeout(acquire_timeout.unwrap_or(POSTGRES_ACQUIRE_TIMEOUT))
            .max_lifetime(max_lifetime)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // Refuse, rather than truncate, an id too long for its column, whatever
                    // the server's default sql_mode.
                    sqlx::query("SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')")
                        .execute(&mut *conn)
                        .await
                        .map(drop)
                })
            })
            .connect_with(options)
            .await
            .map_err(|err| target.unavailable("cannot connect", err))?;
        Self::start(Pool::Mysql(pool), target).await
    }

    async fn start(pool: Pool, target: Target) -> Result<Self> {
        let backend = Self { pool, target, statements: Arc::default(), inline: None };
        let current =
            backend.migrate().await.map_err(|err| backend.target.unavailable("cannot migrate the schema", err))?;
        let steps = if matches!(backend.pool, Pool::Mysql(_)) { MYSQL_MIGRATIONS } else { MIGRATIONS };
        let latest = i64::try_from(steps.len()).unwrap_or(i64::MAX);
        if current > latest {
            let Target { engine, location } = &backend.target;
            return Err(StorageError::Unavailable(format!(
                "{} at {location} has schema version {current} but this portcullis knows only up to {latest}; \
                 upgrade portcullis or point it at another database",
                engine.name()
            )));
        }
        Ok(backend)
    }

    /// Applies the missing migrations; returns the schema version found before applying them.
    async fn migrate(&self) -> Result<i64, sqlx::Error> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                // IMMEDIATE takes the write lock up front: another process migrating at the same
                // time waits (busy_timeout) instead of failing to upgrade a read lock.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                migrate_in!(tx)
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // Held until commit: replicas starting at once migrate one after the other.
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
                migrate_in!(tx)
            }
            Pool::Mysql(pool) => {
                // MySQL commits DDL at once, so a transaction cannot serialise migrations: a
                // named lock held by this connection does.
                let mut conn = pool.acquire().await?;
                let (locked,): (Option<i64>,) = sqlx::query_as("SELECT GET_LOCK(?, ?)")
                    .bind(MYSQL_MIGRATION_LOCK)
                    .bind(MYSQL_MIGRATION_WAIT)
                    .fetch_one(&mut *conn)
                    .await?;
                if locked != Some(1) {
                    return Err(sqlx::Error::Protocol(format!(
                        "another replica held the migration lock `{MYSQL_MIGRATION_LOCK}` for over {MYSQL_MIGRATION_WAIT} s"
                    )));
                }
                let migrated = mysql_migrate(&mut conn).await;
                let released =
                    sqlx::query("SELECT RELEASE_LOCK(?)").bind(MYSQL_MIGRATION_LOCK).execute(&mut *conn).await;
                let current = migrated?;
                released?;
                Ok(current)
            }
        }
    }

    /// How many statements the record operations have sent to the database so far (a
    /// transaction's `BEGIN` and `COMMIT` included; migrations and pool set-up not). Tests read
    /// it around a request to count what that request cost; clones share the count.
    pub fn statements(&self) -> u64 {
        self.statements.total.load(Ordering::Relaxed)
    }

    /// The part of [`Self::statements`] that were about records of `kind` (a test subtracts
    /// what background tasks, such as the stored-objects poll on `ApiVersion`, did meanwhile).
    pub fn statements_on(&self, kind: Kind) -> u64 {
        self.statements.by_kind.get(kind as usize).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn count(&self, kind: Option<Kind>, statements: u64) {
        self.statements.total.fetch_add(statements, Ordering::Relaxed);
        if let Some(slot) = kind.and_then(|k| self.statements.by_kind.get(k as usize)) {
            slot.fetch_add(statements, Ordering::Relaxed);
        }
    }

    /// Closes every connection; operations after this fail as unavailable.
    pub async fn close(&self) {
        if let Some(inline) = &self.inline {
            inline.close();
        }
        on_pool!(&self.pool, pool => pool.close().await)
    }
}

/// Applies the missing [`MYSQL_MIGRATIONS`] on `conn`, which holds the migration lock.
async fn mysql_migrate(conn: &mut sqlx::MySqlConnection) -> Result<i64, sqlx::Error> {
    sqlx::query("CREATE TABLE IF NOT EXISTS portcullis_schema (version BIGINT NOT NULL PRIMARY KEY) ENGINE = InnoDB")
        .execute(&mut *conn)
        .await?;
    let (current,): (i64,) = sqlx::query_as("SELECT CAST(COALESCE(MAX(version), 0) AS SIGNED) FROM portcullis_schema")
        .fetch_one(&mut *conn)
        .await?;
    for (version, steps) in (1_i64..).zip(MYSQL_MIGRATIONS) {
        if version <= current {
            continue;
        }
        for step in *steps {
            sqlx::query(step).execute(&mut *conn).await?;
        }
        sqlx::query("INSERT INTO portcullis_schema (version) VALUES (?)").bind(version).execute(&mut *conn).await?;
    }
    Ok(current)
}

/// The URL without its password or query parameters (which may carry one), for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            // Both fail only for URLs that cannot have a password to begin with.
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => "(an unparseable URL)".to_owned(),
    }
}

/// MySQL's `insert` and `take`, which need more than one statement.
impl SqlBackend {
    async fn my_insert(&self, pool: &MySqlPool, kind: Kind, id: &str, record: &Record, now: i64) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.count(Some(kind), 2);
            let done = async {
                // An expired row is invisible and garbage anyway: dropping it first is safe at
                // any moment, and leaves the INSERT's duplicate-key check as the one arbiter.
                sqlx::query(MY_DELETE_EXPIRED).bind(kind.as_str()).bind(id).bind(now).execute(pool).await?;
                sqlx::query(MY_INSERT)
                    .bind(kind.as_str())
                    .bind(id)
                    .bind(record.family.as_deref())
                    .bind(record.data.as_str())
                    .bind(record.expires_at)
                    .execute(pool)
                    .await
            }
            .await;
            match done {
                Ok(_) => return Ok(()),
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    return Err(StorageError::Conflict { kind: kind.as_str() });
                }
                Err(err) if attempt < MYSQL_ATTEMPTS && is_mysql_retryable(&err) => {}
                Err(err) => return Err(self.target.operation_failed("insert", kind, err)),
            }
        }
    }

    async fn my_take(&self, pool: &MySqlPool, kind: Kind, id: &str, now: i64) -> Result<Option<Record>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.count(Some(kind), 4);
            // MySQL 8 has no DELETE ... RETURNING (MariaDB 10.5+ has): lock the row, read it,
            // delete it, commit. A concurrent take waits on the row lock, then finds it gone.
            let done = async {
                let mut tx = pool.begin().await?;
                let row: Option<MyRecordRow> = sqlx::query_as(MY_GET_FOR_UPDATE)
                    .bind(kind.as_str())
                    .bind(id)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                if row.is_some() {
                    sqlx::query(MY_DELETE).bind(kind.as_str()).bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(row)
            }
            .await;
            match done {
                Ok(row) => return row.map(|row| my_record(kind, row)).transpose(),
                Err(err) if attempt < MYSQL_ATTEMPTS && is_mysql_retryable(&err) => {}
                Err(err) => return Err(self.target.operation_failed("take", kind, err)),
            }
        }
    }
}

#[async_trait]
impl Backend for SqlBackend {
    async fn insert(&self, kind: Kind, id: &str, record: &Record, now: i64) -> Result<()> {
        if let Pool::Mysql(pool) = &self.pool {
            return self.my_insert(pool, kind, id, record, now).await;
        }
        self.count(Some(kind), 1);
        if let Some(inline) = &self.inline {
            let values: [&dyn rusqlite::ToSql; 6] =
                [&kind.as_str(), &id, &record.family.as_deref(), &record.data.as_str(), &record.expires_at, &now];
            let inserted =
                inline.execute(INSERT, &values).map_err(|err| self.target.inline_failed("insert", kind, err))?;
            return if inserted == 0 { Err(StorageError::Conflict { kind: kind.as_str() }) } else { Ok(()) };
        }
        let inserted = on_pool!(&self.pool, pool => sqlx::query(INSERT)
            .bind(kind.as_str())
            .bind(id)
            .bind(record.family.as_deref())
            .bind(record.data.as_str())
            .bind(record.expires_at)
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()), _my => Ok(1))
        .map_err(|err| self.target.operation_failed("insert", kind, err))?;
        if inserted == 0 { Err(StorageError::Conflict { kind: kind.as_str() }) } else { Ok(()) }
    }

    async fn insert_many(&self, records: &[(Kind, &str, &Record)], now: i64) -> Result<()> {
        if matches!(self.pool, Pool::Mysql(_)) || records.len() > INSERT_MANY_MAX {
            for (kind, id, record) in records {
                self.insert(*kind, id, record, now).await?;
            }
            return Ok(());
        }
        let Some((first_kind, _, _)) = records.first() else { return Ok(()) };
        self.count(Some(*first_kind), 1);
        let sql = insert_many_sql(records.len());
        if let Some(inline) = &self.inline {
            let kinds: Vec<&str> = records.iter().map(|(kind, _, _)| kind.as_str()).collect();
            let families: Vec<Option<&str>> = records.iter().map(|(_, _, r)| r.family.as_deref()).collect();
            let mut values: Vec<&dyn rusqlite::ToSql> = vec![&now];
            for (i, (_, id, record)) in records.iter().enumerate() {
                values.extend([&kinds[i] as &dyn rusqlite::ToSql, id, &families[i], &record.data, &record.expires_at]);
            }
            let inserted =
                inline.execute(&sql, &values).map_err(|err| self.target.inline_failed("insert", *first_kind, err))?;
            if inserted < records.len() as u64 {
                return Err(StorageError::Conflict { kind: first_kind.as_str() });
            }
            return Ok(());
        }
        let inserted = on_pool!(&self.pool, pool => {
            let mut q = sqlx::query(&sql).bind(now);
            for (kind, id, record) in records {
                q = q.bind(kind.as_str()).bind(*id).bind(record.family.as_deref()).bind(record.data.as_str()).bind(record.expires_at);
            }
            q.execute(pool).await.map(|done| done.rows_affected())
        }, _my => Ok(0))
        .map_err(|err| self.target.operation_failed("insert", *first_kind, err))?;
        if inserted < records.len() as u64 {
            // Which one is unknown here; name the first kind, as a single insert would.
            return Err(StorageError::Conflict { kind: first_kind.as_str() });
        }
        Ok(())
    }

    async fn get(&self, kind: Kind, id: &str, now: i64) -> Result<Option<Record>> {
        self.count(Some(kind), 1);
        if let Pool::Mysql(pool) = &self.pool {
            let row: Option<MyRecordRow> = sqlx::query_as(MY_GET)
                .bind(kind.as_str())
                .bind(id)
                .bind(now)
                .fetch_optional(pool)
                .await
                .map_err(|err| self.target.operation_failed("read", kind, err))?;
            return row.map(|row| my_record(kind, row)).transpose();
        }
        if let Some(inline) = &self.inline {
            let row = inline
                .row(GET, &[&kind.as_str(), &id, &now], Inline::record)
                .map_err(|err| self.target.inline_failed("read", kind, err))?;
            return Ok(row.map(to_record));
        }
        let row: Option<RecordRow> = on_pool!(&self.pool, pool => sqlx::query_as(GET)
            .bind(kind.as_str())
            .bind(id)
            .bind(now)
            .fetch_optional(pool)
            .await, _my => Ok(None))
        .map_err(|err| self.target.operation_failed("read", kind, err))?;
        Ok(row.map(to_record))
    }

    async fn get_with_parent(&self, kind: Kind, id: &str, parent: Kind, now: i64) -> Result<Option<(Record, bool)>> {
        self.count(Some(kind), 1);
        if let Pool::Mysql(pool) = &self.pool {
            let row: Option<(Option<Vec<u8>>, Vec<u8>, i64, i64, i64)> = sqlx::query_as(MY_GET_WITH_PARENT)
                .bind(parent.as_str())
                .bind(now)
                .bind(kind.as_str())
                .bind(id)
                .bind(now)
                .fetch_optional(pool)
                .await
                .map_err(|err| self.target.operation_failed("read", kind, err))?;
            return row
                .map(|(family, data, version, expires_at, live)| {
                    Ok((my_record(kind, (family, data, version, expires_at))?, live == 1))
                })
                .transpose();
        }
        if let Some(inline) = &self.inline {
            let row = inline
                .row(GET_WITH_PARENT, &[&kind.as_str(), &id, &now, &parent.as_str()], |row| {
                    Ok((Inline::record(row)?, row.get::<_, i64>(4)?))
                })
                .map_err(|err| self.target.inline_failed("read", kind, err))?;
            return Ok(row.map(|(record, live)| (to_record(record), live == 1)));
        }
        let row: Option<(Option<String>, String, i64, i64, i64)> =
            on_pool!(&self.pool, pool => sqlx::query_as(GET_WITH_PARENT)
            .bind(kind.as_str())
            .bind(id)
            .bind(now)
            .bind(parent.as_str())
            .fetch_optional(pool)
            .await, _my => Ok(None))
            .map_err(|err| self.target.operation_failed("read", kind, err))?;
        Ok(row.map(|(family, data, version, expires_at, live)| {
            (to_record((family, data, version, expires_at)), live == 1)
        }))
    }

    async fn update(
        &self,
        kind: Kind,
        id: &str,
        expected_version: i64,
        data: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        self.count(Some(kind), 1);
        if let Some(inline) = &self.inline {
            let values: [&dyn rusqlite::ToSql; 6] = [&data, &expires_at, &kind.as_str(), &id, &expected_version, &now];
            let updated =
                inline.execute(UPDATE, &values).map_err(|err| self.target.inline_failed("update", kind, err))?;
            return Ok(updated == 1);
        }
        // MySQL: sqlx sets CLIENT_FOUND_ROWS, so the count is of matched rows, even unchanged.
        let updated = on_pool!(&self.pool, pool => sqlx::query(UPDATE)
            .bind(data)
            .bind(expires_at)
            .bind(kind.as_str())
            .bind(id)
            .bind(expected_version)
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()), pool => sqlx::query(MY_UPDATE)
            .bind(data)
            .bind(expires_at)
            .bind(kind.as_str())
            .bind(id)
            .bind(expected_version)
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(|err| self.target.operation_failed("update", kind, err))?;
        Ok(updated == 1)
    }

    /// SQLite: the swap and the insert in one transaction (one commit instead of two).
    /// PostgreSQL: one statement ([`PG_INSERT_AND_UPDATE`]). MySQL: the two-step default.
    async fn insert_and_update(&self, kind: Kind, id: &str, record: &Record, swap: Swap<'_>, now: i64) -> Result<bool> {
        enum Outcome {
            Done,
            Lost,
            Taken,
        }
        let outcome = if let Some(inline) = &self.inline {
            self.count(Some(kind), 2);
            let swapped: [&dyn rusqlite::ToSql; 6] =
                [&swap.data, &swap.expires_at, &swap.kind.as_str(), &swap.id, &swap.expected_version, &now];
            let inserted: [&dyn rusqlite::ToSql; 6] =
                [&kind.as_str(), &id, &record.family.as_deref(), &record.data.as_str(), &record.expires_at, &now];
            inline
                .transaction(|conn| {
                    if sqlite_inline::execute(conn, UPDATE, &swapped)? != 1 {
                        return Ok((false, Outcome::Lost));
                    }
                    if sqlite_inline::execute(conn, INSERT, &inserted)? == 0 {
                        return Ok((false, Outcome::Taken));
                    }
                    Ok((true, Outcome::Done))
                })
                .map_err(|err| self.target.inline_failed("update", swap.kind, err))?
        } else if let Pool::Postgres(pool) = &self.pool {
            self.count(Some(kind), 1);
            let done = sqlx::query(PG_INSERT_AND_UPDATE)
                .bind(swap.data)
                .bind(swap.expires_at)
                .bind(swap.kind.as_str())
                .bind(swap.id)
                .bind(swap.expected_version)
                .bind(now)
                .bind(kind.as_str())
                .bind(id)
                .bind(record.family.as_deref())
                .bind(record.data.as_str())
                .bind(record.expires_at)
                .execute(pool)
                .await;
            match done {
                Ok(done) if done.rows_affected() == 1 => Outcome::Done,
                Ok(_) => Outcome::Lost,
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Outcome::Taken,
                Err(err) => return Err(self.target.operation_failed("update", swap.kind, err)),
            }
        } else {
            return insert_then_update(self, kind, id, record, swap, now).await;
        };
        match outcome {
            Outcome::Done => Ok(true),
            Outcome::Lost => Ok(false),
            Outcome::Taken => Err(StorageError::Conflict { kind: kind.as_str() }),
        }
    }

    async fn take(&self, kind: Kind, id: &str, now: i64) -> Result<Option<Record>> {
        if let Pool::Mysql(pool) = &self.pool {
            return self.my_take(pool, kind, id, now).await;
        }
        self.count(Some(kind), 1);
        if let Some(inline) = &self.inline {
            let row = inline
                .row(TAKE, &[&kind.as_str(), &id, &now], Inline::record)
                .map_err(|err| self.target.inline_failed("take", kind, err))?;
            return Ok(row.map(to_record));
        }
        let row: Option<RecordRow> = on_pool!(&self.pool, pool => sqlx::query_as(TAKE)
            .bind(kind.as_str())
            .bind(id)
            .bind(now)
            .fetch_optional(pool)
            .await, _my => Ok(None))
        .map_err(|err| self.target.operation_failed("take", kind, err))?;
        Ok(row.map(to_record))
    }

    async fn delete(&self, kind: Kind, id: &str) -> Result<bool> {
        self.count(Some(kind), 1);
        if let Some(inline) = &self.inline {
            let deleted = inline
                .execute(DELETE, &[&kind.as_str(), &id])
                .map_err(|err| self.target.inline_failed("delete", kind, err))?;
            return Ok(deleted > 0);
        }
        let deleted = on_pool!(&self.pool, pool => sqlx::query(DELETE)
            .bind(kind.as_str())
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()), pool => sqlx::query(MY_DELETE)
            .bind(kind.as_str())
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(|err| self.target.operation_failed("delete", kind, err))?;
        Ok(deleted > 0)
    }

    async fn delete_family(&self, kind: Kind, family: &str) -> Result<u64> {
        self.count(Some(kind), 1);
        on_pool!(&self.pool, pool => sqlx::query(DELETE_FAMILY)
            .bind(kind.as_str())
            .bind(family)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()), pool => sqlx::query(MY_DELETE_FAMILY)
            .bind(kind.as_str())
            .bind(family)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(|err| self.target.operation_failed("delete the family of", kind, err))
    }

    async fn list_family(&self, kind: Kind, family: &str, now: i64) -> Result<Vec<String>> {
        self.count(Some(kind), 1);
        let rows: Vec<String> = on_pool!(&self.pool, pool => sqlx::query_as(LIST_FAMILY)
            .bind(kind.as_str())
            .bind(family)
            .bind(now)
            .fetch_all(pool)
            .await
            .map(|rows| rows.into_iter().map(|(id,): (String,)| id).collect()), pool => sqlx::query_as(MY_LIST_FAMILY)
            .bind(kind.as_str())
            .bind(family)
            .bind(now)
            .fetch_all(pool)
            .await
            .map(|rows| rows.into_iter().map(|(id,): (Vec<u8>,)| String::from_utf8_lossy(&id).into_owned()).collect()))
        .map_err(|err| self.target.operation_failed("list the family of", kind, err))?;
        // Sorted here rather than in SQL: PostgreSQL's ORDER BY follows the database collation.
        let mut ids: Vec<String> = rows;
        ids.sort();
        Ok(ids)
    }

    /// Deletes expired rows in batches of [`GC_BATCH`] (the `expires_at` index finds them; no
    /// full-table scan), yielding between batches, at most [`GC_MAX_BATCHES`] per run.
    async fn collect_garbage(&self, now: i64) -> Result<u64> {
        let mut total = 0;
        for _ in 0..GC_MAX_BATCHES {
            self.count(None, 1);
            let deleted = on_pool!(&self.pool, pool => sqlx::query(COLLECT_GARBAGE)
                .bind(now)
                .execute(pool)
                .await
                .map(|done| done.rows_affected()), pool => sqlx::query(MY_COLLECT_GARBAGE)
                .bind(now)
                .execute(pool)
                .await
                .map(|done| done.rows_affected()))
            .map_err(|err| self.target.unavailable("cannot delete expired records", err))?;
            total += deleted;
            if deleted < GC_BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(total)
    }

    async fn ping(&self) -> Result<()> {
        self.count(None, 1);
        on_pool!(&self.pool, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))
            .map_err(|err| self.target.unavailable("ping failed", err))
    }
}
