//! Clinic opening hours as an administrator writes them: "Mon-Fri 08:00-18:00; Sat 09:00-12:00",
//! or "always". Used to flag access outside hours.

use jiff::civil::{Time, Weekday};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClinicHours {
    /// (day, opens, closes) in seconds since midnight; closes may be 86,400 (written 24:00).
    /// Empty means always open.
    spans: Vec<(Weekday, u32, u32)>,
}

const DAYS: [(&str, &str, Weekday); 7] = [
    ("mon", "monday", Weekday::Monday),
    ("tue", "tuesday", Weekday::Tuesday),
    ("wed", "wednesday", Weekday::Wednesday),
    ("thu", "thursday", Weekday::Thursday),
    ("fri", "friday", Weekday::Friday),
    ("sat", "saturday", Weekday::Saturday),
    ("sun", "sunday", Weekday::Sunday),
];

/// A day written as its three-letter abbreviation or in full ("Mon", "monday"); nothing else,
/// so that "Monkey" or "Sunrise" is refused rather than read as a day.
fn day(s: &str) -> Option<Weekday> {
    let s = s.trim().to_ascii_lowercase();
    DAYS.iter()
        .find(|(short, long, _)| s == *short || s == *long)
        .map(|(_, _, d)| *d)
}

/// "HH:MM" (or "HH:MM:SS") as seconds since midnight; "24:00" is the end of the day.
fn time_of_day(s: &str) -> Option<u32> {
    let s = s.trim();
    if s == "24:00" || s == "24:00:00" {
        return Some(86_400);
    }
    let t: Time = s.parse().ok()?;
    Some(
        u32::try_from(t.hour()).ok()? * 3600
            + u32::try_from(t.minute()).ok()? * 60
            + u32::try_from(t.second()).ok()?,
    )
}

/// The days of "Mon-Fri", "Sat" or a list of those ("Mon,Wed,Fri-Sun"); a range may wrap
/// round the week ("Fri-Mon").
fn days(text: &str) -> Option<Vec<Weekday>> {
    let mut out = Vec::new();
    for item in text.split(',') {
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (day(a)?, day(b)?),
            None => {
                let d = day(item)?;
                (d, d)
            }
        };
        let mut d = first;
        loop {
            if !out.contains(&d) {
                out.push(d);
            }
            if d == last {
                break;
            }
            d = d.next();
        }
    }
    Some(out)
}

impl ClinicHours {
    pub fn parse(text: &str) -> Result<ClinicHours> {
        const EXAMPLE: &str =
            "write e.g. \"Mon-Fri 08:00-18:00; Sat 09:00-12:00\", \"Mon,Wed 08:00-12:00\" or \"always\"";
        let bad = |part: &str, why: &str| {
            Error::InvalidInput(format!("clinic-hours: {part:?}: {why}; {EXAMPLE}"))
        };
        let text = text.trim();
        if text.eq_ignore_ascii_case("always") {
            return Ok(ClinicHours { spans: Vec::new() });
        }
        let mut spans = Vec::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (day_text, hours) = part
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad(part, "days and hours must be separated by a space"))?;
            let day_list = days(day_text).ok_or_else(|| {
                bad(
                    part,
                    "days are Mon, Tue, Wed, Thu, Fri, Sat, Sun (or written in full), \
                     as a range (Mon-Fri) or a list (Mon,Wed)",
                )
            })?;
            let (open, close) = hours
                .trim()
                .split_once('-')
                .ok_or_else(|| bad(part, "hours are written opening-closing, e.g. 08:00-18:00"))?;
            let when = |t: &str| {
                time_of_day(t)
                    .ok_or_else(|| bad(part, "a time is written HH:MM, from 00:00 to 24:00"))
            };
            let (open, close) = (when(open)?, when(close)?);
            if close <= open {
                return Err(bad(
                    part,
                    "closing time must be after opening time; split hours that run past \
                     midnight at 24:00, e.g. \"Fri 20:00-24:00; Sat 00:00-02:00\"",
                ));
            }
            if open >= 86_400 {
                return Err(bad(part, "a day cannot open at 24:00"));
            }
            spans.extend(day_list.into_iter().map(|d| (d, open, close)));
        }
        if spans.is_empty() {
            return Err(bad(text, "no opening hours given"));
        }
        Ok(ClinicHours { spans })
    }

    pub fn is_open(&self, local: &jiff::civil::DateTime) -> bool {
        let t = local.time();
        let second = u32::try_from(
            i32::from(t.hour()) * 3600 + i32::from(t.minute()) * 60 + i32::from(t.second()),
        )
        .unwrap_or(0);
        self.spans.is_empty()
            || self
                .spans
                .iter()
                .any(|(d, o, c)| *d == local.weekday() && second >= *o && second < *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_parse_and_apply() {
        let h = ClinicHours::parse("Mon-Fri 08:00-18:00; Sat 09:00-12:00").unwrap();
        let at = |s: &str| s.parse::<jiff::civil::DateTime>().unwrap();
        assert!(h.is_open(&at("2026-11-23T08:00"))); // Monday
        assert!(!h.is_open(&at("2026-11-23T18:00")));
        assert!(h.is_open(&at("2026-11-28T11:59"))); // Saturday
        assert!(!h.is_open(&at("2026-11-29T10:00"))); // Sunday
        assert!(ClinicHours::parse("always")
            .unwrap()
            .is_open(&at("2026-11-29T03:00")));
        assert!(ClinicHours::parse("Fri-Mon 10:00-12:00")
            .unwrap()
            .is_open(&at("2026-11-29T10:30")));
        assert!(ClinicHours::parse("Mon 18:00-08:00").is_err());
        assert!(ClinicHours::parse("Someday 08:00-09:00").is_err());
        assert!(ClinicHours::parse("").is_err());
    }

    #[test]
    fn lists_full_names_and_the_end_of_the_day() {
        let at = |s: &str| s.parse::<jiff::civil::DateTime>().unwrap();
        // 2026-11-23 is a Monday.
        let h = ClinicHours::parse("Mon,Wed 08:00-12:00").unwrap();
        assert!(
            h.is_open(&at("2026-11-25T09:00")),
            "Wednesday is in the list"
        );
        assert!(!h.is_open(&at("2026-11-24T09:00")), "Tuesday is not");
        let h = ClinicHours::parse("Mon-Wed,Sat 09:00-12:00").unwrap();
        assert!(h.is_open(&at("2026-11-28T10:00")), "Saturday after a range");
        assert!(!h.is_open(&at("2026-11-27T10:00")), "Friday is not");
        let h = ClinicHours::parse("saturday 00:00-24:00").unwrap();
        assert!(
            h.is_open(&at("2026-11-28T23:59:59")),
            "open to the last second"
        );
        assert!(!h.is_open(&at("2026-11-29T00:00")), "Sunday is closed");
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for bad in [
            "Monkey 08:00-12:00",
            "Sunrise 08:00-12:00",
            "Mon,Funday 08:00-12:00",
        ] {
            let e = ClinicHours::parse(bad).unwrap_err().to_string();
            assert!(e.contains("days are Mon"), "{bad}: {e}");
        }
        let e = ClinicHours::parse("Fri 20:00-02:00")
            .unwrap_err()
            .to_string();
        assert!(e.contains("split hours that run past midnight"), "{e}");
        let e = ClinicHours::parse("Mon 08:00-25:00")
            .unwrap_err()
            .to_string();
        assert!(e.contains("HH:MM"), "{e}");
        let e = ClinicHours::parse("Mon 24:00-24:00")
            .unwrap_err()
            .to_string();
        assert!(e.contains("after opening"), "{e}");
    }
}
