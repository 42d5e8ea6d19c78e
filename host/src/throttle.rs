//! Throttles that make guessing and flooding cost the attacker more than the broker: per client
//! IP for authorization requests (each is stored), password attempts and device user codes, per
//! account for password attempts (backoff, never a lockout a stranger can impose for long), and
//! a bound on concurrent bcrypt checks (audit F2, F5). In memory, per process; they survive reloads.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::ThrottleConfig;

/// Authorization requests one client IP may start in a burst, then two per second (a NAT of
/// many users stays far below; a flood is cut to a trickle).
pub const AUTHORIZE_PER_IP_BURST: u32 = 120;
/// Password attempts one client IP may make in a burst, then one per second.
pub const PASSWORD_PER_IP_BURST: u32 = 60;
/// Password attempts one account may see in a burst, then one every 6 seconds, whoever makes
/// them: guessing slows to 10 a minute, while the owner is delayed seconds, never locked out.
pub const PASSWORD_PER_ACCOUNT_BURST: u32 = 10;
/// Device user codes one client IP may enter in a burst, then one every 6 seconds: a person
/// types one or two; guessing one of 20^8 codes at 10 a minute is hopeless within a code's
/// few minutes of life.
pub const USER_CODE_PER_IP_BURST: u32 = 10;
/// Failed password attempts one login (auth request) may have before it must start again.
pub const MAX_FAILED_PER_LOGIN: u32 = 5;
/// How long a password check waits for a free bcrypt slot before answering "try again".
pub const BCRYPT_WAIT: Duration = Duration::from_secs(5);

/// Why a request was throttled, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

/// The broker's throttles.
#[derive(Debug)]
pub struct Throttles {
    authorize_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    password_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    password_per_account: Option<DefaultKeyedRateLimiter<String>>,
    user_code_per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Permits for concurrent bcrypt checks (two per core).
    pub bcrypt: tokio::sync::Semaphore,
}

fn quota(burst: u32, every: Duration) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(every).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(burst)
}

fn check<K: Hash + Eq + Clone>(limiter: &Option<DefaultKeyedRateLimiter<K>>, key: &K) -> Result<(), Throttled> {
    let Some(limiter) = limiter else { return Ok(()) };
    limiter
        .check_key(key)
        .map_err(|not_until| Throttled { retry_after: not_until.wait_time_from(DefaultClock::default().now()) })
}

/// A keyed limiter holding `burst` (0: none), refilling one every `every`.
fn keyed<K: Hash + Eq + Clone>(burst: u32, every: Duration) -> Option<DefaultKeyedRateLimiter<K>> {
    (burst > 0).then(|| RateLimiter::keyed(quota(burst, every)))
}

impl Default for Throttles {
    fn default() -> Self {
        Self::new(&ThrottleConfig::default())
    }
}

impl Throttles {
    /// The throttles `web.throttle` asks for (defaults where it says nothing).
    pub fn new(config: &ThrottleConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            authorize_per_ip: keyed(
                config.authorize_per_ip.unwrap_or(AUTHORIZE_PER_IP_BURST),
                Duration::from_millis(500),
            ),
            password_per_ip: keyed(config.password_per_ip.unwrap_or(PASSWORD_PER_IP_BURST), Duration::from_secs(1)),
            password_per_account: keyed(
                config.password_per_account.unwrap_or(PASSWORD_PER_ACCOUNT_BURST),
                Duration::from_secs(6),
            ),
            user_code_per_ip: keyed(config.user_code_per_ip.unwrap_or(USER_CODE_PER_IP_BURST), Duration::from_secs(6)),
            bcrypt: tokio::sync::Semaphore::new(2 * cores),
        }
    }

    /// Counts an authorization request from `ip` (none: not known, not throttled).
    pub fn authorize(&self, ip: Option<IpAddr>) -> Result<(), Throttled> {
        ip.map_or(Ok(()), |ip| check(&self.authorize_per_ip, &ip))
    }

    /// Counts a password attempt from `ip` on `account` (connector id and login, as typed).
    pub fn password(&self, ip: Option<IpAddr>, connector: &str, login: &str) -> Result<(), Throttled> {
        if let Some(ip) = ip {
            check(&self.password_per_ip, &ip)?;
        }
        check(&self.password_per_account, &format!("{connector}\u{0}{}", login.to_lowercase()))
    }

    /// Counts a device user code entered from `ip` (right or wrong: it is counted before the
    /// lookup, so a guess costs the same whatever it hits).
    pub fn user_code(&self, ip: Option<IpAddr>) -> Result<(), Throttled> {
        ip.map_or(Ok(()), |ip| check(&self.user_code_per_ip, &ip))
    }

    /// Forgets keys whose buckets are full again (upkeep), so memory follows recent traffic.
    pub fn forget_idle(&self) {
        self.authorize_per_ip.iter().for_each(|l| l.retain_recent());
        self.password_per_ip.iter().for_each(|l| l.retain_recent());
        self.password_per_account.iter().for_each(|l| l.retain_recent());
        self.user_code_per_ip.iter().for_each(|l| l.retain_recent());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_backs_off_per_key() {
        let t = Throttles::default();
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        for _ in 0..PASSWORD_PER_ACCOUNT_BURST {
            t.password(ip, "local", "Admin@example.com").unwrap();
        }
        let refused = t.password(Some(IpAddr::from([192, 0, 2, 2])), "local", "admin@example.com").unwrap_err();
        assert!(refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(6));
        assert!(t.password(ip, "local", "someone-else").is_ok(), "other accounts are not affected");
        for _ in 0..AUTHORIZE_PER_IP_BURST {
            t.authorize(ip).unwrap();
        }
        assert!(t.authorize(ip).is_err());
        assert!(t.authorize(None).is_ok());
        for _ in 0..USER_CODE_PER_IP_BURST {
            t.user_code(ip).unwrap();
        }
        assert!(t.user_code(ip).is_err(), "user codes are guessed no faster");
        let off = Throttles::new(&ThrottleConfig { authorize_per_ip: Some(0), ..Default::default() });
        assert!((0..1000).all(|_| off.authorize(ip).is_ok()), "0 turns a throttle off");
    }
}
