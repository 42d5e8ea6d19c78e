//! Provider metadata from `{issuer}/.well-known/openid-configuration`, fetched on every call
//! (a fresh instance keeps nothing), with its `issuer` checked against the configured one.

use portcullis_connector_sdk::{ConnectorError, http};
use serde::Deserialize;

/// The algorithms the host's `jose::verify` supports (`host/src/connectors/capabilities/jose.rs`).
const HOST_ALGORITHMS: &[&str] = &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// What the connector needs from the discovery document.
#[derive(Debug, Clone, Deserialize)]
pub struct Provider {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// Dex's `providerDiscoveryOverrides`: endpoints used instead of the discovered ones.
/// `deviceAuthURL` and `endSessionURL` are accepted for Dex's sake; the connector uses neither.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Overrides {
    #[serde(rename = "authURL")]
    pub auth_url: Option<String>,
    #[serde(rename = "tokenURL")]
    pub token_url: Option<String>,
    #[serde(rename = "jwksURL")]
    pub jwks_url: Option<String>,
    #[serde(rename = "userInfoURL")]
    pub user_info_url: Option<String>,
    #[serde(rename = "deviceAuthURL")]
    pub device_auth_url: Option<String>,
    #[serde(rename = "endSessionURL")]
    pub end_session_url: Option<String>,
}

impl Overrides {
    /// Each URL set, with its key, for the config check.
    pub fn urls(&self) -> Vec<(&'static str, &str)> {
        [
            ("providerDiscoveryOverrides.authURL", &self.auth_url),
            ("providerDiscoveryOverrides.tokenURL", &self.token_url),
            ("providerDiscoveryOverrides.jwksURL", &self.jwks_url),
            ("providerDiscoveryOverrides.userInfoURL", &self.user_info_url),
            ("providerDiscoveryOverrides.deviceAuthURL", &self.device_auth_url),
            ("providerDiscoveryOverrides.endSessionURL", &self.end_session_url),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().filter(|u| !u.is_empty()).map(|u| (k, u)))
        .collect()
    }
}

/// The discovery URL of `issuer` (OIDC Discovery §4: a trailing `/` is removed first).
pub fn discovery_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

impl Provider {
    /// Fetches and checks the discovery document of `issuer`.
    pub fn discover(issuer: &str) -> Result<Self, ConnectorError> {
        Self::discover_as(issuer, issuer)
    }

    /// Fetches the discovery document of `issuer`, which must name `expected` as its issuer
    /// (Dex's `issuerAlias`, for providers whose document names another URL than the one it is
    /// served under; `issuer` itself otherwise).
    pub fn discover_as(issuer: &str, expected: &str) -> Result<Self, ConnectorError> {
        let provider: Provider = http::get_json(&discovery_url(issuer), &[])?;
        provider.check(expected)?;
        Ok(provider)
    }

    /// The document with the endpoints `overrides` names written over it (Dex's
    /// `providerDiscoveryOverrides`), checked again.
    pub fn overridden(mut self, overrides: &Overrides) -> Result<Self, ConnectorError> {
        let issuer = self.issuer.clone();
        for (value, endpoint) in [
            (&overrides.auth_url, &mut self.authorization_endpoint),
            (&overrides.token_url, &mut self.token_endpoint),
            (&overrides.jwks_url, &mut self.jwks_uri),
        ] {
            if let Some(url) = value.as_deref().filter(|u| !u.is_empty()) {
                *endpoint = url.to_string();
            }
        }
        if let Some(url) = overrides.user_info_url.as_deref().filter(|u| !u.is_empty()) {
            self.userinfo_endpoint = Some(url.to_string());
        }
        self.check(&issuer)?;
        Ok(self)
    }

    /// The document must describe the configured issuer exactly (OIDC Discovery §4.3).
    pub fn check(&self, issuer: &str) -> Result<(), ConnectorError> {
        if self.issuer != issuer {
            return Err(ConnectorError::Upstream(format!(
                "the discovery document of {issuer} names the issuer {:?}; set `issuer` to exactly that value \
                 if it is the right provider",
                self.issuer
            )));
        }
        for (name, value) in [
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
            ("jwks_uri", &self.jwks_uri),
        ] {
            if !(value.starts_with("https://") || value.starts_with("http://")) {
                return Err(ConnectorError::Upstream(format!(
                    "the discovery document of {issuer} has no usable {name}"
                )));
            }
        }
        Ok(())
    }

    /// The algorithms ID tokens may be signed with: the discovered ones the host's `jose`
    /// import verifies (public-key only: never `none` nor HMAC, whose key is the client secret),
    /// RS256 when none remain. The host refuses the whole list if one name is outside its set.
    pub fn algorithms(&self) -> Vec<String> {
        let listed: Vec<String> = self
            .id_token_signing_alg_values_supported
            .iter()
            .filter(|a| HOST_ALGORITHMS.contains(&a.as_str()))
            .cloned()
            .collect();
        if listed.is_empty() { vec!["RS256".to_string()] } else { listed }
    }

    /// Whether the client should send its secret in the form body: when Basic is refused by
    /// config (`basicAuthUnsupported`) or the provider lists only `client_secret_post`.
    pub fn secret_in_body(&self, basic_auth_unsupported: bool) -> bool {
        let methods = &self.token_endpoint_auth_methods_supported;
        basic_auth_unsupported
            || (methods.iter().any(|m| m == "client_secret_post")
                && !methods.iter().any(|m| m == "client_secret_basic"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(issuer: &str) -> Provider {
        serde_json::from_value(serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": "https://idp.test/auth",
            "token_endpoint": "https://idp.test/token",
            "jwks_uri": "https://idp.test/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }))
        .unwrap()
    }

    #[test]
    fn issuer_must_match_exactly() {
        assert!(provider("https://idp.test").check("https://idp.test").is_ok());
        let err = provider("https://idp.test/").check("https://idp.test").unwrap_err();
        assert!(err.message().contains("\"https://idp.test/\""), "{err:?}");
        assert_eq!(discovery_url("https://idp.test/"), "https://idp.test/.well-known/openid-configuration");
    }

    #[test]
    fn overrides_replace_the_discovered_endpoints() {
        let overrides: Overrides = serde_json::from_value(serde_json::json!({
            "tokenURL": "https://other.test/token", "jwksURL": "", "userInfoURL": "https://other.test/me"
        }))
        .unwrap();
        let p = provider("https://idp.test").overridden(&overrides).unwrap();
        assert_eq!(
            (p.token_endpoint.as_str(), p.jwks_uri.as_str()),
            ("https://other.test/token", "https://idp.test/keys")
        );
        assert_eq!(p.userinfo_endpoint.as_deref(), Some("https://other.test/me"));
        assert_eq!(p.authorization_endpoint, "https://idp.test/auth");
        assert_eq!(overrides.urls().len(), 2, "empty values are not set");
        let bad: Overrides = serde_json::from_value(serde_json::json!({"authURL": "/auth"})).unwrap();
        assert!(provider("https://idp.test").overridden(&bad).is_err());
        assert!(serde_json::from_value::<Overrides>(serde_json::json!({"tokenUrl": "x"})).is_err());
    }

    #[test]
    fn algorithms_and_auth_method() {
        let mut p = provider("https://idp.test");
        assert_eq!(p.algorithms(), ["RS256"]);
        assert!(p.secret_in_body(false));
        // Keycloak/Auth0 list HMAC and algorithms the host lacks: only the verifiable ones remain.
        let listed = ["RS256", "HS256", "HS512", "ES512", "none", "ES256", "EdDSA", "PS384"];
        p.id_token_signing_alg_values_supported = listed.iter().map(|a| a.to_string()).collect();
        assert_eq!(p.algorithms(), ["RS256", "ES256", "EdDSA", "PS384"]);
        for only in [&["HS256", "none"][..], &["ES512"], &[]] {
            p.id_token_signing_alg_values_supported = only.iter().map(|a| a.to_string()).collect();
            assert_eq!(p.algorithms(), ["RS256"], "{only:?}");
        }
    }
}
