//! `portcullis import-dex`: reads a Dex deployment's storage (as its config names it) and
//! writes what lives on into ours, so users need not log in again:
//!
//! - clients, passwords and connectors Dex's API created become stored objects (as our admin
//!   API's: `storage::api`), checked by the same rules; one that does not pass is skipped with
//!   the reason;
//! - refresh tokens stay valid **as the apps hold them**: we store tokens by the sha256 of what
//!   the client presents, and Dex's token is `base64url(protobuf{refresh_id, token})`, so the
//!   imported record is filed under the hash of exactly that string; the first refresh rotates
//!   it into one of ours. The user's claims and the offline session's connector data come along;
//! - Dex's signing and verification keys join our JWKS until the ID tokens they signed expire.
//!
//! Idempotent: what is already there is skipped, so a second run imports nothing twice. With
//! `dry_run` nothing is written. This version reads Dex's SQLite and PostgreSQL storage
//! (`storage/sql`, any schema version, told by its `migrations` table: a column a schema does
//! not have yet reads as Dex's default) and Kubernetes custom resources from a `kubectl get -o
//! yaml` dump; MySQL and etcd are refused with that said.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use sqlx::AnyPool;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::config::Validated;
use crate::config::stored::{StoredClient, StoredConnector, StoredPassword};
use crate::connectors::Identity;
use crate::storage::api::UserGrant;
use crate::storage::{PublicKey, RefreshToken, StorageError, Store};

/// What an import did, per kind: imported, already there, skipped (with why).
#[derive(Debug, Default)]
pub struct Report {
    /// What was read: Dex's SQL schema version, or a Kubernetes dump.
    pub schema: String,
    pub lines: Vec<String>,
    pub imported: usize,
    pub existing: usize,
    pub skipped: usize,
}

impl Report {
    fn imported(&mut self, what: String) {
        self.imported += 1;
        self.lines.push(format!("imported  {what}"));
    }

    fn existing(&mut self, what: String) {
        self.existing += 1;
        self.lines.push(format!("present   {what} (imported before; left as it is)"));
    }

    fn skipped(&mut self, what: String, why: impl std::fmt::Display) {
        self.skipped += 1;
        self.lines.push(format!("skipped   {what}: {why}"));
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Dex storage: {}", self.schema)?;
        for line in &self.lines {
            writeln!(f, "  {line}")?;
        }
        write!(f, "{} imported, {} already present, {} skipped", self.imported, self.existing, self.skipped)
    }
}

/// Dex's storage, as its config names it.
#[derive(Debug, Clone)]
pub struct DexStorage {
    pub database: DexDatabase,
    /// Dex's `expiry.idTokens` (default 24h): how long its keys must keep verifying.
    pub id_tokens: std::time::Duration,
}

/// Where Dex keeps its data.
#[derive(Debug, Clone)]
pub enum DexDatabase {
    Sqlite(PathBuf),
    /// A `kubectl get <Dex's kinds> -o yaml` dump (a cluster cannot be reached from here).
    Kubernetes(PathBuf),
    /// A `postgres://` URL (it may hold the password: never printed).
    Postgres(crate::secret::Secret),
    /// A `mysql://` URL (it may hold the password: never printed).
    Mysql(crate::secret::Secret),
}

/// Reads the `storage` and `expiry.idTokens` of a Dex config file. A relative SQLite path is
/// taken as Dex takes it (from the directory Dex runs in: here the current one), else beside
/// the config file.
pub fn dex_storage(dex_config: &Path, kubernetes_dump: Option<&Path>) -> anyhow::Result<DexStorage> {
    let text = std::fs::read_to_string(dex_config).with_context(|| format!("cannot read {}", dex_config.display()))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("{}: not YAML", dex_config.display()))?;
    let kind = doc["storage"]["type"].as_str().unwrap_or_default();
    let id_tokens = match doc["expiry"]["idTokens"].as_str() {
        Some(d) => crate::connectors::limits::parse_duration(d)
            .with_context(|| format!("{}: expiry.idTokens {d:?} is not a duration", dex_config.display()))?,
        None => std::time::Duration::from_secs(24 * 3600),
    };
    match kind {
        "sqlite3" => {
            let file = doc["storage"]["config"]["file"]
                .as_str()
                .with_context(|| format!("{}: storage.config.file is not set", dex_config.display()))?;
            let path = PathBuf::from(file);
            let beside = dex_config.parent().unwrap_or(Path::new(".")).join(file);
            let sqlite_file = if path.is_absolute() || path.exists() { path } else { beside };
            Ok(DexStorage { database: DexDatabase::Sqlite(sqlite_file), id_tokens })
        }
        "postgres" => {
            let c = &doc["storage"]["config"];
            let text = |key: &str| c[key].as_str().map(str::to_string);
            let dir = dex_config.parent().unwrap_or(Path::new("."));
            let ssl_file = |key: &str| c["ssl"][key].as_str().map(|f| dir.join(f).to_string_lossy().into_owned());
            let pg = crate::config::PostgresConfig {
                url: None,
                host: text("host"),
                port: c["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
                database: text("database"),
                user: text("user"),
                password: text("password").map(crate::secret::Secret::new),
                connection_timeout: None,
                max_open_conns: None,
                conn_max_lifetime: None,
                max_idle_conns: None,
                // Dex's TLS keys; files relative to Dex's config.
                ssl: Some(crate::config::PostgresSsl {
                    mode: c["ssl"]["mode"].as_str().map(str::to_string),
                    ca_file: ssl_file("caFile"),
                    cert_file: ssl_file("certFile"),
                    key_file: ssl_file("keyFile"),
                }),
            };
            Ok(DexStorage { database: DexDatabase::Postgres(crate::broker::postgres_url(&pg)), id_tokens })
        }
        "kubernetes" => match kubernetes_dump {
            Some(dump) => Ok(DexStorage { database: DexDatabase::Kubernetes(dump.to_path_buf()), id_tokens }),
            None => bail!(
                "{}: storage.type kubernetes: the cluster is read from a dump; make one with `kubectl get \
                 oauth2clients,passwords,connectors,refreshtokens,offlinesessionses,signingkeies -n <Dex's namespace> \
                 -o yaml > dex-objects.yaml` and pass --kubernetes-dump dex-objects.yaml",
                dex_config.display()
            ),
        },
        "mysql" => {
            // Dex's mysql keys are ours (`storage.type: mysql`), with Dex's TLS default.
            let c: crate::config::MysqlConfig = serde_yaml::from_value(doc["storage"]["config"].clone())
                .with_context(|| format!("{}: storage.config", dex_config.display()))?;
            let url = sqlx::ConnectOptions::to_url_lossy(&crate::broker::mysql_options(&c));
            Ok(DexStorage { database: DexDatabase::Mysql(crate::secret::Secret::new(url.to_string())), id_tokens })
        }
        "etcd" => bail!(
            "{}: storage.type etcd: this version imports Dex's SQLite, PostgreSQL, MySQL and Kubernetes storage, \
             not etcd; copy Dex's objects into one of those with Dex (or recreate them through the API)",
            dex_config.display()
        ),
        "memory" => bail!("{}: storage.type memory keeps nothing to import", dex_config.display()),
        other => bail!("{}: storage.type {other:?} is not one of Dex's storages", dex_config.display()),
    }
}

/// Dex's refresh token as its client holds it: base64url (no padding) of the protobuf message
/// `{1: refresh_id, 2: token}`; a legacy row with no token is held as the bare id.
pub fn dex_refresh_token(id: &str, token: &str) -> String {
    if token.is_empty() {
        return id.to_string();
    }
    let mut bytes = Vec::with_capacity(id.len() + token.len() + 6);
    for (tag, value) in [(0x0a_u8, id), (0x12, token)] {
        bytes.push(tag);
        let mut len = value.len();
        // Varint length (ids are short; longer ones still encode right).
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                bytes.push(byte);
                break;
            }
            bytes.push(byte | 0x80);
        }
        bytes.extend_from_slice(value.as_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Dex's database, whichever SQL it speaks; queries name only columns its schema has.
struct Dex {
    pool: AnyPool,
    flavor: Flavor,
    /// Dex's ent schema (`DEX_ENT_ENABLED=true`): plural table names, JSON columns, no migrations table.
    ent: bool,
}

/// The SQL dialects Dex's storage/sql writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Sqlite,
    Postgres,
    Mysql,
}

impl Flavor {
    /// An identifier quoted (Dex's `keys` and `groups` are reserved words in MySQL).
    fn quote(self, name: &str) -> String {
        match self {
            Flavor::Postgres => format!("\"{name}\""),
            Flavor::Sqlite | Flavor::Mysql => format!("`{name}`"),
        }
    }

    /// The Dex releases that leave a database at schema `version` (numbered per flavor: MySQL
    /// has one migration more from 7 on).
    fn release(self, version: i64) -> &'static str {
        let version = match (self, version) {
            (Flavor::Mysql, 7) => return "Dex v2.23 to v2.24",
            (Flavor::Mysql, 12) => return "Dex v2.35 to v2.44, or v2.45.0 stopped by its `groups` migration",
            (Flavor::Mysql, v) if v > 7 => v - 1,
            (_, v) => v,
        };
        match version {
            ..=3 => "older than Dex v2.4",
            4 => "Dex v2.4 to v2.19",
            5 => "Dex v2.20",
            6 if self == Flavor::Mysql => "Dex v2.21 to v2.22",
            6 => "Dex v2.21 to v2.24",
            7 => "Dex v2.25",
            8 => "Dex v2.26 to v2.28",
            9 => "Dex v2.29 to v2.32",
            10 => "Dex v2.33 to v2.34",
            11 => "Dex v2.35 to v2.44",
            12 => "Dex v2.45.0 stopped half-way",
            13 => "Dex v2.45",
            _ => "newer than Dex v2.45: its newer columns are not read",
        }
    }

    /// The integer type a CAST names.
    fn integer(self) -> &'static str {
        match self {
            Flavor::Sqlite => "INTEGER",
            Flavor::Postgres => "BIGINT",
            Flavor::Mysql => "SIGNED",
        }
    }
}

/// How a column is read (its value arrives as text, bytes, an integer, or Unix seconds).
#[derive(Clone, Copy)]
enum Col {
    Text,
    Bytes,
    /// A JSON array or object: bytes in the storage/sql schema, the database's JSON type in ent's.
    Json,
    Flag,
    Time,
}

impl Dex {
    async fn open(database: &DexDatabase) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (url, flavor, what) = match database {
            DexDatabase::Sqlite(path) => {
                anyhow::ensure!(path.is_file(), "Dex's SQLite database {} does not exist", path.display());
                let what = format!("Dex's SQLite database {}", path.display());
                (format!("sqlite://{}?mode=ro", path.display()), Flavor::Sqlite, what)
            }
            DexDatabase::Postgres(url) => {
                (url.expose().to_string(), Flavor::Postgres, "Dex's PostgreSQL database".into())
            }
            DexDatabase::Mysql(url) => (url.expose().to_string(), Flavor::Mysql, "Dex's MySQL database".into()),
            DexDatabase::Kubernetes(_) => bail!("a Kubernetes dump is not a database"),
        };
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .with_context(|| format!("cannot connect to {what}"))?;
        Ok(Self { pool, flavor, ent: false })
    }

    async fn tables(&self) -> anyhow::Result<std::collections::BTreeSet<String>> {
        let sql = match self.flavor {
            Flavor::Postgres => {
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema()"
            }
            Flavor::Mysql => {
                "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE()"
            }
            Flavor::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().filter_map(|r| r.try_get::<String, _>(0).ok()).collect())
    }

    async fn columns(&self, table: &str) -> anyhow::Result<std::collections::BTreeSet<String>> {
        let sql = match self.flavor {
            Flavor::Postgres => format!(
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{table}'"
            ),
            Flavor::Mysql => format!(
                "SELECT CAST(column_name AS CHAR) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{table}'"
            ),
            Flavor::Sqlite => format!("SELECT name FROM pragma_table_info('{table}')"),
        };
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().filter_map(|r| r.try_get::<String, _>(0).ok()).collect())
    }

    /// Every row of `table` (a Dex table name, never input) with `wanted` columns, each read
    /// as told; a column this schema version lacks reads as NULL.
    async fn rows(&self, table: &str, wanted: &[(&str, Col)]) -> anyhow::Result<Vec<AnyRow>> {
        let table = if self.ent { ent_table(table) } else { table };
        let have = self.columns(table).await?;
        let select: Vec<String> = wanted
            .iter()
            .map(|(name, col)| {
                if !have.contains(*name) {
                    return format!("NULL AS {}", self.flavor.quote(name));
                }
                let (quoted, int) = (self.flavor.quote(name), self.flavor.integer());
                let alias = self.flavor.quote(name);
                match (col, self.flavor) {
                    (Col::Json, Flavor::Postgres) if self.ent => format!("CAST({quoted} AS TEXT) AS {alias}"),
                    (Col::Json, Flavor::Mysql) if self.ent => format!("CAST({quoted} AS CHAR) AS {alias}"),
                    (Col::Text | Col::Bytes | Col::Json, _) => format!("{quoted} AS {alias}"),
                    // PostgreSQL casts a boolean to integer (not bigint); `integer` reads either width.
                    (Col::Flag, Flavor::Postgres) => format!("CAST({quoted} AS INTEGER) AS {alias}"),
                    (Col::Flag, _) => format!("CAST({quoted} AS {int}) AS {alias}"),
                    (Col::Time, Flavor::Postgres) => format!("CAST(EXTRACT(EPOCH FROM {quoted}) AS BIGINT) AS {alias}"),
                    // datetime(3) in UTC (Dex converts; sqlx sets the session's time_zone to +00:00).
                    (Col::Time, Flavor::Mysql) => format!("CAST(UNIX_TIMESTAMP({quoted}) AS SIGNED) AS {alias}"),
                    // go-sqlite3 writes `2006-01-02 15:04:05.999999999-07:00`; Dex writes UTC.
                    (Col::Time, Flavor::Sqlite) => {
                        format!("CAST(strftime('%s', substr({quoted}, 1, 19)) AS INTEGER) AS {alias}")
                    }
                }
            })
            .collect();
        let sql = format!("SELECT {} FROM {}", select.join(", "), self.flavor.quote(table));
        Ok(sqlx::query(&sql).fetch_all(&self.pool).await?)
    }
}

/// The ent schema's name of a storage/sql table.
fn ent_table(table: &str) -> &str {
    match table {
        "client" => "oauth2clients",
        "password" => "passwords",
        "connector" => "connectors",
        "refresh_token" => "refresh_tokens",
        "offline_session" => "offline_sessions",
        other => other,
    }
}

/// A bytes column (or text, as some drivers hand back a blob).
fn bytes(row: &AnyRow, column: &str) -> Option<Vec<u8>> {
    match row.try_get::<Option<Vec<u8>>, _>(column) {
        Ok(b) => b,
        Err(_) => row.try_get::<Option<String>, _>(column).ok().flatten().map(String::into_bytes),
    }
}

/// A JSON array column (Dex writes `null` for an empty Go slice, and later columns may be NULL).
fn strings(row: &AnyRow, column: &str) -> Vec<String> {
    bytes(row, column)
        .and_then(|b| serde_json::from_slice::<Option<Vec<String>>>(&b).ok())
        .flatten()
        .unwrap_or_default()
}

fn text(row: &AnyRow, column: &str) -> String {
    match row.try_get::<Option<String>, _>(column) {
        Ok(t) => t.unwrap_or_default(),
        Err(_) => bytes(row, column).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default(),
    }
}

fn integer(row: &AnyRow, column: &str) -> Option<i64> {
    row.try_get::<Option<i64>, _>(column)
        .ok()
        .flatten()
        .or_else(|| row.try_get::<Option<i32>, _>(column).ok().flatten().map(i64::from))
}

fn flag(row: &AnyRow, column: &str) -> Option<bool> {
    integer(row, column).map(|i| i != 0)
}

/// Unix seconds of a time column read as `Col::Time`.
fn seconds(row: &AnyRow, column: &str) -> i64 {
    integer(row, column).unwrap_or(0)
}

/// Imports what `dex` holds into `store`, checked against `into` (the broker's config).
/// One refresh token as Dex keeps it, whichever storage it came from.
#[derive(Debug, Clone)]
struct DexRefresh {
    id: String,
    /// The current secret half ('' on legacy rows).
    token: String,
    client_id: String,
    scopes: Vec<String>,
    nonce: String,
    connector_id: String,
    /// The claims (`connector_data` filled from the offline session when it has some).
    identity: Identity,
    created: i64,
    last_used: i64,
}

/// Everything an import carries over, read from Dex's SQL storage or a Kubernetes dump.
#[derive(Debug, Default)]
struct DexData {
    clients: Vec<StoredClient>,
    passwords: Vec<StoredPassword>,
    connectors: Vec<StoredConnector>,
    /// Dex's public keys, with when the tokens they signed are all expired.
    keys: Vec<PublicKey>,
    refresh: Vec<DexRefresh>,
}

/// Dex's verification key as it is kept (`[{publicKey, expiry}]`).
#[derive(serde::Deserialize)]
struct Verification {
    #[serde(rename = "publicKey")]
    public_key: serde_json::Value,
    expiry: String,
}

/// The keys to keep: the current public key (it signed until now, so its tokens live up to Dex's
/// `idTokens` more) and the unexpired verification keys.
fn public_keys(
    current: Option<serde_json::Value>,
    verification: Vec<Verification>,
    dex: &DexStorage,
    now: i64,
) -> Vec<PublicKey> {
    let kid = |jwk: &serde_json::Value| jwk["kid"].as_str().unwrap_or_default().to_string();
    let mut keys = Vec::new();
    if let Some(jwk) = current.filter(|j| j.is_object()) {
        keys.push(PublicKey { kid: kid(&jwk), jwk, expires_at: now + crate::clock::secs(dex.id_tokens) });
    }
    for v in verification {
        match time_from_rfc3339(&v.expiry) {
            Ok(expiry) if expiry > now => {
                keys.push(PublicKey { kid: kid(&v.public_key), jwk: v.public_key, expires_at: expiry })
            }
            _ => {}
        }
    }
    keys
}

/// Imports what `dex` holds into `store`, checked against `into` (the broker's config).
pub async fn import_dex(dex: &DexStorage, store: &Store, into: &Validated, dry_run: bool) -> anyhow::Result<Report> {
    let now = crate::clock::now();
    let mut report = Report::default();
    let data = match &dex.database {
        DexDatabase::Kubernetes(dump) => {
            report.schema = format!("Kubernetes custom resources (a dump, {})", dump.display());
            read_crd(dump, dex, now)?
        }
        database => {
            let mut db = Dex::open(database).await?;
            let (schema, data) = read_sql(&mut db, dex, now).await;
            db.pool.close().await;
            report.schema = schema?;
            data?
        }
    };
    write(data, store, into, &mut report, dry_run, now).await?;
    Ok(report)
}

/// Reads Dex's `storage/sql` tables (or ent's): which schema it is and what to import.
async fn read_sql(db: &mut Dex, dex: &DexStorage, now: i64) -> (anyhow::Result<String>, anyhow::Result<DexData>) {
    let schema = async {
        let tables = db.tables().await?;
        if tables.contains("migrations") {
            let sql = format!("SELECT CAST(max(num) AS {}) FROM migrations", db.flavor.integer());
            let row = sqlx::query(&sql).fetch_one(&db.pool).await?;
            let version = row.try_get::<Option<i64>, _>(0)?.unwrap_or(0);
            return Ok((false, format!("SQL schema version {version} ({})", db.flavor.release(version))));
        }
        if tables.contains("oauth2clients") {
            return Ok((true, "Dex's ent schema (DEX_ENT_ENABLED=true)".to_string()));
        }
        bail!("no `migrations` table: not a Dex database (or not Dex's storage/sql or ent schema)")
    }
    .await;
    match schema {
        Err(e) => (Err(e), Err(anyhow::anyhow!("not read"))),
        Ok((ent, text)) => {
            db.ent = ent;
            (Ok(text), read_sql_rows(db, dex, now).await)
        }
    }
}

async fn read_sql_rows(db: &Dex, dex: &DexStorage, now: i64) -> anyhow::Result<DexData> {
    use Col::{Bytes, Flag, Json, Text, Time};
    let mut data = DexData::default();
    let columns = [
        ("id", Text),
        ("secret", Text),
        ("redirect_uris", Json),
        ("trusted_peers", Json),
        ("public", Flag),
        ("name", Text),
        ("logo_url", Text),
        ("allowed_connectors", Json),
        ("sso_shared_with", Json),
        ("backchannel_logout_uri", Text),
        ("post_logout_redirect_uris", Json),
        ("refresh_token_lifetime", Text),
    ];
    for row in db.rows("client", &columns).await? {
        data.clients.push(StoredClient {
            id: text(&row, "id"),
            secret: text(&row, "secret"),
            redirect_uris: strings(&row, "redirect_uris"),
            trusted_peers: strings(&row, "trusted_peers"),
            public: flag(&row, "public").unwrap_or(false),
            name: text(&row, "name"),
            logo_url: text(&row, "logo_url"),
            allowed_connectors: strings(&row, "allowed_connectors"),
            sso_shared_with: strings(&row, "sso_shared_with"),
            backchannel_logout_uri: text(&row, "backchannel_logout_uri"),
            post_logout_redirect_uris: strings(&row, "post_logout_redirect_uris"),
            refresh_token_lifetime: text(&row, "refresh_token_lifetime"),
            ..Default::default()
        });
    }
    let columns = [
        ("email", Text),
        ("hash", Bytes),
        ("username", Text),
        ("user_id", Text),
        ("name", Text),
        ("preferred_username", Text),
        ("groups", Json),
        ("email_verified", Flag),
    ];
    for row in db.rows("password", &columns).await? {
        data.passwords.push(StoredPassword {
            email: text(&row, "email").to_lowercase(),
            hash: String::from_utf8_lossy(&bytes(&row, "hash").unwrap_or_default()).into_owned(),
            username: text(&row, "username"),
            user_id: text(&row, "user_id"),
            name: text(&row, "name"),
            preferred_username: text(&row, "preferred_username"),
            groups: strings(&row, "groups"),
            email_verified: flag(&row, "email_verified"),
        });
    }
    let columns = [
        ("id", Text),
        ("type", Text),
        ("name", Text),
        ("config", Bytes),
        ("grant_types", Json),
        ("resource_version", Text),
    ];
    for row in db.rows("connector", &columns).await? {
        data.connectors.push(StoredConnector {
            id: text(&row, "id"),
            kind: text(&row, "type"),
            name: text(&row, "name"),
            config: bytes(&row, "config").and_then(|c| serde_json::from_slice(&c).ok()).unwrap_or_default(),
            grant_types: strings(&row, "grant_types"),
            resource_version: text(&row, "resource_version"),
        });
    }
    let rows = db.rows("keys", &[("id", Text), ("signing_key_pub", Json), ("verification_keys", Json)]).await?;
    if let Some(row) = rows.iter().find(|r| text(r, "id") == "keys") {
        let current = bytes(row, "signing_key_pub").and_then(|b| serde_json::from_slice(&b).ok());
        let verification = bytes(row, "verification_keys")
            .and_then(|b| serde_json::from_slice::<Option<Vec<Verification>>>(&b).ok())
            .flatten()
            .unwrap_or_default();
        data.keys = public_keys(current, verification, dex, now);
    }
    let sessions =
        db.rows("offline_session", &[("user_id", Text), ("conn_id", Text), ("connector_data", Bytes)]).await?;
    let columns = [
        ("id", Text),
        ("client_id", Text),
        ("scopes", Json),
        ("nonce", Text),
        ("connector_id", Text),
        ("claims_user_id", Text),
        ("claims_username", Text),
        ("claims_email", Text),
        ("claims_preferred_username", Text),
        ("claims_email_verified", Flag),
        ("claims_groups", Json),
        ("connector_data", Bytes),
        ("token", Text),
        ("created_at", Time),
        ("last_used", Time),
    ];
    for row in db.rows("refresh_token", &columns).await? {
        let (user_id, connector_id) = (text(&row, "claims_user_id"), text(&row, "connector_id"));
        // The newest connector data of the (user, connector) is the offline session's.
        let session = sessions.iter().find(|s| text(s, "user_id") == user_id && text(s, "conn_id") == connector_id);
        let connector_data = session.and_then(|s| bytes(s, "connector_data")).or_else(|| bytes(&row, "connector_data"));
        data.refresh.push(DexRefresh {
            id: text(&row, "id"),
            token: text(&row, "token"),
            client_id: text(&row, "client_id"),
            scopes: strings(&row, "scopes"),
            nonce: text(&row, "nonce"),
            identity: Identity {
                user_id,
                username: text(&row, "claims_username"),
                preferred_username: Some(text(&row, "claims_preferred_username")).filter(|p| !p.is_empty()),
                email: Some(text(&row, "claims_email")).filter(|e| !e.is_empty()),
                email_verified: flag(&row, "claims_email_verified").unwrap_or(false),
                groups: strings(&row, "claims_groups"),
                connector_data: connector_data.filter(|d| !d.is_empty()),
                policy: None,
            },
            connector_id,
            created: seconds(&row, "created_at"),
            last_used: seconds(&row, "last_used"),
        });
    }
    Ok(data)
}

/// Reads a `kubectl get <Dex's kinds> -o yaml` dump (a `List`, or several YAML documents).
fn read_crd(dump: &Path, dex: &DexStorage, now: i64) -> anyhow::Result<DexData> {
    use serde::Deserialize as _;
    let text = std::fs::read_to_string(dump).with_context(|| format!("cannot read {}", dump.display()))?;
    let mut items = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc).with_context(|| format!("{}: not YAML", dump.display()))?;
        let value: serde_json::Value = serde_json::to_value(value)?;
        match value["kind"].as_str() {
            Some("List") => items.extend(value["items"].as_array().cloned().unwrap_or_default()),
            Some(_) => items.push(value),
            None => {}
        }
    }
    let b64 = |v: &serde_json::Value| v.as_str().and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let time =
        |v: &serde_json::Value| v.as_str().and_then(|t| time_from_rfc3339(t).ok()).filter(|t| *t > 0).unwrap_or(0);
    let mut data = DexData::default();
    let mut sessions: Vec<&serde_json::Value> = Vec::new();
    for item in &items {
        if !item["apiVersion"].as_str().is_some_and(|v| v.starts_with("dex.coreos.com/")) {
            continue;
        }
        match item["kind"].as_str().unwrap_or_default() {
            "OAuth2Client" => data.clients.push(StoredClient {
                id: s(&item["id"]),
                secret: s(&item["secret"]),
                redirect_uris: list(&item["redirectURIs"]),
                trusted_peers: list(&item["trustedPeers"]),
                public: item["public"].as_bool().unwrap_or(false),
                name: s(&item["name"]),
                logo_url: s(&item["logoURL"]),
                allowed_connectors: list(&item["allowedConnectors"]),
                sso_shared_with: list(&item["ssoSharedWith"]),
                backchannel_logout_uri: s(&item["backchannelLogoutURI"]),
                post_logout_redirect_uris: list(&item["postLogoutRedirectURIs"]),
                refresh_token_lifetime: s(&item["refreshTokenLifetime"]),
                ..Default::default()
            }),
            "Password" => data.passwords.push(StoredPassword {
                email: s(&item["email"]).to_lowercase(),
                hash: b64(&item["hash"]).map(|h| String::from_utf8_lossy(&h).into_owned()).unwrap_or_default(),
                username: s(&item["username"]),
                user_id: s(&item["userID"]),
                name: s(&item["name"]),
                preferred_username: s(&item["preferredUsername"]),
                groups: list(&item["groups"]),
                email_verified: item["emailVerified"].as_bool(),
            }),
            "Connector" => data.connectors.push(StoredConnector {
                id: s(&item["id"]),
                kind: s(&item["type"]),
                name: s(&item["name"]),
                config: b64(&item["config"]).and_then(|c| serde_json::from_slice(&c).ok()).unwrap_or_default(),
                grant_types: list(&item["grantTypes"]),
                // On Kubernetes the version is the object's (Dex's "+1" is discarded).
                resource_version: s(&item["metadata"]["resourceVersion"]),
            }),
            "SigningKey" => {
                let verification: Vec<Verification> =
                    serde_json::from_value(item["verificationKeys"].clone()).unwrap_or_default();
                data.keys.extend(public_keys(Some(item["signingKeyPub"].clone()), verification, dex, now));
            }
            "OfflineSessions" => sessions.push(item),
            "RefreshToken" => {
                let claims = &item["claims"];
                data.refresh.push(DexRefresh {
                    id: s(&item["metadata"]["name"]),
                    token: s(&item["token"]),
                    client_id: s(&item["clientID"]),
                    scopes: list(&item["scopes"]),
                    nonce: s(&item["nonce"]),
                    connector_id: s(&item["connectorID"]),
                    identity: Identity {
                        user_id: s(&claims["userID"]),
                        username: s(&claims["username"]),
                        preferred_username: Some(s(&claims["preferredUsername"])).filter(|p| !p.is_empty()),
                        email: Some(s(&claims["email"])).filter(|e| !e.is_empty()),
                        email_verified: claims["emailVerified"].as_bool().unwrap_or(false),
                        groups: list(&claims["groups"]),
                        connector_data: b64(&item["connectorData"]).filter(|d| !d.is_empty()),
                        policy: None,
                    },
                    created: time(&item["CreatedAt"]),
                    last_used: time(&item["LastUsed"]),
                });
            }
            _ => {}
        }
    }
    for r in &mut data.refresh {
        let session =
            sessions.iter().find(|o| s(&o["userID"]) == r.identity.user_id && s(&o["connID"]) == r.connector_id);
        if let Some(found) = session.and_then(|o| b64(&o["connectorData"])).filter(|d| !d.is_empty()) {
            r.identity.connector_data = Some(found);
        }
    }
    Ok(data)
}

async fn create<T: crate::storage::api::ApiObject>(
    store: &Store,
    value: &T,
    what: String,
    report: &mut Report,
    dry_run: bool,
    now: i64,
) -> anyhow::Result<()> {
    if store.api_get::<T>(&value.key(), now).await?.is_some() {
        report.existing(what);
    } else if dry_run || store.api_create(value, now).await? {
        report.imported(what);
    } else {
        report.existing(what);
    }
    Ok(())
}

/// Writes what was read into our storage, each object checked as it would be if created now.
async fn write(
    data: DexData,
    store: &Store,
    into: &Validated,
    report: &mut Report,
    dry_run: bool,
    now: i64,
) -> anyhow::Result<()> {
    for client in data.clients {
        let what = format!("client {:?}", client.id);
        // A public client's secret means nothing (Dex never checks it): drop it rather than refuse.
        let client =
            StoredClient { secret: if client.public { String::new() } else { client.secret.clone() }, ..client };
        match client.check() {
            Ok(_) => create(store, &client, what, report, dry_run, now).await?,
            Err(e) => report.skipped(what, e),
        }
    }
    for password in data.passwords {
        let what = format!("password of {:?}", password.email);
        // Dex's API checked the cost when the hash was made; a config-era hash may be cheaper,
        // which the password form accepts as the file's users: only the form is checked here.
        match crate::config::stored::check_hash(&password.hash) {
            Err(e) if !e.starts_with("given hash cost") => report.skipped(what, e),
            _ if password.user_id.is_empty() => report.skipped(what, "no user id"),
            _ => create(store, &password, what, report, dry_run, now).await?,
        }
    }
    for connector in data.connectors {
        let what = format!("connector {:?} (type {})", connector.id, connector.kind);
        if into.is_static_connector(&connector.id) {
            report.skipped(what, "the config file has a connector with this id, which wins");
            continue;
        }
        match connector.check(into) {
            Ok(_) => create(store, &connector, what, report, dry_run, now).await?,
            Err(e) => report.skipped(what, e),
        }
    }
    keys(data.keys, store, into, report, dry_run, now).await?;
    for r in data.refresh {
        refresh_token(r, store, into, report, dry_run, now).await?;
    }
    Ok(())
}

/// Dex's public keys join our JWKS (never its private key: our own key signs from now on).
async fn keys(
    found: Vec<PublicKey>,
    store: &Store,
    into: &Validated,
    report: &mut Report,
    dry_run: bool,
    now: i64,
) -> anyhow::Result<()> {
    if found.is_empty() {
        return Ok(());
    }
    // Our key set, made now if the broker never ran on this storage.
    let ours =
        crate::keys::Keys::new(store.clone(), into.signing_algorithm, into.expiry.signing_keys, into.expiry.id_tokens)
            .with_access_algorithm(into.access_token_algorithm);
    if !dry_run {
        ours.refresh(now).await.context("cannot load or create our signing keys")?;
    }
    for _ in 0..5 {
        let existing = store.keys(now).await?;
        let have = |kid: &str| existing.as_ref().is_some_and(|(s, _)| s.previous.iter().any(|k| k.kid == kid));
        let new: Vec<&PublicKey> = found.iter().filter(|k| !have(&k.kid)).collect();
        for k in found.iter().filter(|k| have(&k.kid)) {
            report.existing(format!("Dex signing key {}", k.kid));
        }
        let added = |report: &mut Report, new: &[&PublicKey]| {
            for k in new {
                report.imported(format!("Dex signing key {} (kept in our JWKS until its tokens expire)", k.kid));
            }
        };
        if new.is_empty() {
            return Ok(());
        }
        // A dry run on fresh storage has no key set to add to.
        let Some((mut set, version)) = existing else {
            added(report, &new);
            return Ok(());
        };
        set.previous.extend(new.iter().map(|k| (*k).clone()));
        if dry_run || store.rotate_keys(&set, version, now).await? {
            added(report, &new);
            return Ok(());
        }
    }
    Err(StorageError::Unavailable("the key set kept changing; retry".into()).into())
}

/// Files one Dex refresh token under the hash of the string its app holds.
async fn refresh_token(
    r: DexRefresh,
    store: &Store,
    into: &Validated,
    report: &mut Report,
    dry_run: bool,
    now: i64,
) -> anyhow::Result<()> {
    let lifetime = crate::oidc::token::RefreshLifetime {
        absolute: crate::clock::secs(into.expiry.refresh.absolute_lifetime),
        idle: crate::clock::secs(into.expiry.refresh.valid_if_not_used_for),
    };
    let what = format!("refresh token {:?} of client {:?}", r.id, r.client_id);
    if !into.clients.contains_key(r.client_id.as_str())
        && store.api_get::<StoredClient>(&r.client_id, now).await?.is_none()
    {
        report.skipped(what, format!("client {:?} is neither in the config nor imported", r.client_id));
        return Ok(());
    }
    // Dex's zero time (schema version 1 rows, or unset) counts from now.
    let created = Some(r.created).filter(|s| *s > 0).unwrap_or(now);
    let last_used = Some(r.last_used).filter(|s| *s > 0).unwrap_or(now);
    let expires_at = lifetime.expiry(created, last_used);
    if expires_at <= now {
        report.skipped(what, "expired under this broker's expiry.refreshTokens");
        return Ok(());
    }
    let grant = format!("dex-{}", r.id);
    let key = crate::web::token_key(&dex_refresh_token(&r.id, &r.token));
    if store.refresh_token(&key, now).await?.is_some() || store.grant_live(&grant, now).await? {
        report.existing(what);
        return Ok(());
    }
    if dry_run {
        report.imported(what);
        return Ok(());
    }
    let sub = crate::oidc::sub::encode(&r.identity.user_id, &r.connector_id);
    let record = RefreshToken {
        family: grant.clone(),
        client_id: r.client_id.as_str().into(),
        scopes: r.scopes,
        nonce: Some(r.nonce).filter(|n| !n.is_empty()),
        connector_id: r.connector_id.as_str().into(),
        identity: r.identity,
        auth_time: created,
        created_at: created,
        family_created_at: created,
        last_used,
        rotated_at: None,
        successor: None,
        successor_sealed: None,
        session: None,
        expires_at,
    };
    let grant_expiry = (created + lifetime.absolute).max(expires_at);
    store.create_grant(&grant, None, grant_expiry, now).await?;
    let entry = UserGrant { client_id: r.client_id.clone(), created_at: created };
    store.file_user_grant(&sub, &grant, &entry, grant_expiry, now).await?;
    store.create_refresh_token(&key, &record, now).await?;
    report.imported(what);
    Ok(())
}

/// Unix seconds of an RFC 3339 time as Go writes it (`2024-05-01T12:34:56.123456789Z`).
fn time_from_rfc3339(text: &str) -> Result<i64, ()> {
    // Dates in Dex's JSON are UTC ("Z") or carry an offset; minutes precision is enough here.
    let (date, time) = text.split_once('T').ok_or(())?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().map_err(|_| ()));
    let (y, m, day) = (d.next().ok_or(())??, d.next().ok_or(())??, d.next().ok_or(())??);
    let hms = &time[..8.min(time.len())];
    let mut t = hms.split(':').map(|p| p.parse::<i64>().map_err(|_| ()));
    let (h, min, s) = (t.next().ok_or(())??, t.next().ok_or(())??, t.next().ok_or(())??);
    let offset = match time.rfind(['+', '-']).filter(|_| !time.ends_with('Z')) {
        Some(i) => {
            let sign = if time.as_bytes()[i] == b'-' { -1 } else { 1 };
            let (oh, om) = time[i + 1..].split_once(':').ok_or(())?;
            sign * (oh.parse::<i64>().map_err(|_| ())? * 3600 + om.parse::<i64>().map_err(|_| ())? * 60)
        }
        None => 0,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + h * 3600 + min * 60 + s - offset)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dex_refresh_tokens_encode_as_dex_does() {
        // 0x0A len id 0x12 len token, base64url without padding.
        let token = super::dex_refresh_token("ab", "cd");
        assert_eq!(token, "CgJhYhICY2Q");
        assert_eq!(super::dex_refresh_token("legacy", ""), "legacy");
    }

    #[test]
    fn go_times_read_as_unix_seconds() {
        assert_eq!(super::time_from_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(super::time_from_rfc3339("2024-05-01T12:34:56.123456789Z"), Ok(1_714_566_896));
        assert_eq!(super::time_from_rfc3339("2024-05-01T14:34:56+02:00"), Ok(1_714_566_896));
    }
}
