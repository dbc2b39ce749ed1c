//! Tests that need the crate's insides (direct database reads to prove "nothing changed").

use std::sync::Arc;

use secrecy::SecretString;

use crate::clock::ManualClock;
use crate::crypto::KdfCost;
use crate::session::{Session, SessionConfig};
use crate::vault::{self, InitOptions};
use crate::vault_dir::VaultDir;

mod audit_indexes;
mod checkpoint_epochs;
mod role_matrix;

pub(crate) fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// A new vault whose administrator is "admin" with `pass` (cheap KDF: tests, not unlock cost).
pub(crate) fn new_vault(dir: &VaultDir, pass: &str) {
    vault::init(
        dir,
        InitOptions {
            admin_username: "admin".into(),
            admin_display_name: None,
            passphrase: secret(pass),
            kdf_cost: KdfCost::CHEAP_FOR_TESTS,
            recovery_key_file: None,
        },
    )
    .unwrap();
}

pub(crate) fn sign_in(dir: &VaultDir, clock: &ManualClock, user: &str, pass: &str) -> Session {
    Session::sign_in_with(
        dir,
        user,
        &secret(pass),
        None,
        SessionConfig {
            device: "core-test".into(),
            clock: Arc::new(clock.clone()),
        },
    )
    .unwrap()
}
