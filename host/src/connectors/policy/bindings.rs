//! Host-side bindings of the policy contract `wit/policy/0.1.0/` (package
//! `portcullis:policy@0.1.0`), and their conversions to and from the broker's vocabulary
//! (`policy::types`). The `http` and `log` imports are the connector contract's 0.3.0
//! interfaces: the engine's linker already links them, so only the exports are bound here.

wasmtime::component::bindgen!({
    path: "../wit/policy/0.1.0",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "portcullis:connector": crate::connectors::bindings::v0_3::portcullis::connector,
    },
});

use self::exports::portcullis::policy::policy as wit;
use super::types::{ClaimsPatch, GrantKind, LoginContext, MintContext};
use crate::connectors::types::Identity;

/// The policy contract's package.
pub const WIT_PACKAGE: &str = "portcullis:policy";
/// The policy contract version this host binds.
pub const WIT_VERSION: &str = "0.1.0";
/// The export every policy must provide, without its version.
pub const EXPORT_PREFIX: &str = "portcullis:policy/policy@";

/// The user claims an identity yields, whatever the scopes: `identity.claims` of the contract.
pub(super) fn identity_claims(identity: &Identity) -> ClaimsPatch {
    let mut claims = ClaimsPatch::new();
    if let Some(email) = &identity.email {
        claims.insert("email".into(), email.clone().into());
        claims.insert("email_verified".into(), identity.email_verified.into());
    }
    if !identity.username.is_empty() {
        claims.insert("name".into(), identity.username.clone().into());
    }
    if let Some(preferred) = &identity.preferred_username {
        claims.insert("preferred_username".into(), preferred.clone().into());
    }
    claims.insert("groups".into(), identity.groups.clone().into());
    claims
}

pub(super) fn identity(identity: &Identity) -> wit::Identity {
    wit::Identity {
        user_id: identity.user_id.clone(),
        username: identity.username.clone(),
        preferred_username: identity.preferred_username.clone(),
        email: identity.email.clone(),
        email_verified: identity.email_verified,
        groups: identity.groups.clone(),
        claims: serde_json::Value::Object(identity_claims(identity)).to_string(),
    }
}

pub(super) fn login_context(ctx: &LoginContext<'_>, config: &str) -> wit::LoginContext {
    wit::LoginContext {
        client_id: ctx.client_id.into(),
        connector_id: ctx.connector_id.into(),
        scopes: ctx.scopes.to_vec(),
        config: config.into(),
    }
}

pub(super) fn mint_context(ctx: &MintContext<'_>, config: &str) -> wit::MintContext {
    wit::MintContext {
        grant_type: match ctx.grant {
            GrantKind::AuthorizationCode => wit::GrantType::AuthorizationCode,
            GrantKind::RefreshToken => wit::GrantType::RefreshToken,
            GrantKind::ClientCredentials => wit::GrantType::ClientCredentials,
            GrantKind::DeviceCode => wit::GrantType::DeviceCode,
            GrantKind::TokenExchange => wit::GrantType::TokenExchange,
            GrantKind::Password => wit::GrantType::Password,
        },
        client_id: ctx.client_id.into(),
        connector_id: ctx.connector_id.map(str::to_string),
        identity: ctx.identity.map(identity),
        scopes: ctx.scopes.to_vec(),
        config: config.into(),
    }
}

/// A policy's own error, as text for the operator (escaped: it came from the guest).
pub(super) fn error_text(e: wit::PolicyError) -> String {
    let text = match e {
        wit::PolicyError::Config(m) => format!("bad policy config: {m}"),
        wit::PolicyError::Failed(m) => m,
    };
    crate::connectors::guest_text::escape_owned(text)
}
