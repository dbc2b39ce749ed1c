//! Alert rules over the audit trail, raised in the same transaction as the entry that trips
//! them and listed for administrators until acknowledged (acknowledging is itself recorded):
//! many distinct patient records viewed or exported by one user in a short window, access
//! outside clinic hours, repeated failed sign-ins, any role or permission change, and any audit
//! verification failure. Alerts carry ids and counts, never patient names.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::audit::{Event, Outcome};
use crate::clinic_hours::ClinicHours;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::policy::Policy;
use crate::session::{Need, Session};

pub const BULK_VIEW: &str = "bulk_record_access";
pub const OUTSIDE_HOURS: &str = "access_outside_hours";
pub const FAILED_SIGNINS: &str = "repeated_failed_signins";
pub const ROLE_CHANGE: &str = "role_or_permission_change";
pub const VERIFY_FAILED: &str = "audit_verification_failed";
pub const CHECKPOINT: &str = "audit_checkpoint_mismatch";

const ROLE_CHANGING: &[&str] = &[
    "user.add",
    "user.set_role",
    "user.enable",
    "user.disable",
    "role.create",
];

#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    pub id: i64,
    pub rule: String,
    pub raised_at: String,
    pub actor_name: Option<String>,
    pub summary: String,
    pub details: serde_json::Value,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
}

pub(crate) fn raise(
    conn: &Connection,
    rule: &str,
    at: &str,
    actor: Option<&str>,
    summary: &str,
    details: serde_json::Value,
) -> Result<()> {
    let written = conn.execute(
        "INSERT INTO audit_alerts (rule, raised_at, actor_name, summary, details)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![rule, at, actor, summary, details.to_string()],
    )?;
    // An alert swallowed by a planted trigger must fail the operation, not vanish.
    if written != 1 {
        return Err(Error::Integrity(
            "an alert was not kept by the database: the vault's schema may have been altered \
             outside ClinVault"
                .into(),
        ));
    }
    Ok(())
}

/// Raises an alert unless the same rule already fired about the same person (or, with no
/// person, about nobody in particular) in the last hour and is still unacknowledged.
pub(crate) fn raise_once_per_hour(
    conn: &Connection,
    rule: &str,
    at: &str,
    actor: Option<&str>,
    summary: &str,
    details: serde_json::Value,
    now: jiff::Timestamp,
) -> Result<()> {
    if open_alert_since(conn, rule, actor, now.as_second() - 3600, 3600)? {
        return Ok(());
    }
    raise(conn, rule, at, actor, summary, details)
}

/// Whether an unacknowledged alert of `rule` about `actor` was raised since then: once an
/// administrator has acknowledged an alert, the next occurrence must raise a new one.
fn open_alert_since(
    conn: &Connection,
    rule: &str,
    actor: Option<&str>,
    since_unix: i64,
    window_seconds: i64,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM audit_alerts WHERE acknowledged_at IS NULL AND rule = ?1
               AND actor_name IS ?2 AND unixepoch(raised_at) BETWEEN ?3 AND ?3 + ?4 LIMIT 1",
        )?
        // Bounded above too: a row dated in the future (planted, or from a clock set
        // wrong) must not silence the rule.
        .query_row(params![rule, actor, since_unix, window_seconds], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The patients whose records (the patient, or one of their notes, invoices or attachments) one
/// user viewed or exported within the bulk-access window, with the
/// latest time of each, kept by the session between operations. The first count reads the
/// window newest first and stops a minute past it; later counts read only the entries appended
/// since (by any session or program of the same user), so a view costs the entries added since
/// the last one, not the whole window. Entries are appended in time order except failed
/// sign-ins carried in later (skipped) and writers that waited for the write lock, which the
/// minute of slack covers.
#[derive(Default)]
pub(crate) struct RecentViews {
    /// The last entry read; 0 until the window was read once.
    upto_seq: i64,
    window_seconds: i64,
    latest: std::collections::HashMap<String, i64>,
}

impl RecentViews {
    /// Forget everything, e.g. when a transaction that read the trail did not commit.
    pub(crate) fn reset(&mut self) {
        *self = RecentViews::default();
    }

    fn note(&mut self, actor_id: &str, row: &rusqlite::Row<'_>, at: i64) -> rusqlite::Result<()> {
        let actor: Option<String> = row.get(1)?;
        if actor.as_deref() != Some(actor_id) {
            return Ok(());
        }
        let target_type: Option<String> = row.get(3)?;
        let patient = if target_type.as_deref() == Some("patient") {
            row.get::<_, Option<String>>(4)?
        } else {
            crate::audit_lookup::named_patient(&row.get::<_, String>(6)?)
        };
        if let Some(patient) = patient {
            let t = self.latest.entry(patient).or_insert(at);
            *t = (*t).max(at);
        }
        Ok(())
    }

    /// How many different patient records `actor_id` viewed or exported since `since`.
    fn count(
        &mut self,
        conn: &Connection,
        actor_id: &str,
        since: i64,
        window_seconds: i64,
    ) -> Result<i64> {
        const SLACK_SECONDS: i64 = 60;
        let full = self.upto_seq == 0 || self.window_seconds != window_seconds;
        if full {
            self.reset();
            self.window_seconds = window_seconds;
        }
        let mut st = conn.prepare_cached(
            "SELECT at, actor_id, action, target_type, target_id, seq, details FROM audit_log
             WHERE seq > ?1 ORDER BY seq DESC",
        )?;
        let mut rows = st.query([self.upto_seq])?;
        let mut newest = None;
        while let Some(row) = rows.next()? {
            newest.get_or_insert(row.get::<_, i64>(5)?);
            let action: String = row.get(2)?;
            if action.starts_with("signin") {
                continue;
            }
            let at: String = row.get(0)?;
            let Ok(at) = at.parse::<jiff::Timestamp>() else {
                continue;
            };
            let at = at.as_second();
            if full && at < since - SLACK_SECONDS {
                break;
            }
            if at >= since && is_record_access(&action) {
                self.note(actor_id, row, at)?;
            }
        }
        if let Some(seq) = newest {
            self.upto_seq = seq;
        }
        self.latest.retain(|_, at| *at >= since);
        Ok(self.latest.len() as i64)
    }
}

fn is_record_access(action: &str) -> bool {
    action.ends_with(".view")
        || action.ends_with(".export")
        || matches!(action, "patient.history" | "invoice.export_pdf")
}

/// Runs the rules an appended entry can trip; called by the gate inside its transaction.
pub(crate) fn after_event(
    conn: &Connection,
    policy: &Policy,
    recent: &mut RecentViews,
    actor_id: &str,
    actor_name: &str,
    event: &Event,
    now: jiff::Timestamp,
) -> Result<()> {
    let at = rfc3339(now);
    if event.outcome == Outcome::Ok && ROLE_CHANGING.contains(&event.action.as_str()) {
        raise(
            conn,
            ROLE_CHANGE,
            &at,
            Some(actor_name),
            &format!(
                "{actor_name} made a role or permission change ({})",
                event.action
            ),
            serde_json::json!({ "action": event.action, "target": event.target_id }),
        )?;
    }
    // A view of a patient's record, or of one of their notes, invoices or attachments.
    let about_a_patient = event.target_type.as_deref() == Some("patient")
        || event.details.get(crate::audit::PATIENT_DETAIL).is_some();
    if about_a_patient && is_record_access(&event.action) {
        let window = i64::from(policy.alert_bulk_view_minutes) * 60;
        let since = now.as_second() - window;
        let distinct = recent.count(conn, actor_id, since, window)?;
        if distinct >= i64::from(policy.alert_bulk_view_count)
            && !open_alert_since(conn, BULK_VIEW, Some(actor_name), since, window)?
        {
            raise(
                conn,
                BULK_VIEW,
                &at,
                Some(actor_name),
                &format!(
                    "{actor_name} opened {distinct} different patient records within {} minutes",
                    policy.alert_bulk_view_minutes
                ),
                serde_json::json!({ "distinct_records": distinct, "minutes": policy.alert_bulk_view_minutes }),
            )?;
        }
    }
    Ok(())
}

/// The clinic's hours and time zone as last read from the policy, parsed: they are checked on
/// every operation, and their text rarely changes.
struct ParsedHours {
    text: String,
    zone: String,
    hours: Option<ClinicHours>,
    tz: jiff::tz::TimeZone,
}

static PARSED_HOURS: std::sync::Mutex<Option<ParsedHours>> = std::sync::Mutex::new(None);

/// Whether the clinic is open at `now`, and the clinic's local time then; None when its hours
/// do not parse (no rule to check against).
fn opening_at(policy: &Policy, now: jiff::Timestamp) -> Option<(bool, jiff::Zoned)> {
    let mut parsed = PARSED_HOURS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let current = parsed
        .as_ref()
        .is_some_and(|p| p.text == policy.clinic_hours && p.zone == policy.clinic_timezone);
    if !current {
        *parsed = Some(ParsedHours {
            text: policy.clinic_hours.clone(),
            zone: policy.clinic_timezone.clone(),
            hours: ClinicHours::parse(&policy.clinic_hours).ok(),
            tz: jiff::tz::TimeZone::get(&policy.clinic_timezone).unwrap_or(jiff::tz::TimeZone::UTC),
        });
    }
    let p = parsed.as_ref()?;
    let hours = p.hours.as_ref()?;
    let local = now.to_zoned(p.tz.clone());
    Some((hours.is_open(&local.datetime()), local))
}

/// Flags a sign-in outside the clinic's hours (in the clinic's time zone).
pub(crate) fn check_hours(
    conn: &Connection,
    policy: &Policy,
    actor_name: &str,
    what: &str,
    now: jiff::Timestamp,
) -> Result<()> {
    let Some((open, local)) = opening_at(policy, now) else {
        return Ok(());
    };
    // One alert per person per hour is enough to draw attention.
    if !open
        && !open_alert_since(
            conn,
            OUTSIDE_HOURS,
            Some(actor_name),
            now.as_second() - 3600,
            3600,
        )?
    {
        raise(
            conn,
            OUTSIDE_HOURS,
            &rfc3339(now),
            Some(actor_name),
            &format!(
                "{actor_name} {what} outside clinic hours ({})",
                local.strftime("%a %H:%M %Z")
            ),
            serde_json::json!({ "local_time": local.strftime("%Y-%m-%d %H:%M").to_string() }),
        )?;
    }
    Ok(())
}

/// Failed sign-ins for one username count together within this window, whichever batch
/// carried them in.
const FAILED_SIGNIN_WINDOW_SECONDS: i64 = 3600;

/// Raises the repeated-failed-sign-ins alert when a username had the policy's number of failed
/// sign-ins within an hour — the most in any hour ending at one of the failures just carried in
/// (`times`, Unix seconds: failures wait outside the database until the next good sign-in,
/// which may be hours later) — at most once an hour per username; and whenever a batch carried
/// in holds a lock-out (`lock_outs`).
pub(crate) fn check_failed_signins(
    conn: &Connection,
    policy: &Policy,
    username: &str,
    lock_outs: u32,
    times: &[i64],
    now: jiff::Timestamp,
) -> Result<()> {
    let mut st = conn.prepare_cached(
        "SELECT count(*) FROM signin_history
         WHERE username = ?1 AND outcome = 'failed' AND unixepoch(at) >= ?2
           AND unixepoch(at) <= ?3",
    )?;
    let mut failures: u32 = 0;
    for t in times {
        let n: u32 = st.query_row(
            params![username, t - FAILED_SIGNIN_WINDOW_SECONDS, t],
            |r| r.get(0),
        )?;
        failures = failures.max(n);
    }
    let locked_out = lock_outs > 0;
    if locked_out
        || (failures >= policy.alert_failed_signins
            && !open_alert_since(
                conn,
                FAILED_SIGNINS,
                Some(username),
                now.as_second() - FAILED_SIGNIN_WINDOW_SECONDS,
                FAILED_SIGNIN_WINDOW_SECONDS,
            )?)
    {
        let summary = if locked_out {
            format!(
                "username {username} was locked out ({failures} failed sign-ins within an hour)"
            )
        } else {
            format!("{failures} failed sign-ins for username {username} within an hour")
        };
        raise(
            conn,
            FAILED_SIGNINS,
            &rfc3339(now),
            Some(username),
            &summary,
            serde_json::json!({ "failures": failures, "lock_outs": lock_outs }),
        )?;
    }
    Ok(())
}

impl Session {
    pub fn audit_alerts(&mut self, include_acknowledged: bool) -> Result<Vec<Alert>> {
        self.gate(Need::Permission(Permission::AuditRead), Event::new("audit.alerts"), |tx, ev| {
            let mut st = tx.prepare(
                "SELECT id, rule, raised_at, actor_name, summary, details, acknowledged_by, acknowledged_at
                 FROM audit_alerts WHERE ?1 OR acknowledged_at IS NULL ORDER BY id DESC",
            )?;
            let rows = st
                .query_map([include_acknowledged], |r| {
                    let details: String = r.get(5)?;
                    Ok(Alert {
                        id: r.get(0)?,
                        rule: r.get(1)?,
                        raised_at: r.get(2)?,
                        actor_name: r.get(3)?,
                        summary: r.get(4)?,
                        details: serde_json::from_str(&details).unwrap_or_default(),
                        acknowledged_by: r.get(6)?,
                        acknowledged_at: r.get(7)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            *ev = ev.clone().detail("count", rows.len());
            Ok(rows)
        })
    }

    pub fn acknowledge_alert(&mut self, id: i64) -> Result<()> {
        let me = self.user().username.clone();
        let now = rfc3339(self.clock().now());
        let event = Event::new("audit.alert_ack").target("alert", id);
        self.gate(Need::Permission(Permission::AuditRead), event, |tx, ev| {
            // Separation of duties: an alert about an administrator is cleared by another one
            // when there is another; a clinic with one administrator records that it was theirs.
            let about: Option<Option<String>> = tx
                .query_row(
                    "SELECT actor_name FROM audit_alerts WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            if about.flatten().as_deref() == Some(me.as_str()) {
                if crate::user_admin::active_admins(tx)? > 1 {
                    return Err(Error::PermissionDenied(
                        "this alert is about you: another administrator must acknowledge it".into(),
                    ));
                }
                *ev = ev.clone().detail("own_alert", true);
            }
            let changed = tx.execute(
                "UPDATE audit_alerts SET acknowledged_by = ?1, acknowledged_at = ?2
                 WHERE id = ?3 AND acknowledged_at IS NULL",
                params![me, now, id],
            )?;
            if changed == 0 {
                let exists: bool = tx
                    .query_row("SELECT 1 FROM audit_alerts WHERE id = ?1", [id], |_| Ok(()))
                    .optional()?
                    .is_some();
                return Err(if exists {
                    Error::InvalidInput(format!("alert {id} is already acknowledged"))
                } else {
                    Error::NotFound(format!("no alert {id}"))
                });
            }
            Ok(())
        })
    }
}
