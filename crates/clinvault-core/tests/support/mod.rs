//! Shared set-up for the integration tests: a vault with an administrator, created with a cheap
//! KDF so the suite stays fast (the real costs are covered by the life-cycle tests and benches).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod plaintext;

use std::sync::Arc;

use clinvault_core::clock::SystemClock;
use clinvault_core::crypto::KdfCost;
use clinvault_core::{vault, InitOptions, Session, SessionConfig, VaultDir};
use secrecy::SecretString;

pub const ADMIN_PASS: &str = "plum harbour velvet tractor";
pub const USER_PASS: &str = "quiet lantern orbit meadow";
pub const FAST: KdfCost = KdfCost::CHEAP_FOR_TESTS;

pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// Creates a vault at `dir` whose administrator is "admin" with `ADMIN_PASS`.
pub fn new_vault(dir: &VaultDir) {
    vault::init(
        dir,
        InitOptions {
            admin_username: "admin".into(),
            admin_display_name: None,
            passphrase: secret(ADMIN_PASS),
            kdf_cost: FAST,
            recovery_key_file: None,
        },
    )
    .unwrap();
}

/// Signs in on the wall clock (tests that move time build their own `SessionConfig`).
pub fn sign_in(dir: &VaultDir, user: &str, pass: &str) -> Session {
    Session::sign_in_with(
        dir,
        user,
        &secret(pass),
        None,
        SessionConfig {
            device: "desk".into(),
            clock: Arc::new(SystemClock),
        },
    )
    .unwrap()
}

/// Runs `python3 -c script` (an independent implementation the test command installs, named
/// in `needs`) with `input` on its standard input, and returns what it printed; fails the test
/// with `what` and the script's error output if the script fails.
pub fn python_with_input(script: &str, input: &str, needs: &str, what: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 with {needs} (scripts/test.sh installs it): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
