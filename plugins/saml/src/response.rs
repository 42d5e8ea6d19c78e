//! The SP's checks on a SAML Response, in the order of `shared/upstreams-more.md` §11.9, on the
//! canonical bytes the host's `xmldsig` import verified: the signed Response (then its one
//! Assertion), or the signed Assertion alone. Nothing here reads the document as received,
//! except the Status of a response whose Assertion alone is signed (unauthenticated, so it
//! can only refuse a login, never allow one).

use std::collections::BTreeMap;

use portcullis_connector_sdk::ConnectorError;
use roxmltree::{Document, Node};

pub const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
/// Clock drift allowed on every time check, as Dex allows.
pub const DRIFT: i64 = 30;

/// What the checks need from the config and the login.
pub struct Expected<'a> {
    /// The AuthnRequest ID this login sent (`InResponseTo`).
    pub request_id: &'a str,
    /// `redirectURI`: `Destination` and `Recipient`.
    pub acs_url: &'a str,
    /// `entityIssuer`, else `redirectURI`.
    pub audience: &'a str,
    /// `ssoIssuer`: the IdP's entity ID, when configured.
    pub idp_issuer: Option<&'a str>,
    pub now: i64,
}

/// What a verified assertion says of the user.
#[derive(Debug, Default, PartialEq)]
pub struct Asserted {
    pub name_id: String,
    /// Attribute `Name` → its values (each the whole text of its `AttributeValue`).
    pub attributes: BTreeMap<String, Vec<String>>,
}

fn bad(m: impl Into<String>) -> ConnectorError {
    ConnectorError::BadRequest(m.into())
}

/// The whole text content of `node` (every text descendant: a comment cannot split it, and
/// there are none in canonical bytes anyway).
fn text(node: Node<'_, '_>) -> String {
    node.descendants().filter(Node::is_text).filter_map(|t| t.text()).collect()
}

fn children<'a, 'i>(node: Node<'a, 'i>, ns: &'a str, local: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| c.is_element() && c.has_tag_name((ns, local)))
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &'a str, local: &'a str) -> Option<Node<'a, 'i>> {
    children(node, ns, local).next()
}

fn time_of(node: Node<'_, '_>, name: &str) -> Result<Option<i64>, ConnectorError> {
    match node.attribute(name) {
        None => Ok(None),
        Some(v) => super::time::parse(v)
            .map(Some)
            .ok_or_else(|| bad(format!("{name} {v:?} is not a UTC time (YYYY-MM-DDTHH:MM:SSZ)"))),
    }
}

fn parse(xml: &str) -> Result<Document<'_>, ConnectorError> {
    Document::parse(xml).map_err(|e| bad(format!("the SAML response is not well-formed XML: {e}")))
}

/// The status of a Response element: Success, or the refusal naming the IdP's status.
pub fn check_status(response: Node<'_, '_>) -> Result<(), ConnectorError> {
    let code = child(response, PROTOCOL, "Status").and_then(|s| child(s, PROTOCOL, "StatusCode"));
    let value = code.and_then(|c| c.attribute("Value")).unwrap_or_default();
    if value == SUCCESS {
        return Ok(());
    }
    let last = |v: &str| v.rsplit(':').next().unwrap_or_default().to_string();
    let nested = code.and_then(|c| child(c, PROTOCOL, "StatusCode")).and_then(|c| c.attribute("Value")).map(last);
    let message = child(response, PROTOCOL, "Status")
        .and_then(|s| child(s, PROTOCOL, "StatusMessage"))
        .map(text)
        .unwrap_or_default();
    let what = match nested {
        Some(n) => format!("{}/{n}", last(value)),
        None => last(value),
    };
    Err(ConnectorError::Denied(format!("the identity provider answered {what}: {message}")))
}

/// The Status of a document whose Assertion alone was signed (the Response itself is not
/// authenticated: this can only refuse).
pub fn check_unsigned_status(document: &str) -> Result<(), ConnectorError> {
    let doc = parse(document)?;
    let root = doc.root_element();
    if !root.has_tag_name((PROTOCOL, "Response")) {
        return Err(bad("the SAML document is not a Response"));
    }
    check_status(root)
}

/// Checks a verified Response (canonical bytes) and returns its one Assertion's claims.
pub fn signed_response(canonical: &str, expected: &Expected<'_>) -> Result<Asserted, ConnectorError> {
    let doc = parse(canonical)?;
    let response = doc.root_element();
    if !response.has_tag_name((PROTOCOL, "Response")) {
        return Err(bad("the signed element is not a SAML Response"));
    }
    if let (Some(want), Some(issuer)) = (expected.idp_issuer, child(response, ASSERTION, "Issuer")) {
        let got = text(issuer);
        if got.trim() != want {
            return Err(bad(format!("the response's Issuer {got:?} is not ssoIssuer {want:?}")));
        }
    }
    if response.attribute("InResponseTo") != Some(expected.request_id) {
        return Err(bad("the response does not answer this login's request (InResponseTo)"));
    }
    if let Some(destination) = response.attribute("Destination")
        && destination != expected.acs_url
    {
        return Err(bad(format!("the response's Destination {destination:?} is not redirectURI")));
    }
    check_status(response)?;
    if child(response, ASSERTION, "EncryptedAssertion").is_some() {
        return Err(bad("the response has no assertion (encrypted assertions are not supported)"));
    }
    let mut assertions = children(response, ASSERTION, "Assertion");
    match (assertions.next(), assertions.next()) {
        (Some(one), None) => assertion(one, expected),
        (None, _) => Err(bad("the response has no assertion")),
        _ => Err(bad("the response has more than one assertion")),
    }
}

/// Checks a verified Assertion (canonical bytes) and returns its claims.
pub fn signed_assertion(canonical: &str, expected: &Expected<'_>) -> Result<Asserted, ConnectorError> {
    let doc = parse(canonical)?;
    let root = doc.root_element();
    if !root.has_tag_name((ASSERTION, "Assertion")) {
        return Err(bad("the signed element is not a SAML Assertion"));
    }
    assertion(root, expected)
}

fn assertion(a: Node<'_, '_>, expected: &Expected<'_>) -> Result<Asserted, ConnectorError> {
    let now = expected.now;
    if let Some(want) = expected.idp_issuer {
        let got = child(a, ASSERTION, "Issuer").map(text).unwrap_or_default();
        if got.trim() != want {
            return Err(bad(format!("the assertion's Issuer {got:?} is not ssoIssuer {want:?}")));
        }
    }
    let subject = child(a, ASSERTION, "Subject").ok_or_else(|| bad("the assertion has no Subject"))?;
    let name_id = child(subject, ASSERTION, "NameID").map(text).unwrap_or_default();
    if name_id.trim().is_empty() {
        return Err(bad("the assertion has no NameID"));
    }
    // One bearer confirmation for this request, in time, to this ACS.
    let mut confirmed = Err(bad("the assertion has no bearer SubjectConfirmation for this login's request"));
    for confirmation in children(subject, ASSERTION, "SubjectConfirmation") {
        if confirmation.attribute("Method") != Some(BEARER) {
            continue;
        }
        let Some(data) = child(confirmation, ASSERTION, "SubjectConfirmationData") else {
            confirmed = Err(bad("the bearer SubjectConfirmation has no SubjectConfirmationData"));
            continue;
        };
        if data.attribute("InResponseTo") != Some(expected.request_id) {
            confirmed = Err(bad("the assertion does not answer this login's request (InResponseTo)"));
            continue;
        }
        let Some(not_on_or_after) = time_of(data, "NotOnOrAfter")? else {
            confirmed = Err(bad("the bearer SubjectConfirmationData has no NotOnOrAfter"));
            continue;
        };
        if now >= not_on_or_after + DRIFT {
            confirmed = Err(bad("the assertion has expired (SubjectConfirmationData NotOnOrAfter)"));
            continue;
        }
        if time_of(data, "NotBefore")?.is_some_and(|t| now + DRIFT < t) {
            confirmed = Err(bad("the assertion is not valid yet (SubjectConfirmationData NotBefore)"));
            continue;
        }
        if let Some(recipient) = data.attribute("Recipient")
            && recipient != expected.acs_url
        {
            confirmed = Err(bad(format!("the assertion's Recipient {recipient:?} is not redirectURI")));
            continue;
        }
        confirmed = Ok(());
        break;
    }
    confirmed?;
    if let Some(conditions) = child(a, ASSERTION, "Conditions") {
        if time_of(conditions, "NotBefore")?.is_some_and(|t| now + DRIFT < t) {
            return Err(bad("the assertion is not valid yet (Conditions NotBefore)"));
        }
        if time_of(conditions, "NotOnOrAfter")?.is_some_and(|t| now >= t + DRIFT) {
            return Err(bad("the assertion has expired (Conditions NotOnOrAfter)"));
        }
        for restriction in children(conditions, ASSERTION, "AudienceRestriction") {
            if !children(restriction, ASSERTION, "Audience").any(|aud| text(aud).trim() == expected.audience) {
                return Err(bad(format!(
                    "the assertion is not for this service provider (Audience {:?})",
                    expected.audience
                )));
            }
        }
    }
    let authn = child(a, ASSERTION, "AuthnStatement").ok_or_else(|| bad("the assertion has no AuthnStatement"))?;
    if time_of(authn, "SessionNotOnOrAfter")?.is_some_and(|t| now >= t + DRIFT) {
        return Err(bad("the identity provider's session has ended (SessionNotOnOrAfter)"));
    }
    let statement =
        child(a, ASSERTION, "AttributeStatement").ok_or_else(|| bad("the assertion has no AttributeStatement"))?;
    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for attribute in children(statement, ASSERTION, "Attribute") {
        let Some(name) = attribute.attribute("Name") else { continue };
        let values = children(attribute, ASSERTION, "AttributeValue").map(text);
        attributes.entry(name.to_string()).or_default().extend(values);
    }
    Ok(Asserted { name_id, attributes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Assertion of `shared/upstreams-more.md` §11.7 as the host returns it verified (its
    /// signature removed): ID `_a1`, for request `a5p3kq2v7xw6r4t9m8n1c0b2d3`.
    const ASSERTION_XML: &str = include_str!("testdata/assertion.xml");
    const REQUEST: &str = "a5p3kq2v7xw6r4t9m8n1c0b2d3";
    const ACS: &str = "https://sso.example/callback";

    fn expected(now: &str) -> Expected<'static> {
        Expected {
            request_id: REQUEST,
            acs_url: ACS,
            audience: ACS,
            idp_issuer: Some("https://idp.example/saml"),
            now: crate::time::parse(now).unwrap(),
        }
    }

    #[test]
    fn the_vector_maps_as_dex_maps_it() {
        let got = signed_assertion(ASSERTION_XML, &expected("2026-08-06T10:00:10Z")).unwrap();
        assert_eq!(got.name_id, "u-4711");
        assert_eq!(got.attributes["email"], ["jane@example.org"]);
        assert_eq!(got.attributes["name"], ["Jane Doe"]);
        assert_eq!(got.attributes["groups"], ["eng", "ops"]);
    }

    /// Each row: a change to the verified assertion (or the clock) and the refusal it must give.
    #[test]
    fn rows() {
        let at = "2026-08-06T10:00:10Z";
        for (from, to, now, wanted) in [
            ("", "", "2026-08-06T10:06:00Z", "has expired (SubjectConfirmationData NotOnOrAfter)"),
            ("", "", "2026-08-06T09:58:00Z", "not valid yet (Conditions NotBefore)"),
            (REQUEST, "another-request", at, "does not answer this login's request"),
            ("Recipient=\"https://sso.example/callback\"", "Recipient=\"https://evil.example/acs\"", at, "Recipient"),
            (
                "<saml:Audience>https://sso.example/callback",
                "<saml:Audience>https://other.example",
                at,
                "not for this service provider",
            ),
            ("cm:bearer", "cm:holder-of-key", at, "no bearer SubjectConfirmation"),
            ("NotOnOrAfter=\"2026-08-06T10:05:05Z\" Recipient", "Recipient", at, "has no NotOnOrAfter"),
            ("2026-08-06T10:05:05Z\" Recipient", "2026-08-06T10:05:05+00:00\" Recipient", at, "is not a UTC time"),
            ("https://idp.example/saml</saml:Issuer>", "https://evil.example</saml:Issuer>", at, "is not ssoIssuer"),
            (">u-4711<", "><", at, "has no NameID"),
            ("saml:AuthnStatement", "saml:OtherStatement", at, "has no AuthnStatement"),
            ("AttributeStatement>", "Statement>", at, "has no AttributeStatement"),
        ] {
            let xml = ASSERTION_XML.replace(from, to);
            assert!(from.is_empty() || xml != ASSERTION_XML, "{from} is not in the vector");
            let err = signed_assertion(&xml, &expected(now)).unwrap_err();
            assert!(err.message().contains(wanted), "{from} -> {to} at {now}: {err:?}");
        }
    }

    #[test]
    fn a_signed_response_is_checked_before_its_assertion() {
        let response = |attrs: &str, status: &str| {
            format!(
                "<samlp:Response xmlns:samlp=\"{PROTOCOL}\" ID=\"_r1\" {attrs}><saml:Issuer xmlns:saml=\"{ASSERTION}\">\
                 https://idp.example/saml</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"{status}\">\
                 <samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:AuthnFailed\"></samlp:StatusCode>\
                 </samlp:StatusCode><samlp:StatusMessage>bad password</samlp:StatusMessage></samlp:Status>{ASSERTION_XML}</samlp:Response>"
            )
        };
        let ok = format!("InResponseTo=\"{REQUEST}\" Destination=\"{ACS}\"");
        let at = expected("2026-08-06T10:00:10Z");
        assert_eq!(signed_response(&response(&ok, SUCCESS), &at).unwrap().name_id, "u-4711");
        let other = response(&ok, SUCCESS).replacen("https://idp.example/saml", "https://evil.example", 1);
        assert!(signed_response(&other, &at).unwrap_err().message().contains("response's Issuer"));
        let err = signed_response(&response(&ok, "urn:oasis:names:tc:SAML:2.0:status:Requester"), &at).unwrap_err();
        assert!(
            matches!(&err, ConnectorError::Denied(m) if m == "the identity provider answered Requester/AuthnFailed: bad password"),
            "{err:?}"
        );
        let err = signed_response(&response("InResponseTo=\"x\"", SUCCESS), &at).unwrap_err();
        assert!(err.message().contains("InResponseTo"), "{err:?}");
        let wrong = format!("InResponseTo=\"{REQUEST}\" Destination=\"https://evil.example\"");
        assert!(signed_response(&response(&wrong, SUCCESS), &at).unwrap_err().message().contains("Destination"));
        let two = response(&ok, SUCCESS).replace("</samlp:Response>", &format!("{ASSERTION_XML}</samlp:Response>"));
        assert!(signed_response(&two, &at).unwrap_err().message().contains("more than one assertion"));
    }
}
