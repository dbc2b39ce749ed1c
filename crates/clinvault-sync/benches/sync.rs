//! `cargo bench -p clinvault-sync --bench sync`: a demo vault (100,000 patients and 1 GiB of
//! attachments by default; `CLINVAULT_BENCH_PATIENTS`, `CLINVAULT_BENCH_ATTACH_MB` for quick runs)
//! backed up to a local folder by ClinVault sync, restic and borg (Debian packages) side by side:
//! first backup time and repository size, incremental backup after 1% of patient records
//! changed, and restore time. All three read the same vault directory with the vault closed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benches may panic on setup failures

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use clinvault_core::clock::SystemClock;
use clinvault_core::crypto::KdfCost;
use clinvault_core::patients::PatientFields;
use clinvault_core::{vault, InitOptions, Session, SessionConfig, VaultDir};
use clinvault_sync::backend::Backend;
use clinvault_sync::target::{Credentials, TargetSpec};
use clinvault_sync::{NoProgress, RepoKey, Repository, SourceFile};
use secrecy::SecretString;

const PASS: &str = "plum harbour velvet tractor";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sign_in(dir: &VaultDir) -> Session {
    Session::sign_in_with(
        dir,
        "admin",
        &SecretString::from(PASS.to_owned()),
        None,
        SessionConfig {
            device: "bench".into(),
            clock: Arc::new(SystemClock),
        },
    )
    .unwrap()
}

struct Pattern(u64, u64);
impl std::io::Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0 as usize);
        for b in buf[..n].iter_mut() {
            self.1 ^= self.1 << 13;
            self.1 ^= self.1 >> 7;
            self.1 ^= self.1 << 17;
            *b = self.1 as u8;
        }
        self.0 -= n as u64;
        Ok(n)
    }
}

fn vault_files(dir: &Path) -> Vec<SourceFile> {
    let mut out = Vec::new();
    for name in ["vault.db", "vault.keys", "audit.checkpoint"] {
        let p = dir.join(name);
        if p.exists() {
            out.push(SourceFile {
                rel_path: name.into(),
                size: p.metadata().unwrap().len(),
                path: p,
            });
        }
    }
    let att = dir.join("attachments");
    if att.exists() {
        let mut names: Vec<_> = std::fs::read_dir(&att)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        {
            out.push(SourceFile {
                rel_path: format!("attachments/{}", p.file_name().unwrap().to_string_lossy()),
                size: p.metadata().unwrap().len(),
                path: p,
            });
        }
    }
    out
}

fn du(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let md = e.metadata().unwrap();
            total += if md.is_dir() { du(&e.path()) } else { md.len() };
        }
    }
    total
}

fn run(cmd: &mut Command) -> f64 {
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

struct Tool {
    name: &'static str,
    first: f64,
    size1: u64,
    incr: f64,
    size2: u64,
    restore: f64,
}

fn main() {
    let patients = env_num("CLINVAULT_BENCH_PATIENTS", 100_000) as u32;
    let attach_mb = env_num("CLINVAULT_BENCH_ATTACH_MB", 1024);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dir = VaultDir::new(root.join("vault"));
    vault::init(
        &dir,
        InitOptions {
            admin_username: "admin".into(),
            admin_display_name: None,
            passphrase: SecretString::from(PASS.to_owned()),
            kdf_cost: KdfCost::CHEAP_FOR_TESTS,
            recovery_key_file: None,
        },
    )
    .unwrap();
    let vault_path: PathBuf = root.join("vault");
    let t = Instant::now();
    let ids: Vec<String> = {
        let mut s = sign_in(&dir);
        s.generate_demo_clinic(patients, 42).unwrap();
        let ids: Vec<String> = s
            .list_patients(false, patients)
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        let per = 8u64 << 20;
        let n = (attach_mb << 20).div_ceil(per);
        for i in 0..n {
            let pid = &ids[(i as usize * 37) % ids.len()];
            s.add_attachment(pid, "scan.pdf", &mut Pattern(per, i + 1))
                .unwrap();
        }
        ids
    };
    let source_bytes: u64 = vault_files(&vault_path).iter().map(|f| f.size).sum();
    println!(
        "demo vault: {patients} patients, {attach_mb} MiB attachments, {:.0} MiB to back up (built in {:.0} s)",
        source_bytes as f64 / 1048576.0,
        t.elapsed().as_secs_f64()
    );

    // ClinVault sync.
    let cv_repo = root.join("repo-clinvault");
    let spec = TargetSpec::parse(&format!("file://{}", cv_repo.display())).unwrap();
    let key = RepoKey::generate();
    let recovery = clinvault_core::RecoveryKey::generate();
    let repo = Repository::init(
        Backend::open(&spec, &Credentials::default()).unwrap(),
        &key,
        uuid::Uuid::new_v4(),
        &recovery.public().unwrap(),
        "bench",
        spec.pack_bytes(),
    )
    .unwrap();
    let anchor = serde_json::json!({"entries": 0});
    let t = Instant::now();
    repo.push(&vault_files(&vault_path), anchor.clone(), b"k", &NoProgress)
        .unwrap();
    let mut cv = Tool {
        name: "ClinVault sync",
        first: t.elapsed().as_secs_f64(),
        size1: du(&cv_repo),
        incr: 0.0,
        size2: 0,
        restore: 0.0,
    };

    // restic and borg, same source, local folders, caches inside the temp dir.
    let restic_repo = root.join("repo-restic");
    let restic = |args: &[&str]| {
        let mut c = Command::new("restic");
        c.args(["--repo"])
            .arg(&restic_repo)
            .args(["--cache-dir"])
            .arg(root.join("restic-cache"))
            .args(["--quiet"])
            .args(args)
            .env("RESTIC_PASSWORD", "bench-pass");
        c
    };
    run(&mut restic(&["init"]));
    let first = run(restic(&["backup"]).arg(&vault_path));
    let mut rs = Tool {
        name: "restic",
        first,
        size1: du(&restic_repo),
        incr: 0.0,
        size2: 0,
        restore: 0.0,
    };

    let borg_repo = root.join("repo-borg");
    let borg = |args: &[&str]| {
        let mut c = Command::new("borg");
        c.args(args)
            .env("BORG_PASSPHRASE", "bench-pass")
            .env("BORG_BASE_DIR", root.join("borg-base"))
            .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes");
        c
    };
    run(borg(&["init", "--encryption=repokey-blake2"]).arg(&borg_repo));
    let first = run(borg(&["create"])
        .arg(format!("{}::s1", borg_repo.display()))
        .arg(&vault_path));
    let mut bg = Tool {
        name: "borg",
        first,
        size1: du(&borg_repo),
        incr: 0.0,
        size2: 0,
        restore: 0.0,
    };

    // 1% of patient records change.
    {
        let mut s = sign_in(&dir);
        for id in ids.iter().step_by(100) {
            let changes = PatientFields {
                phone: Some("+44 20 7946 0999".into()),
                ..Default::default()
            };
            s.update_patient(id, changes).unwrap();
        }
    }
    let t = Instant::now();
    let r = repo
        .push(&vault_files(&vault_path), anchor, b"k", &NoProgress)
        .unwrap();
    cv.incr = t.elapsed().as_secs_f64();
    cv.size2 = du(&cv_repo);
    println!(
        "ClinVault incremental: {} new blobs, {:.1} MiB uploaded",
        r.new_blobs,
        r.uploaded_bytes as f64 / 1048576.0
    );
    rs.incr = run(restic(&["backup"]).arg(&vault_path));
    rs.size2 = du(&restic_repo);
    bg.incr = run(borg(&["create"])
        .arg(format!("{}::s2", borg_repo.display()))
        .arg(&vault_path));
    bg.size2 = du(&borg_repo);

    // Restore the latest snapshot into a new folder.
    let t = Instant::now();
    repo.restore_files(&r.snapshot, &root.join("out-clinvault"), &NoProgress)
        .unwrap();
    cv.restore = t.elapsed().as_secs_f64();
    let out = root.join("out-restic");
    rs.restore = run(restic(&["restore", "latest", "--target"]).arg(&out));
    let out = root.join("out-borg");
    std::fs::create_dir_all(&out).unwrap();
    bg.restore = run(borg(&["extract"])
        .arg(format!("{}::s2", borg_repo.display()))
        .current_dir(&out));

    println!();
    println!("| tool | first backup | repository | incremental (1% of records) | incr / first | repository after | restore |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for t in [&cv, &rs, &bg] {
        println!(
            "| {} | {:.1} s | {:.0} MiB | {:.2} s | {:.1} % | {:.0} MiB | {:.1} s |",
            t.name,
            t.first,
            t.size1 as f64 / 1048576.0,
            t.incr,
            100.0 * t.incr / t.first,
            t.size2 as f64 / 1048576.0,
            t.restore
        );
    }
    let ok = |b: bool| if b { "met" } else { "NOT met" };
    println!();
    println!(
        "incremental ≤ 5% of first backup: {}",
        ok(cv.incr <= 0.05 * cv.first)
    );
    println!(
        "faster than restic and borg — first: {}, incremental: {}, restore: {}",
        ok(cv.first < rs.first.min(bg.first)),
        ok(cv.incr < rs.incr.min(bg.incr)),
        ok(cv.restore < rs.restore.min(bg.restore))
    );
    println!(
        "repository no larger than restic's: {}",
        ok(cv.size2 <= rs.size2)
    );
}
