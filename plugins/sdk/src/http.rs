//! Outbound HTTP through the host, which allows only the operator's `allowedHosts`.
//!
//! [`Request`] and [`Response`] are the contract's own records with a few helpers:
//!
//! ```ignore
//! let resp = http::Request::get("https://api.example.com/user")
//!     .header("authorization", &format!("Bearer {token}"))
//!     .send()?
//!     .error_for_status()?;
//! let user: User = resp.json()?;
//! ```

use serde::de::DeserializeOwned;

pub use crate::bindings::portcullis::connector::http::{Request, Response};
use crate::{ConnectorError, HostError, url};

impl Request {
    /// A request with no headers and no body; `method` is upper-cased.
    pub fn new(method: &str, url: &str) -> Self {
        Request { method: method.to_ascii_uppercase(), url: url.to_string(), headers: Vec::new(), body: None }
    }

    /// A `GET` request.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets an `application/x-www-form-urlencoded` body made of `pairs`.
    pub fn form(self, pairs: &[(&str, &str)]) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded").body(url::form_encode(pairs))
    }

    /// Sends the request through the host and waits for the whole response.
    pub fn send(self) -> Result<Response, HostError> {
        send(&self)
    }
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `self` if the status is 2xx, else an upstream error naming the status (and the OAuth
    /// `error`/`error_description` fields when the body has them; never the rest of the body).
    pub fn error_for_status(self) -> Result<Self, ConnectorError> {
        if self.is_success() {
            return Ok(self);
        }
        let mut msg = format!("upstream answered HTTP {}", self.status);
        if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&self.body) {
            for field in ["error", "error_description"] {
                if let Some(text) = body.get(field).and_then(|v| v.as_str()) {
                    msg.push_str(&format!(", {field}: {text}"));
                }
            }
        }
        Err(ConnectorError::Upstream(msg))
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, ConnectorError> {
        std::str::from_utf8(&self.body)
            .map_err(|e| ConnectorError::Upstream(format!("upstream response body is not UTF-8: {e}")))
    }

    /// The body decoded from JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ConnectorError::Upstream(format!("upstream answered HTTP {} with unexpected JSON: {e}", self.status))
        })
    }
}

/// Sends `req` through the host.
pub fn send(req: &Request) -> Result<Response, HostError> {
    crate::bindings::portcullis::connector::http::send(req)
}

/// `GET url` with `headers` and `accept: application/json`; fails on a non-2xx status and
/// decodes the body. Errors name the URL without its query.
pub fn get_json<T: DeserializeOwned>(url: &str, headers: &[(&str, &str)]) -> Result<T, ConnectorError> {
    let mut req = Request::get(url).header("accept", "application/json");
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let context = |e: ConnectorError| ConnectorError::Upstream(format!("GET {}: {}", url::redacted(url), e.message()));
    req.send()
        .map_err(ConnectorError::from)
        .and_then(Response::error_for_status)
        .and_then(|resp| resp.json())
        .map_err(context)
}

/// `POST url` with `headers` and a form body made of `pairs`. Returns the response whatever
/// its status; chain [`Response::error_for_status`] and [`Response::json`] as needed.
pub fn post_form(url: &str, headers: &[(&str, &str)], pairs: &[(&str, &str)]) -> Result<Response, ConnectorError> {
    let mut req = Request::post(url);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    req.form(pairs).send().map_err(|e| {
        ConnectorError::Upstream(format!("POST {}: {}", url::redacted(url), ConnectorError::from(e).message()))
    })
}
