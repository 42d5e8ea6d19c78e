//! OAuth 2.0 client logic shared by the OAuth-family connectors (gitlab, microsoft, oauth,
//! gitea, bitbucket-cloud, openshift, linkedin), one step per module:
//!
//! - [`flow`]: the authorization URL (state, optional PKCE S256, scopes as Dex sends them) and
//!   the callback turned into a code and the login's verifier;
//! - [`token`]: the token endpoint — code and refresh grants, client authentication (Basic,
//!   form body, or Dex's "Basic, then body" detection), JSON or form-encoded answers, a 2xx
//!   carrying `error` — and [`token::Stored`], Dex's `{accessToken, refreshToken, expiry}`
//!   connector data with its reuse-or-refresh rule;
//! - [`api`]: JSON calls with a bearer token, errors classified the same way for every upstream
//!   (401 ends a login, 429 and 5xx are retryable and say when), and paging by `Link` header,
//!   by a next link in the body (`@odata.nextLink`, Bitbucket's `next`) or by page number;
//! - [`claims`]: Dex's group filter and reading user attributes from JSON;
//! - [`random`]: randomness and the PKCE challenge (also used by `oidc-core`); [`time`]: RFC 3339.
//!
//! # Security
//!
//! - A bearer token is sent only to the API origin it was issued for: a next-page link on
//!   another origin is refused, so a hostile answer cannot make the connector leak the token.
//! - Tokens, codes, verifiers and secrets never appear in log lines or error messages; URLs in
//!   errors lose their query strings.
//! - Upstream data is untrusted: a missing or malformed field is an error, never a panic, and
//!   every paging loop is bounded.

pub mod api;
pub mod claims;
pub mod flow;
pub mod random;
pub mod time;
pub mod token;

pub use api::Api;
pub use token::{AuthStyle, Client, Stored, Token};

use portcullis_connector_sdk::ConnectorError;
use serde_json::Value;

/// Refuses a Dex key this connector does not support when it is set to anything but its
/// harmless default (`null`, `false`, `""`, `[]`), naming the key and `why`.
pub fn refuse_unsupported(key: &str, value: Option<&Value>, why: &str) -> Result<(), ConnectorError> {
    let set = match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    if set {
        return Err(ConnectorError::Config(format!("{key} is not supported by this connector: {why}")));
    }
    Ok(())
}

/// At most 200 characters of an upstream's text, for error messages.
pub fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

/// `url` without its query and fragment, for error messages (queries may carry tokens).
pub fn redacted(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// `scheme://host[:port]` of an absolute URL, lower-cased; `None` for anything else.
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(format!("{}://{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unsupported_keys_are_refused_only_when_set() {
        for harmless in [None, Some(json!(null)), Some(json!(false)), Some(json!("")), Some(json!([]))] {
            assert!(refuse_unsupported("insecureCA", harmless.as_ref(), "x").is_ok(), "{harmless:?}");
        }
        let err = refuse_unsupported("insecureCA", Some(&json!(true)), "TLS is always verified").unwrap_err();
        assert_eq!(err.message(), "insecureCA is not supported by this connector: TLS is always verified");
    }

    #[test]
    fn origins_and_redaction() {
        assert_eq!(origin("https://API.example.com:8443/v1?x=1").as_deref(), Some("https://api.example.com:8443"));
        assert_eq!(origin("http://127.0.0.1:5/x").as_deref(), Some("http://127.0.0.1:5"));
        assert_eq!(origin("https://user@evil.example/"), None);
        assert_eq!(origin("/relative"), None);
        assert_eq!(redacted("https://a/p?access_token=s#f"), "https://a/p");
    }
}
