//! Patient attachments (scanned letters, images, any file up to 1 GiB), stored inside the
//! encrypted database in 1 MiB chunks: written and read one chunk at a time, so memory stays
//! bounded, and opened only into a writer the caller provides — never through a plaintext
//! temporary file. A SHA-256 of the content is checked on every read.

use std::io::{Read, Write};

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};

pub const CHUNK: usize = 1024 * 1024;
pub const MAX_SIZE: u64 = 1024 * 1024 * 1024;

#[derive(Clone, Debug, Serialize)]
pub struct Attachment {
    pub id: String,
    pub patient_id: String,
    pub file_name: String,
    pub media_type: String,
    pub size: i64,
    pub created_at: String,
}

fn load(conn: &rusqlite::Connection, id: &str) -> Result<(Attachment, Vec<u8>)> {
    conn.query_row(
        "SELECT id, patient_id, file_name, media_type, size, created_at, sha256 FROM attachments WHERE id = ?1",
        [id],
        |r| Ok((Attachment { id: r.get(0)?, patient_id: r.get(1)?, file_name: r.get(2)?, media_type: r.get(3)?, size: r.get(4)?, created_at: r.get(5)? }, r.get(6)?)),
    )
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("no attachment with id {id}")))
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

fn io_err(e: std::io::Error) -> Error {
    Error::Io {
        context: "attachment data".into(),
        source: e,
    }
}

impl Session {
    /// Stores `content` as an attachment of the patient. The file name is kept (it may be shown
    /// in the app) but never recorded in the audit trail.
    pub fn add_attachment(
        &mut self,
        patient_id: &str,
        file_name: &str,
        content: &mut dyn Read,
    ) -> Result<Attachment> {
        let name = file_name.trim();
        if name.is_empty() || name.chars().count() > 255 {
            return Err(Error::InvalidInput("file name: 1–255 characters".into()));
        }
        let media = media_type_for(name);
        let id = uuid::Uuid::new_v4().to_string();
        let now = rfc3339(self.clock().now());
        let event = Event::new("attachment.add")
            .target("patient", patient_id)
            .detail("attachment", id.as_str());
        self.gate(Need::Permission(Permission::AttachmentsWrite), event, |tx, ev| {
            let exists: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM patients WHERE id = ?1)", [patient_id], |r| r.get(0))?;
            if !exists {
                return Err(Error::NotFound(format!("no patient with id {patient_id}")));
            }
            tx.execute(
                "INSERT INTO attachments (id, patient_id, file_name, media_type, size, sha256, created_at) VALUES (?1, ?2, ?3, ?4, 0, x'', ?5)",
                params![id, patient_id, name, media, now],
            )?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; CHUNK];
            let mut size: u64 = 0;
            let mut idx: i64 = 0;
            let mut insert = tx.prepare_cached("INSERT INTO attachment_chunks (attachment_id, idx, data) VALUES (?1, ?2, ?3)")?;
            loop {
                // Fill a whole chunk (readers may return short reads).
                let mut filled = 0;
                while filled < CHUNK {
                    let n = content.read(&mut buf[filled..]).map_err(io_err)?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                size += filled as u64;
                if size > MAX_SIZE {
                    return Err(Error::InvalidInput("file: larger than 1 GiB".into()));
                }
                hasher.update(&buf[..filled]);
                insert.execute(params![id, idx, &buf[..filled]])?;
                idx += 1;
                if filled < CHUNK {
                    break;
                }
            }
            drop(insert);
            let digest = hasher.finalize();
            tx.execute("UPDATE attachments SET size = ?1, sha256 = ?2 WHERE id = ?3", params![size as i64, digest.as_slice(), id])?;
            *ev = ev.clone().detail("bytes", size).detail("media_type", media);
            Ok(load(tx, &id)?.0)
        })
    }

    /// Streams an attachment into `out` chunk by chunk, checking its SHA-256 at the end.
    pub fn read_attachment(&mut self, id: &str, out: &mut dyn Write) -> Result<Attachment> {
        let event = Event::new("attachment.view").target("attachment", id);
        self.gate(
            Need::Permission(Permission::AttachmentsRead),
            event,
            |tx, ev| {
                let (meta, expected) = load(tx, id)?;
                *ev = ev.clone().detail("patient", meta.patient_id.as_str());
                let mut hasher = Sha256::new();
                let mut st = tx.prepare_cached(
                    "SELECT data FROM attachment_chunks WHERE attachment_id = ?1 ORDER BY idx",
                )?;
                let mut rows = st.query([id])?;
                let mut written: i64 = 0;
                while let Some(r) = rows.next()? {
                    let data = r.get_ref(0)?.as_blob().map_err(|_| {
                        Error::Integrity("an attachment chunk is not binary".into())
                    })?;
                    hasher.update(data);
                    out.write_all(data).map_err(io_err)?;
                    written += data.len() as i64;
                }
                if written != meta.size || hasher.finalize().as_slice() != expected.as_slice() {
                    return Err(Error::Integrity(
                        "the attachment's content does not match its checksum".into(),
                    ));
                }
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
