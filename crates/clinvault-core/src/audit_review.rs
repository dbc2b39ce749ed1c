//! Reading the audit trail: filter by user, action, target, outcome and date range, newest
//! first, paginated. Reading it is itself recorded.

use rusqlite::types::Value;
use serde::Serialize;

use crate::audit::Event;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};

#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub device: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub details: serde_json::Value,
    pub signer_id: String,
}

#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Username of the actor.
    pub user: Option<String>,
    /// An exact action, or a prefix ending in '.' (e.g. "user.").
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: Option<String>,
    /// Inclusive lower bound (UTC).
    pub since: Option<jiff::Timestamp>,
    /// Exclusive upper bound (UTC).
    pub until: Option<jiff::Timestamp>,
    /// Only entries with seq below this (the next page after a previous one).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// Parses a user-supplied date or date-time (YYYY-MM-DD is midnight UTC) with a clear message.
pub fn parse_when(field: &str, text: &str) -> Result<jiff::Timestamp> {
    let t = text.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        if let Ok(z) = d.to_zoned(jiff::tz::TimeZone::UTC) {
            return Ok(z.timestamp());
        }
    }
    Err(Error::InvalidInput(format!(
        "{field}: {t:?} is not a date (use YYYY-MM-DD or an RFC 3339 time such as 2026-03-01T09:00:00Z)"
    )))
}

const OUTCOMES: &[&str] = &["ok", "denied", "failed"];

pub(crate) fn query(conn: &rusqlite::Connection, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
    let mut sql = String::from(
        "SELECT seq, at, actor_id, actor_name, device, action, target_type, target_id, outcome,
                details, signer_id FROM audit_log WHERE 1 = 1",
    );
    let mut args: Vec<Value> = Vec::new();
    if let Some(u) = &f.user {
        sql.push_str(" AND actor_name = ?");
        args.push(Value::Text(u.trim().to_ascii_lowercase()));
    }
    if let Some(a) = &f.action {
        if let Some(prefix) = a.strip_suffix('.') {
            sql.push_str(" AND (action = ? OR action LIKE ? ESCAPE '\\')");
            args.push(Value::Text(prefix.to_owned()));
            let escaped = prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            args.push(Value::Text(format!("{escaped}.%")));
        } else {
            sql.push_str(" AND action = ?");
            args.push(Value::Text(a.clone()));
        }
    }
    if let Some(t) = &f.target_type {
        sql.push_str(" AND target_type = ?");
        args.push(Value::Text(t.clone()));
    }
    if let Some(t) = &f.target_id {
        sql.push_str(" AND target_id = ?");
        args.push(Value::Text(t.clone()));
    }
    if let Some(o) = &f.outcome {
        if !OUTCOMES.contains(&o.as_str()) {
            return Err(Error::InvalidInput(format!(
                "outcome: use one of {}",
                OUTCOMES.join(", ")
            )));
        }
        sql.push_str(" AND outcome = ?");
        args.push(Value::Text(o.clone()));
    }
    // Timestamps are stored as RFC 3339 UTC text; compare on the instant, not the text.
    if let Some(s) = f.since {
        sql.push_str(" AND unixepoch(at, 'subsec') >= ?");
        args.push(Value::Real(s.as_millisecond() as f64 / 1000.0));
    }
    if let Some(u) = f.until {
        sql.push_str(" AND unixepoch(at, 'subsec') < ?");
        args.push(Value::Real(u.as_millisecond() as f64 / 1000.0));
    }
    if let Some(b) = f.before_seq {
        sql.push_str(" AND seq < ?");
        args.push(Value::Integer(b));
    }
    sql.push_str(" ORDER BY seq DESC LIMIT ?");
    args.push(Value::Integer(i64::from(if f.limit == 0 {
        100
    } else {
        f.limit
    })));
    let mut st = conn.prepare(&sql)?;
    let rows = st
        .query_map(rusqlite::params_from_iter(args), |r| {
            let details: String = r.get(9)?;
            Ok(AuditEntry {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor_id: r.get(2)?,
                actor_name: r.get(3)?,
                device: r.get(4)?,
                action: r.get(5)?,
                target_type: r.get(6)?,
                target_id: r.get(7)?,
                outcome: r.get(8)?,
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
                signer_id: r.get(10)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

impl Session {
    pub fn audit_list(&mut self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let event = Event::new("audit.list");
        self.gate(Need::Permission(Permission::AuditRead), event, |tx, ev| {
            let rows = query(tx, filter)?;
            *ev = ev.clone().detail("count", rows.len());
            Ok(rows)
        })
    }
}
