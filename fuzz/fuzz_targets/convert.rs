//! The WIT ↔ broker conversions of guest data (`connectors/bindings/convert.rs`, the oldest and
//! the newest contract versions): whatever a guest returns converts without panicking, an identity survives the
//! round trip, and no refusal or prompt text keeps a control character.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use portcullis::connectors::bindings::{v0_1, v0_3};
use portcullis::connectors::{Identity, Metadata, Refusal};

fn identity(u: &mut Unstructured<'_>) -> arbitrary::Result<Identity> {
    Ok(Identity {
        user_id: u.arbitrary()?,
        username: u.arbitrary()?,
        preferred_username: u.arbitrary()?,
        email: u.arbitrary()?,
        email_verified: u.arbitrary()?,
        groups: u.arbitrary()?,
        connector_data: u.arbitrary()?,
    })
}

fn is_safe(text: &str) -> bool {
    !text.chars().any(|c| {
        c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

fn refusal_text(r: &Refusal) -> &str {
    match r {
        Refusal::Config(m)
        | Refusal::Upstream(m)
        | Refusal::Denied(m)
        | Refusal::BadRequest(m)
        | Refusal::Unsupported(m) => m,
        _ => "",
    }
}

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    use v0_1::portcullis::connector::types as old;
    use v0_3::portcullis::connector::types as new;
    let broker = identity(u)?;
    let round: Identity = new::Identity::from(broker.clone()).into();
    assert_eq!(round, broker, "0.3 identity round trip");
    let round: Identity = old::Identity::from(broker.clone()).into();
    assert_eq!(round, broker, "0.1 identity round trip");

    let text: String = u.arbitrary()?;
    let refusal: Refusal = match u.int_in_range(0..=4)? {
        0 => new::ConnectorError::Config(text),
        1 => new::ConnectorError::Upstream(text),
        2 => new::ConnectorError::Denied(text),
        3 => new::ConnectorError::BadRequest(text),
        _ => new::ConnectorError::Unsupported(text),
    }
    .into();
    assert!(is_safe(refusal_text(&refusal)), "{refusal:?}");
    let text: String = u.arbitrary()?;
    let refusal: Refusal = old::ConnectorError::Upstream(text).into();
    assert!(is_safe(refusal_text(&refusal)), "{refusal:?}");

    let prompt: Option<String> = u.arbitrary()?;
    let metadata: Metadata = new::Metadata {
        kind: if u.arbitrary()? { new::ConnectorKind::Callback } else { new::ConnectorKind::Password },
        password_prompt: prompt,
        supports_refresh: u.arbitrary()?,
        supports_token_identity: u.arbitrary()?,
    }
    .into();
    assert!(metadata.password_prompt.as_deref().is_none_or(is_safe), "{metadata:?}");
    let _: portcullis::connectors::LoginRedirect =
        new::LoginRedirect { url: u.arbitrary()?, state_data: u.arbitrary()?, post_form: u.arbitrary()? }.into();
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
