//! RP-initiated logout (`end_session_endpoint`): ends the browser session and returns to a
//! registered post-logout redirect URI, or shows the logged-out page.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::authorize::redirect_with;
use super::{AppState, cookies, is_https, issuer, pages, prefix, token_key};
use crate::oidc::claims::{Audience, IdTokenClaims};

pub async fn logout(state: State<AppState>, headers: HeaderMap, Query(p): Query<HashMap<String, String>>) -> Response {
    end(state, headers, p).await
}

pub async fn logout_post(
    state: State<AppState>,
    headers: HeaderMap,
    Form(p): Form<HashMap<String, String>>,
) -> Response {
    end(state, headers, p).await
}

async fn end(State(broker): State<AppState>, headers: HeaderMap, p: HashMap<String, String>) -> Response {
    let live = broker.live.load_full();
    let pfx = prefix(&live);
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    // Which client is asking: the id_token_hint's audience (expired hints are fine), or client_id.
    let hint = get("id_token_hint").map(|t| broker.keys.verify_allow_expired::<IdTokenClaims>(t, &issuer(&live)));
    if let Some(None) = hint {
        return pages::error_page(
            &live.config,
            &pfx,
            StatusCode::BAD_REQUEST,
            "Logout failed",
            "The id_token_hint was not issued by this service.",
            None,
        );
    }
    let hinted = hint.flatten().map(|c| match c.aud {
        Audience::One(a) => a,
        Audience::Many(_) => c.azp,
    });
    let client_id = hinted.or_else(|| get("client_id").map(str::to_string));
    let redirect = match get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client = client_id.as_deref().and_then(|id| live.config.clients.get(id));
            match client {
                Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => Some(uri.to_string()),
                _ => {
                    return pages::error_page(
                        &live.config,
                        &pfx,
                        StatusCode::BAD_REQUEST,
                        "Logout redirect not allowed",
                        "The application asked to return to an address it has not registered for logout.",
                        Some("You may still be logged in; close the browser to end the session."),
                    );
                }
            }
        }
    };
    if let Some(id) = cookies::get(&headers, cookies::SESSION)
        && let Err(e) = broker.store.delete_session(&token_key(&id)).await
    {
        tracing::warn!("cannot delete the session: {e}");
    }
    let mut response = match redirect {
        Some(uri) => {
            let state = get("state");
            let pairs: Vec<(&str, &str)> = state.map(|s| vec![("state", s)]).unwrap_or_default();
            redirect_with(&uri, &pairs)
        }
        None => pages::render(&live.config, &pfx, StatusCode::OK, "logout.html", Vec::new()),
    };
    if let Some(c) = cookies::clear(cookies::SESSION, &pfx, is_https(&live)) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}
