//! `portcullis import-dex`: a Dex SQLite database, built here with Dex's schema (version 13,
//! Dex v2.45) and rows encoded as Dex encodes them, imports into our storage; afterwards the
//! refresh token Dex handed an app redeems unchanged, an ID token Dex signed verifies against
//! our JWKS, the imported client and password log in, and a second import changes nothing.

use base64::Engine as _;
use portcullis_tests::{TestBroker, flow};
use reqwest::StatusCode;
use serde_json::Value;

/// Dex's `storage/sql` migrations (§2.3), written once in PostgreSQL's syntax as Dex writes them
/// and translated per flavor (§2.1), reduced to the tables the importer reads (`client`,
/// `password`, `connector`, `keys`, `refresh_token`, `offline_session`): each entry is the
/// migration's statements, `mysql_only` for MySQL's extra one, and `level`, the PostgreSQL/SQLite
/// number of the schema it leaves. Migrations that touch only other tables keep their number
/// with no statement here.
struct Migration {
    level: u32,
    mysql_only: bool,
    statements: &'static [&'static str],
}

const DEX_MIGRATIONS: &[Migration] = &[
    Migration { level: 1, mysql_only: false, statements: &[
        "create table client (id text not null primary key, secret text not null, redirect_uris bytea not null,
            trusted_peers bytea not null, public boolean not null, name text not null, logo_url text not null)",
        "create table refresh_token (id text not null primary key, client_id text not null, scopes bytea not null,
            nonce text not null, claims_user_id text not null, claims_username text not null, claims_email text not null,
            claims_email_verified boolean not null, claims_groups bytea not null, connector_id text not null,
            connector_data bytea)",
        "create table password (email text not null primary key, hash bytea not null, username text not null,
            user_id text not null)",
        "create table keys (id text not null primary key, verification_keys bytea not null, signing_key bytea not null,
            signing_key_pub bytea not null, next_rotation timestamptz not null)",
    ] },
    Migration { level: 2, mysql_only: false, statements: &[
        "alter table refresh_token add column token text not null default ''",
        "alter table refresh_token add column created_at timestamptz not null default '0001-01-01 00:00:00 UTC'",
        "alter table refresh_token add column last_used timestamptz not null default '0001-01-01 00:00:00 UTC'",
    ] },
    Migration { level: 3, mysql_only: false, statements: &[
        "create table offline_session (user_id text not null, conn_id text not null, refresh bytea not null,
            primary key (user_id, conn_id))",
    ] },
    Migration { level: 4, mysql_only: false, statements: &[
        "create table connector (id text not null primary key, type text not null, name text not null,
            resource_version text not null, config bytea)",
    ] },
    Migration { level: 5, mysql_only: false, statements: &[
        "alter table refresh_token add column claims_preferred_username text not null default ''",
    ] },
    Migration { level: 6, mysql_only: false, statements: &["alter table offline_session add column connector_data bytea"] },
    // MySQL's auth_request.state to varchar(4096).
    Migration { level: 6, mysql_only: true, statements: &[] },
    // device_request and device_token; auth_request/auth_code PKCE columns.
    Migration { level: 7, mysql_only: false, statements: &[] },
    Migration { level: 8, mysql_only: false, statements: &[] },
    Migration { level: 9, mysql_only: false, statements: &[
        "alter table refresh_token add column obsolete_token text default ''",
    ] },
    // device_token PKCE columns; auth_request.hmac_key.
    Migration { level: 10, mysql_only: false, statements: &[] },
    Migration { level: 11, mysql_only: false, statements: &[] },
    Migration { level: 12, mysql_only: false, statements: &[
        "alter table password add column preferred_username text not null default ''",
        "{groups column}",
    ] },
    Migration { level: 13, mysql_only: false, statements: &[
        "alter table password add column name text not null default ''",
        "alter table password add column email_verified boolean",
    ] },
];

/// The schema levels Dex's releases leave (§2.2): v2.4–v2.19 at 4 … v2.45 at 13.
const RELEASED_LEVELS: &[u32] = &[4, 5, 6, 7, 8, 9, 10, 11, 13];

/// One of the SQL dialects Dex writes (§2.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavor {
    Sqlite,
    Postgres,
    Mysql,
}

impl Flavor {
    /// A migration statement in this flavor, as Dex's translation makes it.
    fn ddl(self, sql: &str) -> Vec<String> {
        if sql == "{groups column}" {
            return match self {
                Flavor::Postgres => {
                    vec![
                        "alter table password add column groups bytea not null default convert_to('[]', 'UTF8')".into(),
                    ]
                }
                Flavor::Sqlite => vec!["alter table password add column groups blob not null default '[]'".into()],
                Flavor::Mysql => vec![
                    "alter table password add column `groups` blob".into(),
                    "update password set `groups` = '[]'".into(),
                    "alter table password modify column `groups` blob not null".into(),
                ],
            };
        }
        let words = |sql: &str, from: &str, to: &str| {
            sql.split_inclusive(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .map(|piece| {
                    let word = piece.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_');
                    if word == from { format!("{to}{}", &piece[word.len()..]) } else { piece.to_string() }
                })
                .collect::<String>()
        };
        let out = match self {
            Flavor::Postgres => sql.to_string(),
            Flavor::Sqlite => {
                let out = words(sql, "bytea", "blob");
                let out = words(&out, "boolean", "integer");
                let out = words(&out, "jsonb", "json");
                words(&out, "timestamptz", "timestamp")
            }
            Flavor::Mysql => {
                let out = words(sql, "bytea", "blob");
                let out = words(&out, "jsonb", "json");
                let out = words(&out, "timestamptz", "datetime(3)");
                let out = words(&out, "text", "varchar(384)");
                let out = words(&out, "keys", "`keys`");
                words(&out, "groups", "`groups`").replace("0001-01-01 00:00:00 UTC", "1000-01-01 00:00:00")
            }
        };
        vec![out]
    }

    /// `sql` with this flavor's value forms: `{b'…'}` a byte string, `{t}`/`{f}` booleans,
    /// `{jan1}` and `{hour_ago}` times as Dex's driver writes them (UTC).
    fn sql(self, sql: &str) -> String {
        let (t, f, jan1, hour_ago) = match self {
            Flavor::Sqlite => {
                ("1", "0", "'2026-01-01 00:00:00+00:00'", "datetime('now', '-1 hour') || '.123456789+00:00'")
            }
            Flavor::Postgres => ("true", "false", "'2026-01-01 00:00:00+00:00'", "now() - interval '1 hour'"),
            Flavor::Mysql => ("true", "false", "'2026-01-01 00:00:00'", "utc_timestamp(3) - interval 1 hour"),
        };
        let mut out = sql.replace("{t}", t).replace("{f}", f).replace("{jan1}", jan1).replace("{hour_ago}", hour_ago);
        if self == Flavor::Mysql {
            out = out.replace(" keys ", " `keys` ");
        }
        // {j'…'}: a JSON value (ent's JSON columns; MariaDB's JSON is text).
        while let Some(at) = out.find("{j'") {
            let end = at + 3 + out[at + 3..].find("'}").unwrap();
            let value = out[at + 3..end].to_string();
            let expr = match self {
                Flavor::Postgres => format!("CAST('{value}' AS jsonb)"),
                Flavor::Sqlite | Flavor::Mysql => format!("'{value}'"),
            };
            out.replace_range(at..end + 2, &expr);
        }
        // {b'…'}: a byte string (no quote inside).
        while let Some(at) = out.find("{b'") {
            let end = at + 3 + out[at + 3..].find("'}").unwrap();
            let value = out[at + 3..end].to_string();
            let expr = match self {
                Flavor::Sqlite => format!("CAST('{value}' AS BLOB)"),
                Flavor::Postgres => format!("convert_to('{value}', 'UTF8')"),
                Flavor::Mysql => format!("CAST('{value}' AS BINARY)"),
            };
            out.replace_range(at..end + 2, &expr);
        }
        out
    }

    /// The `migrations` number this flavor records for schema `level` (MySQL counts one more from 7).
    fn number(self, level: u32) -> usize {
        DEX_MIGRATIONS.iter().filter(|m| m.level <= level && (self == Flavor::Mysql || !m.mysql_only)).count()
    }
}

const ADMIN: &str = "08a8684b-db88-4b73-90a9-3cd1661f5466";
const HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";
const REFRESH_ID: &str = "k5y3hmd2bvdl2pidahdbrzsgf";
const REFRESH_SECRET: &str = "tnqlkq7r2bxgu5yafdrt2xqwm";

/// The refresh token as Dex's client holds it, encoded by hand: base64url(0x0A len id 0x12 len token).
fn dex_held_token() -> String {
    let mut bytes = vec![0x0a, REFRESH_ID.len() as u8];
    bytes.extend_from_slice(REFRESH_ID.as_bytes());
    bytes.extend([0x12, REFRESH_SECRET.len() as u8]);
    bytes.extend_from_slice(REFRESH_SECRET.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A Dex database at `url`, migrated as Dex migrates to schema `level`, with an API client (and
/// one whose redirect URI is not a URL), an API password, a stored connector, Dex's signing key,
/// and a refresh token of example-app for the admin user, written as Dex writes them (only the
/// columns that schema has).
async fn fill_dex_database(url: &str, flavor: Flavor, level: u32, key: &portcullis::storage::StoredKey) {
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(url).await.unwrap();
    let jwk = serde_json::to_string(&key.jwk).unwrap();
    let mut statements: Vec<String> =
        flavor.ddl("create table migrations (num integer not null, at timestamptz not null)");
    for m in DEX_MIGRATIONS.iter().filter(|m| m.level <= level && (flavor == Flavor::Mysql || !m.mysql_only)) {
        statements.extend(m.statements.iter().flat_map(|s| flavor.ddl(s)));
    }
    statements.extend((1..=flavor.number(level)).map(|n| format!("INSERT INTO migrations VALUES ({n}, {{jan1}})")));
    let (password_columns, password_values) = match level {
        ..=11 => ("", String::new()),
        12 => (", preferred_username, groups", r#", 'jd', {b'["admins"]'}"#.to_string()),
        _ => (
            ", preferred_username, groups, name, email_verified",
            r#", 'jd', {b'["admins"]'}, 'Jane Doe', NULL"#.to_string(),
        ),
    };
    let password_columns = if flavor == Flavor::Mysql {
        password_columns.replace("groups", "`groups`")
    } else {
        password_columns.to_string()
    };
    let (pref_column, pref_value) = if level >= 5 { (", claims_preferred_username", ", 'admin'") } else { ("", "") };
    statements.extend([
        r#"INSERT INTO client VALUES ('dex-api-app', 'dex-api-secret', {b'["http://127.0.0.1:5555/imported"]'}, {b'null'}, {f}, 'Imported App', '')"#.to_string(),
        r#"INSERT INTO client VALUES ('bad-app', 's', {b'["not a url"]'}, {b'null'}, {f}, 'Bad', '')"#.to_string(),
        "INSERT INTO connector (id, type, name, resource_version, config) VALUES ('dex-mock', 'mockCallback', 'Dex mock', '3', {b'{}'})".to_string(),
        format!("INSERT INTO offline_session (user_id, conn_id, refresh) VALUES ('{ADMIN}', 'local', {{b'{{}}'}})"),
        format!(
            r#"INSERT INTO password (email, hash, username, user_id{password_columns})
             VALUES ('jane@example.com', {{b'{HASH}'}}, 'jane', 'jane-1'{password_values})"#
        ),
        format!("INSERT INTO keys VALUES ('keys', {{b'[]'}}, {{b'null'}}, {{b'{jwk}'}}, {{jan1}})"),
        format!(
            r#"INSERT INTO refresh_token (id, client_id, scopes, nonce, claims_user_id, claims_username, claims_email,
                claims_email_verified, claims_groups, connector_id, token, created_at, last_used{pref_column})
             VALUES ('{REFRESH_ID}', 'example-app', {{b'["openid","email","offline_access"]'}}, 'n-1', '{ADMIN}', 'admin',
                'admin@example.com', {{t}}, {{b'null'}}, 'local', '{REFRESH_SECRET}', {{hour_ago}}, {{hour_ago}}{pref_value})"#
        ),
    ]);
    for statement in statements {
        let sql = flavor.sql(&statement);
        sqlx::query(&sql).execute(&db).await.unwrap_or_else(|e| panic!("{flavor:?} level {level}: {sql}: {e}"));
    }
    db.close().await;
}

/// Dex's ent schema (`DEX_ENT_ENABLED=true`), as Dex's `storage/ent/schema` declares it: plural
/// table names, JSON columns (`jsonb` here, each flavor's JSON type), no `migrations` table.
const DEX_ENT_SCHEMA: &[&str] = &[
    "create table oauth2clients (id text not null primary key, secret text not null, redirect_uris jsonb not null,
        trusted_peers jsonb not null, public boolean not null, name text not null, logo_url text not null,
        allowed_connectors jsonb, mfa_chain jsonb, post_logout_redirect_uris jsonb, sso_shared_with jsonb,
        backchannel_logout_uri text, refresh_token_lifetime text, client_credentials_claims jsonb)",
    "create table passwords (email text not null primary key, hash bytea not null, username text not null,
        name text not null, preferred_username text not null, email_verified boolean not null, user_id text not null,
        groups jsonb)",
    "create table connectors (id text not null primary key, type text not null, name text not null,
        resource_version text not null, config bytea not null, grant_types jsonb)",
    "create table keys (id text not null primary key, verification_keys jsonb not null, signing_key jsonb not null,
        signing_key_pub jsonb not null, next_rotation timestamptz not null)",
    "create table refresh_tokens (id text not null primary key, client_id text not null, scopes jsonb, nonce text not null,
        claims_user_id text not null, claims_username text not null, claims_email text not null,
        claims_email_verified boolean not null, claims_groups jsonb, claims_preferred_username text not null,
        connector_id text not null, connector_data bytea, token text not null, obsolete_token text not null,
        created_at timestamptz not null, last_used timestamptz not null)",
    "create table offline_sessions (id text not null primary key, user_id text not null, conn_id text not null,
        refresh bytea not null, connector_data bytea)",
];

/// The objects of `fill_dex_database` in Dex's ent schema.
async fn fill_dex_ent_database(url: &str, flavor: Flavor, key: &portcullis::storage::StoredKey) {
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(url).await.unwrap();
    let jwk = serde_json::to_string(&key.jwk).unwrap();
    let mut statements: Vec<String> = DEX_ENT_SCHEMA.iter().flat_map(|s| flavor.ddl(s)).collect();
    let groups = if flavor == Flavor::Mysql { "`groups`" } else { "groups" };
    statements.extend([
        r#"INSERT INTO oauth2clients (id, secret, redirect_uris, trusted_peers, public, name, logo_url)
           VALUES ('dex-api-app', 'dex-api-secret', {j'["http://127.0.0.1:5555/imported"]'}, {j'null'}, {f}, 'Imported App', '')"#.to_string(),
        r#"INSERT INTO oauth2clients (id, secret, redirect_uris, trusted_peers, public, name, logo_url)
           VALUES ('bad-app', 's', {j'["not a url"]'}, {j'null'}, {f}, 'Bad', '')"#.to_string(),
        "INSERT INTO connectors (id, type, name, resource_version, config) VALUES ('dex-mock', 'mockCallback', 'Dex mock', '3', {b'{}'})".to_string(),
        format!("INSERT INTO offline_sessions VALUES ('0a1b', '{ADMIN}', 'local', {{b'{{}}'}}, NULL)"),
        format!(
            r#"INSERT INTO passwords (email, hash, username, name, preferred_username, email_verified, user_id, {groups})
             VALUES ('jane@example.com', {{b'{HASH}'}}, 'jane', 'Jane Doe', 'jd', {{f}}, 'jane-1', {{j'["admins"]'}})"#
        ),
        format!("INSERT INTO keys VALUES ('keys', {{j'[]'}}, {{j'{{}}'}}, {{j'{jwk}'}}, {{jan1}})"),
        format!(
            r#"INSERT INTO refresh_tokens (id, client_id, scopes, nonce, claims_user_id, claims_username, claims_email,
                claims_email_verified, claims_groups, claims_preferred_username, connector_id, token, obsolete_token,
                created_at, last_used)
             VALUES ('{REFRESH_ID}', 'example-app', {{j'["openid","email","offline_access"]'}}, 'n-1', '{ADMIN}', 'admin',
                'admin@example.com', {{t}}, {{j'null'}}, 'admin', 'local', '{REFRESH_SECRET}', '', {{hour_ago}}, {{hour_ago}})"#
        ),
    ]);
    for statement in statements {
        let sql = flavor.sql(&statement);
        sqlx::query(&sql).execute(&db).await.unwrap_or_else(|e| panic!("{flavor:?} ent: {sql}: {e}"));
    }
    db.close().await;
}

/// Dex's ent schema imports on each SQL Dex writes it to.
#[tokio::test]
async fn dex_ent_schema_imports_and_its_tokens_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dex-ent.db");
    std::fs::File::create(&path).unwrap();
    let pg = portcullis_tests::TestDatabase::create().await;
    let mysql = portcullis_tests::TestMysqlDatabase::create().await;
    use portcullis::migrate::DexDatabase;
    use portcullis::secret::Secret;
    let databases = [
        (format!("sqlite://{}", path.display()), Flavor::Sqlite, DexDatabase::Sqlite(path.clone())),
        (pg.url(), Flavor::Postgres, DexDatabase::Postgres(Secret::new(pg.url()))),
        (mysql.url(), Flavor::Mysql, DexDatabase::Mysql(Secret::new(mysql.url()))),
    ];
    for (url, flavor, database) in databases {
        let dex_key = portcullis::keys::new_key(portcullis::config::SigningAlgorithm::Es256).unwrap();
        fill_dex_ent_database(&url, flavor, &dex_key).await;
        import_and_use(database, &dex_key, "Dex's ent schema", 13).await;
    }
}

/// Every schema a Dex release leaves in SQLite (v2.4 to v2.45) imports, and what its users and
/// apps hold keeps working.
#[tokio::test]
async fn every_released_dex_sqlite_schema_imports_and_its_tokens_keep_working() {
    for &level in RELEASED_LEVELS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dex.db");
        std::fs::File::create(&path).unwrap();
        let database = portcullis::migrate::DexDatabase::Sqlite(path.clone());
        let dex_key = portcullis::keys::new_key(portcullis::config::SigningAlgorithm::Es256).unwrap();
        fill_dex_database(&format!("sqlite://{}", path.display()), Flavor::Sqlite, level, &dex_key).await;
        import_and_use(database, &dex_key, &format!("SQL schema version {level} ("), level).await;
    }
}

#[tokio::test]
async fn a_dex_postgres_database_imports_and_its_tokens_keep_working() {
    let db = portcullis_tests::TestDatabase::create().await;
    let database = portcullis::migrate::DexDatabase::Postgres(portcullis::secret::Secret::new(db.url()));
    let dex_key = portcullis::keys::new_key(portcullis::config::SigningAlgorithm::Es256).unwrap();
    fill_dex_database(&db.url(), Flavor::Postgres, 13, &dex_key).await;
    import_and_use(database, &dex_key, "SQL schema version 13 (Dex v2.45)", 13).await;
}

/// MySQL / MariaDB at Dex v2.45's schema, which MySQL numbers 14.
#[tokio::test]
async fn a_dex_mysql_database_imports_and_its_tokens_keep_working() {
    let db = portcullis_tests::TestMysqlDatabase::create().await;
    let database = portcullis::migrate::DexDatabase::Mysql(portcullis::secret::Secret::new(db.url()));
    let dex_key = portcullis::keys::new_key(portcullis::config::SigningAlgorithm::Es256).unwrap();
    fill_dex_database(&db.url(), Flavor::Mysql, 13, &dex_key).await;
    import_and_use(database, &dex_key, "SQL schema version 14 (Dex v2.45)", 13).await;
}

/// The same objects as Kubernetes custom resources, in a `kubectl get … -o yaml` dump: `[]byte`
/// fields base64, times RFC 3339, the refresh token's id its object name (Dex's §5).
#[tokio::test]
async fn a_kubernetes_dump_imports_and_its_tokens_keep_working() {
    let dex_key = portcullis::keys::new_key(portcullis::config::SigningAlgorithm::Es256).unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let hour_ago = {
        let t = portcullis::clock::now() - 3600;
        let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
        // Civil date from days (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.123456789Z", secs / 3600, secs % 3600 / 60, secs % 60)
    };
    let jwk = serde_json::to_string(&dex_key.jwk).unwrap();
    let dump = format!(
        r#"apiVersion: v1
kind: List
items:
- apiVersion: dex.coreos.com/v1
  kind: OAuth2Client
  metadata: {{name: mrswsljqmfyhi2lbobycd4xq3ujgqxwn, namespace: dex}}
  id: dex-api-app
  secret: dex-api-secret
  redirectURIs: ["http://127.0.0.1:5555/imported"]
  public: false
  name: Imported App
- apiVersion: dex.coreos.com/v1
  kind: OAuth2Client
  metadata: {{name: bad, namespace: dex}}
  id: bad-app
  secret: s
  redirectURIs: ["not a url"]
  public: false
  name: Bad
- apiVersion: dex.coreos.com/v1
  kind: Password
  metadata: {{name: jane, namespace: dex}}
  email: jane@example.com
  hash: {hash}
  username: jane
  userID: jane-1
  name: Jane Doe
  preferredUsername: jd
  groups: [admins]
- apiVersion: dex.coreos.com/v1
  kind: Connector
  metadata: {{name: dex-mock, namespace: dex, resourceVersion: "4711"}}
  id: dex-mock
  type: mockCallback
  name: Dex mock
  config: {config}
- apiVersion: dex.coreos.com/v1
  kind: SigningKey
  metadata: {{name: openid-connect-keys, namespace: dex}}
  signingKeyPub: {jwk}
  verificationKeys: []
  nextRotation: "2026-01-01T00:00:00Z"
- apiVersion: dex.coreos.com/v1
  kind: OfflineSessions
  metadata: {{name: olvwklepe43wg, namespace: dex}}
  userID: {ADMIN}
  connID: local
  refresh: {{}}
- apiVersion: dex.coreos.com/v1
  kind: RefreshToken
  metadata: {{name: {REFRESH_ID}, namespace: dex}}
  clientID: example-app
  scopes: [openid, email, offline_access]
  token: {REFRESH_SECRET}
  nonce: n-1
  connectorID: local
  claims: {{userID: {ADMIN}, username: admin, preferredUsername: admin, email: admin@example.com, emailVerified: true}}
  CreatedAt: "{hour_ago}"
  LastUsed: "{hour_ago}"
"#,
        hash = b64(HASH),
        config = b64("{}"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dex-objects.yaml");
    std::fs::write(&path, dump).unwrap();
    import_and_use(portcullis::migrate::DexDatabase::Kubernetes(path), &dex_key, "Kubernetes custom resources", 13)
        .await;
}

/// Imports Dex's `database` (filled as the tests above fill it, Dex's key `dex_key` signing), and
/// checks that what Dex's users and apps hold works.
/// `level` is the Dex schema it came from: passwords have `preferred_username` and `groups`
/// from 12, `name` from 13.
async fn import_and_use(
    database: portcullis::migrate::DexDatabase,
    dex_key: &portcullis::storage::StoredKey,
    schema: &str,
    level: u32,
) {
    let dex = portcullis::migrate::DexStorage { database, id_tokens: std::time::Duration::from_secs(24 * 3600) };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let yaml = portcullis_tests::base_config(&issuer, "").replacen(
        "oauth2:\n  skipApprovalScreen: false\n",
        "oauth2:\n  skipApprovalScreen: false\n  grantTypes: [authorization_code, refresh_token, password]\n  passwordConnector: local\n",
        1,
    );
    let config = portcullis_tests::config_from_yaml(
        &yaml.replace("{mock}", &portcullis_tests::plugin("mock").display().to_string()),
    );
    let backend: std::sync::Arc<dyn portcullis::storage::Backend> =
        std::sync::Arc::new(portcullis::storage::MemoryBackend::new());
    let store = portcullis::storage::Store::new(backend.clone());

    // A dry run reports and writes nothing.
    let dry = portcullis::migrate::import_dex(&dex, &store, &config, true).await.unwrap();
    assert!(dry.schema.starts_with(schema), "{}", dry.schema);
    assert!(dry.imported >= 5, "{dry}");
    assert!(store.keys(0).await.unwrap().is_none() && store.api_version(0).await.unwrap() == 0, "dry run wrote");

    let report = portcullis::migrate::import_dex(&dex, &store, &config, false).await.unwrap();
    let text = report.to_string();
    for line in [
        "client \"dex-api-app\"",
        "password of \"jane@example.com\"",
        "connector \"dex-mock\"",
        "Dex signing key",
        "refresh token",
    ] {
        assert!(text.contains(&format!("imported  {line}")), "{line} in\n{text}");
    }
    assert!(text.contains("skipped   client \"bad-app\""), "{text}");
    let again = portcullis::migrate::import_dex(&dex, &store, &config, false).await.unwrap();
    assert_eq!(again.imported, 0, "idempotent:\n{again}");

    let b = TestBroker::builder().listener(listener).issuer(&issuer).config(config).backend(backend).start().await;
    assert!(b.broker.generations.current().registry.get("dex-mock").is_some(), "the stored connector serves");

    // The refresh token example-app holds from Dex redeems as it is, and rotates into ours.
    let response = flow::refresh(&b, &dex_held_token()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_ne!(body["refresh_token"].as_str(), Some(dex_held_token().as_str()));
    let claims = flow::claims(body["id_token"].as_str().unwrap());
    assert_eq!(claims["email"], "admin@example.com");
    assert_eq!(claims["sub"], portcullis::oidc::sub::encode(ADMIN, "local"), "the same sub as Dex's tokens had");
    // A retry within the reuse interval gets the same successor, as for our own tokens.
    let retry: Value = flow::refresh(&b, &dex_held_token()).await.json().await.unwrap();
    assert_eq!(retry["refresh_token"], body["refresh_token"], "{retry}");

    // An ID token Dex signed verifies against our JWKS.
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(b.url("/keys")).await.unwrap().json().await.unwrap();
    let jwk = jwks.find(&dex_key.kid).expect("Dex's key in our JWKS");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(dex_key.kid.clone());
    let exp = portcullis::clock::now() + 3600;
    let dex_token = jsonwebtoken::encode(
        &header,
        &serde_json::json!({"iss": issuer, "aud": "example-app", "sub": "x", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_ec_pem(dex_key.private_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["example-app"]);
    jsonwebtoken::decode::<Value>(&dex_token, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap();
    // An access token Dex issued before the import (an ID token in shape, no `typ`, as Dex
    // signs) still works at userinfo and introspection until it expires, as it did at Dex.
    let dex_signed = |typ: Option<&str>, claims: Value| {
        let mut header = header.clone();
        header.typ = typ.map(str::to_string);
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ec_pem(dex_key.private_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let claims = serde_json::json!({"iss": issuer, "aud": "example-app", "sub": "dex-sub", "exp": exp,
        "iat": exp - 3600, "email": "jane@example.com", "email_verified": true, "preferred_username": "jd"});
    let dex_access = dex_signed(None, claims.clone());
    let userinfo = reqwest::Client::new().get(b.url("/userinfo")).bearer_auth(&dex_access).send().await.unwrap();
    assert_eq!(userinfo.status(), StatusCode::OK, "{schema}");
    let info: Value = userinfo.json().await.unwrap();
    assert_eq!((info["sub"].as_str(), info["email"].as_str()), (Some("dex-sub"), Some("jane@example.com")), "{info}");
    let (_, introspection) = flow::introspect(&b, Some((flow::CLIENT, flow::SECRET)), &dex_access).await;
    assert_eq!(introspection["active"], true, "{introspection}");
    let named = (introspection["client_id"].as_str(), introspection["username"].as_str());
    assert_eq!(named, (Some("example-app"), Some("jd")), "{introspection}");
    // The same token with a typ, as every token we sign has, is not Dex's: refused.
    let typed = dex_signed(Some("JWT"), claims);
    let refused = reqwest::Client::new().get(b.url("/userinfo")).bearer_auth(&typed).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // The imported client logs the imported user in, with the user's Dex v2.45 claims.
    let response = reqwest::Client::new()
        .post(b.url("/token"))
        .basic_auth("dex-api-app", Some("dex-api-secret"))
        .form(&[
            ("grant_type", "password"),
            ("username", "jane@example.com"),
            ("password", "password"),
            ("scope", "openid profile groups"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let claims = flow::claims(response.json::<Value>().await.unwrap()["id_token"].as_str().unwrap());
    let name = if level >= 13 { "Jane Doe" } else { "jane" };
    let preferred = if level >= 12 { Some("jd") } else { None };
    assert_eq!((claims["name"].as_str(), claims["preferred_username"].as_str()), (Some(name), preferred), "{schema}");
    let groups = if level >= 12 { serde_json::json!(["admins"]) } else { Value::Null };
    assert_eq!(claims["groups"], groups, "{schema}");
}

/// The Dex config names the storage: Dex's own config-dev.yaml points at its SQLite file; the
/// storages this version cannot read yet are refused saying so.
#[test]
fn the_dex_config_names_the_storage_to_read() {
    let dex = portcullis::migrate::dex_storage(std::path::Path::new("config/good/dex-config-dev.yaml"), None).unwrap();
    let portcullis::migrate::DexDatabase::Sqlite(file) = &dex.database else { panic!("{:?}", dex.database) };
    assert!(file.ends_with("examples/dex.db"), "{}", file.display());
    assert_eq!(dex.id_tokens, std::time::Duration::from_secs(24 * 3600));
    let dir = tempfile::tempdir().unwrap();
    let postgres = dir.path().join("dex.yaml");
    std::fs::write(
        &postgres,
        "issuer: http://x/dex\nstorage:\n  type: postgres\n  config: {host: db, database: dex, user: dex}\n",
    )
    .unwrap();
    let dex = portcullis::migrate::dex_storage(&postgres, None).unwrap();
    let portcullis::migrate::DexDatabase::Postgres(url) = &dex.database else { panic!("{:?}", dex.database) };
    assert_eq!(url.expose(), "postgres://dex@db:5432/dex?sslmode=verify-full", "Dex's default TLS mode");
    let mysql = dir.path().join("mysql.yaml");
    std::fs::write(&mysql, "issuer: http://x/dex\nstorage:\n  type: mysql\n  config: {host: db, database: dex}\n")
        .unwrap();
    let dex = portcullis::migrate::dex_storage(&mysql, None).unwrap();
    let portcullis::migrate::DexDatabase::Mysql(url) = &dex.database else { panic!("{:?}", dex.database) };
    assert!(
        url.expose().starts_with("mysql://root@db:3306/dex?ssl-mode=VERIFY_IDENTITY"),
        "Dex's TLS default: {}",
        url.expose()
    );
    let kubernetes = dir.path().join("k8s.yaml");
    std::fs::write(&kubernetes, "issuer: http://x/dex\nstorage:\n  type: kubernetes\n  config: {inCluster: true}\n")
        .unwrap();
    let refused = portcullis::migrate::dex_storage(&kubernetes, None).unwrap_err().to_string();
    assert!(refused.contains("pass --kubernetes-dump"), "{refused}");
}

/// A session through Dex's ldap connector refreshes through our ldap plugin after the import:
/// Dex kept the whole directory entry as connector data (`{"username", "entry": {"DN", …}}`);
/// our plugin reads it, finds the user again and re-reads the groups from the directory.
#[tokio::test]
async fn a_dex_ldap_session_refreshes_through_the_directory_after_import() {
    let slapd = portcullis_tests::slapd::Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dex.db");
    std::fs::File::create(&path).unwrap();
    let url = format!("sqlite://{}", path.display());
    let dex_key = portcullis::keys::new_key(portcullis::config::SigningAlgorithm::Es256).unwrap();
    fill_dex_database(&url, Flavor::Sqlite, 13, &dex_key).await;
    let entry = r#"{"username":"jane","entry":{"DN":"uid=jane,ou=People,dc=example,dc=org","Attributes":[{"Name":"uid","Values":["jane"],"ByteValues":["amFuZQ=="]}]}}"#;
    let db = sqlx::AnyPool::connect(&url).await.unwrap();
    for sql in [
        r#"UPDATE refresh_token SET connector_id = 'ldap', claims_user_id = 'jane', claims_username = 'Jane Doe',
            claims_email = 'jane@example.org', scopes = CAST('["openid","profile","email","groups","offline_access"]' AS BLOB)"#
            .to_string(),
        format!(
            "INSERT INTO offline_session (user_id, conn_id, refresh, connector_data) VALUES ('jane', 'ldap', \
             CAST('{{}}' AS BLOB), CAST('{entry}' AS BLOB))"
        ),
    ] {
        sqlx::query(&sql).execute(&db).await.unwrap();
    }
    db.close().await;

    let ldap = serde_json::json!({
        "host": slapd.ldap_addr, "insecureNoSSL": true,
        "bindDN": "cn=portcullis,ou=Services,dc=example,dc=org", "bindPW": "service-secret",
        "userSearch": {"baseDN": "ou=People,dc=example,dc=org", "username": "uid", "idAttr": "uid",
            "emailAttr": "mail", "nameAttr": "cn"},
        "groupSearch": {"baseDN": "ou=Groups,dc=example,dc=org", "nameAttr": "cn",
            "userMatchers": [{"userAttr": "DN", "groupAttr": "member"}]}
    });
    let block = format!("- type: ldap\n  id: ldap\n  name: Directory\n  config: {ldap}\n");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let plugins = portcullis_tests::plugin("ldap").parent().unwrap().display().to_string();
    let yaml = format!("{}plugins:\n  dir: \"{plugins}\"\n", portcullis_tests::base_config(&issuer, &block));
    let config = portcullis_tests::config_from_yaml(&yaml);
    let backend: std::sync::Arc<dyn portcullis::storage::Backend> =
        std::sync::Arc::new(portcullis::storage::MemoryBackend::new());
    let store = portcullis::storage::Store::new(backend.clone());
    let dex = portcullis::migrate::DexStorage {
        database: portcullis::migrate::DexDatabase::Sqlite(path),
        id_tokens: std::time::Duration::from_secs(24 * 3600),
    };
    let report = portcullis::migrate::import_dex(&dex, &store, &config, false).await.unwrap();
    assert!(report.to_string().contains("imported  refresh token"), "{report}");
    let b = TestBroker::builder().listener(listener).issuer(&issuer).config(config).backend(backend).start().await;

    let response = flow::refresh(&b, &dex_held_token()).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    let claims = flow::claims(body["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], portcullis::oidc::sub::encode("jane", "ldap"), "Dex's sub for jane through ldap");
    assert_eq!(claims["name"], "Jane Doe", "re-read from the directory");
    assert_eq!(claims["groups"], serde_json::json!(["admins", "developers"]), "groups from the directory");
}

/// A session through Dex's atlassian-crowd connector refreshes through ours after the import:
/// Dex kept `{"username": ...}` as connector data, the shape our plugin writes and reads; the
/// refresh re-reads the user and their nested groups from (a fake) Crowd.
#[tokio::test]
async fn a_dex_crowd_session_refreshes_through_crowd_after_import() {
    use portcullis_tests::crowd_fake::{APP_NAME, APP_PASSWORD, FakeCrowd, FakeCrowdUser};
    let mut alice = FakeCrowdUser::new("alice", "4a1b2c3d:alice", "alice-password");
    alice.groups = vec!["platform".into()];
    let crowd = FakeCrowd::start(vec![alice], &[("platform", "engineering")]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dex.db");
    std::fs::File::create(&path).unwrap();
    let url = format!("sqlite://{}", path.display());
    let dex_key = portcullis::keys::new_key(portcullis::config::SigningAlgorithm::Es256).unwrap();
    fill_dex_database(&url, Flavor::Sqlite, 13, &dex_key).await;
    let db = sqlx::AnyPool::connect(&url).await.unwrap();
    for sql in [
        r#"UPDATE refresh_token SET connector_id = 'crowd', claims_user_id = '4a1b2c3d:alice', claims_username = 'alice',
            claims_email = 'alice@example.org', scopes = CAST('["openid","profile","email","groups","offline_access"]' AS BLOB)"#,
        r#"INSERT INTO offline_session (user_id, conn_id, refresh, connector_data) VALUES ('4a1b2c3d:alice', 'crowd',
            CAST('{}' AS BLOB), CAST('{"username":"alice"}' AS BLOB))"#,
    ] {
        sqlx::query(sql).execute(&db).await.unwrap();
    }
    db.close().await;

    let config = serde_json::json!({"baseURL": crowd.base_url(), "clientID": APP_NAME, "clientSecret": APP_PASSWORD});
    let block = format!("- type: atlassian-crowd\n  id: crowd\n  name: Crowd\n  config: {config}\n");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let plugins = portcullis_tests::plugin("atlassian-crowd").parent().unwrap().display().to_string();
    let yaml = format!("{}plugins:\n  dir: \"{plugins}\"\n", portcullis_tests::base_config(&issuer, &block));
    let config = portcullis_tests::config_from_yaml(&yaml);
    let backend: std::sync::Arc<dyn portcullis::storage::Backend> =
        std::sync::Arc::new(portcullis::storage::MemoryBackend::new());
    let store = portcullis::storage::Store::new(backend.clone());
    let dex = portcullis::migrate::DexStorage {
        database: portcullis::migrate::DexDatabase::Sqlite(path),
        id_tokens: std::time::Duration::from_secs(24 * 3600),
    };
    let report = portcullis::migrate::import_dex(&dex, &store, &config, false).await.unwrap();
    assert!(report.to_string().contains("imported  refresh token"), "{report}");
    let b = TestBroker::builder().listener(listener).issuer(&issuer).config(config).backend(backend).start().await;

    let response = flow::refresh(&b, &dex_held_token()).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let claims = flow::claims(response.json::<Value>().await.unwrap()["id_token"].as_str().unwrap());
    assert_eq!(
        claims["sub"],
        portcullis::oidc::sub::encode("4a1b2c3d:alice", "crowd"),
        "Dex's sub for alice through crowd"
    );
    assert_eq!(claims["groups"], serde_json::json!(["platform", "engineering"]), "nested groups re-read from Crowd");
    assert!(crowd.requests().contains(&"POST /session?validate-password=false".to_string()), "{:?}", crowd.requests());
}
