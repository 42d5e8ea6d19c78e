//! The `http` import: outbound requests on reqwest (rustls), only to `allowedHosts`.
//!
//! Enforced here and nowhere else: the allowlist on the first URL and on every redirect hop,
//! DNS answers (a wildcard entry never reaches a private address), the response size cap and
//! the call's deadline.

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use super::allowlist::{Allowlist, is_private};
use crate::connectors::bindings::portcullis::connector::http::{Host, Request, Response};
use crate::connectors::bindings::portcullis::connector::types::HostError;
use crate::connectors::state::CallState;

/// Redirect hops followed at most.
const MAX_REDIRECTS: usize = 5;

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

/// The connector's HTTP client: allowlisted redirects, guarded DNS, no proxies, no cookies.
pub(crate) fn client(allowlist: Arc<Allowlist>) -> Result<reqwest::Client, String> {
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
    reqwest::Client::builder()
        .redirect(policy)
        .dns_resolver(Arc::new(GuardedResolver { allowlist }))
        .no_proxy()
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
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

impl CallState {
    /// Sends one request under this connector's grants; shared by `http` and `jose`.
    pub(crate) async fn http_send(&mut self, req: Request) -> Result<Response, HostError> {
        self.charge_host_call("http")?;
        let url = Url::parse(&req.url).map_err(|e| HostError::Invalid(format!("bad URL {:?}: {e}", req.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HostError::Invalid(format!("{url}: only http and https URLs can be fetched")));
        }
        if self.grants.allowlist.check(&url).is_none() {
            return Err(self.deny(&format!("HTTP request to {}", origin(&url)), &Allowlist::suggestion(&url)));
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| HostError::Invalid(format!("bad HTTP method {:?}", req.method)))?;
        let mut builder = self.grants.http.request(method, url.clone()).timeout(self.remaining());
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
        let cap = self.grants.limits.max_response_bytes;
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
            return self.deny(
                &format!("redirect from {} to {}", origin(url), origin(&denied.url)),
                &Allowlist::suggestion(&denied.url),
            );
        }
        if let Some(private) = find::<PrivateAddress>(err) {
            let line = Allowlist::suggestion(url);
            return self.deny(&format!("HTTP request to {} ({private})", origin(url)), &line);
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

impl Host for CallState {
    async fn send(&mut self, req: Request) -> wasmtime::Result<Result<Response, HostError>> {
        Ok(self.http_send(req).await)
    }
}
