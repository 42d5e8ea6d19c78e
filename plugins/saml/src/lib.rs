//! SAML 2.0 connector (`type: saml`, Dex's keys): SP-initiated login with the HTTP-POST binding
//! both ways. The AuthnRequest goes to `ssoURL` in an auto-submitted form (`login-redirect.post-form`,
//! contract 0.3.0); the IdP's Response comes back as a cross-site POST to the callback, which the
//! broker relays once through its own origin so the login's cookie binds it (web/autopost.rs).
//! The signature is verified by the host (`xmldsig`), and only the canonical bytes it returns
//! are read (`response.rs`), so wrapping, comments and unsigned additions change nothing.
//! See `docs/connectors/saml.md`.

mod response;
mod time;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use portcullis_connector_sdk::signing;
use portcullis_connector_sdk::xmldsig::{self, Target, VerifyRequest};
use portcullis_connector_sdk::{
    CallbackRequest, Connector, ConnectorError, HostError, Identity, LoginRedirect, Metadata, Scopes, config, data,
};
use serde::{Deserialize, Serialize};

use response::{ASSERTION, Asserted, Expected, PROTOCOL};

/// The config key naming the AuthnRequest signing key file (granted to `type: saml`).
const SIGNING_KEY: &str = "authnRequestSigningKey";
const DEFAULT_NAME_ID_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
/// The short forms Dex accepts for `nameIDPolicyFormat`.
const NAME_ID_FORMATS: &[&str] = &[
    "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:WindowsDomainQualifiedName",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:encrypted",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:entity",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:kerberos",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
];
/// Largest SAMLResponse accepted (base64 text), as the host caps the document.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024 * 4 / 3 + 4;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(rename = "ssoURL")]
    sso_url: String,
    #[serde(rename = "redirectURI")]
    redirect_uri: Option<String>,
    username_attr: String,
    email_attr: String,
    groups_attr: Option<String>,
    groups_delim: Option<String>,
    #[serde(default)]
    allowed_groups: Vec<String>,
    #[serde(default)]
    filter_groups: bool,
    /// Dex's `ca` is a file: the broker reads it into `caData` (plugins have no filesystem).
    ca: Option<String>,
    ca_data: Option<String>,
    #[serde(default)]
    insecure_skip_signature_validation: bool,
    entity_issuer: Option<String>,
    sso_issuer: Option<String>,
    #[serde(rename = "nameIDPolicyFormat")]
    name_id_policy_format: Option<String>,
    /// Ours, not Dex's: a PEM private key file (read by the broker, never by this plugin) that
    /// signs the AuthnRequest, for IdPs that require signed requests.
    authn_request_signing_key: Option<String>,
}

impl Config {
    fn validate(&self) -> Result<(), ConnectorError> {
        config::absolute_url("ssoURL", &self.sso_url, "https://idp.example.com/sso")?;
        if let Some(uri) = &self.redirect_uri {
            config::absolute_url("redirectURI", uri, "https://auth.example.com/dex/callback")?;
        }
        config::require("usernameAttr", &self.username_attr, "the attribute Name holding the username")?;
        config::require("emailAttr", &self.email_attr, "the attribute Name holding the email address")?;
        if self.insecure_skip_signature_validation {
            return Err(ConnectorError::Config(
                "insecureSkipSignatureValidation is refused: an unsigned SAML response proves nothing; configure \
                 the IdP's signing certificate in caData"
                    .into(),
            ));
        }
        if self.ca.is_some() {
            return Err(ConnectorError::Config(
                "ca must be read by the broker (type: saml); with plugin:, give caData (base64 PEM) instead".into(),
            ));
        }
        if self.certificates()?.is_empty() {
            return Err(ConnectorError::Config(
                "caData (or ca, a file) is required: the IdP's signing certificate, PEM (base64 in caData)".into(),
            ));
        }
        if self.authn_request_signing_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err(ConnectorError::Config("authnRequestSigningKey must be the path of a PEM private key".into()));
        }
        if self.groups_delim.as_deref() == Some("") {
            return Err(ConnectorError::Config("groupsDelim must not be empty".into()));
        }
        self.name_id_format().map(|_| ())
    }

    /// The IdP's signing certificates, one PEM block each, from `caData`.
    fn certificates(&self) -> Result<Vec<String>, ConnectorError> {
        let Some(data) = &self.ca_data else { return Ok(Vec::new()) };
        let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let pem = STANDARD
            .decode(compact)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ConnectorError::Config("caData must be base64-encoded PEM".into()))?;
        const END: &str = "-----END CERTIFICATE-----";
        let blocks: Vec<String> = pem
            .split_inclusive(END)
            .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
            .map(|b| b.trim().to_string())
            .collect();
        if blocks.is_empty() && !pem.trim().is_empty() {
            return Err(ConnectorError::Config("caData holds no PEM CERTIFICATE block".into()));
        }
        Ok(blocks)
    }

    /// `nameIDPolicyFormat` as a URN (Dex accepts the URN's last segment too).
    fn name_id_format(&self) -> Result<&str, ConnectorError> {
        let Some(format) = self.name_id_policy_format.as_deref().filter(|f| !f.is_empty()) else {
            return Ok(DEFAULT_NAME_ID_FORMAT);
        };
        if format.starts_with("urn:") {
            return Ok(format);
        }
        NAME_ID_FORMATS.iter().find(|f| f.rsplit(':').next() == Some(format)).copied().ok_or_else(|| {
            ConnectorError::Config(format!(
                "nameIDPolicyFormat {format:?} is not a NameID format; write a URN or one of \
                emailAddress, unspecified, persistent, transient, ..."
            ))
        })
    }

    fn acs_url<'a>(&'a self, callback_url: &'a str) -> &'a str {
        config::redirect_uri(self.redirect_uri.as_deref(), callback_url)
    }
}

/// The identity a refresh hands back (no upstream call: SAML has no refresh).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cached {
    user_id: String,
    username: String,
    email: String,
    groups: Vec<String>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The AuthnRequest for `id` (unsigned, as Dex sends it).
fn authn_request(config: &Config, id: &str, acs_url: &str, now: i64) -> Result<String, ConnectorError> {
    let issuer = match &config.entity_issuer {
        Some(entity) => format!("<saml:Issuer>{}</saml:Issuer>", escape(entity)),
        None => String::new(),
    };
    Ok(format!(
        "<samlp:AuthnRequest xmlns:samlp=\"{PROTOCOL}\" xmlns:saml=\"{ASSERTION}\" ID=\"{id}\" Version=\"2.0\" \
         IssueInstant=\"{instant}\" Destination=\"{dest}\" ProtocolBinding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" \
         AssertionConsumerServiceURL=\"{acs}\">{issuer}<samlp:NameIDPolicy AllowCreate=\"true\" Format=\"{format}\"/>\
         </samlp:AuthnRequest>",
        id = escape(id),
        instant = time::format(now),
        dest = escape(&config.sso_url),
        acs = escape(acs_url),
        format = escape(config.name_id_format()?),
    ))
}

/// Verifies the Response's signature, or else its Assertion's, and checks what was signed.
fn verified(config: &Config, document: &str, expected: &Expected<'_>) -> Result<Asserted, ConnectorError> {
    let request = |target| VerifyRequest {
        document: document.to_string(),
        target,
        certificates: config.certificates().unwrap_or_default(),
        algorithms: Vec::new(),
    };
    let refused = |e: HostError| match e {
        HostError::Failed(m) | HostError::Invalid(m) => {
            ConnectorError::BadRequest(format!("the SAML response's signature does not verify: {m}"))
        }
        other => ConnectorError::from(other),
    };
    match xmldsig::verify(&request(Target::Root)) {
        Ok(signed) => response::signed_response(&signed.canonical, expected),
        // The Response is not signed as a whole (or not validly): its one Assertion must be.
        Err(HostError::Failed(root)) => {
            let signed =
                xmldsig::verify(&request(Target::Element((ASSERTION.into(), "Assertion".into())))).map_err(|e| {
                    match refused(e) {
                        ConnectorError::BadRequest(m) => {
                            ConnectorError::BadRequest(format!("{m} (and the Response: {root})"))
                        }
                        other => other,
                    }
                })?;
            response::check_unsigned_status(document)?;
            response::signed_assertion(&signed.canonical, expected)
        }
        Err(e) => Err(refused(e)),
    }
}

/// The user in `asserted`, with Dex's mapping and groups rules.
fn identity(config: &Config, scopes: Scopes, asserted: &Asserted) -> Result<Cached, ConnectorError> {
    let first = |name: &str| asserted.attributes.get(name).and_then(|v| v.first()).cloned();
    let email = first(&config.email_attr).filter(|e| !e.is_empty()).ok_or_else(|| {
        ConnectorError::BadRequest(format!("the assertion has no {} attribute (emailAttr)", config.email_attr))
    })?;
    let username = first(&config.username_attr).filter(|u| !u.is_empty()).ok_or_else(|| {
        ConnectorError::BadRequest(format!("the assertion has no {} attribute (usernameAttr)", config.username_attr))
    })?;
    let mut groups = Vec::new();
    if let (true, Some(attr)) = (scopes.groups, &config.groups_attr) {
        let values = asserted
            .attributes
            .get(attr)
            .ok_or_else(|| ConnectorError::BadRequest(format!("the assertion has no {attr} attribute (groupsAttr)")))?;
        groups = match &config.groups_delim {
            Some(delim) => {
                values.first().map(|v| v.split(delim.as_str()).map(str::to_string).collect()).unwrap_or_default()
            }
            None => values.clone(),
        };
    }
    if !config.allowed_groups.is_empty() {
        // Dex: without the groups scope (or groupsAttr) this always refuses.
        let allowed: Vec<String> = groups.iter().filter(|g| config.allowed_groups.contains(g)).cloned().collect();
        if allowed.is_empty() {
            return Err(ConnectorError::Denied("user not a member of allowed groups".into()));
        }
        if config.filter_groups {
            groups = allowed;
        }
    }
    Ok(Cached { user_id: asserted.name_id.clone(), username, email, groups })
}

fn to_identity(cached: &Cached, groups: bool) -> Result<Identity, ConnectorError> {
    let groups = if groups { cached.groups.clone() } else { Vec::new() };
    Ok(Identity::new(cached.user_id.clone(), cached.username.clone())
        .email(cached.email.clone(), true)
        .groups(groups)
        .connector_data(Some(data::encode(cached)?)))
}

struct Saml;

impl Connector for Saml {
    type Config = Config;

    fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
        config.validate()?;
        Ok(Metadata::callback().with_refresh())
    }

    fn login_url(
        config: &Config,
        _scopes: Scopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        // An xs:ID starts with a letter or `_`; the broker's state need not.
        let id = format!("_{state}");
        let mut xml = authn_request(config, &id, config.acs_url(callback_url), time::now())?;
        if config.authn_request_signing_key.is_some() {
            // The broker signs with the key file; the key never enters this plugin.
            xml = signing::sign_xml(SIGNING_KEY, &xml, &id).map_err(ConnectorError::from)?;
        }
        Ok(LoginRedirect::new(config.sso_url.clone())
            .state_data(id.into_bytes())
            .post_form(vec![("SAMLRequest".into(), STANDARD.encode(xml)), ("RelayState".into(), state.into())]))
    }

    fn handle_callback(config: &Config, scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        if req.method != "POST" {
            return Err(ConnectorError::BadRequest("the SAML response must be POSTed (HTTP-POST binding)".into()));
        }
        let request_id = req
            .state_data
            .as_deref()
            .and_then(|d| std::str::from_utf8(d).ok())
            .ok_or_else(|| ConnectorError::BadRequest("this login sent no SAML request".into()))?
            .to_string();
        let encoded = req
            .form
            .iter()
            .find(|(k, _)| k == "SAMLResponse")
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ConnectorError::BadRequest("the callback has no SAMLResponse".into()))?;
        if encoded.len() > MAX_RESPONSE_BYTES {
            return Err(ConnectorError::BadRequest("the SAMLResponse is too large".into()));
        }
        let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let document = STANDARD
            .decode(compact)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ConnectorError::BadRequest("the SAMLResponse is not base64-encoded UTF-8 XML".into()))?;
        // Exclusive C14N drops comments, so a comment inside a signed NameID still verifies and
        // splits its text for parsers that read one text node: no comment is accepted at all.
        if document.contains("<!--") {
            return Err(ConnectorError::BadRequest(
                "the SAML response contains an XML comment, which is refused".into(),
            ));
        }
        let acs_url = config.acs_url(&req.callback_url);
        let expected = Expected {
            request_id: &request_id,
            acs_url,
            audience: config.entity_issuer.as_deref().unwrap_or(acs_url),
            idp_issuer: config.sso_issuer.as_deref(),
            now: time::now(),
        };
        let asserted = verified(config, &document, &expected)?;
        to_identity(&identity(config, scopes, &asserted)?, scopes.groups)
    }

    fn refresh(_config: &Config, scopes: Scopes, previous: Identity) -> Result<Identity, ConnectorError> {
        let cached: Cached = data::decode(previous.connector_data.as_deref())
            .ok_or_else(|| ConnectorError::Denied("the session holds no SAML identity; log in again".into()))?;
        to_identity(&cached, scopes.groups)
    }
}

portcullis_connector_sdk::export_connector!(Saml);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra: serde_json::Value) -> Config {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let mut c = json!({"ssoURL": "https://idp.example/sso", "usernameAttr": "name", "emailAttr": "email",
            "caData": STANDARD.encode(pem)});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(c).unwrap()
    }

    #[test]
    fn config_checks() {
        assert!(Saml::describe(&config(json!({}))).is_ok());
        for (extra, wanted) in [
            (json!({"insecureSkipSignatureValidation": true}), "insecureSkipSignatureValidation is refused"),
            (json!({"caData": null}), "caData (or ca, a file) is required"),
            (json!({"nameIDPolicyFormat": "bogus"}), "nameIDPolicyFormat \"bogus\""),
            (json!({"ssoURL": "idp"}), "ssoURL must be an absolute"),
        ] {
            let err = Saml::describe(&config(extra.clone())).unwrap_err();
            assert!(err.message().contains(wanted), "{extra}: {err:?}");
        }
        assert_eq!(
            config(json!({"nameIDPolicyFormat": "emailAddress"})).name_id_format().unwrap(),
            "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
        );
    }

    #[test]
    fn the_authn_request() {
        let c = config(json!({"entityIssuer": "https://sp.example"}));
        let xml = authn_request(&c, "_abc", "https://sp.example/callback", 1_786_010_405).unwrap();
        assert!(xml.contains("ID=\"_abc\"") && xml.contains("IssueInstant=\"2026-08-06T10:00:05Z\""), "{xml}");
        assert!(xml.contains("<saml:Issuer>https://sp.example</saml:Issuer>"));
        assert!(xml.contains("AssertionConsumerServiceURL=\"https://sp.example/callback\""));
    }

    #[test]
    fn groups_rules() {
        let asserted = Asserted {
            name_id: "u-1".into(),
            attributes: [
                ("email".to_string(), vec!["j@x".to_string()]),
                ("name".to_string(), vec!["Jane".to_string()]),
                ("groups".to_string(), vec!["eng,ops".to_string()]),
            ]
            .into_iter()
            .collect(),
        };
        let all = Scopes { offline_access: false, groups: true };
        let c = config(json!({"groupsAttr": "groups", "groupsDelim": ","}));
        assert_eq!(identity(&c, all, &asserted).unwrap().groups, ["eng", "ops"]);
        let c =
            config(json!({"groupsAttr": "groups", "groupsDelim": ",", "allowedGroups": ["ops"], "filterGroups": true}));
        assert_eq!(identity(&c, all, &asserted).unwrap().groups, ["ops"]);
        let none = Scopes { offline_access: false, groups: false };
        assert!(matches!(identity(&c, none, &asserted), Err(ConnectorError::Denied(_))), "Dex's quirk");
    }
}
