//! The token exchange grant (RFC 8693, Dex's semantics): the connector `connector_id` names
//! says whose the upstream `subject_token` is (`Connector::token_identity`), and the broker
//! signs one token for that user — an access token (with a grant, so userinfo and
//! introspection honour it) or an ID token — with the claims of every other grant. No refresh
//! token. The rules are in `oidc::exchange`.

use serde_json::json;

use super::flow::LOCAL;
use super::token::storage_error;
use super::{AppState, issuer, random_token};
use crate::clock::{now, secs};
use crate::config::Client;
use crate::connectors::Scopes;
use crate::connectors::policy::GrantKind;
use crate::generation::Live;
use crate::oidc::claims::TokenContext;
use crate::oidc::exchange::{ExchangeRequest, TokenType, exchange_failure, exchange_scopes};
use crate::oidc::{OAuthError, OAuthErrorCode};

pub(super) async fn token_exchange(
    broker: &AppState,
    live: &Live,
    client: &Client,
    req: &ExchangeRequest,
) -> Result<serde_json::Value, OAuthError> {
    req.check_targets(&client.id)?;
    let scopes = exchange_scopes(req.scope.as_deref(), client, &live.config.clients)?;
    let connector = req.connector_id.as_str();
    super::token::usable_connector(live, client, connector, crate::config::GrantType::TokenExchange)?;
    let Some(plugin) = live.registry.get(connector) else {
        if live.failed.iter().any(|f| f.connector == connector) {
            return Err(OAuthError::new(
                OAuthErrorCode::TemporarilyUnavailable,
                format!("connector {connector:?} is not loaded right now; retry later"),
            ));
        }
        let why = if connector == LOCAL {
            "the password database issues no upstream tokens to exchange".to_string()
        } else {
            "no connector has this id".to_string()
        };
        return Err(OAuthError::invalid_request(format!(
            "connector_id {connector:?}: {why}; name a connector whose upstream issued the subject_token"
        )));
    };
    let s = Scopes { offline_access: false, groups: scopes.groups };
    let mut identity =
        plugin.token_identity(s, req.subject_token_type.as_str(), &req.subject_token).await.map_err(|e| {
            tracing::warn!(%connector, client = %client.id, "token exchange refused: {e}");
            exchange_failure(connector, &e)
        })?;
    super::policy::check_login(live, &client.id, connector, &scopes.all, &mut identity)
        .await
        .map_err(|denied| super::policy::denied_grant(&denied))?;
    tracing::info!(
        %connector,
        client = %client.id,
        user_id = %identity.user_id,
        requested_token_type = req.requested.as_str(),
        "token exchange successful"
    );

    let now = now();
    let expiry = &live.config.expiry;
    let (lifetime, access_lifetime) = (secs(expiry.id_tokens), secs(expiry.access_tokens));
    let grant = random_token();
    if req.requested == TokenType::AccessToken {
        // Userinfo and introspection check the access token's grant.
        broker.store.create_grant(&grant, None, now + access_lifetime, now).await.map_err(storage_error)?;
    }
    let issuer = issuer(live);
    let token_id = random_token();
    let login_claims = identity.policy_claims();
    let shown = identity.for_tokens();
    let mint = super::policy::user_mint(GrantKind::TokenExchange, &client.id, connector, &shown, &scopes.all);
    let patch = super::policy::mint(live, mint).await?;
    let ctx = TokenContext {
        issuer: &issuer,
        client_id: &client.id,
        connector_id: connector,
        identity: &shown,
        scopes: &scopes,
        nonce: None,
        auth_time: now,
        now,
        lifetime,
        access_lifetime,
        grant_id: &grant,
        token_id: &token_id,
        sid: None,
    };
    let signed = match req.requested {
        TokenType::AccessToken => {
            broker.keys.sign_access(&super::policy::patched(ctx.access_token(), login_claims, &patch.access_token)?)
        }
        TokenType::IdToken => {
            // No access token is issued with it, so nothing to bind with `at_hash`.
            let claims = crate::oidc::claims::IdTokenClaims {
                at_hash: None,
                ..ctx.id_token("", broker.keys.algorithm().as_str())
            };
            broker.keys.sign(&super::policy::patched(claims, login_claims, &patch.id_token)?, "JWT")
        }
    }
    .map_err(|e| {
        tracing::error!("cannot sign a token: {e}");
        OAuthError::server_error("cannot sign the token")
    })?;
    let expires_in = if req.requested == TokenType::AccessToken { access_lifetime } else { lifetime };
    Ok(json!({
        "access_token": signed,
        "issued_token_type": req.requested.as_str(),
        "token_type": req.requested.token_type(),
        "expires_in": expires_in,
        "scope": scopes.joined(),
    }))
}
