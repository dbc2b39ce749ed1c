//! A practitioner's appointments as an iCalendar file (RFC 5545) for phones and calendar apps —
//! places the clinic does not control, so patients appear as the calendar privacy setting says:
//! "Patient" (the default), initials, or the full name. No notes or reasons are included.
//!
//! Written by hand rather than through a crate because the subset is small and every rule it
//! needs is applied here and checked by an independent parser in the tests: CRLF line ends
//! (§3.1), lines folded at 75 octets without splitting a UTF-8 character (§3.1), TEXT escaping
//! of backslash, semicolon, comma and newline (§3.3.11), UTC date-times (§3.3.5), and the
//! required VERSION, PRODID, UID and DTSTAMP (§3.6, §3.6.1).

use jiff::civil::Date;
use rusqlite::params;

use crate::audit::Event;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::privacy_settings::NameDisplay;
use crate::session::{Need, Session};

/// One appointment as the calendar shows it.
struct CalendarEvent {
    id: String,
    starts_at: i64,
    ends_at: i64,
    summary: String,
    cancelled: bool,
}

fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            _ => out.push(c),
        }
    }
    out
}

/// Folds a content line into 75-octet pieces, continuation lines starting with a space.
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

fn utc(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|_| "19700101T000000Z".into())
}

fn render(events: &[CalendarEvent], calendar_name: &str, now: i64) -> String {
    let mut out = String::new();
    let stamp = utc(now);
    for line in [
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//ClinVault//Calendar export//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:PUBLISH".to_owned(),
        format!("X-WR-CALNAME:{}", escape_text(calendar_name)),
    ] {
        fold(&line, &mut out);
    }
    for e in events {
        for line in [
            "BEGIN:VEVENT".to_owned(),
            format!("UID:{}@clinvault", e.id),
            format!("DTSTAMP:{stamp}"),
            format!("DTSTART:{}", utc(e.starts_at)),
            format!("DTEND:{}", utc(e.ends_at)),
            format!("SUMMARY:{}", escape_text(&e.summary)),
            format!(
                "STATUS:{}",
                if e.cancelled {
                    "CANCELLED"
                } else {
                    "CONFIRMED"
                }
            ),
            "CLASS:CONFIDENTIAL".to_owned(),
            "TRANSP:OPAQUE".to_owned(),
            "END:VEVENT".to_owned(),
        ] {
            fold(&line, &mut out);
        }
    }
    fold("END:VCALENDAR", &mut out);
    out
}

fn parse_day(field: &str, text: &str) -> Result<Date> {
    text.trim().parse().map_err(|_| {
        Error::InvalidInput(format!("{field}: {text:?} is not a date (use YYYY-MM-DD)"))
    })
}

impl Session {
    /// The practitioner's appointments from `from` to `to` (local clinic days, inclusive) as
    /// an iCalendar document, with patients shown as the calendar privacy setting says.
    pub fn calendar_ics(&mut self, practitioner: &str, from: &str, to: &str) -> Result<String> {
        let (from, to) = (parse_day("from", from)?, parse_day("to", to)?);
        if to < from {
            return Err(Error::InvalidInput("to: before from".into()));
        }
        if from.until(to).map(|s| s.get_days()).unwrap_or(i32::MAX) > 366 * 2 {
            return Err(Error::InvalidInput(
                "to: at most two years in one export".into(),
            ));
        }
        let tz = crate::appointments::clinic_tz(self);
        let bad = || Error::InvalidInput("from/to: out of range".into());
        let start = from.to_zoned(tz.clone()).map_err(|_| bad())?.timestamp();
        let end = to
            .checked_add(jiff::Span::new().days(1))
            .and_then(|d| d.to_zoned(tz.clone()))
            .map_err(|_| bad())?
            .timestamp();
        let names = self.privacy_settings()?.calendar;
        let now = self.clock().now().as_second();
        let event = Event::new("calendar.export")
            .detail("from", from.to_string())
            .detail("to", to.to_string())
            .detail("names", names.as_str());
        self.gate(
            Need::Permission(Permission::AppointmentsRead),
            event,
            |tx, ev| {
                let pr = crate::schedule::practitioner_by_username(tx, practitioner)?;
                let mut st = tx.prepare(
                "SELECT a.id, a.starts_at, a.ends_at, a.status, p.first_name, p.last_name, t.name
                 FROM appointments a
                 JOIN patients p ON p.id = a.patient_id
                 JOIN appointment_types t ON t.id = a.type_id
                 WHERE a.practitioner_id = ?1 AND a.starts_at >= ?2 AND a.starts_at < ?3
                 ORDER BY a.starts_at, a.id",
            )?;
                let events = st
                    .query_map(params![pr.id, start.as_second(), end.as_second()], |r| {
                        let (first, last): (String, String) = (r.get(4)?, r.get(5)?);
                        let kind: String = r.get(6)?;
                        Ok(CalendarEvent {
                            id: r.get(0)?,
                            starts_at: r.get(1)?,
                            ends_at: r.get(2)?,
                            cancelled: r.get::<_, String>(3)? == "cancelled",
                            summary: format!("{} — {kind}", shown(names, &first, &last)),
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                *ev = ev.clone().detail("count", events.len());
                Ok(render(&events, &format!("ClinVault — {practitioner}"), now))
            },
        )
    }
}

fn shown(names: NameDisplay, first: &str, last: &str) -> String {
    names.show(first, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fold_at_75_octets_without_splitting_characters() {
        let mut out = String::new();
        let long = format!("SUMMARY:{}", "é".repeat(60));
        fold(&long, &mut out);
        for line in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(line.len() <= 75, "{} octets", line.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded, format!("{long}\r\n"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape_text("a;b,c\\d\ne"), "a\\;b\\,c\\\\d\\ne");
    }
}
