//! `connector-data` and `state-data` as JSON: what a connector keeps between calls (an upstream
//! token, a PKCE verifier), encoded and decoded the one way every shipped connector does it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ConnectorError;

/// `value` as JSON bytes, for [`Identity::connector_data`](crate::Identity::connector_data) or
/// [`LoginRedirect::state_data`](crate::LoginRedirect::state_data).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ConnectorError> {
    serde_json::to_vec(value).map_err(|e| ConnectorError::Upstream(format!("cannot encode connector data: {e}")))
}

/// What [`encode`] wrote, or `None` when there is nothing or it does not decode (data stored
/// by an older version of the connector, say).
pub fn decode<T: DeserializeOwned>(bytes: Option<&[u8]>) -> Option<T> {
    bytes.and_then(|b| serde_json::from_slice(b).ok())
}
