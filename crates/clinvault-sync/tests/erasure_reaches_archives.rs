//! Deletion reaches archives (issue 9): a patient made due by a retention run (mock clock) is
//! anonymised, the vault is pushed again and `sync prune --keep-last 1` runs; then the WHOLE
//! `file://` repository is decrypted — every blob of every pack on the target, every snapshot's
//! metadata, and every remaining snapshot restored file by file with its database decrypted page
//! by page with the DB key — and scanned for the patient's markers, ignoring case. A positive
//! control shows the same scan finds them before the erasure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../clinvault-core/tests/support/plaintext.rs"]
#[allow(dead_code)]
mod plaintext;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clinvault_core::appointments::Booking;
use clinvault_core::clock::{ManualClock, SystemClock};
use clinvault_core::crypto::KdfCost;
use clinvault_core::patients::PatientFields;
use clinvault_core::{vault, InitOptions, Session, SessionConfig, VaultDir};
use clinvault_sync::backend::Backend;
use clinvault_sync::ops::{self, TargetOptions};
use clinvault_sync::{Credentials, KeepPolicy, NoProgress, RepoKey, Repository};
use secrecy::SecretString;

const PASS: &str = "plum harbour velvet tractor";
const SAM_PASS: &str = "quiet lantern orbit meadow";

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn sign_in(dir: &VaultDir, clock: Option<&str>) -> Session {
    sign_in_as(dir, "admin", PASS, clock)
}

fn sign_in_as(dir: &VaultDir, user: &str, pass: &str, clock: Option<&str>) -> Session {
    let clock: Arc<dyn clinvault_core::clock::Clock> = match clock {
        Some(t) => Arc::new(ManualClock::at(
            t.parse::<jiff::Timestamp>().unwrap().as_second(),
        )),
        None => Arc::new(SystemClock),
    };
    Session::sign_in_with(
        dir,
        user,
        &secret(pass),
        None,
        SessionConfig {
            device: "desk".into(),
            clock,
        },
    )
    .unwrap()
}

/// Markers for the patient who is erased (names, notes, contact details).
const MARKERS: &[&str] = &[
    "Zorblattine",
    "Oldsurnamemarker",
    "zorb.marker@example.org",
    "Markerstreet",
    "Generalnotesmarker",
    "Clinicalnotemarker",
    "Appointmentnotemarker",
    "Attachmentnamemarker",
];

fn files(root: &Path) -> Vec<PathBuf> {
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

fn has(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn repository(s: &mut Session) -> Repository {
    let (spec, creds) = ops::target(s).unwrap();
    let backend = Backend::open(&spec, &creds).unwrap();
    let config = Repository::read_config(&backend).unwrap().unwrap();
    let key = s
        .sync_repo_key(&config.repo_id.to_string())
        .unwrap()
        .unwrap();
    Repository::open(
        backend,
        &RepoKey::from_bytes(&key).unwrap(),
        spec.pack_bytes(),
    )
    .unwrap()
}

/// Everything the repository holds, decrypted: (what, bytes). Every blob of every pack, every
/// snapshot file, and each snapshot restored with its databases decrypted page by page.
fn repository_view(s: &mut Session, key_hex: &str, work: &Path) -> Vec<(String, Vec<u8>)> {
    let repo = repository(s);
    let all = repo.decrypt_all().unwrap();
    assert!(!all.blobs.is_empty(), "the repository holds blobs");
    for (pack, id, _) in &all.blobs {
        assert!(
            all.referenced.contains(id),
            "blob {} in pack {pack} is referenced by no remaining snapshot",
            &id.hex()[..16]
        );
    }
    let mut views: Vec<(String, Vec<u8>)> = Vec::new();
    for (pack, id, plain) in all.blobs {
        views.push((format!("blob {} in {pack}", &id.hex()[..16]), plain));
    }
    for (name, plain) in all.snapshots {
        views.push((format!("snapshot file {name}"), plain.to_vec()));
        let into = work.join(format!("restore-{name}"));
        repo.restore_files(&name, &into, &NoProgress).unwrap();
        let mut dbs = 0;
        for f in files(&into) {
            let bytes = std::fs::read(&f).unwrap();
            let fname = f.file_name().unwrap().to_string_lossy().to_string();
            if fname.ends_with(".db") {
                dbs += 1;
                views.push((
                    format!("{fname} of {name} decrypted"),
                    plaintext::database(&bytes, key_hex),
                ));
            } else if fname.ends_with(".db-wal") {
                views.push((
                    format!("{fname} of {name} decrypted"),
                    plaintext::wal(&bytes, key_hex),
                ));
            }
            views.push((format!("{} of {name}", f.display()), bytes));
        }
        assert!(dbs >= 1, "snapshot {name} restores a database");
        std::fs::remove_dir_all(&into).unwrap();
    }
    views
}

fn found(views: &[(String, Vec<u8>)], needle: &[u8], ignore_case: bool) -> Vec<String> {
    let needle = if ignore_case {
        needle.to_ascii_lowercase()
    } else {
        needle.to_vec()
    };
    views
        .iter()
        .filter(|(_, b)| {
            if ignore_case {
                has(&b.to_ascii_lowercase(), &needle)
            } else {
                has(b, &needle)
            }
        })
        .map(|(n, _)| n.clone())
        .collect()
}

#[test]
fn after_a_retention_run_push_and_prune_no_pack_or_snapshot_holds_the_erased_patient() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    vault::init(
        &dir,
        InitOptions {
            admin_username: "admin".into(),
            admin_display_name: None,
            passphrase: secret(PASS),
            kdf_cost: KdfCost::CHEAP_FOR_TESTS,
            recovery_key_file: None,
        },
    )
    .unwrap();
    let repo_dir = tmp.path().join("repo");
    std::fs::create_dir(&repo_dir).unwrap();

    let mut a = sign_in(&dir, None);
    a.add_user("sam", None, "practitioner", &secret(SAM_PASS))
        .unwrap();
    a.add_practitioner("sam").unwrap();
    a.set_working_hours("sam", "Mon", "09:00-17:00").unwrap();
    a.add_appointment_type("Initial consult", 45, "95.00", Some("10"))
        .unwrap();
    let id = a
        .add_patient(PatientFields {
            first_name: Some("Zorblattine".into()),
            last_name: Some("Oldsurnamemarker".into()),
            email: Some("zorb.marker@example.org".into()),
            address: Some("12 Markerstreet, Testville".into()),
            general_notes: Some("Generalnotesmarker: prefers mornings".into()),
            date_of_birth: Some("1971-08-14".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    let kept = a
        .add_patient(PatientFields {
            first_name: Some("Bystanderkept".into()),
            last_name: Some("Keptintact".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    // Held, so the retention run skips this patient: what remains must still be found.
    a.place_legal_hold(&kept, "pending claim").unwrap();
    let appt = a
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
    a.set_appointment_note(&appt, "Appointmentnotemarker: bring x-rays")
        .unwrap();
    // An attachment of the kept patient, unchanged by the erasure: its blob shares the first
    // push's pack with the erased patient's blobs, so prune must rewrite that pack.
    a.add_attachment(
        &kept,
        "bystander.txt",
        &mut "Bystanderkept letter ".repeat(40).as_bytes(),
    )
    .unwrap();
    let before_files: Vec<PathBuf> = files(dir.root());
    a.add_attachment(
        &id,
        "Attachmentnamemarker.txt",
        &mut "Attachmentcontentmarker letter ".repeat(40).as_bytes(),
    )
    .unwrap();
    // The attachment is stored encrypted; a slice of its ciphertext is the marker for its bytes.
    let att_file = files(dir.root())
        .into_iter()
        .find(|f| {
            !before_files.contains(f)
                && !f.to_string_lossy().contains("vault.db")
                && std::fs::metadata(f).map(|m| m.len() > 200).unwrap_or(false)
        })
        .expect("the attachment's file");
    let att_bytes = std::fs::read(&att_file).unwrap();
    let att_marker = att_bytes[100..164].to_vec();
    let mut sam = sign_in_as(&dir, "sam", SAM_PASS, None);
    let n = sam
        .add_note(&id, Some(&appt), "Clinicalnotemarker: lower back")
        .unwrap();
    sam.finalise_note(&n.id).unwrap();
    drop(sam);
    let key = a.export_db_key(&secret(PASS), None).unwrap();
    let key = key.as_str().to_owned();

    ops::set_target(
        &mut a,
        &format!("file://{}", repo_dir.display()),
        TargetOptions::default(),
        Credentials::default(),
    )
    .unwrap();
    ops::push(&mut a, &NoProgress).unwrap();
    drop(a);

    // Positive control: the decrypted repository holds every marker and the attachment bytes.
    let mut a = sign_in(&dir, None);
    let work = tempfile::tempdir().unwrap();
    let before = repository_view(&mut a, &key, work.path());
    for m in MARKERS.iter().chain(["Bystanderkept"].iter()) {
        assert!(
            !found(&before, m.as_bytes(), true).is_empty(),
            "control: {m} should be in the repository before erasure"
        );
    }
    assert!(
        !found(&before, &att_marker, false).is_empty(),
        "control: the attachment's bytes are in the repository"
    );
    // Without the keys nothing is readable.
    for f in files(&repo_dir) {
        let raw = std::fs::read(&f).unwrap().to_ascii_lowercase();
        for m in MARKERS {
            assert!(
                !has(&raw, m.to_ascii_lowercase().as_bytes()),
                "{m} readable raw"
            );
        }
    }
    drop(a);

    // Years later a retention run makes the patient due and anonymises them.
    let mut a = sign_in(&dir, Some("2034-06-01T10:00:00Z"));
    a.set_retention_preset("australia").unwrap();
    let plan = a.retention_plan().unwrap();
    assert!(plan
        .patients_to_anonymise
        .iter()
        .any(|d| d.patient_id == id));
    let report = a.retention_run().unwrap();
    assert!(report.patients_anonymised >= 1);
    ops::push(&mut a, &NoProgress).unwrap();
    // Only a newer snapshot survives `sync prune --keep-last 1`.
    assert_eq!(ops::snapshots(&mut a).unwrap().len(), 2);
    ops::prune(
        &mut a,
        KeepPolicy {
            last: 1,
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(ops::snapshots(&mut a).unwrap().len(), 1);

    // The key as it is now (in case the vault was re-keyed meanwhile).
    let key = a.export_db_key(&secret(PASS), None).unwrap();
    let key = key.as_str().to_owned();
    let work = tempfile::tempdir().unwrap();
    let after = repository_view(&mut a, &key, work.path());
    for m in MARKERS {
        let hits = found(&after, m.as_bytes(), true);
        assert!(hits.is_empty(), "{m} still in the repository: {hits:?}");
    }
    let hits = found(&after, &att_marker, false);
    assert!(
        hits.is_empty(),
        "the attachment's bytes are still in: {hits:?}"
    );
    // The other patient is still there: the scan is not passing on an empty repository.
    assert!(!found(&after, b"Bystanderkept", true).is_empty());
    assert!(a.show_patient(&kept).is_ok());
}
