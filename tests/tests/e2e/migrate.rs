//! `portcullis import-dex`: a Dex SQLite database, built here with Dex's schema (version 13,
//! Dex v2.45) and rows encoded as Dex encodes them, imports into our storage; afterwards the
//! refresh token Dex handed an app redeems unchanged, an ID token Dex signed verifies against
//! our JWKS, the imported client and password log in, and a second import changes nothing.

use base64::Engine as _;
use portcullis_tests::{TestBroker, flow};
use reqwest::StatusCode;
use serde_json::Value;

/// Dex's `storage/sql` tables at schema version 13 (v2.45), in SQLite's types (Dex's §2.4).
const DEX_SCHEMA: &[&str] = &[
    "CREATE TABLE migrations (num integer not null, at timestamp not null)",
    "CREATE TABLE client (id text not null primary key, secret text not null, redirect_uris blob not null,
        trusted_peers blob not null, public integer not null, name text not null, logo_url text not null)",
    "CREATE TABLE password (email text not null primary key, hash blob not null, username text not null,
        user_id text not null, preferred_username text not null default '', groups blob not null default '[]',
        name text not null default '', email_verified integer)",
    "CREATE TABLE connector (id text not null primary key, type text not null, name text not null,
        resource_version text not null, config blob)",
    "CREATE TABLE keys (id text not null primary key, verification_keys blob not null, signing_key blob not null,
        signing_key_pub blob not null, next_rotation timestamp not null)",
    "CREATE TABLE refresh_token (id text not null primary key, client_id text not null, scopes blob not null,
        nonce text not null, claims_user_id text not null, claims_username text not null, claims_email text not null,
        claims_email_verified integer not null, claims_groups blob not null, connector_id text not null,
        connector_data blob, token text not null default '', created_at timestamp not null default '0001-01-01 00:00:00 UTC',
        last_used timestamp not null default '0001-01-01 00:00:00 UTC', claims_preferred_username text not null default '',
        obsolete_token text default '')",
    "CREATE TABLE offline_session (user_id text not null, conn_id text not null, refresh blob not null,
        connector_data blob, primary key (user_id, conn_id))",
];

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

/// A Dex database with an API client (and one whose redirect URI is not a URL), an API password,
/// a stored connector, Dex's signing key, and a refresh token of example-app for the admin user.
async fn dex_database(dir: &std::path::Path, key: &portcullis::storage::StoredKey) -> std::path::PathBuf {
    let path = dir.join("dex.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
    let db = sqlx::SqlitePool::connect_with(options).await.unwrap();
    for statement in DEX_SCHEMA {
        sqlx::query(statement).execute(&db).await.unwrap();
    }
    for num in 1..=13 {
        sqlx::query("INSERT INTO migrations VALUES (?, '2026-01-01 00:00:00+00:00')")
            .bind(num)
            .execute(&db)
            .await
            .unwrap();
    }
    let rows = [
        "INSERT INTO client VALUES ('dex-api-app', 'dex-api-secret', CAST('[\"http://127.0.0.1:5555/imported\"]' AS BLOB), CAST('null' AS BLOB), 0, 'Imported App', '')",
        "INSERT INTO client VALUES ('bad-app', 's', CAST('[\"not a url\"]' AS BLOB), CAST('null' AS BLOB), 0, 'Bad', '')",
        "INSERT INTO connector VALUES ('dex-mock', 'mockCallback', 'Dex mock', '3', CAST('{}' AS BLOB))",
        "INSERT INTO offline_session VALUES ('08a8684b-db88-4b73-90a9-3cd1661f5466', 'local', CAST('{}' AS BLOB), NULL)",
    ];
    for row in rows {
        sqlx::query(row).execute(&db).await.unwrap();
    }
    sqlx::query("INSERT INTO password VALUES ('jane@example.com', ?, 'jane', 'jane-1', 'jd', CAST('[\"admins\"]' AS BLOB), 'Jane Doe', NULL)")
        .bind(HASH.as_bytes())
        .execute(&db)
        .await
        .unwrap();
    let public = serde_json::to_vec(&key.jwk).unwrap();
    sqlx::query(
        "INSERT INTO keys VALUES ('keys', CAST('[]' AS BLOB), CAST('null' AS BLOB), ?, '2026-01-01 00:00:00+00:00')",
    )
    .bind(public)
    .execute(&db)
    .await
    .unwrap();
    // go-sqlite3's time text, an hour ago.
    sqlx::query(
        "INSERT INTO refresh_token (id, client_id, scopes, nonce, claims_user_id, claims_username, claims_email,
            claims_email_verified, claims_groups, connector_id, token, created_at, last_used, claims_preferred_username)
         VALUES (?, 'example-app', CAST('[\"openid\",\"email\",\"offline_access\"]' AS BLOB), 'n-1', ?, 'admin',
            'admin@example.com', 1, CAST('null' AS BLOB), 'local', ?,
            datetime('now', '-1 hour') || '.123456789+00:00', datetime('now', '-1 hour') || '.123456789+00:00', 'admin')",
    )
    .bind(REFRESH_ID)
    .bind(ADMIN)
    .bind(REFRESH_SECRET)
    .execute(&db)
    .await
    .unwrap();
    db.close().await;
    path
}

#[tokio::test]
async fn a_dex_database_imports_and_its_tokens_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    // Dex's signing key (ES256, as Dex master can sign).
    let dex_key = portcullis::keys::new_key(portcullis::config::SigningAlgorithm::Es256).unwrap();
    let dex = portcullis::migrate::DexStorage {
        sqlite_file: dex_database(dir.path(), &dex_key).await,
        id_tokens: std::time::Duration::from_secs(24 * 3600),
    };
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
    assert_eq!(dry.schema_version, 13);
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
    let dex = portcullis::migrate::dex_storage(std::path::Path::new("config/good/dex-config-dev.yaml")).unwrap();
    assert!(dex.sqlite_file.ends_with("examples/dex.db"), "{}", dex.sqlite_file.display());
    assert_eq!(dex.id_tokens, std::time::Duration::from_secs(24 * 3600));
    let dir = tempfile::tempdir().unwrap();
    let postgres = dir.path().join("dex.yaml");
    std::fs::write(&postgres, "issuer: http://x/dex\nstorage:\n  type: postgres\n  config: {host: db}\n").unwrap();
    let refused = portcullis::migrate::dex_storage(&postgres).unwrap_err().to_string();
    assert!(refused.contains("imports Dex's SQLite storage only"), "{refused}");
}
