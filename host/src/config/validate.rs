//! From the parsed file to a config the broker can run: durations resolved, clients and
//! passwords checked, connector plugins located. Errors name the key path and the fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::model::*;
use crate::connectors::ConnectorSpec;
use crate::connectors::limits::parse_duration;
use crate::ids::ClientId;
use crate::secret::Secret;

/// A registered client application.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: ClientId,
    pub secret: Option<Secret>,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub name: String,
    pub logo_url: Option<String>,
    pub trusted_peers: Vec<ClientId>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Connectors this client may use (`allowedConnectors`); empty: every one.
    pub allowed_connectors: Vec<crate::ids::ConnectorId>,
    /// Where logout tokens are POSTed (OIDC Back-Channel Logout 1.0).
    pub backchannel_logout_uri: Option<Url>,
    /// `refreshTokenLifetime`: whether refresh tokens end with the SSO session that issued them.
    pub refresh_lifetime: RefreshTokenLifetime,
    /// `ssoSharedWith`; `None`: the `sessions.ssoSharedWithDefault`.
    pub sso_shared_with: Option<Vec<ClientId>>,
    /// `clientCredentialsClaims.groups`.
    pub client_credentials_groups: Vec<String>,
}

/// A client's `refreshTokenLifetime`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RefreshTokenLifetime {
    /// Not written: logging out ends the session's tokens, refresh tokens included (audit I5),
    /// but a session that merely expires leaves them be. Dex's default is `Standalone`.
    #[default]
    Unset,
    /// Dex's `standalone`: refresh tokens outlive the session, logout too (a kubectl credential
    /// keeps working after the user signs out of a web app).
    Standalone,
    /// Dex's `session`: refresh tokens end with the session, by logout or expiry.
    Session,
}

/// The out-of-band redirect URI of native apps that cannot receive a redirect (the code is shown).
pub const REDIRECT_OOB: &str = "urn:ietf:wg:oauth:2.0:oob";

impl Client {
    /// Whether this client may log users in through `connector` (`local`: the password database).
    pub fn allows(&self, connector: &str) -> bool {
        self.allowed_connectors.is_empty() || self.allowed_connectors.iter().any(|c| c == connector)
    }

    /// Whether `uri` may receive this client's codes. A registered URI matches exactly. A public
    /// client that registers none is a native app (RFC 8252), as Dex treats it: it may use any
    /// `http://localhost[:port]/…` or loopback-IP address, the out-of-band URI, or the broker's
    /// own device callback (`device_callback`, the issuer's path + `/device/callback`).
    pub fn redirect_allowed(&self, uri: &str, device_callback: &str) -> bool {
        if self.redirect_uris.iter().any(|u| u == uri) {
            return true;
        }
        if !self.public || !self.redirect_uris.is_empty() {
            return false;
        }
        if uri == REDIRECT_OOB || uri == device_callback {
            return true;
        }
        let Ok(url) = Url::parse(uri) else { return false };
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        url.scheme() == "http" && loopback && url.fragment().is_none() && url.username().is_empty()
    }

    /// Whether an SSO session this client logged into may log the user into `target` too.
    pub fn shares_session_with(&self, target: &ClientId, default_all: bool) -> bool {
        match &self.sso_shared_with {
            None => default_all,
            Some(peers) => peers.iter().any(|p| p.as_str() == "*" || p == target),
        }
    }
}

/// A grant of the token endpoint (`oauth2.grantTypes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    Password,
    DeviceCode,
    TokenExchange,
}

impl GrantType {
    pub const ALL: [GrantType; 6] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::Password,
        Self::DeviceCode,
        Self::TokenExchange,
    ];

    /// Its `grant_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == text)
    }

    /// Whether this version of the broker serves the grant.
    pub fn served(self) -> bool {
        matches!(
            self,
            Self::AuthorizationCode
                | Self::RefreshToken
                | Self::ClientCredentials
                | Self::Password
                | Self::TokenExchange
                | Self::DeviceCode
        )
    }
}

/// The SSO session (Dex's `sessions`, or Portcullis's own when that block is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sessions {
    pub cookie_name: String,
    pub absolute: Duration,
    /// Dex's `validIfNotUsedFor`; `None` without a `sessions` block (the session lives out `absolute`).
    pub idle: Option<Duration>,
    /// The password form shows "remember me", checked or not; `None`: no box, the cookie persists.
    pub remember_me_default: Option<bool>,
    /// Clients without `ssoSharedWith` share their sessions with every client.
    pub share_by_default: bool,
}

/// The cookie name of the SSO session when the config has no `sessions` block.
pub const SESSION_COOKIE: &str = "portcullis_session";

/// The algorithm the broker signs tokens with (`signing.algorithm`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SigningAlgorithm {
    #[default]
    Rs256,
    Es256,
    EdDsa,
}

impl SigningAlgorithm {
    /// Its JOSE name (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }
}

impl std::str::FromStr for SigningAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(format!("{other:?} is not supported; write RS256, ES256 or EdDSA")),
        }
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user of the local password database.
#[derive(Debug, Clone)]
pub struct StaticPassword {
    pub email: String,
    pub hash: Secret,
    pub username: String,
    /// `name`, or `username` when the config gives none (Dex's rule).
    pub name: String,
    pub preferred_username: Option<String>,
    pub email_verified: bool,
    pub groups: Vec<String>,
    pub user_id: String,
}

impl StaticPassword {
    /// The identity a login as this user gets, with Dex's claims.
    pub fn identity(&self) -> crate::connectors::Identity {
        crate::connectors::Identity {
            user_id: self.user_id.clone(),
            username: self.name.clone(),
            preferred_username: self.preferred_username.clone(),
            email: Some(self.email.clone()),
            email_verified: self.email_verified,
            groups: self.groups.clone(),
            connector_data: None,
            policy: None,
        }
    }
}

/// Checks `storage.config` beyond its types: Dex's MySQL keys Portcullis cannot honour are refused
/// by name; relative TLS files are resolved against the config's directory.
fn storage(storage: &mut StorageConfig, base: &Path) -> Result<(), String> {
    if let StorageConfig::Sqlite3(sqlite) = storage {
        return sqlite_file(&sqlite.file, base, std::env::current_dir().ok().as_deref());
    }
    if let StorageConfig::Postgres(pg) = storage {
        return postgres(pg, base);
    }
    let StorageConfig::Mysql(my) = storage else { return Ok(()) };
    if my.max_idle_conns.is_some() {
        return Err("storage.config.maxIdleConns is not supported: the connection pool closes idle connections \
             itself and has no cap on how many it keeps; remove the key (maxOpenConns caps all connections)"
            .into());
    }
    if let Some(ssl) = &mut my.ssl {
        if ssl.server_name.is_some() {
            return Err("storage.config.ssl.serverName is not supported for mysql: the server's certificate is \
                 checked against storage.config.host; set host to the name in the certificate and remove serverName"
                .into());
        }
        let files = ssl.ca_file.is_some() || ssl.cert_file.is_some() || ssl.key_file.is_some();
        if ssl.mode.as_deref() == Some("custom") && !files {
            return Err("storage.config.ssl.mode: \"custom\" is the TLS that caFile, certFile and keyFile \
                 configure (as in Dex, where those files make the mode \"custom\" whatever it says); give caFile \
                 (or certFile and keyFile), or write true (TLS, certificate verified against the system's roots)"
                .into());
        }
        // Dex's storage page writes `mode: custom` beside `caFile`: the files are what count.
        if let Some(mode) = &ssl.mode
            && !matches!(mode.as_str(), "true" | "false" | "skip-verify" | "preferred" | "custom")
        {
            return Err(format!(
                "storage.config.ssl.mode: {mode:?}; write true (TLS, certificate verified; the default), \
                 skip-verify (TLS, not verified), preferred (TLS if the server offers it, not verified), false, \
                 or custom with caFile (TLS verified against that CA, as in Dex)"
            ));
        }
        if ssl.cert_file.is_some() != ssl.key_file.is_some() {
            return Err("storage.config.ssl: certFile and keyFile go together (a client certificate and its key); \
                 give both or neither"
                .into());
        }
        tls_files(
            [("caFile", &mut ssl.ca_file), ("certFile", &mut ssl.cert_file), ("keyFile", &mut ssl.key_file)],
            base,
        )?;
    }
    Ok(())
}

/// A relative `storage.config.file` is the config's folder's, where Dex reads it from the working
/// directory. Where only Dex's reading names an existing file (`dex serve examples/config-dev.yaml`
/// run from Dex's checkout, beside its `examples/dex.db`), going on would create a second, empty
/// database unseen: refused, naming both.
fn sqlite_file(file: &str, base: &Path, cwd: Option<&Path>) -> Result<(), String> {
    if file.trim().is_empty() {
        return Err("storage.config.file is empty: write the database file's path, e.g. portcullis.db".into());
    }
    if file.starts_with("file:") {
        return Err(format!(
            "storage.config.file: {file:?} is an SQLite URI; write the database file's path (relative to the \
             config's folder, or absolute)"
        ));
    }
    let path = Path::new(file);
    // `:memory:` is Dex's database in memory: the memory storage (`broker::open_storage`).
    if path.is_absolute() || file == ":memory:" {
        return Ok(());
    }
    let beside = base.join(path);
    let Some(dex) = cwd.map(|cwd| cwd.join(path)) else { return Ok(()) };
    if beside.exists() || !dex.exists() || dex == beside {
        return Ok(());
    }
    Err(format!(
        "storage.config.file: {file} is read from the config's folder ({}, which does not exist), not from \
         the working directory as Dex reads it ({}, which exists); write the path from the config's folder or \
         an absolute one. Portcullis keeps its own tables: to bring a Dex database's data over, run \
         `portcullis import-dex` (docs/migrating-from-dex.md)",
        beside.display(),
        dex.display()
    ))
}

/// Dex's postgres keys beyond their types: `maxIdleConns` refused as for mysql, `ssl.mode` one of
/// libpq's, client certificate files in pairs, relative files resolved against `base`.
fn postgres(pg: &mut crate::config::PostgresConfig, base: &Path) -> Result<(), String> {
    if pg.max_idle_conns.is_some() {
        return Err("storage.config.maxIdleConns is not supported: the connection pool closes idle connections \
             itself and has no cap on how many it keeps; remove the key (maxOpenConns caps all connections)"
            .into());
    }
    let Some(ssl) = &mut pg.ssl else { return Ok(()) };
    if let Some(mode) = &ssl.mode
        && !matches!(mode.as_str(), "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full")
    {
        return Err(format!(
            "storage.config.ssl.mode: {mode:?}; write verify-full (TLS, certificate and host name verified; the \
             default, as in Dex), verify-ca, require (TLS, not verified), prefer, allow or disable"
        ));
    }
    if ssl.cert_file.is_some() != ssl.key_file.is_some() {
        return Err("storage.config.ssl: certFile and keyFile go together (a client certificate and its key); \
             give both or neither"
            .into());
    }
    tls_files([("caFile", &mut ssl.ca_file), ("certFile", &mut ssl.cert_file), ("keyFile", &mut ssl.key_file)], base)
}

/// The storage's TLS files resolved against `base` (the config's folder) and opened once, so
/// `check-config` and a reload find a missing or unreadable one, not the first connection.
fn tls_files(files: [(&str, &mut Option<String>); 3], base: &Path) -> Result<(), String> {
    for (key, file) in files {
        let Some(file) = file else { continue };
        *file = base.join(&*file).to_string_lossy().into_owned();
        if let Err(e) = std::fs::File::open(&*file) {
            return Err(format!(
                "storage.config.ssl.{key}: {file}: cannot read the file ({e}); give the path of its PEM file"
            ));
        }
    }
    Ok(())
}

/// Dex's `signer` block, read as Dex reads it: `type: local` with its `config`; other types are
/// refused with what to write.
fn signer(c: &Config) -> Result<LocalSignerConfig, String> {
    let Some(signer) = &c.signer else { return Ok(LocalSignerConfig::default()) };
    match signer.kind.as_str() {
        "local" => match &signer.config {
            None | Some(serde_yaml::Value::Null) => Ok(LocalSignerConfig::default()),
            Some(value) => serde_yaml::from_value(value.clone()).map_err(|e| format!("signer.config: {e}")),
        },
        "vault" => Err("signer.type: vault is not supported: Portcullis keeps its signing keys in its storage \
             (rotated, shared by replicas, the private halves never leave the broker); write `type: local` or remove \
             the signer block"
            .into()),
        other => Err(format!("signer.type: {other:?} is not a signer; write `type: local`")),
    }
}

/// `value` with every null member of an object dropped, recursively (`None` for a null itself).
fn without_nulls(value: serde_json::Value) -> Option<serde_json::Value> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::Object(map) => {
            Some(serde_json::Value::Object(map.into_iter().filter_map(|(k, v)| Some((k, without_nulls(v)?))).collect()))
        }
        other => Some(other),
    }
}

/// The shipped plugin a connector `type` names, and the mode it implies: Dex's `mockCallback`
/// and `mockPassword` are our `mock` in its two modes.
fn shipped_plugin(kind: &str) -> (&str, Option<&'static str>) {
    match kind {
        "mockCallback" => ("mock", Some("callback")),
        "mockPassword" => ("mock", Some("password")),
        other => (other, None),
    }
}

/// Refresh token lifetimes and rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshExpiry {
    pub rotation: bool,
    pub reuse_interval: Duration,
    pub valid_if_not_used_for: Duration,
    pub absolute_lifetime: Duration,
}

/// Lifetimes of what the broker issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub id_tokens: Duration,
    /// `expiry.accessTokens`; `idTokens` when absent.
    pub access_tokens: Duration,
    pub auth_requests: Duration,
    pub signing_keys: Duration,
    pub auth_codes: Duration,
    /// The SSO session's absolute lifetime (`expiry.sessions` or `sessions.absoluteLifetime`).
    pub sessions: Duration,
    /// `expiry.deviceRequests`: how long a device code and its user code live.
    pub device_requests: Duration,
    pub refresh: RefreshExpiry,
}

/// A connector entry resolved to its plugin file.
#[derive(Debug, Clone)]
pub struct ConnectorEntry {
    pub spec: ConnectorSpec,
    pub kind: Option<String>,
    /// Why the plugin file could not be found (the key path and the fix); the connector then
    /// fails to load, and `spec.plugin` is where it was looked for first.
    pub missing: Option<String>,
    /// Dex's `grantTypes`: the grants this connector serves; empty: every one.
    pub grant_types: Vec<String>,
    /// Files the broker read into `spec.config` (an ldap `rootCA`): a change of one reloads.
    pub files: Vec<PathBuf>,
}

/// The grants Dex lets a connector be limited to (`grantTypes`); `client_credentials` involves
/// no connector.
pub const CONNECTOR_GRANTS: [&str; 6] = [
    "authorization_code",
    "refresh_token",
    "implicit",
    "password",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
];

impl ConnectorEntry {
    /// Whether this connector serves `grant` (Dex's `GrantTypeAllowed`).
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.is_empty() || self.grant_types.iter().any(|g| g == grant)
    }
}

impl Validated {
    /// Whether `connector` serves `grant`; the password database (`local`) serves every grant.
    pub fn connector_allows(&self, connector: &str, grant: &str) -> bool {
        self.connectors.iter().find(|c| c.spec.id == connector).is_none_or(|c| c.allows_grant(grant))
    }
}

/// A config that passed every check.
#[derive(Debug, Clone)]
pub struct Validated {
    pub issuer: Url,
    pub storage: StorageConfig,
    pub web: WebConfig,
    pub telemetry: TelemetryConfig,
    pub grpc: GrpcConfig,
    pub frontend: FrontendConfig,
    /// The pages `frontend` asks for, templates compiled.
    pub pages: super::frontend::Pages,
    pub logger: LoggerConfig,
    pub oauth2: OAuth2Config,
    pub expiry: Expiry,
    pub signing_algorithm: SigningAlgorithm,
    /// `signing.accessTokenAlgorithm` when it differs from `signing_algorithm`.
    pub access_token_algorithm: Option<SigningAlgorithm>,
    pub pkce_plain: bool,
    /// `oauth2.pkce.enforce`: every code flow uses PKCE.
    pub pkce_enforce: bool,
    /// The grants `oauth2.grantTypes` enables (Dex's rules; see `grant_types`).
    pub grant_types: BTreeSet<GrantType>,
    /// Dynamic client registration's initial access token; `None`: registration is off.
    pub registration: Option<Secret>,
    pub sessions: Sessions,
    pub clients: BTreeMap<ClientId, Client>,
    pub enable_password_db: bool,
    pub passwords: Vec<StaticPassword>,
    pub connectors: Vec<ConnectorEntry>,
    /// Policy plugins, in the order they apply (`policies:`).
    pub policies: Vec<crate::connectors::policy::PolicySpec>,
    /// Start without the connectors that fail to load (Dex's `DEX_CONTINUE_ON_CONNECTOR_FAILURE`,
    /// true unless set to false); reloads stay all or nothing either way.
    pub continue_on_connector_failure: bool,
    /// Dex's `DEX_API_CONNECTORS_CRUD`: the admin API's connector calls are served (default false).
    pub api_connectors_crud: bool,
    pub cache_dir: Option<PathBuf>,
    /// The pooling allocator's per-component caps (`plugins.pool`), used when the broker starts.
    pub pool: crate::connectors::limits::PoolLimits,
    /// Where `type:` plugins are looked for (`plugins.dir`, or the default list).
    pub plugin_dirs: Vec<PathBuf>,
    /// Which clients, passwords and connectors came from storage (the admin API) rather than
    /// this file (`Validated::with_stored`); the rest are static, read-only through the API.
    pub stored: super::stored::StoredIds,
    /// The directory relative paths were resolved against.
    pub base_dir: PathBuf,
    /// The file this config was read from, and the sha256 of its text (set by `Config::from_yaml`).
    pub source: PathBuf,
    pub sha256: String,
}

fn duration(path: &str, value: &Option<String>, default: Duration) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(text) => parse_duration(text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{path}: {text:?} is not a duration; write e.g. \"24h\", \"10m\" or \"3s\"")),
    }
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

/// `web`: listeners, TLS files (paths resolved against `base`; read when serving), headers,
/// CORS headers and the trusted proxies, with Dex's rules.
fn web(web: &mut WebConfig, base: &Path) -> Result<(), String> {
    if web.http.is_none() && web.https.is_none() {
        web.http = WebConfig::default().http;
    }
    if let Some(delay) = &web.shutdown_delay {
        let parsed = crate::connectors::limits::parse_duration(delay)
            .ok_or_else(|| format!("web.shutdownDelay: {delay:?} is not a duration; write e.g. \"5s\" or \"0s\""))?;
        if parsed > Duration::from_secs(60) {
            return Err(format!(
                "web.shutdownDelay: {delay:?} is longer than 60 s; a pod would be killed first (give \
                 terminationGracePeriodSeconds room for the delay and the drain)"
            ));
        }
    }
    if web.https.is_some() {
        if web.tls_cert.is_none() {
            return Err("web.tlsCert: web.https needs a certificate; give the PEM file of the certificate chain, \
                 e.g. tlsCert: /etc/portcullis/tls.crt"
                .into());
        }
        if web.tls_key.is_none() {
            return Err("web.tlsKey: web.https needs the certificate's private key; give its PEM file, \
                 e.g. tlsKey: /etc/portcullis/tls.key"
                .into());
        }
    } else {
        let tls_keys = [
            ("tlsCert", web.tls_cert.is_some()),
            ("tlsKey", web.tls_key.is_some()),
            ("tlsClientCA", web.tls_client_ca.is_some()),
            ("tlsMinVersion", web.tls_min_version.is_some()),
            ("tlsMaxVersion", web.tls_max_version.is_some()),
        ];
        if let Some((key, _)) = tls_keys.iter().find(|(_, set)| *set) {
            return Err(format!(
                "web.{key}: TLS settings apply to web.https, which is not set; add web.https: 0.0.0.0:5554 (the address to serve HTTPS on) or remove web.{key}"
            ));
        }
    }
    for (key, version) in [("tlsMinVersion", &web.tls_min_version), ("tlsMaxVersion", &web.tls_max_version)] {
        if let Some(v) = version
            && !matches!(v.as_str(), "1.2" | "1.3")
        {
            return Err(format!("web.{key}: {v:?} is not a supported TLS version; write \"1.2\" or \"1.3\""));
        }
    }
    if let (Some(min), Some(max)) = (&web.tls_min_version, &web.tls_max_version)
        && min > max
    {
        return Err(format!(
            "web.tlsMinVersion: {min:?} is newer than web.tlsMaxVersion {max:?}; lower the one or raise the other"
        ));
    }
    for file in [&mut web.tls_cert, &mut web.tls_key, &mut web.tls_client_ca].into_iter().flatten() {
        *file = base.join(&*file).display().to_string();
    }
    for (name, value) in web.headers.set() {
        if axum::http::HeaderValue::from_str(value).is_err() {
            return Err(format!("web.headers.{name}: {value:?} is not a valid header value (control characters?)"));
        }
    }
    for (i, name) in web.allowed_headers.iter().enumerate() {
        if axum::http::HeaderName::try_from(name.trim()).is_err() {
            return Err(format!("web.allowedHeaders[{i}]: {name:?} is not a header name; write e.g. X-Requested-With"));
        }
    }
    let remote = &web.client_remote_ip;
    match &remote.header {
        Some(header) if axum::http::HeaderName::try_from(header.trim()).is_err() => {
            return Err(format!(
                "web.clientRemoteIP.header: {header:?} is not a header name; write e.g. X-Forwarded-For or X-Real-IP"
            ));
        }
        Some(_) if remote.trusted_proxies.is_empty() => {
            return Err("web.clientRemoteIP.trustedProxies: the header is read only from trusted proxies, and none \
                 are listed; give your proxies' addresses as CIDRs, e.g. [10.0.0.0/8], or remove clientRemoteIP"
                .into());
        }
        None if !remote.trusted_proxies.is_empty() => {
            return Err("web.clientRemoteIP.header: trusted proxies are listed but not the header they forward the \
                 client's address in; write e.g. header: X-Forwarded-For"
                .into());
        }
        _ => {}
    }
    for (i, cidr) in remote.trusted_proxies.iter().enumerate() {
        if let Err(e) = cidr.parse::<Cidr>() {
            return Err(format!(
                "web.clientRemoteIP.trustedProxies[{i}]: {cidr:?} is not a CIDR ({e}); write e.g. 10.0.0.0/8 or 127.0.0.1/32"
            ));
        }
    }
    Ok(())
}

/// `grpc`: Dex's rules for the admin API's listener and TLS; file paths resolved against `base`.
fn grpc(g: &mut GrpcConfig, base: &Path) -> Result<(), String> {
    if g.addr.as_deref() == Some("") {
        g.addr = None;
    }
    let tls = [("tlsCert", &g.tls_cert), ("tlsKey", &g.tls_key), ("tlsClientCA", &g.tls_client_ca)];
    if g.addr.is_none()
        && let Some((key, _)) = tls.iter().find(|(_, v)| v.is_some())
    {
        return Err(format!(
            "grpc.{key}: set without grpc.addr, so no API listener would use it; add grpc.addr (e.g. 127.0.0.1:5557) or remove grpc.{key}"
        ));
    }
    match (&g.tls_cert, &g.tls_key) {
        (Some(_), None) => return Err("grpc.tlsKey: grpc.tlsCert needs its private key; give both or neither".into()),
        (None, Some(_)) => return Err("grpc.tlsCert: grpc.tlsKey needs its certificate; give both or neither".into()),
        _ => {}
    }
    if g.tls_client_ca.is_some() && g.tls_cert.is_none() {
        return Err(
            "grpc.tlsClientCA: client certificates are checked only over TLS; add grpc.tlsCert and grpc.tlsKey".into(),
        );
    }
    for (key, version) in [("tlsMinVersion", &g.tls_min_version), ("tlsMaxVersion", &g.tls_max_version)] {
        if let Some(v) = version
            && !matches!(v.as_str(), "1.2" | "1.3")
        {
            return Err(format!("grpc.{key}: {v:?} is not a supported TLS version; write \"1.2\" or \"1.3\""));
        }
    }
    if let (Some(min), Some(max)) = (&g.tls_min_version, &g.tls_max_version)
        && min > max
    {
        return Err(format!(
            "grpc.tlsMinVersion: {min:?} is newer than grpc.tlsMaxVersion {max:?}; lower the one or raise the other"
        ));
    }
    if let Some(addr) = &g.addr
        && addr.parse::<std::net::SocketAddr>().is_err()
        && !addr.contains(':')
    {
        return Err(format!("grpc.addr: {addr:?} is not an address; write host:port, e.g. 127.0.0.1:5557"));
    }
    for file in [&mut g.tls_cert, &mut g.tls_key, &mut g.tls_client_ca].into_iter().flatten() {
        *file = base.join(&*file).display().to_string();
    }
    Ok(())
}

/// `telemetry`: Dex's Go pprof endpoints have no counterpart in a Rust binary.
fn telemetry(telemetry: &TelemetryConfig) -> Result<(), String> {
    if telemetry.enable_profiling {
        return Err("telemetry.enableProfiling: Portcullis serves no profiling endpoints (Dex's are Go's pprof); \
             remove the key or set it to false, and profile the process from outside: \
             `perf record -g -p <pid>` for CPU, `heaptrack` for memory"
            .into());
    }
    Ok(())
}

/// The problems found so far: each section is checked even when an earlier one failed, so
/// `check-config` reports every one at once.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn take<T>(&mut self, checked: Result<T, String>) -> Option<T> {
        checked.map_err(|e| self.0.push(e)).ok()
    }

    fn take_all<T>(&mut self, checked: Result<T, Vec<String>>) -> Option<T> {
        checked.map_err(|e| self.0.extend(e)).ok()
    }
}

/// An authenticating proxy's headers are believed only from a trusted proxy (web/proxy_auth.rs):
/// without one every login through a `type: authproxy` connector would be refused, so say so now.
fn authproxy_trust(connectors: &[ConnectorEntry], web: &WebConfig) -> Result<(), String> {
    match connectors.iter().position(|e| e.kind.as_deref() == Some("authproxy")) {
        Some(i) if web.client_remote_ip.trusted_proxies.is_empty() => Err(format!(
            "connectors[{i}]: type authproxy reads the identity from headers that only your authenticating proxy may \
             set, and web.clientRemoteIP lists no trusted proxy; add web.clientRemoteIP with header (e.g. \
             X-Forwarded-For) and trustedProxies naming the proxy's addresses (e.g. [10.0.0.5/32])"
        )),
        _ => Ok(()),
    }
}

/// Every semantic check of a parsed config, each section on its own: the problems of all of
/// them, or the validated config.
pub(super) fn validate(c: Config, base: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Validated, Vec<String>> {
    let mut p = Problems::default();
    let issuer = p.take(issuer(&c.issuer));
    p.take(mfa(&c));
    // A bad signer block is reported once; the expiry and algorithm checks go on without it.
    let signer = p.take(signer(&c)).unwrap_or_default();
    let expiry = p.take(expiry(&c, &signer));
    let signing_algorithm = p.take(signing_algorithm(&c, &signer));
    p.take(response_types(&c.oauth2));
    let grant_types = p.take(grant_types(&c.oauth2));
    let registration = p.take(registration(c.oauth2.client_registration.as_ref(), env));
    let pkce_enforce = c.oauth2.pkce.enforce;
    let sessions = expiry.as_ref().and_then(|e| p.take(sessions(c.sessions.as_ref(), e.sessions)));
    let pkce_plain = p.take(pkce_methods(&c.oauth2.pkce.code_challenge_methods_supported));
    p.take(logger(&c.logger));
    let mut c = c;
    p.take(web(&mut c.web, base));
    p.take(telemetry(&c.telemetry));
    p.take(grpc(&mut c.grpc, base));
    p.take(storage(&mut c.storage, base));
    let pages = p.take(super::frontend::Pages::load(&c.frontend, base));
    let clients = p.take_all(clients(&c.static_clients, env));
    let passwords = p.take(passwords(&c, env));
    let plugins_dirs = plugin_dirs(&c.plugins, base);
    let connectors = p.take_all(connectors(&c.connectors, c.enable_password_db, base, &plugins_dirs, &|i| {
        format!("connectors[{i}]")
    }));
    if let Some(connectors) = &connectors {
        p.take(authproxy_trust(connectors, &c.web));
    }
    let policies = p.take(super::policies::policies(&c.policies, base, &plugins_dirs));
    let cache_dir = c.plugins.cache_dir.as_ref().map(|d| base.join(d));
    let pool = p.take(crate::connectors::limits::PoolLimits::from_config(&c.plugins.pool).map_err(|e| e.to_string()));
    let continue_on_connector_failure = p.take(continue_on_connector_failure(env));
    let api_connectors_crud = p.take(dex_flag(
        env,
        API_CONNECTORS_CRUD,
        false,
        "the admin API manages connectors",
        "its connector calls are refused",
    ));
    let (
        Some(issuer),
        Some(expiry),
        Some((signing_algorithm, access_token_algorithm)),
        Some(grant_types),
        Some(registration),
        Some(sessions),
        Some(pkce_plain),
        Some(pages),
        Some(clients),
        Some(passwords),
        Some(connectors),
        Some(continue_on_connector_failure),
        Some(api_connectors_crud),
        Some(policies),
        true,
    ) = (
        issuer,
        expiry,
        signing_algorithm,
        grant_types,
        registration,
        sessions,
        pkce_plain,
        pages,
        clients,
        passwords,
        connectors,
        continue_on_connector_failure,
        api_connectors_crud,
        policies,
        p.0.is_empty(),
    )
    else {
        return Err(p.0);
    };
    Ok(Validated {
        issuer,
        storage: c.storage,
        web: c.web,
        telemetry: c.telemetry,
        grpc: c.grpc,
        frontend: c.frontend,
        pages,
        logger: c.logger,
        oauth2: c.oauth2,
        expiry,
        signing_algorithm,
        access_token_algorithm,
        pkce_plain,
        pkce_enforce,
        grant_types,
        registration,
        sessions,
        clients,
        enable_password_db: c.enable_password_db,
        passwords,
        connectors,
        policies,
        continue_on_connector_failure,
        api_connectors_crud,
        cache_dir,
        // An out-of-range block was recorded in `p` above and returned as an error.
        pool: pool.unwrap_or_default(),
        plugin_dirs: plugins_dirs,
        stored: Default::default(),
        base_dir: base.to_path_buf(),
        source: PathBuf::new(),
        sha256: String::new(),
    })
}

fn issuer(issuer: &str) -> Result<Url, String> {
    let url = Url::parse(issuer)
        .map_err(|e| format!("issuer: {issuer:?} is not a URL ({e}); write e.g. \"http://127.0.0.1:5556/dex\""))?;
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("issuer: {issuer:?} must be an http(s) URL without query or fragment"));
    }
    Ok(url)
}

fn mfa(c: &Config) -> Result<(), String> {
    if let Some(mfa) = &c.mfa
        && (!mfa.authenticators.is_empty() || !mfa.default_mfa_chain.is_empty())
    {
        return Err("mfa: multi-factor authentication is not built into Portcullis; ask for a second factor at \
             the upstream identity provider (its connector), or remove the mfa block"
            .into());
    }
    Ok(())
}

fn expiry(c: &Config, signer: &LocalSignerConfig) -> Result<Expiry, String> {
    let e = &c.expiry;
    let r = &e.refresh_tokens;
    Ok(Expiry {
        id_tokens: duration("expiry.idTokens", &e.id_tokens, hours(24))?,
        access_tokens: match &e.access_tokens {
            Some(_) => duration("expiry.accessTokens", &e.access_tokens, hours(24))?,
            None => duration("expiry.idTokens", &e.id_tokens, hours(24))?,
        },
        auth_requests: duration("expiry.authRequests", &e.auth_requests, hours(24))?,
        signing_keys: {
            let given = [
                ("expiry.signingKeys", &e.signing_keys),
                ("signing.rotationPeriod", &c.signing.rotation_period),
                ("signer.config.keysRotationPeriod", &signer.keys_rotation_period),
            ];
            let set: Vec<_> = given.iter().filter(|(_, v)| v.is_some()).collect();
            match set.as_slice() {
                [] => hours(6),
                [(key, v)] => duration(key, v, hours(6))?,
                [(a, _), (b, _), ..] => return Err(format!("{a} and {b} say the same thing; keep one")),
            }
        },
        auth_codes: duration("expiry.authCodes", &e.auth_codes, Duration::from_secs(600))?,
        sessions: match (&e.sessions, c.sessions.as_ref().and_then(|s| s.absolute_lifetime.as_ref())) {
            (Some(_), Some(_)) => {
                return Err("expiry.sessions and sessions.absoluteLifetime say the same thing; keep one".into());
            }
            (None, Some(text)) => duration("sessions.absoluteLifetime", &Some(text.clone()), hours(24))?,
            (given, None) => duration("expiry.sessions", given, hours(24))?,
        },
        device_requests: duration("expiry.deviceRequests", &e.device_requests, Duration::from_secs(300))?,
        refresh: RefreshExpiry {
            rotation: !r.disable_rotation,
            reuse_interval: match &r.reuse_interval {
                Some(t) => parse_duration(t).ok_or_else(|| {
                    format!("expiry.refreshTokens.reuseInterval: {t:?} is not a duration; write e.g. \"3s\"")
                })?,
                None => Duration::from_secs(3),
            },
            valid_if_not_used_for: duration(
                "expiry.refreshTokens.validIfNotUsedFor",
                &r.valid_if_not_used_for,
                hours(2160),
            )?,
            absolute_lifetime: duration("expiry.refreshTokens.absoluteLifetime", &r.absolute_lifetime, hours(3960))?,
        },
    })
}

/// `signing.algorithm` (ID tokens, and access tokens unless `signing.accessTokenAlgorithm`
/// names another), and that other one.
fn signing_algorithm(
    c: &Config,
    signer: &LocalSignerConfig,
) -> Result<(SigningAlgorithm, Option<SigningAlgorithm>), String> {
    let id_tokens = match (&c.signing.algorithm, &signer.algorithm) {
        (Some(_), Some(_)) => {
            return Err("signing.algorithm and signer.config.algorithm say the same thing; keep one".into());
        }
        (Some(name), None) => name.parse().map_err(|e| format!("signing.algorithm: {e}"))?,
        (None, Some(name)) => name.parse().map_err(|e| format!("signer.config.algorithm: {e}"))?,
        (None, None) => SigningAlgorithm::default(),
    };
    let access = match &c.signing.access_token_algorithm {
        Some(name) => Some(name.parse::<SigningAlgorithm>().map_err(|e| format!("signing.accessTokenAlgorithm: {e}"))?),
        None => None,
    };
    Ok((id_tokens, access.filter(|a| *a != id_tokens)))
}

fn response_types(oauth2: &OAuth2Config) -> Result<(), String> {
    for (i, rt) in oauth2.response_types.iter().enumerate() {
        if rt != "code" {
            return Err(format!(
                "oauth2.responseTypes[{i}]: {rt:?} is not supported; Portcullis issues only `code` (the implicit flow is deprecated by OAuth 2.1)"
            ));
        }
    }
    Ok(())
}

/// `oauth2.pkce.codeChallengeMethodsSupported`: whether `plain` is allowed.
fn pkce_methods(methods: &[String]) -> Result<bool, String> {
    let mut plain = false;
    for (i, m) in methods.iter().enumerate() {
        match m.as_str() {
            "S256" => {}
            "plain" => plain = true,
            other => {
                return Err(format!(
                    "oauth2.pkce.codeChallengeMethodsSupported[{i}]: {other:?} is not a PKCE method; write S256 or plain"
                ));
            }
        }
    }
    Ok(plain)
}

fn logger(logger: &LoggerConfig) -> Result<(), String> {
    if let Some(level) = &logger.level
        && !matches!(level.to_ascii_lowercase().as_str(), "trace" | "debug" | "info" | "warn" | "error")
    {
        return Err(format!("logger.level: {level:?}; write debug, info, warn or error"));
    }
    if let Some(format) = &logger.format
        && !matches!(format.as_str(), "text" | "json")
    {
        return Err(format!("logger.format: {format:?}; write text or json"));
    }
    Ok(())
}

/// `oauth2.clientRegistration`: on only with an initial access token of at least 32 characters,
/// since whoever holds it may register clients.
fn registration(
    c: Option<&ClientRegistrationConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, String> {
    let Some(c) = c else { return Ok(None) };
    let at = "oauth2.clientRegistration";
    let token = match (&c.initial_access_token, &c.initial_access_token_env) {
        (Some(_), Some(_)) => return Err(format!("{at}: give initialAccessToken or initialAccessTokenEnv, not both")),
        (Some(t), None) => t.clone(),
        (None, Some(var)) => Secret::new(
            env(var).ok_or_else(|| format!("{at}.initialAccessTokenEnv: environment variable {var} is not set"))?,
        ),
        (None, None) => {
            return Err(format!(
                "{at}: registration needs an initial access token, so that not anyone can register clients; add \
                 initialAccessTokenEnv: <variable> (or initialAccessToken), e.g. from `openssl rand -base64 32`, or remove \
                 the block to keep registration off"
            ));
        }
    };
    if token.expose().len() < 32 {
        return Err(format!(
            "{at}.initialAccessToken: {} characters is too short to resist guessing; use at least 32 (`openssl rand -base64 32`)",
            token.expose().len()
        ));
    }
    Ok(Some(token))
}

/// The grants enabled, as Dex resolves `oauth2.grantTypes`: absent, every grant but
/// `client_credentials`; `password` only with an `oauth2.passwordConnector`; `implicit` accepted and
/// never served (no response type issues tokens from the authorization endpoint). Dex drops a
/// name it does not know; we refuse it, so a typo cannot switch a grant off unseen.
fn grant_types(o: &OAuth2Config) -> Result<BTreeSet<GrantType>, String> {
    let mut out = BTreeSet::new();
    if o.grant_types.is_empty() {
        out.extend([
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::Password,
            GrantType::DeviceCode,
            GrantType::TokenExchange,
        ]);
    }
    for (i, name) in o.grant_types.iter().enumerate() {
        match GrantType::parse(name) {
            Some(grant) => {
                out.insert(grant);
            }
            None if name == "implicit" => {}
            None => {
                let known: Vec<&str> = GrantType::ALL.iter().map(|g| g.as_str()).collect();
                return Err(format!(
                    "oauth2.grantTypes[{i}]: {name:?} is not a grant type; write one of {}",
                    known.join(", ")
                ));
            }
        }
    }
    if o.password_connector.is_none() {
        out.remove(&GrantType::Password);
    }
    Ok(out)
}

/// The SSO session: Dex's `sessions` block when present (Dex's defaults: cookie `dex_session`,
/// 24h absolute, 1h idle, "remember me" checked, shared with no other client), else Portcullis's
/// own (cookie `portcullis_session`, `expiry.sessions`, no idle timeout, shared with every client).
fn sessions(block: Option<&SessionsConfig>, absolute: Duration) -> Result<Sessions, String> {
    let Some(b) = block else {
        return Ok(Sessions {
            cookie_name: SESSION_COOKIE.into(),
            absolute,
            idle: None,
            remember_me_default: None,
            share_by_default: true,
        });
    };
    let idle = duration("sessions.validIfNotUsedFor", &b.valid_if_not_used_for, hours(1))?;
    if idle > absolute {
        return Err(format!(
            "sessions.validIfNotUsedFor ({}s) must not exceed sessions.absoluteLifetime ({}s)",
            idle.as_secs(),
            absolute.as_secs()
        ));
    }
    let cookie_name = b.cookie_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "dex_session".into());
    let token_char = |ch: char| ch.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(ch);
    if !cookie_name.chars().all(token_char) {
        return Err(format!(
            "sessions.cookieName: {cookie_name:?} is not a cookie name; use letters, digits, '-' or '_'"
        ));
    }
    if let Some(key) = &b.cookie_encryption_key
        && !matches!(key.expose().len(), 0 | 16 | 24 | 32)
    {
        return Err(format!(
            "sessions.cookieEncryptionKey: must be 16, 24 or 32 bytes (AES-128/192/256), got {}",
            key.expose().len()
        ));
    }
    let share_by_default = match b.sso_shared_with_default.as_deref() {
        None | Some("") | Some("none") => false,
        Some("all") => true,
        Some(other) => return Err(format!("sessions.ssoSharedWithDefault: {other:?}; write none or all")),
    };
    Ok(Sessions {
        cookie_name,
        absolute,
        idle: Some(idle),
        remember_me_default: Some(b.remember_me_checked_by_default.unwrap_or(true)),
        share_by_default,
    })
}

/// The environment variable Dex reads for the same choice, with Dex's default (true).
pub const CONTINUE_ON_CONNECTOR_FAILURE: &str = "DEX_CONTINUE_ON_CONNECTOR_FAILURE";

/// Go's `strconv.ParseBool` spellings, as Dex reads its feature flags. Dex falls back to the
/// default on a value it cannot read; we refuse it, so a typo cannot flip the choice unseen.
fn continue_on_connector_failure(env: &dyn Fn(&str) -> Option<String>) -> Result<bool, String> {
    dex_flag(
        env,
        CONTINUE_ON_CONNECTOR_FAILURE,
        true,
        "start without a connector that fails to load",
        "refuse to start",
    )
}

/// Dex's feature flag for the admin API's connector calls (default false).
pub const API_CONNECTORS_CRUD: &str = "DEX_API_CONNECTORS_CRUD";

/// A Dex feature flag from the environment, in Go's `strconv.ParseBool` spellings; `yes` and
/// `no` say what true and false mean here. A value Go cannot read is refused.
pub(super) fn dex_flag(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: bool,
    yes: &str,
    no: &str,
) -> Result<bool, String> {
    match env(name).as_deref() {
        None | Some("") => Ok(default),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => {
            let (d_yes, d_no) = if default { ("; the default", "") } else { ("", "; the default") };
            Err(format!("environment variable {name}={other:?}: write true ({yes}{d_yes}) or false ({no}{d_no})"))
        }
    }
}

pub(super) fn clients(
    list: &[ClientConfig],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<ClientId, Client>, Vec<String>> {
    let mut clients = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, cc) in list.iter().enumerate() {
        let at = format!("staticClients[{i}]");
        match client(&at, cc, env) {
            Ok((id, client)) => {
                if clients.insert(id.as_str().into(), client).is_some() {
                    problems.push(format!("{at}.id: {id:?} is used twice; client ids must be unique"));
                }
            }
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() { Ok(clients) } else { Err(problems) }
}

/// One `staticClients` entry (at `at`): its id and the client.
pub(super) fn client(
    at: &str,
    cc: &ClientConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Client), String> {
    let id = match (cc.id.as_str(), &cc.id_env) {
        ("", Some(var)) => env(var).ok_or_else(|| format!("{at}.idEnv: environment variable {var} is not set"))?,
        (_, Some(_)) => return Err(format!("{at}: give id or idEnv, not both")),
        (id, None) => id.to_string(),
    };
    if id.trim().is_empty() {
        return Err(format!("{at}.id: must not be empty"));
    }
    let secret = match (&cc.secret, &cc.secret_env) {
        (Some(_), Some(_)) => return Err(format!("{at}: give secret or secretEnv, not both")),
        (Some(s), None) => Some(s.clone()),
        (None, Some(var)) => {
            Some(Secret::new(env(var).ok_or_else(|| format!("{at}.secretEnv: environment variable {var} is not set"))?))
        }
        (None, None) => None,
    };
    // Dex would check a public client's secret after all; we say what is meant instead.
    if cc.public && secret.is_some() {
        return Err(format!(
            "{at}: public: true with a secret: a public client cannot keep a secret, so none is asked for; remove the secret (a public client, with PKCE) or remove public: true (a confidential client)"
        ));
    }
    if !cc.public && secret.as_ref().is_none_or(|s| s.expose().is_empty()) {
        return Err(format!(
            "{at}: a confidential client needs a secret (or secretEnv); or set public: true for a client that cannot keep one"
        ));
    }
    // No redirect URIs is Dex's meaning for a native public client (loopback and out-of-band
    // redirects) or a client that only uses grants without redirects.
    for (j, uri) in cc.redirect_uris.iter().enumerate() {
        // A path (`/dex/device/callback`) is the broker's own page, as Dex's device flow uses it.
        if uri.starts_with('/') && !uri.starts_with("//") {
            continue;
        }
        let parsed = Url::parse(uri).map_err(|e| {
            format!("{at}.redirectURIs[{j}]: {uri:?} is not an absolute URL ({e}) nor a path starting with /")
        })?;
        if parsed.fragment().is_some() {
            return Err(format!("{at}.redirectURIs[{j}]: {uri:?} must not have a #fragment (RFC 6749 §3.1.2)"));
        }
    }
    for (j, uri) in cc.post_logout_redirect_uris.iter().enumerate() {
        let parsed = Url::parse(uri)
            .map_err(|e| format!("{at}.postLogoutRedirectURIs[{j}]: {uri:?} is not an absolute URL ({e})"))?;
        if parsed.fragment().is_some() {
            return Err(format!("{at}.postLogoutRedirectURIs[{j}]: {uri:?} must not have a #fragment"));
        }
    }
    let backchannel_logout_uri = match cc.backchannel_logout_uri.as_deref().filter(|u| !u.is_empty()) {
        None => None,
        Some(uri) => {
            let url = Url::parse(uri)
                .map_err(|e| format!("{at}.backchannelLogoutURI: {uri:?} is not an absolute URL ({e})"))?;
            if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() {
                return Err(format!("{at}.backchannelLogoutURI: {uri:?} must be an http(s) URL without #fragment"));
            }
            Some(url)
        }
    };
    let refresh_lifetime = match cc.refresh_token_lifetime.as_deref() {
        None | Some("") => RefreshTokenLifetime::Unset,
        Some("standalone") => RefreshTokenLifetime::Standalone,
        Some("session") => RefreshTokenLifetime::Session,
        Some(other) => {
            return Err(format!(
                "{at}.refreshTokenLifetime: {other:?}; write standalone (refresh tokens outlive logout, as in Dex) or session (they end with the SSO session)"
            ));
        }
    };
    if !cc.mfa_chain.is_empty() {
        return Err(format!(
            "{at}.mfaChain: multi-factor authentication is not built into Portcullis; ask for a second factor at the upstream identity provider, or remove mfaChain"
        ));
    }
    let client = Client {
        id: id.as_str().into(),
        secret,
        public: cc.public,
        redirect_uris: cc.redirect_uris.clone(),
        name: cc.name.clone().unwrap_or_else(|| id.clone()),
        logo_url: cc.logo_url.clone(),
        trusted_peers: cc.trusted_peers.iter().map(|p| p.as_str().into()).collect(),
        post_logout_redirect_uris: cc.post_logout_redirect_uris.clone(),
        allowed_connectors: cc.allowed_connectors.iter().map(|c| c.as_str().into()).collect(),
        backchannel_logout_uri,
        refresh_lifetime,
        sso_shared_with: cc.sso_shared_with.as_ref().map(|l| l.iter().map(|p| p.as_str().into()).collect()),
        client_credentials_groups: cc.client_credentials_claims.as_ref().map(|c| c.groups.clone()).unwrap_or_default(),
    };
    Ok((id, client))
}

fn passwords(c: &Config, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<StaticPassword>, String> {
    if !c.static_passwords.is_empty() && !c.enable_password_db {
        return Err("staticPasswords: the password database is off; add `enablePasswordDB: true`".into());
    }
    let mut emails = BTreeSet::new();
    let mut without_user_id = None;
    let mut out = Vec::new();
    for (i, p) in c.static_passwords.iter().enumerate() {
        let at = format!("staticPasswords[{i}]");
        let written = match (&p.hash, &p.hash_from_env) {
            (Some(hash), None) => hash.expose().to_string(),
            (None, Some(var)) => env(var).ok_or_else(|| {
                format!("{at}.hashFromEnv: environment variable {var} is not set; set it to the user's bcrypt or argon2id hash")
            })?,
            (Some(_), Some(_)) => return Err(format!("{at}: give hash or hashFromEnv, not both")),
            (None, None) => {
                return Err(format!(
                    "{at}: no password hash; add hash (from `portcullis hash-password`) or hashFromEnv"
                ));
            }
        };
        let key = if p.hash.is_some() { "hash" } else { "hashFromEnv" };
        let hash = crate::password::parse(&written).map_err(|e| format!("{at}.{key}: {e}"))?;
        if p.email.is_empty() {
            return Err(format!("{at}: email must not be empty"));
        }
        // Dex's meaning of a user without userID: the user id "", so a `sub` of ("", local).
        // Unique for one such user; a second would share it, and each could then be taken for
        // the other by every RP (and by grants listed by `sub`).
        if p.user_id.is_empty() {
            if let Some(first) = without_user_id {
                return Err(format!(
                    "{at}: no userID, like staticPasswords[{first}]: Dex gives both the same subject (`sub`), so an \
                     application could not tell the two users apart; give each a userID of its own (any unique \
                     string, e.g. a UUID; keep the one Dex has already issued tokens for empty)"
                ));
            }
            without_user_id = Some(i);
        }
        if !emails.insert(p.email.to_ascii_lowercase()) {
            return Err(format!("{at}.email: {:?} is used twice", p.email));
        }
        out.push(StaticPassword {
            email: p.email.clone(),
            hash: Secret::new(hash),
            username: p.username.clone(),
            name: p.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| p.username.clone()),
            preferred_username: p.preferred_username.clone().filter(|u| !u.is_empty()),
            email_verified: p.email_verified.unwrap_or(true),
            groups: p.groups.clone(),
            user_id: p.user_id.clone(),
        });
    }
    Ok(out)
}

pub(super) fn plugin_dirs(p: &PluginsConfig, base: &Path) -> Vec<PathBuf> {
    match &p.dir {
        Some(dir) => vec![base.join(dir)],
        None => {
            let mut dirs = vec![base.join("target/plugins"), base.join("../target/plugins")];
            if let Ok(exe) = std::env::current_exe()
                && let Some(bin) = exe.parent()
            {
                dirs.push(bin.join("../plugins"));
                dirs.push(bin.join("../../target/plugins"));
            }
            dirs.push(PathBuf::from("/usr/lib/portcullis/plugins"));
            dirs
        }
    }
}

/// Resolves connector entries to their plugins; `at(i)` names entry `i` in messages.
pub(super) fn connectors(
    list: &[ConnectorConfig],
    enable_password_db: bool,
    base: &Path,
    dirs: &[PathBuf],
    at: &dyn Fn(usize) -> String,
) -> Result<Vec<ConnectorEntry>, Vec<String>> {
    let mut ids = BTreeSet::new();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, cc) in list.iter().enumerate() {
        match connector(cc, enable_password_db, base, dirs, &at(i), &mut ids) {
            Ok(entry) => out.push(entry),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// One entry of the connectors list; `ids` are the ids seen before it.
fn connector(
    cc: &ConnectorConfig,
    enable_password_db: bool,
    base: &Path,
    dirs: &[PathBuf],
    at: &str,
    ids: &mut BTreeSet<String>,
) -> Result<ConnectorEntry, String> {
    let at = at.to_string();
    let valid_id = !cc.id.is_empty() && cc.id.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
    if !valid_id {
        return Err(format!(
            "{at}.id: {:?} must be letters, digits, '-' or '_' (it appears in URLs and subjects)",
            cc.id
        ));
    }
    if cc.id == "local" && enable_password_db {
        return Err(format!("{at}.id: \"local\" is the password database's id; choose another"));
    }
    if !ids.insert(cc.id.clone()) {
        return Err(format!("{at}.id: {:?} is used twice; connector ids must be unique", cc.id));
    }
    // A plugin file that is not there is the connector's failure, not the config's: a start
    // may go on without that connector (`DEX_CONTINUE_ON_CONNECTOR_FAILURE`).
    let mut missing = None;
    let plugin = match (&cc.kind, &cc.plugin) {
        (Some(_), Some(_)) => return Err(format!("{at}: give type or plugin, not both")),
        (None, None) => {
            return Err(format!(
                "{at}: give type (a shipped connector such as mock) or plugin (a path to a .wasm file)"
            ));
        }
        (None, Some(path)) => base.join(path),
        (Some(kind), None) => {
            let file = format!("{}.wasm", shipped_plugin(kind).0);
            match dirs.iter().map(|d| d.join(&file)).find(|p| p.is_file()) {
                Some(found) => found,
                None => {
                    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                    missing = Some(format!(
                        "{at}.type: no plugin {file} in {}; run `cargo xtask plugins`, set plugins.dir, or give plugin: <path>",
                        looked.join(", ")
                    ));
                    // Where it would be looked for first: the watcher sees it arrive there.
                    dirs.first().map_or_else(|| PathBuf::from(&file), |d| d.join(&file))
                }
            }
        }
    };
    if cc.kind.is_none() && !plugin.is_file() {
        missing = Some(format!(
            "{at}.plugin: {} does not exist; build or copy the plugin there, or correct the path",
            plugin.display()
        ));
    }
    // A key that holds only comments (`claimMapping:` with nothing under it) is absent, as in Dex.
    let mut config: serde_json::Map<String, serde_json::Value> =
        cc.config.clone().into_iter().filter_map(|(k, v)| Some((k, without_nulls(v)?))).collect();
    if let Some((_, Some(mode))) = cc.kind.as_deref().map(shipped_plugin) {
        config.entry("mode").or_insert_with(|| mode.into());
    }
    // Dex's ldap `rootCA` is a file: the broker reads it (plugins have no filesystem) and
    // hands the plugin its `rootCAData`; a reload sees the file change (`files`).
    // Dex's saml `ca` likewise (the IdP's signing certificate), into `caData`.
    let mut files = Vec::new();
    let pem_file = match cc.kind.as_deref() {
        Some("ldap") => Some(("rootCA", "rootCAData", "the CA's PEM file")),
        Some("saml") => Some(("ca", "caData", "the IdP's signing certificate (PEM)")),
        _ => None,
    };
    if let Some((key, data_key, what)) = pem_file
        && let Some(serde_json::Value::String(path)) = config.get(key).cloned()
    {
        use base64::Engine as _;
        if config.contains_key(data_key) {
            return Err(format!("{at}.config: {key} and {data_key} both give the certificate; keep one"));
        }
        let file = base.join(&path);
        let pem = std::fs::read(&file)
            .map_err(|e| format!("{at}.config.{key}: cannot read {} ({e}); give the path of {what}", file.display()))?;
        config.remove(key);
        config.insert(data_key.into(), base64::engine::general_purpose::STANDARD.encode(pem).into());
        files.push(file);
    }
    // Dex's ldap `clientCert`/`clientKey`: the host reads the pair (checked here, so a bad
    // file refuses the config naming the key) and presents it on the connector's TLS
    // connections; the plugin gets neither. Dex ignores one without the other; we refuse.
    let client_cert = match cc.kind.as_deref() {
        Some("ldap") => ldap_client_cert(&mut config, base, &at)?,
        _ => None,
    };
    if let Some(c) = &client_cert {
        files.extend([c.cert.clone(), c.key.clone()]);
    }
    // Signing keys (the `signing` import): the host reads each granted key file, the plugin
    // never; a file that is not a usable key refuses the config here, naming the key.
    let shipped = cc.kind.as_deref().map(|k| shipped_plugin(k).0);
    for key in crate::connectors::signing::granted(shipped, cc.signing_keys.as_deref()) {
        let Some(value) = config.get(&key) else { continue };
        let Some(path) = value.as_str() else {
            return Err(format!("{at}.config.{key}: must be the path of a key file"));
        };
        let file = base.join(path);
        crate::connectors::signing::SigningKey::read(&file).map_err(|reason| {
            format!(
                "{at}.config.{key}: {reason}; give the path of a service account's JSON key file \
                 (or of a PEM private key)"
            )
        })?;
        config.insert(key, file.display().to_string().into());
        files.push(file);
    }
    let config = serde_json::Value::Object(config);
    let spec = ConnectorSpec {
        id: cc.id.as_str().into(),
        name: cc.name.clone(),
        plugin,
        sha256: cc.sha256.clone(),
        kind: cc.kind.as_deref().map(|k| shipped_plugin(k).0.to_string()),
        allowed_hosts: cc.allowed_hosts.clone(),
        signing_keys: cc.signing_keys.clone(),
        limits: cc.limits.clone(),
        config,
        client_cert,
    };
    for (j, g) in cc.grant_types.iter().enumerate() {
        if !CONNECTOR_GRANTS.contains(&g.as_str()) {
            return Err(format!(
                "{at}.grantTypes[{j}]: {g:?} is not a grant a connector can be limited to; write one of {}",
                CONNECTOR_GRANTS.join(", ")
            ));
        }
    }
    Ok(ConnectorEntry { spec, kind: cc.kind.clone(), missing, grant_types: cc.grant_types.clone(), files })
}

/// Takes Dex's ldap `clientCert` and `clientKey` out of `config` (the plugin never sees them),
/// resolved against `base` and checked to be a certificate chain and its key.
fn ldap_client_cert(
    config: &mut serde_json::Map<String, serde_json::Value>,
    base: &Path,
    at: &str,
) -> Result<Option<crate::connectors::ClientCertFiles>, String> {
    let mut take = |key: &str| match config.remove(key) {
        None => Ok(None),
        Some(serde_json::Value::String(path)) if !path.is_empty() => Ok(Some(base.join(path))),
        Some(serde_json::Value::String(_)) => Ok(None),
        Some(_) => Err(format!("{at}.config.{key}: must be the path of a PEM file")),
    };
    let (cert, key) = (take("clientCert")?, take("clientKey")?);
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) | (None, Some(_)) => {
            return Err(format!(
                "{at}.config: clientCert and clientKey go together (Dex silently ignores one without the \
                 other); give both PEM files, or neither"
            ));
        }
    };
    crate::connectors::capabilities::ldap::ClientIdentity::read(&cert, &key)
        .map_err(|reason| format!("{at}.config.clientCert/clientKey: {reason}"))?;
    Ok(Some(crate::connectors::ClientCertFiles { cert, key }))
}

#[cfg(test)]
mod sqlite_file_tests {
    use super::sqlite_file;

    #[test]
    fn a_relative_file_only_the_working_directory_has_is_refused_naming_both() {
        let cwd = tempfile::tempdir().unwrap();
        let base = cwd.path().join("examples");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(cwd.path().join("examples/dex.db"), b"").unwrap();
        // Dex's reading (working directory) finds a file; ours (config's folder) would not.
        let err = sqlite_file("examples/dex.db", &base, Some(cwd.path())).unwrap_err();
        assert!(err.contains(&base.join("examples/dex.db").display().to_string()), "{err}");
        assert!(err.contains(&cwd.path().join("examples/dex.db").display().to_string()), "{err}");
        // Written from the config's folder, or with no file on either side, or absolute: fine.
        sqlite_file("dex.db", &base, Some(cwd.path())).unwrap();
        sqlite_file("new.db", &base, Some(cwd.path())).unwrap();
        sqlite_file(&cwd.path().join("examples/dex.db").display().to_string(), &base, Some(cwd.path())).unwrap();
        // Both readings name one file when the config sits in the working directory.
        sqlite_file("examples/dex.db", cwd.path(), Some(cwd.path())).unwrap();
        // Dex's `:memory:` is taken (as the memory storage); an empty path and a URI are not.
        sqlite_file(":memory:", &base, Some(cwd.path())).unwrap();
        assert!(sqlite_file("", &base, None).unwrap_err().contains("is empty"));
        assert!(sqlite_file("file:x.db?mode=rwc", &base, None).unwrap_err().contains("SQLite URI"));
    }
}
