//! What the ID token, access token and userinfo say about a user, from the connector's identity
//! and the scopes granted.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::scopes::ScopeSet;
use super::sub;
use crate::connectors::Identity;

/// `federated_claims` (scope `federated:id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedClaims {
    pub connector_id: String,
    pub user_id: String,
}

/// The user claims shared by the ID token, access token and userinfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UserClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federated_claims: Option<FederatedClaims>,
}

impl UserClaims {
    pub fn new(identity: &Identity, connector_id: &str, scopes: &ScopeSet) -> Self {
        let mut c = UserClaims::default();
        // Dex's `omitempty`: an empty string from a connector is no claim at all.
        let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        if scopes.email {
            c.email = given(&identity.email);
            c.email_verified = c.email.as_ref().map(|_| identity.email_verified);
        }
        if scopes.profile {
            c.name = Some(identity.username.clone()).filter(|n| !n.is_empty());
            c.preferred_username = given(&identity.preferred_username);
        }
        // Dex's `groups,omitempty`: no groups, no claim (not an empty list).
        if scopes.groups && !identity.groups.is_empty() {
            c.groups = Some(identity.groups.clone());
        }
        if scopes.federated_id {
            c.federated_claims =
                Some(FederatedClaims { connector_id: connector_id.into(), user_id: identity.user_id.clone() });
        }
        c
    }
}

/// `aud`: one client, or several when peers were asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    /// A fresh id per token, as Dex's (`NewID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    pub azp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The SSO session the login belongs to (OIDC Back-Channel Logout 1.0 §2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(flatten)]
    pub user: UserClaims,
}

/// The `events` member of a logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token (OIDC Back-Channel Logout 1.0 §2.4): never a `nonce`, so it cannot pass for
/// an ID token; `typ` is `logout+jwt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sid: String,
    pub events: serde_json::Value,
}

impl LogoutTokenClaims {
    /// Valid for two minutes, as the specification recommends.
    pub fn new(issuer: &str, client_id: &str, subject: String, sid: &str, jti: String, now: i64) -> Self {
        Self {
            iss: issuer.into(),
            sub: subject,
            aud: client_id.into(),
            iat: now,
            exp: now + 120,
            jti,
            sid: sid.into(),
            events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
        }
    }
}

/// The access token (RFC 9068 shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    /// The client, and the cross-client peers it asked for (as the ID token's, and Dex's).
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    /// The grant this token belongs to; revoked with it.
    pub gid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(flatten)]
    pub user: UserClaims,
}

/// A token shaped like an ID token: an access token Dex signed (Dex's access tokens are ID
/// tokens, and `import-dex` brings Dex's keys over, so they verify here until they expire).
/// Userinfo and introspection take one as Dex does, beside our RFC 9068 access tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct IdShapedClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(flatten)]
    pub user: UserClaims,
}

impl IdShapedClaims {
    /// The client it was issued to: its one audience, or `azp` among several (Dex's
    /// `GetClientID`); `None` when neither says.
    pub fn client_id(&self) -> Option<&str> {
        match &self.aud {
            Audience::One(client) => Some(client.as_str()),
            Audience::Many(list) if list.len() == 1 => list.first().map(String::as_str),
            Audience::Many(_) => self.azp.as_deref(),
        }
    }
}

/// Everything needed to mint the tokens of one login or refresh.
#[derive(Debug, Clone)]
pub struct TokenContext<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub connector_id: &'a str,
    pub identity: &'a Identity,
    pub scopes: &'a ScopeSet,
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    pub now: i64,
    /// Seconds the ID token is valid (`expiry.idTokens`).
    pub lifetime: i64,
    /// Seconds the access token is valid (`expiry.accessTokens`).
    pub access_lifetime: i64,
    pub grant_id: &'a str,
    pub token_id: &'a str,
    /// The SSO session's public id (`sid`), when the login had one.
    pub sid: Option<&'a str>,
}

impl TokenContext<'_> {
    pub fn subject(&self) -> String {
        sub::encode(&self.identity.user_id, self.connector_id)
    }

    pub fn access_token(&self) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: self.issuer.into(),
            sub: self.subject(),
            aud: self.audience(),
            exp: self.now + self.access_lifetime,
            iat: self.now,
            jti: self.token_id.into(),
            client_id: self.client_id.into(),
            scope: self.scopes.joined(),
            gid: self.grant_id.into(),
            auth_time: Some(self.auth_time),
            user: UserClaims::new(self.identity, self.connector_id, self.scopes),
        }
    }

    /// `aud`: the peers asked for (`audience:server:client_id:…`), then the client; the client
    /// alone, as a string, when it is the only one (Dex marshals a one-entry audience so).
    fn audience(&self) -> Audience {
        let mut all = self.scopes.audiences.clone();
        if !all.iter().any(|a| a == self.client_id) {
            all.push(self.client_id.into());
        }
        match <[String; 1]>::try_from(all) {
            Ok([one]) => Audience::One(one),
            Err(all) => Audience::Many(all),
        }
    }

    /// The ID token, bound to `access_token` through `at_hash` (hashed per `alg`).
    pub fn id_token(&self, access_token: &str, alg: &str) -> IdTokenClaims {
        IdTokenClaims {
            iss: self.issuer.into(),
            sub: self.subject(),
            aud: self.audience(),
            exp: self.now + self.lifetime,
            iat: self.now,
            jti: Some(crate::ids::new_id()),
            azp: self.client_id.into(),
            nonce: self.nonce.map(str::to_string),
            at_hash: Some(token_hash(access_token, alg)),
            auth_time: Some(self.auth_time),
            sid: self.sid.map(str::to_string),
            user: UserClaims::new(self.identity, self.connector_id, self.scopes),
        }
    }
}

/// `at_hash`: the left half of the token's hash, with the hash of the signing algorithm
/// (OIDC Core §3.1.3.6; EdDSA uses SHA-512 per the Ed25519 registration).
pub fn token_hash(token: &str, alg: &str) -> String {
    let digest: Vec<u8> = match alg {
        "RS384" | "ES384" | "PS384" => Sha384::digest(token.as_bytes()).to_vec(),
        "RS512" | "ES512" | "PS512" | "EdDSA" => Sha512::digest(token.as_bytes()).to_vec(),
        _ => Sha256::digest(token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            user_id: "2342749".into(),
            username: "Jane".into(),
            preferred_username: Some("jane".into()),
            email: Some("jane@example.com".into()),
            email_verified: true,
            groups: vec!["admins".into()],
            connector_data: None,
            policy: None,
        }
    }

    /// (scopes, expected user claims as JSON) — add a row to extend.
    #[test]
    fn claims_follow_scopes() {
        let rows = [
            ("openid", serde_json::json!({})),
            ("openid email", serde_json::json!({"email": "jane@example.com", "email_verified": true})),
            ("openid profile", serde_json::json!({"name": "Jane", "preferred_username": "jane"})),
            ("openid groups", serde_json::json!({"groups": ["admins"]})),
            (
                "openid federated:id",
                serde_json::json!({"federated_claims": {"connector_id": "github", "user_id": "2342749"}}),
            ),
        ];
        for (scopes, want) in rows {
            let got = UserClaims::new(&identity(), "github", &ScopeSet::parse(scopes).unwrap());
            assert_eq!(serde_json::to_value(&got).unwrap(), want, "{scopes}");
        }
        // Empty strings are no claims, as in Dex (omitempty).
        let blank = Identity { email: Some(String::new()), preferred_username: Some(String::new()), ..identity() };
        let got = UserClaims::new(&blank, "github", &ScopeSet::parse("openid email profile").unwrap());
        assert_eq!(serde_json::to_value(&got).unwrap(), serde_json::json!({"name": "Jane"}));
        // A user in no group gets no groups claim, as in Dex (omitempty), not `[]`.
        let loner = Identity { groups: Vec::new(), ..identity() };
        let got = UserClaims::new(&loner, "github", &ScopeSet::parse("openid groups").unwrap());
        assert_eq!(serde_json::to_value(&got).unwrap(), serde_json::json!({}));
    }

    #[test]
    fn id_token_has_dex_subject_and_at_hash() {
        let scopes = ScopeSet::parse("openid").unwrap();
        let id = identity();
        let ctx = TokenContext {
            issuer: "http://127.0.0.1:5556",
            client_id: "app",
            connector_id: "github",
            identity: &id,
            scopes: &scopes,
            nonce: Some("n"),
            auth_time: 1,
            now: 10,
            lifetime: 100,
            access_lifetime: 100,
            grant_id: "g",
            token_id: "t",
            sid: Some("s"),
        };
        let token = ctx.id_token("access", "RS256");
        assert_eq!(token.sub, "CgcyMzQyNzQ5EgZnaXRodWI");
        assert_eq!(token.exp, 110);
        assert_eq!(token.sid.as_deref(), Some("s"));
        assert_eq!(token.at_hash.as_deref(), Some(token_hash("access", "RS256").as_str()));
        assert_eq!(token_hash("access", "RS256").len(), 22);
        // A jti of Dex's shape, fresh per token.
        let jti = token.jti.clone().unwrap();
        assert_eq!(jti.len(), 25);
        assert_ne!(ctx.id_token("access", "RS256").jti.as_deref(), Some(jti.as_str()));
    }
}
