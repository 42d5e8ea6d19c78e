//! The connector's `config` block: Dex's GitHub keys, checked once in `describe`, and the
//! URLs they imply (github.com or a GitHub Enterprise host).

use portcullis_connector_sdk::{ConnectorError, config};
use serde::Deserialize;

/// Dex's GitHub connector config, key for key (`rootCA` is read by the host into this
/// connector's trust store).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "clientID")]
    pub client_id: String,
    pub client_secret: String,
    #[serde(rename = "redirectURI")]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub orgs: Vec<Org>,
    /// Dex's legacy single-org key: the `groups` claim is the user's team names in this org
    /// (no `org:` prefix, no membership check), as Dex reads it.
    pub org: Option<String>,
    #[serde(default)]
    pub load_all_groups: bool,
    #[serde(default)]
    pub team_name_field: TeamNameField,
    #[serde(default, rename = "useLoginAsID")]
    pub use_login_as_id: bool,
    pub preferred_email_domain: Option<String>,
    pub host_name: Option<String>,
    #[serde(rename = "rootCA")]
    root_ca: Option<serde_json::Value>,
}

/// An organisation whose members may log in; with `teams`, only members of those teams.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Org {
    pub name: String,
    #[serde(default)]
    pub teams: Vec<String>,
}

/// Which name of a team goes into the `org:team` group.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum TeamNameField {
    #[default]
    Name,
    Slug,
    Both,
}

const GITHUB_WEB: &str = "https://github.com";
const GITHUB_API: &str = "https://api.github.com";

impl Config {
    /// Everything serde cannot check; each error names the key and what to write.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let bad = |m: &str| Err(ConnectorError::Config(m.to_string()));
        config::require("clientID", &self.client_id, "write the OAuth App's client ID")?;
        config::require("clientSecret", &self.client_secret, "write the OAuth App's client secret")?;
        if self.legacy_org().is_some() && !self.orgs.is_empty() {
            return bad("org and orgs: use one (Dex refuses both too); `orgs: [{name: <org>}]` is the current form");
        }
        // The host read the file into this connector's trust store; Dex asks for the host too.
        if self.root_ca.as_ref().is_some_and(|v| !v.is_null()) && self.host_name.is_none() {
            return bad("rootCA needs hostName: a root certificate is for a GitHub Enterprise host; add \
                 hostName: github.example.com (or remove rootCA for github.com)");
        }
        for (i, org) in self.orgs.iter().enumerate() {
            if org.name.trim().is_empty() {
                return Err(ConnectorError::Config(format!("orgs[{i}].name must not be empty: write the org's login")));
            }
            if org.teams.iter().any(|t| t.trim().is_empty()) {
                return Err(ConnectorError::Config(format!(
                    "orgs[{i}].teams has an empty entry: write team names or slugs, or drop `teams`"
                )));
            }
        }
        if let Some(domain) = &self.preferred_email_domain {
            let rest = domain.strip_prefix("*.").unwrap_or(domain);
            if rest.is_empty() || rest.contains(['@', '*', '/', ' ']) {
                return bad("preferredEmailDomain must be a domain such as `example.com` or `*.example.com`");
            }
        }
        if let Some(host) = &self.host_name {
            let bare = host.strip_prefix("https://").or_else(|| host.strip_prefix("http://")).unwrap_or(host);
            let bare = bare.trim_end_matches('/');
            if bare.is_empty() || bare.contains(['/', '?', '#', '@', ' ']) {
                return bad("hostName must be a host name such as `github.example.com` (optionally with a port, \
                     or with `http://` for a test server), without a path");
            }
        }
        if let Some(uri) = &self.redirect_uri {
            config::absolute_url("redirectURI", uri, "https://dex.example.com/dex/callback")?;
        }
        Ok(())
    }

    /// Whether the upstream is GitHub Enterprise Server (which has no email verification).
    pub fn enterprise(&self) -> bool {
        self.host_name.is_some()
    }

    /// `https://github.com`, or the Enterprise host (`http://` only when written out).
    fn web_base(&self) -> String {
        match &self.host_name {
            None => GITHUB_WEB.to_string(),
            Some(h) if h.starts_with("https://") || h.starts_with("http://") => h.trim_end_matches('/').to_string(),
            Some(h) => format!("https://{h}"),
        }
    }

    /// The REST API root: `https://api.github.com`, or `https://HOST/api/v3` for Enterprise.
    pub fn api_base(&self) -> String {
        match &self.host_name {
            None => GITHUB_API.to_string(),
            Some(_) => format!("{}/api/v3", self.web_base()),
        }
    }

    pub fn authorize_url(&self) -> String {
        format!("{}/login/oauth/authorize", self.web_base())
    }

    pub fn token_url(&self) -> String {
        format!("{}/login/oauth/access_token", self.web_base())
    }

    /// Dex's `redirectURI` when set, else the broker's per-connector callback.
    pub fn redirect_uri<'a>(&'a self, callback_url: &'a str) -> &'a str {
        config::redirect_uri(self.redirect_uri.as_deref(), callback_url)
    }

    /// Org and team lookups are needed: to enforce `orgs`, for the legacy `org`, or to fill
    /// the `groups` claim.
    pub fn groups_required(&self, groups_scope: bool) -> bool {
        !self.orgs.is_empty() || self.legacy_org().is_some() || groups_scope
    }

    /// The legacy `org`, when written and not empty.
    pub fn legacy_org(&self) -> Option<&str> {
        self.org.as_deref().map(str::trim).filter(|o| !o.is_empty())
    }

    /// Whether `domain` is the preferred email domain (`*.x` matches any subdomain of `x`).
    pub fn preferred_domain(&self, domain: &str) -> bool {
        let Some(want) = &self.preferred_email_domain else { return false };
        match want.strip_prefix("*.") {
            Some(parent) => domain.len().checked_sub(parent.len() + 1).is_some_and(|cut| {
                domain.is_char_boundary(cut) && domain[cut..].eq_ignore_ascii_case(&format!(".{parent}"))
            }),
            None => domain.eq_ignore_ascii_case(want),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn urls_for_github_com_and_enterprise() {
        let c = parse(r#"{"clientID": "id", "clientSecret": "s"}"#);
        assert_eq!(c.api_base(), "https://api.github.com");
        assert_eq!(c.authorize_url(), "https://github.com/login/oauth/authorize");
        let c = parse(r#"{"clientID": "id", "clientSecret": "s", "hostName": "ghe.example.com"}"#);
        assert_eq!(c.api_base(), "https://ghe.example.com/api/v3");
        assert_eq!(c.token_url(), "https://ghe.example.com/login/oauth/access_token");
        let c = parse(r#"{"clientID": "id", "clientSecret": "s", "hostName": "http://127.0.0.1:8080/"}"#);
        assert_eq!(c.api_base(), "http://127.0.0.1:8080/api/v3");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn refusals_name_the_key() {
        for (json, key) in [
            (r#"{"clientID": "", "clientSecret": "s"}"#, "clientID"),
            (r#"{"clientID": "i", "clientSecret": "s", "rootCA": "/etc/ca.pem"}"#, "hostName"),
            (r#"{"clientID": "i", "clientSecret": "s", "org": "acme", "orgs": [{"name": "b"}]}"#, "org and orgs"),
            (r#"{"clientID": "i", "clientSecret": "s", "hostName": "h/api"}"#, "hostName"),
            (r#"{"clientID": "i", "clientSecret": "s", "orgs": [{"name": ""}]}"#, "orgs[0].name"),
        ] {
            let err = parse(json).validate().unwrap_err();
            assert!(err.message().contains(key), "{json}: {}", err.message());
        }
        let err = serde_json::from_str::<Config>(r#"{"clientID": "i", "clientSecret": "s", "loadAllGroup": true}"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("loadAllGroup"), "{err}");
    }

    #[test]
    fn preferred_domain_matches_exactly_or_by_wildcard() {
        let c = parse(r#"{"clientID": "i", "clientSecret": "s", "preferredEmailDomain": "*.acme.test"}"#);
        assert!(c.preferred_domain("eng.acme.test"));
        assert!(!c.preferred_domain("acme.test"));
        assert!(!c.preferred_domain("evilacme.test"));
        let c = parse(r#"{"clientID": "i", "clientSecret": "s", "preferredEmailDomain": "acme.test"}"#);
        assert!(c.preferred_domain("ACME.test"));
        assert!(!c.preferred_domain("eng.acme.test"));
    }
}
