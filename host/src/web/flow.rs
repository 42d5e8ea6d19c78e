//! The steps every login shares, whatever the connector: finding the login this browser began,
//! checking a form's CSRF token, starting the SSO session once a connector vouched for the user,
//! the approval step, and the code back to the client.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use super::error::{WebError, redirect_with};
use super::{AppState, cookies, prefix, random_token, token_key};
use crate::clock::{now, secs};
use crate::connectors::Identity;
use crate::generation::Live;
use crate::oidc::authorize::{AfterLogin, Prompt, after_login};
use crate::oidc::{OAuthError, OAuthErrorCode};
use crate::storage::{AuthCode, AuthRequest};

/// The connector id of the local password database.
pub const LOCAL: &str = "local";

/// Loads the login `id` in progress, if this browser began it (the login-binding cookie).
pub async fn load_request(
    broker: &AppState,
    live: &Arc<Live>,
    headers: &HeaderMap,
    id: &str,
) -> Result<(AuthRequest, i64), WebError> {
    let found = broker.store.auth_request(id, now()).await.map_err(|e| {
        tracing::error!("cannot read the auth request: {e}");
        WebError::storage(live)
    })?;
    let (request, version) = found.ok_or_else(|| WebError::login_expired(live))?;
    let bound = cookies::get(headers, cookies::LOGIN).is_some_and(|b| token_key(&b).matches(&request.browser_binding));
    if !bound {
        return Err(WebError::other_browser(live));
    }
    Ok((request, version))
}

/// Compares a form's CSRF token with the login's, in constant time.
pub fn check_csrf(live: &Arc<Live>, request: &AuthRequest, token: &str) -> Result<(), WebError> {
    match bool::from(request.csrf.as_bytes().ct_eq(token.as_bytes())) {
        true => Ok(()),
        false => Err(WebError::csrf(live)),
    }
}

/// Appends a `Set-Cookie` to `response`, whatever it is.
pub fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// A connector authenticated the user: the policies decide (a denial ends the login on a 403
/// page, with no session and no code), then the SSO session starts (its cookie goes on whatever
/// follows), then approval or the code.
pub async fn complete_login(
    broker: &AppState,
    live: &Arc<Live>,
    headers: &HeaderMap,
    mut request: AuthRequest,
    version: i64,
    mut proof: Proof<'_>,
) -> Response {
    let now = now();
    // The policies of the generation the login began on, as for its connector: a reload
    // mid-login changes neither.
    let began_on = broker.generations.generation(request.connector_generation);
    let (client, connector, scopes) = (request.client_id.as_str(), proof.connector_id, &request.scopes);
    if let Err(denied) = super::policy::check_login(&began_on, client, connector, scopes, &mut proof.identity).await {
        crate::metrics::global().login(proof.connector_id, "policy_denied");
        let _ = broker.store.take_auth_request(&request.id, now).await;
        return super::policy::denied_page(live, &denied).into_response();
    }
    crate::metrics::global().login(proof.connector_id, "success");
    let (session, cookie) = super::session::record_login(broker, live, headers, &request.client_id, &proof, now).await;
    request.connector_id = Some(proof.connector_id.into());
    request.identity = Some(proof.identity);
    request.auth_time = Some(now);
    request.session = session;
    with_cookie(approve_or_finish(broker, live, request, version).await.into_response(), cookie)
}

/// What a connector proved: who the user is, through which connector, and whether the session
/// cookie should outlive the browser session ("remember me").
pub struct Proof<'a> {
    pub connector_id: &'a str,
    pub identity: Identity,
    pub remember: bool,
}

/// Shows the approval page, or issues the code when approval is skipped.
pub async fn approve_or_finish(
    broker: &AppState,
    live: &Arc<Live>,
    request: AuthRequest,
    version: i64,
) -> Result<Response, WebError> {
    match after_login(Prompt::from_list(&request.prompt), live.config.oauth2.skip_approval_screen) {
        AfterLogin::IssueCode => finish(broker, live, &request).await,
        AfterLogin::ConsentRequired => {
            let _ = broker.store.take_auth_request(&request.id, now()).await;
            Err(WebError::to_client(
                live,
                &request.redirect_uri,
                request.state.as_deref(),
                OAuthError::new(OAuthErrorCode::ConsentRequired, "the user must approve this application"),
            ))
        }
        AfterLogin::AskApproval => {
            // Persist the identity so the approval POST can finish the login, which may take
            // as long as `expiry.authRequests` allows.
            let mut request = request;
            request.expires_at = request.created_at + secs(live.config.expiry.auth_requests);
            match broker.store.update_auth_request(&request, version, now()).await {
                Ok(true) => Ok(Redirect::to(&format!("{}/approval?req={}", prefix(live), request.id)).into_response()),
                _ => Err(WebError::login_changed(live, "This login changed or expired while you were logging in.")),
            }
        }
    }
}

/// Consumes the auth request and sends the browser back to the client with a code.
pub async fn finish(broker: &AppState, live: &Arc<Live>, request: &AuthRequest) -> Result<Response, WebError> {
    let now = now();
    let to_client = |code: OAuthErrorCode, description: &str| {
        WebError::to_client(live, &request.redirect_uri, request.state.as_deref(), OAuthError::new(code, description))
    };
    // Exactly one finish per login, whatever the browser replays or sends at once: only the
    // request that takes the auth request issues a code, and from the record it took.
    let taken = match broker.store.take_auth_request(&request.id, now).await {
        Ok(Some(taken)) => taken,
        Ok(None) => return Err(WebError::login_finished(live)),
        Err(e) => {
            tracing::error!("cannot take the auth request: {e}");
            return Err(to_client(OAuthErrorCode::TemporarilyUnavailable, "try again"));
        }
    };
    // The identity is the one this login just proved (the approval step stored it as well).
    let identity = request.identity.clone().or(taken.identity);
    let connector_id = request.connector_id.clone().or(taken.connector_id);
    let (Some(identity), Some(connector_id)) = (identity, connector_id) else {
        return Err(to_client(OAuthErrorCode::ServerError, "the login did not complete"));
    };
    let code = random_token();
    let state = taken.state.clone();
    let stored = AuthCode {
        client_id: taken.client_id,
        redirect_uri: taken.redirect_uri,
        scopes: taken.scopes,
        nonce: taken.nonce,
        code_challenge: taken.code_challenge,
        code_challenge_method: taken.code_challenge_method,
        connector_id,
        identity,
        auth_time: request.auth_time.or(taken.auth_time).unwrap_or(now),
        redeemed_grant: None,
        session: request.session.clone().or(taken.session),
        expires_at: now + secs(live.config.expiry.auth_codes),
    };
    if let Err(e) = broker.store.create_auth_code(&token_key(&code), &stored, now).await {
        tracing::error!("cannot store the authorization code: {e}");
        return Err(to_client(OAuthErrorCode::TemporarilyUnavailable, "try again"));
    }
    if stored.redirect_uri == crate::config::REDIRECT_OOB {
        // A native app that cannot take a redirect: the user copies the code (RFC 8252 §7 notes
        // the out-of-band flow; Dex serves it the same way).
        let page = super::pages::render(
            &live.config,
            &super::prefix(live),
            StatusCode::OK,
            "oob.html",
            vec![("code", code.as_str().into())],
        );
        return Ok(page);
    }
    let issuer = super::issuer(live);
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = state.as_deref() {
        pairs.push(("state", s));
    }
    pairs.push(("iss", issuer.as_str()));
    Ok(redirect_with(&stored.redirect_uri, &pairs))
}
