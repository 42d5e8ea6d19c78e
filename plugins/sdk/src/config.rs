//! Checks on a connector's config that serde cannot make, with errors that name the key and
//! say what to write.

use crate::ConnectorError;

/// `value` if it is not empty (or only spaces); else a config error: "`key` is required: `what`".
pub fn require<'a>(key: &str, value: &'a str, what: &str) -> Result<&'a str, ConnectorError> {
    if value.trim().is_empty() {
        return Err(ConnectorError::Config(format!("{key} is required: {what}")));
    }
    Ok(value)
}

/// Whether `value` is an absolute `http://` or `https://` URL with a host.
pub fn is_absolute_url(value: &str) -> bool {
    value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
}

/// `value` if it is an absolute http(s) URL; else a config error naming `key` and `example`.
pub fn absolute_url<'a>(key: &str, value: &'a str, example: &str) -> Result<&'a str, ConnectorError> {
    if !is_absolute_url(value) {
        return Err(ConnectorError::Config(format!("{key} must be an absolute http(s) URL, such as `{example}`")));
    }
    Ok(value)
}

/// The base URL in `value` (an API root that paths are appended to) without its trailing
/// slashes; a config error naming `key` and `example` unless it is an absolute http(s) URL
/// without a query or fragment.
pub fn base_url(key: &str, value: &str, example: &str) -> Result<String, ConnectorError> {
    let value = require(key, value, &format!("the server's base URL, such as `{example}`"))?.trim();
    absolute_url(key, value, example)?;
    if value.contains(['?', '#']) {
        return Err(ConnectorError::Config(format!(
            "{key} must not carry a query or fragment: write it as `{example}`"
        )));
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// The configured redirect URI (Dex's `redirectURI`) when set and not empty, else the broker's
/// per-connector callback URL.
pub fn redirect_uri<'a>(configured: Option<&'a str>, callback_url: &'a str) -> &'a str {
    configured.filter(|u| !u.is_empty()).unwrap_or(callback_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_name_the_key() {
        assert_eq!(require("clientID", "abc", "x").ok(), Some("abc"));
        assert_eq!(
            require("clientID", "  ", "the client ID").unwrap_err().message(),
            "clientID is required: the client ID"
        );
        assert!(absolute_url("issuer", "https://idp.example", "https://x").is_ok());
        for bad in ["idp.example", "https://", "ftp://x", "http:///path"] {
            assert!(
                absolute_url("issuer", bad, "https://x").unwrap_err().message().starts_with("issuer must be"),
                "{bad}"
            );
        }
        assert_eq!(
            base_url("baseURL", " https://crowd.example/crowd/ ", "https://x").ok().as_deref(),
            Some("https://crowd.example/crowd")
        );
        for (bad, want) in
            [("", "baseURL is required"), ("crowd.example", "absolute"), ("https://c.example/?a=1", "query")]
        {
            let err = base_url("baseURL", bad, "https://x").unwrap_err();
            assert!(err.message().contains(want), "{bad}: {}", err.message());
        }
        assert_eq!(redirect_uri(Some(""), "cb"), "cb");
        assert_eq!(redirect_uri(Some("https://dex/cb"), "cb"), "https://dex/cb");
    }
}
