//! Loading a component file: digest, pin check, compile (off the async runtime, through the
//! compile cache), contract version check, and the cached `InstancePre`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::bindings::{BindingsPre, Contract, SUPPORTED_VERSIONS, WIT_PACKAGE};
use super::engine::PluginEngine;
use super::error::PluginError;
use super::state::CallState;

/// The exported interface every connector must provide, without its version.
const EXPORT_PREFIX: &str = "portcullis:connector/connector@";

/// A compiled component, ready to be instantiated any number of times.
pub struct LoadedPlugin {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    /// The contract version the component targets.
    pub version: String,
    /// The bindings it was linked with.
    pub contract: Contract,
    /// How the compiled code was obtained, and how long that took.
    pub compiled: CompileSource,
    pub(crate) pre: BindingsPre<CallState>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Whether a load compiled the component or took it from the disk cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    Compiled(Duration),
    Cache(Duration),
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A compiled component not yet checked against the contract (what `plugin inspect` shows).
pub struct Compiled {
    pub sha256: String,
    pub size: u64,
    pub compiled: CompileSource,
    pub(crate) component: Component,
}

/// Reads `path`, checks the pin and the magic bytes, and compiles it (or takes it from the
/// compile cache) on a blocking thread.
pub async fn compile(
    engine: &Arc<PluginEngine>,
    connector: &str,
    path: &Path,
    pin: Option<&str>,
) -> Result<Compiled, PluginError> {
    let bytes = read(connector, path).await?;
    compile_bytes(engine, connector, path, bytes, pin).await
}

/// Reads a plugin file, naming the connector and path in the error.
pub async fn read(connector: &str, path: &Path) -> Result<Vec<u8>, PluginError> {
    tokio::fs::read(path).await.map_err(|e| PluginError::Read {
        connector: connector.into(),
        path: path.into(),
        reason: e.to_string(),
    })
}

/// `compile` for bytes already read from `path`.
pub async fn compile_bytes(
    engine: &Arc<PluginEngine>,
    connector: &str,
    path: &Path,
    bytes: Vec<u8>,
    pin: Option<&str>,
) -> Result<Compiled, PluginError> {
    let sha256 = sha256_hex(&bytes);
    if let Some(expected) = pin {
        let expected = expected.strip_prefix("sha256:").unwrap_or(expected).to_ascii_lowercase();
        if expected != sha256 {
            return Err(PluginError::DigestMismatch {
                connector: connector.into(),
                path: path.into(),
                expected,
                actual: sha256,
            });
        }
    }
    let not_component = |reason: &str| PluginError::NotAComponent {
        connector: connector.into(),
        path: path.into(),
        reason: reason.into(),
    };
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => {}
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
            return Err(not_component("it is a core WebAssembly module; wrap it with `wasm-tools component new`"));
        }
        _ => return Err(not_component("it does not start with the WebAssembly magic bytes")),
    }
    let size = bytes.len() as u64;
    let started = Instant::now();
    let (component, compiled) = match engine.cache.load(&engine.engine, &sha256) {
        Some(component) => (component, CompileSource::Cache(started.elapsed())),
        None => {
            let eng = engine.engine.clone();
            let component = tokio::task::spawn_blocking(move || Component::new(&eng, &bytes))
                .await
                .map_err(|e| not_component(&format!("the compiler crashed: {e}")))?
                .map_err(|e| compile_error(connector, path, &e))?;
            engine.cache.store(&sha256, &component);
            (component, CompileSource::Compiled(started.elapsed()))
        }
    };
    Ok(Compiled { sha256, size, compiled, component })
}

/// Why a file with the component magic bytes did not compile: a pool cap it exceeds (and the
/// `plugins.pool` key to raise), a feature the engine does not enable, or an invalid binary.
fn compile_error(connector: &str, path: &Path, error: &wasmtime::Error) -> PluginError {
    let reason = format!("{error:#}");
    let (connector, path) = (connector.to_string(), path.to_path_buf());
    if reason.contains("pooling allocator") {
        let key = [
            ("core module instances", "maxCoreInstancesPerComponent"),
            ("linear memories", "maxMemoriesPerComponent"),
            ("tables, which", "maxTablesPerComponent"),
        ]
        .into_iter()
        .find(|(what, _)| reason.contains(what))
        .map(|(_, key)| key);
        let fix = match key {
            Some(key) => format!("raise plugins.pool.{key} in the config and restart the broker"),
            None => "the component's memories or tables are larger than the pool's slots; make the plugin smaller"
                .to_string(),
        };
        return PluginError::PoolLimit { connector, path, reason, fix };
    }
    if reason.contains("feature") && (reason.contains("not enabled") || reason.contains("requires")) {
        return PluginError::Feature { connector, path, reason };
    }
    PluginError::NotAComponent { connector, path, reason }
}

/// `PluginError::MissingImport` when the linker lacks one of the component's imports, else
/// `PluginError::Link` with wasmtime's reason.
fn link_error(connector: &str, path: &Path, error: &wasmtime::Error) -> PluginError {
    let reason = format!("{error:#}");
    let (connector, path) = (connector.to_string(), path.to_path_buf());
    // wasmtime: "component imports instance `wasi:http/types@0.2.10`, but a matching
    // implementation was not found in the linker".
    if reason.contains("matching implementation was not found in the linker") {
        let import = reason.split('`').nth(1).map_or_else(|| reason.clone(), |name| format!("`{name}`"));
        return PluginError::MissingImport { connector, path, import };
    }
    PluginError::Link { connector, path, reason }
}

impl Compiled {
    /// The contract version the component's `connector` export names, if any.
    pub fn version(&self, engine: &PluginEngine) -> Option<String> {
        let ty = self.component.component_type();
        ty.exports(&engine.engine).find_map(|(name, _)| name.strip_prefix(EXPORT_PREFIX).map(str::to_string))
    }

    /// Names of the component's imports and exports.
    pub fn interface_names(&self, engine: &PluginEngine) -> (Vec<String>, Vec<String>) {
        let ty = self.component.component_type();
        let imports = ty.imports(&engine.engine).map(|(n, _)| n.to_string()).collect();
        let exports = ty.exports(&engine.engine).map(|(n, _)| n.to_string()).collect();
        (imports, exports)
    }
}

/// Whether this broker can run a component targeting contract `version`.
pub fn supported(version: &str) -> bool {
    Contract::of(version).is_some()
}

fn supported_versions() -> Vec<String> {
    SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect()
}

/// Reads, checks, compiles and links the component at `path` for connector `connector`.
pub async fn load(
    engine: &Arc<PluginEngine>,
    connector: &str,
    path: &Path,
    pin: Option<&str>,
) -> Result<LoadedPlugin, PluginError> {
    let bytes = read(connector, path).await?;
    load_bytes(engine, connector, path, bytes, pin).await
}

/// `load` for bytes already read from `path`.
pub async fn load_bytes(
    engine: &Arc<PluginEngine>,
    connector: &str,
    path: &Path,
    bytes: Vec<u8>,
    pin: Option<&str>,
) -> Result<LoadedPlugin, PluginError> {
    let compiled = compile_bytes(engine, connector, path, bytes, pin).await?;
    let version = compiled.version(engine).ok_or_else(|| PluginError::UnsupportedVersion {
        connector: connector.into(),
        path: path.into(),
        found: "no portcullis:connector/connector export".into(),
        supported: supported_versions(),
    })?;
    let contract = Contract::of(&version).ok_or_else(|| PluginError::UnsupportedVersion {
        connector: connector.into(),
        path: path.into(),
        found: format!("{WIT_PACKAGE}@{version}"),
        supported: supported_versions(),
    })?;
    let instance_pre =
        engine.linker.instantiate_pre(&compiled.component).map_err(|e| link_error(connector, path, &e))?;
    let pre = BindingsPre::new(contract, instance_pre).map_err(|e| link_error(connector, path, &e))?;
    let Compiled { sha256, size, compiled, .. } = compiled;
    Ok(LoadedPlugin { path: path.into(), sha256, size, version, contract, compiled, pre })
}

#[cfg(test)]
mod tests {
    use super::{Contract, supported};

    #[test]
    fn versions() {
        assert!(supported("0.1.0"));
        assert_eq!(Contract::of("0.1.0"), Some(Contract::V0_1));
        assert_eq!(Contract::of("0.2.0"), Some(Contract::V0_2));
        assert_eq!(Contract::of("0.3.0"), Some(Contract::V0_3));
        assert!(!supported("0.4.0"));
        assert!(!supported("9.0.0"));
        assert!(!supported("0.1.99"));
        assert!(!supported("1.1.0"));
        assert!(!supported("junk"));
    }
}
