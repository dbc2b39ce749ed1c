//! Shared set-up for benchmarks: a fresh vault and an administrator's session (cheap KDF: the
//! unlock cost is measured on its own in the `vault` bench).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use clinvault_core::clock::SystemClock;
use clinvault_core::crypto::KdfCost;
use clinvault_core::{vault, InitOptions, Session, SessionConfig, VaultDir};
use secrecy::SecretString;

pub fn admin_session() -> (tempfile::TempDir, Session) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    let pass = SecretString::from("plum harbour velvet tractor".to_owned());
    vault::init(
        &dir,
        InitOptions {
            admin_username: "admin".into(),
            admin_display_name: None,
            passphrase: pass.clone(),
            kdf_cost: KdfCost::CHEAP_FOR_TESTS,
            recovery_key_file: None,
        },
    )
    .unwrap();
    let s = Session::sign_in_with(
        &dir,
        "admin",
        &pass,
        None,
        SessionConfig {
            device: "bench".into(),
            clock: Arc::new(SystemClock),
        },
    )
    .unwrap();
    (tmp, s)
}
