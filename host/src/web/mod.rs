//! The HTTP side: axum routes under the issuer's path, pages, cookies and CSRF. Protocol rules
//! live in `oidc`; this layer does the I/O around them.

mod authorize;
mod cookies;
mod discovery;
mod error;
mod flow;
mod login;
pub use login::BCRYPT_MAX_PASSWORD;
mod logout;
pub mod pages;
mod token;
mod userinfo;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

use crate::broker::Broker;
use crate::generation::Live;

/// Handler state.
pub type AppState = Arc<Broker>;

/// The client's IP address as the connection shows it (`None` when served without connection
/// info). Behind a proxy this is the proxy's: the throttles then count per proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let info = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(Self(info.map(|c| c.0.ip())))
    }
}

/// 32 random bytes, base64url: codes, tokens, ids, CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What we store instead of a bearer secret: its sha256 (`TokenKey`), so a leaked database
/// holds no usable codes or tokens.
pub fn token_key(token: &str) -> crate::ids::TokenKey {
    crate::ids::TokenKey::of(token)
}

/// The issuer's path without a trailing slash ("" for a root issuer).
pub fn prefix(live: &Live) -> String {
    live.config.issuer.path().trim_end_matches('/').to_string()
}

/// The issuer exactly as configured (the `iss` claim).
pub fn issuer(live: &Live) -> String {
    let s = live.config.issuer.as_str();
    // Url adds a trailing slash to a bare origin; keep the operator's spelling.
    if live.config.issuer.path() == "/" && !s.is_empty() { s.trim_end_matches('/').to_string() } else { s.to_string() }
}

pub fn is_https(live: &Live) -> bool {
    live.config.issuer.scheme() == "https"
}

/// Largest request body accepted (bytes): forms (authorize, login, approval, token, logout)
/// are a few hundred bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// Builds the router for `broker`, nested under the issuer's path.
pub fn router(broker: AppState) -> Router {
    let live = broker.generations.current();
    let prefix = prefix(&live);
    let https = is_https(&live);
    let routes = Router::new()
        .route("/.well-known/openid-configuration", get(discovery::configuration))
        .route("/keys", get(discovery::keys))
        .route("/healthz", get(discovery::healthz))
        .route("/static/main.css", get(discovery::stylesheet))
        .route("/auth", get(authorize::authorize).post(authorize::authorize_post))
        .route("/auth/{connector}", get(login::start))
        .route("/auth/{connector}/login", post(login::password_login))
        .route("/callback", get(login::shared_callback_get).post(login::shared_callback_post))
        .route("/callback/{connector}", get(login::callback_get).post(login::callback_post))
        .route("/approval", get(authorize::approval_page).post(authorize::approval_post))
        .route("/token", post(token::token))
        .route("/userinfo", get(userinfo::userinfo).post(userinfo::userinfo))
        .route("/logout", get(logout::logout).post(logout::logout_post));
    let routes = if prefix.is_empty() { routes } else { Router::new().nest(&prefix, routes) };
    let mut router = routes
        // Every form and query the broker reads is small: refuse big bodies before parsing (audit F1).
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(move |req: Request, next: Next| security(req, next, https)))
        .with_state(broker);
    let origins = live.config.web.allowed_origins.clone();
    if !origins.is_empty() {
        router = router.layer(cors(&origins));
    }
    router
}

fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let layer = CorsLayer::new()
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([axum::http::header::AUTHORIZATION, axum::http::header::CONTENT_TYPE]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        layer.allow_origin(AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok())))
    }
}

/// Every request: a request id on its log lines (and in `x-request-id`), one debug line with
/// method, path (never the query: it carries codes and state), status and duration, and the
/// security headers.
async fn security(req: Request, next: Next, https: bool) -> Response {
    use tracing::Instrument;
    let id = {
        let mut bytes = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = std::time::Instant::now();
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "{method} {path}"
        )
    });
    let metrics = crate::metrics::global();
    let status = response.status().as_u16();
    metrics
        .http_requests
        .get_or_create(&crate::metrics::HttpLabels { route: route.clone(), method: method.to_string(), status })
        .inc();
    metrics
        .http_duration
        .get_or_create(&crate::metrics::RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    pages::security_headers(response.headers_mut(), https);
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
