//! `clinvault backup` through the real binary: a backup made from one vault restores into a new
//! folder that works (records, attachments, audit trail, the restore itself audited); no
//! plaintext appears in the temp, target or vault folders during or after export; wrong keys,
//! every kind of damage and non-administrators are refused with the documented exit codes and
//! leave nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;

const BACKUP_PASS: &str = "saffron glacier mosaic kettle";
const MARKER_NAME: &str = "Zyxwquorth";
const MARKER_BYTES: &[u8] = b"MARKER-LETTER-CONTENT-7f3a";

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    vault: PathBuf,
    recovery: PathBuf,
    tmpdir: PathBuf,
    out_dir: PathBuf,
    patient: String,
    attachment: String,
    letter: Vec<u8>,
}

fn cmd(f: &Fixture) -> std::process::Command {
    let mut c = cv(&f.vault);
    c.env("TMPDIR", &f.tmpdir);
    c
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let vault = root.join("v");
    let recovery = root.join("recovery.txt");
    let tmpdir = root.join("tmp");
    let out_dir = root.join("out");
    std::fs::create_dir_all(&tmpdir).unwrap();
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut c = cv(&vault);
    c.args(["init", "--admin", "admin", "--recovery-key-file"])
        .arg(&recovery);
    ok(run(c));
    let mut c = cv(&vault);
    c.args([
        "patient",
        "add",
        "--first",
        "Ottilie",
        "--last",
        MARKER_NAME,
        "--dob",
        "1971-05-02",
    ]);
    let patient = stdout(&ok(run(c))).trim().to_owned();
    // Three and a half chunks of a scanned letter: several STREAM chunks to damage and swap.
    let mut letter = Vec::new();
    while letter.len() < 3 * 1024 * 1024 + 500_000 {
        letter.extend_from_slice(MARKER_BYTES);
        letter.extend_from_slice(&(letter.len() as u64).to_le_bytes());
    }
    let letter_path = root.join("letter.txt");
    std::fs::write(&letter_path, &letter).unwrap();
    let mut c = cv(&vault);
    c.args(["attachment", "add", "--patient", &patient])
        .arg(&letter_path);
    let attachment = stdout(&ok(run(c))).trim().to_owned();
    std::fs::remove_file(&letter_path).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        vault,
        recovery,
        tmpdir,
        out_dir,
        patient,
        attachment,
        letter,
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

/// Paths of files under `dirs` that contain a marker in the clear.
fn plaintext_hits(dirs: &[&Path]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for d in dirs {
        files_under(d, &mut files);
    }
    files
        .into_iter()
        .filter(|p| {
            std::fs::read(p).is_ok_and(|bytes| {
                [MARKER_NAME.as_bytes(), MARKER_BYTES, b"Ottilie"]
                    .iter()
                    .any(|m| bytes.windows(m.len()).any(|w| w == *m))
            })
        })
        .collect()
}

fn export(f: &Fixture, name: &str) -> PathBuf {
    let out = f.out_dir.join(name);
    let mut c = cmd(f);
    c.env("CLINVAULT_BACKUP_PASSPHRASE", BACKUP_PASS)
        .args(["backup", "export", "--json", "--out"])
        .arg(&out);
    let report: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(report["patients"], 1);
    assert_eq!(report["attachments"], 1);
    assert_eq!(report["with_passphrase"], true);
    out
}

#[test]
fn backup_round_trip_restores_a_working_vault_and_never_writes_plaintext() {
    let f = fixture();
    let out = f.out_dir.join("clinic.cvbackup");
    // Scan the temp, target and vault folders continuously while the export runs.
    let stop = Arc::new(AtomicBool::new(false));
    let scanner = {
        let stop = stop.clone();
        let dirs = [f.tmpdir.clone(), f.out_dir.clone(), f.vault.clone()];
        std::thread::spawn(move || {
            let mut hits = Vec::new();
            let mut rounds = 0;
            while !stop.load(Ordering::SeqCst) || rounds == 0 {
                let refs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
                hits.extend(plaintext_hits(&refs));
                rounds += 1;
            }
            (hits, rounds)
        })
    };
    let mut c = cmd(&f);
    c.env("CLINVAULT_BACKUP_PASSPHRASE", BACKUP_PASS)
        .args(["backup", "export", "--out"])
        .arg(&out);
    let printed = stdout(&ok(run(c)));
    stop.store(true, Ordering::SeqCst);
    let (hits, rounds) = scanner.join().unwrap();
    assert!(rounds > 0);
    assert!(hits.is_empty(), "plaintext during export in {hits:?}");
    assert!(printed.contains("backup passphrase"), "{printed}");
    assert!(!printed.contains(MARKER_NAME));
    assert!(plaintext_hits(&[&f.tmpdir, &f.out_dir, &f.vault]).is_empty());
    // Nothing left behind: no staging folder in the vault, no partial file, nothing in TMPDIR.
    let leftovers: Vec<_> = std::fs::read_dir(&f.vault)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".staging-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(std::fs::read_dir(&f.out_dir).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(&f.tmpdir).unwrap().count(), 0);

    // The export is in the trail with its record count.
    let mut c = cmd(&f);
    c.args(["audit", "list", "--action", "backup.export", "--json"]);
    let entries: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(entries[0]["details"]["records"], 1, "{entries}");

    // Verify with either opener.
    let mut c = cmd(&f);
    c.args(["backup", "verify", "--json", "--recovery-key-file"])
        .arg(&f.recovery)
        .arg(&out);
    let check: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(check["patients"], 1);
    assert_eq!(check["attachments"], 1);
    assert_eq!(check["audit"]["intact"], true);
    let mut c = cmd(&f);
    c.env("CLINVAULT_BACKUP_PASSPHRASE", BACKUP_PASS)
        .args(["backup", "verify"])
        .arg(&out);
    ok(run(c));
    assert_eq!(std::fs::read_dir(&f.tmpdir).unwrap().count(), 0);

    // Restore on "another machine": a new folder, then sign in there as usual.
    let restored = f.root.join("restored");
    let mut c = cmd(&f);
    c.env("CLINVAULT_BACKUP_PASSPHRASE", BACKUP_PASS)
        .args(["backup", "restore"])
        .arg(&out)
        .arg("--to")
        .arg(&restored);
    ok(run(c));
    let mut c = cv(&restored);
    c.args(["patient", "search", &MARKER_NAME[..4], "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(rows[0]["id"], f.patient.as_str());
    let copy = f.root.join("letter-copy.txt");
    let mut c = cv(&restored);
    c.args(["attachment", "get", &f.attachment, "--out"])
        .arg(&copy);
    ok(run(c));
    assert_eq!(std::fs::read(&copy).unwrap(), f.letter);
    let mut c = cv(&restored);
    c.args(["audit", "list", "--action", "backup.restore", "--json"]);
    let entries: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    let mut c = cv(&restored);
    c.args(["audit", "verify"]);
    ok(run(c));
    assert!(!restored.join("restored.json").exists());

    // Never over an existing vault, even an empty folder someone made.
    let mut c = cmd(&f);
    c.env("CLINVAULT_BACKUP_PASSPHRASE", BACKUP_PASS)
        .args(["backup", "restore"])
        .arg(&out)
        .arg("--to")
        .arg(&f.vault);
    let refused = run(c);
    assert_eq!(code(&refused), 1);
    assert_one_error_line(&refused);
    assert!(stderr(&refused).contains("already exists"));
    // And never over an existing backup file.
    let mut c = cmd(&f);
    c.args(["backup", "export", "--out"]).arg(&out);
    assert_eq!(code(&run(c)), 1);
}

#[test]
fn wrong_keys_are_refused_as_authentication_failures() {
    let f = fixture();
    let out = export(&f, "b.cvbackup");
    let mut c = cmd(&f);
    c.env(
        "CLINVAULT_BACKUP_PASSPHRASE",
        "not the backup passphrase at all",
    )
    .args(["backup", "verify"])
    .arg(&out);
    let o = run(c);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_one_error_line(&o);
    assert!(stderr(&o).contains("wrong backup passphrase"));
    // Another vault's recovery key.
    let other = f.root.join("other");
    let other_key = f.root.join("other-recovery.txt");
    let mut c = cv(&other);
    c.args(["init", "--admin", "admin", "--recovery-key-file"])
        .arg(&other_key);
    ok(run(c));
    let mut c = cmd(&f);
    c.args(["backup", "restore", "--recovery-key-file"])
        .arg(&other_key)
        .arg(&out)
        .arg("--to")
        .arg(f.root.join("nope"));
    let o = run(c);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(!f.root.join("nope").exists());
    // Not a backup at all, and a missing file.
    let mut c = cmd(&f);
    c.args(["backup", "verify", "--recovery-key-file"])
        .arg(&f.recovery)
        .arg(&f.recovery);
    assert_eq!(code(&run(c)), 5);
    let mut c = cmd(&f);
    c.args(["backup", "verify", "--recovery-key-file"])
        .arg(&f.recovery)
        .arg(f.root.join("missing.cvbackup"));
    assert_eq!(code(&run(c)), 6);
}

fn no_restore_leftovers(root: &Path) {
    let names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains(".restoring-") || n == "target"),
        "{names:?}"
    );
}

#[test]
fn any_damage_is_detected_and_nothing_is_restored() {
    let f = fixture();
    let out = export(&f, "good.cvbackup");
    let good = std::fs::read(&out).unwrap();
    let header_len = 12 + u32::from_be_bytes(good[8..12].try_into().unwrap()) as usize;
    let chunk = 1024 * 1024 + 16;
    assert!(good.len() > header_len + 3 * chunk, "need several chunks");
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let flip = |pos: usize| {
        let mut d = good.clone();
        d[pos] ^= 0x01;
        d
    };
    cases.push(("bit in header", flip(header_len - 3)));
    cases.push(("bit in first chunk", flip(header_len + 100)));
    cases.push(("bit in a middle chunk", flip(header_len + chunk + 5)));
    cases.push(("bit in last byte", flip(good.len() - 1)));
    cases.push((
        "truncated at a chunk boundary",
        good[..header_len + 2 * chunk].to_vec(),
    ));
    cases.push(("truncated mid-chunk", good[..good.len() - 700].to_vec()));
    cases.push(("header only", good[..header_len].to_vec()));
    let mut appended = good.clone();
    appended.extend_from_slice(&[0u8; 64]);
    cases.push(("data appended", appended));
    let mut swapped = good.clone();
    let (a, b) = (header_len, header_len + chunk);
    let first: Vec<u8> = swapped[a..a + chunk].to_vec();
    let second: Vec<u8> = swapped[b..b + chunk].to_vec();
    swapped[a..a + chunk].copy_from_slice(&second);
    swapped[b..b + chunk].copy_from_slice(&first);
    cases.push(("two chunks swapped", swapped));
    let mut dropped = good[..header_len + chunk].to_vec();
    dropped.extend_from_slice(&good[header_len + 2 * chunk..]);
    cases.push(("a chunk removed", dropped));

    for (i, (what, bytes)) in cases.iter().enumerate() {
        let bad = f.out_dir.join(format!("bad-{i}.cvbackup"));
        std::fs::write(&bad, bytes).unwrap();
        let target = f.root.join("target");
        let mut c = cmd(&f);
        c.args(["backup", "restore", "--recovery-key-file"])
            .arg(&f.recovery)
            .arg(&bad)
            .arg("--to")
            .arg(&target);
        let o = run(c);
        assert_eq!(code(&o), 5, "{what}: {}", stderr(&o));
        assert_one_error_line(&o);
        assert!(!target.exists(), "{what}: restored anyway");
        no_restore_leftovers(&f.root);
        let mut c = cmd(&f);
        c.env("CLINVAULT_BACKUP_PASSPHRASE", BACKUP_PASS)
            .args(["backup", "verify"])
            .arg(&bad);
        let o = run(c);
        // A damaged header can also mean the passphrase recipient no longer opens (exit 3);
        // everything else is an integrity failure.
        let expected: &[i32] = if *what == "bit in header" {
            &[3, 5]
        } else {
            &[5]
        };
        assert!(expected.contains(&code(&o)), "{what}: {}", stderr(&o));
    }
    assert_eq!(std::fs::read_dir(&f.tmpdir).unwrap().count(), 0);
}

#[test]
fn only_administrators_export_and_a_refusal_is_audited() {
    let f = fixture();
    let mut c = cmd(&f);
    c.env("CLINVAULT_NEW_PASSPHRASE", "quiet lantern orbit meadow")
        .args(["user", "add", "rita", "--role", "receptionist"]);
    ok(run(c));
    let mut c = cmd(&f);
    c.env("CLINVAULT_USER", "rita")
        .env("CLINVAULT_PASSPHRASE", "quiet lantern orbit meadow")
        .args(["backup", "export", "--out"])
        .arg(f.out_dir.join("r.cvbackup"));
    let o = run(c);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert_one_error_line(&o);
    assert_eq!(std::fs::read_dir(&f.out_dir).unwrap().count(), 0);
    let mut c = cmd(&f);
    c.args([
        "audit",
        "list",
        "--action",
        "backup.export",
        "--outcome",
        "denied",
        "--json",
    ]);
    let entries: serde_json::Value = serde_json::from_slice(&ok(run(c)).stdout).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    // A weak backup passphrase is refused before anything is written.
    let mut c = cmd(&f);
    c.env("CLINVAULT_BACKUP_PASSPHRASE", "password1")
        .args(["backup", "export", "--out"])
        .arg(f.out_dir.join("weak.cvbackup"));
    let o = run(c);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!stderr(&o).contains("password1"));
    assert_eq!(std::fs::read_dir(&f.out_dir).unwrap().count(), 0);
}

/// The format document is enough: standard Python libraries decrypt a backup, and the database
/// inside opens in an independent SQLCipher client with the key derived as documented.
#[test]
fn a_backup_decrypts_with_standard_libraries_by_the_published_format() {
    let f = fixture();
    let out = export(&f, "doc.cvbackup");
    let dest = f.root.join("independent");
    std::fs::create_dir(&dest).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/decrypt_backup.py");
    let o = std::process::Command::new("python3")
        .arg(&script)
        .arg(&out)
        .arg(&dest)
        .env("CLINVAULT_BACKUP_PASSPHRASE", BACKUP_PASS)
        .output()
        .expect("python3 runs (scripts/test.sh puts the test virtualenv first on PATH)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let result: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(result["last_names"][0], MARKER_NAME);
    let entries: Vec<&str> = result["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(entries[0], "clinvault-backup.json");
    assert!(entries.contains(&"vault.keys"));
    let att = format!("attachments/{}.bin", f.attachment);
    assert!(entries.contains(&att.as_str()), "{entries:?}");
    // The attachment in the archive is the vault's encrypted file, byte for byte.
    assert_eq!(
        std::fs::read(dest.join(&att)).unwrap(),
        std::fs::read(f.vault.join(&att)).unwrap()
    );
}
