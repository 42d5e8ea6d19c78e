//! Test fixture: a connector built against the frozen `wit/0.1.0` contract with wit-bindgen
//! alone (no SDK), as a connector released before 0.2.0 was. The host must keep loading it and
//! logging users in through it, unchanged.

wit_bindgen::generate!({
    path: "../../../wit/0.1.0",
    world: "plugin",
});

use exports::portcullis::connector::connector::Guest;
use portcullis::connector::log::{Level, log};
use portcullis::connector::types::{
    CallbackRequest, ConnectorError, ConnectorKind, Identity, LoginRedirect, Metadata, Scopes,
};

struct V0_1;

fn unsupported(call: &str) -> ConnectorError {
    ConnectorError::Unsupported(format!("{call} is not implemented"))
}

impl Guest for V0_1 {
    fn describe(_config: String) -> Result<Metadata, ConnectorError> {
        Ok(Metadata { kind: ConnectorKind::Callback, password_prompt: None, supports_refresh: false })
    }

    fn login_url(
        _config: String,
        _s: Scopes,
        callback_url: String,
        state: String,
    ) -> Result<LoginRedirect, ConnectorError> {
        let separator = if callback_url.contains('?') { '&' } else { '?' };
        let state: String = state
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
            .collect();
        Ok(LoginRedirect { url: format!("{callback_url}{separator}state={state}"), state_data: Some(b"v0.1".to_vec()) })
    }

    fn handle_callback(_config: String, s: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        if req.state_data.as_deref() != Some(b"v0.1".as_slice()) {
            return Err(ConnectorError::BadRequest("the state data did not come back".into()));
        }
        log(Level::Info, "contract 0.1.0 connector logged a user in");
        Ok(Identity {
            user_id: "v0.1-user".into(),
            username: "Old Timer".into(),
            preferred_username: Some("oldtimer".into()),
            email: Some("old@example.com".into()),
            email_verified: true,
            groups: if s.groups { vec!["veterans".into()] } else { Vec::new() },
            connector_data: None,
        })
    }

    fn login(
        _config: String,
        _s: Scopes,
        _username: String,
        _password: String,
    ) -> Result<Option<Identity>, ConnectorError> {
        Err(unsupported("login"))
    }

    fn refresh(_config: String, _s: Scopes, _id: Identity) -> Result<Identity, ConnectorError> {
        Err(unsupported("refresh"))
    }
}

export!(V0_1);
