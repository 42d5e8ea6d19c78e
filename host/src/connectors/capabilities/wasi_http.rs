//! `wasi:http/outgoing-handler` (and `wasi:http/types`), for guests whose HTTP stack speaks
//! WASI's (JavaScript's `fetch` on StarlingMonkey, Python and Rust wasi-http clients): every
//! request is handed to the `http` capability's sender, so it meets the same `allowedHosts`,
//! redirect and DNS checks, host-set headers, host-call count, deadline and response cap as a
//! request through our own `http` import. Nothing here reaches the network by itself:
//! wasmtime-wasi-http is built without its default sender.
//!
//! [`HttpGate`] is the hook wasmtime-wasi-http calls (`WasiHttpHooks::send_request`); it holds
//! the connector's grants and a handle on the call's budget (the count is shared with `http`).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks, WasiHttpView};

use super::Grants;
use super::budget::CallBudget;
use super::http::HttpCtxView;
use crate::connectors::bindings::HostError;
use crate::connectors::bindings::current::http::Request;

/// What the sender sees of a finished exchange: nothing more to drive after the response.
type Io = Box<dyn Future<Output = Result<(), Error>> + Send>;
type Sent = Box<dyn Future<Output = Result<(http::Response<WasiBody>, Io), Error>> + Send>;

/// Headers the `http` capability sets itself (from the URL and the body) or that only mean
/// something hop by hop; a wasi:http request's values for them are dropped, not refused, since
/// wasi-http clients set `host` and `content-length` as a matter of course.
const DROPPED_HEADERS: &[&str] =
    &["host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"];

/// The wasi:http hook of one call: the connector's grants and the call's budget.
pub(crate) struct HttpGate {
    grants: Arc<Grants>,
    budget: CallBudget,
}

impl HttpGate {
    /// `budget` shares its count, deadline and probe with the call's own budget.
    pub(crate) fn new(grants: Arc<Grants>, budget: CallBudget) -> Self {
        Self { grants, budget }
    }
}

/// Links wasi:http's `types` and `outgoing-handler`; WASI itself is linked by `stderr`.
pub(crate) fn add_to_linker<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// The wasi-http error a guest sees for a failed host call (the detail, a denial's config line
/// included, is in the broker's log and in the call's error).
fn error_code(err: HostError, cap: u64) -> Error {
    match err {
        HostError::Denied(_) => Error::HttpRequestDenied,
        HostError::Timeout(_) => Error::ConnectionTimeout,
        HostError::TooLarge(_) => Error::HttpResponseBodySize(Some(cap)),
        HostError::LimitExceeded(_) => Error::ConnectionLimitReached,
        HostError::Invalid(m) | HostError::Failed(m) => Error::InternalError(Some(m)),
    }
}

impl WasiHttpHooks for HttpGate {
    /// The `http` capability writes `Host` from the URL.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(&mut self, request: http::Request<WasiBody>, _options: Option<RequestOptions>, _fut: Io) -> Sent {
        let grants = self.grants.clone();
        let mut budget = self.budget.clone();
        Box::new(async move {
            let cap = grants.limits.max_response_bytes;
            let (parts, body) = request.into_parts();
            // The guest streams the body; it may not exceed what its memory could have held.
            let limit = usize::try_from(grants.limits.memory_bytes).unwrap_or(usize::MAX);
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|_| Error::HttpRequestBodySize(Some(grants.limits.memory_bytes)))?
                .to_bytes();
            let headers = parts
                .headers
                .iter()
                .filter(|(name, _)| !DROPPED_HEADERS.contains(&name.as_str()))
                .map(|(name, value)| {
                    (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned())
                })
                .collect();
            let request = Request {
                method: parts.method.as_str().to_string(),
                url: parts.uri.to_string(),
                headers,
                body: (!body.is_empty()).then(|| body.to_vec()),
            };
            let mut view = HttpCtxView { ctx: &grants.http, budget: &mut budget };
            let answer = view.send_request(request).await.map_err(|e| error_code(e, cap))?;
            let mut response = http::Response::builder().status(answer.status);
            for (name, value) in &answer.headers {
                if !DROPPED_HEADERS.contains(&name.as_str()) || name == "content-length" {
                    response = response.header(name.as_str(), value.as_str());
                }
            }
            let body = Full::new(Bytes::from(answer.body)).map_err(|never| match never {}).boxed_unsync();
            let response = response.body(body).map_err(|e| Error::InternalError(Some(e.to_string())))?;
            let done: Io = Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}
