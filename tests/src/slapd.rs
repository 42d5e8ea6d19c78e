//! A throwaway OpenLDAP slapd for the LDAP connector tests: a temp dir with a slapd.conf and an
//! mdb database loaded from an LDIF fixture, a test CA and a server certificate for 127.0.0.1,
//! slapd in the foreground on two ephemeral loopback ports (ldap:// with StartTLS, ldaps://),
//! killed when the guard drops.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// The fixture directory's suffix, rootdn (slapd.conf's, for ldapmodify) and its password.
pub const SUFFIX: &str = "dc=example,dc=org";
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
const ROOT_PW: &str = "root-secret";

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const LDAPMODIFY: &str = "/usr/bin/ldapmodify";
const SCHEMAS: &[&str] = &["core", "cosine", "inetorgperson", "nis"];

/// A test certificate authority: its certificate (PEM) and the key that signs server certificates.
pub struct TestCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self { cert_pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A server certificate and key (PEM) for `names` (IP literals become IP SANs).
    pub fn server_cert(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params.distinguished_name.push(DnType::CommonName, "slapd test server");
        let cert = params.signed_by(&key, &self.issuer).expect("server certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate and key (PEM) with common name `name`, for TLS client authentication.
    pub fn client_cert(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("client certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// A running slapd; dropping it kills the server and removes its files.
pub struct Slapd {
    /// `127.0.0.1:PORT` of the ldap:// listener (plain and StartTLS).
    pub ldap_addr: String,
    /// `127.0.0.1:PORT` of the ldaps:// listener.
    pub ldaps_addr: String,
    /// The CA that signed the server's certificate, PEM.
    pub ca_pem: String,
    /// That CA, which also signs the client certificates slapd accepts.
    pub ca: TestCa,
    child: Child,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("port").port()
}

fn require(tool: &str) {
    assert!(
        Path::new(tool).exists(),
        "{tool} is missing: the LDAP tests need OpenLDAP's slapd and ldap-utils; run `cargo xtask setup`"
    );
}

impl Slapd {
    /// slapd serving `tests/fixtures/ldap/directory.ldif`.
    pub fn start() -> Self {
        Self::with_ldif(&crate::repo_file("tests/fixtures/ldap/directory.ldif"))
    }

    /// slapd serving the entries of `ldif` below `dc=example,dc=org`.
    pub fn with_ldif(ldif: &Path) -> Self {
        Self::started(ldif, false)
    }

    /// slapd serving the fixture directory that refuses TLS clients (StartTLS and LDAPS) without
    /// a certificate signed by [`Slapd::ca`] (`TLSVerifyClient demand`).
    pub fn demanding_client_certs() -> Self {
        Self::started(&crate::repo_file("tests/fixtures/ldap/directory.ldif"), true)
    }

    fn started(ldif: &Path, demand_client_certs: bool) -> Self {
        require(SLAPD);
        require(SLAPADD);
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = TestCa::new("Portcullis slapd test CA");
        let (cert, key) = ca.server_cert(&["127.0.0.1", "localhost"]);
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), &ca.cert_pem).expect("write CA");
        std::fs::write(path("server.pem"), cert).expect("write certificate");
        std::fs::write(path("server.key"), key).expect("write key");
        std::fs::create_dir(path("db")).expect("db dir");
        let mut conf = slapd_conf(dir.path());
        if demand_client_certs {
            conf = conf.replace("TLSCertificateKeyFile", "TLSVerifyClient demand\nTLSCertificateKeyFile");
        }
        std::fs::write(path("slapd.conf"), conf).expect("write slapd.conf");
        let out = Command::new(SLAPADD)
            .arg("-f")
            .arg(path("slapd.conf"))
            .arg("-l")
            .arg(ldif)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {SLAPADD}: {e}"));
        assert!(
            out.status.success(),
            "slapadd of {} failed: {}{}",
            ldif.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // A port picked here may be taken before slapd binds it: try a few pairs.
        let mut last_error = String::new();
        for _ in 0..5 {
            let (ldap_port, ldaps_port) = (free_port(), free_port());
            match start_slapd(dir.path(), ldap_port, ldaps_port) {
                Ok(child) => {
                    return Self {
                        ldap_addr: format!("127.0.0.1:{ldap_port}"),
                        ldaps_addr: format!("127.0.0.1:{ldaps_port}"),
                        ca_pem: ca.cert_pem.clone(),
                        ca,
                        child,
                        dir,
                    };
                }
                Err(e) => last_error = e,
            }
        }
        panic!("slapd did not start: {last_error}");
    }

    /// The `allowedHosts` entry for the ldap:// listener.
    pub fn ldap_grant(&self) -> String {
        format!("ldap://{}", self.ldap_addr)
    }

    /// The `allowedHosts` entry for the ldaps:// listener.
    pub fn ldaps_grant(&self) -> String {
        format!("ldaps://{}", self.ldaps_addr)
    }

    /// Applies an LDIF change record (`changetype: modify`, ...) as the rootdn.
    pub fn modify(&self, ldif: &str) {
        require(LDAPMODIFY);
        let mut child = Command::new(LDAPMODIFY)
            .args(["-x", "-H", &format!("ldap://{}", self.ldap_addr), "-D", ROOT_DN, "-w", ROOT_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {LDAPMODIFY}: {e}"));
        child.stdin.take().expect("stdin").write_all(ldif.as_bytes()).expect("write LDIF");
        let out = child.wait_with_output().expect("ldapmodify");
        assert!(
            out.status.success(),
            "ldapmodify failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Where slapd keeps its files.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn slapd_conf(dir: &Path) -> String {
    let d = dir.display();
    let mut conf = String::new();
    for schema in SCHEMAS {
        conf.push_str(&format!("include /etc/ldap/schema/{schema}.schema\n"));
    }
    conf.push_str(&format!(
        r#"modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {d}/slapd.pid
TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key

database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {d}/db
access to attrs=userPassword by anonymous auth by * none
access to * by * read
"#
    ));
    conf
}

/// Starts slapd in the foreground and waits (bounded) until its ldap:// port accepts
/// connections; an early exit (a port already taken, a config error) is an error with its log.
fn start_slapd(dir: &Path, ldap_port: u16, ldaps_port: u16) -> Result<Child, String> {
    let log = dir.join("slapd.log");
    let log_file = std::fs::File::create(&log).map_err(|e| format!("slapd log: {e}"))?;
    let urls = format!("ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/");
    let mut child = Command::new(SLAPD)
        .arg("-h")
        .arg(&urls)
        .arg("-f")
        .arg(dir.join("slapd.conf"))
        .args(["-d", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("cannot run {SLAPD}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("slapd exited with {status} on {urls}: {text}"));
        }
        let ready = [ldap_port, ldaps_port]
            .iter()
            .all(|port| TcpStream::connect_timeout(&([127, 0, 0, 1], *port).into(), Duration::from_secs(1)).is_ok());
        if ready {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("slapd did not accept connections on {urls} within 20s: {text}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
