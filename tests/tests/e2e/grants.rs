//! The grants beyond the code flow, through a real client library (`openidconnect`) where it
//! has them: `client_credentials` (RFC 6749 §4.4, Dex's `clientCredentialsClaims`) and the
//! password grant (§4.3, through `oauth2.passwordConnector`) — and the refusals of each.

use openidconnect::core::{CoreClient, CoreProviderMetadata};
use openidconnect::{
    ClientId, ClientSecret, IssuerUrl, Nonce, OAuth2TokenResponse, ResourceOwnerPassword, ResourceOwnerUsername, Scope,
    TokenResponse,
};
use portcullis_tests::{TestBroker, flow};
use reqwest::StatusCode;
use serde_json::Value;

/// `BASE_CONFIG` with `oauth2` lines, more client keys for example-app and more top-level YAML.
async fn broker(oauth2: &str, example_app: &str, extra: &str) -> TestBroker {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let yaml = portcullis_tests::base_config(&issuer, "")
        .replacen(
            "oauth2:\n  skipApprovalScreen: false\n",
            &format!("oauth2:\n  skipApprovalScreen: false\n{oauth2}"),
            1,
        )
        .replacen(
            "  postLogoutRedirectURIs: [http://127.0.0.1:5555/]\n",
            &format!("  postLogoutRedirectURIs: [http://127.0.0.1:5555/]\n{example_app}"),
            1,
        );
    let config = portcullis_tests::config_from_yaml(&format!("{yaml}\n{extra}"));
    TestBroker::builder().listener(listener).issuer(&issuer).config(config).start().await
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn discovery(b: &TestBroker) -> Value {
    reqwest::get(b.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap()
}

async fn token_as(b: &TestBroker, client: &str, secret: Option<&str>, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(b.url("/token"));
    request = match secret {
        Some(s) => request.basic_auth(client, Some(s)),
        None => request,
    };
    let mut form = form.to_vec();
    if secret.is_none() {
        form.push(("client_id", client));
    }
    let response = request.form(&form).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

const CLIENT_CREDENTIALS: &str =
    "  grantTypes: [authorization_code, refresh_token, client_credentials, password]\n  passwordConnector: local\n";

/// client_credentials through `openidconnect`: an access token for the client itself (its id as
/// the subject, its name with `profile`, `clientCredentialsClaims.groups` with `groups`), no ID
/// token, no refresh token; advertised only when `oauth2.grantTypes` lists it.
#[tokio::test]
async fn client_credentials_issue_a_token_for_the_client() {
    let off = broker("", "", "").await;
    let doc = discovery(&off).await;
    assert!(
        !doc["grant_types_supported"].as_array().unwrap().contains(&"client_credentials".into()),
        "Dex: off unless listed"
    );
    let (status, body) =
        token_as(&off, flow::CLIENT, Some(flow::SECRET), &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));

    let b = broker(CLIENT_CREDENTIALS, "  clientCredentialsClaims:\n    groups: [robots]\n", "").await;
    let doc = discovery(&b).await;
    assert!(doc["grant_types_supported"].as_array().unwrap().contains(&"client_credentials".into()), "{doc}");
    let http = http();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(b.issuer.clone()).unwrap(), &http).await.unwrap();
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(flow::CLIENT.into()),
        Some(ClientSecret::new(flow::SECRET.into())),
    );
    let response = rp
        .exchange_client_credentials()
        .unwrap()
        .add_scope(Scope::new("openid".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("groups".into()))
        .request_async(&http)
        .await
        .expect("client_credentials token");
    assert!(response.id_token().is_none(), "no user, no ID token");
    assert!(response.refresh_token().is_none(), "nothing to refresh");
    let claims = flow::claims(response.access_token().secret());
    assert_eq!(claims["sub"], portcullis::oidc::sub::encode(flow::CLIENT, ""));
    assert_eq!(claims["client_id"], flow::CLIENT);
    assert_eq!(claims["name"], "Example App");
    assert_eq!(claims["groups"], serde_json::json!(["robots"]));
    // The token works at userinfo.
    let info = reqwest::Client::new()
        .get(b.url("/userinfo"))
        .bearer_auth(response.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), StatusCode::OK);

    // Refusals: a wrong secret, a public client, offline_access.
    let (status, body) = token_as(&b, flow::CLIENT, Some("wrong"), &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let (status, body) = token_as(&b, "public-app", None, &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")), "{body}");
    let offline = [("grant_type", "client_credentials"), ("scope", "openid offline_access")];
    let (status, body) = token_as(&b, flow::CLIENT, Some(flow::SECRET), &offline).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")), "{body}");
}

/// The password grant through `openidconnect`, against the password database named by
/// `oauth2.passwordConnector`: Dex's claims, a working refresh token; a wrong password is
/// `invalid_grant`, a missing `openid` `invalid_scope`, and guessing is throttled like the form.
#[tokio::test]
async fn password_grant_logs_in_through_the_password_connector() {
    let off = broker("", "", "").await;
    let doc = discovery(&off).await;
    assert!(!doc["grant_types_supported"].as_array().unwrap().contains(&"password".into()), "needs passwordConnector");

    let b = broker(CLIENT_CREDENTIALS, "", "web:\n  throttle:\n    passwordPerAccount: 4\n").await;
    let http = http();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(b.issuer.clone()).unwrap(), &http).await.unwrap();
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(flow::CLIENT.into()),
        Some(ClientSecret::new(flow::SECRET.into())),
    );
    let username = ResourceOwnerUsername::new("admin@example.com".into());
    let password = ResourceOwnerPassword::new("password".into());
    let response = rp
        .exchange_password(&username, &password)
        .unwrap()
        .add_scope(Scope::new("openid".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .request_async(&http)
        .await
        .expect("password grant");
    let id_token = response.id_token().expect("an ID token for the user");
    // Verified by the library (signature, issuer, audience); no nonce was sent.
    let claims = id_token.claims(&rp.id_token_verifier(), |_: Option<&Nonce>| Ok(())).expect("a valid ID token");
    assert_eq!(
        claims.subject().as_str(),
        portcullis::oidc::sub::encode("08a8684b-db88-4b73-90a9-3cd1661f5466", "local")
    );
    let refresh = response.refresh_token().expect("offline_access gives a refresh token").secret().clone();
    assert_eq!(flow::refresh(&b, &refresh).await.status(), StatusCode::OK);
    // Dex puts a nonce sent with the password grant into its ID token.
    let with_nonce = [
        ("grant_type", "password"),
        ("username", "admin@example.com"),
        ("password", "password"),
        ("scope", "openid"),
        ("nonce", "n-0S6_WzA2Mj"),
    ];
    let (status, tokens) = token_as(&b, flow::CLIENT, Some(flow::SECRET), &with_nonce).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(flow::claims(tokens["id_token"].as_str().unwrap())["nonce"], "n-0S6_WzA2Mj");
    // A peer in the audience must trust the client, in this grant and in client_credentials
    // (second-app lists no trustedPeers), or its API would accept a token it never agreed to.
    let untrusted = "openid audience:server:client_id:second-app";
    let forms: [&[(&str, &str)]; 2] = [
        &[
            ("grant_type", "password"),
            ("username", "admin@example.com"),
            ("password", "password"),
            ("scope", untrusted),
        ],
        &[("grant_type", "client_credentials"), ("scope", untrusted)],
    ];
    for form in forms {
        let (status, body) = token_as(&b, flow::CLIENT, Some(flow::SECRET), form).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")), "{body}");
        assert!(body["error_description"].as_str().unwrap().contains("trustedPeers"), "{body}");
    }

    let wrong =
        [("grant_type", "password"), ("username", "admin@example.com"), ("password", "nope"), ("scope", "openid")];
    let (status, body) = token_as(&b, flow::CLIENT, Some(flow::SECRET), &wrong).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let no_openid = [("grant_type", "password"), ("username", "admin@example.com"), ("password", "password")];
    let (status, body) = token_as(&b, flow::CLIENT, Some(flow::SECRET), &no_openid).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")), "{body}");
    // The account's burst of 4 is spent (2 above + 1 wrong + 1 without openid does not count:
    // the scope is checked first); more guesses are refused without checking the password.
    let mut last = (StatusCode::OK, Value::Null);
    for _ in 0..3 {
        last = token_as(&b, flow::CLIENT, Some(flow::SECRET), &wrong).await;
    }
    assert_eq!(last.0, StatusCode::SERVICE_UNAVAILABLE, "{}", last.1);
    assert_eq!(last.1["error"], "temporarily_unavailable");
}

/// An argon2id hash (`hash-password --algorithm argon2id`) is taken wherever a bcrypt one is:
/// beside the base config's bcrypt user, an argon2id user logs in through the password grant
/// (the database's check, on the bounded pool), and a wrong password is refused; a password
/// longer than bcrypt's 72 bytes is fine for argon2id, which reads all of it.
#[tokio::test]
async fn an_argon2id_user_logs_in_beside_a_bcrypt_one() {
    let long = "p".repeat(100);
    let hash = portcullis::password::hash_argon2id(&long, 256, 1, 1).unwrap();
    let user = format!("- email: argon@example.com\n  hash: \"{hash}\"\n  username: argon\n  userID: 7d4f3c1e-argon\n");
    let b = broker(CLIENT_CREDENTIALS, "", &user).await;
    let login = |who: &'static str, password: String| {
        let b = &b;
        async move {
            let form = [("grant_type", "password"), ("username", who), ("password", &password), ("scope", "openid")];
            token_as(b, flow::CLIENT, Some(flow::SECRET), &form).await
        }
    };
    let (status, tokens) = login("argon@example.com", long.clone()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = flow::claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], portcullis::oidc::sub::encode("7d4f3c1e-argon", "local"));
    let (status, body) = login("argon@example.com", "p".repeat(99)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    let (status, _) = login("admin@example.com", "password".into()).await;
    assert_eq!(status, StatusCode::OK, "the bcrypt user beside it");
}

/// A client_credentials token is not stored (as in Dex: nothing refreshes it), yet it is
/// introspected and revoked like any other: issuing it sends no statement to SQLite, revoking
/// it stores the revocation, after which introspection says inactive and userinfo refuses it.
#[tokio::test]
async fn a_client_credentials_token_is_not_stored_but_still_revocable() {
    let dir = tempfile::tempdir().unwrap();
    let db = portcullis::storage::SqlBackend::sqlite(&dir.path().join("p.sqlite")).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let yaml = portcullis_tests::base_config(&issuer, "").replacen(
        "oauth2:\n  skipApprovalScreen: false\n",
        &format!("oauth2:\n  skipApprovalScreen: false\n{CLIENT_CREDENTIALS}"),
        1,
    );
    let b = TestBroker::builder()
        .listener(listener)
        .issuer(&issuer)
        .config(portcullis_tests::config_from_yaml(&yaml))
        .backend(std::sync::Arc::new(db.clone()))
        .start()
        .await;
    let grants = || {
        use portcullis::storage::Kind;
        [Kind::Grant, Kind::RevokedGrant, Kind::RefreshToken, Kind::UserGrant]
            .map(|k| db.statements_on(k))
            .iter()
            .sum::<u64>()
    };
    let before = grants();
    let (status, body) = token_as(&b, flow::CLIENT, Some(flow::SECRET), &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(grants() - before, 0, "issuing writes nothing");
    let access = body["access_token"].as_str().unwrap();
    let me = Some((flow::CLIENT, flow::SECRET));
    assert_eq!(flow::introspect(&b, me, access).await.1["active"], true);
    let userinfo = || reqwest::Client::new().get(b.url("/userinfo")).bearer_auth(access).send();
    assert_eq!(userinfo().await.unwrap().status(), StatusCode::OK);
    // Another client's revocation changes nothing; the owner's ends it.
    let revoke = |auth: (&'static str, &'static str)| {
        reqwest::Client::new()
            .post(b.url("/token/revoke"))
            .basic_auth(auth.0, Some(auth.1))
            .form(&[("token", access)])
            .send()
    };
    assert_eq!(revoke(("second-app", "c2Vjb25kLXNlY3JldA")).await.unwrap().status(), StatusCode::OK);
    assert_eq!(flow::introspect(&b, me, access).await.1["active"], true, "a foreign revocation changes nothing");
    assert_eq!(revoke((flow::CLIENT, flow::SECRET)).await.unwrap().status(), StatusCode::OK);
    assert_eq!(flow::introspect(&b, me, access).await.1["active"], false);
    assert_eq!(userinfo().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // Revoking twice is fine (RFC 7009: 200), and another token of the same client stays live.
    assert_eq!(revoke((flow::CLIENT, flow::SECRET)).await.unwrap().status(), StatusCode::OK);
    let (_, other) = token_as(&b, flow::CLIENT, Some(flow::SECRET), &[("grant_type", "client_credentials")]).await;
    assert_eq!(flow::introspect(&b, me, other["access_token"].as_str().unwrap()).await.1["active"], true);
}

/// RFC 7662 introspection and RFC 7009 revocation: an authenticated client learns whether an
/// access token (anyone's) or its own refresh token is active; another client's refresh token
/// and unauthenticated calls learn nothing; revoking a refresh token ends its family and
/// revoking an access token its grant, for the client they were issued to only.
#[tokio::test]
async fn introspection_and_revocation() {
    let b = broker(CLIENT_CREDENTIALS, "", "").await;
    let doc = discovery(&b).await;
    assert_eq!(doc["introspection_endpoint"], b.url("/token/introspect"));
    assert_eq!(doc["revocation_endpoint"], b.url("/token/revoke"));
    let login = [
        ("grant_type", "password"),
        ("username", "admin@example.com"),
        ("password", "password"),
        ("scope", "openid profile offline_access"),
    ];
    let (status, tokens) = token_as(&b, flow::CLIENT, Some(flow::SECRET), &login).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let me = Some((flow::CLIENT, flow::SECRET));
    let other = Some(("second-app", "c2Vjb25kLXNlY3JldA"));

    let (status, info) = flow::introspect(&b, me, access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((info["active"].as_bool(), info["token_use"].as_str()), (Some(true), Some("access_token")), "{info}");
    assert_eq!(info["client_id"], flow::CLIENT);
    assert_eq!(info["sub"], portcullis::oidc::sub::encode("08a8684b-db88-4b73-90a9-3cd1661f5466", "local"));
    assert_eq!(info["iss"], b.issuer.as_str());
    // Dex's `username`: the preferred username, when the user has one.
    assert_eq!(info["username"], info["ext"]["preferred_username"], "{info}");
    assert!(info["username"].is_string(), "{info}");
    // A resource server (another client) may check an access token.
    assert_eq!(flow::introspect(&b, other, access).await.1["active"], true);
    // Our ID token is no bearer token, at introspection or userinfo (a Dex-signed access token
    // is: `migrate::`).
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(flow::introspect(&b, other, id_token).await.1, serde_json::json!({"active": false}));
    let userinfo = reqwest::Client::new().get(b.url("/userinfo")).bearer_auth(id_token).send().await.unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
    let (_, info) = flow::introspect(&b, me, refresh).await;
    assert_eq!((info["active"].as_bool(), info["token_use"].as_str()), (Some(true), Some("refresh_token")), "{info}");
    assert_eq!(
        flow::introspect(&b, other, refresh).await.1,
        serde_json::json!({"active": false}),
        "not another client's"
    );
    assert_eq!(flow::introspect(&b, me, "not-a-token").await.1, serde_json::json!({"active": false}));
    let (status, body) = flow::introspect(&b, None, access).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));

    // Revocation: another client's revocation does nothing; the owner's ends the family.
    let revoke = |auth: (&'static str, &'static str), token: String| {
        let url = b.url("/token/revoke");
        async move {
            reqwest::Client::new()
                .post(url)
                .basic_auth(auth.0, Some(auth.1))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(revoke(("second-app", "c2Vjb25kLXNlY3JldA"), refresh.to_string()).await, StatusCode::OK);
    assert_eq!(flow::introspect(&b, me, refresh).await.1["active"], true, "a foreign revocation changes nothing");
    assert_eq!(revoke((flow::CLIENT, flow::SECRET), refresh.to_string()).await, StatusCode::OK);
    assert_eq!(flow::introspect(&b, me, refresh).await.1["active"], false);
    assert_eq!(flow::introspect(&b, me, access).await.1["active"], false, "the family's access tokens end too");
    assert_eq!(flow::refresh(&b, refresh).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(revoke((flow::CLIENT, flow::SECRET), "unknown".into()).await, StatusCode::OK, "RFC 7009 §2.2");

    // An access token revoked by itself.
    let (_, tokens) = token_as(&b, flow::CLIENT, Some(flow::SECRET), &login).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(revoke((flow::CLIENT, flow::SECRET), access.clone()).await, StatusCode::OK);
    let info = reqwest::Client::new().get(b.url("/userinfo")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(info.status(), StatusCode::UNAUTHORIZED);

    // Dex's unauthenticated introspection, when asked for.
    let open = broker("  introspection:\n    allowUnauthenticated: true\n", "", "").await;
    let (_, tokens) =
        token_as(&open, flow::CLIENT, Some(flow::SECRET), &[("grant_type", "authorization_code"), ("code", "x")]).await;
    assert_eq!(tokens["error"], "invalid_grant");
    let (status, body) = flow::introspect(&open, None, "whatever").await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!({"active": false})));
}
