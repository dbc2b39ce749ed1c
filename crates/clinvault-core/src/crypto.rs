//! The cryptographic building blocks of the key hierarchy, each a thin use of a well-kept crate:
//! Argon2id (passphrase → key-encryption key), XChaCha20-Poly1305 (wrapping private keys),
//! HPKE RFC 9180 base mode (sealing the master key to X25519 public keys), HKDF-SHA256
//! (deriving the database key and the key-file MAC key) and HMAC-SHA256 (key-file integrity).
//! docs/security-model.md gives the exact inputs of each, so the scheme can be re-implemented.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::{OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::encoding::{tuple, B64};
use crate::error::{Error, Result};

type HpkeKem = hpke::kem::X25519HkdfSha256;
type HpkeKdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// 32 secret bytes that are wiped when dropped. Deliberately neither Debug nor Clone.
pub struct Secret32(Zeroizing<[u8; 32]>);

impl Secret32 {
    pub fn random() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut());
        Secret32(bytes)
    }

    /// Takes ownership of the bytes and wipes the source slice.
    pub fn from_slice_wiping(src: &mut [u8]) -> Option<Self> {
        if src.len() != 32 {
            zeroize::Zeroize::zeroize(src);
            return None;
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(src);
        zeroize::Zeroize::zeroize(src);
        Some(Secret32(bytes))
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

/// Argon2id costs for new wraps; stored in the key file so an administrator can raise them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfCost {
    /// m = 128 MiB, t = 3, p = 1: twice RFC 9106's second recommendation in memory; about a
    /// quarter of a second in a release build here. `argon2` computes lanes sequentially, so
    /// p > 1 would cost the defender time without costing a parallel attacker more.
    pub const RECOMMENDED: KdfCost = KdfCost {
        memory_kib: 128 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// The cheapest cost: for tests and benches that are not about unlock cost. The app never
    /// chooses it for a vault (see `for_new_vaults`).
    pub const CHEAP_FOR_TESTS: KdfCost = KdfCost {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };

    /// What new vaults get. Test builds may ask for a cheap profile so suites stay fast; release
    /// builds have no such switch.
    pub fn for_new_vaults() -> KdfCost {
        #[cfg(feature = "test-hooks")]
        if std::env::var("CLINVAULT_TEST_FAST_KDF").is_ok_and(|v| v == "1") {
            return KdfCost::CHEAP_FOR_TESTS;
        }
        KdfCost::RECOMMENDED
    }

    pub fn params(&self) -> KdfParams {
        KdfParams::with_cost(self.memory_kib, self.iterations, self.parallelism)
    }
}

/// Argon2id cost parameters and salt, stored per key slot so they can be raised later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub algorithm: String,
    pub version: u32,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt: B64,
}

impl KdfParams {
    pub fn with_cost(memory_kib: u32, iterations: u32, parallelism: u32) -> Self {
        KdfParams {
            algorithm: "argon2id".into(),
            version: 0x13,
            memory_kib,
            iterations,
            parallelism,
            salt: B64(random_bytes::<16>().to_vec()),
        }
    }

    /// Same costs, fresh salt.
    pub fn fresh_salt(&self) -> Self {
        Self::with_cost(self.memory_kib, self.iterations, self.parallelism)
    }

    pub fn cost(&self) -> KdfCost {
        KdfCost {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
        }
    }

    /// The parameters as bound into associated data, so a tampered cost or salt cannot verify.
    pub fn binding(&self) -> Vec<u8> {
        tuple(&[
            self.algorithm.as_bytes(),
            &self.version.to_be_bytes(),
            &self.memory_kib.to_be_bytes(),
            &self.iterations.to_be_bytes(),
            &self.parallelism.to_be_bytes(),
            &self.salt.0,
        ])
    }
}

/// NIST SP 800-63B asks for Unicode normalisation so that the same passphrase typed on
/// different keyboards or systems yields the same bytes; NFC is what the KDF sees.
pub fn normalise_passphrase(passphrase: &SecretString) -> Zeroizing<String> {
    Zeroizing::new(passphrase.expose_secret().nfc().collect())
}

/// The most a key derivation may ask for. The costs are read from a key file or a backup's
/// header before anything authenticates them (they are bound into the check that follows),
/// so a crafted file must not make the derivation allocate gigabytes or run for hours. Far
/// above the costs ClinVault writes (`KdfCost::RECOMMENDED`: 128 MiB, 3 passes, 1 lane).
pub const MAX_KDF_MEMORY_KIB: u32 = 2 * 1024 * 1024;
pub const MAX_KDF_ITERATIONS: u32 = 64;
pub const MAX_KDF_PARALLELISM: u32 = 16;

pub fn derive_kek(passphrase: &SecretString, params: &KdfParams) -> Result<Secret32> {
    if params.algorithm != "argon2id" || params.version != 0x13 {
        return Err(Error::Incompatible(format!(
            "key slot uses an unknown key derivation ({} v{}); update ClinVault",
            params.algorithm, params.version
        )));
    }
    if params.memory_kib > MAX_KDF_MEMORY_KIB
        || params.iterations > MAX_KDF_ITERATIONS
        || params.parallelism > MAX_KDF_PARALLELISM
    {
        return Err(Error::Integrity(format!(
            "the key derivation asks for more than ClinVault ever uses ({} MiB, {} passes, {} \
             lanes); the file is damaged or was tampered with",
            params.memory_kib / 1024,
            params.iterations,
            params.parallelism
        )));
    }
    let argon_params = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|e| Error::Integrity(format!("key slot has invalid Argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let normalised = normalise_passphrase(passphrase);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(normalised.as_bytes(), &params.salt.0, out.as_mut())
        .map_err(|e| Error::Integrity(format!("key derivation failed: {e}")))?;
    Ok(Secret32(out))
}

/// A value encrypted with XChaCha20-Poly1305 under a 24-byte random nonce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wrapped {
    pub nonce: B64,
    pub ciphertext: B64,
}

pub fn wrap(key: &Secret32, plaintext: &[u8], aad: &[u8]) -> Result<Wrapped> {
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let nonce = random_bytes::<24>();
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::Internal("encryption failed".into()))?;
    Ok(Wrapped {
        nonce: B64(nonce.to_vec()),
        ciphertext: B64(ciphertext),
    })
}

/// None means the key or the associated data is wrong, or the ciphertext was altered;
/// callers decide which of those the situation implies.
pub fn unwrap(key: &Secret32, wrapped: &Wrapped, aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if wrapped.nonce.0.len() != 24 {
        return None;
    }
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    cipher
        .decrypt(
            XNonce::from_slice(&wrapped.nonce.0),
            Payload {
                msg: &wrapped.ciphertext.0,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// HPKE (RFC 9180) base-mode output: the encapsulated key and the ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub enc: B64,
    pub ciphertext: B64,
}

pub fn x25519_public(secret: &Secret32) -> Result<[u8; 32]> {
    let sk = <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(secret.expose())
        .map_err(|_| Error::Internal("invalid X25519 private key".into()))?;
    let pk = HpkeKem::sk_to_pk(&sk).to_bytes();
    let mut out = [0u8; 32];
    out.copy_from_slice(&pk);
    Ok(out)
}

pub fn seal(public: &[u8; 32], info: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Sealed> {
    let pk = <HpkeKem as hpke::Kem>::PublicKey::from_bytes(public)
        .map_err(|_| Error::Integrity("a key slot holds an invalid public key".into()))?;
    let (enc, ciphertext) = hpke::single_shot_seal::<HpkeAead, HpkeKdf, HpkeKem, _>(
        &OpModeS::Base,
        &pk,
        info,
        plaintext,
        aad,
        // hpke 0.13 speaks rand_core 0.9; the OS generator is the same either way.
        &mut rand_core_09::TryRngCore::unwrap_err(rand_core_09::OsRng),
    )
    .map_err(|_| Error::Internal("sealing failed".into()))?;
    Ok(Sealed {
        enc: B64(enc.to_bytes().to_vec()),
        ciphertext: B64(ciphertext),
    })
}

pub fn open(
    secret: &Secret32,
    sealed: &Sealed,
    info: &[u8],
    aad: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let sk = <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(secret.expose()).ok()?;
    let enc = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(&sealed.enc.0).ok()?;
    hpke::single_shot_open::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeR::Base,
        &sk,
        &enc,
        info,
        &sealed.ciphertext.0,
        aad,
    )
    .ok()
    .map(Zeroizing::new)
}

pub fn hkdf_sha256(ikm: &Secret32, salt: &[u8], info: &[u8]) -> Result<Secret32> {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm.expose());
    let mut out = Zeroizing::new([0u8; 32]);
    hk.expand(info, out.as_mut())
        .map_err(|_| Error::Internal("key derivation failed".into()))?;
    Ok(Secret32(out))
}

pub fn hmac_sha256(key: &Secret32, data: &[u8]) -> Result<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose())
        .map_err(|_| Error::Internal("MAC key rejected".into()))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().into())
}

pub fn hmac_sha256_verify(key: &Secret32, data: &[u8], tag: &[u8]) -> Result<bool> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose())
        .map_err(|_| Error::Internal("MAC key rejected".into()))?;
    mac.update(data);
    Ok(mac.verify_slice(tag).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams::with_cost(8, 1, 1)
    }

    #[test]
    fn a_derivation_asking_for_more_than_clinvault_uses_is_refused_before_it_runs() {
        for (m, t, p) in [(u32::MAX, 1, 1), (8, u32::MAX, 1), (8, 1, 1 << 20)] {
            let e = derive_kek(&SecretString::from("x"), &KdfParams::with_cost(m, t, p))
                .err()
                .unwrap();
            assert_eq!(e.kind(), crate::ErrorKind::Integrity, "{e}");
            assert!(e.to_string().contains("tampered"), "{e}");
        }
        let r = KdfCost::RECOMMENDED;
        assert!(r.memory_kib <= MAX_KDF_MEMORY_KIB && r.iterations <= MAX_KDF_ITERATIONS);
    }

    #[test]
    fn kek_depends_on_passphrase_salt_and_cost() {
        let p = fast();
        let a = derive_kek(&SecretString::from("correct horse"), &p).unwrap();
        let b = derive_kek(&SecretString::from("correct horse"), &p).unwrap();
        assert_eq!(a.expose(), b.expose());
        let c = derive_kek(&SecretString::from("correct horsE"), &p).unwrap();
        assert_ne!(a.expose(), c.expose());
        let d = derive_kek(&SecretString::from("correct horse"), &p.fresh_salt()).unwrap();
        assert_ne!(a.expose(), d.expose());
        let mut costlier = p.clone();
        costlier.iterations = 2;
        let e = derive_kek(&SecretString::from("correct horse"), &costlier).unwrap();
        assert_ne!(a.expose(), e.expose());
    }

    #[test]
    fn composed_and_decomposed_unicode_derive_the_same_key() {
        let p = fast();
        let composed = derive_kek(&SecretString::from("caf\u{e9} au lait"), &p).unwrap();
        let decomposed = derive_kek(&SecretString::from("cafe\u{301} au lait"), &p).unwrap();
        assert_eq!(composed.expose(), decomposed.expose());
    }

    #[test]
    fn wrap_detects_wrong_key_aad_and_tampering() {
        let k = Secret32::random();
        let w = wrap(&k, b"secret", b"ctx").unwrap();
        assert_eq!(unwrap(&k, &w, b"ctx").unwrap().as_slice(), b"secret");
        assert!(unwrap(&Secret32::random(), &w, b"ctx").is_none());
        assert!(unwrap(&k, &w, b"other").is_none());
        let mut t = w.clone();
        t.ciphertext.0[0] ^= 1;
        assert!(unwrap(&k, &t, b"ctx").is_none());
    }

    #[test]
    fn hpke_round_trip_binds_info_and_aad() {
        let sk = Secret32::random();
        let pk = x25519_public(&sk).unwrap();
        let s = seal(&pk, b"info", b"aad", b"master key").unwrap();
        assert_eq!(
            open(&sk, &s, b"info", b"aad").unwrap().as_slice(),
            b"master key"
        );
        assert!(open(&sk, &s, b"info2", b"aad").is_none());
        assert!(open(&sk, &s, b"info", b"aad2").is_none());
        assert!(open(&Secret32::random(), &s, b"info", b"aad").is_none());
    }

    #[test]
    fn hkdf_separates_contexts() {
        let ikm = Secret32::random();
        let a = hkdf_sha256(&ikm, b"salt", b"one").unwrap();
        let b = hkdf_sha256(&ikm, b"salt", b"two").unwrap();
        assert_ne!(a.expose(), b.expose());
        let tag = hmac_sha256(&a, b"data").unwrap();
        assert!(hmac_sha256_verify(&a, b"data", &tag).unwrap());
        assert!(!hmac_sha256_verify(&b, b"data", &tag).unwrap());
    }
}
