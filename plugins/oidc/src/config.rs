//! The connector's `config` block: Dex's `oidc` keys, with Dex's defaults.

use portcullis_connector_sdk::ConnectorError;
use portcullis_oidc_core::{check_prompt, check_set, check_url};
use serde::Deserialize;

pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    pub issuer: String,
    /// Empty in Dex's token-exchange-only block (no client registered at the provider).
    #[serde(rename = "clientID", default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    #[serde(rename = "redirectURI")]
    pub redirect_uri: Option<String>,
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub get_user_info: bool,
    #[serde(rename = "userIDKey")]
    pub user_id_key: Option<String>,
    pub user_name_key: Option<String>,
    #[serde(default)]
    pub claim_mapping: ClaimMapping,
    pub prompt_type: Option<String>,
    #[serde(default)]
    pub insecure_skip_email_verified: bool,
    #[serde(default)]
    pub insecure_enable_groups: bool,
    #[serde(default)]
    pub basic_auth_unsupported: bool,
    // Dex keys this connector does not implement yet: refused with a clear message.
    #[serde(rename = "rootCAs")]
    root_cas: Option<serde_json::Value>,
    insecure_skip_verify: Option<serde_json::Value>,
    allowed_groups: Option<serde_json::Value>,
    hosted_domains: Option<serde_json::Value>,
    acr_values: Option<serde_json::Value>,
    override_claim_mapping: Option<serde_json::Value>,
    claim_modifications: Option<serde_json::Value>,
    provider_discovery_overrides: Option<serde_json::Value>,
}

/// Dex's `claimMapping`: which claims hold the handle, the email and the groups.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClaimMapping {
    pub preferred_username: Option<String>,
    pub email: Option<String>,
    pub groups: Option<String>,
}

impl Config {
    /// Everything that can be checked without the network.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let unsupported = [
            ("rootCAs", self.root_cas.is_some()),
            ("insecureSkipVerify", self.insecure_skip_verify.is_some()),
            ("allowedGroups", self.allowed_groups.is_some()),
            ("hostedDomains", self.hosted_domains.is_some()),
            ("acrValues", self.acr_values.is_some()),
            ("overrideClaimMapping", self.override_claim_mapping.is_some()),
            ("claimModifications", self.claim_modifications.is_some()),
            ("providerDiscoveryOverrides", self.provider_discovery_overrides.is_some()),
        ];
        if let Some((key, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(ConnectorError::Config(format!(
                "{key} is not supported yet by the oidc connector; remove it (for Google, use the google connector)"
            )));
        }
        check_url("issuer", &self.issuer)?;
        if !(self.client_id.is_empty() && self.client_secret.is_empty()) {
            check_set("clientID", &self.client_id)?;
            check_set("clientSecret", &self.client_secret)?;
        }
        if let Some(uri) = &self.redirect_uri {
            check_url("redirectURI", uri)?;
        }
        if let Some(scopes) = &self.scopes
            && !scopes.is_empty()
            && !scopes.iter().any(|s| s == "openid")
        {
            return Err(ConnectorError::Config("scopes must include openid, e.g. [openid, profile, email]".into()));
        }
        for (key, value) in [("userIDKey", &self.user_id_key), ("userNameKey", &self.user_name_key)] {
            if value.as_deref().is_some_and(str::is_empty) {
                return Err(ConnectorError::Config(format!("{key} must not be empty; leave it out for the default")));
            }
        }
        check_prompt(self.prompt())
    }

    /// Logins need the client registered at the provider; without `clientID` and
    /// `clientSecret` the connector serves token exchange only (Dex's exchange-only block).
    pub fn check_login_client(&self) -> Result<(), ConnectorError> {
        if self.client_id.is_empty() {
            return Err(ConnectorError::Config(
                "clientID and clientSecret are not set, so this connector serves token exchange only; \
                 set them to the client registered at the provider to log users in"
                    .into(),
            ));
        }
        Ok(())
    }

    /// `promptType`, Dex's default `consent` when absent; `""` sends none.
    pub fn prompt(&self) -> &str {
        self.prompt_type.as_deref().unwrap_or("consent")
    }

    pub fn user_id_key(&self) -> &str {
        self.user_id_key.as_deref().unwrap_or("sub")
    }

    pub fn user_name_key(&self) -> &str {
        self.user_name_key.as_deref().unwrap_or("name")
    }

    pub fn preferred_username_key(&self) -> &str {
        self.claim_mapping.preferred_username.as_deref().unwrap_or("preferred_username")
    }

    pub fn email_key(&self) -> &str {
        self.claim_mapping.email.as_deref().unwrap_or("email")
    }

    pub fn groups_key(&self) -> &str {
        self.claim_mapping.groups.as_deref().unwrap_or("groups")
    }
}
