//! Sign-in throttling per username, and failed attempts kept until they can be signed into the
//! audit trail. Both must work before any key is available, so they live in a small file next to
//! the vault (signin.state, owner-only). It holds usernames and times, nothing clinical. Someone
//! who can write the vault directory can reset it — but that person can also copy the vault and
//! guess offline at Argon2id's cost; throttling protects the sign-in screen at the clinic PC.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::vault_dir::{VaultDir, SIGNIN_STATE};

/// Failures allowed before delays start.
pub const FREE_ATTEMPTS: u32 = 5;
/// Consecutive failures that lock the username out for `LOCKOUT_SECONDS`.
pub const LOCKOUT_AFTER: u32 = 10;
pub const LOCKOUT_SECONDS: i64 = 15 * 60;
const MAX_PENDING: usize = 1000;
/// Failures under usernames that no account has may fill at most this part of the list, so
/// that a flood of made-up names cannot push out the failures against real accounts.
const MAX_PENDING_UNKNOWN: usize = MAX_PENDING / 2;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Failures {
    count: u32,
    last_unix: i64,
    locked_until_unix: i64,
}

/// A sign-in event that happened while nobody could sign the audit trail.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PendingEvent {
    pub at_unix: i64,
    pub username: String,
    pub device: String,
    /// "failed" or "locked_out".
    pub outcome: String,
    pub reason: String,
    /// The username is no account's (no key slot has it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown_user: bool,
}

/// What waits to be carried into the trail.
pub struct Pending {
    pub events: Vec<PendingEvent>,
    /// Failures counted for throttling that the list had no room for.
    pub not_kept: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SignInState {
    users: BTreeMap<String, Failures>,
    pending: Vec<PendingEvent>,
    #[serde(default)]
    not_kept: u64,
}

fn load(dir: &VaultDir) -> SignInState {
    // A damaged state file must not lock everyone out: start afresh (and say so in the trail).
    std::fs::read(dir.file(SIGNIN_STATE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save(dir: &VaultDir, state: &SignInState) -> Result<()> {
    let bytes = serde_json::to_vec(state)
        .map_err(|e| Error::Internal(format!("cannot encode sign-in state: {e}")))?;
    dir.write_atomic(SIGNIN_STATE, &bytes)
}

/// Seconds to wait after `count` consecutive failures before the next attempt is considered.
pub fn delay_after(count: u32) -> i64 {
    if count < FREE_ATTEMPTS {
        0
    } else {
        5i64 << (count - FREE_ATTEMPTS).min(10)
    }
}

/// Refuses an attempt that comes too soon, without evaluating the passphrase (so no KDF work).
pub fn check(dir: &VaultDir, username: &str, now_unix: i64) -> Result<()> {
    let _lock = dir.lock_signin_state()?;
    let state = load(dir);
    let Some(f) = state.users.get(username) else {
        return Ok(());
    };
    if f.locked_until_unix > now_unix {
        let minutes = (f.locked_until_unix - now_unix + 59) / 60;
        return Err(Error::Authentication(format!(
            "too many failed sign-ins: this username is locked for {minutes} more minute(s)"
        )));
    }
    let wait_until = f.last_unix + delay_after(f.count);
    if f.locked_until_unix == 0 && wait_until > now_unix {
        return Err(Error::Authentication(format!(
            "too many failed sign-ins: wait {} second(s) before trying again",
            wait_until - now_unix
        )));
    }
    Ok(())
}

/// Counts a failure; returns true when this failure started a lock-out. `known` says whether
/// the username is an account's.
pub fn record_failure(
    dir: &VaultDir,
    username: &str,
    known: bool,
    device: &str,
    reason: &str,
    now_unix: i64,
) -> Result<bool> {
    let _lock = dir.lock_signin_state()?;
    let mut state = load(dir);
    let f = state.users.entry(username.to_owned()).or_default();
    if f.locked_until_unix != 0 && f.locked_until_unix <= now_unix {
        // A lock-out that ran out starts a fresh count.
        *f = Failures::default();
    }
    f.count += 1;
    f.last_unix = now_unix;
    let locked = f.count >= LOCKOUT_AFTER && f.locked_until_unix == 0;
    if locked {
        f.locked_until_unix = now_unix + LOCKOUT_SECONDS;
    }
    let mut push = |outcome: &str, reason: &str| {
        let unknown_kept = state.pending.iter().filter(|e| e.unknown_user).count();
        let room = if state.pending.len() < MAX_PENDING {
            known || unknown_kept < MAX_PENDING_UNKNOWN
        } else if let Some(i) = state
            .pending
            .iter()
            .position(|e| e.unknown_user)
            .filter(|_| known)
        {
            // A failure against a real account pushes out the oldest one under a made-up name.
            state.pending.remove(i);
            state.not_kept += 1;
            true
        } else {
            false
        };
        if room {
            state.pending.push(PendingEvent {
                at_unix: now_unix,
                username: username.to_owned(),
                device: device.to_owned(),
                outcome: outcome.to_owned(),
                reason: reason.to_owned(),
                unknown_user: !known,
            });
        } else {
            state.not_kept += 1;
        }
    };
    push("failed", reason);
    if locked {
        push("locked_out", "too many failed sign-ins");
    }
    save(dir, &state)?;
    Ok(locked)
}

pub fn record_success(dir: &VaultDir, username: &str) -> Result<()> {
    let _lock = dir.lock_signin_state()?;
    let mut state = load(dir);
    if state.users.remove(username).is_some() {
        save(dir, &state)?;
    }
    Ok(())
}

/// The events waiting to be carried into the audit trail, oldest first, and how many more
/// failures there were than the list could keep.
pub fn pending(dir: &VaultDir) -> Result<Pending> {
    let _lock = dir.lock_signin_state()?;
    let state = load(dir);
    Ok(Pending {
        events: state.pending,
        not_kept: state.not_kept,
    })
}

/// Forgets the first `n` pending events, and `not_kept` of the failures not kept, once they are
/// committed to the audit trail.
pub fn drop_pending(dir: &VaultDir, n: usize, not_kept: u64) -> Result<()> {
    let _lock = dir.lock_signin_state()?;
    let mut state = load(dir);
    let n = n.min(state.pending.len());
    if n > 0 || not_kept > 0 {
        state.pending.drain(..n);
        state.not_kept = state.not_kept.saturating_sub(not_kept);
        save(dir, &state)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_after_five_failures_and_ten_lock_out() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = VaultDir::new(tmp.path());
        let mut now = 1_000_000;
        for i in 1..=FREE_ATTEMPTS {
            check(&dir, "amy", now).unwrap();
            assert!(!record_failure(&dir, "amy", true, "pc", "wrong passphrase", now).unwrap());
            assert_eq!(delay_after(i), if i < FREE_ATTEMPTS { 0 } else { 5 });
        }
        // The sixth attempt must wait.
        let err = check(&dir, "amy", now).unwrap_err().to_string();
        assert!(err.contains("wait 5 second"), "{err}");
        // Another username is unaffected.
        check(&dir, "bob", now).unwrap();
        let mut locked = false;
        for _ in FREE_ATTEMPTS..LOCKOUT_AFTER {
            now += delay_after(LOCKOUT_AFTER) + 1;
            check(&dir, "amy", now).unwrap();
            locked = record_failure(&dir, "amy", true, "pc", "wrong passphrase", now).unwrap();
        }
        assert!(locked);
        let err = check(&dir, "amy", now + 60).unwrap_err().to_string();
        assert!(err.contains("locked for 14 more minute"), "{err}");
        check(&dir, "amy", now + LOCKOUT_SECONDS + 1).unwrap();
        let events = pending(&dir).unwrap().events;
        assert_eq!(events.len(), LOCKOUT_AFTER as usize + 1);
        assert_eq!(events.last().unwrap().outcome, "locked_out");
        drop_pending(&dir, 3, 0).unwrap();
        assert_eq!(
            pending(&dir).unwrap().events.len(),
            LOCKOUT_AFTER as usize - 2
        );
        record_success(&dir, "amy").unwrap();
        check(&dir, "amy", now + 1).unwrap();
    }

    #[test]
    fn made_up_usernames_cannot_push_out_failures_against_real_accounts() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = VaultDir::new(tmp.path());
        // Five tries under each of 300 made-up names: no delay yet for any of them.
        for i in 0..300 {
            for _ in 0..FREE_ATTEMPTS {
                record_failure(&dir, &format!("junk{i}"), false, "pc", "wrong", 1_000).unwrap();
            }
        }
        let p = pending(&dir).unwrap();
        assert_eq!(p.events.len(), MAX_PENDING_UNKNOWN);
        assert_eq!(p.not_kept, 1500 - MAX_PENDING_UNKNOWN as u64);
        // A real account's failures are all kept, up to the list's size and past it.
        for i in 0..(MAX_PENDING as i64) {
            record_failure(&dir, "amy", true, "pc", "wrong", 2_000 + i * 10_000).unwrap();
        }
        let p = pending(&dir).unwrap();
        let amy = p.events.iter().filter(|e| e.username == "amy").count();
        assert!(amy >= MAX_PENDING - 1, "amy's failures kept: {amy}");
        assert_eq!(p.events.len(), MAX_PENDING);
        drop_pending(&dir, p.events.len(), p.not_kept).unwrap();
        let p = pending(&dir).unwrap();
        assert!(p.events.is_empty() && p.not_kept == 0);
    }
}
