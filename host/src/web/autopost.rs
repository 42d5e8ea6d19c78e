//! Auto-submitting form pages, for logins whose steps are cross-site POSTs (SAML's HTTP-POST
//! binding): the page that POSTs a connector's `post-form` fields to its upstream, and the relay
//! that turns the upstream's cross-site POST to a callback into a same-site one.
//!
//! # Why the relay
//! The login-binding cookie is `SameSite=Lax` (web/cookies.rs), so a browser does not send it on
//! a cross-site POST, and `flow::load_request` would refuse the callback as another browser's.
//! Instead of weakening the cookie (`SameSite=None` would send it on every cross-site request),
//! a POST callback that arrives **without** the cookie gets this page, which re-POSTs the same
//! fields to the same URL from the broker's own origin, with [`RELAYED`] added: that request is
//! same-site, carries the cookie, and is checked exactly as any callback is. Nothing is read or
//! stored on the first request; a relayed request still without the cookie is refused.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use sha2::Digest as _;

/// The form field marking a relayed callback (never passed to the connector).
pub const RELAYED: &str = "portcullis_relayed";

/// The page's only script; the CSP allows it by its hash and nothing else.
const SCRIPT: &str = "document.forms[0].submit();";

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page POSTing `fields` to `action` (`None`: back to the page's own URL) as soon as it loads;
/// without JavaScript, a button does it. `same_origin` limits the form to the broker's origin.
pub fn page(action: Option<&str>, fields: &[(String, String)], same_origin: bool) -> Response {
    let action = action.map(|a| format!(" action=\"{}\"", escape(a))).unwrap_or_default();
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v)))
        .collect();
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Continuing…</title></head>\
         <body><form method=\"post\"{action}>{inputs}<noscript><p>JavaScript is off: press the button to \
         continue.</p><button type=\"submit\">Continue</button></noscript></form><script>{SCRIPT}</script></body></html>\n"
    );
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(SCRIPT.as_bytes()));
    let form_action = if same_origin { " form-action 'self';" } else { "" };
    let csp =
        format!("default-src 'none'; script-src 'sha256-{hash}';{form_action} frame-ancestors 'none'; base-uri 'none'");
    let mut response = (StatusCode::OK, Html(html)).into_response();
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_escaped_and_the_script_is_the_only_one_allowed() {
        let response = page(Some("https://idp.example/sso?a=1&b=2"), &[("x\"".into(), "<script>".into())], true);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
        assert!(csp.contains("script-src 'sha256-") && csp.contains("form-action 'self'"), "{csp}");
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(SCRIPT.as_bytes()));
        assert!(csp.contains(&hash));
        assert_eq!(escape("a&b<c>\"'"), "a&amp;b&lt;c&gt;&quot;&#39;");
    }
}
