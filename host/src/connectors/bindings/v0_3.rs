//! Bindings of contract 0.3.0 (`wit/0.3.0/`), the newest: what the capabilities implement and
//! the SDK targets. 0.2.0 plus the `signing` and `xmldsig` imports.

wasmtime::component::bindgen!({
    path: "../wit/0.3.0",
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
            password_prompt: m.password_prompt.map(crate::connectors::guest_text::escape_owned),
            supports_refresh: m.supports_refresh,
            supports_token_identity: m.supports_token_identity,
        }
    }
}

impl From<wit::LoginRedirect> for broker::LoginRedirect {
    fn from(r: wit::LoginRedirect) -> Self {
        Self { url: r.url, state_data: r.state_data, post_form: r.post_form }
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
