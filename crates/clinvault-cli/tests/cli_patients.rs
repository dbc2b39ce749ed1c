//! `clinvault patient` through the real binary: ids printed, exit codes for bad input and
//! unknown ids, and a receptionist who cannot read the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;

use common::*;

#[test]
fn patient_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let mut c = cv(&vault);
    c.args([
        "patient",
        "add",
        "--first",
        "Joanna",
        "--last",
        "Smith",
        "--dob",
        "1984-03-27",
        "--phone",
        "+61 412 345 678",
    ]);
    let id = stdout(&ok(run(c))).trim().to_owned();
    assert_eq!(id.len(), 36);

    let mut c = cv(&vault);
    c.args(["patient", "search", "smi", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(rows[0]["id"], id.as_str());

    let mut c = cv(&vault);
    c.args(["patient", "update", &id, "--email", "jo@example.com"]);
    ok(run(c));
    let mut c = cv(&vault);
    c.args(["patient", "show", &id, "--json"]);
    let p: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(p["email"], "jo@example.com");
    assert_eq!(p["date_of_birth"], "1984-03-27");

    let mut c = cv(&vault);
    c.args([
        "patient",
        "add",
        "--first",
        "A",
        "--last",
        "B",
        "--dob",
        "1990-02-30",
    ]);
    let out = run(c);
    assert_eq!(code(&out), 2);
    assert_one_error_line(&out);
    assert!(stderr(&out).contains("date_of_birth"), "{}", stderr(&out));

    let mut c = cv(&vault);
    c.args(["patient", "show", "00000000-0000-0000-0000-000000000000"]);
    let out = run(c);
    assert_eq!(code(&out), 6);
    assert_one_error_line(&out);

    let mut c = cv(&vault);
    c.args(["audit", "list", "--patient", &id, "--json"]);
    let entries: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    let actions: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["patient.view", "patient.update", "patient.create"]
    );
}
