//! Password hashes, recognised, checked and made in one place: bcrypt (Dex's: `$2a$`, `$2b$`,
//! `$2y$`, any cost) and argon2id (a PHC string, `$argon2id$v=19$m=…,t=…,p=…$salt$hash`, for
//! new users: cheaper per check than bcrypt at a comparable strength, and memory-hard). Either
//! may be base64-encoded, as Dex accepts bcrypt hashes.
//!
//! # Security
//!
//! A hash's parameters set what every check of it costs, and a login flood multiplies that by
//! the checks running at once (`throttle.rs`: two per core). An argon2id hash asking for more
//! than [`ARGON2_MAX_MEMORY_KIB`], [`ARGON2_MAX_ITERATIONS`] passes or [`ARGON2_MAX_LANES`]
//! lanes is refused where it enters (the config, the admin API), so a mistyped or hostile hash
//! cannot make each guess allocate gigabytes.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use base64::Engine as _;

/// OWASP's first argon2id choice (Password Storage Cheat Sheet): 19 MiB, 2 passes, 1 lane;
/// what `hash-password --algorithm argon2id` makes.
pub const ARGON2_DEFAULT_MEMORY_KIB: u32 = 19_456;
pub const ARGON2_DEFAULT_ITERATIONS: u32 = 2;
pub const ARGON2_DEFAULT_LANES: u32 = 1;

/// The most memory one argon2id check may take (KiB): 64 MiB, over three times OWASP's
/// 19 MiB; with two checks per core at once, 256 MiB on a 2-core machine.
pub const ARGON2_MAX_MEMORY_KIB: u32 = 65_536;
/// The most passes over that memory.
pub const ARGON2_MAX_ITERATIONS: u32 = 10;
/// The most lanes (they run one after the other here: more lanes do not make a check faster).
pub const ARGON2_MAX_LANES: u32 = 8;

/// Why a text is not a hash this broker takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    #[error("not a bcrypt or argon2id hash (nor a base64-encoded one); make one with `portcullis hash-password`")]
    NotAHash,
    #[error("not a valid argon2id hash: {0}; make one with `portcullis hash-password --algorithm argon2id`")]
    BadArgon2(String),
    #[error(
        "the argon2id hash asks for {what} = {value} per check, above the most this broker allows ({max}): \
         a login flood would take that for every guess; hash the password again with \
         `portcullis hash-password --algorithm argon2id` (m={ARGON2_DEFAULT_MEMORY_KIB}, t={ARGON2_DEFAULT_ITERATIONS}, \
         p={ARGON2_DEFAULT_LANES})"
    )]
    TooCostly { what: &'static str, value: u32, max: u32 },
}

/// The scheme of a hash [`parse`] accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bcrypt,
    Argon2id,
}

impl Scheme {
    /// The scheme of an accepted hash text.
    pub fn of(hash: &str) -> Self {
        if hash.starts_with("$argon2id$") { Self::Argon2id } else { Self::Bcrypt }
    }
}

fn is_bcrypt(h: &str) -> bool {
    (h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$")) && h.len() == 60
}

/// Checks an argon2id PHC string's form and bounds.
fn check_argon2(h: &str) -> Result<(), HashError> {
    let parsed = PasswordHash::new(h).map_err(|e| HashError::BadArgon2(e.to_string()))?;
    let params = argon2::Params::try_from(&parsed).map_err(|e| HashError::BadArgon2(e.to_string()))?;
    if parsed.hash.is_none() {
        return Err(HashError::BadArgon2("it has no hash value".into()));
    }
    within_bounds(params.m_cost(), params.t_cost(), params.p_cost())
}

/// Refuses argon2id parameters above the bounds, naming the first one over.
fn within_bounds(m: u32, t: u32, p: u32) -> Result<(), HashError> {
    let bounds = [
        ("m (memory, KiB)", m, ARGON2_MAX_MEMORY_KIB),
        ("t (passes)", t, ARGON2_MAX_ITERATIONS),
        ("p (lanes)", p, ARGON2_MAX_LANES),
    ];
    for (what, value, max) in bounds {
        if value > max {
            return Err(HashError::TooCostly { what, value, max });
        }
    }
    Ok(())
}

/// The hash a config or the admin API gives, as stored: a bcrypt or argon2id hash, or one of
/// those base64-encoded (Dex's form); an argon2id hash within the bounds above.
pub fn parse(text: &str) -> Result<String, HashError> {
    let check = |h: &str| -> Result<Option<()>, HashError> {
        if is_bcrypt(h) {
            return Ok(Some(()));
        }
        if h.starts_with("$argon2id$") {
            return check_argon2(h).map(Some);
        }
        if h.starts_with("$argon2") {
            return Err(HashError::BadArgon2("only the argon2id variant is taken (not argon2i or argon2d)".into()));
        }
        Ok(None)
    };
    if check(text)?.is_some() {
        return Ok(text.to_string());
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| HashError::NotAHash)?;
    let decoded = String::from_utf8(decoded).map_err(|_| HashError::NotAHash)?;
    match check(&decoded)? {
        Some(()) => Ok(decoded),
        None => Err(HashError::NotAHash),
    }
}

/// Whether `password` matches `hash` (an accepted hash: see [`parse`]). Blocking: a bcrypt or
/// argon2id check takes milliseconds of CPU, so call it off the async runtime.
pub fn verify(password: &str, hash: &str) -> bool {
    match Scheme::of(hash) {
        Scheme::Argon2id => {
            let Ok(parsed) = PasswordHash::new(hash) else { return false };
            // The bounds again: a stored hash may predate them.
            check_argon2(hash).is_ok()
                && argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
        }
        Scheme::Bcrypt => bcrypt::verify(password, hash).unwrap_or(false),
    }
}

/// A new argon2id hash of `password` (a random 16-byte salt) with `m` KiB, `t` passes and `p`
/// lanes, within the bounds above (checked before any memory is taken).
pub fn hash_argon2id(password: &str, m: u32, t: u32, p: u32) -> Result<String, HashError> {
    within_bounds(m, t, p)?;
    let params = argon2::Params::new(m, t, p, None).map_err(|e| HashError::BadArgon2(e.to_string()))?;
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = hasher.hash_password(password.as_bytes(), &salt).map_err(|e| HashError::BadArgon2(e.to_string()))?;
    let hash = hash.to_string();
    check_argon2(&hash)?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small parameters: the tests check behaviour, not strength.
    fn quick(password: &str) -> String {
        hash_argon2id(password, 64, 1, 1).unwrap()
    }

    #[test]
    fn argon2id_hashes_verify_and_wrong_passwords_do_not() {
        let hash = quick("correct horse");
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert_eq!(parse(&hash).unwrap(), hash);
        assert_eq!(Scheme::of(&hash), Scheme::Argon2id);
        assert!(verify("correct horse", &hash));
        assert!(!verify("correct horsf", &hash));
        // Dex's base64 wrapping is unwrapped for argon2id too.
        let wrapped = base64::engine::general_purpose::STANDARD.encode(&hash);
        assert_eq!(parse(&wrapped).unwrap(), hash);
    }

    #[test]
    fn bcrypt_hashes_of_any_cost_are_taken_as_dex_takes_them() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        assert_eq!(parse(&hash).unwrap(), hash);
        assert_eq!(Scheme::of(&hash), Scheme::Bcrypt);
        assert!(verify("pw", &hash) && !verify("px", &hash));
        // Dex's example hash (cost 10) of "password", as written in Dex's config-dev.yaml.
        let dex = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";
        assert!(verify("password", &parse(dex).unwrap()));
    }

    #[test]
    fn hashes_above_the_bounds_are_refused_naming_the_parameter() {
        // A hand-written PHC string asking for 4 GiB (the hash value is irrelevant: refused first).
        let huge = "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                    aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        let err = parse(huge).unwrap_err();
        assert_eq!(err, HashError::TooCostly { what: "m (memory, KiB)", value: 4_194_304, max: ARGON2_MAX_MEMORY_KIB });
        assert!(err.to_string().contains("hash-password --algorithm argon2id"), "{err}");
        assert!(!verify("x", huge), "never checked, even if stored before the bounds");
        let slow = "$argon2id$v=19$m=64,t=1000,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(matches!(parse(slow), Err(HashError::TooCostly { what: "t (passes)", .. })));
        // Refused before hashing: 4 GiB is never allocated.
        assert!(matches!(
            hash_argon2id("x", 4_194_304, 1, 1),
            Err(HashError::TooCostly { what: "m (memory, KiB)", .. })
        ));
        assert!(matches!(hash_argon2id("x", 64, 1, 9), Err(HashError::TooCostly { what: "p (lanes)", .. })));
    }

    #[test]
    fn other_texts_are_not_hashes() {
        assert_eq!(parse("password"), Err(HashError::NotAHash));
        assert_eq!(parse("$2a$10$short"), Err(HashError::NotAHash));
        let argon2i = "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(matches!(parse(argon2i), Err(HashError::BadArgon2(_))));
        assert!(matches!(parse("$argon2id$v=19$m=64"), Err(HashError::BadArgon2(_))));
    }
}
