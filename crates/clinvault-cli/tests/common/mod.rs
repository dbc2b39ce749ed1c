//! Runs the real `clinvault` binary against vaults in temporary directories.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benches may panic on setup failures

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const PASS: &str = "correct horse battery staple";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_clinvault"))
}

/// A command for `vault`, acting as `admin`, with the test build's cheap KDF profile.
pub fn cv(vault: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", vault.parent().unwrap_or(vault))
        .env("CLINVAULT_VAULT", vault)
        .env("CLINVAULT_USER", "admin")
        .env("CLINVAULT_PASSPHRASE", PASS)
        .env("CLINVAULT_TEST_FAST_KDF", "1");
    c
}

pub fn run(mut c: Command) -> Output {
    c.output().expect("clinvault runs")
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts success, with the command's stderr in the failure message.
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "failed ({:?}): {}",
        out.status,
        stderr(&out)
    );
    out
}

pub fn init(vault: &Path) -> Output {
    let mut c = cv(vault);
    c.args([
        "init",
        "--admin",
        "admin",
        "--display-name",
        "Practice Admin",
    ]);
    ok(run(c))
}

/// Every error is exactly one line on stderr starting with "error:".
pub fn assert_one_error_line(out: &Output) {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
}
