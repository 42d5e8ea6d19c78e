//! The Keystone v3 calls the connector makes: password authentication (an unscoped token),
//! the user, and the user's groups. Every call goes to `keystoneHost` only.

use portcullis_connector_sdk::http::{Request, Response};
use portcullis_connector_sdk::{ConnectorError, url};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{Domain, Settings};

/// The header carrying a token Keystone issued, in its answer and in our requests' `X-Auth-Token`.
const SUBJECT_TOKEN: &str = "x-subject-token";

/// Keystone's answer to a password authentication.
pub enum Auth {
    /// 201: the user's unscoped token and their Keystone id.
    Token { token: String, user_id: String },
    /// The credentials were refused: 401 (wrong password, disabled user, expired password), or a
    /// 2xx other than 201 (as Dex reads it).
    Refused,
}

#[derive(Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    user: TokenUser,
}

#[derive(Deserialize)]
struct TokenUser {
    id: String,
}

/// `GET /v3/users/{id}`'s `user`.
#[derive(Deserialize)]
pub struct User {
    pub id: String,
    /// An optional extra attribute; Keystone has no verified-email notion.
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

#[derive(Deserialize)]
struct UserBody {
    user: User,
}

#[derive(Deserialize)]
struct GroupsBody {
    groups: Vec<Group>,
    /// Set when Keystone cut the list at its `list_limit`.
    #[serde(default)]
    truncated: bool,
}

#[derive(Deserialize)]
struct Group {
    name: String,
}

/// Keystone's error body, `{"error": {"code": 401, "message": "...", "title": "Unauthorized"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInfo,
}

#[derive(Deserialize)]
struct ErrorInfo {
    #[serde(default)]
    message: String,
}

/// `what` failed with the answer `resp`: an upstream error naming the status and Keystone's message.
fn failed(what: &str, resp: &Response) -> ConnectorError {
    let message = serde_json::from_slice::<ErrorBody>(&resp.body).ok().map(|b| b.error.message);
    match message.filter(|m| !m.is_empty()) {
        Some(m) => ConnectorError::Upstream(format!("{what}: Keystone answered HTTP {}: {m}", resp.status)),
        None => ConnectorError::Upstream(format!("{what}: Keystone answered HTTP {}", resp.status)),
    }
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, resp: &Response) -> Result<T, ConnectorError> {
    resp.json().map_err(|e| ConnectorError::Upstream(format!("{what}: {}", e.message())))
}

/// The password authentication request: `{"auth": {"identity": {"methods": ["password"], ...}}}`,
/// unscoped (no `scope`), as Dex sends it.
#[derive(Serialize)]
struct PasswordUser<'a> {
    name: &'a str,
    domain: &'a Domain,
    password: &'a str,
}

pub struct Keystone<'a> {
    pub settings: &'a Settings,
}

impl Keystone<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/v3{path}", self.settings.host)
    }

    fn get(&self, path: &str, token: &str) -> Result<Response, ConnectorError> {
        Request::get(&self.url(path)).header("accept", "application/json").header("x-auth-token", token).call()
    }

    /// `POST /v3/auth/tokens` with a password.
    pub fn authenticate(&self, username: &str, password: &str) -> Result<Auth, ConnectorError> {
        let user = PasswordUser { name: username, domain: &self.settings.domain, password };
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}});
        let resp = Request::post(&self.url("/auth/tokens")).header("accept", "application/json").json(&body)?.call()?;
        match resp.status {
            201 => {}
            401 => return Ok(Auth::Refused),
            s if (200..300).contains(&s) => return Ok(Auth::Refused),
            _ => return Err(failed("password authentication", &resp)),
        }
        let token = resp.header(SUBJECT_TOKEN).map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| {
            ConnectorError::Upstream("password authentication: Keystone's 201 answer has no X-Subject-Token".into())
        })?;
        let body: TokenBody = decode("password authentication", &resp)?;
        Ok(Auth::Token { token: token.to_string(), user_id: body.token.user.id })
    }

    /// `GET /v3/users/{id}`: the user, or `None` when Keystone has no such user (404).
    pub fn user(&self, user_id: &str, token: &str) -> Result<Option<User>, ConnectorError> {
        let resp = self.get(&format!("/users/{}", url::encode(user_id)), token)?;
        match resp.status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(failed("reading the user", &resp)),
        }
        let body: UserBody = decode("reading the user", &resp)?;
        Ok(Some(body.user))
    }

    /// `GET /v3/users/{id}/groups`: the names of the user's groups, in Keystone's order.
    pub fn groups(&self, user_id: &str, token: &str) -> Result<Vec<String>, ConnectorError> {
        let resp = self.get(&format!("/users/{}/groups", url::encode(user_id)), token)?;
        if resp.status != 200 {
            return Err(failed("listing the user's groups", &resp));
        }
        let body: GroupsBody = decode("listing the user's groups", &resp)?;
        if body.truncated {
            return Err(ConnectorError::Upstream(
                "listing the user's groups: Keystone truncated the list at its list_limit; raise list_limit in \
                 keystone.conf so that every group of a user is listed"
                    .into(),
            ));
        }
        Ok(body.groups.into_iter().map(|g| g.name).collect())
    }
}
