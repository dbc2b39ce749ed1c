//! `clinvault sync …`: gather input, call clinvault-sync's operations, print. Progress bars go to
//! stderr and only on a terminal.

use std::sync::Mutex;

use clinvault_core::Error;
use clinvault_sync::ops::{self, TargetOptions};
use clinvault_sync::target::{Credentials, TlsMin};
use clinvault_sync::{KeepPolicy, Progress, ProgressEvent};
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::args::Global;
use crate::prompt;
use crate::sync_args::{SyncAction, SyncTargetAction};

type Result<T> = std::result::Result<T, Error>;

/// indicatif bars driven by the sync crate's events.
struct Bars(Mutex<Option<ProgressBar>>);

impl Bars {
    fn new() -> Self {
        Bars(Mutex::new(None))
    }
}

impl Progress for Bars {
    fn event(&self, event: ProgressEvent) {
        let Ok(mut bar) = self.0.lock() else { return };
        match event {
            ProgressEvent::Phase { name, total, unit } => {
                if let Some(old) = bar.take() {
                    old.finish_and_clear();
                }
                let b = ProgressBar::new(total);
                let template = if unit == "bytes" {
                    "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
                } else {
                    "{msg:>10} [{bar:30}] {pos}/{len} {unit}"
                };
                if let Ok(style) = ProgressStyle::with_template(&template.replace("{unit}", unit)) {
                    b.set_style(style.progress_chars("=> "));
                }
                b.set_message(name);
                *bar = Some(b);
            }
            ProgressEvent::Advance { done } => {
                if let Some(b) = bar.as_ref() {
                    b.inc(done);
                }
            }
            ProgressEvent::PhaseDone => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
            }
        }
    }
}

fn secret_from_env_or_prompt(var: &str, label: &str) -> Result<Zeroizing<String>> {
    let s = match prompt::from_env(var) {
        Some(s) => s,
        None => prompt::ask(label, var)?,
    };
    Ok(Zeroizing::new(s.expose_secret().to_owned()))
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Internal(format!("cannot format output: {e}")))?;
    println!("{text}");
    Ok(())
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

fn credentials_for(url: &str) -> Result<Credentials> {
    let probe = clinvault_sync::TargetSpec::parse(url)?;
    let mut creds = Credentials::default();
    if probe.needs_password() {
        creds.password = Some(secret_from_env_or_prompt(
            "CLINVAULT_SYNC_PASSWORD",
            "WebDAV password",
        )?);
    }
    if probe.needs_s3_keys() {
        creds.s3_key_id = Some(secret_from_env_or_prompt(
            "CLINVAULT_SYNC_S3_KEY_ID",
            "S3 access key id",
        )?);
        creds.s3_secret = Some(secret_from_env_or_prompt(
            "CLINVAULT_SYNC_S3_SECRET",
            "S3 secret access key",
        )?);
    }
    Ok(creds)
}

fn print_restored(r: &ops::RestoreOutcome, json: bool) -> Result<()> {
    if json {
        return print_json(r);
    }
    println!(
        "Snapshot {} of {} restored and verified into {} ({} files, {}).",
        short_id(&r.snapshot),
        r.time,
        r.to.display(),
        r.files,
        mib(r.bytes)
    );
    Ok(())
}

pub fn sync(g: &Global, action: SyncAction) -> Result<()> {
    let bars = Bars::new();
    // A new machine: no vault to sign in to, the recovery key opens the repository.
    let action = match action {
        SyncAction::Restore {
            snapshot,
            to,
            from: Some(url),
            recovery_key_file: Some(rk),
            ca_file,
            tls_min,
            ssh_key,
            json,
        } => {
            let recovery = clinvault_core::vault::read_recovery_file(&rk)?;
            let opts = TargetOptions {
                tls_min: tls_min.as_deref().map(TlsMin::parse).transpose()?,
                ca_file,
                ssh_key,
                pack_mib: None,
            };
            let r = ops::restore_with_recovery(
                &url,
                opts,
                credentials_for(&url)?,
                &recovery,
                &snapshot,
                &to,
                &bars,
            )?;
            return print_restored(&r, json);
        }
        other => other,
    };
    let mut s = g.sign_in()?;
    match action {
        SyncAction::Target {
            action:
                SyncTargetAction::Set {
                    url,
                    tls_min,
                    ca_file,
                    ssh_key,
                    pack_mib,
                },
        } => {
            let probe = clinvault_sync::TargetSpec::parse(&url)?;
            let mut creds = Credentials::default();
            if probe.needs_password() {
                creds.password = Some(secret_from_env_or_prompt(
                    "CLINVAULT_SYNC_PASSWORD",
                    "WebDAV password",
                )?);
            }
            if probe.needs_s3_keys() {
                creds.s3_key_id = Some(secret_from_env_or_prompt(
                    "CLINVAULT_SYNC_S3_KEY_ID",
                    "S3 access key id",
                )?);
                creds.s3_secret = Some(secret_from_env_or_prompt(
                    "CLINVAULT_SYNC_S3_SECRET",
                    "S3 secret access key",
                )?);
            }
            let opts = TargetOptions {
                tls_min: tls_min.as_deref().map(TlsMin::parse).transpose()?,
                ca_file,
                ssh_key,
                pack_mib,
            };
            let spec = ops::set_target(&mut s, &url, opts, creds)?;
            println!("Sync target set: {} ({})", spec.url, spec.kind());
        }
        SyncAction::Target {
            action: SyncTargetAction::Show { json },
        } => {
            let (spec, _) = ops::target(&mut s)?;
            if json {
                print_json(&spec)?;
            } else {
                println!(
                    "{} ({}, TLS minimum {:?}, packs {} MiB)",
                    spec.url,
                    spec.kind(),
                    spec.tls_min,
                    spec.pack_mib
                );
            }
        }
        SyncAction::Push { json } => {
            let r = ops::push(&mut s, &bars)?;
            if json {
                print_json(&r)?;
            } else {
                println!(
                    "Snapshot {} pushed: {} files, {}; {} unchanged attachments skipped; {} new blobs, {} uploaded in {} packs.",
                    short_id(&r.snapshot), r.files, mib(r.bytes), r.unchanged_files, r.new_blobs, mib(r.uploaded_bytes), r.packs
                );
            }
        }
        SyncAction::Snapshots { json } => {
            let list = ops::snapshots(&mut s)?;
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!("No snapshots yet.");
            } else {
                for i in list {
                    println!(
                        "{}  {}  {}  {} files  {}  audit entries {}",
                        short_id(&i.id),
                        i.time,
                        i.host,
                        i.files,
                        mib(i.bytes),
                        i.audit_entries
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
        SyncAction::Restore {
            snapshot, to, json, ..
        } => {
            let r = ops::restore(&mut s, &snapshot, &to, &bars)?;
            print_restored(&r, json)?;
        }
        SyncAction::Check { read_data, json } => {
            let mut report = None;
            let result = ops::check(&mut s, read_data, &bars, &mut report);
            if let Some(r) = &report {
                if json {
                    print_json(r)?;
                } else {
                    for p in &r.problems {
                        eprintln!("problem: {p}");
                    }
                    if r.problems.is_empty() {
                        println!(
                            "Repository OK: {} snapshots, {} packs, {} blobs{}{}.",
                            r.snapshots,
                            r.packs,
                            r.blobs,
                            if read_data {
                                format!(", {} read and verified", mib(r.bytes_read))
                            } else {
                                String::new()
                            },
                            if r.unreferenced_packs > 0 {
                                format!(" ({} unreferenced packs from an interrupted push: prune removes them)", r.unreferenced_packs)
                            } else {
                                String::new()
                            }
                        );
                    }
                }
            }
            result?;
        }
        SyncAction::Prune {
            keep_last,
            keep_daily,
            keep_weekly,
            keep_monthly,
            json,
        } => {
            let policy = KeepPolicy {
                last: keep_last,
                daily: keep_daily,
                weekly: keep_weekly,
                monthly: keep_monthly,
            };
            let r = ops::prune(&mut s, policy, &bars)?;
            if json {
                print_json(&r)?;
            } else {
                println!(
                    "Kept {} snapshots, removed {}; deleted {} packs ({}), rewrote {}; repository now {}.",
                    r.kept_snapshots, r.removed_snapshots, r.deleted_packs, mib(r.deleted_bytes), r.rewritten_packs, mib(r.repository_bytes)
                );
            }
        }
        SyncAction::RestoreTest { json } => {
            let mut outcome = None;
            let result = ops::restore_test(&mut s, &bars, &mut outcome);
            if let Some(o) = &outcome {
                if json {
                    print_json(o)?;
                } else {
                    for (id, why) in &o.failed {
                        eprintln!("problem: snapshot {}: {why}", short_id(id));
                    }
                    println!(
                        "{}",
                        restore_test_line(result.is_ok(), &o.snapshot, &o.time, o.age_seconds)
                    );
                }
            }
            result?;
        }
    }
    Ok(())
}

/// The first 12 characters of a snapshot id (all of a shorter one).
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The line about the snapshot that restored: a pass only when no newer one failed; otherwise
/// it is the newest good snapshot, and the error that follows says which failed.
fn restore_test_line(passed: bool, snapshot: &str, time: &str, age_seconds: i64) -> String {
    format!(
        "{}: snapshot {} of {time} ({} h {} min old) restores, opens and verifies.",
        if passed {
            "Restore test passed"
        } else {
            "Newest good snapshot"
        },
        short_id(snapshot),
        age_seconds / 3600,
        (age_seconds % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_test_with_failed_newer_snapshots_is_not_called_a_pass() {
        let id = "0123456789abcdef0123";
        let passed = restore_test_line(true, id, "2026-11-23T10:00:00Z", 3_900);
        assert_eq!(
            passed,
            "Restore test passed: snapshot 0123456789ab of 2026-11-23T10:00:00Z (1 h 5 min old) \
             restores, opens and verifies."
        );
        let failed = restore_test_line(false, id, "2026-11-23T10:00:00Z", 3_900);
        assert!(failed.starts_with("Newest good snapshot: "), "{failed}");
        assert!(!failed.contains("passed"), "{failed}");
        assert!(restore_test_line(true, "abc", "t", 0).contains("snapshot abc of t"));
    }
}
