//! Backups taken while the clinic keeps working: another session writes patients throughout the
//! export, and the backup still restores to one consistent state whose audit trail verifies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clinvault_core::backup::{self, Opener};
use clinvault_core::patients::PatientFields;
use clinvault_core::VaultDir;
use support::*;

fn patient(n: usize) -> PatientFields {
    PatientFields {
        first_name: Some(format!("Writer{n}")),
        last_name: Some("Concurrent".into()),
        ..Default::default()
    }
}

#[test]
fn export_during_concurrent_writes_is_consistent_and_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    let recovery = clinvault_core::vault::init(
        &dir,
        clinvault_core::InitOptions {
            admin_username: "admin".into(),
            admin_display_name: None,
            passphrase: secret(ADMIN_PASS),
            kdf_cost: FAST,
            recovery_key_file: None,
        },
    )
    .unwrap();
    let mut admin = sign_in(&dir, "admin", ADMIN_PASS);
    for n in 0..200 {
        admin.add_patient(patient(n)).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut s = sign_in(&dir, "admin", ADMIN_PASS);
            let mut n = 1000;
            while !stop.load(Ordering::SeqCst) {
                s.add_patient(patient(n)).unwrap();
                n += 1;
                // A busy reception desk, not a tight loop: SQLite's busy handler is not fair,
                // and a writer that never pauses can starve the export's own audit entry.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            n - 1000
        })
    };
    // Let the writer get going, then export three times while it writes.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut files = Vec::new();
    for i in 0..3 {
        let out = tmp.path().join(format!("b{i}.cvbackup"));
        let report = admin.export_backup(&out, None, &mut |_, _| true).unwrap();
        assert!(report.patients >= 200);
        files.push((out, report.patients));
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(written > 0, "the writer never ran during the exports");

    // Each backup is one consistent state: it verifies (database, audit trail) on its own.
    for (file, patients) in &files {
        let c = backup::verify(file, &Opener::RecoveryKey(&recovery), &mut |_, _| true).unwrap();
        assert_eq!(c.vault.patients, *patients);
        assert!(c.vault.audit.intact);
    }
    // Sealed to the recovery key only: a passphrase does not open them.
    let pass = secret("saffron glacier mosaic kettle");
    assert!(backup::verify(&files[0].0, &Opener::Passphrase(&pass), &mut |_, _| true).is_err());
    let restored_at = tmp.path().join("restored");
    let check = backup::restore(
        &files[2].0,
        &Opener::RecoveryKey(&recovery),
        &restored_at,
        &mut |_, _| true,
    )
    .unwrap();
    assert_eq!(check.vault.patients, files[2].1);
    // The restored vault opens for its administrator and records the restore.
    let restored = VaultDir::new(&restored_at);
    let mut s = sign_in(&restored, "admin", ADMIN_PASS);
    let trail = s.verify_audit().unwrap();
    assert!(trail.intact);
}

#[test]
fn cancelling_an_export_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    new_vault(&dir);
    let mut admin = sign_in(&dir, "admin", ADMIN_PASS);
    admin.add_patient(patient(1)).unwrap();
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("c.cvbackup");
    let err = admin
        .export_backup(&out, None, &mut |_, _| false)
        .expect_err("cancelled");
    assert_eq!(err.kind(), clinvault_core::ErrorKind::Conflict);
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
    let staging = std::fs::read_dir(dir.root())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".staging-"))
        .count();
    assert_eq!(staging, 0);
}
