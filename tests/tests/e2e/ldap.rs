//! The LDAP connector end to end: a real OpenLDAP slapd (tests/src/slapd.rs) loaded with
//! tests/fixtures/ldap/directory.ldif, the broker's password form, the ID token's claims,
//! refresh after the directory changed, and StartTLS/LDAPS with a test CA.

use base64::Engine as _;
use portcullis::connectors::{PluginError, Refusal, Registry, Scopes};
use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::slapd::{Slapd, TestCa};
use portcullis_tests::{TestBroker, browser, engine, flow, location, plugin, spec};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SCOPES: &str = "openid profile email groups offline_access federated:id";

/// Dex-style config for the fixture directory, over `host` with `tls` keys merged in.
fn config(host: &str, tls: Value) -> Value {
    let mut config = json!({
        "host": host,
        "bindDN": "cn=portcullis,ou=Services,dc=example,dc=org",
        "bindPW": "service-secret",
        "usernamePrompt": "Directory login",
        "userSearch": {
            "baseDN": "ou=People,dc=example,dc=org",
            "filter": "(objectClass=inetOrgPerson)",
            "username": "uid",
            "idAttr": "uid",
            "emailAttr": "mail",
            "nameAttr": "cn",
            "preferredUsernameAttr": "uid"
        },
        "groupSearch": {
            "baseDN": "ou=Groups,dc=example,dc=org",
            "filter": "(|(objectClass=groupOfNames)(objectClass=posixGroup))",
            "userMatchers": [
                {"userAttr": "DN", "groupAttr": "member"},
                {"userAttr": "uid", "groupAttr": "memberUid"}
            ],
            "nameAttr": "cn"
        }
    });
    for (key, value) in tls.as_object().expect("tls keys").clone() {
        config[key] = value;
    }
    config
}

/// One connector list item for `TestBroker::builder().connectors`.
fn connector(id: &str, grant: &str, config: &Value) -> String {
    format!(
        "- plugin: \"{{plugins}}/ldap.wasm\"\n  id: {id}\n  name: Directory {id}\n  allowedHosts: [\"{grant}\"]\n  config: {}\n",
        serde_json::to_string(config).unwrap()
    )
}

/// A broker with connector `ldap` on the plain ldap:// listener.
async fn broker(slapd: &Slapd) -> TestBroker {
    let plain = config(&slapd.ldap_addr, json!({"insecureNoSSL": true}));
    TestBroker::builder().connectors(&connector("ldap", &slapd.ldap_grant(), &plain)).start().await
}

/// A login through `connector` that must succeed; the tokens.
async fn login_ok(b: &TestBroker, connector: &str, username: &str, password: &str) -> flow::Tokens {
    let web = browser();
    let (page, pending) = flow::authorize(b, &web, connector, SCOPES).await;
    assert_eq!(page.status(), StatusCode::OK, "password form");
    let form = page.text().await.unwrap();
    assert!(form.contains("Directory login"), "usernamePrompt labels the form: {form}");
    let posted = flow::submit_password(b, &web, connector, &form, username, password).await;
    let code = flow::finish(b, &web, posted, &pending).await;
    flow::exchange(b, &code, &pending).await
}

/// A login that must be refused with the form again: the broker answers the re-shown form with
/// 401 (as Dex does), `message`, no redirect, no code.
async fn login_refused(b: &TestBroker, username: &str, password: &str, message: &str) {
    let web = browser();
    let (page, _) = flow::authorize(b, &web, "ldap", SCOPES).await;
    let form = page.text().await.unwrap();
    let posted = flow::submit_password(b, &web, "ldap", &form, username, password).await;
    assert_eq!(posted.status(), StatusCode::UNAUTHORIZED, "{username:?}: the form again, not a login");
    assert!(location(&posted, &b.base).is_none(), "{username:?}: no redirect");
    let html = posted.text().await.unwrap();
    assert!(html.contains(message), "{username:?}: {html}");
    assert!(html.contains("name=\"password\""), "{username:?}: the password form again");
}

#[tokio::test]
async fn groups_from_group_of_names_and_posix_groups_reach_the_id_token() {
    let slapd = Slapd::start();
    let b = broker(&slapd).await;
    let tokens = login_ok(&b, "ldap", "jane", "jane-password").await;
    let c = &tokens.claims;
    assert_eq!(c["name"], "Jane Doe");
    assert_eq!(c["preferred_username"], "jane");
    assert_eq!(c["email"], "jane@example.org");
    assert_eq!(c["email_verified"], true);
    // admins, developers: groupOfNames (member = DN); staff: posixGroup (memberUid = uid).
    assert_eq!(c["groups"], json!(["admins", "developers", "staff"]));
    assert_eq!(c["federated_claims"], json!({"connector_id": "ldap", "user_id": "jane"}));
}

/// Dex's nested groups: with `recursionGroupAttr` a matcher also yields the groups that hold
/// the user's groups, up the tree; a cycle (loop-a ⇄ loop-b) ends; without it, only direct ones.
#[tokio::test]
async fn recursion_group_attr_adds_the_groups_of_groups() {
    let slapd = Slapd::start();
    let mut nested = config(&slapd.ldap_addr, json!({"insecureNoSSL": true}));
    nested["groupSearch"]["userMatchers"] =
        json!([{"userAttr": "DN", "groupAttr": "member", "recursionGroupAttr": "member"}]);
    // Dex's legacy form carries it beside userAttr/groupAttr.
    let mut legacy = config(&slapd.ldap_addr, json!({"insecureNoSSL": true}));
    legacy["groupSearch"]["userMatchers"] = json!([]);
    legacy["groupSearch"]["userAttr"] = json!("DN");
    legacy["groupSearch"]["groupAttr"] = json!("member");
    legacy["groupSearch"]["recursionGroupAttr"] = json!("member");
    let connectors =
        connector("nested", &slapd.ldap_grant(), &nested) + &connector("legacy", &slapd.ldap_grant(), &legacy);
    let b = TestBroker::builder().connectors(&connectors).start().await;
    for id in ["nested", "legacy"] {
        let jane = login_ok(&b, id, "jane", "jane-password").await;
        assert_eq!(
            jane.claims["groups"],
            json!(["admins", "company", "developers", "engineering", "loop-a", "loop-b"]),
            "{id}"
        );
        let zoe = login_ok(&b, id, "zoe", "zoe-password").await;
        assert_eq!(zoe.claims["groups"], json!(["company", "developers", "engineering"]), "{id}");
    }
}

#[tokio::test]
async fn a_non_ascii_name_arrives_intact() {
    let slapd = Slapd::start();
    let b = broker(&slapd).await;
    let tokens = login_ok(&b, "ldap", "zoe", "zoe-password").await;
    assert_eq!(tokens.claims["name"], "Zoë Ångström");
    assert_eq!(tokens.claims["groups"], json!(["developers", "staff"]));
}

#[tokio::test]
async fn a_login_name_needing_escaping_logs_in_and_wildcards_match_nobody() {
    let slapd = Slapd::start();
    let b = broker(&slapd).await;
    let tokens = login_ok(&b, "ldap", "jane*(x)", "starry-password").await;
    assert_eq!(tokens.claims["name"], "Starry Jane");
    assert_eq!(tokens.claims["federated_claims"]["user_id"], "jane*(x)");
    assert_eq!(tokens.claims["groups"], json!(["staff"]), "memberUid matched through an escaped filter");
    // Unescaped, `zo*` would find zoe alone and log in as her; `*)(uid=*` would widen the filter.
    // Each of these, unescaped, narrows to exactly one entry whose password is given.
    let narrowing = [("zo*", "zoe-password"), ("j*e", "jane-password"), ("lo*", "loner-password")];
    let widening = [("*", "jane-password"), ("*)(uid=*", "jane-password")];
    for (username, password) in narrowing.into_iter().chain(widening) {
        login_refused(&b, username, password, "Invalid username or password").await;
    }
}

#[tokio::test]
async fn a_user_in_no_group_gets_no_groups_claim_as_in_dex() {
    let slapd = Slapd::start();
    let b = broker(&slapd).await;
    let tokens = login_ok(&b, "ldap", "loner", "loner-password").await;
    assert_eq!(tokens.claims["name"], "Lone Ranger");
    assert_eq!(tokens.claims.get("groups"), None, "Dex omits an empty groups claim: {}", tokens.claims);
}

#[tokio::test]
async fn wrong_password_unknown_user_and_empty_password_show_the_form_again() {
    let slapd = Slapd::start();
    let b = broker(&slapd).await;
    login_refused(&b, "jane", "not-her-password", "Invalid username or password").await;
    login_refused(&b, "nobody", "jane-password", "Invalid username or password").await;
    login_refused(&b, "jane", "", "Enter your username and password").await;

    // The connector itself refuses an empty password before any bind (the broker's form check
    // aside): Ok(None), not the bridge's "empty password refused" error.
    let plain = config(&slapd.ldap_addr, json!({"insecureNoSSL": true}));
    let registry = registry(&slapd, plain, slapd.ldap_grant()).await;
    let ldap = registry.get("ldap").unwrap();
    let all = Scopes { offline_access: true, groups: true };
    assert_eq!(ldap.login(all, "jane", "").await.unwrap(), None);
    assert_eq!(ldap.login(all, "jane", "nope").await.unwrap(), None);
    assert_eq!(ldap.login(all, "jane", "jane-password").await.unwrap().map(|i| i.user_id).as_deref(), Some("jane"));
}

/// The connector loaded straight into a registry, granted `grant`.
async fn registry(_slapd: &Slapd, config: Value, grant: String) -> Registry {
    let mut spec = spec("ldap", plugin("ldap"), config);
    spec.allowed_hosts = Some(vec![grant]);
    Registry::load(&engine(), &[spec], None).await.unwrap()
}

#[tokio::test]
async fn a_login_name_matching_several_entries_logs_in_as_nobody() {
    let slapd = Slapd::start();
    // Every person has objectClass inetOrgPerson: the search finds four entries, not one.
    let mut config = config(&slapd.ldap_addr, json!({"insecureNoSSL": true}));
    config["userSearch"]["username"] = "objectClass".into();
    let registry = registry(&slapd, config, slapd.ldap_grant()).await;
    let ldap = registry.get("ldap").unwrap();
    let all = Scopes { offline_access: true, groups: true };
    // Whichever entry the directory returns first, no password logs anyone in.
    for password in ["jane-password", "zoe-password", "starry-password", "loner-password"] {
        assert_eq!(ldap.login(all, "inetOrgPerson", password).await.unwrap(), None, "{password}");
    }
}

#[tokio::test]
async fn the_directory_is_reachable_only_through_allowed_hosts() {
    let slapd = Slapd::start();
    let config = config(&slapd.ldap_addr, json!({"insecureNoSSL": true}));
    // Granted the LDAPS listener only; the connector dials the ldap:// one.
    let registry = registry(&slapd, config, slapd.ldaps_grant()).await;
    let ldap = registry.get("ldap").unwrap();
    let all = Scopes { offline_access: true, groups: true };
    let err = ldap.login(all, "jane", "jane-password").await.unwrap_err();
    let PluginError::CapabilityDenied { detail, .. } = &err else { panic!("{err:?}") };
    let want = format!("add \"{}\" to allowedHosts of connector \"ldap\"", slapd.ldap_grant());
    assert!(detail.contains(&want), "names the allowedHosts entry to add: {detail}");
}

#[tokio::test]
async fn refresh_rereads_groups_and_fails_once_the_user_is_gone() {
    let slapd = Slapd::start();
    let b = broker(&slapd).await;
    let tokens = login_ok(&b, "ldap", "jane", "jane-password").await;
    assert_eq!(tokens.claims["groups"], json!(["admins", "developers", "staff"]));

    slapd.modify(
        "dn: cn=ops,ou=Groups,dc=example,dc=org\nchangetype: modify\nadd: member\nmember: uid=jane,ou=People,dc=example,dc=org\n\n\
         dn: cn=admins,ou=Groups,dc=example,dc=org\nchangetype: modify\nreplace: member\nmember: uid=zoe,ou=People,dc=example,dc=org\n",
    );
    let refreshed = flow::refresh(&b, tokens.refresh_token().expect("refresh token")).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "refresh");
    let json: Value = refreshed.json().await.unwrap();
    let claims = flow::claims(json["id_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["developers", "ops", "staff"]), "groups re-read from the directory");
    assert_eq!(claims["name"], "Jane Doe");

    slapd.modify("dn: uid=jane,ou=People,dc=example,dc=org\nchangetype: delete\n");
    let refused = flow::refresh(&b, json["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"], "invalid_grant");
}

#[tokio::test]
async fn starttls_and_ldaps_verify_the_server_against_root_ca_data() {
    let slapd = Slapd::start();
    let ca = base64::engine::general_purpose::STANDARD.encode(&slapd.ca_pem);
    let other_ca = base64::engine::general_purpose::STANDARD.encode(TestCa::new("Some other CA").cert_pem);
    let starttls = config(&slapd.ldap_addr, json!({"startTLS": true, "rootCAData": ca}));
    let ldaps = config(&slapd.ldaps_addr, json!({"rootCAData": ca}));
    let wrong_ca = config(&slapd.ldaps_addr, json!({"rootCAData": other_ca}));
    let skip_verify = config(&slapd.ldaps_addr, json!({"rootCAData": other_ca, "insecureSkipVerify": true}));
    let connectors = [
        connector("starttls", &slapd.ldap_grant(), &starttls),
        connector("ldaps", &slapd.ldaps_grant(), &ldaps),
        connector("wrongca", &slapd.ldaps_grant(), &wrong_ca),
        connector("skipverify", &slapd.ldaps_grant(), &skip_verify),
    ]
    .concat();
    let b = TestBroker::builder().connectors(&connectors).start().await;
    // insecureSkipVerify wins over rootCAData (testing only: nothing is verified).
    for id in ["starttls", "ldaps", "skipverify"] {
        let tokens = login_ok(&b, id, "jane", "jane-password").await;
        assert_eq!(tokens.claims["groups"], json!(["admins", "developers", "staff"]), "{id}");
    }

    let web = browser();
    let (page, _) = flow::authorize(&b, &web, "wrongca", SCOPES).await;
    let form = page.text().await.unwrap();
    let posted = flow::submit_password(&b, &web, "wrongca", &form, "jane", "jane-password").await;
    assert_eq!(posted.status(), StatusCode::BAD_GATEWAY, "a server certificate from another CA is refused");
    let html = posted.text().await.unwrap();
    assert!(html.contains("could not be reached or answered unexpectedly"), "{html}");
}

#[tokio::test]
async fn config_errors_name_the_key_and_what_to_write() {
    let cases = [
        (json!({"insecureNoSSL": true, "startTLS": true}), "startTLS"),
        (json!({"bindPW": ""}), "bindPW is required with bindDN"),
        (
            json!({"userSearch": {"baseDN": "ou=People,dc=example,dc=org", "emailAttr": "mail"}}),
            "userSearch.username is required",
        ),
    ];
    let engine = engine();
    for (overrides, want) in cases {
        let config = config("ldap.example.org:636", overrides.clone());
        let errors = Registry::load(&engine, &[spec("ldap", plugin("ldap"), config)], None).await.unwrap_err();
        let message = format!("{errors:?}");
        assert!(message.contains(want), "{overrides}: {message}");
        let refusal = errors.first().and_then(|e| match e {
            portcullis::connectors::SpecError::Plugin(p) => p.refusal().cloned(),
            _ => None,
        });
        assert!(matches!(refusal, Some(Refusal::Config(_))), "{overrides}: {message}");
    }
}

/// Search results are read as a stream and stop at `limits.maxResponseBytes`, instead of the
/// whole answer being buffered in the host first: four person entries do not fit in 200 bytes.
#[tokio::test]
async fn search_results_are_capped_by_max_response_bytes_while_read() {
    let slapd = Slapd::start();
    let mut config = config(&slapd.ldap_addr, json!({"insecureNoSSL": true}));
    config["userSearch"]["username"] = "objectClass".into();
    let mut spec = spec("ldap", plugin("ldap"), config);
    spec.allowed_hosts = Some(vec![slapd.ldap_grant()]);
    spec.limits.max_response_bytes = Some(200);
    let registry = Registry::load(&engine(), &[spec], None).await.unwrap();
    let ldap = registry.get("ldap").unwrap();
    let all = Scopes { offline_access: true, groups: true };
    let err = ldap.login(all, "inetOrgPerson", "jane-password").await.unwrap_err();
    assert!(err.to_string().contains("limits.maxResponseBytes (200 bytes)"), "{err}");
}

// ---- allowedHosts implied from the config (a Dex block has no such line) ----

/// `plugins.dir` for a config whose connectors name a shipped `type:`.
fn plugins_dir() -> String {
    format!("plugins:\n  dir: \"{}\"\n", plugin("ldap").parent().unwrap().display())
}

/// A Dex `ldap` block as Dex takes it: `type: ldap`, `host: 127.0.0.1:PORT` with
/// `insecureNoSSL`, no `allowedHosts`. The broker implies `ldap://127.0.0.1:PORT` from `host`
/// (insecureNoSSL: ldap://) and says so once in its log.
#[tokio::test]
async fn a_dex_ldap_block_without_allowed_hosts_logs_in() {
    let slapd = Slapd::start();
    let capture = LogCapture::install(Format::Text);
    let plain = config(&slapd.ldap_addr, json!({"insecureNoSSL": true}));
    let block =
        format!("- type: ldap\n  id: ldap\n  name: Directory\n  config: {}\n", serde_json::to_string(&plain).unwrap());
    let b = TestBroker::builder().connectors(&block).extra(&plugins_dir()).start().await;
    let tokens = login_ok(&b, "ldap", "jane", "jane-password").await;
    assert_eq!(tokens.claims["email"], "jane@example.org");
    let log = capture.text();
    let line = log.lines().find(|l| l.contains("connector may reach an implied host")).expect("the grant is logged");
    assert!(line.contains("connector=ldap"), "{line}");
    assert!(line.contains(&format!("host=ldap://{}", slapd.ldap_addr)), "{line}");
    assert!(line.contains("reason=implied by config key host"), "{line}");
    assert_eq!(log.matches("connector may reach an implied host").count(), 1, "logged once: {log}");
}

/// The same connector loaded with `kind` and `allowed_hosts` as the config would give them.
async fn typed_registry(config: Value, allowed_hosts: Option<Vec<String>>) -> Registry {
    let mut spec = spec("ldap", plugin("ldap"), config);
    spec.kind = Some("ldap".into());
    spec.allowed_hosts = allowed_hosts;
    Registry::load(&engine(), &[spec], None).await.unwrap()
}

/// An explicit `allowedHosts` replaces the implied set: granted only the LDAPS listener, the
/// connector is denied the ldap:// server its own `host` names.
#[tokio::test]
async fn explicit_allowed_hosts_replace_the_implied_ones() {
    let slapd = Slapd::start();
    let all = Scopes { offline_access: true, groups: true };
    let plain = config(&slapd.ldap_addr, json!({"insecureNoSSL": true}));
    let implied = typed_registry(plain.clone(), None).await;
    assert!(implied.get("ldap").unwrap().login(all, "jane", "jane-password").await.unwrap().is_some());
    for explicit in [vec![slapd.ldaps_grant()], vec![]] {
        let registry = typed_registry(plain.clone(), Some(explicit.clone())).await;
        let err = registry.get("ldap").unwrap().login(all, "jane", "jane-password").await.unwrap_err();
        assert!(matches!(err, PluginError::CapabilityDenied { .. }), "{explicit:?}: {err:?}");
    }
}

/// A bare `host:port` in allowedHosts grants that server in whichever scheme the connector
/// speaks: `127.0.0.1:PORT` lets the plain ldap:// connector in, another port does not.
#[tokio::test]
async fn a_bare_host_and_port_grants_ldap_at_that_port() {
    let slapd = Slapd::start();
    let all = Scopes { offline_access: true, groups: true };
    let plain = config(&slapd.ldap_addr, json!({"insecureNoSSL": true}));
    let registry = typed_registry(plain.clone(), Some(vec![slapd.ldap_addr.clone()])).await;
    assert!(registry.get("ldap").unwrap().login(all, "jane", "jane-password").await.unwrap().is_some());
    let registry = typed_registry(plain, Some(vec![slapd.ldaps_addr.clone()])).await;
    let err = registry.get("ldap").unwrap().login(all, "jane", "jane-password").await.unwrap_err();
    assert!(matches!(err, PluginError::CapabilityDenied { .. }), "{err:?}");
}

/// Dex's `rootCA` as Dex writes it, a PEM file path, in a `type: ldap` block: the broker reads
/// the file (plugins have no filesystem), the connector verifies LDAPS against it, and a file
/// that cannot be read is a config error naming the key.
#[tokio::test]
async fn a_root_ca_file_path_verifies_ldaps() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ldap-ca.pem");
    std::fs::write(&ca, &slapd.ca_pem).unwrap();
    let ldaps = config(&slapd.ldaps_addr, json!({"rootCA": ca.display().to_string()}));
    let block =
        format!("- type: ldap\n  id: ldap\n  name: Directory\n  config: {}\n", serde_json::to_string(&ldaps).unwrap());
    let b = TestBroker::builder().connectors(&block).extra(&plugins_dir()).start().await;
    let tokens = login_ok(&b, "ldap", "jane", "jane-password").await;
    assert_eq!(tokens.claims["email"], "jane@example.org");

    let err = typed_config_error(&config(&slapd.ldaps_addr, json!({"rootCA": "/no/such/ldap-ca.pem"})));
    assert!(err.contains("connectors[1].config.rootCA: cannot read /no/such/ldap-ca.pem"), "{err}");
}

/// The error loading a config whose connector is `type: ldap` with `config` fails with.
fn typed_config_error(config: &Value) -> String {
    let block =
        format!("- type: ldap\n  id: ldap\n  name: Directory\n  config: {}\n", serde_json::to_string(config).unwrap());
    let yaml = portcullis_tests::base_config("http://127.0.0.1:1/dex", &block);
    portcullis::config::Config::from_yaml(
        std::path::Path::new("t.yaml"),
        &format!("{yaml}\n{}", plugins_dir()),
        &|_| None,
    )
    .unwrap_err()
    .to_string()
}

/// Dex's `clientCert`/`clientKey` in a `type: ldap` block: the broker reads the files (the
/// plugin never sees the key) and presents the certificate, so a slapd that demands one lets
/// the connector in over LDAPS and StartTLS, and refuses the same connector without it. Half a
/// pair, or a key that is not the certificate's, is a config error naming the keys.
#[tokio::test]
async fn a_client_certificate_is_presented_when_the_directory_demands_one() {
    let slapd = Slapd::demanding_client_certs();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    };
    let ca = file("ca.pem", &slapd.ca_pem);
    let (cert_pem, key_pem) = slapd.ca.client_cert("portcullis");
    let (cert, key) = (file("client.pem", &cert_pem), file("client.key", &key_pem));
    let block = |id: &str, config: &Value| {
        format!(
            "- type: ldap\n  id: {id}\n  name: Directory {id}\n  config: {}\n",
            serde_json::to_string(config).unwrap()
        )
    };
    let with_cert = json!({"rootCA": ca, "clientCert": cert, "clientKey": key});
    let ldaps = config(&slapd.ldaps_addr, with_cert.clone());
    let mut starttls_keys = with_cert.clone();
    starttls_keys["startTLS"] = true.into();
    let starttls = config(&slapd.ldap_addr, starttls_keys);
    let without = config(&slapd.ldaps_addr, json!({"rootCA": ca}));
    let blocks = [block("mtls", &ldaps), block("starttls", &starttls), block("nocert", &without)].concat();
    let b = TestBroker::builder().connectors(&blocks).extra(&plugins_dir()).start().await;
    for id in ["mtls", "starttls"] {
        let tokens = login_ok(&b, id, "jane", "jane-password").await;
        assert_eq!(tokens.claims["email"], "jane@example.org", "{id}");
    }
    let web = browser();
    let (page, _) = flow::authorize(&b, &web, "nocert", SCOPES).await;
    let form = page.text().await.unwrap();
    let posted = flow::submit_password(&b, &web, "nocert", &form, "jane", "jane-password").await;
    assert_eq!(posted.status(), StatusCode::BAD_GATEWAY, "slapd refuses a client without a certificate");

    let (_, other_key) = slapd.ca.client_cert("someone else");
    let other_key = file("other.key", &other_key);
    let cases = [
        (json!({"clientCert": cert}), "clientCert and clientKey go together"),
        (json!({"clientCert": cert, "clientKey": other_key}), "is not the key of the certificate in"),
        (json!({"clientCert": "/no/such/client.pem", "clientKey": key}), "cannot read /no/such/client.pem"),
    ];
    for (keys, want) in cases {
        let err = typed_config_error(&config(&slapd.ldaps_addr, keys));
        assert!(err.contains("connectors[1].config"), "{err}");
        assert!(err.contains(want), "{want}: {err}");
    }
}
