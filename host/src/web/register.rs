//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), at
//! `{issuer}/register` and `{issuer}/register/{client_id}`; off unless
//! `oauth2.clientRegistration` gives an initial access token.
//!
//! A registered client is a stored client, as one the admin API creates (`storage::api`): it
//! serves on this replica when the call returns and on the others within `reload::STORED_POLL`.
//! Registration needs the initial access token (bearer, compared in constant time); reading,
//! changing or deleting a registration needs the registration access token issued with it, of
//! which only the sha256 is stored. A wrong token, or a client that does not exist or was not
//! registered this way, is the same 401, so the endpoint tells nobody which clients exist.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use super::{AppState, issuer, random_token, token_key};
use crate::clock::now;
use crate::config::GrantType;
use crate::config::stored::StoredClient;
use crate::generation::Live;

/// Client metadata as RFC 7591 §2 and OIDC Registration name it; other members are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Metadata {
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Vec<String>,
    response_types: Vec<String>,
    client_name: Option<String>,
    logo_uri: Option<String>,
    post_logout_redirect_uris: Vec<String>,
    backchannel_logout_uri: Option<String>,
    /// RFC 7592 §2.2: an update names the client and may repeat its secret.
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body.to_string())
        .into_response()
}

/// A refused request: RFC 7591 §3.2.2's error response, RFC 6750's 401, or 503 and 404.
#[derive(Debug)]
pub struct Refused {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = json_response(self.status, body);
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = format!("Bearer error=\"{}\", error_description=\"{}\"", self.error, self.description);
            if let Ok(value) = challenge.parse() {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

fn refused(error: &'static str, description: impl Into<String>) -> Refused {
    Refused { status: StatusCode::BAD_REQUEST, error, description: description.into() }
}

/// RFC 6750 §3: a missing or wrong bearer token.
fn unauthorized(description: &str) -> Refused {
    Refused { status: StatusCode::UNAUTHORIZED, error: "invalid_token", description: description.into() }
}

fn unavailable(e: impl std::fmt::Display) -> Refused {
    tracing::error!("client registration: storage error: {e}");
    Refused {
        status: StatusCode::SERVICE_UNAVAILABLE,
        error: "temporarily_unavailable",
        description: "storage unavailable; retry".into(),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn not_found() -> Refused {
    Refused {
        status: StatusCode::NOT_FOUND,
        error: "not_found",
        description: "dynamic client registration is off (oauth2.clientRegistration)".into(),
    }
}

/// Registration answers only where `oauth2.clientRegistration` turns it on.
fn enabled(live: &Live) -> Result<(), Refused> {
    if live.config.registration.is_some() { Ok(()) } else { Err(not_found()) }
}

/// The grants a client of this method may use: every enabled one, less those a public client
/// cannot (client_credentials needs a secret).
fn usable_grants(live: &Live, public: bool) -> Vec<&'static str> {
    crate::oidc::discovery::grant_types(&live.config)
        .into_iter()
        .filter(|g| !(public && *g == GrantType::ClientCredentials.as_str()))
        .collect()
}

/// Checks `m` and applies it to `client` (a new one or the registered one being replaced).
fn apply(live: &Live, m: &Metadata, client: &mut StoredClient) -> Result<(), Refused> {
    let public = match m.token_endpoint_auth_method.as_deref().unwrap_or("client_secret_basic") {
        "client_secret_basic" | "client_secret_post" => false,
        "none" => true,
        other => {
            return Err(refused(
                "invalid_client_metadata",
                format!(
                    "token_endpoint_auth_method {other:?} is not supported; use client_secret_basic, client_secret_post or none"
                ),
            ));
        }
    };
    let grants = if m.grant_types.is_empty() { vec!["authorization_code".to_string()] } else { m.grant_types.clone() };
    let usable = usable_grants(live, public);
    if let Some(g) = grants.iter().find(|g| !usable.contains(&g.as_str())) {
        return Err(refused(
            "invalid_client_metadata",
            format!("grant type {g:?} is not available to this client; it may use {}", usable.join(", ")),
        ));
    }
    if let Some(r) = m.response_types.iter().find(|r| *r != "code") {
        return Err(refused("invalid_client_metadata", format!("response type {r:?} is not supported; only code")));
    }
    if grants.iter().any(|g| g == "authorization_code") && m.redirect_uris.is_empty() {
        return Err(refused("invalid_redirect_uri", "redirect_uris is required for the authorization_code grant"));
    }
    if let Some(uri) = m.redirect_uris.iter().find(|u| url::Url::parse(u).is_err()) {
        return Err(refused("invalid_redirect_uri", format!("{uri:?} is not an absolute URL")));
    }
    if public != client.public && !client.id.is_empty() {
        return Err(refused(
            "invalid_client_metadata",
            "token_endpoint_auth_method cannot change between a secret and none",
        ));
    }
    client.public = public;
    client.redirect_uris.clone_from(&m.redirect_uris);
    client.name = m.client_name.clone().unwrap_or_default();
    client.logo_url = m.logo_uri.clone().unwrap_or_default();
    client.post_logout_redirect_uris.clone_from(&m.post_logout_redirect_uris);
    client.backchannel_logout_uri = m.backchannel_logout_uri.clone().unwrap_or_default();
    Ok(())
}

/// Checks the client by the config file's rules (URIs, lifetimes); the failure names the field.
fn check(client: &StoredClient) -> Result<(), Refused> {
    client.check().map(|_| ()).map_err(|e| {
        let error = if e.contains("redirect") && !e.contains("postLogout") {
            "invalid_redirect_uri"
        } else {
            "invalid_client_metadata"
        };
        refused(error, e)
    })
}

/// The client information response (RFC 7591 §3.2.1, RFC 7592 §3).
fn information(live: &Live, c: &StoredClient, registration_token: Option<&str>) -> Value {
    let base = issuer(live);
    let mut out = json!({
        "client_id": c.id,
        "client_id_issued_at": c.registered_at,
        "registration_client_uri": format!("{base}/register/{}", c.id),
        "redirect_uris": c.redirect_uris,
        "token_endpoint_auth_method": if c.public { "none" } else { "client_secret_basic" },
        "grant_types": usable_grants(live, c.public),
        "response_types": ["code"],
    });
    if !c.public {
        out["client_secret"] = json!(c.secret);
        out["client_secret_expires_at"] = json!(0);
    }
    if let Some(token) = registration_token {
        out["registration_access_token"] = json!(token);
    }
    for (key, value) in
        [("client_name", &c.name), ("logo_uri", &c.logo_url), ("backchannel_logout_uri", &c.backchannel_logout_uri)]
    {
        if !value.is_empty() {
            out[key] = json!(value);
        }
    }
    if !c.post_logout_redirect_uris.is_empty() {
        out["post_logout_redirect_uris"] = json!(c.post_logout_redirect_uris);
    }
    out
}

fn parse(body: &Bytes) -> Result<Metadata, Refused> {
    serde_json::from_slice(body).map_err(|e| {
        refused("invalid_client_metadata", format!("the body is not a JSON object of client metadata: {e}"))
    })
}

/// `POST /register` (RFC 7591 §3).
pub async fn register(State(broker): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, Refused> {
    let live = broker.generations.current();
    let Some(initial) = &live.config.registration else { return Err(not_found()) };
    match bearer(&headers) {
        Some(token) if initial.matches(token) => {}
        _ => return Err(unauthorized("registration needs the initial access token as a bearer token")),
    }
    let metadata = parse(&body)?;
    let mut client = StoredClient::default();
    apply(&live, &metadata, &mut client)?;
    let now = now();
    client.id = crate::ids::new_id();
    if !client.public {
        client.secret = random_token();
    }
    let registration_token = random_token();
    client.registration_token_sha256 = token_key(&registration_token).as_str().to_string();
    client.registered_at = now;
    check(&client)?;
    if !broker.store.api_create(&client, now).await.map_err(unavailable)? {
        return Err(unavailable("a generated client id collided; retry"));
    }
    tracing::info!(client = %client.id, "registered a client (RFC 7591)");
    broker.generations.apply_stored().await;
    let live = broker.generations.current();
    Ok(json_response(StatusCode::CREATED, information(&live, &client, Some(&registration_token))))
}

/// The registered client `id`, if `headers` carry its registration access token.
async fn registered(broker: &AppState, headers: &HeaderMap, id: &str) -> Result<(StoredClient, i64), Refused> {
    let refusal = || unauthorized("the registration access token is missing or wrong for this client");
    let token = bearer(headers).ok_or_else(refusal)?;
    let found = broker.store.api_get::<StoredClient>(id, now()).await.map_err(unavailable)?;
    let Some((client, version)) = found else { return Err(refusal()) };
    let presented = token_key(token);
    let stored = client.registration_token_sha256.as_bytes();
    if stored.is_empty() || !bool::from(presented.as_str().as_bytes().ct_eq(stored)) {
        return Err(refusal());
    }
    Ok((client, version))
}

/// `GET /register/{client_id}` (RFC 7592 §2.1).
pub async fn read(
    State(broker): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    let live = broker.generations.current();
    enabled(&live)?;
    let (client, _) = registered(&broker, &headers, &id).await?;
    Ok(json_response(StatusCode::OK, information(&live, &client, None)))
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): the metadata sent replaces the registered one.
pub async fn update(
    State(broker): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Refused> {
    let live = broker.generations.current();
    enabled(&live)?;
    let (mut client, version) = registered(&broker, &headers, &id).await?;
    let metadata = parse(&body)?;
    if metadata.client_id.as_deref() != Some(id.as_str()) {
        return Err(refused("invalid_client_metadata", "client_id in the body must be the client being updated"));
    }
    if let Some(secret) = &metadata.client_secret
        && !bool::from(secret.as_bytes().ct_eq(client.secret.as_bytes()))
    {
        return Err(refused("invalid_client_metadata", "client_secret does not match; a secret cannot be chosen"));
    }
    apply(&live, &metadata, &mut client)?;
    check(&client)?;
    if !broker.store.api_update(&client, version, now()).await.map_err(unavailable)? {
        return Err(Refused {
            status: StatusCode::CONFLICT,
            error: "invalid_client_metadata",
            description: "changed by another request meanwhile; read it and retry".into(),
        });
    }
    tracing::info!(client = %client.id, "updated a registered client (RFC 7592)");
    broker.generations.apply_stored().await;
    let live = broker.generations.current();
    Ok(json_response(StatusCode::OK, information(&live, &client, None)))
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): the client, its secret and its registration
/// token stop working at once.
pub async fn delete(
    State(broker): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    enabled(&broker.generations.current())?;
    registered(&broker, &headers, &id).await?;
    broker.store.api_delete::<StoredClient>(&id, now()).await.map_err(unavailable)?;
    tracing::info!(client = %id, "deleted a registered client (RFC 7592)");
    broker.generations.apply_stored().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
