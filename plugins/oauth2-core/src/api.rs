//! JSON calls to an upstream's API with a bearer token: errors classified the same way for
//! every upstream, and the three ways upstreams page their lists — a `Link: <…>; rel="next"`
//! header, a next link in the body (`@odata.nextLink`, Bitbucket's `next`), or page numbers
//! until a short or empty page.
//!
//! Error texts name the call and what the upstream said, never a token.

use portcullis_connector_sdk::ConnectorError;
use portcullis_connector_sdk::http::{Request, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{clip, origin, redacted};

/// A bound on pages followed per list, so a looping upstream cannot hold a login forever.
pub const MAX_PAGES: usize = 50;

/// An access token and the API it is good for.
pub struct Api<'a> {
    /// The upstream's name in errors ("GitLab").
    pub upstream: &'a str,
    /// The `Authorization` header value (`Bearer …`).
    pub authorization: String,
    /// The origins the token may be sent to (the API's, and any the config names): a next-page
    /// link elsewhere is refused.
    pub origins: Vec<String>,
    /// Headers every call carries (a `User-Agent`, an API version).
    pub headers: Vec<(&'a str, String)>,
}

impl<'a> Api<'a> {
    /// An API for `upstream` whose token may travel to the origins of `bases`.
    pub fn new(upstream: &'a str, authorization: String, bases: &[&str]) -> Self {
        Api { upstream, authorization, origins: bases.iter().filter_map(|b| origin(b)).collect(), headers: Vec::new() }
    }

    /// Adds a header to every call.
    pub fn with_header(mut self, name: &'a str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    fn request(&self, method: &str, url: &str) -> Result<Request, ConnectorError> {
        if !origin(url).is_some_and(|o| self.origins.contains(&o)) {
            return Err(ConnectorError::Upstream(format!(
                "{method} {}: not an address of {}'s API; the token is not sent there",
                redacted(url),
                self.upstream
            )));
        }
        let mut req = Request::new(method, url).header("accept", "application/json");
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        Ok(req.header("authorization", &self.authorization))
    }

    fn send(&self, method: &str, url: &str, req: Request) -> Result<Response, ConnectorError> {
        let resp = req.send().map_err(|e| {
            ConnectorError::Upstream(format!("{method} {}: {}", redacted(url), ConnectorError::from(e).message()))
        })?;
        check(resp, method, url, self.upstream)
    }

    /// `GET url`, checked; whatever the body.
    pub fn get(&self, url: &str) -> Result<Response, ConnectorError> {
        self.send("GET", url, self.request("GET", url)?)
    }

    /// `GET url` (any status) for the calls whose refusal means something (a 404 member).
    pub fn get_raw(&self, url: &str) -> Result<Response, ConnectorError> {
        let req = self.request("GET", url)?;
        req.send().map_err(|e| {
            ConnectorError::Upstream(format!("GET {}: {}", redacted(url), ConnectorError::from(e).message()))
        })
    }

    /// `GET url`, decoded.
    pub fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, ConnectorError> {
        decode(&self.get(url)?, "GET", url)
    }

    /// `POST url` with a JSON body, decoded.
    pub fn post_json<T: DeserializeOwned>(&self, url: &str, body: &Value) -> Result<T, ConnectorError> {
        decode(&self.post(url, body)?, "POST", url)
    }

    fn post(&self, url: &str, body: &Value) -> Result<Response, ConnectorError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ConnectorError::Upstream(format!("cannot encode the request to {}: {e}", redacted(url))))?;
        let req = self.request("POST", url)?.header("content-type", "application/json").body(bytes);
        self.send("POST", url, req)
    }

    /// Every item of a list whose pages name the next in a `Link: <…>; rel="next"` header.
    pub fn link_pages<T: DeserializeOwned>(&self, first: &str) -> Result<Vec<T>, ConnectorError> {
        let mut url = first.to_string();
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let resp = self.get(&url)?;
            items.extend(decode::<Vec<T>>(&resp, "GET", &url)?);
            match resp.header("link").and_then(next_link) {
                None => return Ok(items),
                Some(next) => url = next,
            }
        }
        Err(too_many_pages(first))
    }

    /// Every item under `items` of a list whose pages carry the next page's URL under `next`
    /// (`value` and `@odata.nextLink` for Graph, `values` and `next` for Bitbucket). With
    /// `body`, each page is a `POST` of that body (Graph's `getMemberGroups`), else a `GET`.
    pub fn next_link_pages<T: DeserializeOwned>(
        &self,
        first: &str,
        body: Option<&Value>,
        items: &str,
        next: &str,
    ) -> Result<Vec<T>, ConnectorError> {
        let mut url = first.to_string();
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let (method, resp) = match body {
                Some(b) => ("POST", self.post(&url, b)?),
                None => ("GET", self.get(&url)?),
            };
            let mut page: Value = decode(&resp, method, &url)?;
            let list = page.get_mut(items).map(Value::take).unwrap_or(Value::Array(Vec::new()));
            let list: Vec<T> = serde_json::from_value(list).map_err(|e| {
                ConnectorError::Upstream(format!("{method} {}: unexpected `{items}`: {e}", redacted(&url)))
            })?;
            all.extend(list);
            match page.get(next).and_then(Value::as_str).filter(|n| !n.is_empty()) {
                None => return Ok(all),
                Some(n) => url = n.to_string(),
            }
        }
        Err(too_many_pages(first))
    }

    /// Every item of a list paged by number: `page_url(1)`, `page_url(2)`, … until a page has
    /// fewer than `per_page` items (`per_page` 0: until an empty page).
    pub fn numbered_pages<T: DeserializeOwned>(
        &self,
        page_url: impl Fn(usize) -> String,
        per_page: usize,
    ) -> Result<Vec<T>, ConnectorError> {
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let url = page_url(page);
            let list: Vec<T> = self.get_json(&url)?;
            let n = list.len();
            items.extend(list);
            if n == 0 || n < per_page {
                return Ok(items);
            }
        }
        Err(too_many_pages(&page_url(1)))
    }
}

fn too_many_pages(first: &str) -> ConnectorError {
    ConnectorError::Upstream(format!("GET {}: more than {MAX_PAGES} pages", redacted(first)))
}

fn decode<T: DeserializeOwned>(resp: &Response, method: &str, url: &str) -> Result<T, ConnectorError> {
    resp.json().map_err(|e| ConnectorError::Upstream(format!("{method} {}: {}", redacted(url), e.message())))
}

/// What an upstream's error body says, from the shapes upstreams use: `{"message"}` (GitLab,
/// Gitea, Kubernetes), `{"error":{"code","message"}}` (Graph), `{"error":{"message"}}`
/// (Bitbucket), `{"error","error_description"}` (OAuth).
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let said = match v.get("error") {
        Some(Value::Object(e)) => match (text(e.get("code")), text(e.get("message"))) {
            (Some(code), Some(message)) => Some(format!("{code}: {message}")),
            (code, message) => message.or(code),
        },
        Some(Value::String(error)) => Some(match text(v.get("error_description")) {
            Some(d) => format!("{error}: {d}"),
            None => error.clone(),
        }),
        _ => None,
    };
    said.or_else(|| text(v.get("message"))).map(|s| clip(&s))
}

/// Passes a 2xx response; names every other outcome the way an operator needs it. A 401 (the
/// token was revoked or expired) is `Denied`, so a refresh answers `invalid_grant`; a rate limit
/// or an outage is `Upstream`, so a refresh is retryable.
pub fn check(resp: Response, method: &str, url: &str, upstream: &str) -> Result<Response, ConnectorError> {
    if resp.is_success() {
        return Ok(resp);
    }
    let status = resp.status;
    let said = error_message(&resp.body).map(|m| format!(": {m}")).unwrap_or_default();
    let remaining = ["ratelimit-remaining", "x-ratelimit-remaining"].iter().find_map(|h| resp.header(h));
    let limited = status == 429 || (status == 403 && remaining.map(str::trim) == Some("0"));
    let text = if limited {
        let retry =
            match (resp.header("retry-after"), resp.header("ratelimit-reset").or(resp.header("x-ratelimit-reset"))) {
                (Some(secs), _) => format!("retry after {} seconds", secs.trim()),
                (None, Some(reset)) => match reset.trim().parse::<i64>() {
                    Ok(epoch) => format!("retry after {}", crate::time::format(epoch)),
                    Err(_) => "retry later".to_string(),
                },
                (None, None) => "retry later".to_string(),
            };
        format!("{upstream} rate limited this request (HTTP {status}{said}); {retry}")
    } else if status == 401 {
        format!("{upstream} refused the access token (HTTP 401{said}); it was revoked or expired: log in again")
    } else if status >= 500 {
        format!("{upstream} failed (HTTP {status}{said}); retry later")
    } else {
        format!("{upstream} answered HTTP {status}{said}")
    };
    let text = format!("{method} {}: {text}", redacted(url));
    Err(if status == 401 { ConnectorError::Denied(text) } else { ConnectorError::Upstream(text) })
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next")
            .then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn errors_are_classified_and_name_the_call() {
        // (status, headers, body, denied, message) — add a row to extend.
        type Row<'a> = (u16, &'a [(&'a str, &'a str)], &'a str, bool, &'a str);
        let rows: &[Row] = &[
            (
                401,
                &[],
                r#"{"message":"401 Unauthorized"}"#,
                true,
                "GET https://x/api: X refused the access token (HTTP 401: 401 Unauthorized); it was revoked or expired: log in again",
            ),
            (
                429,
                &[("retry-after", "30")],
                "Retry later",
                false,
                "GET https://x/api: X rate limited this request (HTTP 429); retry after 30 seconds",
            ),
            (
                429,
                &[("ratelimit-reset", "1767225600")],
                "",
                false,
                "GET https://x/api: X rate limited this request (HTTP 429); retry after 2026-01-01T00:00:00Z",
            ),
            (
                403,
                &[],
                r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#,
                false,
                "GET https://x/api: X answered HTTP 403: Authorization_RequestDenied: Insufficient privileges to complete the operation.",
            ),
            (503, &[], "<html>down</html>", false, "GET https://x/api: X failed (HTTP 503); retry later"),
            (
                401,
                &[],
                r#"{"type":"error","error":{"message":"Access token expired."}}"#,
                true,
                "GET https://x/api: X refused the access token (HTTP 401: Access token expired.); it was revoked or expired: log in again",
            ),
        ];
        for (status, headers, body, denied, message) in rows {
            let err = check(resp(*status, headers, body), "GET", "https://x/api?access_token=s", "X").unwrap_err();
            assert_eq!(matches!(err, ConnectorError::Denied(_)), *denied, "{body}");
            assert_eq!(err.message(), *message);
        }
        assert!(check(resp(204, &[], ""), "GET", "https://x", "X").is_ok());
    }

    #[test]
    fn finds_the_next_link_only() {
        let h = r#"<https://a.example/x?page=2>; rel="next", <https://a.example/x?page=4>; rel="last""#;
        assert_eq!(next_link(h).as_deref(), Some("https://a.example/x?page=2"));
        assert_eq!(next_link(r#"<https://a.example/x?page=1>; rel="prev""#), None);
    }

    #[test]
    fn the_token_goes_to_the_apis_origins_only() {
        let api = Api::new("X", "Bearer t".into(), &["https://api.example.com/v1", "https://login.example.com"]);
        assert!(api.request("GET", "https://api.example.com/v1/me").is_ok());
        assert!(api.request("GET", "https://login.example.com/x").is_ok());
        let err = api.request("GET", "https://evil.example/x?t=1").unwrap_err();
        assert_eq!(err.message(), "GET https://evil.example/x: not an address of X's API; the token is not sent there");
    }
}
