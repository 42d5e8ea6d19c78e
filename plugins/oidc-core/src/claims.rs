//! Reading claims the way Dex does: strings, `email_verified` as a boolean or the string
//! `"true"`, and groups as a list of strings (or of objects with a `name`) or a single string;
//! `claimMapping` with and without `overrideClaimMapping`, `allowedGroups` and
//! `claimModifications.newGroupFromClaims` with Dex's meaning.

use portcullis_connector_sdk::ConnectorError;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Dex's `claimMapping` rule: the `standard` claim, unless it is missing (or `override_` is
/// set, Dex's `overrideClaimMapping`) and a `mapped` claim name is configured: then that one,
/// with no fallback.
pub fn mapped(claims: &Map<String, Value>, standard: &str, mapped: Option<&str>, override_: bool) -> Option<String> {
    let found = string(claims, standard);
    match mapped.filter(|k| !k.is_empty()) {
        Some(key) if found.is_none() || override_ => string(claims, key),
        _ => found,
    }
}

/// The claim to read groups from, by the same rule: `groups` when it is a list (Dex's test),
/// unless `override_`, else the mapped name when one is configured.
pub fn groups_key<'a>(claims: &Map<String, Value>, mapped: Option<&'a str>, override_: bool) -> &'a str {
    let found = matches!(claims.get("groups"), Some(Value::Array(_)));
    match mapped.filter(|k| !k.is_empty()) {
        Some(key) if !found || override_ => key,
        _ => "groups",
    }
}

/// The groups of `groups` that `allowed` lists, in the user's order; `None` when there are none
/// (Dex: "user not a member of allowed groups").
pub fn allowed_groups(groups: Vec<String>, allowed: &[String]) -> Option<Vec<String>> {
    let kept: Vec<String> = groups.into_iter().filter(|g| allowed.contains(g)).collect();
    if kept.is_empty() { None } else { Some(kept) }
}

/// One of Dex's `claimModifications.newGroupFromClaims`: a group made of string claims joined.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewGroup {
    pub claims: Vec<String>,
    #[serde(default)]
    pub delimiter: String,
    /// Remove `delimiter` from the claim values first, so no value can forge another shape.
    #[serde(default)]
    pub clear_delimiter: bool,
    #[serde(default)]
    pub prefix: String,
}

impl NewGroup {
    /// `prefix`, then each string claim listed, joined by `delimiter` (as Dex joins them, so an
    /// empty prefix leaves a leading delimiter); claims that are absent or not strings are
    /// skipped, and with none found there is no group.
    pub fn group(&self, claims: &Map<String, Value>) -> Option<String> {
        let mut segments = vec![self.prefix.clone()];
        for name in &self.claims {
            let Some(value) = claims.get(name).and_then(Value::as_str) else { continue };
            let value = if self.clear_delimiter && !self.delimiter.is_empty() {
                value.replace(&self.delimiter, "")
            } else {
                value.to_string()
            };
            segments.push(value);
        }
        (segments.len() > 1).then(|| segments.join(&self.delimiter))
    }
}

/// The claim `key` when it is a non-empty string.
pub fn string(claims: &Map<String, Value>, key: &str) -> Option<String> {
    claims.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Whether `email_verified` says yes: `true`, or `"true"` as some providers write it.
pub fn email_verified(claims: &Map<String, Value>) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The groups in claim `key`; none when the claim is absent.
pub fn groups(claims: &Map<String, Value>, key: &str) -> Result<Vec<String>, ConnectorError> {
    let bad = || ConnectorError::Upstream(format!("the {key:?} claim is neither a string nor a list of group names"));
    match claims.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(name) => Ok(name.clone()),
                Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_string).ok_or_else(bad),
                _ => Err(bad()),
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// `base` with every claim of `overlay` written over it (userinfo over the ID token, as Dex).
pub fn merge(base: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (k, v) in overlay {
        base.insert(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn email_verified_accepts_bool_and_string() {
        let cases = [
            (json!({"email_verified": true}), true),
            (json!({"email_verified": "true"}), true),
            (json!({"email_verified": false}), false),
            (json!({"email_verified": "false"}), false),
            (json!({}), false),
        ];
        for (c, want) in cases {
            assert_eq!(email_verified(&claims(c.clone())), want, "{c}");
        }
    }

    #[test]
    fn claim_mapping_as_dex_reads_it() {
        let c = claims(json!({"email": "a@x", "mail": "b@x", "groups": ["g"], "roles": ["r"], "grp": "s"}));
        assert_eq!(mapped(&c, "email", Some("mail"), false).as_deref(), Some("a@x"), "the standard claim wins");
        assert_eq!(mapped(&c, "email", Some("mail"), true).as_deref(), Some("b@x"), "overrideClaimMapping");
        assert_eq!(mapped(&c, "preferred_username", Some("mail"), false).as_deref(), Some("b@x"), "fallback");
        assert_eq!(mapped(&c, "email", Some("nope"), true), None, "no fallback when overriding");
        assert_eq!(mapped(&c, "email", None, true).as_deref(), Some("a@x"));
        assert_eq!(groups_key(&c, Some("roles"), false), "groups");
        assert_eq!(groups_key(&c, Some("roles"), true), "roles");
        assert_eq!(groups_key(&claims(json!({"groups": "one"})), Some("roles"), false), "roles", "not a list");
        assert_eq!(groups_key(&c, None, true), "groups");
    }

    #[test]
    fn allowed_groups_keep_the_listed_ones() {
        let allowed = vec!["admins".to_string(), "ops".to_string()];
        let groups = vec!["devs".to_string(), "ops".to_string(), "admins".to_string()];
        assert_eq!(allowed_groups(groups, &allowed).unwrap(), ["ops", "admins"]);
        assert_eq!(allowed_groups(vec!["devs".to_string()], &allowed), None);
        assert_eq!(allowed_groups(Vec::new(), &allowed), None);
    }

    /// (rule, claims) → the new group, as Dex builds it.
    #[test]
    fn new_groups_from_claims() {
        let c = claims(json!({"org": "acme", "repo": "api:v2", "n": 7}));
        let rule = |v: Value| serde_json::from_value::<NewGroup>(v).unwrap();
        let rows = [
            (json!({"claims": ["org", "repo"], "delimiter": ":", "prefix": "gh"}), Some("gh:acme:api:v2")),
            (
                json!({"claims": ["org", "repo"], "delimiter": ":", "prefix": "gh", "clearDelimiter": true}),
                Some("gh:acme:apiv2"),
            ),
            (json!({"claims": ["org", "n", "missing"], "delimiter": "/"}), Some("/acme")),
            (json!({"claims": ["n", "missing"], "delimiter": "/", "prefix": "x"}), None),
        ];
        for (r, want) in rows {
            assert_eq!(rule(r.clone()).group(&c).as_deref(), want, "{r}");
        }
        assert!(serde_json::from_value::<NewGroup>(json!({"claims": [], "delim": ":"})).is_err());
    }

    #[test]
    fn groups_shapes() {
        assert_eq!(groups(&claims(json!({"g": ["a", "b"]})), "g").unwrap(), ["a", "b"]);
        assert_eq!(groups(&claims(json!({"g": "a"})), "g").unwrap(), ["a"]);
        assert_eq!(groups(&claims(json!({"g": [{"name": "a"}]})), "g").unwrap(), ["a"]);
        assert!(groups(&claims(json!({})), "g").unwrap().is_empty());
        assert!(groups(&claims(json!({"g": [1]})), "g").is_err());
        assert_eq!(string(&claims(json!({"a": "", "b": "x"})), "a"), None);
    }
}
