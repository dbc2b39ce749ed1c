//! Clinic opening hours as an administrator writes them: "Mon-Fri 08:00-18:00; Sat 09:00-12:00",
//! or "always". Used to flag access outside hours.

use jiff::civil::{Time, Weekday};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClinicHours {
    /// (day, opens, closes); empty means always open.
    spans: Vec<(Weekday, Time, Time)>,
}

fn day(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().get(..3)? {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

impl ClinicHours {
    pub fn parse(text: &str) -> Result<ClinicHours> {
        let bad = |part: &str| {
            Error::InvalidInput(format!(
                "clinic-hours: cannot read {part:?}; write e.g. \"Mon-Fri 08:00-18:00; Sat 09:00-12:00\" or \"always\""
            ))
        };
        let text = text.trim();
        if text.eq_ignore_ascii_case("always") {
            return Ok(ClinicHours { spans: Vec::new() });
        }
        let mut spans = Vec::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (days, hours) = part.split_once(' ').ok_or_else(|| bad(part))?;
            let (open, close) = hours.trim().split_once('-').ok_or_else(|| bad(part))?;
            let open: Time = open.trim().parse().map_err(|_| bad(part))?;
            let close: Time = close.trim().parse().map_err(|_| bad(part))?;
            if close <= open {
                return Err(bad(part));
            }
            let (first, last) = match days.split_once('-') {
                Some((a, b)) => (
                    day(a).ok_or_else(|| bad(part))?,
                    day(b).ok_or_else(|| bad(part))?,
                ),
                None => {
                    let d = day(days).ok_or_else(|| bad(part))?;
                    (d, d)
                }
            };
            let mut d = first;
            loop {
                spans.push((d, open, close));
                if d == last {
                    break;
                }
                d = d.next();
            }
        }
        if spans.is_empty() {
            return Err(bad(text));
        }
        Ok(ClinicHours { spans })
    }

    pub fn is_open(&self, local: &jiff::civil::DateTime) -> bool {
        self.spans.is_empty()
            || self
                .spans
                .iter()
                .any(|(d, o, c)| *d == local.weekday() && local.time() >= *o && local.time() < *c)
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
}
