//! `sync restore`: writes a snapshot's files into a fresh folder, checking every blob against
//! its keyed hash and every pack against its name. A missing or damaged pack fails the restore
//! with an integrity error; nothing is made visible here — the caller verifies the folder (core
//! `snapshot::finish_restore`) and only then renames it into place.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use zeroize::Zeroizing;

use clinvault_core::{writeback, Error, ErrorKind, Result};

use crate::keys::{storage_name, BlobId};
use crate::lock::RepoLock;
use crate::pack::{open_chunk_data, BlobData};
use crate::progress::{phase, Progress, ProgressEvent};
use crate::repo::{info, short, Index, Loc, Repository};

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

/// Shows the report only: the keys stay out of logs and panics.
impl std::fmt::Debug for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restored")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// Reads a pack and checks it against its name (the name is the hash of its content).
fn read_pack(repo: &Repository, pack: &str) -> Result<Vec<u8>> {
    let bytes = repo
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
    Ok(bytes)
}

/// Opens one blob of a pack already read and checked.
fn blob_in(
    repo: &Repository,
    pack: &str,
    bytes: &[u8],
    loc: &Loc,
    id: &BlobId,
) -> Result<BlobData> {
    let end = loc.offset.saturating_add(loc.length);
    if end > bytes.len() as u64 {
        return Err(Error::Integrity(format!(
            "pack {} is shorter than its index says",
            short(pack)
        )));
    }
    open_chunk_data(&repo.keys, id, &bytes[loc.offset as usize..end as usize])
}

/// One file of the snapshot with the location of each of its blobs, resolved before anything is
/// written so that an incomplete repository fails before the restore starts.
struct PlannedFile<'s> {
    path: &'s str,
    size: u64,
    blobs: Vec<(BlobId, Loc)>,
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
        let mut plan = Vec::with_capacity(snap.files.len());
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
            let mut blobs = Vec::with_capacity(f.blobs.len());
            for b in &f.blobs {
                let id = BlobId::parse(b)?;
                let loc = *index.blobs.get(&id).ok_or_else(|| {
                    Error::Integrity(format!(
                        "blob {} of the snapshot is in no index: the repository is incomplete",
                        &id.hex()[..16]
                    ))
                })?;
                blobs.push((id, loc));
            }
            plan.push(PlannedFile {
                path: &f.path,
                size: f.size,
                blobs,
            });
        }
        // Packs in the order the files need them; a pack comes again only if the file order
        // leaves it and returns (packs are written in file order, so that is rare).
        let mut packs: Vec<u32> = Vec::new();
        for b in plan.iter().flat_map(|f| &f.blobs) {
            if packs.last() != Some(&b.1.pack) {
                packs.push(b.1.pack);
            }
        }
        let packs_read = packs.len() as u64;
        create_private_dir(into)?;
        // Three stages on their own threads, so reading and hashing packs, opening blobs and
        // writing them (with the disk's writeback started early) overlap; memory stays bounded
        // by the channels. Everything is made durable at once at the end.
        std::thread::scope(|scope| -> Result<()> {
            let (pack_tx, pack_rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(2);
            let names = &index.pack_names;
            let reader = scope.spawn(move || {
                for p in packs {
                    let r = match names.get(p as usize) {
                        Some(name) => read_pack(self, name),
                        None => Err(Error::Integrity("the sync index is damaged".into())),
                    };
                    let failed = r.is_err();
                    if pack_tx.send(r).is_err() || failed {
                        break;
                    }
                }
            });
            let (out_tx, out_rx) = std::sync::mpsc::sync_channel::<Out>(16);
            let writer = scope.spawn(move || write_out(out_rx));
            let opened = open_blobs(self, &index, &plan, into, &pack_rx, &out_tx, progress);
            drop(pack_rx);
            drop(out_tx);
            let _ = reader.join();
            let wrote = writer
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("the restore writer failed".into())));
            // A write failure (a full disk) explains an early stop better than its symptom.
            wrote.and(opened)
        })?;
        writeback::sync_tree(into).map_err(io("writing a restored file"))?;
        progress.event(ProgressEvent::PhaseDone);
        Ok(Restored {
            report: RestoreReport {
                snapshot: name.to_owned(),
                time: snap.time.clone(),
                files: inf.files,
                bytes: inf.bytes,
                packs_read,
                anchor: snap.anchor.clone(),
            },
            vault_keys: Zeroizing::new(snap.vault_keys.0.to_vec()),
        })
    }
}

/// What the blob-opening stage hands the writer: start a file, or append to it.
enum Out {
    File(PathBuf),
    Data(BlobData),
}

/// Opens every planned blob, in plan order, from the packs the reader delivers, checks each
/// file's size, and hands the data to the writer.
fn open_blobs(
    repo: &Repository,
    index: &Index,
    plan: &[PlannedFile<'_>],
    into: &Path,
    packs: &std::sync::mpsc::Receiver<Result<Vec<u8>>>,
    out: &std::sync::mpsc::SyncSender<Out>,
    progress: &dyn Progress,
) -> Result<()> {
    let writer_gone = || Error::Integrity("the restore stopped writing files".into());
    let mut current: Option<(u32, Vec<u8>)> = None;
    for f in plan {
        out.send(Out::File(into.join(f.path)))
            .map_err(|_| writer_gone())?;
        let mut written = 0u64;
        for (id, loc) in &f.blobs {
            if current.as_ref().map(|c| c.0) != Some(loc.pack) {
                let bytes = packs.recv().map_err(|_| {
                    Error::Integrity("the restore stopped reading the sync target".into())
                })??;
                current = Some((loc.pack, bytes));
            }
            let Some((_, bytes)) = current.as_ref() else {
                continue;
            };
            let data = blob_in(repo, index.pack_name(loc), bytes, loc, id)?;
            let n = data.as_slice().len() as u64;
            written += n;
            out.send(Out::Data(data)).map_err(|_| writer_gone())?;
            progress.event(ProgressEvent::Advance { done: n });
        }
        if written != f.size {
            return Err(Error::Integrity(format!(
                "a restored file has {written} bytes where the snapshot says {}",
                f.size
            )));
        }
    }
    Ok(())
}

/// Writes what `open_blobs` hands over, starting the disk's writeback as it goes, so the disk
/// works while the next blobs are decrypted.
fn write_out(rx: std::sync::mpsc::Receiver<Out>) -> Result<()> {
    let mut current: Option<(std::fs::File, writeback::Tracker)> = None;
    for message in rx {
        match message {
            Out::File(dest) => {
                if let Some((file, mut wb)) = current.take() {
                    wb.flush(&file);
                }
                if let Some(parent) = dest.parent() {
                    create_private_dir(parent)?;
                }
                current = Some((create_private_file(&dest)?, writeback::Tracker::default()));
            }
            Out::Data(data) => {
                let Some((file, wb)) = current.as_mut() else {
                    return Err(Error::Internal("restore data before its file".into()));
                };
                let data = data.as_slice();
                file.write_all(data)
                    .map_err(io("writing a restored file"))?;
                wb.wrote(file, data.len() as u64);
            }
        }
    }
    if let Some((file, mut wb)) = current.take() {
        wb.flush(&file);
    }
    Ok(())
}
