//! Appointments: booking into a practitioner's working hours without overlapping another
//! booking (unless the user may override, and asks to), repeating weekly bookings that keep
//! their local time across daylight-saving changes, status changes, and day views. Times are
//! stored in UTC and entered and shown in the clinic's IANA time zone.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::schedule::{practitioner_by_username, type_by_name};
use crate::session::{Need, Session};

#[derive(Clone, Debug, Serialize)]
pub struct Appointment {
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub practitioner: String,
    pub appointment_type: String,
    /// UTC, RFC 3339.
    pub starts_at: String,
    pub ends_at: String,
    /// Local clinic time, YYYY-MM-DDTHH:MM.
    pub starts_local: String,
    pub ends_local: String,
    pub status: String,
    pub cancel_reason: Option<String>,
    pub note: Option<String>,
    pub series_id: Option<String>,
}

/// A practitioner's time away, as the calendar shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TimeOff {
    pub id: String,
    pub practitioner: String,
    /// Local clinic time, YYYY-MM-DDTHH:MM.
    pub starts_local: String,
    pub ends_local: String,
    /// Only for users who manage practitioners (the reason may be personal); None for others.
    pub reason: Option<String>,
    /// Appointments still booked (or arrived) inside it: somebody has to move or cancel them.
    pub booked_inside: u32,
}

pub struct Booking<'a> {
    pub patient_id: &'a str,
    pub practitioner: &'a str,
    pub appointment_type: &'a str,
    /// Local clinic time, YYYY-MM-DDTHH:MM.
    pub start_local: &'a str,
    /// 1 for a single booking; N for N weekly occurrences.
    pub weekly_occurrences: u32,
    pub allow_override: bool,
}

/// What `reschedule` changes: the start (keeping the length), optionally with another
/// practitioner; or the end (keeping the start).
#[derive(Clone, Copy)]
enum Change<'a> {
    Move(DateTime, Option<&'a str>),
    End(DateTime),
}

/// The longest appointment a resize may make (a working day).
const MAX_LENGTH_MINUTES: i64 = 12 * 60;

pub const STATUSES: &[&str] = &["booked", "arrived", "completed", "cancelled", "no_show"];

pub(crate) fn clinic_tz(s: &Session) -> TimeZone {
    TimeZone::get(&s.policy().clinic_timezone).unwrap_or(TimeZone::UTC)
}

fn local(tz: &TimeZone, unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

fn parse_local(field: &str, text: &str) -> Result<DateTime> {
    text.trim().parse::<DateTime>().map_err(|_| {
        Error::InvalidInput(format!(
            "{field}: {text:?} is not a date and time (use YYYY-MM-DDTHH:MM)"
        ))
    })
}

/// Local clinic time to UTC. A time that does not exist (clocks go forward) or happens twice
/// (clocks go back) on a daylight-saving day is refused rather than guessed.
fn to_utc(tz: &TimeZone, dt: DateTime) -> Result<i64> {
    tz.to_ambiguous_zoned(dt)
        .unambiguous()
        .map(|z| z.timestamp().as_second())
        .map_err(|_| {
            Error::InvalidInput(format!(
                "start: {} happens twice or not at all in {} (daylight-saving change); choose another time",
                dt.strftime("%Y-%m-%d %H:%M"),
                tz.iana_name().unwrap_or("the clinic's time zone")
            ))
        })
}

/// Why the slot is outside the practitioner's hours, if it is.
fn outside_hours(
    conn: &rusqlite::Connection,
    practitioner_id: &str,
    tz: &TimeZone,
    start: i64,
    end: i64,
) -> Result<Option<String>> {
    let (Ok(s), Ok(e)) = (
        jiff::Timestamp::from_second(start),
        jiff::Timestamp::from_second(end),
    ) else {
        return Ok(Some("the time is out of range".into()));
    };
    let (s, e) = (s.to_zoned(tz.clone()), e.to_zoned(tz.clone()));
    let weekday = i64::from(s.weekday().to_monday_one_offset());
    let mut st = conn.prepare_cached(
        "SELECT starts, ends FROM working_hours WHERE practitioner_id = ?1 AND weekday = ?2",
    )?;
    let spans = st
        .query_map(params![practitioner_id, weekday], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if spans.is_empty() {
        return Ok(Some(format!(
            "the practitioner does not work on {}",
            s.strftime("%A")
        )));
    }
    // Minutes into the start's day; an end at the next midnight is minute 1440, so that it
    // fits only a span that runs to the end of the day.
    let minutes = |t: jiff::civil::Time| i32::from(t.hour()) * 60 + i32::from(t.minute());
    let start_m = minutes(s.time());
    let end_m = if e.date() == s.date() {
        Some(minutes(e.time()))
    } else if e.time() == jiff::civil::Time::midnight()
        && s.date().tomorrow().ok() == Some(e.date())
    {
        Some(24 * 60)
    } else {
        None
    };
    let inside = end_m.is_some_and(|end_m| {
        spans.iter().any(|(a, b)| {
            let (Ok(a), Ok(b)) = (
                a.parse::<jiff::civil::Time>(),
                b.parse::<jiff::civil::Time>(),
            ) else {
                return false;
            };
            start_m >= minutes(a) && end_m <= minutes(b)
        })
    });
    Ok((!inside).then(|| {
        let hours: Vec<String> = spans.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        format!(
            "{}–{} is outside the practitioner's hours on {} ({})",
            s.strftime("%H:%M"),
            e.strftime("%H:%M"),
            s.strftime("%A"),
            hours.join(", ")
        )
    }))
}

fn on_time_off(
    conn: &rusqlite::Connection,
    practitioner_id: &str,
    start: i64,
    end: i64,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM time_off WHERE practitioner_id = ?1 AND starts_at < ?3 AND ends_at > ?2 LIMIT 1",
        )?
        .query_row(params![practitioner_id, start, end], |_| Ok(()))
        .optional()?
        .is_some())
}

/// How many appointments are still booked (or arrived) with the practitioner in [start, end),
/// and when the first begins.
fn booked_inside(
    conn: &rusqlite::Connection,
    practitioner_id: &str,
    start: i64,
    end: i64,
) -> Result<(u32, Option<i64>)> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*), min(starts_at) FROM appointments WHERE practitioner_id = ?1
               AND status IN ('booked', 'arrived') AND starts_at < ?3 AND ends_at > ?2",
        )?
        .query_row(params![practitioner_id, start, end], |r| {
            Ok((r.get::<_, u32>(0)?, r.get(1)?))
        })?)
}

fn overlapping(
    conn: &rusqlite::Connection,
    practitioner_id: &str,
    start: i64,
    end: i64,
) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT starts_at FROM appointments WHERE practitioner_id = ?1
               AND status IN ('booked', 'arrived', 'completed')
               AND starts_at < ?3 AND ends_at > ?2 ORDER BY starts_at LIMIT 1",
        )?
        .query_row(params![practitioner_id, start, end], |r| r.get(0))
        .optional()?)
}

pub(crate) const SELECT: &str =
    "SELECT a.id, a.patient_id, p.first_name || ' ' || p.last_name, u.username, t.name,
        a.starts_at, a.ends_at, a.status, a.cancel_reason, a.series_id, a.note
     FROM appointments a
     JOIN patients p ON p.id = a.patient_id
     JOIN practitioners pr ON pr.id = a.practitioner_id
     JOIN users u ON u.id = pr.user_id
     JOIN appointment_types t ON t.id = a.type_id";

pub(crate) fn row(
    tz: &TimeZone,
) -> impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<Appointment> + '_ {
    move |r| {
        let (s, e): (i64, i64) = (r.get(5)?, r.get(6)?);
        Ok(Appointment {
            id: r.get(0)?,
            patient_id: r.get(1)?,
            patient_name: r.get(2)?,
            practitioner: r.get(3)?,
            appointment_type: r.get(4)?,
            starts_at: jiff::Timestamp::from_second(s)
                .map(rfc3339)
                .unwrap_or_default(),
            ends_at: jiff::Timestamp::from_second(e)
                .map(rfc3339)
                .unwrap_or_default(),
            starts_local: local(tz, s),
            ends_local: local(tz, e),
            status: r.get(7)?,
            cancel_reason: r.get(8)?,
            note: r.get(10)?,
            series_id: r.get(9)?,
        })
    }
}

/// `days` local days from `date` (YYYY-MM-DD) as UTC seconds, local midnight to local
/// midnight, so a daylight-saving day has its 23 or 25 hours.
fn local_days(tz: &TimeZone, date: &str, days: i64) -> Result<(Date, i64, i64)> {
    let day: Date = date.trim().parse().map_err(|_| {
        Error::InvalidInput(format!("day: {date:?} is not a date (use YYYY-MM-DD)"))
    })?;
    let out_of_range = || Error::InvalidInput("day: out of range".into());
    let start = day.to_zoned(tz.clone()).map_err(|_| out_of_range())?;
    let end = day
        .checked_add(jiff::Span::new().days(days))
        .and_then(|d| d.to_zoned(tz.clone()))
        .map_err(|_| out_of_range())?;
    Ok((
        day,
        start.timestamp().as_second(),
        end.timestamp().as_second(),
    ))
}

fn load(conn: &rusqlite::Connection, tz: &TimeZone, id: &str) -> Result<Appointment> {
    conn.query_row(&format!("{SELECT} WHERE a.id = ?1"), [id], row(tz))
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no appointment with id {id}")))
}

/// The patient an appointment is for, if it exists.
pub(crate) fn patient_of(conn: &rusqlite::Connection, id: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT patient_id FROM appointments WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?)
}

impl Session {
    /// Books one appointment, or a weekly series (all or nothing), refusing overlaps and times
    /// outside working hours with the reason, unless `allow_override` is asked for by a user who
    /// holds the override permission.
    pub fn book_appointment(&mut self, b: &Booking<'_>) -> Result<Vec<Appointment>> {
        if b.allow_override {
            self.authorize(
                Need::Permission(Permission::AppointmentsOverride),
                Event::new("appointment.book").detail("override", true),
            )?;
        }
        if !(1..=52).contains(&b.weekly_occurrences) {
            return Err(Error::InvalidInput(
                "repeat: between 1 and 52 weekly occurrences".into(),
            ));
        }
        let first = parse_local("start", b.start_local)?;
        let tz = clinic_tz(self);
        let now = rfc3339(self.clock().now());
        let event = Event::new("appointment.book")
            .target("patient", b.patient_id)
            .detail("occurrences", b.weekly_occurrences)
            .detail("override", b.allow_override);
        self.gate(Need::Permission(Permission::AppointmentsManage), event, |tx, _| {
            let archived: Option<i64> = tx
                .query_row("SELECT archived FROM patients WHERE id = ?1", [b.patient_id], |r| r.get(0))
                .optional()?;
            match archived {
                None => return Err(Error::NotFound(format!("no patient with id {}", b.patient_id))),
                Some(1) => return Err(Error::Conflict("the patient is archived; restore them before booking".into())),
                Some(_) => {}
            }
            let pr = practitioner_by_username(tx, b.practitioner)?;
            let ty = type_by_name(tx, b.appointment_type)?;
            let series = (b.weekly_occurrences > 1).then(|| uuid::Uuid::new_v4().to_string());
            let mut ids = Vec::new();
            for k in 0..b.weekly_occurrences {
                // Same local time every week, whatever the UTC offset that week.
                let date = first.date().checked_add(jiff::Span::new().weeks(i64::from(k)))
                    .map_err(|_| Error::InvalidInput("start: out of range".into()))?;
                let start = to_utc(&tz, first.with().date(date).build().map_err(|_| Error::InvalidInput("start: out of range".into()))?)?;
                let end = start + ty.minutes * 60;
                if !b.allow_override {
                    let when = local(&tz, start);
                    if let Some(why) = outside_hours(tx, &pr.id, &tz, start, end)? {
                        return Err(Error::Conflict(format!("cannot book {when}: {why}")));
                    }
                    if on_time_off(tx, &pr.id, start, end)? {
                        return Err(Error::Conflict(format!(
                            "cannot book {when}: the practitioner is away (time off)"
                        )));
                    }
                    if let Some(other) = overlapping(tx, &pr.id, start, end)? {
                        return Err(Error::Conflict(format!(
                            "cannot book {when}: it overlaps the practitioner's appointment at {}",
                            local(&tz, other)
                        )));
                    }
                }
                let id = uuid::Uuid::new_v4().to_string();
                tx.execute(
                    "INSERT INTO appointments (id, patient_id, practitioner_id, type_id, starts_at, ends_at,
                         status, series_id, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'booked', ?7, ?8, ?8)",
                    params![id, b.patient_id, pr.id, ty.id, start, end, series, now],
                )?;
                ids.push(id);
            }
            ids.iter().map(|id| load(tx, &tz, id)).collect()
        })
    }

    /// Moves a booked appointment to another start (local clinic time) and, optionally, another
    /// practitioner, keeping its length. The same rules as a booking apply — working hours,
    /// time off, no overlap with another appointment — unless `allow_override` is asked for by
    /// a user who holds the override permission. Only a booked appointment moves.
    pub fn move_appointment(
        &mut self,
        id: &str,
        start_local: &str,
        practitioner: Option<&str>,
        allow_override: bool,
    ) -> Result<Appointment> {
        let start_at = parse_local("start", start_local)?;
        self.reschedule(id, Change::Move(start_at, practitioner), allow_override)
    }

    /// Changes a booked appointment's length by moving its end (local clinic time); the start
    /// and the practitioner stay. The booking rules apply to the new span — working hours,
    /// time off, no overlap — unless `allow_override` is asked for by a user who holds the
    /// override permission. Only a booked appointment changes; the end must come after the start.
    pub fn resize_appointment(
        &mut self,
        id: &str,
        end_local: &str,
        allow_override: bool,
    ) -> Result<Appointment> {
        let end_at = parse_local("end", end_local)?;
        self.reschedule(id, Change::End(end_at), allow_override)
    }

    /// A move or a change of length, under the booking rules, as one gated operation.
    fn reschedule(
        &mut self,
        id: &str,
        change: Change<'_>,
        allow_override: bool,
    ) -> Result<Appointment> {
        let action = match change {
            Change::Move(..) => "appointment.move",
            Change::End(_) => "appointment.resize",
        };
        if allow_override {
            self.authorize(
                Need::Permission(Permission::AppointmentsOverride),
                Event::new(action)
                    .target("appointment", id)
                    .detail("override", true),
            )?;
        }
        let tz = clinic_tz(self);
        let now = rfc3339(self.clock().now());
        let event = Event::new(action)
            .target("appointment", id)
            .detail("override", allow_override);
        self.gate(Need::Permission(Permission::AppointmentsManage), event, |tx, ev| {
            let current = load(tx, &tz, id)?;
            ev.about_patient(&current.patient_id);
            let verb = match change {
                Change::Move(..) => "moved",
                Change::End(_) => "shortened or lengthened",
            };
            if current.status != "booked" {
                return Err(Error::Conflict(format!(
                    "an appointment that is {} cannot be {verb}",
                    current.status.replace('_', "-")
                )));
            }
            let (old_start, old_end): (i64, i64) = tx.query_row(
                "SELECT starts_at, ends_at FROM appointments WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let (pr, start, end, what) = match change {
                Change::Move(start_at, practitioner) => {
                    let pr = practitioner_by_username(tx, practitioner.unwrap_or(&current.practitioner))?;
                    let start = to_utc(&tz, start_at)?;
                    (pr, start, start + (old_end - old_start), format!("move to {}", local(&tz, start)))
                }
                Change::End(end_at) => {
                    let pr = practitioner_by_username(tx, &current.practitioner)?;
                    let end = to_utc(&tz, end_at)?;
                    if end <= old_start {
                        return Err(Error::InvalidInput(format!(
                            "end: {} is not after the start ({})",
                            end_at.strftime("%Y-%m-%dT%H:%M"),
                            current.starts_local
                        )));
                    }
                    if end - old_start > MAX_LENGTH_MINUTES * 60 {
                        return Err(Error::InvalidInput(format!(
                            "end: an appointment lasts at most {} hours",
                            MAX_LENGTH_MINUTES / 60
                        )));
                    }
                    (pr, old_start, end, format!("end at {}", local(&tz, end)))
                }
            };
            if !allow_override {
                if let Some(why) = outside_hours(tx, &pr.id, &tz, start, end)? {
                    return Err(Error::Conflict(format!("cannot {what}: {why}")));
                }
                if on_time_off(tx, &pr.id, start, end)? {
                    return Err(Error::Conflict(format!(
                        "cannot {what}: the practitioner is away (time off)"
                    )));
                }
                let other: Option<i64> = tx
                    .prepare_cached(
                        "SELECT starts_at FROM appointments WHERE practitioner_id = ?1 AND id <> ?4
                           AND status IN ('booked', 'arrived', 'completed')
                           AND starts_at < ?3 AND ends_at > ?2 ORDER BY starts_at LIMIT 1",
                    )?
                    .query_row(params![pr.id, start, end, id], |r| r.get(0))
                    .optional()?;
                if let Some(other) = other {
                    return Err(Error::Conflict(format!(
                        "cannot {what}: it overlaps the practitioner's appointment at {}",
                        local(&tz, other)
                    )));
                }
            }
            tx.execute(
                "UPDATE appointments SET starts_at = ?1, ends_at = ?2, practitioner_id = ?3, updated_at = ?4 WHERE id = ?5",
                params![start, end, pr.id, now, id],
            )?;
            if matches!(change, Change::End(_)) {
                *ev = ev.clone().detail("minutes", (end - start) / 60);
            }
            load(tx, &tz, id)
        })
    }

    /// Records time away for a practitioner (local clinic times); bookings then avoid it.
    pub fn add_time_off(
        &mut self,
        practitioner: &str,
        from_local: &str,
        to_local: &str,
        reason: Option<&str>,
    ) -> Result<TimeOff> {
        self.record_time_off(practitioner, from_local, to_local, reason, false)
    }

    /// As `add_time_off`, but refuses (conflict, naming how many and the first) while
    /// appointments are still booked inside the span, so that nobody is left booked with a
    /// practitioner who is away without someone deciding so.
    pub fn add_time_off_unless_booked(
        &mut self,
        practitioner: &str,
        from_local: &str,
        to_local: &str,
        reason: Option<&str>,
    ) -> Result<TimeOff> {
        self.record_time_off(practitioner, from_local, to_local, reason, true)
    }

    fn record_time_off(
        &mut self,
        practitioner: &str,
        from_local: &str,
        to_local: &str,
        reason: Option<&str>,
        refuse_if_booked: bool,
    ) -> Result<TimeOff> {
        let tz = clinic_tz(self);
        let from = to_utc(&tz, parse_local("from", from_local)?)?;
        let to = to_utc(&tz, parse_local("to", to_local)?)?;
        if to <= from {
            return Err(Error::InvalidInput("to: must be after from".into()));
        }
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        if reason.is_some_and(|r| r.chars().count() > 200) {
            return Err(Error::InvalidInput("reason: at most 200 characters".into()));
        }
        let event = Event::new("practitioner.time_off");
        self.gate(Need::Permission(Permission::UsersManage), event, |tx, ev| {
            let pr = practitioner_by_username(tx, practitioner)?;
            *ev = ev.clone().target("practitioner", &pr.id);
            let (booked, first) = booked_inside(tx, &pr.id, from, to)?;
            if refuse_if_booked {
                if let Some(first) = first {
                    return Err(Error::Conflict(format!(
                        "{booked} appointment{} still booked with {} in that time (the first at {}): move or cancel {}, or record the time off anyway",
                        if booked == 1 { " is" } else { "s are" },
                        pr.username,
                        local(&tz, first).replace('T', " "),
                        if booked == 1 { "it" } else { "them" },
                    )));
                }
            }
            *ev = ev.clone().detail("booked_inside", booked);
            let id = uuid::Uuid::new_v4().to_string();
            tx.execute(
                "INSERT INTO time_off (id, practitioner_id, starts_at, ends_at, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, pr.id, from, to, reason],
            )?;
            Ok(TimeOff {
                id,
                practitioner: pr.username,
                starts_local: local(&tz, from),
                ends_local: local(&tz, to),
                reason: reason.map(str::to_owned),
                booked_inside: booked,
            })
        })
    }

    /// Removes time off recorded by mistake (the same permission as recording it). The entry
    /// names the practitioner and the removed span, never the reason.
    pub fn remove_time_off(&mut self, id: &str) -> Result<()> {
        let tz = clinic_tz(self);
        let event = Event::new("practitioner.time_off.remove").target("time_off", id);
        self.gate(
            Need::Permission(Permission::UsersManage),
            event,
            |tx, ev| {
                let found: Option<(String, i64, i64)> = tx
                    .query_row(
                        "SELECT practitioner_id, starts_at, ends_at FROM time_off WHERE id = ?1",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                let Some((practitioner_id, from, to)) = found else {
                    return Err(Error::NotFound(
                        "no such time off (it may have been removed already)".into(),
                    ));
                };
                tx.execute("DELETE FROM time_off WHERE id = ?1", [id])?;
                *ev = ev
                    .clone()
                    .detail("practitioner", practitioner_id)
                    .detail("from", local(&tz, from))
                    .detail("to", local(&tz, to));
                Ok(())
            },
        )
    }

    /// Time off that overlaps `days` local days from `date`, for one practitioner or all, in
    /// time order: the calendar shades it. The reason is given only to users who manage
    /// practitioners (who record it); others see that the practitioner is away.
    pub fn list_time_off(
        &mut self,
        date: &str,
        days: i64,
        practitioner: Option<&str>,
    ) -> Result<Vec<TimeOff>> {
        if !(1..=62).contains(&days) {
            return Err(Error::InvalidInput("days: between 1 and 62".into()));
        }
        let tz = clinic_tz(self);
        let (day, from, to) = local_days(&tz, date, days)?;
        let me = self.user().id.to_string();
        let event = Event::new("practitioner.time_off.list")
            .detail("day", day.to_string())
            .detail("days", days);
        self.gate(Need::Permission(Permission::AppointmentsRead), event, |tx, ev| {
            // Reasons (possibly health-related) are for those who manage staff.
            let with_reason = crate::permissions::user_may(tx, &me, Permission::UsersManage)?;
            let pr = practitioner.map(|p| practitioner_by_username(tx, p)).transpose()?;
            let mut st = tx.prepare_cached(
                "SELECT t.id, u.username, t.starts_at, t.ends_at, t.reason, t.practitioner_id
                 FROM time_off t
                 JOIN practitioners pr ON pr.id = t.practitioner_id
                 JOIN users u ON u.id = pr.user_id
                 WHERE t.starts_at < ?2 AND t.ends_at > ?1 AND (?3 IS NULL OR t.practitioner_id = ?3)
                 ORDER BY t.starts_at, u.username",
            )?;
            let rows = st
                .query_map(params![from, to, pr.map(|p| p.id)], |r| {
                    let (s, e): (i64, i64) = (r.get(2)?, r.get(3)?);
                    let practitioner_id: String = r.get(5)?;
                    Ok((
                        TimeOff {
                            id: r.get(0)?,
                            practitioner: r.get(1)?,
                            starts_local: local(&tz, s),
                            ends_local: local(&tz, e),
                            reason: if with_reason { r.get(4)? } else { None },
                            booked_inside: 0,
                        },
                        practitioner_id,
                        s,
                        e,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let rows = rows
                .into_iter()
                .map(|(t, practitioner_id, s, e)| {
                    let (booked, _) = booked_inside(tx, &practitioner_id, s, e)?;
                    Ok(TimeOff { booked_inside: booked, ..t })
                })
                .collect::<Result<Vec<_>>>()?;
            *ev = ev.clone().detail("count", rows.len());
            Ok(rows)
        })
    }

    /// The next `count` free starts (local clinic time, every 15 minutes) at which `type`
    /// fits the practitioner's hours, bookings and time off, from `from_local` on (60 days).
    pub fn next_free_slots(
        &mut self,
        practitioner: &str,
        appointment_type: &str,
        from_local: &str,
        count: usize,
    ) -> Result<Vec<String>> {
        let tz = clinic_tz(self);
        let from_dt = parse_local("from", from_local)?;
        let from = to_utc(&tz, from_dt).or_else(|_| {
            tz.to_ambiguous_zoned(from_dt)
                .compatible()
                .map(|z| z.timestamp().as_second())
                .map_err(|_| Error::InvalidInput("from: out of range".into()))
        })?;
        let event = Event::new("appointment.free_slots");
        self.gate(Need::Permission(Permission::AppointmentsRead), event, |tx, _| {
            let pr = practitioner_by_username(tx, practitioner)?;
            let ty = type_by_name(tx, appointment_type)?;
            let mut out = Vec::new();
            let mut day = from_dt.date();
            for _ in 0..60 {
                let weekday = i64::from(day.weekday().to_monday_one_offset());
                let spans: Vec<(String, String)> = tx
                    .prepare_cached("SELECT starts, ends FROM working_hours WHERE practitioner_id = ?1 AND weekday = ?2 ORDER BY starts")?
                    .query_map(params![pr.id, weekday], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                for (a, b) in spans {
                    let (Ok(a), Ok(b)) = (a.parse::<jiff::civil::Time>(), b.parse::<jiff::civil::Time>()) else { continue };
                    let mut t = a;
                    loop {
                        let Ok(end_t) = t.checked_add(jiff::SignedDuration::from_mins(ty.minutes)) else { break };
                        if end_t > b || end_t < t {
                            break;
                        }
                        if let Ok(z) = tz.to_ambiguous_zoned(day.to_datetime(t)).unambiguous() {
                            let start = z.timestamp().as_second();
                            let end = start + ty.minutes * 60;
                            if start >= from && overlapping(tx, &pr.id, start, end)?.is_none() && !on_time_off(tx, &pr.id, start, end)? {
                                out.push(local(&tz, start));
                                if out.len() >= count.max(1) {
                                    return Ok(out);
                                }
                            }
                        }
                        match t.checked_add(jiff::SignedDuration::from_mins(15)) {
                            Ok(n) if n > t => t = n,
                            _ => break,
                        }
                    }
                }
                day = day.tomorrow().map_err(|_| Error::InvalidInput("from: out of range".into()))?;
            }
            Ok(out)
        })
    }

    /// Sets the appointment's short note (for reception; clinical content belongs in treatment
    /// notes). The audit entry records that it changed, not what it says.
    pub fn set_appointment_note(&mut self, id: &str, note: &str) -> Result<Appointment> {
        let note = note.trim().to_owned();
        if note.chars().count() > 1000 {
            return Err(Error::InvalidInput("note: at most 1000 characters".into()));
        }
        let tz = clinic_tz(self);
        let now = rfc3339(self.clock().now());
        let event = Event::new("appointment.update")
            .target("appointment", id)
            .detail("fields", vec!["note"]);
        self.gate(
            Need::Permission(Permission::AppointmentsManage),
            event,
            |tx, ev| {
                ev.about_patient(&load(tx, &tz, id)?.patient_id);
                tx.execute(
                    "UPDATE appointments SET note = ?1, updated_at = ?2 WHERE id = ?3",
                    params![(!note.is_empty()).then_some(note.as_str()), now, id],
                )?;
                load(tx, &tz, id)
            },
        )
    }

    pub fn show_appointment(&mut self, id: &str) -> Result<Appointment> {
        let tz = clinic_tz(self);
        let event = Event::new("appointment.view").target("appointment", id);
        self.gate(
            Need::Permission(Permission::AppointmentsRead),
            event,
            |tx, ev| {
                let a = load(tx, &tz, id)?;
                ev.about_patient(&a.patient_id);
                Ok(a)
            },
        )
    }

    /// Moves an appointment along: booked → arrived → completed; booked or arrived →
    /// cancelled (with a reason); booked → no_show. Finished appointments do not change.
    pub fn set_appointment_status(
        &mut self,
        id: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Result<Appointment> {
        let status = status.trim().to_ascii_lowercase().replace('-', "_");
        if !STATUSES.contains(&status.as_str()) {
            return Err(Error::InvalidInput(format!(
                "status: use one of {}",
                STATUSES.join(", ")
            )));
        }
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        if status == "cancelled" && reason.is_none() {
            return Err(Error::InvalidInput(
                "reason: a cancellation needs a reason".into(),
            ));
        }
        let tz = clinic_tz(self);
        let now = rfc3339(self.clock().now());
        let event = Event::new("appointment.status")
            .target("appointment", id)
            .detail("status", status.as_str());
        self.gate(Need::Permission(Permission::AppointmentsManage), event, |tx, ev| {
            let current = load(tx, &tz, id)?;
            ev.about_patient(&current.patient_id);
            let allowed = match current.status.as_str() {
                "booked" => ["arrived", "completed", "cancelled", "no_show"].contains(&status.as_str()),
                "arrived" => ["completed", "cancelled"].contains(&status.as_str()),
                _ => false,
            };
            if !allowed {
                return Err(Error::Conflict(format!(
                    "an appointment that is {} cannot become {status}",
                    current.status.replace('_', "-")
                )));
            }
            tx.execute(
                "UPDATE appointments SET status = ?1, cancel_reason = ?2, updated_at = ?3 WHERE id = ?4",
                params![status, reason, now, id],
            )?;
            load(tx, &tz, id)
        })
    }

    /// A local clinic day's appointments, for one practitioner or all, in time order.
    pub fn day_appointments(
        &mut self,
        date: &str,
        practitioner: Option<&str>,
    ) -> Result<Vec<Appointment>> {
        self.appointments_for_days(date, 1, practitioner)
    }

    /// The week starting on `date` (seven local days), for one practitioner or all.
    pub fn week_appointments(
        &mut self,
        date: &str,
        practitioner: Option<&str>,
    ) -> Result<Vec<Appointment>> {
        self.appointments_for_days(date, 7, practitioner)
    }

    fn appointments_for_days(
        &mut self,
        date: &str,
        days: i64,
        practitioner: Option<&str>,
    ) -> Result<Vec<Appointment>> {
        let tz = clinic_tz(self);
        let (day, from, to) = local_days(&tz, date, days)?;
        let event = Event::new("appointment.list")
            .detail("day", day.to_string())
            .detail("days", days);
        self.gate(Need::Permission(Permission::AppointmentsRead), event, |tx, ev| {
            let pr = practitioner.map(|p| practitioner_by_username(tx, p)).transpose()?;
            let mut st = tx.prepare_cached(&format!(
                "{SELECT} WHERE a.starts_at >= ?1 AND a.starts_at < ?2 AND (?3 IS NULL OR a.practitioner_id = ?3)
                 ORDER BY a.starts_at, u.username"
            ))?;
            let rows = st
                .query_map(params![from, to, pr.map(|p| p.id)], row(&tz))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            *ev = ev.clone().detail("count", rows.len());
            Ok(rows)
        })
    }
}
