//! Time as storage keeps it: whole seconds since the Unix epoch, as `i64`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in seconds since the epoch (0 if the clock is before 1970).
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A configured duration in whole seconds, saturating far below `i64::MAX` so that adding it to
/// a timestamp cannot overflow.
pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}
