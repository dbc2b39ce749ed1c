//! Operations on the key hierarchy: per-user key pairs wrapped under passphrase-derived keys,
//! the master key (MK) sealed to each user and to the recovery key, and the database key
//! derived from MK. See docs/security-model.md ("Key hierarchy") for the exact constructions.

use ed25519_dalek::SigningKey;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::crypto::{self, KdfParams, Sealed, Secret32};
use crate::encoding::{tuple, B64};
use crate::error::{Error, Result};
use crate::keyfile::{self, KeyFileBody, PendingEpoch, PendingSeal, RecoverySlot, Slot};

/// A user's private keys while unlocked: X25519 (receives MK) and the Ed25519 seed (signs audit
/// entries). Neither Debug nor Clone, wiped on drop.
pub struct UserKeys {
    pub(crate) x25519: Secret32,
    pub(crate) ed25519_seed: Secret32,
    /// Expanded once: deriving it from the seed costs a scalar multiplication, and every audit
    /// entry is signed with it. Wiped on drop (ed25519-dalek's zeroize feature).
    signing: SigningKey,
}

impl UserKeys {
    fn from_parts(x25519: Secret32, ed25519_seed: Secret32) -> Self {
        let signing = SigningKey::from_bytes(ed25519_seed.expose());
        UserKeys {
            x25519,
            ed25519_seed,
            signing,
        }
    }

    pub fn generate() -> Self {
        Self::from_parts(Secret32::random(), Secret32::random())
    }

    pub fn x25519_public(&self) -> Result<[u8; 32]> {
        crypto::x25519_public(&self.x25519)
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn ed25519_public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(64));
        out.extend_from_slice(self.x25519.expose());
        out.extend_from_slice(self.ed25519_seed.expose());
        out
    }

    fn from_plaintext(mut pt: Zeroizing<Vec<u8>>) -> Option<Self> {
        if pt.len() != 64 {
            return None;
        }
        let (a, b) = pt.split_at_mut(32);
        Some(Self::from_parts(
            Secret32::from_slice_wiping(a)?,
            Secret32::from_slice_wiping(b)?,
        ))
    }
}

/// The recovery key: an X25519 private key the clinic keeps on paper. Because MK is sealed to its
/// public half, rotation can re-seal to it without anyone typing it in.
pub struct RecoveryKey(Secret32);

const RECOVERY_GROUP: usize = 5;

impl RecoveryKey {
    pub fn generate() -> Self {
        RecoveryKey(Secret32::random())
    }

    pub(crate) fn secret(&self) -> &Secret32 {
        &self.0
    }

    pub fn public(&self) -> Result<[u8; 32]> {
        crypto::x25519_public(&self.0)
    }

    /// Crockford base32 of the 32 key bytes plus a 2-byte SHA-256 checksum (catches typos),
    /// in dash-separated groups of five: 55 characters a person can write down.
    pub fn display(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(self.0.expose().to_vec());
        let check = Sha256::digest(self.0.expose());
        bytes.extend_from_slice(&check[..2]);
        let plain = Zeroizing::new(base32::encode(base32::Alphabet::Crockford, &bytes));
        let mut out = Zeroizing::new(String::with_capacity(70));
        for (i, c) in plain.chars().enumerate() {
            if i > 0 && i % RECOVERY_GROUP == 0 {
                out.push('-');
            }
            out.push(c);
        }
        out
    }

    pub fn parse(text: &str) -> Result<Self> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .map(|c| match c.to_ascii_uppercase() {
                    'I' | 'L' => '1',
                    'O' => '0',
                    other => other,
                })
                .collect(),
        );
        let mistyped = || {
            Error::InvalidInput(
                "that is not a valid recovery key: check it against the recovery kit \
                 (55 characters in groups of five)"
                    .into(),
            )
        };
        let bytes = Zeroizing::new(
            base32::decode(base32::Alphabet::Crockford, &cleaned).ok_or_else(mistyped)?,
        );
        if bytes.len() != 34 {
            return Err(mistyped());
        }
        let check = Sha256::digest(&bytes[..32]);
        if check[..2] != bytes[32..] {
            return Err(mistyped());
        }
        let mut key = Zeroizing::new(bytes[..32].to_vec());
        Secret32::from_slice_wiping(&mut key)
            .map(RecoveryKey)
            .ok_or_else(mistyped)
    }
}

/// Associated data for a slot's wrapped private keys: binds them to this vault, this slot, this
/// user, their public keys and the KDF parameters, so no field can be swapped or downgraded.
fn private_aad(vault_id: uuid::Uuid, slot: &Slot) -> Vec<u8> {
    tuple(&[
        b"clinvault/v1/slot-private",
        vault_id.as_bytes(),
        slot.slot_id.as_bytes(),
        slot.user_id.as_bytes(),
        slot.username.as_bytes(),
        &slot.x25519_public.0,
        &slot.ed25519_public.0,
        &slot.kdf.binding(),
    ])
}

pub fn db_key(mk: &Secret32, vault_id: uuid::Uuid, epoch: u64) -> Result<Secret32> {
    crypto::hkdf_sha256(
        mk,
        vault_id.as_bytes(),
        &tuple(&[b"clinvault/v1/sqlcipher-key", &epoch.to_be_bytes()]),
    )
}

/// Who a new slot is for.
pub struct SlotOwner<'a> {
    pub user_id: uuid::Uuid,
    pub username: &'a str,
}

/// The integrity key: authenticates data the database-key holder must not be able to forge
/// (registered signing keys, the audit checkpoint). Derived from MK, so it changes on rotation.
pub fn integrity_key(mk: &Secret32, vault_id: uuid::Uuid) -> Result<Secret32> {
    crypto::hkdf_sha256(
        mk,
        vault_id.as_bytes(),
        &tuple(&[b"clinvault/v1/integrity"]),
    )
}

/// Builds a key slot for a user: wraps their private keys under `passphrase` and seals `mk`
/// (the master key of `epoch`).
pub fn make_slot(
    vault_id: uuid::Uuid,
    (epoch, mk): (u64, &Secret32),
    owner: SlotOwner<'_>,
    passphrase: &SecretString,
    kdf: KdfParams,
    keys: &UserKeys,
) -> Result<Slot> {
    let SlotOwner { user_id, username } = owner;
    let x_pub = keys.x25519_public()?;
    let slot_id = uuid::Uuid::new_v4();
    let mut slot = Slot {
        slot_id,
        user_id,
        username: username.to_owned(),
        x25519_public: B64(x_pub.to_vec()),
        ed25519_public: B64(keys.ed25519_public().to_vec()),
        kdf,
        wrapped_private: crypto::Wrapped {
            nonce: B64::default(),
            ciphertext: B64::default(),
        },
        sealed_mk: crypto::seal(
            &x_pub,
            &keyfile::mk_info(vault_id, epoch),
            &keyfile::slot_aad(slot_id),
            mk.expose(),
        )?,
    };
    rewrap(vault_id, &mut slot, passphrase, keys)?;
    Ok(slot)
}

/// Re-wraps a slot's private keys under a new passphrase with a fresh salt; MK stays sealed as is.
pub fn rewrap(
    vault_id: uuid::Uuid,
    slot: &mut Slot,
    passphrase: &SecretString,
    keys: &UserKeys,
) -> Result<()> {
    let kek = crypto::derive_kek(passphrase, &slot.kdf)?;
    slot.wrapped_private = crypto::wrap(&kek, &keys.to_plaintext(), &private_aad(vault_id, slot))?;
    Ok(())
}

/// Unwraps the private keys of `username`'s slot. A wrong passphrase and an unknown username give
/// the same error after the same work, so sign-in does not reveal who has an account.
pub fn unlock_slot(
    body: &KeyFileBody,
    username: &str,
    passphrase: &SecretString,
) -> Result<(Slot, UserKeys)> {
    let Some(slot) = body.slot_for_username(username) else {
        if let Some(any) = body.slots.first() {
            let _ = crypto::derive_kek(passphrase, &any.kdf);
        }
        return Err(Error::bad_credentials());
    };
    let kek = crypto::derive_kek(passphrase, &slot.kdf)?;
    let plaintext = crypto::unwrap(
        &kek,
        &slot.wrapped_private,
        &private_aad(body.vault_id, slot),
    )
    .ok_or_else(Error::bad_credentials)?;
    let keys = UserKeys::from_plaintext(plaintext)
        .ok_or_else(|| Error::Integrity("a key slot holds malformed key material".into()))?;
    if keys.x25519_public()?.as_slice() != slot.x25519_public.0
        || keys.ed25519_public().as_slice() != slot.ed25519_public.0
    {
        return Err(Error::Integrity(
            "a key slot's public keys do not match its private keys".into(),
        ));
    }
    Ok((slot.clone(), keys))
}

fn mk_from(pt: Zeroizing<Vec<u8>>) -> Option<Secret32> {
    let mut pt = pt;
    Secret32::from_slice_wiping(&mut pt)
}

pub fn open_mk(body: &KeyFileBody, slot: &Slot, keys: &UserKeys) -> Option<Secret32> {
    crypto::open(
        &keys.x25519,
        &slot.sealed_mk,
        &keyfile::mk_info(body.vault_id, body.epoch),
        &keyfile::slot_aad(slot.slot_id),
    )
    .and_then(mk_from)
}

pub fn open_pending_mk(body: &KeyFileBody, slot: &Slot, keys: &UserKeys) -> Option<Secret32> {
    let pending = body.pending.as_ref()?;
    crypto::open(
        &keys.x25519,
        body.pending_seal_for(slot.slot_id)?,
        &keyfile::mk_info(body.vault_id, pending.epoch),
        &keyfile::slot_aad(slot.slot_id),
    )
    .and_then(mk_from)
}

pub fn open_mk_recovery(body: &KeyFileBody, key: &RecoveryKey) -> Option<Secret32> {
    crypto::open(
        key.secret(),
        &body.recovery.sealed_mk,
        &keyfile::mk_info(body.vault_id, body.epoch),
        &keyfile::recovery_aad(),
    )
    .and_then(mk_from)
}

pub fn open_pending_mk_recovery(body: &KeyFileBody, key: &RecoveryKey) -> Option<Secret32> {
    let pending = body.pending.as_ref()?;
    crypto::open(
        key.secret(),
        &pending.recovery_sealed_mk,
        &keyfile::mk_info(body.vault_id, pending.epoch),
        &keyfile::recovery_aad(),
    )
    .and_then(mk_from)
}

pub fn seal_recovery(
    vault_id: uuid::Uuid,
    epoch: u64,
    mk: &Secret32,
    recovery_public: &[u8; 32],
) -> Result<Sealed> {
    crypto::seal(
        recovery_public,
        &keyfile::mk_info(vault_id, epoch),
        &keyfile::recovery_aad(),
        mk.expose(),
    )
}

pub fn recovery_slot(
    vault_id: uuid::Uuid,
    epoch: u64,
    mk: &Secret32,
    recovery_public: [u8; 32],
) -> Result<RecoverySlot> {
    Ok(RecoverySlot {
        public_key: B64(recovery_public.to_vec()),
        sealed_mk: seal_recovery(vault_id, epoch, mk, &recovery_public)?,
    })
}

/// Seals a new master key to every slot and to the recovery key, using only public keys: this is
/// what lets an administrator rotate without anyone else's passphrase.
pub fn seal_next_epoch(body: &KeyFileBody, next_mk: &Secret32) -> Result<PendingEpoch> {
    let epoch = body.epoch + 1;
    let info = keyfile::mk_info(body.vault_id, epoch);
    let mut sealed = Vec::with_capacity(body.slots.len());
    for slot in &body.slots {
        let public = slot
            .x25519_public
            .as_32()
            .ok_or_else(|| Error::Integrity("a key slot holds an invalid public key".into()))?;
        sealed.push(PendingSeal {
            slot_id: slot.slot_id,
            sealed_mk: crypto::seal(
                &public,
                &info,
                &keyfile::slot_aad(slot.slot_id),
                next_mk.expose(),
            )?,
        });
    }
    let recovery_public =
        body.recovery.public_key.as_32().ok_or_else(|| {
            Error::Integrity("the recovery slot holds an invalid public key".into())
        })?;
    Ok(PendingEpoch {
        epoch,
        recovery_sealed_mk: seal_recovery(body.vault_id, epoch, next_mk, &recovery_public)?,
        sealed_mk: sealed,
    })
}

/// Makes the pending epoch current: every slot's sealed MK becomes its pending one.
pub fn promote_pending(body: &mut KeyFileBody) -> Result<()> {
    let pending = body
        .pending
        .take()
        .ok_or_else(|| Error::Internal("no rotation is pending".into()))?;
    for slot in &mut body.slots {
        let next = pending
            .sealed_mk
            .iter()
            .find(|p| p.slot_id == slot.slot_id)
            .ok_or_else(|| Error::Integrity("a pending rotation misses a key slot".into()))?;
        slot.sealed_mk = next.sealed_mk.clone();
    }
    body.recovery.sealed_mk = pending.recovery_sealed_mk;
    body.epoch = pending.epoch;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_key_display_round_trips_and_tolerates_typing() {
        let k = RecoveryKey::generate();
        let shown = k.display();
        assert_eq!(shown.len(), 55 + 10);
        let parsed = RecoveryKey::parse(&shown).unwrap();
        assert_eq!(parsed.secret().expose(), k.secret().expose());
        let sloppy = shown.to_lowercase().replace('-', " ").replace('1', "l");
        let parsed = RecoveryKey::parse(&sloppy).unwrap();
        assert_eq!(parsed.secret().expose(), k.secret().expose());
    }

    #[test]
    fn recovery_key_typo_is_caught_by_checksum() {
        let k = RecoveryKey::generate();
        let mut shown: Vec<char> = k.display().chars().collect();
        shown[3] = if shown[3] == 'A' { 'B' } else { 'A' };
        let typo: String = shown.into_iter().collect();
        let err = RecoveryKey::parse(&typo).err().unwrap();
        assert!(err.to_string().contains("not a valid recovery key"));
        assert!(RecoveryKey::parse("hello").is_err());
    }

    #[test]
    fn user_keys_round_trip_through_plaintext() {
        let k = UserKeys::generate();
        let again = UserKeys::from_plaintext(k.to_plaintext()).unwrap();
        assert_eq!(again.ed25519_public(), k.ed25519_public());
        assert_eq!(again.x25519_public().unwrap(), k.x25519_public().unwrap());
        assert!(UserKeys::from_plaintext(Zeroizing::new(vec![0; 63])).is_none());
    }
}
