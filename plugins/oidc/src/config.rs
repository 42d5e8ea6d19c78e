//! The connector's `config` block: Dex's `oidc` keys, with Dex's defaults.

use portcullis_connector_sdk::ConnectorError;
use portcullis_oidc_core::claims::NewGroup;
use portcullis_oidc_core::{Overrides, check_prompt, check_set, check_url};
use serde::Deserialize;

pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    pub issuer: String,
    /// The issuer the discovery document and the ID tokens name, when not `issuer` (Dex's
    /// `issuerAlias`, for providers such as Azure AD that serve discovery under another URL).
    pub issuer_alias: Option<String>,
    /// Empty in Dex's token-exchange-only block (no client registered at the provider).
    #[serde(rename = "clientID", default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    #[serde(rename = "redirectURI")]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub provider_discovery_overrides: Overrides,
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub get_user_info: bool,
    #[serde(rename = "userIDKey")]
    pub user_id_key: Option<String>,
    pub user_name_key: Option<String>,
    #[serde(default)]
    pub claim_mapping: ClaimMapping,
    /// Dex's `overrideClaimMapping`: `claimMapping` wins even when the standard claim is there.
    #[serde(default)]
    pub override_claim_mapping: bool,
    #[serde(default)]
    pub claim_modifications: ClaimModifications,
    pub prompt_type: Option<String>,
    #[serde(default)]
    pub acr_values: Vec<String>,
    pub pkce_challenge: Option<String>,
    #[serde(default)]
    pub insecure_skip_email_verified: bool,
    #[serde(default)]
    pub insecure_enable_groups: bool,
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    #[serde(default)]
    pub basic_auth_unsupported: bool,
    /// Accepted only as `false`: TLS verification cannot be turned off.
    insecure_skip_verify: Option<bool>,
    /// Dex's `rootCAs`: read and enforced by the host, which adds them to this connector's
    /// HTTPS trust store (`host/src/connectors/capabilities/trust.rs`); nothing to do here.
    #[serde(default, rename = "rootCAs")]
    _root_cas: serde::de::IgnoredAny,
    // A Dex key this connector does not implement: refused with a clear message.
    hosted_domains: Option<serde_json::Value>,
}

/// Dex's `claimMapping`: which claims hold the handle, the email and the groups.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClaimMapping {
    pub preferred_username: Option<String>,
    pub email: Option<String>,
    pub groups: Option<String>,
}

/// Dex's `claimModifications`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimModifications {
    #[serde(default)]
    pub new_group_from_claims: Vec<NewGroup>,
    #[serde(default)]
    pub modify_group_names: ModifyGroupNames,
    #[serde(default)]
    pub filter_group_claims: FilterGroupClaims,
}

/// Dex's `claimModifications.filterGroupClaims`: only the groups read from the claims that
/// `groupsFilter` (a regular expression, matched anywhere in the name) matches are kept.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterGroupClaims {
    #[serde(default)]
    pub groups_filter: String,
}

impl FilterGroupClaims {
    /// The compiled filter, `None` when none is set. Dex logs an invalid expression and keeps
    /// every group; it is refused here instead, since a typo would let every group through.
    pub fn regex(&self) -> Result<Option<regex::Regex>, ConnectorError> {
        if self.groups_filter.is_empty() {
            return Ok(None);
        }
        regex::Regex::new(&self.groups_filter).map(Some).map_err(|e| {
            ConnectorError::Config(format!(
                "claimModifications.filterGroupClaims.groupsFilter {:?} is not a regular expression: {e}; correct \
                 it (Dex would ignore it with a warning and keep every group) or remove filterGroupClaims",
                self.groups_filter
            ))
        })
    }
}

/// Dex's `claimModifications.modifyGroupNames`: text around every group read from the claims.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModifyGroupNames {
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub suffix: String,
}

impl Config {
    /// Everything that can be checked without the network.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let refuse = |m: String| Err(ConnectorError::Config(m));
        if self.insecure_skip_verify == Some(true) {
            return refuse(
                "insecureSkipVerify: TLS certificate verification cannot be turned off in Portcullis; remove the \
                 key, and list the provider's CA in rootCAs if the broker does not trust it already"
                    .into(),
            );
        }
        if self.hosted_domains.is_some() {
            return refuse(
                "hostedDomains is not supported by the oidc connector (Dex removed it too); use the google \
                 connector, which checks hostedDomains against the hd claim"
                    .into(),
            );
        }
        self.claim_modifications.filter_group_claims.regex()?;
        check_url("issuer", &self.issuer)?;
        if let Some(alias) = &self.issuer_alias {
            check_url("issuerAlias", alias)?;
        }
        for (key, url) in self.provider_discovery_overrides.urls() {
            check_url(key, url)?;
        }
        if !(self.client_id.is_empty() && self.client_secret.is_empty()) {
            check_set("clientID", &self.client_id)?;
            check_set("clientSecret", &self.client_secret)?;
        }
        if let Some(uri) = &self.redirect_uri {
            check_url("redirectURI", uri)?;
        }
        for (key, value) in [("userIDKey", &self.user_id_key), ("userNameKey", &self.user_name_key)] {
            if value.as_deref().is_some_and(str::is_empty) {
                return refuse(format!("{key} must not be empty; leave it out for the default"));
            }
        }
        if !self.allowed_groups.is_empty() && !self.insecure_enable_groups {
            return refuse(
                "allowedGroups needs insecureEnableGroups: true (the groups are read from the claims); Dex \
                 would ignore allowedGroups here and let everyone in"
                    .into(),
            );
        }
        for (i, rule) in self.claim_modifications.new_group_from_claims.iter().enumerate() {
            if rule.claims.is_empty() {
                return refuse(format!(
                    "claimModifications.newGroupFromClaims[{i}].claims is empty; list the claims to join"
                ));
            }
        }
        match self.pkce_challenge.as_deref() {
            None | Some("" | "S256") => {}
            Some("plain") => {
                return refuse(
                    "pkceChallenge: plain sends the verifier itself and is not supported; leave the key out \
                     (the connector always uses S256) or write S256"
                        .into(),
                );
            }
            Some(other) => return refuse(format!("pkceChallenge: {other:?} is not a PKCE method; write S256")),
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

    /// The issuer the discovery document and the ID tokens name: `issuerAlias`, else `issuer`.
    pub fn expected_issuer(&self) -> &str {
        self.issuer_alias.as_deref().filter(|a| !a.is_empty()).unwrap_or(&self.issuer)
    }

    /// `promptType`, Dex's default `consent` when absent; `""` sends none.
    pub fn prompt(&self) -> &str {
        self.prompt_type.as_deref().unwrap_or("consent")
    }

    /// The scopes asked upstream: `openid` first (Dex adds it), then the configured ones, or
    /// Dex's `profile` and `email`.
    pub fn upstream_scopes(&self) -> Vec<String> {
        let configured = self.scopes.as_deref().filter(|s| !s.is_empty());
        let mut scopes = vec!["openid".to_string()];
        match configured {
            Some(list) => scopes.extend(list.iter().filter(|s| *s != "openid").cloned()),
            None => scopes.extend(DEFAULT_SCOPES.iter().filter(|s| **s != "openid").map(|s| s.to_string())),
        }
        scopes
    }

    pub fn user_id_key(&self) -> &str {
        self.user_id_key.as_deref().unwrap_or("sub")
    }

    pub fn user_name_key(&self) -> &str {
        self.user_name_key.as_deref().unwrap_or("name")
    }
}
