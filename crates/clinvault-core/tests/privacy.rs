//! Privacy and compliance against a real vault: rectification history, consents, legal holds
//! and erasure by anonymisation — checked down to the decrypted pages on disk.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod support;

use support::{plaintext, secret, ADMIN_PASS, USER_PASS};

use std::path::Path;

use clinvault_core::appointments::Booking;
use clinvault_core::audit_review::AuditFilter;
use clinvault_core::consents::NewConsent;
use clinvault_core::patients::PatientFields;
use clinvault_core::{ErrorKind, Session, VaultDir};

fn sign_in(dir: &VaultDir, user: &str) -> Session {
    let pass = if user == "admin" {
        ADMIN_PASS
    } else {
        USER_PASS
    };
    support::sign_in(dir, user, pass)
}

struct Clinic {
    tmp: tempfile::TempDir,
    dir: VaultDir,
}

fn clinic() -> Clinic {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    support::new_vault(&dir);
    let mut a = sign_in(&dir, "admin");
    for (u, r) in [("sam", "practitioner"), ("rita", "receptionist")] {
        a.add_user(u, None, r, &secret(USER_PASS)).unwrap();
    }
    a.add_practitioner("sam").unwrap();
    a.set_working_hours("sam", "Mon", "09:00-17:00").unwrap();
    a.add_appointment_type("Initial consult", 45, "95.00", Some("10"))
        .unwrap();
    Clinic { tmp, dir }
}

fn add(s: &mut Session, first: &str, last: &str) -> String {
    s.add_patient(PatientFields {
        first_name: Some(first.into()),
        last_name: Some(last.into()),
        ..Default::default()
    })
    .unwrap()
    .id
}

#[test]
fn every_field_change_is_kept_with_who_when_and_the_patients_request() {
    let c = clinic();
    let mut rita = sign_in(&c.dir, "rita");
    let id = add(&mut rita, "Jon", "Smyth");
    rita.update_patient_with_request(
        &id,
        PatientFields {
            first_name: Some("John".into()),
            last_name: Some("Smith".into()),
            ..Default::default()
        },
        Some("Patient wrote: my name is misspelt"),
    )
    .unwrap();
    rita.update_patient(
        &id,
        PatientFields {
            email: Some("john@example.com".into()),
            last_name: Some("Smith".into()), // unchanged: no history row
            ..Default::default()
        },
    )
    .unwrap();
    assert!(rita
        .update_patient_with_request(&id, PatientFields::default(), Some("  "))
        .unwrap_err()
        .to_string()
        .starts_with("requested-by-patient:"));

    let h = rita.patient_history(&id).unwrap();
    type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
    let rows: Vec<Row<'_>> = h
        .iter()
        .map(|e| {
            (
                e.field.as_str(),
                e.old_value.as_deref(),
                e.new_value.as_deref(),
                e.patient_request.as_deref(),
            )
        })
        .collect();
    let req = Some("Patient wrote: my name is misspelt");
    assert_eq!(
        rows,
        [
            ("first_name", None, Some("Jon"), None),
            ("last_name", None, Some("Smyth"), None),
            ("first_name", Some("Jon"), Some("John"), req),
            ("last_name", Some("Smyth"), Some("Smith"), req),
            ("email", None, Some("john@example.com"), None),
        ]
    );
    assert!(h.iter().all(|e| e.changed_by == "rita"));
    assert_eq!(h[2].change_id, h[3].change_id);
    assert_ne!(h[3].change_id, h[4].change_id);
    drop(rita);

    // The audit trail names the fields, never the values or the request.
    let mut admin = sign_in(&c.dir, "admin");
    let entries = admin
        .audit_list(&AuditFilter {
            action: Some("patient.update".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(entries.len(), 2);
    let text = serde_json::to_string(&entries).unwrap();
    assert!(text.contains("first_name") && text.contains("\"requested_by_patient\":true"));
    for value in ["Jon", "Smyth", "misspelt", "john@example"] {
        assert!(!text.contains(value), "{value} in the audit trail");
    }
    // Only roles with patient.read see the history.
    admin
        .create_role(
            "noreader",
            &[clinvault_core::permissions::Permission::AppointmentsRead],
        )
        .unwrap();
    admin
        .add_user("nora", None, "noreader", &secret(USER_PASS))
        .unwrap();
    drop(admin);
    assert_eq!(
        sign_in(&c.dir, "nora")
            .patient_history(&id)
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn consents_are_given_and_withdrawn_with_dates_and_a_lawful_basis() {
    let c = clinic();
    let mut rita = sign_in(&c.dir, "rita");
    let id = add(&mut rita, "Ann", "Jones");
    let basis = rita
        .record_consent(
            &id,
            &NewConsent {
                kind: "processing",
                basis: Some("gdpr-9.2.h"),
                note: None,
                given_on: Some("2026-01-10"),
            },
        )
        .unwrap();
    assert_eq!(basis.basis.as_deref(), Some("gdpr-9.2.h"));
    let email = rita
        .record_consent(
            &id,
            &NewConsent {
                kind: "email",
                basis: None,
                note: Some("reminders only"),
                given_on: Some("2026-02-01"),
            },
        )
        .unwrap();
    assert!(rita.has_consent(&id, "email").unwrap());
    assert_eq!(
        rita.withdraw_consent(&email.id, Some("2026-01-31"))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    let w = rita
        .withdraw_consent(&email.id, Some("2026-03-05"))
        .unwrap();
    assert_eq!(w.withdrawn_on.as_deref(), Some("2026-03-05"));
    assert_eq!(w.withdrawn_by.as_deref(), Some("rita"));
    assert_eq!(
        rita.withdraw_consent(&email.id, None).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert!(!rita.has_consent(&id, "email").unwrap());
    let all = rita.list_consents(&id).unwrap();
    assert_eq!(all.len(), 2, "withdrawn consents stay on record");
    assert_eq!(
        rita.record_consent(
            "nobody",
            &NewConsent {
                kind: "sms",
                basis: None,
                note: None,
                given_on: None
            }
        )
        .unwrap_err()
        .kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn a_legal_hold_blocks_anonymisation_until_released_and_only_admins_place_it() {
    let c = clinic();
    let mut rita = sign_in(&c.dir, "rita");
    let id = add(&mut rita, "Hal", "Held");
    assert_eq!(
        rita.place_legal_hold(&id, "complaint").unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    drop(rita);
    let mut admin = sign_in(&c.dir, "admin");
    assert_eq!(
        admin.place_legal_hold(&id, " ").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let hold = admin.place_legal_hold(&id, "Court order 2026/114").unwrap();
    assert_eq!(hold.placed_by, "admin");
    assert_eq!(
        admin.place_legal_hold(&id, "again").unwrap_err().kind(),
        ErrorKind::Conflict
    );
    let e = admin.anonymise_patient(&id, &id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("legal hold"), "{e}");
    assert_eq!(
        admin
            .show_patient(&id)
            .unwrap()
            .fields
            .first_name
            .as_deref(),
        Some("Hal")
    );

    let released = admin.release_legal_hold(&id, Some("case closed")).unwrap();
    assert!(released.released_at.is_some());
    assert_eq!(
        admin.release_legal_hold(&id, None).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let holds = admin.legal_holds(&id).unwrap();
    assert_eq!(holds.len(), 1);
    assert!(!holds[0].active());
    admin.anonymise_patient(&id, &id).unwrap();
}

/// Every file under `root`, recursively.
fn files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// What an attacker holding the database key finds: every file raw, and the database and its
/// log decrypted page by page (free and stale pages included).
fn disk_view(root: &Path, dir: &VaultDir, key: &str) -> Vec<(String, Vec<u8>)> {
    let mut views = Vec::new();
    for f in files(root) {
        views.push((f.display().to_string(), std::fs::read(&f).unwrap()));
    }
    let db = std::fs::read(dir.db_file()).unwrap();
    views.push(("vault.db decrypted".into(), plaintext::database(&db, key)));
    let wal_path = dir.db_file().with_extension("db-wal");
    if let Ok(wal) = std::fs::read(&wal_path) {
        views.push(("vault.db-wal decrypted".into(), plaintext::wal(&wal, key)));
    }
    views
}

/// Where `marker` occurs, ignoring ASCII case (the full-text index keeps lower-cased tokens)
/// and its first two characters (the index stores a term after the prefix it shares with the
/// term before it).
fn found(views: &[(String, Vec<u8>)], marker: &str) -> Vec<String> {
    let needle = marker.to_ascii_lowercase();
    let needle = &needle[2..];
    views
        .iter()
        .filter(|(_, bytes)| plaintext::contains(&bytes.to_ascii_lowercase(), needle))
        .map(|(name, _)| name.clone())
        .collect()
}

const MARKERS: &[&str] = &[
    "Zorblattine",
    "Quixmoorova",
    "Oldsurnamemarker",
    "zorb.marker@example.org",
    "0491570156",
    "Markerstreet",
    "Generalnotesmarker",
    "Clinicalnotemarker",
    "Amendmentmarker",
    "Attachmentcontentmarker",
    "Attachmentnamemarker",
    "Appointmentnotemarker",
    "Patientrequestmarker",
    "Consentnotemarker",
    "Holdreasonmarker",
    "1971-08-14",
];

#[test]
fn anonymisation_leaves_no_identity_in_search_or_on_disk_and_keeps_the_money() {
    let c = clinic();
    let mut rita = sign_in(&c.dir, "rita");
    let id = rita
        .add_patient(PatientFields {
            first_name: Some("Zorblattine".into()),
            last_name: Some("Oldsurnamemarker".into()),
            email: Some("zorb.marker@example.org".into()),
            phone: Some("0491 570 156".into()),
            address: Some("12 Markerstreet, Testville".into()),
            general_notes: Some("Generalnotesmarker: prefers mornings".into()),
            date_of_birth: Some("1971-08-14".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    rita.update_patient_with_request(
        &id,
        PatientFields {
            last_name: Some("Quixmoorova".into()),
            ..Default::default()
        },
        Some("Patientrequestmarker: surname after marriage"),
    )
    .unwrap();
    rita.record_consent(
        &id,
        &NewConsent {
            kind: "sms",
            basis: None,
            note: Some("Consentnotemarker"),
            given_on: None,
        },
    )
    .unwrap();
    let other = add(&mut rita, "Bystander", "Keptintact");
    let appt = rita
        .book_appointment(&Booking {
            patient_id: &id,
            practitioner: "sam",
            appointment_type: "Initial consult",
            start_local: "2026-03-02T10:00",
            weekly_occurrences: 1,
            allow_override: false,
        })
        .unwrap()[0]
        .id
        .clone();
    rita.set_appointment_note(&appt, "Appointmentnotemarker: bring x-rays")
        .unwrap();
    let inv = rita.invoice_appointment(&appt).unwrap();
    rita.record_payment(&inv.id, "50.00", "card", None).unwrap();
    rita.add_attachment(
        &id,
        "Attachmentnamemarker.txt",
        &mut "Attachmentcontentmarker letter".as_bytes(),
    )
    .unwrap();
    drop(rita);
    let mut sam = sign_in(&c.dir, "sam");
    let n = sam
        .add_note(&id, Some(&appt), "Clinicalnotemarker: lower back")
        .unwrap();
    sam.finalise_note(&n.id).unwrap();
    sam.amend_note(&n.id, "Amendmentmarker: and neck", "review")
        .unwrap();
    drop(sam);

    let mut admin = sign_in(&c.dir, "admin");
    admin.place_legal_hold(&id, "Holdreasonmarker").unwrap();
    admin.release_legal_hold(&id, None).unwrap();
    let revenue_before =
        serde_json::to_value(admin.revenue_report("2026-01-01", "2026-12-31").unwrap()).unwrap();
    let key = admin.export_db_key(&secret(ADMIN_PASS), None).unwrap();
    let key = key.as_str().to_owned();

    // Positive control: before erasure the decrypted pages do hold the values, so the scan
    // below can find what it looks for.
    let before = disk_view(c.tmp.path(), &c.dir, &key);
    for m in [
        "Zorblattine",
        "Clinicalnotemarker",
        "Patientrequestmarker",
        "Consentnotemarker",
    ] {
        assert!(
            !found(&before, m).is_empty(),
            "control: {m} should be on disk before"
        );
    }
    for m in MARKERS {
        assert!(
            !found(&before, m).iter().any(|n| !n.contains("decrypted")),
            "{m} readable without the key before erasure"
        );
    }

    assert_eq!(
        admin
            .anonymise_patient(&id, "something else")
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    drop(admin);
    assert_eq!(
        sign_in(&c.dir, "rita")
            .anonymise_patient(&id, &id)
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );

    let mut admin = sign_in(&c.dir, "admin");
    let done = admin.anonymise_patient(&id, &id).unwrap();
    assert!(done.pseudonym.starts_with("ANON-"));
    assert_eq!(
        (
            done.notes_removed,
            done.attachments_removed,
            done.invoices_kept
        ),
        (1, 1, 1)
    );
    assert!(done.log_truncated);
    assert_eq!(
        admin.anonymise_patient(&id, &id).unwrap_err().kind(),
        ErrorKind::Conflict
    );

    let p = admin.show_patient(&id).unwrap();
    assert_eq!(p.fields.first_name.as_deref(), Some("Anonymised"));
    assert_eq!(p.fields.last_name.as_deref(), Some(done.pseudonym.as_str()));
    assert_eq!(p.fields.date_of_birth, None);
    assert_eq!(
        p.birth_year, None,
        "the year is kept only when the setting says so"
    );
    assert!(admin.search_patients("Zorb", 10).unwrap().is_empty());
    assert!(admin.search_patients("0491570156", 10).unwrap().is_empty());
    assert_eq!(admin.search_patients("Bystander", 10).unwrap()[0].id, other);
    assert!(admin.list_attachments(&id).unwrap().is_empty());
    assert_eq!(
        admin.show_note(&n.id).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(admin
        .patient_history(&id)
        .unwrap()
        .iter()
        .all(|h| h.old_value.is_none() && h.new_value.is_none() && h.patient_request.is_none()));
    assert_eq!(
        admin
            .update_patient(
                &id,
                PatientFields {
                    first_name: Some("Back".into()),
                    ..Default::default()
                }
            )
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    // Nothing new can be attached to the erased identity.
    assert_eq!(
        admin
            .add_attachment(&id, "x.txt", &mut "x".as_bytes())
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    // A subject-access export of the anonymised record holds none of it either.
    let export_dir = c.tmp.path().join("after-export");
    admin.export_patient(&id, &export_dir).unwrap();
    let exported: Vec<(String, Vec<u8>)> = files(&export_dir)
        .into_iter()
        .map(|f| (f.display().to_string(), std::fs::read(&f).unwrap()))
        .collect();
    assert!(!exported.is_empty());
    for m in MARKERS {
        assert!(
            found(&exported, m).is_empty(),
            "{m} in the export: {:?}",
            found(&exported, m)
        );
    }
    std::fs::remove_dir_all(&export_dir).unwrap();
    // The money is untouched.
    let kept = admin.show_invoice(&inv.id).unwrap();
    assert_eq!(kept.number, inv.number);
    assert_eq!(admin.patient_balance(&id).unwrap(), inv.total_minor - 5000);
    let revenue_after =
        serde_json::to_value(admin.revenue_report("2026-01-01", "2026-12-31").unwrap()).unwrap();
    assert_eq!(revenue_before, revenue_after);
    // The audit entry does not carry the erased identity.
    let entries = admin
        .audit_list(&AuditFilter {
            action: Some("patient.anonymise".into()),
            ..Default::default()
        })
        .unwrap();
    let text = serde_json::to_string(&entries).unwrap();
    assert!(text.contains(&done.pseudonym));
    for m in MARKERS {
        assert!(!text.contains(m), "{m} in the audit entry");
    }

    // Nothing on disk, raw or decrypted with the database key, free pages and log included —
    // while the session is still open (the log is in use) and after everyone signed out.
    let open = disk_view(c.tmp.path(), &c.dir, &key);
    for m in MARKERS {
        assert!(
            found(&open, m).is_empty(),
            "{m} on disk in {:?}",
            found(&open, m)
        );
    }
    drop(admin);
    let after = disk_view(c.tmp.path(), &c.dir, &key);
    for m in MARKERS {
        assert!(
            found(&after, m).is_empty(),
            "{m} still on disk in {:?}",
            found(&after, m)
        );
    }
    // The bystander's record is untouched, so the scan is not passing on an emptied file.
    assert!(!found(&after, "Keptintact").is_empty());
}

#[test]
fn the_birth_year_is_kept_only_when_the_clinic_chose_it() {
    let c = clinic();
    let mut admin = sign_in(&c.dir, "admin");
    assert_eq!(
        sign_in(&c.dir, "rita")
            .set_privacy_setting("anonymise-keep-birth-year", "on")
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
    admin
        .set_privacy_setting("anonymise-keep-birth-year", "on")
        .unwrap();
    let id = admin
        .add_patient(PatientFields {
            first_name: Some("Yara".into()),
            last_name: Some("Year".into()),
            date_of_birth: Some("1984-02-29".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    admin.anonymise_patient(&id, &id).unwrap();
    let p = admin.show_patient(&id).unwrap();
    assert_eq!((p.birth_year, p.fields.date_of_birth), (Some(1984), None));
}

fn sign_in_at(dir: &VaultDir, user: &str, when: &str) -> Session {
    let ts: jiff::Timestamp = when.parse().unwrap();
    Session::sign_in_with(
        dir,
        user,
        &secret(ADMIN_PASS),
        None,
        clinvault_core::SessionConfig {
            device: "desk".into(),
            clock: std::sync::Arc::new(clinvault_core::clock::ManualClock::at(ts.as_second())),
        },
    )
    .unwrap()
}

fn book(s: &mut Session, patient: &str, start: &str) -> String {
    s.book_appointment(&Booking {
        patient_id: patient,
        practitioner: "sam",
        appointment_type: "Initial consult",
        start_local: start,
        weekly_occurrences: 1,
        allow_override: false,
    })
    .unwrap()[0]
        .id
        .clone()
}

#[test]
fn a_retention_run_removes_what_is_due_skips_holds_and_minors_and_says_so_without_names() {
    let c = clinic();
    // A clinic ahead of UTC: a morning visit is the day before in UTC, and must not make its
    // records due a day early.
    sign_in(&c.dir, "admin")
        .set_policy("clinic-timezone", "Australia/Sydney")
        .unwrap();
    let mut rita = sign_in(&c.dir, "rita");
    let mk = |s: &mut Session, first: &str, dob: &str| {
        s.add_patient(PatientFields {
            first_name: Some(first.into()),
            last_name: Some("Retentionmarker".into()),
            date_of_birth: Some(dob.into()),
            ..Default::default()
        })
        .unwrap()
        .id
    };
    let adult = mk(&mut rita, "Adela", "1970-01-01");
    let child = mk(&mut rita, "Chico", "2016-02-29");
    let held = mk(&mut rita, "Helga", "1965-01-01");
    let recent = mk(&mut rita, "Rena", "1980-01-01");
    let booked = mk(&mut rita, "Futura", "1975-01-01");
    let a1 = book(&mut rita, &adult, "2026-03-02T09:00");
    book(&mut rita, &booked, "2026-03-02T13:00");
    book(&mut rita, &child, "2026-03-02T10:00");
    book(&mut rita, &held, "2026-03-02T11:00");
    book(&mut rita, &recent, "2026-03-02T12:00");
    let inv = rita.invoice_appointment(&a1).unwrap();
    drop(rita);

    // Years later the recent patient came back.
    let mut admin = sign_in_at(&c.dir, "admin", "2032-01-10T10:00:00Z");
    admin
        .set_working_hours("sam", "Mon", "09:00-17:00")
        .unwrap();
    book(&mut admin, &recent, "2032-01-12T09:00");
    admin.place_legal_hold(&held, "pending claim").unwrap();
    admin
        .export_backup(&c.tmp.path().join("2032.cvbackup"), None, &mut |_, _| true)
        .unwrap();
    drop(admin);

    let mut admin = sign_in_at(&c.dir, "admin", "2033-06-01T10:00:00Z");
    // Until the clinic picks a schedule nothing is due.
    let plan = admin.retention_plan().unwrap();
    assert!(plan.patients_to_anonymise.is_empty() && plan.invoices_to_delete.is_empty());
    assert_eq!(
        admin.set_retention_preset("atlantis").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let rules = admin.set_retention_preset("australia").unwrap();
    assert_eq!((rules.clinical_years, rules.audit_years), (7, 7));
    assert_eq!(
        admin
            .set_retention("financial-years", "6")
            .unwrap()
            .financial_years,
        6
    );
    assert_eq!(
        admin.set_retention("audit-years", "6").unwrap().audit_years,
        6
    );
    assert_eq!(admin.policy().audit_retention_years, 6);
    // Futura, last seen in 2026 too, is booked to come back next week.
    book(&mut admin, &booked, "2033-06-06T09:00");

    let plan = admin.retention_plan().unwrap();
    let due: Vec<&str> = plan
        .patients_to_anonymise
        .iter()
        .map(|d| d.patient_id.as_str())
        .collect();
    assert_eq!(
        due,
        [adult.as_str()],
        "the child (until 25), the recent patient and the one booked to come back are not due"
    );
    assert_eq!(plan.patients_to_anonymise[0].due_on, "2033-03-02");
    assert_eq!(plan.held_patients_skipped, std::slice::from_ref(&held));
    assert_eq!(plan.invoices_to_delete, std::slice::from_ref(&inv.id));
    assert!(
        plan.backups_past_retention.is_empty(),
        "the backup of 2032 is not yet 7 years old in mid-2033"
    );
    let text = serde_json::to_string(&plan).unwrap();
    for name in ["Adela", "Chico", "Helga", "Rena", "Retentionmarker"] {
        assert!(!text.contains(name), "{name} in the plan");
    }

    let report = admin.retention_run().unwrap();
    assert_eq!(
        (report.patients_anonymised, report.invoices_deleted),
        (1, 1)
    );
    assert!(
        report.audit_entries_pruned > 0,
        "entries from 2026 are past 6 years in mid-2033: {report:?}"
    );
    assert_eq!(
        admin
            .show_patient(&adult)
            .unwrap()
            .fields
            .first_name
            .as_deref(),
        Some("Anonymised")
    );
    assert_eq!(
        admin.show_invoice(&inv.id).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    for (id, name) in [
        (&child, "Chico"),
        (&held, "Helga"),
        (&recent, "Rena"),
        (&booked, "Futura"),
    ] {
        assert_eq!(
            admin.show_patient(id).unwrap().fields.first_name.as_deref(),
            Some(name)
        );
    }
    assert!(admin.verify_audit().unwrap().intact);
    // A second run finds nothing more.
    let again = admin.retention_plan().unwrap();
    assert!(again.patients_to_anonymise.is_empty() && again.invoices_to_delete.is_empty());
    drop(admin);

    // The child's records fall due in 2041 (25th birthday of a 29 February child: 1 March).
    let mut admin = sign_in_at(&c.dir, "admin", "2041-03-02T10:00:00Z");
    admin.release_legal_hold(&held, None).unwrap();
    let plan = admin.retention_plan().unwrap();
    assert_eq!(
        plan.backups_past_retention.len(),
        1,
        "the 2032 backup is flagged in 2041"
    );
    assert!(plan.backups_past_retention[0].starts_with("2032-01-10"));
    let mut due: Vec<(&str, &str)> = plan
        .patients_to_anonymise
        .iter()
        .map(|d| (d.patient_id.as_str(), d.due_on.as_str()))
        .collect();
    due.sort();
    let mut want = vec![
        (child.as_str(), "2041-03-01"),
        (held.as_str(), "2033-03-02"),
        (recent.as_str(), "2039-01-12"),
        (booked.as_str(), "2040-06-06"),
    ];
    want.sort();
    assert_eq!(due, want);
}

/// Validates a FHIR R4 bundle with an independent implementation: the Python `fhir.resources`
/// 5.1.1 models (FHIR 4.0.1), strict mode — unknown elements, missing required elements and
/// wrong types are errors — plus its date parser, whose complaints are printed, not raised.
/// Prints the resource types it saw.
fn validate_fhir_r4(path: &Path) -> Vec<String> {
    let script = r#"
import json, sys, io, contextlib
import fhir.resources
from fhir.resources.bundle import Bundle
assert fhir.resources.__fhir_version__ == "4.0.1", fhir.resources.__fhir_version__
data = json.load(open(sys.argv[1]))
noise = io.StringIO()
with contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise):
    b = Bundle(data, strict=True)
if "Failed" in noise.getvalue():
    sys.exit("invalid primitive: " + noise.getvalue())
assert b.type == "collection"
print(" ".join(type(e.resource).__name__ for e in b.entry))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 with fhir.resources (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "FHIR R4 validation failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_subject_access_export_holds_everything_in_fhir_json_and_html() {
    let c = clinic();
    let mut rita = sign_in(&c.dir, "rita");
    let id = rita
        .add_patient(PatientFields {
            first_name: Some("Eva".into()),
            last_name: Some("Export".into()),
            email: Some("eva@example.org".into()),
            phone: Some("0491 570 110".into()),
            date_of_birth: Some("1988-02-29".into()),
            sex: Some("female".into()),
            address: Some("1 <Script> Lane & Co".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    rita.update_patient_with_request(
        &id,
        PatientFields {
            email: Some("eva.export@example.org".into()),
            ..Default::default()
        },
        Some("new address by phone"),
    )
    .unwrap();
    rita.record_consent(
        &id,
        &NewConsent {
            kind: "processing",
            basis: Some("gdpr-9.2.h"),
            note: None,
            given_on: Some("2026-01-05"),
        },
    )
    .unwrap();
    let appt = book(&mut rita, &id, "2026-03-02T10:00");
    book(&mut rita, &id, "2026-03-09T10:00");
    rita.set_appointment_status(&appt, "arrived", None).unwrap();
    rita.set_appointment_status(&appt, "completed", None)
        .unwrap();
    let inv = rita.invoice_appointment(&appt).unwrap();
    rita.record_payment(&inv.id, "20.00", "card", None).unwrap();
    // A refused change is about the patient too.
    assert_eq!(
        rita.set_appointment_status(&appt, "arrived", None)
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    rita.add_attachment(&id, "referral letter.txt", &mut "Dear colleague".as_bytes())
        .unwrap();
    drop(rita);
    let mut sam = sign_in(&c.dir, "sam");
    let n = sam
        .add_note(&id, Some(&appt), "Knee pain, 3 weeks.")
        .unwrap();
    sam.finalise_note(&n.id).unwrap();
    sam.amend_note(&n.id, "Knee pain, 4 weeks.", "patient corrected")
        .unwrap();
    drop(sam);

    let out = c.tmp.path().join("export");
    assert_eq!(
        sign_in(&c.dir, "rita")
            .export_patient(&id, &out)
            .unwrap_err()
            .kind(),
        ErrorKind::PermissionDenied
    );
    assert!(!out.exists());
    let mut admin = sign_in(&c.dir, "admin");
    let done = admin.export_patient(&id, &out).unwrap();
    assert!(done.records >= 10, "{done:?}");

    let types = validate_fhir_r4(&out.join("patient.fhir.json"));
    let count = |t: &str| types.iter().filter(|x| *x == t).count();
    assert_eq!(count("Patient"), 1);
    assert_eq!(count("Appointment"), 2);
    assert_eq!(count("Encounter"), 1, "only the visit that took place");
    assert_eq!(count("DocumentReference"), 2, "the note and the attachment");
    assert_eq!(count("Invoice"), 1);
    assert_eq!(count("Consent"), 1);
    let plain_log: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("patient.json")).unwrap()).unwrap();
    let log = plain_log["access_log"].as_array().unwrap();
    assert!(
        log.len() >= 5,
        "views, edits and the export itself: {}",
        log.len()
    );
    assert_eq!(
        count("AuditEvent"),
        log.len(),
        "every audit entry about the record, as an AuditEvent"
    );
    // Oldest first, and with the entries about the patient's appointments, invoices and notes,
    // whose target is that record rather than the patient.
    let at = |e: &serde_json::Value| e["at"].as_str().unwrap().to_owned();
    assert!(log.windows(2).all(|w| at(&w[0]) <= at(&w[1])));
    let logged = |action: &str, outcome: &str| {
        log.iter()
            .any(|e| e["action"] == action && e["outcome"] == outcome)
    };
    for action in [
        "appointment.status",
        "invoice.create",
        "invoice.payment",
        "note.finalise",
        "note.amend",
    ] {
        assert!(logged(action, "ok"), "{action} in {log:?}");
    }
    assert!(logged("appointment.status", "failed"), "{log:?}");

    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("patient.fhir.json")).unwrap()).unwrap();
    let note = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["id"] == n.id.as_str())
        .unwrap();
    let versions = note["resource"]["content"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "every version of the note");
    use base64::Engine as _;
    let last = base64::engine::general_purpose::STANDARD
        .decode(versions[1]["attachment"]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(last, b"Knee pain, 4 weeks.");

    let plain: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("patient.json")).unwrap()).unwrap();
    assert_eq!(plain["patient"]["email"], "eva.export@example.org");
    assert_eq!(
        plain["history"].as_array().unwrap().last().unwrap()["patient_request"],
        "new address by phone"
    );
    assert_eq!(plain["invoices"][0]["payments"][0]["amount_minor"], 2000);
    assert!(plain["access_log"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "note.create"
            || e["action"] == "patient.view"
            || e["action"] == "patient.update"));
    let file = plain["attachments"][0]["file"].as_str().unwrap();
    assert_eq!(std::fs::read(out.join(file)).unwrap(), b"Dear colleague");

    let html = std::fs::read_to_string(out.join("summary.html")).unwrap();
    assert!(html.contains("Eva") && html.contains("Knee pain, 4 weeks."));
    assert!(
        html.contains("1 &lt;Script&gt; Lane &amp; Co"),
        "values are escaped"
    );
    assert!(!html.contains("<Script>"));

    // The PDF, read by an independent reader (poppler's pdftotext, installed by the test
    // command): the same sections and values as the page.
    let text = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(out.join("summary.pdf"))
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils; scripts/test.sh installs it)");
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "Records held about Eva",
        "Your details",
        "eva.export@example.org",
        "Treatment notes",
        "Knee pain, 4 weeks.",
        "Invoices and payments",
        "Who accessed your record",
        "1 <Script> Lane & Co",
        "new address by phone",
    ] {
        assert!(text.contains(needle), "{needle:?} not in the PDF:\n{text}");
    }

    // Never into a folder that holds anything.
    let e = admin.export_patient(&id, &out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("not empty"), "{e}");
    let entries = admin
        .audit_list(&AuditFilter {
            action: Some("patient.export".into()),
            ..Default::default()
        })
        .unwrap();
    let ok_entry = entries.iter().find(|e| e.outcome == "ok").unwrap();
    assert_eq!(ok_entry.details["records"], done.records);
}

/// Parses an iCalendar file with the Python `icalendar` package (RFC 5545) and prints each
/// event's SUMMARY, STATUS, start and end.
fn parse_ics(ics: &str) -> Vec<String> {
    let script = r#"
import sys, icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
assert cal["VERSION"] == "2.0" and "PRODID" in cal
for e in cal.walk("VEVENT"):
    for req in ("UID", "DTSTAMP", "DTSTART", "DTEND"):
        assert req in e, req
    print("%s|%s|%s|%s" % (e["SUMMARY"], e["STATUS"], e.decoded("DTSTART").isoformat(), e.decoded("DTEND").isoformat()))
"#;
    support::python_with_input(script, ics, "icalendar", "iCalendar parse failed")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn calendar_exports_show_patients_as_the_setting_says_and_parse_as_icalendar() {
    let c = clinic();
    let mut rita = sign_in(&c.dir, "rita");
    let ann = add(&mut rita, "Ann", "Jones");
    let bob = add(&mut rita, "Bob", "O'Brien; Jr, \\ Esq");
    book(&mut rita, &ann, "2026-03-02T10:00");
    let b = book(&mut rita, &bob, "2026-03-02T11:00");
    book(&mut rita, &ann, "2026-03-09T10:00");
    rita.set_appointment_status(&b, "cancelled", Some("unwell"))
        .unwrap();

    let ics = rita
        .calendar_ics("sam", "2026-03-02", "2026-03-02")
        .unwrap();
    assert!(ics.ends_with("END:VCALENDAR\r\n"));
    assert!(!ics.contains("Ann") && !ics.contains("Jones") && !ics.contains("Brien"));
    assert!(!ics.contains("unwell"), "no reasons or notes");
    let events = parse_ics(&ics);
    assert_eq!(
        events,
        [
            "Patient — Initial consult|CONFIRMED|2026-03-02T10:00:00+00:00|2026-03-02T10:45:00+00:00",
            "Patient — Initial consult|CANCELLED|2026-03-02T11:00:00+00:00|2026-03-02T11:45:00+00:00",
        ]
    );
    drop(rita);

    let mut admin = sign_in(&c.dir, "admin");
    admin.set_privacy_setting("calendar", "initials").unwrap();
    let ics = admin
        .calendar_ics("sam", "2026-03-01", "2026-03-31")
        .unwrap();
    let events = parse_ics(&ics);
    assert_eq!(events.len(), 3);
    assert!(events[0].starts_with("A.J. — "), "{events:?}");
    assert!(!ics.contains("Jones"));
    admin.set_privacy_setting("calendar", "full").unwrap();
    let events = parse_ics(
        &admin
            .calendar_ics("sam", "2026-03-01", "2026-03-31")
            .unwrap(),
    );
    assert!(
        events[1].starts_with("Bob O'Brien; Jr, \\ Esq — "),
        "escaped and read back: {events:?}"
    );

    assert_eq!(
        admin
            .calendar_ics("sam", "2026-03-31", "2026-03-01")
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        admin
            .calendar_ics("nobody", "2026-03-01", "2026-03-31")
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn a_subject_access_export_that_fails_leaves_no_plaintext_behind() {
    let c = clinic();
    let mut rita = sign_in(&c.dir, "rita");
    let id = rita
        .add_patient(PatientFields {
            first_name: Some("Fay".into()),
            last_name: Some("Failing".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    rita.add_attachment(&id, "letter.txt", &mut "Dear colleague".as_bytes())
        .unwrap();
    drop(rita);
    // The attachment's encrypted file is damaged, so the export fails after it has written
    // the patient's JSON, HTML and PDF.
    let stored = std::fs::read_dir(c.dir.file("attachments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "bin"))
        .unwrap();
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&stored, &bytes).unwrap();

    let mut admin = sign_in(&c.dir, "admin");
    let new = c.tmp.path().join("new-folder");
    let e = admin.export_patient(&id, &new).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(!new.exists(), "the folder it made is gone");
    let empty = c.tmp.path().join("empty-folder");
    std::fs::create_dir(&empty).unwrap();
    admin.export_patient(&id, &empty).unwrap_err();
    assert!(empty.exists());
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "nothing left in it"
    );
    // A folder that already held something is refused and left as it was.
    std::fs::write(empty.join("mine.txt"), "keep").unwrap();
    admin.export_patient(&id, &empty).unwrap_err();
    assert_eq!(
        std::fs::read_to_string(empty.join("mine.txt")).unwrap(),
        "keep"
    );
}
