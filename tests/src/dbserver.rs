//! Where the database tests connect: the server an environment variable names, else the one on
//! the standard local port, else a throwaway server this test process starts itself.
//!
//! The throwaway servers are Debian's `postgresql` and `mariadb-server` binaries (installed by
//! `cargo xtask setup`), each with a data directory initialised in a temporary folder, listening on
//! a free loopback port, with durability off (`fsync=off`, no binary log): test data need not
//! survive a crash. One server per engine per test process, started on first use. A small
//! supervisor shell, in its own process group, waits for the test process to end (however it
//! ends, `kill -9` included), stops the server and removes the folder.
//!
//! A local server that is running but refuses us (Debian's default PostgreSQL wants a password
//! over TCP; Debian's MariaDB lets root in only through its socket) counts as not reachable.
//! `PORTCULLIS_TEST_OWN_DATABASES=1` skips the local servers and always starts throwaway ones.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The PostgreSQL server base URL (ending in `/`, no database) every PostgreSQL test uses.
pub fn postgres_base() -> String {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| resolve("PORTCULLIS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/", start_postgres))
        .clone()
}

/// The MySQL / MariaDB server base URL (ending in `/`, no database) every MySQL test uses.
pub fn mysql_base() -> String {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| resolve("PORTCULLIS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/", start_mariadb)).clone()
}

/// `host:port` of a base URL, for config blocks that take Dex's `host` key.
pub fn host_port(base: &str) -> String {
    let url = url::Url::parse(base).unwrap_or_else(|e| panic!("database URL {base}: {e}"));
    format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(0))
}

fn resolve(var: &str, local: &str, start: fn() -> String) -> String {
    if let Ok(url) = std::env::var(var) {
        // Named by the developer: used as it is; a test that cannot reach it says so.
        return url;
    }
    if std::env::var_os("PORTCULLIS_TEST_OWN_DATABASES").is_none() && probe(local).is_ok() {
        return local.to_owned();
    }
    start()
}

/// Connects once (5 s at most) on a thread of its own, so it works inside or outside a runtime.
fn probe(url: &str) -> Result<(), String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            match tokio::time::timeout(Duration::from_secs(5), sqlx::AnyConnection::connect(&url)).await {
                Ok(Ok(conn)) => conn.close().await.map_err(|e| e.to_string()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer within 5 s".to_owned()),
            }
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the probing thread panicked".to_owned()))
}

fn start_postgres() -> String {
    OwnPostgres::start().url
}

/// A PostgreSQL server of the test's own (never the shared one), which the test may stop and
/// start again: a database outage. Removed, like every throwaway server, when the test
/// process ends.
pub struct OwnPostgres {
    /// `postgres://postgres@127.0.0.1:PORT/` (append a database name).
    pub url: String,
    pg_ctl: PathBuf,
    data: PathBuf,
    owner: Option<String>,
    options: Vec<String>,
}

impl OwnPostgres {
    /// initdb in a temp folder and a server on a free loopback port (durability off).
    pub fn start() -> Self {
        let bin = postgres_bin_dir().unwrap_or_else(|| {
            panic!(
                "no PostgreSQL is reachable at 127.0.0.1:5432 and no PostgreSQL server is installed to start one: \
             run `cargo xtask setup` (it installs Debian's postgresql) or point PORTCULLIS_TEST_POSTGRES_URL at one"
            )
        });
        let server = Server::new("pg");
        let data = server.dir.join("data");
        server.run(server.as_owner(&bin.join("initdb")).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]));
        let port = free_port();
        let mut options: Vec<String> =
            vec!["-p".into(), port.to_string(), "-k".into(), server.dir.display().to_string()];
        for setting in [
            "listen_addresses=127.0.0.1",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=300",
        ] {
            options.extend(["-c".into(), setting.into()]);
        }
        let mut postgres = server.as_owner(&bin.join("postgres"));
        postgres.arg("-D").arg(&data).args(&options);
        let url = format!("postgres://postgres@127.0.0.1:{port}/");
        let owner = server.owner.clone();
        let url = server.serve(postgres, &data.join("postmaster.pid"), &url);
        Self { url, pg_ctl: bin.join("pg_ctl"), data, owner, options }
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = match &self.owner {
            Some(account) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", account, "--"]).arg(&self.pg_ctl);
                cmd
            }
            None => Command::new(&self.pg_ctl),
        };
        cmd.arg("-D").arg(&self.data);
        cmd
    }

    /// Stops the server (fast shutdown: clients are disconnected), waiting until it is down.
    pub fn stop(&self) {
        let out = self.pg_ctl().args(["-m", "fast", "-w", "stop"]).output().expect("pg_ctl stop");
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts it again on the same port and data, waiting until it answers.
    pub fn restart(&self) {
        let log = self.data.parent().unwrap_or(&self.data).join("restart.log");
        let out = self
            .pg_ctl()
            .arg("-o")
            .arg(self.options.join(" "))
            .arg("-l")
            .arg(&log)
            .args(["-w", "start"])
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        probe(&self.url).unwrap_or_else(|e| panic!("the restarted server does not answer: {e}"));
    }
}

fn start_mariadb() -> String {
    start_mariadb_with(None)
}

/// A throwaway MariaDB of its own (not the shared one) serving TLS with this certificate and key
/// (PEM), for the tests of `storage.config.ssl`; its base URL.
pub fn mariadb_with_tls(cert_pem: &str, key_pem: &str) -> String {
    start_mariadb_with(Some((cert_pem, key_pem)))
}

fn start_mariadb_with(tls: Option<(&str, &str)>) -> String {
    let find = |names: &[&str]| names.iter().find_map(|n| which(n));
    let (Some(install), Some(mariadbd)) = (
        find(&["mariadb-install-db", "mysql_install_db"]),
        find(&["mariadbd", "mysqld"])
            .or_else(|| ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"].iter().map(PathBuf::from).find(|p| p.exists())),
    ) else {
        panic!(
            "no MySQL / MariaDB is reachable at 127.0.0.1:3306 and no MariaDB server is installed to start one: \
             run `cargo xtask setup` (it installs Debian's mariadb-server) or point PORTCULLIS_TEST_MYSQL_URL at one"
        )
    };
    let server = Server::new("mariadb");
    let data = server.dir.join("data");
    // root@localhost without a password; TCP from 127.0.0.1 resolves to localhost and matches it.
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty() && !is_root()).unwrap_or_else(|| "root".to_owned());
    server.run(
        server
            .as_owner(&install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--user={user}"))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]),
    );
    let port = free_port();
    let pid = server.dir.join("mariadbd.pid");
    let mut mariadb = server.as_owner(&mariadbd);
    mariadb
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--user={user}"))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", server.dir.join("mariadbd.sock").display()))
        .arg(format!("--pid-file={}", pid.display()))
        .args(["--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", "--max-connections=300"]);
    if let Some((cert, key)) = tls {
        let (cert_file, key_file) = (server.dir.join("server.pem"), server.dir.join("server.key"));
        std::fs::write(&cert_file, cert).and_then(|_| std::fs::write(&key_file, key)).expect("write the TLS files");
        mariadb.arg(format!("--ssl-cert={}", cert_file.display())).arg(format!("--ssl-key={}", key_file.display()));
    }
    let url = format!("mysql://root@127.0.0.1:{port}/");
    server.serve(mariadb, &pid, &url)
}

/// A throwaway server's folder, owned by the account the server runs as.
struct Server {
    name: &'static str,
    dir: PathBuf,
    /// PostgreSQL refuses to run as root: as root, it runs as this account.
    owner: Option<String>,
}

impl Server {
    fn new(name: &'static str) -> Self {
        // /tmp, not $TMPDIR: as root the server's account must be able to reach the folder.
        let parent = if is_root() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        let dir = tempfile::Builder::new()
            .prefix(&format!("portcullis-test-{name}-"))
            .tempdir_in(parent)
            .unwrap_or_else(|e| panic!("cannot make a folder for a throwaway {name} server: {e}"))
            // Removed by the supervisor when the test process ends.
            .keep();
        let owner = (is_root() && name == "pg").then(|| {
            let account = if Command::new("id").args(["-u", "postgres"]).output().is_ok_and(|o| o.status.success()) {
                "postgres"
            } else {
                "nobody"
            };
            let chown = Command::new("chown").arg("-R").arg(account).arg(&dir).status();
            assert!(chown.is_ok_and(|s| s.success()), "cannot chown {} to {account}", dir.display());
            account.to_owned()
        });
        Self { name, dir, owner }
    }

    fn as_owner(&self, program: &Path) -> Command {
        let mut cmd = match &self.owner {
            Some(account) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", account, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.current_dir(&self.dir);
        cmd
    }

    /// Runs a set-up step to completion; its output goes to the panic message if it fails.
    fn run(&self, cmd: &mut Command) {
        let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?} for a throwaway {}: {e}", self.name));
        assert!(
            out.status.success(),
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `server` under a supervisor that outlives nothing: it stops the server (by the pid
    /// the server writes to `pid_file`) and removes the folder once this process is gone. Then
    /// waits until `url` answers.
    fn serve(self, server: Command, pid_file: &Path, url: &str) -> String {
        const SUPERVISE: &str = r#"testpid=$1 dir=$2 pidfile=$3 log=$4; shift 4
"$@" >"$log" 2>&1 &
while kill -0 "$testpid" 2>/dev/null; do sleep 1; done
kill "$(head -n 1 "$pidfile" 2>/dev/null)" 2>/dev/null
wait
rm -rf "$dir""#;
        let log = self.dir.join("server.log");
        let mut supervisor = Command::new("sh");
        supervisor
            .args(["-c", SUPERVISE, "supervise"])
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .arg(pid_file)
            .arg(&log)
            .arg(server.get_program())
            .args(server.get_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group: a Ctrl-C of the test run ends the tests, then the supervisor cleans up.
        std::os::unix::process::CommandExt::process_group(&mut supervisor, 0);
        // Not waited for: it must outlive this process, so init reaps it.
        #[allow(clippy::zombie_processes)]
        supervisor.spawn().unwrap_or_else(|e| panic!("cannot start a throwaway {} server: {e}", self.name));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match probe(url) {
                Ok(()) => {
                    eprintln!("started a throwaway {} server at {url} in {}", self.name, self.dir.display());
                    return url.to_owned();
                }
                Err(e) if Instant::now() > deadline => panic!(
                    "the throwaway {} server at {url} did not answer within 60 s ({e}); its log:\n{}",
                    self.name,
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

/// Debian puts PostgreSQL's server binaries in /usr/lib/postgresql/<major>/bin, not on PATH.
fn postgres_bin_dir() -> Option<PathBuf> {
    if let Some(initdb) = which("initdb") {
        // Resolve a symlink on PATH to the version's folder, where `postgres` sits beside it.
        let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        return real.parent().map(Path::to_path_buf);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists() && bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(name)).find(|p| p.is_file())
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}
