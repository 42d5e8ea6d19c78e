//! What the real-browser test needs besides the WebDriver client: a chromedriver of its own on
//! an ephemeral loopback port (killed with its browsers on drop), a broker that knows an app
//! served on an ephemeral port, and the folder the screenshots are kept in.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{BASE_CONFIG, TestBroker, base_config, config_from_yaml, default_issuer};

/// Debian's `chromium-driver` and `chromium`, installed by `cargo xtask setup`.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long chromedriver may take to say it listens.
const DRIVER_START: Duration = Duration::from_secs(30);

/// A chromedriver process listening on `127.0.0.1`, in a process group of its own so that
/// dropping it also ends the browsers it started, even when the test panicked mid-session.
pub struct Chromedriver {
    child: Child,
    /// The WebDriver endpoint, e.g. `http://127.0.0.1:40123`.
    pub url: String,
}

impl Chromedriver {
    /// Starts chromedriver on a port the system picks (`--port=0`) and waits, at most
    /// `DRIVER_START`, for the line that names the port. Panics if it is not installed.
    pub fn start() -> Self {
        use std::os::unix::process::CommandExt;
        for tool in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: the browser test needs Debian's chromium and chromium-driver; \
                 run `cargo xtask setup`"
            );
        }
        let mut child = Command::new(CHROMEDRIVER)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER} ({e}); run `cargo xtask setup`"));
        let stdout = child.stdout.take().expect("chromedriver stdout");
        let (tx, rx) = mpsc::channel();
        // Reads the port, then keeps draining the pipe so chromedriver never blocks on it.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.split("started successfully on port ").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port.trim_end_matches('.').trim().to_string());
                }
            }
        });
        let mut driver = Chromedriver { child, url: String::new() };
        match rx.recv_timeout(DRIVER_START) {
            Ok(port) => driver.url = format!("http://127.0.0.1:{port}"),
            Err(_) => panic!("chromedriver did not report its port within {} s", DRIVER_START.as_secs()),
        }
        driver
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium processes it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/test-artifacts/browser/`, created if needed and emptied of an earlier run's
/// screenshots: where this run's are kept.
pub fn artifacts_dir() -> PathBuf {
    let dir = PathBuf::from(env!("PORTCULLIS_ROOT")).join("target").join("test-artifacts").join("browser");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "png") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    dir
}

/// A broker from `BASE_CONFIG` whose `example-app` client also accepts `{app}/callback` and
/// `{app}/` as redirect URIs, for an example app served at `app` (an ephemeral port).
pub async fn broker_for_app(app: &str) -> TestBroker {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let issuer = default_issuer(&listener);
    let callbacks = "redirectURIs: [http://127.0.0.1:5555/callback]";
    let logouts = "postLogoutRedirectURIs: [http://127.0.0.1:5555/]";
    assert!(
        BASE_CONFIG.contains(callbacks) && BASE_CONFIG.contains(logouts),
        "BASE_CONFIG no longer registers example-app as broker_for_app expects"
    );
    let yaml = base_config(&issuer, "")
        .replacen(callbacks, &format!("redirectURIs: [http://127.0.0.1:5555/callback, {app}/callback]"), 1)
        .replacen(logouts, &format!("postLogoutRedirectURIs: [http://127.0.0.1:5555/, {app}/]"), 1)
        // A native public client for the device flow (the device callback is allowed as is).
        .replacen("staticClients:\n", "staticClients:\n- id: tv\n  name: TV App\n  public: true\n", 1);
    TestBroker::builder().listener(listener).issuer(&issuer).config(config_from_yaml(&yaml)).start().await
}
