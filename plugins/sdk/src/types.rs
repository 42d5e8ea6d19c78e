//! The records a connector builds, with constructors and builders: the SDK's own types (not the
//! raw WIT records), so a field added by a later contract version breaks no connector.

use crate::bindings::portcullis::connector::types as wit;
pub use wit::ConnectorKind;

/// What a connector says of itself once its config has been validated.
///
/// ```ignore
/// Metadata::callback().with_refresh()
/// Metadata::password("Email")
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metadata {
    /// Callback or password connector.
    pub kind: ConnectorKind,
    /// Label of the username field on the password form; password connectors only.
    pub password_prompt: Option<String>,
    /// Whether [`Connector::refresh`](crate::Connector::refresh) is implemented.
    pub supports_refresh: bool,
    /// Whether [`Connector::token_identity`](crate::Connector::token_identity) is implemented.
    pub supports_token_identity: bool,
}

impl Metadata {
    /// A callback connector: the browser goes to the upstream and comes back to the broker.
    pub fn callback() -> Self {
        Self {
            kind: ConnectorKind::Callback,
            password_prompt: None,
            supports_refresh: false,
            supports_token_identity: false,
        }
    }

    /// A password connector whose username field is labelled `prompt` ("Email", "Username").
    pub fn password(prompt: impl Into<String>) -> Self {
        Self { kind: ConnectorKind::Password, password_prompt: Some(prompt.into()), ..Self::callback() }
    }

    /// Says the connector implements `refresh`, so refresh tokens can be issued for it.
    pub fn with_refresh(mut self) -> Self {
        self.supports_refresh = true;
        self
    }

    /// Says the connector implements `token_identity` (OAuth 2.0 token exchange).
    pub fn with_token_identity(mut self) -> Self {
        self.supports_token_identity = true;
        self
    }
}

impl From<Metadata> for wit::Metadata {
    fn from(m: Metadata) -> Self {
        Self {
            kind: m.kind,
            password_prompt: m.password_prompt,
            supports_refresh: m.supports_refresh,
            supports_token_identity: m.supports_token_identity,
        }
    }
}

/// A user as the upstream identity provider knows them.
///
/// ```ignore
/// Identity::new(user.id.to_string(), user.name).preferred_username(user.login).email(email, true)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Identity {
    /// Stable, unique id of the user within this connector; part of the `sub` claim.
    pub user_id: String,
    /// Display name (`name` claim).
    pub username: String,
    /// Short handle (`preferred_username` claim).
    pub preferred_username: Option<String>,
    /// Email address, if known.
    pub email: Option<String>,
    /// Whether the upstream vouches for `email`.
    pub email_verified: bool,
    /// Group names (`groups` claim).
    pub groups: Vec<String>,
    /// Opaque bytes the broker stores and hands back to `refresh` (see [`crate::data`]).
    pub connector_data: Option<Vec<u8>>,
}

impl Identity {
    /// A user with an id and a display name, nothing else yet.
    pub fn new(user_id: impl Into<String>, username: impl Into<String>) -> Self {
        Self { user_id: user_id.into(), username: username.into(), ..Self::default() }
    }

    /// Sets the short handle (`preferred_username`).
    pub fn preferred_username(mut self, name: impl Into<String>) -> Self {
        self.preferred_username = Some(name.into());
        self
    }

    /// Sets the short handle, or clears it with `None`.
    pub fn maybe_preferred_username(mut self, name: Option<String>) -> Self {
        self.preferred_username = name;
        self
    }

    /// Sets the email address and whether the upstream verified it.
    pub fn email(mut self, email: impl Into<String>, verified: bool) -> Self {
        self.email = Some(email.into());
        self.email_verified = verified;
        self
    }

    /// Sets the email address (or none) and whether the upstream verified it.
    pub fn maybe_email(mut self, email: Option<String>, verified: bool) -> Self {
        self.email = email;
        self.email_verified = verified;
        self
    }

    /// Sets the groups.
    pub fn groups(mut self, groups: Vec<String>) -> Self {
        self.groups = groups;
        self
    }

    /// Sets (or clears) the bytes kept for `refresh`.
    pub fn connector_data(mut self, data: Option<Vec<u8>>) -> Self {
        self.connector_data = data;
        self
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

/// Where to send the browser to start a callback login.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginRedirect {
    /// The upstream authorization URL, carrying the `state` the broker passed in.
    pub url: String,
    /// Opaque bytes the broker keeps with the login and returns in the callback request.
    pub state_data: Option<Vec<u8>>,
    /// Fields the browser POSTs to `url` (an auto-submitted form) instead of a redirect, as
    /// SAML's HTTP-POST binding sends `SAMLRequest` and `RelayState` (contract 0.3.0).
    pub post_form: Option<Vec<(String, String)>>,
}

impl LoginRedirect {
    /// A redirect to `url`, keeping nothing for the callback.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), state_data: None, post_form: None }
    }

    /// The browser POSTs `fields` to `url` from an auto-submitting page instead of being
    /// redirected there (SAML's HTTP-POST binding).
    pub fn post_form(mut self, fields: Vec<(String, String)>) -> Self {
        self.post_form = Some(fields);
        self
    }

    /// Keeps `data` for the callback (a PKCE verifier, a nonce).
    pub fn state_data(mut self, data: Vec<u8>) -> Self {
        self.state_data = Some(data);
        self
    }
}

impl From<LoginRedirect> for wit::LoginRedirect {
    fn from(r: LoginRedirect) -> Self {
        Self { url: r.url, state_data: r.state_data, post_form: r.post_form }
    }
}
