//! The authorization endpoint, the connector chooser, single sign-on, the approval page and
//! the redirect that carries the code back to the client.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::Value;
use serde::Deserialize;
use url::Url;

use super::{AppState, cookies, is_https, pages, prefix, random_token, token_key};
use crate::broker::{Live, now};
use crate::config::Client;
use crate::connectors::Identity;
use crate::oidc::ScopeSet;
use crate::oidc::pkce;
use crate::storage::{AuthCode, AuthRequest, Session};

/// The connector id of the local password database.
pub const LOCAL: &str = "local";

pub async fn authorize(
    state: State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    begin(state, headers, params).await
}

pub async fn authorize_post(
    state: State<AppState>,
    headers: HeaderMap,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    begin(state, headers, params).await
}

/// Redirects to the client with `error` (RFC 6749 §4.1.2.1).
pub fn redirect_error(redirect_uri: &str, state: Option<&str>, error: &str, description: &str) -> Response {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    redirect_with(redirect_uri, &pairs)
}

/// A 303 to `uri` with `pairs` appended to its query.
pub fn redirect_with(uri: &str, pairs: &[(&str, &str)]) -> Response {
    match Url::parse(uri) {
        Ok(mut url) => {
            if !pairs.is_empty() {
                url.query_pairs_mut().extend_pairs(pairs);
            }
            Redirect::to(url.as_str()).into_response()
        }
        Err(_) => (StatusCode::BAD_REQUEST, "bad redirect URI").into_response(),
    }
}

/// The error page for a request whose client or redirect URI cannot be trusted: never a redirect.
fn untrusted(live: &Live, title: &str, message: &str) -> Response {
    pages::error_page(
        &live.config,
        &prefix(live),
        StatusCode::BAD_REQUEST,
        title,
        message,
        Some("Return to the application and try again; if this persists, tell its administrator."),
    )
}

/// A login method shown on the chooser.
struct Method {
    id: String,
    name: String,
}

fn methods(live: &Live) -> Vec<Method> {
    let mut list = Vec::new();
    if live.config.enable_password_db {
        list.push(Method { id: LOCAL.into(), name: "Email".into() });
    }
    for entry in &live.config.connectors {
        if live.registry.get(&entry.spec.id).is_some() {
            list.push(Method { id: entry.spec.id.clone(), name: entry.spec.name.clone() });
        }
    }
    list
}

async fn begin(State(broker): State<AppState>, headers: HeaderMap, p: HashMap<String, String>) -> Response {
    let live = broker.live.load_full();
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(client) = get("client_id").and_then(|id| live.config.clients.get(id)) else {
        return untrusted(
            &live,
            "Unknown application",
            "The application that sent you here is not registered with this login service.",
        );
    };
    let Some(redirect_uri) = get("redirect_uri").filter(|r| client.redirect_uris.iter().any(|u| u == r)) else {
        return untrusted(
            &live,
            "Unregistered redirect",
            "The application asked to send you back to an address it has not registered, so the login was stopped.",
        );
    };
    let state = get("state");
    let fail = |error: &str, description: &str| redirect_error(redirect_uri, state, error, description);
    match get("response_type") {
        Some("code") => {}
        Some(other) => {
            return fail("unsupported_response_type", &format!("response_type {other:?} is not supported; use code"));
        }
        None => return fail("invalid_request", "response_type is required"),
    }
    let scopes = match ScopeSet::parse(get("scope").unwrap_or("")) {
        Ok(s) => s,
        Err(e) => return fail("invalid_scope", &e),
    };
    for peer in &scopes.audiences {
        let trusted = live.config.clients.get(peer).is_some_and(|c| c.trusted_peers.contains(&client.id));
        if !trusted && peer != &client.id {
            return fail("invalid_scope", &format!("client {peer:?} does not list {:?} in trustedPeers", client.id));
        }
    }
    let challenge = get("code_challenge");
    let method = match (challenge, get("code_challenge_method")) {
        (None, Some(_)) => return fail("invalid_request", "code_challenge_method without code_challenge"),
        (None, None) => None,
        (Some(_), m) => match pkce::Method::parse(m.unwrap_or("plain")) {
            Some(pkce::Method::Plain) if !live.config.pkce_plain => {
                return fail("invalid_request", "code_challenge_method plain is not allowed; use S256");
            }
            Some(method) => Some(method),
            None => return fail("invalid_request", "code_challenge_method must be S256"),
        },
    };
    if let Some(c) = challenge
        && !(43..=128).contains(&c.len())
    {
        return fail("invalid_request", "code_challenge must be 43 to 128 characters");
    }
    if client.public && challenge.is_none() {
        return fail("invalid_request", "public clients must use PKCE (code_challenge with S256)");
    }
    let prompt: Vec<String> =
        get("prompt").unwrap_or("").split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect();
    if prompt.iter().any(|p| !matches!(p.as_str(), "none" | "login" | "consent" | "select_account")) {
        return fail("invalid_request", "prompt must be none, login, consent or select_account");
    }
    if prompt.iter().any(|p| p == "none") && prompt.len() > 1 {
        return fail("invalid_request", "prompt=none cannot be combined with other values");
    }
    let max_age = match get("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(v)) if v >= 0 => Some(v),
        Some(_) => return fail("invalid_request", "max_age must be a non-negative integer"),
    };

    let now = now();
    let binding = random_token();
    let request = AuthRequest {
        id: random_token(),
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.into(),
        scopes: scopes.all.clone(),
        state: state.map(str::to_string),
        nonce: get("nonce").map(str::to_string),
        code_challenge: challenge.map(str::to_string),
        code_challenge_method: method.map(|m| match m {
            pkce::Method::S256 => "S256".to_string(),
            pkce::Method::Plain => "plain".to_string(),
        }),
        prompt: prompt.clone(),
        max_age,
        browser_binding: token_key(&binding),
        csrf: random_token(),
        connector_id: None,
        connector_generation: None,
        connector_state: None,
        identity: None,
        auth_time: None,
        created_at: now,
        expires_at: now + secs(live.config.expiry.auth_requests),
    };
    if let Err(e) = broker.store.create_auth_request(&request, now).await {
        tracing::error!("cannot store the auth request: {e}");
        return fail("temporarily_unavailable", "the login service cannot store the request; try again");
    }
    let pfx = prefix(&live);
    let binding_cookie =
        cookies::set(cookies::LOGIN, &binding, &pfx, secs(live.config.expiry.auth_requests), is_https(&live));
    let hint = get("connector_id");

    // Single sign-on: a live session that satisfies prompt and max_age skips the login.
    let session = match cookies::get(&headers, cookies::SESSION) {
        Some(id) => broker.store.session(&token_key(&id), now).await.ok().flatten(),
        None => None,
    };
    let session = session.filter(|s| {
        !prompt.iter().any(|p| p == "login")
            && max_age.is_none_or(|age| now - s.auth_time <= age)
            && hint.is_none_or(|h| h == s.connector_id)
            && (s.connector_id == LOCAL && live.config.enable_password_db
                || live.registry.get(&s.connector_id).is_some())
    });
    let response = match session {
        Some(s) => {
            let mut request = request;
            request.connector_id = Some(s.connector_id.clone());
            request.identity = Some(s.identity.clone());
            request.auth_time = Some(s.auth_time);
            approve_or_finish(&broker, &live, request, 1).await
        }
        None if prompt.iter().any(|p| p == "none") => {
            let _ = broker.store.take_auth_request(&request.id, now).await;
            fail("login_required", "the user is not logged in")
        }
        None => choose(&live, client, &request, hint),
    };
    with_cookie(response, binding_cookie)
}

fn with_cookie(mut response: Response, cookie: Option<axum::http::HeaderValue>) -> Response {
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// The chooser, or straight to the only (or hinted) login method.
fn choose(live: &Live, client: &Client, request: &AuthRequest, hint: Option<&str>) -> Response {
    let pfx = prefix(live);
    let methods = methods(live);
    let go = |id: &str| Redirect::to(&format!("{pfx}/auth/{id}?req={}", request.id)).into_response();
    if let Some(id) = hint.filter(|h| methods.iter().any(|m| m.id == *h)) {
        return go(id);
    }
    if let Some(id) = live.config.oauth2.password_connector.as_deref().filter(|h| methods.iter().any(|m| m.id == *h))
        && !live.config.oauth2.always_show_login_screen
    {
        return go(id);
    }
    if methods.len() == 1 && !live.config.oauth2.always_show_login_screen {
        return go(&methods[0].id);
    }
    if methods.is_empty() {
        return pages::error_page(
            &live.config,
            &pfx,
            StatusCode::SERVICE_UNAVAILABLE,
            "No way to log in",
            "No connector is configured.",
            None,
        );
    }
    let list: Vec<Value> =
        methods.iter().map(|m| Value::from_serialize(serde_json::json!({"id": m.id, "name": m.name}))).collect();
    pages::render(
        &live.config,
        &pfx,
        StatusCode::OK,
        "chooser.html",
        vec![
            ("client_name", client.name.clone().into()),
            ("methods", Value::from(list)),
            ("req", request.id.clone().into()),
        ],
    )
}

/// Loads a login in progress for this browser; the error is the page to show.
pub async fn load_request(
    broker: &AppState,
    live: &Live,
    headers: &HeaderMap,
    id: &str,
) -> Result<(AuthRequest, i64), Response> {
    let pfx = prefix(live);
    let expired = || {
        pages::error_page(
            &live.config,
            &pfx,
            StatusCode::BAD_REQUEST,
            "Login expired",
            "This login is unknown or has expired.",
            Some("Go back to the application and log in again."),
        )
    };
    let found = broker.store.auth_request(id, now()).await.map_err(|e| {
        tracing::error!("cannot read the auth request: {e}");
        pages::error_page(
            &live.config,
            &pfx,
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again",
            "The login service's storage is unavailable.",
            None,
        )
    })?;
    let (request, version) = found.ok_or_else(expired)?;
    let bound = cookies::get(headers, cookies::LOGIN).is_some_and(|b| {
        use subtle::ConstantTimeEq;
        bool::from(token_key(&b).as_bytes().ct_eq(request.browser_binding.as_bytes()))
    });
    if !bound {
        return Err(pages::error_page(
            &live.config,
            &pfx,
            StatusCode::FORBIDDEN,
            "Login started elsewhere",
            "This login was started in another browser or its cookie is missing.",
            Some("Go back to the application and log in again from this browser."),
        ));
    }
    Ok((request, version))
}

/// A connector authenticated the user: start the SSO session, then approval or the code.
pub async fn complete_login(
    broker: &AppState,
    live: &Live,
    mut request: AuthRequest,
    version: i64,
    connector_id: &str,
    identity: Identity,
) -> Response {
    let now = now();
    crate::metrics::global().login(connector_id, "success");
    request.connector_id = Some(connector_id.into());
    request.identity = Some(identity.clone());
    request.auth_time = Some(now);
    let session_id = random_token();
    let session = Session {
        connector_id: connector_id.into(),
        identity: Identity { connector_data: None, ..identity },
        auth_time: now,
        expires_at: now + secs(live.config.expiry.sessions),
    };
    let cookie = match broker.store.create_session(&token_key(&session_id), &session, now).await {
        Ok(()) => cookies::set(
            cookies::SESSION,
            &session_id,
            &prefix(live),
            secs(live.config.expiry.sessions),
            is_https(live),
        ),
        Err(e) => {
            tracing::warn!("cannot store the SSO session (login continues without it): {e}");
            None
        }
    };
    with_cookie(approve_or_finish(broker, live, request, version).await, cookie)
}

/// Shows the approval page, or issues the code when approval is skipped.
async fn approve_or_finish(broker: &AppState, live: &Live, request: AuthRequest, version: i64) -> Response {
    let consent = request.prompt.iter().any(|p| p == "consent");
    if live.config.oauth2.skip_approval_screen && !consent {
        return finish(broker, live, &request).await;
    }
    if request.prompt.iter().any(|p| p == "none") {
        let _ = broker.store.take_auth_request(&request.id, now()).await;
        return redirect_error(
            &request.redirect_uri,
            request.state.as_deref(),
            "consent_required",
            "the user must approve this application",
        );
    }
    // Persist the identity so the approval POST can finish the login.
    let saved = broker.store.update_auth_request(&request, version, now()).await;
    if !matches!(saved, Ok(true)) {
        return pages::error_page(
            &live.config,
            &prefix(live),
            StatusCode::CONFLICT,
            "Login expired",
            "This login changed or expired while you were logging in.",
            Some("Go back to the application and log in again."),
        );
    }
    Redirect::to(&format!("{}/approval?req={}", prefix(live), request.id)).into_response()
}

/// Consumes the auth request and sends the browser back to the client with a code.
pub async fn finish(broker: &AppState, live: &Live, request: &AuthRequest) -> Response {
    let now = now();
    // Exactly one finish per login, whatever the browser replays.
    let _ = broker.store.take_auth_request(&request.id, now).await;
    let (Some(identity), Some(connector_id)) = (request.identity.clone(), request.connector_id.clone()) else {
        return redirect_error(
            &request.redirect_uri,
            request.state.as_deref(),
            "server_error",
            "the login did not complete",
        );
    };
    let code = random_token();
    let stored = AuthCode {
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        scopes: request.scopes.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        code_challenge_method: request.code_challenge_method.clone(),
        connector_id,
        identity,
        auth_time: request.auth_time.unwrap_or(now),
        redeemed_grant: None,
        expires_at: now + secs(live.config.expiry.auth_codes),
    };
    if let Err(e) = broker.store.create_auth_code(&token_key(&code), &stored, now).await {
        tracing::error!("cannot store the authorization code: {e}");
        return redirect_error(&request.redirect_uri, request.state.as_deref(), "temporarily_unavailable", "try again");
    }
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = request.state.as_deref() {
        pairs.push(("state", s));
    }
    redirect_with(&request.redirect_uri, &pairs)
}

#[derive(Deserialize)]
pub struct ReqQuery {
    pub req: String,
}

pub async fn approval_page(State(broker): State<AppState>, headers: HeaderMap, Query(q): Query<ReqQuery>) -> Response {
    let live = broker.live.load_full();
    let (request, _) = match load_request(&broker, &live, &headers, &q.req).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    if request.identity.is_none() {
        return not_logged_in(&live);
    }
    let client_name = live.config.clients.get(&request.client_id).map(|c| c.name.clone()).unwrap_or_default();
    let scopes = ScopeSet::from_list(&request.scopes);
    let mut lines: Vec<Value> = vec![Value::from("Confirm your identity")];
    if scopes.email {
        lines.push("View your email address".into());
    }
    if scopes.profile {
        lines.push("View your name and username".into());
    }
    if scopes.groups {
        lines.push("View the groups you belong to".into());
    }
    if scopes.offline_access {
        lines.push("Stay signed in (offline access)".into());
    }
    for peer in &scopes.audiences {
        lines.push(Value::from(format!("Act on behalf of you with {peer}")));
    }
    pages::render(
        &live.config,
        &prefix(&live),
        StatusCode::OK,
        "approval.html",
        vec![
            ("client_name", client_name.into()),
            ("scopes", Value::from(lines)),
            ("req", request.id.clone().into()),
            ("csrf", request.csrf.clone().into()),
        ],
    )
}

#[derive(Deserialize)]
pub struct ApprovalForm {
    req: String,
    csrf: String,
    approval: String,
}

pub async fn approval_post(
    State(broker): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ApprovalForm>,
) -> Response {
    let live = broker.live.load_full();
    let (request, _) = match load_request(&broker, &live, &headers, &form.req).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    if !csrf_ok(&request, &form.csrf) {
        return csrf_failed(&live);
    }
    if request.identity.is_none() {
        return not_logged_in(&live);
    }
    if form.approval != "approve" {
        let _ = broker.store.take_auth_request(&request.id, now()).await;
        return redirect_error(&request.redirect_uri, request.state.as_deref(), "access_denied", "the user declined");
    }
    finish(&broker, &live, &request).await
}

/// The approval page asked for before any connector authenticated the user.
fn not_logged_in(live: &Live) -> Response {
    pages::error_page(
        &live.config,
        &prefix(live),
        StatusCode::BAD_REQUEST,
        "Not logged in",
        "Log in before approving access.",
        None,
    )
}

/// Compares a form's CSRF token with the login's, in constant time.
pub fn csrf_ok(request: &AuthRequest, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(request.csrf.as_bytes().ct_eq(token.as_bytes()))
}

pub fn csrf_failed(live: &Live) -> Response {
    pages::error_page(
        &live.config,
        &prefix(live),
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form did not come from this login (its security token does not match).",
        Some("Go back to the application and log in again."),
    )
}

pub fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}
