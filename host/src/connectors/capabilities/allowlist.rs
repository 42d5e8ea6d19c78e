//! `allowedHosts`: what a connector may reach, and the config line that would grant a denial.
//!
//! An entry is `host`, `host:port`, `*.domain[:port]`, or `scheme://host[:port]`. A bare `host`
//! means `https` on 443. A bare `host:port` means that host and port in whichever of the four
//! schemes (http, https, ldap, ldaps) the connector speaks there: the operator named a server,
//! and which protocol a connector uses on it is the connector's config (`insecureNoSSL`,
//! `startTLS`, an `http://` test issuer), not a second thing to repeat here. `scheme://host[:port]`
//! is that scheme only. `*.example.com` matches any subdomain of example.com, not the domain
//! itself, and only ever resolves to public addresses. Loopback and private addresses are
//! reachable only through an exact entry (an IP literal or a name the operator wrote out).

use std::net::IpAddr;

use url::Url;

/// One parsed `allowedHosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// `None`: a bare `host:port`, any of the schemes in [`default_port`].
    scheme: Option<String>,
    host: HostPattern,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.suffix`: stores `.suffix`.
    Subdomains(String),
}

/// How a URL matched the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// An exact entry: the operator named this host, private addresses allowed.
    Exact,
    /// A wildcard entry: public addresses only.
    Wildcard,
}

/// A bad `allowedHosts` entry: which one, what is wrong with it, and the shapes to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "allowedHosts[{index}]: {entry:?} {reason}; write a host (\"api.github.com\"), \"*.example.com\", \"host:port\" or \"scheme://host:port\""
)]
pub struct AllowlistError {
    pub index: usize,
    pub entry: String,
    pub reason: &'static str,
}

/// A connector's allowlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: Vec<Entry>,
}

impl Allowlist {
    /// Parses `allowedHosts`; the error names the bad entry and the accepted shapes.
    pub fn parse(entries: &[String]) -> Result<Self, AllowlistError> {
        let entries = entries
            .iter()
            .enumerate()
            .map(|(index, e)| parse_entry(e).map_err(|reason| AllowlistError { index, entry: e.clone(), reason }));
        Ok(Self { entries: entries.collect::<Result<_, _>>()? })
    }

    /// Whether `url` may be reached, and through which kind of entry.
    pub fn check(&self, url: &Url) -> Option<Grant> {
        let scheme = url.scheme();
        let host = normalized_host(url)?;
        let port = url.port_or_known_default().or_else(|| default_port(scheme))?;
        let mut grant = None;
        let scheme_fits = |e: &Entry| e.scheme.as_deref().map_or(default_port(scheme).is_some(), |s| s == scheme);
        for entry in self.entries.iter().filter(|e| scheme_fits(e) && e.port == port) {
            match &entry.host {
                HostPattern::Exact(h) if *h == host => return Some(Grant::Exact),
                HostPattern::Subdomains(suffix)
                    if host.ends_with(suffix.as_str()) && host.parse::<IpAddr>().is_err() =>
                {
                    grant = Some(Grant::Wildcard)
                }
                _ => {}
            }
        }
        grant
    }

    /// Whether `host` (a DNS name about to be resolved) may resolve to private addresses.
    pub fn allows_private(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.entries.iter().any(|e| e.host == HostPattern::Exact(host.clone()))
    }

    /// The `allowedHosts` line that would grant `url`.
    pub fn suggestion(url: &Url) -> String {
        let host = normalized_host(url).unwrap_or_default();
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        let port = url.port_or_known_default();
        match (url.scheme(), port) {
            ("https", Some(443) | None) => host,
            ("https", Some(p)) => format!("{host}:{p}"),
            (scheme, p) if p == default_port(scheme) => format!("{scheme}://{host}"),
            (scheme, Some(p)) => format!("{scheme}://{host}:{p}"),
            (scheme, None) => format!("{scheme}://{host}"),
        }
    }
}

fn normalized_host(url: &Url) -> Option<String> {
    match url.host()? {
        url::Host::Domain(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
        url::Host::Ipv4(ip) => Some(ip.to_string()),
        url::Host::Ipv6(ip) => Some(ip.to_string()),
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "ldap" => Some(389),
        "ldaps" => Some(636),
        _ => None,
    }
}

fn parse_entry(text: &str) -> Result<Entry, &'static str> {
    let text = text.trim();
    let bare_with_port = !text.contains("://") && has_port(text);
    let with_scheme = if text.contains("://") { text.to_string() } else { format!("https://{text}") };
    let (wildcard, for_url) = match with_scheme.split_once("://*.") {
        Some((scheme, rest)) => (true, format!("{scheme}://wildcard.{rest}")),
        None => (false, with_scheme.clone()),
    };
    let url = Url::parse(&for_url).map_err(|_| "is not a host")?;
    if !matches!(url.path(), "" | "/") || url.query().is_some() || !url.username().is_empty() {
        return Err("must not carry a path, query or credentials");
    }
    let scheme = url.scheme().to_string();
    let port = url.port_or_known_default().or_else(|| default_port(&scheme)).ok_or("has an unknown scheme")?;
    if default_port(&scheme).is_none() {
        return Err("has an unsupported scheme (http, https, ldap, ldaps)");
    }
    let host = normalized_host(&url).ok_or("has no host")?;
    let host = if wildcard {
        let suffix = host.strip_prefix("wildcard").ok_or("is a malformed wildcard")?;
        if suffix.matches('.').count() < 2 {
            return Err("is a wildcard over a top-level domain");
        }
        HostPattern::Subdomains(suffix.to_string())
    } else {
        HostPattern::Exact(host)
    };
    let scheme = (!bare_with_port).then_some(scheme);
    Ok(Entry { scheme, host, port })
}

/// Whether a bare entry (`host:port`, `[v6]:port`) writes a port; `url` drops a default one.
fn has_port(text: &str) -> bool {
    text.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && (!host.contains(':') || host.ends_with(']'))
    })
}

/// Addresses a wildcard entry may not reach: loopback, private, link-local, unspecified, ...
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64/10 CGNAT
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Allowlist {
        Allowlist::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }
    fn check(list: &Allowlist, url: &str) -> Option<Grant> {
        list.check(&Url::parse(url).unwrap())
    }

    #[test]
    fn matching_rules() {
        let l = list(&[
            "api.github.com",
            "*.example.com",
            "http://127.0.0.1:8080",
            "ldaps://ldap.corp:1636",
            "127.0.0.1:389",
            "idp.corp:443",
            "[::1]:5556",
        ]);
        // (url, expected grant) — add a row to extend.
        let rows: &[(&str, Option<Grant>)] = &[
            ("https://api.github.com/user", Some(Grant::Exact)),
            ("https://API.GitHub.com./user", Some(Grant::Exact)),
            ("http://api.github.com/user", None),
            ("https://api.github.com:8443/user", None),
            ("https://github.com/", None),
            ("https://a.example.com/", Some(Grant::Wildcard)),
            ("https://a.b.example.com/", Some(Grant::Wildcard)),
            ("https://example.com/", None),
            ("https://evilexample.com/", None),
            ("http://127.0.0.1:8080/x", Some(Grant::Exact)),
            ("http://127.0.0.1:8081/x", None),
            ("http://localhost:8080/x", None),
            ("ldaps://ldap.corp:1636", Some(Grant::Exact)),
            ("ldap://ldap.corp:1636", None),
            // A bare host:port: any scheme at that port, never another port.
            ("ldap://127.0.0.1:389", Some(Grant::Exact)),
            ("ldaps://127.0.0.1:389", Some(Grant::Exact)),
            ("http://127.0.0.1:389/", Some(Grant::Exact)),
            ("https://127.0.0.1:389/", Some(Grant::Exact)),
            ("ldap://127.0.0.1", Some(Grant::Exact)),
            ("ldap://127.0.0.1:390", None),
            ("ldaps://127.0.0.1:636", None),
            // An explicit default port is still a written port.
            ("http://idp.corp:443/", Some(Grant::Exact)),
            ("https://idp.corp/", Some(Grant::Exact)),
            ("http://idp.corp/", None),
            ("http://[::1]:5556/", Some(Grant::Exact)),
        ];
        for (url, want) in rows {
            assert_eq!(check(&l, url), *want, "{url}");
        }
    }

    #[test]
    fn suggestions_are_config_lines() {
        let rows = [
            ("https://evil.example.com/steal", "evil.example.com"),
            ("https://evil.example.com:8443/", "evil.example.com:8443"),
            ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
            ("ldap://10.0.0.1/", "ldap://10.0.0.1"),
        ];
        for (url, want) in rows {
            let got = Allowlist::suggestion(&Url::parse(url).unwrap());
            assert_eq!(got, want);
            assert!(check(&list(&[&got]), url).is_some(), "suggestion {got} must grant {url}");
        }
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["https://host/path", "*.com", "ftp://x", "user@host", ""] {
            let err = Allowlist::parse(&[bad.to_string()]).unwrap_err().to_string();
            assert!(err.starts_with("allowedHosts[0]"), "{bad}: {err}");
        }
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "100.64.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["140.82.112.3", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
