//! Hostile fixture: `login-url` spins forever, so the host's CPU deadline (epoch/fuel) must stop it.

use portcullis_connector_sdk::{Connector, ConnectorError, LoginRedirect, Metadata, Scopes};

struct HostileLoop;

impl Connector for HostileLoop {
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
        let mut counter: u64 = 0;
        loop {
            counter = core::hint::black_box(counter.wrapping_add(1));
        }
    }
}

portcullis_connector_sdk::export_connector!(HostileLoop);
