//! Hostile fixture: `login-url` allocates 1 MiB blocks without bound, so the host's memory limit must stop it.

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
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xA5; 1 << 20]);
            core::hint::black_box(&hoard);
        }
    }
}

portcullis_connector_sdk::export_connector!(Hostile);
