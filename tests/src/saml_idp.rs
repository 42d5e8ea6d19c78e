//! A fake SAML 2.0 identity provider: it answers an AuthnRequest with a Response whose Assertion
//! (or the whole Response) it signs as IdPs do (enveloped XML-DSig, RSA-SHA256, exclusive C14N,
//! its certificate in `KeyInfo`), with a throwaway RSA key and an rcgen self-signed certificate,
//! and it emits the attack fixtures of `shared/upstreams-more.md` §11.10 built from a valid
//! response: wrapping, a comment inside NameID, an unsigned assertion added to a signed
//! response, another key's signature, expired assertions. Mostly a set of functions (the SP
//! never calls an IdP: the browser carries everything, and most tests play the browser), plus
//! [`SamlIdp::serve`], the IdP's SSO endpoint for a real browser.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis::connectors::capabilities::xmldsig::canonical;
use portcullis::connectors::signing::SigningKey;
use portcullis::storage::{MemoryBackend, Store};

pub const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
/// The IdP's entity ID (`Issuer`).
pub const ENTITY_ID: &str = "https://idp.test/saml";

/// A signing identity: an RSA key and its self-signed certificate.
pub struct SamlIdp {
    key: SigningKey,
    private_key_pem: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The certificate's DER, base64 (as `KeyInfo` carries it).
    certificate_b64: String,
}

/// What one response says.
#[derive(Clone, Debug)]
pub struct Login {
    /// The AuthnRequest ID answered (`InResponseTo`).
    pub request_id: String,
    /// The ACS URL (`Destination`, `Recipient`, and the audience).
    pub acs_url: String,
    pub name_id: String,
    /// Attribute name and values.
    pub attributes: Vec<(String, Vec<String>)>,
    /// Seconds added to now for every time the assertion carries (negative: in the past).
    pub shift: i64,
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn instant(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

impl SamlIdp {
    /// A new IdP with a fresh RSA-2048 key.
    pub async fn new() -> Self {
        let store = Store::new(Arc::new(MemoryBackend::new()));
        let keys = portcullis::keys::Keys::new(
            store.clone(),
            portcullis::config::SigningAlgorithm::Rs256,
            Duration::from_secs(86400),
            Duration::ZERO,
        );
        keys.refresh(portcullis::broker::now()).await.expect("IdP key");
        let (set, _) = store.keys(portcullis::broker::now()).await.expect("keys").expect("a key set");
        let pem = set.current.private_pem;
        let key_pair = rcgen::KeyPair::from_pem(&pem).expect("rcgen reads the RSA key");
        let params = rcgen::CertificateParams::new(vec!["idp.test".to_string()]).expect("params");
        let cert = params.self_signed(&key_pair).expect("self-signed certificate");
        Self {
            key: SigningKey::parse(pem.as_bytes()).expect("the key signs"),
            private_key_pem: pem.clone(),
            certificate_pem: cert.pem(),
            certificate_b64: STANDARD.encode(cert.der()),
        }
    }

    /// The private key, PKCS#8 PEM (for a test that plays the SP's key file).
    pub fn private_key_pem(&self) -> &str {
        &self.private_key_pem
    }

    /// Verifies the enveloped signature of `document`'s root with this identity's certificate,
    /// as an IdP checks a signed AuthnRequest; the signed element's ID.
    pub fn verify_root(&self, document: &str) -> Result<String, String> {
        use portcullis::connectors::bindings::v0_3::portcullis::connector::xmldsig::{Target, VerifyRequest};
        let request = VerifyRequest {
            document: document.into(),
            target: Target::Root,
            certificates: vec![self.certificate_pem.clone()],
            algorithms: Vec::new(),
        };
        portcullis::connectors::capabilities::xmldsig::verify(&request, &mut || Ok(()))
            .map(|v| v.id)
            .map_err(|e| format!("{e:?}"))
    }

    /// `caData` for this IdP: its certificate, base64 PEM.
    pub fn ca_data(&self) -> String {
        STANDARD.encode(&self.certificate_pem)
    }

    /// The enveloped signature of the element `id` of `xml`, inserted right after that
    /// element's `saml:Issuer` (the schema's place for it).
    pub fn sign(&self, xml: &str, id: &str) -> String {
        let digest = portcullis::oidc::pkce::sha256(canonical(xml, Some(id)).expect("element to sign").as_bytes());
        let signed_info = format!(
            "<ds:SignedInfo xmlns:ds=\"{DSIG}\"><ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
             <ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/><ds:Reference URI=\"#{id}\">\
             <ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
             <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>\
             <ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue>{}</ds:DigestValue>\
             </ds:Reference></ds:SignedInfo>",
            STANDARD.encode(digest)
        );
        let canonical_info = canonical(&signed_info, None).expect("SignedInfo");
        let value = STANDARD.encode(self.key.sign(canonical_info.as_bytes()).expect("sign"));
        let signature = format!(
            "<ds:Signature xmlns:ds=\"{DSIG}\">{signed_info}<ds:SignatureValue>{value}</ds:SignatureValue><ds:KeyInfo>\
             <ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>",
            self.certificate_b64
        );
        // After the Issuer of the element with this ID.
        let start = xml.find(&format!("ID=\"{id}\"")).expect("the element");
        let issuer_end = xml[start..].find("</saml:Issuer>").expect("its Issuer") + start + "</saml:Issuer>".len();
        format!("{}{signature}{}", &xml[..issuer_end], &xml[issuer_end..])
    }

    /// The unsigned Assertion `id` for `login`.
    pub fn assertion(&self, id: &str, login: &Login) -> String {
        let now = portcullis::broker::now() + login.shift;
        let attributes: String = login
            .attributes
            .iter()
            .map(|(name, values)| {
                let values: String = values
                    .iter()
                    .map(|v| format!("<saml:AttributeValue>{}</saml:AttributeValue>", xml_escape(v)))
                    .collect();
                format!("<saml:Attribute Name=\"{}\">{values}</saml:Attribute>", xml_escape(name))
            })
            .collect();
        format!(
            "<saml:Assertion xmlns:saml=\"{ASSERTION}\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now_}\">\
             <saml:Issuer>{ENTITY_ID}</saml:Issuer><saml:Subject>\
             <saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\">{name_id}</saml:NameID>\
             <saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">\
             <saml:SubjectConfirmationData InResponseTo=\"{req}\" NotOnOrAfter=\"{later}\" Recipient=\"{acs}\"/>\
             </saml:SubjectConfirmation></saml:Subject>\
             <saml:Conditions NotBefore=\"{before}\" NotOnOrAfter=\"{later}\"><saml:AudienceRestriction>\
             <saml:Audience>{acs}</saml:Audience></saml:AudienceRestriction></saml:Conditions>\
             <saml:AuthnStatement AuthnInstant=\"{now_}\" SessionIndex=\"_s1\"><saml:AuthnContext>\
             <saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>\
             </saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement>{attributes}</saml:AttributeStatement>\
             </saml:Assertion>",
            now_ = instant(now),
            before = instant(now - 30),
            later = instant(now + 300),
            name_id = xml_escape(&login.name_id),
            req = xml_escape(&login.request_id),
            acs = xml_escape(&login.acs_url),
        )
    }

    /// A Response `_r1` wrapping `inner` (assertions and more).
    pub fn response(&self, login: &Login, inner: &str) -> String {
        format!(
            "<samlp:Response xmlns:samlp=\"{PROTOCOL}\" xmlns:saml=\"{ASSERTION}\" ID=\"_r1\" Version=\"2.0\" \
             IssueInstant=\"{now}\" Destination=\"{acs}\" InResponseTo=\"{req}\"><saml:Issuer>{ENTITY_ID}</saml:Issuer>\
             <samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>\
             {inner}</samlp:Response>",
            now = instant(portcullis::broker::now() + login.shift),
            acs = xml_escape(&login.acs_url),
            req = xml_escape(&login.request_id),
        )
    }

    /// The usual answer: an unsigned Response around a signed Assertion `_a1`.
    pub fn signed_assertion(&self, login: &Login) -> String {
        let assertion = self.sign(&self.assertion("_a1", login), "_a1");
        self.response(login, &assertion)
    }

    /// A Response signed as a whole, its Assertion unsigned (A7a: legitimate).
    pub fn signed_response(&self, login: &Login) -> String {
        self.sign(&self.response(login, &self.assertion("_a1", login)), "_r1")
    }

    /// A3: the signed assertion moved into `samlp:Extensions`, a forged one for `name_id`
    /// where the SP looks.
    pub fn wrapped(&self, login: &Login, name_id: &str) -> String {
        let signed = self.sign(&self.assertion("_a1", login), "_a1");
        let forged = self.assertion("_evil", &Login { name_id: name_id.into(), ..login.clone() });
        self.response(login, &format!("<samlp:Extensions>{signed}</samlp:Extensions>{forged}"))
    }

    /// A6: the IdP signs `name_id`; a comment is inserted into it afterwards, at `at`.
    pub fn comment_in_name_id(&self, login: &Login, at: usize) -> String {
        let signed = self.signed_assertion(login);
        let escaped = xml_escape(&login.name_id);
        let (head, tail) = escaped.split_at(at.min(escaped.len()));
        signed.replacen(&format!(">{escaped}<"), &format!(">{head}<!---->{tail}<"), 1)
    }

    /// A7b: a validly signed Response with an unsigned Assertion for `name_id` appended.
    pub fn unsigned_assertion_added(&self, login: &Login, name_id: &str) -> String {
        let signed = self.signed_response(login);
        let forged = self.assertion("_evil", &Login { name_id: name_id.into(), ..login.clone() });
        signed.replacen("</samlp:Response>", &format!("{forged}</samlp:Response>"), 1)
    }
}

/// `SAMLResponse` form value for `xml`.
pub fn encode(xml: &str) -> String {
    STANDARD.encode(xml)
}

/// The `ID` of a base64 `SAMLRequest` (an AuthnRequest).
pub fn request_id(saml_request: &str) -> String {
    let xml = String::from_utf8(STANDARD.decode(saml_request).expect("base64")).expect("UTF-8");
    let start = xml.find(" ID=\"").expect("an ID") + 5;
    xml[start..].split('"').next().expect("quoted").to_string()
}

impl SamlIdp {
    /// Serves the IdP's SSO endpoint on `127.0.0.1`, named `http://localhost:PORT/sso` so that a
    /// browser takes it for another site than a broker on `127.0.0.1`: a POSTed AuthnRequest is
    /// answered at once (the user "signs in") with an auto-submitting form POSTing a signed
    /// response for `name_id` and `attributes` to the request's ACS URL, cross-site.
    pub async fn serve(self: Arc<Self>, name_id: &str, attributes: Vec<(String, Vec<String>)>) -> String {
        use axum::extract::{Form, State};
        use axum::response::Html;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://localhost:{}/sso", listener.local_addr().expect("addr").port());
        let user = (name_id.to_string(), attributes);
        let sso = move |State(idp): State<Arc<SamlIdp>>, Form(form): Form<Vec<(String, String)>>| {
            let (name_id, attributes) = user.clone();
            async move {
                let field = |n: &str| form.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default();
                let request = field("SAMLRequest");
                let xml = String::from_utf8(STANDARD.decode(&request).expect("base64")).expect("UTF-8");
                let acs_start = xml.find("AssertionConsumerServiceURL=\"").expect("an ACS URL") + 29;
                let acs_url = xml[acs_start..].split('"').next().expect("quoted").to_string();
                let login =
                    Login { request_id: request_id(&request), acs_url: acs_url.clone(), name_id, attributes, shift: 0 };
                let response = encode(&idp.signed_assertion(&login));
                Html(format!(
                    "<!DOCTYPE html><html lang=\"en\"><head><title>IdP</title></head><body>\
                     <form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"SAMLResponse\" value=\"{response}\">\
                     <input type=\"hidden\" name=\"RelayState\" value=\"{}\"></form>\
                     <script>document.forms[0].submit();</script></body></html>",
                    xml_escape(&acs_url),
                    xml_escape(&field("RelayState")),
                ))
            }
        };
        let router = axum::Router::new().route("/sso", axum::routing::post(sso)).with_state(self);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        url
    }
}
