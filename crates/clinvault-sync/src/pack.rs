//! Packs: many sealed blobs in one object, so a push makes few large requests. Layout:
//! `entry*  header  u32le(len(header))`, where each entry is a sealed blob (nonce ‖ ciphertext)
//! and the header is the sealed list of the pack's blobs (enough to rebuild the index).

use clinvault_core::{Error, Result};

use crate::keys::{storage_name, BlobId, DerivedKeys};
use crate::model::{PackBlob, PackEntry};

/// Blob bodies start with this flag.
pub const RAW: u8 = 0;
pub const ZSTD: u8 = 1;

pub struct Packer {
    buf: Vec<u8>,
    blobs: Vec<PackBlob>,
}

pub struct SealedPack {
    pub name: String,
    pub bytes: Vec<u8>,
    pub entry: PackEntry,
}

impl Packer {
    pub fn new(capacity: usize) -> Self {
        Packer {
            buf: Vec::with_capacity(capacity + (1 << 20)),
            blobs: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Adds an already sealed blob.
    pub fn add_sealed(&mut self, id: &BlobId, sealed: &[u8]) {
        self.blobs.push(PackBlob {
            id: id.hex(),
            offset: self.buf.len() as u64,
            length: sealed.len() as u64,
        });
        self.buf.extend_from_slice(sealed);
    }

    pub fn finish(self, keys: &DerivedKeys) -> Result<SealedPack> {
        let Packer { mut buf, blobs } = self;
        let header = serde_json::to_vec(&blobs)
            .map_err(|_| Error::Internal("pack header encoding failed".into()))?;
        let sealed = keys.seal_meta("pack-header", &header)?;
        buf.extend_from_slice(&sealed);
        buf.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        let name = storage_name(&buf);
        Ok(SealedPack {
            entry: PackEntry {
                id: name.clone(),
                size: buf.len() as u64,
                blobs,
            },
            name,
            bytes: buf,
        })
    }
}

/// Seals one chunk as a blob body: zstd when `try_compress` and it saves at least 1/32.
pub fn seal_chunk(
    keys: &DerivedKeys,
    id: &BlobId,
    chunk: &[u8],
    try_compress: bool,
) -> Result<(Vec<u8>, bool)> {
    let mut body = Vec::with_capacity(chunk.len() + 1);
    let mut compressed = false;
    if try_compress {
        if let Ok(z) = zstd::bulk::compress(chunk, 3) {
            if z.len() + z.len() / 32 < chunk.len() {
                body.push(ZSTD);
                body.extend_from_slice(&z);
                compressed = true;
            }
        }
    }
    if !compressed {
        body.push(RAW);
        body.extend_from_slice(chunk);
    }
    Ok((keys.seal_blob(id, &body)?, compressed))
}

/// Opens a sealed blob and checks that its content hashes to its id.
pub fn open_chunk(keys: &DerivedKeys, id: &BlobId, sealed: &[u8]) -> Result<Vec<u8>> {
    let damaged = || {
        Error::Integrity(format!(
            "blob {} in the sync repository is damaged or was tampered with",
            &id.hex()[..16]
        ))
    };
    let body = keys.open_blob(id, sealed).ok_or_else(damaged)?;
    let data = match body.first() {
        Some(&RAW) => body[1..].to_vec(),
        Some(&ZSTD) => zstd::stream::decode_all(&body[1..]).map_err(|_| damaged())?,
        _ => return Err(damaged()),
    };
    if keys.blob_id(&data) != *id {
        return Err(damaged());
    }
    Ok(data)
}

/// A restored blob's data: the decrypted buffer and where the data starts in it (after the
/// one-byte RAW flag), so that restoring never copies a blob a second time.
pub struct BlobData {
    buf: Vec<u8>,
    start: usize,
}

impl BlobData {
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

/// As [`open_chunk`], for restores: the same checks (authentication under the blob's id, the
/// keyed hash of the data against the id), without a copy of raw blobs.
pub fn open_chunk_data(keys: &DerivedKeys, id: &BlobId, sealed: &[u8]) -> Result<BlobData> {
    let damaged = || {
        Error::Integrity(format!(
            "blob {} in the sync repository is damaged or was tampered with",
            &id.hex()[..16]
        ))
    };
    let body = keys.open_blob_in_place(id, sealed).ok_or_else(damaged)?;
    let data = match body.first() {
        Some(&RAW) => BlobData {
            buf: body,
            start: 1,
        },
        Some(&ZSTD) => BlobData {
            buf: zstd::stream::decode_all(&body[1..]).map_err(|_| damaged())?,
            start: 0,
        },
        _ => return Err(damaged()),
    };
    if keys.blob_id(data.as_slice()) != *id {
        return Err(damaged());
    }
    Ok(data)
}

/// The blob list stored at the end of a pack.
pub fn read_header(keys: &DerivedKeys, pack: &[u8]) -> Result<Vec<PackBlob>> {
    let bad = || Error::Integrity("a pack's header is damaged".into());
    if pack.len() < 4 {
        return Err(bad());
    }
    let (rest, len) = pack.split_at(pack.len() - 4);
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > rest.len() {
        return Err(bad());
    }
    let plain = keys.open_meta("pack-header", &rest[rest.len() - len..])?;
    serde_json::from_slice(&plain).map_err(|_| bad())
}
