//! `sync restore`: writes a snapshot's files into a fresh folder, checking every blob against
//! its keyed hash and every pack against its name. A missing or damaged pack fails the restore
//! with an integrity error; nothing is made visible here — the caller verifies the folder (core
//! `snapshot::finish_restore`) and only then renames it into place.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use zeroize::Zeroizing;

use clinvault_core::{Error, ErrorKind, Result};

use crate::keys::{storage_name, BlobId};
use crate::lock::RepoLock;
use crate::pack::open_chunk;
use crate::progress::{phase, Progress, ProgressEvent};
use crate::repo::{info, short, Index, Repository};

#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    pub snapshot: String,
    pub time: String,
    pub files: usize,
    pub bytes: u64,
    pub packs_read: u64,
    #[serde(skip)]
    pub anchor: serde_json::Value,
}

/// Secret material a restore hands back to the caller (the vault keys of the snapshot).
pub struct Restored {
    pub report: RestoreReport,
    pub vault_keys: Zeroizing<Vec<u8>>,
}

/// One downloaded pack at a time: packs are written in file order, so restoring in file order
/// reads each pack about once.
pub(crate) struct PackCache<'a> {
    repo: &'a Repository,
    name: String,
    bytes: Vec<u8>,
    pub reads: u64,
}

/// Shows the report only: the keys stay out of logs and panics.
impl std::fmt::Debug for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restored")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl<'a> PackCache<'a> {
    pub fn new(repo: &'a Repository) -> Self {
        PackCache {
            repo,
            name: String::new(),
            bytes: Vec::new(),
            reads: 0,
        }
    }

    pub fn blob(&mut self, index: &Index, id: &BlobId) -> Result<Vec<u8>> {
        let loc = index.blobs.get(id).ok_or_else(|| {
            Error::Integrity(format!(
                "blob {} of the snapshot is in no index: the repository is incomplete",
                &id.hex()[..16]
            ))
        })?;
        let pack = index.pack_name(loc);
        if self.name != pack {
            let bytes = self
                .repo
                .backend
                .read(&format!("data/{pack}"))
                .map_err(|e| match e.kind() {
                    ErrorKind::NotFound => Error::Integrity(format!(
                        "pack {} is missing from the sync target",
                        short(pack)
                    )),
                    _ => e,
                })?;
            if storage_name(&bytes) != pack {
                return Err(Error::Integrity(format!(
                    "pack {} on the sync target is damaged (its content does not match its name)",
                    short(pack)
                )));
            }
            self.name = pack.to_owned();
            self.bytes = bytes;
            self.reads += 1;
        }
        let end = loc.offset.saturating_add(loc.length);
        if end > self.bytes.len() as u64 {
            return Err(Error::Integrity(format!(
                "pack {} is shorter than its index says",
                short(pack)
            )));
        }
        open_chunk(
            &self.repo.keys,
            id,
            &self.bytes[loc.offset as usize..end as usize],
        )
    }
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        context: context.to_owned(),
        source: e,
    }
}

/// True for a folder holding only empty folders (a restore workspace the core prepared).
fn holds_no_files(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|rd| {
        rd.flatten()
            .all(|e| e.file_type().is_ok_and(|t| t.is_dir()) && holds_no_files(&e.path()))
    })
}

fn create_private_dir(p: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(p).map_err(io("creating a folder for the restore"))
}

fn create_private_file(p: &Path) -> Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(p).map_err(io("writing a restored file"))
}

impl Repository {
    /// Restores snapshot `name` into `into`, which must not exist yet (it is created 0700).
    pub fn restore_files(
        &self,
        name: &str,
        into: &Path,
        progress: &dyn Progress,
    ) -> Result<Restored> {
        if into.exists() && !holds_no_files(into) {
            return Err(Error::AlreadyExists(format!(
                "{} already exists: restore into a new folder",
                into.display()
            )));
        }
        let _lock = RepoLock::acquire(&self.backend, &self.keys, false)?;
        let snap = self.read_snapshot(name)?;
        let index = self.load_index()?;
        let inf = info(name, &snap);
        phase(progress, "restore", inf.bytes, "bytes");
        create_private_dir(into)?;
        let mut cache = PackCache::new(self);
        for f in &snap.files {
            if !f
                .path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
            {
                return Err(Error::Integrity(
                    "a snapshot names a file outside the vault folder".into(),
                ));
            }
            let dest: PathBuf = into.join(&f.path);
            if let Some(parent) = dest.parent() {
                create_private_dir(parent)?;
            }
            let mut out = std::io::BufWriter::with_capacity(1 << 20, create_private_file(&dest)?);
            let mut written = 0u64;
            for b in &f.blobs {
                let id = BlobId::parse(b)?;
                let data = cache.blob(&index, &id)?;
                written += data.len() as u64;
                out.write_all(&data)
                    .map_err(io("writing a restored file"))?;
                progress.event(ProgressEvent::Advance {
                    done: data.len() as u64,
                });
            }
            let file = out.into_inner().map_err(|e| Error::Io {
                context: "writing a restored file".into(),
                source: e.into_error(),
            })?;
            file.sync_all().map_err(io("writing a restored file"))?;
            if written != f.size {
                return Err(Error::Integrity(format!(
                    "a restored file has {written} bytes where the snapshot says {}",
                    f.size
                )));
            }
        }
        progress.event(ProgressEvent::PhaseDone);
        Ok(Restored {
            report: RestoreReport {
                snapshot: name.to_owned(),
                time: snap.time.clone(),
                files: inf.files,
                bytes: inf.bytes,
                packs_read: cache.reads,
                anchor: snap.anchor.clone(),
            },
            vault_keys: Zeroizing::new(snap.vault_keys.0.to_vec()),
        })
    }
}
