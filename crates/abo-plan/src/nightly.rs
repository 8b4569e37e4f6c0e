//! Builds on the clock: the `nightly` option of buildout sections, and master.toml's
//! `timezone`, the zone its times are in.
//!
//! `nightly = HH:MM [WEEKDAYS]`, one time per line: `nightly = 02:30` (every day),
//! `nightly = 02:30 mon-fri`, `nightly = 23:00 sat,sun`. Weekdays are `mon` ... `sun` (any
//! case), separated by commas; `A-B` is every day from A to B, and may wrap around the
//! week (`fri-mon`). An empty `nightly =` means no nightly build (it overrides an inherited
//! or `[DEFAULT]` one).
//!
//! Time zones are IANA names looked up in the time zone database bundled with abo (jiff's
//! copy of the IANA database), so that `abo check` and the master agree on what exists
//! without reading the system's files.

use crate::model::{Nightly, Weekday};
use crate::version::py_repr;
use abo_config::{Diagnostic, ManifestSection};
pub use jiff::tz::TimeZone;

/// The manifest option.
pub const NIGHTLY: &str = "nightly";

/// The examples every `nightly` diagnostic shows.
const NIGHTLY_HELP: &str = "write `nightly = HH:MM` on a 24-hour clock, optionally followed by weekdays: `nightly = 02:30`, `nightly = 02:30 mon-fri`, `nightly = 23:00 sat,sun`";

/// A weekday name, any case.
fn parse_weekday(name: &str) -> Option<Weekday> {
    Weekday::ALL
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name))
}

/// `HH:MM`: one or two digits of hour, exactly two of minute.
fn parse_time(text: &str) -> Result<(u8, u8), (String, String)> {
    let bad = || {
        (
            format!("nightly: {} is not a time of day", py_repr(text)),
            NIGHTLY_HELP.to_string(),
        )
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str, widths: &[usize]| {
        widths.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, &[1, 2]) || !digits(m, &[2]) {
        return Err(bad());
    }
    let (hour, minute): (u8, u8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if hour > 23 || minute > 59 {
        return Err((
            format!("nightly: {} is out of range", py_repr(text)),
            "hours go from 00 to 23 and minutes from 00 to 59: midnight is `00:00`".to_string(),
        ));
    }
    Ok((hour, minute))
}

/// `mon-fri`, `sat,sun`, `mon,wed-fri`, `fri-mon`: the days, Monday first.
fn parse_weekdays(text: &str) -> Result<Vec<Weekday>, (String, String)> {
    let help = "weekdays are mon, tue, wed, thu, fri, sat and sun, separated by commas, with `A-B` for every day from A to B: `mon-fri`, `sat,sun`".to_string();
    let mut days = [false; 7];
    for item in text.split(',') {
        let item = item.trim();
        let ends: Vec<&str> = item.split('-').map(str::trim).collect();
        let parsed: Vec<Option<Weekday>> = ends.iter().map(|e| parse_weekday(e)).collect();
        match parsed.as_slice() {
            [Some(day)] => days[day.days_from_monday() as usize] = true,
            [Some(from), Some(to)] => {
                let (from, to) = (from.days_from_monday(), to.days_from_monday());
                let len = (to + 7 - from) % 7;
                for k in 0..=len {
                    days[((from + k) % 7) as usize] = true;
                }
            }
            _ => {
                let unknown = ends
                    .iter()
                    .zip(&parsed)
                    .find(|(_, p)| p.is_none())
                    .map(|(e, _)| *e);
                let message = match unknown {
                    _ if item.is_empty() => {
                        format!("nightly: an empty weekday in {}", py_repr(text))
                    }
                    Some(name) if ends.len() <= 2 && !name.is_empty() => {
                        format!("nightly: {} is not a weekday", py_repr(name))
                    }
                    _ => format!("nightly: {} is not a weekday or a range", py_repr(item)),
                };
                return Err((message, help));
            }
        }
    }
    Ok(Weekday::ALL
        .into_iter()
        .filter(|d| days[d.days_from_monday() as usize])
        .collect())
}

/// One `nightly` line: `HH:MM`, optionally followed by weekdays.
///
/// `Err((what is wrong, what would be right))`.
pub fn parse_nightly(line: &str) -> Result<Nightly, (String, String)> {
    let line = line.trim();
    let (time, days) = match line.split_once(char::is_whitespace) {
        Some((time, days)) => (time, Some(days.trim())),
        None => (line, None),
    };
    let (hour, minute) = parse_time(time)?;
    let weekdays = match days {
        None => Weekday::ALL.to_vec(),
        Some(days) => parse_weekdays(days)?,
    };
    Ok(Nightly {
        hour,
        minute,
        weekdays,
    })
}

/// A section's `nightly` times, one per non-blank line, without repetition; empty when the
/// option is absent or empty. Every bad line is reported at its line.
pub fn nightly(section: &ManifestSection) -> Result<Vec<Nightly>, Vec<Diagnostic>> {
    let file = section.place_of(NIGHTLY).0;
    let mut found: Vec<Nightly> = Vec::new();
    let mut diags = Vec::new();
    for (line, at) in section.lines_at(NIGHTLY) {
        match parse_nightly(line) {
            Ok(n) if found.contains(&n) => {}
            Ok(n) => found.push(n),
            Err((message, help)) => diags.push(Diagnostic::new(file, at, message).with_help(help)),
        }
    }
    if diags.is_empty() {
        Ok(found)
    } else {
        Err(diags)
    }
}

/// The time zone an IANA name (`Europe/Brussels`, `UTC`; any case) designates, from the
/// bundled database. `Err` says what is wrong and suggests close names.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    let db = jiff::tz::TimeZoneDatabase::bundled();
    if let Ok(tz) = db.get(name) {
        return Ok(tz);
    }
    let wanted = name.to_ascii_lowercase();
    let mut close: Vec<(usize, String)> = db
        .available()
        .map(|n| n.as_str().to_string())
        .map(|n| (edit_distance(&wanted, &n.to_ascii_lowercase()), n))
        .filter(|(d, _)| *d <= 3)
        .collect();
    close.sort();
    let suggestions: Vec<String> = close.into_iter().take(3).map(|(_, n)| n).collect();
    let mut message = format!("timezone = {name:?} is not a known time zone");
    if suggestions.is_empty() {
        message.push_str(
            ", write an IANA time zone name such as \"Europe/Brussels\", \"America/New_York\" or \"UTC\"",
        );
    } else {
        message.push_str(&format!(", did you mean {}?", suggestions.join(" or ")));
    }
    Err(message)
}

/// Levenshtein distance, for suggestions (names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use Weekday::*;

    fn ok(line: &str) -> (u8, u8, Vec<Weekday>) {
        let n = parse_nightly(line).unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
        (n.hour, n.minute, n.weekdays)
    }

    #[test]
    fn times_and_weekdays() {
        assert_eq!(ok("02:30"), (2, 30, Weekday::ALL.to_vec()));
        assert_eq!(ok("2:05"), (2, 5, Weekday::ALL.to_vec()));
        assert_eq!(ok("00:00"), (0, 0, Weekday::ALL.to_vec()));
        assert_eq!(ok("23:59 sun"), (23, 59, vec![Sun]));
        assert_eq!(ok("02:30 mon-fri"), (2, 30, vec![Mon, Tue, Wed, Thu, Fri]));
        assert_eq!(ok("23:00 sat,sun"), (23, 0, vec![Sat, Sun]));
        assert_eq!(ok("23:00  Sat, SUN "), (23, 0, vec![Sat, Sun]));
        assert_eq!(ok("23:00 sun,sat,sun"), (23, 0, vec![Sat, Sun]));
        assert_eq!(ok("12:00 fri-mon"), (12, 0, vec![Mon, Fri, Sat, Sun]));
        assert_eq!(ok("12:00 mon,wed-fri"), (12, 0, vec![Mon, Wed, Thu, Fri]));
        assert_eq!(ok("12:00 tue-tue"), (12, 0, vec![Tue]));
        assert_eq!(ok("12:00 mon - wed"), (12, 0, vec![Mon, Tue, Wed]));
    }

    #[test]
    fn display_normalizes() {
        for (line, shown) in [
            ("2:30", "02:30"),
            ("02:30 mon-sun", "02:30"),
            ("02:30 fri-thu", "02:30"),
            ("02:30 mon,tue,wed,thu,fri", "02:30 mon-fri"),
            ("23:00 sun,sat", "23:00 sat,sun"),
            ("12:00 fri-mon", "12:00 mon,fri-sun"),
            ("12:00 wed", "12:00 wed"),
        ] {
            assert_eq!(parse_nightly(line).unwrap().to_string(), shown, "{line}");
        }
    }

    #[test]
    fn mistakes() {
        for (line, message) in [
            ("2h30", "nightly: '2h30' is not a time of day"),
            ("02:30:00", "nightly: '02:30:00' is not a time of day"),
            ("0230", "nightly: '0230' is not a time of day"),
            ("02:3", "nightly: '02:3' is not a time of day"),
            ("+2:30", "nightly: '+2:30' is not a time of day"),
            ("123:00", "nightly: '123:00' is not a time of day"),
            ("mon 02:30", "nightly: 'mon' is not a time of day"),
            ("24:00", "nightly: '24:00' is out of range"),
            ("12:60", "nightly: '12:60' is out of range"),
            ("02:30 mon-fry", "nightly: 'fry' is not a weekday"),
            ("02:30 monday", "nightly: 'monday' is not a weekday"),
            ("02:30 mon,,fri", "nightly: an empty weekday in 'mon,,fri'"),
            ("02:30 mon-", "nightly: 'mon-' is not a weekday or a range"),
            (
                "02:30 mon-tue-wed",
                "nightly: 'mon-tue-wed' is not a weekday or a range",
            ),
            ("02:30 mon fri", "nightly: 'mon fri' is not a weekday"),
        ] {
            let got = parse_nightly(line).map_err(|(m, _)| m);
            assert_eq!(got, Err(message.to_string()), "{line:?}");
        }
    }

    #[test]
    fn section_lines_are_checked_one_by_one() {
        let section = ManifestSection::from_pairs(
            "s",
            "/m",
            &[
                ("buildout", "standalone a.cfg"),
                ("nightly", "02:30 mon-fri"),
            ],
        );
        assert_eq!(nightly(&section).unwrap().len(), 1);
        let empty = ManifestSection::from_pairs("s", "/m", &[("nightly", "")]);
        assert_eq!(nightly(&empty).unwrap(), Vec::new());
        let absent = ManifestSection::from_pairs("s", "/m", &[]);
        assert_eq!(nightly(&absent).unwrap(), Vec::new());
        let bad = ManifestSection::from_pairs("s", "/m", &[("nightly", "25:00 xyz")]);
        let d = nightly(&bad).unwrap_err();
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].to_string(),
            format!("/m/MANIFEST.cfg:2: nightly: '25:00' is out of range, hours go from 00 to 23 and minutes from 00 to 59: midnight is `00:00`")
        );
    }

    #[test]
    fn time_zones() {
        assert_eq!(
            time_zone("Europe/Brussels").unwrap().iana_name(),
            Some("Europe/Brussels")
        );
        assert_eq!(
            time_zone("europe/brussels").unwrap().iana_name(),
            Some("Europe/Brussels")
        );
        assert!(time_zone("UTC").is_ok());
        let e = time_zone("Europe/Brusels").unwrap_err();
        assert!(
            e.starts_with("timezone = \"Europe/Brusels\" is not a known time zone, did you mean Europe/Brussels"),
            "{e}"
        );
        let e = time_zone("Nowhere at all").unwrap_err();
        assert!(e.contains("write an IANA time zone name"), "{e}");
        assert!(time_zone("").is_err());
        assert!(time_zone("../../etc/passwd").is_err());
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}
