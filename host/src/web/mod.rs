//! The HTTP side: axum routes under the issuer's path, pages, cookies and CSRF. Protocol rules
//! live in `oidc`; this layer does the I/O around them.

mod authorize;
mod autopost;
pub mod client_ip;
mod cookies;
mod device;
mod discovery;
mod error;
mod exchange;
mod flow;
mod introspect;
mod login;
pub use login::BCRYPT_MAX_PASSWORD;
mod logout;
pub mod pages;
mod policy;
mod proxy_auth;
mod register;
mod session;
pub mod tls;
mod token;
mod userinfo;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
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

/// The client's IP address (`None` when served without connection info): the connection's
/// peer, or behind a proxy listed in `web.clientRemoteIP.trustedProxies` the address it
/// forwarded (`client_ip::RealIp`). The throttles count per this address, and the request log
/// shows it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl ClientIp {
    fn of(parts: &axum::http::Extensions) -> Self {
        if let Some(resolved) = parts.get::<ClientIp>() {
            return *resolved;
        }
        let info = parts.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Self(info.map(|c| c.0.ip()))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.extensions))
    }
}

/// Resolves the request's [`ClientIp`] once, for the handlers and the request log.
async fn resolve_client_ip(mut req: Request, next: Next, real_ip: Option<Arc<client_ip::RealIp>>) -> Response {
    let peer = ClientIp::of(req.extensions());
    let ip = match (&real_ip, peer.0) {
        (Some(real_ip), Some(peer)) => ClientIp(Some(real_ip.resolve(peer, req.headers()))),
        _ => peer,
    };
    req.extensions_mut().insert(ip);
    next.run(req).await
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
    let web = &live.config.web;
    let headers: Arc<[(HeaderName, HeaderValue)]> = web
        .headers
        .set()
        .into_iter()
        .filter_map(|(name, value)| {
            Some((HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_str(value).ok()?))
        })
        .collect();
    let real_ip = client_ip::RealIp::from_config(&web.client_remote_ip).map(Arc::new);
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
        .route("/device/code", post(device::code))
        .route("/device", get(device::page))
        .route("/device/auth/verify_code", post(device::verify))
        .route("/device/callback", get(device::callback))
        // Dex's older polling path, for clients configured with it.
        .route("/device/token", post(token::token))
        .route("/token/introspect", post(introspect::introspect))
        .route("/token/revoke", post(introspect::revoke))
        .route("/register", post(register::register))
        .route("/register/{client_id}", get(register::read).put(register::update).delete(register::delete))
        .route("/userinfo", get(userinfo::userinfo).post(userinfo::userinfo))
        .route("/logout", get(logout::logout).post(logout::logout_post));
    let routes = if prefix.is_empty() { routes } else { Router::new().nest(&prefix, routes) };
    let mut router = routes
        // Every form and query the broker reads is small: refuse big bodies before parsing (audit F1).
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(move |req: Request, next: Next| security(req, next, https, headers.clone())))
        .layer(middleware::from_fn(move |req: Request, next: Next| resolve_client_ip(req, next, real_ip.clone())))
        .with_state(broker);
    let origins = web.allowed_origins.clone();
    if !origins.is_empty() {
        router = router.layer(cors(&origins, &web.allowed_headers));
    }
    router
}

/// CORS for `web.allowedOrigins`: GET and POST, and the request headers `Authorization`,
/// `Content-Type` and those in `web.allowedHeaders` (validated header names).
fn cors(origins: &[String], allowed_headers: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let mut headers = vec![axum::http::header::AUTHORIZATION, axum::http::header::CONTENT_TYPE];
    headers.extend(allowed_headers.iter().filter_map(|h| HeaderName::try_from(h.trim()).ok()));
    let layer =
        CorsLayer::new().allow_methods([axum::http::Method::GET, axum::http::Method::POST]).allow_headers(headers);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        layer.allow_origin(AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok())))
    }
}

/// Every request: a request id on its log lines (and in `x-request-id`), one debug line with
/// method, path (never the query: it carries codes and state), status and duration, and the
/// security headers: the operator's `web.headers` first, then our defaults where neither they
/// nor the handler set one.
async fn security(req: Request, next: Next, https: bool, headers: Arc<[(HeaderName, HeaderValue)]>) -> Response {
    use tracing::Instrument;
    // Not a secret, only unique: the thread's generator (no system call per request).
    let id = {
        let mut bytes = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    let method = req.method().clone();
    // The path is only for the debug line: not copied when it is off.
    let path = tracing::enabled!(tracing::Level::DEBUG).then(|| req.uri().path().to_string());
    let client = ClientIp::of(req.extensions()).0;
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = std::time::Instant::now();
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(req).instrument(span.clone()).await;
    if let Some(path) = path {
        span.in_scope(|| {
            tracing::debug!(
                status = response.status().as_u16(),
                ms = started.elapsed().as_millis() as u64,
                client = client.map(tracing::field::display),
                "{method} {path}"
            )
        });
    }
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
    for (name, value) in headers.iter() {
        response.headers_mut().entry(name).or_insert_with(|| value.clone());
    }
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
    run(listener, router, limits, None, shutdown).await
}

/// [`serve_with`] over TLS (`web.https`, config from [`tls::server_config`]). The handshake
/// runs inside the connection's slot and must finish within the header-read timeout, so a
/// client that stalls it holds a slot no longer than one that stalls its request head.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Arc<rustls::ServerConfig>,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run(listener, router, limits, Some(tokio_rustls::TlsAcceptor::from(tls)), shutdown).await
}

async fn run(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioTimer;
    use hyper_util::server::graceful::GracefulShutdown;

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
        let (http, watcher, tls) = (http.clone(), graceful.watcher(), tls.clone());
        let handshake_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            match tls {
                None => serve_connection(&http, stream, service, watcher).await,
                Some(acceptor) => match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(&http, stream, service, watcher).await,
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One HTTP/1 connection on `io` (plain TCP or TLS), watched for graceful shutdown.
async fn serve_connection<I>(
    http: &hyper::server::conn::http1::Builder,
    io: I,
    service: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    // A client that goes away, or is cut off by a timeout, is not the server's error.
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!("connection ended: {e}");
    }
}
