//! `xmldsig` against a SAML Response whose Assertion an independent implementation (xmlsec1)
//! signed and verified, and against the wrapping, tampering and key attacks on it.

use super::*;

/// A Response with one signed Assertion (RSA-SHA256, exclusive C14N), as its signer wrote it.
const VECTOR: &str = include_str!("testdata/signed-assertion.xml");
const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

/// The signing certificate of `VECTOR`, from its KeyInfo (valid 2026-01-01 to 2036-01-01).
fn vector_certificate() -> String {
    let start = VECTOR.find("<ds:X509Certificate>").unwrap() + "<ds:X509Certificate>".len();
    let end = VECTOR.find("</ds:X509Certificate>").unwrap();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", &VECTOR[start..end])
}

/// A P-256 test certificate that signed nothing here.
const OTHER: &str = "-----BEGIN CERTIFICATE-----\nMIIBkTCCATegAwIBAgIUMUJf50fDBhiJgQ+apZ8EU8pTW9owCgYIKoZIzj0EAwIw\nHTEbMBkGA1UEAwwScG9ydGN1bGxpcy10ZXN0LWNhMCAXDTI2MTIwMjE5MDg1MFoY\nDzIxMjYxMTA4MTkwODUwWjAdMRswGQYDVQQDDBJwb3J0Y3VsbGlzLXRlc3QtY2Ew\nWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQcIfvEHgbtAi7wA0sHaWjXDS6Mwrd1\nvkF3dDZacZHCEhEORqUHrB/lVwokXB9n3jLs/Lyyfih9GbxKFj/NYlByo1MwUTAd\nBgNVHQ4EFgQU0lRiiDmaJCLwTYwc34Jpm6i/HzUwHwYDVR0jBBgwFoAU0lRiiDma\nJCLwTYwc34Jpm6i/HzUwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF\nAiBGeoRq52mpVFgjuFmGaPpKB+c/i76+xvLSt254QuIbRAIhANjjDFdwJV//dvs2\nsRI9Qqnm5RiUAZOPOWo6P+nvmOme\n-----END CERTIFICATE-----\n";

fn request(document: &str, target: Target, certificates: Vec<String>) -> VerifyRequest {
    VerifyRequest { document: document.into(), target, certificates, algorithms: Vec::new() }
}

fn assertion() -> Target {
    Target::Element((SAML.into(), "Assertion".into()))
}

fn check(document: &str, target: Target) -> Result<Verified, HostError> {
    verify(&request(document, target, vec![vector_certificate()]), &mut || Ok(()))
}

fn failure(document: &str, target: Target) -> String {
    match check(document, target) {
        Ok(v) => panic!("verified: {}", v.canonical),
        Err(HostError::Failed(m) | HostError::Invalid(m)) => m,
        Err(other) => panic!("{other:?}"),
    }
}

#[test]
fn the_vector_verifies_and_gives_the_canonical_assertion() {
    let verified = check(VECTOR, assertion()).unwrap();
    assert_eq!(verified.id, "_a1");
    assert_eq!((verified.certificate, verified.algorithm.as_str()), (0, RSA_SHA256));
    assert_eq!(verified.canonical.len(), 1669);
    assert!(verified.canonical.starts_with(
        "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_a1\" \
         IssueInstant=\"2026-08-06T10:00:05Z\" Version=\"2.0\">\n    <saml:Issuer>https://idp.example/saml</saml:Issuer>\n    \n    <saml:Subject>"
    ));
    // The signature is gone from what the connector reads; the certificate never trusted for being there.
    assert!(!verified.canonical.contains("Signature"));
    // A second trusted certificate first: the right one is found, and its index reported.
    let both = request(VECTOR, assertion(), vec![OTHER.into(), vector_certificate()]);
    assert_eq!(verify(&both, &mut || Ok(())).unwrap().certificate, 1);
}

#[test]
fn an_unsigned_target_and_stripped_signatures_fail() {
    assert!(failure(VECTOR, Target::Root).contains("the Response element is not signed"));
    let start = VECTOR.find("<ds:Signature").unwrap();
    let end = VECTOR.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let stripped = format!("{}{}", &VECTOR[..start], &VECTOR[end..]);
    assert!(failure(&stripped, assertion()).contains("is not signed"));
}

#[test]
fn a_changed_assertion_fails_its_digest() {
    let tampered = VECTOR.replace(">u-4711<", ">u-4712<");
    assert!(failure(&tampered, assertion()).contains("does not match"), "A2");
}

#[test]
fn a_comment_inside_name_id_is_not_in_what_the_connector_reads() {
    // Exclusive C14N drops comments, so this still verifies (A6); the canonical text the
    // connector parses is the whole NameID, with no comment to split it.
    let commented = VECTOR.replace(">u-4711<", ">u-47<!---->11<");
    let verified = check(&commented, assertion()).unwrap();
    assert!(verified.canonical.contains(">u-4711</saml:NameID>"));
    assert!(!verified.canonical.contains("<!--"));
}

#[test]
fn wrapping_is_refused() {
    let signed_start = VECTOR.find("  <saml:Assertion").unwrap();
    let signed_end = VECTOR.find("</saml:Assertion>").unwrap() + "</saml:Assertion>\n".len();
    let signed = &VECTOR[signed_start..signed_end];
    let forged = "  <saml:Assertion ID=\"_evil\" Version=\"2.0\"><saml:Subject><saml:NameID>admin</saml:NameID></saml:Subject></saml:Assertion>\n";
    // A3: the signed assertion moved into Extensions, a forged one where the SP looks.
    let wrapped = VECTOR.replace(signed, &format!("  <samlp:Extensions>{signed}</samlp:Extensions>\n{forged}"));
    assert!(failure(&wrapped, assertion()).contains("more than one Assertion"), "A3");
    // A4: a forged assertion with the signed one's ID before it.
    let duplicate = VECTOR.replace(signed, &format!("{}{signed}", forged.replace("_evil", "_a1")));
    assert!(failure(&duplicate, assertion()).contains("appears more than once"), "A4");
    // A5: a new root wrapping the original response.
    let root = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"{SAML}\" ID=\"_r2\"><samlp:Extensions>{VECTOR}</samlp:Extensions>{forged}</samlp:Response>"
    );
    assert!(failure(&root, Target::Root).contains("not signed"), "A5 root");
    assert!(failure(&root, assertion()).contains("more than one"), "A5 assertion");
}

#[test]
fn other_keys_weak_algorithms_and_dtds_are_refused() {
    // A8: a key that is not configured.
    let err = verify(&request(VECTOR, assertion(), vec![OTHER.into()]), &mut || Ok(())).unwrap_err();
    assert!(matches!(&err, HostError::Failed(m) if m.contains("not made by a trusted certificate")), "{err:?}");
    // A9: SHA-1 is refused unless the connector lists it.
    let sha1 = VECTOR.replace(RSA_SHA256, RSA_SHA1);
    assert!(failure(&sha1, assertion()).contains("rsa-sha1 is not accepted"));
    let listed =
        VerifyRequest { algorithms: vec![RSA_SHA1.into()], ..request(&sha1, assertion(), vec![vector_certificate()]) };
    // Listed, it gets as far as the signature (which was made with SHA-256, so fails).
    let err = verify(&listed, &mut || Ok(())).unwrap_err();
    assert!(matches!(&err, HostError::Failed(m) if m.contains("not made by a trusted")), "{err:?}");
    let dtd = format!("<!DOCTYPE r [<!ENTITY x \"y\">]>{VECTOR}");
    assert!(failure(&dtd, assertion()).contains("DOCTYPE"));
    assert!(failure("<a><b></a>", assertion()).contains("not well-formed"));
    // A reference to another element than the one signed.
    let elsewhere = VECTOR.replace("URI=\"#_a1\"", "URI=\"#_r1\"");
    assert!(failure(&elsewhere, assertion()).contains("is not the signed element's ID"));
}

#[test]
fn each_certificate_tried_is_charged() {
    let mut tried = 0;
    let both = request(VECTOR, assertion(), vec![OTHER.into(), vector_certificate()]);
    verify(&both, &mut || {
        tried += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(tried, 2);
    let err = verify(&both, &mut || Err(HostError::LimitExceeded("spent".into()))).unwrap_err();
    assert!(matches!(err, HostError::LimitExceeded(_)));
}

/// A throwaway test key and its self-signed certificate (openssl, valid for a century).
const SP_KEY: &str = include_str!("testdata/sp-key.pem");
const SP_CERT: &str = include_str!("testdata/sp-cert.pem");

#[test]
fn what_sign_enveloped_signs_verifies() {
    let key = crate::connectors::signing::SigningKey::parse(SP_KEY.as_bytes()).unwrap();
    let sign = |m: &[u8]| key.sign(m);
    let authn = "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_q1\" Version=\"2.0\">\
        <saml:Issuer xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">https://sp.example</saml:Issuer>\
        <samlp:NameIDPolicy AllowCreate=\"true\"/></samlp:AuthnRequest>";
    let signed = sign_enveloped(authn, "_q1", RSA_SHA256, &sign).unwrap();
    let issuer_end = signed.find("</saml:Issuer>").unwrap();
    assert!(signed[issuer_end..].starts_with("</saml:Issuer><ds:Signature"), "{signed}");
    // What an IdP checks, with the SP's certificate.
    let verified = verify(&request(&signed, Target::Root, vec![SP_CERT.into()]), &mut || Ok(())).unwrap();
    assert_eq!(verified.id, "_q1");
    assert!(matches!(sign_enveloped(&signed, "_q1", RSA_SHA256, &sign), Err(HostError::Invalid(_))), "already signed");
    assert!(matches!(sign_enveloped(authn, "_nope", RSA_SHA256, &sign), Err(HostError::Invalid(_))));
}
