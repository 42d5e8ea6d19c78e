//! The config file's sections, one struct each, unknown keys refused. Defaults live here.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Deserialize;

use crate::connectors::LimitsConfig;
use crate::connectors::limits::PoolConfig;
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// The issuer URL, exactly as relying parties will compare it.
    pub issuer: String,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub frontend: FrontendConfig,
    #[serde(default)]
    pub expiry: ExpiryConfig,
    #[serde(default)]
    pub logger: LoggerConfig,
    #[serde(default)]
    pub oauth2: OAuth2Config,
    #[serde(default)]
    pub signing: SigningConfig,
    /// Dex's gRPC admin API (`api::serve`): off unless `addr` is set.
    #[serde(default)]
    pub grpc: GrpcConfig,
    /// Dex's `sessions` block: the SSO session's cookie, lifetimes and sharing.
    #[serde(default)]
    pub sessions: Option<SessionsConfig>,
    /// Dex's `mfa` block: accepted only when it configures nothing (see `validate`).
    #[serde(default)]
    pub mfa: Option<MfaConfig>,
    /// Dex's `signer` block (`type: local` with `keysRotationPeriod` and `algorithm`).
    #[serde(default)]
    pub signer: Option<SignerConfig>,
    #[serde(default)]
    pub static_clients: Vec<ClientConfig>,
    #[serde(default, rename = "enablePasswordDB")]
    pub enable_password_db: bool,
    #[serde(default)]
    pub static_passwords: Vec<PasswordConfig>,
    #[serde(default)]
    pub connectors: Vec<ConnectorConfig>,
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Policy plugins (`wit/policy`), applied in list order after every login and token.
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "type", content = "config", rename_all = "lowercase")]
pub enum StorageConfig {
    /// `config` absent or `{}`, as Dex writes it.
    Memory(Option<MemoryConfig>),
    Sqlite3(SqliteConfig),
    Postgres(Box<PostgresConfig>),
    Mysql(Box<MysqlConfig>),
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::Sqlite3(SqliteConfig { file: "portcullis.db".into() })
    }
}

/// `storage.config` of `type: memory`: nothing to set.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    pub file: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresConfig {
    /// A full `postgres://` URL; or the Dex-style fields below.
    #[serde(default)]
    pub url: Option<Secret>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Seconds to wait for a connection (Dex: `connectionTimeout`).
    #[serde(default)]
    pub connection_timeout: Option<u64>,
    #[serde(default)]
    pub max_open_conns: Option<u32>,
    /// Seconds a connection is kept before it is replaced.
    #[serde(default)]
    pub conn_max_lifetime: Option<u64>,
    /// Dex's key; refused in `validate`, as for mysql.
    #[serde(default)]
    pub max_idle_conns: Option<serde_yaml::Value>,
    #[serde(default)]
    pub ssl: Option<PostgresSsl>,
}

/// `storage.config.ssl` of `type: postgres`, Dex's keys: `mode` (libpq's sslmode;
/// `verify-full` when absent, as in Dex) and the CA and client certificate files.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresSsl {
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
}

/// `storage.config` of `type: mysql` (MySQL or MariaDB), with Dex's keys.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MysqlConfig {
    /// `HOST`, `HOST:PORT` or a Unix socket path (starting with `/`); `localhost` if absent.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Seconds to wait for a connection (Dex: `connectionTimeout`).
    #[serde(default)]
    pub connection_timeout: Option<u64>,
    #[serde(default)]
    pub max_open_conns: Option<u32>,
    /// Seconds a connection is kept before it is replaced.
    #[serde(default)]
    pub conn_max_lifetime: Option<u64>,
    /// Dex's key; refused in `validate`: sqlx's pool has no cap on idle connections.
    #[serde(default)]
    pub max_idle_conns: Option<serde_yaml::Value>,
    #[serde(default)]
    pub ssl: Option<MysqlSsl>,
}

/// `storage.config.ssl` of `type: mysql`: Dex's `mode` (`true` when absent, as in Dex: TLS,
/// verified; `false`; `skip-verify`; `preferred`) and files.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MysqlSsl {
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    /// Refused in `validate`: the server's certificate is checked against `host`.
    #[serde(default)]
    pub server_name: Option<serde_yaml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebConfig {
    /// Plain HTTP address; `127.0.0.1:5556` when neither this nor `https` is given (set in
    /// `validate`). With only `https`, no plain listener, as in Dex.
    #[serde(default)]
    pub http: Option<String>,
    #[serde(default)]
    pub https: Option<String>,
    #[serde(default)]
    pub tls_cert: Option<String>,
    #[serde(default)]
    pub tls_key: Option<String>,
    /// `"1.2"` (default) or `"1.3"`: the oldest TLS version `web.https` accepts.
    #[serde(default, deserialize_with = "tls_version")]
    pub tls_min_version: Option<String>,
    /// `"1.2"` or `"1.3"` (default): the newest TLS version `web.https` accepts.
    #[serde(default, deserialize_with = "tls_version")]
    pub tls_max_version: Option<String>,
    /// A PEM file of CA certificates: `web.https` then requires a client certificate issued by
    /// one of them (Dex has this key for gRPC only).
    #[serde(default, rename = "tlsClientCA")]
    pub tls_client_ca: Option<String>,
    /// Response headers that replace the broker's defaults (Dex's `web.headers`).
    #[serde(default)]
    pub headers: HeadersConfig,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Request headers CORS preflights may ask for, besides `Authorization` and `Content-Type`.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Where the client's address comes from behind a proxy (Dex's `web.clientRemoteIP`).
    #[serde(default, rename = "clientRemoteIP")]
    pub client_remote_ip: ClientRemoteIpConfig,
    /// Portcullis extension: the throttles' bursts (0 turns one off). Read at start.
    #[serde(default)]
    pub throttle: ThrottleConfig,
    /// Portcullis extension: after SIGTERM, how long readiness answers 503 while requests are
    /// still served (so a load balancer stops sending new ones) before the listeners stop
    /// accepting and drain. A duration ("5s"); none by default. Read at start.
    #[serde(default)]
    pub shutdown_delay: Option<String>,
}

/// `web.throttle`: how many requests a burst may hold before they are slowed (see
/// `throttle.rs` for the refill rates). Absent keys keep the defaults.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ThrottleConfig {
    /// Authorization requests per client IP (default 120, then 2 a second).
    #[serde(default, rename = "authorizePerIP")]
    pub authorize_per_ip: Option<u32>,
    /// Password attempts per client IP (default 60, then 1 a second).
    #[serde(default, rename = "passwordPerIP")]
    pub password_per_ip: Option<u32>,
    /// Password attempts per account (default 10, then 1 every 6 seconds).
    #[serde(default)]
    pub password_per_account: Option<u32>,
    /// Device user codes entered per client IP (default 10, then 1 every 6 seconds).
    #[serde(default, rename = "userCodePerIP")]
    pub user_code_per_ip: Option<u32>,
}

/// `web.headers`: Dex's keys, the header names themselves. A value replaces the broker's
/// default for that header on every response; blank or absent keeps the default (Dex: blank
/// is unset). Any other name is refused.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    #[serde(default, rename = "Content-Security-Policy")]
    pub content_security_policy: Option<String>,
    #[serde(default, rename = "X-Frame-Options")]
    pub x_frame_options: Option<String>,
    #[serde(default, rename = "X-Content-Type-Options")]
    pub x_content_type_options: Option<String>,
    #[serde(default, rename = "X-XSS-Protection")]
    pub x_xss_protection: Option<String>,
    #[serde(default, rename = "Strict-Transport-Security")]
    pub strict_transport_security: Option<String>,
}

impl HeadersConfig {
    /// The headers the operator set (name, value), blank ones left out.
    pub fn set(&self) -> Vec<(&'static str, &str)> {
        [
            ("Content-Security-Policy", &self.content_security_policy),
            ("X-Frame-Options", &self.x_frame_options),
            ("X-Content-Type-Options", &self.x_content_type_options),
            ("X-XSS-Protection", &self.x_xss_protection),
            ("Strict-Transport-Security", &self.strict_transport_security),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(|v| (name, v)))
        .collect()
    }
}

/// `web.clientRemoteIP`: the header a trusted proxy puts the client's address in, and which
/// peers are trusted proxies (CIDRs, checked in `validate`).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientRemoteIpConfig {
    /// e.g. `X-Forwarded-For` or `X-Real-IP`.
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// An entry of `trustedProxies`: an address range such as `10.0.0.0/8` or `fd00::/8` (host bits may be set, as Go's
/// `netip.ParsePrefix` allows; they are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, bits) = s.trim().split_once('/').ok_or("no /prefix length")?;
        let addr: IpAddr = addr.parse().map_err(|_| format!("{addr:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("prefix length {bits:?} is not 0 to {max}"))?;
        Ok(Self { addr, bits })
    }
}

impl Cidr {
    /// Whether `ip` is in this range (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn prefix(value: u128, bits: u8, width: u8) -> u128 {
            if bits == 0 { 0 } else { value >> (width - bits) }
        }
        match (self.addr.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix(u32::from(net).into(), self.bits, 32) == prefix(u32::from(ip).into(), self.bits, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix(net.into(), self.bits, 128) == prefix(ip.into(), self.bits, 128)
            }
            _ => false,
        }
    }
}

fn default_http() -> Option<String> {
    Some("127.0.0.1:5556".into())
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            http: default_http(),
            https: None,
            tls_cert: None,
            tls_key: None,
            tls_min_version: None,
            tls_max_version: None,
            tls_client_ca: None,
            headers: HeadersConfig::default(),
            allowed_origins: Vec::new(),
            allowed_headers: Vec::new(),
            client_remote_ip: ClientRemoteIpConfig::default(),
            throttle: ThrottleConfig::default(),
            shutdown_delay: None,
        }
    }
}

/// Dex's `grpc` block: where the admin API listens and its TLS (mutual with `tlsClientCA`).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrpcConfig {
    /// TCP address; absent or empty: no API.
    #[serde(default)]
    pub addr: Option<String>,
    #[serde(default)]
    pub tls_cert: Option<String>,
    #[serde(default)]
    pub tls_key: Option<String>,
    /// Clients must present a certificate issued by one of these CAs (PEM).
    #[serde(default, rename = "tlsClientCA")]
    pub tls_client_ca: Option<String>,
    #[serde(default, deserialize_with = "tls_version")]
    pub tls_min_version: Option<String>,
    #[serde(default, deserialize_with = "tls_version")]
    pub tls_max_version: Option<String>,
    /// Serve the gRPC server-reflection service (grpcurl without the proto file).
    #[serde(default)]
    pub reflection: bool,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TelemetryConfig {
    #[serde(default)]
    pub http: Option<String>,
    /// Dex's Go pprof endpoints: `false` is accepted, `true` refused (see `validate`).
    #[serde(default)]
    pub enable_profiling: bool,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FrontendConfig {
    /// Name shown on the pages (Dex's `frontend.issuer`).
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default, rename = "logoURL")]
    pub logo_url: Option<String>,
    /// A folder of templates, static files and themes replacing the built-in ones (see `frontend.rs`).
    #[serde(default)]
    pub dir: Option<String>,
    /// `light`, `dark`, or a folder under `dir/themes`.
    #[serde(default)]
    pub theme: Option<String>,
    /// Values handed to every template as `extra`.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExpiryConfig {
    #[serde(default)]
    pub id_tokens: Option<String>,
    #[serde(default)]
    pub auth_requests: Option<String>,
    #[serde(default)]
    pub signing_keys: Option<String>,
    /// Device authorization requests (RFC 8628; default 5m, as Dex).
    #[serde(default)]
    pub device_requests: Option<String>,
    /// Authorization code lifetime (Portcullis extension; default 10m).
    #[serde(default)]
    pub auth_codes: Option<String>,
    /// Browser session (single sign-on) lifetime (Portcullis extension; default 24h).
    #[serde(default)]
    pub sessions: Option<String>,
    /// Access token lifetime (Portcullis extension; default `idTokens`, as Dex behaves).
    #[serde(default)]
    pub access_tokens: Option<String>,
    #[serde(default)]
    pub refresh_tokens: RefreshExpiryConfig,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshExpiryConfig {
    #[serde(default)]
    pub disable_rotation: bool,
    #[serde(default)]
    pub reuse_interval: Option<String>,
    #[serde(default)]
    pub valid_if_not_used_for: Option<String>,
    #[serde(default)]
    pub absolute_lifetime: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoggerConfig {
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    /// Log fields dropped from every line (`email`, `username`, `groups`…), as Dex.
    #[serde(default)]
    pub exclude_fields: Vec<String>,
}

/// Dex's `sessions:` (its SSO session). Absent keys keep Dex's defaults.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionsConfig {
    /// Default `dex_session`.
    #[serde(default)]
    pub cookie_name: Option<String>,
    /// Default 24h.
    #[serde(default)]
    pub absolute_lifetime: Option<String>,
    /// The idle timeout; default 1h.
    #[serde(default)]
    pub valid_if_not_used_for: Option<String>,
    /// The password form's "remember me" box starts checked (default true).
    #[serde(default)]
    pub remember_me_checked_by_default: Option<bool>,
    /// Accepted (16, 24 or 32 bytes) and unused: the cookie holds only a random session key.
    #[serde(default)]
    pub cookie_encryption_key: Option<Secret>,
    /// `none` (default) or `all`: which clients may reuse a session without `ssoSharedWith`.
    #[serde(default)]
    pub sso_shared_with_default: Option<String>,
}

/// Dex's `mfa:` block.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MfaConfig {
    #[serde(default)]
    pub authenticators: Vec<serde_yaml::Value>,
    #[serde(default, rename = "defaultMFAChain")]
    pub default_mfa_chain: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OAuth2Config {
    /// The grants served and advertised; empty: every grant this version serves.
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub response_types: Vec<String>,
    #[serde(default)]
    pub skip_approval_screen: bool,
    #[serde(default)]
    pub always_show_login_screen: bool,
    #[serde(default)]
    pub password_connector: Option<String>,
    #[serde(default)]
    pub pkce: PkceConfig,
    /// Portcullis extension: who may call `/token/introspect`.
    #[serde(default)]
    pub introspection: IntrospectionConfig,
    /// Portcullis extension: dynamic client registration (RFC 7591/7592); absent: off.
    #[serde(default)]
    pub client_registration: Option<ClientRegistrationConfig>,
}

/// `oauth2.clientRegistration`: `POST /register` open to holders of the initial access token.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientRegistrationConfig {
    /// The bearer token a registration must present (RFC 7591 §3's initial access token).
    #[serde(default)]
    pub initial_access_token: Option<Secret>,
    /// The environment variable holding it instead.
    #[serde(default)]
    pub initial_access_token_env: Option<String>,
}

/// `oauth2.introspection`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntrospectionConfig {
    /// Answer callers that present no client credentials, as Dex does (default false: RFC 7662
    /// §4 asks the endpoint to be protected, or anyone can test stolen tokens).
    #[serde(default)]
    pub allow_unauthenticated: bool,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PkceConfig {
    /// Every authorization code flow must use PKCE, confidential clients too.
    #[serde(default)]
    pub enforce: bool,
    /// `S256` (default) and optionally `plain`.
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

/// Dex's `signer:`; its `config` is read per type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub config: Option<serde_yaml::Value>,
}

/// `signer.config` for `type: local`, as Dex reads it.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalSignerConfig {
    #[serde(default)]
    pub keys_rotation_period: Option<String>,
    #[serde(default)]
    pub algorithm: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SigningConfig {
    /// RS256 (default), ES256 or EdDSA.
    #[serde(default)]
    pub algorithm: Option<String>,
    #[serde(default)]
    pub rotation_period: Option<String>,
    /// The algorithm of JWT access tokens, signed with a key of their own (also published in
    /// the JWKS); absent: `algorithm`, one key for both, as Dex. ES256 here keeps RS256 ID
    /// tokens and makes the second signature of every grant ~30× cheaper (docs/performance.md).
    #[serde(default)]
    pub access_token_algorithm: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientConfig {
    #[serde(default)]
    pub id: String,
    /// The environment variable holding the id instead (Dex's `idEnv`).
    #[serde(default)]
    pub id_env: Option<String>,
    /// Connector ids this client may log users in with (Dex's `allowedConnectors`); empty: all.
    #[serde(default)]
    pub allowed_connectors: Vec<String>,
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default, rename = "redirectURIs")]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "logoURL")]
    pub logo_url: Option<String>,
    #[serde(default)]
    pub trusted_peers: Vec<String>,
    #[serde(default, rename = "postLogoutRedirectURIs")]
    pub post_logout_redirect_uris: Vec<String>,
    /// OIDC Back-Channel Logout 1.0: where a logout token is POSTed when a session ends.
    #[serde(default, rename = "backchannelLogoutURI")]
    pub backchannel_logout_uri: Option<String>,
    /// `standalone` (default) or `session`: whether refresh tokens end with the SSO session.
    #[serde(default)]
    pub refresh_token_lifetime: Option<String>,
    /// Clients that may reuse this client's SSO session (`*`: all); absent: `sessions.ssoSharedWithDefault`.
    #[serde(default)]
    pub sso_shared_with: Option<Vec<String>>,
    /// Dex's MFA chain: accepted only empty (see `validate`).
    #[serde(default)]
    pub mfa_chain: Vec<String>,
    /// Claims of `client_credentials` tokens (Dex's `clientCredentialsClaims`).
    #[serde(default)]
    pub client_credentials_claims: Option<ClientCredentialsClaimsConfig>,
}

/// Dex's `clientCredentialsClaims`: the groups a client_credentials token carries.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientCredentialsClaimsConfig {
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PasswordConfig {
    pub email: String,
    /// bcrypt hash (`portcullis hash-password`), or that hash base64-encoded, as Dex accepts.
    #[serde(default)]
    pub hash: Option<Secret>,
    /// The environment variable holding the hash instead (Dex's `hashFromEnv`).
    #[serde(default)]
    pub hash_from_env: Option<String>,
    #[serde(default)]
    pub username: String,
    /// Display name (the `name` claim; `username` when absent, as in Dex).
    #[serde(default)]
    pub name: Option<String>,
    /// The `preferred_username` claim; absent when not set, as in Dex.
    #[serde(default)]
    pub preferred_username: Option<String>,
    /// The `email_verified` claim; true when absent, as in Dex.
    #[serde(default)]
    pub email_verified: Option<bool>,
    /// The `groups` claim.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Absent or empty: `""`, as Dex takes it (Dex's own OIDC-conformance config has none);
    /// validation refuses a second user without one, since both would get one `sub`.
    #[serde(rename = "userID", default)]
    pub user_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectorConfig {
    /// A shipped plugin (`mock`, `github`, ...), resolved in `plugins.dir`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Or a path to a `.wasm` component (relative to the config file).
    #[serde(default)]
    pub plugin: Option<String>,
    /// `sha256:<hex>` pin of the plugin file.
    #[serde(default)]
    pub sha256: Option<String>,
    pub id: String,
    pub name: String,
    /// What the connector may reach; absent: the hosts its `config` names (connectors/implied.rs).
    #[serde(default)]
    pub allowed_hosts: Option<Vec<String>>,
    /// Config keys whose values are paths of private keys the connector may sign with
    /// (`signing` import); absent: its shipped type's documented key (google:
    /// `serviceAccountFilePath`), none for other plugins.
    #[serde(default)]
    pub signing_keys: Option<Vec<String>>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub config: BTreeMap<String, serde_json::Value>,
    /// Dex's `grantTypes`: the grants this connector may serve (empty: every one).
    #[serde(default)]
    pub grant_types: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginsConfig {
    /// Where `type:` plugins are found (default: `target/plugins` beside the config, then
    /// `/usr/lib/portcullis/plugins`).
    #[serde(default)]
    pub dir: Option<String>,
    /// The compile cache (default: `$XDG_CACHE_HOME/portcullis`).
    #[serde(default)]
    pub cache_dir: Option<String>,
    /// Per-component caps of the pooling allocator (core instances, memories, tables); read at
    /// start, since the engine is built once per process.
    #[serde(default)]
    pub pool: PoolConfig,
}

/// One entry of `policies:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyConfig {
    /// A shipped policy (`group-gate`), resolved in `plugins.dir`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Or a path to a `.wasm` component (relative to the config file).
    #[serde(default)]
    pub plugin: Option<String>,
    pub id: String,
    /// `sha256:<hex>` pin of the plugin file.
    #[serde(default)]
    pub sha256: Option<String>,
    /// What the policy's `http` import may reach; absent: nothing.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The clients it applies to; absent: every client.
    #[serde(default)]
    pub clients: Option<Vec<String>>,
    /// The connectors it applies to; absent: every connector.
    #[serde(default)]
    pub connectors: Option<Vec<String>>,
    /// What a failing policy does: `deny` (the default) or `allow` (skipped).
    #[serde(default)]
    pub on_error: crate::connectors::policy::OnError,
    #[serde(default)]
    pub config: BTreeMap<String, serde_json::Value>,
}

/// A TLS version as Dex reads it: `"1.3"`, or `1.3` unquoted, which YAML makes a number (Dex's
/// YAML-to-JSON step turns it back into the string its field wants; `config.yaml.dist` writes it so).
fn tls_version<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Version {
        Text(String),
        Number(f64),
    }
    Ok(Option::<Version>::deserialize(deserializer)?.map(|v| match v {
        Version::Text(text) => text,
        Version::Number(n) => n.to_string(),
    }))
}
