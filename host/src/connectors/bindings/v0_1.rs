//! Bindings of contract 0.1.0 (`wit/0.1.0/`, frozen). Its exports convert to the broker's types
//! like every version's; its imports are the newest version's with fewer words, so their
//! records convert to and from the newest version's and the capabilities serve every version.

wasmtime::component::bindgen!({
    path: "../wit/0.1.0",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "portcullis:connector/ldap.connection": crate::connectors::capabilities::ldap::connection::LdapConnection,
    },
});

use self::portcullis::connector as old;
use super::v0_3::portcullis::connector as new;

use self::portcullis::connector::types as wit;

super::convert::broker_conversions!();

/// 0.1 has no token exchange: `supports_token_identity` is always false.
impl From<wit::Metadata> for broker::Metadata {
    fn from(m: wit::Metadata) -> Self {
        Self {
            kind: m.kind.into(),
            password_prompt: m.password_prompt.map(crate::connectors::guest_text::escape_owned),
            supports_refresh: m.supports_refresh,
            supports_token_identity: false,
        }
    }
}

/// Before 0.3 a login always starts with a redirect.
impl From<wit::LoginRedirect> for broker::LoginRedirect {
    fn from(r: wit::LoginRedirect) -> Self {
        Self { url: r.url, state_data: r.state_data, post_form: None }
    }
}

super::convert::import_conversions!();
