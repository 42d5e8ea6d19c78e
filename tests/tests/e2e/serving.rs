//! How the broker's listeners treat slow and numerous clients (audit finding F15): a client
//! that trickles its request head is cut off after the header-read timeout, and connections
//! over the cap wait for a free slot. Raw TCP on loopback, so nothing buffers for us.

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
