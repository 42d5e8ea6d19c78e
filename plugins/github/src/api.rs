//! Talking to GitHub: the code exchange, authenticated REST calls with GitHub's headers, error
//! classification (bad credentials, rate limits, 5xx) and `link`-header pagination.
//!
//! Error texts name the endpoint and what GitHub said, never a token, code or secret.

use portcullis_connector_sdk::ConnectorError;
use portcullis_connector_sdk::http::{Request, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::Config;

/// GitHub refuses requests without a User-Agent.
const USER_AGENT: &str = "portcullis-github-connector";
const API_VERSION: &str = "2022-11-28";
/// A bound on pages followed per list, so a looping `link` header cannot hold a login forever.
const MAX_PAGES: usize = 50;

/// The token endpoint's JSON answer: a token, or (with HTTP 200) an OAuth error.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Redeems the callback's `code` for an access token.
pub fn exchange_code(config: &Config, code: &str, redirect_uri: &str) -> Result<String, ConnectorError> {
    let endpoint = config.token_url();
    let resp = Request::post(&endpoint)
        .header("accept", "application/json")
        .header("user-agent", USER_AGENT)
        .form(&[
            ("client_id", &config.client_id),
            ("client_secret", &config.client_secret),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ])
        .send()
        .map_err(|e| ConnectorError::Upstream(format!("POST {endpoint}: {}", ConnectorError::from(e).message())))?;
    let resp = check(resp, "POST", &endpoint)?;
    let token: TokenResponse = resp.json().map_err(|e| in_call("POST", &endpoint, e))?;
    // GitHub reports token errors with HTTP 200: look for `error` before `access_token`.
    if let Some(error) = token.error {
        let described = match &token.error_description {
            Some(d) => format!("{error}: {d}"),
            None => error.clone(),
        };
        return Err(match error.as_str() {
            "bad_verification_code" => ConnectorError::BadRequest(format!(
                "GitHub refused the login code as incorrect, expired or already used ({described}); \
                 go back to the application and log in again"
            )),
            "incorrect_client_credentials" => ConnectorError::Config(format!(
                "GitHub refused the OAuth App credentials ({described}); check clientID and clientSecret"
            )),
            "redirect_uri_mismatch" => ConnectorError::Config(format!(
                "GitHub refused the redirect URI ({described}); the OAuth App's callback URL must match \
                 redirectURI (or the broker's {{issuer}}/callback/{{connector-id}})"
            )),
            _ => ConnectorError::Upstream(format!("POST {endpoint}: GitHub refused the code exchange ({described})")),
        });
    }
    match token.access_token {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(ConnectorError::Upstream(format!("POST {endpoint}: GitHub's answer has no access_token"))),
    }
}

/// An access token and the API root it is good for.
pub struct Client<'a> {
    pub api: String,
    pub token: &'a str,
}

impl Client<'_> {
    fn get(&self, url: &str) -> Result<Response, ConnectorError> {
        let shown = redacted(url);
        let resp = Request::get(url)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION)
            .header("user-agent", USER_AGENT)
            .header("authorization", &format!("Bearer {}", self.token))
            .send()
            .map_err(|e| ConnectorError::Upstream(format!("GET {shown}: {}", ConnectorError::from(e).message())))?;
        check(resp, "GET", shown)
    }

    /// `GET {api}{path}`, decoded.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConnectorError> {
        let url = format!("{}{path}", self.api);
        self.get(&url)?.json().map_err(|e| in_call("GET", &url, e))
    }

    /// Every item of the list at `{api}{path}`, following `rel="next"` links (on the API's own
    /// origin only, so the token never travels elsewhere).
    pub fn get_all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, ConnectorError> {
        let mut url = format!("{}{path}?per_page=100", self.api);
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let resp = self.get(&url)?;
            let page: Vec<T> = resp.json().map_err(|e| in_call("GET", &url, e))?;
            items.extend(page);
            match resp.header("link").and_then(next_link) {
                None => return Ok(items),
                Some(next) if next.starts_with(&format!("{}/", self.api)) => url = next,
                Some(next) => {
                    return Err(ConnectorError::Upstream(format!(
                        "GET {path}: the next page link points outside {} ({})",
                        self.api,
                        redacted(&next)
                    )));
                }
            }
        }
        Err(ConnectorError::Upstream(format!("GET {path}: more than {MAX_PAGES} pages")))
    }
}

fn in_call(method: &str, url: &str, e: ConnectorError) -> ConnectorError {
    ConnectorError::Upstream(format!("{method} {}: {}", redacted(url), e.message()))
}

/// GitHub's error body.
#[derive(Deserialize)]
struct ApiError {
    message: Option<String>,
}

/// Passes a 2xx response; names every other outcome the way an operator needs it.
fn check(resp: Response, method: &str, url: &str) -> Result<Response, ConnectorError> {
    if resp.is_success() {
        return Ok(resp);
    }
    let status = resp.status;
    let message = serde_json::from_slice::<ApiError>(&resp.body).ok().and_then(|e| e.message).map(|m| clip(&m));
    let said = message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
    let remaining = resp.header("x-ratelimit-remaining").map(str::trim);
    let limited = matches!(status, 403 | 429)
        && (remaining == Some("0") || resp.header("retry-after").is_some() || said.contains("rate limit"));
    let text = if limited {
        let retry = match (resp.header("retry-after"), resp.header("x-ratelimit-reset")) {
            (Some(secs), _) => format!("retry after {} seconds", secs.trim()),
            (None, Some(reset)) => match reset.trim().parse::<i64>() {
                Ok(epoch) => format!("retry after {} (x-ratelimit-reset {epoch})", utc(epoch)),
                Err(_) => "retry later".to_string(),
            },
            (None, None) => "retry in a minute or more".to_string(),
        };
        format!("GitHub rate limited this request (HTTP {status}{said}); {retry}")
    } else if status == 401 {
        format!("GitHub refused the access token (HTTP 401{said}); it was revoked or expired: log in again")
    } else if status >= 500 {
        format!("GitHub failed (HTTP {status}{said}); retry later")
    } else {
        format!("GitHub answered HTTP {status}{said}")
    };
    let text = format!("{method} {}: {text}", redacted(url));
    // A revoked token ends the login (a refresh answers invalid_grant); the rest may pass, so
    // a refresh answers "temporarily unavailable" and the client keeps its token.
    Err(if status == 401 && !limited { ConnectorError::Denied(text) } else { ConnectorError::Upstream(text) })
}

/// The `rel="next"` URL of a `link` header, Unix seconds as RFC 3339 UTC, URLs without their
/// query and clipped upstream messages: the shared OAuth client's (`plugins/oauth2-core`).
pub use portcullis_oauth2_core::api::next_link;
pub use portcullis_oauth2_core::time::format as utc;
use portcullis_oauth2_core::{clip, redacted};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_link_only() {
        let h = r#"<https://api.github.com/user/teams?per_page=100&page=2>; rel="next", <https://api.github.com/user/teams?per_page=100&page=4>; rel="last""#;
        assert_eq!(next_link(h).as_deref(), Some("https://api.github.com/user/teams?per_page=100&page=2"));
        let last = r#"<https://api.github.com/user/teams?page=1>; rel="first", <https://api.github.com/user/teams?page=1>; rel="prev""#;
        assert_eq!(next_link(last), None);
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn formats_unix_time_as_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(utc(1_767_225_600 + 3_723), "2026-01-01T01:02:03Z");
    }
}
