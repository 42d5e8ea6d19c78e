//! Shared helpers for the end-to-end tests: where the built plugins are, and a plugin engine
//! with a private compile cache.

use std::path::PathBuf;
use std::sync::Arc;

use portcullis::connectors::{CompileCache, ConnectorSpec, LimitsConfig, PluginEngine};

/// A shipped plugin built by the build script, e.g. `plugin("mock")`.
pub fn plugin(name: &str) -> PathBuf {
    PathBuf::from(env!("PORTCULLIS_PLUGINS")).join(format!("{name}.wasm"))
}

/// A hostile fixture built by the build script, e.g. `fixture("hostile-loop")`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("PORTCULLIS_FIXTURES")).join(format!("{name}.wasm"))
}

/// A file under the repository root.
pub fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("PORTCULLIS_ROOT")).join(path)
}

/// The compile cache the tests share: compiled once per machine, like a real broker's.
pub fn test_cache() -> CompileCache {
    CompileCache::at(PathBuf::from(env!("PORTCULLIS_ROOT")).join("target").join("test-compile-cache"))
}

/// An engine with the shared test cache.
pub fn engine() -> Arc<PluginEngine> {
    PluginEngine::new(test_cache()).expect("engine")
}

/// A connector spec with no grants and default limits.
pub fn spec(id: &str, plugin: PathBuf, config: serde_json::Value) -> ConnectorSpec {
    ConnectorSpec {
        id: id.into(),
        name: id.into(),
        plugin,
        sha256: None,
        allowed_hosts: Vec::new(),
        limits: LimitsConfig::default(),
        config,
    }
}
