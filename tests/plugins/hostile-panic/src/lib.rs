//! Hostile fixture: `login-url` panics, so the host must turn the trap into an error and keep serving.

use portcullis_connector_sdk::{Connector, ConnectorError, LoginRedirect, Metadata, Scopes};

struct Hostile;

impl Connector for Hostile {
    type Config = serde::de::IgnoredAny;

    fn describe(_config: &Self::Config) -> Result<Metadata, ConnectorError> {
        Ok(Metadata::callback())
    }

    fn login_url(
        _config: &Self::Config,
        _scopes: Scopes,
        _callback_url: &str,
        _state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        panic!("hostile plugin panicked on purpose")
    }
}

portcullis_connector_sdk::export_connector!(Hostile);
