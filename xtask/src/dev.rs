//! `cargo xtask dev`: build what running needs (the plugins, the broker and the example app,
//! nothing test-only) with progress, and run the broker with the example app, as in Dex's
//! getting-started walkthrough, until Ctrl-C.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xtask::SHIPPED;

use crate::progress::{self, Steps};

const WALKTHROUGH: &str = "
  Portcullis is running:
    broker       http://127.0.0.1:5556/dex   (issuer; config examples/config-dev.yaml, SQLite in target/dev/)
    example app  http://127.0.0.1:5555       (open this in a browser)
    telemetry    http://127.0.0.1:5558       (/healthz, /readyz, /status, /metrics; POST /reload)

  Click Login, then either
    - \"Log in with Email\": admin@example.com / password, or
    - \"Log in with Example\": the mock connector (a WebAssembly plugin), no password.
  Grant access, and the app shows the ID token, its claims and the refresh token.
  Then look at http://127.0.0.1:5558/metrics: the login is in portcullis_logins_total and,
  for the mock connector, in portcullis_plugin_calls_total.

  Ctrl-C stops both.
";

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The packages `dev` builds for the host: just what runs.
const PACKAGES: &[&str] = &["portcullis", "example-app"];

pub fn run(root: &std::path::Path) -> anyhow::Result<()> {
    let mut steps = Steps::new(4);
    steps.run("wasm32-wasip2 target (rustup)", xtask::ensure_guest_target)?;
    let names: Vec<&str> = SHIPPED.iter().map(|(_, name)| *name).collect();
    steps.run(&format!("connector plugins ({}) for wasm32-wasip2", names.join(", ")), || {
        let packages: Vec<&str> = SHIPPED.iter().map(|(package, _)| *package).collect();
        xtask::build_guests_with(root, SHIPPED, &xtask::plugins_dir(root), |cmd| {
            progress::cargo_build(cmd, root, &packages, Some(xtask::GUEST_TARGET))
        })
        .map(|_| ())
    })?;
    steps.run("broker and example app (cargo build)", || {
        progress::cargo_build(build_command(root), root, PACKAGES, None)
    })?;
    std::fs::create_dir_all(root.join("target/dev"))?;
    let bin = root.join("target/debug");
    let mut children = Children(Vec::new());
    steps.run("start the broker (:5556) and the example app (:5555)", || {
        let broker = Command::new(bin.join("portcullis"))
            .current_dir(root)
            .args(["serve", "examples/config-dev.yaml"])
            .spawn()
            .context("cannot start the broker")?;
        children.0.push(broker);
        // The app reads the broker's discovery document when it starts: start it second.
        wait_until_serving(&mut children, "127.0.0.1:5558", "/healthz")?;
        let app =
            Command::new(bin.join("example-app")).current_dir(root).spawn().context("cannot start the example app")?;
        children.0.push(app);
        wait_until_serving(&mut children, "127.0.0.1:5555", "/")
    })?;
    println!("{WALKTHROUGH}");
    println!("  Ready: {} (after cargo built xtask itself)\n", steps.summary());
    loop {
        std::thread::sleep(Duration::from_millis(300));
        for (name, child) in ["broker", "example app"].iter().zip(children.0.iter_mut()) {
            if let Some(status) = child.try_wait()? {
                // Ctrl-C reaches the whole process group: the broker drains and exits cleanly.
                if status.success() {
                    return Ok(());
                }
                bail!("the {name} stopped ({status}); see its output above");
            }
        }
    }
}

/// `cargo build` of what `dev` runs. The workspace-hack crate (cargo hakari) gives every crate
/// the features `cargo xtask test` resolves, so the tests reuse this build; `xtask test` checks
/// that it holds (`check_shared_build`).
fn build_command(root: &std::path::Path) -> Command {
    let mut cmd = crate::cargo_command();
    cmd.current_dir(root).arg("build");
    for package in PACKAGES {
        cmd.args(["--package", package]);
    }
    cmd.arg("--bins");
    cmd
}

/// After the tests' build: `dev`'s build must find everything built already. A crate it has to
/// compile means two feature sets, and a newcomer's `cargo xtask test` after `dev` (or the
/// reverse) would build the broker twice.
pub fn check_shared_build(root: &std::path::Path) -> anyhow::Result<()> {
    // `cargo test` builds no binary of a package without integration tests (the broker's
    // `main.rs` compiles in seconds on top of its library); every library must be shared.
    let compiled = progress::compiled_units(build_command(root), true)?;
    if !compiled.is_empty() {
        bail!(
            "`cargo xtask dev` builds these again, with other features than the tests' build:\n  {}\n\
             regenerate the workspace-hack crate: `cargo install cargo-hakari --locked`, then \
             `cargo hakari generate && cargo hakari manage-deps`",
            compiled.join("\n  ")
        );
    }
    println!(
        "`cargo xtask dev` shares this build: no library of the broker, the example app or their dependencies is built twice"
    );
    Ok(())
}

/// Waits (30 s at most) until `address` answers `GET path` with a 2xx or 3xx status, failing
/// early if one of the children exits.
fn wait_until_serving(children: &mut Children, address: &str, path: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = TcpStream::connect(address) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
            let mut head = [0u8; 12];
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_exact(&mut head).is_ok()
                && matches!(head.get(9), Some(b'2' | b'3'))
            {
                return Ok(());
            }
        }
        for child in &mut children.0 {
            if let Some(status) = child.try_wait()? {
                bail!("a process stopped before {address} answered ({status}); see its output above");
            }
        }
        if Instant::now() > deadline {
            bail!("{address}{path} did not answer within 30 s; see the output above");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
