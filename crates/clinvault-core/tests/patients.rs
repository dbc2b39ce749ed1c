//! Patients against a real vault: search, validation, permissions, and the privacy checks —
//! no patient value in any audit entry, no plaintext on disk or in the temp directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod support;

use support::{secret, sign_in, ADMIN_PASS, USER_PASS};

use clinvault_core::audit_review::AuditFilter;
use clinvault_core::patients::PatientFields;
use clinvault_core::{ErrorKind, VaultDir};

const MARKER_LAST: &str = "Zqxwyndham";
const MARKER_EMAIL: &str = "zq.marker@example.org";

fn setup() -> (tempfile::TempDir, VaultDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    support::new_vault(&dir);
    let mut a = sign_in(&dir, "admin", ADMIN_PASS);
    a.add_user("recep", None, "receptionist", &secret(USER_PASS))
        .unwrap();
    a.add_user("bill", None, "biller", &secret(USER_PASS))
        .unwrap();
    (tmp, dir)
}

fn patient(first: &str, last: &str) -> PatientFields {
    PatientFields {
        first_name: Some(first.into()),
        last_name: Some(last.into()),
        ..Default::default()
    }
}

#[test]
fn reception_adds_finds_and_updates_patients() {
    let (_t, dir) = setup();
    let mut r = sign_in(&dir, "recep", USER_PASS);
    let jo = r
        .add_patient(PatientFields {
            date_of_birth: Some("1984-03-27".into()),
            phone: Some("+61 412 345 678".into()),
            email: Some("jo.smith@example.com".into()),
            ..patient("Joanna", "Smith")
        })
        .unwrap();
    r.add_patient(patient("John", "Smithers")).unwrap();
    r.add_patient(patient("Ann", "Jones")).unwrap();
    let names = |rows: Vec<clinvault_core::patients::PatientSummary>| -> Vec<String> {
        rows.into_iter()
            .map(|p| format!("{} {}", p.first_name, p.last_name))
            .collect()
    };
    assert_eq!(names(r.search_patients("smi", 10).unwrap()).len(), 2);
    let mut both = names(r.search_patients("jo smi", 10).unwrap());
    both.sort();
    assert_eq!(both, vec!["Joanna Smith", "John Smithers"]);
    assert_eq!(
        names(r.search_patients("joa smi", 10).unwrap()),
        vec!["Joanna Smith"]
    );
    assert_eq!(
        names(r.search_patients("0412 345", 10).unwrap()),
        vec!["Joanna Smith"]
    );
    assert_eq!(
        names(r.search_patients("1984-03", 10).unwrap()),
        vec!["Joanna Smith"]
    );
    assert_eq!(
        names(r.search_patients("jo.smith@exa", 10).unwrap()),
        vec!["Joanna Smith"]
    );
    assert!(r.search_patients("nobody", 10).unwrap().is_empty());
    // Exact last-name match ranks above a longer one.
    assert_eq!(
        names(r.search_patients("smith", 10).unwrap())[0],
        "Joanna Smith"
    );

    let updated = r
        .update_patient(
            &jo.id,
            PatientFields {
                email: Some("jo@example.net".into()),
                preferred_name: Some("Jo".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(updated.fields.email.as_deref(), Some("jo@example.net"));
    assert_eq!(
        names(r.search_patients("jo@example.n", 10).unwrap()),
        vec!["Joanna Smith"]
    );
    assert!(
        r.search_patients("jo.smith@exa", 10).unwrap().is_empty(),
        "the index follows updates"
    );
    let shown = r.show_patient(&jo.id).unwrap();
    assert_eq!(shown.fields.preferred_name.as_deref(), Some("Jo"));

    // Archiving hides from search but not from the archived list.
    r.update_patient(
        &jo.id,
        PatientFields {
            archived: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.search_patients("joanna", 10).unwrap().is_empty());
    assert_eq!(r.list_patients(true, 100).unwrap().len(), 1);
    assert_eq!(r.list_patients(false, 100).unwrap().len(), 2);
}

#[test]
fn bad_input_is_refused_with_the_field_named_and_unknown_ids_are_not_found() {
    let (_t, dir) = setup();
    let mut r = sign_in(&dir, "recep", USER_PASS);
    let e = r
        .add_patient(PatientFields {
            date_of_birth: Some("1990-02-30".into()),
            ..patient("A", "B")
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().starts_with("date_of_birth:"), "{e}");
    let e = r.add_patient(patient("A", "  ")).unwrap_err();
    assert_eq!(e.to_string(), "last_name: required");
    let e = r.show_patient("no-such-id").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = r
        .update_patient("no-such-id", patient("A", "B"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = r.search_patients("  ", 10).unwrap_err();
    assert!(e.to_string().starts_with("query:"));
    assert!(
        r.list_patients(false, 10).unwrap().is_empty(),
        "nothing was saved"
    );
}

#[test]
fn a_biller_reads_but_does_not_edit_demographics() {
    let (_t, dir) = setup();
    let id = sign_in(&dir, "recep", USER_PASS)
        .add_patient(patient("Ann", "Jones"))
        .unwrap()
        .id;
    let mut b = sign_in(&dir, "bill", USER_PASS);
    assert_eq!(
        b.show_patient(&id).unwrap().fields.last_name.as_deref(),
        Some("Jones")
    );
    let e = b.update_patient(&id, patient("Anne", "Jones")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert_eq!(
        b.add_patient(patient("X", "Y")).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn audit_entries_name_fields_never_values_and_nothing_is_plaintext_on_disk() {
    let (tmp, dir) = setup();
    let tmpdir = std::env::temp_dir();
    let before: std::collections::HashSet<_> = std::fs::read_dir(&tmpdir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let mut r = sign_in(&dir, "recep", USER_PASS);
    let p = r
        .add_patient(PatientFields {
            email: Some(MARKER_EMAIL.into()),
            phone: Some("0499 111 222".into()),
            ..patient("Marker", MARKER_LAST)
        })
        .unwrap();
    r.show_patient(&p.id).unwrap();
    r.update_patient(
        &p.id,
        PatientFields {
            occupation: Some("Zqx-occupation".into()),
            ..Default::default()
        },
    )
    .unwrap();
    r.search_patients(MARKER_LAST, 5).unwrap();
    drop(r);
    let mut a = sign_in(&dir, "admin", ADMIN_PASS);
    let entries = a
        .audit_list(&AuditFilter {
            limit: 10_000,
            ..Default::default()
        })
        .unwrap();
    let about: Vec<_> = entries
        .iter()
        .filter(|e| e.target_id.as_deref() == Some(p.id.as_str()))
        .collect();
    assert!(about.iter().any(|e| e.action == "patient.view"));
    let update = about.iter().find(|e| e.action == "patient.update").unwrap();
    assert_eq!(update.details["fields"], serde_json::json!(["occupation"]));
    let text = serde_json::to_string(&entries).unwrap();
    for value in [
        MARKER_LAST,
        MARKER_EMAIL,
        "Zqx-occupation",
        "0499",
        "Marker",
    ] {
        assert!(!text.contains(value), "{value} appears in the audit trail");
    }
    drop(a);
    // Nothing readable in the vault directory or in any new file in the temp directory.
    let scan = |path: &std::path::Path| {
        let bytes = std::fs::read(path).unwrap_or_default();
        for m in [MARKER_LAST, MARKER_EMAIL] {
            assert!(
                !bytes.windows(m.len()).any(|w| w == m.as_bytes()),
                "{m} in {}",
                path.display()
            );
        }
    };
    for e in std::fs::read_dir(dir.root()).unwrap().flatten() {
        scan(&e.path());
    }
    for e in std::fs::read_dir(&tmpdir).unwrap().flatten() {
        if !before.contains(&e.path()) && e.path() != tmp.path() && e.path().is_file() {
            scan(&e.path());
        }
    }
}

#[test]
fn demo_patients_are_deterministic_for_a_seed_and_searchable() {
    let listing = |seed: u64| {
        let (_t, dir) = setup();
        let mut a = sign_in(&dir, "admin", ADMIN_PASS);
        assert_eq!(a.generate_demo_patients(300, seed).unwrap(), 300);
        let rows = a.list_patients(false, 1000).unwrap();
        assert_eq!(rows.len(), 300);
        assert!(!a.search_patients("smi", 50).unwrap().is_empty());
        let e = a.generate_demo_patients(10, seed).unwrap_err();
        assert!(e.to_string().contains("without patients"), "{e}");
        rows.into_iter()
            .map(|p| (p.id, p.first_name, p.last_name, p.date_of_birth))
            .collect::<Vec<_>>()
    };
    assert_eq!(listing(7), listing(7));
    assert_ne!(listing(7), listing(8));
}

#[test]
fn the_demo_clinic_has_a_year_of_consistent_activity() {
    let (_t, dir) = setup();
    let mut a = sign_in(&dir, "admin", ADMIN_PASS);
    let d = a.generate_demo_clinic(200, 3).unwrap();
    assert_eq!((d.patients, d.practitioners), (200, 10));
    // ~260 working days × 10 practitioners × 8 slots × 70%.
    assert!(d.appointments > 10_000, "{d:?}");
    assert!(d.invoices > d.appointments / 2, "{d:?}");
    assert!(d.notes > d.invoices / 6, "{d:?}");
    assert_eq!(d.attachments, 20);
    let today = jiff::Zoned::now().date();
    let monday = today
        .checked_sub(jiff::Span::new().days(i64::from(today.weekday().to_monday_zero_offset()) + 7))
        .unwrap();
    let week = a.week_appointments(&monday.to_string(), None).unwrap();
    assert!(week.len() > 150, "{}", week.len());
    assert!(week.windows(2).all(|w| w[0].starts_at <= w[1].starts_at));
    let report = a
        .revenue_report(
            &today
                .checked_sub(jiff::Span::new().days(366))
                .unwrap()
                .to_string(),
            &today.to_string(),
        )
        .unwrap();
    let total = report.iter().find(|r| r.group == "total").unwrap();
    assert_eq!(total.invoices as u64, d.invoices);
    assert!(total.paid_minor < total.total_minor && total.paid_minor > total.total_minor * 8 / 10);
    // Numbering continues without a gap after the demo.
    let n: i64 = a
        .outstanding_invoices()
        .unwrap()
        .iter()
        .filter_map(|i| i.number)
        .max()
        .unwrap();
    assert!(n <= d.invoices as i64);
    assert!(a.verify_audit().unwrap().intact);
}

/// The desktop app warms the search cache after sign-in: it works on an empty and a filled
/// vault, shows nothing, records nothing, and searches behave the same afterwards.
#[test]
fn warming_the_search_cache_records_nothing_and_changes_no_result() {
    let (_t, dir) = setup();
    let mut a = sign_in(&dir, "admin", ADMIN_PASS);
    a.warm_search_cache().unwrap();
    for (first, last) in [("Ann", "Jones"), ("Bob", "Jonas"), ("Cy", "Smith")] {
        a.add_patient(patient(first, last)).unwrap();
    }
    let mut r = sign_in(&dir, "recep", USER_PASS);
    // Entries other than the reviews of the trail themselves.
    let trail = |s: &mut clinvault_core::Session| {
        s.audit_list(&AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|e| !e.action.starts_with("audit."))
        .count()
    };
    let before = trail(&mut a);
    a.warm_search_cache().unwrap();
    r.warm_search_cache().unwrap();
    assert_eq!(trail(&mut a), before, "a warm-up is not an access");
    let found = r.search_patients("jon", 10).unwrap();
    assert_eq!(found.len(), 2);
}
