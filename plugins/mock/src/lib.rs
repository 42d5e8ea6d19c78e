//! The mock connector: a fixed identity and no network, for development and tests (like Dex's).
//!
//! In `callback` mode `login-url` sends the browser straight back to the broker's callback with
//! the state, and `handle-callback` returns the configured identity. In `password` mode `login`
//! accepts exactly the configured username and password.

use portcullis_connector_sdk::{
    CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes, url,
};
use serde::Deserialize;

/// The connector's `config` block.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    identity: MockIdentity,
    username: Option<String>,
    password: Option<String>,
    prompt: Option<String>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Callback,
    Password,
}

/// The identity every login returns.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MockIdentity {
    #[serde(rename = "userID")]
    user_id: String,
    username: String,
    preferred_username: Option<String>,
    email: Option<String>,
    #[serde(default = "default_true")]
    email_verified: bool,
    #[serde(default)]
    groups: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// Dex's mock user.
impl Default for MockIdentity {
    fn default() -> Self {
        MockIdentity {
            user_id: "0-385-28089-0".to_string(),
            username: "Kilgore Trout".to_string(),
            preferred_username: Some("kilgore".to_string()),
            email: Some("kilgore@kilgore.trout".to_string()),
            email_verified: true,
            groups: vec!["authors".to_string()],
        }
    }
}

const DEFAULT_PROMPT: &str = "Username";
const STATE_DATA: &[u8] = b"mock-login";
const REFRESH_DATA: &[u8] = b"mock-refresh-data";

impl Config {
    /// The configured identity, with groups only if they were asked for.
    fn identity(&self, scopes: Scopes, connector_data: Option<Vec<u8>>) -> Identity {
        let id = &self.identity;
        Identity::new(&id.user_id, &id.username)
            .maybe_preferred_username(id.preferred_username.clone())
            .maybe_email(id.email.clone(), id.email_verified)
            .groups(if scopes.groups { id.groups.clone() } else { Vec::new() })
            .connector_data(connector_data)
    }

    /// The username and password of password mode.
    fn credentials(&self) -> Result<(&str, &str), ConnectorError> {
        let missing =
            |key: &str| ConnectorError::Config(format!("mode \"password\" needs `{key}`: the {key} the mock accepts"));
        let username = self.username.as_deref().ok_or_else(|| missing("username"))?;
        let password = self.password.as_deref().ok_or_else(|| missing("password"))?;
        Ok((username, password))
    }

    fn require_mode(&self, mode: Mode, call: &str) -> Result<(), ConnectorError> {
        if self.mode == mode {
            return Ok(());
        }
        let configured = match self.mode {
            Mode::Callback => "callback",
            Mode::Password => "password",
        };
        Err(ConnectorError::Unsupported(format!("{call} is not available in mode \"{configured}\"")))
    }
}

/// Compares two byte strings without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

struct Mock;

impl Connector for Mock {
    type Config = Config;

    fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
        let metadata = match config.mode {
            Mode::Callback => Metadata::callback(),
            Mode::Password => {
                config.credentials()?;
                Metadata::password(config.prompt.as_deref().unwrap_or(DEFAULT_PROMPT))
            }
        };
        Ok(metadata.with_refresh())
    }

    fn login_url(
        config: &Config,
        _scopes: Scopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        config.require_mode(Mode::Callback, "login-url")?;
        Ok(LoginRedirect::new(url::with_query(callback_url, &[("state", state)])).state_data(STATE_DATA.to_vec()))
    }

    fn handle_callback(config: &Config, scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        config.require_mode(Mode::Callback, "handle-callback")?;
        // The mock's upstream never fails, it only declines: every error answer is a refusal.
        if let Some(error) = req.oauth_error() {
            return Err(ConnectorError::Denied(error.description.unwrap_or(error.error).to_string()));
        }
        if req.query_param("state").is_none() {
            return Err(ConnectorError::BadRequest("missing state".to_string()));
        }
        let data = scopes.offline_access.then(|| REFRESH_DATA.to_vec());
        Ok(config.identity(scopes, data))
    }

    fn login(
        config: &Config,
        scopes: Scopes,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, ConnectorError> {
        config.require_mode(Mode::Password, "login")?;
        let (want_user, want_password) = config.credentials()?;
        // Evaluate both comparisons so timing does not tell which one failed.
        let user_ok = username == want_user;
        let password_ok = constant_time_eq(password.as_bytes(), want_password.as_bytes());
        if !(user_ok & password_ok) {
            return Ok(None);
        }
        let data = scopes.offline_access.then(|| REFRESH_DATA.to_vec());
        Ok(Some(config.identity(scopes, data)))
    }

    fn refresh(config: &Config, scopes: Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
        Ok(config.identity(scopes, identity.connector_data))
    }
}

portcullis_connector_sdk::export_connector!(Mock);

#[cfg(test)]
mod tests {
    use portcullis_connector_sdk::ConnectorKind;

    use super::*;

    fn config(json: &str) -> Result<Config, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_to_dex_identity_in_callback_mode() {
        let c = config("{}").unwrap();
        assert!(c.mode == Mode::Callback);
        assert_eq!(c.identity.user_id, "0-385-28089-0");
        let meta = Mock::describe(&c).unwrap();
        assert!(matches!(meta.kind, ConnectorKind::Callback));
        assert!(meta.supports_refresh);
    }

    #[test]
    fn password_mode_needs_credentials() {
        let c = config(r#"{"mode": "password", "username": "u"}"#).unwrap();
        let err = Mock::describe(&c).unwrap_err();
        assert!(err.message().contains("password"), "{err:?}");
        let c = config(r#"{"mode": "password", "username": "u", "password": "p"}"#).unwrap();
        let meta = Mock::describe(&c).unwrap();
        assert_eq!(meta.password_prompt.as_deref(), Some("Username"));
    }

    #[test]
    fn rejects_unknown_keys() {
        assert!(config(r#"{"mdoe": "password"}"#).is_err());
        assert!(config(r#"{"identity": {"userID": "1", "username": "a", "x": 1}}"#).is_err());
    }

    #[test]
    fn login_checks_both_credentials() {
        let c = config(r#"{"mode": "password", "username": "u", "password": "pw"}"#).unwrap();
        let s = Scopes { offline_access: false, groups: true };
        assert!(Mock::login(&c, s, "u", "pw").unwrap().is_some());
        assert!(Mock::login(&c, s, "u", "pX").unwrap().is_none());
        assert!(Mock::login(&c, s, "u", "pw2").unwrap().is_none());
        assert!(Mock::login(&c, s, "v", "pw").unwrap().is_none());
    }

    #[test]
    fn callback_needs_state_and_honours_scopes() {
        let c = config("{}").unwrap();
        let req = |query: &[(&str, &str)]| CallbackRequest {
            method: "GET".into(),
            query: query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            form: Vec::new(),
            headers: Vec::new(),
            callback_url: "https://b.example/callback".into(),
            state_data: None,
        };
        let none = Scopes { offline_access: false, groups: false };
        let all = Scopes { offline_access: true, groups: true };
        assert!(matches!(Mock::handle_callback(&c, none, req(&[])), Err(ConnectorError::BadRequest(_))));
        assert!(matches!(
            Mock::handle_callback(&c, none, req(&[("error", "access_denied")])),
            Err(ConnectorError::Denied(m)) if m == "access_denied"
        ));
        let id = Mock::handle_callback(&c, none, req(&[("state", "s")])).unwrap();
        assert!(id.groups.is_empty() && id.connector_data.is_none());
        let id = Mock::handle_callback(&c, all, req(&[("state", "s")])).unwrap();
        assert_eq!(id.groups, ["authors"]);
        assert_eq!(id.connector_data.as_deref(), Some(REFRESH_DATA));
    }

    #[test]
    fn login_url_returns_to_callback_with_state() {
        let c = config("{}").unwrap();
        let s = Scopes { offline_access: false, groups: false };
        let r = Mock::login_url(&c, s, "https://b.example/cb?x=1", "a/b").unwrap();
        assert_eq!(r.url, "https://b.example/cb?x=1&state=a%2Fb");
        assert_eq!(r.state_data.as_deref(), Some(STATE_DATA));
    }
}
