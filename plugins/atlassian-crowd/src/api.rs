//! The Crowd REST calls (`{baseURL}/rest/usermanagement/1/...`, as the Crowd application with
//! HTTP Basic): sessions (with and without the password), the user, and the user's nested
//! groups, page by page. Crowd's two non-JSON refusals of the application itself are
//! configuration problems, reported as such.

use portcullis_connector_sdk::http::{Request, Response};
use portcullis_connector_sdk::{ConnectorError, url};
use serde::{Deserialize, Serialize};

use crate::config::Settings;

/// Groups asked for per page of `/user/group/nested` (Crowd's `max-results`).
pub const GROUP_PAGE: usize = 1000;
/// Pages read at most: a user in more groups than this fails the login instead of losing some.
const MAX_GROUP_PAGES: usize = 20;

/// What `POST /session` answered.
pub enum Session {
    /// 201: the user authenticated (or, without the password, may still use the application).
    Created,
    /// Wrong password or no such user: the form again, without saying which.
    Invalid,
    /// Crowd knows the user but will not let them in; the message is for the user.
    Refused(String),
}

/// A Crowd user as `GET /user` answers (more fields exist; these are the ones used).
#[derive(Deserialize)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub email: String,
}

/// Crowd's error body, `{"reason": "INVALID_USER_AUTHENTICATION", "message": "..."}`.
#[derive(Deserialize, Default)]
struct CrowdError {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct Groups {
    #[serde(default)]
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    name: String,
}

#[derive(Serialize)]
struct Credentials<'a> {
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
}

pub struct Crowd<'a> {
    pub settings: &'a Settings,
}

impl Crowd<'_> {
    fn request(&self, method: &str, path: &str) -> Request {
        Request::new(method, &format!("{}{path}", self.settings.api))
            .basic_auth(&self.settings.client_id, &self.settings.client_secret)
            .header("accept", "application/json")
    }

    /// Sends `req`; Crowd's refusals of the application itself become config-named errors.
    fn call(&self, req: Request) -> Result<Response, ConnectorError> {
        let resp = req.call()?;
        let body = String::from_utf8_lossy(&resp.body);
        if resp.status == 403 && body.contains("The server understood the request but refuses to authorize it.") {
            return Err(ConnectorError::Upstream(format!(
                "Crowd refuses requests from this broker's address: add the broker's address to the remote \
                 addresses of application {:?} (clientID) in Crowd",
                self.settings.client_id
            )));
        }
        if resp.status == 401 && body.trim() == "Application failed to authenticate" {
            return Err(ConnectorError::Upstream(format!(
                "Crowd refused the application's credentials: check clientID ({:?}) and clientSecret",
                self.settings.client_id
            )));
        }
        Ok(resp)
    }

    /// `POST /session` with the password, or without it (`?validate-password=false`, refresh).
    pub fn session(&self, username: &str, password: Option<&str>) -> Result<Session, ConnectorError> {
        let path = if password.is_some() { "/session" } else { "/session?validate-password=false" };
        let req = self.request("POST", path).json(&Credentials { username, password })?;
        let resp = self.call(req)?;
        if resp.status == 201 {
            return Ok(Session::Created);
        }
        let error: CrowdError = serde_json::from_slice(&resp.body).unwrap_or_default();
        Ok(match error.reason.as_str() {
            "INVALID_USER_AUTHENTICATION" | "USER_NOT_FOUND" => Session::Invalid,
            "INACTIVE_ACCOUNT" => Session::Refused("your Crowd account is inactive".into()),
            "EXPIRED_CREDENTIAL" => {
                Session::Refused("your Crowd password has expired: change it in Crowd, then log in again".into())
            }
            "APPLICATION_ACCESS_DENIED" => {
                Session::Refused("your Crowd account may not use this application; ask a Crowd administrator".into())
            }
            _ => return Err(failed("creating a session", &resp, &error)),
        })
    }

    /// `GET /user?username=`: the user, or `None` when Crowd has no such user (404).
    pub fn user(&self, username: &str) -> Result<Option<User>, ConnectorError> {
        let resp = self.call(self.request("GET", &format!("/user?username={}", url::encode(username))))?;
        match resp.status {
            200 => resp.json().map(Some).map_err(|e| context("reading the user", e)),
            404 => Ok(None),
            _ => Err(failed("reading the user", &resp, &serde_json::from_slice(&resp.body).unwrap_or_default())),
        }
    }

    /// `GET /user/group/nested?username=`: the names of every group the user is in, directly
    /// or through other groups, in Crowd's order, read `GROUP_PAGE` at a time.
    pub fn nested_groups(&self, username: &str) -> Result<Vec<String>, ConnectorError> {
        let mut names = Vec::new();
        for page in 0..MAX_GROUP_PAGES {
            let path = format!(
                "/user/group/nested?username={}&start-index={}&max-results={GROUP_PAGE}",
                url::encode(username),
                page * GROUP_PAGE
            );
            let resp = self.call(self.request("GET", &path))?;
            if resp.status != 200 {
                let error = serde_json::from_slice(&resp.body).unwrap_or_default();
                return Err(failed("listing the user's groups", &resp, &error));
            }
            let groups: Groups = resp.json().map_err(|e| context("listing the user's groups", e))?;
            let full = groups.groups.len() >= GROUP_PAGE;
            names.extend(groups.groups.into_iter().map(|g| g.name));
            if !full {
                return Ok(names);
            }
        }
        Err(ConnectorError::Upstream(format!(
            "listing the user's groups: the user is in more than {} groups, more than this connector reads",
            MAX_GROUP_PAGES * GROUP_PAGE
        )))
    }
}

fn context(what: &str, e: ConnectorError) -> ConnectorError {
    ConnectorError::Upstream(format!("{what}: {}", e.message()))
}

/// `what` failed: an upstream error naming the status and Crowd's reason and message.
fn failed(what: &str, resp: &Response, error: &CrowdError) -> ConnectorError {
    let mut msg = format!("{what}: Crowd answered HTTP {}", resp.status);
    if !error.reason.is_empty() {
        msg.push_str(&format!(" ({})", error.reason));
    }
    if !error.message.is_empty() {
        msg.push_str(&format!(": {}", error.message));
    }
    ConnectorError::Upstream(msg)
}
