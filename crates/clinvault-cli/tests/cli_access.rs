//! The identity and access commands end to end through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const USER_PASS: &str = "quiet lantern orbit meadow";

fn as_user(vault: &Path, user: &str, pass: &str) -> Command {
    let mut c = cv(vault);
    c.env("CLINVAULT_USER", user)
        .env("CLINVAULT_PASSPHRASE", pass);
    c
}

fn oath(secret: &str) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", secret])
        .output()
        .unwrap_or_else(|_| panic!("oathtool is required: apt-get install oathtool"));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn users_roles_policy_and_permission_denied_exit_4() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let mut c = cv(&vault);
    c.env("CLINVAULT_NEW_PASSPHRASE", USER_PASS).args([
        "user",
        "add",
        "Jo",
        "--role",
        "receptionist",
        "--display-name",
        "Jo Smith",
    ]);
    let id = stdout(&ok(run(c))).trim().to_owned();
    assert!(uuid_like(&id), "prints the new id: {id}");

    let mut c = cv(&vault);
    c.args(["user", "list", "--json"]);
    let users: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    let jo = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "jo")
        .unwrap();
    assert_eq!(jo["role"], "receptionist");
    assert_eq!(jo["two_factor"], false);

    // The receptionist is refused administration with exit 4, one error line.
    let mut c = as_user(&vault, "jo", USER_PASS);
    c.args(["user", "list"]);
    let out = run(c);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_one_error_line(&out);
    assert!(stderr(&out).contains("permission denied"));
    let mut c = as_user(&vault, "jo", USER_PASS);
    c.args(["policy", "set", "idle-lock-minutes", "1"]);
    assert_eq!(code(&run(c)), 4);
    let mut c = as_user(&vault, "jo", USER_PASS);
    c.args(["key", "rotate"]);
    assert_eq!(code(&run(c)), 4);

    // Policy: shown to anyone, set by administrators, validated.
    let mut c = cv(&vault);
    c.args(["policy", "set", "session-hours", "500"]);
    let out = run(c);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("between 1 and 168"));
    let mut c = cv(&vault);
    c.args(["policy", "set", "require-2fa.biller", "on"]);
    ok(run(c));
    let mut c = as_user(&vault, "jo", USER_PASS);
    c.args(["policy", "show", "--json"]);
    let p: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(p["require_2fa"]["biller"], true);
    // The alert thresholds are for administrators only: nobody else learns how to stay under them.
    assert!(p.get("alert_bulk_view_count").is_none(), "{p}");
    let mut c = as_user(&vault, "jo", USER_PASS);
    c.args(["policy", "show"]);
    let text = String::from_utf8(ok(run(c)).stdout).unwrap();
    assert!(
        text.contains("idle-lock-minutes") && !text.contains("alert."),
        "{text}"
    );
    let mut c = cv(&vault);
    c.args(["policy", "show", "--json"]);
    let p: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(p["alert_bulk_view_count"], 50, "{p}");

    // Roles: set-role with an unknown role is "not found".
    let mut c = cv(&vault);
    c.args(["user", "set-role", "jo", "astronaut"]);
    assert_eq!(code(&run(c)), 6);
    let mut c = cv(&vault);
    c.args([
        "role",
        "create",
        "scheduler",
        "--permissions",
        "appointments.read,appointments.manage",
    ]);
    ok(run(c));
    let mut c = cv(&vault);
    c.args(["user", "set-role", "jo", "scheduler"]);
    ok(run(c));

    // Disable: her passphrase no longer opens the vault; history shows her sign-ins.
    let mut c = cv(&vault);
    c.args(["user", "disable", "jo"]);
    ok(run(c));
    let mut c = as_user(&vault, "jo", USER_PASS);
    c.arg("whoami");
    assert_eq!(code(&run(c)), 3);
    let mut c = cv(&vault);
    c.args(["user", "history", "jo", "--json"]);
    let h: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert!(h.as_array().unwrap().iter().any(|r| r["outcome"] == "ok"));
    assert!(h
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["outcome"] == "failed"));
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn two_factor_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let qr = tmp.path().join("qr.png");
    let mut c = cv(&vault);
    c.args(["user", "2fa", "enroll", "--qr"]).arg(&qr);
    let uri = stdout(&ok(run(c))).trim().to_owned();
    assert!(uri.starts_with("otpauth://totp/"));
    assert_eq!(&std::fs::read(&qr).unwrap()[..4], b"\x89PNG");
    let secret = uri
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("secret="))
        .unwrap()
        .to_owned();

    let mut c = cv(&vault);
    c.args(["user", "2fa", "confirm", &oath(&secret)]);
    let codes: Vec<String> = stdout(&ok(run(c))).lines().map(str::to_owned).collect();
    assert_eq!(codes.len(), 10);

    // Without a code and no terminal to prompt on: a usage error naming where codes come from.
    let mut c = cv(&vault);
    c.arg("whoami");
    let out = run(c);
    assert_eq!(code(&out), 2);
    assert_one_error_line(&out);
    assert!(stderr(&out).contains("CLINVAULT_TOTP"));

    // A recovery code is accepted wherever a TOTP code is; a wrong code is exit 3.
    let mut c = cv(&vault);
    c.env("CLINVAULT_TOTP", &codes[0]).arg("whoami");
    ok(run(c));
    let mut c = cv(&vault);
    c.args(["--totp", "000000", "whoami"]);
    let out = run(c);
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("not correct"), "{}", stderr(&out));
    // Export of the database key with 2FA: the code proved at sign-in covers re-authentication.
    let mut c = cv(&vault);
    c.env("CLINVAULT_TOTP", &codes[1])
        .args(["key", "export-db-key"]);
    let key = stdout(&ok(run(c))).trim().to_owned();
    assert_eq!(key.len(), 64);
}
