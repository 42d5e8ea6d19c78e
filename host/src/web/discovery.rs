//! Discovery, JWKS, health, and the pages' static files and theme.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, issuer, pages};
use crate::config::frontend;
use crate::oidc::discovery;

/// The discovery document, serialised once per generation and signing algorithm.
pub async fn configuration(State(broker): State<AppState>) -> Response {
    let live = broker.generations.current();
    let alg = broker.keys.algorithm();
    let cached = live.discovery.read().ok().and_then(|c| c.as_ref().filter(|(a, _)| *a == alg).map(|(_, b)| b.clone()));
    let body = match cached {
        Some(body) => body,
        None => {
            let body = bytes::Bytes::from(discovery::document(&issuer(&live), alg.as_str(), &live.config).to_string());
            if let Ok(mut cache) = live.discovery.write() {
                *cache = Some((alg, body.clone()));
            }
            body
        }
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The shortest time a JWKS may be cached (s), even when a rotation is due sooner: Dex's.
pub const JWKS_MIN_MAX_AGE: i64 = 120;

/// The JWKS, serialised once per key set (`Keys::jwks_document`). Cacheable until the set's
/// next rotation, and at least [`JWKS_MIN_MAX_AGE`], as Dex serves it (`Cache-Control: max-age=N,
/// must-revalidate`): an RP that caches it fetches it again when the keys can have changed.
pub async fn keys(State(broker): State<AppState>) -> Response {
    match broker.keys.jwks_document() {
        Ok((jwks, next_rotation)) => {
            // Capped at 2^31 - 1, the largest delta-seconds RFC 9111 (1.2.2) has caches honour.
            let max_age = (next_rotation - crate::clock::now()).clamp(JWKS_MIN_MAX_AGE, i64::from(i32::MAX));
            let cache = format!("max-age={max_age}, must-revalidate");
            ([(header::CONTENT_TYPE, "application/json".to_string()), (header::CACHE_CONTROL, cache)], jwks)
                .into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("signing keys unavailable: {e}")).into_response(),
    }
}

pub async fn healthz(State(broker): State<AppState>) -> Response {
    match broker.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("storage: {e}")).into_response(),
    }
}

/// `/static/{file}`: from `frontend.dir/static` when it has the file, else the built-in
/// stylesheet (`main.css`); nothing else.
pub async fn static_file(State(broker): State<AppState>, Path(name): Path<String>) -> Response {
    let live = broker.generations.current();
    let from_dir = live.config.pages.static_dir.as_ref().filter(|_| frontend::servable(&name)).map(|d| d.join(&name));
    serve_file(from_dir, &name, (name == "main.css").then_some(pages::STYLESHEET)).await
}

/// `/theme/{file}`: the files of the theme folder `frontend.theme` names.
pub async fn theme_file(State(broker): State<AppState>, Path(name): Path<String>) -> Response {
    let live = broker.generations.current();
    let folder = match &live.config.pages.theme {
        frontend::Theme::Folder(folder) if frontend::servable(&name) => Some(folder.join(&name)),
        _ => None,
    };
    serve_file(folder, &name, None).await
}

async fn serve_file(path: Option<std::path::PathBuf>, name: &str, builtin: Option<&'static str>) -> Response {
    let content_type = [(header::CONTENT_TYPE, frontend::content_type(name))];
    if let Some(path) = path
        && let Ok(bytes) = tokio::fs::read(&path).await
    {
        return (content_type, bytes).into_response();
    }
    match builtin {
        Some(text) => (content_type, text).into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
