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
mod session;
mod token;
mod userinfo;

use std::sync::Arc;
use std::time::Duration;

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
        .route("/static/{file}", get(discovery::static_file))
        .route("/theme/{file}", get(discovery::theme_file))
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

/// How long a client may take to send a request head (also how long an idle keep-alive
/// connection stays open): slowloris clients are cut off after this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take, body and handler included (connector calls have their own,
/// shorter deadlines); answered `408 Request Timeout` after that.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once; further clients wait in the listen backlog until one closes.
pub const MAX_CONNECTIONS: usize = 4096;

/// What a listener tolerates of its clients. The broker serves with [`ServeLimits::default`]
/// (the constants above; Dex's config has no such keys, so none are added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// [`REQUEST_TIMEOUT`]; `None` for none (the telemetry listener: a reload may compile
    /// plugins for longer, and cancelling it half-way helps nobody).
    pub request_timeout: Option<Duration>,
    /// [`MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            request_timeout: Some(REQUEST_TIMEOUT),
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Serves `router` on `listener` with [`ServeLimits::default`] until `shutdown` resolves, then
/// drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, ServeLimits::default(), shutdown).await
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves, then stops accepting
/// and waits for the connections in flight to finish their requests.
///
/// HTTP/1 on hyper directly (`axum::serve` has no knobs): a header-read timeout, which hyper
/// also runs while a keep-alive connection sits idle; a per-request timeout; and a semaphore
/// of `max_connections` permits, taken before `accept`, so over the cap new clients wait.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let router = match limits.request_timeout {
        Some(timeout) => router.layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        )),
        None => router,
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin (as axum does).
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // The peer's address for the handlers (`ClientIp`: logs and throttles).
        let service = router.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away, or is cut off by a timeout, is not the server's error.
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
