//! The on-disk cache of compiled components, keyed by the engine's compatibility hash and the
//! component file's sha256.
//!
//! # Security
//! Deserializing a compiled artifact runs native code, so only files this cache wrote are ever
//! loaded: the directory must belong to the broker's user and be writable by nobody else, each
//! entry must belong to the same user, and each carries a digest of its contents that is checked
//! before deserializing. Anything else is ignored and recompiled.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"PCWASM01";

/// Where compiled components are kept; `CompileCache::disabled()` keeps nothing.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    /// A cache under `dir` (created with mode 0700 when missing).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: Some(dir.into()) }
    }

    /// No disk cache: every load compiles.
    pub fn disabled() -> Self {
        Self { dir: None }
    }

    /// `$XDG_CACHE_HOME/portcullis` or `~/.cache/portcullis`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|base| base.join("portcullis"))
    }

    /// Narrows the cache to the subdirectory of this engine's compatibility hash.
    pub(crate) fn for_engine(self, engine: &Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let key = format!("engine-{:016x}", hasher.finish());
        Self { dir: self.dir.map(|d| d.join(key)) }
    }

    fn entry(&self, sha256: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{sha256}.cwasm")))
    }

    /// The compiled component for `sha256`, if this cache wrote a valid one.
    pub(crate) fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.entry(sha256)?;
        let dir = path.parent()?;
        if !owned_and_private(dir, true) || !owned_and_private(&path, false) {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        let payload = verified_payload(&bytes)?;
        // SAFETY: the bytes were written by `store` below (same owner, private directory, and
        // their digest matches), from `Component::serialize` of an engine with the same
        // compatibility hash.
        match unsafe { Component::deserialize(engine, payload) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!("ignoring compile cache entry {}: {e:#}", path.display());
                None
            }
        }
    }

    /// Writes `component` for `sha256`; failures are logged, never fatal.
    pub(crate) fn store(&self, sha256: &str, component: &Component) {
        let Some(path) = self.entry(sha256) else { return };
        if let Err(e) = write_entry(&path, component) {
            tracing::warn!("cannot write compile cache entry {}: {e:#}", path.display());
        }
    }
}

fn write_entry(path: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().ok_or_else(|| anyhow::anyhow!("no parent directory"))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    if !owned_and_private(dir, true) {
        anyhow::bail!("{} must belong to this user and not be writable by others", dir.display());
    }
    let payload = component.serialize()?;
    let mut bytes = Vec::with_capacity(payload.len() + 40);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&Sha256::digest(&payload));
    bytes.extend_from_slice(&payload);
    let tmp = dir.join(format!(".{}.{}.tmp", std::process::id(), rand_suffix()));
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn verified_payload(bytes: &[u8]) -> Option<&[u8]> {
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (digest, payload) = rest.split_at_checked(32)?;
    (Sha256::digest(payload)[..] == *digest).then_some(payload)
}

fn owned_and_private(path: &Path, is_dir: bool) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return false };
    let uid = current_uid();
    meta.is_dir() == is_dir && meta.uid() == uid && meta.permissions().mode() & 0o022 == 0
}

/// The uid this process runs as (the owner of `/proc/self`), without a libc call.
fn current_uid() -> u32 {
    static UID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UID.get_or_init(|| std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_digest_is_checked() {
        let payload = b"compiled".to_vec();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&Sha256::digest(&payload));
        bytes.extend_from_slice(&payload);
        assert_eq!(verified_payload(&bytes), Some(payload.as_slice()));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(verified_payload(&bytes), None);
        assert_eq!(verified_payload(b"PCWASM01short"), None);
        assert_eq!(verified_payload(b"\0asm\x0d\0\x01\0"), None);
    }
}
