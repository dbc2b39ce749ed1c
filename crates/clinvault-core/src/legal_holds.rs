//! Legal holds: while a patient has an active hold (litigation, a regulator's request, a
//! complaint under investigation), nothing about them is deleted or anonymised — neither by an
//! administrator's erasure nor by a retention run. Placing and releasing are administrator
//! acts (`records.erase`), each kept with who, when and why.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LegalHold {
    pub id: String,
    pub patient_id: String,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: String,
    pub released_by: Option<String>,
    pub released_at: Option<String>,
    pub release_note: Option<String>,
}

impl LegalHold {
    pub fn active(&self) -> bool {
        self.released_at.is_none()
    }
}

const COLUMNS: &str =
    "id, patient_id, reason, placed_by, placed_at, released_by, released_at, release_note";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LegalHold> {
    Ok(LegalHold {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        reason: r.get(2)?,
        placed_by: r.get(3)?,
        placed_at: r.get(4)?,
        released_by: r.get(5)?,
        released_at: r.get(6)?,
        release_note: r.get(7)?,
    })
}

/// The patient's active hold, if any.
pub(crate) fn active_hold(conn: &Connection, patient_id: &str) -> Result<Option<LegalHold>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM legal_holds
                 WHERE patient_id = ?1 AND released_at IS NULL LIMIT 1"
            ),
            [patient_id],
            from_row,
        )
        .optional()?)
}

/// Every hold the patient has had, oldest first.
pub(crate) fn list(conn: &Connection, patient_id: &str) -> Result<Vec<LegalHold>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM legal_holds WHERE patient_id = ?1 ORDER BY placed_at, id"
    ))?;
    let rows = st
        .query_map([patient_id], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Refuses with a clear message when a hold is active.
pub(crate) fn ensure_not_held(conn: &Connection, patient_id: &str) -> Result<()> {
    match active_hold(conn, patient_id)? {
        Some(h) => Err(Error::Conflict(format!(
            "patient {patient_id} is under a legal hold (placed {}); release it first",
            h.placed_at
        ))),
        None => Ok(()),
    }
}

fn reason_text(field: &str, text: &str) -> Result<String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Error::InvalidInput(format!("{field}: required")));
    }
    if t.chars().count() > 1000 {
        return Err(Error::InvalidInput(format!(
            "{field}: at most 1000 characters"
        )));
    }
    Ok(t.to_owned())
}

impl Session {
    /// Places a hold on a patient. One active hold at a time (a second is refused, so a
    /// release always ends the one the clinic sees).
    pub fn place_legal_hold(&mut self, patient_id: &str, reason: &str) -> Result<LegalHold> {
        let reason = reason_text("reason", reason)?;
        let id = uuid::Uuid::new_v4().to_string();
        let now = rfc3339(self.clock().now());
        let me = self.user().username.clone();
        let event = Event::new("patient.hold")
            .target("patient", patient_id)
            .detail("hold", id.as_str());
        self.gate(
            Need::Permission(Permission::RecordsErase),
            event,
            |tx, _| {
                crate::patients::load(tx, patient_id)?;
                if active_hold(tx, patient_id)?.is_some() {
                    return Err(Error::Conflict(format!(
                        "patient {patient_id} is already under a legal hold"
                    )));
                }
                tx.execute(
                    "INSERT INTO legal_holds (id, patient_id, reason, placed_by, placed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, patient_id, reason, me, now],
                )?;
                Ok(LegalHold {
                    id: id.clone(),
                    patient_id: patient_id.to_owned(),
                    reason,
                    placed_by: me,
                    placed_at: now,
                    released_by: None,
                    released_at: None,
                    release_note: None,
                })
            },
        )
    }

    /// Releases the patient's active hold.
    pub fn release_legal_hold(
        &mut self,
        patient_id: &str,
        note: Option<&str>,
    ) -> Result<LegalHold> {
        let note = note.map(|n| reason_text("note", n)).transpose()?;
        let now = rfc3339(self.clock().now());
        let me = self.user().username.clone();
        let event = Event::new("patient.release_hold").target("patient", patient_id);
        self.gate(
            Need::Permission(Permission::RecordsErase),
            event,
            |tx, ev| {
                crate::patients::load(tx, patient_id)?;
                let Some(mut hold) = active_hold(tx, patient_id)? else {
                    return Err(Error::NotFound(format!(
                        "patient {patient_id} has no active legal hold"
                    )));
                };
                tx.execute(
                    "UPDATE legal_holds SET released_by = ?1, released_at = ?2, release_note = ?3
                 WHERE id = ?4",
                    params![me, now, note, hold.id],
                )?;
                *ev = ev.clone().detail("hold", hold.id.as_str());
                hold.released_by = Some(me);
                hold.released_at = Some(now);
                hold.release_note = note;
                Ok(hold)
            },
        )
    }

    /// Every hold the patient has had, oldest first.
    pub fn legal_holds(&mut self, patient_id: &str) -> Result<Vec<LegalHold>> {
        let event = Event::new("patient.holds").target("patient", patient_id);
        self.gate(Need::Permission(Permission::PatientRead), event, |tx, _| {
            crate::patients::load(tx, patient_id)?;
            list(tx, patient_id)
        })
    }
}
