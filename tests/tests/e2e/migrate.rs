//! `portcullis import-dex`: a Dex SQLite database, built here with Dex's schema (version 13,
//! Dex v2.45) and rows encoded as Dex encodes them, imports into our storage; afterwards the
//! refresh token Dex handed an app redeems unchanged, an ID token Dex signed verifies against
//! our JWKS, the imported client and password log in, and a second import changes nothing.

use base64::Engine as _;
use portcullis_tests::{TestBroker, flow};
use reqwest::StatusCode;
use serde_json::Value;

/// Dex's `storage/sql` tables at schema version 13 (v2.45), as Dex's §2.4 gives them; `{bytes}`,
/// `{bool}` and `{time}` are the column types each SQL names (§2.1).
const DEX_SCHEMA: &[&str] = &[
    "CREATE TABLE migrations (num integer not null, at {time} not null)",
    "CREATE TABLE client (id text not null primary key, secret text not null, redirect_uris {bytes} not null,
        trusted_peers {bytes} not null, public {bool} not null, name text not null, logo_url text not null)",
    "CREATE TABLE password (email text not null primary key, hash {bytes} not null, username text not null,
        user_id text not null, preferred_username text not null default '', groups {bytes} not null,
        name text not null default '', email_verified {bool})",
    "CREATE TABLE connector (id text not null primary key, type text not null, name text not null,
        resource_version text not null, config {bytes})",
    "CREATE TABLE keys (id text not null primary key, verification_keys {bytes} not null, signing_key {bytes} not null,
        signing_key_pub {bytes} not null, next_rotation {time} not null)",
    "CREATE TABLE refresh_token (id text not null primary key, client_id text not null, scopes {bytes} not null,
        nonce text not null, claims_user_id text not null, claims_username text not null, claims_email text not null,
        claims_email_verified {bool} not null, claims_groups {bytes} not null, connector_id text not null,
        connector_data {bytes}, token text not null default '', created_at {time} not null default '0001-01-01 00:00:00 UTC',
        last_used {time} not null default '0001-01-01 00:00:00 UTC', claims_preferred_username text not null default '',
        obsolete_token text default '')",
    "CREATE TABLE offline_session (user_id text not null, conn_id text not null, refresh {bytes} not null,
        connector_data {bytes}, primary key (user_id, conn_id))",
];

/// One of the SQL dialects Dex writes (§2.1).
#[derive(Clone, Copy)]
enum Flavor {
    Sqlite,
    Postgres,
}

impl Flavor {
    /// `sql` with the column types and value forms of this flavor: `{bytes}`, `{bool}`, `{time}`
    /// types, `{b'…'}` a byte string, `{t}`/`{f}` booleans, `{hour_ago}` a time as the driver writes it.
    fn sql(self, sql: &str) -> String {
        let (bytes, boolean, time, t, f, hour_ago) = match self {
            Flavor::Sqlite => {
                ("blob", "integer", "timestamp", "1", "0", "datetime('now', '-1 hour') || '.123456789+00:00'")
            }
            Flavor::Postgres => ("bytea", "boolean", "timestamptz", "true", "false", "now() - interval '1 hour'"),
        };
        let mut out = sql
            .replace("{bytes}", bytes)
            .replace("{bool}", boolean)
            .replace("{time}", time)
            .replace("{t}", t)
            .replace("{f}", f)
            .replace("{hour_ago}", hour_ago);
        // {b'…'}: a byte string (no quote inside).
        while let Some(at) = out.find("{b'") {
            let end = at + 3 + out[at + 3..].find("'}").unwrap();
            let value = out[at + 3..end].to_string();
            let expr = match self {
                Flavor::Sqlite => format!("CAST('{value}' AS BLOB)"),
                Flavor::Postgres => format!("convert_to('{value}', 'UTF8')"),
            };
            out.replace_range(at..end + 2, &expr);
        }
        out
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

/// A Dex database at `url` with an API client (and one whose redirect URI is not a URL), an API
/// password, a stored connector, Dex's signing key, and a refresh token of example-app for the
/// admin user, written as Dex writes them.
async fn fill_dex_database(url: &str, flavor: Flavor, key: &portcullis::storage::StoredKey) {
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(url).await.unwrap();
    let jwk = serde_json::to_string(&key.jwk).unwrap();
    let mut statements: Vec<String> = DEX_SCHEMA.iter().map(|s| s.to_string()).collect();
    statements.extend((1..=13).map(|n| format!("INSERT INTO migrations VALUES ({n}, '2026-01-01 00:00:00+00:00')")));
    statements.extend([
        r#"INSERT INTO client VALUES ('dex-api-app', 'dex-api-secret', {b'["http://127.0.0.1:5555/imported"]'}, {b'null'}, {f}, 'Imported App', '')"#.to_string(),
        r#"INSERT INTO client VALUES ('bad-app', 's', {b'["not a url"]'}, {b'null'}, {f}, 'Bad', '')"#.to_string(),
        "INSERT INTO connector VALUES ('dex-mock', 'mockCallback', 'Dex mock', '3', {b'{}'})".to_string(),
        format!("INSERT INTO offline_session VALUES ('{ADMIN}', 'local', {{b'{{}}'}}, NULL)"),
        format!(
            r#"INSERT INTO password VALUES ('jane@example.com', {{b'{HASH}'}}, 'jane', 'jane-1', 'jd', {{b'["admins"]'}}, 'Jane Doe', NULL)"#
        ),
        format!("INSERT INTO keys VALUES ('keys', {{b'[]'}}, {{b'null'}}, {{b'{jwk}'}}, '2026-01-01 00:00:00+00:00')"),
        format!(
            r#"INSERT INTO refresh_token (id, client_id, scopes, nonce, claims_user_id, claims_username, claims_email,
                claims_email_verified, claims_groups, connector_id, token, created_at, last_used, claims_preferred_username)
             VALUES ('{REFRESH_ID}', 'example-app', {{b'["openid","email","offline_access"]'}}, 'n-1', '{ADMIN}', 'admin',
                'admin@example.com', {{t}}, {{b'null'}}, 'local', '{REFRESH_SECRET}', {{hour_ago}}, {{hour_ago}}, 'admin')"#
        ),
    ]);
    for statement in statements {
        sqlx::query(&flavor.sql(&statement)).execute(&db).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    db.close().await;
}

#[tokio::test]
async fn a_dex_sqlite_database_imports_and_its_tokens_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dex.db");
    std::fs::File::create(&path).unwrap();
    let database = portcullis::migrate::DexDatabase::Sqlite(path.clone());
    let dex_key = portcullis::keys::new_key(portcullis::config::SigningAlgorithm::Es256).unwrap();
    fill_dex_database(&format!("sqlite://{}", path.display()), Flavor::Sqlite, &dex_key).await;
    import_and_use(database, &dex_key, "SQL schema version 13").await;
}

#[tokio::test]
async fn a_dex_postgres_database_imports_and_its_tokens_keep_working() {
    let db = portcullis_tests::TestDatabase::create().await;
    let database = portcullis::migrate::DexDatabase::Postgres(portcullis::secret::Secret::new(db.url()));
    let dex_key = portcullis::keys::new_key(portcullis::config::SigningAlgorithm::Es256).unwrap();
    fill_dex_database(&db.url(), Flavor::Postgres, &dex_key).await;
    import_and_use(database, &dex_key, "SQL schema version 13").await;
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
    import_and_use(portcullis::migrate::DexDatabase::Kubernetes(path), &dex_key, "Kubernetes custom resources").await;
}

/// Imports Dex's `database` (filled as the tests above fill it, Dex's key `dex_key` signing), and
/// checks that what Dex's users and apps hold works.
async fn import_and_use(
    database: portcullis::migrate::DexDatabase,
    dex_key: &portcullis::storage::StoredKey,
    schema: &str,
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
    assert_eq!((claims["name"].as_str(), claims["preferred_username"].as_str()), (Some("Jane Doe"), Some("jd")));
    assert_eq!(claims["groups"], serde_json::json!(["admins"]));
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
    assert_eq!(url.expose(), "postgres://dex@db:5432/dex");
    let mysql = dir.path().join("mysql.yaml");
    std::fs::write(&mysql, "issuer: http://x/dex\nstorage:\n  type: mysql\n  config: {host: db}\n").unwrap();
    let refused = portcullis::migrate::dex_storage(&mysql, None).unwrap_err().to_string();
    assert!(refused.contains("mysql is next"), "{refused}");
    let kubernetes = dir.path().join("k8s.yaml");
    std::fs::write(&kubernetes, "issuer: http://x/dex\nstorage:\n  type: kubernetes\n  config: {inCluster: true}\n")
        .unwrap();
    let refused = portcullis::migrate::dex_storage(&kubernetes, None).unwrap_err().to_string();
    assert!(refused.contains("pass --kubernetes-dump"), "{refused}");
}
