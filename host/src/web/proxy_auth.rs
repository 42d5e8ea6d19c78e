//! Identities forwarded by an authenticating proxy (connectors of `type: authproxy`): which
//! request headers such a connector receives at its callback, and that they come only from a
//! trusted proxy. The connector itself (plugins/authproxy) only reads what it is given.
//!
//! # Security
//!
//! Anyone can send `X-Remote-User: admin`; the header means something only when the
//! authenticating proxy set it. So, for a `type: authproxy` connector, the callback:
//!
//! - is served only when the connection's peer is one of `web.clientRemoteIP.trustedProxies`
//!   (the TCP peer, never a forwarded address); anything else gets a 403 page and a log line;
//! - passes the connector exactly the headers its config names (`userHeader`, `userIDHeader`,
//!   `userNameHeader`, `emailHeader`, `groupHeader`, with Dex's defaults), nothing else;
//! - refuses a request carrying one of them twice (a proxy that adds its header after a
//!   client-supplied one instead of replacing it would otherwise let the client's copy win, since
//!   Dex reads the first), and a value that is not UTF-8 (it is never guessed at: Latin-1 `é`
//!   and `è` would both become U+FFFD and two users one).
//!
//! What this cannot check is the proxy stripping client-supplied copies on every path, which
//! the deployment must guarantee (docs/connectors/authproxy.md).

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::client_ip::RealIp;
use super::error::WebError;
use crate::config::{ClientRemoteIpConfig, ConnectorEntry};
use crate::generation::Live;

/// The shipped connector type whose callback carries a proxy's headers.
pub const KIND: &str = "authproxy";

/// Dex's authproxy keys that name a header, and Dex's default for each.
const HEADER_KEYS: &[(&str, &str)] = &[
    ("userHeader", "X-Remote-User"),
    ("userIDHeader", "X-Remote-User-Id"),
    ("userNameHeader", "X-Remote-User-Name"),
    ("emailHeader", "X-Remote-User-Email"),
    ("groupHeader", "X-Remote-Group"),
];

/// Whether `entry` is a `type: authproxy` connector.
pub fn is_proxy(entry: &ConnectorEntry) -> bool {
    entry.spec.kind.as_deref() == Some(KIND)
}

/// The header names a `type: authproxy` connector's `config` names (Dex's default for a key it
/// leaves out or leaves empty), lower-cased, without repeats.
pub fn header_names(config: &Value) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (key, default) in HEADER_KEYS {
        let written = config.get(key).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
        let name = written.unwrap_or(default).to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Why a proxy connector's callback was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The peer is not a trusted proxy (or the broker serves without connection info).
    Untrusted(Option<IpAddr>),
    /// This header came more than once.
    Repeated(String),
    /// This header's value is not UTF-8.
    NotUtf8(String),
}

/// Whether `peer` is one of `remote`'s trusted proxies.
pub fn trusted(remote: &ClientRemoteIpConfig, peer: Option<IpAddr>) -> bool {
    match (RealIp::from_config(remote), peer) {
        (Some(real_ip), Some(peer)) => real_ip.trusts(peer),
        _ => false,
    }
}

/// The headers of `names` in `headers`, for a request from `peer`: only from a trusted proxy,
/// each at most once, each UTF-8. Absent headers are left out (the connector decides).
pub fn forwarded(
    remote: &ClientRemoteIpConfig,
    peer: Option<IpAddr>,
    names: &[String],
    headers: &HeaderMap,
) -> Result<Vec<(String, String)>, Refusal> {
    if !trusted(remote, peer) {
        return Err(Refusal::Untrusted(peer));
    }
    let mut out = Vec::new();
    for name in names {
        let mut values = headers.get_all(name.as_str()).iter();
        let Some(value) = values.next() else { continue };
        if values.next().is_some() {
            return Err(Refusal::Repeated(name.clone()));
        }
        let text = std::str::from_utf8(value.as_bytes()).map_err(|_| Refusal::NotUtf8(name.clone()))?;
        out.push((name.clone(), text.to_string()));
    }
    Ok(out)
}

impl Refusal {
    /// The page for the person at the browser; the log line says what the operator must fix.
    pub fn page(&self, live: &Arc<Live>, connector: &str) -> WebError {
        let outcome = if matches!(self, Refusal::Untrusted(_)) { "denied" } else { "error" };
        crate::metrics::global().login(connector, outcome);
        match self {
            Refusal::Untrusted(peer) => {
                let peer = peer.map_or_else(|| "an unknown address".to_string(), |p| p.to_string());
                tracing::warn!(
                    connector,
                    peer = %peer,
                    "authproxy login refused: the request did not come from a trusted proxy; the callback must be \
                     reached through the authenticating proxy, listed in web.clientRemoteIP.trustedProxies"
                );
                WebError::page(
                    live,
                    StatusCode::FORBIDDEN,
                    "Login refused",
                    "This login method accepts logins only through the organisation's authenticating proxy, and \
                     this request did not come through it.",
                )
                .hint("Open the application at its usual address and log in again; if this keeps happening, tell the administrator.")
            }
            Refusal::Repeated(name) => {
                tracing::warn!(
                    connector,
                    header = %name,
                    "authproxy login refused: the identity header came more than once; the proxy must replace \
                     client-supplied copies, not add its own after them"
                );
                WebError::page(
                    live,
                    StatusCode::BAD_REQUEST,
                    "Login refused",
                    format!("The request carried the identity header {name} more than once."),
                )
                .hint("Tell the administrator: the authenticating proxy must remove copies sent by the browser.")
            }
            Refusal::NotUtf8(name) => {
                tracing::warn!(connector, header = %name, "authproxy login refused: the identity header is not UTF-8");
                WebError::page(
                    live,
                    StatusCode::BAD_REQUEST,
                    "Login refused",
                    format!(
                        "The authenticating proxy sent the identity header {name} in an encoding other than UTF-8."
                    ),
                )
                .hint("Tell the administrator: the proxy must forward non-ASCII names as UTF-8.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};
    use serde_json::json;

    fn remote(trusted: &[&str]) -> ClientRemoteIpConfig {
        ClientRemoteIpConfig {
            header: Some("X-Forwarded-For".into()),
            trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_bytes(value).unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn header_names_follow_the_config_with_dex_defaults() {
        let defaults = header_names(&json!({}));
        assert_eq!(
            defaults,
            ["x-remote-user", "x-remote-user-id", "x-remote-user-name", "x-remote-user-email", "x-remote-group"]
        );
        let named =
            header_names(&json!({"userHeader": "X-Auth-User", "emailHeader": "X-Auth-User", "groupHeader": ""}));
        assert_eq!(named, ["x-auth-user", "x-remote-user-id", "x-remote-user-name", "x-remote-group"]);
    }

    #[test]
    fn only_a_trusted_peer_forwards_and_only_the_named_headers() {
        let names = header_names(&json!({}));
        let h = headers(&[("X-Remote-User", b"jdoe"), ("X-Remote-Group", b"eng, ops"), ("Cookie", b"c=1")]);
        let r = remote(&["127.0.0.1/32"]);
        let got = forwarded(&r, ip("127.0.0.1"), &names, &h).unwrap();
        assert_eq!(got, [("x-remote-user".into(), "jdoe".into()), ("x-remote-group".into(), "eng, ops".into())]);
        assert_eq!(forwarded(&r, ip("10.0.0.1"), &names, &h), Err(Refusal::Untrusted(ip("10.0.0.1"))));
        assert_eq!(forwarded(&r, None, &names, &h), Err(Refusal::Untrusted(None)));
        let none = ClientRemoteIpConfig::default();
        assert!(matches!(forwarded(&none, ip("127.0.0.1"), &names, &h), Err(Refusal::Untrusted(_))));
    }

    #[test]
    fn repeated_and_non_utf8_headers_are_refused() {
        let names = header_names(&json!({}));
        let r = remote(&["127.0.0.0/8"]);
        let twice = headers(&[("X-Remote-User", b"admin"), ("x-remote-user", b"jdoe")]);
        assert_eq!(forwarded(&r, ip("127.0.0.1"), &names, &twice), Err(Refusal::Repeated("x-remote-user".into())));
        let latin1 = headers(&[("X-Remote-User", b"Zo\xeb")]);
        assert_eq!(forwarded(&r, ip("127.0.0.1"), &names, &latin1), Err(Refusal::NotUtf8("x-remote-user".into())));
        let utf8 = headers(&[("X-Remote-User", "Zoë".as_bytes())]);
        assert_eq!(forwarded(&r, ip("127.0.0.1"), &names, &utf8).unwrap()[0].1, "Zoë");
    }
}
