//! Google Workspace groups end to end (Dex's `serviceAccountFilePath`, `domainToAdminEmail`,
//! `groups`, `fetchTransitiveGroupMembership`): a `type: google` block with no `allowedHosts`
//! logs in at the fake Google, whose token endpoint takes the service account's JWT-bearer
//! assertion (signed by the broker through the `signing` import with the key file's key) and
//! whose Directory API pages the groups. A bad key file is refused at config load
//! (`config/bad/google-bad-key-file.yaml`).

use portcullis_tests::flow;
use portcullis_tests::google_fake::{self, DIRECTORY_SCOPE, GoogleFake, SERVICE_ACCOUNT};
use portcullis_tests::{TestBroker, browser, location, plugin};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn user(email: &str) -> Value {
    json!({"sub": "109876543210987654321", "email": email, "email_verified": true, "name": "Sam Ple", "hd": "acme.test"})
}

/// A broker with a Dex-shaped `type: google` block at `fake`, its service-account file in
/// `dir`; `extra` is more config YAML (indented under `config:`).
async fn broker(fake: &GoogleFake, dir: &tempfile::TempDir, extra: &str) -> TestBroker {
    let key_file = dir.path().join("service-account.json");
    std::fs::write(&key_file, fake.service_account()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let plugins = format!("plugins:\n  dir: \"{}\"\n", plugin("google").parent().unwrap().display());
    let block = format!(
        r#"- type: google
  id: google
  name: Google
  config:
    issuer: "{fake}"
    directoryURL: "{fake}"
    clientID: {client}
    clientSecret: {secret}
    redirectURI: {issuer}/callback
    serviceAccountFilePath: "{key}"
{extra}"#,
        fake = fake.issuer,
        client = google_fake::CLIENT_ID,
        secret = google_fake::CLIENT_SECRET,
        key = key_file.display(),
    );
    TestBroker::builder().listener(listener).connectors(&block).extra(&plugins).start().await
}

/// Logs in through the fake with `scopes`; the broker's answer to the callback.
async fn login(b: &TestBroker, fake: &GoogleFake, scopes: &str) -> (reqwest::Response, flow::Pending, reqwest::Client) {
    let web = browser();
    let (page, pending) = flow::authorize(b, &web, "google", scopes).await;
    let to_google = location(&page, &b.base).unwrap();
    let from_google = web.get(&to_google).send().await.unwrap();
    let callback = location(&from_google, &fake.issuer).unwrap();
    (web.get(&callback).send().await.unwrap(), pending, web)
}

async fn groups_of(b: &TestBroker, fake: &GoogleFake, scopes: &str) -> Value {
    let (back, pending, web) = login(b, fake, scopes).await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER, "the login goes on");
    let code = flow::finish(b, &web, back, &pending).await;
    let tokens = flow::exchange(b, &code, &pending).await;
    tokens.claims["groups"].clone()
}

#[tokio::test]
async fn groups_come_from_the_directory_page_by_page_as_the_domains_admin() {
    let fake = GoogleFake::start(user("sam@acme.test")).await;
    fake.set_directory(
        &[
            ("sam@acme.test", &["eng@acme.test", "ops@acme.test", "all@acme.test"]),
            ("eng@acme.test", &["staff@acme.test"]),
        ],
        &["root@acme.test"],
    );
    let dir = tempfile::tempdir().unwrap();
    let b = broker(&fake, &dir, "    domainToAdminEmail:\n      acme.test: root@acme.test\n").await;

    assert_eq!(
        groups_of(&b, &fake, "openid email groups").await,
        json!(["eng@acme.test", "ops@acme.test", "all@acme.test"])
    );
    // The assertion the broker signed: the service account acting as the domain's admin.
    let [assertion] = fake.assertions().try_into().unwrap();
    assert_eq!(assertion["iss"], SERVICE_ACCOUNT);
    assert_eq!(assertion["sub"], "root@acme.test");
    assert_eq!(assertion["scope"], DIRECTORY_SCOPE);
    assert_eq!(assertion["aud"], format!("{}/token", fake.issuer));
    // Two pages of two; no transitive lookups unless asked.
    assert_eq!(
        fake.directory_requests(),
        [("sam@acme.test".to_string(), None), ("sam@acme.test".to_string(), Some("page-2".to_string()))]
    );

    // Without the groups scope the directory is not asked.
    let before = fake.directory_requests().len();
    assert_eq!(groups_of(&b, &fake, "openid email").await, Value::Null);
    assert_eq!(fake.directory_requests().len(), before);
}

#[tokio::test]
async fn transitive_membership_follows_each_group_once() {
    let fake = GoogleFake::start(user("sam@acme.test")).await;
    // eng → staff → all → eng (a cycle), and ops directly.
    fake.set_directory(
        &[
            ("sam@acme.test", &["eng@acme.test", "ops@acme.test"]),
            ("eng@acme.test", &["staff@acme.test"]),
            ("staff@acme.test", &["all@acme.test"]),
            ("all@acme.test", &["eng@acme.test"]),
        ],
        &["root@acme.test"],
    );
    let dir = tempfile::tempdir().unwrap();
    let extra = "    adminEmail: root@acme.test\n    fetchTransitiveGroupMembership: true\n";
    let b = broker(&fake, &dir, extra).await;
    assert_eq!(
        groups_of(&b, &fake, "openid email groups").await,
        json!(["eng@acme.test", "staff@acme.test", "all@acme.test", "ops@acme.test"])
    );
    assert_eq!(fake.assertions().len(), 1, "one token per admin for the whole login");
}

#[tokio::test]
async fn the_groups_filter_keeps_the_required_ones_and_refuses_users_in_none() {
    let fake = GoogleFake::start(user("sam@acme.test")).await;
    fake.set_directory(&[("sam@acme.test", &["eng@acme.test", "ops@acme.test"])], &["root@acme.test"]);
    let dir = tempfile::tempdir().unwrap();
    let extra = "    domainToAdminEmail: {\"*\": root@acme.test}\n    groups: [ops@acme.test, sre@acme.test]\n";
    let b = broker(&fake, &dir, extra).await;
    assert_eq!(groups_of(&b, &fake, "openid email groups").await, json!(["ops@acme.test"]));

    fake.set_directory(&[("sam@acme.test", &["eng@acme.test"])], &["root@acme.test"]);
    let (back, _, _) = login(&b, &fake, "openid email groups").await;
    assert_eq!(back.status(), StatusCode::FORBIDDEN);
    assert!(back.text().await.unwrap().contains("not in any of the required groups"));
}

#[tokio::test]
async fn a_domain_without_an_admin_fails_the_login_and_asks_no_one() {
    let fake = GoogleFake::start(user("kim@other.test")).await;
    fake.set_directory(&[("kim@other.test", &["eng@other.test"])], &["root@acme.test"]);
    let dir = tempfile::tempdir().unwrap();
    let b = broker(&fake, &dir, "    domainToAdminEmail:\n      acme.test: root@acme.test\n").await;
    let (back, _, _) = login(&b, &fake, "openid email groups").await;
    assert_eq!(back.status(), StatusCode::BAD_GATEWAY);
    assert!(back.headers().get(reqwest::header::LOCATION).is_none(), "no code");
    assert!(back.text().await.unwrap().contains("Login failed"));
    assert!(fake.assertions().is_empty() && fake.directory_requests().is_empty());
}

#[tokio::test]
async fn an_admin_google_refuses_is_an_upstream_error() {
    let fake = GoogleFake::start(user("sam@acme.test")).await;
    // The service account may act as nobody (no domain-wide delegation).
    fake.set_directory(&[("sam@acme.test", &["eng@acme.test"])], &[]);
    let dir = tempfile::tempdir().unwrap();
    let b = broker(&fake, &dir, "    domainToAdminEmail: {\"*\": root@acme.test}\n").await;
    let (back, _, _) = login(&b, &fake, "openid email groups").await;
    assert_eq!(back.status(), StatusCode::BAD_GATEWAY);
    assert!(back.text().await.unwrap().contains("could not be reached or answered unexpectedly"));
}

/// The key file is one of the files a generation is built from: a new key is a new generation
/// (the reload watcher compares these digests), the same bytes are none.
#[tokio::test]
async fn a_new_key_file_is_a_change_the_reload_sees() {
    let fake = GoogleFake::start(user("sam@acme.test")).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("sa.json");
    std::fs::write(&key_file, fake.service_account()).unwrap();
    let yaml = portcullis_tests::base_config(
        "http://127.0.0.1:5556/dex",
        &format!(
            "- type: google\n  id: google\n  name: Google\n  config:\n    clientID: a\n    clientSecret: s\n    \
             serviceAccountFilePath: \"{}\"\n    adminEmail: root@acme.test\n",
            key_file.display()
        ),
    );
    let config = portcullis_tests::config_from_yaml(&yaml);
    // `check-config` says which key file the connector may sign with, and why.
    let report = portcullis::connectors::hosts_report(config.connectors.iter().map(|c| &c.spec));
    let line =
        format!("and may sign with the key in {} (config.serviceAccountFilePath, documented key", key_file.display());
    assert!(report.contains(&line), "{report}");
    assert!(report.contains("https://admin.googleapis.com"), "{report}");
    let before = portcullis::generation::Sources::read(&config).await;
    assert!(before.root_cas.contains_key(&key_file), "{before:?}");
    assert_eq!(portcullis::generation::Sources::read(&config).await, before, "same bytes, no change");
    let other = GoogleFake::start(user("sam@acme.test")).await;
    std::fs::write(&key_file, other.service_account()).unwrap();
    assert_ne!(portcullis::generation::Sources::read(&config).await, before, "a new key");
}
