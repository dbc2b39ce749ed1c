//! Subject-access export (GDPR Art. 15 and 20, HIPAA right of access, APP 12): everything the
//! clinic holds about one patient, written to a new folder as
//! - `patient.fhir.json`: a FHIR R4 Bundle of type `collection` (Patient, Appointment, Encounter,
//!   DocumentReference for treatment notes — every version — and attachments, Invoice, Consent),
//! - `patient.json`: the same content in ClinVault's own plain JSON, plus the rectification
//!   history, legal holds, payments and the audit entries about access to the record,
//! - `summary.html` and `summary.pdf`: a page the patient can read,
//! - `attachments/`: the attachment files, decrypted.
//!
//! The export is the one place ClinVault writes patient data readable on disk, because that is
//! its purpose: an administrator (`patient.export`) asks for it, into a folder they choose that
//! must be new or empty, and the audit entry records how many records left the vault.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rusqlite::Connection;
use serde::Serialize;
use serde_json::{json, Value};

use crate::appointments::Appointment;
use crate::attachments::Attachment;
use crate::audit::Event;
use crate::clock::rfc3339;
use crate::consents::Consent;
use crate::crypto::Secret32;
use crate::error::{Error, Result};
use crate::invoices::Invoice;
use crate::legal_holds::LegalHold;
use crate::notes::Note;
use crate::patient_history::HistoryEntry;
use crate::patients::Patient;
use crate::permissions::Permission;
use crate::session::{Need, Session};
use crate::vault_dir::VaultDir;

#[derive(Clone, Debug, Serialize)]
pub struct Payment {
    pub id: String,
    pub amount_minor: i64,
    pub method: String,
    pub paid_on: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct InvoiceRecord {
    #[serde(flatten)]
    pub invoice: Invoice,
    pub payments: Vec<Payment>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AttachmentRecord {
    #[serde(flatten)]
    pub attachment: Attachment,
    /// Path of the decrypted copy, relative to the export folder.
    pub file: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AccessEntry {
    pub at: String,
    pub user: String,
    pub action: String,
    pub outcome: String,
}

/// Everything held about one patient.
#[derive(Clone, Debug, Serialize)]
pub struct SubjectAccessData {
    pub generated_at: String,
    pub patient: Patient,
    pub history: Vec<HistoryEntry>,
    pub consents: Vec<Consent>,
    pub legal_holds: Vec<LegalHold>,
    pub appointments: Vec<Appointment>,
    pub notes: Vec<Note>,
    pub invoices: Vec<InvoiceRecord>,
    pub attachments: Vec<AttachmentRecord>,
    pub access_log: Vec<AccessEntry>,
}

impl SubjectAccessData {
    pub fn record_count(&self) -> usize {
        1 + self.history.len()
            + self.consents.len()
            + self.legal_holds.len()
            + self.appointments.len()
            + self.notes.len()
            + self.invoices.len()
            + self.attachments.len()
            + self.access_log.len()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ExportSummary {
    pub out_dir: PathBuf,
    pub records: usize,
    pub files: Vec<String>,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// A new folder, or an existing empty one; never one that holds anything.
fn prepare_out_dir(out: &Path) -> Result<()> {
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::InvalidInput(format!(
                    "out: {} is not empty; choose a new folder",
                    out.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut b = fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            b.create(out)
                .map_err(io(format!("cannot create {}", out.display())))
        }
        Err(e) => Err(io(format!("cannot read {}", out.display()))(e)),
    }
}

fn safe_file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches('.');
    if trimmed.is_empty() {
        "file".into()
    } else {
        trimmed.chars().take(100).collect()
    }
}

fn gather(
    conn: &Connection,
    tz: &jiff::tz::TimeZone,
    patient_id: &str,
    now: &str,
) -> Result<SubjectAccessData> {
    let patient = crate::patients::load(conn, patient_id)?;
    let history = crate::patient_history::load(conn, patient_id)?;
    let consents = crate::consents::list(conn, patient_id)?;
    let legal_holds = crate::legal_holds::list(conn, patient_id)?;
    let appointments = {
        let mut st = conn.prepare(&format!(
            "{} WHERE a.patient_id = ?1 ORDER BY a.starts_at",
            crate::appointments::SELECT
        ))?;
        let rows = st
            .query_map([patient_id], crate::appointments::row(tz))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    };
    let ids = |sql: &str| -> Result<Vec<String>> {
        let mut st = conn.prepare(sql)?;
        let rows = st
            .query_map([patient_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    };
    let notes = ids("SELECT id FROM notes WHERE patient_id = ?1 ORDER BY created_at, id")?
        .iter()
        .map(|id| crate::notes::load(conn, id))
        .collect::<Result<Vec<_>>>()?;
    let mut invoices = Vec::new();
    for id in ids("SELECT id FROM invoices WHERE patient_id = ?1 ORDER BY created_at, id")? {
        let invoice = crate::invoices::load(conn, &id)?;
        let mut st = conn.prepare_cached(
            "SELECT id, amount_minor, method, paid_on FROM payments WHERE invoice_id = ?1
             ORDER BY paid_on, created_at",
        )?;
        let payments = st
            .query_map([&id], |r| {
                Ok(Payment {
                    id: r.get(0)?,
                    amount_minor: r.get(1)?,
                    method: r.get(2)?,
                    paid_on: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        invoices.push(InvoiceRecord { invoice, payments });
    }
    let attachments =
        ids("SELECT id FROM attachments WHERE patient_id = ?1 ORDER BY created_at, id")?
            .iter()
            .map(|id| {
                let (attachment, ..) = crate::attachments::load(conn, id)?;
                let file = format!(
                    "attachments/{}-{}",
                    id,
                    safe_file_name(&attachment.file_name)
                );
                Ok(AttachmentRecord { attachment, file })
            })
            .collect::<Result<Vec<_>>>()?;
    // Through the record lookup, as an administrator's search for the patient: entries about
    // the patient and about their notes, appointments, invoices and attachments, oldest first.
    let access_log = crate::audit_review::query(
        conn,
        &crate::audit_review::AuditFilter {
            target_type: Some("patient".to_owned()),
            target_id: Some(patient_id.to_owned()),
            limit: u32::MAX,
            ..Default::default()
        },
    )?
    .into_iter()
    .rev()
    .map(|e| AccessEntry {
        at: e.at,
        user: e.actor_name,
        action: e.action,
        outcome: e.outcome,
    })
    .collect();
    Ok(SubjectAccessData {
        generated_at: now.to_owned(),
        patient,
        history,
        consents,
        legal_holds,
        appointments,
        notes,
        invoices,
        attachments,
        access_log,
    })
}

fn money(minor: i64) -> Value {
    // FHIR decimals are JSON numbers; cents divide exactly enough for two places.
    json!(minor as f64 / 100.0)
}

fn urn(id: &str) -> String {
    format!("urn:uuid:{id}")
}

fn fhir_patient(p: &Patient) -> Value {
    let f = &p.fields;
    let mut r = json!({
        "resourceType": "Patient",
        "id": p.id,
        "active": f.archived != Some(true),
    });
    let mut name = serde_json::Map::new();
    name.insert("use".into(), json!("official"));
    if let Some(l) = &f.last_name {
        name.insert("family".into(), json!(l));
    }
    if let Some(g) = &f.first_name {
        name.insert("given".into(), json!([g]));
    }
    if let Some(t) = &f.title {
        name.insert("prefix".into(), json!([t]));
    }
    let mut names = vec![Value::Object(name)];
    if let Some(pn) = &f.preferred_name {
        names.push(json!({"use": "usual", "given": [pn]}));
    }
    r["name"] = json!(names);
    let mut telecom = Vec::new();
    for (v, system, use_) in [
        (&f.phone, "phone", "home"),
        (&f.phone_alt, "phone", "mobile"),
        (&f.email, "email", "home"),
    ] {
        if let Some(v) = v {
            telecom.push(json!({"system": system, "value": v, "use": use_}));
        }
    }
    if !telecom.is_empty() {
        r["telecom"] = json!(telecom);
    }
    if let Some(sex) = f.sex.as_deref().map(str::to_ascii_lowercase) {
        if ["male", "female", "other", "unknown"].contains(&sex.as_str()) {
            r["gender"] = json!(sex);
        }
    }
    if let Some(d) = &f.date_of_birth {
        r["birthDate"] = json!(d);
    }
    if let Some(a) = &f.address {
        r["address"] = json!([{"text": a}]);
    }
    if let Some(c) = &f.emergency_contact {
        r["contact"] = json!([{"name": {"text": c}}]);
    }
    if let Some(n) = &f.insurance_number {
        r["identifier"] = json!([{"type": {"text": "Insurance number"}, "value": n}]);
    }
    r
}

fn fhir_appointment(a: &Appointment, patient: &str) -> Value {
    let status = match a.status.as_str() {
        "completed" => "fulfilled",
        "no_show" => "noshow",
        "arrived" => "arrived",
        "cancelled" => "cancelled",
        _ => "booked",
    };
    let mut r = json!({
        "resourceType": "Appointment",
        "id": a.id,
        "status": status,
        "serviceType": [{"text": a.appointment_type}],
        "start": a.starts_at,
        "end": a.ends_at,
        "participant": [
            {"actor": {"reference": urn(patient), "type": "Patient"}, "status": "accepted"},
            {"actor": {"display": a.practitioner}, "status": "accepted"}
        ]
    });
    if let Some(n) = &a.note {
        r["comment"] = json!(n);
    }
    if let Some(c) = &a.cancel_reason {
        r["cancelationReason"] = json!({"text": c});
    }
    r
}

/// Visits that took place (arrived or completed) as encounters, linked to their appointment.
fn fhir_encounter(a: &Appointment, patient: &str, id: &str) -> Option<Value> {
    let status = match a.status.as_str() {
        "completed" => "finished",
        "arrived" => "arrived",
        _ => return None,
    };
    Some(json!({
        "resourceType": "Encounter",
        "id": id,
        "status": status,
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB",
            "display": "ambulatory"
        },
        "subject": {"reference": urn(patient)},
        "appointment": [{"reference": urn(&a.id)}],
        "period": {"start": a.starts_at, "end": a.ends_at},
        "participant": [{"individual": {"display": a.practitioner}}]
    }))
}

fn fhir_note(n: &Note, patient: &str) -> Value {
    let content: Vec<Value> = n
        .versions
        .iter()
        .map(|v| {
            let mut title = format!("Version {} ({})", v.version, v.kind);
            if let Some(reason) = &v.reason {
                let _ = write!(title, ": {reason}");
            }
            json!({"attachment": {
                "contentType": "text/plain; charset=utf-8",
                "data": base64::engine::general_purpose::STANDARD.encode(v.body.as_bytes()),
                "title": title,
                "creation": v.created_at
            }})
        })
        .collect();
    let mut r = json!({
        "resourceType": "DocumentReference",
        "id": n.id,
        "status": "current",
        "docStatus": if n.status == "final" { "final" } else { "preliminary" },
        "type": {"text": "Treatment note"},
        "subject": {"reference": urn(patient)},
        "date": n.created_at,
        "author": [{"display": n.practitioner}],
        "content": content
    });
    if let Some(a) = &n.appointment_id {
        r["context"] = json!({"related": [{"reference": urn(a)}]});
    }
    r
}

fn fhir_attachment(a: &AttachmentRecord, patient: &str) -> Value {
    json!({
        "resourceType": "DocumentReference",
        "id": a.attachment.id,
        "status": "current",
        "type": {"text": "Attachment"},
        "subject": {"reference": urn(patient)},
        "date": a.attachment.created_at,
        "description": a.attachment.file_name,
        "content": [{"attachment": {
            "contentType": a.attachment.media_type,
            "url": a.file,
            "size": a.attachment.size,
            "title": a.attachment.file_name,
            "creation": a.attachment.created_at
        }}]
    })
}

fn fhir_invoice(i: &InvoiceRecord, patient: &str) -> Value {
    let inv = &i.invoice;
    let status = match inv.status.as_str() {
        "draft" => "draft",
        "void" => "cancelled",
        _ if inv.balance_minor == 0 => "balanced",
        _ => "issued",
    };
    let lines: Vec<Value> = inv
        .lines
        .iter()
        .enumerate()
        .map(|(n, l)| {
            json!({
                "sequence": n + 1,
                "chargeItemCodeableConcept": {"text": l.description},
                "priceComponent": [
                    {"type": "base", "factor": l.quantity, "amount": {"value": money(l.net_minor)}},
                    {"type": "tax", "amount": {"value": money(l.tax_minor)}}
                ]
            })
        })
        .collect();
    let mut r = json!({
        "resourceType": "Invoice",
        "id": inv.id,
        "status": status,
        "subject": {"reference": urn(patient)},
        "lineItem": lines,
        "totalNet": {"value": money(inv.net_minor)},
        "totalGross": {"value": money(inv.total_minor)}
    });
    if let Some(n) = inv.number {
        r["identifier"] =
            json!([{"system": "urn:clinvault:invoice-number", "value": n.to_string()}]);
    }
    if let Some(d) = &inv.issued_on {
        r["date"] = json!(d);
    }
    if let Some(v) = &inv.void_reason {
        r["cancelledReason"] = json!(v);
    }
    let notes: Vec<Value> = i
        .payments
        .iter()
        .map(|p| {
            json!({"text": format!(
                "Payment of {} by {} on {}",
                crate::money::format_minor(p.amount_minor),
                p.method,
                p.paid_on
            )})
        })
        .collect();
    if !notes.is_empty() {
        r["note"] = json!(notes);
    }
    r
}

fn fhir_consent(c: &Consent, patient: &str) -> Value {
    let scope = match c.kind.as_str() {
        "treatment" => ("treatment", "Treatment"),
        "research" => ("research", "Research"),
        _ => ("patient-privacy", "Privacy Consent"),
    };
    let mut period = json!({"start": c.given_on});
    if let Some(w) = &c.withdrawn_on {
        period["end"] = json!(w);
    }
    let mut r = json!({
        "resourceType": "Consent",
        "id": c.id,
        "status": if c.active() { "active" } else { "inactive" },
        "scope": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": scope.0,
            "display": scope.1
        }]},
        "category": [{"coding": [{
            "system": "http://loinc.org",
            "code": "59284-0",
            "display": "Patient Consent"
        }], "text": c.kind}],
        "patient": {"reference": urn(patient)},
        "dateTime": format!("{}T00:00:00Z", c.given_on),
        "policyRule": {"text": c.basis.clone().unwrap_or_else(|| format!("{} consent", c.kind))},
        "provision": {"type": "permit", "period": period}
    });
    if let Some(n) = &c.note {
        r["policyRule"]["text"] = json!(format!(
            "{} ({n})",
            r["policyRule"]["text"].as_str().unwrap_or_default()
        ));
    }
    r
}

/// One audit entry about the patient's record as a FHIR R4 `AuditEvent`: who, when, what kind
/// of access and its outcome. Like the entry itself it carries no clinical content.
fn fhir_audit_event(e: &AccessEntry, patient: &str) -> Value {
    let verb = e.action.rsplit('.').next().unwrap_or_default();
    let action = match verb {
        "create" | "add" | "upload" | "book" => "C",
        "update" | "amend" | "rectify" | "finalise" | "status" | "move" | "give" | "withdraw" => {
            "U"
        }
        "delete" | "anonymise" | "erase" | "void" => "D",
        "read" | "view" | "list" | "search" | "history" | "download" => "R",
        _ => "E",
    };
    let outcome = match e.outcome.as_str() {
        "ok" => "0",
        "denied" => "4",
        _ => "8",
    };
    json!({
        "resourceType": "AuditEvent",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": {
            "system": "http://dicom.nema.org/resources/ontology/DCM",
            "code": "110110",
            "display": "Patient Record"
        },
        "subtype": [{"system": "urn:clinvault:audit-action", "code": e.action}],
        "action": action,
        "recorded": e.at,
        "outcome": outcome,
        "outcomeDesc": e.outcome,
        "agent": [{"who": {"display": e.user}, "requestor": true}],
        "source": {"observer": {"display": "ClinVault"}},
        "entity": [{"what": {"reference": urn(patient)}}]
    })
}

/// The FHIR R4 Bundle (type collection) of the patient's records.
pub fn fhir_bundle(d: &SubjectAccessData) -> Value {
    let pid = d.patient.id.as_str();
    let mut entries = vec![fhir_patient(&d.patient)];
    for a in &d.appointments {
        entries.push(fhir_appointment(a, pid));
        if let Some(e) = fhir_encounter(a, pid, &uuid::Uuid::new_v4().to_string()) {
            entries.push(e);
        }
    }
    entries.extend(d.notes.iter().map(|n| fhir_note(n, pid)));
    entries.extend(d.attachments.iter().map(|a| fhir_attachment(a, pid)));
    entries.extend(d.invoices.iter().map(|i| fhir_invoice(i, pid)));
    entries.extend(d.consents.iter().map(|c| fhir_consent(c, pid)));
    entries.extend(d.access_log.iter().map(|e| fhir_audit_event(e, pid)));
    let entry: Vec<Value> = entries
        .into_iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap_or_default().to_owned();
            json!({"fullUrl": urn(&id), "resource": r})
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "collection",
        "timestamp": d.generated_at,
        "entry": entry
    })
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Where the summary's content goes: an HTML page or PDF lines.
trait SummarySink {
    fn title(&mut self, text: &str);
    fn heading(&mut self, text: &str);
    fn subheading(&mut self, text: &str);
    fn para(&mut self, text: &str);
    fn pre(&mut self, text: &str);
    fn table(&mut self, title: &str, head: &[&str], rows: Vec<Vec<String>>);
}

struct Html(String);

impl SummarySink for Html {
    fn title(&mut self, text: &str) {
        let _ = writeln!(self.0, "<h1>{}</h1>", esc(text));
    }
    fn heading(&mut self, text: &str) {
        let _ = writeln!(self.0, "<h2>{}</h2>", esc(text));
    }
    fn subheading(&mut self, text: &str) {
        let _ = writeln!(self.0, "<h3>{}</h3>", esc(text));
    }
    fn para(&mut self, text: &str) {
        let _ = writeln!(self.0, "<p>{}</p>", esc(text));
    }
    fn pre(&mut self, text: &str) {
        let _ = writeln!(self.0, "<pre>{}</pre>", esc(text));
    }
    fn table(&mut self, title: &str, head: &[&str], rows: Vec<Vec<String>>) {
        let out = &mut self.0;
        let _ = writeln!(out, "<h2>{}</h2>", esc(title));
        if rows.is_empty() {
            out.push_str("<p>None.</p>\n");
            return;
        }
        out.push_str("<table>\n<tr>");
        for h in head {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr>\n");
        for r in rows {
            out.push_str("<tr>");
            for c in r {
                let _ = write!(out, "<td>{}</td>", esc(&c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
}

/// A self-contained page (no scripts, no external resources) the patient can read.
pub fn html_summary(d: &SubjectAccessData) -> String {
    let mut page = Html(String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Your records</title>\n<style>body{font-family:sans-serif;max-width:60em;\
         margin:2em auto}table{border-collapse:collapse;width:100%}td,th{border:1px solid #999;\
         padding:.3em;text-align:left;vertical-align:top}pre{white-space:pre-wrap}</style>\n\
         </head>\n<body>\n",
    ));
    write_summary(d, &mut page);
    page.0.push_str("</body>\n</html>\n");
    page.0
}

/// The same summary as a PDF (A4, Helvetica), for patients who want a document to keep or print.
pub fn pdf_summary(d: &SubjectAccessData) -> Vec<u8> {
    let mut lines = crate::summary_pdf::Lines::default();
    write_summary(d, &mut lines);
    lines.render()
}

impl SummarySink for crate::summary_pdf::Lines {
    fn title(&mut self, text: &str) {
        self.push(crate::summary_pdf::Style::Title, text);
    }
    fn heading(&mut self, text: &str) {
        self.gap();
        self.push(crate::summary_pdf::Style::Heading, text);
    }
    fn subheading(&mut self, text: &str) {
        self.push(crate::summary_pdf::Style::Bold, text);
    }
    fn para(&mut self, text: &str) {
        self.push(crate::summary_pdf::Style::Body, text);
    }
    fn pre(&mut self, text: &str) {
        for line in text.lines() {
            self.push(crate::summary_pdf::Style::Body, line);
        }
    }
    fn table(&mut self, title: &str, head: &[&str], rows: Vec<Vec<String>>) {
        self.heading(title);
        if rows.is_empty() {
            self.para("None.");
        }
        // One row per paragraph, "Field: value" pairs, empty cells left out.
        for r in rows {
            let cells: Vec<String> = head
                .iter()
                .zip(r)
                .filter(|(_, v)| !v.is_empty())
                .map(|(h, v)| format!("{h}: {v}"))
                .collect();
            self.push(crate::summary_pdf::Style::Body, &cells.join("  ·  "));
        }
    }
}

/// The summary's content, once, for both renderings (HTML and PDF).
fn write_summary(d: &SubjectAccessData, out: &mut dyn SummarySink) {
    let f = &d.patient.fields;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    out.title(&format!(
        "Records held about {} {}",
        opt(&f.first_name),
        opt(&f.last_name)
    ));
    out.para(&format!(
        "Produced {}. The file patient.fhir.json holds the same records in the FHIR R4 format \
         other health software reads; patient.json in plain JSON.",
        d.generated_at
    ));
    let demo: Vec<Vec<String>> = [
        ("Title", &f.title),
        ("First name", &f.first_name),
        ("Last name", &f.last_name),
        ("Preferred name", &f.preferred_name),
        ("Date of birth", &f.date_of_birth),
        ("Sex", &f.sex),
        ("Gender identity", &f.gender_identity),
        ("Phone", &f.phone),
        ("Other phone", &f.phone_alt),
        ("Email", &f.email),
        ("Address", &f.address),
        ("Emergency contact", &f.emergency_contact),
        ("Insurance number", &f.insurance_number),
        ("Referral source", &f.referral_source),
        ("Occupation", &f.occupation),
        ("General notes", &f.general_notes),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| vec![k.to_owned(), v]))
    .collect();
    out.table("Your details", &["Field", "Value"], demo);
    out.table(
        "Changes to your details",
        &["When", "By", "Field", "Before", "After", "Your request"],
        d.history
            .iter()
            .map(|h| {
                vec![
                    h.changed_at.clone(),
                    h.changed_by.clone(),
                    h.field.clone(),
                    opt(&h.old_value),
                    opt(&h.new_value),
                    opt(&h.patient_request),
                ]
            })
            .collect(),
    );
    out.table(
        "Consents",
        &["Kind", "Basis", "Given", "Withdrawn", "Note"],
        d.consents
            .iter()
            .map(|c| {
                vec![
                    c.kind.clone(),
                    opt(&c.basis),
                    c.given_on.clone(),
                    opt(&c.withdrawn_on),
                    opt(&c.note),
                ]
            })
            .collect(),
    );
    out.table(
        "Appointments",
        &[
            "Start (clinic time)",
            "Practitioner",
            "Type",
            "Status",
            "Note",
        ],
        d.appointments
            .iter()
            .map(|a| {
                vec![
                    a.starts_local.clone(),
                    a.practitioner.clone(),
                    a.appointment_type.clone(),
                    a.status.clone(),
                    opt(&a.note),
                ]
            })
            .collect(),
    );
    out.heading("Treatment notes");
    if d.notes.is_empty() {
        out.para("None.");
    }
    for n in &d.notes {
        out.subheading(&format!(
            "{} — {} ({})",
            n.created_at, n.practitioner, n.status
        ));
        for v in &n.versions {
            out.para(&format!(
                "Version {} ({}), {}{}",
                v.version,
                v.kind,
                v.created_at,
                v.reason
                    .as_deref()
                    .map(|r| format!(" — reason: {r}"))
                    .unwrap_or_default()
            ));
            out.pre(&v.body);
        }
    }
    out.table(
        "Invoices and payments",
        &["Number", "Date", "Status", "Total", "Paid", "Balance"],
        d.invoices
            .iter()
            .map(|i| {
                let inv = &i.invoice;
                vec![
                    inv.number
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "draft".into()),
                    opt(&inv.issued_on),
                    inv.status.clone(),
                    crate::money::format_minor(inv.total_minor),
                    crate::money::format_minor(inv.paid_minor),
                    crate::money::format_minor(inv.balance_minor),
                ]
            })
            .collect(),
    );
    out.table(
        "Attachments (in the attachments folder)",
        &["File", "Added", "Size (bytes)"],
        d.attachments
            .iter()
            .map(|a| {
                vec![
                    a.file.clone(),
                    a.attachment.created_at.clone(),
                    a.attachment.size.to_string(),
                ]
            })
            .collect(),
    );
    out.table(
        "Who accessed your record",
        &["When", "User", "Action", "Outcome"],
        d.access_log
            .iter()
            .map(|e| {
                vec![
                    e.at.clone(),
                    e.user.clone(),
                    e.action.clone(),
                    e.outcome.clone(),
                ]
            })
            .collect(),
    );
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = crate::vault_dir::create_private(path)?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io(format!("cannot write {}", path.display())))
}

fn write_export(
    conn: &Connection,
    vault: &VaultDir,
    out: &Path,
    d: &SubjectAccessData,
) -> Result<Vec<String>> {
    let mut files = Vec::new();
    let bundle = fhir_bundle(d);
    write_file(&out.join("patient.fhir.json"), pretty(&bundle)?.as_bytes())?;
    files.push("patient.fhir.json".to_owned());
    write_file(&out.join("patient.json"), pretty(d)?.as_bytes())?;
    files.push("patient.json".to_owned());
    write_file(&out.join("summary.html"), html_summary(d).as_bytes())?;
    files.push("summary.html".to_owned());
    write_file(&out.join("summary.pdf"), &pdf_summary(d))?;
    files.push("summary.pdf".to_owned());
    if !d.attachments.is_empty() {
        let dir = out.join("attachments");
        fs::create_dir(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        for a in &d.attachments {
            let (meta, sha, key) = crate::attachments::load(conn, &a.attachment.id)?;
            let mut key = key;
            let key = Secret32::from_slice_wiping(&mut key)
                .ok_or_else(|| Error::Integrity("an attachment key is malformed".into()))?;
            let path = out.join(&a.file);
            let mut f = crate::vault_dir::create_private(&path)?;
            crate::attachments::read_encrypted(
                &crate::attachments::path_of(vault, &meta.id),
                &key,
                &meta.id,
                meta.size,
                &sha,
                &mut f,
            )?;
            files.push(a.file.clone());
        }
    }
    Ok(files)
}

fn pretty<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v)
        .map_err(|e| Error::Internal(format!("cannot format the export: {e}")))
}

impl Session {
    /// Writes the subject-access export for one patient into `out` (new, or empty).
    pub fn export_patient(&mut self, patient_id: &str, out: &Path) -> Result<ExportSummary> {
        let vault = self.dir().clone();
        let tz = crate::appointments::clinic_tz(self);
        let now = rfc3339(self.clock().now());
        let event = Event::new("patient.export").target("patient", patient_id);
        let out_dir = out.to_path_buf();
        let created = !out_dir.exists();
        let mut prepared = false;
        let result = self.gate(
            Need::Permission(Permission::PatientExport),
            event,
            |tx, ev| {
                let data = gather(tx, &tz, patient_id, &now)?;
                prepare_out_dir(&out_dir)?;
                prepared = true;
                let files = write_export(tx, &vault, &out_dir, &data)?;
                let records = data.record_count();
                *ev = ev
                    .clone()
                    .detail("records", records)
                    .detail("files", files.len());
                Ok(ExportSummary {
                    out_dir: out_dir.clone(),
                    records,
                    files,
                })
            },
        );
        // An export that failed (a damaged attachment, a full disk, or its entry not written)
        // leaves none of the plaintext it had written. The folder was new or empty before.
        if result.is_err() && prepared {
            remove_written(&out_dir, created);
        }
        result
    }
}

/// Best effort: the export's error is what the user needs to see.
fn remove_written(out: &Path, created: bool) {
    if created {
        let _ = fs::remove_dir_all(out);
        return;
    }
    if let Ok(entries) = fs::read_dir(out) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_file_names_are_made_safe() {
        assert_eq!(
            esc("<b>\"Tom\" & 'Jo'</b>"),
            "&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jo&#39;&lt;/b&gt;"
        );
        assert_eq!(safe_file_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_file_name("x-ray 1.png"), "x-ray_1.png");
        assert_eq!(safe_file_name("..."), "file");
    }
}
