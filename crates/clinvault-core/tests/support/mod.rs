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
