//! Discovery, JWKS, health and the stylesheet.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, issuer, pages};
use crate::oidc::discovery;

pub async fn configuration(State(broker): State<AppState>) -> Response {
    let live = broker.generations.current();
    let doc = discovery::document(&issuer(&live), broker.keys.algorithm().as_str(), &live.config);
    ([(header::CONTENT_TYPE, "application/json")], doc.to_string()).into_response()
}

pub async fn keys(State(broker): State<AppState>) -> Response {
    match broker.keys.jwks() {
        Ok(jwks) => ([(header::CONTENT_TYPE, "application/json")], jwks).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("signing keys unavailable: {e}")).into_response(),
    }
}

pub async fn healthz(State(broker): State<AppState>) -> Response {
    match broker.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("storage: {e}")).into_response(),
    }
}

pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], pages::STYLESHEET).into_response()
}
