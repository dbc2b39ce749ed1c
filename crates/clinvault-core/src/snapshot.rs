//! A consistent, already-encrypted copy of a whole vault, for backups and sync snapshots, and
//! the checks a restored copy must pass before anyone sees it.
//!
//! The database is copied with SQLite's online backup API in one step, under the same key, so
//! the copy is consistent while other processes keep writing (WAL readers never block them) and
//! no page is ever written unencrypted. Attachment files are immutable once written and already
//! encrypted, so they are hard-linked, not copied. The audit checkpoint is copied before the
//! database, so it vouches for a prefix of what the copy holds.
//!
//! The staging folder lives inside the vault directory (same file system: hard links work, and
//! nothing leaves the vault's owner-only directory) and is removed when the `Staged` is dropped.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::{Event, Outcome};
use crate::checkpoint::CHECKPOINT_FILE;
use crate::crypto::Secret32;
use crate::error::{Error, ErrorKind, Result};
use crate::key_hierarchy as kh;
use crate::keyfile::KeyFile;
use crate::permissions::Permission;
use crate::session::{Need, Session};
use crate::vault_dir::{VaultDir, DB_FILE, KEY_FILE};

const STAGING_PREFIX: &str = ".staging-";
const ATTACHMENTS: &str = "attachments";
/// Written into a restored vault; the first sign-in records the restore in the audit trail
/// (nobody can sign an audit entry before then).
pub const RESTORED_MARKER: &str = "restored.json";
const KEYS_MAGIC: &[u8; 8] = b"CVKEYS\0\x01";
const KEYS_LEN: usize = 8 + 16 + 8 + 32;

/// The vault's master key with the vault id and key epoch it belongs to: enough to open and
/// verify a copy of the vault. Wiped on drop; neither Debug nor Clone.
pub struct VaultKeys {
    vault_id: uuid::Uuid,
    epoch: u64,
    mk: Secret32,
}

impl VaultKeys {
    pub(crate) fn new(vault_id: uuid::Uuid, epoch: u64, mk: &Secret32) -> Result<Self> {
        let mut copy = *mk.expose();
        let mk = Secret32::from_slice_wiping(&mut copy)
            .ok_or_else(|| Error::Internal("master key of the wrong length".into()))?;
        Ok(VaultKeys {
            vault_id,
            epoch,
            mk,
        })
    }

    /// `CVKEYS\0\x01` ‖ vault id (16) ‖ epoch (8, big-endian) ‖ master key (32). Only ever
    /// stored inside an encrypted container.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(KEYS_LEN));
        out.extend_from_slice(KEYS_MAGIC);
        out.extend_from_slice(self.vault_id.as_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(self.mk.expose());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = || Error::Integrity("the vault key record is damaged".into());
        if bytes.len() != KEYS_LEN || &bytes[..8] != KEYS_MAGIC {
            return Err(bad());
        }
        let vault_id = uuid::Uuid::from_slice(&bytes[8..24]).map_err(|_| bad())?;
        let mut epoch = [0u8; 8];
        epoch.copy_from_slice(&bytes[24..32]);
        let mut mk = [0u8; 32];
        mk.copy_from_slice(&bytes[32..]);
        let mk = Secret32::from_slice_wiping(&mut mk).ok_or_else(bad)?;
        Ok(VaultKeys {
            vault_id,
            epoch: u64::from_be_bytes(epoch),
            mk,
        })
    }

    pub fn vault_id(&self) -> uuid::Uuid {
        self.vault_id
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn db_key(&self) -> Result<Secret32> {
        kh::db_key(&self.mk, self.vault_id, self.epoch)
    }

    pub(crate) fn integrity_key(&self) -> Result<Secret32> {
        kh::integrity_key(&self.mk, self.vault_id)
    }

    pub(crate) fn master_key(&self) -> &Secret32 {
        &self.mk
    }
}

/// Where the audit trail of a copy ended: lets a later restore or check notice a trail that was
/// rolled back or cut short. No clinical content.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditAnchor {
    pub vault_id: String,
    pub epoch: u64,
    /// Number of audit entries in the copy and the hash of the last one (hex).
    pub entries: u64,
    pub last_seq: Option<i64>,
    pub head_hash: Option<String>,
    /// The signed checkpoint kept outside the database at the time of the copy.
    pub checkpoint: Option<String>,
}

#[derive(Clone, Debug)]
pub struct StagedFile {
    /// Path inside the vault: "vault.db", "vault.keys", "audit.checkpoint",
    /// "attachments/<id>.bin".
    pub rel_path: String,
    pub path: PathBuf,
    pub size: u64,
}

/// A consistent copy of the vault waiting to be packed; removed from disk when dropped.
pub struct Staged {
    dir: PathBuf,
    files: Vec<StagedFile>,
    keys: VaultKeys,
    anchor: AuditAnchor,
}

impl Staged {
    pub fn files(&self) -> &[StagedFile] {
        &self.files
    }

    pub fn keys(&self) -> &VaultKeys {
        &self.keys
    }

    pub fn anchor(&self) -> &AuditAnchor {
        &self.anchor
    }

    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> Error {
    Error::io(context.to_owned())
}

pub(crate) fn create_private_dir(path: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::AlreadyExists(format!("{} already exists", path.display()))
        } else {
            Error::io(format!("cannot create {}", path.display()))(e)
        }
    })
}

/// Staging folders older than a day were left by a process that died mid-copy.
fn sweep_stale_staging(dir: &VaultDir) {
    let Ok(entries) = fs::read_dir(dir.root()) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 86_400);
        if stale
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The database copied byte for byte while no one can write: the WAL is checkpointed into the
/// main file, then a write transaction (`BEGIN IMMEDIATE`) holds off every writer while the
/// main file is copied. A raw copy keeps each unchanged page's ciphertext as it is on disk;
/// SQLite's backup API would re-encrypt every page under a fresh IV, so every page of every
/// copy would differ and sync could deduplicate nothing (an incremental push would re-upload
/// the whole database). When the WAL cannot be emptied (a long reader holds it), the copy falls
/// back to the backup API: still consistent, only not deduplicable.
fn copy_database(src: &Connection, dest_path: &Path, key: &Secret32) -> Result<()> {
    if let Some(src_path) = src.path().filter(|p| !p.is_empty()).map(PathBuf::from) {
        let _ = src.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        src.execute_batch("BEGIN IMMEDIATE")?;
        let wal = PathBuf::from(format!("{}-wal", src_path.display()));
        let wal_empty = fs::metadata(&wal).map(|m| m.len() == 0).unwrap_or(true);
        let copied = if wal_empty {
            Some(copy_file_raw(&src_path, dest_path))
        } else {
            None
        };
        let _ = src.execute_batch("ROLLBACK");
        if let Some(result) = copied {
            return result;
        }
    }
    let mut dest = crate::db::create_new(dest_path, key)?;
    {
        let backup = rusqlite::backup::Backup::new(src, &mut dest)?;
        backup.step(-1)?;
    }
    // Back to a single file: a rollback journal instead of WAL, so nothing lives in a -wal
    // file next to the copy.
    dest.pragma_update(None, "journal_mode", "DELETE")?;
    dest.close().map_err(|(_, e)| Error::from(e))?;
    fs::File::open(dest_path)
        .and_then(|f| f.sync_all())
        .map_err(io("cannot flush the database copy"))
}

fn copy_file_raw(from: &Path, to: &Path) -> Result<()> {
    let mut src = fs::File::open(from).map_err(io("cannot read the vault database"))?;
    let mut dst = crate::vault_dir::create_private(to)?;
    std::io::copy(&mut src, &mut dst)
        .and_then(|_| dst.sync_all())
        .map_err(io("cannot copy the vault database"))?;
    Ok(())
}

fn attachment_ids(conn: &Connection) -> Result<Vec<String>> {
    let mut st = conn.prepare("SELECT id FROM attachments ORDER BY id")?;
    let ids = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

fn audit_head(conn: &Connection) -> Result<(u64, Option<i64>, Option<String>)> {
    let entries: i64 = conn.query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))?;
    let last: Option<(i64, Vec<u8>)> = rusqlite::OptionalExtension::optional(conn.query_row(
        "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    ))?;
    Ok((
        u64::try_from(entries).unwrap_or(0),
        last.as_ref().map(|l| l.0),
        last.map(|l| hex::encode(l.1)),
    ))
}

fn staged_file(root: &Path, rel: &str) -> Result<StagedFile> {
    let path = root.join(rel);
    let size = fs::metadata(&path)
        .map_err(io("cannot read the staged copy"))?
        .len();
    Ok(StagedFile {
        rel_path: rel.to_owned(),
        path,
        size,
    })
}

/// What a consistent copy of the vault is for; each has its own permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Backup,
    Sync,
}

impl Purpose {
    fn permission(self) -> Permission {
        match self {
            Purpose::Backup => Permission::BackupManage,
            Purpose::Sync => Permission::SyncManage,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Purpose::Backup => "backup.export",
            Purpose::Sync => "sync.push",
        }
    }
}

/// Makes a consistent encrypted copy of the vault for a backup or sync run. The caller records
/// the run (`Session::run_audited`); this checks the purpose's permission all the same, with
/// the gate's checks (a refusal is recorded), and anchors the trail's current end outside the
/// database first, so that the copy carries a checkpoint of the trail as it is now.
pub fn capture(session: &mut Session, purpose: Purpose) -> Result<Staged> {
    session.authorize(
        Need::Permission(purpose.permission()),
        Event::new(purpose.action()),
    )?;
    session.write_checkpoint()?;
    let vault_dir = session.dir().clone();
    sweep_stale_staging(&vault_dir);
    let vault = session.vault()?;
    let keys = vault.snapshot_keys()?;
    let staging = vault_dir.file(&format!("{STAGING_PREFIX}{}", uuid::Uuid::new_v4()));
    create_private_dir(&staging)?;
    // From here on the folder is removed on every exit, success or error.
    let mut staged = Staged {
        dir: staging.clone(),
        files: Vec::new(),
        keys,
        anchor: AuditAnchor {
            vault_id: vault.vault_id().to_string(),
            epoch: vault.key_epoch(),
            entries: 0,
            last_seq: None,
            head_hash: None,
            checkpoint: None,
        },
    };
    let att_src = vault_dir.file(ATTACHMENTS);
    let att_dst = staging.join(ATTACHMENTS);
    create_private_dir(&att_dst)?;
    // Links first: a file deleted after this point is still in the copy if the database copy
    // (taken next) still refers to it.
    if let Ok(entries) = fs::read_dir(&att_src) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".bin") {
                fs::hard_link(entry.path(), att_dst.join(&name))
                    .map_err(io("cannot stage an attachment"))?;
            }
        }
    }
    let checkpoint = fs::read_to_string(vault_dir.file(CHECKPOINT_FILE)).ok();
    if let Some(text) = &checkpoint {
        crate::vault_dir::create_private(&staging.join(CHECKPOINT_FILE)).and_then(|mut f| {
            std::io::Write::write_all(&mut f, text.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(io("cannot stage the audit checkpoint"))
        })?;
    }
    let db_key = staged.keys.db_key()?;
    copy_database(vault.conn(), &staging.join(DB_FILE), &db_key)?;
    let copy = crate::db::open_existing(&staging.join(DB_FILE), &db_key)?;
    let wanted = attachment_ids(&copy)?;
    let (entries, last_seq, head_hash) = audit_head(&copy)?;
    drop(copy);
    // Attachments added after the links were taken; and drop links the copy does not use
    // (files of records deleted or erased before the copy).
    let wanted_set: std::collections::HashSet<String> =
        wanted.iter().map(|id| format!("{id}.bin")).collect();
    for name in &wanted_set {
        let dst = att_dst.join(name);
        if !dst.exists() {
            fs::hard_link(att_src.join(name), &dst).map_err(|_| {
                Error::Integrity(
                    "an attachment file is missing from the vault; run `clinvault backup` again \
                     after checking the vault"
                        .into(),
                )
            })?;
        }
    }
    for entry in fs::read_dir(&att_dst)
        .map_err(io("cannot list staged attachments"))?
        .flatten()
    {
        if !wanted_set.contains(&*entry.file_name().to_string_lossy()) {
            let _ = fs::remove_file(entry.path());
        }
    }
    {
        let _lock = vault_dir.lock_key_file()?;
        let bytes = fs::read(vault_dir.key_file()).map_err(io("cannot read the key file"))?;
        let kf = KeyFile::parse(&bytes)?;
        if kf.body.epoch != staged.keys.epoch() {
            return Err(Error::Busy(
                "the vault's keys changed during the copy; try again".into(),
            ));
        }
        kf.verify(staged.keys.master_key())?;
        let mut f = crate::vault_dir::create_private(&staging.join(KEY_FILE))?;
        std::io::Write::write_all(&mut f, &bytes)
            .and_then(|_| f.sync_all())
            .map_err(io("cannot stage the key file"))?;
    }
    let mut files = vec![
        staged_file(&staging, KEY_FILE)?,
        staged_file(&staging, DB_FILE)?,
    ];
    if checkpoint.is_some() {
        files.push(staged_file(&staging, CHECKPOINT_FILE)?);
    }
    for id in &wanted {
        files.push(staged_file(&staging, &format!("{ATTACHMENTS}/{id}.bin"))?);
    }
    staged.files = files;
    staged.anchor.entries = entries;
    staged.anchor.last_seq = last_seq;
    staged.anchor.head_hash = head_hash;
    staged.anchor.checkpoint = checkpoint;
    Ok(staged)
}

/// What a verified copy holds (counts only).
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub vault_id: String,
    pub key_epoch: u64,
    pub schema_version: i64,
    pub patients: i64,
    pub attachments: i64,
    pub audit_entries: u64,
    pub audit: crate::audit_verify::VerifyReport,
}

/// Checks a vault-shaped directory with the given keys: the key file belongs to these keys, the
/// database opens, SQLCipher's page MACs and SQLite's integrity check pass, the audit trail
/// verifies against the checkpoint stored with it, and every attachment decrypts to its
/// recorded checksum.
pub fn verify_dir(dir: &Path, keys: &VaultKeys) -> Result<VerifyReport> {
    let vd = VaultDir::new(dir);
    let kf = KeyFile::read(&vd)?;
    if kf.body.vault_id != keys.vault_id() || kf.body.epoch != keys.epoch() {
        return Err(Error::Integrity(
            "the key file in the copy does not belong to its database".into(),
        ));
    }
    kf.verify(keys.master_key())?;
    let conn = crate::db::open_existing(&vd.db_file(), &keys.db_key()?)?;
    crate::db::check_not_truncated(&conn, &vd.db_file())?;
    let damaged = |what: &str| {
        Error::Integrity(format!(
            "the database in the copy is damaged ({what}); it cannot be restored"
        ))
    };
    let cipher_problems: Vec<String> = conn
        .prepare("PRAGMA cipher_integrity_check")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !cipher_problems.is_empty() {
        return Err(damaged("page authentication failed"));
    }
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(damaged("integrity check failed"));
    }
    let schema_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let outside = crate::checkpoint::read_file(&vd)?;
    let ik = keys.integrity_key()?;
    let audit = crate::audit_verify::verify(
        &conn,
        &keys.vault_id().to_string(),
        &ik,
        crate::audit_verify::MacEpoch::only(keys.epoch()),
        outside.as_ref(),
    )?;
    if !audit.intact {
        let detail = audit
            .problem
            .as_ref()
            .map(|p| format!(" at entry {}: {}", p.seq, p.detail))
            .unwrap_or_default();
        return Err(Error::Integrity(format!(
            "the audit trail in the copy does not verify{detail}"
        )));
    }
    let mut attachments = 0i64;
    {
        let mut st = conn.prepare("SELECT id, size, sha256, file_key FROM attachments")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let size: i64 = r.get(1)?;
            let sha: Vec<u8> = r.get(2)?;
            let key: Zeroizing<Vec<u8>> = Zeroizing::new(r.get(3)?);
            let path = dir.join(ATTACHMENTS).join(format!("{id}.bin"));
            crate::attachments::verify_file(&path, &key, &id, size, &sha)
                .map_err(|e| Error::Integrity(format!("attachment {id} in the copy: {e}")))?;
            attachments += 1;
        }
    }
    let patients: i64 = conn.query_row("SELECT count(*) FROM patients", [], |r| r.get(0))?;
    let audit_entries = audit.entries_checked;
    Ok(VerifyReport {
        vault_id: keys.vault_id().to_string(),
        key_epoch: keys.epoch(),
        schema_version,
        patients,
        attachments,
        audit_entries,
        audit,
    })
}

/// What the first sign-in after a restore records.
#[derive(Serialize, Deserialize)]
pub(crate) struct RestoredFrom {
    pub source: String,
    pub restored_at: String,
    pub audit_entries: u64,
}

/// Verifies the restored copy in `dir` (a folder beside `to`, on the same file system) and only
/// then makes it visible as `to`, which must not exist. On failure `dir` is removed and `to` is
/// untouched. `source` is a description without patient data (e.g. "backup file" or
/// "sync snapshot 3f2a…").
pub fn finish_restore(
    dir: &Path,
    to: &Path,
    keys: &VaultKeys,
    source: &str,
) -> Result<VerifyReport> {
    let report = match verify_dir(dir, keys) {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_dir_all(dir);
            return Err(e);
        }
    };
    let marker = RestoredFrom {
        source: source.to_owned(),
        restored_at: crate::clock::rfc3339(jiff::Timestamp::now()),
        audit_entries: report.audit_entries,
    };
    let publish = || -> Result<()> {
        let text = serde_json::to_vec(&marker)
            .map_err(|e| Error::Internal(format!("cannot encode the restore record: {e}")))?;
        let mut f = crate::vault_dir::create_private(&dir.join(RESTORED_MARKER))?;
        std::io::Write::write_all(&mut f, &text)
            .and_then(|_| f.sync_all())
            .map_err(io("cannot write the restore record"))?;
        // Claim the name first (fails if anything is there), then swap the verified copy onto
        // the empty folder we own: rename never overwrites someone else's vault.
        create_private_dir(to)?;
        if let Err(e) = fs::rename(dir, to) {
            let _ = fs::remove_dir(to);
            return Err(Error::io(format!(
                "cannot move the restored vault to {}",
                to.display()
            ))(e));
        }
        if let Some(parent) = to.parent() {
            let _ = fs::File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(())
    };
    match publish() {
        Ok(()) => Ok(report),
        Err(e) => {
            let _ = fs::remove_dir_all(dir);
            Err(e)
        }
    }
}

/// A folder next to `to` to assemble a restore in: same file system (the final rename is
/// atomic), owner-only, a name that says what it is.
pub fn restore_workspace(to: &Path) -> Result<PathBuf> {
    if to.exists() {
        return Err(Error::AlreadyExists(format!(
            "{} already exists; restore into a new folder (an existing vault is never overwritten)",
            to.display()
        )));
    }
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vault".into());
    let work = parent.join(format!(".{name}.restoring-{}", uuid::Uuid::new_v4()));
    create_private_dir(&work).map_err(|e| match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Error::NotFound(format!("the folder {} does not exist", parent.display()))
        }
        other => other,
    })?;
    create_private_dir(&work.join(ATTACHMENTS))?;
    Ok(work)
}

/// An operation authorised with `Session::begin_audited` whose outcome is not recorded yet: a
/// long operation a front end runs without holding its session (a push to a remote target).
/// Its entry is written by `Session::finish_audited`, with the details added meanwhile.
#[must_use = "record the outcome with Session::finish_audited"]
pub struct AuditedRun {
    event: Event,
    user_id: uuid::Uuid,
    earlier_copy: Option<AuditAnchor>,
}

impl AuditedRun {
    pub fn event_mut(&mut self) -> &mut Event {
        &mut self.event
    }

    /// The audit anchor of an earlier copy of this vault the run read (a sync repository's
    /// latest snapshot, a backup file checked): `finish_audited` checks that the trail still
    /// holds it.
    pub fn compare_with_earlier_copy(&mut self, anchor: AuditAnchor) {
        self.earlier_copy = Some(anchor);
    }
}

/// What comparing the trail with an earlier copy's anchor found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum EarlierCopy {
    Held,
    /// Not held, but an administrator already accepted a trail that no longer holds a
    /// checkpoint vouching for at least as much (re-anchoring after a deliberate restore of an
    /// older copy).
    Accepted,
    NotHeld,
}

/// Compares the trail with the anchor of an earlier copy: not held when the trail ends before
/// the copy's last entry or holds another entry there. None when there is nothing to compare
/// (another vault's copy, or an empty trail in it).
fn compare_earlier_copy(
    conn: &Connection,
    vault_id: &str,
    copy: &AuditAnchor,
) -> Result<Option<EarlierCopy>> {
    let (Some(seq), Some(head)) = (copy.last_seq, copy.head_hash.as_deref()) else {
        return Ok(None);
    };
    if copy.vault_id != vault_id {
        return Ok(None);
    }
    let held = hex::decode(head)
        .ok()
        .map(|h| crate::audit_verify::trail_disagrees_at(conn, seq, &h))
        .transpose()?
        .is_some_and(|disagrees| !disagrees);
    if held {
        return Ok(Some(EarlierCopy::Held));
    }
    let accepted: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM audit_log WHERE action = 'audit.reanchor'
             AND outcome = 'ok' AND json_extract(details, '$.replaced_size') >= ?1)",
        [seq],
        |r| r.get(0),
    )?;
    Ok(Some(if accepted {
        EarlierCopy::Accepted
    } else {
        EarlierCopy::NotHeld
    }))
}

impl Session {
    /// For operations that cannot run inside one database transaction (long file and network
    /// I/O: backups, sync): authorises `need`, runs `f`, then records `event` with whatever
    /// details `f` added, as ok or failed. A refusal is recorded as denied.
    pub fn run_audited<T>(
        &mut self,
        need: Need,
        event: Event,
        f: impl FnOnce(&mut Session, &mut Event) -> Result<T>,
    ) -> Result<T> {
        let mut run = self.begin_audited(need, event)?;
        match f(self, run.event_mut()) {
            Ok(v) => {
                self.finish_audited(&run, None)?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.finish_audited(&run, Some(e.kind()));
                Err(e)
            }
        }
    }

    /// The first half of `run_audited`: the permission check (a refusal is recorded as denied).
    /// Only backup and sync runs are recorded this way, each under its own permission: any
    /// other operation goes through the gate, so that its entry is written in its transaction.
    pub fn begin_audited(&mut self, need: Need, event: Event) -> Result<AuditedRun> {
        if crate::session::reserved_need(&event.action).is_none() {
            return Err(Error::Internal(format!(
                "{} is not a backup or sync run: it must go through the gate",
                event.action
            )));
        }
        crate::session::check_reserved(need, &event)?;
        self.authorize(need, event.clone())?;
        Ok(AuditedRun {
            event,
            user_id: self.user().id,
            earlier_copy: None,
        })
    }

    /// The second half: records the run as ok, or as failed with the error's kind. Refused,
    /// leaving the run to be recorded later, while the session is locked, and always for a
    /// session of another user (the entry is signed by the person who ran it). A run that
    /// failed an integrity check (a backup, copy or sync repository that is damaged or was
    /// altered, its audit trail included) raises the verification-failure alert with it.
    pub fn finish_audited(&mut self, run: &AuditedRun, failure: Option<ErrorKind>) -> Result<()> {
        self.finish_run(run, failure).map(|_| ())
    }

    /// As `finish_audited`; also answers whether the trail still holds the earlier copy the
    /// run compared with (None when it compared with none).
    pub(crate) fn finish_run(
        &mut self,
        run: &AuditedRun,
        failure: Option<ErrorKind>,
    ) -> Result<Option<bool>> {
        if self.user().id != run.user_id {
            return Err(Error::PermissionDenied(
                "an operation is recorded only by the person who ran it".into(),
            ));
        }
        let event = match failure {
            None => run.event.clone(),
            Some(kind) => run
                .event
                .clone()
                .outcome(Outcome::Failed)
                .detail("error", serde_json::to_value(kind).unwrap_or_default()),
        };
        if let (None, Some(copy)) = (failure, &run.earlier_copy) {
            return self.finish_compared(event, copy);
        }
        if failure != Some(ErrorKind::Integrity) {
            return self.record(event).map(|()| None);
        }
        let summary = format!(
            "{} failed an integrity check: the copy or repository it read is damaged or was \
             altered (its pages, attachments or audit trail do not verify)",
            event.action
        );
        let details = serde_json::json!({ "action": event.action });
        self.record_alerting(event, crate::alerts::VERIFY_FAILED, &summary, details)
            .map(|()| None)
    }

    /// Records `event` and raises the alert `rule` in the same transaction. `details` gets
    /// who found it: the alert is about the vault, not about them, so any administrator
    /// acknowledges it.
    fn record_alerting(
        &mut self,
        event: Event,
        rule: &str,
        summary: &str,
        mut details: serde_json::Value,
    ) -> Result<()> {
        let at = crate::clock::rfc3339(self.clock().now());
        details["found_by"] = self.user().username.clone().into();
        self.record_with(event, |tx| {
            crate::alerts::raise(tx, rule, &at, None, summary, details)
        })
    }

    /// Records a run that found an earlier copy at its destination. The entry says whether the
    /// trail still holds what that copy vouched for; when it does not, entries were cut off and
    /// the trail went on (or an older copy was restored without re-anchoring): the alert is
    /// raised with it, and `audit verify` reports it, signed in the trail, until an
    /// administrator anchors the trail anew.
    fn finish_compared(&mut self, event: Event, copy: &AuditAnchor) -> Result<Option<bool>> {
        let found = {
            let vault = self.vault()?;
            compare_earlier_copy(vault.conn(), &vault.vault_id().to_string(), copy)?
        };
        let (Some(found), Some(seq)) = (found, copy.last_seq) else {
            return self.record(event).map(|()| None);
        };
        let mut event = event
            .detail("earlier_copy_last_seq", seq)
            .detail("earlier_copy_held", found == EarlierCopy::Held);
        if found == EarlierCopy::Accepted {
            event = event.detail("earlier_copy_accepted", true);
        }
        if found != EarlierCopy::NotHeld {
            return self.record(event).map(|()| Some(true));
        }
        let summary = format!(
            "{} vouches for audit entries up to {seq} that the trail no longer holds: entries \
             were cut off and the trail went on, or an older copy was restored; once looked \
             into, audit reanchor accepts the trail as it is",
            crate::audit_verify::earlier_copy_name(&event.action)
        );
        let details = serde_json::json!({ "action": event.action, "earlier_copy_last_seq": seq });
        self.record_alerting(event, crate::alerts::CHECKPOINT, &summary, details)
            .map(|()| Some(false))
    }
}

/// Records a restore at the first sign-in into the restored vault, then forgets the marker.
pub(crate) fn take_restore_marker(dir: &VaultDir) -> Option<Event> {
    let path = dir.file(RESTORED_MARKER);
    let bytes = fs::read(&path).ok()?;
    let marker: Option<RestoredFrom> = serde_json::from_slice(&bytes).ok();
    let event = match marker {
        Some(m) => Event::new("backup.restore")
            .detail("source", m.source)
            .detail("restored_at", m.restored_at)
            .detail("audit_entries", m.audit_entries),
        None => Event::new("backup.restore").detail("source", "unreadable restore record"),
    };
    Some(event)
}

pub(crate) fn clear_restore_marker(dir: &VaultDir) {
    let _ = fs::remove_file(dir.file(RESTORED_MARKER));
}
