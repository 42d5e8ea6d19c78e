//! Token exchange (RFC 8693) with Dex's parameters through the `oidc` connector, on two chained
//! brokers: the upstream logs a user in through its mock connector, and its ID token or access
//! token is exchanged at the downstream for the downstream's own access token or ID token. Then
//! every refusal: unknown connector, connectors that cannot exchange (0.2 without support, 0.1),
//! tampered, expired, foreign and misaddressed tokens, wrong token types, the grant disabled.

use std::str::FromStr as _;

use openidconnect::core::{CoreClient, CoreIdToken, CoreProviderMetadata};
use openidconnect::{ClientId, IssuerUrl, Nonce};
use portcullis::oidc::sub;
use portcullis_tests::logs::{Format, LogCapture};
use portcullis_tests::{TestBroker, browser, fixture, flow, location};
use reqwest::StatusCode;
use serde_json::{Value, json};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The upstream (`BASE_CONFIG`: the mock connector, `example-app`) and a downstream whose
/// connector `upstream` is the oidc connector on it, registered there as `example-app` and
/// reading userinfo; `no-userinfo` is the same without `getUserInfo`, `old` a 0.1 component.
/// `extra` is more top-level YAML for the downstream.
async fn chain(extra: &str) -> (TestBroker, TestBroker) {
    let up = TestBroker::builder().start().await;
    let block = |id: &str, get_user_info: bool| {
        format!(
            r#"- plugin: "{{plugins}}/oidc.wasm"
  id: {id}
  name: Upstream Portcullis
  allowedHosts: ["{base}"]
  config:
    issuer: "{issuer}"
    clientID: {client}
    clientSecret: {secret}
    scopes: [openid, profile, email, groups]
    insecureEnableGroups: true
    getUserInfo: {get_user_info}
"#,
            base = up.base,
            issuer = up.issuer,
            client = flow::CLIENT,
            secret = flow::SECRET,
        )
    };
    let connectors = format!(
        "{}{}- plugin: \"{}\"\n  id: old\n  name: Old\n",
        block("upstream", true),
        block("no-userinfo", false),
        fixture("contract-v0-1").display()
    );
    let down = TestBroker::builder().connectors(&connectors).extra(extra).start().await;
    (up, down)
}

/// Logs Kilgore in at `up` through its mock connector as `example-app`; the token response.
async fn upstream_tokens(up: &TestBroker) -> Value {
    let web = browser();
    let (page, pending) = flow::authorize(up, &web, "mock", "openid profile email groups").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER, "the mock sends the browser to the callback");
    let callback = location(&page, &up.base).unwrap();
    let logged_in = web.get(&callback).send().await.unwrap();
    let code = flow::finish(up, &web, logged_in, &pending).await;
    flow::exchange(up, &code, &pending).await.json
}

/// `POST /token` at `b` as `example-app`: a token exchange of `token` (of type `kind`) through
/// `connector`, plus `more` parameters.
async fn exchange(
    b: &TestBroker,
    connector: &str,
    token: &str,
    kind: &str,
    more: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = vec![
        ("grant_type", GRANT),
        ("connector_id", connector),
        ("subject_token", token),
        ("subject_token_type", kind),
    ];
    form.extend_from_slice(more);
    let response = flow::token(b, &form).await;
    (response.status(), response.json().await.unwrap())
}

/// Asserts a refusal with `error` whose description contains `what`.
fn refused((status, body): (StatusCode, Value), error: &str, what: &str, case: &str) {
    assert_eq!(body["error"], error, "{case}: {body}");
    let expected =
        if error == "temporarily_unavailable" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::BAD_REQUEST };
    assert_eq!(status, expected, "{case}: {body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(description.contains(what), "{case}: {description}");
}

/// The downstream subject of the upstream's Kilgore.
fn kilgore() -> String {
    sub::encode(&sub::encode("0-385-28089-0", "mock"), "upstream")
}

/// The upstream's ID token and access token, each exchanged for a downstream access token (the
/// default) and ID token: the downstream's issuer, subject and audience, the user's claims
/// (through userinfo for the access token), no refresh token; the access token works at the
/// downstream's userinfo. Discovery advertises the grant.
#[tokio::test]
async fn upstream_id_and_access_tokens_become_ours() {
    let (up, down) = chain("").await;
    let doc: Value = reqwest::get(down.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert!(doc["grant_types_supported"].as_array().unwrap().contains(&GRANT.into()), "{doc}");
    let upstream = upstream_tokens(&up).await;
    let scope = [("scope", "openid profile email groups offline_access")];
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(down.issuer.clone()).unwrap(), &http).await;
    let rp = CoreClient::from_provider_metadata(metadata.unwrap(), ClientId::new(flow::CLIENT.into()), None);

    for (kind, token) in [(ID_TOKEN, &upstream["id_token"]), (ACCESS_TOKEN, &upstream["access_token"])] {
        let token = token.as_str().unwrap();
        let (status, body) = exchange(&down, "upstream", token, kind, &scope).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {body}");
        assert_eq!(body["issued_token_type"], ACCESS_TOKEN, "{kind}: the default");
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["expires_in"].as_i64().unwrap() > 0, "{body}");
        assert_eq!(body["scope"], "openid profile email groups", "offline_access is dropped: {body}");
        assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none(), "{body}");
        let access = body["access_token"].as_str().unwrap();
        let claims = flow::claims(access);
        assert_eq!(claims["iss"], down.issuer.as_str());
        assert_eq!((claims["sub"].as_str(), claims["aud"].as_str()), (Some(kilgore().as_str()), Some(flow::CLIENT)));
        assert_eq!(claims["email"], "kilgore@kilgore.trout", "{kind}: {claims}");
        assert_eq!(claims["groups"], json!(["authors"]), "{kind}: {claims}");
        let info = reqwest::Client::new().get(down.url("/userinfo")).bearer_auth(access).send().await.unwrap();
        assert_eq!(info.status(), StatusCode::OK, "{kind}: our access token works at userinfo");
        let info: Value = info.json().await.unwrap();
        assert_eq!((info["sub"].as_str(), info["name"].as_str()), (Some(kilgore().as_str()), Some("Kilgore Trout")));
        let introspected: Value = reqwest::Client::new()
            .post(down.url("/token/introspect"))
            .basic_auth(flow::CLIENT, Some(flow::SECRET))
            .form(&[("token", access)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(introspected["active"], true, "{kind}: {introspected}");

        let wanted = [("requested_token_type", ID_TOKEN), ("scope", "openid profile")];
        let (status, body) = exchange(&down, "upstream", token, kind, &wanted).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {body}");
        assert_eq!((body["issued_token_type"].as_str(), body["token_type"].as_str()), (Some(ID_TOKEN), Some("N_A")));
        let id_token = body["access_token"].as_str().unwrap();
        // A relying party library accepts it as the downstream's ID token (signature, iss, aud, exp).
        let verified = CoreIdToken::from_str(id_token).unwrap();
        let verified = verified.claims(&rp.id_token_verifier(), |_: Option<&Nonce>| Ok(())).expect("a valid ID token");
        assert_eq!(verified.subject().as_str(), kilgore());
        let claims = flow::claims(id_token);
        assert_eq!(claims["iss"], down.issuer.as_str());
        assert_eq!((claims["sub"].as_str(), claims["aud"].as_str()), (Some(kilgore().as_str()), Some(flow::CLIENT)));
        assert_eq!(claims["name"], "Kilgore Trout", "{claims}");
        assert!(claims.get("email").is_none() && claims.get("at_hash").is_none(), "{claims}");
    }
}

/// What the client hears for each wrong exchange. The subject tokens are refused for their own
/// reason: tampered, expired, signed by the upstream's key for another issuer or audience, from
/// another broker, sent as the wrong type.
#[tokio::test]
async fn bad_exchanges_are_refused_with_the_rfc_errors() {
    let (up, down) = chain("").await;
    let upstream = upstream_tokens(&up).await;
    let id_token = upstream["id_token"].as_str().unwrap();
    let access = upstream["access_token"].as_str().unwrap();

    let cases = [
        ("nobody", id_token, ID_TOKEN, "invalid_request", "no connector has this id"),
        ("local", id_token, ID_TOKEN, "invalid_request", "password database"),
        ("mock", id_token, ID_TOKEN, "invalid_request", "does not support token exchange"),
        ("old", id_token, ID_TOKEN, "invalid_request", "targets 0.1.0"),
        ("no-userinfo", access, ACCESS_TOKEN, "invalid_request", "set getUserInfo: true"),
        ("upstream", id_token, "urn:ietf:params:oauth:token-type:jwt", "invalid_request", "is not accepted"),
        ("upstream", id_token, ACCESS_TOKEN, "invalid_request", "userinfo endpoint refused"),
        ("upstream", "not-a-token", ACCESS_TOKEN, "invalid_request", "userinfo endpoint refused"),
        ("upstream", access, ID_TOKEN, "invalid_request", "typ at+jwt"),
    ];
    for (connector, token, kind, error, what) in cases {
        refused(exchange(&down, connector, token, kind, &[]).await, error, what, &format!("{connector} {kind}"));
    }

    // A signature that does not match.
    let at = id_token.len() - 20;
    let flipped = if &id_token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &id_token[..at], &id_token[at + 1..]);
    refused(
        exchange(&down, "upstream", &tampered, ID_TOKEN, &[]).await,
        "invalid_request",
        "does not verify",
        "tampered",
    );

    // Signed with the upstream's own key, but expired, for another issuer or for another client.
    let claims = flow::claims(id_token);
    let now = portcullis::broker::now();
    let forged = |change: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        change(&mut c);
        up.broker.keys.sign(&c, "JWT").unwrap()
    };
    let expired = forged(&|c| {
        c["iat"] = json!(now - 7200);
        c["exp"] = json!(now - 3600);
    });
    refused(exchange(&down, "upstream", &expired, ID_TOKEN, &[]).await, "invalid_request", "Expired", "expired");
    let foreign = forged(&|c| c["iss"] = json!("https://elsewhere.example.com/dex"));
    refused(exchange(&down, "upstream", &foreign, ID_TOKEN, &[]).await, "invalid_request", "Issuer", "other issuer");
    let misaddressed = forged(&|c| c["aud"] = json!("second-app"));
    refused(exchange(&down, "upstream", &misaddressed, ID_TOKEN, &[]).await, "invalid_request", "Audience", "aud");

    // An ID token from another broker: the upstream's keys do not verify it.
    let other = TestBroker::builder().start().await;
    let from_other = upstream_tokens(&other).await;
    let from_other = from_other["id_token"].as_str().unwrap();
    refused(
        exchange(&down, "upstream", from_other, ID_TOKEN, &[]).await,
        "invalid_request",
        "does not verify",
        "other",
    );

    // Parameters.
    let asked = [("resource", "https://api.example.com")];
    refused(
        exchange(&down, "upstream", id_token, ID_TOKEN, &asked).await,
        "invalid_target",
        "api.example.com",
        "target",
    );
    let asked = [("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")];
    refused(exchange(&down, "upstream", id_token, ID_TOKEN, &asked).await, "invalid_request", "cannot be issued", "rt");
    refused(exchange(&down, "", id_token, ID_TOKEN, &[]).await, "invalid_request", "connector_id is required", "none");
    refused(exchange(&down, "upstream", "", ID_TOKEN, &[]).await, "invalid_request", "subject_token is required", "");
}

/// A client restricted by `allowedConnectors` may not exchange through another connector, and
/// with the grant left out of `oauth2.grantTypes` it is neither served nor advertised.
#[tokio::test]
async fn the_grant_is_served_only_when_enabled_and_allowed() {
    let up = TestBroker::builder().start().await;
    let id_token = upstream_tokens(&up).await["id_token"].as_str().unwrap().to_string();
    let restricted = TestBroker::builder()
        .clients(
            "- id: mock-only\n  name: Mock only\n  secret: bW9jay1vbmx5\n  redirectURIs: [http://127.0.0.1:5555/m]\n  \
             allowedConnectors: [mock]\n",
        )
        .connectors(&format!(
            "- plugin: \"{{plugins}}/oidc.wasm\"\n  id: upstream\n  name: Up\n  allowedHosts: [\"{}\"]\n  config:\n    \
             issuer: \"{}\"\n",
            up.base, up.issuer
        ))
        .start()
        .await;
    let form = [
        ("grant_type", GRANT),
        ("connector_id", "upstream"),
        ("subject_token", id_token.as_str()),
        ("subject_token_type", ID_TOKEN),
    ];
    let response =
        reqwest::Client::new().post(restricted.url("/token")).basic_auth("mock-only", Some("bW9jay1vbmx5")).form(&form);
    let response = response.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")), "{body}");
    // Dex's exchange-only block (no clientID) takes any audience: example-app's token is fine there.
    let (status, body) = exchange(&restricted, "upstream", &id_token, ID_TOKEN, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let yaml = portcullis_tests::base_config(&issuer, "").replacen(
        "oauth2:\n  skipApprovalScreen: false\n",
        "oauth2:\n  skipApprovalScreen: false\n  grantTypes: [authorization_code, refresh_token]\n",
        1,
    );
    let config = portcullis_tests::config_from_yaml(&yaml);
    let off = TestBroker::builder().listener(listener).issuer(&issuer).config(config).start().await;
    let doc: Value = reqwest::get(off.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert!(!doc["grant_types_supported"].as_array().unwrap().contains(&GRANT.into()), "{doc}");
    refused(
        exchange(&off, "mock", &id_token, ID_TOKEN, &[]).await,
        "unsupported_grant_type",
        "not enabled",
        "disabled",
    );
}

/// The oidc connector's Dex keys where they cross the wire, seen through token exchange (no
/// browser needed): `allowedGroups` refuses a user in none of them, `claimModifications` shapes
/// the groups, `issuerAlias` lets a document name another issuer than the URL it is served
/// under, `providerDiscoveryOverrides` replaces an endpoint; `acrValues` and `promptType` reach
/// the authorization URL of a login.
#[tokio::test]
async fn oidc_dex_keys_shape_the_exchanged_identity() {
    let up = TestBroker::builder().start().await;
    let block = |id: &str, issuer: &str, extra: &str| {
        format!(
            "- plugin: \"{{plugins}}/oidc.wasm\"\n  id: {id}\n  name: {id}\n  allowedHosts: [\"{base}\"]\n  config:\n    \
             issuer: \"{issuer}\"\n    clientID: {client}\n    clientSecret: {secret}\n    insecureEnableGroups: true\n{extra}",
            base = up.base,
            client = flow::CLIENT,
            secret = flow::SECRET,
        )
    };
    let slashed = format!("{}/", up.issuer);
    let connectors = [
        block("members", &up.issuer, "    allowedGroups: [admins]\n"),
        block(
            "shaped",
            &up.issuer,
            "    allowedGroups: [authors, admins]\n    claimModifications:\n      modifyGroupNames: {prefix: \"up:\"}\n      \
             newGroupFromClaims:\n      - {claims: [email], delimiter: \"/\", prefix: mail}\n",
        ),
        // Dex's filterGroupClaims: a regular expression matched anywhere in each group's name.
        block("kept", &up.issuer, "    claimModifications:\n      filterGroupClaims: {groupsFilter: thor}\n"),
        block("filtered", &up.issuer, "    claimModifications:\n      filterGroupClaims: {groupsFilter: \"^x\"}\n"),
        block("unaliased", &slashed, ""),
        block("aliased", &slashed, &format!("    issuerAlias: \"{}\"\n", up.issuer)),
        block(
            "overridden",
            &up.issuer,
            &format!("    providerDiscoveryOverrides:\n      jwksURL: \"{}/keys-moved\"\n", up.issuer),
        ),
        block("acr", &up.issuer, "    acrValues: [phr, mfa]\n    promptType: login\n"),
    ]
    .concat();
    let down = TestBroker::builder().connectors(&connectors).start().await;
    let id_token = upstream_tokens(&up).await["id_token"].as_str().unwrap().to_string();
    let groups = [("scope", "openid groups")];

    let refusal = exchange(&down, "members", &id_token, ID_TOKEN, &groups).await;
    refused(refusal, "invalid_request", "allowedGroups", "allowedGroups");
    let (status, body) = exchange(&down, "shaped", &id_token, ID_TOKEN, &groups).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = flow::claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["groups"], json!(["up:authors", "mail/kilgore@kilgore.trout"]), "{claims}");
    for (connector, want) in [("kept", json!(["authors"])), ("filtered", json!(null))] {
        // No group left: no groups claim (Dex's omitempty).
        let (status, body) = exchange(&down, connector, &id_token, ID_TOKEN, &groups).await;
        assert_eq!(status, StatusCode::OK, "{connector}: {body}");
        let claims = flow::claims(body["access_token"].as_str().unwrap());
        assert_eq!(claims.get("groups").cloned().unwrap_or(json!(null)), want, "{connector}: {claims}");
    }

    let refusal = exchange(&down, "unaliased", &id_token, ID_TOKEN, &[]).await;
    refused(refusal, "temporarily_unavailable", "retry later", "document names another issuer");
    let (status, body) = exchange(&down, "aliased", &id_token, ID_TOKEN, &[]).await;
    assert_eq!(status, StatusCode::OK, "issuerAlias: {body}");
    let refusal = exchange(&down, "overridden", &id_token, ID_TOKEN, &[]).await;
    refused(refusal, "temporarily_unavailable", "retry later", "jwksURL override is used");

    let web = browser();
    let (page, _) = flow::authorize(&down, &web, "acr", "openid").await;
    let to_upstream = location(&page, &down.base).unwrap();
    let param = |name: &str| portcullis_tests::query_param(&to_upstream, name);
    assert_eq!(param("acr_values").as_deref(), Some("phr mfa"), "{to_upstream}");
    assert_eq!(param("prompt"), None, "as Dex, promptType goes with offline_access only: {to_upstream}");
    let (page, _) = flow::authorize(&down, &web, "acr", "openid offline_access").await;
    let to_upstream = location(&page, &down.base).unwrap();
    assert_eq!(portcullis_tests::query_param(&to_upstream, "prompt").as_deref(), Some("login"), "{to_upstream}");
}

/// Neither the subject tokens nor the tokens issued for them reach the broker's log, refused
/// or not; the refusal and the success are logged.
#[tokio::test]
async fn no_exchanged_token_reaches_the_logs() {
    let capture = LogCapture::install(Format::Json);
    let (up, down) = chain("").await;
    let upstream = upstream_tokens(&up).await;
    let mut secrets = Vec::new();
    for (kind, key) in [(ID_TOKEN, "id_token"), (ACCESS_TOKEN, "access_token")] {
        let token = upstream[key].as_str().unwrap();
        let (status, body) = exchange(&down, "upstream", token, kind, &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        secrets.extend([token.to_string(), body["access_token"].as_str().unwrap().to_string()]);
        let tampered = format!("{token}x");
        refused(exchange(&down, "upstream", &tampered, kind, &[]).await, "invalid_request", "refused", kind);
    }
    let logs = capture.text();
    assert!(logs.contains("token exchange successful") && logs.contains("token exchange refused"), "{logs}");
    for secret in &secrets {
        // A JWT's signature is what makes it usable; none appears, nor any whole token.
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!logs.contains(secret.as_str()) && !logs.contains(signature), "a token reached the logs");
    }
}

/// Dex's `rootCAs` on the oidc connector: an upstream served over HTTPS with a certificate from
/// a private CA is reached when the block lists that CA (here as a file path; the host reads
/// it), and refused by TLS verification without it. A `rootCAs` entry that is no certificate
/// keeps the connector from loading, naming the entry.
#[tokio::test]
async fn root_cas_let_the_connector_trust_a_private_ca() {
    let ca = portcullis_tests::slapd::TestCa::new("upstream test CA");
    let (cert, key) = ca.server_cert(&["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let web = format!(
        "web:\n  https: 127.0.0.1:0\n  tlsCert: {}\n  tlsKey: {}\n",
        file("tls.crt", &cert),
        file("tls.key", &key)
    );
    let up = TestBroker::builder().extra(&web).https().start().await;
    assert!(up.issuer.starts_with("https://"), "{}", up.issuer);
    let ca_file = file("ca.pem", &ca.cert_pem);
    let block = |id: &str, extra: &str| {
        format!(
            "- plugin: \"{{plugins}}/oidc.wasm\"\n  id: {id}\n  name: {id}\n  allowedHosts: [\"{}\"]\n  config:\n    \
             issuer: \"{}\"\n    clientID: {}\n    clientSecret: {}\n{extra}",
            up.base,
            up.issuer,
            flow::CLIENT,
            flow::SECRET
        )
    };
    let connectors = [block("trusting", &format!("    rootCAs: [\"{ca_file}\"]\n")), block("default", "")].concat();
    let config = file("config.yaml", &portcullis_tests::base_config("{issuer}", &connectors));
    let down = TestBroker::builder().file(std::path::Path::new(&config)).start().await;

    // An ID token the upstream signed (no browser can log in over its private CA here).
    let now = portcullis::broker::now();
    let claims = json!({"iss": up.issuer, "sub": "kilgore", "aud": flow::CLIENT, "iat": now, "exp": now + 600,
        "name": "Kilgore Trout", "email": "kilgore@kilgore.trout", "email_verified": true});
    let id_token = up.broker.keys.sign(&claims, "JWT").unwrap();
    let (status, body) = exchange(&down, "trusting", &id_token, ID_TOKEN, &[("scope", "openid email")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(flow::claims(body["access_token"].as_str().unwrap())["email"], "kilgore@kilgore.trout");
    refused(
        exchange(&down, "default", &id_token, ID_TOKEN, &[]).await,
        "temporarily_unavailable",
        "retry later",
        "no CA",
    );

    // The CA file is part of what a generation is built from: the same bytes reload nothing,
    // another CA in the file is a new generation, which no longer trusts the upstream.
    let generations = &down.broker.generations;
    assert!(!generations.reload().await.unwrap().changed, "nothing changed");
    file("ca.pem", &portcullis_tests::slapd::TestCa::new("another CA").cert_pem);
    let reloaded = generations.reload().await.unwrap();
    assert!(reloaded.changed && reloaded.generation == 2, "{reloaded}");
    refused(exchange(&down, "trusting", &id_token, ID_TOKEN, &[]).await, "temporarily_unavailable", "retry", "new CA");

    let config =
        json!({"issuer": up.issuer, "clientID": "a", "clientSecret": "s", "rootCAs": [ca_file, "/no/such/ca"]});
    let spec = portcullis_tests::spec("oidc", portcullis_tests::plugin("oidc"), config);
    let errors = portcullis::connectors::Registry::load(&portcullis_tests::engine(), &[spec], None).await.unwrap_err();
    let message = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
    assert!(message.contains("config.rootCAs[1]: neither PEM, nor a readable file"), "{message}");
}
