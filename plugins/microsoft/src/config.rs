//! The connector's `config` block: Dex's Microsoft keys, checked once in `describe`, and the
//! URLs they imply (Entra ID's global cloud, or a national cloud through `apiURL`/`graphURL`).

use portcullis_connector_sdk::{ConnectorError, config};
use portcullis_oauth2_core::refuse_unsupported;
use serde::Deserialize;
use serde_json::Value;

/// Dex's Microsoft connector config, key for key.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    /// A file Dex re-reads on every exchange: refused (a plugin has no filesystem).
    client_assertion: Option<Value>,
    #[serde(rename = "redirectURI")]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub only_security_groups: bool,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub group_name_format: GroupNameFormat,
    #[serde(default)]
    pub use_groups_as_whitelist: bool,
    #[serde(default)]
    pub email_to_lowercase: bool,
    /// Accepted for Dex's sake: this connector always looks names up in chunks of 1000.
    #[serde(default, rename = "batchGroupLookups")]
    _batch_group_lookups: bool,
    #[serde(rename = "apiURL")]
    pub api_url: Option<String>,
    #[serde(rename = "graphURL")]
    pub graph_url: Option<String>,
    #[serde(default)]
    pub prompt_type: String,
    #[serde(default)]
    pub domain_hint: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub preferred_username_field: Option<PreferredUsernameField>,
}

/// Groups as display names (one more Graph call) or object IDs.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum GroupNameFormat {
    #[default]
    Name,
    Id,
}

/// Which Graph field fills `preferred_username`.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "camelCase")]
pub enum PreferredUsernameField {
    Name,
    Email,
    MailNickname,
    OnPremisesSamAccountName,
}

const LOGIN: &str = "https://login.microsoftonline.com";
const GRAPH: &str = "https://graph.microsoft.com";

impl Config {
    /// Everything serde cannot check; each error names the key and what to write.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        config::require("clientID", &self.client_id, "write the app registration's Application (client) ID")?;
        refuse_unsupported(
            "clientAssertion",
            self.client_assertion.as_ref(),
            "a connector cannot read files; authenticate with clientSecret",
        )?;
        config::require("clientSecret", &self.client_secret, "write a client secret of the app registration")?;
        for (key, url) in [("apiURL", &self.api_url), ("graphURL", &self.graph_url)] {
            if let Some(url) = url {
                config::absolute_url(key, url, "https://login.microsoftonline.us")?;
            }
        }
        if let Some(uri) = &self.redirect_uri {
            config::absolute_url("redirectURI", uri, "https://dex.example.com/dex/callback")?;
        }
        if self.tenant.contains(['/', '?', '#', ' ']) {
            return Err(ConnectorError::Config(format!(
                "tenant {:?} is not a tenant: write common, organizations, consumers, a tenant ID or a domain",
                self.tenant
            )));
        }
        // Dex skips the group lookup for multi-tenant logins, so `groups` would silently not be
        // enforced there: refuse instead.
        if !self.groups.is_empty() && !self.org_tenant() {
            return Err(ConnectorError::Config(format!(
                "groups needs a specific tenant (a tenant ID or domain): with tenant {} Microsoft Graph \
                 cannot be asked for the user's groups, so the restriction could not be enforced",
                self.tenant()
            )));
        }
        for value in self.prompt_type.split(' ').filter(|s| !s.is_empty()) {
            if !matches!(value, "login" | "none" | "consent" | "select_account") {
                return Err(ConnectorError::Config(format!(
                    "promptType: {value:?} is not a Microsoft prompt value; write login, none, consent or select_account"
                )));
            }
        }
        Ok(())
    }

    /// The tenant path segment: `common` by default.
    pub fn tenant(&self) -> &str {
        if self.tenant.is_empty() { "common" } else { &self.tenant }
    }

    /// A specific tenant (not `common`, `organizations` or `consumers`): only then Graph is asked
    /// for groups.
    pub fn org_tenant(&self) -> bool {
        !matches!(self.tenant(), "common" | "organizations" | "consumers")
    }

    pub fn login_base(&self) -> &str {
        self.api_url.as_deref().filter(|u| !u.is_empty()).unwrap_or(LOGIN).trim_end_matches('/')
    }

    pub fn graph_base(&self) -> &str {
        self.graph_url.as_deref().filter(|u| !u.is_empty()).unwrap_or(GRAPH).trim_end_matches('/')
    }

    pub fn authorize_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/authorize", self.login_base(), self.tenant())
    }

    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.login_base(), self.tenant())
    }

    /// Dex's `redirectURI` when set, else the broker's per-connector callback.
    pub fn redirect_uri<'a>(&'a self, callback_url: &'a str) -> &'a str {
        config::redirect_uri(self.redirect_uri.as_deref(), callback_url)
    }

    /// Groups are fetched for a specific tenant when `groups` is set or the client asked.
    pub fn groups_required(&self, groups_scope: bool) -> bool {
        (!self.groups.is_empty() || groups_scope) && self.org_tenant()
    }

    /// `scopes` (default `user.read`), then `directory.read.all` when groups are fetched and
    /// `offline_access` when the client asked for it, as Dex sends them.
    pub fn upstream_scopes(&self, groups_scope: bool, offline: bool) -> Vec<String> {
        let mut scopes = portcullis_oauth2_core::flow::scopes_or(&self.scopes, &["user.read"]);
        if self.groups_required(groups_scope) {
            scopes.push("directory.read.all".into());
        }
        if offline {
            scopes.push("offline_access".into());
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
    fn urls_and_scopes() {
        let c = parse(r#"{"clientID": "i", "clientSecret": "s"}"#);
        assert_eq!(c.authorize_url(), "https://login.microsoftonline.com/common/oauth2/v2.0/authorize");
        assert_eq!(c.upstream_scopes(true, true), ["user.read", "offline_access"], "no groups for common");
        let c = parse(
            r#"{"clientID": "i", "clientSecret": "s", "tenant": "contoso.com", "apiURL": "http://127.0.0.1:1/", "scopes": ["openid", "user.read"]}"#,
        );
        assert_eq!(c.token_url(), "http://127.0.0.1:1/contoso.com/oauth2/v2.0/token");
        assert_eq!(c.upstream_scopes(true, false), ["openid", "user.read", "directory.read.all"]);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn refusals_name_the_key() {
        for (json, key) in [
            (
                r#"{"clientID": "i", "clientSecret": "s", "clientAssertion": "/var/run/token"}"#,
                "clientAssertion is not supported",
            ),
            (r#"{"clientID": "i", "clientSecret": "s", "groups": ["eng"]}"#, "groups needs a specific tenant"),
            (r#"{"clientID": "i", "clientSecret": "s", "promptType": "always"}"#, "promptType"),
            (r#"{"clientID": "i", "clientSecret": ""}"#, "clientSecret"),
            (r#"{"clientID": "i", "clientSecret": "s", "graphURL": "graph.microsoft.us"}"#, "graphURL"),
        ] {
            let err = parse(json).validate().unwrap_err();
            assert!(err.message().contains(key), "{json}: {}", err.message());
        }
        for (json, key) in [
            (r#"{"clientID": "i", "groupNameFormat": "mail"}"#, "unknown variant `mail`"),
            (r#"{"clientID": "i", "preferredUsernameField": "upn"}"#, "unknown variant `upn`"),
            (r#"{"clientID": "i", "onlySecurityGroup": true}"#, "unknown field `onlySecurityGroup`"),
        ] {
            let err = serde_json::from_str::<Config>(json).err().unwrap().to_string();
            assert!(err.contains(key), "{json}: {err}");
        }
    }
}
