//! Server-rendered pages (minijinja, auto-escaped), error pages, and the security headers
//! every response carries.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Value;

use crate::config::Validated;

/// The stylesheet, served at `{prefix}/static/main.css` unless `frontend.dir` has one.
pub use crate::config::frontend::STYLESHEET;

/// Values every page needs.
pub fn base_context(config: &Validated, prefix: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("brand", Value::from(config.frontend.issuer.clone().unwrap_or_else(|| "Portcullis".into()))),
        ("logo_url", Value::from(config.frontend.logo_url.clone())),
        ("prefix", Value::from(prefix.to_string())),
        ("theme", Value::from(config.pages.theme.scheme())),
        ("theme_css", Value::from(matches!(config.pages.theme, crate::config::frontend::Theme::Folder(_)))),
        ("extra", Value::from_serialize(&config.pages.extra)),
    ]
}

/// Renders `template` with `context` (plus the base values) as an HTML response.
pub fn render(
    config: &Validated,
    prefix: &str,
    status: StatusCode,
    template: &str,
    context: Vec<(&'static str, Value)>,
) -> Response {
    let mut all = base_context(config, prefix);
    all.extend(context);
    let ctx: std::collections::BTreeMap<&str, Value> = all.into_iter().collect();
    match config.pages.env().get_template(template).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!("cannot render {template}: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error rendering the page").into_response()
        }
    }
}

/// Security headers for every response; `no-store` everywhere (pages carry per-login tokens,
/// API responses carry tokens).
pub fn security_headers(headers: &mut HeaderMap, https: bool) {
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::CACHE_CONTROL, "no-store");
    set(headers, header::PRAGMA, "no-cache");
    if https {
        set(headers, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
}
