//! The tabs of one patient's record: their appointments, treatment notes and invoices. Each
//! list goes through the gate with the permission its records need (so a receptionist is
//! refused the notes tab by the same rule that refuses them a note), and is recorded with the
//! patient and the number of rows, never the contents.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::appointments::{clinic_tz, row, Appointment, SELECT};
use crate::audit::Event;
use crate::error::{Error, Result};
use crate::invoices::Invoice;
use crate::permissions::Permission;
use crate::session::{Need, Session};

/// Rows a tab shows at most (newest first).
const TAB_LIMIT: i64 = 500;

/// A treatment note in a list: who, when and its state, without the text (opening a note is
/// a separate, audited view).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NoteSummary {
    pub id: String,
    pub appointment_id: Option<String>,
    pub practitioner: String,
    pub status: String,
    pub created_at: String,
    pub finalised_at: Option<String>,
    pub versions: i64,
}

fn ensure_patient(conn: &rusqlite::Connection, id: &str) -> Result<()> {
    conn.query_row("SELECT 1 FROM patients WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no patient with id {id}")))
}

impl Session {
    /// The patient's appointments, newest first.
    pub fn patient_appointments(&mut self, patient_id: &str) -> Result<Vec<Appointment>> {
        let tz = clinic_tz(self);
        let event = Event::new("appointment.list").target("patient", patient_id);
        self.gate(
            Need::Permission(Permission::AppointmentsRead),
            event,
            |tx, ev| {
                ensure_patient(tx, patient_id)?;
                let mut st = tx.prepare_cached(&format!(
                    "{SELECT} WHERE a.patient_id = ?1 ORDER BY a.starts_at DESC LIMIT ?2"
                ))?;
                let rows = st
                    .query_map(params![patient_id, TAB_LIMIT], row(&tz))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                *ev = ev.clone().detail("count", rows.len());
                Ok(rows)
            },
        )
    }

    /// The patient's treatment notes, newest first. Needs `notes.read`; when the clinic
    /// restricts notes to the treating practitioner, others (except administrators) see only
    /// their own notes.
    pub fn patient_notes(&mut self, patient_id: &str) -> Result<Vec<NoteSummary>> {
        let me = self.user().id.to_string();
        let event = Event::new("note.list").target("patient", patient_id);
        self.gate(Need::Permission(Permission::NotesRead), event, |tx, ev| {
            ensure_patient(tx, patient_id)?;
            let restricted = crate::notes::restricted_for(tx, &me)?;
            let mut st = tx.prepare_cached(
                "SELECT n.id, n.appointment_id, u.username, n.status, n.created_at, n.finalised_at,
                        (SELECT count(*) FROM note_versions v WHERE v.note_id = n.id)
                 FROM notes n JOIN practitioners p ON p.id = n.practitioner_id JOIN users u ON u.id = p.user_id
                 WHERE n.patient_id = ?1 AND (?2 = 0 OR p.user_id = ?3)
                 ORDER BY n.created_at DESC LIMIT ?4",
            )?;
            let rows = st
                .query_map(
                    params![patient_id, i64::from(restricted), me, TAB_LIMIT],
                    |r| {
                        Ok(NoteSummary {
                            id: r.get(0)?,
                            appointment_id: r.get(1)?,
                            practitioner: r.get(2)?,
                            status: r.get(3)?,
                            created_at: r.get(4)?,
                            finalised_at: r.get(5)?,
                            versions: r.get(6)?,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            *ev = ev.clone().detail("count", rows.len());
            Ok(rows)
        })
    }

    /// The patient's invoices (drafts, issued, paid and void), newest first.
    pub fn patient_invoices(&mut self, patient_id: &str) -> Result<Vec<Invoice>> {
        let event = Event::new("invoice.list").target("patient", patient_id);
        self.gate(Need::Permission(Permission::InvoicesRead), event, |tx, ev| {
            ensure_patient(tx, patient_id)?;
            let ids: Vec<String> = tx
                .prepare_cached(
                    "SELECT id FROM invoices WHERE patient_id = ?1 ORDER BY created_at DESC LIMIT ?2",
                )?
                .query_map(params![patient_id, TAB_LIMIT], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let rows = ids
                .iter()
                .map(|id| crate::invoices::load(tx, id))
                .collect::<Result<Vec<_>>>()?;
            *ev = ev.clone().detail("count", rows.len());
            Ok(rows)
        })
    }
}
