//! The policy plugins' part of a request (`connectors::policy`): `check-login` once a user is
//! known (a connector's login, an SSO session's reuse, a refresh, a password grant), its outcome
//! kept on the identity; `mint-token` when tokens are signed, its patches merged into the claims.
//! A denial is a 403 page for the browser and `invalid_grant` at the token endpoint.

use std::sync::Arc;

use axum::http::StatusCode;
use serde::Serialize;

use super::error::WebError;
use crate::connectors::Identity;
use crate::connectors::policy::{ClaimsPatch, Denied, GrantKind, LoginContext, MintContext, TokenPatch, types};
use crate::generation::Live;
use crate::oidc::{OAuthError, OAuthErrorCode};

/// Runs `check-login` of the policies that apply and records their outcome on `identity`
/// (replacing any an earlier login left: the outcome belongs to this client and this login).
pub async fn check_login(
    live: &Live,
    client_id: &str,
    connector_id: &str,
    scopes: &[String],
    identity: &mut Identity,
) -> Result<(), Denied> {
    identity.policy = None;
    if live.policies.is_empty() {
        return Ok(());
    }
    let ctx = LoginContext { client_id, connector_id, scopes };
    identity.policy = live.policies.check_login(&ctx, identity).await?.map(Box::new);
    Ok(())
}

/// The page a denied login gets: 403 and the policy's reason (already logged by the policy set).
pub fn denied_page(live: &Arc<Live>, denied: &Denied) -> WebError {
    let message = if denied.failed {
        "A login policy could not be applied, so the login was refused.".to_string()
    } else {
        denied.reason.clone()
    };
    WebError::page(live, StatusCode::FORBIDDEN, "Access denied", message)
        .hint("If you think you should have access, ask the administrator of this application.")
}

/// A grant refused by a policy: `invalid_grant` with the reason when the policy decided;
/// `temporarily_unavailable` when it failed (`onError: deny`), decided before anything is
/// rotated or stored, so a refresh token survives a policy's outage as it does a connector's.
pub fn denied_grant(denied: &Denied) -> OAuthError {
    if denied.failed {
        return OAuthError::new(
            OAuthErrorCode::TemporarilyUnavailable,
            format!("policy {:?} could not be applied; retry later", denied.policy),
        );
    }
    OAuthError::invalid_grant(format!("refused by policy {:?}: {}", denied.policy, denied.reason))
}

/// Runs `mint-token` of the policies that apply; no policies, no calls.
pub async fn mint(live: &Live, ctx: MintContext<'_>) -> Result<TokenPatch, OAuthError> {
    if live.policies.is_empty() {
        return Ok(TokenPatch::default());
    }
    live.policies.mint_token(&ctx).await.map_err(|d| denied_grant(&d))
}

/// The context of a mint for a user's tokens.
pub fn user_mint<'a>(
    grant: GrantKind,
    client_id: &'a str,
    connector_id: &'a str,
    identity: &'a Identity,
    scopes: &'a [String],
) -> MintContext<'a> {
    MintContext { grant, client_id, connector_id: Some(connector_id), identity: Some(identity), scopes }
}

/// A token's claims to sign: as built, or with patches merged in.
pub enum Patched<T> {
    /// No patch applied: signed as the typed claims serialise (no detour through a JSON tree).
    Plain(T),
    Merged(serde_json::Value),
}

impl<T: Serialize> Serialize for Patched<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Plain(claims) => claims.serialize(serializer),
            Self::Merged(value) => value.serialize(serializer),
        }
    }
}

/// `claims` with the login's patch and then the mint's merged in. Without patches the claims
/// are left as they are.
pub fn patched<T: Serialize>(
    claims: T,
    login: Option<&ClaimsPatch>,
    mint: &ClaimsPatch,
) -> Result<Patched<T>, OAuthError> {
    let login = login.filter(|p| !p.is_empty());
    if login.is_none() && mint.is_empty() {
        return Ok(Patched::Plain(claims));
    }
    let patches = login.into_iter().chain((!mint.is_empty()).then_some(mint));
    types::merge(claims, patches).map(Patched::Merged).map_err(|e| {
        tracing::error!("cannot serialise a token's claims: {e}");
        OAuthError::server_error("cannot sign the token")
    })
}
