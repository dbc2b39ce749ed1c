//! Practitioners (linked to users), their weekly working hours (several spans a day model
//! breaks), and appointment types. Times of day are local clinic time.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};
use crate::users;

#[derive(Clone, Debug, Serialize)]
pub struct Practitioner {
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub display_name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AppointmentType {
    pub id: String,
    pub name: String,
    pub colour: Option<String>,
    pub minutes: i64,
    pub price_minor: i64,
    pub tax_rate_bp: i64,
}

/// One span of a practitioner's weekly hours (local clinic time).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct WorkingSpan {
    /// 1 = Monday … 7 = Sunday.
    pub weekday: i64,
    /// HH:MM.
    pub starts: String,
    pub ends: String,
}

/// A calendar column: the practitioner and their weekly hours.
#[derive(Clone, Debug, Serialize)]
pub struct PractitionerHours {
    pub username: String,
    pub display_name: String,
    pub hours: Vec<WorkingSpan>,
}

pub(crate) fn parse_weekday(text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    days.iter()
        .position(|d| t.starts_with(d) && t.len() >= 3)
        .map(|i| i as i64 + 1)
        .ok_or_else(|| Error::InvalidInput(format!("day: {text:?} is not a weekday (Mon … Sun)")))
}

/// "08:00-12:00,13:00-17:00" → spans; empty or "off" → none.
pub(crate) fn parse_spans(text: &str) -> Result<Vec<(jiff::civil::Time, jiff::civil::Time)>> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("off") {
        return Ok(Vec::new());
    }
    let bad = |part: &str| {
        Error::InvalidInput(format!(
            "hours: {part:?} is not HH:MM-HH:MM (e.g. 08:00-12:00,13:00-17:00)"
        ))
    };
    let mut spans = Vec::new();
    for part in t.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').ok_or_else(|| bad(part))?;
        let a: jiff::civil::Time = a.trim().parse().map_err(|_| bad(part))?;
        let b: jiff::civil::Time = b.trim().parse().map_err(|_| bad(part))?;
        if b <= a {
            return Err(bad(part));
        }
        spans.push((a, b));
    }
    spans.sort();
    if spans.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(Error::InvalidInput("hours: the spans overlap".into()));
    }
    Ok(spans)
}

pub(crate) fn practitioner_by_username(
    conn: &rusqlite::Connection,
    username: &str,
) -> Result<Practitioner> {
    let name = users::normalise_username(username)?;
    conn.query_row(
        "SELECT p.id, p.user_id, u.username, p.display_name FROM practitioners p
         JOIN users u ON u.id = p.user_id WHERE u.username = ?1",
        [&name],
        |r| {
            Ok(Practitioner {
                id: r.get(0)?,
                user_id: r.get(1)?,
                username: r.get(2)?,
                display_name: r.get(3)?,
            })
        },
    )
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("no practitioner with username {name:?}")))
}

pub(crate) fn type_by_name(conn: &rusqlite::Connection, name: &str) -> Result<AppointmentType> {
    conn.query_row(
        "SELECT id, name, colour, minutes, price_minor, tax_rate_bp FROM appointment_types WHERE name = ?1 COLLATE NOCASE",
        [name.trim()],
        |r| Ok(AppointmentType { id: r.get(0)?, name: r.get(1)?, colour: r.get(2)?, minutes: r.get(3)?, price_minor: r.get(4)?, tax_rate_bp: r.get(5)? }),
    )
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("no appointment type named {:?}", name.trim())))
}

/// A calendar colour: "#rrggbb".
fn validate_colour(text: &str) -> Result<String> {
    let t = text.trim().to_ascii_lowercase();
    let ok = t.len() == 7 && t.starts_with('#') && t[1..].chars().all(|c| c.is_ascii_hexdigit());
    if !ok {
        return Err(Error::InvalidInput(format!(
            "colour: {text:?} is not a colour like #3b82f6"
        )));
    }
    Ok(t)
}

impl Session {
    /// Every practitioner with their weekly hours, for the calendar's columns and shading.
    pub fn list_practitioners(&mut self) -> Result<Vec<PractitionerHours>> {
        let event = Event::new("practitioner.list");
        self.gate(Need::Permission(Permission::AppointmentsRead), event, |tx, _| {
            let mut st = tx.prepare_cached(
                "SELECT p.id, u.username, p.display_name FROM practitioners p
                 JOIN users u ON u.id = p.user_id ORDER BY p.display_name, u.username",
            )?;
            let heads = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut hours = tx.prepare_cached(
                "SELECT weekday, starts, ends FROM working_hours WHERE practitioner_id = ?1 ORDER BY weekday, starts",
            )?;
            heads
                .into_iter()
                .map(|(id, username, display_name)| {
                    let spans = hours
                        .query_map([&id], |r| Ok(WorkingSpan { weekday: r.get(0)?, starts: r.get(1)?, ends: r.get(2)? }))?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok(PractitionerHours { username, display_name, hours: spans })
                })
                .collect()
        })
    }

    /// The appointment types a booking can use, by name.
    pub fn list_appointment_types(&mut self) -> Result<Vec<AppointmentType>> {
        let event = Event::new("appointment_type.list");
        self.gate(Need::Permission(Permission::AppointmentsRead), event, |tx, _| {
            let mut st = tx.prepare_cached(
                "SELECT id, name, colour, minutes, price_minor, tax_rate_bp FROM appointment_types ORDER BY name COLLATE NOCASE",
            )?;
            let rows = st
                .query_map([], |r| Ok(AppointmentType { id: r.get(0)?, name: r.get(1)?, colour: r.get(2)?, minutes: r.get(3)?, price_minor: r.get(4)?, tax_rate_bp: r.get(5)? }))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Sets the calendar colour of an appointment type.
    pub fn set_appointment_type_colour(&mut self, name: &str, colour: &str) -> Result<()> {
        let colour = validate_colour(colour)?;
        let event = Event::new("appointment_type.colour");
        self.gate(
            Need::Permission(Permission::SettingsManage),
            event,
            |tx, ev| {
                let t = type_by_name(tx, name)?;
                *ev = ev.clone().target("appointment_type", &t.id);
                tx.execute(
                    "UPDATE appointment_types SET colour = ?1 WHERE id = ?2",
                    params![colour, t.id],
                )?;
                Ok(())
            },
        )
    }

    /// Makes a user a practitioner (bookable in the calendar).
    pub fn add_practitioner(&mut self, username: &str) -> Result<Practitioner> {
        let now = rfc3339(self.clock().now());
        let event = Event::new("practitioner.add");
        self.gate(Need::Permission(Permission::UsersManage), event, |tx, ev| {
            let name = users::normalise_username(username)?;
            let user = users::by_username(tx, &name)?.ok_or_else(|| Error::NotFound(format!("no user named {name:?}")))?;
            let id = uuid::Uuid::new_v4().to_string();
            *ev = ev.clone().target("practitioner", &id);
            let inserted = tx.execute(
                "INSERT INTO practitioners (id, user_id, display_name, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id) DO NOTHING",
                params![id, user.id.to_string(), user.display_name, now],
            )?;
            if inserted == 0 {
                return Err(Error::AlreadyExists(format!("{name} is already a practitioner")));
            }
            tx.execute("UPDATE users SET practitioner_id = ?1 WHERE id = ?2", params![id, user.id.to_string()])?;
            practitioner_by_username(tx, &name)
        })
    }

    /// Sets a practitioner's hours for one weekday ("off" clears them).
    pub fn set_working_hours(&mut self, username: &str, day: &str, hours: &str) -> Result<()> {
        let weekday = parse_weekday(day)?;
        let spans = parse_spans(hours)?;
        let event = Event::new("practitioner.hours")
            .detail("weekday", weekday)
            .detail("spans", spans.len());
        self.gate(Need::Permission(Permission::UsersManage), event, |tx, ev| {
            let p = practitioner_by_username(tx, username)?;
            *ev = ev.clone().target("practitioner", &p.id);
            tx.execute("DELETE FROM working_hours WHERE practitioner_id = ?1 AND weekday = ?2", params![p.id, weekday])?;
            for (a, b) in &spans {
                tx.execute(
                    "INSERT INTO working_hours (practitioner_id, weekday, starts, ends) VALUES (?1, ?2, ?3, ?4)",
                    params![p.id, weekday, a.strftime("%H:%M").to_string(), b.strftime("%H:%M").to_string()],
                )?;
            }
            Ok(())
        })
    }

    pub fn add_appointment_type(
        &mut self,
        name: &str,
        minutes: i64,
        price: &str,
        tax_rate_percent: Option<&str>,
    ) -> Result<AppointmentType> {
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 80 {
            return Err(Error::InvalidInput("name: 1–80 characters".into()));
        }
        if !(5..=480).contains(&minutes) {
            return Err(Error::InvalidInput("minutes: between 5 and 480".into()));
        }
        let price_minor = crate::money::parse_minor("price", price)?;
        let tax_rate_bp = match tax_rate_percent {
            Some(t) => {
                let bp = crate::money::parse_minor("tax", t)?;
                if bp > 10_000 {
                    return Err(Error::InvalidInput("tax: at most 100%".into()));
                }
                bp
            }
            None => 0,
        };
        let now = rfc3339(self.clock().now());
        let id = uuid::Uuid::new_v4().to_string();
        let event = Event::new("appointment_type.add").target("appointment_type", &id);
        self.gate(Need::Permission(Permission::SettingsManage), event, |tx, _| {
            let inserted = tx.execute(
                "INSERT INTO appointment_types (id, name, minutes, price_minor, tax_rate_bp, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
                params![id, name, minutes, price_minor, tax_rate_bp, now],
            )?;
            if inserted == 0 {
                return Err(Error::AlreadyExists(format!("an appointment type named {name:?} exists")));
            }
            type_by_name(tx, &name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_hex() {
        assert_eq!(validate_colour(" #3B82F6 ").unwrap(), "#3b82f6");
        assert!(validate_colour("blue").is_err());
        assert!(validate_colour("#12345").is_err());
    }

    #[test]
    fn days_and_spans_parse_with_clear_errors() {
        assert_eq!(parse_weekday("Monday").unwrap(), 1);
        assert_eq!(parse_weekday("sun").unwrap(), 7);
        assert!(parse_weekday("funday").is_err());
        assert_eq!(parse_spans("08:00-12:00, 13:00-17:00").unwrap().len(), 2);
        assert!(parse_spans("off").unwrap().is_empty());
        assert!(parse_spans("12:00-08:00").is_err());
        assert!(parse_spans("08:00-13:00,12:00-17:00")
            .unwrap_err()
            .to_string()
            .contains("overlap"));
        assert!(parse_spans("8am-5pm").is_err());
    }
}
