//! The key file (`vault.keys`): everything needed to unlock the vault, readable before unlock.
//! It holds only public keys and ciphertexts. Its body is authenticated by an HMAC under a key
//! derived from the master key, checked on every unlock, so edits made without the master key
//! (a swapped slot, lowered KDF costs, a changed epoch) are detected.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::crypto::{self, KdfCost, KdfParams, Sealed, Secret32, Wrapped};
use crate::encoding::{tuple, B64};
use crate::error::{Error, Result};
use crate::vault_dir::{VaultDir, KEY_FILE};

pub const FORMAT: &str = "clinvault-keyfile";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyFileBody {
    pub format: String,
    pub format_version: u32,
    pub vault_id: uuid::Uuid,
    pub created_at: String,
    /// Increments with every master-key rotation; part of the database key derivation.
    pub epoch: u64,
    /// Argon2id costs used whenever a passphrase is wrapped from now on.
    pub kdf_cost: KdfCost,
    pub recovery: RecoverySlot,
    pub slots: Vec<Slot>,
    /// A rotation that has started: the next master key sealed to every slot and to recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingEpoch>,
    /// Set once the audit trail has been anchored outside the database: from then on a missing
    /// checkpoint is a replaced anchor even when the trail shows no earlier session (it may
    /// have been wiped). Under the MAC, so the database key alone cannot clear it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub audit_anchored: bool,
    /// Set when a rotation promotes a new master key, cleared once the audit checkpoint has
    /// been anchored under the new integrity key. Only while it is set does a checkpoint of an
    /// earlier epoch (whose integrity key is gone) stand on its signature alone; otherwise any
    /// user could sign one, name an old epoch, and vouch for a shortened trail.
    #[serde(default, skip_serializing_if = "is_false")]
    pub checkpoint_rekey_due: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoverySlot {
    pub public_key: B64,
    pub sealed_mk: Sealed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Slot {
    pub slot_id: uuid::Uuid,
    pub user_id: uuid::Uuid,
    pub username: String,
    pub x25519_public: B64,
    pub ed25519_public: B64,
    pub kdf: KdfParams,
    /// X25519 private key || Ed25519 seed, under the passphrase-derived key.
    pub wrapped_private: Wrapped,
    pub sealed_mk: Sealed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingEpoch {
    pub epoch: u64,
    pub recovery_sealed_mk: Sealed,
    pub sealed_mk: Vec<PendingSeal>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingSeal {
    pub slot_id: uuid::Uuid,
    pub sealed_mk: Sealed,
}

#[derive(Serialize, Deserialize)]
struct OnDisk<'a> {
    #[serde(borrow)]
    body: &'a RawValue,
    /// SHA-256 of the body: catches accidental damage before unlock, so a damaged file is
    /// reported as damaged rather than as a wrong passphrase. Not a defence against edits; the MAC is.
    checksum: B64,
    mac: B64,
}

/// A parsed key file, with the exact body bytes its MAC covers.
pub struct KeyFile {
    pub body: KeyFileBody,
    body_bytes: Vec<u8>,
    mac: Vec<u8>,
}

impl KeyFileBody {
    pub fn slot_for_username(&self, username: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.username == username)
    }

    pub fn pending_seal_for(&self, slot_id: uuid::Uuid) -> Option<&Sealed> {
        self.pending
            .as_ref()?
            .sealed_mk
            .iter()
            .find(|p| p.slot_id == slot_id)
            .map(|p| &p.sealed_mk)
    }
}

pub fn mk_info(vault_id: uuid::Uuid, epoch: u64) -> Vec<u8> {
    tuple(&[
        b"clinvault/v1/master-key",
        vault_id.as_bytes(),
        &epoch.to_be_bytes(),
    ])
}

pub fn slot_aad(slot_id: uuid::Uuid) -> Vec<u8> {
    tuple(&[b"slot", slot_id.as_bytes()])
}

pub fn recovery_aad() -> Vec<u8> {
    tuple(&[b"recovery"])
}

fn mac_key(mk: &Secret32, vault_id: uuid::Uuid) -> Result<Secret32> {
    crypto::hkdf_sha256(
        mk,
        vault_id.as_bytes(),
        &tuple(&[b"clinvault/v1/keyfile-mac"]),
    )
}

impl KeyFile {
    pub fn read(dir: &VaultDir) -> Result<KeyFile> {
        let path = dir.key_file();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!(
                    "no vault at {} (run `clinvault init` to create one)",
                    dir.root().display()
                )))
            }
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()))(e)),
        };
        Self::parse(&bytes)
    }

    pub fn parse(bytes: &[u8]) -> Result<KeyFile> {
        let damaged = |why: String| {
            Error::Integrity(format!(
                "the key file {KEY_FILE} is damaged ({why}); restore it from a backup"
            ))
        };
        let on_disk: OnDisk = serde_json::from_slice(bytes).map_err(|e| damaged(e.to_string()))?;
        let body_bytes = on_disk.body.get().as_bytes().to_vec();
        if Sha256::digest(&body_bytes).as_slice() != on_disk.checksum.0 {
            return Err(damaged("checksum mismatch".into()));
        }
        let probe: serde_json::Value =
            serde_json::from_slice(&body_bytes).map_err(|e| damaged(e.to_string()))?;
        if probe.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(damaged("not a ClinVault key file".into()));
        }
        let version = probe
            .get("format_version")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        if version > u64::from(FORMAT_VERSION) {
            return Err(Error::Incompatible(format!(
                "this vault was written by a newer ClinVault (key file format {version}); \
                 this build reads up to format {FORMAT_VERSION}: update ClinVault"
            )));
        }
        let body: KeyFileBody =
            serde_json::from_slice(&body_bytes).map_err(|e| damaged(e.to_string()))?;
        Ok(KeyFile {
            body,
            body_bytes,
            mac: on_disk.mac.0,
        })
    }

    pub fn verify(&self, mk: &Secret32) -> Result<()> {
        let key = mac_key(mk, self.body.vault_id)?;
        if crypto::hmac_sha256_verify(&key, &self.body_bytes, &self.mac)? {
            Ok(())
        } else {
            Err(Error::Integrity(format!(
                "the key file {KEY_FILE} was modified outside ClinVault; restore it from a backup"
            )))
        }
    }

    /// Serialises a body and authenticates it under `mk`.
    pub fn encode(body: &KeyFileBody, mk: &Secret32) -> Result<Vec<u8>> {
        let body_bytes = serde_json::to_vec(body)
            .map_err(|e| Error::Internal(format!("cannot encode key file: {e}")))?;
        let key = mac_key(mk, body.vault_id)?;
        let mac = crypto::hmac_sha256(&key, &body_bytes)?;
        let raw = RawValue::from_string(String::from_utf8_lossy(&body_bytes).into_owned())
            .map_err(|e| Error::Internal(format!("cannot encode key file: {e}")))?;
        let mut out = serde_json::to_vec_pretty(&OnDisk {
            body: &raw,
            checksum: B64(Sha256::digest(&body_bytes).to_vec()),
            mac: B64(mac.to_vec()),
        })
        .map_err(|e| Error::Internal(format!("cannot encode key file: {e}")))?;
        out.push(b'\n');
        Ok(out)
    }

    pub fn write(dir: &VaultDir, body: &KeyFileBody, mk: &Secret32) -> Result<()> {
        let bytes = Self::encode(body, mk)?;
        dir.write_atomic_at(KEY_FILE, &bytes, Some("keyfile.before_rename"))
    }
}
