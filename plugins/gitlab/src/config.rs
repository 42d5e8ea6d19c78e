//! The connector's `config` block: Dex's GitLab keys, checked once in `describe`, and the URLs
//! they imply (gitlab.com or a self-managed instance).

use portcullis_connector_sdk::{ConnectorError, config};
use portcullis_oauth2_core::refuse_unsupported;
use serde::Deserialize;
use serde_json::Value;

/// Dex's GitLab connector config, key for key, plus `rootCAs` (read by the host into this
/// connector's trust store).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "baseURL")]
    pub base_url: Option<String>,
    #[serde(rename = "clientID")]
    pub client_id: String,
    pub client_secret: String,
    #[serde(rename = "redirectURI")]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default, rename = "useLoginAsID")]
    pub use_login_as_id: bool,
    #[serde(default)]
    pub get_groups_permission: bool,
    #[serde(default)]
    pub inherited_groups: bool,
    /// Dex's base64 PEM bundle: refused, pointing at `rootCAs` (the host's trust store).
    #[serde(rename = "rootCAData")]
    root_ca_data: Option<Value>,
    #[serde(rename = "rootCAs")]
    _root_cas: Option<Value>,
}

const GITLAB_COM: &str = "https://gitlab.com";

impl Config {
    /// Everything serde cannot check; each error names the key and what to write.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        config::require("clientID", &self.client_id, "write the GitLab application's ID")?;
        config::require("clientSecret", &self.client_secret, "write the GitLab application's secret")?;
        if let Some(base) = &self.base_url {
            config::absolute_url("baseURL", base, "https://gitlab.example.com")?;
        }
        if let Some(uri) = &self.redirect_uri {
            config::absolute_url("redirectURI", uri, "https://dex.example.com/dex/callback")?;
        }
        if let Some((i, _)) = self.groups.iter().enumerate().find(|(_, g)| g.trim().is_empty()) {
            return Err(ConnectorError::Config(format!("groups[{i}] is empty: write a group's full path")));
        }
        refuse_unsupported(
            "rootCAData",
            self.root_ca_data.as_ref(),
            "the broker reads CA certificates for every connector from rootCAs; write \
             rootCAs: [<the same base64 text, a PEM file path or the PEM itself>]",
        )
    }

    /// The instance root without a trailing `/`: `https://gitlab.com` by default.
    pub fn base(&self) -> &str {
        self.base_url.as_deref().filter(|b| !b.is_empty()).unwrap_or(GITLAB_COM).trim_end_matches('/')
    }

    /// Dex's `redirectURI` when set, else the broker's per-connector callback.
    pub fn redirect_uri<'a>(&'a self, callback_url: &'a str) -> &'a str {
        config::redirect_uri(self.redirect_uri.as_deref(), callback_url)
    }

    /// Groups are looked up to enforce `groups` or to fill the `groups` claim.
    pub fn groups_required(&self, groups_scope: bool) -> bool {
        !self.groups.is_empty() || groups_scope
    }

    /// The scopes Dex asks for: `read_user`, plus `openid` when groups are needed, plus
    /// `read_api` with `inheritedGroups`.
    pub fn scopes(&self, groups_scope: bool) -> Vec<String> {
        let mut scopes = vec!["read_user".to_string()];
        if self.groups_required(groups_scope) {
            scopes.push("openid".into());
            if self.inherited_groups {
                scopes.push("read_api".into());
            }
        }
        scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_and_scopes() {
        let c = parse(r#"{"clientID": "i", "clientSecret": "s"}"#);
        assert_eq!(c.base(), "https://gitlab.com");
        assert_eq!(c.scopes(false), ["read_user"]);
        assert_eq!(c.scopes(true), ["read_user", "openid"]);
        let c = parse(
            r#"{"clientID": "i", "clientSecret": "s", "baseURL": "http://127.0.0.1:9/", "groups": ["a"], "inheritedGroups": true}"#,
        );
        assert_eq!(c.base(), "http://127.0.0.1:9");
        assert_eq!(c.scopes(false), ["read_user", "openid", "read_api"]);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn refusals_name_the_key() {
        for (json, key) in [
            (r#"{"clientID": "", "clientSecret": "s"}"#, "clientID"),
            (r#"{"clientID": "i", "clientSecret": "s", "baseURL": "gitlab.example.com"}"#, "baseURL"),
            (r#"{"clientID": "i", "clientSecret": "s", "groups": [" "]}"#, "groups[0]"),
            (r#"{"clientID": "i", "clientSecret": "s", "rootCAData": "LS0t"}"#, "rootCAData is not supported"),
        ] {
            let err = parse(json).validate().unwrap_err();
            assert!(err.message().contains(key), "{json}: {}", err.message());
        }
        let err = serde_json::from_str::<Config>(r#"{"clientID": "i", "clientSecret": "s", "useLoginAsId": true}"#);
        assert!(err.err().unwrap().to_string().contains("unknown field `useLoginAsId`"));
    }
}
