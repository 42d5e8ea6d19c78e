//! Conversions between the WIT bindings and the broker's connector types.

use super::bindings::portcullis::connector::types as wit;
use super::types::{CallbackRequest, ConnectorKind, Identity, LoginRedirect, Metadata, Refusal, Scopes};

impl From<Scopes> for wit::Scopes {
    fn from(s: Scopes) -> Self {
        Self { offline_access: s.offline_access, groups: s.groups }
    }
}

impl From<wit::Identity> for Identity {
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

impl From<Identity> for wit::Identity {
    fn from(i: Identity) -> Self {
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

impl From<wit::Metadata> for Metadata {
    fn from(m: wit::Metadata) -> Self {
        Self {
            kind: match m.kind {
                wit::ConnectorKind::Callback => ConnectorKind::Callback,
                wit::ConnectorKind::Password => ConnectorKind::Password,
            },
            password_prompt: m.password_prompt,
            supports_refresh: m.supports_refresh,
        }
    }
}

impl From<wit::LoginRedirect> for LoginRedirect {
    fn from(r: wit::LoginRedirect) -> Self {
        Self { url: r.url, state_data: r.state_data }
    }
}

impl From<CallbackRequest> for wit::CallbackRequest {
    fn from(r: CallbackRequest) -> Self {
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

impl From<wit::ConnectorError> for Refusal {
    fn from(e: wit::ConnectorError) -> Self {
        match e {
            wit::ConnectorError::Config(m) => Self::Config(m),
            wit::ConnectorError::Upstream(m) => Self::Upstream(m),
            wit::ConnectorError::Denied(m) => Self::Denied(m),
            wit::ConnectorError::BadRequest(m) => Self::BadRequest(m),
            wit::ConnectorError::Unsupported(m) => Self::Unsupported(m),
        }
    }
}
