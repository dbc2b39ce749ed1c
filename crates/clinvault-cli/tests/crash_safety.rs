//! Crash safety of every key operation: the process is aborted at each named point (like
//! kill -9: no destructors, no cleanup) and at random instants, and the vault must then open with
//! the old or the new credentials, with its data intact. Also: two processes at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benches may panic on setup failures

mod common;

use common::*;
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const NEW_PASS: &str = "the replacement passphrase";

fn crash(mut c: Command, point: &str) {
    c.env("CLINVAULT_FAULT_POINT", point);
    let out = run(c);
    assert_eq!(
        out.status.signal(),
        Some(6),
        "expected an abort at {point}, got {:?}: {}",
        out.status,
        stderr(&out)
    );
}

fn whoami_with(vault: &Path, pass: &str) -> Option<String> {
    let mut c = cv(vault);
    c.env("CLINVAULT_PASSPHRASE", pass)
        .args(["whoami", "--json"]);
    let out = run(c);
    if !out.status.success() {
        assert_eq!(
            code(&out),
            3,
            "only a wrong passphrase may fail: {}",
            stderr(&out)
        );
        return None;
    }
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(me["display_name"].as_str().unwrap().to_owned())
}

fn status(vault: &Path) -> serde_json::Value {
    let mut c = cv(vault);
    c.args(["status", "--json"]);
    serde_json::from_slice(&ok(run(c)).stdout).unwrap()
}

fn init_with_recovery(vault: &Path) -> std::path::PathBuf {
    let rk = vault.with_extension("recovery");
    let mut c = cv(vault);
    c.args([
        "init",
        "--admin",
        "admin",
        "--display-name",
        "Practice Admin",
        "--recovery-key-file",
    ])
    .arg(&rk);
    ok(run(c));
    rk
}

const INIT_POINTS: &[&str] = &[
    "init.after_marker",
    "init.after_db",
    "init.after_recovery_file",
    "keyfile.before_rename",
    "init.after_keyfile",
];
const SLOT_POINTS: &[&str] = &["keyfile.before_rename", "slot.after_write"];
const ROTATE_POINTS: &[&str] = &[
    "keyfile.before_rename",
    "rotate.after_pending",
    "rotate.after_copy",
    "rotate.after_swap",
    "rotate.after_promote",
];

#[test]
fn every_fault_point_is_exercised_by_these_tests() {
    let used: BTreeSet<&str> = INIT_POINTS
        .iter()
        .chain(SLOT_POINTS)
        .chain(ROTATE_POINTS)
        .copied()
        .collect();
    let declared: BTreeSet<&str> = clinvault_core::fault::POINTS.iter().copied().collect();
    assert_eq!(used, declared);
}

#[test]
fn crash_during_init_leaves_no_vault_or_a_working_one() {
    for point in INIT_POINTS {
        let tmp = tempfile::tempdir().unwrap();
        let vault = tmp.path().join("v");
        let mut c = cv(&vault);
        c.args([
            "init",
            "--admin",
            "admin",
            "--display-name",
            "Practice Admin",
        ]);
        crash(c, point);
        let mut c = cv(&vault);
        c.arg("status");
        let out = run(c);
        if *point == "init.after_keyfile" {
            assert!(out.status.success(), "{point}: {}", stderr(&out));
            assert_eq!(whoami_with(&vault, PASS).as_deref(), Some("Practice Admin"));
        } else {
            assert_eq!(
                code(&out),
                6,
                "{point}: a half-made vault must not be visible"
            );
            init(&vault);
            assert_eq!(
                whoami_with(&vault, PASS).as_deref(),
                Some("Practice Admin"),
                "{point}"
            );
        }
    }
}

#[test]
fn crash_during_passphrase_change_opens_with_old_or_new() {
    for point in SLOT_POINTS {
        let tmp = tempfile::tempdir().unwrap();
        let vault = tmp.path().join("v");
        init(&vault);
        let mut c = cv(&vault);
        c.env("CLINVAULT_NEW_PASSPHRASE", NEW_PASS)
            .args(["passphrase", "change"]);
        crash(c, point);
        let old = whoami_with(&vault, PASS);
        let new = whoami_with(&vault, NEW_PASS);
        assert!(
            old.is_some() != new.is_some(),
            "{point}: exactly one must open"
        );
        assert_eq!(old.or(new).as_deref(), Some("Practice Admin"));
    }
}

#[test]
fn crash_during_recovery_opens_with_old_or_new() {
    for point in SLOT_POINTS {
        let tmp = tempfile::tempdir().unwrap();
        let vault = tmp.path().join("v");
        let rk = init_with_recovery(&vault);
        let mut c = cv(&vault);
        c.env("CLINVAULT_NEW_PASSPHRASE", NEW_PASS)
            .args(["recover", "--admin", "admin", "--recovery-key-file"])
            .arg(&rk);
        crash(c, point);
        let old = whoami_with(&vault, PASS);
        let new = whoami_with(&vault, NEW_PASS);
        assert!(
            old.is_some() != new.is_some(),
            "{point}: exactly one must open"
        );
    }
}

#[test]
fn crash_during_rotation_loses_nothing_and_the_rotation_completes() {
    for point in ROTATE_POINTS {
        let tmp = tempfile::tempdir().unwrap();
        let vault = tmp.path().join("v");
        let rk = init_with_recovery(&vault);
        let mut c = cv(&vault);
        c.args(["key", "rotate"]);
        crash(c, point);
        // The next sign-in opens the vault and finishes (or re-runs) an interrupted rotation.
        assert_eq!(
            whoami_with(&vault, PASS).as_deref(),
            Some("Practice Admin"),
            "{point}"
        );
        let s = status(&vault);
        assert_eq!(s["rotation_pending"], false, "{point}");
        let expected_epoch = if *point == "keyfile.before_rename" {
            1
        } else {
            2
        };
        assert_eq!(s["key_epoch"], expected_epoch, "{point}");
        assert!(!vault.join("vault.db.next").exists() || *point == "rotate.after_copy");
        // The rotation the sign-in finished is recorded, the trail verifies, and the checkpoint
        // was re-anchored without a false alarm.
        let mut c = cv(&vault);
        c.args(["audit", "verify"]);
        ok(run(c));
        let mut c = cv(&vault);
        c.args(["audit", "alerts", "--json"]);
        let alerts = stdout(&ok(run(c)));
        assert!(
            !alerts.contains("audit_checkpoint_mismatch"),
            "{point}: {alerts}"
        );
        if *point != "keyfile.before_rename" {
            let mut c = cv(&vault);
            c.args(["audit", "list", "--action", "key.rotate", "--json"]);
            let rotations = stdout(&ok(run(c)));
            assert!(
                rotations.contains("completed at sign-in"),
                "{point}: {rotations}"
            );
        }
        // The recovery key still opens the vault at its new epoch.
        let mut c = cv(&vault);
        c.env("CLINVAULT_NEW_PASSPHRASE", NEW_PASS)
            .args(["recover", "--admin", "admin", "--recovery-key-file"])
            .arg(&rk);
        ok(run(c));
        assert_eq!(
            whoami_with(&vault, NEW_PASS).as_deref(),
            Some("Practice Admin")
        );
    }
}

#[test]
fn kill_9_at_random_instants_during_rotation_never_loses_the_vault() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    // Measure one rotation so the kills spread over its whole duration.
    let started = Instant::now();
    let mut c = cv(&vault);
    c.args(["key", "rotate"]);
    ok(run(c));
    let span = started.elapsed().as_micros().max(1000) as u64;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..16 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut c = cv(&vault);
        c.args(["key", "rotate"]);
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_micros(seed % span));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(whoami_with(&vault, PASS).as_deref(), Some("Practice Admin"));
    }
}

#[test]
fn two_processes_at_once_are_serialised_and_corrupt_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let mut children = Vec::new();
    for i in 0..8 {
        let mut c = cv(&vault);
        if i % 2 == 0 {
            c.args(["key", "rotate"]);
        } else {
            c.args(["whoami"]);
        }
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        children.push((i, c.spawn().unwrap()));
    }
    let mut rotations = 0;
    for (i, child) in children {
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            if i % 2 == 0 {
                rotations += 1;
            }
        } else {
            // The only acceptable failure: a rotation refused because another process had the
            // vault open at that moment.
            assert_eq!(code(&out), 1, "{}", stderr(&out));
            assert!(stderr(&out).contains("open in another"), "{}", stderr(&out));
            assert_eq!(i % 2, 0, "a reader must never fail: {}", stderr(&out));
        }
    }
    assert_eq!(whoami_with(&vault, PASS).as_deref(), Some("Practice Admin"));
    let s = status(&vault);
    assert_eq!(s["key_epoch"], 1 + rotations);
    assert_eq!(s["rotation_pending"], false);
}

#[test]
fn crash_while_adding_a_user_leaves_the_vault_open_to_everyone_else() {
    for point in SLOT_POINTS {
        let tmp = tempfile::tempdir().unwrap();
        let vault = tmp.path().join("v");
        init(&vault);
        let mut c = cv(&vault);
        c.env("CLINVAULT_NEW_PASSPHRASE", "quiet lantern orbit meadow")
            .args(["user", "add", "jo", "--role", "receptionist"]);
        crash(c, point);
        assert_eq!(
            whoami_with(&vault, PASS).as_deref(),
            Some("Practice Admin"),
            "{point}"
        );
        let mut c = cv(&vault);
        c.env("CLINVAULT_USER", "jo")
            .env("CLINVAULT_PASSPHRASE", "quiet lantern orbit meadow")
            .arg("whoami");
        let out = run(c);
        // Before the key file is replaced Jo has no slot; after, she can sign in.
        let expect_ok = *point == "slot.after_write";
        assert_eq!(out.status.success(), expect_ok, "{point}: {}", stderr(&out));
    }
}

#[test]
fn crash_during_revocation_still_revokes_at_the_next_sign_in() {
    for point in ROTATE_POINTS {
        let tmp = tempfile::tempdir().unwrap();
        let vault = tmp.path().join("v");
        init(&vault);
        let mut c = cv(&vault);
        c.env("CLINVAULT_NEW_PASSPHRASE", "quiet lantern orbit meadow")
            .args(["user", "add", "jo", "--role", "receptionist"]);
        ok(run(c));
        let old_key_file = std::fs::read(vault.join("vault.keys")).unwrap();
        let mut c = cv(&vault);
        c.args(["user", "disable", "jo"]);
        crash(c, point);
        // The administrator's next sign-in opens the vault and finishes the revocation.
        assert_eq!(
            whoami_with(&vault, PASS).as_deref(),
            Some("Practice Admin"),
            "{point}"
        );
        let s = status(&vault);
        assert_eq!(s["rotation_pending"], false, "{point}");
        assert_eq!(s["key_slots"], 1, "{point}");
        let jo = |vault: &Path| {
            let mut c = cv(vault);
            c.env("CLINVAULT_USER", "jo")
                .env("CLINVAULT_PASSPHRASE", "quiet lantern orbit meadow")
                .arg("whoami");
            run(c)
        };
        assert!(!jo(&vault).status.success(), "{point}: jo still signs in");
        // Not even with the key file she could have copied before.
        let current = std::fs::read(vault.join("vault.keys")).unwrap();
        std::fs::write(vault.join("vault.keys"), &old_key_file).unwrap();
        let out = jo(&vault);
        assert_eq!(code(&out), 5, "{point}: {}", stderr(&out));
        std::fs::write(vault.join("vault.keys"), &current).unwrap();
    }
}
