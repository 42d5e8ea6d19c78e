//! SAML's `xs:dateTime` in UTC (`2026-08-06T10:00:05Z`, fractions allowed), to and from Unix
//! seconds, without a date library: the civil-date arithmetic of Howard Hinnant's algorithms.

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `2026-08-06T10:00:05Z` (or with a fraction before `Z`) as Unix seconds. SAML requires UTC:
/// an offset, or no zone, is refused.
pub fn parse(text: &str) -> Option<i64> {
    let text = text.trim().strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split_once('.').map_or(
        time,
        |(t, frac)| {
            if frac.chars().all(|c| c.is_ascii_digit()) { t } else { "invalid" }
        },
    );
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    let valid = (1..=12).contains(&m) && (1..=31).contains(&day) && h < 24 && min < 60 && s < 61 && h >= 0;
    valid.then(|| days_from_civil(y, m, day) * 86_400 + h * 3600 + min * 60 + s)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rest = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Now, in Unix seconds (the WASI wall clock).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse("2026-08-06T10:00:05Z"), Some(1_786_010_405));
        assert_eq!(parse("2026-08-06T10:00:05.123Z"), Some(1_786_010_405));
        assert_eq!(format(1_786_010_405), "2026-08-06T10:00:05Z");
        assert_eq!(parse(&format(951_782_400)), Some(951_782_400), "2000-02-29");
        for bad in
            ["2026-08-06T10:00:05", "2026-08-06T10:00:05+02:00", "2026-13-06T10:00:05Z", "x", "2026-08-06T10:00:05.x1Z"]
        {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
