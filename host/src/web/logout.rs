//! RP-initiated logout (`end_session_endpoint`): ends the browser session and returns to a
//! registered post-logout redirect URI, or shows the logged-out page (`oidc::logout` decides).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::error::{WebError, redirect_with};
use super::flow::with_cookie;
use super::{AppState, cookies, is_https, issuer, pages, prefix, token_key};
use crate::oidc::claims::{Audience, IdTokenClaims};
use crate::oidc::logout::{LogoutRefusal, LogoutRequest, LogoutTarget, decide};

pub async fn logout(
    state: State<AppState>,
    headers: HeaderMap,
    Query(p): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    end(state, headers, p).await
}

pub async fn logout_post(
    state: State<AppState>,
    headers: HeaderMap,
    Form(p): Form<HashMap<String, String>>,
) -> Result<Response, WebError> {
    end(state, headers, p).await
}

async fn end(
    State(broker): State<AppState>,
    headers: HeaderMap,
    params: HashMap<String, String>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    let request = LogoutRequest::parse(&params);
    // Which client is asking: the id_token_hint's audience (expired hints are fine), or client_id.
    let hinted = request.id_token_hint.as_deref().map(|t| {
        broker.keys.verify_allow_expired::<IdTokenClaims>(t, &issuer(&live)).map(|c| match c.aud {
            Audience::One(a) => a,
            Audience::Many(_) => c.azp,
        })
    });
    let target = decide(&request, hinted, &live.config.clients).map_err(|refusal| match refusal {
        LogoutRefusal::ForeignHint => WebError::page(
            &live,
            StatusCode::BAD_REQUEST,
            "Logout failed",
            "The id_token_hint was not issued by this service.",
        ),
        LogoutRefusal::UnregisteredRedirect => WebError::page(
            &live,
            StatusCode::BAD_REQUEST,
            "Logout redirect not allowed",
            "The application asked to return to an address it has not registered for logout.",
        )
        .hint("You may still be logged in; close the browser to end the session."),
    })?;
    if let Some(id) = cookies::get(&headers, cookies::SESSION)
        && let Err(e) = broker.store.delete_session(&token_key(&id)).await
    {
        tracing::warn!("cannot delete the session: {e}");
    }
    let pfx = prefix(&live);
    let response = match target {
        LogoutTarget::Redirect { uri, state } => {
            let pairs: Vec<(&str, &str)> = state.as_deref().map(|s| vec![("state", s)]).unwrap_or_default();
            redirect_with(&uri, &pairs)
        }
        LogoutTarget::Page => pages::render(&live.config, &pfx, StatusCode::OK, "logout.html", Vec::new()),
    };
    Ok(with_cookie(response, cookies::clear(cookies::SESSION, &pfx, is_https(&live))))
}
