//! RP-initiated logout (`end_session_endpoint`): ends the browser session and returns to a
//! registered post-logout redirect URI, or shows the logged-out page (`oidc::logout` decides).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::error::{WebError, redirect_with};
use super::flow::with_cookie;
use super::{AppState, cookies, issuer, pages, prefix, token_key};
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

/// The confirmation form's CSRF token for a session: derived from the session cookie, which a
/// cross-site page cannot read, so no state is stored for it; compared in constant time.
fn logout_csrf(session: &str) -> crate::ids::TokenKey {
    crate::ids::TokenKey::of(&format!("logout-csrf:{session}"))
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
    let verified_hint = matches!(hinted, Some(Some(_)));
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
    let pfx = prefix(&live);
    let session = cookies::get(&headers, super::session::cookie_name(&live));
    // Without a valid id_token_hint, only a form from our own confirmation page ends a session:
    // a cross-site GET or POST cannot log the user out (audit F11).
    if let Some(id) = &session
        && !verified_hint
        && !params.get("csrf").is_some_and(|c| {
            use subtle::ConstantTimeEq as _;
            bool::from(c.as_bytes().ct_eq(logout_csrf(id).as_str().as_bytes()))
        })
    {
        let carry: Vec<(&str, &str)> = ["client_id", "post_logout_redirect_uri", "state"]
            .into_iter()
            .filter_map(|k| Some((k, params.get(k)?.as_str())))
            .collect();
        let csrf = logout_csrf(id);
        return Ok(pages::render(
            &live.config,
            &pfx,
            StatusCode::OK,
            "logout_confirm.html",
            vec![("csrf", csrf.as_str().into()), ("carry", minijinja::Value::from_serialize(&carry))],
        ));
    }
    if let Some(id) = &session {
        // Logging out ends what the session produced too: its grants' access and refresh
        // tokens stop working (audit I5), and its clients hear of it over the back channel.
        super::session::end(&broker, &live, &token_key(id), None, crate::clock::now()).await;
    }
    let response = match target {
        LogoutTarget::Redirect { uri, state } => {
            let pairs: Vec<(&str, &str)> = state.as_deref().map(|s| vec![("state", s)]).unwrap_or_default();
            redirect_with(&uri, &pairs)
        }
        LogoutTarget::Page => pages::render(&live.config, &pfx, StatusCode::OK, "logout.html", Vec::new()),
    };
    Ok(with_cookie(response, super::session::clear_cookie(&live)))
}
