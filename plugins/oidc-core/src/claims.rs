//! Reading claims the way Dex does: strings, `email_verified` as a boolean or the string
//! `"true"`, and groups as a list of strings (or of objects with a `name`) or a single string.

use portcullis_connector_sdk::ConnectorError;
use serde_json::{Map, Value};

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
    fn groups_shapes() {
        assert_eq!(groups(&claims(json!({"g": ["a", "b"]})), "g").unwrap(), ["a", "b"]);
        assert_eq!(groups(&claims(json!({"g": "a"})), "g").unwrap(), ["a"]);
        assert_eq!(groups(&claims(json!({"g": [{"name": "a"}]})), "g").unwrap(), ["a"]);
        assert!(groups(&claims(json!({})), "g").unwrap().is_empty());
        assert!(groups(&claims(json!({"g": [1]})), "g").is_err());
        assert_eq!(string(&claims(json!({"a": "", "b": "x"})), "a"), None);
    }
}
