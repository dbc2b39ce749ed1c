//! Erasure by anonymisation (GDPR Art. 17, APP 13, and the end of a retention period). The
//! patient's identity and clinical content go; the clinic's financial records stay, linked to a
//! pseudonymous reference so invoice numbers, amounts, tax and reports are unchanged.
//!
//! Removed: every demographic field (names, contact details, date of birth — the year is kept
//! only when the clinic's setting says so —, insurance number, free-text notes), all treatment
//! notes with every version and amendment, attachments (their keys inside the database and
//! their encrypted files), appointment notes and cancellation reasons, the values and requests
//! in the rectification history, consent notes, legal-hold reasons, invoice void reasons, and
//! the full-text index entries (the index is rebuilt so no old segment keeps a token).
//! Kept: the patient row's random id with "Anonymised" and the pseudonym, appointment times and
//! types, invoices, invoice lines and payments, consent kinds and dates, and the audit trail
//! (which never held names or clinical content).
//!
//! Why the values are really gone from disk: the database runs with `secure_delete`, so freed
//! cells and pages are overwritten with zeros; afterwards the write-ahead log is checkpointed
//! and truncated, so no older copy of a page survives in it; attachment files are deleted and
//! their keys are erased with the rows (crypto-shredding: a copy of the file left on the disk's
//! free blocks can no longer be decrypted).

use rusqlite::{params, Transaction};
use serde::Serialize;

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Anonymised {
    pub patient_id: String,
    pub pseudonym: String,
    pub notes_removed: u64,
    pub attachments_removed: u64,
    pub history_entries_wiped: u64,
    pub invoices_kept: u64,
    /// False when another connection kept the write-ahead log from being emptied; the old
    /// pages are then overwritten at the next checkpoint.
    pub log_truncated: bool,
    /// True when the vault syncs to a target: snapshots pushed before the erasure still hold the
    /// patient until a new push and a prune that keeps none of them (docs/security-model.md).
    pub sync_snapshots_hold_patient: bool,
}

/// Removes the patient's identity and clinical content inside `tx`. Returns the counts and the
/// attachment ids whose files are deleted once the transaction has committed.
pub(crate) fn erase(
    tx: &Transaction<'_>,
    patient_id: &str,
    keep_birth_year: bool,
    now: &str,
) -> Result<(Anonymised, Vec<String>)> {
    let p = crate::patients::load(tx, patient_id)?;
    if p.anonymised_at.is_some() {
        return Err(Error::Conflict(format!(
            "patient {patient_id} is already anonymised"
        )));
    }
    crate::legal_holds::ensure_not_held(tx, patient_id)?;
    let birth_year: Option<i32> = if keep_birth_year {
        p.fields
            .date_of_birth
            .as_deref()
            .and_then(|d| d.parse::<jiff::civil::Date>().ok())
            .map(|d| i32::from(d.year()))
    } else {
        None
    };
    let pseudonym = format!(
        "ANON-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10].to_ascii_uppercase()
    );

    tx.execute(
        "INSERT INTO erasure_in_progress (patient_id) VALUES (?1)",
        [patient_id],
    )?;
    tx.execute(
        "DELETE FROM note_versions WHERE note_id IN (SELECT id FROM notes WHERE patient_id = ?1)",
        [patient_id],
    )?;
    let notes_removed = tx.execute("DELETE FROM notes WHERE patient_id = ?1", [patient_id])? as u64;
    tx.execute(
        "DELETE FROM erasure_in_progress WHERE patient_id = ?1",
        [patient_id],
    )?;

    let attachment_ids: Vec<String> = {
        let mut st = tx.prepare("SELECT id FROM attachments WHERE patient_id = ?1")?;
        let ids = st
            .query_map([patient_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        ids
    };
    tx.execute(
        "DELETE FROM attachments WHERE patient_id = ?1",
        [patient_id],
    )?;

    tx.execute(
        "UPDATE appointments SET note = NULL, cancel_reason = NULL WHERE patient_id = ?1",
        [patient_id],
    )?;
    tx.execute(
        "UPDATE invoices SET void_reason = 'removed by anonymisation'
         WHERE patient_id = ?1 AND void_reason IS NOT NULL",
        [patient_id],
    )?;
    let invoices_kept: i64 = tx.query_row(
        "SELECT count(*) FROM invoices WHERE patient_id = ?1",
        [patient_id],
        |r| r.get(0),
    )?;
    let history_entries_wiped = tx.execute(
        "UPDATE patient_history SET old_value = NULL, new_value = NULL, patient_request = NULL
         WHERE patient_id = ?1",
        [patient_id],
    )? as u64;
    tx.execute(
        "UPDATE patient_consents SET note = NULL WHERE patient_id = ?1",
        [patient_id],
    )?;
    tx.execute(
        "UPDATE legal_holds SET reason = 'removed by anonymisation', release_note = NULL
         WHERE patient_id = ?1",
        [patient_id],
    )?;
    // The FTS triggers remove the old tokens from the index, but FTS5 keeps a deleted token in
    // its older segments until they are merged; rebuilding drops every old segment.
    tx.execute(
        "UPDATE patients SET title = NULL, first_name = 'Anonymised', last_name = ?2,
             preferred_name = NULL, date_of_birth = NULL, sex = NULL, gender_identity = NULL,
             phone = NULL, phone_alt = NULL, phone_digits = NULL, email = NULL, address = NULL,
             emergency_contact = NULL, insurance_number = NULL, referral_source = NULL,
             occupation = NULL, general_notes = NULL, archived = 1, anonymised_at = ?3,
             pseudonym = ?2, birth_year = ?4, updated_at = ?3
         WHERE id = ?1",
        params![patient_id, pseudonym, now, birth_year],
    )?;
    tx.execute(
        "INSERT INTO patients_fts (patients_fts) VALUES ('rebuild')",
        [],
    )?;
    let sync_snapshots_hold_patient = crate::sync_config::target_configured(tx)?;
    Ok((
        Anonymised {
            patient_id: patient_id.to_owned(),
            pseudonym,
            notes_removed,
            attachments_removed: attachment_ids.len() as u64,
            history_entries_wiped,
            invoices_kept: invoices_kept.max(0) as u64,
            log_truncated: false,
            sync_snapshots_hold_patient,
        },
        attachment_ids,
    ))
}

impl Session {
    /// Anonymises a patient. Irreversible, so the caller must repeat the patient's id as
    /// `confirm`. Refused under a legal hold. The audit entry carries the id, the pseudonym and
    /// counts — never the erased identity.
    pub fn anonymise_patient(&mut self, patient_id: &str, confirm: &str) -> Result<Anonymised> {
        if confirm.trim() != patient_id {
            return Err(Error::InvalidInput(
                "confirm: repeat the patient's id to confirm this irreversible erasure".into(),
            ));
        }
        let keep_year = self.privacy_settings()?.anonymise_keep_birth_year;
        let now = rfc3339(self.clock().now());
        let event = Event::new("patient.anonymise").target("patient", patient_id);
        let (mut done, files) = self.gate(
            Need::Permission(Permission::RecordsErase),
            event,
            |tx, ev| {
                let (done, files) = erase(tx, patient_id, keep_year, &now)?;
                *ev = ev
                    .clone()
                    .detail("pseudonym", done.pseudonym.as_str())
                    .detail("notes_removed", done.notes_removed)
                    .detail("attachments_removed", done.attachments_removed)
                    .detail("invoices_kept", done.invoices_kept);
                Ok((done, files))
            },
        )?;
        done.log_truncated = self.after_erasure(&files)?;
        Ok(done)
    }

    /// After an erasure has committed: deletes the attachment files (their keys are already
    /// gone) and empties the write-ahead log so no older page version stays on disk. Returns
    /// whether the log could be truncated.
    pub(crate) fn after_erasure(&mut self, attachment_ids: &[String]) -> Result<bool> {
        let dir = self.dir().clone();
        for id in attachment_ids {
            let path = crate::attachments::path_of(&dir, id);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::io(format!(
                        "the patient was anonymised, but the encrypted attachment file {} could \
                         not be removed (its key is already erased)",
                        path.display()
                    ))(e))
                }
            }
        }
        checkpoint_truncate(self.vault()?.conn())
    }
}

/// Copies every page from the write-ahead log into the database and truncates the log to zero
/// bytes. `busy` is 1 when a reader elsewhere still needs the log.
pub(crate) fn checkpoint_truncate(conn: &rusqlite::Connection) -> Result<bool> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    Ok(busy == 0)
}
