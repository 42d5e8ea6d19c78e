//! Data-driven config tests: every `tests/config/good/*.yaml` loads, and every
//! `tests/config/bad/*.yaml` fails with exactly the message in the `.err` file beside it.
//! Add a pair of files to add a case.

use std::path::{Path, PathBuf};

use portcullis::config::Config;

fn env(name: &str) -> Option<String> {
    (name == "APP_SECRET").then(|| "from-the-environment".to_string())
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Result<portcullis::config::Validated, String> {
    let text = std::fs::read_to_string(path).unwrap();
    Config::from_yaml(path, &text, &env).map_err(|e| e.to_string())
}

#[test]
fn good_configs_load() {
    let good = files("config/good");
    assert!(good.len() >= 2);
    for path in good {
        let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.clients.is_empty(), "{}", path.display());
    }
    let minimal = load(Path::new("config/good/minimal.yaml")).unwrap();
    assert!(minimal.clients["app"].secret.as_ref().unwrap().matches("from-the-environment"));
}

#[test]
fn bad_configs_fail_with_their_exact_error() {
    let bad = files("config/bad");
    assert!(bad.len() >= 10);
    let mut mismatches = Vec::new();
    for path in bad {
        let expected = std::fs::read_to_string(path.with_extension("err")).unwrap();
        match load(&path) {
            Ok(_) => mismatches.push(format!("{}: loaded, expected an error", path.display())),
            Err(got) if got.trim() != expected.trim() => {
                mismatches.push(format!("{}:\n  want: {}\n  got:  {}", path.display(), expected.trim(), got.trim()))
            }
            Err(_) => {}
        }
    }
    assert!(mismatches.is_empty(), "\n{}", mismatches.join("\n"));
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let config = load(Path::new("config/good/dex-example.yaml")).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("ZXhhbXBsZS1hcHAtc2VjcmV0"), "client secret leaked");
    assert!(!debug.contains("$2a$10$2b2cU8"), "password hash leaked");
}

/// What `portcullis check-config` prints after "ok": per connector, each host it may reach and
/// why — implied from a config key, a documented host of the shipped type, or explicit
/// allowedHosts. The broker's own callback (`redirectURI`) is never among them.
#[test]
fn check_config_lists_each_connectors_hosts_and_why() {
    let yaml = r#"
issuer: http://127.0.0.1:5556/dex
storage: {type: memory}
staticClients:
- {id: app, secret: s, redirectURIs: ["http://127.0.0.1:5555/callback"]}
connectors:
- type: github
  id: github
  name: GitHub
  config: {clientID: a, clientSecret: b, redirectURI: "http://127.0.0.1:5556/dex/callback"}
- type: github
  id: ghe
  name: GitHub Enterprise
  config: {clientID: a, clientSecret: b, hostName: ghe.corp.example}
- type: oidc
  id: sso
  name: SSO
  config:
    issuer: https://sso.corp.example/realms/main
    clientID: a
    clientSecret: b
    redirectURI: http://127.0.0.1:5556/dex/callback
    scopes: [openid, "https://www.googleapis.com/auth/userinfo.email"]
- type: ldap
  id: ldap
  name: LDAP
  config: {host: "ldap.corp.example", startTLS: true}
- type: ldap
  id: pinned
  name: Pinned
  allowedHosts: ["ldap.corp.example:389", "*.corp.example"]
  config: {host: "ldap.corp.example", startTLS: true}
- type: mockCallback
  id: mock
  name: Mock
"#;
    let config = Config::from_yaml(Path::new("check.yaml"), yaml, &env).unwrap();
    let report = portcullis::connectors::hosts_report(config.connectors.iter().map(|c| &c.spec));
    let want = r#"connector "github" may reach (implied, no allowedHosts):
  https://github.com      documented host of type github
  https://api.github.com  documented host of type github
connector "ghe" may reach (implied, no allowedHosts):
  https://ghe.corp.example  implied by config key hostName
connector "sso" may reach (implied, no allowedHosts):
  https://sso.corp.example  implied by config key issuer
connector "ldap" may reach (implied, no allowedHosts):
  ldap://ldap.corp.example:389  implied by config key host
connector "pinned" may reach (allowedHosts):
  ldap.corp.example:389  explicit allowedHosts
  *.corp.example         explicit allowedHosts
connector "mock" may reach no host (implied, no allowedHosts)
"#;
    assert_eq!(report, want, "\n{report}");
}

/// Dex's `DEX_EXPAND_ENV=false` takes every value literally (a `$` in an LDAP password); the
/// default expands, and a value Go's ParseBool cannot read is refused naming the variable.
#[test]
fn dex_expand_env_false_takes_values_literally() {
    let yaml = "issuer: http://127.0.0.1:5556/dex\nstorage: {type: memory}\nstaticClients:\n- id: app\n  secret: \
                p4$$w0rd$NOT_SET\n  redirectURIs: ['http://127.0.0.1:5555/callback']\n";
    let with = |value: &'static str| move |name: &str| (name == "DEX_EXPAND_ENV").then(|| value.to_string());
    let literal = Config::from_yaml(Path::new("t.yaml"), yaml, &with("false")).unwrap();
    assert!(literal.clients["app"].secret.as_ref().unwrap().matches("p4$$w0rd$NOT_SET"));
    let err = Config::from_yaml(Path::new("t.yaml"), yaml, &with("true")).unwrap_err().to_string();
    assert!(err.contains("environment variable $NOT_SET is not set"), "{err}");
    let err = Config::from_yaml(Path::new("t.yaml"), yaml, &with("no")).unwrap_err().to_string();
    assert!(err.contains("environment variable DEX_EXPAND_ENV=\"no\""), "{err}");
}

/// Dex's `hashFromEnv`: a static user's bcrypt hash read from the named variable; unset, the
/// config is refused naming the key and the variable; with `hash` too, refused naming both.
#[test]
fn a_static_users_hash_comes_from_hash_from_env() {
    const HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";
    let yaml = |keys: &str| {
        format!(
            "issuer: http://127.0.0.1:5556/dex\nstorage: {{type: memory}}\nenablePasswordDB: true\nstaticPasswords:\n- \
             email: admin@example.com\n  username: admin\n  userID: u-1\n{keys}"
        )
    };
    let env = |name: &str| (name == "ADMIN_HASH").then(|| HASH.to_string());
    let loaded = Config::from_yaml(Path::new("t.yaml"), &yaml("  hashFromEnv: ADMIN_HASH\n"), &env).unwrap();
    assert!(loaded.passwords[0].hash.matches(HASH));
    let err = Config::from_yaml(Path::new("t.yaml"), &yaml("  hashFromEnv: NOT_SET\n"), &env).unwrap_err().to_string();
    assert!(err.contains("staticPasswords[0].hashFromEnv: environment variable NOT_SET is not set"), "{err}");
    // An argon2id hash comes the same way; one above the bounds is refused naming hashFromEnv.
    let argon2id = portcullis::password::hash_argon2id("password", 256, 1, 1).unwrap();
    let huge = "$argon2id$v=19$m=64,t=64,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    let env2 = |name: &str| match name {
        "ARGON" => Some(argon2id.clone()),
        "HUGE" => Some(huge.to_string()),
        _ => None,
    };
    let loaded = Config::from_yaml(Path::new("t.yaml"), &yaml("  hashFromEnv: ARGON\n"), &env2).unwrap();
    assert!(loaded.passwords[0].hash.matches(&argon2id));
    let err = Config::from_yaml(Path::new("t.yaml"), &yaml("  hashFromEnv: HUGE\n"), &env2).unwrap_err().to_string();
    assert!(
        err.contains("staticPasswords[0].hashFromEnv: the argon2id hash asks for t (passes) = 64 per check"),
        "{err}"
    );
    let both = yaml(&format!("  hash: \"{HASH}\"\n  hashFromEnv: ADMIN_HASH\n"));
    let err = Config::from_yaml(Path::new("t.yaml"), &both, &env).unwrap_err().to_string();
    assert!(err.contains("give hash or hashFromEnv, not both"), "{err}");
}
