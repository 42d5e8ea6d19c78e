//! Logging in through a connector: the password form (local database and password
//! connectors), the redirect to a callback connector, and the upstream's callback.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::Value;
use serde::Deserialize;

use super::authorize::ReqQuery;
use super::client_ip::Peer;
use super::error::WebError;
use super::flow::{LOCAL, Proof, check_csrf, complete_login, load_request};
use super::{AppState, ClientIp, cookies, issuer, pages, prefix, proxy_auth};
use crate::clock::{now, secs};
use crate::connectors::{CallbackRequest, ConnectorKind, Identity, Scopes};
use crate::generation::Live;
use crate::oidc::ScopeSet;
use crate::storage::AuthRequest;
use crate::throttle::{BCRYPT_WAIT, MAX_FAILED_PER_LOGIN};

/// A bcrypt hash (cost 10, like `hash-password`'s) checked when the user does not exist and
/// no user is configured to borrow the cost from, so a wrong email and a wrong password take
/// the same time.
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| bcrypt::hash(super::random_token(), 10).unwrap_or_default()).clone()
}

fn scopes_of(request: &AuthRequest) -> Scopes {
    let set = ScopeSet::from_list(&request.scopes);
    Scopes { offline_access: set.offline_access, groups: set.groups }
}

fn connector_name(live: &Live, id: &str) -> String {
    if id == LOCAL {
        return "Email".into();
    }
    live.config.connectors.iter().find(|c| c.spec.id == id).map(|c| c.spec.name.clone()).unwrap_or_else(|| id.into())
}

fn password_form(
    live: &Live,
    request: &AuthRequest,
    connector: &str,
    prompt: &str,
    login: &str,
    error: Option<&str>,
) -> Response {
    let pfx = prefix(live);
    let client_name = live.config.clients.get(&request.client_id).map(|c| c.name.clone()).unwrap_or_default();
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    pages::render(
        &live.config,
        &pfx,
        status,
        "password.html",
        vec![
            ("client_name", client_name.into()),
            ("connector_name", connector_name(live, connector).into()),
            ("connector_id", connector.to_string().into()),
            ("prompt", prompt.to_string().into()),
            ("login", login.to_string().into()),
            ("error", Value::from(error.map(str::to_string))),
            ("req", request.id.clone().into()),
            ("csrf", request.csrf.clone().into()),
            ("back", Value::from(None::<String>)),
            ("remember_me", Value::from(live.config.sessions.remember_me_default)),
        ],
    )
}

/// The grant a login serves: the device flow's when it returns to `/device/callback`.
pub(super) fn grant_of(live: &Live, request: &AuthRequest) -> &'static str {
    if super::device::is_callback(live, &request.redirect_uri) {
        crate::config::GrantType::DeviceCode.as_str()
    } else {
        crate::config::GrantType::AuthorizationCode.as_str()
    }
}

/// Refuses a login method the login's client may not use (its `allowedConnectors`), or one
/// whose `grantTypes` leave out the login's grant.
fn check_allowed(live: &Arc<Live>, request: &AuthRequest, connector: &str) -> Result<(), WebError> {
    if !live.config.connector_allows(connector, grant_of(live, request)) {
        return Err(WebError::page(
            live,
            StatusCode::BAD_REQUEST,
            "Login method not available",
            "This login method does not serve this kind of login (its grantTypes).",
        )
        .hint("Go back to the application and log in with another method."));
    }
    match live.config.clients.get(request.client_id.as_str()) {
        Some(client) if !client.allows(connector) => Err(WebError::page(
            live,
            StatusCode::FORBIDDEN,
            "Login method not allowed",
            "This application does not accept this login method.",
        )
        .hint("Go back to the application and log in with one of the methods it offers.")),
        _ => Ok(()),
    }
}

/// `GET /auth/{connector}?req=`: the password form, or the redirect to the upstream.
pub async fn start(
    State(broker): State<AppState>,
    headers: HeaderMap,
    Path(connector): Path<String>,
    Query(q): Query<ReqQuery>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    let (mut request, version) = load_request(&broker, &live, &headers, &q.req).await?;
    check_allowed(&live, &request, &connector)?;
    // A login method was chosen: the login now lives as long as `expiry.authRequests` says
    // (until now only `PENDING_LOGIN_LIFETIME`).
    request.expires_at = request.created_at + secs(live.config.expiry.auth_requests);
    let plugin = if connector == LOCAL && live.config.enable_password_db {
        None
    } else {
        Some(live.registry.get(&connector).ok_or_else(|| WebError::unknown_connector(&live, &connector))?)
    };
    let kind = plugin.map_or(ConnectorKind::Password, |p| p.metadata().kind);
    let (ConnectorKind::Callback, Some(plugin)) = (kind, plugin) else {
        let prompt = match plugin {
            None => "Email Address".to_string(),
            Some(p) => p.metadata().password_prompt.clone().unwrap_or_else(|| "Username".into()),
        };
        // The form works even if this lost a race; the login then keeps its shorter lifetime.
        let _ = broker.store.update_auth_request(&request, version, now()).await;
        return Ok(password_form(&live, &request, &connector, &prompt, "", None));
    };
    // The callback may come back after any number of reloads: keep this generation
    // (its plugin version) findable for as long as the request can complete.
    broker.generations.pin(&live, request.expires_at);
    let callback = format!("{}/callback/{connector}", issuer(&live).trim_end_matches('/'));
    let redirect = plugin
        .login_url(scopes_of(&request), &callback, &request.id)
        .await
        .map_err(|e| WebError::connector(&live, &e))?;
    request.connector_id = Some(connector.as_str().into());
    request.connector_generation = Some(live.generation);
    request.connector_state = redirect.state_data;
    match broker.store.update_auth_request(&request, version, now()).await {
        // SAML's HTTP-POST binding: the browser POSTs the connector's fields upstream.
        Ok(true) if redirect.post_form.is_some() => {
            Ok(super::autopost::page(Some(&redirect.url), &redirect.post_form.unwrap_or_default(), false))
        }
        Ok(true) => Ok(Redirect::to(&redirect.url).into_response()),
        _ => Err(WebError::login_changed(&live, "This login changed while starting.")),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    req: String,
    csrf: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    /// The "remember me" box (shown with a `sessions` block): ticked, the session cookie persists.
    #[serde(default)]
    remember_me: Option<String>,
}

/// `POST /auth/{connector}/login`: checks the password; the form again on failure.
pub async fn password_login(
    State(broker): State<AppState>,
    headers: HeaderMap,
    client: ClientIp,
    Path(connector): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    let (mut request, version) = load_request(&broker, &live, &headers, &form.req).await?;
    check_csrf(&live, &request, &form.csrf)?;
    check_allowed(&live, &request, &connector)?;
    let local = connector == LOCAL && live.config.enable_password_db;
    let plugin = match local {
        true => None,
        false => Some(
            live.registry
                .get(&connector)
                .filter(|p| p.metadata().kind == ConnectorKind::Password)
                .ok_or_else(|| WebError::unknown_connector(&live, &connector))?,
        ),
    };
    let (prompt, missing, wrong) = match plugin {
        None => (
            "Email Address".to_string(),
            "Enter your email address and password.",
            "Invalid email address or password.",
        ),
        Some(p) => (
            p.metadata().password_prompt.clone().unwrap_or_else(|| "Username".into()),
            "Enter your username and password.",
            "Invalid username or password.",
        ),
    };
    let login = form.login.trim();
    let form_again = |request: &AuthRequest, status: StatusCode, error: &str| {
        let mut page = password_form(&live, request, &connector, &prompt, login, Some(error));
        *page.status_mut() = status;
        page
    };
    if login.is_empty() || form.password.is_empty() {
        return Ok(form_again(&request, StatusCode::UNAUTHORIZED, missing));
    }
    // Guessing costs time: per client IP and per account, before any password is checked (audit F5).
    if let Err(throttled) = broker.throttles.password(client.0, &connector, login) {
        crate::metrics::global().login(&connector, "throttled");
        let wait = throttled.retry_after.as_secs().max(1);
        let mut page = form_again(
            &request,
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many attempts. Wait {wait} seconds, then try again."),
        );
        if let Ok(value) = axum::http::HeaderValue::from_str(&wait.to_string()) {
            page.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(page);
    }
    let verdict = match plugin {
        None => check_local(&broker, &live, login, form.password).await?,
        Some(p) => {
            p.login(scopes_of(&request), login, &form.password).await.map_err(|e| WebError::connector(&live, &e))?
        }
    };
    if let Some(identity) = verdict {
        // Without a `sessions` block there is no box and the cookie persists, as before.
        let remember = live.config.sessions.remember_me_default.is_none() || form.remember_me.is_some();
        return Ok(complete_login(
            &broker,
            &live,
            &headers,
            request,
            version,
            Proof { connector_id: &connector, identity, remember },
        )
        .await);
    }
    crate::metrics::global().login(&connector, "bad_credentials");
    // A login may fail only so often; then it must start again from the application.
    request.failed_logins += 1;
    if request.failed_logins >= MAX_FAILED_PER_LOGIN {
        let _ = broker.store.take_auth_request(&request.id, now()).await;
        return Err(WebError::page(
            &live,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "This login had too many wrong passwords and was stopped.",
        )
        .hint("Go back to the application and log in again."));
    }
    let _ = broker.store.update_auth_request(&request, version, now()).await;
    Ok(form_again(&request, StatusCode::UNAUTHORIZED, wrong))
}

/// bcrypt reads only the first 72 bytes of a password: a longer one is refused, never cut.
pub const BCRYPT_MAX_PASSWORD: usize = 72;

/// The local password database: bcrypt or argon2id off the async runtime, same cost for unknown
/// users and for passwords bcrypt would truncate (refused whatever their first 72 bytes are).
async fn check_local(
    broker: &AppState,
    live: &Arc<Live>,
    email: &str,
    password: String,
) -> Result<Option<Identity>, WebError> {
    verify_local(broker, live, email, password).await.map_err(|Busy| {
        WebError::page(
            live,
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again",
            "The login service is busy checking passwords.",
        )
        .hint("Wait a moment and submit the form again.")
    })
}

/// Every bcrypt slot stayed taken for `BCRYPT_WAIT`.
pub struct Busy;

/// The password database's verdict on `email` and `password` (the form and the password
/// grant share it): a bounded number of password checks at once, the same cost for unknown
/// users (a dummy hash), passwords over bcrypt's 72 bytes refused against a bcrypt hash.
pub async fn verify_local(
    broker: &AppState,
    live: &Live,
    email: &str,
    password: String,
) -> Result<Option<Identity>, Busy> {
    let user = live.config.passwords.iter().find(|p| p.email.eq_ignore_ascii_case(email)).cloned();
    // An unknown email costs what a known one does: the password is checked against a
    // configured user's hash (the same cost; the answer is discarded below), else a cost-10 dummy.
    let hash = user.as_ref().or(live.config.passwords.first()).map(|u| u.hash.expose().to_string());
    let hash = hash.unwrap_or_else(dummy_hash);
    let too_long =
        password.len() > BCRYPT_MAX_PASSWORD && crate::password::Scheme::of(&hash) == crate::password::Scheme::Bcrypt;
    // A bounded number of password checks at once: a flood waits here instead of taking every core.
    let permit = tokio::time::timeout(BCRYPT_WAIT, broker.throttles.bcrypt.acquire()).await;
    let Ok(Ok(_permit)) = permit else { return Err(Busy) };
    let ok = tokio::task::spawn_blocking(move || crate::password::verify(&password, &hash)).await.unwrap_or(false)
        && !too_long;
    Ok(user.filter(|_| ok).map(|user| user.identity()))
}

pub async fn callback_get(
    state: State<AppState>,
    headers: HeaderMap,
    peer: Peer,
    path: Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    callback(state, headers, peer, Some(path.0), Method::GET, query, Vec::new()).await
}

/// `GET /callback`: Dex's single callback URL. The login's `state` names the connector, so a
/// connector block moved over from Dex with `redirectURI: https://…/dex/callback` works as is.
pub async fn shared_callback_get(
    state: State<AppState>,
    headers: HeaderMap,
    peer: Peer,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    callback(state, headers, peer, None, Method::GET, query, Vec::new()).await
}

pub async fn shared_callback_post(
    state: State<AppState>,
    headers: HeaderMap,
    peer: Peer,
    Query(query): Query<Vec<(String, String)>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    callback(state, headers, peer, None, Method::POST, query, form).await
}

pub async fn callback_post(
    state: State<AppState>,
    headers: HeaderMap,
    peer: Peer,
    path: Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    callback(state, headers, peer, Some(path.0), Method::POST, query, form).await
}

/// Headers a connector may see; never cookies or credentials. A `type: authproxy` connector
/// sees instead the identity headers its config names, from a trusted proxy only (`proxy_auth`).
const PASSED_HEADERS: &[header::HeaderName] = &[header::USER_AGENT, header::ACCEPT_LANGUAGE, header::CONTENT_TYPE];

/// `/callback/{connector}` (or Dex's `/callback`, with `connector` None): the upstream sent
/// the browser back.
async fn callback(
    State(broker): State<AppState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    connector: Option<String>,
    method: Method,
    query: Vec<(String, String)>,
    mut form: Vec<(String, String)>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    // A cross-site POST (SAML's HTTP-POST binding) brings no SameSite=Lax login cookie: relay it
    // once through a same-origin page, which comes back with the cookie (web/autopost.rs).
    let relayed = form.iter().any(|(k, _)| k == super::autopost::RELAYED);
    if method == Method::POST && !relayed && cookies::get(&headers, cookies::LOGIN).is_none() {
        form.push((super::autopost::RELAYED.into(), "1".into()));
        return Ok(super::autopost::page(None, &form, true));
    }
    form.retain(|(k, _)| k != super::autopost::RELAYED);
    // OAuth's `state`, or SAML's `RelayState` (the broker's `state` too).
    let state =
        query.iter().chain(form.iter()).find(|(k, _)| k == "state" || k == "RelayState").map(|(_, v)| v.clone());
    let state = state.ok_or_else(|| WebError::callback(&live, "The identity provider's answer has no state."))?;
    let (request, version) = load_request(&broker, &live, &headers, &state).await?;
    let connector = connector
        .or_else(|| request.connector_id.as_deref().map(str::to_string))
        .ok_or_else(|| WebError::callback(&live, "This login never went to an identity provider."))?;
    if request.connector_id.as_deref() != Some(connector.as_str()) {
        return Err(WebError::callback(&live, "This answer is for a different login method."));
    }
    // One answer per login: a replayed callback (a SAML response posted again) changes nothing.
    if request.identity.is_some() {
        return Err(WebError::callback(&live, "This login has already been answered by the identity provider."));
    }
    // A connector removed by a reload fails its in-flight logins cleanly; one still configured
    // finishes on the version the login began with.
    let unknown = || WebError::unknown_connector(&live, &connector);
    let current = live.registry.get(&connector).ok_or_else(unknown)?;
    let began_on = broker.generations.generation(request.connector_generation);
    let plugin = began_on.registry.get(&connector).unwrap_or(current).clone();
    let entry = began_on.config.connectors.iter().find(|c| c.spec.id == connector.as_str());
    let passed: Vec<(String, String)> = match entry.filter(|e| proxy_auth::is_proxy(e)) {
        Some(entry) => {
            let names = proxy_auth::header_names(&entry.spec.config);
            proxy_auth::forwarded(&live.config.web.client_remote_ip, peer, &names, &headers)
                .map_err(|refusal| refusal.page(&live, &connector))?
        }
        None => {
            let passed: HashMap<String, String> = PASSED_HEADERS
                .iter()
                .filter_map(|h| Some((h.as_str().to_string(), headers.get(h)?.to_str().ok()?.to_string())))
                .collect();
            passed.into_iter().collect()
        }
    };
    let callback_request = CallbackRequest {
        method: method.as_str().to_string(),
        query,
        form,
        headers: passed,
        callback_url: format!("{}/callback/{connector}", issuer(&live).trim_end_matches('/')),
        state_data: request.connector_state.clone(),
    };
    match plugin.handle_callback(scopes_of(&request), callback_request).await {
        // No box on a connector's page: with a `sessions` block the cookie lasts the browser
        // session, as Dex does for callback logins.
        Ok(identity) => {
            let remember = live.config.sessions.remember_me_default.is_none();
            Ok(complete_login(
                &broker,
                &live,
                &headers,
                request,
                version,
                Proof { connector_id: &connector, identity, remember },
            )
            .await)
        }
        Err(e) => Err(WebError::connector(&live, &e)),
    }
}
