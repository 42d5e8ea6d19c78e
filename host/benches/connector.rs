//! Connector call and load costs: the mock's `login-url` in a fresh instance against the same
//! work done natively, and compiling a component against loading it from the compile cache;
//! and the same mock in Python (componentize-py), JavaScript on QuickJS (the JS kit) and on
//! StarlingMonkey, beside the Rust one in the same run: a fresh-instance `login-url`, the
//! compile-cache load, and the process's resident memory with one Python and one JS
//! connector loaded (`target/bench/lang.json`).
//!
//! Needs `target/plugins/mock.wasm`, `mock-python.wasm`, `mock-js.wasm` and
//! `target/plugins/test/mock-js-starlingmonkey.wasm` (`cargo xtask plugins` and the test
//! fixtures); `cargo xtask bench` builds them, runs this and prints a summary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a benchmark stops at its first failure")]

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use portcullis::connectors::{
    CompileCache, ConnectorSpec, LimitsConfig, LoginRedirect, PluginEngine, Registry, Scopes, loader,
};
use serde::Deserialize;

const CALLBACK_URL: &str = "https://broker.example.com/callback";
/// A state with characters that need percent-encoding, so the encoder does some work.
const STATE: &str = "Zm9vYmFy-c3RhdGU_0123456789~/+= ok";

/// The mock connector built by `cargo xtask plugins`.
fn mock_wasm() -> PathBuf {
    built("mock.wasm")
}

/// The mock in other languages: (bench label, file under `target/plugins`).
const LANGS: &[(&str, &str)] = &[
    ("python", "mock-python.wasm"),
    ("quickjs", "mock-js.wasm"),
    ("starlingmonkey", "test/mock-js-starlingmonkey.wasm"),
];

/// A file `cargo xtask bench` builds under `target/plugins`.
fn built(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins").join(name);
    if !path.is_file() {
        eprintln!(
            "error: {} is missing: run `cargo xtask plugins` first (or `cargo xtask bench`, which builds it)",
            path.display()
        );
        std::process::exit(1);
    }
    path.canonicalize().unwrap_or(path)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

fn spec(plugin: PathBuf) -> ConnectorSpec {
    ConnectorSpec {
        id: "mock".into(),
        name: "Mock".into(),
        plugin,
        sha256: None,
        kind: None,
        allowed_hosts: Some(Vec::new()),
        signing_keys: None,
        limits: LimitsConfig::default(),
        config: serde_json::json!({}),
        client_cert: None,
    }
}

/// The native baseline: what the mock does for `login-url`, as plain Rust (same config struct,
/// same JSON parse on every call, same URL building and encoding).
mod native {
    use super::*;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        #[serde(default)]
        mode: Mode,
        #[serde(default)]
        identity: MockIdentity,
        username: Option<String>,
        password: Option<String>,
        prompt: Option<String>,
    }

    #[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Callback,
        Password,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct MockIdentity {
        #[serde(rename = "userID")]
        user_id: String,
        username: String,
        preferred_username: Option<String>,
        email: Option<String>,
        #[serde(default = "default_true")]
        email_verified: bool,
        #[serde(default)]
        groups: Vec<String>,
    }

    fn default_true() -> bool {
        true
    }

    impl Default for MockIdentity {
        fn default() -> Self {
            MockIdentity {
                user_id: "0-385-28089-0".to_string(),
                username: "Kilgore Trout".to_string(),
                preferred_username: Some("kilgore".to_string()),
                email: Some("kilgore@kilgore.trout".to_string()),
                email_verified: true,
                groups: vec!["authors".to_string()],
            }
        }
    }

    /// The SDK's `url::encode`: everything but the RFC 3986 unreserved set is percent-encoded.
    fn encode(s: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = String::with_capacity(s.len());
        for &b in s.as_bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
        out
    }

    /// The SDK's `url::with_query` for one pair.
    fn with_query(base: &str, key: &str, value: &str) -> String {
        let (head, fragment) = match base.split_once('#') {
            Some((head, fragment)) => (head, Some(fragment)),
            None => (base, None),
        };
        let mut out = String::from(head);
        if !out.contains('?') {
            out.push('?');
        } else if !out.ends_with('?') && !out.ends_with('&') {
            out.push('&');
        }
        out.push_str(&encode(key));
        out.push('=');
        out.push_str(&encode(value));
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
        out
    }

    pub fn login_url(
        config_json: &str,
        _scopes: Scopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, String> {
        let config: Config = serde_json::from_str(config_json).map_err(|e| e.to_string())?;
        if config.mode != Mode::Callback {
            return Err("login-url is not available in mode \"password\"".into());
        }
        Ok(LoginRedirect {
            url: with_query(callback_url, "state", state),
            state_data: Some(b"mock-login".to_vec()),
            post_form: None,
        })
    }
}

fn login_url(c: &mut Criterion) {
    let rt = runtime();
    let cache = tempfile::tempdir().expect("temporary directory");
    let engine = PluginEngine::new(CompileCache::at(cache.path())).expect("plugin engine");
    let registry = rt.block_on(Registry::load(&engine, &[spec(mock_wasm())], None)).expect("load the mock connector");
    let connector = registry.get("mock").expect("the mock connector").clone();
    let config_json = serde_json::json!({}).to_string();

    // Both sides must do the same work.
    let wasm = rt.block_on(connector.login_url(Scopes::default(), CALLBACK_URL, STATE)).expect("wasm login-url");
    let native = native::login_url(&config_json, Scopes::default(), CALLBACK_URL, STATE).expect("native login-url");
    assert_eq!(wasm, native, "the native baseline must produce what the mock produces");

    let mut group = c.benchmark_group("login_url");
    group.bench_function("wasm_fresh_instance", |b| {
        b.to_async(&rt).iter(|| async {
            std::hint::black_box(
                connector
                    .login_url(Scopes::default(), std::hint::black_box(CALLBACK_URL), std::hint::black_box(STATE))
                    .await
                    .expect("login-url"),
            )
        })
    });
    group.bench_function("native", |b| {
        b.iter(|| {
            std::hint::black_box(
                native::login_url(
                    std::hint::black_box(&config_json),
                    Scopes::default(),
                    std::hint::black_box(CALLBACK_URL),
                    std::hint::black_box(STATE),
                )
                .expect("login-url"),
            )
        })
    });
    group.finish();
    drop(registry);
}

fn component(c: &mut Criterion) {
    let rt = runtime();
    let path = mock_wasm();
    let uncached = PluginEngine::new(CompileCache::disabled()).expect("plugin engine");
    let cache = tempfile::tempdir().expect("temporary directory");
    let cached = PluginEngine::new(CompileCache::at(cache.path())).expect("plugin engine");
    // Warm the cache, and check that it is warm.
    rt.block_on(loader::compile(&cached, "mock", &path, None)).expect("compile the mock");
    let again = rt.block_on(loader::compile(&cached, "mock", &path, None)).expect("load the mock");
    assert!(matches!(again.compiled, loader::CompileSource::Cache(_)), "the compile cache is not warm");

    let mut group = c.benchmark_group("component");
    group.sample_size(10).sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(5));
    group.bench_function("compile", |b| {
        b.to_async(&rt).iter(|| async {
            let compiled = loader::compile(&uncached, "mock", &path, None).await.expect("compile");
            debug_assert!(matches!(compiled.compiled, loader::CompileSource::Compiled(_)));
            compiled
        })
    });
    group.sample_size(50).sampling_mode(SamplingMode::Auto).measurement_time(Duration::from_secs(4));
    group.bench_function("cache_load", |b| {
        b.to_async(&rt).iter(|| async {
            let loaded = loader::compile(&cached, "mock", &path, None).await.expect("cache load");
            debug_assert!(matches!(loaded.compiled, loader::CompileSource::Cache(_)));
            loaded
        })
    });
    group.finish();
}

/// The mock of each language beside the Rust one: a fresh-instance `login-url` (same answer
/// checked first), then the process's resident memory with one Python and one JS connector.
fn languages(c: &mut Criterion) {
    let rt = runtime();
    let cache = tempfile::tempdir().expect("temporary directory");
    let engine = PluginEngine::new(CompileCache::at(cache.path())).expect("plugin engine");
    let rss_before = rss_bytes();
    let rust = rt.block_on(Registry::load(&engine, &[spec(mock_wasm())], None)).expect("load the Rust mock");
    let expected = rt.block_on(rust.get("mock").unwrap().login_url(Scopes::default(), CALLBACK_URL, STATE)).unwrap();
    let mut group = c.benchmark_group("login_url");
    cpu_per_call(&mut group, &rt, "rust", rust.get("mock").expect("the Rust mock"));
    let mut rss_loaded = None;
    let mut loaded = Vec::new();
    for (label, file) in LANGS {
        let registry = rt.block_on(Registry::load(&engine, &[spec(built(file))], None)).expect("load the mock");
        let connector = registry.get("mock").expect("the mock connector").clone();
        let answer = rt.block_on(connector.login_url(Scopes::default(), CALLBACK_URL, STATE)).expect("login-url");
        assert_eq!(answer, expected, "{label}: the port must answer what the Rust mock answers");
        group.bench_function(format!("{label}_fresh_instance"), |b| {
            b.to_async(&rt).iter(|| async {
                std::hint::black_box(
                    connector
                        .login_url(Scopes::default(), std::hint::black_box(CALLBACK_URL), std::hint::black_box(STATE))
                        .await
                        .expect("login-url"),
                )
            })
        });
        cpu_per_call(&mut group, &rt, label, &connector);
        if *label == "quickjs" {
            // Python (loaded first, kept in `loaded`) and the JS kit are both loaded and have run.
            rss_loaded = Some(rss_bytes());
        }
        loaded.push(registry);
    }
    group.finish();
    drop(loaded);
    let (before, with_langs) = (rss_before.unwrap_or(0), rss_loaded.flatten().unwrap_or(0));
    let json = format!(
        "{{\"rss_before_mib\":{:.1},\"rss_python_and_js_loaded_mib\":{:.1},\"rss_delta_mib\":{:.1}}}",
        mib(before),
        mib(with_langs),
        mib(with_langs.saturating_sub(before))
    );
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(out.join("lang.json"), &json).expect("write target/bench/lang.json");
    eprintln!("resident memory: {json}");

    let mut group = c.benchmark_group("component");
    group.sample_size(20).sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(4));
    for (label, file) in LANGS {
        let path = built(file);
        let warm = rt.block_on(loader::compile(&engine, "mock", &path, None)).expect("load");
        assert!(matches!(warm.compiled, loader::CompileSource::Cache(_)), "{label}: the compile cache is not warm");
        group.bench_function(format!("cache_load_{label}"), |b| {
            b.to_async(&rt).iter(|| async { loader::compile(&engine, "mock", &path, None).await.expect("cache load") })
        });
    }
    group.finish();
    drop(rust);
}

/// `login-url` on a fresh instance timed by the process's CPU (all threads), which a busy
/// machine disturbs far less than wall time: what one call costs, not how long it waited.
fn cpu_per_call(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    label: &str,
    connector: &std::sync::Arc<portcullis::connectors::Connector>,
) {
    group.bench_function(format!("{label}_fresh_instance_cpu"), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let connector = connector.clone();
            async move {
                let before = process_cpu();
                for _ in 0..iters {
                    let answer = connector.login_url(Scopes::default(), CALLBACK_URL, STATE).await;
                    std::hint::black_box(answer.expect("login-url"));
                }
                process_cpu().saturating_sub(before)
            }
        })
    });
}

/// CPU time of this process, all threads (`CLOCK_PROCESS_CPUTIME_ID`, exact to the
/// nanosecond: `/proc`'s counters only move at scheduler ticks, too coarse for one sample).
fn process_cpu() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant Linux provides.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// The process's resident set (`/proc/self/statm`), in bytes.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = login_url, component, languages
}
criterion_main!(benches);
