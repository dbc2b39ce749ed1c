//! Single-file backups: the whole vault (database, key file, audit checkpoint, attachments) in
//! one file, encrypted under a fresh random backup key that is sealed to the vault's recovery
//! key (HPKE, RFC 9180) and, when the administrator gives one, to a backup passphrase
//! (Argon2id + XChaCha20-Poly1305). The payload is a POSIX tar archive sealed chunk by chunk
//! with XChaCha20-Poly1305 in the STREAM construction, so memory stays bounded and truncation,
//! reordering, splicing or a flipped bit anywhere is detected. The byte-level format is in
//! docs/formats/backup.md.
//!
//! Nothing here writes plaintext to disk: the database copy is encrypted by SQLCipher before a
//! page reaches the file, attachments are already encrypted files, and a restore is assembled
//! from those same encrypted files beside its destination and verified before it is made
//! visible.

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::audit::Event;
use crate::crypto::{self, random_bytes, KdfCost, KdfParams, Sealed, Secret32, Wrapped};
use crate::encoding::B64;
use crate::error::{Error, Result};
use crate::key_hierarchy::RecoveryKey;
use crate::keyfile::KeyFile;
use crate::permissions::Permission;
use crate::session::{Need, Session};
use crate::snapshot::{self, StagedFile, VaultKeys};

pub const MAGIC: &[u8; 8] = b"CVBACKUP";
pub const CHUNK: usize = 1024 * 1024;
const TAG: usize = 16;
const NONCE_PREFIX: usize = 19;
const MAX_HEADER: u32 = 64 * 1024;
pub const MANIFEST_ENTRY: &str = "clinvault-backup.json";
pub const KEYS_ENTRY: &str = "vault-key.bin";
const RECOVERY_INFO: &[u8] = b"clinvault/v1/backup-key";
const PASSPHRASE_AAD: &[u8] = b"clinvault/v1/backup-key-passphrase";

/// The part of a backup readable without a key: what it is and who can open it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub backup_id: uuid::Uuid,
    pub created_at: String,
    pub vault_id: uuid::Uuid,
    pub key_epoch: u64,
    pub chunk_size: u32,
    pub nonce_prefix: B64,
    pub recovery: RecoveryRecipient,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<PassphraseRecipient>,
}

/// The backup key sealed with HPKE to the vault's recovery key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveryRecipient {
    pub public_key: B64,
    pub sealed: Sealed,
}

/// The backup key wrapped under an Argon2id key from the backup passphrase.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PassphraseRecipient {
    pub kdf: KdfParams,
    pub wrapped: Wrapped,
}

/// The first entry of the archive: what the backup holds (counts and sizes, no patient data).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub backup_id: uuid::Uuid,
    pub created_at: String,
    pub created_by: String,
    pub files: Vec<ManifestFile>,
    pub patients: i64,
    pub attachments: usize,
    pub audit: snapshot::AuditAnchor,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
}

/// How to open a backup.
pub enum Opener<'a> {
    RecoveryKey(&'a RecoveryKey),
    Passphrase(&'a SecretString),
}

#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    pub path: PathBuf,
    pub backup_id: uuid::Uuid,
    pub bytes: u64,
    pub files: usize,
    pub patients: i64,
    pub attachments: usize,
    pub audit_entries: u64,
    pub with_passphrase: bool,
}

/// Called with (bytes done, bytes in all); returning false cancels the operation.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64) -> bool;

fn damaged(what: &str) -> Error {
    Error::Integrity(format!(
        "the backup file is damaged or was tampered with ({what}); nothing was restored"
    ))
}

fn cancelled() -> Error {
    Error::Conflict("cancelled; nothing was kept".into())
}

// ---------------------------------------------------------------------------------------------
// The sealed stream

fn chunk_aad(preamble_and_header: &[u8]) -> [u8; 32] {
    Sha256::digest(preamble_and_header).into()
}

/// Seals everything written to it into STREAM chunks. The last chunk (1..=CHUNK bytes) is
/// held back until `finish`, so it can carry the last-chunk flag.
struct SealingWriter<W: Write> {
    out: W,
    enc: Option<EncryptorBE32<XChaCha20Poly1305>>,
    buf: Vec<u8>,
    aad: [u8; 32],
}

impl<W: Write> SealingWriter<W> {
    fn new(out: W, key: &Secret32, prefix: &[u8; NONCE_PREFIX], aad: [u8; 32]) -> Self {
        let cipher = XChaCha20Poly1305::new(key.expose().into());
        SealingWriter {
            out,
            enc: Some(EncryptorBE32::from_aead(cipher, prefix.as_slice().into())),
            buf: Vec::with_capacity(2 * CHUNK + TAG),
            aad,
        }
    }

    fn seal_full_chunks(&mut self) -> io::Result<()> {
        while self.buf.len() > CHUNK {
            let rest = self.buf.split_off(CHUNK);
            let mut chunk = std::mem::replace(&mut self.buf, rest);
            self.enc
                .as_mut()
                .ok_or_else(|| io::Error::other("stream already finished"))?
                .encrypt_next_in_place(&self.aad, &mut chunk)
                .map_err(|_| io::Error::other("encryption failed"))?;
            self.out.write_all(&chunk)?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.seal_full_chunks()?;
        let mut last = std::mem::take(&mut self.buf);
        self.enc
            .take()
            .ok_or_else(|| io::Error::other("stream already finished"))?
            .encrypt_last_in_place(&self.aad, &mut last)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.out.write_all(&last)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.seal_full_chunks()?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens STREAM chunks as they are read. A failure is remembered in `failed`, because the tar
/// reader above it turns I/O errors into its own messages.
struct OpeningReader<R: Read> {
    inp: R,
    dec: Option<DecryptorBE32<XChaCha20Poly1305>>,
    aad: [u8; 32],
    // Wiped when replaced or dropped: one chunk holds the vault's keys record.
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    ahead: Vec<u8>,
    done: bool,
    failed: Rc<Cell<Option<&'static str>>>,
}

fn read_block(inp: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<()> {
    buf.clear();
    buf.resize(want, 0);
    let mut filled = 0;
    while filled < want {
        let n = inp.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(())
}

impl<R: Read> OpeningReader<R> {
    fn new(
        mut inp: R,
        key: &Secret32,
        prefix: &[u8],
        aad: [u8; 32],
        failed: Rc<Cell<Option<&'static str>>>,
    ) -> io::Result<Self> {
        let cipher = XChaCha20Poly1305::new(key.expose().into());
        let mut ahead = Vec::with_capacity(CHUNK + TAG);
        read_block(&mut inp, &mut ahead, CHUNK + TAG)?;
        Ok(OpeningReader {
            inp,
            dec: Some(DecryptorBE32::from_aead(cipher, prefix.into())),
            aad,
            plain: Zeroizing::new(Vec::with_capacity(CHUNK + TAG)),
            pos: 0,
            ahead,
            done: false,
            failed,
        })
    }

    fn fail(&self, why: &'static str) -> io::Error {
        self.failed.set(Some(why));
        io::Error::new(io::ErrorKind::InvalidData, why)
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let mut current = std::mem::take(&mut self.ahead);
        if current.len() <= TAG {
            return Err(self.fail("the file ends too early"));
        }
        let last = if current.len() == CHUNK + TAG {
            let mut ahead = Vec::with_capacity(CHUNK + TAG);
            read_block(&mut self.inp, &mut ahead, CHUNK + TAG)?;
            self.ahead = ahead;
            self.ahead.is_empty()
        } else {
            true
        };
        let ok = if last {
            self.done = true;
            self.dec
                .take()
                .map(|d| d.decrypt_last_in_place(&self.aad, &mut current).is_ok())
        } else {
            self.dec
                .as_mut()
                .map(|d| d.decrypt_next_in_place(&self.aad, &mut current).is_ok())
        };
        if ok != Some(true) {
            return Err(self.fail("a block does not authenticate"));
        }
        self.plain = Zeroizing::new(current);
        self.pos = 0;
        Ok(())
    }

    /// Reads to the authenticated end: the archive may stop reading before the last chunk.
    fn finish(mut self) -> io::Result<()> {
        let mut sink = [0u8; 8192];
        while self.read(&mut sink)? > 0 {}
        if !self.done {
            return Err(self.fail("the file ends too early"));
        }
        Ok(())
    }
}

impl<R: Read> Read for OpeningReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Export

/// Hands sealed chunks to a thread that writes them, so encryption and disk writes overlap.
/// At most a few chunks wait in between, so memory stays bounded.
struct ThreadedWriter {
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    handle: Option<std::thread::JoinHandle<io::Result<File>>>,
}

impl ThreadedWriter {
    fn new(mut file: File) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let handle = std::thread::spawn(move || {
            let mut writeback = crate::writeback::Tracker::default();
            for block in rx {
                file.write_all(&block)?;
                writeback.wrote(&file, block.len() as u64);
            }
            writeback.flush(&file);
            Ok(file)
        });
        ThreadedWriter {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    fn writer_failed(&mut self) -> io::Error {
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the backup writer stopped"),
        }
    }

    fn finish(mut self) -> io::Result<File> {
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(result)) => result,
            _ => Err(io::Error::other("the backup writer stopped")),
        }
    }
}

impl Write for ThreadedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let sent = match &self.tx {
            Some(tx) => tx.send(data.to_vec()).is_ok(),
            None => false,
        };
        if sent {
            Ok(data.len())
        } else {
            Err(self.writer_failed())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tar_header(path: &str, size: u64) -> Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)
        .map_err(|e| Error::Internal(format!("cannot name a backup entry: {e}")))?;
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// Counts bytes read from a file into the archive and reports progress.
struct Counted<'a, R> {
    inner: R,
    done: &'a mut u64,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64) -> bool,
    cancelled: &'a mut bool,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.done += n as u64;
        if !(self.progress)(*self.done, self.total) {
            *self.cancelled = true;
            return Err(io::Error::other("cancelled"));
        }
        Ok(n)
    }
}

/// The Argon2id key for a backup passphrase: derived on its own thread while the vault is
/// copied, since it costs as much as copying a few hundred megabytes.
struct PassphraseKey {
    kdf: KdfParams,
    kek: Secret32,
}

fn derive_passphrase_key(passphrase: &SecretString) -> Result<PassphraseKey> {
    let kdf = KdfCost::for_new_vaults().params();
    let kek = crypto::derive_kek(passphrase, &kdf)?;
    Ok(PassphraseKey { kdf, kek })
}

fn seal_backup_key(
    key: &Secret32,
    backup_id: uuid::Uuid,
    recovery_public: &[u8; 32],
    passphrase: Option<PassphraseKey>,
) -> Result<(RecoveryRecipient, Option<PassphraseRecipient>)> {
    let recovery = RecoveryRecipient {
        public_key: B64(recovery_public.to_vec()),
        sealed: crypto::seal(
            recovery_public,
            RECOVERY_INFO,
            backup_id.as_bytes(),
            key.expose(),
        )?,
    };
    let passphrase = match passphrase {
        None => None,
        Some(PassphraseKey { kdf, kek }) => {
            let wrapped = crypto::wrap(&kek, key.expose(), &passphrase_aad(backup_id, &kdf))?;
            Some(PassphraseRecipient { kdf, wrapped })
        }
    };
    Ok((recovery, passphrase))
}

fn passphrase_aad(backup_id: uuid::Uuid, kdf: &KdfParams) -> Vec<u8> {
    let mut aad = PASSPHRASE_AAD.to_vec();
    aad.extend_from_slice(backup_id.as_bytes());
    aad.extend_from_slice(&kdf.binding());
    aad
}

/// The magic, the header length and the header: authenticated as every chunk's associated data.
fn preamble(header: &Header) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(header)
        .map_err(|e| Error::Internal(format!("cannot encode the backup header: {e}")))?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|l| *l <= MAX_HEADER)
        .ok_or_else(|| Error::Internal("backup header too large".into()))?;
    let mut out = Vec::with_capacity(12 + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Checks a backup passphrase before it protects anything: it guards every record offline, so
/// the clinic's full-length rule applies regardless of two-factor sign-in.
pub fn check_backup_passphrase(session: &Session, passphrase: &SecretString) -> Result<()> {
    crate::passphrase_rules::check(
        session.policy(),
        passphrase,
        false,
        &["clinvault", "backup"],
    )
    .map_err(|e| Error::InvalidInput(format!("backup {e}")))
}

impl Session {
    /// Writes a backup of the whole vault to `out`, which must not exist. Administrators only
    /// (backup.manage); recorded with what it holds.
    pub fn export_backup(
        &mut self,
        out: &Path,
        passphrase: Option<&SecretString>,
        progress: Progress<'_>,
    ) -> Result<ExportReport> {
        if let Some(p) = passphrase {
            check_backup_passphrase(self, p)?;
        }
        let event = Event::new("backup.export").detail("with_passphrase", passphrase.is_some());
        self.run_audited(
            Need::Permission(Permission::BackupManage),
            event,
            |session, ev| {
                let report = export_inner(session, out, passphrase, progress)?;
                *ev = ev
                    .clone()
                    .detail("backup_id", report.backup_id.to_string())
                    .detail("records", report.patients)
                    .detail("attachments", report.attachments)
                    .detail("files", report.files)
                    .detail("bytes", report.bytes);
                Ok(report)
            },
        )
    }
}

impl Session {
    /// Checks a backup file from a signed-in session (the desktop app's backup screen):
    /// administrators only (backup.manage), recorded in this vault's trail with the backup's
    /// id and whether its trail verified. A backup of this vault is also an anchor: the entry
    /// records whether the live trail still holds what the backup's trail ended with (see
    /// `Session::finish_audited`). Outside a session (a new machine, no vault yet) the free
    /// function [`verify`] runs: whoever holds the file and its key may check it.
    pub fn verify_backup_file(
        &mut self,
        path: &Path,
        opener: &Opener<'_>,
        progress: Progress<'_>,
    ) -> Result<BackupCheck> {
        let mut run = self.begin_audited(
            Need::Permission(Permission::BackupManage),
            Event::new("backup.verify"),
        )?;
        match verify(path, opener, progress) {
            Ok(mut check) => {
                *run.event_mut() = checked(run.event_mut(), &check);
                run.compare_with_earlier_copy(check.anchor.clone());
                check.trail_holds_backup = self.finish_run(&run, None)?;
                Ok(check)
            }
            Err(e) => {
                let _ = self.finish_audited(&run, Some(e.kind()));
                Err(e)
            }
        }
    }

    /// Restores a backup file into a new folder from a signed-in session: as
    /// [`Session::verify_backup_file`], recorded as `backup.restore_copy` in this vault (the
    /// restored vault records `backup.restore` at its first sign-in).
    pub fn restore_backup_file(
        &mut self,
        path: &Path,
        opener: &Opener<'_>,
        to: &Path,
        progress: Progress<'_>,
    ) -> Result<BackupCheck> {
        self.run_audited(
            Need::Permission(Permission::BackupManage),
            Event::new("backup.restore_copy"),
            |_, ev| {
                let check = restore(path, opener, to, progress)?;
                *ev = checked(ev, &check);
                Ok(check)
            },
        )
    }
}

fn checked(ev: &Event, check: &BackupCheck) -> Event {
    ev.clone()
        .detail("backup_id", check.backup_id.to_string())
        .detail("audit_intact", check.vault.audit.intact)
}

fn export_inner(
    session: &mut Session,
    out: &Path,
    passphrase: Option<&SecretString>,
    progress: Progress<'_>,
) -> Result<ExportReport> {
    if out.exists() {
        return Err(Error::AlreadyExists(format!(
            "{} already exists; choose a new file name",
            out.display()
        )));
    }
    let (staged, pass_key) = std::thread::scope(|scope| {
        let derivation = passphrase.map(|p| scope.spawn(move || derive_passphrase_key(p)));
        let staged = snapshot::capture(session, snapshot::Purpose::Backup);
        let pass_key = match derivation {
            None => Ok(None),
            Some(handle) => handle
                .join()
                .map_err(|_| Error::Internal("the key derivation thread failed".into()))
                .and_then(|r| r.map(Some)),
        };
        (staged, pass_key)
    });
    let (staged, pass_key) = (staged?, pass_key?);
    let kf_bytes = fs::read(
        staged
            .files()
            .iter()
            .find(|f| f.rel_path == crate::vault_dir::KEY_FILE)
            .map(|f| f.path.clone())
            .ok_or_else(|| Error::Internal("the staged copy has no key file".into()))?,
    )
    .map_err(Error::io("cannot read the staged key file"))?;
    let kf = KeyFile::parse(&kf_bytes)?;
    let mut recovery_public = [0u8; 32];
    if kf.body.recovery.public_key.0.len() != 32 {
        return Err(Error::Integrity(
            "the key file's recovery key is malformed".into(),
        ));
    }
    recovery_public.copy_from_slice(&kf.body.recovery.public_key.0);

    let backup_key = Secret32::random();
    let backup_id = uuid::Uuid::new_v4();
    let created_at = crate::clock::rfc3339(jiff::Timestamp::now());
    let (recovery, pass) = seal_backup_key(&backup_key, backup_id, &recovery_public, pass_key)?;
    let prefix = random_bytes::<NONCE_PREFIX>();
    let header = Header {
        format: "clinvault-backup".into(),
        version: 1,
        backup_id,
        created_at: created_at.clone(),
        vault_id: staged.keys().vault_id(),
        key_epoch: staged.keys().epoch(),
        chunk_size: CHUNK as u32,
        nonce_prefix: B64(prefix.to_vec()),
        recovery,
        passphrase: pass,
    };
    let pre = preamble(&header)?;
    let (patients, attachments) = counts(&staged)?;
    let manifest = Manifest {
        backup_id,
        created_at,
        created_by: session.user().id.to_string(),
        files: staged
            .files()
            .iter()
            .map(|f| ManifestFile {
                path: f.rel_path.clone(),
                size: f.size,
            })
            .collect(),
        patients,
        attachments,
        audit: staged.anchor().clone(),
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Internal(format!("cannot encode the backup manifest: {e}")))?;

    // Written under a temporary name beside the target and renamed at the end: a half-written
    // backup is never mistaken for a whole one.
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::InvalidInput("--out must name a file".into()))?;
    let tmp = dir.join(format!(".{name}.partial-{}", uuid::Uuid::new_v4()));
    let file = crate::vault_dir::create_private(&tmp).map_err(|e| match e {
        Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
            Error::NotFound(format!("the folder {} does not exist", dir.display()))
        }
        other => other,
    })?;
    let result = (|| -> Result<u64> {
        let mut w = ThreadedWriter::new(file);
        w.write_all(&pre)
            .map_err(Error::io("cannot write the backup"))?;
        let sealing = SealingWriter::new(w, &backup_key, &prefix, chunk_aad(&pre));
        let mut tar = tar::Builder::new(sealing);
        let total = staged.total_size() + manifest_json.len() as u64;
        let mut done = 0u64;
        let mut was_cancelled = false;
        let write_err = |e: io::Error| Error::io("cannot write the backup")(e);
        tar.append(
            &tar_header(MANIFEST_ENTRY, manifest_json.len() as u64)?,
            manifest_json.as_slice(),
        )
        .map_err(write_err)?;
        let keys = staged.keys().to_bytes();
        tar.append(&tar_header(KEYS_ENTRY, keys.len() as u64)?, keys.as_slice())
            .map_err(write_err)?;
        drop(keys);
        for f in staged.files() {
            let src = File::open(&f.path).map_err(Error::io("cannot read the staged copy"))?;
            let counted = Counted {
                inner: src.take(f.size),
                done: &mut done,
                total,
                progress: &mut *progress,
                cancelled: &mut was_cancelled,
            };
            // 1 MiB reads: io::copy inside `append` then moves whole chunks at a time.
            let appended = tar.append(
                &tar_header(&f.rel_path, f.size)?,
                BufReader::with_capacity(CHUNK, counted),
            );
            if was_cancelled {
                return Err(cancelled());
            }
            appended.map_err(write_err)?;
        }
        let sealing = tar.into_inner().map_err(write_err)?;
        let w = sealing.finish().map_err(write_err)?;
        let file = w.finish().map_err(write_err)?;
        file.sync_all()
            .map_err(Error::io("cannot flush the backup"))?;
        Ok(file.metadata().map(|m| m.len()).unwrap_or(0))
    })();
    let bytes = match result {
        Ok(b) => b,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    // Never over an existing file, even one created while we wrote.
    if let Err(e) = fs::hard_link(&tmp, out) {
        let moved = if e.kind() == io::ErrorKind::AlreadyExists {
            Err(Error::AlreadyExists(format!(
                "{} already exists",
                out.display()
            )))
        } else {
            // FAT and exFAT (USB sticks) and some network shares have no hard links.
            claim_and_move(&tmp, out)
        };
        if let Err(e) = moved {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    }
    let _ = fs::remove_file(&tmp);
    let _ = File::open(&dir).and_then(|d| d.sync_all());
    Ok(ExportReport {
        path: out.to_path_buf(),
        backup_id,
        bytes,
        files: staged.files().len(),
        patients,
        attachments,
        audit_entries: staged.anchor().entries,
        with_passphrase: passphrase.is_some(),
    })
}

/// Puts `tmp` at `out` without hard links: claims the name with a new empty file (so an
/// existing file is never replaced), then renames the finished backup over that placeholder.
fn claim_and_move(tmp: &Path, out: &Path) -> Result<()> {
    crate::vault_dir::create_private(out).map_err(|e| match e {
        Error::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists => {
            Error::AlreadyExists(format!("{} already exists", out.display()))
        }
        other => other,
    })?;
    fs::rename(tmp, out).map_err(|e| {
        let _ = fs::remove_file(out);
        Error::io(format!("cannot create {}", out.display()))(e)
    })
}

fn counts(staged: &snapshot::Staged) -> Result<(i64, usize)> {
    let attachments = staged
        .files()
        .iter()
        .filter(|f| f.rel_path.starts_with("attachments/"))
        .count();
    let db = staged
        .files()
        .iter()
        .find(|f: &&StagedFile| f.rel_path == crate::vault_dir::DB_FILE)
        .ok_or_else(|| Error::Internal("the staged copy has no database".into()))?;
    let conn = crate::db::open_existing(&db.path, &staged.keys().db_key()?)?;
    let patients: i64 = conn.query_row("SELECT count(*) FROM patients", [], |r| r.get(0))?;
    Ok((patients, attachments))
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Reads and checks the readable header of a backup file.
pub fn read_header(path: &Path) -> Result<(Header, Vec<u8>, BufReader<File>)> {
    let file = File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::NotFound(format!("no backup file at {}", path.display()))
        } else {
            Error::io(format!("cannot open {}", path.display()))(e)
        }
    })?;
    let mut r = BufReader::with_capacity(CHUNK + TAG, file);
    let mut start = [0u8; 12];
    r.read_exact(&mut start)
        .map_err(|_| Error::Integrity("this is not a ClinVault backup file (too short)".into()))?;
    if &start[..8] != MAGIC {
        return Err(Error::Integrity(
            "this is not a ClinVault backup file".into(),
        ));
    }
    let len = u32::from_be_bytes([start[8], start[9], start[10], start[11]]);
    if len > MAX_HEADER {
        return Err(damaged("header length"));
    }
    let mut json = vec![0u8; len as usize];
    r.read_exact(&mut json).map_err(|_| damaged("header"))?;
    let header: Header = serde_json::from_slice(&json).map_err(|_| damaged("header"))?;
    if header.format != "clinvault-backup" {
        return Err(damaged("header"));
    }
    if header.version != 1 {
        return Err(Error::Incompatible(format!(
            "this backup uses format version {}; update ClinVault to restore it",
            header.version
        )));
    }
    if header.chunk_size as usize != CHUNK || header.nonce_prefix.0.len() != NONCE_PREFIX {
        return Err(damaged("header"));
    }
    let mut pre = start.to_vec();
    pre.extend_from_slice(&json);
    Ok((header, pre, r))
}

fn open_backup_key(header: &Header, opener: &Opener<'_>) -> Result<Secret32> {
    let opened = match opener {
        Opener::RecoveryKey(key) => {
            if key.public()?.as_slice() != header.recovery.public_key.0.as_slice() {
                return Err(Error::Authentication(
                    "this recovery key does not belong to the vault this backup was made from"
                        .into(),
                ));
            }
            crypto::open(
                key.secret(),
                &header.recovery.sealed,
                RECOVERY_INFO,
                header.backup_id.as_bytes(),
            )
            .ok_or_else(|| damaged("the recovery recipient"))?
        }
        Opener::Passphrase(p) => {
            let rec = header.passphrase.as_ref().ok_or_else(|| {
                Error::Authentication(
                    "this backup has no backup passphrase; open it with the recovery key".into(),
                )
            })?;
            let kek = crypto::derive_kek(p, &rec.kdf)?;
            crypto::unwrap(
                &kek,
                &rec.wrapped,
                &passphrase_aad(header.backup_id, &rec.kdf),
            )
            .ok_or_else(|| {
                Error::Authentication(
                    "wrong backup passphrase (or the backup's header was altered)".into(),
                )
            })?
        }
    };
    let mut bytes = opened.to_vec();
    Secret32::from_slice_wiping(&mut bytes).ok_or_else(|| damaged("the backup key"))
}

fn allowed_entry(path: &str) -> bool {
    if matches!(
        path,
        crate::vault_dir::KEY_FILE | crate::vault_dir::DB_FILE | crate::checkpoint::CHECKPOINT_FILE
    ) {
        return true;
    }
    path.strip_prefix("attachments/")
        .and_then(|n| n.strip_suffix(".bin"))
        .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
}

/// Decrypts the whole backup into `work` (encrypted files only: the SQLCipher database and the
/// already-encrypted attachments) and returns the vault keys it carries and its manifest.
fn unpack(
    path: &Path,
    opener: &Opener<'_>,
    work: &Path,
    progress: Progress<'_>,
) -> Result<(Header, Manifest, VaultKeys)> {
    let (header, pre, r) = read_header(path)?;
    let key = open_backup_key(&header, opener)?;
    let total = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let failed = Rc::new(Cell::new(None));
    let reader = OpeningReader::new(
        r,
        &key,
        &header.nonce_prefix.0,
        chunk_aad(&pre),
        failed.clone(),
    )
    .map_err(Error::io("cannot read the backup"))?;
    let mut archive = tar::Archive::new(reader);
    let mut manifest: Option<Manifest> = None;
    let mut keys: Option<VaultKeys> = None;
    let mut seen = std::collections::HashSet::new();
    let mut done = 0u64;
    let entry_err = |failed: &Rc<Cell<Option<&'static str>>>| {
        let failed = failed.clone();
        move |_e: io::Error| damaged(failed.get().unwrap_or("the archive inside is malformed"))
    };
    {
        let entries = archive.entries().map_err(entry_err(&failed))?;
        for entry in entries {
            let mut entry = entry.map_err(entry_err(&failed))?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(damaged("an unexpected entry"));
            }
            let name = entry
                .path()
                .map_err(entry_err(&failed))?
                .to_string_lossy()
                .into_owned();
            let size = entry.size();
            if !seen.insert(name.clone()) {
                return Err(damaged("a file appears twice"));
            }
            match (name.as_str(), &manifest) {
                (MANIFEST_ENTRY, None) => {
                    if size > 64 * 1024 * 1024 {
                        return Err(damaged("manifest size"));
                    }
                    let mut buf = Vec::new();
                    entry.read_to_end(&mut buf).map_err(entry_err(&failed))?;
                    manifest =
                        Some(serde_json::from_slice(&buf).map_err(|_| damaged("the manifest"))?);
                }
                (KEYS_ENTRY, Some(_)) => {
                    let mut buf = Zeroizing::new(Vec::new());
                    entry.read_to_end(&mut buf).map_err(entry_err(&failed))?;
                    keys = Some(VaultKeys::from_bytes(&buf)?);
                }
                (other, Some(m)) if allowed_entry(other) => {
                    if !m.files.iter().any(|f| f.path == other && f.size == size) {
                        return Err(damaged("a file the manifest does not list"));
                    }
                    let mut out = crate::vault_dir::create_private(&work.join(other))?;
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut writeback = crate::writeback::Tracker::default();
                    loop {
                        let n = entry.read(&mut buf).map_err(entry_err(&failed))?;
                        if n == 0 {
                            break;
                        }
                        out.write_all(&buf[..n])
                            .map_err(Error::io("cannot write the restored files"))?;
                        writeback.wrote(&out, n as u64);
                        done += n as u64;
                        if !progress(done, total) {
                            return Err(cancelled());
                        }
                    }
                    // Made durable all at once below, before anything is verified or renamed.
                    writeback.flush(&out);
                }
                _ => return Err(damaged("an unexpected entry")),
            }
        }
    }
    archive
        .into_inner()
        .finish()
        .map_err(|_| damaged(failed.get().unwrap_or("the end of the file")))?;
    crate::writeback::sync_tree(work).map_err(Error::io("cannot flush the restored files"))?;
    let manifest = manifest.ok_or_else(|| damaged("no manifest"))?;
    let keys = keys.ok_or_else(|| damaged("no vault key"))?;
    if manifest.backup_id != header.backup_id
        || keys.vault_id() != header.vault_id
        || keys.epoch() != header.key_epoch
    {
        return Err(damaged("the header does not match the content"));
    }
    for f in &manifest.files {
        if !seen.contains(&f.path) {
            return Err(damaged("a listed file is missing"));
        }
    }
    Ok((header, manifest, keys))
}

/// What a checked backup holds.
#[derive(Clone, Debug, Serialize)]
pub struct BackupCheck {
    pub backup_id: uuid::Uuid,
    pub created_at: String,
    pub vault_id: uuid::Uuid,
    pub files: usize,
    #[serde(flatten)]
    pub vault: snapshot::VerifyReport,
    /// Where the backup's audit trail ended (from its manifest), for comparing with the live
    /// trail of the vault it was made from.
    #[serde(skip)]
    pub anchor: snapshot::AuditAnchor,
    /// Checked from a session of the vault the backup was made from: whether that vault's
    /// trail still holds what the backup's trail ended with (false: entries were cut off since,
    /// or an older copy was restored, and no re-anchoring accepted it). None otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trail_holds_backup: Option<bool>,
}

/// Decrypts everything, then checks the database (SQLCipher page MACs, SQLite integrity) and the
/// audit trail, and decrypts every attachment — without restoring. The decrypted files are the
/// still-encrypted database and attachments, in a private folder under the system temp
/// directory, removed afterwards.
pub fn verify(path: &Path, opener: &Opener<'_>, progress: Progress<'_>) -> Result<BackupCheck> {
    let base = std::env::temp_dir().join(format!("clinvault-verify-{}", uuid::Uuid::new_v4()));
    snapshot::create_private_dir(&base)?;
    let result = (|| {
        snapshot::create_private_dir(&base.join("attachments"))?;
        let (header, manifest, keys) = unpack(path, opener, &base, progress)?;
        let vault = snapshot::verify_dir(&base, &keys)?;
        Ok(BackupCheck {
            backup_id: header.backup_id,
            created_at: header.created_at,
            vault_id: header.vault_id,
            files: manifest.files.len(),
            vault,
            anchor: manifest.audit,
            trail_holds_backup: None,
        })
    })();
    let _ = fs::remove_dir_all(&base);
    result
}

/// Restores a backup into `to`, a folder that must not exist yet. Everything is decrypted and
/// verified beside it first; only a copy that passed every check is moved into place.
pub fn restore(
    path: &Path,
    opener: &Opener<'_>,
    to: &Path,
    progress: Progress<'_>,
) -> Result<BackupCheck> {
    let work = snapshot::restore_workspace(to)?;
    let unpacked = unpack(path, opener, &work, progress);
    let (header, manifest, keys) = match unpacked {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    let vault = snapshot::finish_restore(
        &work,
        to,
        &keys,
        &format!("backup file {}", header.backup_id),
    )?;
    Ok(BackupCheck {
        backup_id: header.backup_id,
        created_at: header.created_at,
        vault_id: header.vault_id,
        files: manifest.files.len(),
        vault,
        anchor: manifest.audit,
        trail_holds_backup: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The way a backup is put in place where the file system has no hard links.
    #[test]
    fn claim_and_move_puts_the_backup_in_place_and_never_over_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, out) = (dir.path().join(".b.partial"), dir.path().join("b.cvbackup"));
        fs::write(&tmp, b"backup bytes").unwrap();
        claim_and_move(&tmp, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"backup bytes");
        assert!(!tmp.exists());

        fs::write(&tmp, b"a second backup").unwrap();
        let e = claim_and_move(&tmp, &out).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::AlreadyExists, "{e}");
        assert_eq!(
            fs::read(&out).unwrap(),
            b"backup bytes",
            "the existing file is kept"
        );
    }
}
