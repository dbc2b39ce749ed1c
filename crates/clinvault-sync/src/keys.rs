//! The repository key and what is derived from it. One random 32-byte key per repository; from
//! it BLAKE3's key-derivation mode (a standard KDF) gives three independent keys, so the blob-id
//! key used for deduplication never doubles as an encryption key.

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use clinvault_core::{Error, Result};

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;

const CTX_BLOB_ID: &str = "clinvault sync v1 blob id";
const CTX_DATA: &str = "clinvault sync v1 blob data";
const CTX_META: &str = "clinvault sync v1 metadata";

/// The random repository key. No Debug, no Clone; wiped on drop.
pub struct RepoKey(Zeroizing<[u8; KEY_LEN]>);

impl RepoKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        RepoKey(k)
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        if b.len() != KEY_LEN {
            return Err(Error::Integrity(
                "the stored sync repository key has the wrong length".into(),
            ));
        }
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        k.copy_from_slice(b);
        Ok(RepoKey(k))
    }

    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn derive(&self) -> DerivedKeys {
        let id = Zeroizing::new(blake3::derive_key(CTX_BLOB_ID, self.expose()));
        let data = Zeroizing::new(blake3::derive_key(CTX_DATA, self.expose()));
        let meta = Zeroizing::new(blake3::derive_key(CTX_META, self.expose()));
        DerivedKeys {
            id,
            data: XChaCha20Poly1305::new(data.as_ref().into()),
            meta: XChaCha20Poly1305::new(meta.as_ref().into()),
        }
    }
}

/// A blob's name: keyed BLAKE3 of its plaintext. Without the key the target cannot test a
/// guess of the content against it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn parse(s: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| Error::Integrity("a repository entry names a malformed blob id".into()))?;
        Ok(BlobId(out))
    }
}

impl std::fmt::Debug for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobId({})", &self.hex()[..12])
    }
}

pub(crate) struct DerivedKeys {
    id: Zeroizing<[u8; 32]>,
    data: XChaCha20Poly1305,
    meta: XChaCha20Poly1305,
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

fn seal_with(cipher: &XChaCha20Poly1305, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let n = nonce();
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&n),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::Internal("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&n);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open_with(cipher: &XChaCha20Poly1305, sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (n, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(n), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

/// AAD of a blob: binds the ciphertext to its id, so a blob moved to another id is rejected.
fn blob_aad(id: &BlobId) -> Vec<u8> {
    let mut aad = b"clinvault-sync/v1/blob/".to_vec();
    aad.extend_from_slice(&id.0);
    aad
}

fn meta_aad(kind: &str) -> Vec<u8> {
    format!("clinvault-sync/v1/{kind}").into_bytes()
}

impl DerivedKeys {
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.id, plaintext).as_bytes())
    }

    pub fn seal_blob(&self, id: &BlobId, body: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.data, body, &blob_aad(id))
    }

    pub fn open_blob(&self, id: &BlobId, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        open_with(&self.data, sealed, &blob_aad(id))
    }

    /// Opens a blob for a restore in place: `sealed` (nonce ‖ ciphertext ‖ tag, inside the pack
    /// buffer) is authenticated and then decrypted where it lies, and the plaintext's range
    /// within `sealed` is returned; on failure `sealed` is left as it was. Not zeroized, unlike
    /// metadata: a blob's content is a vault file the core has already encrypted (database
    /// pages, attachment streams, wrapped keys), and wiping a gigabyte of that ciphertext after
    /// every restore would protect nothing while costing a pass over all of it.
    pub fn open_blob_in_place(
        &self,
        id: &BlobId,
        sealed: &mut [u8],
    ) -> Option<std::ops::Range<usize>> {
        let end = sealed.len().checked_sub(TAG_LEN)?;
        if end < NONCE_LEN {
            return None;
        }
        let (head, tag) = sealed.split_at_mut(end);
        let (n, ct) = head.split_at_mut(NONCE_LEN);
        self.data
            .decrypt_in_place_detached(
                XNonce::from_slice(n),
                &blob_aad(id),
                ct,
                chacha20poly1305::Tag::from_slice(tag),
            )
            .ok()?;
        Some(NONCE_LEN..end)
    }

    /// Metadata files (index, snapshot, lock, pack header, config check) are zstd-compressed
    /// JSON sealed under the metadata key with their kind as AAD, so one kind cannot stand in
    /// for another.
    pub fn seal_meta(&self, kind: &str, json: &[u8]) -> Result<Vec<u8>> {
        // Compressed snapshot JSON still carries the vault's keys: wiped once sealed.
        let compressed = Zeroizing::new(
            zstd::bulk::compress(json, 3)
                .map_err(|_| Error::Internal("compression failed".into()))?,
        );
        seal_with(&self.meta, &compressed, &meta_aad(kind))
    }

    pub fn open_meta(&self, kind: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let compressed = open_with(&self.meta, sealed, &meta_aad(kind)).ok_or_else(|| {
            Error::Integrity(format!(
                "a {kind} file in the sync repository fails authentication (damaged, tampered \
                 or from another repository)"
            ))
        })?;
        let plain = zstd::stream::decode_all(&compressed[..]).map_err(|_| {
            Error::Integrity(format!("a {kind} file in the sync repository is malformed"))
        })?;
        Ok(Zeroizing::new(plain))
    }
}

/// Unkeyed BLAKE3 of stored (already encrypted) bytes: names packs, index and snapshot files so
/// `check --read-data` can confirm a file is complete without any key.
pub fn storage_name(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn blob_ids_depend_on_the_key_and_blobs_on_their_id() {
        let a = RepoKey::generate().derive();
        let b = RepoKey::generate().derive();
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        let id = a.blob_id(b"hello");
        let sealed = a.seal_blob(&id, b"hello").unwrap();
        assert_eq!(&a.open_blob(&id, &sealed).unwrap()[..], b"hello");
        assert!(a.open_blob(&a.blob_id(b"other"), &sealed).is_none());
        assert!(b.open_blob(&id, &sealed).is_none());
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(a.open_blob(&id, &bad).is_none());
        let mut buf = sealed.clone();
        let r = a.open_blob_in_place(&id, &mut buf).unwrap();
        assert_eq!(&buf[r], b"hello");
        for (k, i, s) in [
            (&a, id, &bad[..]),
            (&b, id, &sealed[..]),
            (&a, a.blob_id(b"other"), &sealed[..]),
            (&a, id, &sealed[..20]),
            (&a, id, &sealed[..39]),
        ] {
            let mut buf = s.to_vec();
            assert!(k.open_blob_in_place(&i, &mut buf).is_none());
            assert_eq!(buf, s, "a failed open leaves the bytes as they were");
        }
    }

    #[test]
    fn metadata_kinds_cannot_be_swapped() {
        let k = RepoKey::generate().derive();
        let s = k.seal_meta("index", b"{}").unwrap();
        assert_eq!(&k.open_meta("index", &s).unwrap()[..], b"{}");
        assert_eq!(
            k.open_meta("snapshot", &s).unwrap_err().kind(),
            clinvault_core::ErrorKind::Integrity
        );
    }
}
