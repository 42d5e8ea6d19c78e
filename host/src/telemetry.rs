//! The telemetry (admin) listener, on its own address (`telemetry.http`, as Dex's):
//! `/healthz` (alive), `/readyz` (storage reachable, config loaded, last reload's outcome),
//! `/status` (the active generation, config and plugin digests), `/metrics` (Prometheus) and
//! `POST /reload`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::broker::Broker;

pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/reload", post(reload))
        .route("/metrics", get(metrics))
        .with_state(broker)
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn readyz(State(broker): State<Arc<Broker>>) -> Response {
    let storage = broker.store.ping().await;
    let reload = broker.generations.status();
    let ready = storage.is_ok();
    // A degraded broker is still ready: it serves every connector that loaded, and taking it
    // out of rotation would take those down too. The body says what is missing.
    let body = json!({
        "ready": ready,
        "status": if !ready { "unavailable" } else if reload.degraded { "degraded" } else { "ok" },
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

async fn reload(State(broker): State<Arc<Broker>>) -> Response {
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
