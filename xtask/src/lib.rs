//! Building the WebAssembly guests, shared by `cargo xtask` and the tests' build script.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub mod kits;
pub use kits::{KIT_FIXTURES, KITS, build_kits, ensure_kit_tools};

/// The connectors shipped with the broker: (cargo package, file name in `target/plugins`).
pub const SHIPPED: &[(&str, &str)] = &[
    ("portcullis-mock", "mock"),
    ("portcullis-github", "github"),
    ("portcullis-oidc", "oidc"),
    ("portcullis-google", "google"),
    ("portcullis-ldap", "ldap"),
    ("portcullis-keystone", "keystone"),
    ("portcullis-atlassian-crowd", "atlassian-crowd"),
    ("portcullis-authproxy", "authproxy"),
    ("portcullis-gitlab", "gitlab"),
    ("portcullis-microsoft", "microsoft"),
    ("portcullis-oauth", "oauth"),
    ("portcullis-gitea", "gitea"),
    ("portcullis-bitbucket-cloud", "bitbucket-cloud"),
    ("portcullis-openshift", "openshift"),
    ("portcullis-linkedin", "linkedin"),
    ("portcullis-saml", "saml"),
    // A policy (wit/policy), not a connector: `policies: - type: group-gate`.
    ("portcullis-group-gate", "group-gate"),
];

/// Sandbox fixtures, built for the tests only and never shipped.
pub const HOSTILE: &[(&str, &str)] = &[
    ("hostile-loop", "hostile-loop"),
    ("hostile-alloc", "hostile-alloc"),
    ("hostile-http", "hostile-http"),
    ("hostile-panic", "hostile-panic"),
    ("hostile-version", "hostile-version"),
    // Not hostile: a connector built against the frozen contract 0.1.0, which must keep loading.
    ("contract-v0-1", "contract-v0-1"),
    // A policy whose config.mode picks a behaviour: honest claims, loop, tampering, denied host, panic.
    ("policy-fixture", "policy-fixture"),
];

pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Where shipped plugins land: `target/plugins/<name>.wasm`.
pub fn plugins_dir(root: &Path) -> PathBuf {
    root.join("target").join("plugins")
}

/// Where test fixtures land: `target/plugins/test/<name>.wasm`.
pub fn fixtures_dir(root: &Path) -> PathBuf {
    plugins_dir(root).join("test")
}

/// Installs the wasm32-wasip2 target with rustup when it is missing.
pub fn ensure_guest_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == GUEST_TARGET) => Ok(()),
        Ok(_) => {
            eprintln!("installing the {GUEST_TARGET} target with rustup");
            let status = Command::new("rustup").args(["target", "add", GUEST_TARGET]).status()?;
            if !status.success() {
                bail!("`rustup target add {GUEST_TARGET}` failed; run it by hand and retry");
            }
            Ok(())
        }
        // No rustup: assume the toolchain already has the target; cargo will say if not.
        Err(_) => Ok(()),
    }
}

/// Builds `packages` for wasm32-wasip2 in the `plugin` profile and copies each component to
/// `out/<name>.wasm`. Uses its own target directory so it can run inside another cargo build.
pub fn build_guests(root: &Path, packages: &[(&str, &str)], out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    build_guests_with(root, packages, out, |mut cmd| {
        let status = cmd.status().context("cannot run cargo to build the plugins")?;
        if !status.success() {
            bail!("building the plugins for {GUEST_TARGET} failed (see the cargo output above)");
        }
        Ok(())
    })
}

/// Like `build_guests`, running the `cargo build` command with `run` (which may add output
/// options, as `cargo xtask dev` does to show progress).
pub fn build_guests_with(
    root: &Path,
    packages: &[(&str, &str)],
    out: &Path,
    run: impl FnOnce(Command) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<PathBuf>> {
    ensure_guest_target()?;
    let target_dir = root.join("target").join("guests");
    let mut cmd = guest_cargo();
    cmd.current_dir(root)
        .args(["build", "--profile", "plugin", "--target", GUEST_TARGET, "--target-dir"])
        .arg(&target_dir);
    for (package, _) in packages {
        cmd.args(["--package", package]);
    }
    run(cmd)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let built = target_dir.join(GUEST_TARGET).join("plugin");
    let mut written = Vec::new();
    for (package, name) in packages {
        let from = built.join(format!("{}.wasm", package.replace('-', "_")));
        let to = out.join(format!("{name}.wasm"));
        copy_if_changed(&from, &to)?;
        written.push(to);
    }
    Ok(written)
}

/// The tutorial connector of `docs/writing-connectors.md`, a crate outside the workspace.
pub const EXAMPLE_CONNECTOR: &str = "examples/custom-connector";

/// Builds the tutorial connector as its readers do (`cargo build --target wasm32-wasip2
/// --release` in its own directory, here with the target directory `target/custom-connector`)
/// and copies it to `out/custom-connector.wasm`.
pub fn build_example_connector(root: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    ensure_guest_target()?;
    let target_dir = root.join("target").join("custom-connector");
    let status = guest_cargo()
        .current_dir(root)
        .args(["build", "--release", "--target", GUEST_TARGET, "--manifest-path"])
        .arg(root.join(EXAMPLE_CONNECTOR).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .context("cannot run cargo to build the example connector")?;
    if !status.success() {
        bail!("building {EXAMPLE_CONNECTOR} for {GUEST_TARGET} failed (see the cargo output above)");
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let to = out.join("custom-connector.wasm");
    copy_if_changed(&target_dir.join(GUEST_TARGET).join("release").join("custom_connector.wasm"), &to)?;
    Ok(to)
}

/// A `cargo` command for a nested guest build. Inside a build script cargo sets variables
/// meant for that script's own compilation (flags, profile, target); the nested build must
/// not inherit them.
fn guest_cargo() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let keep = key == "CARGO_HOME" || key == "CARGO_MAKEFLAGS" || key == "CARGO";
        if !keep && (key.starts_with("CARGO_") || key.starts_with("RUSTC") || key.starts_with("DEP_")) {
            cmd.env_remove(&key);
        }
    }
    for key in ["TARGET", "HOST", "OUT_DIR", "PROFILE", "OPT_LEVEL", "DEBUG", "NUM_JOBS", "RUSTFLAGS"] {
        cmd.env_remove(key);
    }
    cmd
}

/// Copies only when the bytes differ, so file watchers and caches see no spurious change.
fn copy_if_changed(from: &Path, to: &Path) -> anyhow::Result<()> {
    let new = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    if std::fs::read(to).ok().as_deref() == Some(new.as_slice()) {
        return Ok(());
    }
    let tmp = to.with_extension("wasm.tmp");
    std::fs::write(&tmp, &new).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, to).with_context(|| format!("cannot write {}", to.display()))?;
    Ok(())
}

#[cfg(test)]
mod tidy;
