//! The device authorization grant (RFC 8628) as rules: what a user code looks like and how a
//! typed one is read, and what a poll of the token endpoint gets at each stage of a device
//! request. The handlers in `web/device.rs` do the storage and the pages around these.

use super::{OAuthError, OAuthErrorCode, pkce};

/// The letters of a user code, as Dex makes them: 20 consonants, so no word can be spelt and
/// no letter is mistaken for a digit (RFC 8628 §6.1).
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code: 20^8 ≈ 2.6 × 10^10 codes, against guesses throttled per client IP.
pub const USER_CODE_LEN: usize = 8;
/// The poll interval the device is told (seconds), as Dex answers.
pub const POLL_INTERVAL: i64 = 5;
/// What `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: i64 = 5;

/// A user code: eight letters of [`USER_CODE_ALPHABET`], shown `XXXX-XXXX`.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCode(String);

impl UserCode {
    /// The code made of `letters` (indexes into the alphabet, taken modulo its length).
    pub fn from_indexes(letters: [usize; USER_CODE_LEN]) -> Self {
        let code = letters.iter().map(|i| char::from(USER_CODE_ALPHABET[i % USER_CODE_ALPHABET.len()])).collect();
        Self(code)
    }

    /// Reads a code as a person types it: any case, with or without the dash, spaces ignored.
    /// `None` when it is not eight letters of the alphabet.
    pub fn parse(typed: &str) -> Option<Self> {
        let code: String =
            typed.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect();
        let valid = code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
        valid.then_some(Self(code))
    }

    /// The eight letters, without the dash (what storage keys on).
    pub fn letters(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UserCode {
    /// `XXXX-XXXX`, as the device shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = self.0.split_at(USER_CODE_LEN / 2);
        write!(f, "{a}-{b}")
    }
}

impl std::fmt::Debug for UserCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserCode([redacted])")
    }
}

/// Where a device request stands, as far as a poll needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage<'a> {
    /// Waiting for the user to enter the code, log in and approve.
    Pending,
    /// Approved: the next poll gets the tokens.
    Approved,
    /// The user denied the device at the approval page.
    Denied,
    /// The tokens went out once, under this grant.
    Redeemed { grant: &'a str },
}

/// What a device request is, for a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollFacts<'a> {
    pub client_id: &'a str,
    pub stage: Stage<'a>,
    /// When the device code stops being valid (Unix seconds).
    pub expires_at: i64,
    /// The last poll (none yet: the first is never too early).
    pub last_poll: Option<i64>,
    /// The interval the device must keep between polls, in seconds.
    pub interval: i64,
    /// The PKCE challenge the device sent with its authorization, if any (Dex's extension).
    pub challenge: Option<(&'a str, pkce::Method)>,
}

/// What to do with a poll of the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollDecision {
    /// Approved: mark the request redeemed (compare-and-swap) and issue the tokens.
    Issue,
    /// Not yet: record this poll (now, with `interval`) and answer `error`
    /// (`authorization_pending`, or `slow_down` with the interval raised).
    Wait { interval: i64, error: OAuthError },
    /// Presented again after its tokens went out: revoke what it produced, answer `error`.
    Replayed { grant: String, error: OAuthError },
    /// Refused; nothing changes.
    Refuse(OAuthError),
}

/// Decides a poll by `client_id` (with `verifier`, its PKCE `code_verifier`) at `now` (RFC 8628
/// §3.5); the verifier is checked when the tokens would go out, as Dex does. A device code redeemed once is
/// `invalid_grant`, not `expired_token`: it did not expire, it was used, and RFC 6749 §5.2 names
/// a used grant `invalid_grant`; the grant it produced is revoked, as for a replayed code.
pub fn poll(facts: PollFacts<'_>, client_id: &str, verifier: Option<&str>, now: i64) -> PollDecision {
    if facts.client_id != client_id {
        return PollDecision::Refuse(OAuthError::invalid_grant("the device code was issued to another client"));
    }
    if let Stage::Redeemed { grant } = facts.stage {
        return PollDecision::Replayed {
            grant: grant.to_string(),
            error: OAuthError::invalid_grant(
                "the device code was already redeemed; the tokens it produced are revoked: start a new device authorization",
            ),
        };
    }
    if now >= facts.expires_at {
        return PollDecision::Refuse(OAuthError::new(
            OAuthErrorCode::ExpiredToken,
            "the device code expired before the user approved it; start a new device authorization",
        ));
    }
    match facts.stage {
        Stage::Approved => match (facts.challenge, verifier) {
            (None, None) => PollDecision::Issue,
            (Some((challenge, method)), Some(verifier)) if pkce::verify(method, challenge, verifier) => {
                PollDecision::Issue
            }
            (Some(_), Some(_)) => {
                PollDecision::Refuse(OAuthError::invalid_grant("code_verifier does not match the code_challenge"))
            }
            (Some(_), None) => PollDecision::Refuse(OAuthError::invalid_grant("code_verifier is required (PKCE)")),
            (None, Some(_)) => PollDecision::Refuse(OAuthError::invalid_request(
                "code_verifier given but the device authorization had no code_challenge",
            )),
        },
        Stage::Denied => {
            PollDecision::Refuse(OAuthError::new(OAuthErrorCode::AccessDenied, "the user denied the device access"))
        }
        Stage::Pending | Stage::Redeemed { .. } => match facts.last_poll {
            Some(last) if now - last < facts.interval => {
                let interval = facts.interval + SLOW_DOWN_STEP;
                PollDecision::Wait {
                    interval,
                    error: OAuthError::new(
                        OAuthErrorCode::SlowDown,
                        format!("polled too fast; wait {interval} seconds between requests from now on"),
                    ),
                }
            }
            _ => PollDecision::Wait {
                interval: facts.interval,
                error: OAuthError::new(
                    OAuthErrorCode::AuthorizationPending,
                    "the user has not yet entered the code and approved the device",
                ),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_read_as_typed() {
        let code = UserCode::parse("bcdf-ghjk").unwrap();
        assert_eq!((code.letters(), code.to_string().as_str()), ("BCDFGHJK", "BCDF-GHJK"));
        assert_eq!(UserCode::parse(" BCDF GHJK "), Some(code.clone()));
        assert_eq!(UserCode::parse("BCDFGHJK"), Some(code.clone()));
        for bad in ["", "BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH", "BCDF-GHJ1", "BCDF_GHJK"] {
            assert_eq!(UserCode::parse(bad), None, "{bad}");
        }
        assert_eq!(UserCode::from_indexes([0, 1, 2, 3, 4, 5, 6, 19]).to_string(), "BCDF-GHJZ");
        assert!(!format!("{code:?}").contains("BCDF"));
    }

    fn facts(stage: Stage<'_>, last_poll: Option<i64>) -> PollFacts<'_> {
        PollFacts { client_id: "tv", stage, expires_at: 1000, last_poll, interval: POLL_INTERVAL, challenge: None }
    }

    fn code_of(decision: PollDecision) -> &'static str {
        match decision {
            PollDecision::Issue => "issue",
            PollDecision::Wait { error, .. } | PollDecision::Replayed { error, .. } | PollDecision::Refuse(error) => {
                error.error.as_str()
            }
        }
    }

    #[test]
    fn polls_by_stage() {
        assert_eq!(code_of(poll(facts(Stage::Pending, None), "tv", None, 100)), "authorization_pending");
        assert_eq!(code_of(poll(facts(Stage::Pending, Some(95)), "tv", None, 100)), "authorization_pending");
        assert_eq!(
            poll(facts(Stage::Pending, Some(97)), "tv", None, 100),
            PollDecision::Wait {
                interval: 10,
                error: OAuthError::new(
                    OAuthErrorCode::SlowDown,
                    "polled too fast; wait 10 seconds between requests from now on"
                ),
            }
        );
        assert_eq!(
            code_of(poll(facts(Stage::Approved, Some(99)), "tv", None, 100)),
            "issue",
            "tokens are never held back"
        );
        assert_eq!(code_of(poll(facts(Stage::Denied, None), "tv", None, 100)), "access_denied");
        assert_eq!(code_of(poll(facts(Stage::Pending, None), "tv", None, 1000)), "expired_token");
        assert_eq!(code_of(poll(facts(Stage::Approved, None), "other", None, 100)), "invalid_grant");
        let replay = poll(facts(Stage::Redeemed { grant: "g" }, None), "tv", None, 2000);
        assert!(matches!(&replay, PollDecision::Replayed { grant, .. } if grant == "g"), "{replay:?}");
        assert_eq!(code_of(replay), "invalid_grant");
    }

    #[test]
    fn a_challenge_needs_its_verifier_when_the_tokens_go_out() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = Some(("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", pkce::Method::S256));
        let approved = PollFacts { challenge, ..facts(Stage::Approved, None) };
        assert_eq!(poll(approved, "tv", Some(verifier), 100), PollDecision::Issue);
        assert_eq!(code_of(poll(approved, "tv", None, 100)), "invalid_grant");
        assert_eq!(code_of(poll(approved, "tv", Some(&"x".repeat(43)), 100)), "invalid_grant");
        let pending = PollFacts { challenge, ..facts(Stage::Pending, None) };
        assert_eq!(code_of(poll(pending, "tv", None, 100)), "authorization_pending", "checked only at the end");
        assert_eq!(code_of(poll(facts(Stage::Approved, None), "tv", Some(verifier), 100)), "invalid_request");
    }
}
