//! The discovery document (`/.well-known/openid-configuration`).

use serde_json::{Value, json};

use crate::config::{GrantType, Validated};

/// The grants served and enabled, in Dex's order (sorted by name).
pub fn grant_types(config: &Validated) -> Vec<&'static str> {
    let mut grants: Vec<&str> =
        config.grant_types.iter().filter(|g| g.served()).map(|g| GrantType::as_str(*g)).collect();
    grants.sort_unstable();
    grants
}

/// The document for `issuer` (exactly as configured) signing with `alg`.
pub fn document(issuer: &str, alg: &str, config: &Validated) -> Value {
    let base = issuer.trim_end_matches('/');
    let mut methods = vec!["S256"];
    if config.pkce_plain {
        methods.push("plain");
    }
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/auth"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/keys"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "introspection_endpoint": format!("{base}/token/introspect"),
        "revocation_endpoint": format!("{base}/token/revoke"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "end_session_endpoint": format!("{base}/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types(config),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
        "code_challenge_methods_supported": methods,
        "scopes_supported": ["openid", "email", "groups", "profile", "offline_access", "federated:id"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "claims_supported": [
            "iss", "sub", "aud", "iat", "exp", "azp", "nonce", "at_hash", "auth_time", "email",
            "email_verified", "groups", "name", "preferred_username", "federated_claims", "sid"
        ],
        "prompt_values_supported": ["none", "login", "consent"],
        "request_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    });
    // RFC 8414 §2: only where dynamic registration is on.
    if config.registration.is_some() {
        doc["registration_endpoint"] = json!(format!("{base}/register"));
    }
    // RFC 8628 §4: only where the device grant is served.
    if config.grant_types.contains(&GrantType::DeviceCode) {
        doc["device_authorization_endpoint"] = json!(format!("{base}/device/code"));
    }
    doc
}
