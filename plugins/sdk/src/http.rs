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

use serde::Serialize;
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

    /// Sets a JSON body made of `value`, with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, ConnectorError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| ConnectorError::Upstream(format!("cannot encode the request body: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Adds `authorization: Basic base64(user:password)` (RFC 7617), as Go's `SetBasicAuth`.
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        let credentials = base64(format!("{user}:{password}").as_bytes());
        self.header("authorization", &format!("Basic {credentials}"))
    }

    /// Sends the request through the host and waits for the whole response.
    pub fn send(self) -> Result<Response, HostError> {
        send(&self)
    }

    /// Sends the request; a failed host call is an upstream error naming the method and the
    /// URL without its query ("POST https://idp.example/v3/auth/tokens: host call timed out: ...").
    /// The response is returned whatever its status.
    pub fn call(self) -> Result<Response, ConnectorError> {
        let what = format!("{} {}", self.method, url::redacted(&self.url));
        send(&self).map_err(|e| ConnectorError::Upstream(format!("{what}: {}", ConnectorError::from(e).message())))
    }
}

/// Standard base64 with padding (RFC 4648 §4), for [`Request::basic_auth`].
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk.first().copied(), chunk.get(1).copied(), chunk.get(2).copied()];
        let n =
            (u32::from(b[0].unwrap_or(0)) << 16) | (u32::from(b[1].unwrap_or(0)) << 8) | u32::from(b[2].unwrap_or(0));
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3f) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if b[1].is_some() { sextet(6) } else { '=' });
        out.push(if b[2].is_some() { sextet(0) } else { '=' });
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")];
        for (input, want) in vectors {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn basic_auth_and_json_set_their_headers() {
        let req = Request::post("https://crowd.example/x").basic_auth("app", "p4$$:w0rd").json(&[1, 2]).unwrap();
        assert_eq!(req.headers[0], ("authorization".to_string(), "Basic YXBwOnA0JCQ6dzByZA==".to_string()));
        assert_eq!(req.headers[1], ("content-type".to_string(), "application/json".to_string()));
        assert_eq!(req.body.as_deref(), Some(&b"[1,2]"[..]));
    }
}
