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

#[test]
fn practitioner_hours_types_and_bookings() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let step = |args: &[&str]| {
        let mut c = cv(&vault);
        c.env("CLINVAULT_NEW_PASSPHRASE", "quiet lantern orbit meadow")
            .args(args);
        stdout(&ok(run(c))).trim().to_owned()
    };
    step(&["policy", "set", "clinic-timezone", "Europe/London"]);
    step(&["user", "add", "sam", "--role", "practitioner"]);
    step(&["practitioner", "add", "--user", "sam"]);
    step(&["practitioner", "hours", "sam", "Tue", "09:00-17:00"]);
    step(&[
        "appointment-type",
        "add",
        "Follow-up",
        "--minutes",
        "30",
        "--price",
        "60.00",
    ]);
    let patient = step(&["patient", "add", "--first", "Ann", "--last", "Jones"]);
    let ids = step(&[
        "appointment",
        "add",
        "--patient",
        &patient,
        "--practitioner",
        "sam",
        "--type",
        "Follow-up",
        "--start",
        "2026-10-20T10:00",
        "--repeat-weekly",
        "2",
    ]);
    assert_eq!(ids.lines().count(), 2);
    let mut c = cv(&vault);
    c.args([
        "appointment",
        "add",
        "--patient",
        &patient,
        "--practitioner",
        "sam",
        "--type",
        "Follow-up",
        "--start",
        "2026-10-20T10:15",
    ]);
    let out = run(c);
    assert_eq!(code(&out), 1);
    assert_one_error_line(&out);
    assert!(stderr(&out).contains("overlaps"), "{}", stderr(&out));
    let mut c = cv(&vault);
    c.args(["appointment", "list", "--day", "2026-10-27", "--json"]);
    let day: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    // London leaves summer time on 2026-10-25: the second week is 10:00 GMT, not BST.
    assert_eq!(day[0]["starts_local"], "2026-10-27T10:00");
    assert_eq!(day[0]["starts_at"], "2026-10-27T10:00:00Z");
    // Sam's next free starts from 09:00, as lines and as JSON.
    const FREE: [&str; 9] = [
        "appointment",
        "free",
        "--practitioner",
        "sam",
        "--type",
        "Follow-up",
        "--from",
        "2026-10-20T09:00",
        "--count",
    ];
    let free = step(&[&FREE[..], &["3"]].concat());
    assert_eq!(
        free.lines().collect::<Vec<_>>(),
        ["2026-10-20T09:00", "2026-10-20T09:15", "2026-10-20T09:30"]
    );
    let free: serde_json::Value =
        serde_json::from_str(&step(&[&FREE[..], &["2", "--json"]].concat())).unwrap();
    assert_eq!(
        free,
        serde_json::json!(["2026-10-20T09:00", "2026-10-20T09:15"])
    );
    step(&[
        "practitioner",
        "time-off",
        "sam",
        "--from",
        "2026-11-03T00:00",
        "--to",
        "2026-11-04T00:00",
        "--reason",
        "course",
    ]);
    let first = ids.lines().next().unwrap();
    assert!(step(&["appointment", "status", first, "arrived"]).contains("arrived"));
    let mut c = cv(&vault);
    c.args(["appointment", "status", first, "cancelled"]);
    let out = run(c);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let mut c = cv(&vault);
    c.args(["appointment", "status", "no-such-id", "arrived"]);
    assert_eq!(code(&run(c)), 6);
}

#[test]
fn a_day_at_the_clinic_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let as_user = |user: &str, args: &[&str]| {
        let mut c = cv(&vault);
        if user != "admin" {
            c.env("CLINVAULT_USER", user)
                .env("CLINVAULT_PASSPHRASE", "quiet lantern orbit meadow");
        }
        c.env("CLINVAULT_NEW_PASSPHRASE", "quiet lantern orbit meadow")
            .args(args);
        run(c)
    };
    let okv = |user: &str, args: &[&str]| stdout(&ok(as_user(user, args))).trim().to_owned();
    okv("admin", &["user", "add", "sam", "--role", "practitioner"]);
    okv("admin", &["user", "add", "rita", "--role", "receptionist"]);
    okv("admin", &["practitioner", "add", "--user", "sam"]);
    okv(
        "admin",
        &["practitioner", "hours", "sam", "Mon", "09:00-17:00"],
    );
    okv(
        "admin",
        &[
            "appointment-type",
            "add",
            "Initial consult",
            "--minutes",
            "45",
            "--price",
            "95.00",
            "--tax",
            "10",
        ],
    );
    let patient = okv(
        "rita",
        &["patient", "add", "--first", "Ann", "--last", "Jones"],
    );
    let appt = okv(
        "rita",
        &[
            "appointment",
            "add",
            "--patient",
            &patient,
            "--practitioner",
            "sam",
            "--type",
            "Initial consult",
            "--start",
            "2026-03-02T10:00",
        ],
    );
    okv("rita", &["appointment", "status", &appt, "arrived"]);

    let draft = tmp.path().join("note.txt");
    std::fs::write(&draft, "Lower back pain after lifting.\n").unwrap();
    let note = okv(
        "sam",
        &[
            "note",
            "add",
            "--patient",
            &patient,
            "--appointment",
            &appt,
            "--file",
            draft.to_str().unwrap(),
        ],
    );
    okv("sam", &["note", "finalize", &note]);
    std::fs::write(&draft, "Lower back pain after lifting a box.\n").unwrap();
    okv(
        "sam",
        &[
            "note",
            "amend",
            &note,
            "--file",
            draft.to_str().unwrap(),
            "--reason",
            "detail",
        ],
    );
    let out = as_user("rita", &["note", "show", &note]);
    assert_eq!(
        code(&out),
        4,
        "the receptionist cannot open the treatment note"
    );

    let invoice = okv("rita", &["invoice", "create", "--appointment", &appt]);
    okv(
        "rita",
        &[
            "invoice", "pay", &invoice, "--amount", "50", "--method", "card",
        ],
    );
    let shown: serde_json::Value =
        serde_json::from_str(&okv("rita", &["invoice", "show", &invoice, "--json"])).unwrap();
    assert_eq!(shown["balance_minor"], 5_450);
    assert_eq!(shown["number"], 1);
    let pdf = tmp.path().join("invoice-1.pdf");
    okv(
        "rita",
        &["invoice", "pdf", &invoice, "--out", pdf.to_str().unwrap()],
    );
    let text = std::process::Command::new("pdftotext")
        .arg(&pdf)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils; scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Invoice 1") && text.contains("54.50"),
        "{text}"
    );
    let out = as_user(
        "rita",
        &["invoice", "pdf", &invoice, "--out", pdf.to_str().unwrap()],
    );
    assert_eq!(code(&out), 1, "never overwrites a file");
    let out = as_user(
        "rita",
        &[
            "invoice",
            "pdf",
            "no-such",
            "--out",
            tmp.path().join("x.pdf").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 6);
    assert!(
        !tmp.path().join("x.pdf").exists(),
        "nothing written for a refused export"
    );
    let out = as_user(
        "rita",
        &[
            "invoice", "pay", &invoice, "--amount", "-1", "--method", "card",
        ],
    );
    assert_eq!(code(&out), 2);
    let report: serde_json::Value = serde_json::from_str(&okv(
        "admin",
        &[
            "report",
            "revenue",
            "--from",
            "2000-01-01",
            "--to",
            "2100-01-01",
            "--json",
        ],
    ))
    .unwrap();
    let total = report
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == "total")
        .unwrap();
    assert_eq!(total["total_minor"], 10_450);

    let letter = tmp.path().join("letter.pdf");
    let content: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&letter, &content).unwrap();
    let att = okv(
        "rita",
        &[
            "attachment",
            "add",
            "--patient",
            &patient,
            letter.to_str().unwrap(),
        ],
    );
    let copy = tmp.path().join("copy.pdf");
    okv(
        "sam",
        &["attachment", "get", &att, "--out", copy.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&copy).unwrap(), content);
    let out = as_user(
        "sam",
        &["attachment", "get", &att, "--out", copy.to_str().unwrap()],
    );
    assert_eq!(code(&out), 1, "never overwrites a file");
}
