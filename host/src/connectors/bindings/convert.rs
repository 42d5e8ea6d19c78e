//! The conversions every contract version shares between its WIT records and the broker's
//! types (`connectors::types`), as a macro each version's module expands on its own `types`.

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

        impl From<wit::LoginRedirect> for broker::LoginRedirect {
            fn from(r: wit::LoginRedirect) -> Self {
                Self { url: r.url, state_data: r.state_data }
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
