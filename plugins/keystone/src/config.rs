//! The connector's `config` block (Dex's four Keystone keys) and its validation into
//! [`Settings`], the checked form every call works from.

use portcullis_connector_sdk::{ConnectorError, config};
use serde::{Deserialize, Serialize};

/// The `config` block, with Dex's key names; any other key is refused by name.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Keystone's base URL, without `/v3`.
    #[serde(default, rename = "keystoneHost")]
    host: String,
    /// The users' domain: an id (`default` or a UUID) or a name.
    #[serde(default)]
    domain: String,
    /// An account in the same domain whose token re-reads users on refresh.
    #[serde(default, rename = "keystoneUsername")]
    admin_username: String,
    #[serde(default, rename = "keystonePassword")]
    admin_password: String,
}

/// How the login names the users' domain: Dex sends `default` and UUIDs as the domain's id,
/// anything else as its name.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    Id(String),
    Name(String),
}

/// The validated config.
pub struct Settings {
    /// `keystoneHost` without trailing slashes.
    pub host: String,
    pub domain: Domain,
    /// `keystoneUsername` and `keystonePassword`; without them there is no refresh.
    pub admin: Option<(String, String)>,
}

/// Whether `s` parses as a UUID the way Go's `uuid.Parse` (Dex's check) takes one: 32 hex
/// digits (Keystone's own ids), the hyphenated 36-character form, that form in braces, or
/// with a `urn:uuid:` prefix.
fn is_uuid(s: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let hyphenated = |s: &str| {
        let groups: Vec<&str> = s.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| hex(g))
    };
    let lower = s.to_ascii_lowercase();
    match s.len() {
        32 => hex(s),
        36 => hyphenated(s),
        38 => s.strip_prefix('{').and_then(|r| r.strip_suffix('}')).is_some_and(hyphenated),
        45 => lower.strip_prefix("urn:uuid:").is_some_and(hyphenated),
        _ => false,
    }
}

impl Config {
    /// Checks the config; every error names the key and what to write.
    pub fn settings(&self) -> Result<Settings, ConnectorError> {
        let host = config::base_url("keystoneHost", &self.host, "https://keystone.example.com:5000")?;
        if host.ends_with("/v3") {
            return Err(ConnectorError::Config(format!(
                "keystoneHost: write Keystone's base URL without /v3 (`keystoneHost: {}`); the connector adds /v3",
                host.trim_end_matches("/v3")
            )));
        }
        let domain = config::require(
            "domain",
            &self.domain,
            "the users' Keystone domain: `default`, a domain id or a domain name (Keystone refuses a login without one)",
        )?
        .trim();
        let domain = if domain == "default" || is_uuid(domain) {
            Domain::Id(domain.into())
        } else {
            Domain::Name(domain.into())
        };
        let admin = match (self.admin_username.trim().is_empty(), self.admin_password.is_empty()) {
            (true, true) => None,
            (false, false) => Some((self.admin_username.trim().to_string(), self.admin_password.clone())),
            (false, true) => {
                return Err(ConnectorError::Config(
                    "keystonePassword is required with keystoneUsername: the password of the account that re-reads \
                     users on refresh (e.g. `keystonePassword: $KEYSTONE_ADMIN_PASSWORD`)"
                        .into(),
                ));
            }
            (true, false) => {
                return Err(ConnectorError::Config(
                    "keystoneUsername is required with keystonePassword: the account that re-reads users on refresh"
                        .into(),
                ));
            }
        };
        Ok(Settings { host, domain, admin })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Result<Settings, String> {
        let config: Config = serde_json::from_value(json).map_err(|e| e.to_string())?;
        config.settings().map_err(|e| e.message().to_string())
    }

    #[test]
    fn domain_is_an_id_for_default_and_uuids_else_a_name() {
        // (domain as written, what the login sends) — add a row to extend.
        let rows = [
            ("default", Domain::Id("default".into())),
            ("8a1b0c2d3e4f40718293a4b5c6d7e8f9", Domain::Id("8a1b0c2d3e4f40718293a4b5c6d7e8f9".into())),
            ("8a1b0c2d-3e4f-4071-8293-a4b5c6d7e8f9", Domain::Id("8a1b0c2d-3e4f-4071-8293-a4b5c6d7e8f9".into())),
            ("{8a1b0c2d-3e4f-4071-8293-a4b5c6d7e8f9}", Domain::Id("{8a1b0c2d-3e4f-4071-8293-a4b5c6d7e8f9}".into())),
            (
                "urn:uuid:8a1b0c2d-3e4f-4071-8293-a4b5c6d7e8f9",
                Domain::Id("urn:uuid:8a1b0c2d-3e4f-4071-8293-a4b5c6d7e8f9".into()),
            ),
            ("Default", Domain::Name("Default".into())),
            ("acme", Domain::Name("acme".into())),
            ("8a1b0c2d3e4f40718293a4b5c6d7e8fz", Domain::Name("8a1b0c2d3e4f40718293a4b5c6d7e8fz".into())),
        ];
        for (written, want) in rows {
            let s = settings(serde_json::json!({"keystoneHost": "https://ks.example", "domain": written})).unwrap();
            assert_eq!(s.domain, want, "{written}");
        }
        let id = serde_json::to_value(Domain::Id("default".into())).unwrap();
        assert_eq!(id, serde_json::json!({"id": "default"}));
        assert_eq!(serde_json::to_value(Domain::Name("acme".into())).unwrap(), serde_json::json!({"name": "acme"}));
    }

    #[test]
    fn host_loses_its_trailing_slash_and_admin_is_optional() {
        let s = settings(serde_json::json!({"keystoneHost": "http://127.0.0.1:5000/identity/", "domain": "default"}))
            .unwrap();
        assert_eq!(s.host, "http://127.0.0.1:5000/identity");
        assert!(s.admin.is_none());
        let s = settings(serde_json::json!({
            "keystoneHost": "https://ks.example", "domain": "default", "keystoneUsername": "admin", "keystonePassword": "pw"
        }))
        .unwrap();
        assert_eq!(s.admin, Some(("admin".into(), "pw".into())));
    }

    #[test]
    fn refusals_name_the_key() {
        let cases = [
            (serde_json::json!({"domain": "default"}), "keystoneHost is required"),
            (serde_json::json!({"keystoneHost": "ks.example", "domain": "default"}), "keystoneHost must be"),
            (serde_json::json!({"keystoneHost": "https://ks.example/v3", "domain": "default"}), "without /v3"),
            (serde_json::json!({"keystoneHost": "https://ks.example"}), "domain is required"),
            (
                serde_json::json!({"keystoneHost": "https://ks.example", "domain": "d", "keystoneUsername": "a"}),
                "keystonePassword is required",
            ),
            (
                serde_json::json!({"keystoneHost": "https://ks.example", "domain": "d", "keystonePassword": "p"}),
                "keystoneUsername is required",
            ),
            (serde_json::json!({"keystoneHost": "https://ks.example", "domain": "d", "project": "p"}), "`project`"),
        ];
        for (json, want) in cases {
            let err = settings(json.clone()).err().unwrap_or_else(|| panic!("{json} accepted"));
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
