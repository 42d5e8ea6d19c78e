//! `portcullis plugin inspect`: what a component file targets, exports and imports.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use super::bindings::{Contract, SUPPORTED_VERSIONS, WIT_PACKAGE};
use super::engine::PluginEngine;
use super::error::PluginError;
use super::loader;

/// A human-readable report on the component at `path`.
pub async fn report(engine: &Arc<PluginEngine>, path: &Path) -> Result<String, PluginError> {
    let compiled = loader::compile(engine, "inspect", path, None).await?;
    let (imports, exports) = compiled.interface_names(engine);
    let mut out = String::new();
    let _ = writeln!(out, "file:     {}", path.display());
    let _ = writeln!(out, "size:     {} bytes", compiled.size);
    let _ = writeln!(out, "sha256:   {}", compiled.sha256);
    let supported: Vec<String> = SUPPORTED_VERSIONS.iter().map(|v| format!("{WIT_PACKAGE}@{v}")).collect();
    let version = compiled.version(engine);
    let _ = match version.as_deref().map(|v| (v, Contract::of(v))) {
        Some((v, Some(contract))) => writeln!(
            out,
            "world:    {WIT_PACKAGE}/plugin@{v} (supported by this broker)\ncontract: {} (bindings {})",
            v,
            contract.version()
        ),
        Some((v, None)) => writeln!(
            out,
            "world:    {WIT_PACKAGE}/plugin@{v} (NOT supported: this broker supports {})",
            supported.join(", ")
        ),
        None => writeln!(out, "world:    none (no {WIT_PACKAGE}/connector export: not a Portcullis connector)"),
    };
    let _ = match version.as_deref().and_then(Contract::of) {
        Some(c) if c.has_token_exchange() => writeln!(
            out,
            "token exchange: exported (token-exchange.token-identity; describe's supports-token-identity says whether a configured connector accepts tokens)"
        ),
        Some(c) => writeln!(out, "token exchange: no (contract {} has no token-exchange export)", c.version()),
        None => Ok(()),
    };
    let _ = writeln!(out, "exports:");
    for name in exports {
        let _ = writeln!(out, "  {name}");
    }
    let _ = writeln!(out, "imports:");
    for name in imports {
        let _ = writeln!(out, "  {name}");
    }
    Ok(out)
}
