//! The saml connector end to end: a `type: saml` block (Dex's keys), the fake IdP's signed
//! responses posted back cross-site (a client without the login cookie, as a browser sends an
//! IdP's form), relayed by the broker through its own origin, and every attack fixture of
//! `shared/upstreams-more.md` §11.10 refused.

use portcullis_tests::saml_idp::{self, ENTITY_ID, Login, SamlIdp};
use portcullis_tests::{TestBroker, browser, flow, hidden, plugin};
use reqwest::StatusCode;
use serde_json::json;

async fn broker(idp: &SamlIdp, extra: &str) -> TestBroker {
    let plugins = format!("plugins:\n  dir: \"{}\"\n", plugin("saml").parent().unwrap().display());
    let block = format!(
        r#"- type: saml
  id: saml
  name: Corporate SSO
  config:
    ssoURL: https://idp.test/sso
    usernameAttr: name
    emailAttr: email
    groupsAttr: groups
    caData: {ca}
    ssoIssuer: {ENTITY_ID}
{extra}"#,
        ca = idp.ca_data(),
    );
    TestBroker::builder().connectors(&block).extra(&plugins).start().await
}

/// Starts a login at the saml connector: the auto-submitted AuthnRequest form, its request ID
/// and RelayState.
async fn start(b: &TestBroker, web: &reqwest::Client, scopes: &str) -> (Login, String, flow::Pending) {
    let (page, pending) = flow::authorize(b, web, "saml", scopes).await;
    assert_eq!(page.status(), StatusCode::OK, "an auto-submitting form to the IdP");
    let csp = page.headers()[reqwest::header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\" action=\"https://idp.test/sso\">"), "{html}");
    let request = hidden(&html, "SAMLRequest").expect("SAMLRequest");
    let relay = hidden(&html, "RelayState").expect("RelayState");
    let login = Login {
        request_id: saml_idp::request_id(&request),
        acs_url: b.url("/callback/saml"),
        name_id: "u-4711".into(),
        attributes: vec![
            ("email".into(), vec!["jane@example.org".into()]),
            ("name".into(), vec!["Jane Doe".into()]),
            ("groups".into(), vec!["eng".into(), "ops".into()]),
        ],
        shift: 0,
    };
    (login, relay, pending)
}

/// The IdP's form posts `xml` to the ACS cross-site, so without the login cookie; the broker
/// answers with its relay page, which the browser (with its cookie) posts back.
async fn post(b: &TestBroker, web: &reqwest::Client, relay: &str, xml: &str) -> reqwest::Response {
    let cross_site = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let encoded = saml_idp::encode(xml);
    let first = cross_site
        .post(b.url("/callback/saml"))
        .form(&[("SAMLResponse", encoded.as_str()), ("RelayState", relay)])
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK, "the relay page");
    let csp = first.headers()[reqwest::header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    let html = first.text().await.unwrap();
    let fields: Vec<(String, String)> = ["SAMLResponse", "RelayState", "portcullis_relayed"]
        .iter()
        .map(|n| (n.to_string(), hidden(&html, n).unwrap_or_else(|| panic!("{n} relayed: {html}"))))
        .collect();
    assert_eq!(fields[0].1, encoded, "relayed unchanged");
    web.post(b.url("/callback/saml")).form(&fields).send().await.unwrap()
}

/// `response` refused the login: no redirect (so no code), an error page naming `why`.
async fn refused(response: reqwest::Response, what: &str, why: &str) {
    let status = response.status();
    assert!(response.headers().get(reqwest::header::LOCATION).is_none(), "{what}: redirected ({status})");
    assert!(status.is_client_error() || status.is_server_error(), "{what}: {status}");
    let page = response.text().await.unwrap().replace("&#x27;", "'");
    assert!(page.contains(why), "{what}: {status} {page}");
}

#[tokio::test]
async fn a_signed_assertion_logs_in_and_its_replay_is_refused() {
    let idp = SamlIdp::new().await;
    let b = broker(&idp, "").await;
    let web = browser();
    let (login, relay, pending) = start(&b, &web, "openid profile email groups offline_access").await;
    let response = idp.signed_assertion(&login);
    let back = post(&b, &web, &relay, &response).await;
    let code = flow::finish(&b, &web, back, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    assert_eq!(tokens.claims["email"], "jane@example.org");
    assert_eq!(tokens.claims["email_verified"], true);
    assert_eq!(tokens.claims["name"], "Jane Doe");
    assert_eq!(tokens.claims["groups"], json!(["eng", "ops"]));
    assert_eq!(tokens.claims["sub"], portcullis::oidc::sub::encode("u-4711", "saml"));
    // Refresh: no upstream call, the identity as it was.
    let refreshed = flow::refresh(&b, tokens.refresh_token().unwrap()).await;
    assert_eq!(refreshed.status(), StatusCode::OK);

    // A10: the same response posted again (its login is done) is refused.
    refused(post(&b, &web, &relay, &response).await, "replay", "unknown or has expired").await;
}

#[tokio::test]
async fn a_response_signed_as_a_whole_logs_in() {
    let idp = SamlIdp::new().await;
    let b = broker(&idp, "").await;
    let web = browser();
    let (login, relay, pending) = start(&b, &web, "openid email").await;
    let back = post(&b, &web, &relay, &idp.signed_response(&login)).await;
    let code = flow::finish(&b, &web, back, &pending).await;
    assert_eq!(flow::exchange(&b, &code, &pending).await.claims["email"], "jane@example.org");
}

#[tokio::test]
async fn attacks_do_not_log_in() {
    let idp = SamlIdp::new().await;
    let other = SamlIdp::new().await;
    let b = broker(&idp, "").await;
    type Forge<'a> = Box<dyn Fn(&Login) -> String + 'a>;
    let attacks: Vec<(&str, Forge<'_>, &str)> = vec![
        ("A3 signature wrapping", Box::new(|l| idp.wrapped(l, "admin")), "more than one Assertion"),
        ("A6 comment inside NameID", Box::new(|l| idp.comment_in_name_id(l, 3)), "contains an XML comment"),
        (
            "A7b unsigned assertion in a signed response",
            Box::new(|l| idp.unsigned_assertion_added(l, "admin")),
            "digest of the Response element does not match",
        ),
        (
            "A8 signed by another key",
            Box::new(|l| other.signed_assertion(l)),
            "not made by a trusted certificate's key",
        ),
        ("expired", Box::new(|l| idp.signed_assertion(&Login { shift: -3600, ..l.clone() })), "has expired"),
        (
            "A11 another request's response",
            Box::new(|l| idp.signed_assertion(&Login { request_id: "_other".into(), ..l.clone() })),
            "does not answer this login's request",
        ),
        (
            "A1 no signature",
            Box::new(|l| idp.response(l, &idp.assertion("_a1", l))),
            "the Assertion element is not signed",
        ),
    ];
    for (what, forge, why) in attacks {
        let web = browser();
        let (login, relay, _) = start(&b, &web, "openid email").await;
        refused(post(&b, &web, &relay, &forge(&login)).await, what, why).await;
        // The same login still completes with a genuine response: nothing was half-accepted.
        let back = post(&b, &web, &relay, &idp.signed_assertion(&login)).await;
        assert_eq!(back.status(), StatusCode::SEE_OTHER, "{what}: the genuine response afterwards");
    }
}

#[tokio::test]
async fn a_cross_site_post_without_the_cookie_is_never_processed_twice_relayed() {
    let idp = SamlIdp::new().await;
    let b = broker(&idp, "").await;
    let web = browser();
    let (login, relay, _) = start(&b, &web, "openid email").await;
    // Relayed, but from a browser without the login cookie (another browser): refused.
    let stranger = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let encoded = saml_idp::encode(&idp.signed_assertion(&login));
    let relayed = stranger
        .post(b.url("/callback/saml"))
        .form(&[("SAMLResponse", encoded.as_str()), ("RelayState", relay.as_str()), ("portcullis_relayed", "1")])
        .send()
        .await
        .unwrap();
    refused(relayed, "relayed without the cookie", "started in another browser").await;
}

#[tokio::test]
async fn a_response_replayed_before_the_login_ends_is_refused() {
    let idp = SamlIdp::new().await;
    let b = broker(&idp, "").await;
    let web = browser();
    let (login, relay, _) = start(&b, &web, "openid email").await;
    let response = idp.signed_assertion(&login);
    let first = post(&b, &web, &relay, &response).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER, "to the approval page");
    refused(post(&b, &web, &relay, &response).await, "replay at the approval step", "already been answered").await;
}

#[tokio::test]
async fn insecure_skip_signature_validation_is_refused() {
    let idp = SamlIdp::new().await;
    let config = json!({"ssoURL": "https://idp.test/sso", "usernameAttr": "name", "emailAttr": "email",
        "caData": idp.ca_data(), "insecureSkipSignatureValidation": true});
    let errors = portcullis::connectors::Registry::load(
        &portcullis_tests::engine(),
        &[portcullis_tests::spec("saml", plugin("saml"), config)],
        None,
    )
    .await
    .expect_err("refused");
    assert!(format!("{errors:?}").contains("insecureSkipSignatureValidation is refused"), "{errors:?}");
}

#[tokio::test]
async fn the_authn_request_is_signed_by_the_broker_when_a_key_is_configured() {
    let idp = SamlIdp::new().await;
    // The SP's key and the certificate the IdP would hold for it.
    let sp = SamlIdp::new().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("sp-key.pem");
    std::fs::write(&key_file, sp.private_key_pem()).unwrap();
    let b = broker(&idp, &format!("    authnRequestSigningKey: \"{}\"\n", key_file.display())).await;
    let web = browser();
    let (page, _) = flow::authorize(&b, &web, "saml", "openid email").await;
    let html = page.text().await.unwrap();
    let request = hidden(&html, "SAMLRequest").unwrap();
    let xml = String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &request).unwrap())
        .unwrap();
    assert!(xml.contains("<ds:Signature") && !xml.contains("PRIVATE KEY"), "{xml}");
    let verified = sp.verify_root(&xml).expect("the IdP verifies the request with the SP's certificate");
    assert_eq!(verified, saml_idp::request_id(&request));
}
