//! The connector vocabulary the rest of the broker speaks: plain Rust types, no wasmtime.

use serde::{Deserialize, Serialize};

/// Optional scopes the relying party asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    pub offline_access: bool,
    pub groups: bool,
}

/// A user as an upstream identity provider knows them. `Debug` shows only the length of
/// `connector_data`, which may hold an upstream token.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user_id: String,
    pub username: String,
    pub preferred_username: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub groups: Vec<String>,
    /// Opaque to the broker; stored with the offline session and handed back on refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_data: Option<Vec<u8>>,
    /// What the policies' `check-login` made of this login for its client (`connectors::policy`):
    /// stored with the login and its refresh tokens, so the tokens minted later keep it. Never
    /// sent to a connector; absent in records written before policies existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Box<PolicyOutcome>>,
}

/// The changes the policies allowed a login with: the groups the tokens carry instead of the
/// connector's, and a claims patch merged into the ID and access tokens (`null` removes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOutcome {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl Identity {
    /// The identity the tokens speak of: the policies' groups instead of the connector's.
    pub fn for_tokens(&self) -> std::borrow::Cow<'_, Identity> {
        match self.policy.as_ref().and_then(|p| p.groups.as_ref()) {
            Some(groups) => std::borrow::Cow::Owned(Identity { groups: groups.clone(), ..self.clone() }),
            None => std::borrow::Cow::Borrowed(self),
        }
    }

    /// The claims patch the policies' `check-login` allowed this login with.
    pub fn policy_claims(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.policy.as_ref().map(|p| &p.claims).filter(|c| !c.is_empty())
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// `[redacted N bytes]`, printed without quotes.
        struct Redacted(usize);
        impl std::fmt::Debug for Redacted {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "[redacted {} bytes]", self.0)
            }
        }
        f.debug_struct("Identity")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("preferred_username", &self.preferred_username)
            .field("email", &self.email)
            .field("email_verified", &self.email_verified)
            .field("groups", &self.groups)
            .field("connector_data", &self.connector_data.as_ref().map(|d| Redacted(d.len())))
            .field("policy", &self.policy)
            .finish()
    }
}

/// Callback (redirect to the upstream) or password (the broker's own form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorKind {
    Callback,
    Password,
}

/// What a connector says of itself after validating its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub kind: ConnectorKind,
    pub password_prompt: Option<String>,
    pub supports_refresh: bool,
    /// `token-identity` is implemented (OAuth 2.0 token exchange; contract 0.2.0 and later).
    pub supports_token_identity: bool,
}

/// Where to send the browser to start a callback login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRedirect {
    pub url: String,
    pub state_data: Option<Vec<u8>>,
    /// POST these fields to `url` from an auto-submitting page instead of redirecting (SAML's
    /// HTTP-POST binding; contract 0.3.0 and later).
    pub post_form: Option<Vec<(String, String)>>,
}

/// The upstream's redirect back to the broker's callback URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackRequest {
    pub method: String,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub callback_url: String,
    pub state_data: Option<Vec<u8>>,
}

/// How a connector itself said a call failed (as opposed to the sandbox stopping it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("bad connector config: {0}")]
    Config(String),
    #[error("upstream failed: {0}")]
    Upstream(String),
    #[error("access denied: {0}")]
    Denied(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("not supported by this connector: {0}")]
    Unsupported(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_connector_data() {
        let identity = Identity {
            user_id: "1".into(),
            connector_data: Some(br#"{"accessToken":"gho_secret"}"#.to_vec()),
            ..Identity::default()
        };
        let text = format!("{identity:?}");
        assert!(text.contains("connector_data: Some([redacted 28 bytes])"), "{text}");
        assert!(!text.contains("gho_secret"), "{text}");
        assert!(format!("{:?}", Identity::default()).contains("connector_data: None"));
    }
}
