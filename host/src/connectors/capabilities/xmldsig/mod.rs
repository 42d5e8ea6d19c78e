//! The `xmldsig` import (contract 0.3.0): verifies the enveloped XML signature of one element
//! (a SAML Response or Assertion) against the certificates the operator configured, and returns
//! that element's canonical bytes, so a SAML connector reads only what was signed and needs no
//! cryptography of its own.
//!
//! Strict by design, against signature wrapping ([`verify`]): no DTD; unique `ID`s; the target
//! is the document element or the only element of its name; its signature is its direct child,
//! with one `Reference` to its own `ID`, the enveloped-signature and exclusive C14N transforms
//! and nothing else; SHA-1 only when the connector lists it; keys only from the trusted
//! certificates (never from `KeyInfo`), each within its validity dates.

mod c14n;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use roxmltree::{Document, Node, ParsingOptions};
use wasmtime::component::{HasData, Linker};

use super::budget::CallBudget;
use crate::connectors::bindings::HostError;
use crate::connectors::bindings::current::xmldsig::{self as wit, Host, Target, Verified, VerifyRequest};

const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
pub const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const RSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384";
const RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
pub const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
const ECDSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
/// Accepted when a request lists no algorithms: SHA-256 or stronger.
const DEFAULT_ALGORITHMS: &[&str] = &[RSA_SHA256, RSA_SHA384, RSA_SHA512, ECDSA_SHA256, ECDSA_SHA384];

/// Largest document accepted (a SAML Response is a few KiB; this leaves room for many
/// attributes and certificates).
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Nodes a document may have.
const MAX_NODES: u32 = 20_000;
/// Trusted certificates tried at most (each one charged to the call's budget).
const MAX_CERTIFICATES: usize = 8;
/// A digest shorter than this (SHA-1's 20 bytes) is refused.
const MIN_DIGEST_BYTES: usize = 20;
/// Attribute names taken as element IDs: each value must be unique in the document.
const ID_ATTRIBUTES: &[&str] = &["ID", "Id", "id", "AssertionID"];

/// The `xmldsig` import's view of a call: only its budget.
pub(crate) struct XmlDsigCtxView<'a> {
    pub(crate) budget: &'a mut CallBudget,
}

/// A store whose data can lend an [`XmlDsigCtxView`].
pub(crate) trait XmlDsigView: Send {
    fn xmldsig(&mut self) -> XmlDsigCtxView<'_>;
}

struct HasXmlDsig;

impl HasData for HasXmlDsig {
    type Data<'a> = XmlDsigCtxView<'a>;
}

/// Links the `xmldsig` import (0.3.0 and later).
pub(crate) fn add_to_linker<T: XmlDsigView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasXmlDsig>(linker, T::xmldsig)
}

impl Host for XmlDsigCtxView<'_> {
    async fn verify(&mut self, req: VerifyRequest) -> wasmtime::Result<Result<Verified, HostError>> {
        if let Err(e) = self.budget.charge("xmldsig") {
            return Ok(Err(e));
        }
        let budget = &mut *self.budget;
        Ok(verify(&req, &mut || budget.charge("xmldsig")))
    }
}

fn invalid(m: impl Into<String>) -> HostError {
    HostError::Invalid(m.into())
}

fn failed(m: impl Into<String>) -> HostError {
    HostError::Failed(m.into())
}

/// The one element child of `node` named `{DSIG}local`, refusing none or several.
fn one_child<'a, 'i>(node: Node<'a, 'i>, local: &str) -> Result<Node<'a, 'i>, HostError> {
    let mut found = node.children().filter(|c| c.is_element() && c.has_tag_name((DSIG, local)));
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(failed(format!("the signature has no ds:{local}"))),
        _ => Err(failed(format!("the signature has more than one ds:{local}"))),
    }
}

/// The one `ds:{local}` child of `node` and its `Algorithm` attribute.
fn algorithm<'a, 'i>(node: Node<'a, 'i>, local: &str) -> Result<(Node<'a, 'i>, &'a str), HostError> {
    let child = one_child(node, local)?;
    let alg = child.attribute("Algorithm").ok_or_else(|| failed(format!("ds:{local} names no Algorithm")))?;
    Ok((child, alg))
}

/// The `PrefixList` of an `ec:InclusiveNamespaces` child of a C14N method or transform; any
/// other child is refused.
fn inclusive_prefixes(method: Node<'_, '_>) -> Result<Vec<String>, HostError> {
    let mut prefixes = Vec::new();
    for child in method.children().filter(Node::is_element) {
        if !child.has_tag_name((EXC_C14N, "InclusiveNamespaces")) {
            return Err(failed(format!("unexpected <{}> in a canonicalisation method", child.tag_name().name())));
        }
        let list = child.attribute("PrefixList").unwrap_or_default();
        prefixes.extend(list.split_whitespace().map(str::to_string));
    }
    Ok(prefixes)
}

/// Base64 text of an element, whitespace (line breaks in long values) ignored.
fn base64_of(node: Node<'_, '_>, what: &str) -> Result<Vec<u8>, HostError> {
    let text: String = node
        .descendants()
        .filter(Node::is_text)
        .flat_map(|t| t.text().unwrap_or_default().chars())
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(text).map_err(|_| failed(format!("{what} is not base64")))
}

fn id_of<'a>(node: Node<'a, '_>) -> Option<&'a str> {
    ID_ATTRIBUTES.iter().find_map(|name| node.attribute(*name))
}

/// Verifies `req`; the pure part of the import, testable without a store. `before_key` runs
/// before each trusted certificate is tried (the import charges the budget there).
pub fn verify(
    req: &VerifyRequest,
    before_key: &mut dyn FnMut() -> Result<(), HostError>,
) -> Result<Verified, HostError> {
    let accepted: Vec<&str> = if req.algorithms.is_empty() {
        DEFAULT_ALGORITHMS.to_vec()
    } else {
        req.algorithms.iter().map(String::as_str).collect()
    };
    if let Some(unknown) = accepted.iter().find(|a| *a != &RSA_SHA1 && !DEFAULT_ALGORITHMS.contains(a)) {
        return Err(invalid(format!("signature algorithm {unknown} is not supported")));
    }
    let sha1_allowed = accepted.contains(&RSA_SHA1);
    if req.document.len() > MAX_DOCUMENT_BYTES {
        return Err(HostError::TooLarge(format!(
            "the document is {} bytes, more than the {MAX_DOCUMENT_BYTES} accepted",
            req.document.len()
        )));
    }
    if req.document.contains("<!DOCTYPE") || req.document.contains("<!ENTITY") {
        return Err(invalid("the document has a DOCTYPE or entity declarations, which are refused"));
    }
    let options = ParsingOptions { allow_dtd: false, nodes_limit: MAX_NODES, ..ParsingOptions::default() };
    let doc = Document::parse_with_options(&req.document, options)
        .map_err(|e| invalid(format!("the document is not well-formed XML: {e}")))?;

    // Unique IDs: a second element with the signed element's ID is how wrapping hides.
    let mut ids = std::collections::BTreeSet::new();
    for node in doc.descendants().filter(Node::is_element) {
        for name in ID_ATTRIBUTES {
            if let Some(id) = node.attribute(*name)
                && !ids.insert(id)
            {
                return Err(failed(format!("the ID {id:?} appears more than once in the document")));
            }
        }
    }

    let target = match &req.target {
        Target::Root => doc.root_element(),
        Target::Element((ns, local)) => {
            let mut found =
                doc.descendants().filter(|n| n.is_element() && n.has_tag_name((ns.as_str(), local.as_str())));
            match (found.next(), found.next()) {
                (Some(one), None) => one,
                (None, _) => return Err(failed(format!("the document has no {local} element"))),
                _ => return Err(failed(format!("the document has more than one {local} element"))),
            }
        }
    };
    let name = target.tag_name().name();
    let id = id_of(target).ok_or_else(|| failed(format!("the {name} element has no ID")))?;
    let signature = {
        let mut found = target.children().filter(|c| c.is_element() && c.has_tag_name((DSIG, "Signature")));
        match (found.next(), found.next()) {
            (Some(one), None) => one,
            (None, _) => return Err(failed(format!("the {name} element is not signed"))),
            _ => return Err(failed(format!("the {name} element has more than one signature"))),
        }
    };
    for child in signature.children().filter(Node::is_element) {
        let local = child.tag_name().name();
        if child.tag_name().namespace() != Some(DSIG) || !matches!(local, "SignedInfo" | "SignatureValue" | "KeyInfo") {
            return Err(failed(format!("the signature has an unexpected <{local}> element")));
        }
    }
    let signed_info = one_child(signature, "SignedInfo")?;
    let signature_value = base64_of(one_child(signature, "SignatureValue")?, "SignatureValue")?;
    let (c14n_method, c14n_alg) = algorithm(signed_info, "CanonicalizationMethod")?;
    if c14n_alg != EXC_C14N {
        return Err(failed(format!("canonicalisation {c14n_alg} is not accepted; only {EXC_C14N}")));
    }
    let signed_info_prefixes = inclusive_prefixes(c14n_method)?;
    let (_, sig_alg) = algorithm(signed_info, "SignatureMethod")?;
    if !accepted.contains(&sig_alg) {
        return Err(failed(format!("signature algorithm {sig_alg} is not accepted")));
    }
    for child in signed_info.children().filter(Node::is_element) {
        let local = child.tag_name().name();
        if child.tag_name().namespace() != Some(DSIG)
            || !matches!(local, "CanonicalizationMethod" | "SignatureMethod" | "Reference")
        {
            return Err(failed(format!("ds:SignedInfo has an unexpected <{local}> element")));
        }
    }
    let reference = one_child(signed_info, "Reference")?;
    let uri = reference.attribute("URI").unwrap_or_default();
    if uri != format!("#{id}") {
        return Err(failed(format!("the signature's reference {uri:?} is not the signed element's ID {id:?}")));
    }
    let transforms = one_child(reference, "Transforms")?;
    let steps: Vec<Node<'_, '_>> = transforms.children().filter(Node::is_element).collect();
    let algs: Vec<&str> = steps.iter().map(|t| t.attribute("Algorithm").unwrap_or_default()).collect();
    if steps.iter().any(|t| !t.has_tag_name((DSIG, "Transform"))) || algs != [ENVELOPED, EXC_C14N] {
        return Err(failed("the reference's transforms must be enveloped-signature then exclusive C14N"));
    }
    let reference_prefixes = match steps.get(1) {
        Some(t) => inclusive_prefixes(*t)?,
        None => Vec::new(),
    };
    let (_, digest_alg) = algorithm(reference, "DigestMethod")?;
    let digest_value = base64_of(one_child(reference, "DigestValue")?, "DigestValue")?;

    // The signature over the canonical SignedInfo first, then the digest it vouches for.
    let canonical_signed_info = c14n::canonicalize(signed_info, None, &signed_info_prefixes);
    let certificate = check_signature(req, sig_alg, canonical_signed_info.as_bytes(), &signature_value, before_key)?;
    let canonical = c14n::canonicalize(target, Some(signature.id()), &reference_prefixes);
    let digest = digest(digest_alg, sha1_allowed, canonical.as_bytes())?;
    if digest_value.len() < MIN_DIGEST_BYTES || !ring_eq(&digest, &digest_value) {
        return Err(failed(format!("the digest of the {name} element does not match: it was changed after signing")));
    }
    Ok(Verified { canonical, id: id.to_string(), certificate, algorithm: sig_alg.to_string() })
}

fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn digest(alg: &str, sha1_allowed: bool, data: &[u8]) -> Result<Vec<u8>, HostError> {
    use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, SHA384, SHA512};
    let algorithm = match alg {
        "http://www.w3.org/2001/04/xmlenc#sha256" => &SHA256,
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => &SHA384,
        "http://www.w3.org/2001/04/xmlenc#sha512" => &SHA512,
        "http://www.w3.org/2000/09/xmldsig#sha1" if sha1_allowed => &SHA1_FOR_LEGACY_USE_ONLY,
        other => return Err(failed(format!("digest algorithm {other} is not accepted"))),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

/// The index of the trusted certificate whose key made `signature` over `message`.
fn check_signature(
    req: &VerifyRequest,
    alg: &str,
    message: &[u8],
    signature: &[u8],
    before_key: &mut dyn FnMut() -> Result<(), HostError>,
) -> Result<u32, HostError> {
    use ring::signature as sig;
    let verifier: &dyn sig::VerificationAlgorithm = match alg {
        RSA_SHA1 => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        RSA_SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        RSA_SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        RSA_SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        ECDSA_SHA256 => &sig::ECDSA_P256_SHA256_FIXED,
        ECDSA_SHA384 => &sig::ECDSA_P384_SHA384_FIXED,
        other => return Err(failed(format!("signature algorithm {other} is not accepted"))),
    };
    if req.certificates.is_empty() {
        return Err(invalid("no trusted certificate was given"));
    }
    let mut expired = 0;
    for (index, pem) in req.certificates.iter().enumerate().take(MAX_CERTIFICATES) {
        before_key()?;
        let ders: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(format!("trusted certificate {index} is not PEM: {e}")))?;
        let der = ders.first().ok_or_else(|| invalid(format!("trusted certificate {index} holds no CERTIFICATE")))?;
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| invalid(format!("trusted certificate {index} is not X.509: {e}")))?;
        if !cert.validity().is_valid() {
            expired += 1;
            continue;
        }
        let key = sig::UnparsedPublicKey::new(verifier, cert.public_key().subject_public_key.data.as_ref());
        if key.verify(message, signature).is_ok() {
            return u32::try_from(index).map_err(|_| invalid("too many certificates"));
        }
    }
    if expired > 0 && expired == req.certificates.len().min(MAX_CERTIFICATES) {
        return Err(failed("every trusted certificate is outside its validity dates"));
    }
    Err(failed("the signature was not made by a trusted certificate's key"))
}

/// Makes the signature value of the bytes it is given (a key's `sign`).
pub type Signer<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, HostError> + 'a;

/// `document` with an enveloped signature of its element whose ID is `id`: exclusive C14N,
/// SHA-256, `algorithm` (a SignatureMethod URI) made by `sign`; inserted after the element's
/// `Issuer` child, or as its first child. The pure part of `signing.sign-xml`.
pub fn sign_enveloped(document: &str, id: &str, algorithm: &str, sign: &Signer<'_>) -> Result<String, HostError> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(HostError::TooLarge(format!("the document is more than the {MAX_DOCUMENT_BYTES} bytes accepted")));
    }
    let options = ParsingOptions { allow_dtd: false, nodes_limit: MAX_NODES, ..ParsingOptions::default() };
    let doc = Document::parse_with_options(document, options)
        .map_err(|e| invalid(format!("the document is not well-formed XML: {e}")))?;
    let mut found = doc.descendants().filter(|n| n.is_element() && id_of(*n) == Some(id));
    let element = match (found.next(), found.next()) {
        (Some(one), None) => one,
        (None, _) => return Err(invalid(format!("the document has no element with ID {id:?}"))),
        _ => return Err(invalid(format!("the ID {id:?} appears more than once in the document"))),
    };
    if element.children().any(|c| c.is_element() && c.has_tag_name((DSIG, "Signature"))) {
        return Err(invalid(format!("the element {id:?} is already signed")));
    }
    let at = match element.children().find(|c| c.is_element() && c.tag_name().name() == "Issuer") {
        Some(issuer) => issuer.range().end,
        None => element
            .first_child()
            .map(|c| c.range().start)
            .ok_or_else(|| invalid(format!("the element {id:?} is empty; nothing to place the signature in")))?,
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, c14n::canonicalize(element, None, &[]).as_bytes());
    let signed_info = format!(
        "<ds:SignedInfo xmlns:ds=\"{DSIG}\"><ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"/>\
         <ds:SignatureMethod Algorithm=\"{algorithm}\"/><ds:Reference URI=\"#{id}\"><ds:Transforms>\
         <ds:Transform Algorithm=\"{ENVELOPED}\"/><ds:Transform Algorithm=\"{EXC_C14N}\"/></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue>{}</ds:DigestValue>\
         </ds:Reference></ds:SignedInfo>",
        STANDARD.encode(digest.as_ref())
    );
    let info_doc = Document::parse(&signed_info).map_err(|e| invalid(format!("SignedInfo: {e}")))?;
    let value = sign(c14n::canonicalize(info_doc.root_element(), None, &[]).as_bytes())?;
    let signature = format!(
        "<ds:Signature xmlns:ds=\"{DSIG}\">{signed_info}<ds:SignatureValue>{}</ds:SignatureValue></ds:Signature>",
        STANDARD.encode(value)
    );
    let (head, tail) = document.split_at_checked(at).ok_or_else(|| invalid("bad insertion point"))?;
    Ok(format!("{head}{signature}{tail}"))
}

/// The exclusive canonical form of the element of `document` whose ID is `id` (the document
/// element when `None`), without its direct `ds:Signature` child: what an enveloped signature's
/// digest covers. For test IdPs that sign what this module verifies; `None` if there is no such
/// element or the document is not XML.
#[doc(hidden)]
pub fn canonical(document: &str, id: Option<&str>) -> Option<String> {
    let doc = Document::parse(document).ok()?;
    let element = match id {
        None => doc.root_element(),
        Some(id) => doc.descendants().find(|n| n.is_element() && id_of(*n) == Some(id))?,
    };
    let signature = element.children().find(|c| c.is_element() && c.has_tag_name((DSIG, "Signature")));
    Some(c14n::canonicalize(element, signature.map(|s| s.id()), &[]))
}

#[cfg(test)]
mod tests;
