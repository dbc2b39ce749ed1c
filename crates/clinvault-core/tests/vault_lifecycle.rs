//! The vault's life cycle against real SQLCipher files in temporary directories.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benches may panic on setup failures

use std::fs;
use std::path::Path;

use clinvault_core::clock::SystemClock;
use clinvault_core::crypto::KdfCost;
use clinvault_core::keyfile::KeyFile;
use clinvault_core::{
    vault, ErrorKind, InitOptions, RecoveryKey, Session, SessionConfig, Vault, VaultDir,
};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const FAST: KdfCost = KdfCost::CHEAP_FOR_TESTS;
const PASS: &str = "correct horse battery staple";
const MARKER: &str = "ZEBRA-MARKER-7731-PLAINTEXT";

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn new_vault_with(cost: KdfCost) -> (TempDir, VaultDir, RecoveryKey) {
    let tmp = TempDir::new().unwrap();
    let dir = VaultDir::new(tmp.path().join("vault"));
    let recovery = vault::init(
        &dir,
        InitOptions {
            admin_username: "Admin".into(),
            admin_display_name: Some(MARKER.into()),
            passphrase: secret(PASS),
            kdf_cost: cost,
            recovery_key_file: None,
        },
    )
    .unwrap();
    (tmp, dir, recovery)
}

fn new_vault() -> (TempDir, VaultDir, RecoveryKey) {
    new_vault_with(FAST)
}

fn session(dir: &VaultDir, pass: &str) -> Session {
    Session::sign_in_with(
        dir,
        "admin",
        &secret(pass),
        None,
        SessionConfig {
            device: "test".into(),
            clock: std::sync::Arc::new(SystemClock),
        },
    )
    .unwrap()
}

fn kind<T>(r: Result<T, clinvault_core::Error>) -> ErrorKind {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

fn file_digest(path: &Path) -> Vec<u8> {
    Sha256::digest(fs::read(path).unwrap()).to_vec()
}

/// Rewrites the key file's body through `edit`, fixing up the unkeyed checksum (as an attacker
/// could) but not the MAC (which needs the master key).
fn edit_key_file(dir: &VaultDir, edit: impl FnOnce(&mut serde_json::Value)) {
    let text = fs::read_to_string(dir.key_file()).unwrap();
    let outer: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut body = outer["body"].clone();
    edit(&mut body);
    let body_text = serde_json::to_string(&body).unwrap();
    use base64::Engine;
    let checksum =
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body_text.as_bytes()));
    let out = format!(
        "{{\"body\":{body_text},\"checksum\":\"{checksum}\",\"mac\":{}}}",
        outer["mac"]
    );
    fs::write(dir.key_file(), out).unwrap();
}

#[test]
fn right_passphrase_opens_and_wrong_one_is_refused_alike_for_unknown_users() {
    let (_t, dir, _) = new_vault();
    let v = Vault::unlock(&dir, "admin", &secret(PASS)).unwrap();
    assert_eq!(v.user().username, "admin");
    assert_eq!(v.user().role, "administrator");
    assert_eq!(v.user().display_name, MARKER);
    drop(v);
    let wrong = Vault::unlock(&dir, "admin", &secret("correct horse battery stapl"))
        .err()
        .unwrap();
    assert_eq!(wrong.kind(), ErrorKind::Authentication);
    let unknown = Vault::unlock(&dir, "nobody", &secret(PASS)).err().unwrap();
    assert_eq!(unknown.kind(), ErrorKind::Authentication);
    assert_eq!(wrong.to_string(), unknown.to_string());
    // Usernames are case-insensitive.
    assert!(Vault::unlock(&dir, "ADMIN", &secret(PASS)).is_ok());
}

#[test]
fn no_file_in_the_vault_directory_contains_plaintext() {
    let (_t, dir, _) = new_vault();
    let mut v = session(&dir, PASS);
    // The marker is readable through the vault, so finding it nowhere on disk means something.
    assert_eq!(v.user().display_name, MARKER);
    v.rotate_keys().unwrap();
    let scan = |when: &str| {
        for entry in fs::read_dir(dir.root()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = fs::read(&path).unwrap();
            assert!(
                !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
                "{when}: marker found in {}",
                path.display()
            );
        }
    };
    scan("while open");
    drop(v);
    scan("after close");
}

#[test]
fn the_database_is_refused_without_the_key_and_opens_with_the_exported_one() {
    let (_t, dir, _) = new_vault();
    let mut v = session(&dir, PASS);
    let key = v.export_db_key(&secret(PASS), None).unwrap();
    assert_eq!(key.len(), 64);
    let wrong = v
        .export_db_key(&secret("not the passphrase at all"), None)
        .err()
        .unwrap();
    assert_eq!(wrong.kind(), ErrorKind::Authentication);
    drop(v);

    let plain = rusqlite::Connection::open(dir.db_file()).unwrap();
    let err = plain
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_err();
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase)
    );

    // The documented escape hatch, through SQL text exactly as a SQLCipher tool would be used.
    let conn = rusqlite::Connection::open(dir.db_file()).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", key.as_str()))
        .unwrap();
    let name: String = conn
        .query_row(
            "SELECT display_name FROM users WHERE username = 'admin'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(name, MARKER);
}

#[test]
fn damaged_key_file_is_an_integrity_error_and_changes_nothing() {
    let (_t, dir, _) = new_vault();
    let original = fs::read(dir.key_file()).unwrap();
    let db_before = file_digest(&dir.db_file());

    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    fs::write(dir.key_file(), &flipped).unwrap();
    assert_eq!(
        kind(Vault::unlock(&dir, "admin", &secret(PASS))),
        ErrorKind::Integrity
    );

    fs::write(dir.key_file(), &original[..original.len() / 3]).unwrap();
    let err = Vault::unlock(&dir, "admin", &secret(PASS)).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(err.to_string().contains("key file"), "{err}");
    assert_eq!(kind(vault::status(&dir)), ErrorKind::Integrity);

    fs::write(dir.key_file(), &original).unwrap();
    assert_eq!(file_digest(&dir.db_file()), db_before);
    assert!(Vault::unlock(&dir, "admin", &secret(PASS)).is_ok());
}

#[test]
fn key_file_edited_without_the_master_key_is_detected() {
    let (_t, dir, _) = new_vault();
    edit_key_file(&dir, |body| {
        body["created_at"] = "2001-01-01T00:00:00Z".into()
    });
    let err = Vault::unlock(&dir, "admin", &secret(PASS)).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(
        err.to_string().contains("modified outside ClinVault"),
        "{err}"
    );
}

#[test]
fn truncated_or_missing_database_is_an_integrity_error_and_changes_nothing() {
    let (_t, dir, _) = new_vault();
    let full = fs::read(dir.db_file()).unwrap();
    assert!(full.len() >= 3 * 4096, "test needs a multi-page database");
    for cut in [full.len() - 4096, 4096, 100, 0] {
        fs::write(dir.db_file(), &full[..cut]).unwrap();
        let before = file_digest(&dir.db_file());
        let err = Vault::unlock(&dir, "admin", &secret(PASS)).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Integrity, "cut at {cut}: {err}");
        assert_eq!(
            file_digest(&dir.db_file()),
            before,
            "cut at {cut} changed the file"
        );
    }
    fs::remove_file(dir.db_file()).unwrap();
    let err = Vault::unlock(&dir, "admin", &secret(PASS)).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn argon2_parameters_are_stored_per_slot_and_honoured() {
    let cost = KdfCost {
        memory_kib: 4096,
        iterations: 2,
        parallelism: 1,
    };
    let (_t, dir, _) = new_vault_with(cost);
    let kf = KeyFile::read(&dir).unwrap();
    assert_eq!(kf.body.kdf_cost, cost);
    let slot = &kf.body.slots[0];
    assert_eq!(slot.kdf.algorithm, "argon2id");
    assert_eq!(slot.kdf.cost(), cost);
    assert_eq!(slot.kdf.salt.0.len(), 16);
    assert!(Vault::unlock(&dir, "admin", &secret(PASS)).is_ok());

    // Unlock derives with the stored parameters: change them and the same passphrase fails.
    let original = fs::read(dir.key_file()).unwrap();
    edit_key_file(&dir, |body| {
        body["slots"][0]["kdf"]["iterations"] = 1.into()
    });
    assert_eq!(
        kind(Vault::unlock(&dir, "admin", &secret(PASS))),
        ErrorKind::Authentication
    );
    fs::write(dir.key_file(), &original).unwrap();

    // An administrator raises the vault's cost; the next passphrase change uses it.
    let raised = KdfCost {
        memory_kib: 8192,
        iterations: 3,
        parallelism: 1,
    };
    edit_key_file(&dir, |body| {
        body["kdf_cost"] = serde_json::to_value(raised).unwrap();
    });
    // That edit was made without the master key, so it is refused as tampering...
    assert_eq!(
        kind(Vault::unlock(&dir, "admin", &secret(PASS))),
        ErrorKind::Integrity
    );
    fs::write(dir.key_file(), &original).unwrap();
    // ...while a passphrase change re-wraps with a fresh salt at the vault's cost.
    let mut v = session(&dir, PASS);
    v.change_passphrase(&secret(PASS), &secret("plum harbour velvet tractor"))
        .unwrap();
    let after = KeyFile::read(&dir).unwrap();
    assert_eq!(after.body.slots[0].kdf.cost(), cost);
    assert_ne!(after.body.slots[0].kdf.salt, slot.kdf.salt);
}

#[test]
fn passphrase_change_rewraps_the_slot_only() {
    let (_t, dir, recovery) = new_vault();
    let before = KeyFile::read(&dir).unwrap();
    let mut v = session(&dir, PASS);
    let short = v
        .change_passphrase(&secret(PASS), &secret("too short"))
        .err()
        .unwrap();
    assert_eq!(short.kind(), ErrorKind::InvalidInput);
    assert!(short.to_string().contains("at least 15"), "{short}");
    let wrong_current = v
        .change_passphrase(
            &secret("not my passphrase at all"),
            &secret("plum harbour velvet tractor"),
        )
        .err()
        .unwrap();
    assert_eq!(wrong_current.kind(), ErrorKind::Authentication);
    v.change_passphrase(&secret(PASS), &secret("plum harbour velvet tractor"))
        .unwrap();
    drop(v);
    let after = KeyFile::read(&dir).unwrap();
    assert_eq!(after.body.epoch, before.body.epoch);
    assert_eq!(
        after.body.slots[0].sealed_mk,
        before.body.slots[0].sealed_mk
    );
    assert_ne!(
        after.body.slots[0].wrapped_private,
        before.body.slots[0].wrapped_private
    );
    assert_eq!(
        kind(Vault::unlock(&dir, "admin", &secret(PASS))),
        ErrorKind::Authentication
    );
    assert!(Vault::unlock(&dir, "admin", &secret("plum harbour velvet tractor")).is_ok());
    // The recovery key was not touched by the change.
    vault::recover(
        &dir,
        &recovery,
        "admin",
        &secret("recovered passphrase here"),
    )
    .unwrap();
}

#[test]
fn recovery_key_resets_an_administrator_passphrase() {
    let (_t, dir, recovery) = new_vault();
    let other = RecoveryKey::generate();
    let err = vault::recover(&dir, &other, "admin", &secret("a brand new passphrase"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    let parsed = RecoveryKey::parse(&recovery.display()).unwrap();
    vault::recover(&dir, &parsed, "admin", &secret("a brand new passphrase")).unwrap();
    assert_eq!(
        kind(Vault::unlock(&dir, "admin", &secret(PASS))),
        ErrorKind::Authentication
    );
    let v = Vault::unlock(&dir, "admin", &secret("a brand new passphrase")).unwrap();
    assert_eq!(v.user().display_name, MARKER);
    drop(v);
    // The reset is in the trail, signed with the administrator's new key, and alerted.
    let mut s = session(&dir, "a brand new passphrase");
    let entries = s
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            action: Some("recovery.used".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].actor_name, "admin");
    assert!(s.verify_audit().unwrap().intact);
    assert!(s
        .audit_alerts(false)
        .unwrap()
        .iter()
        .any(|a| a.summary.contains("reset with the recovery key")));
    drop(s);
    assert_eq!(
        kind(vault::recover(
            &dir,
            &recovery,
            "nobody",
            &secret("a brand new passphrase")
        )),
        ErrorKind::NotFound
    );
}

#[test]
fn rotation_rekeys_the_database_so_an_old_key_file_no_longer_opens_it() {
    let (_t, dir, recovery) = new_vault();
    let old_key_file = fs::read(dir.key_file()).unwrap();
    let mut v = session(&dir, PASS);
    let old_db_key = v.export_db_key(&secret(PASS), None).unwrap();
    assert_eq!(v.rotate_keys().unwrap(), 2);
    let new_db_key = v.export_db_key(&secret(PASS), None).unwrap();
    assert_ne!(old_db_key.as_str(), new_db_key.as_str());
    drop(v);

    let conn = rusqlite::Connection::open(dir.db_file()).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", old_db_key.as_str()))
        .unwrap();
    assert!(conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0))
        .is_err());
    drop(conn);

    let new_key_file = fs::read(dir.key_file()).unwrap();
    fs::write(dir.key_file(), &old_key_file).unwrap();
    assert_eq!(
        kind(Vault::unlock(&dir, "admin", &secret(PASS))),
        ErrorKind::Integrity
    );
    fs::write(dir.key_file(), &new_key_file).unwrap();

    let v = Vault::unlock(&dir, "admin", &secret(PASS)).unwrap();
    assert_eq!(v.user().display_name, MARKER);
    drop(v);
    // The recovery key was re-sealed without being typed in.
    vault::recover(
        &dir,
        &recovery,
        "admin",
        &secret("recovered after rotation"),
    )
    .unwrap();
}

#[test]
fn rotation_is_refused_while_another_handle_has_the_vault_open() {
    let (_t, dir, _) = new_vault();
    let mut a = session(&dir, PASS);
    let b = Vault::unlock(&dir, "admin", &secret(PASS)).unwrap();
    let err = a.rotate_keys().err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Busy);
    drop(b);
    assert_eq!(a.rotate_keys().unwrap(), 2);
}

#[test]
fn a_vault_from_a_newer_build_is_refused_with_a_clear_message() {
    let (_t, dir, _) = new_vault();
    let mut v = session(&dir, PASS);
    let key = v.export_db_key(&secret(PASS), None).unwrap();
    drop(v);
    let conn = rusqlite::Connection::open(dir.db_file()).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA key = \"x'{}'\"; PRAGMA user_version = 999;",
        key.as_str()
    ))
    .unwrap();
    drop(conn);
    let err = Vault::unlock(&dir, "admin", &secret(PASS)).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Incompatible);
    assert!(err.to_string().contains("newer ClinVault"), "{err}");

    let (_t2, dir2, _) = new_vault();
    edit_key_file(&dir2, |body| body["format_version"] = 7.into());
    let err = vault::status(&dir2).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Incompatible);
}

#[test]
fn init_refuses_an_existing_vault_and_a_foreign_database() {
    let (_t, dir, _) = new_vault();
    let again = vault::init(
        &dir,
        InitOptions {
            admin_username: "other".into(),
            admin_display_name: None,
            passphrase: secret(PASS),
            kdf_cost: FAST,
            recovery_key_file: None,
        },
    );
    assert_eq!(kind(again), ErrorKind::AlreadyExists);

    let tmp = TempDir::new().unwrap();
    let foreign = VaultDir::new(tmp.path());
    fs::write(foreign.db_file(), b"somebody's data").unwrap();
    let refused = vault::init(
        &foreign,
        InitOptions {
            admin_username: "admin".into(),
            admin_display_name: None,
            passphrase: secret(PASS),
            kdf_cost: FAST,
            recovery_key_file: None,
        },
    );
    assert_eq!(kind(refused), ErrorKind::AlreadyExists);
    assert_eq!(fs::read(foreign.db_file()).unwrap(), b"somebody's data");
}
