//! Bindings of contract 0.2.0 (`wit/0.2.0/`, frozen): 0.1.0 plus `metadata.supports-token-identity`
//! and the `token-exchange` export. Its imports are the newest version's in another package
//! version, so their records convert to and from the newest's and the capabilities serve both.

wasmtime::component::bindgen!({
    path: "../wit/0.2.0",
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
/// Before 0.3 a login always starts with a redirect.
impl From<wit::LoginRedirect> for broker::LoginRedirect {
    fn from(r: wit::LoginRedirect) -> Self {
        Self { url: r.url, state_data: r.state_data, post_form: None }
    }
}

super::convert::import_conversions!();

impl From<wit::Metadata> for broker::Metadata {
    fn from(m: wit::Metadata) -> Self {
        Self {
            kind: m.kind.into(),
            password_prompt: m.password_prompt.map(crate::connectors::guest_text::escape_owned),
            supports_refresh: m.supports_refresh,
            supports_token_identity: m.supports_token_identity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal's text reaches logs and pages: its control characters are escaped where it
    /// enters the host (audit finding F7).
    #[test]
    fn refusals_and_prompts_from_the_guest_are_escaped() {
        let refusal: broker::Refusal = wit::ConnectorError::Denied("no\nINFO forged\r\u{1b}[0m".into()).into();
        assert_eq!(refusal, broker::Refusal::Denied(r"no\nINFO forged\r\u{1b}[0m".into()));
        let metadata: broker::Metadata = wit::Metadata {
            kind: wit::ConnectorKind::Password,
            password_prompt: Some("User\nname".into()),
            supports_refresh: false,
            supports_token_identity: false,
        }
        .into();
        assert_eq!(metadata.password_prompt.as_deref(), Some(r"User\nname"));
    }
}
