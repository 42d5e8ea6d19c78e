//! How the broker's listeners serve: slow and numerous clients (audit finding F15: a client
//! that trickles its request head is cut off after the header-read timeout, connections over
//! the cap wait for a free slot; raw TCP on loopback, so nothing buffers for us), HTTPS with
//! rustls (`web.https`: a test CA from rcgen, certificates renewed on disk, TLS versions, client
//! certificates), `web.headers`, `web.allowedHeaders` and `web.clientRemoteIP`.

use std::time::{Duration, Instant};

use portcullis_tests::TestBroker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection or `limit` passes; what it sent, and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

/// Slowloris: one header line a second, never the blank line that ends the head. The broker
/// (the real `web::serve`, 10 s header-read timeout) hangs up well before 40 s.
#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected() {
    let b = TestBroker::builder().start().await;
    let mut stream = TcpStream::connect(b.base.trim_start_matches("http://")).await.unwrap();
    stream.write_all(b"GET /dex/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let ended = loop {
        if started.elapsed() > Duration::from_secs(40) {
            break false;
        }
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            // Closed, reset, or an answer (408) instead of waiting for the rest of the head.
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(text.starts_with("HTTP/1.1 408"), "{text}");
                break true;
            }
            Err(_) => {}
        }
        if stream.write_all(b"X-Trickle: 1\r\n").await.is_err() {
            break true;
        }
    };
    assert!(ended, "a client trickling headers was still connected after {:?}", started.elapsed());
}

/// Over the connection cap, a new client waits: its request is answered only once a
/// connection in the cap closes. (A short header timeout, so the test does not wait 10 s.)
#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let limits = portcullis::web::ServeLimits {
        header_read_timeout: Duration::from_secs(30),
        request_timeout: Some(Duration::from_secs(30)),
        max_connections: 2,
    };
    tokio::spawn(portcullis::web::serve_with(listener, router, limits, std::future::pending()));

    // Two idle clients fill the cap (each sends a byte, so the server has surely accepted it).
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(b"G").await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(b"G").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let (early, _) = read_until_closed(&mut third, Duration::from_secs(1)).await;
    assert_eq!(early, "", "a third connection is not served while two hold the cap");

    drop(first);
    let (answer, closed) = read_until_closed(&mut third, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok") && closed, "{answer:?}");
    drop(second);
}

/// The header-read timeout in `ServeLimits` is what cuts a trickling client off, and a client
/// that sent nothing at all is closed too (the same timer runs on an idle connection).
#[tokio::test]
async fn the_header_timeout_closes_silent_and_slow_clients() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let limits = portcullis::web::ServeLimits { header_read_timeout: Duration::from_secs(1), ..Default::default() };
    tokio::spawn(portcullis::web::serve_with(listener, router, limits, std::future::pending()));

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(20)).await;
    assert!(closed, "a silent client is disconnected");

    // Keep-alive: after one answer, an idle connection is closed by the same timeout.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 200") && closed, "{answer:?}");
}

/// Shutdown stops accepting and lets the request in flight finish before `serve_with` returns.
#[tokio::test]
async fn shutdown_drains_the_request_in_flight() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "drained"
        }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(portcullis::web::serve_with(listener, router, Default::default(), async {
        let _ = stopped.await;
    }));
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let (answer, closed) = read_until_closed(&mut client, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("drained") && closed, "{answer:?}");
    tokio::time::timeout(Duration::from_secs(20), server).await.unwrap().unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "no longer listening");
}

// ---- web.https ----

use std::path::Path;

use portcullis_tests::flow;
use portcullis_tests::tls::{Ca, TlsFiles};
use reqwest::StatusCode;

/// A client that trusts only `ca` and reports the server's certificate; a fresh one is a new
/// connection.
fn tls_client(ca: &Ca) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .tls_info(true)
        .redirect(reqwest::redirect::Policy::none())
}

/// The certificate a new connection to `b` is served (DER), or the error.
async fn served_certificate(b: &portcullis_tests::TestBroker, ca: &Ca) -> Result<Vec<u8>, reqwest::Error> {
    let answer = tls_client(ca).build().unwrap().get(b.url("/healthz")).send().await?;
    assert_eq!(answer.status(), StatusCode::OK);
    let info = answer.extensions().get::<reqwest::tls::TlsInfo>().expect("tls info");
    Ok(info.peer_certificate().expect("a peer certificate").to_vec())
}

/// Over HTTPS, a client trusting only the test CA reads discovery and logs in (form, code,
/// token); one trusting only the public roots does not get through.
#[tokio::test]
async fn https_serves_discovery_and_a_login() {
    let ca = Ca::new("portcullis test CA");
    let files = TlsFiles::new(&ca.server(1, 2040));
    let b = TestBroker::builder().extra(&files.web("")).https().start().await;
    assert!(b.issuer.starts_with("https://"), "{}", b.issuer);

    let discovery: serde_json::Value = tls_client(&ca)
        .build()
        .unwrap()
        .get(b.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], b.issuer.as_str());
    let untrusting = reqwest::Client::new().get(b.url("/healthz")).send().await;
    assert!(untrusting.is_err(), "a client without the test CA must not accept the certificate");

    let web = tls_client(&ca).cookie_store(true).build().unwrap();
    let (form, pending) = flow::authorize(&b, &web, "local", "openid email").await;
    let form = form.text().await.unwrap();
    let done = flow::submit_password(&b, &web, "local", &form, "admin@example.com", "password").await;
    let code = flow::finish(&b, &web, done, &pending).await;
    let tokens = web
        .post(b.url("/token"))
        .basic_auth(flow::CLIENT, Some(flow::SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", flow::CALLBACK),
            ("code_verifier", pending.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: serde_json::Value = tokens.json().await.unwrap();
    assert_eq!(flow::claims(tokens["id_token"].as_str().unwrap())["iss"], b.issuer.as_str());
}

/// Waits (up to 10 s) until a new connection is served `want`; the certificate last seen.
async fn wait_for_certificate(b: &portcullis_tests::TestBroker, ca: &Ca, want: &[u8]) -> Vec<u8> {
    let started = Instant::now();
    loop {
        let seen = served_certificate(b, ca).await.expect("served over TLS");
        if seen == want || started.elapsed() > Duration::from_secs(10) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Renewed files on disk are served to new connections without a restart; a broken renewal
/// (a key that is not PEM, a key that does not match the certificate) leaves the working pair
/// serving, and fixing it is picked up too.
#[tokio::test]
async fn renewed_certificates_are_served_and_broken_ones_ignored() {
    let ca = Ca::new("portcullis test CA");
    let first = ca.server(1, 2040);
    let files = TlsFiles::new(&first);
    let b = TestBroker::builder().extra(&files.web("")).https().start().await;
    assert_eq!(served_certificate(&b, &ca).await.unwrap(), first.der);

    let renewed = ca.server(2, 2041);
    files.write(Some(&renewed.pem), Some(&renewed.key));
    assert_eq!(wait_for_certificate(&b, &ca, &renewed.der).await, renewed.der, "the renewed certificate is served");

    // A key file that is not a key, then a certificate whose key is not the one on disk.
    let third = ca.server(3, 2042);
    files.write(None, Some("not a key\n"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(served_certificate(&b, &ca).await.unwrap(), renewed.der, "an unreadable key changes nothing");
    files.write(Some(&third.pem), Some(&renewed.key));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(served_certificate(&b, &ca).await.unwrap(), renewed.der, "a mismatched pair changes nothing");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(served_certificate(&b, &ca).await.unwrap(), renewed.der, "still the working pair");

    files.write(None, Some(&third.key));
    assert_eq!(wait_for_certificate(&b, &ca, &third.der).await, third.der, "the repaired pair is served");
}

/// `tlsMinVersion: 1.3` refuses a client that speaks at most TLS 1.2, and serves one that
/// speaks 1.3; by default (1.2) the 1.2 client is served. Unquoted, as Dex's `config.yaml.dist`
/// writes it (YAML reads a number; Dex, and we, take it as the version).
#[tokio::test]
async fn tls_min_version_refuses_older_clients() {
    let ca = Ca::new("portcullis test CA");
    let files = TlsFiles::new(&ca.server(1, 2040));
    let strict = TestBroker::builder().extra(&files.web("  tlsMinVersion: 1.3\n")).https().start().await;
    let old_client = || tls_client(&ca).max_tls_version(reqwest::tls::Version::TLS_1_2).build().unwrap();
    let refused = old_client().get(strict.url("/healthz")).send().await;
    assert!(refused.is_err(), "a TLS 1.2 client is refused: {refused:?}");
    assert!(served_certificate(&strict, &ca).await.is_ok(), "a TLS 1.3 client is served");

    let default = TestBroker::builder().extra(&files.web("")).https().start().await;
    let served = old_client().get(default.url("/healthz")).send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK, "TLS 1.2 is accepted by default");
}

/// `tlsClientCA`: a client without a certificate, or with one from another CA, is refused; one
/// with a certificate from that CA is served.
#[tokio::test]
async fn tls_client_ca_requires_a_client_certificate() {
    let ca = Ca::new("portcullis test CA");
    let clients = Ca::new("portcullis client CA");
    let files = TlsFiles::new(&ca.server(1, 2040));
    let dir = tempfile::tempdir().unwrap();
    let client_ca = dir.path().join("clients.pem");
    std::fs::write(&client_ca, &clients.pem).unwrap();
    let extra = files.web(&format!("  tlsClientCA: {}\n", client_ca.display()));
    let b = TestBroker::builder().extra(&extra).https().start().await;

    let anonymous = tls_client(&ca).build().unwrap().get(b.url("/healthz")).send().await;
    assert!(anonymous.is_err(), "no client certificate: refused ({anonymous:?})");
    let stranger = tls_client(&ca).identity(Ca::new("another CA").client()).build().unwrap();
    assert!(stranger.get(b.url("/healthz")).send().await.is_err(), "a certificate from another CA: refused");
    let known = tls_client(&ca).identity(clients.client()).build().unwrap();
    let answer = known.get(b.url("/healthz")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
}

// ---- web.headers, web.allowedHeaders ----

/// `web.headers` values replace the defaults on every response (a page, a JSON answer, a 404);
/// headers the operator did not set keep theirs. `web.allowedHeaders` are offered in CORS
/// preflights beside `Authorization`.
#[tokio::test]
async fn operator_headers_and_cors_headers_are_served() {
    let b = TestBroker::builder()
        .extra(
            r#"
web:
  allowedOrigins: ["https://app.example.com"]
  allowedHeaders: [X-Requested-With]
  headers:
    Content-Security-Policy: "default-src 'self'"
    X-Frame-Options: SAMEORIGIN
    X-XSS-Protection: "1; mode=block"
    Strict-Transport-Security: "max-age=60"
"#,
        )
        .start()
        .await;
    let web = reqwest::Client::new();
    for path in ["/.well-known/openid-configuration", "/auth?client_id=nobody", "/no-such-page"] {
        let answer = web.get(b.url(path)).send().await.unwrap();
        let h = answer.headers();
        assert_eq!(h["content-security-policy"], "default-src 'self'", "{path}");
        assert_eq!(h["x-frame-options"], "SAMEORIGIN", "{path}");
        assert_eq!(h["x-xss-protection"], "1; mode=block", "{path}");
        assert_eq!(h["strict-transport-security"], "max-age=60", "{path}: set even on an http issuer, as asked");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}: not set by the operator, our default");
    }
    let preflight = web
        .request(reqwest::Method::OPTIONS, b.url("/token"))
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "x-requested-with")
        .send()
        .await
        .unwrap();
    let allowed = preflight.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed.contains("x-requested-with") && allowed.contains("authorization"), "{allowed}");
}

// ---- web.clientRemoteIP ----

/// How many `GET /auth` from this test's peer (127.0.0.1), each with `forwarded` as
/// X-Forwarded-For, are answered before one is throttled (at most 20).
async fn answered_before_throttled(b: &TestBroker, forwarded: &mut dyn FnMut() -> String) -> usize {
    let web = reqwest::Client::new();
    for n in 0..20 {
        let answer = web.get(b.url("/auth")).header("X-Forwarded-For", forwarded()).send().await.unwrap();
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            return n;
        }
    }
    20
}

/// Behind a trusted proxy (the test's own 127.0.0.1), the throttle counts per forwarded
/// client: two addresses get a budget each, and a forged hop left of the real one changes
/// nothing. From a peer that is not a trusted proxy the header is ignored.
#[tokio::test]
async fn the_forwarded_address_of_a_trusted_proxy_is_the_client() {
    let web = |proxies: &str| {
        format!(
            "web:\n  throttle: {{authorizePerIP: 3}}\n  clientRemoteIP:\n    header: X-Forwarded-For\n    trustedProxies: [{proxies}]\n"
        )
    };
    let b = TestBroker::builder().extra(&web("127.0.0.1/32, 10.0.0.0/8")).start().await;
    // A burst of 3 (the refill, 2 a second, may add one on a slow machine).
    let burst = 3..=4;
    let first = answered_before_throttled(&b, &mut || "198.51.100.1".into()).await;
    assert!(burst.contains(&first), "{first}");
    let second = answered_before_throttled(&b, &mut || "198.51.100.2, 10.0.0.7".into()).await;
    assert!(burst.contains(&second), "another forwarded client has a budget of its own: {second}");
    let mut n = 0;
    let mut forged = || {
        n += 1;
        format!("192.0.2.{n}, 198.51.100.1")
    };
    let spent = answered_before_throttled(&b, &mut forged).await;
    assert!(spent <= 1, "198.51.100.1 spent its budget, whatever is forged left of it: {spent}");

    let untrusted = TestBroker::builder().extra(&web("10.0.0.0/8")).start().await;
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        format!("198.51.100.{n}")
    };
    let counted = answered_before_throttled(&untrusted, &mut fresh).await;
    assert!(burst.contains(&counted), "an untrusted peer's header is ignored: {counted}");
}

/// A TLS handshake is bounded by the header-read timeout: a client that connects and never
/// finishes its ClientHello is cut off and frees its slot.
#[tokio::test]
async fn a_stalled_tls_handshake_is_cut_off() {
    let ca = Ca::new("portcullis test CA");
    let files = TlsFiles::new(&ca.server(1, 2040));
    let web = portcullis::config::WebConfig {
        https: Some("127.0.0.1:0".into()),
        tls_cert: Some(files.cert.display().to_string()),
        tls_key: Some(files.key.display().to_string()),
        ..Default::default()
    };
    let tls = portcullis::web::tls::server_config(&web).unwrap().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let limits = portcullis::web::ServeLimits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 1,
        ..Default::default()
    };
    tokio::spawn(portcullis::web::serve_tls(listener, router, tls, limits, std::future::pending()));

    // The first bytes of a TLS record header, then nothing.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut stalled, Duration::from_secs(20)).await;
    assert!(closed && started.elapsed() < Duration::from_secs(10), "cut off after {:?}", started.elapsed());
    // The only slot is free again: a real client is served.
    let client = tls_client(&ca).build().unwrap();
    let answer = client.get(format!("https://{addr}/")).send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "ok");
}

/// Bad certificate files at start are config errors naming the key, the file and the fault.
#[test]
fn bad_certificate_files_are_named_at_start() {
    let ca = Ca::new("portcullis test CA");
    let (one, two) = (ca.server(1, 2040), ca.server(2, 2040));
    let files = TlsFiles::new(&one);
    let error = |cert: &Path, key: &Path| {
        let web = portcullis::config::WebConfig {
            https: Some("127.0.0.1:0".into()),
            tls_cert: Some(cert.display().to_string()),
            tls_key: Some(key.display().to_string()),
            ..Default::default()
        };
        portcullis::web::tls::server_config(&web).expect_err("refused").to_string()
    };
    let missing = files.cert.with_file_name("missing.crt");
    assert_eq!(
        error(&missing, &files.key),
        format!("web.tlsCert: {}: cannot read the file (No such file or directory (os error 2))", missing.display())
    );
    files.write(Some("hello\n"), None);
    assert!(
        error(&files.cert, &files.key).starts_with(&format!("web.tlsCert: {}: no certificate", files.cert.display()))
    );
    files.write(Some(&one.pem), Some(&two.key));
    let mismatch = error(&files.cert, &files.key);
    assert!(
        mismatch.starts_with(&format!("web.tlsKey: {}: does not match the certificate in", files.key.display())),
        "{mismatch}"
    );
}
