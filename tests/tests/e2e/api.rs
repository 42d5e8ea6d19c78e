//! The admin API (Dex's gRPC API) through a tonic client generated from our proto: clients,
//! passwords and connectors created, changed and deleted on a running broker and taking effect
//! at once (and on a second replica by itself); the config file's entries read-only; refresh
//! tokens listed and revoked per user; Dex's error texts; mutual TLS.

use std::time::Duration;

use portcullis::api::proto::dex_client::DexClient;
use portcullis::api::proto::*;
use portcullis_tests::{TestBroker, flow};
use reqwest::StatusCode;
use serde_json::Value;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Dex's example hash (cost 10) of "password".
const HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";

const GRANTS: &str =
    "  grantTypes: [authorization_code, refresh_token, client_credentials, password]\n  passwordConnector: local\n";

async fn client(address: &str) -> DexClient<Channel> {
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    DexClient::new(channel)
}

async fn token_as(b: &TestBroker, client: &str, secret: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response =
        reqwest::Client::new().post(b.url("/token")).basic_auth(client, Some(secret)).form(form).send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

fn message(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// A client created through the API logs in at once (its generated id and secret work on the
/// token endpoint), can be read, listed without its secret, updated and deleted; the config
/// file's clients are listed and read but refused any change, with Dex's texts.
#[tokio::test]
async fn clients_created_through_the_api_serve_at_once() {
    let b = TestBroker::builder().oauth2(GRANTS).start().await;
    let mut api = client(&b.serve_api(false).await).await;

    let version = api.get_version(VersionReq {}).await.unwrap().into_inner();
    assert_eq!(version.api, 3);
    assert!(version.server.starts_with("portcullis-"), "{}", version.server);

    let created = api
        .create_client(CreateClientReq {
            client: Some(Client {
                name: "Made by the API".into(),
                redirect_uris: vec!["http://127.0.0.1:5555/api-app".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!created.already_exists);
    let made = created.client.unwrap();
    assert_eq!(made.id.len(), 25, "Dex's generated id: {}", made.id);
    assert_eq!(made.secret.len(), 50, "Dex's generated secret");

    let (status, body) = token_as(&b, &made.id, &made.secret, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = token_as(&b, &made.id, "wrong", &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let again = api.create_client(CreateClientReq { client: Some(made.clone()) }).await.unwrap().into_inner();
    assert!(again.already_exists && again.client.is_none());

    let read = api.get_client(GetClientReq { id: made.id.clone() }).await.unwrap().into_inner().client.unwrap();
    assert_eq!(read, made);
    let example = api.get_client(GetClientReq { id: "example-app".into() }).await.unwrap().into_inner();
    assert_eq!(example.client.unwrap().secret, flow::SECRET, "a static client is read from the file");
    let missing = api.get_client(GetClientReq { id: "nobody".into() }).await.unwrap_err();
    assert_eq!(message(&missing), "Unknown: not found");

    let listed = api.list_clients(ListClientReq {}).await.unwrap().into_inner().clients;
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    for id in ["example-app", "second-app", "public-app", made.id.as_str()] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }

    let updated = api
        .update_client(UpdateClientReq {
            id: made.id.clone(),
            name: "Renamed".into(),
            redirect_uris: vec!["http://127.0.0.1:5555/moved".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!updated.not_found);
    let live = b.broker.generations.current();
    let client = live.config.clients.get(made.id.as_str()).expect("serving");
    assert_eq!(client.name, "Renamed");
    assert_eq!(client.redirect_uris, ["http://127.0.0.1:5555/moved"]);

    let bad = api
        .update_client(UpdateClientReq {
            id: made.id.clone(),
            redirect_uris: vec!["not a url".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{}", message(&bad));
    assert!(bad.message().contains("not a url"), "{}", bad.message());
    let lifetime = api
        .update_client(UpdateClientReq {
            id: made.id.clone(),
            refresh_token_lifetime: Some("forever".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        message(&lifetime),
        "Unknown: invalid refresh token lifetime \"forever\": want \"standalone\" or \"session\""
    );

    for (call, text) in [
        (
            api.delete_client(DeleteClientReq { id: "example-app".into() }).await.map(|_| ()),
            "delete client: static clients: read-only cannot delete client",
        ),
        (
            api.update_client(UpdateClientReq { id: "example-app".into(), name: "x".into(), ..Default::default() })
                .await
                .map(|_| ()),
            "update client: static clients: read-only cannot update client",
        ),
        (
            api.create_client(CreateClientReq {
                client: Some(Client { id: "example-app".into(), secret: "s".into(), ..Default::default() }),
            })
            .await
            .map(|_| ()),
            "create client: static clients: read-only cannot create client",
        ),
    ] {
        assert_eq!(message(&call.unwrap_err()), format!("Unknown: {text}"));
    }

    let deleted = api.delete_client(DeleteClientReq { id: made.id.clone() }).await.unwrap().into_inner();
    assert!(!deleted.not_found);
    let (status, _) = token_as(&b, &made.id, &made.secret, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a deleted client is gone at once");
    let gone = api.delete_client(DeleteClientReq { id: made.id.clone() }).await.unwrap().into_inner();
    assert!(gone.not_found);
}

/// Passwords created through the API log in (password grant and form), are verified, listed
/// without their hash, renamed and deleted; hashes below Dex's cost 10 or above 16 are refused
/// with Dex's texts; the file's users are read-only.
#[tokio::test]
async fn passwords_created_through_the_api_log_in() {
    let b = TestBroker::builder().oauth2(GRANTS).start().await;
    let mut api = client(&b.serve_api(false).await).await;
    let password = |email: &str, hash: &str| CreatePasswordReq {
        password: Some(Password {
            email: email.into(),
            hash: hash.as_bytes().to_vec(),
            username: "kim".into(),
            user_id: "kim-1".into(),
        }),
    };
    let created = api.create_password(password("Kim@Example.com", HASH)).await.unwrap().into_inner();
    assert!(!created.already_exists);
    let again = api.create_password(password("kim@example.com", HASH)).await.unwrap().into_inner();
    assert!(again.already_exists, "emails are case-insensitive");

    let login = |user: &'static str, secret: &'static str| {
        let b = &b;
        async move {
            token_as(
                b,
                flow::CLIENT,
                flow::SECRET,
                &[("grant_type", "password"), ("username", user), ("password", secret), ("scope", "openid email")],
            )
            .await
        }
    };
    let (status, body) = login("kim@example.com", "password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = flow::claims(body["id_token"].as_str().unwrap());
    assert_eq!(claims["email"], "kim@example.com");
    let (status, _) = login("kim@example.com", "wrong").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let verify = |email: &str, secret: &str| VerifyPasswordReq { email: email.into(), password: secret.into() };
    let yes = api.verify_password(verify("kim@example.com", "password")).await.unwrap().into_inner();
    assert!(yes.verified && !yes.not_found);
    let no = api.verify_password(verify("kim@example.com", "nope")).await.unwrap().into_inner();
    assert!(!no.verified && !no.not_found);
    let nobody = api.verify_password(verify("nobody@example.com", "x")).await.unwrap().into_inner();
    assert!(nobody.not_found);
    let file_user = api.verify_password(verify("admin@example.com", "password")).await.unwrap().into_inner();
    assert!(file_user.verified, "the file's users are verified too");

    let cheap = "$2a$04$N5Fv9QY6g2xkZ8wL0I5mKOBUtG1a3TnFq0zZpVYJ1k4mM3e7hVq1e";
    let refused = api.create_password(password("cheap@example.com", cheap)).await.unwrap_err();
    assert_eq!(message(&refused), "Unknown: given hash cost = 4 does not meet minimum cost requirement = 10");
    let dear = "$2a$17$N5Fv9QY6g2xkZ8wL0I5mKOBUtG1a3TnFq0zZpVYJ1k4mM3e7hVq1e";
    let refused = api.create_password(password("dear@example.com", dear)).await.unwrap_err();
    assert_eq!(
        message(&refused),
        "Unknown: given hash cost = 17 is above upper bound cost = 16, recommended cost = 12"
    );
    // argon2id is taken too (verified on the same bounded pool), within the bounds; a hash asking
    // for 4 GiB per check is refused naming the parameter.
    let argon2id = portcullis::password::hash_argon2id("argon-pass", 256, 1, 1).unwrap();
    api.create_password(password("argon@example.com", &argon2id)).await.unwrap();
    let yes = api.verify_password(verify("argon@example.com", "argon-pass")).await.unwrap().into_inner();
    assert!(yes.verified);
    assert!(!api.verify_password(verify("argon@example.com", "argon-pasS")).await.unwrap().into_inner().verified);
    let huge = "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    let refused = api.create_password(password("huge@example.com", huge)).await.unwrap_err();
    assert!(message(&refused).contains("m (memory, KiB) = 4194304 per check, above the most"), "{}", message(&refused));
    api.delete_password(DeletePasswordReq { email: "argon@example.com".into() }).await.unwrap();
    let no_user =
        CreatePasswordReq { password: Some(Password { email: "x@example.com".into(), ..Default::default() }) };
    assert_eq!(message(&api.create_password(no_user).await.unwrap_err()), "Unknown: no user ID supplied");

    let listed = api.list_passwords(ListPasswordReq {}).await.unwrap().into_inner().passwords;
    let emails: Vec<&str> = listed.iter().map(|p| p.email.as_str()).collect();
    assert_eq!(emails, ["admin@example.com", "kim@example.com"]);
    assert!(listed.iter().all(|p| p.hash.is_empty()), "hashes are never listed");

    let renamed = api
        .update_password(UpdatePasswordReq {
            email: "kim@example.com".into(),
            new_username: "kimberly".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!renamed.not_found);
    let nothing = api.update_password(UpdatePasswordReq { email: "kim@example.com".into(), ..Default::default() });
    assert_eq!(message(&nothing.await.unwrap_err()), "Unknown: nothing to update");
    let static_user = api.delete_password(DeletePasswordReq { email: "admin@example.com".into() }).await.unwrap_err();
    assert_eq!(message(&static_user), "Unknown: delete password: static passwords: read-only cannot delete password");

    let deleted = api.delete_password(DeletePasswordReq { email: "KIM@example.com".into() }).await.unwrap();
    assert!(!deleted.into_inner().not_found);
    let (status, _) = login("kim@example.com", "password").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a deleted user cannot log in");
}

/// Connector calls need Dex's flag; a connector created through the API is loaded like one from
/// the file and serves logins at once; one that cannot load is refused and nothing is stored;
/// the file's connectors and the password database are listed.
#[tokio::test]
async fn connectors_created_through_the_api_serve_logins() {
    let b = TestBroker::builder().start().await;
    let mut off = client(&b.serve_api(false).await).await;
    let refused = off.list_connectors(ListConnectorReq {}).await.unwrap_err();
    assert_eq!(message(&refused), "Unknown: api_connectors_crud feature flag is not enabled");

    let mut api = client(&b.serve_api(true).await).await;
    let connector = |id: &str, kind: &str, config: &str| CreateConnectorReq {
        connector: Some(Connector {
            id: id.into(),
            r#type: kind.into(),
            name: format!("API {id}"),
            config: config.as_bytes().to_vec(),
            grant_types: Vec::new(),
        }),
    };
    let created = api.create_connector(connector("api-mock", "mockCallback", "{}")).await.unwrap().into_inner();
    assert!(!created.already_exists);
    let live = b.broker.generations.current();
    assert!(live.registry.get("api-mock").is_some(), "serving at once");

    // A login through it, as through the file's.
    let web = portcullis_tests::browser();
    let (page, pending) = flow::authorize(&b, &web, "api-mock", "openid email").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER, "the mock sends the browser to its callback");
    let upstream = portcullis_tests::location(&page, &b.base).unwrap();
    let back = web.get(&upstream).send().await.unwrap();
    let code = flow::finish(&b, &web, back, &pending).await;
    let tokens = flow::exchange(&b, &code, &pending).await;
    assert_eq!(tokens.claims["email"], "kilgore@kilgore.trout");

    let bad_type = api.create_connector(connector("nope", "no-such-type", "{}")).await.unwrap_err();
    assert_eq!(bad_type.code(), tonic::Code::InvalidArgument, "{}", message(&bad_type));
    assert!(bad_type.message().contains("no plugin no-such-type.wasm"), "{}", bad_type.message());
    let bad_json = api.create_connector(connector("nope", "mockCallback", "{not json")).await.unwrap_err();
    assert_eq!(message(&bad_json), "Unknown: invalid config supplied");
    let bad_config = api.create_connector(connector("nope", "mockCallback", r#"{"noSuchKey": 1}"#)).await;
    assert_eq!(bad_config.unwrap_err().code(), tonic::Code::InvalidArgument, "the plugin refuses the key on trial");
    let mut limited = connector("limited", "mockCallback", "{}");
    limited.connector.as_mut().unwrap().grant_types = vec!["client_credentials".into()];
    let refused = api.create_connector(limited.clone()).await.unwrap_err();
    assert_eq!(message(&refused), "Unknown: unknown grant type \"client_credentials\"");
    limited.connector.as_mut().unwrap().grant_types = vec!["authorization_code".into()];
    api.create_connector(limited).await.unwrap();
    let live = b.broker.generations.current();
    assert!(live.config.connector_allows("limited", "authorization_code"));
    assert!(!live.config.connector_allows("limited", "refresh_token"), "grant_types take effect");
    api.delete_connector(DeleteConnectorReq { id: "limited".into() }).await.unwrap();
    let static_one = api.create_connector(connector("mock", "mockCallback", "{}")).await.unwrap_err();
    assert_eq!(message(&static_one), "Unknown: create connector: static connectors: read-only cannot create connector");

    let listed = api.list_connectors(ListConnectorReq {}).await.unwrap().into_inner().connectors;
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["mock", "local", "api-mock"]);
    assert!(!ids.contains(&"nope"), "a refused connector is not stored");

    let updated = api
        .update_connector(UpdateConnectorReq {
            id: "api-mock".into(),
            new_name: "Renamed".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!updated.not_found);
    let live = b.broker.generations.current();
    let entry = live.config.connectors.iter().find(|c| c.spec.id == "api-mock").unwrap();
    assert_eq!(entry.spec.name, "Renamed");

    let deleted = api.delete_connector(DeleteConnectorReq { id: "api-mock".into() }).await.unwrap().into_inner();
    assert!(!deleted.not_found);
    assert!(b.broker.generations.current().registry.get("api-mock").is_none(), "gone at once");
    let static_delete = api.delete_connector(DeleteConnectorReq { id: "mock".into() }).await.unwrap_err();
    assert_eq!(
        message(&static_delete),
        "Unknown: delete connector: static connectors: read-only cannot delete connector"
    );
}

/// A change made through one replica's API serves on another replica sharing the storage,
/// without a restart or a reload command.
#[tokio::test]
async fn another_replica_picks_up_api_changes_by_itself() {
    let backend: std::sync::Arc<dyn portcullis::storage::Backend> =
        std::sync::Arc::new(portcullis::storage::MemoryBackend::new());
    let one = TestBroker::builder().oauth2(GRANTS).backend(backend.clone()).start().await;
    let two = TestBroker::builder().oauth2(GRANTS).backend(backend).start().await;
    let mut api = client(&one.serve_api(false).await).await;
    let made = Client { id: "shared-app".into(), secret: "shared-secret".into(), ..Default::default() };
    api.create_client(CreateClientReq { client: Some(made) }).await.unwrap();
    let deadline = tokio::time::Instant::now() + portcullis::reload::STORED_POLL * 5;
    loop {
        let (status, _) = token_as(&two, "shared-app", "shared-secret", &[("grant_type", "client_credentials")]).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the second replica never served the client");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// ListRefresh shows a user's refresh tokens by the `sub` of their ID tokens; RevokeRefresh ends
/// one client's, and the token stops refreshing.
#[tokio::test]
async fn refresh_tokens_are_listed_and_revoked_per_user() {
    let b = TestBroker::builder().oauth2(GRANTS).start().await;
    let mut api = client(&b.serve_api(false).await).await;
    let (status, body) = token_as(
        &b,
        flow::CLIENT,
        flow::SECRET,
        &[
            ("grant_type", "password"),
            ("username", "admin@example.com"),
            ("password", "password"),
            ("scope", "openid offline_access"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sub = flow::claims(body["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_string();
    let refresh = body["refresh_token"].as_str().unwrap().to_string();

    let listed = api.list_refresh(ListRefreshReq { user_id: sub.clone() }).await.unwrap().into_inner();
    assert_eq!(listed.refresh_tokens.len(), 1, "{listed:?}");
    assert_eq!(listed.refresh_tokens[0].client_id, flow::CLIENT);
    assert!(listed.refresh_tokens[0].created_at > 0);

    let other = api
        .revoke_refresh(RevokeRefreshReq { user_id: sub.clone(), client_id: "second-app".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(other.not_found);
    let revoked = api
        .revoke_refresh(RevokeRefreshReq { user_id: sub.clone(), client_id: flow::CLIENT.into() })
        .await
        .unwrap()
        .into_inner();
    assert!(!revoked.not_found);
    let response = flow::refresh(&b, &refresh).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "the revoked token no longer refreshes");
    let listed = api.list_refresh(ListRefreshReq { user_id: sub }).await.unwrap().into_inner();
    assert!(listed.refresh_tokens.is_empty());
    let garbage = api.list_refresh(ListRefreshReq { user_id: "not-a-sub".into() }).await;
    assert_eq!(garbage.unwrap_err().code(), tonic::Code::Unknown);

    let discovery = api.get_discovery(DiscoveryReq {}).await.unwrap().into_inner();
    assert_eq!(discovery.issuer, b.issuer);
    assert_eq!(discovery.token_endpoint, b.url("/token"));
    assert!(discovery.grant_types_supported.contains(&"client_credentials".to_string()));
}

/// With `grpc.tlsClientCA` the API answers only clients with a certificate from that CA.
#[tokio::test]
async fn mutual_tls_admits_only_known_client_certificates() {
    use portcullis_tests::tls::{Ca, TlsFiles};
    let ca = Ca::new("portcullis test CA");
    let clients = Ca::new("portcullis client CA");
    let files = TlsFiles::new(&ca.server(1, 2040));
    let client_ca = files.cert.with_file_name("clients.pem");
    std::fs::write(&client_ca, &clients.pem).unwrap();
    let grpc = format!(
        "grpc:\n  addr: 127.0.0.1:0\n  tlsCert: {}\n  tlsKey: {}\n  tlsClientCA: {}\n  reflection: true\n",
        files.cert.display(),
        files.key.display(),
        client_ca.display()
    );
    let b = TestBroker::builder().extra(&grpc).start().await;
    let address = b.serve_api(false).await;
    let connect = |identity: Option<Identity>| {
        let address = address.clone();
        let ca = ca.pem.clone();
        async move {
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("127.0.0.1");
            if let Some(identity) = identity {
                tls = tls.identity(identity);
            }
            let channel = Channel::from_shared(format!("https://{address}")).unwrap().tls_config(tls).unwrap();
            match channel.connect().await {
                Ok(channel) => DexClient::new(channel).get_version(VersionReq {}).await.map(|r| r.into_inner().api),
                Err(e) => Err(tonic::Status::unavailable(e.to_string())),
            }
        }
    };
    let (cert, key) = clients.client_pem();
    assert_eq!(connect(Some(Identity::from_pem(cert, key))).await.unwrap(), 3);
    assert!(connect(None).await.is_err(), "no client certificate");
    let (cert, key) = Ca::new("another CA").client_pem();
    assert!(connect(Some(Identity::from_pem(cert, key))).await.is_err(), "a certificate from another CA");
}

/// Dex's own `examples/config-dev.yaml`, byte for byte as Dex ships it (`tests/config/good/`),
/// serves: its `grpc` block is read as Dex reads it, and a user created through the API logs in
/// with the password grant the file enables.
#[tokio::test]
async fn dexs_config_dev_serves_with_its_api() {
    let path = std::path::Path::new("config/good/dex-config-dev.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let as_shipped = portcullis::config::Config::from_yaml(path, &text, &|_| None).unwrap();
    assert_eq!(as_shipped.grpc.addr.as_deref(), Some("127.0.0.1:5557"));
    assert!(!as_shipped.grpc.reflection);
    assert_eq!(as_shipped.sessions.cookie_name, "dex_session");
    // Served on a free port and in memory, the rest as written.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = portcullis_tests::default_issuer(&listener);
    let yaml = text
        .replace("issuer: http://127.0.0.1:5556/dex", &format!("issuer: {issuer}"))
        .replace("  type: sqlite3\n  config:\n    file: examples/dex.db\n", "  type: memory\n")
        .replace("- type: mockCallback\n", &format!("- plugin: {}\n", portcullis_tests::plugin("mock").display()));
    let config = portcullis_tests::config_from_yaml(&yaml);
    let b = TestBroker::builder().listener(listener).issuer(&issuer).config(config).start().await;
    let mut api = client(&b.serve_api(false).await).await;
    let password = Password {
        email: "jane@example.com".into(),
        hash: HASH.as_bytes().to_vec(),
        username: "jane".into(),
        user_id: "jane-1".into(),
    };
    api.create_password(CreatePasswordReq { password: Some(password) }).await.unwrap();
    let (status, body) = token_as(
        &b,
        flow::CLIENT,
        flow::SECRET,
        &[("grant_type", "password"), ("username", "jane@example.com"), ("password", "password"), ("scope", "openid")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
