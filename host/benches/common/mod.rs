//! What the whole-server benches (`server.rs`, `peer.rs`) share: the repository root, free
//! ports, a process's CPU time from `/proc`, the HTTP client and PKCE challenge of their drivers,
//! and the signature floor measured in the same run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

/// The PKCE verifier every benchmarked login sends.
pub const VERIFIER: &str = "bench-verifier-0123456789-0123456789-0123456789-abcdef";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// User + system CPU time of `pid` (`self` for this process) from `/proc/<pid>/stat`.
pub fn cpu_time(pid: impl std::fmt::Display) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`, which may contain spaces.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// A client that does not follow redirects (the drivers follow them themselves).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The S256 challenge of [`VERIFIER`].
pub fn challenge() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(portcullis::oidc::pkce::sha256(VERIFIER.as_bytes()))
}

/// The median time of one `Keys::sign` of an ID-token-sized claim set with `alg`, over 301 runs.
pub async fn signature_cost(alg: &str) -> Duration {
    let store = portcullis::storage::Store::new(Arc::new(portcullis::storage::MemoryBackend::new()));
    let keys = portcullis::keys::Keys::new(
        store,
        alg.parse().expect("algorithm"),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    keys.refresh(0).await.expect("keys");
    let claims = json!({
        "iss": "http://127.0.0.1:5556/dex", "sub": "CgcyMzQyNzQ5EgZnaXRodWI", "aud": "example-app",
        "exp": 4_000_000_000u64, "iat": 1_700_000_000u64, "email": "admin@example.com", "email_verified": true,
        "name": "admin", "groups": ["authors"],
    });
    let mut times: Vec<Duration> = (0..301)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(keys.sign(&claims, "JWT").expect("sign"));
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// The median time of one RS256 signature of the same bytes by `ring` (what `Keys` signed
/// with before aws-lc-rs; still in the tree as rustls' provider), over 301 runs: the before
/// beside the after, in the same run.
#[allow(dead_code, reason = "peer.rs reports it; server.rs shares this module")]
pub fn ring_rs256_cost() -> Duration {
    let key = portcullis::keys::new_key("RS256".parse().expect("algorithm")).expect("key");
    let body: String = key.private_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).expect("PEM");
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("RSA key");
    let rng = ring::rand::SystemRandom::new();
    // An ID-token-sized signing input (header.payload, base64url).
    let input = vec![b'e'; 600];
    let mut sig = vec![0; pair.public().modulus_len()];
    let mut times: Vec<Duration> = (0..301)
        .map(|_| {
            let t = Instant::now();
            pair.sign(&ring::signature::RSA_PKCS1_SHA256, &rng, &input, &mut sig).expect("sign");
            std::hint::black_box(&sig);
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
