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

fn damaged(id: &BlobId) -> Error {
    Error::Integrity(format!(
        "blob {} in the sync repository is damaged or was tampered with",
        &id.hex()[..16]
    ))
}

/// Checks that a blob's content hashes to its id (keyed BLAKE3).
pub fn check_id(keys: &DerivedKeys, id: &BlobId, data: &[u8]) -> Result<()> {
    if keys.blob_id(data) != *id {
        return Err(damaged(id));
    }
    Ok(())
}

/// Opens a sealed blob and checks that its content hashes to its id.
pub fn open_chunk(keys: &DerivedKeys, id: &BlobId, sealed: &[u8]) -> Result<Vec<u8>> {
    let body = keys.open_blob(id, sealed).ok_or_else(|| damaged(id))?;
    let data = match body.first() {
        Some(&RAW) => body[1..].to_vec(),
        Some(&ZSTD) => zstd::stream::decode_all(&body[1..]).map_err(|_| damaged(id))?,
        _ => return Err(damaged(id)),
    };
    check_id(keys, id, &data)?;
    Ok(data)
}

/// Where an opened blob's data is: inside the buffer it was decrypted in (a stored blob), or in
/// a buffer of its own (a compressed one).
pub enum Opened {
    InPlace(std::ops::Range<usize>),
    Decompressed(Vec<u8>),
}

/// For restores: authenticates a blob under its id (the AEAD tag, with the id in the AAD) and
/// decrypts it where it lies in the pack buffer, so a stored blob is never copied. Unlike
/// [`open_chunk`] it does not hash the data: the restore's writer calls [`check_id`] on each
/// blob before writing it, on its own thread.
pub fn open_chunk_in_place(keys: &DerivedKeys, id: &BlobId, sealed: &mut [u8]) -> Result<Opened> {
    let body = keys
        .open_blob_in_place(id, sealed)
        .ok_or_else(|| damaged(id))?;
    match sealed.get(body.clone()).and_then(|b| b.split_first()) {
        Some((&RAW, _)) => Ok(Opened::InPlace(body.start + 1..body.end)),
        Some((&ZSTD, z)) => Ok(Opened::Decompressed(
            zstd::stream::decode_all(z).map_err(|_| damaged(id))?,
        )),
        _ => Err(damaged(id)),
    }
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
