//! Ed25519 signatures of audit entries, with their nonces made ahead of time.
//!
//! Every operation appends a signed entry inside its own transaction, so the signature sits on
//! the write path of every operation. Most of an Ed25519 signature's cost is the fixed-base
//! multiplication `R = r·B`, and `R` depends on nothing but the nonce `r`. When `r` is drawn at
//! random instead of derived from the message (RFC 8032 §5.1.6 step 2), `R` can be computed
//! before the message exists: a worker thread keeps a few `(r, R)` pairs ready, and signing an
//! entry is then two hashes and one multiply-add of scalars (`k = SHA-512(R ‖ A ‖ M)`,
//! `s = r + k·a`, signature `R ‖ s`: RFC 8032 §5.1.6 steps 4–6, unchanged). The signature is
//! an ordinary Ed25519 signature: every RFC 8032 verifier, ours and independent ones, accepts
//! it.
//!
//! Randomised nonces are what Schnorr signatures were first defined with, what RFC 8032's
//! verifiers cannot tell apart, and what FROST (RFC 9591 §4.1, `nonce_generate`) makes ahead of
//! the message in the same way. What keeps them safe, and how this module does it:
//! * never used twice: a nonce leaves the pool by value, its slot is wiped as it leaves, and it
//!   is wiped after its one signature; nothing can copy it (no `Clone`);
//! * unpredictable and unbiased: 64 bytes of SHA-512 reduced modulo ℓ (bias < 2⁻²⁵⁸), over a
//!   per-pool random seed, a counter and 32 fresh bytes from the operating system's random
//!   source, so even a random source that began repeating itself mid-session would not repeat
//!   a nonce (the hedging RFC 9591 §4.1 asks for, with the pool's seed in the place of the key:
//!   the worker never holds a signing key);
//! * a nonce not yet used is a random number that says nothing about any key; only a used one
//!   does, together with its signature, which is why the used one is wiped at once.
//!
//! When the pool is empty (a burst of operations, the worker not started) the entry is signed
//! the ordinary deterministic way, so signing never waits. docs/security-model.md §17 gives
//! the reasoning in full.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::hazmat::ExpandedSecretKey;
use ed25519_dalek::{Signature, Signer, SigningKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

/// How many nonces wait ready: more than a burst of interactive operations needs, few enough
/// that a one-shot command wastes little making them.
const READY: usize = 64;

/// The worker is woken only when this few are left, so that it runs once per many entries:
/// waking a thread costs a system call (and in a virtual machine an interrupt between
/// processors), which on every entry would cost about what the nonce saves.
const REFILL_AT: usize = READY / 4;

/// One nonce `r` and its commitment `R = r·B`, made before the message is known.
struct Nonce {
    r: Scalar,
    big_r: [u8; 32],
}

impl Zeroize for Nonce {
    fn zeroize(&mut self) {
        self.r.zeroize();
        self.big_r.zeroize();
    }
}

impl Drop for Nonce {
    fn drop(&mut self) {
        self.zeroize();
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    ready: Vec<Nonce>,
    closed: bool,
    /// The worker sleeps until woken (the pool was full when it last looked).
    worker_asleep: bool,
}

/// Nonces made ahead by a worker thread for one session's audit entries. Dropping it stops
/// the worker and wipes what it made.
pub(crate) struct NoncePool {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl NoncePool {
    /// Starts the worker. If no thread can be started, the pool stays empty and every entry is
    /// signed the deterministic way.
    pub(crate) fn start() -> NoncePool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ready: Vec::with_capacity(READY),
                closed: false,
                worker_asleep: false,
            }),
            wake: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("audit-nonces".into())
            .spawn(move || make_nonces(&theirs))
            .ok();
        NoncePool { shared, worker }
    }

    /// A ready nonce, if one is; never waits for the worker.
    fn take(&self) -> Option<Nonce> {
        let mut state = self.shared.state.try_lock().ok()?;
        let slot = state.ready.last_mut()?;
        // Moved out by copy, then the slot is wiped: no second copy of a nonce about to be
        // used stays behind in the pool's memory.
        let nonce = Nonce {
            r: slot.r,
            big_r: slot.big_r,
        };
        slot.zeroize();
        state.ready.pop();
        let wake = state.worker_asleep && state.ready.len() <= REFILL_AT;
        if wake {
            state.worker_asleep = false;
        }
        drop(state);
        if wake {
            self.shared.wake.notify_one();
        }
        Some(nonce)
    }

    /// How many nonces are ready (tests).
    #[cfg(test)]
    fn ready(&self) -> usize {
        self.shared.state.lock().map(|s| s.ready.len()).unwrap_or(0)
    }
}

impl Drop for NoncePool {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.closed = true;
            state.ready.clear(); // each one wiped by its Drop
        }
        self.shared.wake.notify_all();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The worker: keeps `READY` nonces made until the pool is dropped. The multiplication runs
/// outside the lock, so taking a nonce never waits for one being made.
fn make_nonces(shared: &Shared) {
    let mut seed = Zeroizing::new([0u8; 32]);
    if OsRng.try_fill_bytes(seed.as_mut()).is_err() {
        return;
    }
    let mut counter: u64 = 0;
    loop {
        {
            let Ok(mut state) = shared.state.lock() else {
                return;
            };
            while state.ready.len() >= READY && !state.closed {
                state.worker_asleep = true;
                state = match shared.wake.wait(state) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
            if state.closed {
                return;
            }
        }
        counter += 1;
        let Some(mut nonce) = new_nonce(&seed, counter) else {
            return;
        };
        let Ok(mut state) = shared.state.lock() else {
            return;
        };
        if state.closed {
            return;
        }
        state.ready.push(Nonce {
            r: nonce.r,
            big_r: nonce.big_r,
        });
        nonce.zeroize();
    }
}

/// `r = SHA-512("clinvault/v1/audit-nonce" ‖ seed ‖ counter ‖ 32 fresh random bytes) mod ℓ`,
/// `R = r·B`. None if the operating system's random source fails.
fn new_nonce(seed: &[u8; 32], counter: u64) -> Option<Nonce> {
    let mut fresh = Zeroizing::new([0u8; 32]);
    OsRng.try_fill_bytes(fresh.as_mut()).ok()?;
    let mut wide = Zeroizing::new([0u8; 64]);
    wide.copy_from_slice(
        &Sha512::new()
            .chain_update(b"clinvault/v1/audit-nonce")
            .chain_update(seed)
            .chain_update(counter.to_be_bytes())
            .chain_update(fresh.as_ref())
            .finalize(),
    );
    let r = Scalar::from_bytes_mod_order_wide(&wide);
    let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
    Some(Nonce { r, big_r })
}

/// Signs `message` (an entry's hash) with `key`: with a nonce from `pool` when one is ready,
/// else deterministically (RFC 8032). Either way the result is a standard Ed25519 signature.
pub(crate) fn sign(key: &SigningKey, pool: Option<&NoncePool>, message: &[u8]) -> Signature {
    match pool.and_then(NoncePool::take) {
        Some(nonce) => sign_with(key, nonce, message),
        None => key.sign(message),
    }
}

/// RFC 8032 §5.1.6 steps 4–6 with a nonce made ahead: `k = SHA-512(R ‖ A ‖ M) mod ℓ`,
/// `s = r + k·a mod ℓ`, signature `R ‖ s`. The nonce is consumed (and wiped) here.
fn sign_with(key: &SigningKey, nonce: Nonce, message: &[u8]) -> Signature {
    let expanded = ExpandedSecretKey::from(key.as_bytes());
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(nonce.big_r)
            .chain_update(key.verifying_key().as_bytes())
            .chain_update(message),
    );
    let s = k * expanded.scalar + nonce.r;
    Signature::from_components(nonce.big_r, s.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    fn wait_for_ready(pool: &NoncePool, n: usize) {
        let start = Instant::now();
        while pool.ready() < n {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the worker made {} nonces of {n} in 10 s",
                pool.ready()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn pool_signatures_verify_strictly_and_never_repeat_a_nonce() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let public = key.verifying_key();
        let pool = NoncePool::start();
        let mut commitments = HashSet::new();
        let mut from_pool = 0;
        for i in 0..200u32 {
            wait_for_ready(&pool, 1);
            let message = i.to_be_bytes();
            let sig = sign(&key, Some(&pool), &message);
            public.verify_strict(&message, &sig).unwrap();
            // The deterministic signature of the same message has another R: this one came
            // from the pool.
            if sig != key.sign(&message) {
                from_pool += 1;
            }
            assert!(commitments.insert(sig.r_bytes().to_owned()), "R repeated");
            // A signature made for one message does not pass for another.
            assert!(public.verify_strict(&(i + 1).to_be_bytes(), &sig).is_err());
        }
        assert_eq!(from_pool, 200);
    }

    #[test]
    fn without_a_ready_nonce_the_signature_is_rfc_8032_deterministic() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        assert_eq!(sign(&key, None, b"entry"), key.sign(b"entry"));
    }

    #[test]
    fn a_burst_larger_than_the_pool_never_waits_and_the_pool_refills() {
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let pool = NoncePool::start();
        wait_for_ready(&pool, READY);
        // A burst larger than the pool: nothing waits, the rest are signed deterministically.
        for i in 0..(READY as u32 * 2) {
            let sig = sign(&key, Some(&pool), &i.to_be_bytes());
            key.verifying_key()
                .verify_strict(&i.to_be_bytes(), &sig)
                .unwrap();
        }
        // Woken when three quarters were used, the worker makes them again.
        wait_for_ready(&pool, REFILL_AT + 1);
        let sig = sign(&key, Some(&pool), b"after the burst");
        assert_ne!(
            sig,
            key.sign(b"after the burst"),
            "signed from the refilled pool"
        );
    }

    #[test]
    fn dropping_the_pool_stops_its_worker() {
        let pool = NoncePool::start();
        wait_for_ready(&pool, 1);
        let shared = Arc::clone(&pool.shared);
        drop(pool);
        // The worker held the other reference; it has returned and let go of it.
        assert_eq!(Arc::strong_count(&shared), 1);
        assert!(shared.state.lock().unwrap().ready.is_empty());
    }
}
