//! `WebError`: every way a request can fail, rendered in one place — a page for the person at
//! the browser, a redirect carrying an OAuth error back to the client, or the token endpoint's
//! JSON error.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::Value;
use serde_json::json;
use url::Url;

use super::{pages, prefix};
use crate::connectors::{PluginError, Refusal};
use crate::generation::Live;
use crate::oidc::{OAuthError, OAuthErrorCode};

/// What the user is told to do after most failed logins.
const LOG_IN_AGAIN: &str = "Go back to the application and log in again.";

/// Seconds a client is told to wait (`Retry-After`) when storage or a connector is unavailable.
pub const STORAGE_RETRY_AFTER: u64 = 2;

/// A request that failed, and so what the answer is.
#[derive(Debug)]
pub enum WebError {
    /// An error page (never a redirect: the client or the login cannot be trusted with one).
    Page(ErrorPage),
    /// Back to the client's registered redirect URI with `error` (RFC 6749 §4.1.2.1) and the
    /// issuer (`iss`, RFC 9207, so a client talking to several providers cannot be mixed up).
    ToClient { redirect_uri: String, state: Option<String>, error: OAuthError, issuer: String },
    /// The token endpoint's JSON error (RFC 6749 §5.2), with `WWW-Authenticate` for `invalid_client`.
    OAuth(OAuthError),
}

/// An error page: status, title, what happened and what to do.
pub struct ErrorPage {
    live: Arc<Live>,
    status: StatusCode,
    title: &'static str,
    message: String,
    hint: Option<&'static str>,
    /// Seconds for `Retry-After`.
    retry_after: Option<u64>,
}

impl std::fmt::Debug for ErrorPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.message)
    }
}

impl WebError {
    /// An error page in `live`'s branding.
    pub fn page(live: &Arc<Live>, status: StatusCode, title: &'static str, message: impl Into<String>) -> Self {
        Self::Page(ErrorPage {
            live: live.clone(),
            status,
            title,
            message: message.into(),
            hint: None,
            retry_after: None,
        })
    }

    /// Adds what the user can do about it.
    pub fn hint(mut self, hint: &'static str) -> Self {
        if let Self::Page(page) = &mut self {
            page.hint = Some(hint);
        }
        self
    }

    /// The client's error for a request whose client and redirect URI were checked.
    /// A native app on the out-of-band URI gets it on a page, as it gets its code.
    pub fn to_client(live: &Arc<Live>, redirect_uri: &str, state: Option<&str>, error: OAuthError) -> Self {
        if redirect_uri == crate::config::REDIRECT_OOB {
            let message = format!("{}: {}", error.error.as_str(), error.description);
            return Self::page(live, StatusCode::BAD_REQUEST, "Login failed", message)
                .hint("Go back to the application and try again.");
        }
        Self::ToClient {
            redirect_uri: redirect_uri.to_string(),
            state: state.map(str::to_string),
            error,
            issuer: super::issuer(live),
        }
    }

    /// Too many requests from this client: come back after `retry_after`.
    pub fn throttled(live: &Arc<Live>, retry_after: std::time::Duration) -> Self {
        let wait = retry_after.as_secs().max(1);
        let mut error = Self::page(
            live,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            format!("Too many logins were started from your address. Wait {wait} seconds, then try again."),
        );
        if let Self::Page(page) = &mut error {
            page.retry_after = Some(wait);
        }
        error
    }

    /// The login (auth request) is unknown or expired.
    pub fn login_expired(live: &Arc<Live>) -> Self {
        Self::page(live, StatusCode::BAD_REQUEST, "Login expired", "This login is unknown or has expired.")
            .hint(LOG_IN_AGAIN)
    }

    /// The login was already finished (a replayed or concurrent form): its code went out once.
    pub fn login_finished(live: &Arc<Live>) -> Self {
        Self::page(live, StatusCode::CONFLICT, "Login already finished", "This login has already been completed.")
            .hint("Go back to the application; if you are not logged in there, log in again.")
    }

    /// The login changed under us (a concurrent step won the compare-and-swap).
    pub fn login_changed(live: &Arc<Live>, message: &'static str) -> Self {
        Self::page(live, StatusCode::CONFLICT, "Login expired", message).hint(LOG_IN_AGAIN)
    }

    /// Storage failed while reading a login: 503, come back in [`STORAGE_RETRY_AFTER`] seconds.
    pub fn storage(live: &Arc<Live>) -> Self {
        let mut error = Self::page(
            live,
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again",
            "The login service's storage is unavailable. Try again in a few seconds.",
        );
        if let Self::Page(page) = &mut error {
            page.retry_after = Some(STORAGE_RETRY_AFTER);
        }
        error
    }

    /// The login-binding cookie does not match: another browser began this login.
    pub fn other_browser(live: &Arc<Live>) -> Self {
        Self::page(
            live,
            StatusCode::FORBIDDEN,
            "Login started elsewhere",
            "This login was started in another browser or its cookie is missing.",
        )
        .hint("Go back to the application and log in again from this browser.")
    }

    /// A form's CSRF token does not match its login's.
    pub fn csrf(live: &Arc<Live>) -> Self {
        Self::page(
            live,
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form did not come from this login (its security token does not match).",
        )
        .hint(LOG_IN_AGAIN)
    }

    /// A request whose client or redirect URI cannot be trusted.
    pub fn untrusted(live: &Arc<Live>, title: &'static str, message: &'static str) -> Self {
        Self::page(live, StatusCode::BAD_REQUEST, title, message)
            .hint("Return to the application and try again; if this persists, tell its administrator.")
    }

    /// The upstream's answer at the callback cannot belong to this login.
    pub fn callback(live: &Arc<Live>, message: &'static str) -> Self {
        Self::page(live, StatusCode::BAD_REQUEST, "Login failed", message).hint(LOG_IN_AGAIN)
    }

    /// A login method that does not exist, or is configured but not loaded.
    pub fn unknown_connector(live: &Arc<Live>, id: &str) -> Self {
        if live.failed.iter().any(|f| f.connector == id) {
            // Configured, but its plugin did not load at start (the log and /status say why).
            return Self::page(
                live,
                StatusCode::SERVICE_UNAVAILABLE,
                "Login method unavailable",
                "This login method is configured but is not working right now.",
            )
            .hint(
                "Try another login method, or try again later; the administrator can see why in the broker's status.",
            );
        }
        Self::page(
            live,
            StatusCode::NOT_FOUND,
            "Unknown login method",
            "This login method does not exist or was removed while you were logging in.",
        )
        .hint(LOG_IN_AGAIN)
    }

    /// A connector failed the login: access denied is a 403, the rest say what failed. Counted
    /// and logged here, once.
    pub fn connector(live: &Arc<Live>, err: &PluginError) -> Self {
        let outcome = if matches!(err.refusal(), Some(Refusal::Denied(_))) { "denied" } else { "error" };
        crate::metrics::global().login(err.connector(), outcome);
        tracing::warn!(connector = err.connector(), "login failed: {err}");
        let (status, message) = match err.refusal() {
            Some(Refusal::Denied(why)) => (StatusCode::FORBIDDEN, why.clone()),
            Some(Refusal::BadRequest(why)) => (StatusCode::BAD_REQUEST, why.clone()),
            Some(Refusal::Upstream(_)) => {
                (StatusCode::BAD_GATEWAY, "The identity provider could not be reached or answered unexpectedly.".into())
            }
            _ => (
                StatusCode::BAD_GATEWAY,
                "The login connector failed. The administrator can find the cause in the broker's log.".into(),
            ),
        };
        let title = if status == StatusCode::FORBIDDEN { "Access denied" } else { "Login failed" };
        Self::page(live, status, title, message).hint("Go back to the application and try again.")
    }
}

impl From<OAuthError> for WebError {
    fn from(error: OAuthError) -> Self {
        Self::OAuth(error)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            Self::Page(p) => {
                let mut response = pages::render(
                    &p.live.config,
                    &prefix(&p.live),
                    p.status,
                    "error.html",
                    vec![
                        ("title", p.title.into()),
                        ("message", p.message.into()),
                        ("hint", Value::from(p.hint.map(str::to_string))),
                    ],
                );
                if let Some(wait) = p.retry_after
                    && let Ok(value) = HeaderValue::from_str(&wait.to_string())
                {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            Self::ToClient { redirect_uri, state, error, issuer } => {
                let mut pairs =
                    vec![("error", error.error.as_str()), ("error_description", error.description.as_str())];
                if let Some(s) = state.as_deref() {
                    pairs.push(("state", s));
                }
                pairs.push(("iss", issuer.as_str()));
                redirect_with(&redirect_uri, &pairs)
            }
            Self::OAuth(err) => {
                let status = StatusCode::from_u16(err.error.status()).unwrap_or(StatusCode::BAD_REQUEST);
                let mut response =
                    (status, [(header::CONTENT_TYPE, "application/json")], json!(err).to_string()).into_response();
                if err.error == OAuthErrorCode::TemporarilyUnavailable {
                    // Storage or a connector is down for now: say when to come back (RFC 9110 §10.2.3).
                    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(STORAGE_RETRY_AFTER));
                }
                if err.error == OAuthErrorCode::InvalidClient {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"portcullis\""));
                }
                response
            }
        }
    }
}

/// A 303 to `uri` with `pairs` appended to its query.
/// A path (`/dex/device/callback`, a redirect URI registered relative to this server) keeps
/// its relative form.
pub fn redirect_with(uri: &str, pairs: &[(&str, &str)]) -> Response {
    if uri.starts_with('/') {
        let mut to = uri.to_string();
        if !pairs.is_empty() {
            let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
            to.push(if uri.contains('?') { '&' } else { '?' });
            to.push_str(&query);
        }
        return Redirect::to(&to).into_response();
    }
    match Url::parse(uri) {
        Ok(mut url) => {
            if !pairs.is_empty() {
                url.query_pairs_mut().extend_pairs(pairs);
            }
            Redirect::to(url.as_str()).into_response()
        }
        Err(_) => (StatusCode::BAD_REQUEST, "bad redirect URI").into_response(),
    }
}
