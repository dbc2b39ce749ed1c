//! `clinvault audit` end to end, including an insider who edits the trail with a standard
//! SQLCipher client (Python's sqlcipher3) using the exported database key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;

use common::*;
use std::process::Command;

fn sqlcipher(db: &std::path::Path, key: &str, sql: &str) {
    let script = r#"
import sys, sqlcipher3
con = sqlcipher3.connect(sys.argv[1])
con.execute("PRAGMA key = \"x'%s'\"" % sys.argv[2])
con.executescript(sys.argv[3])
con.commit()
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(key)
        .arg(sql)
        .output()
        .expect("python3 with sqlcipher3 (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `audit verify` exits 0 and says the trail is intact.
fn assert_verifies(vault: &std::path::Path) {
    let mut c = cv(vault);
    c.args(["audit", "verify"]);
    let out = ok(run(c));
    assert!(
        stdout(&out).contains("audit trail intact"),
        "{}",
        stdout(&out)
    );
}

/// `audit verify` exits 5 with one error line; returns that line.
fn verify_fails(vault: &std::path::Path) -> String {
    let mut c = cv(vault);
    c.args(["audit", "verify"]);
    let out = run(c);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_one_error_line(&out);
    stderr(&out)
}

/// An insider exports the database key through the CLI and runs `sql` on the vault's database
/// with a standard SQLCipher client.
fn as_insider(vault: &std::path::Path, sql: &str) {
    let mut c = cv(vault);
    c.args(["key", "export-db-key"]);
    let key = stdout(&ok(run(c))).trim().to_owned();
    sqlcipher(&vault.join("vault.db"), &key, sql);
}

#[test]
fn verify_list_export_and_an_insider_edit_through_a_standard_sqlcipher_client() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    for minutes in ["20", "25", "30"] {
        let mut c = cv(&vault);
        c.args(["policy", "set", "idle-lock-minutes", minutes]);
        ok(run(c));
    }
    assert_verifies(&vault);

    let mut c = cv(&vault);
    c.args(["audit", "list", "--action", "policy.set", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3);
    assert_eq!(rows[0]["details"]["new"], "30");

    let mut c = cv(&vault);
    c.args([
        "audit",
        "list",
        "--csv",
        "--outcome",
        "ok",
        "--since",
        "2000-01-01",
    ]);
    let csv = stdout(&ok(run(c)));
    assert!(csv.starts_with("seq,at,"));
    let mut c = cv(&vault);
    c.args(["audit", "list", "--since", "yesterday-ish"]);
    let out = run(c);
    assert_eq!(code(&out), 2);
    assert_one_error_line(&out);

    // The insider: exports the key, then edits one entry with a standard SQLCipher client.
    as_insider(
        &vault,
        "DROP TRIGGER audit_log_no_update;
         UPDATE audit_log SET details = '{\"key\":\"idle-lock-minutes\",\"new\":\"99\",\"old\":\"15\"}'
         WHERE action = 'policy.set' AND details LIKE '%\"new\":\"20\"%';",
    );
    let err = verify_fails(&vault);
    assert!(err.contains("modified"), "{err}");

    let mut c = cv(&vault);
    c.args(["audit", "alerts", "--json"]);
    let alerts: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    let failed = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "audit_verification_failed")
        .expect("verification failure raises an alert");
    let mut c = cv(&vault);
    c.args(["audit", "ack", &failed["id"].to_string()]);
    ok(run(c));
    let mut c = cv(&vault);
    c.args(["audit", "ack", "99999"]);
    assert_eq!(code(&run(c)), 6);
}

/// A trail cut back behind its checkpoint (as a restore of an older copy on this machine does)
/// fails verification until an administrator anchors it anew; a trail that matches its
/// checkpoint has nothing to anchor anew.
#[test]
fn reanchor_after_a_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let mut c = cv(&vault);
    c.args(["audit", "reanchor"]);
    let out = run(c);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_one_error_line(&out);
    assert!(
        stderr(&out).contains("nothing to anchor anew"),
        "{}",
        stderr(&out)
    );

    as_insider(
        &vault,
        "DROP TRIGGER audit_log_no_delete;
         DELETE FROM audit_log WHERE seq > (SELECT max(seq) - 3 FROM audit_log);",
    );
    let mut c = cv(&vault);
    c.args(["audit", "verify"]);
    assert_eq!(code(&run(c)), 5);
    let mut c = cv(&vault);
    c.args(["audit", "reanchor"]);
    let out = ok(run(c));
    assert!(stdout(&out).contains("anchored anew"), "{}", stdout(&out));
    let mut c = cv(&vault);
    c.args(["audit", "verify"]);
    ok(run(c));
}

/// An insider with the exported key cuts entries off the end and deletes the checkpoint file,
/// so that the next sign-in anchors the shortened trail: `audit verify` does not call that
/// intact (exit 5, `anchor_replaced`) until an administrator has looked into it and anchors the
/// trail anew.
#[test]
fn a_replaced_checkpoint_fails_verification_until_reanchored() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    for minutes in ["20", "25"] {
        let mut c = cv(&vault);
        c.args(["policy", "set", "idle-lock-minutes", minutes]);
        ok(run(c));
    }
    as_insider(
        &vault,
        "DROP TRIGGER audit_log_no_delete;
         DELETE FROM audit_log WHERE seq > (SELECT max(seq) - 3 FROM audit_log);",
    );
    std::fs::remove_file(vault.join("audit.checkpoint")).unwrap();
    let err = verify_fails(&vault);
    assert!(err.contains("anchor_replaced"), "{err}");
    assert!(err.contains("audit reanchor"), "{err}");
    let mut c = cv(&vault);
    c.args(["audit", "reanchor"]);
    ok(run(c));
    assert_verifies(&vault);
}

/// An export is for an investigation: `--csv` and `--json` hold every matching entry unless
/// `--limit` says otherwise, while the listing shows 100; text someone typed into a refused
/// request cannot drive the terminal that lists it.
#[test]
fn exports_hold_every_entry_and_the_listing_escapes_control_characters() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let mut c = cv(&vault);
    c.args(["policy", "set", "bell\u{7}\u{1b}[31mred", "x"]);
    assert_ne!(code(&run(c)), 0);
    for _ in 0..40 {
        let mut c = cv(&vault);
        c.args(["role", "list"]);
        ok(run(c));
    }
    let mut c = cv(&vault);
    c.args(["audit", "list"]);
    let listed = stdout(&ok(run(c)));
    assert_eq!(listed.lines().count(), 100, "the listing shows 100");
    let mut c = cv(&vault);
    c.args(["audit", "list", "--action", "policy.set"]);
    let refused = stdout(&ok(run(c)));
    assert!(
        !refused.contains('\u{1b}') && !refused.contains('\u{7}'),
        "{refused:?}"
    );
    assert!(refused.contains("bell\\u{7}\\u{1b}[31mred"), "{refused:?}");

    let mut c = cv(&vault);
    c.args(["audit", "list", "--csv"]);
    let csv = stdout(&ok(run(c)));
    let rows = csv.lines().count() - 1;
    assert!(rows > 100, "every entry is exported, not 100: {rows}");
    let mut c = cv(&vault);
    c.args(["audit", "list", "--json", "--limit", "3"]);
    let json: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
}

/// `args` on `vault` with no keyring copy of the checkpoint (`CLINVAULT_KEYRING=none`): the
/// vault folder and the copies elsewhere are the only anchors.
fn no_keyring(vault: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut c = cv(vault);
    c.env("CLINVAULT_KEYRING", "none")
        .env(
            "CLINVAULT_BACKUP_PASSPHRASE",
            "a backup passphrase for tests",
        )
        .args(args);
    run(c)
}

fn checkpoint_alerts(vault: &std::path::Path) -> usize {
    let out = ok(no_keyring(vault, &["audit", "alerts", "--json"]));
    let alerts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let alerts = alerts.as_array().unwrap().clone();
    alerts
        .into_iter()
        .filter(|a| a["rule"] == "audit_checkpoint_mismatch")
        .count()
}

/// An insider with the exported key cuts the trail back to where `checkpoint` (the text of an
/// earlier `audit.checkpoint`) vouched for, and puts that checkpoint file back: nothing in the
/// vault folder tells any more.
fn cut_back_to(vault: &std::path::Path, checkpoint: &str) {
    let cut_at: i64 = checkpoint.lines().nth(1).unwrap().parse().unwrap();
    let key = stdout(&ok(no_keyring(vault, &["key", "export-db-key"])))
        .trim()
        .to_owned();
    sqlcipher(
        &vault.join("vault.db"),
        &key,
        &format!("DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq > {cut_at};"),
    );
    std::fs::write(vault.join("audit.checkpoint"), checkpoint).unwrap();
}

/// A sync target's copies are anchors. An insider cuts the trail back behind the last push,
/// puts back the checkpoint file of the cut point and lets the trail grow again: nothing in
/// the folder tells, but the next `sync push` (to a real folder target) finds the target's
/// latest copy vouching for entries the trail no longer holds. It alerts, and `audit verify`
/// fails (exit 5) until `audit reanchor`; the push after that is quiet.
#[test]
fn a_sync_push_catches_a_trail_cut_behind_the_targets_latest_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let step = |args: &[&str]| ok(no_keyring(&vault, args));
    let target = format!("file://{}", tmp.path().join("nas").display());
    step(&["sync", "target", "set", &target]);
    let cut_file = std::fs::read_to_string(vault.join("audit.checkpoint")).unwrap();
    for minutes in ["20", "25"] {
        step(&["policy", "set", "idle-lock-minutes", minutes]);
    }
    step(&["sync", "push"]);
    step(&["sync", "push"]);
    assert_eq!(checkpoint_alerts(&vault), 0);

    cut_back_to(&vault, &cut_file);
    for minutes in ["30", "35", "40", "45", "50"] {
        step(&["policy", "set", "idle-lock-minutes", minutes]);
    }
    step(&["audit", "verify"]);
    assert_eq!(
        checkpoint_alerts(&vault),
        0,
        "nothing in the vault folder tells"
    );

    step(&["sync", "push"]);
    assert_eq!(checkpoint_alerts(&vault), 1);
    let out = no_keyring(&vault, &["audit", "verify"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_one_error_line(&out);
    let err = stderr(&out);
    assert!(
        err.contains("truncated") && err.contains("sync.push"),
        "{err}"
    );
    step(&["audit", "reanchor"]);
    step(&["audit", "verify"]);
    step(&["sync", "push"]);
    assert_eq!(checkpoint_alerts(&vault), 1);
}

/// A backup file is an anchor too, when checked against the vault it was made from (`backup
/// verify --against-vault`): after an insider cut the trail back behind it, the backup still
/// verifies, but the comparison fails (exit 5, one error line), is recorded and alerts. Before
/// the cut the same check passes; without the flag nothing is compared.
#[test]
fn backup_verify_against_the_vault_catches_a_trail_cut_behind_the_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let step = |args: &[&str]| ok(no_keyring(&vault, args));
    step(&["policy", "set", "idle-lock-minutes", "20"]);
    let cut_file = std::fs::read_to_string(vault.join("audit.checkpoint")).unwrap();
    step(&["policy", "set", "idle-lock-minutes", "25"]);
    let backup = tmp.path().join("clinic.cvbackup");
    step(&["backup", "export", "--out", backup.to_str().unwrap()]);
    let file = backup.to_str().unwrap();
    let check: serde_json::Value = serde_json::from_slice(
        &step(&["backup", "verify", "--against-vault", "--json", file]).stdout,
    )
    .unwrap();
    assert_eq!(check["trail_holds_backup"], true, "{check}");

    cut_back_to(&vault, &cut_file);
    let plain: serde_json::Value =
        serde_json::from_slice(&step(&["backup", "verify", "--json", file]).stdout).unwrap();
    assert!(plain.get("trail_holds_backup").is_none(), "{plain}");
    assert_eq!(
        checkpoint_alerts(&vault),
        0,
        "nothing in the vault folder tells"
    );
    let out = no_keyring(&vault, &["backup", "verify", "--against-vault", file]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_one_error_line(&out);
    assert!(stdout(&out).contains("Verified"), "{}", stdout(&out));
    assert!(stderr(&out).contains("no longer holds"), "{}", stderr(&out));
    assert_eq!(checkpoint_alerts(&vault), 1);
    let out = no_keyring(&vault, &["audit", "verify"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("backup file checked"),
        "{}",
        stderr(&out)
    );
}
