//! `cargo xtask dev`: build everything and run the broker with the example app, as in Dex's
//! getting-started walkthrough, until Ctrl-C.

use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, bail};

const WALKTHROUGH: &str = "
  Portcullis is running:
    broker       http://127.0.0.1:5556/dex   (issuer; config examples/config-dev.yaml, SQLite in target/dev/)
    example app  http://127.0.0.1:5555       (open this in a browser)

  Click Login, then either
    - \"Log in with Email\": admin@example.com / password, or
    - \"Log in with Example\": the mock connector (a WebAssembly plugin), no password.
  Grant access, and the app shows the ID token, its claims and the refresh token.

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

pub fn run(root: &std::path::Path) -> anyhow::Result<()> {
    // The default members, as `cargo xtask test` builds them: the same package set means the
    // same feature unification, so the two commands share one build instead of rebuilding.
    let status = crate::cargo_command().current_dir(root).args(["build"]).status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("building the broker and the example app failed");
    }
    std::fs::create_dir_all(root.join("target/dev"))?;
    let bin = root.join("target/debug");
    let broker = Command::new(bin.join("portcullis"))
        .current_dir(root)
        .args(["serve", "examples/config-dev.yaml"])
        .spawn()
        .context("cannot start the broker")?;
    let mut children = Children(vec![broker]);
    let app =
        Command::new(bin.join("example-app")).current_dir(root).spawn().context("cannot start the example app")?;
    children.0.push(app);
    println!("{WALKTHROUGH}");
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
