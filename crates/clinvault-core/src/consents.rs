//! Consent and lawful basis per patient: the basis the clinic processes the patient's data on
//! (GDPR Art. 6 and, for health data, Art. 9; HIPAA treatment/payment/operations; APP 3), the
//! treatment consent, and communication consents (email, SMS, phone), each with the date given
//! and, once withdrawn, the date withdrawn. Records are withdrawn, never deleted: the history of
//! consent is itself evidence.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};

/// What a consent record is about.
pub const KINDS: &[(&str, &str)] = &[
    (
        "processing",
        "lawful basis for processing the patient's data (needs --basis)",
    ),
    ("treatment", "consent to treatment"),
    ("email", "contact by email"),
    ("sms", "contact by SMS"),
    ("phone", "contact by phone"),
    ("research", "use of de-identified data for research"),
    ("sharing", "sharing records with another provider"),
];

/// Lawful bases a `processing` record may name.
pub const BASES: &[(&str, &str)] = &[
    ("gdpr-6.1.a", "GDPR Art. 6(1)(a): consent"),
    ("gdpr-6.1.b", "GDPR Art. 6(1)(b): contract"),
    ("gdpr-6.1.c", "GDPR Art. 6(1)(c): legal obligation"),
    ("gdpr-6.1.d", "GDPR Art. 6(1)(d): vital interests"),
    ("gdpr-6.1.e", "GDPR Art. 6(1)(e): public task"),
    ("gdpr-6.1.f", "GDPR Art. 6(1)(f): legitimate interests"),
    ("gdpr-9.2.a", "GDPR Art. 9(2)(a): explicit consent"),
    ("gdpr-9.2.c", "GDPR Art. 9(2)(c): vital interests"),
    ("gdpr-9.2.h", "GDPR Art. 9(2)(h): health care"),
    ("gdpr-9.2.i", "GDPR Art. 9(2)(i): public health"),
    (
        "hipaa-tpo",
        "HIPAA 45 CFR 164.506: treatment, payment, operations",
    ),
    (
        "app-3",
        "Australian Privacy Principle 3: collection with consent, necessary for a health service",
    ),
    ("other", "another basis (describe it with --note)"),
];

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Consent {
    pub id: String,
    pub patient_id: String,
    pub kind: String,
    pub basis: Option<String>,
    pub note: Option<String>,
    pub given_on: String,
    pub recorded_by: String,
    pub recorded_at: String,
    pub withdrawn_on: Option<String>,
    pub withdrawn_by: Option<String>,
    pub withdrawn_at: Option<String>,
}

impl Consent {
    pub fn active(&self) -> bool {
        self.withdrawn_on.is_none()
    }
}

/// A consent to record.
pub struct NewConsent<'a> {
    pub kind: &'a str,
    pub basis: Option<&'a str>,
    pub note: Option<&'a str>,
    /// YYYY-MM-DD; today when absent.
    pub given_on: Option<&'a str>,
}

const COLUMNS: &str = "id, patient_id, kind, basis, note, given_on, recorded_by, recorded_at,
    withdrawn_on, withdrawn_by, withdrawn_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Consent> {
    Ok(Consent {
        id: r.get(0)?,
        patient_id: r.get(1)?,
        kind: r.get(2)?,
        basis: r.get(3)?,
        note: r.get(4)?,
        given_on: r.get(5)?,
        recorded_by: r.get(6)?,
        recorded_at: r.get(7)?,
        withdrawn_on: r.get(8)?,
        withdrawn_by: r.get(9)?,
        withdrawn_at: r.get(10)?,
    })
}

fn date(field: &str, text: Option<&str>, today: jiff::civil::Date) -> Result<jiff::civil::Date> {
    let Some(t) = text else {
        return Ok(today);
    };
    let d: jiff::civil::Date = t
        .trim()
        .parse()
        .map_err(|_| Error::InvalidInput(format!("{field}: not a valid date (use YYYY-MM-DD)")))?;
    if d > today {
        return Err(Error::InvalidInput(format!("{field}: is in the future")));
    }
    Ok(d)
}

fn validate(c: &NewConsent<'_>) -> Result<(String, Option<String>, Option<String>)> {
    let kind = c.kind.trim().to_ascii_lowercase();
    if !KINDS.iter().any(|(k, _)| *k == kind) {
        let list: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
        return Err(Error::InvalidInput(format!(
            "kind: unknown consent kind {kind:?} (one of: {})",
            list.join(", ")
        )));
    }
    let basis = c.basis.map(|b| b.trim().to_ascii_lowercase());
    match (&basis, kind.as_str()) {
        (None, "processing") => {
            return Err(Error::InvalidInput(
                "basis: a processing record needs its lawful basis (e.g. gdpr-9.2.h)".into(),
            ))
        }
        (Some(b), _) if !BASES.iter().any(|(k, _)| k == b) => {
            let list: Vec<&str> = BASES.iter().map(|(k, _)| *k).collect();
            return Err(Error::InvalidInput(format!(
                "basis: unknown lawful basis {b:?} (one of: {})",
                list.join(", ")
            )));
        }
        _ => {}
    }
    let note = c
        .note
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    if note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(Error::InvalidInput("note: at most 2000 characters".into()));
    }
    if basis.as_deref() == Some("other") && note.is_none() {
        return Err(Error::InvalidInput(
            "note: describe the basis when it is \"other\"".into(),
        ));
    }
    Ok((kind, basis, note))
}

impl Session {
    /// Records a consent (or a lawful basis) as given on a date.
    pub fn record_consent(&mut self, patient_id: &str, c: &NewConsent<'_>) -> Result<Consent> {
        let (kind, basis, note) = validate(c)?;
        let today = crate::patients::today(self);
        let given_on = date("given_on", c.given_on, today)?.to_string();
        let id = uuid::Uuid::new_v4().to_string();
        let now = rfc3339(self.clock().now());
        let me = self.user().username.clone();
        let event = Event::new("consent.record")
            .target("patient", patient_id)
            .detail("consent", id.as_str())
            .detail("kind", kind.as_str());
        self.gate(
            Need::Permission(Permission::PatientWrite),
            event,
            |tx, _| {
                let p = crate::patients::load(tx, patient_id)?;
                if p.anonymised_at.is_some() {
                    return Err(Error::Conflict(
                        "this patient has been anonymised; nothing can be added".into(),
                    ));
                }
                tx.execute(
                    "INSERT INTO patient_consents (id, patient_id, kind, basis, note, given_on,
                     recorded_by, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![id, patient_id, kind, basis, note, given_on, me, now],
                )?;
                load(tx, &id)
            },
        )
    }

    /// Marks a consent withdrawn on a date (today when absent), not before it was given.
    pub fn withdraw_consent(&mut self, consent_id: &str, on: Option<&str>) -> Result<Consent> {
        let today = crate::patients::today(self);
        let on = date("withdrawn_on", on, today)?;
        let now = rfc3339(self.clock().now());
        let me = self.user().username.clone();
        let event = Event::new("consent.withdraw").detail("consent", consent_id);
        self.gate(
            Need::Permission(Permission::PatientWrite),
            event,
            |tx, ev| {
                let c = load(tx, consent_id)?;
                *ev = ev
                    .clone()
                    .target("patient", c.patient_id.as_str())
                    .detail("kind", c.kind.as_str());
                if !c.active() {
                    return Err(Error::Conflict(format!(
                        "consent {consent_id} was already withdrawn"
                    )));
                }
                if on.to_string() < c.given_on {
                    return Err(Error::InvalidInput(format!(
                        "withdrawn_on: before the consent was given ({})",
                        c.given_on
                    )));
                }
                tx.execute(
                    "UPDATE patient_consents SET withdrawn_on = ?1, withdrawn_by = ?2,
                     withdrawn_at = ?3 WHERE id = ?4",
                    params![on.to_string(), me, now, consent_id],
                )?;
                load(tx, consent_id)
            },
        )
    }

    /// Every consent the patient has given, with withdrawn ones, oldest first.
    pub fn list_consents(&mut self, patient_id: &str) -> Result<Vec<Consent>> {
        let event = Event::new("consent.list").target("patient", patient_id);
        self.gate(Need::Permission(Permission::PatientRead), event, |tx, _| {
            crate::patients::load(tx, patient_id)?;
            list(tx, patient_id)
        })
    }

    /// True when the patient has an active consent of this kind (e.g. before an email).
    pub fn has_consent(&mut self, patient_id: &str, kind: &str) -> Result<bool> {
        Ok(self
            .list_consents(patient_id)?
            .iter()
            .any(|c| c.kind == kind && c.active()))
    }
}

pub(crate) fn list(conn: &rusqlite::Connection, patient_id: &str) -> Result<Vec<Consent>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM patient_consents WHERE patient_id = ?1 ORDER BY given_on, recorded_at"
    ))?;
    let rows = st
        .query_map([patient_id], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn load(conn: &rusqlite::Connection, id: &str) -> Result<Consent> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM patient_consents WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("no consent with id {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processing_needs_a_known_basis_and_other_needs_a_note() {
        let c = |kind, basis, note| NewConsent {
            kind,
            basis,
            note,
            given_on: None,
        };
        assert!(validate(&c("processing", None, None))
            .unwrap_err()
            .to_string()
            .starts_with("basis:"));
        assert!(validate(&c("processing", Some("gdpr-6.1.z"), None))
            .unwrap_err()
            .to_string()
            .contains("unknown lawful basis"));
        assert!(validate(&c("processing", Some("other"), None))
            .unwrap_err()
            .to_string()
            .starts_with("note:"));
        assert!(validate(&c("telepathy", None, None))
            .unwrap_err()
            .to_string()
            .starts_with("kind:"));
        let (k, b, _) = validate(&c(" EMAIL ", None, None)).unwrap();
        assert_eq!((k.as_str(), b), ("email", None));
        let (_, b, _) = validate(&c("processing", Some("GDPR-9.2.H"), None)).unwrap();
        assert_eq!(b.as_deref(), Some("gdpr-9.2.h"));
    }

    #[test]
    fn dates_are_checked() {
        let today: jiff::civil::Date = "2026-11-22".parse().unwrap();
        assert_eq!(date("given_on", None, today).unwrap(), today);
        assert!(date("given_on", Some("2026-13-01"), today).is_err());
        assert!(date("given_on", Some("2026-11-23"), today)
            .unwrap_err()
            .to_string()
            .contains("future"));
    }
}
