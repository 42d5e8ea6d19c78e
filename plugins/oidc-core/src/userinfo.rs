//! The userinfo endpoint, whose `sub` must be the ID token's (OIDC Core §5.3.4).

use portcullis_connector_sdk::{ConnectorError, http};
use serde_json::{Map, Value};

use crate::Provider;

/// Fetches userinfo with `access_token` and checks it is about `sub`.
pub fn fetch(provider: &Provider, access_token: &str, sub: &str) -> Result<Map<String, Value>, ConnectorError> {
    let Some(endpoint) = provider.userinfo_endpoint.as_deref() else {
        return Err(ConnectorError::Upstream(format!(
            "the discovery document of {} has no userinfo_endpoint; set getUserInfo to false",
            provider.issuer
        )));
    };
    let bearer = format!("Bearer {access_token}");
    let info: Map<String, Value> = http::get_json(endpoint, &[("authorization", &bearer)])?;
    if info.get("sub").and_then(Value::as_str) != Some(sub) {
        return Err(ConnectorError::Upstream(
            "the userinfo response is about another subject than the ID token".into(),
        ));
    }
    Ok(info)
}
