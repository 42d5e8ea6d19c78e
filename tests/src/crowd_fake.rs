//! A fake Atlassian Crowd (REST usermanagement 1) on 127.0.0.1:0, serving the shapes of
//! `shared/upstreams-more.md` §10 under `/crowd/rest/usermanagement/1`: `POST /session`
//! (with or without `validate-password=false`; 201, or 400 with Crowd's `reason`s),
//! `GET /user?username=` and `GET /user/group/nested?username=` with `start-index` /
//! `max-results` paging over a group hierarchy. Every call must carry the application's Basic
//! credentials; Crowd's two non-JSON refusals (unknown application, address not allowed) and
//! 5xx pages can be switched on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};

/// The Crowd application the connector logs in as (`clientID` / `clientSecret`).
pub const APP_NAME: &str = "portcullis";
pub const APP_PASSWORD: &str = "app-p4ss:w0rd";

/// The context path: the connector's `baseURL` is `{base}/crowd`.
const ROOT: &str = "/crowd/rest/usermanagement/1";

/// A Crowd user.
#[derive(Clone, Debug)]
pub struct FakeCrowdUser {
    pub name: String,
    pub key: String,
    pub password: String,
    pub email: String,
    pub display_name: String,
    pub active: bool,
    pub expired_credential: bool,
    /// Whether the user may use the application (else APPLICATION_ACCESS_DENIED).
    pub app_access: bool,
    /// Direct memberships; nested ones come from the group hierarchy.
    pub groups: Vec<String>,
}

impl FakeCrowdUser {
    pub fn new(name: &str, key: &str, password: &str) -> Self {
        Self {
            name: name.into(),
            key: key.into(),
            password: password.into(),
            email: format!("{}@example.org", name.replace(' ', ".")),
            display_name: name.into(),
            active: true,
            expired_credential: false,
            app_access: true,
            groups: Vec::new(),
        }
    }
}

/// How Crowd answers, for the failure tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrowdMode {
    Normal,
    /// 403 with Crowd's HTML "refuses to authorize it" page: the broker's address is not allowed.
    AddressNotAllowed,
    /// An HTML error page with this status.
    ServerError(u16),
    /// `/user` answers 200 with a body that is not JSON.
    NotJson,
}

struct Inner {
    users: Vec<FakeCrowdUser>,
    /// group → the groups it is a direct member of.
    parents: HashMap<String, Vec<String>>,
    mode: CrowdMode,
    /// `METHOD path?query` of every authenticated request, in order.
    requests: Vec<String>,
    /// The session request bodies, in order.
    sessions: Vec<Value>,
}

/// The running fake; dropping it stops the server.
pub struct FakeCrowd {
    /// `http://127.0.0.1:PORT`; the connector's `baseURL` is [`FakeCrowd::base_url`].
    pub base: String,
    shared: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCrowd {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeCrowd {
    /// Starts the fake with `users` and the group hierarchy `parents` (`(group, parent)`: every
    /// member of `group` is a nested member of `parent`).
    pub async fn start(users: Vec<FakeCrowdUser>, parents: &[(&str, &str)]) -> Self {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (group, parent) in parents {
            map.entry(group.to_string()).or_default().push(parent.to_string());
        }
        let shared = Arc::new(Mutex::new(Inner {
            users,
            parents: map,
            mode: CrowdMode::Normal,
            requests: Vec::new(),
            sessions: Vec::new(),
        }));
        let router = Router::new()
            .route(&format!("{ROOT}/session"), post(session))
            .route(&format!("{ROOT}/user"), get(user))
            .route(&format!("{ROOT}/user/group/nested"), get(nested_groups))
            .with_state(shared.clone());
        let (base, server) = crate::oauth_fake::serve(move |_| router).await;
        Self { base, shared, server }
    }

    /// `{base}/crowd`: Crowd with its context path, as `baseURL` names it.
    pub fn base_url(&self) -> String {
        format!("{}/crowd", self.base)
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.shared)
    }

    /// Changes the user called `name`.
    pub fn update_user(&self, name: &str, f: impl FnOnce(&mut FakeCrowdUser)) {
        let mut inner = self.inner();
        f(inner.users.iter_mut().find(|u| u.name == name).expect("a user with that name"));
    }

    pub fn delete_user(&self, name: &str) {
        self.inner().users.retain(|u| u.name != name);
    }

    pub fn set_mode(&self, mode: CrowdMode) {
        self.inner().mode = mode;
    }

    /// `METHOD path?query` (below the REST root) of every authenticated request so far.
    pub fn requests(&self) -> Vec<String> {
        self.inner().requests.clone()
    }

    /// The JSON bodies of `POST /session` so far.
    pub fn sessions(&self) -> Vec<Value> {
        self.inner().sessions.clone()
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn reason(status: StatusCode, reason: &str, message: &str) -> Response {
    (status, Json(json!({"reason": reason, "message": message}))).into_response()
}

fn html(status: StatusCode, body: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html;charset=utf-8")], body.to_string()).into_response()
}

/// The checks every call passes: the application's credentials and the mode.
#[allow(clippy::result_large_err, reason = "the error is the fake's answer, an axum Response")]
fn application(inner: &mut Inner, headers: &HeaderMap, request: String) -> Result<(), Response> {
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{APP_NAME}:{APP_PASSWORD}")));
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return Err((
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain")],
            "Application failed to authenticate",
        )
            .into_response());
    }
    match inner.mode {
        CrowdMode::AddressNotAllowed => {
            return Err(html(
                StatusCode::FORBIDDEN,
                "<html><body><h1>HTTP Status 403 - Client with address \"127.0.0.1\" is forbidden from making requests to the application, portcullis.</h1><p>The server understood the request but refuses to authorize it.</p></body></html>",
            ));
        }
        CrowdMode::ServerError(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Err(html(status, "<html><body><h1>HTTP Status 500 - Internal Server Error</h1></body></html>"));
        }
        _ => {}
    }
    if !headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json")) {
        return Err(html(StatusCode::NOT_ACCEPTABLE, "<html><body>Not Acceptable</body></html>"));
    }
    inner.requests.push(request);
    Ok(())
}

fn query_string(q: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(q).finish()
}

fn find<'a>(inner: &'a Inner, name: &str) -> Option<&'a FakeCrowdUser> {
    // Crowd matches usernames case-insensitively.
    inner.users.iter().find(|u| u.name.eq_ignore_ascii_case(name))
}

async fn session(
    State(s): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    Json(body): Json<Value>,
) -> Response {
    let mut inner = lock(&s);
    if let Err(answer) = application(&mut inner, &headers, format!("POST /session?{}", query_string(&q))) {
        return answer;
    }
    inner.sessions.push(body.clone());
    let validate = !q.iter().any(|(k, v)| k == "validate-password" && v == "false");
    let name = body["username"].as_str().unwrap_or_default();
    let Some(user) = find(&inner, name).cloned() else {
        return reason(StatusCode::BAD_REQUEST, "USER_NOT_FOUND", &format!("User <{name}> does not exist"));
    };
    if validate && body["password"].as_str() != Some(user.password.as_str()) {
        return reason(
            StatusCode::BAD_REQUEST,
            "INVALID_USER_AUTHENTICATION",
            "Failed to authenticate principal, password was invalid",
        );
    }
    if !user.active {
        return reason(
            StatusCode::BAD_REQUEST,
            "INACTIVE_ACCOUNT",
            &format!("Account with name <{}> is inactive", user.name),
        );
    }
    if validate && user.expired_credential {
        return reason(StatusCode::BAD_REQUEST, "EXPIRED_CREDENTIAL", "The user's password has expired");
    }
    if !user.app_access {
        return reason(
            StatusCode::FORBIDDEN,
            "APPLICATION_ACCESS_DENIED",
            &format!("User <{}> does not have access to application <{APP_NAME}>", user.name),
        );
    }
    let body = json!({
        "expand": "user",
        "token": format!("Fq8{}", portcullis::web::random_token()),
        "user": {"name": user.name},
        "created-date": 1754474400000u64,
        "expiry-date": 1754478000000u64
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

fn username(q: &[(String, String)]) -> String {
    q.iter().find(|(k, _)| k == "username").map(|(_, v)| v.clone()).unwrap_or_default()
}

async fn user(
    State(s): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut inner = lock(&s);
    if let Err(answer) = application(&mut inner, &headers, format!("GET /user?{}", query_string(&q))) {
        return answer;
    }
    if inner.mode == CrowdMode::NotJson {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "<html>maintenance</html>")
            .into_response();
    }
    let name = username(&q);
    let Some(u) = find(&inner, &name) else {
        return reason(StatusCode::NOT_FOUND, "USER_NOT_FOUND", &format!("User <{name}> does not exist"));
    };
    let (first, last) = u.display_name.split_once(' ').unwrap_or((&u.display_name, ""));
    Json(json!({
        "expand": "attributes",
        "link": {"href": format!("http://crowd.invalid{ROOT}/user?username={}", u.name), "rel": "self"},
        "name": u.name,
        "key": u.key,
        "active": u.active,
        "email": u.email,
        "first-name": first,
        "last-name": last,
        "display-name": u.display_name,
        "password": {"link": {"href": "http://crowd.invalid", "rel": "edit"}}
    }))
    .into_response()
}

/// Every group `user` is in, directly or through the hierarchy, direct ones first.
fn all_groups(inner: &Inner, user: &FakeCrowdUser) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut queue: Vec<String> = user.groups.clone();
    while !queue.is_empty() {
        let group = queue.remove(0);
        if out.contains(&group) {
            continue;
        }
        queue.extend(inner.parents.get(&group).cloned().unwrap_or_default());
        out.push(group);
    }
    out
}

async fn nested_groups(
    State(s): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut inner = lock(&s);
    if let Err(answer) = application(&mut inner, &headers, format!("GET /user/group/nested?{}", query_string(&q))) {
        return answer;
    }
    let name = username(&q);
    let Some(u) = find(&inner, &name).cloned() else {
        return reason(StatusCode::NOT_FOUND, "USER_NOT_FOUND", &format!("User <{name}> does not exist"));
    };
    let number = |key: &str, default: usize| {
        q.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse::<usize>().ok()).unwrap_or(default)
    };
    let (start, max) = (number("start-index", 0), number("max-results", 1000));
    let groups: Vec<Value> = all_groups(&inner, &u)
        .into_iter()
        .skip(start)
        .take(max)
        .map(|g| json!({"name": g, "link": {"href": format!("http://crowd.invalid{ROOT}/group?groupname={g}"), "rel": "self"}}))
        .collect();
    Json(json!({"expand": "group", "groups": groups})).into_response()
}
