//! Retention schedules: how long each kind of record is kept, from a jurisdiction preset
//! (presets/retention.json, documented in docs/retention.md) that the clinic picks and adjusts.
//! A retention run anonymises patients whose clinical records are past their period, deletes
//! invoices and payments past theirs (only once the patient is anonymised, so no identity is
//! attached), and prunes the audit trail — skipping every patient under a legal hold.
//!
//! Date rules: periods are whole calendar years added to a date. A 29 February plus a number of
//! years landing in a common year becomes 1 March — the later of the two readings, so a record
//! is never removed a day early. Someone born on 29 February has their birthday on 1 March in
//! common years for the same reason.

use std::collections::BTreeMap;

use jiff::civil::Date;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};

/// Backups exported before a date (through the `audit_milestones` index).
pub(crate) const OLD_BACKUPS_SQL: &str = concat!(
    "SELECT at FROM audit_log WHERE ",
    crate::audit::milestones!(),
    " AND action = 'backup.export' AND outcome = 'ok' AND substr(at, 1, 10) < ?1 ORDER BY seq"
);

const PRESETS_JSON: &str = include_str!("../../../presets/retention.json");
const PREFIX: &str = "clinic.retention.";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Preset {
    pub label: String,
    pub clinical_years: u32,
    pub majority_age: u32,
    pub minor_years_after_majority: u32,
    pub financial_years: u32,
    pub audit_years: u32,
    pub sources: Vec<String>,
}

/// The jurisdiction presets shipped with ClinVault, by name.
pub fn presets() -> Result<BTreeMap<String, Preset>> {
    serde_json::from_str(PRESETS_JSON)
        .map_err(|e| Error::Internal(format!("the retention presets are malformed: {e}")))
}

/// The clinic's schedule.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Rules {
    /// The preset the schedule started from ("none" until one is picked).
    pub preset: String,
    /// Clinical records: years after the last visit.
    pub clinical_years: u32,
    /// A patient younger than this at their last visit is a minor...
    pub majority_age: u32,
    /// ...whose records are also kept until this many years after they reach majority_age.
    pub minor_years_after_majority: u32,
    /// Invoices and payments: years after the invoice date.
    pub financial_years: u32,
    /// The audit trail: years (the policy's audit-retention-years).
    pub audit_years: u32,
}

pub const KEYS: &[&str] = &[
    "clinical-years",
    "majority-age",
    "minor-years-after-majority",
    "financial-years",
    "audit-years",
];

impl Rules {
    /// Until a clinic chooses, nothing is ever due: the longest periods any preset uses, and
    /// more.
    fn unset(audit_years: u32) -> Rules {
        Rules {
            preset: "none".into(),
            clinical_years: 100,
            majority_age: 18,
            minor_years_after_majority: 100,
            financial_years: 100,
            audit_years,
        }
    }

    fn apply(&mut self, key: &str, value: &str) -> Result<u32> {
        let n: u32 = value
            .trim()
            .parse()
            .map_err(|_| Error::InvalidInput(format!("{key}: a whole number of years")))?;
        let (min, max) = match key {
            "majority-age" => (14, 25),
            "minor-years-after-majority" => (0, 100),
            _ => (1, 100),
        };
        if !(min..=max).contains(&n) {
            return Err(Error::InvalidInput(format!(
                "{key}: between {min} and {max}"
            )));
        }
        match key {
            "clinical-years" => self.clinical_years = n,
            "majority-age" => self.majority_age = n,
            "minor-years-after-majority" => self.minor_years_after_majority = n,
            "financial-years" => self.financial_years = n,
            "audit-years" => self.audit_years = n,
            _ => {
                return Err(Error::InvalidInput(format!(
                    "unknown retention setting {key:?} (one of: {})",
                    KEYS.join(", ")
                )))
            }
        }
        Ok(n)
    }

    fn load(conn: &Connection, audit_years: u32) -> Result<Rules> {
        let mut rules = Rules::unset(audit_years);
        let mut st = conn.prepare_cached(
            "SELECT substr(key, length(?1) + 1), value FROM settings WHERE key LIKE ?1 || '%'",
        )?;
        let rows = st
            .query_map([PREFIX], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (k, v) in rows {
            if k == "preset" {
                rules.preset = v;
                continue;
            }
            rules.apply(&k, &v).map_err(|e| {
                Error::Integrity(format!("stored retention setting {k:?} is invalid: {e}"))
            })?;
        }
        Ok(rules)
    }

    /// When a patient's clinical records fall due: `clinical_years` after the last visit, and
    /// for someone who was a minor at that visit not before `minor_years_after_majority` years
    /// after they reached `majority_age`. Without a date of birth the adult rule applies.
    pub fn clinical_due(&self, date_of_birth: Option<Date>, last_visit: Date) -> Date {
        let mut due = add_years(last_visit, self.clinical_years);
        if let Some(born) = date_of_birth {
            if age_on(born, last_visit) < self.majority_age {
                let minor = add_years(born, self.majority_age + self.minor_years_after_majority);
                due = due.max(minor);
            }
        }
        due
    }

    pub fn financial_due(&self, invoice_date: Date) -> Date {
        add_years(invoice_date, self.financial_years)
    }
}

/// `d` plus `years` calendar years; 29 February into a common year is 1 March.
pub fn add_years(d: Date, years: u32) -> Date {
    let year = i32::from(d.year()) + years as i32;
    let year = i16::try_from(year).unwrap_or(9999).min(9999);
    Date::new(year, d.month(), d.day())
        .or_else(|_| Date::new(year, 3, 1))
        .unwrap_or(Date::MAX)
}

/// `d` minus `years` calendar years (29 February into a common year is 28 February, so the
/// cut-off never moves later than the period allows).
fn add_years_back(d: Date, years: u32) -> Date {
    let year = i32::from(d.year()) - years as i32;
    let year = i16::try_from(year.max(1)).unwrap_or(1);
    Date::new(year, d.month(), d.day())
        .or_else(|_| Date::new(year, 2, 28))
        .unwrap_or(Date::MIN)
}

/// Completed years of age on `on` (a 29 February birthday counts on 1 March in common years).
pub fn age_on(born: Date, on: Date) -> u32 {
    if on < born {
        return 0;
    }
    let mut age = (i32::from(on.year()) - i32::from(born.year())).max(0) as u32;
    if add_years(born, age) > on {
        age = age.saturating_sub(1);
    }
    age
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DuePatient {
    pub patient_id: String,
    pub due_on: String,
}

/// What a retention run removes: ids and counts, never names.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RetentionPlan {
    pub as_of: String,
    pub rules: Rules,
    pub patients_to_anonymise: Vec<DuePatient>,
    pub held_patients_skipped: Vec<String>,
    pub invoices_to_delete: Vec<String>,
    /// Audit entries before this date are pruned.
    pub audit_before: String,
    pub audit_entries_due: u64,
    /// When single-file backups were made that are older than the clinical retention period:
    /// they may hold records a run has removed since, so the administrator should destroy them
    /// (the vault does not know where they are kept).
    pub backups_past_retention: Vec<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RetentionReport {
    pub plan: RetentionPlan,
    pub patients_anonymised: u64,
    pub invoices_deleted: u64,
    pub audit_entries_pruned: u64,
    /// True when patients were anonymised and the vault syncs to a target: older snapshots
    /// still hold them until a new push and a prune.
    pub sync_snapshots_hold_patients: bool,
}

/// The clinic-local date of a stored time: an instant (RFC 3339, stored in UTC) is moved to
/// the clinic's zone, so a morning visit in Sydney is not dated the day before; a plain date
/// (an invoice's issue date, already local) is taken as it is.
fn parse_date(text: &str, tz: &jiff::tz::TimeZone) -> Option<Date> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.to_zoned(tz.clone()).date());
    }
    text.get(..10).and_then(|d| d.parse().ok())
}

/// Works out what is due on `today` (inside a transaction, so the run sees one state).
fn plan(
    conn: &Connection,
    rules: &Rules,
    tz: &jiff::tz::TimeZone,
    today: Date,
) -> Result<RetentionPlan> {
    let held: std::collections::BTreeSet<String> = {
        let mut st =
            conn.prepare("SELECT DISTINCT patient_id FROM legal_holds WHERE released_at IS NULL")?;
        let ids = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids
    };
    // The last visit: the latest appointment that was not cancelled (one still to come keeps
    // the record: the patient is coming back), or note; a patient never seen counts from the
    // day their record was made.
    let mut st = conn.prepare(
        "SELECT p.id, p.date_of_birth, p.created_at,
                (SELECT max(a.starts_at) FROM appointments a
                  WHERE a.patient_id = p.id AND a.status != 'cancelled'),
                (SELECT max(n.created_at) FROM notes n WHERE n.patient_id = p.id)
         FROM patients p WHERE p.anonymised_at IS NULL ORDER BY p.id",
    )?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut due = Vec::new();
    let mut skipped = Vec::new();
    for (id, dob, created, last_appt, last_note) in rows {
        let visit = last_appt
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map(|ts| ts.to_zoned(tz.clone()).date());
        let note = last_note.as_deref().and_then(|n| parse_date(n, tz));
        let Some(last) = visit.max(note).or_else(|| parse_date(&created, tz)) else {
            continue;
        };
        let due_on = rules.clinical_due(dob.as_deref().and_then(|d| parse_date(d, tz)), last);
        if due_on > today {
            continue;
        }
        if held.contains(&id) {
            skipped.push(id);
        } else {
            due.push(DuePatient {
                patient_id: id,
                due_on: due_on.to_string(),
            });
        }
    }
    // Financial records go only once the patient is (or is about to be) anonymised.
    let anonymising: std::collections::BTreeSet<&str> =
        due.iter().map(|d| d.patient_id.as_str()).collect();
    let mut st = conn.prepare(
        "SELECT i.id, i.patient_id, coalesce(i.issued_on, i.created_at), p.anonymised_at IS NOT NULL
         FROM invoices i JOIN patients p ON p.id = i.patient_id ORDER BY i.number, i.id",
    )?;
    let invoices = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let invoices_to_delete = invoices
        .into_iter()
        .filter(|(_, patient, date, anonymised)| {
            (*anonymised || anonymising.contains(patient.as_str()))
                && !held.contains(patient)
                && parse_date(date, tz).is_some_and(|d| rules.financial_due(d) <= today)
        })
        .map(|(id, ..)| id)
        .collect();
    let audit_before = {
        let y = i32::from(today.year()) - rules.audit_years as i32;
        Date::new(i16::try_from(y).unwrap_or(1900), today.month(), today.day())
            .or_else(|_| Date::new(i16::try_from(y).unwrap_or(1900), 3, 1))
            .map_err(|_| Error::Internal("cannot compute the audit cut-off".into()))?
    };
    // Counted as the prune will cut: a prefix of the trail, up to the first younger entry or
    // the first about a patient under a hold.
    let audit_entries_due: i64 = match audit_before
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|_| Error::Internal("cannot compute the audit cut-off".into()))
        .and_then(|z| crate::audit_review::prune_cut(conn, z.timestamp()))?
    {
        Some((upto, _)) => conn.query_row(
            "SELECT count(*) FROM audit_log WHERE seq <= ?1",
            [upto],
            |r| r.get(0),
        )?,
        None => 0,
    };
    let backup_cutoff = add_years_back(today, rules.clinical_years);
    let backups_past_retention = {
        let mut st = conn.prepare(OLD_BACKUPS_SQL)?;
        let rows = st
            .query_map([backup_cutoff.to_string()], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    };
    Ok(RetentionPlan {
        backups_past_retention,
        as_of: today.to_string(),
        rules: rules.clone(),
        patients_to_anonymise: due,
        held_patients_skipped: skipped,
        invoices_to_delete,
        audit_before: audit_before.to_string(),
        audit_entries_due: audit_entries_due.max(0) as u64,
    })
}

impl Session {
    /// The clinic's retention schedule (not audited: it is configuration, not patient data).
    pub fn retention_rules(&self) -> Result<Rules> {
        Rules::load(self.vault()?.conn(), self.policy().audit_retention_years)
    }

    fn save_retention(&mut self, event: Event, entries: Vec<(String, String)>) -> Result<()> {
        let now = rfc3339(self.clock().now());
        self.gate(
            Need::Permission(Permission::SettingsManage),
            event,
            |tx, _| {
                for (k, v) in &entries {
                    tx.execute(
                        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                         updated_at = excluded.updated_at",
                        params![format!("{PREFIX}{k}"), v, now],
                    )?;
                }
                Ok(())
            },
        )
    }

    /// Adopts a jurisdiction preset (every period, the audit trail's included).
    pub fn set_retention_preset(&mut self, name: &str) -> Result<Rules> {
        let all = presets()?;
        let key = name.trim().to_ascii_lowercase();
        let Some(p) = all.get(&key) else {
            let names: Vec<&str> = all.keys().map(String::as_str).collect();
            return Err(Error::InvalidInput(format!(
                "preset: unknown {name:?} (one of: {})",
                names.join(", ")
            )));
        };
        let entries = vec![
            ("preset".to_owned(), key.clone()),
            ("clinical-years".to_owned(), p.clinical_years.to_string()),
            ("majority-age".to_owned(), p.majority_age.to_string()),
            (
                "minor-years-after-majority".to_owned(),
                p.minor_years_after_majority.to_string(),
            ),
            ("financial-years".to_owned(), p.financial_years.to_string()),
        ];
        let event = Event::new("retention.set_preset").detail("preset", key.as_str());
        self.save_retention(event, entries)?;
        self.set_policy("audit-retention-years", &p.audit_years.to_string())?;
        self.retention_rules()
    }

    /// Adjusts one period (audit-years is the policy's audit-retention-years).
    pub fn set_retention(&mut self, key: &str, value: &str) -> Result<Rules> {
        let mut rules = self.retention_rules()?;
        let n = rules.apply(key, value)?;
        if key == "audit-years" {
            self.set_policy("audit-retention-years", &n.to_string())?;
        } else {
            let event = Event::new("retention.set")
                .detail("key", key)
                .detail("new", n);
            self.save_retention(event, vec![(key.to_owned(), n.to_string())])?;
        }
        self.retention_rules()
    }

    /// What a run would remove today, by id and count.
    pub fn retention_plan(&mut self) -> Result<RetentionPlan> {
        let rules = self.retention_rules()?;
        let now = self.clock().now();
        let tz = crate::appointments::clinic_tz(self);
        let today = now.to_zoned(tz.clone()).date();
        let event = Event::new("retention.plan");
        self.gate(
            Need::Permission(Permission::RecordsErase),
            event,
            |tx, ev| {
                let p = plan(tx, &rules, &tz, today)?;
                *ev = ev
                    .clone()
                    .detail("patients", p.patients_to_anonymise.len())
                    .detail("invoices", p.invoices_to_delete.len())
                    .detail("held", p.held_patients_skipped.len());
                Ok(p)
            },
        )
    }

    /// Removes what is due: anonymises each due patient (one audited erasure each, the hold
    /// re-checked inside it), deletes due financial records of anonymised patients, prunes the
    /// audit trail, then empties the database log.
    pub fn retention_run(&mut self) -> Result<RetentionReport> {
        let plan = self.retention_plan()?;
        let keep_year = self.privacy_settings()?.anonymise_keep_birth_year;
        let now = rfc3339(self.clock().now());
        let mut files = Vec::new();
        let mut anonymised = 0;
        let mut sync_snapshots_hold_patients = false;
        for due in &plan.patients_to_anonymise {
            let event = Event::new("retention.anonymise")
                .target("patient", due.patient_id.as_str())
                .detail("due_on", due.due_on.as_str());
            let (done, f) = self.gate(
                Need::Permission(Permission::RecordsErase),
                event,
                |tx, _| crate::anonymise::erase(tx, &due.patient_id, keep_year, &now),
            )?;
            files.extend(f);
            anonymised += 1;
            sync_snapshots_hold_patients |= done.sync_snapshots_hold_patient;
        }
        let ids = plan.invoices_to_delete.clone();
        let event = Event::new("retention.delete_financial").detail("invoices", ids.len());
        let invoices_deleted = if ids.is_empty() {
            0
        } else {
            self.gate(
                Need::Permission(Permission::RecordsErase),
                event,
                |tx, _| {
                    let mut n = 0;
                    for id in &ids {
                        let patient: String = tx.query_row(
                            "SELECT patient_id FROM invoices WHERE id = ?1",
                            [id],
                            |r| r.get(0),
                        )?;
                        crate::legal_holds::ensure_not_held(tx, &patient)?;
                        tx.execute("DELETE FROM payments WHERE invoice_id = ?1", [id])?;
                        tx.execute("DELETE FROM invoice_items WHERE invoice_id = ?1", [id])?;
                        n += tx.execute("DELETE FROM invoices WHERE id = ?1", [id])? as u64;
                    }
                    Ok(n)
                },
            )?
        };
        let audit_entries_pruned = if plan.audit_entries_due > 0 {
            let before: Date = plan
                .audit_before
                .parse()
                .map_err(|_| Error::Internal("bad audit cut-off".into()))?;
            let ts = before
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map_err(|_| Error::Internal("bad audit cut-off".into()))?
                .timestamp();
            self.audit_prune(ts)?.removed
        } else {
            0
        };
        self.after_erasure(&files)?;
        Ok(RetentionReport {
            plan,
            patients_anonymised: anonymised,
            invoices_deleted,
            audit_entries_pruned,
            sync_snapshots_hold_patients,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn rules(preset: &str) -> Rules {
        let p = presets().unwrap().remove(preset).unwrap();
        Rules {
            preset: preset.into(),
            clinical_years: p.clinical_years,
            majority_age: p.majority_age,
            minor_years_after_majority: p.minor_years_after_majority,
            financial_years: p.financial_years,
            audit_years: p.audit_years,
        }
    }

    #[test]
    fn presets_load_with_sources() {
        let all = presets().unwrap();
        for name in [
            "australia",
            "united-kingdom",
            "united-states",
            "european-union",
        ] {
            let p = &all[name];
            assert!(!p.sources.is_empty(), "{name} cites its sources");
            assert!(p.clinical_years >= 5 && p.financial_years >= 5, "{name}");
        }
    }

    #[test]
    fn leap_days_move_to_the_first_of_march_never_earlier() {
        assert_eq!(add_years(d("2024-02-29"), 1), d("2025-03-01"));
        assert_eq!(add_years(d("2024-02-29"), 4), d("2028-02-29"));
        assert_eq!(add_years(d("2023-02-28"), 1), d("2024-02-28"));
        assert_eq!(age_on(d("2008-02-29"), d("2026-02-28")), 17);
        assert_eq!(age_on(d("2008-02-29"), d("2026-03-01")), 18);
        assert_eq!(age_on(d("2008-02-29"), d("2028-02-29")), 20);
        assert_eq!(age_on(d("2000-06-15"), d("2000-06-14")), 0);
    }

    #[test]
    fn adults_count_from_the_last_visit() {
        let au = rules("australia");
        assert_eq!(
            au.clinical_due(Some(d("1970-05-01")), d("2020-07-01")),
            d("2027-07-01")
        );
        assert_eq!(au.clinical_due(None, d("2020-02-29")), d("2027-03-01"));
        let uk = rules("united-kingdom");
        assert_eq!(uk.clinical_due(None, d("2020-07-01")), d("2028-07-01"));
    }

    #[test]
    fn minors_are_kept_until_the_later_of_the_two_rules() {
        let au = rules("australia");
        // Seen at 10: kept until 25 (2035), well past the 7 years after the visit (2027).
        assert_eq!(
            au.clinical_due(Some(d("2010-04-10")), d("2020-07-01")),
            d("2035-04-10")
        );
        // Born on a leap day: the 25th birthday in a common year is 1 March.
        assert_eq!(
            au.clinical_due(Some(d("2008-02-29")), d("2012-01-01")),
            d("2033-03-01")
        );
        // Seen at 17 and 364 days: a minor; at 18 exactly: an adult.
        assert_eq!(
            au.clinical_due(Some(d("2002-07-02")), d("2020-07-01")),
            d("2027-07-02")
        );
        assert_eq!(
            au.clinical_due(Some(d("2002-07-01")), d("2020-07-01")),
            d("2027-07-01")
        );
        // A minor seen late, whose 7 years after the visit end after their 25th birthday.
        let eu = rules("european-union");
        assert_eq!(
            eu.clinical_due(Some(d("2003-01-01")), d("2020-06-01")),
            d("2030-06-01")
        );
    }

    #[test]
    fn settings_are_bounded() {
        let mut r = Rules::unset(6);
        assert_eq!(r.apply("clinical-years", "8").unwrap(), 8);
        assert!(r.apply("clinical-years", "0").is_err());
        assert!(r.apply("majority-age", "30").is_err());
        assert!(r.apply("clinical-years", "ten").is_err());
        assert!(r.apply("colour", "3").is_err());
    }
}
