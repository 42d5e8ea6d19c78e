//! The connector's `config` block (Dex's LDAP keys) and its validation into [`Settings`], the
//! checked form every call works from.

use base64::Engine as _;
use portcullis_connector_sdk::ldap::{ConnectOptions, SearchScope};
use portcullis_connector_sdk::{ConnectorError, config};
use serde::Deserialize;

/// The `config` block, with Dex's key names.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    host: String,
    #[serde(default, rename = "insecureNoSSL")]
    insecure_no_ssl: bool,
    #[serde(default)]
    insecure_skip_verify: bool,
    #[serde(default, rename = "startTLS")]
    start_tls: bool,
    #[serde(rename = "rootCA")]
    root_ca: Option<String>,
    #[serde(rename = "rootCAData")]
    root_ca_data: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    #[serde(default, rename = "bindDN")]
    bind_dn: String,
    #[serde(default, rename = "bindPW")]
    bind_pw: String,
    username_prompt: Option<String>,
    #[serde(default)]
    user_search: UserSearch,
    group_search: Option<GroupSearch>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserSearch {
    #[serde(default, rename = "baseDN")]
    base_dn: String,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    id_attr: String,
    #[serde(default)]
    email_attr: String,
    #[serde(default)]
    name_attr: String,
    #[serde(default)]
    preferred_username_attr: String,
    #[serde(default)]
    email_suffix: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupSearch {
    #[serde(default, rename = "baseDN")]
    base_dn: String,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    user_attr: String,
    #[serde(default)]
    group_attr: String,
    /// The legacy form's `recursionGroupAttr` (with `userAttr`/`groupAttr`).
    #[serde(default)]
    recursion_group_attr: String,
    #[serde(default)]
    user_matchers: Vec<UserMatcher>,
    #[serde(default)]
    name_attr: String,
}

/// One way a group names its members: the group's `group_attr` holds the user's `user_attr`
/// (or the user's DN when `user_attr` is `DN`). With `recursion_group_attr`, Dex's nested
/// groups: a group whose `recursion_group_attr` holds the DN of a group the user is in is one
/// of the user's groups too, up the tree.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserMatcher {
    pub user_attr: String,
    pub group_attr: String,
    #[serde(default, deserialize_with = "empty_is_none")]
    pub recursion_group_attr: Option<String>,
}

fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value: Option<String> = Option::deserialize(d)?;
    Ok(value.and_then(|v| non_empty(&v)))
}

/// The validated config.
pub struct Settings {
    pub connect: ConnectOptions,
    pub bind: Option<(String, String)>,
    pub prompt: String,
    pub user: UserSettings,
    pub groups: Option<GroupSettings>,
}

pub struct UserSettings {
    pub base_dn: String,
    pub filter: Option<String>,
    pub username_attr: String,
    pub scope: SearchScope,
    pub id_attr: String,
    pub email_attr: String,
    pub name_attr: Option<String>,
    pub preferred_username_attr: Option<String>,
    pub email_suffix: Option<String>,
}

pub struct GroupSettings {
    pub base_dn: String,
    pub filter: Option<String>,
    pub scope: SearchScope,
    pub matchers: Vec<UserMatcher>,
    pub name_attr: String,
}

fn config_error(message: impl Into<String>) -> ConnectorError {
    ConnectorError::Config(message.into())
}

fn non_empty(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

fn scope(key: &str, value: &str) -> Result<SearchScope, ConnectorError> {
    match value {
        "" | "sub" => Ok(SearchScope::Subtree),
        "one" => Ok(SearchScope::OneLevel),
        other => Err(config_error(format!("{key}: unknown scope {other:?}; write \"sub\" (the default) or \"one\""))),
    }
}

fn filter(key: &str, value: &str) -> Result<Option<String>, ConnectorError> {
    let Some(value) = non_empty(value) else { return Ok(None) };
    if !(value.starts_with('(') && value.ends_with(')')) {
        return Err(config_error(format!(
            "{key}: {value:?} is not a parenthesised LDAP filter; write e.g. \"(objectClass=person)\""
        )));
    }
    Ok(Some(value))
}

fn required(key: &str, value: &str, what: &str) -> Result<String, ConnectorError> {
    config::require(key, value, what).map(|v| v.trim().to_string())
}

/// The PEM in `rootCAData`: base64 of the PEM as in Dex, or the PEM itself.
fn root_ca_pem(data: &str) -> Result<String, ConnectorError> {
    let data = data.trim();
    let pem = if data.starts_with("-----BEGIN") {
        data.to_string()
    } else {
        let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| {
            config_error("rootCAData: not base64; write the CA's PEM file base64-encoded (`base64 -w0 ca.pem`)")
        })?;
        String::from_utf8(bytes).map_err(|_| config_error("rootCAData: the decoded data is not a PEM text file"))?
    };
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(config_error("rootCAData: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"));
    }
    Ok(pem)
}

impl Config {
    /// Checks the config; every error names the key and what to write.
    pub fn settings(&self) -> Result<Settings, ConnectorError> {
        Ok(Settings {
            connect: self.connect_options()?,
            bind: self.bind()?,
            prompt: non_empty(self.username_prompt.as_deref().unwrap_or_default())
                .unwrap_or_else(|| "Username".to_string()),
            user: self.user_search()?,
            groups: self.group_search()?,
        })
    }

    fn connect_options(&self) -> Result<ConnectOptions, ConnectorError> {
        let host = required("host", &self.host, "the directory server as host:port, e.g. \"ldap.example.com:636\"")?;
        if host.contains("://") || host.contains('/') {
            return Err(config_error(format!(
                "host: {host:?} must be host:port without a scheme (e.g. \"ldap.example.com:636\"); \
                 choose ldap:// with insecureNoSSL or startTLS, ldaps:// is the default"
            )));
        }
        if self.insecure_no_ssl && self.start_tls {
            return Err(config_error(
                "insecureNoSSL and startTLS contradict each other: set startTLS (encrypted) or insecureNoSSL (plain \
                 text), not both",
            ));
        }
        if self.root_ca.is_some() {
            return Err(config_error(
                "rootCA: connectors cannot read files; put the CA certificate in rootCAData instead \
                 (base64 of the PEM file, e.g. `rootCAData: $LDAP_CA_BASE64`)",
            ));
        }
        if self.client_cert.is_some() || self.client_key.is_some() {
            return Err(config_error(
                "clientCert/clientKey: connectors cannot read files; the broker reads them and presents the \
                 certificate for `type: ldap` connectors, so write `type: ldap` instead of `plugin:`",
            ));
        }
        let (scheme, default_port) =
            if self.insecure_no_ssl || self.start_tls { ("ldap", 389) } else { ("ldaps", 636) };
        let has_port = match host.rsplit_once(':') {
            Some((h, port)) => {
                // An IPv6 literal without a port ("[::1]" or a bare "::1") has a ':' too.
                let bracketed = h.starts_with('[') && h.ends_with(']');
                if !h.contains(':') || bracketed {
                    port.parse::<u16>()
                        .map_err(|_| config_error(format!("host: bad port {port:?} in {host:?}; write host:port")))?;
                    true
                } else {
                    false
                }
            }
            None => false,
        };
        let url = if has_port {
            format!("{scheme}://{host}")
        } else if host.contains(':') && !host.starts_with('[') {
            format!("{scheme}://[{host}]:{default_port}")
        } else {
            format!("{scheme}://{host}:{default_port}")
        };
        let root_ca_pem = match self.root_ca_data.as_deref().and_then(non_empty) {
            Some(data) => Some(root_ca_pem(&data)?),
            None => None,
        };
        Ok(ConnectOptions {
            url,
            start_tls: self.start_tls,
            root_ca_pem,
            insecure_skip_verify: self.insecure_skip_verify,
        })
    }

    fn bind(&self) -> Result<Option<(String, String)>, ConnectorError> {
        match (non_empty(&self.bind_dn), self.bind_pw.is_empty()) {
            (None, true) => Ok(None),
            (Some(dn), false) => Ok(Some((dn, self.bind_pw.clone()))),
            (Some(_), true) => Err(config_error(
                "bindPW is required with bindDN: the service account's password (e.g. `bindPW: $LDAP_BIND_PW`)",
            )),
            (None, false) => Err(config_error("bindDN is required with bindPW: the service account's DN")),
        }
    }

    fn user_search(&self) -> Result<UserSettings, ConnectorError> {
        let u = &self.user_search;
        let email_suffix = non_empty(&u.email_suffix);
        let email_attr = match &email_suffix {
            Some(_) => String::new(),
            None => required(
                "userSearch.emailAttr",
                &u.email_attr,
                "the attribute holding the user's email, e.g. \"mail\" (or set userSearch.emailSuffix)",
            )?,
        };
        Ok(UserSettings {
            base_dn: required(
                "userSearch.baseDN",
                &u.base_dn,
                "where users live, e.g. \"ou=People,dc=example,dc=org\"",
            )?,
            filter: filter("userSearch.filter", &u.filter)?,
            username_attr: required(
                "userSearch.username",
                &u.username,
                "the attribute the login name is matched against, e.g. \"uid\" or \"sAMAccountName\"",
            )?,
            scope: scope("userSearch.scope", &u.scope)?,
            id_attr: required(
                "userSearch.idAttr",
                &u.id_attr,
                "the attribute holding a stable user id, e.g. \"uid\", \"entryUUID\" or \"DN\"",
            )?,
            email_attr,
            name_attr: non_empty(&u.name_attr),
            preferred_username_attr: non_empty(&u.preferred_username_attr),
            email_suffix,
        })
    }

    fn group_search(&self) -> Result<Option<GroupSettings>, ConnectorError> {
        let Some(g) = &self.group_search else { return Ok(None) };
        let Some(base_dn) = non_empty(&g.base_dn) else { return Ok(None) };
        let legacy = match (non_empty(&g.user_attr), non_empty(&g.group_attr)) {
            (None, None) => None,
            (Some(user_attr), Some(group_attr)) => {
                Some(UserMatcher { user_attr, group_attr, recursion_group_attr: non_empty(&g.recursion_group_attr) })
            }
            _ => {
                return Err(config_error(
                    "groupSearch.userAttr and groupSearch.groupAttr go together; better, write \
                     groupSearch.userMatchers: [{userAttr: uid, groupAttr: memberUid}]",
                ));
            }
        };
        let matchers = match (legacy, g.user_matchers.is_empty()) {
            (Some(m), true) => vec![m],
            (None, false) if non_empty(&g.recursion_group_attr).is_some() => {
                return Err(config_error(
                    "groupSearch.recursionGroupAttr goes with the legacy userAttr/groupAttr; with userMatchers, \
                     write it in each matcher: userMatchers: [{userAttr: DN, groupAttr: member, recursionGroupAttr: member}]",
                ));
            }
            (None, false) => g.user_matchers.clone(),
            (Some(_), false) => {
                return Err(config_error(
                    "groupSearch: give either userMatchers or the legacy userAttr/groupAttr, not both",
                ));
            }
            (None, true) => {
                return Err(config_error(
                    "groupSearch.userMatchers is required with groupSearch.baseDN: how a group lists its members, \
                     e.g. [{userAttr: DN, groupAttr: member}]",
                ));
            }
        };
        for (i, m) in matchers.iter().enumerate() {
            if m.user_attr.trim().is_empty() || m.group_attr.trim().is_empty() {
                return Err(config_error(format!(
                    "groupSearch.userMatchers[{i}]: userAttr and groupAttr must not be empty, \
                     e.g. {{userAttr: DN, groupAttr: member}}"
                )));
            }
        }
        Ok(Some(GroupSettings {
            base_dn,
            filter: filter("groupSearch.filter", &g.filter)?,
            scope: scope("groupSearch.scope", &g.scope)?,
            matchers,
            name_attr: required("groupSearch.nameAttr", &g.name_attr, "the attribute naming a group, e.g. \"cn\"")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Result<Settings, String> {
        let config: Config = serde_json::from_value(json).map_err(|e| e.to_string())?;
        config.settings().map_err(|e| e.message().to_string())
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "host": "ldap.example.org",
            "userSearch": {"baseDN": "ou=People,dc=example,dc=org", "username": "uid", "idAttr": "uid", "emailAttr": "mail"}
        })
    }

    #[test]
    fn url_follows_dex_tls_switches() {
        let mut c = minimal();
        assert_eq!(settings(c.clone()).unwrap().connect.url, "ldaps://ldap.example.org:636");
        c["insecureNoSSL"] = true.into();
        assert_eq!(settings(c.clone()).unwrap().connect.url, "ldap://ldap.example.org:389");
        c["insecureNoSSL"] = false.into();
        c["startTLS"] = true.into();
        c["host"] = "10.0.0.1:1389".into();
        let s = settings(c.clone()).unwrap();
        assert_eq!(s.connect.url, "ldap://10.0.0.1:1389");
        assert!(s.connect.start_tls);
        c["host"] = "[::1]:1389".into();
        assert_eq!(settings(c.clone()).unwrap().connect.url, "ldap://[::1]:1389");
        c["host"] = "::1".into();
        assert_eq!(settings(c).unwrap().connect.url, "ldap://[::1]:389");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (serde_json::json!({"host": "ldap://x:389"}), "host"),
            (serde_json::json!({"host": "x", "rootCA": "/etc/ca.pem"}), "rootCAData"),
            (serde_json::json!({"host": "x", "rootCAData": "%%%"}), "rootCAData"),
            (serde_json::json!({"host": "x", "insecureNoSSL": true, "startTLS": true}), "startTLS"),
            (serde_json::json!({"host": "x", "bindDN": "cn=a"}), "bindPW"),
            (serde_json::json!({"host": "x"}), "userSearch.emailAttr"),
            (serde_json::json!({"host": "x", "userSearch": {"emailSuffix": "e.org"}}), "userSearch.baseDN"),
            (serde_json::json!({"host": "x", "colour": 1}), "colour"),
        ];
        for (json, key) in cases {
            let err = settings(json.clone()).err().unwrap_or_else(|| panic!("{json} accepted"));
            assert!(err.contains(key), "{json}: {err}");
        }
        let mut c = minimal();
        c["userSearch"]["scope"] = "base".into();
        assert!(settings(c).err().unwrap().contains("userSearch.scope"));
        let mut c = minimal();
        c["userSearch"]["filter"] = "objectClass=person".into();
        assert!(settings(c).err().unwrap().contains("userSearch.filter"));
        let mut c = minimal();
        c["groupSearch"] = serde_json::json!({"baseDN": "ou=Groups", "nameAttr": "cn"});
        assert!(settings(c).err().unwrap().contains("groupSearch.userMatchers"));
    }

    #[test]
    fn root_ca_data_is_base64_pem_or_pem() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        let mut c = minimal();
        c["rootCAData"] = b64.into();
        assert_eq!(settings(c.clone()).unwrap().connect.root_ca_pem.as_deref(), Some(pem));
        c["rootCAData"] = pem.into();
        assert_eq!(settings(c).unwrap().connect.root_ca_pem.as_deref(), Some(pem.trim()));
    }

    #[test]
    fn legacy_group_attrs_become_one_matcher() {
        let mut c = minimal();
        c["groupSearch"] =
            serde_json::json!({"baseDN": "ou=Groups", "userAttr": "uid", "groupAttr": "memberUid", "nameAttr": "cn"});
        let g = settings(c).unwrap().groups.unwrap();
        assert_eq!(
            g.matchers,
            vec![UserMatcher { user_attr: "uid".into(), group_attr: "memberUid".into(), recursion_group_attr: None }]
        );
    }

    #[test]
    fn recursion_group_attr_with_user_matchers_belongs_in_each_matcher() {
        let mut c = minimal();
        c["groupSearch"] = serde_json::json!({"baseDN": "ou=Groups", "nameAttr": "cn", "recursionGroupAttr": "member",
            "userMatchers": [{"userAttr": "DN", "groupAttr": "member"}]});
        assert!(settings(c).err().unwrap().contains("write it in each matcher"));
        let mut c = minimal();
        c["groupSearch"] = serde_json::json!({"baseDN": "ou=Groups", "nameAttr": "cn",
            "userMatchers": [{"userAttr": "DN", "groupAttr": "member", "recursionGroupAttr": " "}]});
        assert_eq!(settings(c).unwrap().groups.unwrap().matchers[0].recursion_group_attr, None, "blank is absent");
    }
}
