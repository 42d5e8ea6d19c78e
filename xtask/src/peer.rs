//! `cargo xtask bench --peer`: installs node-oidc-provider (pinned by `xtask/peer/package-lock.json`)
//! into `target/peer` with the machine's Node.js and npm, then runs the side-by-side bench
//! (`host/benches/peer.rs`), which starts the peer and our release binary and drives both.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The peer's version; `xtask/peer/package.json` pins it and its lockfile every dependency.
pub const PEER_VERSION: &str = "9.13.3";
/// The oldest Node.js node-oidc-provider 9 runs on.
const NODE_MIN: (u32, u32) = (20, 19);
/// The files of `xtask/peer/` copied next to the installed `node_modules`.
const FILES: &[&str] = &["package.json", "package-lock.json", "provider.mjs"];

pub fn run(root: &Path, extra: &[String]) -> anyhow::Result<()> {
    let dir = install(root)?;
    let status = crate::cargo_command()
        .current_dir(root)
        .args(["bench", "-p", "portcullis", "--bench", "peer"])
        .args(extra)
        .env("PEER_DIR", &dir)
        .status()
        .context("cannot run cargo bench")?;
    if !status.success() {
        bail!("the side-by-side bench failed");
    }
    Ok(())
}

/// `target/peer` with node-oidc-provider installed (`npm ci`, only when missing or changed).
fn install(root: &Path) -> anyhow::Result<PathBuf> {
    check_node()?;
    let source = root.join("xtask").join("peer");
    let dir = root.join("target").join("peer");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut changed = false;
    for file in FILES {
        let from = std::fs::read(source.join(file)).with_context(|| format!("cannot read xtask/peer/{file}"))?;
        let to = dir.join(file);
        if std::fs::read(&to).ok().as_deref() != Some(&from[..]) {
            std::fs::write(&to, &from).with_context(|| format!("cannot write {}", to.display()))?;
            changed = true;
        }
    }
    let installed = std::fs::read_to_string(dir.join("node_modules/oidc-provider/package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string));
    if changed || installed.as_deref() != Some(PEER_VERSION) {
        println!("installing node-oidc-provider {PEER_VERSION} into {} (npm ci)", dir.display());
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--omit=dev"])
            .current_dir(&dir)
            .status()
            .context("cannot run npm: install Node.js ≥ 20.19 with npm")?;
        if !status.success() {
            bail!("npm ci failed in {}: is the npm registry reachable?", dir.display());
        }
    }
    Ok(dir)
}

fn check_node() -> anyhow::Result<()> {
    let out = Command::new("node").arg("--version").output().context("cannot run node: install Node.js ≥ 20.19")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.trim().trim_start_matches('v').split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version < NODE_MIN {
        bail!("node {} is too old for node-oidc-provider {PEER_VERSION}: install Node.js ≥ 20.19", text.trim());
    }
    Ok(())
}
