//! OpenID Connect relying-party logic shared by the `oidc` and `google` connectors.
//!
//! The flow, one step per module: [`discovery`] reads the provider's metadata and checks its
//! issuer; [`login`] builds the authorization URL with PKCE (S256) and a nonce kept in the
//! login's `state-data`, and turns the callback into verified ID token claims; [`token`] talks
//! to the token endpoint (code, refresh) and verifies ID tokens through the host's `jose`
//! import; [`claims`] reads claims the way Dex does; [`userinfo`] fetches and checks userinfo;
//! [`exchange`] checks a token a client presents for OAuth 2.0 token exchange (RFC 8693).
//!
//! # Security
//!
//! - The ID token's signature, `iss`, `aud` and `exp` are checked by the host (`jose::verify`)
//!   against the provider's `jwks_uri`, with only the discovered algorithms (RS256 when none are
//!   listed); the nonce, `azp` and the userinfo `sub` are checked here.
//! - Tokens, codes, verifiers and secrets never appear in log lines or error messages.
//! - Upstream data is untrusted: every missing or malformed field is an error, never a panic.

pub mod claims;
pub mod discovery;
pub mod exchange;
pub mod login;
pub mod token;
pub mod userinfo;

pub use discovery::{Overrides, Provider};
pub use login::{Pending, authorization_url, handle_callback};
/// Randomness and PKCE S256, shared with the OAuth 2.0 connectors.
pub use portcullis_oauth2_core::random;
pub use token::{ConnectorData, TokenResponse};

/// How this broker authenticates to the provider's token endpoint.
pub struct Client<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    /// The `redirect_uri` sent at authorization and again at the code exchange.
    pub redirect_uri: &'a str,
    /// Send the credentials in the form body (client_secret_post) instead of HTTP Basic.
    pub secret_in_body: bool,
}

/// Dex's `redirectURI` when set, else the broker's per-connector callback URL.
pub fn redirect_uri<'a>(configured: Option<&'a str>, host_callback: &'a str) -> &'a str {
    configured.filter(|s| !s.is_empty()).unwrap_or(host_callback)
}

/// The scopes to ask upstream: the configured ones (or `defaults`), plus `extra` when missing.
pub fn upstream_scopes(configured: Option<&[String]>, defaults: &[&str], extra: Option<&str>) -> Vec<String> {
    let mut scopes: Vec<String> = match configured {
        Some(list) if !list.is_empty() => list.to_vec(),
        _ => defaults.iter().map(|s| s.to_string()).collect(),
    };
    if let Some(extra) = extra
        && !scopes.iter().any(|s| s == extra)
    {
        scopes.push(extra.to_string());
    }
    scopes
}

/// Checks a `promptType` value: empty, or space-separated OIDC prompt values.
pub fn check_prompt(prompt: &str) -> Result<(), portcullis_connector_sdk::ConnectorError> {
    for value in prompt.split(' ').filter(|s| !s.is_empty()) {
        if !matches!(value, "none" | "login" | "consent" | "select_account") {
            return Err(portcullis_connector_sdk::ConnectorError::Config(format!(
                "promptType: {value:?} is not an OpenID Connect prompt value; write consent, login, \
                 select_account, none, or \"\" to send no prompt"
            )));
        }
    }
    Ok(())
}

/// Checks that `value` (the config key `key`) is an absolute http(s) URL.
pub fn check_url(key: &str, value: &str) -> Result<(), portcullis_connector_sdk::ConnectorError> {
    if portcullis_connector_sdk::config::is_absolute_url(value) {
        return Ok(());
    }
    Err(portcullis_connector_sdk::ConnectorError::Config(format!(
        "{key}: {value:?} is not an absolute URL; write it as https://host[:port][/path]"
    )))
}

/// Checks that the required string `value` (the config key `key`) is not empty.
pub fn check_set(key: &str, value: &str) -> Result<(), portcullis_connector_sdk::ConnectorError> {
    if value.trim().is_empty() {
        return Err(portcullis_connector_sdk::ConnectorError::Config(format!("{key} must not be empty")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_default_and_extra() {
        let configured = vec!["openid".to_string(), "groups".to_string()];
        assert_eq!(upstream_scopes(None, &["openid", "email"], None), ["openid", "email"]);
        assert_eq!(
            upstream_scopes(Some(&configured), &["openid"], Some("offline_access")),
            ["openid", "groups", "offline_access"]
        );
        let with = vec!["openid".to_string(), "offline_access".to_string()];
        assert_eq!(upstream_scopes(Some(&with), &[], Some("offline_access")), ["openid", "offline_access"]);
    }

    #[test]
    fn config_checks() {
        assert!(check_prompt("").is_ok() && check_prompt("consent select_account").is_ok());
        assert!(check_prompt("always").unwrap_err().message().contains("always"));
        assert!(check_url("issuer", "https://idp.example.com").is_ok());
        assert!(check_url("issuer", "idp.example.com").unwrap_err().message().starts_with("issuer:"));
        assert!(check_set("clientID", " ").is_err());
        assert_eq!(redirect_uri(Some(""), "https://b/cb"), "https://b/cb");
        assert_eq!(redirect_uri(Some("https://b/callback"), "https://b/cb"), "https://b/callback");
    }
}
