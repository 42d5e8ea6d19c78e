//! Hot-reload latency: from writing a new config file to the first `login-url` served by the
//! new connector version, through the real file watcher (debounce included), with the compile
//! cache warm for the unchanged plugin. Baseline in the same run: the same `login-url` call
//! without any reload (what a login costs when nothing changes).
//!
//! Needs `target/plugins/mock.wasm` (`cargo xtask plugins`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a benchmark stops at its first failure")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::broker::Broker;
use portcullis::config::Config;
use portcullis::connectors::Scopes;

fn mock_wasm() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/mock.wasm");
    assert!(path.is_file(), "{} is missing: run `cargo xtask plugins` first", path.display());
    path.canonicalize().unwrap_or(path)
}

fn config(plugin: &Path, cache: &Path, version: u64) -> String {
    format!(
        r#"issuer: http://127.0.0.1:5556/dex
storage: {{type: memory}}
plugins: {{cacheDir: "{}"}}
staticClients:
- id: app
  secret: s
  redirectURIs: [http://127.0.0.1:5555/callback]
connectors:
- plugin: "{}"
  id: mock
  name: Example
  config:
    identity: {{userID: "v{version}", username: "Version {version}"}}
"#,
        cache.display(),
        plugin.display()
    )
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.yaml");
    let cache = dir.path().join("cache");
    let plugin = mock_wasm();
    std::fs::write(&file, config(&plugin, &cache, 0)).expect("write");
    let broker = runtime.block_on(async {
        let validated = Config::load(&file).expect("config");
        let broker = Broker::start(validated).await.expect("broker");
        broker.generations.spawn_reloaders();
        broker
    });
    std::thread::sleep(Duration::from_millis(300)); // the watcher arms

    let mut group = c.benchmark_group("reload");
    group.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    let mut version = 0;
    group.bench_function("file_change_to_first_login_url", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                version += 1;
                let before = broker.generations.current().generation;
                let started = Instant::now();
                std::fs::write(&file, config(&plugin, &cache, version)).expect("write");
                runtime.block_on(async {
                    while broker.generations.current().generation == before {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let live = broker.generations.current();
                    let mock = live.registry.get("mock").expect("mock");
                    mock.login_url(Scopes::default(), "http://127.0.0.1:5556/dex/callback/mock", "s")
                        .await
                        .expect("login-url");
                });
                total += started.elapsed();
            }
            total
        })
    });
    group.bench_function("login_url_without_reload", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let live = broker.generations.current();
                let mock = live.registry.get("mock").expect("mock");
                mock.login_url(Scopes::default(), "http://127.0.0.1:5556/dex/callback/mock", "s")
                    .await
                    .expect("login-url")
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
