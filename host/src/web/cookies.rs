//! The broker's cookies: the login binding (ties a login to the browser that began it) and the
//! SSO session (its name is `sessions.cookieName`, see `session.rs`). HttpOnly, SameSite=Lax, Secure under https, scoped to the issuer's path.

use axum::http::{HeaderMap, HeaderValue, header};

pub const LOGIN: &str = "portcullis_login";

/// A cookie value from the request.
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value.
pub fn set(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> Option<HeaderValue> {
    let path = if path.is_empty() { "/" } else { path };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"))
        .ok()
}

/// A `Set-Cookie` value without `Max-Age`: the browser forgets it when it closes.
pub fn set_for_browser_session(name: &str, value: &str, path: &str, secure: bool) -> Option<HeaderValue> {
    let path = if path.is_empty() { "/" } else { path };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax{secure}")).ok()
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn clear(name: &str, path: &str, secure: bool) -> Option<HeaderValue> {
    set(name, "", path, 0, secure)
}
