//! The authenticating proxy connector (Dex's `authproxy`): a reverse proxy in front of the
//! broker authenticates the user (Basic, Kerberos, mTLS, its own SSO) on the broker's callback
//! path and forwards the identity in headers; this connector turns those headers into an
//! identity.
//!
//! `login_url` sends the browser to the broker's own callback (`/callback/{id}?state=...`),
//! which the proxy protects. `handle_callback` reads, as Dex does, `userHeader` (required; the
//! username and the fallback of the next three), `userIDHeader`, `userNameHeader`
//! (preferred_username), `emailHeader` (always verified) and `groupHeader` (split on
//! `groupHeaderSeparator`, each item trimmed, empty items kept), then `staticGroups`.
//! There is no refresh, as in Dex: clients get no refresh tokens.
//!
//! # Security
//!
//! The headers are only as trustworthy as the proxy that set them. The broker, not this
//! connector, enforces that: it passes a `type: authproxy` connector exactly the headers its
//! config names, only on requests whose peer is one of `web.clientRemoteIP.trustedProxies`,
//! and refuses a header sent twice or not in UTF-8 (`host/src/web/proxy_auth.rs`). The proxy
//! must remove client-supplied copies of these headers on every path.

use portcullis_connector_sdk::{
    CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes, log, url,
};
use serde::Deserialize;

/// Dex's authproxy keys; any other key is refused by name. Empty means the default.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    user_header: String,
    #[serde(default, rename = "userIDHeader")]
    user_id_header: String,
    #[serde(default)]
    user_name_header: String,
    #[serde(default)]
    email_header: String,
    #[serde(default)]
    group_header: String,
    #[serde(default)]
    group_header_separator: String,
    #[serde(default)]
    static_groups: Vec<String>,
}

/// `value`, or `default` when it is empty.
fn or<'a>(value: &'a str, default: &'a str) -> &'a str {
    let value = value.trim();
    if value.is_empty() { default } else { value }
}

impl Config {
    fn user_header(&self) -> &str {
        or(&self.user_header, "X-Remote-User")
    }
    fn user_id_header(&self) -> &str {
        or(&self.user_id_header, "X-Remote-User-Id")
    }
    fn user_name_header(&self) -> &str {
        or(&self.user_name_header, "X-Remote-User-Name")
    }
    fn email_header(&self) -> &str {
        or(&self.email_header, "X-Remote-User-Email")
    }
    fn group_header(&self) -> &str {
        or(&self.group_header, "X-Remote-Group")
    }
    fn separator(&self) -> &str {
        if self.group_header_separator.is_empty() { "," } else { &self.group_header_separator }
    }

    fn validate(&self) -> Result<(), ConnectorError> {
        let names = [
            ("userHeader", self.user_header()),
            ("userIDHeader", self.user_id_header()),
            ("userNameHeader", self.user_name_header()),
            ("emailHeader", self.email_header()),
            ("groupHeader", self.group_header()),
        ];
        for (key, name) in names {
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if !name.bytes().all(token) {
                return Err(ConnectorError::Config(format!(
                    "{key}: {name:?} is not an HTTP header name; write e.g. {key}: X-Remote-User"
                )));
            }
        }
        Ok(())
    }

    /// The identity in `req`'s headers, as Dex reads them.
    fn identity(&self, req: &CallbackRequest) -> Result<Identity, ConnectorError> {
        let header = |name: &str| req.header(name).filter(|v| !v.is_empty());
        let user = header(self.user_header()).ok_or_else(|| {
            ConnectorError::BadRequest(format!(
                "the authenticating proxy sent no {} header: the broker's callback must be reached through the proxy",
                self.user_header()
            ))
        })?;
        let user_id = header(self.user_id_header()).unwrap_or(user);
        let preferred = header(self.user_name_header()).unwrap_or(user);
        let email = header(self.email_header()).unwrap_or(user);
        let mut groups: Vec<String> = match header(self.group_header()) {
            Some(list) => list.split(self.separator()).map(|g| g.trim().to_string()).collect(),
            None => Vec::new(),
        };
        groups.extend(self.static_groups.iter().cloned());
        Ok(Identity::new(user_id, user).preferred_username(preferred).email(email, true).groups(groups))
    }
}

struct AuthProxy;

impl Connector for AuthProxy {
    type Config = Config;

    fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
        config.validate()?;
        Ok(Metadata::callback())
    }

    fn login_url(
        _config: &Config,
        _scopes: Scopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        // The broker's own callback, behind the proxy; no upstream to visit.
        Ok(LoginRedirect::new(url::with_query(callback_url, &[("state", state)])))
    }

    fn handle_callback(config: &Config, _scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        let identity = config.identity(&req)?;
        log::info(&format!("proxy-authenticated user {} logged in", identity.user_id));
        // Groups are always set, as in Dex: the broker puts them in tokens only for the groups scope.
        Ok(identity)
    }
}

portcullis_connector_sdk::export_connector!(AuthProxy);

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> CallbackRequest {
        CallbackRequest {
            method: "GET".into(),
            query: vec![("state".into(), "s".into())],
            form: Vec::new(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            callback_url: "https://sso.example/callback/proxy".into(),
            state_data: None,
        }
    }

    fn config(json: serde_json::Value) -> Config {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_user_header_is_the_fallback_of_the_others() {
        let id = config(serde_json::json!({})).identity(&request(&[("x-remote-user", "jdoe@example.org")])).unwrap();
        assert_eq!(id.user_id, "jdoe@example.org");
        assert_eq!(id.username, "jdoe@example.org");
        assert_eq!(id.preferred_username.as_deref(), Some("jdoe@example.org"));
        assert_eq!((id.email.as_deref(), id.email_verified), (Some("jdoe@example.org"), true));
        assert!(id.groups.is_empty());
    }

    #[test]
    fn groups_are_split_trimmed_and_followed_by_static_groups() {
        // (separator, header, groups) — add a row to extend; empty items are kept, as in Dex.
        let rows: [(&str, &str, &[&str]); 4] = [
            ("", "eng, ops", &["eng", "ops", "staff"]),
            ("", "a,,b", &["a", "", "b", "staff"]),
            (";", " a b ; c ", &["a b", "c", "staff"]),
            (" | ", "x | y|z", &["x", "y|z", "staff"]),
        ];
        for (separator, header, want) in rows {
            let c = config(serde_json::json!({"groupHeaderSeparator": separator, "staticGroups": ["staff"]}));
            let id = c.identity(&request(&[("X-Remote-User", "u"), ("X-Remote-Group", header)])).unwrap();
            assert_eq!(id.groups, want, "{separator:?} {header:?}");
        }
    }

    #[test]
    fn configured_headers_are_read_case_insensitively_and_missing_user_is_refused() {
        let c = config(serde_json::json!({
            "userHeader": "X-Auth-User", "userIDHeader": "X-Auth-Id", "userNameHeader": "X-Auth-Name",
            "emailHeader": "X-Auth-Email", "groupHeader": "X-Auth-Groups"
        }));
        let id = c
            .identity(&request(&[
                ("x-auth-user", "Jane Doe"),
                ("X-AUTH-ID", "1001"),
                ("x-auth-name", "jane"),
                ("x-auth-email", "jane@example.org"),
                ("x-auth-groups", "admins"),
            ]))
            .unwrap();
        assert_eq!((id.user_id.as_str(), id.username.as_str()), ("1001", "Jane Doe"));
        assert_eq!(id.preferred_username.as_deref(), Some("jane"));
        assert_eq!(id.groups, ["admins"]);
        let err = c.identity(&request(&[("x-remote-user", "jane")])).unwrap_err();
        assert!(matches!(&err, ConnectorError::BadRequest(m) if m.contains("X-Auth-User")), "{err:?}");
        let err = c.identity(&request(&[("x-auth-user", "")])).unwrap_err();
        assert!(matches!(err, ConnectorError::BadRequest(_)));
    }

    #[test]
    fn config_refuses_unknown_keys_and_bad_header_names() {
        let err = serde_json::from_value::<Config>(serde_json::json!({"groupsHeader": "x"})).err().unwrap();
        assert!(err.to_string().contains("`groupsHeader`"), "{err}");
        let err = config(serde_json::json!({"userHeader": "X Remote User"})).validate().unwrap_err();
        assert!(err.message().starts_with("userHeader:"), "{}", err.message());
    }

    #[test]
    fn login_url_is_the_brokers_own_callback() {
        let r = AuthProxy::login_url(
            &config(serde_json::json!({})),
            Scopes { offline_access: false, groups: false },
            "https://sso.example/dex/callback/proxy",
            "a5p3 q",
        )
        .unwrap();
        assert_eq!(r.url, "https://sso.example/dex/callback/proxy?state=a5p3%20q");
    }
}
