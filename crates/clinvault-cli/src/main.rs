//! `clinvault`: the command-line shell over the ClinVault core. It parses arguments, gathers
//! secrets, calls the core and prints; every decision is the core's.
//!
//! Exit codes (a contract for scripts): 0 ok, 1 other error, 2 usage, 3 authentication failed,
//! 4 permission denied, 5 integrity failure, 6 not found.

mod args;
mod backup_cmd;
mod commands;
mod prompt;

use std::process::ExitCode;

use clap::Parser;
use clinvault_core::ErrorKind;

fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidInput => 2,
        ErrorKind::Authentication | ErrorKind::SessionLocked => 3,
        ErrorKind::PermissionDenied => 4,
        ErrorKind::Integrity => 5,
        ErrorKind::NotFound => 6,
        ErrorKind::AlreadyExists
        | ErrorKind::Conflict
        | ErrorKind::Busy
        | ErrorKind::Incompatible
        | ErrorKind::Io
        | ErrorKind::Internal => 1,
    }
}

fn main() -> ExitCode {
    // A panic message could carry data; print one fixed line instead (below) and nothing else.
    std::panic::set_hook(Box::new(|_| {}));
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as ClapKind;
            match e.kind() {
                ClapKind::DisplayHelp | ClapKind::DisplayVersion => {
                    let _ = e.print();
                    return ExitCode::SUCCESS;
                }
                ClapKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    return ExitCode::from(2);
                }
                _ => {}
            }
            let rendered = e.to_string();
            let first = rendered
                .lines()
                .next()
                .unwrap_or("error: invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("error: {first} (see clinvault --help)");
            return ExitCode::from(2);
        }
    };
    match std::panic::catch_unwind(|| commands::run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(e.kind()))
        }
        Err(_) => {
            eprintln!(
                "error: internal error; the operation was stopped and nothing further was changed"
            );
            ExitCode::from(1)
        }
    }
}
