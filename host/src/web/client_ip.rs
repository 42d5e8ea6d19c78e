//! The client's address: the TCP peer's, or — only when that peer is a trusted proxy — the one
//! the proxy forwarded in a header (Dex's `web.clientRemoteIP`). What this yields is what
//! [`super::ClientIp`] gives the throttles and the request log.
//!
//! # Security
//!
//! A forwarding header is written by whoever sends the request, so it is read only from peers
//! inside `trustedProxies`. A chain such as `X-Forwarded-For: a, b, c` is walked from the right
//! (each proxy appends the address it saw), skipping trusted proxies; the first address that is
//! not one is the client. Everything left of it may be forged and is never used. A malformed hop
//! ends the walk, and the peer's address is used, as Dex does.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::{HeaderMap, HeaderName};

use crate::config::{Cidr, ClientRemoteIpConfig};

/// Resolves the client's address behind trusted proxies (see the module docs).
#[derive(Debug, Clone)]
pub struct RealIp {
    header: HeaderName,
    trusted: Vec<Cidr>,
}

impl RealIp {
    /// The resolver for a validated `web.clientRemoteIP`; `None` when no header is set (the
    /// peer's address is then the client's).
    pub fn from_config(config: &ClientRemoteIpConfig) -> Option<Self> {
        let header = HeaderName::from_str(config.header.as_deref()?.trim()).ok()?;
        let trusted = config.trusted_proxies.iter().filter_map(|c| c.parse().ok()).collect();
        Some(Self { header, trusted })
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// Whether the connection's peer `peer` is one of the trusted proxies (an authenticating
    /// proxy's headers are believed only then: `proxy_auth`).
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.is_trusted(peer.to_canonical())
    }

    /// The client's address for a request from `peer` carrying `headers`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        // Several header lines are one list, in order (RFC 9110 §5.3): a proxy may add its own
        // line after a forged one, and the right-most hop must be the proxy's.
        let hops: Vec<&str> =
            headers.get_all(&self.header).iter().flat_map(|v| v.to_str().unwrap_or("!").split(',')).collect();
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if !self.is_trusted(ip) => return ip.to_canonical(),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        peer
    }
}

/// The connection's peer address itself (`None` when served without connection info), never
/// a forwarded one: what `trusts` is asked about.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let info = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(Self(info.map(|c| c.0.ip())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(header: &str, trusted: &[&str]) -> RealIp {
        RealIp::from_config(&ClientRemoteIpConfig {
            header: Some(header.into()),
            trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap()
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HeaderName::from_str(name).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let net: Cidr = "10.1.2.3/8".parse().unwrap();
        assert!(net.contains(ip("10.200.0.1")) && !net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.1")), "IPv4-mapped IPv6 peers count as IPv4");
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("192.0.2.1")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")) && !v6.contains(ip("10.0.0.1")));
        for bad in ["10.0.0.0", "10.0.0/8", "10.0.0.0/33", "::/129", "x/8", "10.0.0.0/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let r = resolver("X-Forwarded-For", &["127.0.0.0/8", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        let h = headers("x-forwarded-for", &["198.51.100.7, 203.0.113.9, 10.0.0.5"]);
        assert_eq!(r.resolve(peer, &h), ip("203.0.113.9"), "forged left part ignored, trusted hop skipped");
        // A forged first line and the proxy's own second line: the proxy's wins.
        let h = headers("x-forwarded-for", &["198.51.100.7", "203.0.113.9"]);
        assert_eq!(r.resolve(peer, &h), ip("203.0.113.9"));
        // Only trusted hops, an absent header, a malformed hop: the peer.
        assert_eq!(r.resolve(peer, &headers("x-forwarded-for", &["10.0.0.5"])), peer);
        assert_eq!(r.resolve(peer, &HeaderMap::new()), peer);
        assert_eq!(r.resolve(peer, &headers("x-forwarded-for", &["203.0.113.9, junk"])), peer);
    }

    #[test]
    fn an_untrusted_peer_is_its_own_address() {
        let r = resolver("X-Real-IP", &["10.0.0.0/8"]);
        let h = headers("x-real-ip", &["203.0.113.9"]);
        assert_eq!(r.resolve(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        assert_eq!(r.resolve(ip("10.0.0.2"), &h), ip("203.0.113.9"));
    }
}
