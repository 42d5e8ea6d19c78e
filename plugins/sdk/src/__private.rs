//! Support code for [`export_connector!`](crate::export_connector): not part of the public API.

pub use wit_bindgen;

use crate::{CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes};

fn parse<C: Connector>(config: &str) -> Result<C::Config, ConnectorError> {
    serde_json::from_str(config).map_err(|e| ConnectorError::Config(format!("invalid connector config: {e}")))
}

pub fn describe<C: Connector>(config: &str) -> Result<Metadata, ConnectorError> {
    C::describe(&parse::<C>(config)?)
}

pub fn login_url<C: Connector>(
    config: &str,
    scopes: Scopes,
    callback_url: &str,
    state: &str,
) -> Result<LoginRedirect, ConnectorError> {
    C::login_url(&parse::<C>(config)?, scopes, callback_url, state)
}

pub fn handle_callback<C: Connector>(
    config: &str,
    scopes: Scopes,
    req: CallbackRequest,
) -> Result<Identity, ConnectorError> {
    C::handle_callback(&parse::<C>(config)?, scopes, req)
}

pub fn login<C: Connector>(
    config: &str,
    scopes: Scopes,
    username: &str,
    password: &str,
) -> Result<Option<Identity>, ConnectorError> {
    C::login(&parse::<C>(config)?, scopes, username, password)
}

pub fn refresh<C: Connector>(config: &str, scopes: Scopes, identity: Identity) -> Result<Identity, ConnectorError> {
    C::refresh(&parse::<C>(config)?, scopes, identity)
}
