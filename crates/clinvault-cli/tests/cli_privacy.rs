//! `clinvault patient history|consent|hold|anonymise` and `clinvault privacy` through the real
//! binary: exit codes, the confirmation, and a receptionist refused the administrator's acts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;

use common::*;
use std::path::Path;

const USER_PASS: &str = "quiet lantern orbit meadow";

fn step(vault: &Path, args: &[&str]) -> String {
    let mut c = cv(vault);
    c.args(args);
    stdout(&ok(run(c))).trim().to_owned()
}

fn json(vault: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&step(vault, args)).unwrap()
}

fn fails(vault: &Path, args: &[&str], user: Option<&str>) -> (i32, String) {
    let mut c = cv(vault);
    if let Some(u) = user {
        c.env("CLINVAULT_USER", u)
            .env("CLINVAULT_PASSPHRASE", USER_PASS);
    }
    c.args(args);
    let out = run(c);
    assert!(!out.status.success());
    assert_one_error_line(&out);
    (code(&out), stderr(&out))
}

#[test]
fn history_consents_holds_and_anonymisation_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let mut c = cv(&vault);
    c.env("CLINVAULT_NEW_PASSPHRASE", USER_PASS).args([
        "user",
        "add",
        "rita",
        "--role",
        "receptionist",
    ]);
    ok(run(c));

    let id = step(
        &vault,
        &["patient", "add", "--first", "Jon", "--last", "Smyth"],
    );
    step(
        &vault,
        &[
            "patient",
            "update",
            &id,
            "--first",
            "John",
            "--requested-by-patient",
            "letter of 3 May",
        ],
    );
    let h = json(&vault, &["patient", "history", &id, "--json"]);
    let last = &h.as_array().unwrap()[2];
    assert_eq!(last["field"], "first_name");
    assert_eq!(last["old_value"], "Jon");
    assert_eq!(last["new_value"], "John");
    assert_eq!(last["patient_request"], "letter of 3 May");
    assert!(step(&vault, &["patient", "history", &id])
        .contains("requested by the patient: letter of 3 May"));

    let consent = step(
        &vault,
        &[
            "patient",
            "consent",
            "give",
            &id,
            "--kind",
            "processing",
            "--basis",
            "gdpr-9.2.h",
        ],
    );
    let (code_, err) = fails(
        &vault,
        &["patient", "consent", "give", &id, "--kind", "processing"],
        None,
    );
    assert_eq!(code_, 2);
    assert!(err.contains("basis"), "{err}");
    step(&vault, &["patient", "consent", "withdraw", &consent]);
    let list = json(&vault, &["patient", "consent", "list", &id, "--json"]);
    assert!(list[0]["withdrawn_on"].is_string());

    assert_eq!(
        fails(
            &vault,
            &["patient", "hold", &id, "--reason", "x"],
            Some("rita")
        )
        .0,
        4
    );
    step(
        &vault,
        &["patient", "hold", &id, "--reason", "insurer dispute"],
    );
    let (code_, err) = fails(
        &vault,
        &["patient", "anonymise", &id, "--confirm", &id],
        None,
    );
    assert_eq!(code_, 1);
    assert!(err.contains("legal hold"), "{err}");
    step(
        &vault,
        &["patient", "release-hold", &id, "--note", "settled"],
    );
    assert!(step(&vault, &["patient", "holds", &id]).contains("released"));

    // No terminal and no --confirm: refused as invalid input, nothing erased.
    let (code_, err) = fails(&vault, &["patient", "anonymise", &id], None);
    assert_eq!(code_, 2);
    assert!(err.contains("--confirm"), "{err}");
    assert_eq!(
        fails(
            &vault,
            &["patient", "anonymise", &id, "--confirm", "wrong"],
            None
        )
        .0,
        2
    );
    assert_eq!(
        fails(
            &vault,
            &["patient", "anonymise", &id, "--confirm", &id],
            Some("rita")
        )
        .0,
        4
    );
    let done = json(
        &vault,
        &["patient", "anonymise", &id, "--confirm", &id, "--json"],
    );
    assert!(done["pseudonym"].as_str().unwrap().starts_with("ANON-"));
    assert_eq!(
        done["sync_snapshots_hold_patient"], false,
        "no sync target: nothing outside the vault to mention"
    );
    let found = json(&vault, &["patient", "search", "john", "--json"]);
    assert_eq!(found.as_array().unwrap().len(), 0);
    let p = json(&vault, &["patient", "show", &id, "--json"]);
    assert_eq!(p["first_name"], "Anonymised");
    assert!(p["anonymised_at"].is_string());
    assert_eq!(
        fails(
            &vault,
            &["patient", "anonymise", &id, "--confirm", &id],
            None
        )
        .0,
        1
    );
}

#[test]
fn privacy_settings_are_shown_and_set_by_administrators_only() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let shown = json(&vault, &["privacy", "show", "--json"]);
    assert_eq!(shown["window_titles"], "hidden");
    assert_eq!(shown["anonymise_keep_birth_year"], false);
    assert!(step(&vault, &["privacy", "set", "calendar", "initials"]).contains("initials"));
    assert_eq!(
        json(&vault, &["privacy", "show", "--json"])["calendar"],
        "initials"
    );
    assert_eq!(
        fails(&vault, &["privacy", "set", "calendar", "loud"], None).0,
        2
    );
    let mut c = cv(&vault);
    c.env("CLINVAULT_NEW_PASSPHRASE", USER_PASS).args([
        "user",
        "add",
        "rita",
        "--role",
        "receptionist",
    ]);
    ok(run(c));
    assert_eq!(
        fails(
            &vault,
            &["privacy", "set", "calendar", "full"],
            Some("rita")
        )
        .0,
        4
    );
}

#[test]
fn retention_presets_settings_and_a_dry_run_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let presets = json(&vault, &["retention", "presets", "--json"]);
    assert_eq!(presets["united-kingdom"]["clinical_years"], 8);
    assert_eq!(
        json(&vault, &["retention", "show", "--json"])["preset"],
        "none"
    );
    step(&vault, &["retention", "set-preset", "united-kingdom"]);
    step(&vault, &["retention", "set", "clinical-years", "10"]);
    let r = json(&vault, &["retention", "show", "--json"]);
    assert_eq!(
        (r["preset"].as_str(), r["clinical_years"].as_u64()),
        (Some("united-kingdom"), Some(10))
    );
    assert_eq!(
        fails(&vault, &["retention", "set", "clinical-years", "0"], None).0,
        2
    );
    assert_eq!(
        fails(&vault, &["retention", "set-preset", "mars"], None).0,
        2
    );
    step(
        &vault,
        &["patient", "add", "--first", "Dora", "--last", "Dryrun"],
    );
    let plan = json(&vault, &["retention", "run", "--dry-run", "--json"]);
    assert_eq!(plan["patients_to_anonymise"].as_array().unwrap().len(), 0);
    let text = step(&vault, &["retention", "run"]);
    assert!(text.contains("0 patients anonymised"), "{text}");
    assert!(!text.contains("Dora"));
    let mut c = cv(&vault);
    c.env("CLINVAULT_NEW_PASSPHRASE", USER_PASS).args([
        "user",
        "add",
        "rita",
        "--role",
        "receptionist",
    ]);
    ok(run(c));
    assert_eq!(
        fails(&vault, &["retention", "run", "--dry-run"], Some("rita")).0,
        4
    );
}

#[test]
fn export_writes_three_formats_and_refuses_a_folder_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let id = step(
        &vault,
        &["patient", "add", "--first", "Eva", "--last", "Export"],
    );
    let out = tmp.path().join("sar");
    let out_s = out.to_str().unwrap();
    let done = json(
        &vault,
        &["patient", "export", &id, "--out", out_s, "--json"],
    );
    assert!(done["records"].as_u64().unwrap() >= 2);
    for f in ["patient.fhir.json", "patient.json", "summary.html"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("patient.fhir.json")).unwrap()).unwrap();
    assert_eq!(bundle["type"], "collection");
    assert_eq!(
        bundle["entry"][0]["resource"]["name"][0]["family"],
        "Export"
    );
    let (code_, err) = fails(&vault, &["patient", "export", &id, "--out", out_s], None);
    assert_eq!(code_, 2);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        fails(
            &vault,
            &[
                "patient",
                "export",
                "no-such-id",
                "--out",
                tmp.path().join("x").to_str().unwrap()
            ],
            None
        )
        .0,
        6
    );
}

#[test]
fn calendar_export_writes_a_new_ics_file_without_names_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let mut c = cv(&vault);
    c.env("CLINVAULT_NEW_PASSPHRASE", USER_PASS).args([
        "user",
        "add",
        "sam",
        "--role",
        "practitioner",
    ]);
    ok(run(c));
    step(&vault, &["practitioner", "add", "--user", "sam"]);
    step(
        &vault,
        &["practitioner", "hours", "sam", "Mon", "09:00-17:00"],
    );
    step(
        &vault,
        &[
            "appointment-type",
            "add",
            "Consult",
            "--minutes",
            "30",
            "--price",
            "80",
        ],
    );
    let id = step(
        &vault,
        &["patient", "add", "--first", "Ann", "--last", "Jones"],
    );
    step(
        &vault,
        &[
            "appointment",
            "add",
            "--patient",
            &id,
            "--practitioner",
            "sam",
            "--type",
            "Consult",
            "--start",
            "2026-03-02T10:00",
        ],
    );
    let out = tmp.path().join("sam.ics");
    let args = [
        "calendar",
        "export",
        "--practitioner",
        "sam",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
        "--out",
        out.to_str().unwrap(),
    ];
    step(&vault, &args);
    let ics = std::fs::read_to_string(&out).unwrap();
    assert!(ics.contains("SUMMARY:Patient — Consult\r\n"), "{ics}");
    assert!(!ics.contains("Jones"));
    assert_eq!(
        fails(&vault, &args, None).0,
        1,
        "an existing file is not overwritten"
    );
}

#[test]
fn notify_settings_refuse_unencrypted_remote_servers() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    assert_eq!(
        json(&vault, &["notify", "show", "--json"]),
        serde_json::Value::Null
    );
    let (code_, err) = fails(
        &vault,
        &[
            "notify",
            "smtp",
            "--host",
            "smtp.example.org",
            "--security",
            "none",
            "--from",
            "c@example.org",
        ],
        None,
    );
    assert_eq!(code_, 2);
    assert!(err.contains("only to localhost"), "{err}");
    step(
        &vault,
        &[
            "notify",
            "smtp",
            "--host",
            "smtp.example.org",
            "--from",
            "c@example.org",
        ],
    );
    let shown = json(&vault, &["notify", "show", "--json"]);
    assert_eq!(
        (shown["port"].as_u64(), shown["security"].as_str()),
        (Some(587), Some("start_tls"))
    );
    assert_eq!(fails(&vault, &["notify", "address", "sam"], None).0, 2);
}

#[path = "../../clinvault-core/tests/support/plaintext.rs"]
#[allow(dead_code)]
mod plaintext;

fn all_files(root: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn after_anonymising_through_the_binary_no_marker_is_in_the_vault_its_pages_or_the_temp_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    let tmpdir = tmp.path().join("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    init(&vault);
    let with_tmp = |args: &[&str]| {
        let mut c = cv(&vault);
        c.env("TMPDIR", &tmpdir).args(args);
        stdout(&ok(run(c))).trim().to_owned()
    };
    let id = with_tmp(&[
        "patient",
        "add",
        "--first",
        "Quorvanella",
        "--last",
        "Brixtonmarker",
        "--email",
        "quorva@example.org",
        "--phone",
        "0491 570 199",
        "--dob",
        "1966-06-06",
    ]);
    with_tmp(&[
        "patient",
        "update",
        &id,
        "--last",
        "Newmarkername",
        "--requested-by-patient",
        "Requestmarker text",
    ]);
    let letter = tmp.path().join("letter.txt");
    std::fs::write(&letter, "Lettermarker content").unwrap();
    with_tmp(&[
        "attachment",
        "add",
        "--patient",
        &id,
        letter.to_str().unwrap(),
    ]);
    std::fs::remove_file(&letter).unwrap();
    assert!(!with_tmp(&["patient", "search", "Quorv"]).is_empty());
    with_tmp(&["patient", "anonymise", &id, "--confirm", &id]);
    assert!(with_tmp(&["patient", "search", "Quorv"]).is_empty());
    let key: serde_json::Value =
        serde_json::from_str(&with_tmp(&["key", "export-db-key", "--json"])).unwrap();
    let key = key["db_key_hex"].as_str().unwrap();

    let markers = [
        "uorvanella",
        "rixtonmarker",
        "ewmarkername",
        "uorva@example",
        "91570199",
        "equestmarker",
        "ettermarker",
        "966-06-06",
    ];
    let mut views: Vec<(String, Vec<u8>)> = Vec::new();
    let mut files = Vec::new();
    all_files(tmp.path(), &mut files);
    for f in files {
        views.push((f.display().to_string(), std::fs::read(&f).unwrap()));
    }
    let db = std::fs::read(vault.join("vault.db")).unwrap();
    views.push(("vault.db decrypted".into(), plaintext::database(&db, key)));
    if let Ok(wal) = std::fs::read(vault.join("vault.db-wal")) {
        views.push(("vault.db-wal decrypted".into(), plaintext::wal(&wal, key)));
    }
    for m in markers {
        for (name, bytes) in &views {
            assert!(
                !plaintext::contains(&bytes.to_ascii_lowercase(), m),
                "{m} found in {name}"
            );
        }
    }
}

/// Issue 9, "deletion reaches archives": after anonymisation, a push and `sync prune`, nothing of
/// the patient is left in the sync repository — checked by opening the repository with the
/// recovery key, verifying that every stored blob belongs to a remaining snapshot, restoring
/// every remaining snapshot, and scanning its files and its decrypted database pages.
#[test]
fn after_anonymise_push_and_prune_the_sync_repository_holds_nothing_of_the_patient() {
    use clinvault_sync::{NoProgress, RepoKey, Repository, TargetSpec};

    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    let rk = tmp.path().join("recovery.txt");
    let mut c = cv(&vault);
    c.args([
        "init",
        "--admin",
        "admin",
        "--recovery-key-file",
        rk.to_str().unwrap(),
    ]);
    ok(run(c));
    let id = step(
        &vault,
        &[
            "patient",
            "add",
            "--first",
            "Zelphinora",
            "--last",
            "Quillmarkson",
            "--email",
            "zelphi@example.org",
            "--phone",
            "0491 570 288",
            "--dob",
            "1971-07-07",
        ],
    );
    step(
        &vault,
        &[
            "patient",
            "update",
            &id,
            "--last",
            "Quillmarkton",
            "--requested-by-patient",
            "Askmarker of the patient",
        ],
    );
    let letter = tmp.path().join("letter.txt");
    std::fs::write(&letter, "Scanmarker letter ".repeat(4000)).unwrap();
    step(
        &vault,
        &[
            "attachment",
            "add",
            "--patient",
            &id,
            letter.to_str().unwrap(),
        ],
    );
    std::fs::remove_file(&letter).unwrap();
    // The attachment as stored (ciphertext): it must leave the repository too.
    let mut stored = Vec::new();
    all_files(&vault.join("attachments"), &mut stored);
    assert_eq!(stored.len(), 1);
    let attachment = std::fs::read(&stored[0]).unwrap();

    let target = tmp.path().join("usb");
    let url = format!("file://{}", target.display());
    step(&vault, &["sync", "target", "set", &url]);
    step(&vault, &["sync", "push"]);

    let key: serde_json::Value =
        serde_json::from_str(&step(&vault, &["key", "export-db-key", "--json"])).unwrap();
    let db_key = key["db_key_hex"].as_str().unwrap().to_owned();
    let markers = [
        "zelphinora",
        "quillmarks",
        "quillmarkt",
        "zelphi@example",
        "91570288",
        "askmarker",
        "1971-07-07",
    ];

    let open_repo = || {
        let spec = TargetSpec::parse(&url).unwrap();
        let backend = clinvault_sync::backend::Backend::open(&spec, &Default::default()).unwrap();
        let config = Repository::read_config(&backend).unwrap().unwrap();
        // The kit file: a line of explanation, then the key.
        let kit = std::fs::read_to_string(&rk).unwrap();
        let recovery = clinvault_core::RecoveryKey::parse(kit.lines().last().unwrap()).unwrap();
        let key = clinvault_core::sync_config::open_with_recovery(
            &recovery,
            &config.sealed_key,
            &clinvault_sync::repo::repo_key_info(config.repo_id),
            &clinvault_sync::repo::repo_key_aad(),
        )
        .unwrap();
        Repository::open(
            backend,
            &RepoKey::from_bytes(&key).unwrap(),
            spec.pack_bytes(),
        )
        .unwrap()
    };
    // Restores every snapshot in the repository and returns what a scan must look at: every
    // restored file as stored, and the database's pages decrypted with the vault's key.
    let views_of_repository = |round: &str| {
        let repo = open_repo();
        let mut views: Vec<(String, Vec<u8>)> = Vec::new();
        for (i, s) in repo.snapshots().unwrap().iter().enumerate() {
            let name = repo.resolve(&s.id).unwrap();
            let out = tmp.path().join(format!("{round}-{i}"));
            repo.restore_files(&name, &out, &NoProgress).unwrap();
            let mut files = Vec::new();
            all_files(&out, &mut files);
            for f in files {
                let bytes = std::fs::read(&f).unwrap();
                let label = f.display().to_string();
                if f.ends_with("vault.db") {
                    views.push((
                        format!("{label} decrypted"),
                        plaintext::database(&bytes, &db_key),
                    ));
                } else if f.ends_with("vault.db-wal") {
                    views.push((
                        format!("{label} decrypted"),
                        plaintext::wal(&bytes, &db_key),
                    ));
                }
                views.push((label, bytes));
            }
            std::fs::remove_dir_all(&out).unwrap();
        }
        views
    };
    let holds_marker = |views: &[(String, Vec<u8>)], m: &str| {
        views
            .iter()
            .find(|(_, b)| plaintext::contains(&b.to_ascii_lowercase(), m))
            .map(|(n, _)| n.clone())
    };
    let holds_attachment =
        |views: &[(String, Vec<u8>)]| views.iter().any(|(_, b)| *b == attachment);

    // Positive control: before the erasure the scan finds the patient in the repository.
    let before = views_of_repository("before");
    for m in markers {
        assert!(holds_marker(&before, m).is_some(), "control: {m} not found");
    }
    assert!(holds_attachment(&before), "control: attachment not found");

    let said = step(&vault, &["patient", "anonymise", &id, "--confirm", &id]);
    assert!(
        said.contains("Sync snapshots pushed before this still hold the patient")
            && said.contains("clinvault sync prune --keep-last 1"),
        "the erasure must say what it does not reach yet: {said}"
    );
    step(&vault, &["sync", "push"]);
    // Without a prune the old snapshot, and so the patient, is still there.
    assert!(holds_marker(&views_of_repository("unpruned"), markers[0]).is_some());
    step(&vault, &["sync", "prune", "--keep-last", "1"]);

    let repo = open_repo();
    let usage = repo.usage().unwrap();
    assert_eq!(usage.snapshots, 1);
    assert_eq!(
        usage.indexed_blobs, usage.referenced_blobs,
        "the repository still stores blobs no snapshot uses"
    );
    // Every pack on the target read, its header matched to the index, every blob opened.
    let check = repo.check(true, &NoProgress).unwrap();
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert_eq!(check.unreferenced_packs, 0);
    drop(repo);

    let after = views_of_repository("after");
    assert!(!after.is_empty());
    for m in markers {
        assert_eq!(
            holds_marker(&after, m),
            None,
            "{m} is still in the repository"
        );
    }
    assert!(
        !holds_attachment(&after),
        "the attachment is still in the repository"
    );
    // The target's own files hold nothing readable either.
    let mut files = Vec::new();
    all_files(&target, &mut files);
    for f in files {
        let bytes = std::fs::read(&f).unwrap().to_ascii_lowercase();
        for m in markers {
            assert!(!plaintext::contains(&bytes, m), "{m} in {}", f.display());
        }
    }
}
