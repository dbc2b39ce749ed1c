//! `sync restore`: writes a snapshot's files into a fresh folder, reading from each pack only
//! the blobs the snapshot needs and checking every one of them (its AEAD tag under its id, then
//! the keyed hash of its content against the id) before a byte of it is written. A missing pack,
//! or damage to any byte the restore reads, fails the restore with an integrity error; nothing
//! is made visible here — the caller verifies the folder (core `snapshot::finish_restore`) and
//! only then renames it into place. Pack names are checked by `sync check --read-data`, not here
//! (format §6.4 says why).

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;
use zeroize::Zeroizing;

use clinvault_core::{writeback, Error, ErrorKind, Result};

use crate::keys::{BlobId, DerivedKeys};
use crate::lock::RepoLock;
use crate::pack::{check_id, open_chunk_in_place, Opened};
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

/// Reads the part of a pack a run of blobs needs. The pack's name (the unkeyed BLAKE3 of all its
/// bytes) is not checked, so the rest of the pack need not be read: every byte a restore uses is
/// authenticated by its blob's AEAD tag (format §6.4). `sync check --read-data` checks names.
fn read_span(repo: &Repository, names: &[String], span: &Span) -> Result<Vec<u8>> {
    let pack = names
        .get(span.pack as usize)
        .ok_or_else(|| Error::Integrity("the sync index is damaged".into()))?;
    let path = format!("data/{pack}");
    let missing = || {
        Error::Integrity(format!(
            "pack {} is missing from the sync target",
            short(pack)
        ))
    };
    let len = span.end - span.start;
    let bytes = repo
        .backend
        .read_range(&path, span.start, len)
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => missing(),
            // Services report a range beyond the end in their own ways; the object's size says
            // whether that is what happened.
            _ => match repo.backend.size(&path) {
                Ok(None) => missing(),
                Ok(Some(size)) if size < span.end => shorter(pack),
                _ => e,
            },
        })?;
    if bytes.len() as u64 != len {
        return Err(shorter(pack));
    }
    Ok(bytes)
}

fn shorter(pack: &str) -> Error {
    Error::Integrity(format!(
        "pack {} is shorter than its index says",
        short(pack)
    ))
}

/// Opens one blob of a span just read, decrypting it in place in the span's buffer.
fn blob_in(
    repo: &Repository,
    pack: &str,
    bytes: &mut [u8],
    blob: &PlannedBlob,
    span_start: u64,
) -> Result<Step> {
    let start = blob
        .loc
        .offset
        .checked_sub(span_start)
        .and_then(|o| usize::try_from(o).ok())
        .unwrap_or(usize::MAX);
    let end = start.saturating_add(usize::try_from(blob.loc.length).unwrap_or(usize::MAX));
    let sealed = bytes.get_mut(start..end).ok_or_else(|| shorter(pack))?;
    let opened = open_chunk_in_place(&repo.keys, &blob.id, sealed)
        .map_err(|e| Error::Integrity(format!("pack {}: {e}", short(pack))))?;
    Ok(match opened {
        Opened::InPlace(r) => Step::Data(start + r.start..start + r.end, blob.id),
        Opened::Decompressed(data) => Step::Owned(data, blob.id),
    })
}

/// One file of the snapshot with the location of each of its blobs, resolved before anything is
/// written so that an incomplete repository fails before the restore starts.
struct PlannedFile<'s> {
    path: &'s str,
    size: u64,
    blobs: Vec<PlannedBlob>,
}

struct PlannedBlob {
    id: BlobId,
    loc: Loc,
    /// The read (an index into the spans) that brings this blob.
    read: usize,
}

/// A byte range of one pack, read in one request: consecutive blobs of the plan that lie in the
/// same pack, each at or after the span's start and at most [`GAP`] past its end so far.
struct Span {
    pack: u32,
    start: u64,
    end: u64,
}

/// Unneeded bytes worth reading to save a request (a remote target answers each one slowly).
const GAP: u64 = 1 << 20;

/// Extends the last span with a blob or starts a new one; returns the blob's span.
fn span_for(spans: &mut Vec<Span>, loc: &Loc) -> usize {
    let end = loc.offset.saturating_add(loc.length);
    match spans.last_mut() {
        Some(s)
            if s.pack == loc.pack
                && loc.offset >= s.start
                && loc.offset <= s.end.saturating_add(GAP) =>
        {
            s.end = s.end.max(end);
        }
        _ => spans.push(Span {
            pack: loc.pack,
            start: loc.offset,
            end,
        }),
    }
    spans.len() - 1
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
        // The reads, in the order the files need them: a pack is visited again only if the
        // file order leaves it and returns (as a database's changed blocks do, which later
        // pushes stored in newer packs), and then only the blobs needed are read.
        let mut spans: Vec<Span> = Vec::new();
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
                let read = span_for(&mut spans, &loc);
                blobs.push(PlannedBlob { id, loc, read });
            }
            plan.push(PlannedFile {
                path: &f.path,
                size: f.size,
                blobs,
            });
        }
        let mut packs: Vec<u32> = spans.iter().map(|s| s.pack).collect();
        packs.sort_unstable();
        packs.dedup();
        let packs_read = packs.len() as u64;
        create_private_dir(into)?;
        // Three stages on their own threads, so reading spans, decrypting blobs in place and
        // hashing and writing them (with the disk's writeback started early) overlap; memory
        // stays bounded by the channels (a span is at most a pack). Everything is made durable
        // at once at the end.
        std::thread::scope(|scope| -> Result<()> {
            let (read_tx, read_rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(2);
            let (names, spans) = (&index.pack_names, &spans);
            let reader = scope.spawn(move || {
                for span in spans {
                    let r = read_span(self, names, span);
                    let failed = r.is_err();
                    if read_tx.send(r).is_err() || failed {
                        break;
                    }
                }
            });
            let (out_tx, out_rx) = std::sync::mpsc::sync_channel::<Batch>(1);
            let keys = &self.keys;
            let writer = scope.spawn(move || write_out(keys, out_rx));
            let plan = (&plan[..], &spans[..]);
            let opened = open_blobs(self, &index, plan, into, &read_rx, &out_tx, progress);
            drop(read_rx);
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

/// What the blob-opening stage hands the writer: one span's buffer, its blobs decrypted in
/// place, and the steps that use it, in plan order.
struct Batch {
    buf: Vec<u8>,
    steps: Vec<Step>,
}

#[derive(Clone)]
enum Step {
    /// Start the next file.
    File(PathBuf),
    /// Append this range of the batch's buffer (a stored blob's data, whose id follows).
    Data(Range<usize>, BlobId),
    /// Append a decompressed blob.
    Owned(Vec<u8>, BlobId),
}

/// Opens every planned blob, in plan order, from the spans the reader delivers, checks each
/// file's size, and hands the writer one batch per span.
fn open_blobs(
    repo: &Repository,
    index: &Index,
    (plan, spans): (&[PlannedFile<'_>], &[Span]),
    into: &Path,
    reads: &std::sync::mpsc::Receiver<Result<Vec<u8>>>,
    out: &std::sync::mpsc::SyncSender<Batch>,
    progress: &dyn Progress,
) -> Result<()> {
    let send = |buf: Vec<u8>, steps: Vec<Step>| {
        out.send(Batch { buf, steps })
            .map_err(|_| Error::Integrity("the restore stopped writing files".into()))
    };
    let mut current: Option<(usize, Vec<u8>)> = None;
    let mut steps = Vec::new();
    // The blobs of the current span already opened (a blob can occur twice in a snapshot, and
    // an opened blob cannot be decrypted again where it lies).
    let mut opened: HashMap<u64, (BlobId, Step)> = HashMap::new();
    for f in plan {
        steps.push(Step::File(into.join(f.path)));
        let mut written = 0u64;
        for b in &f.blobs {
            if current.as_ref().map(|c| c.0) != Some(b.read) {
                send(
                    current.take().map(|c| c.1).unwrap_or_default(),
                    std::mem::take(&mut steps),
                )?;
                opened.clear();
                let bytes = reads.recv().map_err(|_| {
                    Error::Integrity("the restore stopped reading the sync target".into())
                })??;
                current = Some((b.read, bytes));
            }
            let (Some((_, bytes)), Some(span)) = (current.as_mut(), spans.get(b.read)) else {
                return Err(Error::Internal("restore plan out of step".into()));
            };
            let step = match opened.get(&b.loc.offset) {
                Some((seen, step)) if *seen == b.id => step.clone(),
                _ => {
                    let step = blob_in(repo, index.pack_name(&b.loc), bytes, b, span.start)?;
                    opened.insert(b.loc.offset, (b.id, step.clone()));
                    step
                }
            };
            let n = match &step {
                Step::Data(r, _) => r.len(),
                Step::Owned(data, _) => data.len(),
                Step::File(_) => 0,
            } as u64;
            written += n;
            steps.push(step);
            progress.event(ProgressEvent::Advance { done: n });
        }
        if written != f.size {
            return Err(Error::Integrity(format!(
                "a restored file has {written} bytes where the snapshot says {}",
                f.size
            )));
        }
    }
    send(current.map(|c| c.1).unwrap_or_default(), steps)
}

/// Writes what `open_blobs` hands over, starting the disk's writeback as it goes, so the disk
/// works while the next blobs are decrypted.
fn write_out(keys: &DerivedKeys, rx: std::sync::mpsc::Receiver<Batch>) -> Result<()> {
    let mut current: Option<(std::fs::File, writeback::Tracker)> = None;
    for batch in rx {
        for step in batch.steps {
            let (data, id) = match &step {
                Step::File(dest) => {
                    if let Some((file, mut wb)) = current.take() {
                        wb.flush(&file);
                    }
                    if let Some(parent) = dest.parent() {
                        create_private_dir(parent)?;
                    }
                    current = Some((create_private_file(dest)?, writeback::Tracker::default()));
                    continue;
                }
                Step::Data(r, id) => (
                    batch
                        .buf
                        .get(r.clone())
                        .ok_or_else(|| Error::Internal("restore data outside its buffer".into()))?,
                    id,
                ),
                Step::Owned(data, id) => (data.as_slice(), id),
            };
            // The keyed hash of the data against its id, here rather than in `open_blobs` so
            // that it runs beside the decryption of the next blobs; nothing is written before it.
            check_id(keys, id, data)?;
            let Some((file, wb)) = current.as_mut() else {
                return Err(Error::Internal("restore data before its file".into()));
            };
            file.write_all(data)
                .map_err(io("writing a restored file"))?;
            wb.wrote(file, data.len() as u64);
        }
    }
    if let Some((file, mut wb)) = current.take() {
        wb.flush(&file);
    }
    Ok(())
}
