//! Host-side bindings generated from `wit/connector.wit`; nothing outside `connectors` sees them.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "portcullis:connector/ldap.connection": super::capabilities::ldap::LdapConnection,
    },
});

/// The contract version this host implements (the `package` line of `wit/connector.wit`).
pub const WIT_VERSION: &str = "0.1.0";
/// The WIT package every connector world belongs to.
pub const WIT_PACKAGE: &str = "portcullis:connector";
