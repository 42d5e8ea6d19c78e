//! The policy vocabulary the rest of the broker speaks (no wasmtime): what a policy is asked,
//! what it answers, and the rules every claims patch obeys — the reserved claims no policy may
//! touch, and how a patch is merged into a token's claims.

use crate::connectors::types::Identity;

/// A claims patch: each member sets that claim, a `null` member removes it.
pub type ClaimsPatch = serde_json::Map<String, serde_json::Value>;

/// Claims no policy may set or remove: they carry the protocol (who issued the token, for whom,
/// until when, bound to what) and the broker alone decides them. The issue's twelve, plus what
/// our access tokens carry for the broker itself: the grant userinfo and revocation check
/// (`gid`), the client and scope (RFC 9068), and the connector's own account of the user
/// (`federated_claims`).
pub const RESERVED_CLAIMS: [&str; 16] = [
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

/// The standard user claims the broker reads back from its own tokens (userinfo, introspection):
/// a patch may set or remove them, but only with a value of their type.
const TYPED_CLAIMS: [(&str, &str); 5] = [
    ("email", "a string"),
    ("name", "a string"),
    ("preferred_username", "a string"),
    ("email_verified", "true or false"),
    ("groups", "a list of strings"),
];

/// The largest claims patch a policy may return, in bytes of JSON text: tokens travel in
/// headers and URLs.
pub const MAX_PATCH_BYTES: usize = 16 * 1024;

/// Where and for whom a login is being decided.
#[derive(Debug, Clone, Copy)]
pub struct LoginContext<'a> {
    pub client_id: &'a str,
    pub connector_id: &'a str,
    /// The scopes the client asked for.
    pub scopes: &'a [String],
}

/// The grant minting tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    DeviceCode,
    TokenExchange,
    Password,
}

/// What tokens are minted, and for whom.
#[derive(Debug, Clone, Copy)]
pub struct MintContext<'a> {
    pub grant: GrantKind,
    pub client_id: &'a str,
    /// `None` for client_credentials.
    pub connector_id: Option<&'a str>,
    /// The user as the tokens speak of them (policy groups applied); `None` for client_credentials.
    pub identity: Option<&'a Identity>,
    pub scopes: &'a [String],
}

/// What one policy's `check-login` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginDecision {
    Allow { claims: ClaimsPatch, groups: Option<Vec<String>> },
    Deny(String),
}

/// Claims to merge into the tokens being minted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenPatch {
    pub id_token: ClaimsPatch,
    pub access_token: ClaimsPatch,
}

impl TokenPatch {
    /// `other` applied after `self`: its members win.
    pub fn then(mut self, other: TokenPatch) -> Self {
        self.id_token.extend(other.id_token);
        self.access_token.extend(other.access_token);
        self
    }
}

/// Why a patch a policy returned is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    #[error("its {what} is not a JSON object ({reason})")]
    NotAnObject { what: &'static str, reason: String },
    #[error("its {what} is {size} bytes; at most {MAX_PATCH_BYTES} are allowed")]
    TooLarge { what: &'static str, size: usize },
    #[error("its {what} {verb} the reserved claim {claim:?}, which only the broker decides")]
    Reserved { what: &'static str, claim: String, verb: &'static str },
    #[error("its {what} sets {claim:?} to something other than {expected}")]
    WrongType { what: &'static str, claim: String, expected: &'static str },
}

/// Parses a patch a policy returned (`what` names it in errors): a JSON object of at most
/// [`MAX_PATCH_BYTES`], naming no reserved claim.
pub fn parse_patch(what: &'static str, text: &str) -> Result<ClaimsPatch, PatchError> {
    if text.len() > MAX_PATCH_BYTES {
        return Err(PatchError::TooLarge { what, size: text.len() });
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| PatchError::NotAnObject { what, reason: e.to_string() })?;
    let serde_json::Value::Object(patch) = value else {
        return Err(PatchError::NotAnObject { what, reason: "it is another JSON value".into() });
    };
    check_patch(what, &patch)?;
    Ok(patch)
}

/// Refuses a patch that sets or removes a reserved claim, or gives a standard user claim a value
/// of another type.
pub fn check_patch(what: &'static str, patch: &ClaimsPatch) -> Result<(), PatchError> {
    if let Some((claim, value)) = patch.iter().find(|(k, _)| RESERVED_CLAIMS.contains(&k.as_str())) {
        let verb = if value.is_null() { "removes" } else { "sets" };
        return Err(PatchError::Reserved { what, claim: claim.clone(), verb });
    }
    for (claim, expected) in TYPED_CLAIMS {
        let Some(value) = patch.get(claim) else { continue };
        let fits = match claim {
            "email_verified" => value.is_boolean(),
            "groups" => value.as_array().is_some_and(|a| a.iter().all(serde_json::Value::is_string)),
            _ => value.is_string(),
        };
        if !fits && !value.is_null() {
            return Err(PatchError::WrongType { what, claim: claim.into(), expected });
        }
    }
    Ok(())
}

/// `claims` (a token's claims, serialised) with `patches` merged in, in order: a member sets
/// that claim, `null` removes it. Reserved claims are never touched, whatever a patch says
/// (patches are checked when they arrive; this is the second lock).
pub fn merge<'a>(
    claims: impl serde::Serialize,
    patches: impl IntoIterator<Item = &'a ClaimsPatch>,
) -> serde_json::Result<serde_json::Value> {
    let mut value = serde_json::to_value(claims)?;
    if let serde_json::Value::Object(map) = &mut value {
        for patch in patches {
            for (claim, v) in patch {
                if RESERVED_CLAIMS.contains(&claim.as_str()) {
                    continue;
                }
                if v.is_null() {
                    map.remove(claim);
                } else {
                    map.insert(claim.clone(), v.clone());
                }
            }
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// (patch text, expected error or None) — add a row to extend.
    #[test]
    fn patches_are_checked() {
        let rows: [(&str, Option<&str>); 10] = [
            (r#"{"groups":"admins"}"#, Some(r#"its claims sets "groups" to something other than a list of strings"#)),
            (
                r#"{"email_verified":"yes"}"#,
                Some(r#"its claims sets "email_verified" to something other than true or false"#),
            ),
            (
                r#"{"gid":"another-grant"}"#,
                Some(r#"its claims sets the reserved claim "gid", which only the broker decides"#),
            ),
            (r#"{"department":"ops"}"#, None),
            ("{}", None),
            (r#"{"email":null}"#, None),
            (
                r#"{"sub":"someone-else"}"#,
                Some(r#"its claims sets the reserved claim "sub", which only the broker decides"#),
            ),
            (
                r#"{"nonce":null}"#,
                Some(r#"its claims removes the reserved claim "nonce", which only the broker decides"#),
            ),
            ("[1]", Some("its claims is not a JSON object (it is another JSON value)")),
            ("nope", Some("its claims is not a JSON object (expected ident at line 1 column 2)")),
        ];
        for (text, want) in rows {
            let got = parse_patch("claims", text).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), want, "{text}");
        }
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(MAX_PATCH_BYTES));
        assert!(matches!(parse_patch("claims", &big), Err(PatchError::TooLarge { .. })));
    }

    #[test]
    fn every_reserved_claim_is_refused() {
        for claim in RESERVED_CLAIMS {
            let patch: ClaimsPatch = [(claim.to_string(), json!("x"))].into_iter().collect();
            assert!(check_patch("claims", &patch).is_err(), "{claim}");
        }
    }

    #[test]
    fn merge_sets_removes_and_keeps_reserved_claims() {
        let claims = json!({"iss": "https://issuer", "sub": "s", "email": "a@example.com", "groups": ["a"]});
        let first: ClaimsPatch = serde_json::from_value(json!({"department": "ops", "email": null})).unwrap();
        let second: ClaimsPatch = serde_json::from_value(json!({"department": "eng", "sub": "forged"})).unwrap();
        let merged = merge(&claims, [&first, &second]).unwrap();
        assert_eq!(merged, json!({"iss": "https://issuer", "sub": "s", "groups": ["a"], "department": "eng"}));
    }
}
