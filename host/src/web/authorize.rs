//! The authorization endpoint, the connector chooser, single sign-on and the approval page.
//! What is acceptable and what comes next is decided in `oidc::authorize`; this does the I/O.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::Value;
use serde::Deserialize;

use super::error::WebError;
use super::flow::{LOCAL, approve_or_finish, check_csrf, finish, load_request, with_cookie};
use super::{AppState, ClientIp, cookies, is_https, pages, prefix, random_token, token_key};
use crate::clock::{now, secs};
use crate::config::Client;
use crate::generation::Live;
use crate::oidc::authorize::{AuthorizeRefusal, AuthorizeRequest, Choice, Policy, SessionFacts, Start};
use crate::oidc::{OAuthError, OAuthErrorCode, ScopeSet};
use crate::storage::AuthRequest;

/// How long an authorization request lives before a login method is chosen (seconds); then
/// it gets `expiry.authRequests` (audit F2).
pub const PENDING_LOGIN_LIFETIME: i64 = 15 * 60;

pub async fn authorize(
    state: State<AppState>,
    headers: HeaderMap,
    client: ClientIp,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    begin(state, headers, client, params).await
}

pub async fn authorize_post(
    state: State<AppState>,
    headers: HeaderMap,
    client: ClientIp,
    Form(params): Form<HashMap<String, String>>,
) -> Result<Response, WebError> {
    begin(state, headers, client, params).await
}

/// The login methods shown on the chooser: the password database, then each loaded connector,
/// those the client may use (`allowedConnectors`) that serve the login's grant (`grantTypes`).
fn methods<'a>(live: &'a Live, client: Option<&Client>, grant: &str) -> Vec<(&'a str, &'a str)> {
    let local = live.config.enable_password_db.then_some((LOCAL, "Email"));
    let loaded = live
        .config
        .connectors
        .iter()
        .filter(|entry| live.registry.get(&entry.spec.id).is_some() && entry.allows_grant(grant))
        .map(|entry| (entry.spec.id.as_str(), entry.spec.name.as_str()));
    local.into_iter().chain(loaded).filter(|(id, _)| client.is_none_or(|c| c.allows(id))).collect()
}

async fn begin(
    State(broker): State<AppState>,
    headers: HeaderMap,
    client: ClientIp,
    params: HashMap<String, String>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    // Every authorization request is stored: one client IP may start only so many (audit F2).
    if let Err(throttled) = broker.throttles.authorize(client.0) {
        return Err(WebError::throttled(&live, throttled.retry_after));
    }
    let device_callback = format!("{}/device/callback", prefix(&live));
    let policy = Policy {
        clients: &live.config.clients,
        pkce_plain: live.config.pkce_plain,
        pkce_enforce: live.config.pkce_enforce,
        device_callback: &device_callback,
    };
    let asked = AuthorizeRequest::parse(&params, &policy).map_err(|refusal| match refusal {
        AuthorizeRefusal::UnknownClient => WebError::untrusted(
            &live,
            "Unknown application",
            "The application that sent you here is not registered with this login service.",
        ),
        AuthorizeRefusal::UnregisteredRedirect => WebError::untrusted(
            &live,
            "Unregistered redirect",
            "The application asked to send you back to an address it has not registered, so the login was stopped.",
        ),
        AuthorizeRefusal::ToClient { redirect_uri, state, error } => {
            WebError::to_client(&live, &redirect_uri, state.as_deref(), error)
        }
    })?;

    let now = now();
    let binding = random_token();
    let lifetime = secs(live.config.expiry.auth_requests);
    // Until a login method is chosen the request lives briefly: anonymous requests cost little.
    let pending = lifetime.min(PENDING_LOGIN_LIFETIME);
    let mut request = AuthRequest {
        id: random_token(),
        client_id: asked.client_id.clone(),
        redirect_uri: asked.redirect_uri.clone(),
        scopes: asked.scopes.all.clone(),
        state: asked.state.clone(),
        nonce: asked.nonce.clone(),
        code_challenge: asked.pkce.as_ref().map(|c| c.challenge.clone()),
        code_challenge_method: asked.pkce.as_ref().map(|c| c.method),
        prompt: asked.prompt.to_list(),
        max_age: asked.max_age,
        browser_binding: token_key(&binding),
        csrf: random_token(),
        connector_id: None,
        connector_generation: None,
        connector_state: None,
        identity: None,
        auth_time: None,
        session: None,
        failed_logins: 0,
        created_at: now,
        expires_at: now + pending,
    };
    let to_client = |code: OAuthErrorCode, description: &str| {
        WebError::to_client(&live, &asked.redirect_uri, asked.state.as_deref(), OAuthError::new(code, description))
    };
    if let Err(e) = broker.store.create_auth_request(&request, now).await {
        tracing::error!("cannot store the auth request: {e}");
        return Err(to_client(
            OAuthErrorCode::TemporarilyUnavailable,
            "the login service cannot store the request; try again",
        ));
    }
    let binding_cookie = cookies::set(cookies::LOGIN, &binding, &prefix(&live), lifetime, is_https(&live));

    // Single sign-on: a live session that satisfies prompt and max_age skips the login — one
    // this client logged into, or one shared with it (`ssoSharedWith`).
    let mut current = super::session::current(&broker, &live, &headers, now).await;
    // A session outlives no config change that removed its user or connector (audit F3): the
    // local user must still be in staticPasswords, the connector still configured.
    if let Some(c) = &current
        && !still_valid(&live, &c.session)
    {
        tracing::info!(connector = %c.session.connector_id, "ending an SSO session whose user or connector was removed");
        super::session::end(&broker, &live, &c.key, Some(c.session.clone()), now).await;
        current = None;
    }
    let current = current.filter(|c| super::session::usable_for(&live, &c.session, &asked.client_id));
    let facts = current.as_ref().map(|c| SessionFacts {
        connector_id: &c.session.connector_id,
        auth_time: c.session.auth_time,
        connector_available: (c.session.connector_id == LOCAL || live.registry.get(&c.session.connector_id).is_some())
            && live.config.clients.get(asked.client_id.as_str()).is_some_and(|cl| cl.allows(&c.session.connector_id)),
    });
    let response = match (crate::oidc::authorize::start(&asked, facts.as_ref(), now), current) {
        (Start::SingleSignOn, Some(c)) => {
            // The session proved who the user is; the policies decide again for this client.
            let mut identity = c.session.identity.clone();
            let (client, connector) = (request.client_id.as_str(), c.session.connector_id.as_str());
            let checked = super::policy::check_login(&live, client, connector, &request.scopes, &mut identity).await;
            match checked {
                Err(denied) => {
                    let _ = broker.store.take_auth_request(&request.id, now).await;
                    Err(super::policy::denied_page(&live, &denied))
                }
                Ok(()) => {
                    super::session::touch(&broker, &live, &c, &asked.client_id, now).await;
                    request.connector_id = Some(c.session.connector_id);
                    request.identity = Some(identity);
                    request.auth_time = Some(c.session.auth_time);
                    request.session = Some(c.key);
                    approve_or_finish(&broker, &live, request, 1).await
                }
            }
        }
        (Start::LoginRequired, _) => {
            let _ = broker.store.take_auth_request(&request.id, now).await;
            Err(to_client(OAuthErrorCode::LoginRequired, "the user is not logged in"))
        }
        _ => choose(&live, &asked, &request),
    };
    Ok(with_cookie(response.into_response(), binding_cookie))
}

/// Whether an SSO session's user can still log in with the serving config: a local user still
/// listed (same email and user id) with the password database on; a connector still configured
/// (a connector left out by a degraded start keeps its sessions).
fn still_valid(live: &Live, session: &crate::storage::Session) -> bool {
    if session.connector_id == LOCAL {
        return live.config.enable_password_db
            && live
                .config
                .passwords
                .iter()
                .any(|p| Some(&p.email) == session.identity.email.as_ref() && p.user_id == session.identity.user_id);
    }
    live.config.connectors.iter().any(|c| c.spec.id == session.connector_id)
}

/// The chooser, or straight to the only (or hinted) login method.
fn choose(live: &Arc<Live>, asked: &AuthorizeRequest, request: &AuthRequest) -> Result<Response, WebError> {
    let pfx = prefix(live);
    let grant = super::login::grant_of(live, request);
    let methods = methods(live, live.config.clients.get(request.client_id.as_str()), grant);
    let ids: Vec<&str> = methods.iter().map(|(id, _)| *id).collect();
    let oauth2 = &live.config.oauth2;
    let choice = crate::oidc::authorize::choose(&ids, asked.connector_hint.as_deref(), oauth2.always_show_login_screen);
    match choice {
        Choice::Go(id) => Ok(Redirect::to(&format!("{pfx}/auth/{id}?req={}", request.id)).into_response()),
        Choice::Nothing => Err(WebError::page(
            live,
            StatusCode::SERVICE_UNAVAILABLE,
            "No way to log in",
            "No connector is configured.",
        )),
        Choice::Chooser => {
            let list: Vec<Value> = methods
                .iter()
                .map(|(id, name)| Value::from_serialize(serde_json::json!({"id": id, "name": name})))
                .collect();
            let client_name = live.config.clients.get(&request.client_id).map(|c| c.name.clone()).unwrap_or_default();
            Ok(pages::render(
                &live.config,
                &pfx,
                StatusCode::OK,
                "chooser.html",
                vec![
                    ("client_name", client_name.into()),
                    ("methods", Value::from(list)),
                    ("req", request.id.clone().into()),
                ],
            ))
        }
    }
}

#[derive(Deserialize)]
pub struct ReqQuery {
    pub req: String,
}

/// What the approval page lists for `scopes`.
fn approval_lines(scopes: &ScopeSet) -> Vec<String> {
    let mut lines = vec!["Confirm your identity".to_string()];
    for (asked, line) in [
        (scopes.email, "View your email address"),
        (scopes.profile, "View your name and username"),
        (scopes.groups, "View the groups you belong to"),
        (scopes.offline_access, "Stay signed in (offline access)"),
    ] {
        if asked {
            lines.push(line.to_string());
        }
    }
    lines.extend(scopes.audiences.iter().map(|peer| format!("Act on behalf of you with {peer}")));
    lines
}

pub async fn approval_page(
    State(broker): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReqQuery>,
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    let (request, _) = load_request(&broker, &live, &headers, &q.req).await?;
    if request.identity.is_none() {
        return Err(not_logged_in(&live));
    }
    let client = live.config.clients.get(request.client_id.as_str());
    let client_name = client.map(|c| c.name.clone()).unwrap_or_default();
    let client_logo = client.and_then(|c| c.logo_url.clone());
    let lines: Vec<Value> =
        approval_lines(&ScopeSet::from_list(&request.scopes)).into_iter().map(Value::from).collect();
    Ok(pages::render(
        &live.config,
        &prefix(&live),
        StatusCode::OK,
        "approval.html",
        vec![
            ("client_name", client_name.into()),
            ("client_logo", Value::from(client_logo)),
            ("scopes", Value::from(lines)),
            ("req", request.id.clone().into()),
            ("csrf", request.csrf.clone().into()),
            ("user_code", Value::from(super::device::user_code_of(&live, &request))),
        ],
    ))
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
) -> Result<Response, WebError> {
    let live = broker.generations.current();
    let (request, _) = load_request(&broker, &live, &headers, &form.req).await?;
    check_csrf(&live, &request, &form.csrf)?;
    if request.identity.is_none() {
        return Err(not_logged_in(&live));
    }
    if form.approval != "approve" {
        if super::device::is_callback(&live, &request.redirect_uri) {
            super::device::deny(&broker, &live, &headers, &request).await;
        }
        let _ = broker.store.take_auth_request(&request.id, now()).await;
        return Err(WebError::to_client(
            &live,
            &request.redirect_uri,
            request.state.as_deref(),
            OAuthError::new(OAuthErrorCode::AccessDenied, "the user declined"),
        ));
    }
    finish(&broker, &live, &request).await
}

/// The approval page asked for before any connector authenticated the user.
fn not_logged_in(live: &Arc<Live>) -> WebError {
    WebError::page(live, StatusCode::BAD_REQUEST, "Not logged in", "Log in before approving access.")
}
