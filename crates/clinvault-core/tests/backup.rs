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

/// A new vault with its administrator; the recovery key opens its backups.
fn vault_with_recovery(dir: &VaultDir) -> clinvault_core::RecoveryKey {
    clinvault_core::vault::init(
        dir,
        clinvault_core::InitOptions {
            admin_username: "admin".into(),
            admin_display_name: None,
            passphrase: secret(ADMIN_PASS),
            kdf_cost: FAST,
            recovery_key_file: None,
        },
    )
    .unwrap()
}

#[test]
fn export_during_concurrent_writes_is_consistent_and_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    let recovery = vault_with_recovery(&dir);
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

/// From a signed-in session (the desktop app) checking or restoring a backup file is an
/// administrator's operation like the export: a receptionist holding the file and the recovery
/// key is refused (and the refusal recorded), and the administrator's check is in the trail.
#[test]
fn checking_a_backup_from_a_session_needs_backup_manage_and_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    let recovery = vault_with_recovery(&dir);
    let mut admin = sign_in(&dir, "admin", ADMIN_PASS);
    admin.add_patient(patient(1)).unwrap();
    admin
        .add_user("rita", None, "receptionist", &secret(USER_PASS))
        .unwrap();
    let file = tmp.path().join("b.cvbackup");
    admin.export_backup(&file, None, &mut |_, _| true).unwrap();
    let opener = Opener::RecoveryKey(&recovery);

    let mut rita = sign_in(&dir, "rita", USER_PASS);
    let e = rita
        .verify_backup_file(&file, &opener, &mut |_, _| true)
        .unwrap_err();
    assert_eq!(e.kind(), clinvault_core::ErrorKind::PermissionDenied);
    let to = tmp.path().join("copy");
    let e = rita
        .restore_backup_file(&file, &opener, &to, &mut |_, _| true)
        .unwrap_err();
    assert_eq!(e.kind(), clinvault_core::ErrorKind::PermissionDenied);
    assert!(!to.exists(), "a refused restore writes nothing");

    let check = admin
        .verify_backup_file(&file, &opener, &mut |_, _| true)
        .unwrap();
    assert!(check.vault.audit.intact);
    assert_eq!(check.trail_holds_backup, Some(true));
    admin
        .restore_backup_file(&file, &opener, &to, &mut |_, _| true)
        .unwrap();
    assert!(to.join("vault.db").exists());

    let trail = admin
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            action: Some("backup.".into()),
            limit: 20,
            ..Default::default()
        })
        .unwrap();
    let seen = |action: &str, actor: &str, outcome: &str| {
        trail
            .iter()
            .any(|e| e.action == action && e.actor_name == actor && e.outcome == outcome)
    };
    assert!(seen("backup.verify", "rita", "denied"), "{trail:#?}");
    assert!(seen("backup.restore_copy", "rita", "denied"), "{trail:#?}");
    let verified = trail
        .iter()
        .find(|e| e.action == "backup.verify" && e.actor_name == "admin")
        .expect("the administrator's check is recorded");
    assert_eq!(verified.outcome, "ok");
    assert_eq!(verified.details["backup_id"], check.backup_id.to_string());
    assert_eq!(verified.details["earlier_copy_held"], true, "{verified:?}");
    assert!(seen("backup.restore_copy", "admin", "ok"), "{trail:#?}");

    // A backup altered on its way back fails its check, and administrators are alerted.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x20;
    let altered = tmp.path().join("altered.cvbackup");
    std::fs::write(&altered, bytes).unwrap();
    let e = admin
        .verify_backup_file(&altered, &opener, &mut |_, _| true)
        .unwrap_err();
    assert_eq!(e.kind(), clinvault_core::ErrorKind::Integrity, "{e}");
    let alerts = admin.audit_alerts(false).unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.rule == "audit_verification_failed" && a.summary.contains("backup.verify")),
        "{alerts:#?}"
    );
}

/// A backup of this vault checked from a session is an anchor too: when the live trail no longer
/// holds what the backup's trail ended with (an insider cut it back with the database key), the
/// check records it, signed, and alerts administrators.
#[test]
fn checking_a_backup_finds_a_trail_cut_behind_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    let recovery = vault_with_recovery(&dir);
    let mut admin = sign_in(&dir, "admin", ADMIN_PASS);
    // The insider's own connection, keyed by hand with the exported key.
    let key = admin.export_db_key(&secret(ADMIN_PASS), None).unwrap();
    let insider = rusqlite::Connection::open(dir.db_file()).unwrap();
    insider
        .execute_batch(&format!("PRAGMA key = \"x'{}'\";", &*key))
        .unwrap();
    let cut_at: i64 = insider
        .query_row("SELECT max(seq) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    admin.add_patient(patient(1)).unwrap();
    let file = tmp.path().join("b.cvbackup");
    admin.export_backup(&file, None, &mut |_, _| true).unwrap();

    insider
        .execute_batch(&format!(
            "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq > {cut_at};"
        ))
        .unwrap();
    drop(insider);

    let check = admin
        .verify_backup_file(&file, &Opener::RecoveryKey(&recovery), &mut |_, _| true)
        .unwrap();
    assert!(check.vault.audit.intact, "the backup itself is sound");
    assert_eq!(check.trail_holds_backup, Some(false));
    let verified = admin
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            action: Some("backup.verify".into()),
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        verified[0].details["earlier_copy_held"], false,
        "{verified:?}"
    );
    let alerts = admin.audit_alerts(false).unwrap();
    assert!(
        alerts.iter().any(|a| a.rule == "audit_checkpoint_mismatch"
            && a.summary.contains("the backup file checked")),
        "{alerts:#?}"
    );
}
