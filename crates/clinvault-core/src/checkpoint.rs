//! Signed checkpoints of the audit trail, after the C2SP tlog-checkpoint / signed-note text
//! format: an origin line, the tree size (the last sequence number), the base64 head hash, a
//! blank line, then signature lines "— <name> <base64(key id || signature)>". A checkpoint is
//! kept outside the database (audit.checkpoint next to the vault, the OS keyring where there is
//! one, every backup manifest) so that cutting entries off the end of the trail is detected.
//!
//! Two signatures: the writing user's Ed25519 key (who vouches for it) and an HMAC under the
//! integrity key derived from the master key (which someone holding only the database key does
//! not have, so they cannot produce a checkpoint matching a shortened trail).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::crypto::{self, Secret32};
use crate::error::{Error, Result};
use crate::vault_dir::VaultDir;

pub const CHECKPOINT_FILE: &str = "audit.checkpoint";
const DASH: &str = "\u{2014} ";
const INTEGRITY_NAME: &str = "clinvault-integrity";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: i64,
    pub head_hash: [u8; 32],
    /// Signer name (the user id) and the Ed25519 signature over the body.
    pub signer: String,
    pub signature: [u8; 64],
    pub signer_key_id: [u8; 4],
    /// HMAC-SHA256 of the body under the integrity key, if present, and the key epoch whose
    /// integrity key made it (the line is named "clinvault-integrity/<epoch>").
    pub mac: Option<[u8; 32]>,
    pub mac_epoch: Option<u64>,
}

pub fn origin(vault_id: &str) -> String {
    format!("clinvault.audit/{vault_id}")
}

fn body(origin: &str, size: i64, head: &[u8; 32]) -> String {
    format!("{origin}\n{size}\n{}\n", STANDARD.encode(head))
}

/// Key id as in signed notes: the first four bytes of SHA-256(name || "\n" || 0x01 || key).
fn key_id(name: &str, key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n\x01");
    h.update(key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

impl Checkpoint {
    pub fn body(&self) -> String {
        body(&self.origin, self.size, &self.head_hash)
    }

    pub fn sign(
        origin: String,
        size: i64,
        head_hash: [u8; 32],
        signer: &str,
        key: &SigningKey,
        integrity: Option<(&Secret32, u64)>,
    ) -> Result<Checkpoint> {
        let text = body(&origin, size, &head_hash);
        let signature = key.sign(text.as_bytes()).to_bytes();
        let mac = integrity
            .map(|(k, _)| crypto::hmac_sha256(k, text.as_bytes()))
            .transpose()?;
        let mac_epoch = integrity.map(|(_, e)| e);
        Ok(Checkpoint {
            origin,
            size,
            head_hash,
            signer: signer.to_owned(),
            signature,
            signer_key_id: key_id(signer, &key.verifying_key().to_bytes()),
            mac,
            mac_epoch,
        })
    }

    pub fn encode(&self) -> String {
        let mut sig = self.signer_key_id.to_vec();
        sig.extend_from_slice(&self.signature);
        let mut out = format!(
            "{}\n{DASH}{} {}\n",
            self.body(),
            self.signer,
            STANDARD.encode(sig)
        );
        if let Some(mac) = &self.mac {
            let name = match self.mac_epoch {
                Some(e) => format!("{INTEGRITY_NAME}/{e}"),
                None => INTEGRITY_NAME.to_owned(),
            };
            out.push_str(&format!("{DASH}{name} {}\n", STANDARD.encode(mac)));
        }
        out
    }

    pub fn parse(text: &str) -> Result<Checkpoint> {
        let bad =
            |why: &str| Error::Integrity(format!("the audit checkpoint is malformed ({why})"));
        let (head, sigs) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no signature block"))?;
        let mut lines = head.lines();
        let origin = lines.next().ok_or_else(|| bad("no origin"))?.to_owned();
        let size: i64 = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| bad("no size"))?;
        let head_hash: [u8; 32] = lines
            .next()
            .and_then(|l| STANDARD.decode(l).ok())
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("no head hash"))?;
        let mut signer = None;
        let mut mac = None;
        let mut mac_epoch = None;
        for line in sigs.lines().filter(|l| !l.is_empty()) {
            let rest = line
                .strip_prefix(DASH)
                .ok_or_else(|| bad("signature line"))?;
            let (name, b64) = rest.split_once(' ').ok_or_else(|| bad("signature line"))?;
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| bad("signature encoding"))?;
            let integrity = name
                .strip_prefix(INTEGRITY_NAME)
                .filter(|rest| rest.is_empty() || rest.starts_with('/'));
            if let Some(rest) = integrity {
                mac = Some(raw.try_into().map_err(|_| bad("integrity length"))?);
                mac_epoch = match rest.strip_prefix('/') {
                    Some(e) => Some(e.parse().map_err(|_| bad("integrity epoch"))?),
                    None => None,
                };
            } else if raw.len() == 68 && signer.is_none() {
                let mut id = [0u8; 4];
                id.copy_from_slice(&raw[..4]);
                let mut sig = [0u8; 64];
                sig.copy_from_slice(&raw[4..]);
                signer = Some((name.to_owned(), id, sig));
            }
        }
        let (signer, signer_key_id, signature) = signer.ok_or_else(|| bad("no signer"))?;
        Ok(Checkpoint {
            origin,
            size,
            head_hash,
            signer,
            signature,
            signer_key_id,
            mac,
            mac_epoch,
        })
    }

    pub fn verify_signature(&self, key: &[u8; 32]) -> bool {
        let Ok(vk) = VerifyingKey::from_bytes(key) else {
            return false;
        };
        key_id(&self.signer, key) == self.signer_key_id
            && vk
                .verify(
                    self.body().as_bytes(),
                    &Signature::from_bytes(&self.signature),
                )
                .is_ok()
    }

    pub fn verify_mac(&self, integrity: &Secret32) -> bool {
        match &self.mac {
            Some(mac) => {
                crypto::hmac_sha256_verify(integrity, self.body().as_bytes(), mac).unwrap_or(false)
            }
            None => false,
        }
    }
}

pub fn write_file(dir: &VaultDir, cp: &Checkpoint) -> Result<()> {
    dir.write_atomic(CHECKPOINT_FILE, cp.encode().as_bytes())
}

/// The stored checkpoint, if there is one.
pub fn read_file(dir: &VaultDir) -> Result<Option<Checkpoint>> {
    match std::fs::read_to_string(dir.file(CHECKPOINT_FILE)) {
        Ok(text) => Checkpoint::parse(&text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read the audit checkpoint")(e)),
    }
}

fn keyring_account(origin: &str) -> String {
    format!("{origin}/checkpoint")
}

/// Keeps a copy in the OS keyring where one is available (best effort: the file and the
/// backups remain the anchors elsewhere).
pub fn write_keyring(cp: &Checkpoint) {
    let store = crate::os_keyring::SecretStore::new(crate::device_trust::KEYRING_SERVICE);
    let _ = store.set(&keyring_account(&cp.origin), cp.encode().as_bytes());
}

pub fn read_keyring(origin: &str) -> Option<Checkpoint> {
    let store = crate::os_keyring::SecretStore::new(crate::device_trust::KEYRING_SERVICE);
    let bytes = store.get(&keyring_account(origin)).ok()??;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|t| Checkpoint::parse(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_detects_changes() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let ik = Secret32::random();
        let cp =
            Checkpoint::sign(origin("v1"), 42, [9u8; 32], "user-1", &key, Some((&ik, 3))).unwrap();
        let text = cp.encode();
        assert!(text.starts_with("clinvault.audit/v1\n42\n"));
        assert!(text.contains("\n\n\u{2014} user-1 "));
        assert!(text.contains("\u{2014} clinvault-integrity/3 "));
        let parsed = Checkpoint::parse(&text).unwrap();
        assert_eq!(parsed, cp);
        let pk = key.verifying_key().to_bytes();
        assert!(parsed.verify_signature(&pk));
        assert!(parsed.verify_mac(&ik));
        let forged = Checkpoint::parse(&text.replacen("\n42\n", "\n41\n", 1)).unwrap();
        assert!(!forged.verify_signature(&pk));
        assert!(!forged.verify_mac(&ik));
        assert!(!parsed.verify_mac(&Secret32::random()));
        assert!(Checkpoint::parse("garbage").is_err());
    }
}
