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

/// The first bytes of a digest file (the version of this layout: the compiled file itself is
/// what `Component::serialize` wrote, so it can be mapped).
const MAGIC: &[u8; 8] = b"PCWASM02";

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

    /// The entry's compiled file and its digest file.
    fn entry(&self, sha256: &str) -> Option<(PathBuf, PathBuf)> {
        self.dir.as_ref().map(|d| (d.join(format!("{sha256}.cwasm")), d.join(format!("{sha256}.sha256"))))
    }

    /// The compiled component for `sha256`, if this cache wrote a valid one. The entry is
    /// mapped from the file (`Component::deserialize_file`), not copied: its code and memory
    /// images are shared with the page cache and only the pages a call touches become resident.
    pub(crate) fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let (path, digest) = self.entry(sha256)?;
        let dir = path.parent()?;
        if !owned_and_private(dir, true) || !owned_and_private(&path, false) || !owned_and_private(&digest, false) {
            return None;
        }
        let expected = std::fs::read(&digest).ok()?;
        let expected = expected.strip_prefix(MAGIC.as_slice())?;
        // Hashed by reading, not through the mapping, so the check adds nothing to the
        // process's resident memory.
        if file_digest(&path).ok()?[..] != *expected {
            tracing::warn!("ignoring compile cache entry {}: its digest does not match", path.display());
            return None;
        }
        // SAFETY: the file was written by `store` below (same owner, private directory, and its
        // digest matches), from `Component::serialize` of an engine with the same compatibility
        // hash; nobody but this user can change it while it is mapped.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!("ignoring compile cache entry {}: {e:#}", path.display());
                None
            }
        }
    }

    /// Writes `component` for `sha256`; failures are logged, never fatal.
    pub(crate) fn store(&self, sha256: &str, component: &Component) {
        let Some((path, digest)) = self.entry(sha256) else { return };
        if let Err(e) = write_entry(&path, &digest, component) {
            tracing::warn!("cannot write compile cache entry {}: {e:#}", path.display());
        }
    }
}

/// Writes the compiled payload, then its digest beside it: an entry without a matching digest
/// is never loaded, so a crash between the two renames leaves a miss, not a bad entry.
fn write_entry(path: &Path, digest: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().ok_or_else(|| anyhow::anyhow!("no parent directory"))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    if !owned_and_private(dir, true) {
        anyhow::bail!("{} must belong to this user and not be writable by others", dir.display());
    }
    let payload = component.serialize()?;
    let mut sum = MAGIC.to_vec();
    sum.extend_from_slice(&Sha256::digest(&payload));
    let _ = std::fs::remove_file(digest);
    write_atomically(dir, path, &payload)?;
    write_atomically(dir, digest, &sum)
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = dir.join(format!(".{}.{}.tmp", std::process::id(), rand_suffix()));
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// sha256 of a file, read in chunks.
fn file_digest(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(hasher.finalize().into())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
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
    fn file_digest_is_the_sha256_of_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(file_digest(&path).unwrap()[..], Sha256::digest(&bytes)[..]);
    }
}
