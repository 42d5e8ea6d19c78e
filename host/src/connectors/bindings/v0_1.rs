//! Bindings of contract 0.1.0 (`wit/0.1.0/`, frozen). Its exports convert to the broker's types
//! like every version's; its imports are the newest version's with fewer words, so their
//! records convert to and from 0.2.0's and the capabilities serve both.

wasmtime::component::bindgen!({
    path: "../wit/0.1.0",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "portcullis:connector/ldap.connection": crate::connectors::capabilities::ldap::connection::LdapConnection,
    },
});

use self::portcullis::connector as old;
use super::v0_2::portcullis::connector as new;

use self::portcullis::connector::types as wit;

super::convert::broker_conversions!();

/// 0.1 has no token exchange: `supports_token_identity` is always false.
impl From<wit::Metadata> for broker::Metadata {
    fn from(m: wit::Metadata) -> Self {
        Self {
            kind: m.kind.into(),
            password_prompt: m.password_prompt.map(crate::connectors::guest_text::escape_owned),
            supports_refresh: m.supports_refresh,
            supports_token_identity: false,
        }
    }
}

// What a 0.1 guest passes to an import, as 0.2.0 says it.

impl From<old::http::Request> for new::http::Request {
    fn from(r: old::http::Request) -> Self {
        Self { method: r.method, url: r.url, headers: r.headers, body: r.body }
    }
}

impl From<old::ldap::ConnectOptions> for new::ldap::ConnectOptions {
    fn from(o: old::ldap::ConnectOptions) -> Self {
        Self {
            url: o.url,
            start_tls: o.start_tls,
            root_ca_pem: o.root_ca_pem,
            insecure_skip_verify: o.insecure_skip_verify,
        }
    }
}

impl From<old::ldap::SearchScope> for new::ldap::SearchScope {
    fn from(s: old::ldap::SearchScope) -> Self {
        match s {
            old::ldap::SearchScope::Base => Self::Base,
            old::ldap::SearchScope::OneLevel => Self::OneLevel,
            old::ldap::SearchScope::Subtree => Self::Subtree,
        }
    }
}

impl From<old::jose::KeySource> for new::jose::KeySource {
    fn from(k: old::jose::KeySource) -> Self {
        match k {
            old::jose::KeySource::Jwks(doc) => Self::Jwks(doc),
            old::jose::KeySource::JwksUrl(url) => Self::JwksUrl(url),
        }
    }
}

impl From<old::jose::Expectations> for new::jose::Expectations {
    fn from(e: old::jose::Expectations) -> Self {
        Self { algorithms: e.algorithms, issuer: e.issuer, audience: e.audience, leeway_seconds: e.leeway_seconds }
    }
}

impl From<old::log::Level> for new::log::Level {
    fn from(l: old::log::Level) -> Self {
        match l {
            old::log::Level::Trace => Self::Trace,
            old::log::Level::Debug => Self::Debug,
            old::log::Level::Info => Self::Info,
            old::log::Level::Warn => Self::Warn,
            old::log::Level::Error => Self::Error,
        }
    }
}

// What an import answers, as 0.1.0 says it.

impl From<new::http::Response> for old::http::Response {
    fn from(r: new::http::Response) -> Self {
        Self { status: r.status, headers: r.headers, body: r.body }
    }
}

impl From<new::ldap::Entry> for old::ldap::Entry {
    fn from(e: new::ldap::Entry) -> Self {
        Self { dn: e.dn, attributes: e.attributes }
    }
}

impl From<new::types::HostError> for old::types::HostError {
    fn from(e: new::types::HostError) -> Self {
        use new::types::HostError as E;
        match e {
            E::Denied(m) => Self::Denied(m),
            E::Timeout(m) => Self::Timeout(m),
            E::TooLarge(m) => Self::TooLarge(m),
            E::LimitExceeded(m) => Self::LimitExceeded(m),
            E::Invalid(m) => Self::Invalid(m),
            E::Failed(m) => Self::Failed(m),
        }
    }
}
