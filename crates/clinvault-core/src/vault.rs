//! The vault's life cycle: create, inspect, unlock, change a passphrase, recover with the
//! recovery key, add and remove key slots, rotate the master key, and export the database key.
//! Every step that changes files is ordered so that a crash at any instant leaves a vault that
//! opens with the old or the new credentials (see the fault points and docs/security-model.md).

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use secrecy::SecretString;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::crypto::{KdfCost, Secret32};
use crate::error::{Error, Result};
use crate::fault;
use crate::key_hierarchy::{self as kh, RecoveryKey, UserKeys};
use crate::keyfile::{self, KeyFile, KeyFileBody};
use crate::users::{self, UserRecord, UserStatus};
use crate::vault_dir::{self, FileLock, VaultDir};
use crate::{clock, db};

pub struct InitOptions {
    pub admin_username: String,
    pub admin_display_name: Option<String>,
    pub passphrase: SecretString,
    pub kdf_cost: KdfCost,
    /// Also write the recovery key to this file (created, never overwritten).
    pub recovery_key_file: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct VaultStatus {
    pub path: String,
    pub vault_id: String,
    pub format_version: u32,
    pub sqlcipher_version: String,
    pub created_at: String,
    pub key_slots: usize,
    pub key_epoch: u64,
    pub rotation_pending: bool,
}

fn now() -> String {
    clock::rfc3339(jiff::Timestamp::now())
}

/// The floor every passphrase meets at the vault layer (NIST's minimum with a second factor);
/// the full policy — 15 characters without 2FA, breached lists, strength — is applied on top by
/// `passphrase_rules` wherever a passphrase is chosen.
pub(crate) fn check_passphrase_basics(passphrase: &SecretString) -> Result<()> {
    let normalised = crate::crypto::normalise_passphrase(passphrase);
    let chars = normalised.chars().count();
    if chars < 8 {
        return Err(Error::InvalidInput(format!(
            "passphrase: use at least 8 characters (this one has {chars})"
        )));
    }
    if chars > 1024 {
        return Err(Error::InvalidInput(
            "passphrase: use at most 1024 characters".into(),
        ));
    }
    Ok(())
}

/// Creates a new vault. Refuses to touch an existing one. Returns the recovery key, which
/// exists nowhere else (unless written to `recovery_key_file`): the caller shows it once.
pub fn init(dir: &VaultDir, opts: InitOptions) -> Result<RecoveryKey> {
    let username = users::normalise_username(&opts.admin_username)?;
    check_passphrase_basics(&opts.passphrase)?;
    crate::passphrase_rules::check(
        &crate::policy::Policy::default(),
        &opts.passphrase,
        false,
        &[
            &username,
            opts.admin_display_name.as_deref().unwrap_or_default(),
        ],
    )?;
    dir.create_root()?;
    let _key_lock = dir.lock_key_file()?;
    if dir.exists() {
        return Err(Error::AlreadyExists(format!(
            "a vault already exists at {}; ClinVault never overwrites a vault",
            dir.root().display()
        )));
    }
    clear_interrupted_init(dir)?;
    if let Some(path) = &opts.recovery_key_file {
        if path.exists() {
            return Err(Error::AlreadyExists(format!(
                "{} already exists; choose a new file for the recovery key",
                path.display()
            )));
        }
    }
    vault_dir::create_private(&dir.file(vault_dir::INIT_MARKER))?;
    dir.sync_dir()?;
    fault::point("init.after_marker");

    let vault_id = uuid::Uuid::new_v4();
    let created_at = now();
    let epoch = 1;
    let mk = Secret32::random();
    let recovery = RecoveryKey::generate();
    let admin_keys = UserKeys::generate();
    let admin_id = uuid::Uuid::new_v4();
    let display = opts
        .admin_display_name
        .clone()
        .unwrap_or_else(|| username.clone());

    {
        let mut conn = db::create_new(&dir.db_file(), &kh::db_key(&mk, vault_id, epoch)?)?;
        db::configure(&conn)?;
        db::migrate(&mut conn)?;
        let tx = db::write_tx(&mut conn)?;
        tx.execute(
            "INSERT INTO vault_meta (key, value) VALUES ('vault_id', ?1), ('created_at', ?2)",
            [vault_id.to_string(), created_at.clone()],
        )?;
        users::insert(
            &tx,
            admin_id,
            &username,
            &display,
            users::ROLE_ADMINISTRATOR,
            &created_at,
        )?;
        users::record_public_keys(
            &tx,
            &kh::integrity_key(&mk, vault_id)?,
            admin_id,
            &admin_keys.ed25519_public(),
            &admin_keys.x25519_public()?,
            &created_at,
        )?;
        tx.commit()?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        conn.close().map_err(|(_, e)| Error::from(e))?;
    }
    fault::point("init.after_db");

    if let Some(path) = &opts.recovery_key_file {
        write_recovery_file(path, &recovery)?;
    }
    fault::point("init.after_recovery_file");

    let slot = kh::make_slot(
        vault_id,
        (epoch, &mk),
        kh::SlotOwner {
            user_id: admin_id,
            username: &username,
        },
        &opts.passphrase,
        opts.kdf_cost.params(),
        &admin_keys,
    )?;
    let body = KeyFileBody {
        format: keyfile::FORMAT.into(),
        format_version: keyfile::FORMAT_VERSION,
        vault_id,
        created_at,
        epoch,
        kdf_cost: opts.kdf_cost,
        recovery: kh::recovery_slot(vault_id, epoch, &mk, recovery.public()?)?,
        slots: vec![slot],
        pending: None,
        audit_anchored: false,
        checkpoint_rekey_due: false,
    };
    // The key file appearing is the moment the vault exists.
    KeyFile::write(dir, &body, &mk)?;
    fault::point("init.after_keyfile");
    let _ = fs::remove_file(dir.file(vault_dir::INIT_MARKER));
    dir.sync_dir()?;
    Ok(recovery)
}

/// An init that crashed before its key file appeared left a database nobody can open (its key
/// existed only in that process's memory). It is removed only when the init marker proves that
/// origin; any other database without a key file is left alone.
fn clear_interrupted_init(dir: &VaultDir) -> Result<()> {
    let db = dir.db_file();
    let marker = dir.file(vault_dir::INIT_MARKER);
    if marker.exists() {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let path = PathBuf::from(format!("{}{suffix}", db.display()));
            if path.exists() {
                fs::remove_file(&path)
                    .map_err(Error::io(format!("cannot remove {}", path.display())))?;
            }
        }
        fs::remove_file(&marker)
            .map_err(Error::io(format!("cannot remove {}", marker.display())))?;
        dir.remove_stale_temps();
    } else if db.exists() {
        return Err(Error::AlreadyExists(format!(
            "{} holds a database without a key file; refusing to touch it",
            dir.root().display()
        )));
    }
    Ok(())
}

fn write_recovery_file(path: &Path, recovery: &RecoveryKey) -> Result<()> {
    use std::io::Write;
    let mut f = vault_dir::create_private(path)?;
    let mut text = Zeroizing::new(String::from(
        "ClinVault recovery key. Keep it offline; anyone holding it can open the vault.\n",
    ));
    text.push_str(&recovery.display());
    text.push('\n');
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(Error::io(format!("cannot write {}", path.display())))
}

/// Reads a recovery key from a file written by `init` (or typed by a person): the first line
/// that parses as a key.
pub fn read_recovery_file(path: &Path) -> Result<RecoveryKey> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound(format!("no recovery key file at {}", path.display()))
        } else {
            Error::io(format!("cannot read {}", path.display()))(e)
        }
    })?);
    let mut last_err = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match RecoveryKey::parse(line) {
            Ok(key) => return Ok(key),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        Error::InvalidInput(format!("{} holds no recovery key", path.display()))
    }))
}

/// What can be known without unlocking.
pub fn status(dir: &VaultDir) -> Result<VaultStatus> {
    let kf = KeyFile::read(dir)?;
    Ok(VaultStatus {
        path: dir.root().display().to_string(),
        vault_id: kf.body.vault_id.to_string(),
        format_version: kf.body.format_version,
        sqlcipher_version: db::sqlcipher_version()?,
        created_at: kf.body.created_at.clone(),
        key_slots: kf.body.slots.len(),
        key_epoch: kf.body.epoch,
        rotation_pending: kf.body.pending.is_some(),
    })
}

/// Opens the database for the master key `mk` (or the pending one, if an interrupted rotation
/// already swapped the database), finishing a rotation whose last step did not happen.
fn open_database(
    dir: &VaultDir,
    body: &mut KeyFileBody,
    mk: Secret32,
    pending_mk: Option<Secret32>,
) -> Result<(Connection, Secret32, Option<Secret32>)> {
    let path = dir.db_file();
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
        return Err(Error::Integrity(
            "the vault database is empty (truncated); restore it from a backup".into(),
        ));
    }
    let current_key = kh::db_key(&mk, body.vault_id, body.epoch)?;
    let (conn, mk, previous_ik) = if db::key_opens(&path, &current_key) {
        (db::open_existing(&path, &current_key)?, mk, None)
    } else {
        let next = match (&body.pending, pending_mk) {
            (Some(p), Some(next_mk)) => {
                let key = kh::db_key(&next_mk, body.vault_id, p.epoch)?;
                db::key_opens(&path, &key).then_some((key, next_mk))
            }
            _ => None,
        };
        let Some((key, next_mk)) = next else {
            if !path.exists() {
                return Err(Error::Integrity(format!(
                    "the vault database {} is missing; restore it from a backup",
                    path.display()
                )));
            }
            return Err(Error::Integrity(
                "the vault database is damaged or does not belong to this key file; \
                 restore it from a backup"
                    .into(),
            ));
        };
        // Crash after the database swap: make the key file say what the database already is.
        let _key_lock = dir.lock_key_file()?;
        let fresh = KeyFile::read(dir)?;
        if fresh.body.pending.is_none() && fresh.verify(&next_mk).is_ok() {
            // Another process finished it while we waited for the lock.
            *body = fresh.body;
        } else {
            fresh.verify(&mk)?;
            let mut promoted = fresh.body;
            kh::promote_pending(&mut promoted)?;
            KeyFile::write(dir, &promoted, &next_mk)?;
            *body = promoted;
        }
        let previous_ik = kh::integrity_key(&mk, body.vault_id)?;
        (db::open_existing(&path, &key)?, next_mk, Some(previous_ik))
    };
    db::check_not_truncated(&conn, &path)?;
    db::configure(&conn)?;
    Ok((conn, mk, previous_ik))
}

/// An unlocked vault: the database is open and the user's keys are in memory until it is
/// dropped (which wipes them). Neither Debug nor Clone.
pub struct Vault {
    dir: VaultDir,
    conn: Connection,
    mk: Secret32,
    body: KeyFileBody,
    slot_id: uuid::Uuid,
    user: UserRecord,
    keys: UserKeys,
    db_lock: Option<FileLock>,
    /// Set when this handle finished or ran a rotation itself (e.g. one interrupted by a crash,
    /// completed at unlock): the integrity key before it, so the session can re-anchor the audit
    /// checkpoint and record the rotation.
    rotated_from: Option<Secret32>,
}

impl Vault {
    pub fn unlock(dir: &VaultDir, username: &str, passphrase: &SecretString) -> Result<Vault> {
        let username = users::normalise_username(username).map_err(|_| Error::bad_credentials())?;
        // Held before the key file is read: a rotation needs the exclusive lock for all its
        // steps, so the key file read here and the database opened below belong together.
        let db_lock = dir.lock_db_shared()?;
        let kf = KeyFile::read(dir)?;
        let (slot, keys) = kh::unlock_slot(&kf.body, &username, passphrase)?;
        let mk = kh::open_mk(&kf.body, &slot, &keys).ok_or_else(|| {
            Error::Integrity(
                "your key slot cannot open the master key: the key file is damaged".into(),
            )
        })?;
        kf.verify(&mk)?;
        let pending_mk = kh::open_pending_mk(&kf.body, &slot, &keys);
        let mut body = kf.body;
        let (mut conn, mk, previous_ik) = open_database(dir, &mut body, mk, pending_mk)?;
        db::migrate(&mut conn)?;
        let user = users::by_id(&conn, slot.user_id)?.ok_or_else(|| {
            Error::Integrity("a key slot belongs to no user in the database".into())
        })?;
        if user.status != UserStatus::Active {
            return Err(Error::Authentication(
                "this account is disabled; ask an administrator".into(),
            ));
        }
        let mut vault = Vault {
            dir: dir.clone(),
            conn,
            mk,
            body,
            slot_id: slot.slot_id,
            user,
            keys,
            db_lock: Some(db_lock),
            rotated_from: previous_ik,
        };
        // A disabled user who still holds a key slot means a revocation did not finish (crash,
        // or the vault was open elsewhere): finish it, as an interrupted rotation, if nobody else
        // has the vault open. Its intent must not be left undone.
        let revoked = vault.slots_of_disabled_users()?;
        if vault.body.pending.is_some() || !revoked.is_empty() {
            match vault.rotate_keys(&revoked) {
                Ok(()) | Err(Error::Busy(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(vault)
    }

    pub fn user(&self) -> &UserRecord {
        &self.user
    }

    pub fn dir(&self) -> &VaultDir {
        &self.dir
    }

    pub fn key_epoch(&self) -> u64 {
        self.body.epoch
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The connection to write on and the keys to sign with, borrowed together, so that an
    /// audited write signs with the session's key without copying it.
    pub(crate) fn conn_and_keys(&mut self) -> (&mut Connection, &UserKeys) {
        (&mut self.conn, &self.keys)
    }

    pub(crate) fn user_keys(&self) -> &UserKeys {
        &self.keys
    }

    pub(crate) fn integrity_key(&self) -> Result<Secret32> {
        kh::integrity_key(&self.mk, self.body.vault_id)
    }

    /// The integrity key before the last rotation this handle performed or completed, once.
    pub(crate) fn take_rotation(&mut self) -> Option<Secret32> {
        self.rotated_from.take()
    }

    /// The key material a backup or sync snapshot carries so it can be verified and opened
    /// without anyone's passphrase.
    pub(crate) fn snapshot_keys(&self) -> Result<crate::snapshot::VaultKeys> {
        crate::snapshot::VaultKeys::new(self.body.vault_id, self.body.epoch, &self.mk)
    }

    pub(crate) fn vault_id(&self) -> uuid::Uuid {
        self.body.vault_id
    }

    /// Re-reads the key file under its lock and checks it is the one this session unlocked.
    fn fresh_key_file(&self) -> Result<KeyFileBody> {
        let kf = KeyFile::read(&self.dir)?;
        if kf.body.epoch != self.body.epoch || kf.verify(&self.mk).is_err() {
            return Err(Error::Busy(
                "the vault's keys changed since you signed in; sign in again".into(),
            ));
        }
        Ok(kf.body)
    }

    /// Re-wraps only this user's slot under a new passphrase (fresh salt, current KDF costs).
    pub(crate) fn change_passphrase(&mut self, new_passphrase: &SecretString) -> Result<()> {
        check_passphrase_basics(new_passphrase)?;
        let _key_lock = self.dir.lock_key_file()?;
        let mut body = self.fresh_key_file()?;
        let vault_id = body.vault_id;
        let cost = body.kdf_cost;
        let slot = body
            .slots
            .iter_mut()
            .find(|s| s.slot_id == self.slot_id)
            .ok_or_else(|| Error::Authentication("your key slot was removed".into()))?;
        slot.kdf = cost.params();
        kh::rewrap(vault_id, slot, new_passphrase, &self.keys)?;
        KeyFile::write(&self.dir, &body, &self.mk)?;
        fault::point("slot.after_write");
        self.body = body;
        Ok(())
    }

    /// Whether the trail was ever anchored outside the database (`KeyFileBody::audit_anchored`).
    pub(crate) fn trail_was_anchored(&self) -> bool {
        self.body.audit_anchored
    }

    /// The key epoch checkpoints are judged in (see `KeyFileBody::checkpoint_rekey_due`).
    pub(crate) fn mac_epoch(&self) -> crate::audit_verify::MacEpoch {
        crate::audit_verify::MacEpoch {
            current: self.body.epoch,
            earlier_stands: self.body.checkpoint_rekey_due,
        }
    }

    /// Records in the key file that the trail has been anchored outside the database and,
    /// when `rekeyed` (the checkpoint now carries this epoch's integrity MAC), that no earlier
    /// epoch's checkpoint stands any more. Writes only what changes.
    pub(crate) fn mark_trail_anchored(&mut self, rekeyed: bool) -> Result<()> {
        let settled = |b: &KeyFileBody| b.audit_anchored && !(rekeyed && b.checkpoint_rekey_due);
        if settled(&self.body) {
            return Ok(());
        }
        let _key_lock = self.dir.lock_key_file()?;
        let mut body = self.fresh_key_file()?;
        if !settled(&body) {
            body.audit_anchored = true;
            if rekeyed {
                body.checkpoint_rekey_due = false;
            }
            KeyFile::write(&self.dir, &body, &self.mk)?;
        }
        self.body = body;
        Ok(())
    }

    /// Gives `user` a new key slot (new key pairs) under `passphrase`, replacing any slot they
    /// had. Used when adding or re-enabling a user.
    pub(crate) fn install_slot(
        &mut self,
        user: &UserRecord,
        passphrase: &SecretString,
    ) -> Result<()> {
        let _key_lock = self.dir.lock_key_file()?;
        let body = self.fresh_key_file()?;
        self.body = install_slot(&self.dir, &self.conn, &self.mk, body, user, passphrase)?.0;
        Ok(())
    }

    fn slots_of_disabled_users(&self) -> Result<Vec<uuid::Uuid>> {
        let mut out = Vec::new();
        for slot in &self.body.slots {
            let disabled = users::by_id(&self.conn, slot.user_id)?
                .is_none_or(|u| u.status != UserStatus::Active);
            if disabled && slot.user_id != self.user.id {
                out.push(slot.user_id);
            }
        }
        Ok(out)
    }

    /// New master key and database key (removing the slots of `remove_users`); every remaining
    /// slot and the recovery key receive the new master key through their public keys.
    pub(crate) fn rotate_keys(&mut self, remove_users: &[uuid::Uuid]) -> Result<()> {
        let _key_lock = self.dir.lock_key_file()?;
        let mut body = self.fresh_key_file()?;
        // Replacing the database file is safe only when no other process has it open.
        self.db_lock = None;
        let Some(exclusive) = self.dir.try_lock_db_exclusive()? else {
            self.db_lock = Some(self.dir.lock_db_shared()?);
            return Err(Error::Busy(
                "the vault is open in another ClinVault window or command; close it there and \
                 try again"
                    .into(),
            ));
        };
        let result = self.rotate_exclusive(&mut body, remove_users);
        drop(exclusive);
        self.db_lock = Some(self.dir.lock_db_shared()?);
        result
    }

    fn rotate_exclusive(
        &mut self,
        body: &mut KeyFileBody,
        remove_users: &[uuid::Uuid],
    ) -> Result<()> {
        body.slots.retain(|s| !remove_users.contains(&s.user_id));
        let next_mk = Secret32::random();
        body.pending = Some(kh::seal_next_epoch(body, &next_mk)?);
        KeyFile::write(&self.dir, body, &self.mk)?;
        fault::point("rotate.after_pending");

        let next_epoch = body.epoch + 1;
        let next_key = kh::db_key(&next_mk, body.vault_id, next_epoch)?;
        let db_path = self.dir.db_file();
        let next_path = self.dir.file(vault_dir::DB_NEXT_FILE);
        remove_if_present(&next_path)?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        db::copy_rekeyed(&self.conn, &next_path, &next_key)?;
        {
            // The copy's key registrations must verify under the next master key.
            let copy = db::open_existing(&next_path, &next_key)?;
            users::remac_public_keys(
                &copy,
                &kh::integrity_key(&self.mk, body.vault_id)?,
                &kh::integrity_key(&next_mk, body.vault_id)?,
            )?;
            copy.close().map_err(|(_, e)| Error::from(e))?;
        }
        fault::point("rotate.after_copy");

        let old = std::mem::replace(&mut self.conn, Connection::open_in_memory()?);
        old.close().map_err(|(_, e)| Error::from(e))?;
        let wal = PathBuf::from(format!("{}-wal", db_path.display()));
        if fs::metadata(&wal).map(|m| m.len() > 0).unwrap_or(false) {
            // Pages still in the WAL would be lost by the swap; keep the old database.
            self.conn =
                db::open_existing(&db_path, &kh::db_key(&self.mk, body.vault_id, body.epoch)?)?;
            db::configure(&self.conn)?;
            return Err(Error::Busy(
                "the database is still being written; try the rotation again".into(),
            ));
        }
        remove_if_present(&wal)?;
        remove_if_present(&PathBuf::from(format!("{}-shm", db_path.display())))?;
        fs::rename(&next_path, &db_path)
            .map_err(Error::io(format!("cannot replace {}", db_path.display())))?;
        self.dir.sync_dir()?;
        fault::point("rotate.after_swap");

        kh::promote_pending(body)?;
        body.checkpoint_rekey_due = true;
        KeyFile::write(&self.dir, body, &next_mk)?;
        fault::point("rotate.after_promote");

        self.conn = db::open_existing(&db_path, &next_key)?;
        db::configure(&self.conn)?;
        if self.rotated_from.is_none() {
            self.rotated_from = Some(kh::integrity_key(&self.mk, body.vault_id)?);
        }
        self.mk = next_mk;
        self.body = body.clone();
        Ok(())
    }

    /// Re-authentication: true when `passphrase` unwraps this user's slot (full Argon2id cost).
    pub(crate) fn verify_passphrase(&self, passphrase: &SecretString) -> Result<()> {
        kh::unlock_slot(&self.body, &self.user.username, passphrase).map(|_| ())
    }

    /// The raw SQLCipher key in hex, for opening the database with standard SQLCipher tools —
    /// the clinic's data-portability escape hatch. The session checks permission and
    /// re-authentication before asking.
    pub(crate) fn db_key_hex(&self) -> Result<Zeroizing<String>> {
        let key = kh::db_key(&self.mk, self.body.vault_id, self.body.epoch)?;
        Ok(Zeroizing::new(hex::encode(key.expose())))
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("cannot remove {}", path.display()))(e)),
    }
}

/// Records the new public keys in the database first, then writes the key file: a crash between
/// the two leaves the old slot (or none, for a new user) and the vault opens as before.
fn install_slot(
    dir: &VaultDir,
    conn: &Connection,
    mk: &Secret32,
    mut body: KeyFileBody,
    user: &UserRecord,
    passphrase: &SecretString,
) -> Result<(KeyFileBody, UserKeys)> {
    check_passphrase_basics(passphrase)?;
    let keys = UserKeys::generate();
    users::record_public_keys(
        conn,
        &kh::integrity_key(mk, body.vault_id)?,
        user.id,
        &keys.ed25519_public(),
        &keys.x25519_public()?,
        &now(),
    )?;
    let slot = kh::make_slot(
        body.vault_id,
        (body.epoch, mk),
        kh::SlotOwner {
            user_id: user.id,
            username: &user.username,
        },
        passphrase,
        body.kdf_cost.params(),
        &keys,
    )?;
    body.slots.retain(|s| s.user_id != user.id);
    body.slots.push(slot);
    KeyFile::write(dir, &body, mk)?;
    fault::point("slot.after_write");
    Ok((body, keys))
}

/// Records a passphrase reset with the recovery key in the trail at once, signed with the
/// administrator's new key (registered by the reset), and alerts the other administrators:
/// whoever holds the recovery key can take over an administrator's account this way.
fn record_recovery(conn: &mut Connection, user: &UserRecord, keys: &UserKeys) -> Result<()> {
    let now = crate::clock::rfc3339(jiff::Timestamp::now());
    let id = user.id.to_string();
    let device = crate::session::device_name("recovery-key");
    let author = crate::audit::Author {
        actor_id: Some(id.clone()),
        actor_name: &user.username,
        device: &device,
        signer_id: id,
        signer: keys.signing_key(),
        nonces: None,
    };
    let tx = db::write_tx(conn)?;
    crate::audit::append(
        &tx,
        &now,
        &author,
        &crate::audit::Event::new("recovery.used").target("user", user.id),
    )?;
    crate::alerts::raise(
        &tx,
        crate::alerts::ROLE_CHANGE,
        &now,
        Some(&user.username),
        &format!(
            "the passphrase of administrator {} was reset with the recovery key",
            user.username
        ),
        serde_json::json!({ "action": "recovery.used" }),
    )?;
    tx.commit()?;
    Ok(())
}

/// Sets a new passphrase for an administrator using the recovery key (new key pairs, new slot).
pub fn recover(
    dir: &VaultDir,
    recovery: &RecoveryKey,
    admin_username: &str,
    new_passphrase: &SecretString,
) -> Result<()> {
    check_passphrase_basics(new_passphrase)?;
    let username = users::normalise_username(admin_username)?;
    let _db_lock = dir.lock_db_shared()?;
    let kf = KeyFile::read(dir)?;
    let mk = kh::open_mk_recovery(&kf.body, recovery).ok_or_else(|| {
        Error::Authentication("that recovery key does not open this vault".into())
    })?;
    kf.verify(&mk)?;
    let pending_mk = kh::open_pending_mk_recovery(&kf.body, recovery);
    let mut body = kf.body;
    let (mut conn, mk, _) = open_database(dir, &mut body, mk, pending_mk)?;
    db::migrate(&mut conn)?;
    let user = users::by_username(&conn, &username)?
        .ok_or_else(|| Error::NotFound(format!("no user named {username:?}")))?;
    if user.role != users::ROLE_ADMINISTRATOR || user.status != UserStatus::Active {
        return Err(Error::PermissionDenied(format!(
            "{username:?} is not an active administrator; the recovery key resets administrators only"
        )));
    }
    let policy = crate::policy::Policy::load(&conn)?;
    let has_2fa = crate::two_factor::is_enabled(&conn, user.id)?;
    crate::passphrase_rules::check(
        &policy,
        new_passphrase,
        has_2fa,
        &[&user.username, &user.display_name],
    )?;
    let _key_lock = dir.lock_key_file()?;
    let fresh = KeyFile::read(dir)?;
    fresh.verify(&mk)?;
    let (_, keys) = install_slot(dir, &conn, &mk, fresh.body, &user, new_passphrase)?;
    record_recovery(&mut conn, &user, &keys).map_err(|e| {
        Error::Internal(format!(
            "the passphrase was reset, but the reset could not be recorded in the audit trail: \
             {e}"
        ))
    })
}
