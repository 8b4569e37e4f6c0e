//! Commit dates to [`Timestamp`]s (milliseconds since the epoch), without a date library:
//! the formats are fixed and the arithmetic is a few lines.

use abo_store::Timestamp;

/// Seconds since the epoch (possibly fractional, as hg stores them) to a timestamp; `None`
/// before 1970 or when not finite, which the store cannot represent.
pub fn from_epoch_seconds(seconds: f64) -> Option<Timestamp> {
    if !seconds.is_finite() || seconds < 0.0 || seconds > (u64::MAX / 1000) as f64 {
        return None;
    }
    Some(Timestamp((seconds * 1000.0).round() as u64))
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A bzr long-log timestamp, `Wed 2026-11-25 16:01:19 +0100` (the weekday is optional), to
/// a timestamp; `None` if it is not one.
pub fn parse_bzr_timestamp(s: &str) -> Option<Timestamp> {
    let mut parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() == 4 {
        parts.remove(0);
    }
    let [date, time, offset] = parts.as_slice() else {
        return None;
    };
    let mut date = date.split('-');
    let year: i64 = date.next()?.parse().ok()?;
    let month: u32 = date.next()?.parse().ok()?;
    let day: u32 = date.next()?.parse().ok()?;
    // Years outside 1970..=9999 are no commit date, and would overflow the arithmetic.
    if date.next().is_some()
        || !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
    {
        return None;
    }
    let mut time = time.split(':');
    let hour: i64 = time.next()?.parse().ok()?;
    let minute: i64 = time.next()?.parse().ok()?;
    let second: i64 = time.next()?.parse().ok()?;
    if time.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let (sign, digits) = match offset.as_bytes().first()? {
        b'+' => (1, &offset[1..]),
        b'-' => (-1, &offset[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let off_h: i64 = digits[..2].parse().ok()?;
    let off_m: i64 = digits[2..].parse().ok()?;
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let utc = local - sign * (off_h * 3600 + off_m * 60);
    from_epoch_seconds(utc as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn bzr_timestamps() {
        // `date -d '2026-11-25 16:01:19 UTC' +%s` = 1795622479
        let utc = Timestamp(1_795_622_479_000);
        assert_eq!(
            parse_bzr_timestamp("Wed 2026-11-25 16:01:19 +0000"),
            Some(utc)
        );
        assert_eq!(parse_bzr_timestamp("2026-11-25 16:01:19 +0000"), Some(utc));
        assert_eq!(
            parse_bzr_timestamp("Wed 2026-11-25 17:31:19 +0130"),
            Some(utc)
        );
        assert_eq!(
            parse_bzr_timestamp("Wed 2026-11-25 11:01:19 -0500"),
            Some(utc)
        );
        for bad in [
            "",
            "Wed",
            "Wed 2026-11-25 16:01:19",
            "Wed 2026-13-25 16:01:19 +0000",
            "Wed 2026-11-25 16:01 +0000",
            "Wed 2026-11-25 16:01:19 0000",
            "Wed 2026-11-25 16:01:19 +00",
            "Wed 1969-12-31 23:59:59 +0000",
            "x 99999999999999999999-1-1 00:00:00 +0000",
        ] {
            assert_eq!(parse_bzr_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn epoch_seconds() {
        assert_eq!(from_epoch_seconds(1.5), Some(Timestamp(1500)));
        assert_eq!(from_epoch_seconds(-1.0), None);
        assert_eq!(from_epoch_seconds(f64::NAN), None);
        assert_eq!(from_epoch_seconds(1e300), None);
    }
}
