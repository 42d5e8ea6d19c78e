//! The telemetry (admin) listener, on its own address (`telemetry.http`, as Dex's):
//! `/healthz` (alive), `/readyz` (storage reachable, config loaded, last reload's outcome),
//! `/status` (the active generation, config and plugin digests), `/metrics` (Prometheus) and
//! `POST /reload`.
//!
//! The listener is for operators and their tools, never for browsers: a request carrying an
//! `Origin` header (any cross-site fetch or form) is refused, `POST /reload` takes no body but
//! JSON, and when `PORTCULLIS_RELOAD_TOKEN` is set it needs `Authorization: Bearer <token>`
//! (audit F16). Bind it to loopback or a private network.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::broker::Broker;

pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        // Dex's names for the same two checks.
        .route("/healthz/live", get(|| async { "ok" }))
        .route("/healthz/ready", get(readyz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/reload", post(reload))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn(no_browsers))
        .with_state(broker)
}

/// The environment variable holding the bearer token `POST /reload` requires, if set.
pub const RELOAD_TOKEN_ENV: &str = "PORTCULLIS_RELOAD_TOKEN";

/// Refuses what only a browser sends: an `Origin` header (a page on another site making the
/// request). Tools such as curl, Prometheus and `portcullis reload` send none.
async fn no_browsers(req: Request, next: Next) -> Response {
    if req.headers().contains_key(header::ORIGIN) {
        return json_response(
            StatusCode::FORBIDDEN,
            json!({"ok": false, "error": "the telemetry listener does not answer browsers (request has an Origin header)"}),
        );
    }
    next.run(req).await
}

/// Why `POST /reload` must be refused, if it must: a body that is not JSON (a cross-site
/// `text/plain` form), or a missing or wrong bearer token when one is configured.
fn reload_refusal(headers: &HeaderMap, body: &[u8], token: Option<&str>) -> Option<(StatusCode, &'static str)> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !body.is_empty() && !json {
        return Some((StatusCode::UNSUPPORTED_MEDIA_TYPE, "POST /reload takes no body, or a JSON one"));
    }
    if let Some(token) = token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let expected = crate::secret::Secret::new(token.to_string());
        if !expected.matches(given) {
            return Some((
                StatusCode::UNAUTHORIZED,
                "POST /reload needs Authorization: Bearer <PORTCULLIS_RELOAD_TOKEN>",
            ));
        }
    }
    None
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn readyz(State(broker): State<Arc<Broker>>) -> Response {
    let storage = broker.store.ping().await;
    let reload = broker.generations.status();
    let draining = broker.draining.load(std::sync::atomic::Ordering::Relaxed);
    let ready = storage.is_ok() && !draining;
    // A degraded broker is still ready: it serves every connector that loaded, and taking it
    // out of rotation would take those down too. The body says what is missing.
    let body = json!({
        "ready": ready,
        "status": if draining { "draining" } else if !ready { "unavailable" } else if reload.degraded { "degraded" } else { "ok" },
        "storage": storage.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
        "config": "loaded",
        "generation": reload.generation,
        "failedConnectors": &reload.failed_connectors,
        "lastReload": &*reload,
    });
    json_response(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        crate::metrics::global().render(),
    )
        .into_response()
}

async fn status(State(broker): State<Arc<Broker>>) -> Response {
    let mut body = json!(&*broker.generations.status());
    body["retained_generations"] = json!(broker.generations.retired_generations());
    json_response(StatusCode::OK, body)
}

async fn reload(State(broker): State<Arc<Broker>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let token = std::env::var(RELOAD_TOKEN_ENV).ok().filter(|t| !t.is_empty());
    if let Some((status, error)) = reload_refusal(&headers, &body, token.as_deref()) {
        return json_response(status, json!({"ok": false, "error": error}));
    }
    match broker.generations.reload().await {
        Ok(done) => json_response(
            StatusCode::OK,
            json!({"ok": true, "generation": done.generation, "changed": done.changed, "message": done.to_string()}),
        ),
        Err(error) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"ok": false, "error": error, "generation": broker.generations.current().generation}),
        ),
    }
}
