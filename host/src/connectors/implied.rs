//! The hosts a connector may reach when its entry has no `allowedHosts`, each with its reason:
//! the set the broker implies from the operator's own config block, so a Dex connector block
//! (which has no such line) works unchanged. `registry::host_grants` picks this or the list.
//!
//! The implied set is derived here, in the host, from what the operator wrote; a plugin has
//! no say in it (it never sees this code, and nothing it returns widens the set):
//!
//! - **keys of a shipped type** that name its upstream without being a URL: `github`'s
//!   `hostName` (`https://<hostName>`, or the `http://` test URL written out), `ldap`'s `host`
//!   (`ldap://` with `insecureNoSSL` or `startTLS`, default port 389, else `ldaps://` on 636,
//!   as the shipped ldap connector dials it);
//! - **every absolute URL** (`http`, `https`, `ldap`, `ldaps`) anywhere in `config`, such as
//!   `oidc`'s `issuer` and `providerDiscoveryOverrides.tokenURL`, **except under keys that do not
//!   name a server to reach** ([`NOT_TARGETS`]): `redirectURI` is the broker's own callback,
//!   `issuerAlias` is a name to compare with, `scopes`, `acrValues`, `claimMapping`,
//!   `claimModifications`, `userIDKey` and `userNameKey` hold names that often look like URLs (`https://www.googleapis.com/auth/...`, Auth0's
//!   namespaced claims), `entityIssuer` is the broker's own SAML name and `ssoIssuer` the IdP's
//!   (compared, never dialled), `ssoURL` is where the browser (never the plugin) posts a SAML
//!   request;
//! - **the documented fixed hosts of a shipped type** when its config names no other upstream:
//!   `github` without `hostName` (github.com, api.github.com), `google` without `issuer` or with Google's own (what
//!   the google connector calls: accounts.google.com for discovery and the browser,
//!   oauth2.googleapis.com for tokens, openidconnect.googleapis.com for userinfo,
//!   www.googleapis.com for keys; and admin.googleapis.com for the Directory API when
//!   `serviceAccountFilePath` configures Workspace groups, unless `directoryURL` names another);
//!   `gitlab` without `baseURL` (gitlab.com); `microsoft` without `apiURL` (login.microsoftonline.com)
//!   and without `graphURL` (graph.microsoft.com); `bitbucket-cloud` without `baseURL`
//!   (bitbucket.org) and without `apiURL` (api.bitbucket.org); `linkedin` without `baseURL`
//!   (www.linkedin.com) and without `apiURL` (api.linkedin.com); `gitea` without `baseURL`
//!   (gitea.com). `oauth` (its three endpoint URLs) and `openshift` (`issuer`) always name their
//!   upstream in URLs.
//!
//! - **`oidc` with Google's issuer** (`https://accounts.google.com`, Dex's own oidc example):
//!   the same Google hosts as `google`, since Google's discovery document names them.
//!
//! Nothing else: hosts any other OIDC discovery document names on other servers need
//! `allowedHosts`.
//! Each implied entry is an exact `scheme://host[:port]` (never a wildcard), so a loopback
//! issuer such as `http://127.0.0.1:5556/dex` is reachable and nothing beside it. An explicit
//! `allowedHosts` (even `[]`) replaces the implied set entirely.

use std::fmt;

use serde_json::Value;
use url::Url;

/// Keys whose values are never hosts to reach, compared case-insensitively at any depth.
pub const NOT_TARGETS: &[&str] = &[
    "redirectURI",
    "issuerAlias",
    "scopes",
    "acrValues",
    "claimMapping",
    "claimModifications",
    "userIDKey",
    "userNameKey",
    "entityIssuer",
    "ssoIssuer",
    "ssoURL",
];

/// What the google connector calls when no `issuer` overrides Google.
const GOOGLE_HOSTS: &[&str] = &[
    "https://accounts.google.com",
    "https://oauth2.googleapis.com",
    "https://openidconnect.googleapis.com",
    "https://www.googleapis.com",
];

/// The Admin SDK Directory API, which the google connector reads Workspace groups from.
const GOOGLE_DIRECTORY: &str = "https://admin.googleapis.com";

/// github.com's web (OAuth) and API hosts, for `github` without `hostName`.
const GITHUB_HOSTS: &[&str] = &["https://github.com", "https://api.github.com"];

/// The documented hosts of the OAuth-family types: (type, key that replaces the host, host).
const FIXED_HOSTS: &[(&str, &str, &str)] = &[
    ("gitlab", "baseURL", "https://gitlab.com"),
    ("gitea", "baseURL", "https://gitea.com"),
    ("microsoft", "apiURL", "https://login.microsoftonline.com"),
    ("microsoft", "graphURL", "https://graph.microsoft.com"),
    ("bitbucket-cloud", "baseURL", "https://bitbucket.org"),
    ("bitbucket-cloud", "apiURL", "https://api.bitbucket.org"),
    ("linkedin", "baseURL", "https://www.linkedin.com"),
    ("linkedin", "apiURL", "https://api.linkedin.com"),
];

/// Why a connector may reach a host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Written in the connector's `allowedHosts`.
    Explicit,
    /// Named by this key of the connector's `config` (a path such as `providerDiscoveryOverrides.tokenURL`).
    ConfigKey(String),
    /// A documented host of this shipped connector type.
    Documented(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Explicit => f.write_str("explicit allowedHosts"),
            Self::ConfigKey(key) => write!(f, "implied by config key {key}"),
            Self::Documented(kind) => write!(f, "documented host of type {kind}"),
        }
    }
}

/// One host a connector may reach: an `allowedHosts` entry and why it is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGrant {
    pub entry: String,
    pub reason: Reason,
}

/// The hosts implied by a connector's `config`, for a shipped `kind` (`github`, `ldap`, ...) or
/// none (a plugin given by path: only the URLs in its config).
pub fn implied(kind: Option<&str>, config: &Value) -> Vec<HostGrant> {
    let mut out = Vec::new();
    let mut add = |entry: Option<String>, reason: Reason| {
        if let Some(entry) = entry
            && !out.iter().any(|g: &HostGrant| g.entry == entry)
        {
            out.push(HostGrant { entry, reason });
        }
    };
    let key = |name: &str| config.get(name).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
    match kind {
        Some("github") => match key("hostName") {
            Some(host) if host.contains("://") => add(exact(host), Reason::ConfigKey("hostName".into())),
            Some(host) => add(exact(&format!("https://{host}")), Reason::ConfigKey("hostName".into())),
            None => GITHUB_HOSTS.iter().for_each(|h| add(Some(h.to_string()), Reason::Documented("github".into()))),
        },
        Some("google") if key("issuer").is_none_or(is_google) => {
            GOOGLE_HOSTS.iter().for_each(|h| add(Some(h.to_string()), Reason::Documented("google".into())));
            if key("serviceAccountFilePath").is_some() && key("directoryURL").is_none() {
                add(Some(GOOGLE_DIRECTORY.to_string()), Reason::Documented("google".into()));
            }
        }
        // Google's own issuer: its discovery document names token, userinfo and key endpoints
        // on other Google hosts, which the operator of Dex's most-copied oidc example never wrote.
        Some("oidc") if key("issuer").is_some_and(is_google) => {
            GOOGLE_HOSTS
                .iter()
                .for_each(|h| add(Some(h.to_string()), Reason::Documented("oidc (Google's issuer)".into())));
        }
        Some("ldap") => {
            if let Some(host) = key("host") {
                add(ldap_entry(host, config), Reason::ConfigKey("host".into()));
            }
        }
        Some(kind) => {
            for (_, replaced_by, host) in FIXED_HOSTS.iter().filter(|(k, _, _)| *k == kind) {
                if key(replaced_by).is_none() {
                    add(Some(host.to_string()), Reason::Documented(kind.into()));
                }
            }
        }
        None => {}
    }
    let mut urls = Vec::new();
    scan(config, String::new(), &mut urls);
    for (path, url) in urls {
        add(exact(&url), Reason::ConfigKey(path));
    }
    out
}

/// Whether `issuer` is Google's (`https://accounts.google.com`, with or without a trailing `/`):
/// what Dex's google connector always uses (it has no `issuer` key; Dex's own example config
/// writes one anyway) and what Dex's oidc examples point at.
fn is_google(issuer: &str) -> bool {
    issuer.trim_end_matches('/').eq_ignore_ascii_case(GOOGLE_HOSTS[0])
}

/// Every string under `value` that is an absolute URL, with its key path, skipping [`NOT_TARGETS`].
fn scan(value: &Value, path: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) if s.contains("://") => out.push((path, s.trim().to_string())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                scan(item, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                if NOT_TARGETS.iter().any(|n| n.eq_ignore_ascii_case(k)) {
                    continue;
                }
                scan(v, if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out);
            }
        }
        _ => {}
    }
}

/// The exact entry for `url` (`scheme://host[:port]`), if it is an absolute URL the broker can reach.
fn exact(url: &str) -> Option<String> {
    let url = Url::parse(url).ok()?;
    let port = url.port();
    if !matches!(url.scheme(), "http" | "https" | "ldap" | "ldaps") {
        return None;
    }
    let host = match url.host()? {
        url::Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => format!("[{ip}]"),
    };
    if host.is_empty() {
        return None;
    }
    Some(match port {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// The server the ldap connector dials for `host` (host:port without a scheme): `ldap://` with
/// `insecureNoSSL` or `startTLS` (default port 389), else `ldaps://` (default port 636).
fn ldap_entry(host: &str, config: &Value) -> Option<String> {
    let flag = |k: &str| config.get(k).and_then(Value::as_bool).unwrap_or(false);
    let (scheme, default_port) = if flag("insecureNoSSL") || flag("startTLS") { ("ldap", 389) } else { ("ldaps", 636) };
    if host.contains("://") || host.contains('/') {
        return None;
    }
    // A bare IPv6 literal ("::1") has colons but no port; bracket it first.
    let host = if host.contains(':') && !host.starts_with('[') && host.matches(':').count() > 1 {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let url = Url::parse(&format!("{scheme}://{host}")).ok()?;
    let port = url.port().unwrap_or(default_port);
    let with_port = match url.host()? {
        url::Host::Ipv6(ip) => format!("{scheme}://[{ip}]:{port}"),
        h => format!("{scheme}://{h}:{port}"),
    };
    exact(&with_port)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::connectors::capabilities::allowlist::Allowlist;

    fn entries(kind: Option<&str>, config: Value) -> Vec<(String, String)> {
        implied(kind, &config).into_iter().map(|g| (g.entry, g.reason.to_string())).collect()
    }

    fn pairs(rows: &[(&str, &str)]) -> Vec<(String, String)> {
        rows.iter().map(|(e, r)| (e.to_string(), r.to_string())).collect()
    }

    #[test]
    fn github_on_github_com_gets_its_documented_hosts() {
        let config = json!({"clientID": "a", "clientSecret": "b", "redirectURI": "https://dex.example.com/callback"});
        assert_eq!(
            entries(Some("github"), config),
            pairs(&[
                ("https://github.com", "documented host of type github"),
                ("https://api.github.com", "documented host of type github"),
            ])
        );
    }

    #[test]
    fn github_enterprise_and_test_servers_get_the_host_name_only() {
        let ghe = entries(Some("github"), json!({"hostName": "ghe.corp.example"}));
        assert_eq!(ghe, pairs(&[("https://ghe.corp.example", "implied by config key hostName")]));
        let fake = entries(Some("github"), json!({"hostName": "http://127.0.0.1:5557/"}));
        assert_eq!(fake, pairs(&[("http://127.0.0.1:5557", "implied by config key hostName")]));
    }

    #[test]
    fn ldap_follows_the_connectors_scheme_and_port_rules() {
        // (config, implied entry) — add a row to extend.
        let rows = [
            (json!({"host": "ldap.corp:636"}), "ldaps://ldap.corp:636"),
            (json!({"host": "ldap.corp"}), "ldaps://ldap.corp:636"),
            (json!({"host": "127.0.0.1:3890", "insecureNoSSL": true}), "ldap://127.0.0.1:3890"),
            (json!({"host": "ldap.corp", "insecureNoSSL": true}), "ldap://ldap.corp:389"),
            (json!({"host": "ldap.corp", "startTLS": true}), "ldap://ldap.corp:389"),
            (json!({"host": "[::1]:1389", "startTLS": true}), "ldap://[::1]:1389"),
            (json!({"host": "::1"}), "ldaps://[::1]:636"),
        ];
        for (config, want) in rows {
            let got = entries(Some("ldap"), config.clone());
            assert_eq!(got, pairs(&[(want, "implied by config key host")]), "{config}");
        }
        // The connector refuses a scheme in host; the URL in it is still one the operator wrote.
        let with_scheme = entries(Some("ldap"), json!({"host": "ldaps://x:1636"}));
        assert_eq!(with_scheme, pairs(&[("ldaps://x:1636", "implied by config key host")]));
    }

    #[test]
    fn oidc_gets_the_issuer_and_override_urls_not_the_brokers_own_or_names() {
        let config = json!({
            "issuer": "https://sso.example.com/realms/main",
            "redirectURI": "https://broker.example.com/dex/callback",
            "scopes": ["openid", "https://www.googleapis.com/auth/admin.directory.group.readonly"],
            "claimMapping": {"groups": "https://claims.example.com/groups"},
            "userIDKey": "https://claims.example.com/id",
            "providerDiscoveryOverrides": {"tokenURL": "https://tokens.example.com:8443/token"},
        });
        assert_eq!(
            entries(Some("oidc"), config),
            pairs(&[
                ("https://sso.example.com", "implied by config key issuer"),
                ("https://tokens.example.com:8443", "implied by config key providerDiscoveryOverrides.tokenURL"),
            ])
        );
    }

    #[test]
    fn google_gets_googles_hosts_unless_an_issuer_points_elsewhere() {
        let google = entries(Some("google"), json!({"clientID": "a"}));
        assert_eq!(google.len(), GOOGLE_HOSTS.len());
        assert!(google.iter().all(|(_, r)| r == "documented host of type google"));
        let fake = entries(Some("google"), json!({"issuer": "http://127.0.0.1:9000"}));
        assert_eq!(fake, pairs(&[("http://127.0.0.1:9000", "implied by config key issuer")]));
        // Dex's examples/config-dev.yaml writes Google's own issuer, which Dex's google ignores.
        for issuer in ["https://accounts.google.com", "https://accounts.google.com/"] {
            let dex = entries(Some("google"), json!({"issuer": issuer}));
            assert_eq!(dex.len(), GOOGLE_HOSTS.len(), "{issuer}");
            assert!(dex.iter().all(|(_, r)| r == "documented host of type google"), "{dex:?}");
        }
        // Dex's oidc example: Google's issuer brings the hosts its discovery document names.
        let oidc = entries(Some("oidc"), json!({"issuer": "https://accounts.google.com"}));
        let hosts: Vec<&str> = oidc.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(hosts, GOOGLE_HOSTS, "{oidc:?}");
        assert_eq!(oidc[1].1, "documented host of type oidc (Google's issuer)");
        // SAML's ssoIssuer is the IdP's name, not a server.
        let saml = entries(Some("saml"), json!({"ssoIssuer": "https://idp.example.com/metadata"}));
        assert_eq!(saml, pairs(&[]));
        // Workspace groups add the Directory API.
        let groups = entries(Some("google"), json!({"serviceAccountFilePath": "/etc/sa.json"}));
        assert_eq!(groups.len(), GOOGLE_HOSTS.len() + 1);
        assert!(groups.contains(&(GOOGLE_DIRECTORY.to_string(), "documented host of type google".to_string())));
    }

    #[test]
    fn oauth_types_get_their_documented_hosts_unless_a_key_replaces_them() {
        // (type, config, implied entries) — add a row to extend.
        let documented = |kind: &str| format!("documented host of type {kind}");
        let rows = [
            ("gitlab", json!({"clientID": "a"}), vec![("https://gitlab.com", documented("gitlab"))]),
            ("gitea", json!({"clientID": "a"}), vec![("https://gitea.com", documented("gitea"))]),
            (
                "gitea",
                json!({"baseURL": "https://codeberg.org"}),
                vec![("https://codeberg.org", "implied by config key baseURL".into())],
            ),
            (
                "gitlab",
                json!({"baseURL": "https://gitlab.corp.example/"}),
                vec![("https://gitlab.corp.example", "implied by config key baseURL".into())],
            ),
            (
                "microsoft",
                json!({"tenant": "contoso.onmicrosoft.com"}),
                vec![
                    ("https://login.microsoftonline.com", documented("microsoft")),
                    ("https://graph.microsoft.com", documented("microsoft")),
                ],
            ),
            (
                "microsoft",
                json!({"apiURL": "https://login.microsoftonline.us", "graphURL": "https://graph.microsoft.us"}),
                vec![
                    ("https://login.microsoftonline.us", "implied by config key apiURL".into()),
                    ("https://graph.microsoft.us", "implied by config key graphURL".into()),
                ],
            ),
            (
                "bitbucket-cloud",
                json!({"teams": ["acme"]}),
                vec![
                    ("https://bitbucket.org", documented("bitbucket-cloud")),
                    ("https://api.bitbucket.org", documented("bitbucket-cloud")),
                ],
            ),
            (
                "linkedin",
                json!({"redirectURI": "https://sso.example/callback"}),
                vec![
                    ("https://www.linkedin.com", documented("linkedin")),
                    ("https://api.linkedin.com", documented("linkedin")),
                ],
            ),
            (
                "openshift",
                json!({"issuer": "https://api.c1.example:6443"}),
                vec![("https://api.c1.example:6443", "implied by config key issuer".into())],
            ),
        ];
        for (kind, config, want) in rows {
            let want: Vec<(String, String)> = want.into_iter().map(|(e, r)| (e.to_string(), r)).collect();
            assert_eq!(entries(Some(kind), config.clone()), want, "{kind} {config}");
        }
    }

    #[test]
    fn a_plugin_by_path_gets_only_the_urls_of_its_config() {
        let config = json!({"host": "api.example.com", "apiURL": "https://api.example.com/v1", "n": 3});
        assert_eq!(entries(None, config), pairs(&[("https://api.example.com", "implied by config key apiURL")]));
        assert!(entries(None, json!({"hostName": "ghe.example.com"})).is_empty(), "only github reads hostName");
        assert!(entries(None, json!({"url": "ftp://files.example.com"})).is_empty());
    }

    #[test]
    fn every_implied_entry_parses_and_grants_only_its_own_origin() {
        let config = json!({"issuer": "http://127.0.0.1:5556/dex", "other": "https://[::1]:8443/x"});
        let grants = implied(Some("oidc"), &config);
        let list = Allowlist::parse(&grants.iter().map(|g| g.entry.clone()).collect::<Vec<_>>()).unwrap();
        let check = |u: &str| list.check(&Url::parse(u).unwrap()).is_some();
        assert!(check("http://127.0.0.1:5556/dex/.well-known/openid-configuration"));
        assert!(check("https://[::1]:8443/y"));
        assert!(!check("https://127.0.0.1:5556/"), "the scheme is exact");
        assert!(!check("http://127.0.0.1:5557/"));
        assert!(!check("http://[::1]:8443/"), "the scheme is exact");
    }
}
