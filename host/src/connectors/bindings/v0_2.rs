//! Bindings of contract 0.2.0 (`wit/0.2.0/`), the newest: what the capabilities implement and
//! the SDK targets. 0.1.0 plus `metadata.supports-token-identity` and the `token-exchange` export.

wasmtime::component::bindgen!({
    path: "../wit/0.2.0",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "portcullis:connector/ldap.connection": crate::connectors::capabilities::ldap::connection::LdapConnection,
    },
});

use self::portcullis::connector::types as wit;

super::convert::broker_conversions!();

impl From<wit::Metadata> for broker::Metadata {
    fn from(m: wit::Metadata) -> Self {
        Self {
            kind: m.kind.into(),
            password_prompt: m.password_prompt,
            supports_refresh: m.supports_refresh,
            supports_token_identity: m.supports_token_identity,
        }
    }
}
