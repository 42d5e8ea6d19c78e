//! The connector's `config` block: Dex's Gitea keys, checked once in `describe`.

use portcullis_connector_sdk::{ConnectorError, config};
use serde::Deserialize;
use serde_json::Value;

/// Dex's Gitea connector config, key for key, plus `rootCAs` (read by the host into this
/// connector's trust store, for a self-hosted instance with a private CA).
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
    pub orgs: Vec<Org>,
    #[serde(default)]
    pub load_all_groups: bool,
    #[serde(default, rename = "useLoginAsID")]
    pub use_login_as_id: bool,
    #[serde(rename = "rootCAs")]
    _root_cas: Option<Value>,
}

/// An organisation whose members may log in; with `teams`, only members of those teams.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Org {
    pub name: String,
    #[serde(default)]
    pub teams: Vec<String>,
}

const GITEA_COM: &str = "https://gitea.com";

impl Config {
    /// Everything serde cannot check; each error names the key and what to write.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        config::require("clientID", &self.client_id, "write the Gitea OAuth2 application's client ID")?;
        config::require("clientSecret", &self.client_secret, "write the Gitea OAuth2 application's client secret")?;
        if let Some(base) = &self.base_url {
            config::absolute_url("baseURL", base, "https://gitea.example.com")?;
        }
        if let Some(uri) = &self.redirect_uri {
            config::absolute_url("redirectURI", uri, "https://dex.example.com/dex/callback")?;
        }
        for (i, org) in self.orgs.iter().enumerate() {
            if org.name.trim().is_empty() {
                return Err(ConnectorError::Config(format!("orgs[{i}].name must not be empty: write the org's name")));
            }
            if org.teams.iter().any(|t| t.trim().is_empty()) {
                return Err(ConnectorError::Config(format!(
                    "orgs[{i}].teams has an empty entry: write team names, or drop `teams`"
                )));
            }
        }
        Ok(())
    }

    /// The instance root without a trailing `/`: `https://gitea.com` by default.
    pub fn base(&self) -> &str {
        self.base_url.as_deref().filter(|b| !b.is_empty()).unwrap_or(GITEA_COM).trim_end_matches('/')
    }

    /// Dex's `redirectURI` when set, else the broker's per-connector callback.
    pub fn redirect_uri<'a>(&'a self, callback_url: &'a str) -> &'a str {
        config::redirect_uri(self.redirect_uri.as_deref(), callback_url)
    }

    /// Teams are read when `orgs` or `loadAllGroups` is set, whatever the scope (as Dex).
    pub fn groups_required(&self) -> bool {
        !self.orgs.is_empty() || self.load_all_groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_key() {
        for (json, key) in [
            (r#"{"clientID": "", "clientSecret": "s"}"#, "clientID"),
            (r#"{"clientID": "i", "clientSecret": "s", "baseURL": "codeberg.org"}"#, "baseURL"),
            (r#"{"clientID": "i", "clientSecret": "s", "orgs": [{"name": "a", "teams": [""]}]}"#, "orgs[0].teams"),
        ] {
            let c: Config = serde_json::from_str(json).unwrap();
            assert!(c.validate().unwrap_err().message().contains(key), "{json}");
        }
        let err = serde_json::from_str::<Config>(r#"{"clientID": "i", "clientSecret": "s", "org": "a"}"#);
        assert!(err.err().unwrap().to_string().contains("unknown field `org`"));
        let c: Config = serde_json::from_str(r#"{"clientID": "i", "clientSecret": "s"}"#).unwrap();
        assert_eq!(c.base(), "https://gitea.com");
    }
}
