//! `cargo bench -p clinvault-core --bench backup`: single-file export speed against the disk's
//! own sequential write speed (target: at least 70 %), and verify/restore times, on a demo
//! clinic of `BENCH_PATIENTS` patients (default 100,000) plus `BENCH_ATTACHMENT_MIB` MiB of
//! attachments (default 1024) in 8 MiB files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::time::Instant;

use clinvault_core::backup::{self, Opener};
use secrecy::SecretString;

/// Incompressible-looking content, cheap to make (encryption makes it irrelevant anyway).
struct Pseudo(u64, u64);
impl Read for Pseudo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0 as usize);
        for b in &mut buf[..n] {
            self.1 = self
                .1
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.1 >> 56) as u8;
        }
        self.0 -= n as u64;
        Ok(n)
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The disk's sequential write speed in the same folder: 1 MiB writes, then fsync.
fn disk_write_mib_s(dir: &std::path::Path, bytes: u64) -> f64 {
    let path = dir.join("disk-speed.tmp");
    let buf = vec![0x5au8; 1024 * 1024];
    let t = Instant::now();
    let mut f = std::fs::File::create(&path).unwrap();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.sync_all().unwrap();
    let s = t.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    bytes as f64 / 1048576.0 / s
}

fn main() {
    let patients = env_or("BENCH_PATIENTS", 100_000) as u32;
    let att_mib = env_or("BENCH_ATTACHMENT_MIB", 1024);
    let (tmp, mut s) = support::admin_session();
    let t = Instant::now();
    let demo = s.generate_demo_clinic(patients, 42).unwrap();
    let first = s
        .add_patient(clinvault_core::patients::PatientFields {
            first_name: Some("Bench".into()),
            last_name: Some("Attachments".into()),
            ..Default::default()
        })
        .unwrap();
    let files = att_mib.div_ceil(8);
    for i in 0..files {
        s.add_attachment(&first.id, "scan.pdf", &mut Pseudo(8 << 20, i + 1))
            .unwrap();
    }
    println!(
        "set-up: {} patients, {} appointments, {files} attachments of 8 MiB in {:.1} s",
        demo.patients,
        demo.appointments,
        t.elapsed().as_secs_f64()
    );
    let pass = SecretString::from("saffron glacier mosaic kettle".to_owned());
    let out = tmp.path().join("bench.cvbackup");
    let t = Instant::now();
    let staged =
        clinvault_core::snapshot::capture(&mut s, clinvault_core::snapshot::Purpose::Backup)
            .unwrap();
    println!(
        "consistent copy alone (online backup API, {:.0} MiB database, hard links): {:.2} s",
        staged
            .files()
            .iter()
            .find(|f| f.rel_path == "vault.db")
            .unwrap()
            .size as f64
            / 1048576.0,
        t.elapsed().as_secs_f64()
    );
    drop(staged);
    let t = Instant::now();
    let report = s
        .export_backup(&out, Some(&pass), &mut |_, _| true)
        .unwrap();
    let export_s = t.elapsed().as_secs_f64();
    let mib = report.bytes as f64 / 1048576.0;
    let disk = disk_write_mib_s(tmp.path(), report.bytes);
    let export_rate = mib / export_s;
    println!(
        "export: {mib:.0} MiB in {export_s:.2} s = {export_rate:.0} MiB/s (Argon2id for the passphrase included)"
    );
    println!(
        "disk sequential write (1 MiB writes + fsync, same folder): {disk:.0} MiB/s; export / disk = {:.0} % (target >= 70 %: {})",
        100.0 * export_rate / disk,
        if export_rate >= 0.7 * disk { "met" } else { "NOT met" }
    );
    let t = Instant::now();
    let check = backup::verify(&out, &Opener::Passphrase(&pass), &mut |_, _| true).unwrap();
    println!(
        "verify: {:.2} s ({} patients, {} attachments, {} audit entries)",
        t.elapsed().as_secs_f64(),
        check.vault.patients,
        check.vault.attachments,
        check.vault.audit_entries
    );
    let t = Instant::now();
    backup::restore(
        &out,
        &Opener::Passphrase(&pass),
        &tmp.path().join("restored"),
        &mut |_, _| true,
    )
    .unwrap();
    println!(
        "restore (with full verification): {:.2} s",
        t.elapsed().as_secs_f64()
    );
}
