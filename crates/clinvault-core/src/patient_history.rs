//! Rectification history (GDPR Art. 16, APP 13, HIPAA amendment): every change of a patient
//! field keeps who made it, when, the old and the new value, and — when the patient asked for
//! the correction — their request. The values live only here, inside the encrypted database;
//! the audit trail records field names alone. Anonymisation wipes the values and requests and
//! keeps who/when/which field.

use rusqlite::{params, Transaction};
use serde::Serialize;

use crate::audit::Event;
use crate::error::Result;
use crate::patients::FieldChange;
use crate::permissions::Permission;
use crate::session::{Need, Session};

/// Who changed the record (captured before the gate borrows the session).
pub(crate) struct Author {
    id: String,
    name: String,
}

impl Author {
    pub(crate) fn of(s: &Session) -> Author {
        Author {
            id: s.user().id.to_string(),
            name: s.user().username.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HistoryEntry {
    pub change_id: String,
    pub changed_at: String,
    pub changed_by: String,
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    /// The patient's request when the change was a correction they asked for.
    pub patient_request: Option<String>,
}

pub(crate) fn record(
    tx: &Transaction<'_>,
    patient_id: &str,
    who: &Author,
    at: &str,
    changes: &[FieldChange],
    request: Option<&str>,
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let change_id = uuid::Uuid::new_v4().to_string();
    let mut st = tx.prepare_cached(
        "INSERT INTO patient_history (patient_id, change_id, changed_at, changed_by,
             changed_by_name, field, old_value, new_value, patient_request)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for c in changes {
        st.execute(params![
            patient_id, change_id, at, who.id, who.name, c.field, c.old, c.new, request
        ])?;
    }
    Ok(())
}

impl Session {
    /// The patient's field history, oldest first. Readable by whoever may read the patient.
    pub fn patient_history(&mut self, patient_id: &str) -> Result<Vec<HistoryEntry>> {
        let event = Event::new("patient.history").target("patient", patient_id);
        self.gate(
            Need::Permission(Permission::PatientRead),
            event,
            |tx, ev| {
                crate::patients::load(tx, patient_id)?;
                let rows = load(tx, patient_id)?;
                *ev = ev.clone().detail("count", rows.len());
                Ok(rows)
            },
        )
    }
}

/// Every recorded change of one patient's fields, oldest first (no permission check: callers
/// run it inside the gate).
pub(crate) fn load(conn: &rusqlite::Connection, patient_id: &str) -> Result<Vec<HistoryEntry>> {
    let mut st = conn.prepare_cached(
        "SELECT change_id, changed_at, changed_by_name, field, old_value, new_value,
                patient_request
         FROM patient_history WHERE patient_id = ?1 ORDER BY seq",
    )?;
    let rows = st
        .query_map([patient_id], |r| {
            Ok(HistoryEntry {
                change_id: r.get(0)?,
                changed_at: r.get(1)?,
                changed_by: r.get(2)?,
                field: r.get(3)?,
                old_value: r.get(4)?,
                new_value: r.get(5)?,
                patient_request: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
