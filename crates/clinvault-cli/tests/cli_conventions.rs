//! The CLI contract: commands, environment variables, one-line errors and exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benches may panic on setup failures

mod common;

use common::*;
use std::fs;
use std::process::Command;

#[test]
fn init_status_and_whoami() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    let out = init(&vault);
    let text = stdout(&out);
    assert!(text.contains("RECOVERY KEY"), "{text}");
    let key_line = text
        .lines()
        .find(|l| l.trim().len() == 65 && l.trim().matches('-').count() == 10)
        .expect("recovery key printed in groups");
    assert!(clinvault_core::RecoveryKey::parse(key_line.trim()).is_ok());

    let mut c = cv(&vault);
    c.args(["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(status["format_version"], 1);
    assert_eq!(status["key_slots"], 1);
    assert!(status["sqlcipher_version"]
        .as_str()
        .unwrap()
        .starts_with('4'));
    assert!(status["created_at"].as_str().unwrap().contains('T'));

    let mut c = cv(&vault);
    c.args(["whoami", "--json"]);
    let me: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(me["username"], "admin");
    assert_eq!(me["role"], "administrator");

    // init refuses to touch the existing vault.
    let mut c = cv(&vault);
    c.args(["init", "--admin", "someone"]);
    let out = run(c);
    assert_eq!(code(&out), 1);
    assert_one_error_line(&out);
}

#[test]
fn exit_codes_follow_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");

    let mut c = cv(&vault);
    c.arg("status");
    let out = run(c);
    assert_eq!(code(&out), 6, "no vault is 'not found'");
    assert_one_error_line(&out);

    let mut c = cv(&vault);
    c.arg("no-such-command");
    let out = run(c);
    assert_eq!(code(&out), 2);
    assert_one_error_line(&out);

    init(&vault);
    let mut c = cv(&vault);
    c.env("CLINVAULT_PASSPHRASE", "wrong wrong wrong wrong")
        .arg("whoami");
    let out = run(c);
    assert_eq!(code(&out), 3);
    assert_one_error_line(&out);
    assert!(stderr(&out).contains("wrong username or passphrase"));

    let mut c = cv(&vault);
    c.env("CLINVAULT_USER", "ghost").arg("whoami");
    let out = run(c);
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("wrong username or passphrase"));

    // No terminal and no passphrase source: a usage error, not a hang.
    let mut c = cv(&vault);
    c.env_remove("CLINVAULT_PASSPHRASE").arg("whoami");
    let out = run(c);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("CLINVAULT_PASSPHRASE"));

    // An empty CLINVAULT_USER is no username: asked for, not tried as "".
    let mut c = cv(&vault);
    c.env("CLINVAULT_USER", "").arg("whoami");
    let out = run(c);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("username needed"), "{}", stderr(&out));

    // A missing passphrase file is "not found", like any other missing input file.
    let mut c = cv(&vault);
    c.env_remove("CLINVAULT_PASSPHRASE")
        .arg("--passphrase-file")
        .arg(tmp.path().join("no-such-file"))
        .arg("whoami");
    let out = run(c);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no passphrase file at"),
        "{}",
        stderr(&out)
    );

    // Options that contradict each other, or mean something only with another, are refused.
    for args in [
        &["notify", "address", "sam", "sam@example.org", "--off"][..],
        &["notify", "address", "sam"][..],
        &[
            "sync",
            "restore",
            "latest",
            "--to",
            "/tmp/x",
            "--ca-file",
            "/tmp/ca.pem",
        ][..],
    ] {
        let mut c = cv(&vault);
        c.args(args);
        let out = run(c);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert_one_error_line(&out);
    }
}

#[test]
fn passphrase_file_and_passphrase_change() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let file = tmp.path().join("pass.txt");
    fs::write(&file, format!("{PASS}\n")).unwrap();
    let mut c = cv(&vault);
    c.env_remove("CLINVAULT_PASSPHRASE")
        .arg("--passphrase-file")
        .arg(&file)
        .arg("whoami");
    ok(run(c));

    let mut c = cv(&vault);
    c.env("CLINVAULT_NEW_PASSPHRASE", "a new and long passphrase")
        .args(["passphrase", "change"]);
    ok(run(c));
    let mut c = cv(&vault);
    c.arg("whoami");
    assert_eq!(code(&run(c)), 3);
    let mut c = cv(&vault);
    c.env("CLINVAULT_PASSPHRASE", "a new and long passphrase")
        .arg("whoami");
    ok(run(c));
}

#[test]
fn recover_with_the_recovery_key_file() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    let rk = tmp.path().join("recovery.txt");
    let mut c = cv(&vault);
    c.args(["init", "--admin", "admin", "--recovery-key-file"])
        .arg(&rk);
    ok(run(c));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&rk).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let mut c = cv(&vault);
    c.env("CLINVAULT_NEW_PASSPHRASE", "recovered and long passphrase")
        .args(["recover", "--admin", "admin", "--recovery-key-file"])
        .arg(&rk);
    ok(run(c));
    let mut c = cv(&vault);
    c.env("CLINVAULT_PASSPHRASE", "recovered and long passphrase")
        .arg("whoami");
    ok(run(c));

    let bad = tmp.path().join("bad.txt");
    fs::write(&bad, "not a key\n").unwrap();
    let mut c = cv(&vault);
    c.env("CLINVAULT_NEW_PASSPHRASE", "recovered and long passphrase")
        .args(["recover", "--admin", "admin", "--recovery-key-file"])
        .arg(&bad);
    let out = run(c);
    assert_eq!(code(&out), 2);
    assert_one_error_line(&out);
}

#[test]
fn corrupt_key_file_and_truncated_database_exit_5_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let keys = vault.join("vault.keys");
    let original = fs::read(&keys).unwrap();
    let mut damaged = original.clone();
    let at = damaged.len() / 2;
    damaged[at] = damaged[at].wrapping_add(1);
    fs::write(&keys, &damaged).unwrap();
    let mut c = cv(&vault);
    c.arg("whoami");
    let out = run(c);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_one_error_line(&out);
    assert!(stderr(&out).contains("key file"));
    assert_eq!(
        fs::read(&keys).unwrap(),
        damaged,
        "nothing rewrote the key file"
    );
    fs::write(&keys, &original).unwrap();

    let db = vault.join("vault.db");
    let full = fs::read(&db).unwrap();
    fs::write(&db, &full[..full.len() - 4096]).unwrap();
    let mut c = cv(&vault);
    c.arg("whoami");
    let out = run(c);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_one_error_line(&out);
    assert_eq!(fs::read(&db).unwrap().len(), full.len() - 4096);
}

/// Finds python3 with the `sqlcipher3` module (the test command installs it).
fn python_with(module: &str) -> Command {
    let probe = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output();
    match probe {
        Ok(o) if o.status.success() => Command::new("python3"),
        _ => panic!(
            "python3 with the `{module}` module is required (installed by scripts/test.sh: \
             pip install sqlcipher3-binary)"
        ),
    }
}

#[test]
fn exported_key_opens_the_database_in_a_standard_sqlcipher_client_and_plain_sqlite_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let mut c = cv(&vault);
    c.args(["key", "export-db-key", "--json"]);
    let out: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    let key = out["db_key_hex"].as_str().unwrap().to_owned();
    assert_eq!(hex::decode(&key).unwrap().len(), 32);

    let script = r#"
import sys, sqlcipher3
con = sqlcipher3.connect(sys.argv[1])
con.execute("PRAGMA key = \"x'%s'\"" % sys.argv[2])
print(con.execute("SELECT display_name FROM users WHERE username = 'admin'").fetchone()[0])
print(con.execute("PRAGMA cipher_version").fetchone()[0])
"#;
    let out = python_with("sqlcipher3")
        .args(["-c", script])
        .arg(vault.join("vault.db"))
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("Practice Admin\n4."), "{text}");

    let plain = r#"
import sys, sqlite3
try:
    sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM sqlite_master").fetchall()
    print("opened")
except sqlite3.DatabaseError as e:
    print("refused:", e)
"#;
    let out = python_with("sqlite3")
        .args(["-c", plain])
        .arg(vault.join("vault.db"))
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "refused: file is not a database");

    // A non-administrator cannot export; exercised with the wrong re-entry here.
    let mut c = cv(&vault);
    c.args(["key", "export-db-key"]);
    c.env("CLINVAULT_PASSPHRASE", "wrong wrong wrong wrong");
    assert_eq!(code(&run(c)), 3);
}
