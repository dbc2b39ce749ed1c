//! `clinvault backup`: export, verify and restore single-file backups.

use std::path::Path;

use clinvault_core::backup::{self, Opener};
use clinvault_core::Error;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::SecretString;

use crate::args::{BackupAction, Global};
use crate::commands::print_json;
use crate::prompt;

type Result<T> = std::result::Result<T, Error>;

const PASSPHRASE_ENV: &str = "CLINVAULT_BACKUP_PASSPHRASE";

/// An indicatif bar on stderr (drawn only on a terminal), the same style as the sync commands'.
fn progress_printer(label: &'static str) -> impl FnMut(u64, u64) -> bool {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label);
    move |done, total| {
        if bar.length() != Some(total) {
            bar.set_length(total);
        }
        bar.set_position(done);
        if total > 0 && done >= total {
            bar.finish_and_clear();
        }
        true
    }
}

fn backup_passphrase(confirm: bool) -> Result<SecretString> {
    if let Some(p) = prompt::from_env(PASSPHRASE_ENV) {
        return Ok(p);
    }
    if confirm {
        prompt::ask_new("Backup passphrase", PASSPHRASE_ENV)
    } else {
        prompt::ask("Backup passphrase", PASSPHRASE_ENV)
    }
}

fn with_opener<T>(
    recovery_key_file: Option<&Path>,
    f: impl FnOnce(&Opener<'_>) -> Result<T>,
) -> Result<T> {
    match recovery_key_file {
        Some(path) => {
            let key = clinvault_core::vault::read_recovery_file(path)?;
            f(&Opener::RecoveryKey(&key))
        }
        None => {
            let p = backup_passphrase(false)?;
            f(&Opener::Passphrase(&p))
        }
    }
}

fn print_check(c: &backup::BackupCheck, json: bool, verb: &str) -> Result<()> {
    if json {
        return print_json(c);
    }
    println!(
        "{verb}: backup {} of {} — {} patients, {} attachments, audit trail intact ({} entries).",
        c.backup_id, c.created_at, c.vault.patients, c.vault.attachments, c.vault.audit_entries
    );
    Ok(())
}

pub fn run(g: &Global, action: BackupAction) -> Result<()> {
    match action {
        BackupAction::Export {
            out,
            with_passphrase,
            json,
        } => {
            let mut session = g.signed_in()?;
            let passphrase = if with_passphrase || std::env::var_os(PASSPHRASE_ENV).is_some() {
                Some(backup_passphrase(true)?)
            } else {
                None
            };
            let mut progress = progress_printer("Exporting");
            let report = session.export_backup(&out, passphrase.as_ref(), &mut progress)?;
            if json {
                return print_json(&report);
            }
            println!(
                "Backup {} written to {} ({} MiB: {} patients, {} attachments). It opens with the \
                 recovery key{}.",
                report.backup_id,
                report.path.display(),
                report.bytes >> 20,
                report.patients,
                report.attachments,
                if report.with_passphrase {
                    " or the backup passphrase"
                } else {
                    ""
                }
            );
            Ok(())
        }
        BackupAction::Verify {
            file,
            recovery_key_file,
            against_vault,
            json,
        } => {
            let mut progress = progress_printer("Verifying");
            if !against_vault {
                let check = with_opener(recovery_key_file.as_deref(), |o| {
                    backup::verify(&file, o, &mut progress)
                })?;
                return print_check(&check, json, "Verified");
            }
            let mut session = g.signed_in()?;
            let check = with_opener(recovery_key_file.as_deref(), |o| {
                session.verify_backup_file(&file, o, &mut progress)
            })?;
            print_check(&check, json, "Verified")?;
            match check.trail_holds_backup {
                Some(true) => Ok(()),
                Some(false) => Err(Error::Integrity(format!(
                    "this vault's audit trail no longer holds what the backup's trail ended with \
                     (entry {}): entries were cut off since, or an older copy was restored; run \
                     audit verify, and once looked into, audit reanchor",
                    check.anchor.last_seq.unwrap_or(0)
                ))),
                None => Err(Error::InvalidInput(format!(
                    "the backup is of another vault ({}), or its trail is empty: nothing to \
                     compare with this vault's trail",
                    check.vault_id
                ))),
            }
        }
        BackupAction::Restore {
            file,
            to,
            recovery_key_file,
            json,
        } => {
            let mut progress = progress_printer("Restoring");
            let check = with_opener(recovery_key_file.as_deref(), |o| {
                backup::restore(&file, o, &to, &mut progress)
            })?;
            print_check(&check, json, "Restored")?;
            if !json {
                println!(
                    "The vault is in {}; sign in with your usual passphrase (as of the backup) \
                     or use `clinvault recover`.",
                    to.display()
                );
            }
            Ok(())
        }
    }
}
