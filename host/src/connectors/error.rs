//! Every way a connector call or load can fail, each carrying the connector id.

use std::path::PathBuf;
use std::time::Duration;

use super::types::Refusal;

/// A failed connector load or call. The broker keeps serving every other connector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    #[error("connector {connector:?}: cannot read plugin {path}: {reason}")]
    Read { connector: String, path: PathBuf, reason: String },
    #[error(
        "connector {connector:?}: {path} is not a WebAssembly component ({reason}); build the plugin with `cargo build --target wasm32-wasip2`, componentize-py or componentize-js (docs/writing-connectors.md)"
    )]
    NotAComponent { connector: String, path: PathBuf, reason: String },
    /// A valid component that needs more of the pooling allocator than one component may use.
    #[error("connector {connector:?}: {path} needs more than the engine gives one component ({reason}); {fix}")]
    PoolLimit { connector: String, path: PathBuf, reason: String, fix: String },
    /// A valid component using a WebAssembly feature this broker does not enable.
    #[error(
        "connector {connector:?}: {path} uses a WebAssembly feature this broker does not enable ({reason}); rebuild the plugin without it (docs/writing-connectors.md lists what each toolchain needs)"
    )]
    Feature { connector: String, path: PathBuf, reason: String },
    /// A component importing something the broker does not provide.
    #[error(
        "connector {connector:?}: {path} imports {import}, which this broker does not provide; it provides portcullis:connector's imports, WASI 0.2 (stdout and stderr only; no files, sockets or environment) and wasi:http (only to allowedHosts): rebuild the plugin without that import"
    )]
    MissingImport { connector: String, path: PathBuf, import: String },
    #[error(
        "connector {connector:?}: {path} has sha256 {actual} but the config pins sha256:{expected}; rebuild or re-pin the plugin"
    )]
    DigestMismatch { connector: String, path: PathBuf, expected: String, actual: String },
    #[error(
        "connector {connector:?}: {path} targets {found} but this broker supports {}; rebuild the plugin against wit/{} (any patch up to the one named is accepted)",
        versions(.supported),
        .supported.last().map(String::as_str).unwrap_or_default()
    )]
    UnsupportedVersion { connector: String, path: PathBuf, found: String, supported: Vec<String> },
    #[error("connector {connector:?}: {path} cannot be instantiated: {reason}")]
    Link { connector: String, path: PathBuf, reason: String },
    #[error(
        "connector {connector:?}: {call} exceeded its deadline of {limit:?}; raise limits.callDeadline or fix the plugin"
    )]
    Deadline { connector: String, call: &'static str, limit: Duration },
    #[error(
        "connector {connector:?}: {call} exceeded its memory limit of {limit_mib} MiB; raise limits.memoryMiB or fix the plugin"
    )]
    Memory { connector: String, call: &'static str, limit_mib: u64 },
    #[error("connector {connector:?}: {call} was denied a capability: {detail}")]
    CapabilityDenied { connector: String, call: &'static str, detail: String },
    #[error(
        "connector {connector:?}: {call} made more than {limit} host calls; raise limits.maxHostCalls or fix the plugin"
    )]
    HostCallLimit { connector: String, call: &'static str, limit: u32 },
    #[error("connector {connector:?}: {call} trapped: {detail}")]
    Trap { connector: String, call: &'static str, detail: String },
    #[error("connector {connector:?}: {call}: {refusal}")]
    Refused { connector: String, call: &'static str, refusal: Refusal },
}

/// `portcullis:connector@0.1.0, portcullis:connector@0.2.0 and portcullis:connector@0.3.0`.
fn versions(supported: &[String]) -> String {
    let named: Vec<String> = supported.iter().map(|v| format!("portcullis:connector@{v}")).collect();
    match named.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => "no contract version".into(),
    }
}

impl PluginError {
    /// The connector the error belongs to.
    pub fn connector(&self) -> &str {
        match self {
            Self::Read { connector, .. }
            | Self::NotAComponent { connector, .. }
            | Self::PoolLimit { connector, .. }
            | Self::Feature { connector, .. }
            | Self::MissingImport { connector, .. }
            | Self::DigestMismatch { connector, .. }
            | Self::UnsupportedVersion { connector, .. }
            | Self::Link { connector, .. }
            | Self::Deadline { connector, .. }
            | Self::Memory { connector, .. }
            | Self::CapabilityDenied { connector, .. }
            | Self::HostCallLimit { connector, .. }
            | Self::Trap { connector, .. }
            | Self::Refused { connector, .. } => connector,
        }
    }

    /// The connector's own refusal, if that is what this is.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Refused { refusal, .. } => Some(refusal),
            _ => None,
        }
    }
}
