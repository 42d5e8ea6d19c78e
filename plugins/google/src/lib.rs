//! Google connector: OpenID Connect against `https://accounts.google.com`, with Dex's `google`
//! keys, the `hd` claim checked against `hostedDomains`, `access_type=offline` for refresh,
//! and Workspace groups through the Admin SDK (`groups.rs`). The protocol lives in
//! `portcullis-oidc-core`, shared with the oidc connector. See `docs/connectors/google.md`.

mod groups;

use std::collections::BTreeMap;

use portcullis_connector_sdk::{CallbackRequest, Connector, ConnectorError, Identity, LoginRedirect, Metadata, Scopes};
use portcullis_oidc_core::{Client, ConnectorData, Provider, check_prompt, check_set, check_url, claims, token};
use serde::Deserialize;
use serde_json::{Map, Value};

const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// Ours, not Dex's: where Google is (tests point it at a fake).
    #[serde(default = "google_issuer")]
    issuer: String,
    #[serde(rename = "clientID")]
    client_id: String,
    client_secret: String,
    #[serde(rename = "redirectURI")]
    redirect_uri: Option<String>,
    scopes: Option<Vec<String>>,
    #[serde(default)]
    hosted_domains: Vec<String>,
    prompt_type: Option<String>,
    /// Dex's: the groups a user must be in (one at least); only those are kept.
    #[serde(default)]
    groups: Vec<String>,
    /// Dex's: the service account's JSON key file, read by the broker (never by this plugin).
    service_account_file_path: Option<String>,
    /// Dex's deprecated spelling of `domainToAdminEmail: {"*": ...}`.
    admin_email: Option<String>,
    /// Dex's: the admin each Workspace domain's directory is read as (`*`: any other domain).
    #[serde(default)]
    domain_to_admin_email: BTreeMap<String, String>,
    #[serde(default)]
    fetch_transitive_group_membership: bool,
    /// Ours, not Dex's: where the Admin SDK Directory API is (tests point it at a fake).
    #[serde(rename = "directoryURL")]
    directory_url: Option<String>,
}

fn google_issuer() -> String {
    GOOGLE_ISSUER.to_string()
}

impl Config {
    fn validate(&self) -> Result<(), ConnectorError> {
        let admins = self.admins();
        match (&self.service_account_file_path, admins.is_empty()) {
            (Some(path), _) if path.trim().is_empty() => {
                return Err(ConnectorError::Config("serviceAccountFilePath must not be empty".into()));
            }
            // Dex's own message for this case.
            (Some(_), true) => {
                return Err(ConnectorError::Config(
                    "directory service requires the domainToAdminEmail option to be configured".into(),
                ));
            }
            (None, false) => {
                return Err(ConnectorError::Config(
                    "domainToAdminEmail needs serviceAccountFilePath: the broker reads groups with a service                      account's key (Google's application default credentials are not used)"
                        .into(),
                ));
            }
            _ => {}
        }
        if let Some((domain, _)) = admins.iter().find(|(d, a)| d.trim().is_empty() || !a.contains('@')) {
            return Err(ConnectorError::Config(format!(
                "domainToAdminEmail.{domain}: give the email address of a Workspace admin of that domain"
            )));
        }
        if let Some(url) = &self.directory_url {
            check_url("directoryURL", url)?;
        }
        check_url("issuer", &self.issuer)?;
        check_set("clientID", &self.client_id)?;
        check_set("clientSecret", &self.client_secret)?;
        if let Some(uri) = &self.redirect_uri {
            check_url("redirectURI", uri)?;
        }
        if self.hosted_domains.iter().any(|d| d.trim().is_empty()) {
            return Err(ConnectorError::Config("hostedDomains must not contain an empty domain".into()));
        }
        check_prompt(self.prompt())
    }

    /// `domainToAdminEmail`, with Dex's deprecated `adminEmail` as its `*` entry.
    fn admins(&self) -> BTreeMap<String, String> {
        let mut admins = self.domain_to_admin_email.clone();
        if let Some(admin) = &self.admin_email {
            admins.insert("*".into(), admin.clone());
        }
        admins
    }

    /// The user's Workspace groups when the client asked for them and the directory is
    /// configured (Dex: `s.Groups && len(adminSrv) > 0`), filtered by `groups`.
    fn with_groups(&self, provider: &Provider, scopes: Scopes, id: Identity) -> Result<Identity, ConnectorError> {
        if !scopes.groups || self.service_account_file_path.is_none() {
            return Ok(id);
        }
        let Some(email) = id.email.clone() else {
            return Err(ConnectorError::Upstream("the Google account has no email address to read groups for".into()));
        };
        let admins = self.admins();
        let url = self.directory_url.as_deref().unwrap_or(groups::DIRECTORY_URL);
        let found = groups::Directory::new(&provider.token_endpoint, url, &admins)
            .groups(&email, self.fetch_transitive_group_membership)?;
        let kept = groups::filter(found, &self.groups, &id.username)?;
        Ok(id.groups(kept))
    }

    /// `promptType`, Dex's default `consent` when absent; `""` sends none.
    fn prompt(&self) -> &str {
        self.prompt_type.as_deref().unwrap_or("consent")
    }

    /// Google writes `iss` with or without `https://`; accept both for the configured issuer.
    fn issuers(&self) -> Vec<&str> {
        let mut issuers = vec![self.issuer.as_str()];
        if let Some(bare) = self.issuer.strip_prefix("https://") {
            issuers.push(bare);
        }
        issuers
    }

    fn client<'a>(&'a self, provider: &Provider, host_callback: &'a str) -> Client<'a> {
        Client {
            client_id: &self.client_id,
            client_secret: &self.client_secret,
            redirect_uri: portcullis_oidc_core::redirect_uri(self.redirect_uri.as_deref(), host_callback),
            secret_in_body: provider.secret_in_body(false),
        }
    }

    /// The user in verified ID token `claims`, refused unless the `hd` claim is allowed and
    /// the email address verified.
    fn identity(
        &self,
        claims: &Map<String, Value>,
        connector_data: Option<Vec<u8>>,
    ) -> Result<Identity, ConnectorError> {
        if !self.hosted_domains.is_empty() {
            match claims::string(claims, "hd") {
                Some(hd) if self.hosted_domains.contains(&hd) => {}
                Some(hd) => {
                    return Err(ConnectorError::Denied(format!(
                        "the Google account belongs to {hd:?}, which is not an allowed domain"
                    )));
                }
                None => {
                    return Err(ConnectorError::Denied(
                        "the Google account is not in an allowed Google Workspace domain".into(),
                    ));
                }
            }
        }
        let user_id = claims::string(claims, "sub")
            .ok_or_else(|| ConnectorError::Upstream("the Google ID token has no sub".into()))?;
        let email = claims::string(claims, "email");
        if email.is_some() && !claims::email_verified(claims) {
            return Err(ConnectorError::Denied("the Google account's email address is not verified".into()));
        }
        let username = claims::string(claims, "name").or_else(|| email.clone()).unwrap_or_else(|| user_id.clone());
        let verified = email.is_some();
        Ok(Identity::new(user_id, username).maybe_email(email, verified).connector_data(connector_data))
    }
}

struct Google;

impl Connector for Google {
    type Config = Config;

    fn describe(config: &Config) -> Result<Metadata, ConnectorError> {
        config.validate()?;
        Ok(Metadata::callback().with_refresh())
    }

    fn login_url(
        config: &Config,
        scopes: Scopes,
        callback_url: &str,
        state: &str,
    ) -> Result<LoginRedirect, ConnectorError> {
        let provider = Provider::discover(&config.issuer)?;
        let client = config.client(&provider, callback_url);
        let upstream = portcullis_oidc_core::upstream_scopes(config.scopes.as_deref(), DEFAULT_SCOPES, None);
        let mut extra = Vec::new();
        if scopes.offline_access {
            extra.push(("access_type", "offline"));
        }
        match config.hosted_domains.as_slice() {
            [] => {}
            [one] => extra.push(("hd", one.as_str())),
            _ => extra.push(("hd", "*")),
        }
        portcullis_oidc_core::authorization_url(&provider, &client, &upstream, config.prompt(), &extra, state)
    }

    fn handle_callback(config: &Config, scopes: Scopes, req: CallbackRequest) -> Result<Identity, ConnectorError> {
        let provider = Provider::discover(&config.issuer)?;
        let client = config.client(&provider, &req.callback_url);
        let login = portcullis_oidc_core::handle_callback(&provider, &client, &req, &config.issuers())?;
        let data = match login.tokens.refresh_token {
            Some(refresh_token) if scopes.offline_access => {
                ConnectorData { refresh_token, sub: claims::string(&login.claims, "sub") }.encode()
            }
            _ => None,
        };
        let id = config.identity(&login.claims, data)?;
        config.with_groups(&provider, scopes, id)
    }

    fn refresh(config: &Config, scopes: Scopes, previous: Identity) -> Result<Identity, ConnectorError> {
        let data = ConnectorData::decode(previous.connector_data.as_deref())?;
        let provider = Provider::discover(&config.issuer)?;
        let client = config.client(&provider, config.redirect_uri.as_deref().unwrap_or_default());
        let tokens = token::refresh(&provider, &client, &data.refresh_token)?;
        // Google keeps the refresh token (no new one comes back) unless it rotates it.
        let kept = ConnectorData { refresh_token: tokens.refresh_token.unwrap_or(data.refresh_token), sub: data.sub };
        let Some(id_token) = tokens.id_token.as_deref() else {
            return Ok(previous.connector_data(kept.encode()));
        };
        let claims = token::verify_id_token(&provider, &config.client_id, id_token, &config.issuers(), None)?;
        let next = config.identity(&claims, kept.encode())?;
        if next.user_id != previous.user_id {
            return Err(ConnectorError::Upstream("the refreshed Google identity is another user".into()));
        }
        config.with_groups(&provider, scopes, next)
    }
}

portcullis_connector_sdk::export_connector!(Google);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra: Value) -> Config {
        let mut c = json!({"clientID": "app", "clientSecret": "s"});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(c).unwrap()
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn hosted_domains_and_verified_email() {
        let user = |hd: Option<&str>, verified: Value| {
            let mut c = json!({"sub": "1098", "email": "sam@acme.test", "email_verified": verified, "name": "Sam"});
            if let Some(hd) = hd {
                c["hd"] = json!(hd);
            }
            claims(c)
        };
        let restricted = config(json!({"hostedDomains": ["acme.test"]}));
        let id = restricted.identity(&user(Some("acme.test"), json!(true)), None).unwrap();
        assert_eq!((id.user_id.as_str(), id.username.as_str()), ("1098", "Sam"));
        assert_eq!(id.email.as_deref(), Some("sam@acme.test"));
        assert!(id.email_verified);
        for (hd, verified) in
            [(None, json!(true)), (Some("other.test"), json!(true)), (Some("acme.test"), json!(false))]
        {
            let err = restricted.identity(&user(hd, verified.clone()), None).unwrap_err();
            assert!(matches!(err, ConnectorError::Denied(_)), "{hd:?} {verified}: {err:?}");
        }
        let open = config(json!({}));
        assert!(open.identity(&user(None, json!("true")), None).unwrap().email_verified);
    }

    #[test]
    fn issuer_spellings_and_defaults() {
        let c = config(json!({}));
        assert_eq!(c.issuers(), ["https://accounts.google.com", "accounts.google.com"]);
        assert_eq!(c.prompt(), "consent");
        assert!(Google::describe(&c).is_ok());
        let err = Google::describe(&config(json!({"adminEmail": "a@acme.test"}))).unwrap_err();
        assert!(err.message().starts_with("domainToAdminEmail needs serviceAccountFilePath"), "{err:?}");
        let err = Google::describe(&config(json!({"serviceAccountFilePath": "/sa.json"}))).unwrap_err();
        assert_eq!(err.message(), "directory service requires the domainToAdminEmail option to be configured");
        let ok = config(json!({"serviceAccountFilePath": "/sa.json", "adminEmail": "a@acme.test"}));
        assert!(Google::describe(&ok).is_ok());
        assert_eq!(ok.admins().get("*").map(String::as_str), Some("a@acme.test"));
    }
}
