//! Patient attachments (scanned letters, images, any file up to 1 GiB). The content is a file
//! `attachments/<id>.bin` in the vault directory, encrypted with a random per-file key by
//! XChaCha20-Poly1305 in the STREAM construction (Hoang–Reyhanitabar–Rogaway–Vizár; the
//! `aead::stream` BE32 variant): 1 MiB plaintext chunks, each sealed with its position and a
//! last-chunk flag in the nonce, the attachment id as associated data — so truncation,
//! reordering, swapping files or a flipped bit is detected. The per-file key lives only inside
//! the encrypted database. Content is written and read a chunk at a time (memory stays bounded)
//! and opened only into a writer the caller provides, never through a plaintext temporary file.
//!
//! File layout: 8 bytes magic "CVATT\0v1", 19 bytes random nonce prefix, then the sealed chunks
//! (each 1 MiB + 16-byte tag, the last one shorter).

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::PathBuf;

use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::crypto::{random_bytes, Secret32};
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};
use crate::vault_dir::{create_private, VaultDir};

pub const CHUNK: usize = 1024 * 1024;
pub const MAX_SIZE: u64 = 1024 * 1024 * 1024;
const MAGIC: &[u8; 8] = b"CVATT\0v1";
const NONCE_PREFIX: usize = 19;
const TAG: usize = 16;

#[derive(Clone, Debug, Serialize)]
pub struct Attachment {
    pub id: String,
    pub patient_id: String,
    pub file_name: String,
    pub media_type: String,
    pub size: i64,
    pub created_at: String,
}

/// A media type from the file name, for viewers; unknown types are plain bytes.
pub fn media_type_for(file_name: &str) -> &'static str {
    match file_name
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("tif" | "tiff") => "image/tiff",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

fn io_err(context: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        context: context.to_owned(),
        source: e,
    }
}

fn store(dir: &VaultDir) -> PathBuf {
    dir.file("attachments")
}

/// The attachment folder, owner-only like the vault directory around it.
fn create_store(dir: &VaultDir) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(store(dir))
        .map_err(io_err("cannot create the attachment store"))
}

pub(crate) fn path_of(dir: &VaultDir, id: &str) -> PathBuf {
    store(dir).join(format!("{id}.bin"))
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn fill(input: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> Result<usize> {
    buf.clear();
    buf.resize(want, 0);
    let mut filled = 0;
    while filled < want {
        let n = input
            .read(&mut buf[filled..])
            .map_err(io_err("cannot read the attachment"))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(filled)
}

/// Encrypts `content` into a new file; returns (size, sha256 of the plaintext).
fn write_encrypted(
    path: &std::path::Path,
    key: &Secret32,
    id: &str,
    content: &mut dyn Read,
) -> Result<(u64, [u8; 32])> {
    let mut out = create_private(path)?;
    let prefix = random_bytes::<NONCE_PREFIX>();
    out.write_all(MAGIC)
        .and_then(|_| out.write_all(&prefix))
        .map_err(io_err("cannot write the attachment"))?;
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let mut enc = Some(EncryptorBE32::from_aead(cipher, prefix.as_slice().into()));
    let mut hasher = Sha256::new();
    let (mut current, mut next) = (
        Vec::with_capacity(CHUNK + TAG),
        Vec::with_capacity(CHUNK + TAG),
    );
    let mut size = fill(content, &mut current, CHUNK)? as u64;
    loop {
        // Look one chunk ahead: the last chunk is sealed differently, so the end is provable.
        let more = if current.len() == CHUNK {
            fill(content, &mut next, CHUNK)?
        } else {
            0
        };
        size += more as u64;
        if size > MAX_SIZE {
            return Err(Error::InvalidInput("file: larger than 1 GiB".into()));
        }
        hasher.update(&current);
        let failed = || Error::Internal("cannot encrypt the attachment".into());
        if more == 0 {
            enc.take()
                .ok_or_else(failed)?
                .encrypt_last_in_place(id.as_bytes(), &mut current)
                .map_err(|_| failed())?;
            out.write_all(&current)
                .map_err(io_err("cannot write the attachment"))?;
            break;
        }
        enc.as_mut()
            .ok_or_else(failed)?
            .encrypt_next_in_place(id.as_bytes(), &mut current)
            .map_err(|_| failed())?;
        out.write_all(&current)
            .map_err(io_err("cannot write the attachment"))?;
        std::mem::swap(&mut current, &mut next);
    }
    out.sync_all()
        .map_err(io_err("cannot flush the attachment"))?;
    Ok((size, hasher.finalize().into()))
}

fn damaged() -> Error {
    Error::Integrity(
        "the attachment's file is damaged or was tampered with; restore it from a backup".into(),
    )
}

/// Decrypts the file into `out`, checking every chunk, the end, and the plaintext checksum.
pub(crate) fn read_encrypted(
    path: &std::path::Path,
    key: &Secret32,
    id: &str,
    size: i64,
    sha: &[u8],
    out: &mut dyn Write,
) -> Result<()> {
    let mut file = File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Integrity("the attachment's file is missing; restore it from a backup".into())
        } else {
            Error::Io {
                context: "cannot open the attachment".into(),
                source: e,
            }
        }
    })?;
    let mut header = [0u8; 8 + NONCE_PREFIX];
    file.read_exact(&mut header).map_err(|_| damaged())?;
    if &header[..8] != MAGIC {
        return Err(damaged());
    }
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let mut dec = Some(DecryptorBE32::from_aead(cipher, header[8..].into()));
    let mut hasher = Sha256::new();
    let mut written: i64 = 0;
    let (mut current, mut next) = (
        Vec::with_capacity(CHUNK + TAG),
        Vec::with_capacity(CHUNK + TAG),
    );
    fill(&mut file, &mut current, CHUNK + TAG)?;
    loop {
        let more = if current.len() == CHUNK + TAG {
            fill(&mut file, &mut next, CHUNK + TAG)?
        } else {
            0
        };
        if more == 0 {
            dec.take()
                .ok_or_else(damaged)?
                .decrypt_last_in_place(id.as_bytes(), &mut current)
                .map_err(|_| damaged())?;
        } else {
            dec.as_mut()
                .ok_or_else(damaged)?
                .decrypt_next_in_place(id.as_bytes(), &mut current)
                .map_err(|_| damaged())?;
        }
        hasher.update(&current);
        out.write_all(&current)
            .map_err(io_err("cannot write the attachment out"))?;
        written += current.len() as i64;
        if more == 0 {
            break;
        }
        std::mem::swap(&mut current, &mut next);
    }
    if written != size || hasher.finalize().as_slice() != sha {
        return Err(damaged());
    }
    Ok(())
}

/// Decrypts and checks one stored attachment file without writing its content anywhere (backup
/// and restore verification).
pub(crate) fn verify_file(
    path: &std::path::Path,
    file_key: &[u8],
    id: &str,
    size: i64,
    sha: &[u8],
) -> Result<()> {
    let mut copy = file_key.to_vec();
    let key = Secret32::from_slice_wiping(&mut copy).ok_or_else(damaged)?;
    read_encrypted(path, &key, id, size, sha, &mut std::io::sink())
}

pub(crate) type Row = (Attachment, Vec<u8>, Vec<u8>);

pub(crate) fn load(conn: &rusqlite::Connection, id: &str) -> Result<Row> {
    conn.query_row(
        "SELECT id, patient_id, file_name, media_type, size, created_at, sha256, file_key FROM attachments WHERE id = ?1",
        [id],
        |r| {
            Ok((
                Attachment { id: r.get(0)?, patient_id: r.get(1)?, file_name: r.get(2)?, media_type: r.get(3)?, size: r.get(4)?, created_at: r.get(5)? },
                r.get(6)?,
                r.get(7)?,
            ))
        },
    )
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("no attachment with id {id}")))
}

impl Session {
    /// Stores `content` as an attachment of the patient. The file name is kept for display but
    /// never recorded in the audit trail.
    pub fn add_attachment(
        &mut self,
        patient_id: &str,
        file_name: &str,
        content: &mut dyn Read,
    ) -> Result<Attachment> {
        let name = file_name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 255 {
            return Err(Error::InvalidInput("file name: 1–255 characters".into()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let event = Event::new("attachment.add")
            .target("patient", patient_id)
            .detail("attachment", id.as_str());
        // Check first, so someone without the permission cannot even write a file.
        self.authorize(
            Need::Permission(Permission::AttachmentsWrite),
            event.clone(),
        )?;
        crate::patients::ensure_can_add_records(self.vault()?.conn(), patient_id)?;
        let dir = self.dir().clone();
        create_store(&dir)?;
        let key = Secret32::random();
        let part = store(&dir).join(format!("{id}.part"));
        let written = write_encrypted(&part, &key, &id, content);
        let (size, sha) = match written {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&part);
                return Err(e);
            }
        };
        let final_path = path_of(&dir, &id);
        fs::rename(&part, &final_path).map_err(io_err("cannot store the attachment"))?;
        let media = media_type_for(&name);
        let now = rfc3339(self.clock().now());
        let result = self.gate(Need::Permission(Permission::AttachmentsWrite), event, |tx, ev| {
            tx.execute(
                "INSERT INTO attachments (id, patient_id, file_name, media_type, size, sha256, file_key, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, patient_id, name, media, size as i64, sha.as_slice(), key.expose().as_slice(), now],
            )?;
            *ev = ev.clone().detail("bytes", size).detail("media_type", media);
            Ok(load(tx, &id)?.0)
        });
        if result.is_err() {
            let _ = fs::remove_file(&final_path);
        }
        result
    }

    /// Streams an attachment into `out`, checking it as it goes.
    pub fn read_attachment(&mut self, id: &str, out: &mut dyn Write) -> Result<Attachment> {
        let dir = self.dir().clone();
        let event = Event::new("attachment.view").target("attachment", id);
        self.gate(
            Need::Permission(Permission::AttachmentsRead),
            event,
            |tx, ev| {
                let (meta, sha, key) = load(tx, id)?;
                ev.about_patient(&meta.patient_id);
                let mut key = key;
                let key = Secret32::from_slice_wiping(&mut key)
                    .ok_or_else(|| Error::Integrity("an attachment key is malformed".into()))?;
                read_encrypted(&path_of(&dir, id), &key, id, meta.size, &sha, out)?;
                Ok(meta)
            },
        )
    }

    pub fn list_attachments(&mut self, patient_id: &str) -> Result<Vec<Attachment>> {
        let event = Event::new("attachment.list").target("patient", patient_id);
        self.gate(
            Need::Permission(Permission::AttachmentsRead),
            event,
            |tx, _| {
                let ids: Vec<String> = tx
                    .prepare(
                        "SELECT id FROM attachments WHERE patient_id = ?1 ORDER BY created_at",
                    )?
                    .query_map([patient_id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                ids.iter().map(|id| load(tx, id).map(|x| x.0)).collect()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(
        len: usize,
    ) -> (
        Vec<u8>,
        std::path::PathBuf,
        tempfile::TempDir,
        Secret32,
        [u8; 32],
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.bin");
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let key = Secret32::random();
        let (size, sha) = write_encrypted(&path, &key, "id-1", &mut data.as_slice()).unwrap();
        assert_eq!(size as usize, len);
        let mut out = Vec::new();
        read_encrypted(&path, &key, "id-1", len as i64, &sha, &mut out).unwrap();
        assert_eq!(out, data);
        (data, path, tmp, key, sha)
    }

    #[test]
    fn chunk_boundaries_round_trip() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK] {
            round_trip(len);
        }
    }

    #[test]
    fn truncation_bit_flips_and_swapped_ids_are_detected() {
        let (_d, path, _t, key, sha) = round_trip(2 * CHUNK + 10);
        let full = fs::read(&path).unwrap();
        let len = (2 * CHUNK + 10) as i64;
        let read = |bytes: &[u8], id: &str| {
            fs::write(&path, bytes).unwrap();
            read_encrypted(&path, &key, id, len, &sha, &mut Vec::new())
        };
        // Cut exactly at a chunk boundary: the last chunk flag catches it.
        let cut = 8 + NONCE_PREFIX + 2 * (CHUNK + TAG);
        assert_eq!(
            read(&full[..cut], "id-1").unwrap_err().kind(),
            crate::ErrorKind::Integrity
        );
        let mut flipped = full.clone();
        flipped[CHUNK + 100] ^= 1;
        assert_eq!(
            read(&flipped, "id-1").unwrap_err().kind(),
            crate::ErrorKind::Integrity
        );
        assert_eq!(
            read(&full, "id-2").unwrap_err().kind(),
            crate::ErrorKind::Integrity
        );
        assert!(read(&full, "id-1").is_ok());
    }
}
