//! A test certificate authority and certificate files on disk, for the tests of `web.https`
//! and the admin API's TLS.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};

/// A test certificate authority.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate (PEM and DER) and its key (PEM).
pub struct Leaf {
    pub pem: String,
    pub der: Vec<u8>,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Self { pem, issuer: Issuer::new(params, key) }
    }

    /// A server certificate for 127.0.0.1 with this serial number and expiry year.
    pub fn server(&self, serial: u64, expires: i32) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "portcullis test server");
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_after = rcgen::date_time_ymd(expires, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { pem: cert.pem(), der: cert.der().to_vec(), key: key.serialize_pem() }
    }

    /// A client certificate and its key (PEM).
    pub fn client_pem(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "portcullis test client");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate, as a reqwest identity (key and certificate PEM).
    pub fn client(&self) -> reqwest::Identity {
        let (cert, key) = self.client_pem();
        reqwest::Identity::from_pem(format!("{key}{cert}").as_bytes()).unwrap()
    }
}

/// Where a test broker's certificate files live.
pub struct TlsFiles {
    _dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn new(leaf: &Leaf) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = Self { cert: dir.path().join("tls.crt"), key: dir.path().join("tls.key"), _dir: dir };
        files.write(Some(&leaf.pem), Some(&leaf.key));
        files
    }

    /// Replaces the files (each through a rename, as cert-manager and certbot do).
    pub fn write(&self, cert: Option<&str>, key: Option<&str>) {
        let put = |path: &Path, text: &str| {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        };
        if let Some(key) = key {
            put(&self.key, key);
        }
        if let Some(cert) = cert {
            put(&self.cert, cert);
        }
    }

    /// The `web:` block serving them, with `more` (YAML lines indented two spaces).
    pub fn web(&self, more: &str) -> String {
        format!(
            "web:\n  https: 127.0.0.1:0\n  tlsCert: {}\n  tlsKey: {}\n{more}",
            self.cert.display(),
            self.key.display()
        )
    }
}
