//! The conversions every contract version shares between its WIT records and the broker's
//! types (`connectors::types`), as a macro each version's module expands on its own `types`;
//! and those between an older version's import records and the newest one's, which are the
//! same records in another package version.

/// The conversions every version shares between its WIT records and the broker's types; used
/// by each version's module on its own `types` interface.
/// Expands where `wit` names the version's `types` interface module.
macro_rules! broker_conversions {
    () => {
        use $crate::connectors::types as broker;

        impl From<broker::Scopes> for wit::Scopes {
            fn from(s: broker::Scopes) -> Self {
                Self { offline_access: s.offline_access, groups: s.groups }
            }
        }

        impl From<wit::Identity> for broker::Identity {
            fn from(i: wit::Identity) -> Self {
                Self {
                    user_id: i.user_id,
                    username: i.username,
                    preferred_username: i.preferred_username,
                    email: i.email,
                    email_verified: i.email_verified,
                    groups: i.groups,
                    connector_data: i.connector_data,
                    policy: None,
                }
            }
        }

        impl From<broker::Identity> for wit::Identity {
            fn from(i: broker::Identity) -> Self {
                Self {
                    user_id: i.user_id,
                    username: i.username,
                    preferred_username: i.preferred_username,
                    email: i.email,
                    email_verified: i.email_verified,
                    groups: i.groups,
                    connector_data: i.connector_data,
                }
            }
        }

        impl From<wit::ConnectorKind> for broker::ConnectorKind {
            fn from(k: wit::ConnectorKind) -> Self {
                match k {
                    wit::ConnectorKind::Callback => Self::Callback,
                    wit::ConnectorKind::Password => Self::Password,
                }
            }
        }

        impl From<broker::CallbackRequest> for wit::CallbackRequest {
            fn from(r: broker::CallbackRequest) -> Self {
                Self {
                    method: r.method,
                    query: r.query,
                    form: r.form,
                    headers: r.headers,
                    callback_url: r.callback_url,
                    state_data: r.state_data,
                }
            }
        }

        impl From<wit::ConnectorError> for broker::Refusal {
            fn from(e: wit::ConnectorError) -> Self {
                // The text is the plugin's (often an upstream's): it reaches log lines and
                // pages, so its control characters are escaped here, where it enters.
                use $crate::connectors::guest_text::escape_owned as esc;
                match e {
                    wit::ConnectorError::Config(m) => Self::Config(esc(m)),
                    wit::ConnectorError::Upstream(m) => Self::Upstream(esc(m)),
                    wit::ConnectorError::Denied(m) => Self::Denied(esc(m)),
                    wit::ConnectorError::BadRequest(m) => Self::BadRequest(esc(m)),
                    wit::ConnectorError::Unsupported(m) => Self::Unsupported(esc(m)),
                }
            }
        }
    };
}
pub(crate) use broker_conversions;

/// An older version's import records to and from the newest version's (the same words in
/// another package version), so each capability implements the newest version and serves the
/// older ones through these. Expands where `old` names the older version's interfaces and
/// `new` the newest one's.
macro_rules! import_conversions {
    () => {
        // What an older guest passes to an import, as the newest version says it.

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
                Self {
                    algorithms: e.algorithms,
                    issuer: e.issuer,
                    audience: e.audience,
                    leeway_seconds: e.leeway_seconds,
                }
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

        // What an import answers, as the older version says it.

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
    };
}
pub(crate) use import_conversions;
