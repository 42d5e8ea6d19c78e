//! The device authorization grant (RFC 8628) on Dex's paths: `POST /device/code` gives a
//! device its codes; a person opens `/device` (the code typed, or prefilled from
//! `verification_uri_complete`), posts it to `/device/auth/verify_code`, logs in through the
//! normal `/auth` machinery (any connector, the approval page always shown) and lands on
//! `/device/callback`, which approves the device request; the device's polls of `/token` (or
//! Dex's `/device/token`) then get the tokens once. The rules are in `oidc::device`; this file
//! has `/device/code` and the polls, `browser.rs` the pages.
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
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng as _;
use serde_json::json;

use super::error::WebError;
use super::token::{Proven, issue, storage_error};
use super::{AppState, ClientIp, issuer, prefix, random_token, token_key};
use crate::clock::{now, secs};
use crate::config::{Client, GrantType};
use crate::generation::Live;
use crate::ids::TokenKey;
use crate::oidc::authorize::{Challenge, check_audiences};
use crate::oidc::device::{POLL_INTERVAL, PollDecision, USER_CODE_ALPHABET, USER_CODE_LEN, UserCode, poll};
use crate::oidc::token::ClientCredentials;
use crate::oidc::{OAuthError, OAuthErrorCode, ScopeSet};
use crate::storage::{DeviceRequest, DeviceStatus};

mod browser;
pub use browser::{callback, deny, page, user_code_of, verify};

/// The PKCE verifier of the browser login `verify_code` started.
const LOGIN_COOKIE: &str = "portcullis_device_login";
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
/// Sets `status` on the pending device request `key`, retrying when a poll updated it in
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
                grant_kind: crate::connectors::policy::GrantKind::DeviceCode,
            };
            issue(broker, live, client, grant, proven, now).await
        }
    }
}
