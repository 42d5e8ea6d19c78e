//! `portcullis plugin inspect`: what a component file targets, exports and imports.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

use super::bindings::{WIT_PACKAGE, WIT_VERSION};
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
    let _ = match compiled.version(engine) {
        Some(v) if loader::supported(&v) => {
            writeln!(out, "world:    {WIT_PACKAGE}/plugin@{v} (supported by this broker)")
        }
        Some(v) => writeln!(
            out,
            "world:    {WIT_PACKAGE}/plugin@{v} (NOT supported: this broker supports {WIT_PACKAGE}@{WIT_VERSION})"
        ),
        None => writeln!(out, "world:    none (no {WIT_PACKAGE}/connector export: not a Portcullis connector)"),
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
