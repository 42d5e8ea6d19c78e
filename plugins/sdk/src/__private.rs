//! Support code for [`export_connector!`](crate::export_connector): not part of the public API.

pub use wit_bindgen;

/// The raw records the exports exchange with the host.
pub mod wit {
    pub use crate::bindings::portcullis::connector::types::{Identity, LoginRedirect, Metadata};
}

use crate::{CallbackRequest, Connector, ConnectorError, Scopes};

/// The connector's config, or what is wrong with it named by its key path (`teams[2]`,
/// `claimMapping.groups`): the host wrote the JSON from the operator's YAML, so serde_json's
/// line and column would point into text nobody wrote.
fn parse<C: Connector>(config: &str) -> Result<C::Config, ConnectorError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(config)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let message = message.rfind(" at line ").map_or(message.as_str(), |at| &message[..at]);
        ConnectorError::Config(match path.as_str() {
            "." => format!("invalid connector config: {message}"),
            path => format!("invalid connector config: {path}: {message}"),
        })
    })
}

pub fn describe<C: Connector>(config: &str) -> Result<wit::Metadata, ConnectorError> {
    C::describe(&parse::<C>(config)?).map(Into::into)
}

pub fn login_url<C: Connector>(
    config: &str,
    scopes: Scopes,
    callback_url: &str,
    state: &str,
) -> Result<wit::LoginRedirect, ConnectorError> {
    C::login_url(&parse::<C>(config)?, scopes, callback_url, state).map(Into::into)
}

pub fn handle_callback<C: Connector>(
    config: &str,
    scopes: Scopes,
    req: CallbackRequest,
) -> Result<wit::Identity, ConnectorError> {
    C::handle_callback(&parse::<C>(config)?, scopes, req).map(Into::into)
}

pub fn login<C: Connector>(
    config: &str,
    scopes: Scopes,
    username: &str,
    password: &str,
) -> Result<Option<wit::Identity>, ConnectorError> {
    C::login(&parse::<C>(config)?, scopes, username, password).map(|found| found.map(Into::into))
}

pub fn refresh<C: Connector>(
    config: &str,
    scopes: Scopes,
    identity: wit::Identity,
) -> Result<wit::Identity, ConnectorError> {
    C::refresh(&parse::<C>(config)?, scopes, identity.into()).map(Into::into)
}

pub fn token_identity<C: Connector>(
    config: &str,
    scopes: Scopes,
    subject_token_type: &str,
    subject_token: &str,
) -> Result<wit::Identity, ConnectorError> {
    C::token_identity(&parse::<C>(config)?, scopes, subject_token_type, subject_token).map(Into::into)
}
