//! "Remember this device" for two-factor sign-in: a random token kept in the OS keyring
//! (scoped to vault and user, see `os_keyring::DeviceTrust`), whose SHA-256 and expiry are kept
//! in the vault. A device is trusted while both agree and the token has not expired. Where no
//! keyring service runs, nothing is remembered and the code is simply asked each time.

use rusqlite::params;

use crate::error::{Error, Result};
use crate::os_keyring::{DeviceTrust, KeyringError, SecretStore};
use crate::policy::Policy;
use crate::vault::Vault;

pub const KEYRING_SERVICE: &str = "ClinVault";

pub(crate) fn is_trusted(vault: &Vault, now: i64) -> bool {
    let Ok(policy) = Policy::load(vault.conn()) else {
        return false;
    };
    if policy.remember_device_days == 0 {
        return false;
    }
    let hashes: Vec<Vec<u8>> = vault
        .conn()
        .prepare("SELECT token_hash FROM trusted_devices WHERE user_id = ?1 AND expires_at > ?2")
        .and_then(|mut st| {
            st.query_map(params![vault.user().id.to_string(), now], |r| r.get(0))?
                .collect()
        })
        .unwrap_or_default();
    if hashes.is_empty() {
        return false;
    }
    let store = SecretStore::new(KEYRING_SERVICE);
    let vault_id = vault.vault_id().to_string();
    hashes.iter().any(|h| {
        <[u8; 32]>::try_from(h.as_slice())
            .is_ok_and(|h| DeviceTrust::check(&store, &vault_id, &vault.user().username, &h, now))
    })
}

/// A device just remembered: its token is in the keyring; `record` keeps its hash.
pub(crate) struct Remembered {
    hash: [u8; 32],
    expires: i64,
    pub(crate) days: u32,
}

impl Remembered {
    /// Keeps the token's hash for the user, in the caller's transaction (the one that records
    /// that the device was remembered).
    pub(crate) fn record(
        &self,
        conn: &rusqlite::Connection,
        user_id: &str,
        at: &str,
    ) -> Result<()> {
        conn.execute(
            "INSERT INTO trusted_devices (user_id, token_hash, expires_at, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![user_id, self.hash.as_slice(), self.expires, at],
        )?;
        Ok(())
    }
}

pub(crate) fn remember(vault: &Vault, now: i64) -> Result<Remembered> {
    let policy = Policy::load(vault.conn())?;
    if policy.remember_device_days == 0 {
        return Err(Error::InvalidInput(
            "this clinic does not allow remembering devices".into(),
        ));
    }
    let store = SecretStore::new(KEYRING_SERVICE);
    let hash = DeviceTrust::remember(
        &store,
        &vault.vault_id().to_string(),
        &vault.user().username,
        policy.remember_device_days,
        now,
    )
    .map_err(|e| match e {
        KeyringError::Unavailable(m) => Error::Busy(m),
        KeyringError::Other(m) => Error::Internal(m),
    })?;
    Ok(Remembered {
        hash,
        expires: now + i64::from(policy.remember_device_days) * 86_400,
        days: policy.remember_device_days,
    })
}
