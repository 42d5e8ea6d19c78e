//! Identifiers as types: a client id and a connector id are both text, but never each other.
//! Each is serialised as the bare string (`#[serde(transparent)]`), so storage and config keep
//! their shape, and reads as `&str` wherever text is enough.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_string())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

string_id!(
    /// A registered client (`staticClients[].id`, the `client_id` parameter, the `aud` claim).
    ClientId
);

string_id!(
    /// A configured connector (`connectors[].id`; `local` is the password database), part of `sub`.
    ConnectorId
);

/// What the broker stores instead of a bearer secret (a code, refresh token, session or
/// login-binding cookie): its sha256 in hex, so a copy of the database holds nothing usable.
/// Only `TokenKey::of` makes one, so a secret cannot be stored under itself by mistake.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenKey(String);

impl TokenKey {
    /// The key of `secret`.
    pub fn of(secret: &str) -> Self {
        use sha2::Digest as _;
        Self(hex::encode(sha2::Sha256::digest(secret.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both keys are equal, compared in constant time.
    pub fn matches(&self, other: &TokenKey) -> bool {
        use subtle::ConstantTimeEq as _;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey({})", &self.0)
    }
}

/// Dex's `NewID`: 25 characters of `[a-z2-7]`, never starting with a digit.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let mut out = String::with_capacity(25);
    out.push(char::from(b'a' + bytes[0] % 26));
    out.push_str(&base32(&bytes[1..]));
    out
}

/// RFC 4648 base32, lower case, without padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialised_as_the_bare_string() {
        let id = ClientId::new("example-app");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"example-app\"");
        assert_eq!(serde_json::from_str::<ClientId>("\"example-app\"").unwrap(), id);
        assert_eq!(id, "example-app");
        assert_eq!(format!("{id:?} {id}"), "\"example-app\" example-app");
        let map: std::collections::BTreeMap<ClientId, u8> = [(id, 1)].into();
        assert_eq!(map.get("example-app"), Some(&1), "looked up by &str");
    }

    #[test]
    fn token_keys_are_sha256() {
        let key = TokenKey::of("abc");
        assert_eq!(key.as_str(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(serde_json::to_string(&key).unwrap(), format!("\"{}\"", key.as_str()));
    }

    #[test]
    fn new_ids_have_dexs_shape() {
        for _ in 0..100 {
            let id = super::new_id();
            assert_eq!(id.len(), 25, "{id}");
            assert!(id.chars().all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)), "{id}");
            assert!(id.starts_with(|c: char| c.is_ascii_lowercase()), "{id}");
        }
    }

    #[test]
    fn base32_is_rfc_4648_lower_case_unpadded() {
        assert_eq!(super::base32(b"foobar"), "mzxw6ytboi");
        assert_eq!(super::base32(b""), "");
        assert_eq!(super::base32(b"f"), "my");
    }
}
