//! Google Workspace groups through the Admin SDK Directory API, as Dex reads them: a
//! service-account token for the domain's admin (the JWT-bearer grant, RFC 7523, with the
//! assertion signed by the broker through the `signing` import: the key never enters this
//! plugin), then `groups.list?userKey=<email>` page by page, and with
//! `fetchTransitiveGroupMembership` the groups of each group in turn.

use std::collections::{BTreeMap, BTreeSet};

use portcullis_connector_sdk::{ConnectorError, http, signing};
use serde::Deserialize;
use serde_json::json;

/// The config key naming the service-account file; the broker reads it (Dex's key).
pub const KEY: &str = "serviceAccountFilePath";
/// Where the Directory API is, unless `directoryURL` says otherwise.
pub const DIRECTORY_URL: &str = "https://admin.googleapis.com";
/// The one scope Dex asks for.
const SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Dex's key for any domain without its own admin.
const WILDCARD: &str = "*";
/// Groups read at most for one user, however deep the nesting (each page is a host call too).
const MAX_GROUPS: usize = 1000;

/// How to reach the directory for one login.
pub struct Directory<'a> {
    /// Google's token endpoint from discovery (used when the key file names no `token_uri`).
    pub token_endpoint: &'a str,
    pub directory_url: &'a str,
    pub domain_to_admin_email: &'a BTreeMap<String, String>,
    /// Admin email → access token, fetched once per call.
    tokens: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    groups: Vec<Group>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Group {
    email: String,
}

fn domain_of(email: &str) -> &str {
    email.rsplit_once('@').map_or("", |(_, d)| d)
}

impl<'a> Directory<'a> {
    pub fn new(
        token_endpoint: &'a str,
        directory_url: &'a str,
        domain_to_admin_email: &'a BTreeMap<String, String>,
    ) -> Self {
        Self { token_endpoint, directory_url, domain_to_admin_email, tokens: BTreeMap::new() }
    }

    /// The admin to act as for `email`'s domain: its own entry, else Dex's `*`.
    fn admin_for(&self, email: &str) -> Result<&'a str, ConnectorError> {
        let domain = domain_of(email);
        self.domain_to_admin_email
            .get(domain)
            .or_else(|| self.domain_to_admin_email.get(WILDCARD))
            .map(String::as_str)
            .ok_or_else(|| {
                ConnectorError::Config(format!(
                    "domainToAdminEmail has no admin for the domain {domain:?} and no \"*\" entry, so the groups of \
                     its users cannot be read; add \"{domain}: <admin email>\" to domainToAdminEmail"
                ))
            })
    }

    /// An access token acting as `admin`: a JWT the broker signs with the service account's
    /// key, traded at Google's token endpoint.
    fn token(&mut self, admin: &str) -> Result<String, ConnectorError> {
        if let Some(token) = self.tokens.get(admin) {
            return Ok(token.clone());
        }
        let info = signing::describe_key(KEY).map_err(ConnectorError::from)?;
        let attribute = |name: &str| info.attributes.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let issuer = attribute("client_email").ok_or_else(|| {
            ConnectorError::Config(format!(
                "{KEY}: the key file has no client_email; give a service account's JSON key"
            ))
        })?;
        let audience = attribute("token_uri").unwrap_or(self.token_endpoint);
        let now = now();
        let claims =
            json!({"iss": issuer, "sub": admin, "scope": SCOPE, "aud": audience, "iat": now, "exp": now + 3600});
        let assertion = signing::sign_jwt(KEY, &claims.to_string()).map_err(ConnectorError::from)?;
        let response = http::post_form(
            audience,
            &[("accept", "application/json")],
            &[("grant_type", JWT_BEARER), ("assertion", &assertion)],
        )?;
        if !response.is_success() {
            let body = response.text().unwrap_or_default();
            let detail: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let error = detail.get("error").and_then(|e| e.as_str()).unwrap_or("error");
            let description = detail.get("error_description").and_then(|e| e.as_str()).unwrap_or_default();
            return Err(ConnectorError::Upstream(format!(
                "Google refused the service account's token for {admin} (HTTP {}: {error} {description}); check the \
                 key and its domain-wide delegation",
                response.status
            )));
        }
        let token: Token = response.json()?;
        self.tokens.insert(admin.to_string(), token.access_token.clone());
        Ok(token.access_token)
    }

    /// The groups `email` (a user or, transitively, a group) is a direct member of, every page.
    fn direct(&mut self, email: &str) -> Result<Vec<String>, ConnectorError> {
        let admin = self.admin_for(email)?;
        let bearer = format!("Bearer {}", self.token(admin)?);
        let mut groups = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/admin/directory/v1/groups?userKey={}",
                self.directory_url.trim_end_matches('/'),
                portcullis_connector_sdk::url::encode(email)
            );
            if let Some(token) = &page_token {
                url.push_str("&pageToken=");
                url.push_str(&portcullis_connector_sdk::url::encode(token));
            }
            let page: Page = http::get_json(&url, &[("authorization", &bearer)])
                .map_err(|e| ConnectorError::Upstream(format!("could not list groups: {}", e.message())))?;
            groups.extend(page.groups.into_iter().map(|g| g.email));
            if groups.len() > MAX_GROUPS {
                return Err(ConnectorError::Upstream(format!("more than {MAX_GROUPS} groups for {email}")));
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => page_token = Some(next),
                None => return Ok(groups),
            }
        }
    }

    /// The user's groups (their emails) in Dex's order: each direct group, then, with
    /// `transitive`, the groups it belongs to, every group once.
    pub fn groups(&mut self, email: &str, transitive: bool) -> Result<Vec<String>, ConnectorError> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        self.collect(email, transitive, &mut seen, &mut out)?;
        Ok(out)
    }

    fn collect(
        &mut self,
        email: &str,
        transitive: bool,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) -> Result<(), ConnectorError> {
        for group in self.direct(email)? {
            if !seen.insert(group.clone()) {
                continue;
            }
            out.push(group.clone());
            if out.len() > MAX_GROUPS {
                return Err(ConnectorError::Upstream(format!("more than {MAX_GROUPS} groups for {email}")));
            }
            if transitive {
                self.collect(&group, transitive, seen, out).map_err(|e| {
                    ConnectorError::Upstream(format!("could not list transitive groups: {}", e.message()))
                })?;
            }
        }
        Ok(())
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Dex's `groups` filter: only the required groups the user is in; none is a refusal.
pub fn filter(groups: Vec<String>, required: &[String], user: &str) -> Result<Vec<String>, ConnectorError> {
    if required.is_empty() {
        return Ok(groups);
    }
    let kept: Vec<String> = groups.into_iter().filter(|g| required.contains(g)).collect();
    if kept.is_empty() {
        return Err(ConnectorError::Denied(format!("user {user:?} is not in any of the required groups")));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_by_domain_then_wildcard() {
        let map: BTreeMap<String, String> =
            [("acme.test".to_string(), "root@acme.test".to_string())].into_iter().collect();
        let d = Directory::new("t", "d", &map);
        assert_eq!(d.admin_for("sam@acme.test").unwrap(), "root@acme.test");
        let err = d.admin_for("kim@other.test").unwrap_err();
        assert!(err.message().contains("no admin for the domain \"other.test\""), "{err:?}");
        let mut wild = map.clone();
        wild.insert("*".into(), "any@acme.test".into());
        assert_eq!(Directory::new("t", "d", &wild).admin_for("kim@other.test").unwrap(), "any@acme.test");
    }

    #[test]
    fn the_groups_filter() {
        let groups = vec!["a@x".to_string(), "b@x".to_string()];
        assert_eq!(filter(groups.clone(), &[], "u").unwrap(), groups);
        assert_eq!(filter(groups.clone(), &["b@x".into()], "u").unwrap(), ["b@x"]);
        assert!(matches!(filter(groups, &["c@x".into()], "u"), Err(ConnectorError::Denied(_))));
    }
}
