//! group-gate's config and its decision, plain Rust (unit-tested natively): `requireGroups`,
//! `groupsFilter` (prefix or regex, per client), `addClaims` (static or `{{ name }}` templates)
//! and `claimsByGroup`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::template::Template;

/// Claims the broker alone decides; a config naming one is refused here, before the broker
/// would refuse the patch.
const RESERVED: [&str; 16] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "azp",
    "at_hash",
    "auth_time",
    "sid",
    "jti",
    "gid",
    "client_id",
    "scope",
    "federated_claims",
];

/// The denial shown when `denyMessage` is not set: the rule, not the groups.
pub const DEFAULT_DENY: &str = "Your account is not a member of a group allowed to use this application.";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Config {
    /// Deny users in none of these groups (empty: nobody is denied).
    #[serde(default)]
    require_groups: Vec<String>,
    /// The reason shown to a denied user.
    #[serde(default)]
    deny_message: Option<String>,
    /// Which groups the tokens carry, per client.
    #[serde(default)]
    groups_filter: Vec<FilterConfig>,
    /// Claims added for everyone: any JSON value; strings may hold `{{ name }}` templates.
    #[serde(default)]
    add_claims: Map<String, Value>,
    /// Claims added for members of a group (in group-name order; a later group's value wins).
    #[serde(default)]
    claims_by_group: BTreeMap<String, Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterConfig {
    /// The clients this filter applies to; absent: every client.
    #[serde(default)]
    clients: Option<Vec<String>>,
    /// Keep the groups starting with this text.
    #[serde(default)]
    prefix: Option<String>,
    /// Keep the groups this regular expression matches (anchor it with `^...$` to match whole names).
    #[serde(default)]
    regex: Option<String>,
}

#[derive(Debug)]
enum Matcher {
    Prefix(String),
    Regex(regex::Regex),
}

impl Matcher {
    fn keeps(&self, group: &str) -> bool {
        match self {
            Self::Prefix(p) => group.starts_with(p.as_str()),
            Self::Regex(r) => r.is_match(group),
        }
    }
}

#[derive(Debug)]
struct Filter {
    clients: Option<Vec<String>>,
    matcher: Matcher,
}

/// A claim value: JSON as written, or a string template.
#[derive(Debug)]
enum ClaimValue {
    Static(Value),
    Template(Template),
}

/// The checked config.
#[derive(Debug)]
pub struct Rules {
    require_groups: Vec<String>,
    deny_message: String,
    filters: Vec<Filter>,
    add_claims: Vec<(String, ClaimValue)>,
    claims_by_group: BTreeMap<String, Map<String, Value>>,
}

/// Who is logging in, and where.
#[derive(Debug, Clone, Copy)]
pub struct User<'a> {
    pub client_id: &'a str,
    pub connector_id: &'a str,
    pub user_id: &'a str,
    pub username: &'a str,
    pub preferred_username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub groups: &'a [String],
}

impl User<'_> {
    fn value(&self, name: &str) -> Option<String> {
        let text = match name {
            "user_id" => self.user_id,
            "username" => self.username,
            "preferred_username" => self.preferred_username?,
            "email" => self.email?,
            "email_domain" => self.email?.rsplit_once('@')?.1,
            "client_id" => self.client_id,
            "connector_id" => self.connector_id,
            _ => return None,
        };
        Some(text.to_string())
    }
}

/// What group-gate decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { claims: Map<String, Value>, groups: Option<Vec<String>> },
    Deny(String),
}

fn no_reserved<'a>(key: &str, claims: impl IntoIterator<Item = &'a String>) -> Result<(), String> {
    match claims.into_iter().find(|c| RESERVED.contains(&c.as_str())) {
        Some(claim) => Err(format!("{key}: {claim:?} is a reserved claim only the broker sets; choose another name")),
        None => Ok(()),
    }
}

impl Rules {
    /// Parses and checks the config (a JSON object); the error names the key and what to write.
    pub fn parse(config: &str) -> Result<Self, String> {
        let config: Config = serde_json::from_str(config).map_err(|e| format!("config: {e}"))?;
        let mut filters = Vec::new();
        for (i, f) in config.groups_filter.into_iter().enumerate() {
            let at = format!("groupsFilter[{i}]");
            let matcher = match (f.prefix, f.regex) {
                (Some(prefix), None) => Matcher::Prefix(prefix),
                (None, Some(pattern)) => Matcher::Regex(
                    regex::Regex::new(&pattern)
                        .map_err(|e| format!("{at}.regex: {pattern:?} is not a regular expression: {e}"))?,
                ),
                _ => return Err(format!("{at}: give prefix or regex (one of them)")),
            };
            if f.clients.as_ref().is_some_and(Vec::is_empty) {
                return Err(format!(
                    "{at}.clients: an empty list applies to no client; remove the key to apply it to every one"
                ));
            }
            filters.push(Filter { clients: f.clients, matcher });
        }
        no_reserved("addClaims", config.add_claims.keys())?;
        let mut add_claims = Vec::new();
        for (claim, value) in config.add_claims {
            let value = match value {
                Value::String(text) => {
                    let t = Template::parse(&text).map_err(|e| format!("addClaims.{claim}: {e}"))?;
                    if t.is_static() { ClaimValue::Static(Value::String(text)) } else { ClaimValue::Template(t) }
                }
                other => ClaimValue::Static(other),
            };
            add_claims.push((claim, value));
        }
        for (group, claims) in &config.claims_by_group {
            no_reserved(&format!("claimsByGroup.{group}"), claims.keys())?;
        }
        Ok(Self {
            require_groups: config.require_groups,
            deny_message: config.deny_message.unwrap_or_else(|| DEFAULT_DENY.into()),
            filters,
            add_claims,
            claims_by_group: config.claims_by_group,
        })
    }

    /// Allow (with the filtered groups and the added claims) or deny. `requireGroups` and
    /// `claimsByGroup` look at the groups the connector returned; the filter only decides which
    /// of them the tokens carry.
    pub fn decide(&self, user: &User<'_>) -> Decision {
        let member = |g: &String| user.groups.contains(g);
        if !self.require_groups.is_empty() && !self.require_groups.iter().any(member) {
            return Decision::Deny(self.deny_message.clone());
        }
        let applying: Vec<&Filter> = self
            .filters
            .iter()
            .filter(|f| f.clients.as_ref().is_none_or(|c| c.iter().any(|c| c == user.client_id)))
            .collect();
        let groups = (!applying.is_empty())
            .then(|| user.groups.iter().filter(|g| applying.iter().any(|f| f.matcher.keeps(g))).cloned().collect());
        let mut claims = Map::new();
        for (claim, value) in &self.add_claims {
            let rendered = match value {
                ClaimValue::Static(v) => Some(v.clone()),
                ClaimValue::Template(t) => t.render(|n| user.value(n)).map(Value::String),
            };
            if let Some(v) = rendered {
                claims.insert(claim.clone(), v);
            }
        }
        for (group, extra) in &self.claims_by_group {
            if member(group) {
                claims.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        Decision::Allow { claims, groups }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user<'a>(client: &'a str, groups: &'a [String]) -> User<'a> {
        User {
            client_id: client,
            connector_id: "github",
            user_id: "42",
            username: "Jane",
            preferred_username: Some("jane"),
            email: Some("jane@example.com"),
            groups,
        }
    }

    fn decide(config: Value, client: &str, groups: &[&str]) -> Decision {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        Rules::parse(&config.to_string()).unwrap().decide(&user(client, &groups))
    }

    fn allow(claims: Value, groups: Option<&[&str]>) -> Decision {
        let Value::Object(claims) = claims else { unreachable!() };
        Decision::Allow { claims, groups: groups.map(|g| g.iter().map(|s| s.to_string()).collect()) }
    }

    /// (config, client, user's groups, decision) — add a row to extend.
    #[test]
    fn decisions() {
        let filter = json!({"groupsFilter": [{"clients": ["app"], "prefix": "team-"}, {"clients": ["ops"], "regex": "^(admins|sre)$"}]});
        let rows: Vec<(Value, &str, Vec<&str>, Decision)> = vec![
            (json!({}), "app", vec!["a"], allow(json!({}), None)),
            (json!({"requireGroups": ["admins"]}), "app", vec!["admins", "x"], allow(json!({}), None)),
            (json!({"requireGroups": ["admins"]}), "app", vec!["x"], Decision::Deny(DEFAULT_DENY.into())),
            (
                json!({"requireGroups": ["admins"], "denyMessage": "Admins only."}),
                "app",
                vec![],
                Decision::Deny("Admins only.".into()),
            ),
            (filter.clone(), "app", vec!["team-a", "admins", "team-b"], allow(json!({}), Some(&["team-a", "team-b"]))),
            (filter.clone(), "ops", vec!["team-a", "admins", "sre-x"], allow(json!({}), Some(&["admins"]))),
            (filter.clone(), "other", vec!["team-a", "admins"], allow(json!({}), None)),
            (
                json!({"addClaims": {"department": "ops", "level": 3, "contact": "{{ email }}", "nick": "{{ preferred_username }}@{{ email_domain }}"}}),
                "app",
                vec![],
                allow(
                    json!({"department": "ops", "level": 3, "contact": "jane@example.com", "nick": "jane@example.com"}),
                    None,
                ),
            ),
            (
                json!({"addClaims": {"role": "user"}, "claimsByGroup": {"admins": {"role": "admin", "sudo": true}, "devs": {"repo": "all"}}}),
                "app",
                vec!["admins"],
                allow(json!({"role": "admin", "sudo": true}), None),
            ),
        ];
        for (config, client, groups, want) in rows {
            assert_eq!(decide(config.clone(), client, &groups), want, "{config} {client} {groups:?}");
        }
    }

    #[test]
    fn a_template_without_a_value_leaves_the_claim_out() {
        let rules = Rules::parse(&json!({"addClaims": {"contact": "{{ email }}"}}).to_string()).unwrap();
        let mut u = user("app", &[]);
        u.email = None;
        assert_eq!(rules.decide(&u), allow(json!({}), None));
    }

    /// (config, error) — add a row to extend.
    #[test]
    fn bad_configs_name_the_key() {
        let rows = [
            (json!({"requireGroup": ["a"]}), "config: unknown field `requireGroup`"),
            (
                json!({"groupsFilter": [{"prefix": "a", "regex": "b"}]}),
                "groupsFilter[0]: give prefix or regex (one of them)",
            ),
            (json!({"groupsFilter": [{"regex": "("}]}), "groupsFilter[0].regex: \"(\" is not a regular expression"),
            (json!({"groupsFilter": [{"clients": [], "prefix": "a"}]}), "groupsFilter[0].clients: an empty list"),
            (json!({"addClaims": {"sub": "x"}}), "addClaims: \"sub\" is a reserved claim only the broker sets"),
            (json!({"claimsByGroup": {"a": {"exp": 1}}}), "claimsByGroup.a: \"exp\" is a reserved claim"),
            (json!({"addClaims": {"x": "{{ secret }}"}}), "addClaims.x: \"{{ secret }}\" refers to {{ secret }}"),
        ];
        for (config, want) in rows {
            let got = Rules::parse(&config.to_string()).unwrap_err();
            assert!(got.starts_with(want), "{config}: {got}");
        }
    }
}
