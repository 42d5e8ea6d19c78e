//! The browser's side of the device flow: the code page (`GET /device`), the code's check
//! (`POST /device/auth/verify_code`) that starts the login at `/auth`, the callback that
//! approves the device request, and the approval page's denial.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use minijinja::Value;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::{LOGIN_COOKIE, callback_uri, enabled, is_callback, not_enabled_page, settle, user_code_key};
use crate::clock::{now, secs};
use crate::generation::Live;
use crate::oidc::device::UserCode;
use crate::oidc::pkce;
use crate::oidc::token::{CodeDecision, check_code};
use crate::storage::{AuthRequest, DeviceStatus};
use crate::web::error::WebError;
use crate::web::flow::with_cookie;
use crate::web::{AppState, ClientIp, cookies, is_https, pages, prefix, random_token, token_key};

/// The code page's CSRF token (double submit: the cookie and the form must carry the same).
const FORM_COOKIE: &str = "portcullis_device";
/// Longest user code echoed back into the form.
const MAX_TYPED: usize = 32;
#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    user_code: Option<String>,
}

/// The code form, with `typed` in the field and `error` above it; sets the form's CSRF cookie.
fn code_form(
    live: &std::sync::Arc<Live>,
    headers: &HeaderMap,
    typed: &str,
    error: Option<(StatusCode, String)>,
) -> Response {
    let csrf = cookies::get(headers, FORM_COOKIE).filter(|c| c.len() == 43).unwrap_or_else(random_token);
    let typed: String = typed.chars().take(MAX_TYPED).collect();
    let (status, error) = match error {
        Some((status, message)) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    let page = pages::render(
        &live.config,
        &prefix(live),
        status,
        "device.html",
        vec![("user_code", typed.into()), ("csrf", csrf.clone().into()), ("error", Value::from(error))],
    );
    let lifetime = secs(live.config.expiry.device_requests).max(15 * 60);
    with_cookie(page, cookies::set(FORM_COOKIE, &csrf, &prefix(live), lifetime, is_https(live)))
}

/// `GET /device`: the form for the user code, prefilled from `?user_code=`.
pub async fn page(
    State(broker): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    if !enabled(&live) {
        return Err(not_enabled_page(&live));
    }
    // A code that reads as one is shown as the device shows it (`XXXX-XXXX`).
    let typed = q.user_code.unwrap_or_default();
    let shown = UserCode::parse(&typed).map_or(typed, |code| code.to_string());
    Ok(code_form(&live, &headers, &shown, None))
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_code: String,
}

/// `POST /device/auth/verify_code` (Dex's path): a code of a pending request starts the login
/// for its client at `/auth`, back to `/device/callback`; a wrong one shows the form again.
pub async fn verify(
    State(broker): State<AppState>,
    headers: HeaderMap,
    ip: ClientIp,
    Form(form): Form<CodeForm>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    if !enabled(&live) {
        return Err(not_enabled_page(&live));
    }
    let token = cookies::get(&headers, FORM_COOKIE).unwrap_or_default();
    if token.is_empty() || !bool::from(token.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return Err(WebError::page(
            &live,
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form did not come from this browser's device page (its security token does not match).",
        )
        .hint("Open the device page again and enter the code."));
    }
    let again =
        |status: StatusCode, message: String| code_form(&live, &headers, &form.user_code, Some((status, message)));
    if let Err(throttled) = broker.throttles.user_code(ip.0) {
        let wait = throttled.retry_after.as_secs().max(1);
        let mut page = again(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many codes were entered from your address. Wait {wait} seconds, then try again."),
        );
        if let Ok(value) = header::HeaderValue::from_str(&wait.to_string()) {
            page.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(page);
    }
    let Some(code) = UserCode::parse(&form.user_code) else {
        let message = "That is not a device code: a code is 8 letters, like BCDF-GHJK.";
        return Ok(again(StatusCode::BAD_REQUEST, message.into()));
    };
    let now = now();
    let found = broker.store.device_request_by_user_code(&user_code_key(&code), now).await.map_err(|e| {
        tracing::error!("cannot read the device request: {e}");
        WebError::storage(&live)
    })?;
    let pending = found.map(|(r, _)| r).filter(|r| r.status == DeviceStatus::Pending && now < r.expires_at);
    let client = pending.as_ref().and_then(|r| live.config.clients.get(&r.client_id));
    let (Some(request), Some(client)) = (pending, client) else {
        tracing::info!("a device user code was unknown, expired or used");
        let message =
            "This code is unknown, expired or already used. Check the code your device shows, or start again there.";
        return Ok(again(StatusCode::BAD_REQUEST, message.into()));
    };
    let verifier = random_token();
    let challenge = URL_SAFE_NO_PAD.encode(pkce::sha256(verifier.as_bytes()));
    let scope = request.scopes.join(" ");
    let state = code.to_string();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", client.id.as_str()),
            ("redirect_uri", callback_uri(&live, client).as_str()),
            ("response_type", "code"),
            ("scope", scope.as_str()),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            // The approval page, always: it names the code, and a device login is never silent.
            ("prompt", "consent"),
        ])
        .finish();
    let to = format!("{}/auth?{query}", prefix(&live));
    let lifetime = secs(live.config.expiry.auth_requests);
    let cookie = cookies::set(LOGIN_COOKIE, &verifier, &prefix(&live), lifetime, is_https(&live));
    Ok(with_cookie(Redirect::to(&to).into_response(), cookie))
}
fn device_page(
    live: &std::sync::Arc<Live>,
    status: StatusCode,
    title: &'static str,
    message: &'static str,
) -> WebError {
    WebError::page(live, status, title, message).hint("Start again on your device.")
}

/// `GET /device/callback`: the end of the browser login. Its code (bound to this browser's
/// verifier) approves the device request the state names; the page says to return to the device.
pub async fn callback(
    State(broker): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    if let Some(error) = q.get("error") {
        tracing::info!(error = %error, "a device login ended with an error");
        return Err(if error == "access_denied" {
            // The approval page recorded the denial; the device hears `access_denied`.
            WebError::page(&live, StatusCode::FORBIDDEN, "Access denied", "You denied the device access.")
                .hint("The device has been told. You can close this page.")
        } else {
            device_page(&live, StatusCode::BAD_REQUEST, "Login failed", "The login for the device did not complete.")
        });
    }
    let (Some(code), Some(user_code)) = (q.get("code"), q.get("state").and_then(|s| UserCode::parse(s))) else {
        return Err(device_page(
            &live,
            StatusCode::BAD_REQUEST,
            "Login failed",
            "The answer has no code or no device code.",
        ));
    };
    let Some(verifier) = cookies::get(&headers, LOGIN_COOKIE) else { return Err(WebError::other_browser(&live)) };
    let now = now();
    let unavailable = |e: crate::storage::StorageError| {
        tracing::error!("device callback storage error: {e}");
        WebError::storage(&live)
    };
    let found = broker.store.device_request_by_user_code(&user_code_key(&user_code), now).await.map_err(unavailable)?;
    let Some((device, _)) = found.filter(|(r, _)| r.status == DeviceStatus::Pending && now < r.expires_at) else {
        return Err(device_page(
            &live,
            StatusCode::BAD_REQUEST,
            "Device login expired",
            "This device login is unknown, expired or already finished.",
        ));
    };
    let client = live.config.clients.get(&device.client_id).ok_or_else(|| WebError::login_expired(&live))?;
    let key = token_key(code);
    let (mut stored, version) =
        broker.store.auth_code(&key, now).await.map_err(unavailable)?.ok_or_else(|| WebError::login_expired(&live))?;
    let redirect = callback_uri(&live, client);
    match check_code(stored.issued(), &client.id, Some(redirect.as_str()), Some(verifier.as_str())) {
        Err(e) => {
            tracing::warn!(client = %client.id, "device callback refused: {}", e.description);
            return Err(device_page(
                &live,
                StatusCode::FORBIDDEN,
                "Login failed",
                "This login does not belong to the device login this browser started.",
            ));
        }
        Ok(CodeDecision::Replayed { grant }) => {
            tracing::warn!(client = %client.id, "device login code reuse detected; revoking its grant");
            broker.store.revoke_grant(&grant).await.map_err(unavailable)?;
            return Err(WebError::login_finished(&live));
        }
        Ok(CodeDecision::Redeem) => {}
    }
    let grant = random_token();
    stored.redeemed_grant = Some(grant.clone());
    if !broker.store.redeem_auth_code(&key, &stored, version, now).await.map_err(unavailable)? {
        return Err(WebError::login_finished(&live));
    }
    let approved = DeviceStatus::Approved {
        connector_id: stored.connector_id,
        identity: stored.identity,
        auth_time: stored.auth_time,
        grant,
    };
    if !settle(&broker, &device.key, approved).await.map_err(unavailable)? {
        return Err(device_page(
            &live,
            StatusCode::CONFLICT,
            "Device login finished",
            "This device login was finished, denied or expired meanwhile.",
        ));
    }
    tracing::info!(client = %client.id, "device approved");
    let page = pages::render(
        &live.config,
        &prefix(&live),
        StatusCode::OK,
        "device_success.html",
        vec![("client_name", client.name.clone().into())],
    );
    Ok(with_cookie(page, cookies::clear(LOGIN_COOKIE, &prefix(&live), is_https(&live))))
}

/// The user code a login for a device shows on its approval page (its state), if it is one.
pub fn user_code_of(live: &Live, request: &AuthRequest) -> Option<String> {
    is_callback(live, &request.redirect_uri)
        .then(|| request.state.as_deref().and_then(UserCode::parse))
        .flatten()
        .map(|c| c.to_string())
}

/// The approval page's "deny" for a device login: the device request is marked denied, so its
/// next poll hears `access_denied`. Only for the login this browser started for that code (its
/// verifier answers the login's challenge), so no other page can deny someone's device.
pub async fn deny(broker: &AppState, live: &Live, headers: &HeaderMap, request: &AuthRequest) {
    let Some(user_code) = user_code_of(live, request).and_then(|c| UserCode::parse(&c)) else { return };
    let bound = match (cookies::get(headers, LOGIN_COOKIE), request.code_challenge.as_deref()) {
        (Some(verifier), Some(challenge)) => pkce::verify(pkce::Method::S256, challenge, &verifier),
        _ => false,
    };
    if !bound {
        return;
    }
    let now = now();
    let found = match broker.store.device_request_by_user_code(&user_code_key(&user_code), now).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!("cannot read the device request to deny it: {e}");
            return;
        }
    };
    let Some((device, _)) = found.filter(|(r, _)| r.client_id == request.client_id) else { return };
    match settle(broker, &device.key, DeviceStatus::Denied).await {
        Ok(true) => tracing::info!(client = %request.client_id, "device denied at the approval page"),
        Ok(false) => {}
        Err(e) => tracing::error!("cannot record the device's denial: {e}"),
    }
}
