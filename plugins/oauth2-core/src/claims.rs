//! Dex's group rules and reading user attributes from an upstream's JSON.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// The payload of `token` when it looks like a JWT (three dot-separated parts, the second a
/// base64url JSON object), **unverified**: only for a token the connector received from the
/// token endpoint itself, never for one a browser or client handed in.
pub fn unverified_jwt_payload(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else { return None };
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The `groups` that `allowed` lists, exact and case-sensitive, in the upstream's order (Dex's
/// filter). An empty `allowed` keeps everything.
pub fn filter(groups: Vec<String>, allowed: &[String]) -> Vec<String> {
    if allowed.is_empty() {
        return groups;
    }
    groups.into_iter().filter(|g| allowed.contains(g)).collect()
}

/// `groups` without repeats, first occurrence kept.
pub fn dedup(groups: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(groups.len());
    for g in groups {
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// A string attribute (`None` when missing, not a string, or empty).
pub fn string(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

/// An id: a string, or an integer printed exactly (Dex prints numbers as float64, so
/// `12345678` becomes `1.2345678e+07` there; see the oauth connector's docs).
pub fn id(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A boolean attribute: only JSON `true` counts (the string `"true"` does not, as in Dex).
pub fn boolean(obj: &Map<String, Value>, key: &str) -> bool {
    obj.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Group names from a JSON list: string items, and the `name` of object items.
pub fn group_names(value: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(items)) = value else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| match item {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_string),
            _ => None,
        })
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_filter_and_names() {
        let groups = vec!["b".to_string(), "a".into(), "c".into()];
        assert_eq!(filter(groups.clone(), &["a".into(), "b".into()]), ["b", "a"]);
        assert_eq!(filter(groups, &[]), ["b", "a", "c"]);
        assert_eq!(dedup(vec!["a".into(), "b".into(), "a".into()]), ["a", "b"]);
        assert_eq!(group_names(Some(&json!(["eng", {"name": "ops"}, 3, ""]))), ["eng", "ops"]);
        assert!(group_names(Some(&json!("eng,ops"))).is_empty());
    }

    #[test]
    fn jwt_payloads_are_read_only_from_jwt_shapes() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"groups":["eng"]}"#);
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig");
        assert_eq!(unverified_jwt_payload(&token).unwrap()["groups"], json!(["eng"]));
        for opaque in ["gho_abc", "a.b", "a.b.c.d", "x.WyJhIl0.y"] {
            assert!(unverified_jwt_payload(opaque).is_none(), "{opaque}");
        }
    }

    #[test]
    fn attributes() {
        let o = json!({"id": 12345678, "big": 9007199254740993u64, "s": "u-1", "t": true, "f": "true", "b": false});
        let o = o.as_object().unwrap();
        assert_eq!(id(o, "id").as_deref(), Some("12345678"));
        assert_eq!(id(o, "big").as_deref(), Some("9007199254740993"));
        assert_eq!(id(o, "s").as_deref(), Some("u-1"));
        assert_eq!(id(o, "t"), None);
        assert!(boolean(o, "t") && !boolean(o, "f") && !boolean(o, "missing"));
    }
}
