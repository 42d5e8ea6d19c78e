//! The token endpoint: the authorization code and refresh grants, client authentication, and
//! the answer read as Dex's oauth2 library reads it (JSON, or a form-encoded body when the
//! content type says so; a 2xx with a non-empty `error` is a failure; `expires_in` a number or
//! a numeric string). [`Stored`] is what a login keeps for refresh.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis_connector_sdk::{ConnectorError, data, http, url};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{clip, redacted, time};

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Basic` with the form-encoded id and secret (RFC 6749 §2.3.1).
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
    /// Dex's detection for an unknown provider: Basic, and on any failure the body once more.
    Auto,
}

/// This broker as an OAuth client of the upstream.
pub struct Client<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub auth: AuthStyle,
    /// The token endpoint.
    pub token_url: &'a str,
    /// The upstream's name in errors ("GitLab", "Microsoft").
    pub upstream: &'a str,
}

/// A successful token answer.
#[derive(Debug, Clone)]
pub struct Token {
    pub access_token: String,
    /// As the upstream sent it (`bearer`, `Bearer`, empty).
    pub token_type: String,
    pub refresh_token: Option<String>,
    /// Seconds the access token lives, when the upstream said.
    pub expires_in: Option<i64>,
    /// Every field of the answer (`id_token`, `scope`, ...).
    pub fields: Map<String, Value>,
}

impl Token {
    /// The `Authorization` header value: `Bearer <token>` for a `bearer` type in any case or
    /// none, else the type verbatim (as Dex's library sends it).
    pub fn authorization(&self) -> String {
        authorization(&self.token_type, &self.access_token)
    }
}

/// `Bearer <token>` for `token_type` `bearer` (any case) or empty, else `<token_type> <token>`.
pub fn authorization(token_type: &str, access_token: &str) -> String {
    if token_type.is_empty() || token_type.eq_ignore_ascii_case("bearer") {
        format!("Bearer {access_token}")
    } else {
        format!("{token_type} {access_token}")
    }
}

impl Client<'_> {
    /// Redeems an authorization code; `redirect_uri` and `verifier` are sent when given.
    /// A refused code (`invalid_grant`) is a bad request: the user starts the login again.
    pub fn exchange_code(
        &self,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> Result<Token, ConnectorError> {
        let mut grant = vec![("grant_type", "authorization_code"), ("code", code)];
        if let Some(uri) = redirect_uri {
            grant.push(("redirect_uri", uri));
        }
        if let Some(verifier) = verifier {
            grant.push(("code_verifier", verifier));
        }
        self.request(&grant).map_err(|e| match e {
            Refused { error, text, .. } if error == "invalid_grant" => ConnectorError::BadRequest(format!(
                "{} refused the login code as invalid, expired or already used ({text}); go back to the \
                 application and log in again",
                self.upstream
            )),
            other => other.into_error(),
        })
    }

    /// Redeems an upstream refresh token (no scope, no redirect URI, as Dex sends it). A
    /// refused grant (`invalid_grant`, or any other 4xx OAuth error) is `Denied`, so the client's
    /// refresh answers `invalid_grant`; an outage stays `Upstream` (retryable).
    pub fn refresh(&self, refresh_token: &str) -> Result<Token, ConnectorError> {
        self.request(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).map_err(|e| match e {
            Refused { status, text, .. } if (400..500).contains(&status) && status != 429 => ConnectorError::Denied(
                format!("{} refused the refresh token ({text}); the user must log in again", self.upstream),
            ),
            other => other.into_error(),
        })
    }

    fn request(&self, grant: &[(&str, &str)]) -> Result<Token, Refused> {
        match self.auth {
            AuthStyle::Basic | AuthStyle::Body => self.post(grant, self.auth),
            AuthStyle::Auto => self.post(grant, AuthStyle::Basic).or_else(|_| self.post(grant, AuthStyle::Body)),
        }
    }

    fn post(&self, grant: &[(&str, &str)], style: AuthStyle) -> Result<Token, Refused> {
        let mut form = grant.to_vec();
        let mut headers = vec![("accept", "application/json".to_string())];
        if style == AuthStyle::Body {
            form.push(("client_id", self.client_id));
            form.push(("client_secret", self.client_secret));
        } else {
            let pair = format!("{}:{}", url::encode(self.client_id), url::encode(self.client_secret));
            headers.push(("authorization", format!("Basic {}", STANDARD.encode(pair))));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let where_ = format!("POST {}", redacted(self.token_url));
        let response = http::post_form(self.token_url, &headers, &form).map_err(|e| Refused {
            status: 0,
            error: String::new(),
            text: e.message().to_string(),
            where_: where_.clone(),
        })?;
        read(&response).map_err(|(error, text)| Refused { status: response.status, error, text, where_ })
    }
}

/// A token request that failed: the HTTP status (0 when it never got an answer), the OAuth
/// `error` code (empty when none) and a description fit for logs.
struct Refused {
    status: u16,
    error: String,
    text: String,
    where_: String,
}

impl Refused {
    fn into_error(self) -> ConnectorError {
        let hint = match self.error.as_str() {
            "invalid_client" | "unauthorized_client" => "; check clientID and clientSecret",
            _ if self.status >= 500 || self.status == 429 => "; retry later",
            _ => "",
        };
        ConnectorError::Upstream(format!("{}: {}{hint}", self.where_, self.text))
    }
}

/// Reads a token answer: the token, or `(error code, description)`.
fn read(response: &http::Response) -> Result<Token, (String, String)> {
    let content_type = response.header("content-type").unwrap_or_default().to_ascii_lowercase();
    let fields: Map<String, Value> =
        if content_type.starts_with("application/x-www-form-urlencoded") || content_type.starts_with("text/plain") {
            let body = String::from_utf8_lossy(&response.body);
            url_decode_pairs(&body).into_iter().map(|(k, v)| (k, Value::String(v))).collect()
        } else {
            match serde_json::from_slice::<Value>(&response.body) {
                Ok(Value::Object(map)) => map,
                _ if !response.is_success() => Map::new(),
                _ => return Err((String::new(), format!("HTTP {}: the answer is not a JSON object", response.status))),
            }
        };
    let text_of = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_string).filter(|s| !s.is_empty());
    let error = text_of("error");
    if !response.is_success() || error.is_some() {
        let code = error.clone().unwrap_or_default();
        let mut text = format!("HTTP {}", response.status);
        if let Some(e) = &error {
            text.push_str(&format!(", error: {}", clip(e)));
        }
        if let Some(d) = text_of("error_description") {
            text.push_str(&format!(", error_description: {}", clip(&d)));
        }
        return Err((code, text));
    }
    let Some(access_token) = text_of("access_token") else {
        return Err((String::new(), format!("HTTP {}: the answer has no access_token", response.status)));
    };
    let expires_in = match fields.get("expires_in") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(Token {
        access_token,
        token_type: text_of("token_type").unwrap_or_default(),
        refresh_token: text_of("refresh_token"),
        expires_in: expires_in.filter(|s| *s > 0),
        fields,
    })
}

/// `k=v&...` decoded (`+` is a space).
fn url_decode_pairs(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            let hex = |j: usize| bytes.get(j).and_then(|c| char::from(*c).to_digit(16));
            match b {
                b'+' => out.push(b' '),
                b'%' => match (hex(i + 1), hex(i + 2)) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                _ => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.trim()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// What an OAuth login keeps for refresh, in Dex's shape: `{"accessToken", "refreshToken",
/// "expiry"}` (RFC 3339; no expiry = the access token does not expire).
///
/// Dex's OpenShift connector keeps Go's `oauth2.Token` instead (`access_token`, `token_type`,
/// `refresh_token`, `expiry`): those names are read too, so a session imported from Dex
/// refreshes, and Go's zero time (`0001-01-01T00:00:00Z`) means no expiry, as in Go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    #[serde(alias = "access_token")]
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "refresh_token")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    /// The token type when it is not bearer (Dex keeps it in its Go token).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "token_type")]
    pub token_type: Option<String>,
}

/// An access token is treated as expired this many seconds early.
const EXPIRY_MARGIN: i64 = 10;

impl Stored {
    /// From a fresh token answer received `now`; keeps `previous_refresh` when the answer
    /// brings no new refresh token.
    pub fn from_token(token: &Token, previous_refresh: Option<&str>, now: i64) -> Self {
        let token_type = Some(token.token_type.clone()).filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("bearer"));
        Stored {
            access_token: token.access_token.clone(),
            refresh_token: token.refresh_token.clone().or_else(|| previous_refresh.map(str::to_string)),
            expiry: token.expires_in.map(|s| time::format(now.saturating_add(s))),
            token_type,
        }
    }

    /// The bytes for `connector-data`.
    pub fn encode(&self) -> Result<Vec<u8>, ConnectorError> {
        data::encode(self)
    }

    /// What [`encode`](Self::encode) wrote; none or unreadable means the user logs in again.
    pub fn decode(bytes: Option<&[u8]>, upstream: &str) -> Result<Self, ConnectorError> {
        data::decode(bytes).ok_or_else(|| {
            ConnectorError::Denied(format!("no {upstream} token is stored for this login; the user must log in again"))
        })
    }

    /// Whether the access token is still good at `now` (no expiry: always).
    pub fn valid_at(&self, now: i64) -> bool {
        match &self.expiry {
            None => true,
            // Go's zero time: Dex's "never expires".
            Some(text) if text.starts_with("0001-01-01T00:00:00") => true,
            Some(text) => time::parse(text).is_some_and(|expiry| expiry - EXPIRY_MARGIN > now),
        }
    }

    /// The `Authorization` header value for the stored access token.
    pub fn authorization(&self) -> String {
        authorization(self.token_type.as_deref().unwrap_or_default(), &self.access_token)
    }

    /// The token to use for a refresh: the stored one while it is valid, else a new one from
    /// the refresh grant (then `true`). An expired token without a refresh token is `Denied`.
    ///
    /// Reusing a live token (Dex's rule for Microsoft, Gitea and Bitbucket) also spares
    /// single-use refresh tokens (GitLab's): a refresh that fails after redeeming one (a rate
    /// limit on the next API call) would lose the new one, since a failed refresh stores nothing.
    pub fn renew(self, client: &Client) -> Result<(Stored, bool), ConnectorError> {
        let now = time::now();
        if self.valid_at(now) {
            return Ok((self, false));
        }
        let Some(refresh_token) = self.refresh_token.as_deref() else {
            return Err(ConnectorError::Denied(format!(
                "the stored {} access token has expired and there is no refresh token; the user must log in again",
                client.upstream
            )));
        };
        let token = client.refresh(refresh_token)?;
        Ok((Stored::from_token(&token, Some(refresh_token), now), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, content_type: &str, body: &str) -> http::Response {
        http::Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn reads_json_form_and_errors_as_dex_does() {
        let ok = read(&response(
            200,
            "application/json",
            r#"{"access_token":"a","token_type":"bearer","expires_in":"7200","refresh_token":"r"}"#,
        ))
        .unwrap();
        assert_eq!(
            (ok.access_token.as_str(), ok.expires_in, ok.refresh_token.as_deref()),
            ("a", Some(7200), Some("r"))
        );
        assert_eq!(ok.authorization(), "Bearer a");
        let form =
            read(&response(200, "application/x-www-form-urlencoded", "access_token=a%2Bb&token_type=mac&scope=x+y"))
                .unwrap();
        assert_eq!(form.access_token, "a+b");
        assert_eq!(form.authorization(), "mac a+b");
        assert_eq!(form.fields["scope"], "x y");
        let rows = [
            (
                200,
                r#"{"error":"invalid_grant","error_description":"gone"}"#,
                "invalid_grant",
                "HTTP 200, error: invalid_grant, error_description: gone",
            ),
            (400, r#"{"error":"invalid_client"}"#, "invalid_client", "HTTP 400, error: invalid_client"),
            (502, "<html>bad gateway</html>", "", "HTTP 502"),
            (200, r#"{"token_type":"bearer"}"#, "", "HTTP 200: the answer has no access_token"),
            (200, "[]", "", "HTTP 200: the answer is not a JSON object"),
        ];
        for (status, body, code, text) in rows {
            let (c, t) = read(&response(status, "application/json", body)).unwrap_err();
            assert_eq!((c.as_str(), t.as_str()), (code, text), "{body}");
        }
    }

    #[test]
    fn stored_tokens_expire_early_and_keep_the_refresh_token() {
        let token = read(&response(200, "application/json", r#"{"access_token":"a","expires_in":100}"#)).unwrap();
        let stored = Stored::from_token(&token, Some("old"), 1_000);
        assert_eq!(stored.expiry.as_deref(), Some("1970-01-01T00:18:20Z"));
        assert_eq!(stored.refresh_token.as_deref(), Some("old"));
        assert!(stored.valid_at(1_089) && !stored.valid_at(1_090));
        let json = String::from_utf8(stored.encode().unwrap()).unwrap();
        assert_eq!(json, r#"{"accessToken":"a","refreshToken":"old","expiry":"1970-01-01T00:18:20Z"}"#);
        assert_eq!(Stored::decode(Some(json.as_bytes()), "X").unwrap(), stored);
        assert!(Stored::decode(None, "X").is_err());
        let forever = Stored { access_token: "a".into(), refresh_token: None, expiry: None, token_type: None };
        assert!(forever.valid_at(i64::MAX - 100));
        // Dex's data: its camelCase records, and Go's oauth2.Token (OpenShift's).
        let dex = br#"{"accessToken":"a","refreshToken":"r","expiry":"2026-08-06T10:00:05.123456789+02:00"}"#;
        let dex = Stored::decode(Some(dex), "X").unwrap();
        assert_eq!(dex.refresh_token.as_deref(), Some("r"));
        assert!(dex.valid_at(time::parse("2026-08-06T07:59:00Z").unwrap()));
        assert!(!dex.valid_at(time::parse("2026-08-06T08:00:00Z").unwrap()));
        let go = br#"{"access_token":"sha256~x","token_type":"Bearer","expiry":"0001-01-01T00:00:00Z"}"#;
        let go = Stored::decode(Some(go), "X").unwrap();
        assert_eq!((go.access_token.as_str(), go.authorization().as_str()), ("sha256~x", "Bearer sha256~x"));
        assert!(go.valid_at(i64::MAX - 100), "Go's zero time is no expiry");
    }
}
