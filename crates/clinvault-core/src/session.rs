//! Sessions and the one gate. A session is an authenticated user with the vault unlocked; every
//! operation goes through `Session::gate`, which checks that the session is still active (idle
//! lock, absolute timeout), that the user's role allows the operation, and writes the audit entry
//! in the same transaction as the operation — so an operation without its entry cannot commit.
//! Denied attempts and failures are recorded too.

use std::sync::Arc;

use rusqlite::{params, Transaction};
use secrecy::SecretString;
use serde::Serialize;

use crate::audit::{self, Author, Event, Outcome};
use crate::clock::{rfc3339, Clock};
use crate::error::{Error, ErrorKind, Result};
use crate::permissions::{self, Permission};
use crate::policy::Policy;
use crate::throttle;
use crate::two_factor;
use crate::users::{self, UserRecord};
use crate::vault::Vault;
use crate::vault_dir::VaultDir;

/// What an operation needs beyond a signed-in, active session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any signed-in user acting on their own account.
    SignedIn,
    Permission(Permission),
}

/// What the gate's check inside an operation's transaction found.
enum Verdict {
    Allowed,
    /// The account's role or status is no longer the one the session holds.
    Stale,
    Refused(String),
}

/// The permission that actions of these families always need, whoever asks the gate: a front
/// end cannot record a backup or sync run (which the app trusts, e.g. for "last good backup")
/// under a weaker check.
pub(crate) fn reserved_need(action: &str) -> Option<Need> {
    if action.starts_with("backup.") {
        Some(Need::Permission(Permission::BackupManage))
    } else if action.starts_with("sync.") {
        Some(Need::Permission(Permission::SyncManage))
    } else {
        None
    }
}

/// Refuses to run `event` under `need` when its action is reserved to another permission.
pub(crate) fn check_reserved(need: Need, event: &Event) -> Result<()> {
    match reserved_need(&event.action) {
        Some(required) if required != need => Err(Error::Internal(format!(
            "{} can only run with the permission it needs",
            event.action
        ))),
        _ => Ok(()),
    }
}

/// Why `role` may not do what `need` asks, if it may not; read on `conn`, so that inside a
/// transaction the answer holds until it commits.
fn role_refusal(conn: &rusqlite::Connection, role: &str, need: Need) -> Result<Option<String>> {
    let Need::Permission(p) = need else {
        return Ok(None);
    };
    let role = permissions::load(conn, role)?
        .ok_or_else(|| Error::Integrity(format!("role {role:?} does not exist")))?;
    Ok((!role.allows(p)).then(|| format!("your role ({}) may not {}", role.name, p.describe())))
}

/// How thoroughly `Session::write_checkpoint_after` anchors the trail's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Anchoring {
    /// Compares with the file and the keyring copy, waits for the lock and the keyring.
    Full,
    /// For a session's end and the periodic anchoring, which must not keep the app waiting:
    /// the file only, and no wait for the lock.
    Quick,
    /// An administrator's decision to anchor the trail as it now is (`audit_reanchor`, after a
    /// deliberate restore): replaces the file and the keyring copy without comparing, even with
    /// a checkpoint that vouches for more. The replaced one is recorded in the trail first.
    Anew,
}

/// How often `Session::check` anchors the trail's end of an open session.
const ANCHOR_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_secs(10 * 60);

/// Operations a user who must enrol in two-factor sign-in may still do.
const ENROLMENT_ACTIONS: &[&str] = &["2fa.enroll", "2fa.confirm", "session.lock"];

pub struct SessionConfig {
    /// Where the session runs, e.g. "cli@reception-pc"; recorded in the audit trail.
    pub device: String,
    pub clock: Arc<dyn Clock>,
}

/// A name for this computer and front end, for the audit trail and sign-in history.
pub fn device_name(front_end: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{front_end}@{host}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Active,
    Locked,
    Expired,
}

pub enum SignIn {
    Complete(Box<Session>),
    /// The passphrase was right; an authenticator or recovery code is still needed.
    NeedsSecondFactor(Box<PendingSignIn>),
}

/// Passphrase verified, second factor outstanding. Holds the unlocked vault but offers nothing
/// but `complete`; dropping it locks the vault again.
pub struct PendingSignIn {
    vault: Vault,
    cfg: SessionConfig,
}

pub struct Session {
    dir: VaultDir,
    vault: Option<Vault>,
    user: UserRecord,
    device: String,
    clock: Arc<dyn Clock>,
    signed_in_at: jiff::Timestamp,
    last_activity: jiff::Timestamp,
    /// When this session last anchored the trail's end outside the database.
    anchored_at: jiff::Timestamp,
    policy: Policy,
    must_enrol_2fa: bool,
    expired: bool,
    /// When this session last proved the second factor (sign-in or re-authentication).
    second_factor_at: Option<jiff::Timestamp>,
    /// Things the person should be told after signing in (e.g. the device could not be
    /// remembered because no keyring service runs).
    notices: Vec<String>,
    /// The bulk-access rule's count, carried from one operation to the next.
    recent_views: crate::alerts::RecentViews,
    /// Wrong passphrases given to this unlocked session since the last right one.
    wrong_passphrases: u32,
    /// Signing nonces made ahead for the gate's entries (see `audit_signing`).
    nonces: crate::audit_signing::NoncePool,
}

/// Wrong passphrases an unlocked session takes (re-authentication, passphrase change) before
/// it locks. Unlocking needs the passphrase and goes through the sign-in throttle, so someone
/// at a session left open gets this many guesses, not guesses at Argon2id's pace.
const WRONG_PASSPHRASES_BEFORE_LOCK: u32 = 3;

fn unix(ts: jiff::Timestamp) -> i64 {
    ts.as_second()
}

/// Counts a failed attempt and adds the lock-out notice to the message when it starts one.
fn fail(
    dir: &VaultDir,
    (username, known): (&str, bool),
    device: &str,
    reason: &str,
    now: i64,
    err: Error,
) -> Error {
    match throttle::record_failure(dir, username, known, device, reason, now) {
        Ok(true) => Error::Authentication(format!(
            "{err}; too many failed sign-ins: this username is now locked for {} minutes",
            throttle::LOCKOUT_SECONDS / 60
        )),
        Ok(false) => err,
        Err(e) => e,
    }
}

/// How a failed sign-in under text that is no valid username is counted and recorded.
pub const NOT_A_USERNAME: &str = "(not a valid username)";

impl Session {
    pub fn sign_in(
        dir: &VaultDir,
        username: &str,
        passphrase: &SecretString,
        cfg: SessionConfig,
    ) -> Result<SignIn> {
        // The vault must exist before anything is counted against a username.
        let key_file = crate::keyfile::KeyFile::read(dir)?;
        // What was typed is recorded only when it could be a username: text that cannot be
        // (perhaps a passphrase typed into the wrong field, or control characters meant for a
        // terminal or a spreadsheet) is counted and recorded under one placeholder.
        let throttle_name =
            users::normalise_username(username).unwrap_or_else(|_| NOT_A_USERNAME.to_owned());
        let now = unix(cfg.clock.now());
        throttle::check(dir, &throttle_name, now)?;
        let vault = match Vault::unlock(dir, username, passphrase) {
            Ok(v) => v,
            Err(e) if e.kind() == ErrorKind::Authentication => {
                // Whether an account has this name (a key slot does) decides only how the
                // failure is kept for the trail, never the answer given.
                let known = key_file
                    .body
                    .slots
                    .iter()
                    .any(|s| s.username == throttle_name);
                return Err(fail(
                    dir,
                    (&throttle_name, known),
                    &cfg.device,
                    "wrong passphrase or disabled account",
                    now,
                    e,
                ));
            }
            Err(e) => return Err(e),
        };
        let has_2fa = two_factor::is_enabled(vault.conn(), vault.user().id)?;
        if has_2fa && !two_factor::device_is_trusted(&vault, unix(cfg.clock.now())) {
            return Ok(SignIn::NeedsSecondFactor(Box::new(PendingSignIn {
                vault,
                cfg,
            })));
        }
        // The trail says when a remembered device stood in for the code.
        let method = if has_2fa {
            "trusted_device"
        } else {
            "passphrase"
        };
        Ok(SignIn::Complete(Box::new(Session::start(
            dir, vault, cfg, method,
        )?)))
    }

    /// Signs in where a second factor, if required, is already at hand (CLI and tests).
    pub fn sign_in_with(
        dir: &VaultDir,
        username: &str,
        passphrase: &SecretString,
        code: Option<&str>,
        cfg: SessionConfig,
    ) -> Result<Session> {
        match Session::sign_in(dir, username, passphrase, cfg)? {
            SignIn::Complete(s) => Ok(*s),
            SignIn::NeedsSecondFactor(p) => match code {
                Some(code) => p.complete(code, false),
                None => Err(Error::Authentication(
                    "an authenticator code is required for this account".into(),
                )),
            },
        }
    }

    fn start(
        dir: &VaultDir,
        mut vault: Vault,
        cfg: SessionConfig,
        method: &str,
    ) -> Result<Session> {
        let now = cfg.clock.now();
        let username = vault.user().username.clone();
        throttle::record_success(dir, &username)?;
        let policy = Policy::load(vault.conn())?;
        let has_2fa = two_factor::is_enabled(vault.conn(), vault.user().id)?;
        let must_enrol_2fa = policy.requires_2fa(&vault.user().role) && !has_2fa;
        // Before anything is appended: a planted trigger would make every append fail.
        repair_triggers(&mut vault, &cfg.device, now)?;
        carry_in_pending_events(dir, &mut vault, &cfg.device, &policy, now)?;
        let user = vault.user().clone();
        let mut session = Session {
            dir: dir.clone(),
            vault: Some(vault),
            user,
            device: cfg.device,
            clock: cfg.clock,
            signed_in_at: now,
            last_activity: now,
            anchored_at: now,
            policy,
            must_enrol_2fa,
            expired: false,
            // A remembered device is not a fresh second factor.
            second_factor_at: (!matches!(method, "passphrase" | "trusted_device")).then_some(now),
            notices: Vec::new(),
            recent_views: Default::default(),
            wrong_passphrases: 0,
            nonces: crate::audit_signing::NoncePool::start(),
        };
        let event = Event::new("signin")
            .target("user", session.user.id)
            .detail("method", method)
            .detail("must_enrol_2fa", must_enrol_2fa);
        let hours_policy = session.policy.clone();
        session.write_unchecked(event, |tx, s| {
            tx.execute(
                "INSERT INTO signin_history (user_id, username, at, device, outcome, detail)
                 VALUES (?1, ?2, ?3, ?4, 'ok', ?5)",
                params![s.0, s.1, s.2, s.3, method],
            )?;
            crate::alerts::check_hours(tx, &hours_policy, s.1, "signed in", now)
        })?;
        // A rotation finished during unlock (after a crash, or a revocation that had to wait)
        // is recorded now, and the checkpoint re-anchored under the new integrity key.
        let rotated_from = session.vault_mut()?.take_rotation();
        let audited_epoch: i64 =
            rusqlite::OptionalExtension::optional(session.vault()?.conn().query_row(
                "SELECT CAST(value AS INTEGER) FROM vault_meta WHERE key = 'audited_epoch'",
                [],
                |r| r.get(0),
            ))?
            .unwrap_or(1);
        if i64::try_from(session.vault()?.key_epoch()).unwrap_or(i64::MAX) > audited_epoch {
            session.record_rotation(
                Event::new("key.rotate").detail("reason", "completed at sign-in"),
            )?;
        }
        // The first sign-in into a restored vault is the first moment anyone can sign the
        // restore into its trail.
        if let Some(restored) = crate::snapshot::take_restore_marker(dir) {
            session.record(restored)?;
            crate::snapshot::clear_restore_marker(dir);
        }
        session.write_checkpoint_after(rotated_from.as_ref(), Anchoring::Full)?;
        session.note_anchoring()?;
        session.rotate_if_due()?;
        Ok(session)
    }

    pub fn user(&self) -> &UserRecord {
        &self.user
    }

    /// After an anchoring: keeps in the key file that the trail was anchored and, once the
    /// checkpoint carries this epoch's integrity MAC, that an earlier epoch's no longer stands
    /// (`Vault::mark_trail_anchored`).
    pub(crate) fn note_anchoring(&mut self) -> Result<()> {
        let rekeyed = match crate::checkpoint::read_file(&self.dir) {
            Ok(None) => return Ok(()),
            Ok(Some(cp)) => {
                let vault = self.vault()?;
                cp.mac_epoch == Some(vault.key_epoch()) && cp.verify_mac(&vault.integrity_key()?)
            }
            Err(_) => false,
        };
        match self.vault_mut()?.mark_trail_anchored(rekeyed) {
            // Keys changed by another program meanwhile: the next sign-in marks it.
            Err(e) if e.kind() == ErrorKind::Busy => Ok(()),
            other => other,
        }
    }

    /// Anchors the current end of the trail outside the database (see `checkpoint`). The
    /// existing checkpoint is checked first: when the trail no longer contains what it vouched
    /// for, it is kept as evidence (not overwritten) and an alert is raised. `previous_ik` is the
    /// integrity key the existing checkpoint was made with, when a rotation just replaced it.
    ///
    /// Under the checkpoint lock the stored checkpoint is read before the trail's end, so a
    /// checkpoint another process wrote is never newer than the end this one sees. The keyring
    /// (whose service can keep a call waiting for seconds) is read before the lock is taken and
    /// written after it is released, only forward (never over a copy that vouches for more), so
    /// nobody waits on the lock for the keyring. `Quick` anchoring (a session's end, the
    /// periodic anchoring) does not wait for the lock if another program holds it and leaves the
    /// keyring alone: it never compared with the keyring copy, so it must not replace what may
    /// be the evidence of a rollback.
    pub(crate) fn write_checkpoint_after(
        &self,
        previous_ik: Option<&crate::crypto::Secret32>,
        how: Anchoring,
    ) -> Result<()> {
        use crate::checkpoint::{self, Checkpoint};
        let vault = self.vault()?;
        let conn = vault.conn();
        let ik = vault.integrity_key()?;
        let now = rfc3339(self.clock.now());
        let origin = checkpoint::origin(&vault.vault_id().to_string());
        let keyring_copy = match how {
            Anchoring::Full => checkpoint::read_keyring(&origin),
            Anchoring::Quick | Anchoring::Anew => None,
        };
        let anchoring = match how {
            Anchoring::Full | Anchoring::Anew => self.dir.lock_checkpoint()?,
            Anchoring::Quick => match self.dir.try_lock_checkpoint()? {
                Some(lock) => lock,
                // Another program is anchoring this very moment; the next anchoring compares.
                None => return Ok(()),
            },
        };
        let epoch = vault.mac_epoch();
        let stored =
            crate::audit_verify::stored_checkpoint(conn, &self.dir, &ik, epoch, keyring_copy);
        let last: Option<(i64, Vec<u8>)> = rusqlite::OptionalExtension::optional(conn.query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ))?;
        let Some((mut seq, mut hash)) = last else {
            return Ok(());
        };
        // About the trail, not about whoever happened to find the mismatch: any administrator
        // may acknowledge it, including the one who found it.
        let alert = |summary: &str| -> Result<()> {
            crate::alerts::raise_once_per_hour(
                conn,
                crate::alerts::CHECKPOINT,
                &now,
                None,
                summary,
                serde_json::json!({ "found_by": self.user.username }),
                self.clock.now(),
            )
        };
        let keys = crate::audit_verify::trusted_keys(conn, &ik)?;
        let mut replacing = None;
        match stored {
            _ if how == Anchoring::Anew => {}
            Ok(Some(cp))
                if crate::audit_verify::checkpoint_authentic(&keys, &ik, epoch, &cp)
                    || previous_ik.is_some_and(|k| cp.verify_mac(k)) =>
            {
                if crate::audit_verify::trail_disagrees(conn, &cp)? {
                    return alert(
                        "the audit trail no longer matches its checkpoint: entries were removed or rewritten; the checkpoint is kept as evidence",
                    );
                }
                if cp.size == seq && how == Anchoring::Quick {
                    // It already vouches for this end.
                    return Ok(());
                }
            }
            Ok(Some(_)) | Err(_) => {
                alert("the audit checkpoint outside the database was not authentic; a new one was written, and audit verification reports this until an administrator anchors the trail anew")?;
                replacing = Some("not authentic");
            }
            Ok(None) => {
                // A vault that was anchored before, or whose trail shows an ended session,
                // had a checkpoint: one wiped trail looks like a new vault but for the key
                // file's mark.
                let closed_before: bool =
                    conn.query_row(audit::ANY_SESSION_ENDED_SQL, [], |r| r.get(0))?;
                if closed_before || vault.trail_was_anchored() {
                    alert("the audit checkpoint outside the database was missing; a new one was written, and audit verification reports this until an administrator anchors the trail anew")?;
                    replacing = Some("missing");
                }
            }
        }
        if let Some(reason) = replacing {
            // The alert lives in a table anyone with the DB key can edit; the trail itself
            // keeps, signed, that the anchor was replaced, and the new checkpoint covers it.
            (seq, hash) = self.record_checkpoint_replaced(conn, reason, &now)?;
        }
        let head: [u8; 32] = hash
            .try_into()
            .map_err(|_| Error::Integrity("an audit entry has a malformed hash".into()))?;
        let cp = Checkpoint::sign(
            checkpoint::origin(&vault.vault_id().to_string()),
            seq,
            head,
            &self.user.id.to_string(),
            vault.user_keys().signing_key(),
            Some((&ik, epoch.current)),
        )?;
        checkpoint::write_file(&self.dir, &cp)?;
        drop(anchoring);
        let forward = || checkpoint::read_keyring(&origin).is_none_or(|k| k.size < cp.size);
        if how == Anchoring::Anew || (how == Anchoring::Full && forward()) {
            checkpoint::write_keyring(&cp);
        }
        Ok(())
    }

    /// Appends `audit.checkpoint_replaced` (why, and who replaced it) and returns the trail's
    /// new end.
    fn record_checkpoint_replaced(
        &self,
        conn: &rusqlite::Connection,
        reason: &str,
        now: &str,
    ) -> Result<(i64, Vec<u8>)> {
        let vault = self.vault()?;
        let id = self.user.id.to_string();
        let author = Author {
            actor_id: Some(id.clone()),
            actor_name: &self.user.username,
            device: &self.device,
            signer_id: id,
            signer: vault.user_keys().signing_key(),
            nonces: None,
        };
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        let event = Event::new("audit.checkpoint_replaced").detail("reason", reason);
        let seq = audit::append(&tx, now, &author, &event)?;
        let hash: Vec<u8> =
            tx.query_row("SELECT hash FROM audit_log WHERE seq = ?1", [seq], |r| {
                r.get(0)
            })?;
        tx.commit()?;
        Ok((seq, hash))
    }

    pub(crate) fn write_checkpoint(&self) -> Result<()> {
        self.write_checkpoint_after(None, Anchoring::Full)
    }

    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn must_enrol_2fa(&self) -> bool {
        self.must_enrol_2fa
    }

    pub fn dir(&self) -> &VaultDir {
        &self.dir
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub fn state(&self) -> SessionState {
        if self.expired {
            SessionState::Expired
        } else if self.vault.is_none() {
            SessionState::Locked
        } else {
            SessionState::Active
        }
    }

    fn idle_limit(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_mins(i64::from(self.policy.idle_lock_minutes))
    }

    fn absolute_limit(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_hours(i64::from(self.policy.session_hours))
    }

    /// Applies the idle lock and the absolute timeout by the wall clock (time asleep counts).
    fn enforce_time_limits(&mut self) -> Result<()> {
        let now = self.clock.now();
        if now.duration_since(self.signed_in_at) >= self.absolute_limit() {
            self.close("session.expired", "absolute session length reached");
            self.expired = true;
        } else if self.vault.is_some()
            && now.duration_since(self.last_activity) >= self.idle_limit()
        {
            self.close("session.lock", "idle");
        }
        match self.state() {
            SessionState::Active => Ok(()),
            SessionState::Locked => Err(Error::SessionLocked(
                "the session is locked; unlock with your passphrase".into(),
            )),
            SessionState::Expired => Err(Error::SessionLocked(
                "the session has expired; sign in again".into(),
            )),
        }
    }

    /// Remembers this device for the user (the token in the OS keyring, its hash in the vault),
    /// recorded as `device.remember` in the same transaction as the hash.
    fn remember_this_device(&mut self) -> Result<()> {
        let now = self.clock.now();
        let remembered = crate::device_trust::remember(self.vault()?, now.as_second())?;
        let user_id = self.user.id.to_string();
        let at = rfc3339(now);
        self.record_with(
            Event::new("device.remember")
                .target("user", &user_id)
                .detail("days", remembered.days),
            |tx| remembered.record(tx, &user_id, &at),
        )
    }

    /// Reads the signed-in user's row again, so that an administrator's change reaches a
    /// session that is already open (also one in another process): a new role applies to the
    /// next operation, and a disabled account's session ends. The gate reads it inside its own
    /// transaction (`transact`) and calls this only when it changed.
    fn refresh_user(&mut self) -> Result<()> {
        let fresh = users::standing(self.vault()?.conn(), self.user.id)?;
        match fresh {
            Some((role, users::UserStatus::Active)) => {
                if role != self.user.role {
                    let has_2fa = self.two_factor_enabled()?;
                    self.must_enrol_2fa = self.policy.requires_2fa(&role) && !has_2fa;
                    self.user.role = role;
                }
                Ok(())
            }
            _ => {
                self.close("session.expired", "account disabled");
                self.expired = true;
                Err(Error::SessionLocked(
                    "your account has been disabled; ask an administrator".into(),
                ))
            }
        }
    }

    /// Real user activity (keyboard, mouse) reported by the front end. Enforces the limits
    /// first, so activity after the idle limit cannot revive a session that should have locked.
    pub fn record_activity(&mut self) -> Result<()> {
        self.enforce_time_limits()?;
        self.refresh_user()?;
        self.last_activity = self.clock.now();
        Ok(())
    }

    /// Checks the limits without counting as activity (e.g. a timer in the app). An active
    /// session also anchors the trail's end every `ANCHOR_EVERY`, so that one left open all day,
    /// or one that crashes, leaves little of its trail covered by no checkpoint.
    pub fn check(&mut self) -> SessionState {
        let _ = self.enforce_time_limits();
        let now = self.clock.now();
        if self.state() == SessionState::Active
            && now.duration_since(self.anchored_at) >= ANCHOR_EVERY
        {
            self.anchored_at = now;
            // Not fatal: the next anchoring (at the latest the session's end) tries again.
            let _ = self.write_checkpoint_after(None, Anchoring::Quick);
        }
        self.state()
    }

    /// Locks now (by hand, or because the OS screen locked or the machine is going to sleep).
    pub fn lock(&mut self, reason: &str) {
        self.close("session.lock", reason);
    }

    /// Records the lock, then drops the vault: the database closes and every key is wiped.
    fn close(&mut self, action: &str, reason: &str) {
        if self.vault.is_some() {
            let _ =
                self.write_unchecked(Event::new(action).detail("reason", reason), |_, _| Ok(()));
            // The trail's end as the session leaves it is anchored outside the database, so
            // that cutting off what this session did is detected (a failure is not fatal: the
            // next sign-in anchors again and compares).
            let _ = self.write_checkpoint_after(None, Anchoring::Quick);
        }
        self.vault = None;
        // Read afresh after unlocking: the vault may have been replaced meanwhile.
        self.recent_views.reset();
    }

    /// Unlocks a locked session as the same user. After the absolute timeout a full sign-in
    /// (with the second factor) is required instead.
    pub fn unlock(&mut self, passphrase: &SecretString) -> Result<()> {
        if self.expired
            || self.clock.now().duration_since(self.signed_in_at) >= self.absolute_limit()
        {
            self.expired = true;
            return Err(Error::SessionLocked(
                "the session has expired; sign in again".into(),
            ));
        }
        if self.vault.is_some() {
            return Ok(());
        }
        let now = unix(self.clock.now());
        throttle::check(&self.dir, &self.user.username, now)?;
        let vault = match Vault::unlock(&self.dir, &self.user.username, passphrase) {
            Ok(v) => v,
            Err(e) if e.kind() == ErrorKind::Authentication => {
                return Err(fail(
                    &self.dir,
                    (&self.user.username, true),
                    &self.device,
                    "wrong passphrase at unlock",
                    now,
                    e,
                ));
            }
            Err(e) => return Err(e),
        };
        throttle::record_success(&self.dir, &self.user.username)?;
        self.vault = Some(vault);
        self.last_activity = self.clock.now();
        // Settings changed elsewhere while the session was locked apply from now on.
        self.reload_policy()?;
        let (policy, now) = (self.policy.clone(), self.clock.now());
        self.write_unchecked(Event::new("session.unlock"), |tx, s| {
            crate::alerts::check_hours(tx, &policy, s.1, "unlocked ClinVault", now)
        })
    }

    pub(crate) fn vault(&self) -> Result<&Vault> {
        self.vault
            .as_ref()
            .ok_or_else(|| Error::SessionLocked("the session is locked".into()))
    }

    pub(crate) fn vault_mut(&mut self) -> Result<&mut Vault> {
        self.vault
            .as_mut()
            .ok_or_else(|| Error::SessionLocked("the session is locked".into()))
    }

    pub(crate) fn reload_policy(&mut self) -> Result<()> {
        self.policy = Policy::load(self.vault()?.conn())?;
        Ok(())
    }

    pub(crate) fn set_enrolled(&mut self) {
        self.must_enrol_2fa = false;
    }

    /// Checks the signed-in user's passphrase again, counting wrong ones (see
    /// `after_wrong_passphrase`).
    pub(crate) fn passphrase_again(&mut self, passphrase: &SecretString) -> Result<()> {
        let checked = self.vault()?.verify_passphrase(passphrase);
        match &checked {
            Ok(()) => self.wrong_passphrases = 0,
            Err(e) if e.kind() == ErrorKind::Authentication => self.wrong_passphrases += 1,
            Err(_) => {}
        }
        checked
    }

    /// Called once a failed re-authentication is recorded: after too many wrong passphrases
    /// the session locks, and the answer says so instead of `e`.
    pub(crate) fn after_wrong_passphrase(&mut self, e: Error) -> Error {
        if self.wrong_passphrases < WRONG_PASSPHRASES_BEFORE_LOCK {
            return e;
        }
        self.wrong_passphrases = 0;
        self.close("session.lock", "wrong passphrase entered too often");
        Error::SessionLocked(format!(
            "a wrong passphrase was entered {WRONG_PASSPHRASES_BEFORE_LOCK} times, so the session \
             is locked; unlock it with your passphrase"
        ))
    }

    /// Full re-authentication for sensitive operations: the passphrase again and, for users
    /// with two-factor sign-in, a fresh code — or the one proved at sign-in within the last two
    /// minutes (a one-shot CLI command signs in and acts in the same breath).
    pub(crate) fn reauthenticate(
        &mut self,
        passphrase: &SecretString,
        code: Option<&str>,
    ) -> Result<()> {
        self.passphrase_again(passphrase)?;
        let now = self.clock.now();
        let recent = self
            .second_factor_at
            .is_some_and(|t| now.duration_since(t) < jiff::SignedDuration::from_secs(120));
        let Session { vault, .. } = self;
        let vault = vault
            .as_mut()
            .ok_or_else(|| Error::SessionLocked("the session is locked".into()))?;
        if !two_factor::is_enabled(vault.conn(), vault.user().id)? {
            return Ok(());
        }
        match code {
            Some(code) => {
                two_factor::verify_code(vault, code, now.as_second())?;
                self.second_factor_at = Some(now);
                Ok(())
            }
            None if recent => Ok(()),
            None => Err(Error::Authentication(
                "an authenticator or recovery code is required for this".into(),
            )),
        }
    }

    /// One write transaction holding `f`'s changes and the signed audit entry for `event` (and,
    /// for gated operations, the alert rules it may trip). On any failure nothing is committed.
    ///
    /// `check`, for gated operations: the user's role, status and the role's permissions are
    /// read in the transaction, so the operation runs only under the grants that hold when it
    /// commits (and a separate read would cost a read transaction of its own on every
    /// operation). If they refuse it or are no longer those the session holds, nothing runs and
    /// the verdict says why.
    fn transact<T>(
        &mut self,
        event: Event,
        with_alerts: bool,
        check: Option<(Need, &mut Verdict)>,
        f: impl FnOnce(&Transaction<'_>, &mut Event) -> Result<T>,
    ) -> Result<T> {
        let now_ts = self.clock.now();
        let now = rfc3339(now_ts);
        let Session {
            vault,
            user,
            device,
            policy,
            recent_views,
            nonces,
            ..
        } = self;
        let vault = vault
            .as_mut()
            .ok_or_else(|| Error::SessionLocked("the session is locked".into()))?;
        let (conn, keys) = vault.conn_and_keys();
        let id = user.id.to_string();
        let author = Author {
            actor_id: Some(id.clone()),
            actor_name: &user.username,
            device,
            signer_id: id,
            signer: keys.signing_key(),
            nonces: Some(nonces),
        };
        let mut event = event;
        let tx = crate::db::write_tx(conn)?;
        if let Some((need, verdict)) = check {
            let current = users::standing(&tx, user.id)?;
            if !matches!(&current, Some((role, users::UserStatus::Active)) if *role == user.role) {
                *verdict = Verdict::Stale;
                return Err(Error::Conflict("your account was changed meanwhile".into()));
            }
            if let Some(reason) = role_refusal(&tx, &user.role, need)? {
                *verdict = Verdict::Refused(reason.clone());
                return Err(Error::PermissionDenied(reason));
            }
        }
        let value = f(&tx, &mut event)?;
        audit::append(&tx, &now, &author, &event)?;
        if with_alerts {
            // Access outside hours is any operation, not only the sign-in: a session opened at
            // 17:50 may go on well into the night.
            let checked = crate::alerts::after_event(
                &tx,
                policy,
                recent_views,
                &author.signer_id,
                &user.username,
                &event,
                now_ts,
            )
            .and_then(|()| {
                crate::alerts::check_hours(&tx, policy, &user.username, "used ClinVault", now_ts)
            });
            if checked.is_err() {
                recent_views.reset();
            }
            checked?;
        }
        if let Err(e) = tx.commit() {
            // The count may include this entry, which did not happen after all.
            recent_views.reset();
            return Err(e.into());
        }
        Ok(value)
    }

    /// Writes `event` with `f`'s changes in one transaction, with no permission check. Only for
    /// the session's own bookkeeping (sign-in, lock, unlock); everything else uses `gate`.
    fn write_unchecked(
        &mut self,
        event: Event,
        f: impl FnOnce(&Transaction<'_>, (&str, &str, &str, &str)) -> Result<()>,
    ) -> Result<()> {
        let (id, name, device) = (
            self.user.id.to_string(),
            self.user.username.clone(),
            self.device.clone(),
        );
        let now = rfc3339(self.clock.now());
        self.transact(event, false, None, |tx, _| {
            f(tx, (&id, &name, &now, &device))
        })
    }

    /// The one gate. `f` runs inside the transaction and may refine the event (details such as
    /// changed field names or record counts); the entry is appended before commit. A failure
    /// rolls the operation back and is recorded on its own.
    pub(crate) fn gate<T>(
        &mut self,
        need: Need,
        event: Event,
        f: impl FnOnce(&Transaction<'_>, &mut Event) -> Result<T>,
    ) -> Result<T> {
        check_reserved(need, &event)?;
        let mut f = Some(f);
        // A failed operation's entry keeps the patient it was about, so that a search for the
        // patient shows the attempt; the other details it gathered were never committed.
        let mut about = None;
        // Checked in the transaction with the role the session holds; if the transaction finds
        // the account changed (a new role, disabled), once more with what it is now.
        let mut outcome = Err(Error::Internal("the gate did not run".into()));
        for attempt in 0..2 {
            if attempt > 0 {
                self.refresh_user()?;
            }
            self.enforce_time_limits()?;
            if self.enrolment_refusal(&event).is_some() {
                // The role, the policy or the enrolment may have changed elsewhere since.
                self.refresh_user()?;
                self.reload_policy()?;
                let has_2fa = self.two_factor_enabled()?;
                self.must_enrol_2fa = self.policy.requires_2fa(&self.user.role) && !has_2fa;
            }
            if let Some(reason) = self.enrolment_refusal(&event) {
                return Err(self.refused(need, event, reason));
            }
            let mut verdict = Verdict::Allowed;
            outcome = self.transact(event.clone(), true, Some((need, &mut verdict)), |tx, ev| {
                let f = f
                    .take()
                    .ok_or_else(|| Error::Internal("the gate ran an operation twice".into()))?;
                let value = f(tx, ev);
                if value.is_err() {
                    about = ev.details.get(crate::audit::PATIENT_DETAIL).cloned();
                }
                value
            });
            match verdict {
                Verdict::Allowed => break,
                Verdict::Stale => continue,
                Verdict::Refused(reason) => return Err(self.refused(need, event, reason)),
            }
        }
        match outcome {
            Ok(value) => {
                self.last_activity = self.clock.now();
                Ok(value)
            }
            Err(e) => {
                let mut failed = event
                    .outcome(Outcome::Failed)
                    .detail("error", serde_json::to_value(e.kind()).unwrap_or_default());
                if let Some(patient) = about {
                    failed = failed.detail(crate::audit::PATIENT_DETAIL, patient);
                }
                // The failure itself is the answer; a failure to record it must not hide it.
                let _ = self.write_unchecked(failed, |_, _| Ok(()));
                Err(e)
            }
        }
    }

    /// The gate with a need and an event of the caller's choosing, for the core's own
    /// integration tests and benches only (`test-hooks`, which no release build carries):
    /// front ends reach the core through its named operations, each with its fixed permission.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn gate_for_tests<T>(
        &mut self,
        need: Need,
        event: Event,
        f: impl FnOnce(&Transaction<'_>, &mut Event) -> Result<T>,
    ) -> Result<T> {
        self.gate(need, event, f)
    }

    /// The session user's signature over `message` and the public key it verifies with, for the
    /// core's own tests of what verification accepts from a real user's key (`test-hooks` only:
    /// the signing key itself never leaves the core).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn sign_for_tests(&self, message: &[u8]) -> Result<([u8; 32], [u8; 64])> {
        use ed25519_dalek::Signer;
        let keys = self.vault()?.user_keys();
        Ok((
            keys.ed25519_public(),
            keys.signing_key().sign(message).to_bytes(),
        ))
    }

    /// The gate's checks alone, for operations that cannot run inside one database transaction
    /// (key rotation replaces the database file): a refusal is recorded as denied.
    pub(crate) fn authorize(&mut self, need: Need, event: Event) -> Result<()> {
        self.enforce_time_limits()?;
        self.refresh_user()?;
        self.permit(need, event)
    }

    /// The time limits and the permission, with the role the session last read (a refusal
    /// reads it again first: a role may have been widened since).
    fn permit(&mut self, need: Need, event: Event) -> Result<()> {
        self.enforce_time_limits()?;
        let mut refusal = self.denial(need, &event)?;
        if refusal.is_some() {
            self.refresh_user()?;
            refusal = self.denial(need, &event)?;
        }
        match refusal {
            Some(reason) => Err(self.refused(need, event, reason)),
            None => Ok(()),
        }
    }

    /// Records `event` as denied and returns the refusal to give the caller (or why even the
    /// record could not be written).
    fn refused(&mut self, need: Need, event: Event, reason: String) -> Error {
        let denied = event.outcome(Outcome::Denied).detail(
            "needs",
            match need {
                Need::Permission(p) => p.name(),
                Need::SignedIn => "2fa.enrolment",
            },
        );
        match self.write_unchecked(denied, |_, _| Ok(())) {
            Ok(()) => Error::PermissionDenied(reason),
            Err(e) => e,
        }
    }

    /// Records the outcome of an operation authorised with `authorize`.
    pub(crate) fn record(&mut self, event: Event) -> Result<()> {
        self.write_unchecked(event, |_, _| Ok(()))
    }

    /// As `record`, with further writes in the same transaction.
    pub(crate) fn record_with(
        &mut self,
        event: Event,
        f: impl FnOnce(&Transaction<'_>) -> Result<()>,
    ) -> Result<()> {
        self.write_unchecked(event, |tx, _| f(tx))
    }

    /// True when the signed-in role lacks `p` (no audit entry: used for background decisions).
    pub(crate) fn denial_for(&self, p: Permission) -> Result<bool> {
        let role = permissions::load(self.vault()?.conn(), &self.user.role)?;
        Ok(!role.is_some_and(|r| r.allows(p)))
    }

    /// Why the operation is refused, if it is.
    fn denial(&self, need: Need, event: &Event) -> Result<Option<String>> {
        if let Some(reason) = self.enrolment_refusal(event) {
            return Ok(Some(reason));
        }
        role_refusal(self.vault()?.conn(), &self.user.role, need)
    }

    /// A user who must enrol in two-factor sign-in may do nothing else first.
    fn enrolment_refusal(&self, event: &Event) -> Option<String> {
        (self.must_enrol_2fa && !ENROLMENT_ACTIONS.contains(&event.action.as_str())).then(|| {
            "your role requires two-factor sign-in: set it up first (user 2fa enroll)".into()
        })
    }

    /// The session's own identity, fresh from the database (not audited: no record is viewed).
    pub fn whoami(&self) -> Result<UserRecord> {
        users::by_id(self.vault()?.conn(), self.user.id)?
            .ok_or_else(|| Error::NotFound("your user record is gone".into()))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close("session.end", "signed out");
    }
}

impl PendingSignIn {
    pub fn username(&self) -> &str {
        &self.vault.user().username
    }

    /// Checks the authenticator or recovery code. A wrong code counts as a failed sign-in and
    /// ends the attempt (the passphrase must be entered again).
    pub fn complete(mut self, code: &str, remember_device: bool) -> Result<Session> {
        let dir = self.vault.dir().clone();
        let now = self.cfg.clock.now();
        let username = self.vault.user().username.clone();
        let method = match two_factor::verify_for_sign_in(&mut self.vault, code, unix(now)) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::Authentication => {
                return Err(fail(
                    &dir,
                    (&username, true),
                    &self.cfg.device,
                    "wrong second factor",
                    unix(now),
                    e,
                ));
            }
            Err(e) => return Err(e),
        };
        let mut session = Session::start(&dir, self.vault, self.cfg, method)?;
        // A device that cannot be remembered is no reason to refuse a correct sign-in.
        if remember_device {
            if let Err(e) = session.remember_this_device() {
                session
                    .notices
                    .push(format!("This device was not remembered: {e}"));
            }
        }
        Ok(session)
    }
}

/// Removes triggers that ClinVault's migrations did not make and puts back those of theirs
/// that were dropped (see `schema_guard`), recording the names in the trail and raising an
/// alert, in one transaction.
fn repair_triggers(vault: &mut Vault, device: &str, now: jiff::Timestamp) -> Result<()> {
    let drift = crate::schema_guard::drift(vault.conn())?;
    if drift.is_empty() {
        return Ok(());
    }
    let signer = vault.user_keys().signing_key().clone();
    let id = vault.user().id.to_string();
    let name = vault.user().username.clone();
    let author = Author {
        actor_id: Some(id.clone()),
        actor_name: &name,
        device,
        signer_id: id,
        signer: &signer,
        nonces: None,
    };
    let at = rfc3339(now);
    let tx = crate::db::write_tx(vault.conn_mut())?;
    let done = crate::schema_guard::repair(&tx, &drift)?;
    let event = Event::new("audit.schema_repaired")
        .detail("triggers_removed", done.removed.clone())
        .detail("triggers_restored", done.restored.clone());
    audit::append(&tx, &at, &author, &event)?;
    let mut found = Vec::new();
    if !done.removed.is_empty() {
        found.push(format!(
            "{} trigger(s) that ClinVault did not make ({}), which could hide or alter audit \
             entries, were removed",
            done.removed.len(),
            done.removed.join(", ")
        ));
    }
    if !done.restored.is_empty() {
        found.push(format!(
            "{} of ClinVault's own trigger(s) had been dropped ({}), which let the trail or \
             finalised notes be edited or deleted, and were put back",
            done.restored.len(),
            done.restored.join(", ")
        ));
    }
    crate::alerts::raise(
        &tx,
        crate::alerts::VERIFY_FAILED,
        &at,
        None,
        &format!(
            "the vault database's triggers had been changed outside ClinVault: {}, at {name}'s \
             sign-in: check who had the database key (key export-db-key) and run audit verify",
            found.join("; ")
        ),
        serde_json::json!({
            "triggers_removed": done.removed,
            "triggers_restored": done.restored,
            "found_by": name,
        }),
    )?;
    tx.commit()?;
    Ok(())
}

/// Failed sign-ins happened while nobody could sign the trail; the first successful sign-in
/// carries them in, signed by that user and marked as carried.
fn carry_in_pending_events(
    dir: &VaultDir,
    vault: &mut Vault,
    device: &str,
    policy: &Policy,
    now: jiff::Timestamp,
) -> Result<()> {
    let throttle::Pending { events, not_kept } = throttle::pending(dir)?;
    if events.is_empty() && not_kept == 0 {
        return Ok(());
    }
    let signer = vault.user_keys().signing_key().clone();
    let signer_id = vault.user().id.to_string();
    let signer_name = vault.user().username.clone();
    let tx = crate::db::write_tx(vault.conn_mut())?;
    // The file that carries these is not authenticated, so a time in it is not trusted to be
    // in the past; one moved is kept as reported. An old time is kept: the failure may truly
    // predate entries other sessions wrote meanwhile, and pruning cuts only a prefix of
    // entries that are all old (`audit_review::prune_cut`).
    let now_unix = now.as_second();
    for e in &events {
        let actor = users::by_username(&tx, &e.username)?;
        let at_unix = e.at_unix.min(now_unix);
        let at = jiff::Timestamp::from_second(at_unix)
            .map(rfc3339)
            .unwrap_or_default();
        let mut event = Event::new(if e.outcome == "locked_out" {
            "signin.locked_out"
        } else {
            "signin"
        })
        .outcome(Outcome::Failed)
        .detail("reason", e.reason.as_str())
        .detail("carried_in_by", signer_name.as_str())
        .detail("carried_in_on", device);
        if at_unix != e.at_unix {
            event = event.detail("reported_time", e.at_unix);
        }
        let author = Author {
            actor_id: actor.as_ref().map(|u| u.id.to_string()),
            actor_name: &e.username,
            device: &e.device,
            signer_id: signer_id.clone(),
            signer: &signer,
            nonces: None,
        };
        audit::append(&tx, &at, &author, &event)?;
        tx.execute(
            "INSERT INTO signin_history (user_id, username, at, device, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                actor.as_ref().map(|u| u.id.to_string()),
                e.username,
                at,
                e.device,
                e.outcome,
                e.reason
            ],
        )?;
    }
    // Per username: its lock-outs, and the times of its failures (kept no later than now, as
    // recorded above).
    let mut per_user: std::collections::BTreeMap<&str, (u32, Vec<i64>)> =
        std::collections::BTreeMap::new();
    for e in &events {
        let u = per_user.entry(e.username.as_str()).or_default();
        if e.outcome == "locked_out" {
            u.0 += 1;
        } else {
            u.1.push(e.at_unix.min(now_unix));
        }
    }
    for (username, (lock_outs, times)) in per_user {
        crate::alerts::check_failed_signins(&tx, policy, username, lock_outs, &times, now)?;
    }
    if not_kept > 0 {
        // Too many failures at once to keep each one: their number is recorded and alerted.
        let author = Author {
            actor_id: Some(signer_id.clone()),
            actor_name: &signer_name,
            device,
            signer_id: signer_id.clone(),
            signer: &signer,
            nonces: None,
        };
        let at = rfc3339(now);
        let event = Event::new("signin.not_kept")
            .outcome(Outcome::Failed)
            .detail("count", not_kept)
            .detail("carried_in_by", signer_name.as_str());
        audit::append(&tx, &at, &author, &event)?;
        crate::alerts::raise(
            &tx,
            crate::alerts::FAILED_SIGNINS,
            &at,
            None,
            &format!(
                "{not_kept} failed sign-ins were too many to record one by one (many at once, \
                 mostly under usernames no account has): someone may have been guessing"
            ),
            serde_json::json!({ "not_kept": not_kept }),
        )?;
    }
    tx.commit()?;
    throttle::drop_pending(dir, events.len(), not_kept)
}
