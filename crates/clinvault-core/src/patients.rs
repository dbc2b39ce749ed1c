//! Patients: demographics with validation that names the field and the problem, instant search
//! (FTS5 prefix matching over names, email, date of birth and phone digits, ranked by bm25), and
//! every view, change and search recorded by the gate — with field names and counts, never the
//! values or the search text.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};

/// Every editable field, in one struct so create and update validate alike.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PatientFields {
    pub title: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub preferred_name: Option<String>,
    pub date_of_birth: Option<String>,
    pub sex: Option<String>,
    pub gender_identity: Option<String>,
    pub phone: Option<String>,
    pub phone_alt: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub emergency_contact: Option<String>,
    pub insurance_number: Option<String>,
    pub referral_source: Option<String>,
    pub occupation: Option<String>,
    pub general_notes: Option<String>,
    pub archived: Option<bool>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Patient {
    pub id: String,
    #[serde(flatten)]
    pub fields: PatientFields,
    pub created_at: String,
    pub updated_at: String,
    /// Set once the patient has been erased by anonymisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymised_at: Option<String>,
    /// The pseudonymous reference an anonymised patient's invoices stay linked to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pseudonym: Option<String>,
    /// Year of birth, kept after anonymisation only when the clinic's setting says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_year: Option<i32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PatientSummary {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub preferred_name: Option<String>,
    pub date_of_birth: Option<String>,
    pub phone: Option<String>,
    pub archived: bool,
}

pub(crate) const TEXT_FIELDS: &[&str] = &[
    "title",
    "first_name",
    "last_name",
    "preferred_name",
    "date_of_birth",
    "sex",
    "gender_identity",
    "phone",
    "phone_alt",
    "email",
    "address",
    "emergency_contact",
    "insurance_number",
    "referral_source",
    "occupation",
    "general_notes",
];

impl PatientFields {
    fn text(&self, name: &str) -> Option<&Option<String>> {
        Some(match name {
            "title" => &self.title,
            "first_name" => &self.first_name,
            "last_name" => &self.last_name,
            "preferred_name" => &self.preferred_name,
            "date_of_birth" => &self.date_of_birth,
            "sex" => &self.sex,
            "gender_identity" => &self.gender_identity,
            "phone" => &self.phone,
            "phone_alt" => &self.phone_alt,
            "email" => &self.email,
            "address" => &self.address,
            "emergency_contact" => &self.emergency_contact,
            "insurance_number" => &self.insurance_number,
            "referral_source" => &self.referral_source,
            "occupation" => &self.occupation,
            "general_notes" => &self.general_notes,
            _ => return None,
        })
    }

    fn text_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "title" => &mut self.title,
            "first_name" => &mut self.first_name,
            "last_name" => &mut self.last_name,
            "preferred_name" => &mut self.preferred_name,
            "date_of_birth" => &mut self.date_of_birth,
            "sex" => &mut self.sex,
            "gender_identity" => &mut self.gender_identity,
            "phone" => &mut self.phone,
            "phone_alt" => &mut self.phone_alt,
            "email" => &mut self.email,
            "address" => &mut self.address,
            "emergency_contact" => &mut self.emergency_contact,
            "insurance_number" => &mut self.insurance_number,
            "referral_source" => &mut self.referral_source,
            "occupation" => &mut self.occupation,
            "general_notes" => &mut self.general_notes,
            _ => return None,
        })
    }

    /// Trims every value, turns empty strings into "not set", and checks each field. The first
    /// problem is reported as "field: what is wrong".
    fn normalise_and_validate(&mut self, today: jiff::civil::Date) -> Result<()> {
        for name in TEXT_FIELDS {
            if let Some(v) = self.text_mut(name) {
                *v = v
                    .as_ref()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty());
            }
        }
        let bad = |field: &str, why: &str| Err(Error::InvalidInput(format!("{field}: {why}")));
        for name in TEXT_FIELDS {
            let limit = if *name == "general_notes" || *name == "address" {
                10_000
            } else {
                200
            };
            if self
                .text(name)
                .and_then(|v| v.as_ref())
                .is_some_and(|v| v.chars().count() > limit)
            {
                return bad(name, &format!("at most {limit} characters"));
            }
        }
        if let Some(dob) = &self.date_of_birth {
            let Ok(date) = dob.parse::<jiff::civil::Date>() else {
                return bad(
                    "date_of_birth",
                    "not a valid date (use YYYY-MM-DD, e.g. 1984-03-27)",
                );
            };
            if date > today {
                return bad("date_of_birth", "is in the future");
            }
            if date.year() < 1880 {
                return bad("date_of_birth", "is before 1880");
            }
            self.date_of_birth = Some(date.to_string());
        }
        if let Some(email) = &self.email {
            let ok = email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }) && !email.contains(char::is_whitespace);
            if !ok {
                return bad("email", "not an email address (e.g. name@example.com)");
            }
        }
        for name in ["phone", "phone_alt"] {
            if let Some(p) = self.text(name).and_then(|v| v.as_deref()) {
                let allowed = p
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +()-.".contains(c));
                let digits = p.chars().filter(char::is_ascii_digit).count();
                if !allowed || !(6..=20).contains(&digits) {
                    return bad(
                        name,
                        "use 6–20 digits, optionally with spaces, +, ( ), - or .",
                    );
                }
            }
        }
        Ok(())
    }

    /// Every suffix of each number's digits (4 digits or more), so a search for the local part
    /// ("412 345", "0412…" without its trunk zero) finds a number stored with a country code.
    fn phone_digits(&self) -> Option<String> {
        phone_search_tokens(
            [&self.phone, &self.phone_alt]
                .into_iter()
                .flatten()
                .map(String::as_str),
        )
    }

    /// Applies the fields set in `changes`; returns each field whose value changed, with its
    /// old and new value (for the rectification history).
    fn apply(&mut self, changes: &PatientFields) -> Vec<FieldChange> {
        let mut changed = Vec::new();
        for name in TEXT_FIELDS {
            if let (Some(new), Some(cur)) =
                (changes.text(name).cloned().flatten(), self.text_mut(name))
            {
                let new = Some(new);
                if *cur != new {
                    let old = std::mem::replace(cur, new.clone());
                    changed.push(FieldChange {
                        field: name,
                        old,
                        new,
                    });
                }
            }
        }
        if let Some(a) = changes.archived {
            if self.archived != Some(a) {
                changed.push(FieldChange {
                    field: "archived",
                    old: self.archived.map(|b| b.to_string()),
                    new: Some(a.to_string()),
                });
                self.archived = Some(a);
            }
        }
        changed
    }

    /// Every field that has a value, as changes from "not set" (the history of a new record).
    fn as_changes(&self) -> Vec<FieldChange> {
        TEXT_FIELDS
            .iter()
            .filter_map(|name| {
                self.text(name).cloned().flatten().map(|v| FieldChange {
                    field: name,
                    old: None,
                    new: Some(v),
                })
            })
            .collect()
    }
}

/// One field's change, kept in the rectification history (the audit entry gets the name only).
pub(crate) struct FieldChange {
    pub field: &'static str,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The search tokens for phone numbers: every suffix (4+ digits) of each number's digits.
pub(crate) fn phone_search_tokens<'a>(phones: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut tokens = Vec::new();
    for p in phones {
        let digits: String = p.chars().filter(char::is_ascii_digit).collect();
        for start in 0..digits.len().saturating_sub(3) {
            tokens.push(digits[start..].to_owned());
        }
    }
    (!tokens.is_empty()).then(|| tokens.join(" "))
}

const COLUMNS: &str = "id, title, first_name, last_name, preferred_name, date_of_birth, sex,
    gender_identity, phone, phone_alt, email, address, emergency_contact, insurance_number,
    referral_source, occupation, general_notes, archived, created_at, updated_at, anonymised_at,
    pseudonym, birth_year";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Patient> {
    Ok(Patient {
        id: r.get(0)?,
        fields: PatientFields {
            title: r.get(1)?,
            first_name: r.get(2)?,
            last_name: r.get(3)?,
            preferred_name: r.get(4)?,
            date_of_birth: r.get(5)?,
            sex: r.get(6)?,
            gender_identity: r.get(7)?,
            phone: r.get(8)?,
            phone_alt: r.get(9)?,
            email: r.get(10)?,
            address: r.get(11)?,
            emergency_contact: r.get(12)?,
            insurance_number: r.get(13)?,
            referral_source: r.get(14)?,
            occupation: r.get(15)?,
            general_notes: r.get(16)?,
            archived: Some(r.get::<_, i64>(17)? == 1),
        },
        created_at: r.get(18)?,
        updated_at: r.get(19)?,
        anonymised_at: r.get(20)?,
        pseudonym: r.get(21)?,
        birth_year: r.get(22)?,
    })
}

pub(crate) fn load(conn: &rusqlite::Connection, id: &str) -> Result<Patient> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM patients WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("no patient with id {id}")))
}

/// Refuses new clinical content for a patient who does not exist or has been anonymised.
pub(crate) fn ensure_can_add_records(conn: &rusqlite::Connection, id: &str) -> Result<()> {
    let anonymised: Option<Option<String>> = conn
        .query_row(
            "SELECT anonymised_at FROM patients WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    match anonymised {
        None => Err(Error::NotFound(format!("no patient with id {id}"))),
        Some(Some(_)) => Err(Error::Conflict(
            "this patient has been anonymised; nothing can be added".into(),
        )),
        Some(None) => Ok(()),
    }
}

fn save(conn: &rusqlite::Connection, p: &Patient) -> Result<()> {
    let f = &p.fields;
    conn.execute(
        "INSERT INTO patients (id, title, first_name, last_name, preferred_name, date_of_birth, sex,
             gender_identity, phone, phone_alt, phone_digits, email, address, emergency_contact,
             insurance_number, referral_source, occupation, general_notes, archived, created_at,
             updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                 ?19, ?20, ?21)
         ON CONFLICT (id) DO UPDATE SET title = excluded.title, first_name = excluded.first_name,
             last_name = excluded.last_name, preferred_name = excluded.preferred_name,
             date_of_birth = excluded.date_of_birth, sex = excluded.sex,
             gender_identity = excluded.gender_identity, phone = excluded.phone,
             phone_alt = excluded.phone_alt, phone_digits = excluded.phone_digits,
             email = excluded.email, address = excluded.address,
             emergency_contact = excluded.emergency_contact,
             insurance_number = excluded.insurance_number,
             referral_source = excluded.referral_source, occupation = excluded.occupation,
             general_notes = excluded.general_notes, archived = excluded.archived,
             updated_at = excluded.updated_at",
        params![
            p.id,
            f.title,
            f.first_name,
            f.last_name,
            f.preferred_name,
            f.date_of_birth,
            f.sex,
            f.gender_identity,
            f.phone,
            f.phone_alt,
            f.phone_digits(),
            f.email,
            f.address,
            f.emergency_contact,
            f.insurance_number,
            f.referral_source,
            f.occupation,
            f.general_notes,
            i64::from(f.archived.unwrap_or(false)),
            p.created_at,
            p.updated_at
        ],
    )?;
    Ok(())
}

/// Turns what a person types into an FTS5 query: every term a quoted prefix match (so
/// punctuation in emails and dates is safe), all terms required. Digit runs also match phone
/// numbers typed with spaces.
fn fts_query(text: &str) -> Option<String> {
    let compact: String = text.chars().filter(|c| !" +()-.".contains(*c)).collect();
    let date_like = text.trim().as_bytes().get(4) == Some(&b'-');
    if !date_like && compact.len() >= 3 && compact.chars().all(|c| c.is_ascii_digit()) {
        // A phone number typed any way (one digit prefix, trunk zeros dropped), or a year.
        let digits = compact.trim_start_matches('0');
        if !digits.is_empty() {
            return Some(format!(
                "phone_digits : \"{digits}\"* OR date_of_birth : \"{compact}\"*"
            ));
        }
    }
    // Each term matches as a prefix; a whole-word match counts twice, so "smith" ranks Smith
    // above Smithers.
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|t| t.replace('"', ""))
        .filter(|t| !t.is_empty())
        .map(|t| format!("(\"{t}\" OR \"{t}\"*)"))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

fn summary(r: &Row<'_>) -> rusqlite::Result<PatientSummary> {
    Ok(PatientSummary {
        id: r.get(0)?,
        first_name: r.get(1)?,
        last_name: r.get(2)?,
        preferred_name: r.get(3)?,
        date_of_birth: r.get(4)?,
        phone: r.get(5)?,
        archived: r.get::<_, i64>(6)? == 1,
    })
}

/// Today in the clinic's time zone (a date of birth "in the future", a consent's date).
pub(crate) fn today(s: &Session) -> jiff::civil::Date {
    s.clock()
        .now()
        .to_zoned(crate::appointments::clinic_tz(s))
        .date()
}

impl Session {
    pub fn add_patient(&mut self, fields: PatientFields) -> Result<Patient> {
        let mut fields = fields;
        fields.normalise_and_validate(today(self))?;
        if fields.first_name.is_none() {
            return Err(Error::InvalidInput("first_name: required".into()));
        }
        if fields.last_name.is_none() {
            return Err(Error::InvalidInput("last_name: required".into()));
        }
        fields.archived = Some(fields.archived.unwrap_or(false));
        let now = rfc3339(self.clock().now());
        let id = uuid::Uuid::new_v4().to_string();
        let set: Vec<&str> = TEXT_FIELDS
            .iter()
            .copied()
            .filter(|n| fields.text(n).is_some_and(|v| v.is_some()))
            .collect();
        let event = Event::new("patient.create")
            .target("patient", &id)
            .detail("fields", set);
        let who = crate::patient_history::Author::of(self);
        self.gate(
            Need::Permission(Permission::PatientWrite),
            event,
            |tx, _| {
                let p = Patient {
                    id: id.clone(),
                    fields,
                    created_at: now.clone(),
                    updated_at: now.clone(),
                    anonymised_at: None,
                    pseudonym: None,
                    birth_year: None,
                };
                save(tx, &p)?;
                crate::patient_history::record(tx, &id, &who, &now, &p.fields.as_changes(), None)?;
                Ok(p)
            },
        )
    }

    pub fn show_patient(&mut self, id: &str) -> Result<Patient> {
        let event = Event::new("patient.view").target("patient", id);
        self.gate(Need::Permission(Permission::PatientRead), event, |tx, _| {
            load(tx, id)
        })
    }

    /// Applies the fields set in `changes`; the audit entry names the fields that changed, the
    /// rectification history keeps their old and new values.
    pub fn update_patient(&mut self, id: &str, changes: PatientFields) -> Result<Patient> {
        self.update_patient_with_request(id, changes, None)
    }

    /// As `update_patient`, for a correction the patient asked for: `request` (what they asked,
    /// in their words or the clinic's summary) is kept with every changed field's history.
    pub fn update_patient_with_request(
        &mut self,
        id: &str,
        changes: PatientFields,
        request: Option<&str>,
    ) -> Result<Patient> {
        let mut changes = changes;
        changes.normalise_and_validate(today(self))?;
        let request = match request.map(str::trim) {
            Some("") => {
                return Err(Error::InvalidInput(
                    "requested-by-patient: describe the patient's request".into(),
                ))
            }
            Some(r) if r.chars().count() > 2000 => {
                return Err(Error::InvalidInput(
                    "requested-by-patient: at most 2000 characters".into(),
                ))
            }
            other => other.map(str::to_owned),
        };
        let now = rfc3339(self.clock().now());
        let event = Event::new("patient.update")
            .target("patient", id)
            .detail("requested_by_patient", request.is_some());
        let who = crate::patient_history::Author::of(self);
        self.gate(
            Need::Permission(Permission::PatientWrite),
            event,
            |tx, ev| {
                let mut p = load(tx, id)?;
                if p.anonymised_at.is_some() {
                    return Err(Error::Conflict(
                        "this patient has been anonymised; the record cannot be changed".into(),
                    ));
                }
                let changed = p.fields.apply(&changes);
                if p.fields.first_name.is_none() || p.fields.last_name.is_none() {
                    return Err(Error::InvalidInput(
                        "first_name and last_name: required".into(),
                    ));
                }
                if !changed.is_empty() {
                    p.updated_at = now.clone();
                    save(tx, &p)?;
                    crate::patient_history::record(
                        tx,
                        id,
                        &who,
                        &now,
                        &changed,
                        request.as_deref(),
                    )?;
                }
                let names: Vec<&str> = changed.iter().map(|c| c.field).collect();
                *ev = ev.clone().detail("fields", names);
                Ok(p)
            },
        )
    }

    /// Reads the search index and the patient table once, so that their pages sit decrypted in
    /// this connection's page cache (64 MiB) before the first search: otherwise the first
    /// searches of a session decrypt every page they touch (the ranked join reads a row per
    /// match) and take several times longer than the rest. Returns nothing to the caller and
    /// shows no record, so it needs no permission and is not an access to record; a session
    /// that may not read patients skips it. A long-lived shell (the desktop app) calls it
    /// after sign-in; a one-shot CLI command gains nothing from it.
    pub fn warm_search_cache(&mut self) -> Result<()> {
        if !self.own_permissions()?.contains(&Permission::PatientRead) {
            return Ok(());
        }
        let conn = self.vault()?.conn();
        conn.query_row(
            "SELECT (SELECT sum(length(block)) FROM patients_fts_data),
                    (SELECT count(*) FROM patients_fts_idx),
                    (SELECT sum(length(first_name) + length(last_name) + archived) FROM patients)",
            [],
            |_| Ok(()),
        )?;
        Ok(())
    }

    /// Ranked prefix search over names, email, date of birth and phone digits. The search text
    /// is not recorded (it is often a name); the number of results is.
    pub fn search_patients(&mut self, text: &str, limit: u32) -> Result<Vec<PatientSummary>> {
        let query = fts_query(text);
        let event = Event::new("patient.search");
        self.gate(Need::Permission(Permission::PatientRead), event, |tx, ev| {
            let Some(q) = query else {
                return Err(Error::InvalidInput("query: type part of a name, phone, email or date of birth".into()));
            };
            let mut st = tx.prepare_cached(
                "SELECT p.id, p.first_name, p.last_name, p.preferred_name, p.date_of_birth, p.phone, p.archived
                 FROM patients_fts JOIN patients p ON p.rowid = patients_fts.rowid
                 WHERE patients_fts MATCH ?1 AND p.archived = 0
                 ORDER BY bm25(patients_fts, 10.0, 10.0, 5.0, 2.0, 2.0, 2.0) LIMIT ?2",
            )?;
            let rows = st
                .query_map(params![q, limit.clamp(1, 500)], summary)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            *ev = ev.clone().detail("count", rows.len());
            Ok(rows)
        })
    }

    pub fn list_patients(&mut self, archived: bool, limit: u32) -> Result<Vec<PatientSummary>> {
        let event = Event::new("patient.list").detail("archived", archived);
        self.gate(
            Need::Permission(Permission::PatientRead),
            event,
            |tx, ev| {
                let mut st = tx.prepare_cached(
                "SELECT id, first_name, last_name, preferred_name, date_of_birth, phone, archived
                 FROM patients WHERE archived = ?1 ORDER BY last_name, first_name LIMIT ?2",
            )?;
                let rows = st
                    .query_map(
                        params![i64::from(archived), limit.clamp(1, 100_000)],
                        summary,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                *ev = ev.clone().detail("count", rows.len());
                Ok(rows)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_becomes_a_safe_prefix_query() {
        assert_eq!(
            fts_query("jo smi").unwrap(),
            "(\"jo\" OR \"jo\"*) AND (\"smi\" OR \"smi\"*)"
        );
        assert_eq!(fts_query("a\"b").unwrap(), "(\"ab\" OR \"ab\"*)");
        assert!(fts_query("   ").is_none());
        assert!(fts_query("\"\"").is_none());
        assert!(fts_query("0412 345-678")
            .unwrap()
            .starts_with("phone_digits : \"412345678\"*"));
        assert_eq!(
            fts_query("1984-03").unwrap(),
            "(\"1984-03\" OR \"1984-03\"*)"
        );
    }

    #[test]
    fn validation_names_the_field() {
        let today: jiff::civil::Date = "2026-11-22".parse().unwrap();
        let mut f = PatientFields {
            date_of_birth: Some("2024-02-30".into()),
            ..Default::default()
        };
        assert!(f
            .normalise_and_validate(today)
            .unwrap_err()
            .to_string()
            .starts_with("date_of_birth: not a valid date"));
        let mut f = PatientFields {
            date_of_birth: Some("2027-01-01".into()),
            ..Default::default()
        };
        assert!(f
            .normalise_and_validate(today)
            .unwrap_err()
            .to_string()
            .contains("future"));
        let mut f = PatientFields {
            email: Some("jo at example".into()),
            ..Default::default()
        };
        assert!(f
            .normalise_and_validate(today)
            .unwrap_err()
            .to_string()
            .starts_with("email:"));
        let mut f = PatientFields {
            phone: Some("12".into()),
            ..Default::default()
        };
        assert!(f
            .normalise_and_validate(today)
            .unwrap_err()
            .to_string()
            .starts_with("phone:"));
        let mut f = PatientFields {
            phone: Some(" +61 (4) 1234-5678 ".into()),
            first_name: Some("  ".into()),
            ..Default::default()
        };
        f.normalise_and_validate(today).unwrap();
        assert_eq!(f.phone.as_deref(), Some("+61 (4) 1234-5678"));
        assert_eq!(f.first_name, None);
        let tokens = f.phone_digits().unwrap();
        assert!(
            tokens.starts_with("61412345678 1412345678 412345678"),
            "{tokens}"
        );
    }
}
