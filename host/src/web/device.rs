//! The device authorization grant (RFC 8628) on Dex's paths: `POST /device/code` gives a
//! device its codes; a person opens `/device` (the code typed, or prefilled from
//! `verification_uri_complete`), posts it to `/device/auth/verify_code`, logs in through the
//! normal `/auth` machinery (any connector, the approval page always shown) and lands on
//! `/device/callback`, which approves the device request; the device's polls of `/token` (or
//! Dex's `/device/token`) then get the tokens once. The rules are in `oidc::device`.
//!
//! # Security
//! - The browser login is bound to the browser that entered the code: `verify_code` sets a
//!   PKCE verifier in a cookie and sends its challenge to `/auth`, and the callback redeems the
//!   login's code with it. A page that makes a victim's browser start `/auth` for an attacker's
//!   user code (with single sign-on and `skipApprovalScreen`) gets nowhere: the victim's
//!   browser holds no verifier for that challenge.
//! - The approval page is always shown (`prompt=consent`) and names the user code, so a person
//!   sent a stranger's code sees what they are about to grant (RFC 8628 §5.4).
//! - User codes are guessed no faster than `throttle::USER_CODE_PER_IP_BURST` per client IP;
//!   both codes are stored hashed; every form carries a CSRF token (a double-submit cookie on
//!   the code page, the login's token on the approval page).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use minijinja::Value;
use rand::Rng as _;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq as _;

use super::error::WebError;
use super::flow::with_cookie;
use super::token::{Proven, issue, storage_error};
use super::{AppState, ClientIp, cookies, is_https, issuer, pages, prefix, random_token, token_key};
use crate::clock::{now, secs};
use crate::config::{Client, GrantType};
use crate::generation::Live;
use crate::ids::TokenKey;
use crate::oidc::authorize::{Challenge, check_audiences};
use crate::oidc::device::{POLL_INTERVAL, PollDecision, USER_CODE_ALPHABET, USER_CODE_LEN, UserCode, poll};
use crate::oidc::token::{ClientCredentials, CodeDecision, check_code};
use crate::oidc::{OAuthError, OAuthErrorCode, ScopeSet, pkce};
use crate::storage::{AuthRequest, DeviceRequest, DeviceStatus};

/// The code page's CSRF token (double submit: the cookie and the form must carry the same).
const FORM_COOKIE: &str = "portcullis_device";
/// The PKCE verifier of the browser login `verify_code` started.
const LOGIN_COOKIE: &str = "portcullis_device_login";
/// Longest user code echoed back into the form.
const MAX_TYPED: usize = 32;
/// How often a compare-and-swap on a device request is retried when a poll got in between.
const CAS_TRIES: usize = 5;

fn enabled(live: &Live) -> bool {
    live.config.grant_types.contains(&GrantType::DeviceCode)
}

fn not_enabled() -> OAuthError {
    OAuthError::new(
        OAuthErrorCode::UnsupportedGrantType,
        format!(
            "the device flow is not enabled on this server (oauth2.grantTypes lacks {})",
            GrantType::DeviceCode.as_str()
        ),
    )
}

fn not_enabled_page(live: &std::sync::Arc<Live>) -> WebError {
    WebError::page(
        live,
        StatusCode::NOT_FOUND,
        "Device login not enabled",
        "This login service does not log in devices.",
    )
    .hint("Ask the administrator of the device's application.")
}

/// The broker's device callback as a path (`/dex/device/callback`), what Dex sends to `/auth`.
fn callback_path(live: &Live) -> String {
    format!("{}/device/callback", prefix(live))
}

/// The redirect URI of `client`'s device logins: the absolute callback URL if the client
/// registered that, else the path (registered, or allowed to a native public client).
fn callback_uri(live: &Live, client: &Client) -> String {
    let absolute = format!("{}/device/callback", issuer(live).trim_end_matches('/'));
    if client.redirect_uris.contains(&absolute) { absolute } else { callback_path(live) }
}

/// Whether `uri` is the device callback (a login that ends in a device's approval).
pub fn is_callback(live: &Live, uri: &str) -> bool {
    uri == callback_path(live) || uri == format!("{}/device/callback", issuer(live).trim_end_matches('/'))
}

/// A fresh user code from the OS's random source.
fn new_user_code() -> UserCode {
    let mut rng = rand::rngs::OsRng;
    UserCode::from_indexes(std::array::from_fn::<_, USER_CODE_LEN, _>(|_| rng.gen_range(0..USER_CODE_ALPHABET.len())))
}

fn user_code_key(code: &UserCode) -> TokenKey {
    token_key(code.letters())
}

/// `POST /device/code` (RFC 8628 §3.1): the client (authenticated as at `/token`; a public
/// client names itself) gets a device code, a user code and where the user enters it.
pub async fn code(
    State(broker): State<AppState>,
    headers: HeaderMap,
    ip: ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    if !enabled(&live) {
        return Err(not_enabled().into());
    }
    // Every device request is stored: one client IP may start only so many, as at /auth.
    if let Err(throttled) = broker.throttles.authorize(ip.0) {
        let wait = throttled.retry_after.as_secs().max(1);
        return Err(OAuthError::new(
            OAuthErrorCode::TemporarilyUnavailable,
            format!("too many requests from this address; retry in {wait} seconds"),
        )
        .into());
    }
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let client = ClientCredentials::parse(authorization, &form)?.authenticate(&live.config.clients)?;
    // RFC 8628 makes scope optional; as in Dex, none means openid.
    let scope = form.get("scope").map(String::as_str).filter(|s| !s.trim().is_empty()).unwrap_or("openid");
    let scopes = ScopeSet::parse(scope).map_err(|e| OAuthError::new(OAuthErrorCode::InvalidScope, e))?;
    // Refused now rather than at the browser's /auth, where the device would never hear of it.
    check_audiences(client, &scopes, &live.config.clients)?;
    // Dex's extension: a PKCE challenge here, its verifier with the poll that gets the tokens.
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let challenge = Challenge::parse(get("code_challenge"), get("code_challenge_method"), live.config.pkce_plain)?;
    let callback = callback_uri(&live, client);
    if !client.redirect_allowed(&callback, &callback_path(&live)) {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            format!(
                "client {:?} may not use the device flow: add {callback:?} to its redirectURIs (a public client that registers none may use it as is)",
                client.id
            ),
        )
        .into());
    }
    let now = now();
    let lifetime = secs(live.config.expiry.device_requests);
    let device_code = random_token();
    let request = DeviceRequest {
        key: token_key(&device_code),
        client_id: client.id.clone(),
        scopes: scopes.all.clone(),
        code_challenge: challenge.as_ref().map(|c| c.challenge.clone()),
        code_challenge_method: challenge.as_ref().map(|c| c.method),
        status: DeviceStatus::Pending,
        last_poll: None,
        interval: POLL_INTERVAL,
        created_at: now,
        expires_at: now + lifetime,
    };
    // Two live requests must not share a user code: draw again on a collision (one in 10^10).
    let mut user_code = new_user_code();
    for _ in 0..3 {
        match broker.store.device_request_by_user_code(&user_code_key(&user_code), now).await {
            Ok(None) => break,
            Ok(Some(_)) => user_code = new_user_code(),
            Err(e) => return Err(storage_error(e).into()),
        }
    }
    broker.store.create_device_request(&user_code_key(&user_code), &request, now).await.map_err(storage_error)?;
    tracing::info!(client = %client.id, "device authorization started");
    let verification_uri = format!("{}/device", issuer(&live).trim_end_matches('/'));
    let complete = url::Url::parse_with_params(&verification_uri, &[("user_code", user_code.to_string())])
        .map(String::from)
        .unwrap_or_else(|_| verification_uri.clone());
    let body = json!({
        "device_code": device_code,
        "user_code": user_code.to_string(),
        "verification_uri": verification_uri,
        "verification_uri_complete": complete,
        "expires_in": lifetime,
        "interval": POLL_INTERVAL,
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response())
}

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

/// Applies `change` to the pending device request `key`, retrying when a poll updated it in
/// between. False if it is no longer pending (or expired, or gone).
async fn settle(broker: &AppState, key: &TokenKey, status: DeviceStatus) -> crate::storage::Result<bool> {
    for _ in 0..CAS_TRIES {
        let now = now();
        let Some((mut request, version)) = broker.store.device_request(key, now).await? else { return Ok(false) };
        if request.status != DeviceStatus::Pending || now >= request.expires_at {
            return Ok(false);
        }
        request.status = status.clone();
        if broker.store.update_device_request(&request, version, now).await? {
            return Ok(true);
        }
    }
    Ok(false)
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

/// The device_code grant (RFC 8628 §3.4): a poll by the authenticated `client`. Pending and
/// too-fast polls are recorded (the interval grows with each `slow_down`); an approved request
/// is redeemed once, with compare-and-swap, and its tokens issued like any login's.
pub async fn grant(
    broker: &AppState,
    live: &Live,
    client: &Client,
    device_code: &str,
    verifier: Option<&str>,
) -> Result<serde_json::Value, OAuthError> {
    let now = now();
    let key = token_key(device_code);
    let (mut request, version) =
        broker.store.device_request(&key, now).await.map_err(storage_error)?.ok_or_else(|| {
            OAuthError::invalid_grant("the device code is unknown or long expired; start a new device authorization")
        })?;
    let decision = poll(request.poll_facts(), &client.id, verifier, now);
    match decision {
        PollDecision::Refuse(error) => Err(error),
        PollDecision::Replayed { grant, error } => {
            tracing::warn!(client = %client.id, "device code reuse detected; revoking its grant");
            broker.store.revoke_grant(&grant).await.map_err(storage_error)?;
            Err(error)
        }
        PollDecision::Wait { interval, error } => {
            request.last_poll = Some(now);
            request.interval = interval;
            // Lost to a concurrent poll or the approval: the answer stands, the next poll sees it.
            let _ = broker.store.update_device_request(&request, version, now).await.map_err(storage_error)?;
            Err(error)
        }
        PollDecision::Issue => {
            let DeviceStatus::Approved { connector_id, identity, auth_time, grant } = request.status.clone() else {
                return Err(OAuthError::server_error("the device request is not approved"));
            };
            request.status = DeviceStatus::Redeemed { grant: grant.clone() };
            if !broker.store.update_device_request(&request, version, now).await.map_err(storage_error)? {
                return Err(OAuthError::invalid_grant("the device code was redeemed by a concurrent request"));
            }
            let scopes = ScopeSet::from_list(&request.scopes);
            let proven = Proven {
                connector_id: &connector_id,
                identity: &identity,
                scopes: &scopes,
                nonce: None,
                auth_time,
                // The device is not the browser: logging out there does not log the device out.
                session: None,
                refresh: scopes.offline_access,
            };
            issue(broker, live, client, grant, proven, now).await
        }
    }
}
