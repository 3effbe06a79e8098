//! Durations as users type them on the command line: `45s`, `90m`, `12h`, `30d`.

/// `None` for anything else (or a number too large to hold).
pub fn short_duration(raw: &str) -> Option<jiff::SignedDuration> {
    let split = raw.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = raw.split_at(split);
    // At most six digits (999999d is 2,700 years), without leading zeros: anything else is a
    // typo, not a duration.
    if !(1..=6).contains(&number.len()) || (number.len() > 1 && number.starts_with('0')) {
        return None;
    }
    let unit_seconds: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    let count: i64 = number.parse().ok()?;
    Some(jiff::SignedDuration::from_secs(count.checked_mul(unit_seconds)?))
}

/// A point in time as users type it: an RFC 3339 time, or a duration (`2h`) before `now`.
///
/// A time before the Unix epoch reads as the epoch: nothing mcpd records is older, so the
/// answer is the same, and the databases need not agree on far years (PostgreSQL has no year 0
/// and refuses a signed year, which 999999d reaches).
pub fn point_in_time(raw: &str, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let at = match raw.parse::<jiff::Timestamp>() {
        Ok(at) => at,
        Err(_) => now.checked_sub(short_duration(raw)?).ok()?,
    };
    Some(at.max(jiff::Timestamp::UNIX_EPOCH))
}

/// [`point_in_time`] before now, or the message saying what it takes.
pub fn parse_since(raw: &str) -> Result<jiff::Timestamp, String> {
    point_in_time(raw, jiff::Timestamp::now())
        .ok_or_else(|| format!("since: {raw:?} is neither a duration (2h, 30m, 7d) nor an RFC 3339 time"))
}

#[cfg(test)]
mod tests {
    use super::{point_in_time, short_duration};

    #[test]
    fn units_are_seconds_minutes_hours_days() {
        assert_eq!(short_duration("45s"), Some(jiff::SignedDuration::from_secs(45)));
        assert_eq!(short_duration("2h"), Some(jiff::SignedDuration::from_secs(7200)));
        assert_eq!(short_duration("30d"), Some(jiff::SignedDuration::from_secs(30 * 86_400)));
        for bad in ["", "d", "3w", "2 h", "-1h", "99999999999999999999d", "1234567s", "01h", "+1h"] {
            assert_eq!(short_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn times_before_the_epoch_read_as_the_epoch() {
        let now: jiff::Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        for far_back in ["999999d", "0000-01-01T00:00:00Z", "-000596-06-26T00:00:00Z", "1969-12-31T23:59:59Z"] {
            assert_eq!(point_in_time(far_back, now), Some(jiff::Timestamp::UNIX_EPOCH), "{far_back}");
        }
        assert_eq!(point_in_time("1970-01-01T00:00:01Z", now).unwrap().as_second(), 1);
    }
}
