//! Treatment notes: written from a template or free text, kept as a draft until its
//! practitioner finalises it, then immutable — later changes are amendments with a reason, and
//! every version stays viewable. Reading needs `notes.read`; with the clinic option
//! `notes-restricted-to-treating`, only the note's own practitioner (and administrators) can.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::{BuiltinRole, Permission};
use crate::session::{Need, Session};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TemplateSection {
    pub title: String,
    /// "text", "choice" or "checkbox".
    pub kind: String,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NoteVersion {
    pub version: i64,
    pub kind: String,
    pub body: String,
    pub reason: Option<String>,
    pub author_id: String,
    pub created_at: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Note {
    pub id: String,
    pub patient_id: String,
    pub appointment_id: Option<String>,
    pub practitioner: String,
    pub status: String,
    pub created_at: String,
    pub finalised_at: Option<String>,
    /// Oldest first; the last one is the current text.
    pub versions: Vec<NoteVersion>,
}

fn validate_body(body: &str) -> Result<String> {
    let b = body.trim_end().to_owned();
    if b.trim().is_empty() {
        return Err(Error::InvalidInput("body: the note is empty".into()));
    }
    if b.len() > 1_000_000 {
        return Err(Error::InvalidInput("body: at most 1 MB of text".into()));
    }
    Ok(b)
}

pub(crate) fn load(conn: &rusqlite::Connection, id: &str) -> Result<Note> {
    let head = conn
        .query_row(
            "SELECT n.id, n.patient_id, n.appointment_id, u.username, n.status, n.created_at, n.finalised_at
             FROM notes n JOIN practitioners p ON p.id = n.practitioner_id JOIN users u ON u.id = p.user_id
             WHERE n.id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no note with id {id}")))?;
    let mut st = conn.prepare_cached(
        "SELECT version, kind, body, reason, author_id, created_at FROM note_versions WHERE note_id = ?1 ORDER BY version",
    )?;
    let versions = st
        .query_map([id], |r| {
            Ok(NoteVersion {
                version: r.get(0)?,
                kind: r.get(1)?,
                body: r.get(2)?,
                reason: r.get(3)?,
                author_id: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Note {
        id: head.0,
        patient_id: head.1,
        appointment_id: head.2,
        practitioner: head.3,
        status: head.4,
        created_at: head.5,
        finalised_at: head.6,
        versions,
    })
}

/// The practitioner record of the signed-in user, if they are one.
fn own_practitioner(conn: &rusqlite::Connection, user_id: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT id FROM practitioners WHERE user_id = ?1",
            [user_id],
            |r| r.get(0),
        )
        .optional()?)
}

fn note_practitioner(conn: &rusqlite::Connection, id: &str) -> Result<String> {
    note_column(conn, id, "SELECT practitioner_id FROM notes WHERE id = ?1")
}

fn note_patient(conn: &rusqlite::Connection, id: &str) -> Result<String> {
    note_column(conn, id, "SELECT patient_id FROM notes WHERE id = ?1")
}

fn note_column(conn: &rusqlite::Connection, id: &str, sql: &str) -> Result<String> {
    conn.query_row(sql, [id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no note with id {id}")))
}

impl Session {
    pub fn add_note_template(
        &mut self,
        name: &str,
        sections: &[TemplateSection],
    ) -> Result<String> {
        let name = name.trim().to_owned();
        if name.is_empty() || sections.is_empty() {
            return Err(Error::InvalidInput(
                "template: needs a name and at least one section".into(),
            ));
        }
        if let Some(s) = sections
            .iter()
            .find(|s| !["text", "choice", "checkbox"].contains(&s.kind.as_str()))
        {
            return Err(Error::InvalidInput(format!(
                "sections: {:?} is not text, choice or checkbox",
                s.kind
            )));
        }
        if let Some(s) = sections
            .iter()
            .find(|s| s.kind == "choice" && s.options.len() < 2)
        {
            return Err(Error::InvalidInput(format!(
                "sections: the choice {:?} needs at least two options",
                s.title
            )));
        }
        let json = serde_json::to_string(sections).map_err(|e| Error::Internal(e.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        let now = rfc3339(self.clock().now());
        let event = Event::new("note_template.add").target("note_template", &id);
        self.gate(Need::Permission(Permission::SettingsManage), event, |tx, _| {
            tx.execute("INSERT INTO note_templates (id, name, sections, created_at) VALUES (?1, ?2, ?3, ?4)", params![id, name, json, now])
                .map_err(|e| match e.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::ConstraintViolation) => Error::AlreadyExists(format!("a template named {name:?} exists")),
                    _ => Error::from(e),
                })?;
            Ok(id.clone())
        })
    }

    /// The names of the note templates, for the editor's picker.
    pub fn list_note_templates(&mut self) -> Result<Vec<String>> {
        let event = Event::new("note_template.list");
        self.gate(Need::Permission(Permission::NotesWrite), event, |tx, _| {
            let mut st =
                tx.prepare_cached("SELECT name FROM note_templates ORDER BY name COLLATE NOCASE")?;
            let names = st
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(names)
        })
    }

    /// The template's sections as a starting text for the editor.
    pub fn template_text(&mut self, name: &str) -> Result<String> {
        let event = Event::new("note_template.view");
        self.gate(Need::Permission(Permission::NotesWrite), event, |tx, _| {
            let json: String = tx
                .query_row(
                    "SELECT sections FROM note_templates WHERE name = ?1",
                    [name.trim()],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| {
                    Error::NotFound(format!("no note template named {:?}", name.trim()))
                })?;
            let sections: Vec<TemplateSection> = serde_json::from_str(&json)
                .map_err(|_| Error::Integrity("a note template is malformed".into()))?;
            Ok(sections
                .iter()
                .map(|s| match s.kind.as_str() {
                    "choice" => format!("## {}\n( ) {}\n", s.title, s.options.join("\n( ) ")),
                    "checkbox" => format!("## {}\n[ ] yes\n", s.title),
                    _ => format!("## {}\n\n", s.title),
                })
                .collect::<Vec<_>>()
                .join("\n"))
        })
    }

    /// Starts a draft note for a patient (optionally for an appointment), written by the
    /// signed-in practitioner.
    pub fn add_note(
        &mut self,
        patient_id: &str,
        appointment_id: Option<&str>,
        body: &str,
    ) -> Result<Note> {
        let body = validate_body(body)?;
        let me = self.user().id.to_string();
        let now = rfc3339(self.clock().now());
        let id = uuid::Uuid::new_v4().to_string();
        let event = Event::new("note.create")
            .target("patient", patient_id)
            .detail("note", id.as_str());
        self.gate(Need::Permission(Permission::NotesWrite), event, |tx, _| {
            let pr = own_practitioner(tx, &me)?.ok_or_else(|| Error::PermissionDenied("only a practitioner writes treatment notes".into()))?;
            crate::patients::ensure_can_add_records(tx, patient_id)?;
            if let Some(a) = appointment_id {
                let owner: Option<String> = tx.query_row("SELECT patient_id FROM appointments WHERE id = ?1", [a], |r| r.get(0)).optional()?;
                match owner {
                    None => return Err(Error::NotFound(format!("no appointment with id {a}"))),
                    Some(p) if p != patient_id => return Err(Error::InvalidInput("appointment: it belongs to another patient".into())),
                    Some(_) => {}
                }
            }
            tx.execute(
                "INSERT INTO notes (id, patient_id, appointment_id, practitioner_id, status, created_at) VALUES (?1, ?2, ?3, ?4, 'draft', ?5)",
                params![id, patient_id, appointment_id, pr, now],
            )?;
            tx.execute(
                "INSERT INTO note_versions (note_id, version, kind, body, author_id, created_at) VALUES (?1, 1, 'draft', ?2, ?3, ?4)",
                params![id, body, me, now],
            )?;
            load(tx, &id)
        })
    }

    /// Replaces the draft's text (autosave). Refused once the note is final.
    pub fn save_draft(&mut self, id: &str, body: &str) -> Result<Note> {
        let body = validate_body(body)?;
        let me = self.user().id.to_string();
        let now = rfc3339(self.clock().now());
        let event = Event::new("note.save_draft").target("note", id);
        self.gate(Need::Permission(Permission::NotesWrite), event, |tx, ev| {
            ev.about_patient(&note_patient(tx, id)?);
            self_is_author(tx, id, &me)?;
            let changed = tx.execute(
                "UPDATE note_versions SET body = ?1, created_at = ?2 WHERE note_id = ?3 AND kind = 'draft'",
                params![body, now, id],
            )?;
            if changed == 0 {
                return Err(Error::Conflict("the note is final; amend it instead".into()));
            }
            load(tx, id)
        })
    }

    /// Finalises a draft: only its own practitioner may, and afterwards it never changes.
    pub fn finalise_note(&mut self, id: &str) -> Result<Note> {
        let me = self.user().id.to_string();
        let now = rfc3339(self.clock().now());
        let event = Event::new("note.finalise").target("note", id);
        self.gate(Need::Permission(Permission::NotesFinalise), event, |tx, ev| {
            let n = load(tx, id)?;
            ev.about_patient(&n.patient_id);
            self_is_author(tx, id, &me)?;
            if n.status == "final" {
                return Err(Error::Conflict("the note is already final".into()));
            }
            // The draft row becomes the final version: copy it, then remove the draft.
            let draft = n.versions.iter().find(|v| v.kind == "draft").ok_or_else(|| Error::Integrity("a draft note has no draft text".into()))?;
            tx.execute(
                "INSERT INTO note_versions (note_id, version, kind, body, author_id, created_at) VALUES (?1, ?2, 'final', ?3, ?4, ?5)",
                params![id, draft.version + 1, draft.body, me, now],
            )?;
            tx.execute("DELETE FROM note_versions WHERE note_id = ?1 AND kind = 'draft'", [id])?;
            tx.execute("UPDATE notes SET status = 'final', finalised_at = ?1 WHERE id = ?2", params![now, id])?;
            load(tx, id)
        })
    }

    /// Adds an amendment (the full new text and why) to a final note; earlier versions stay.
    pub fn amend_note(&mut self, id: &str, body: &str, reason: &str) -> Result<Note> {
        let body = validate_body(body)?;
        let reason = reason.trim().to_owned();
        if reason.is_empty() {
            return Err(Error::InvalidInput(
                "reason: an amendment needs a reason".into(),
            ));
        }
        let me = self.user().id.to_string();
        let now = rfc3339(self.clock().now());
        let event = Event::new("note.amend").target("note", id);
        // An amendment starts from the note's text and answers with every version, so it needs
        // what reading the note needs, not only the right to write.
        self.authorize(Need::Permission(Permission::NotesRead), event.clone())?;
        self.gate(Need::Permission(Permission::NotesWrite), event, |tx, ev| {
            let n = load(tx, id)?;
            ev.about_patient(&n.patient_id);
            check_restriction(tx, id, &me)?;
            if n.status != "final" {
                return Err(Error::Conflict("the note is still a draft; edit it instead".into()));
            }
            let next = n.versions.last().map(|v| v.version + 1).unwrap_or(1);
            tx.execute(
                "INSERT INTO note_versions (note_id, version, kind, body, reason, author_id, created_at) VALUES (?1, ?2, 'amendment', ?3, ?4, ?5, ?6)",
                params![id, next, body, reason, me, now],
            )?;
            load(tx, id)
        })
    }

    /// A note with all its versions, for those who may read it.
    pub fn show_note(&mut self, id: &str) -> Result<Note> {
        let me = self.user().id.to_string();
        let event = Event::new("note.view").target("note", id);
        self.gate(Need::Permission(Permission::NotesRead), event, |tx, ev| {
            let n = load(tx, id)?;
            ev.about_patient(&n.patient_id);
            check_restriction(tx, id, &me)?;
            Ok(n)
        })
    }
}

/// Whether `notes-restricted-to-treating` limits what `user_id` reads: the setting is on and
/// the user is not an administrator. Read on the operation's transaction, not from the
/// session: the setting may have been changed by another program, or the role since sign-in.
pub(crate) fn restricted_for(conn: &rusqlite::Connection, user_id: &str) -> Result<bool> {
    if !crate::policy::Policy::load(conn)?.notes_restricted_to_treating {
        return Ok(false);
    }
    let role: Option<String> = conn
        .prepare_cached("SELECT role FROM users WHERE id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()?;
    Ok(role.as_deref() != Some(BuiltinRole::Administrator.name()))
}

/// With `notes-restricted-to-treating on`, only the note's own practitioner (and an
/// administrator) may read it.
fn check_restriction(conn: &rusqlite::Connection, id: &str, me: &str) -> Result<()> {
    if restricted_for(conn, me)? {
        let mine = own_practitioner(conn, me)?;
        if mine.as_deref() != Some(note_practitioner(conn, id)?.as_str()) {
            return Err(Error::PermissionDenied(
                "this clinic restricts notes to the treating practitioner".into(),
            ));
        }
    }
    Ok(())
}

fn self_is_author(conn: &rusqlite::Connection, id: &str, me: &str) -> Result<()> {
    let owner = note_practitioner(conn, id)?;
    if own_practitioner(conn, me)?.as_deref() != Some(owner.as_str()) {
        return Err(Error::PermissionDenied(
            "only the note's own practitioner can edit or finalise it".into(),
        ));
    }
    Ok(())
}
