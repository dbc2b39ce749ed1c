//! Writing the audit trail. Each entry is chained to the previous one by SHA-256 and signed with
//! the signer's Ed25519 key, so entries cannot be edited, removed, inserted or reordered without
//! detection, and nobody can produce valid entries signed as somebody else.
//! Entry hash = SHA-256(tuple("clinvault/v1/audit-entry", seq, at, actor_id, actor_name, device,
//! action, target_type, target_id, outcome, details, signer_id, signer_key, prev_hash)); the
//! first entry's prev_hash is SHA-256(tuple("clinvault/v1/audit-genesis", vault_id)).

use ed25519_dalek::SigningKey;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::encoding::tuple;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// What happened, without clinical content: field names, never values; ids, never names.
#[derive(Clone, Debug)]
pub struct Event {
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: Outcome,
    pub details: serde_json::Value,
}

impl Event {
    pub fn new(action: &str) -> Self {
        Event {
            action: action.to_owned(),
            target_type: None,
            target_id: None,
            outcome: Outcome::Ok,
            details: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, kind: &str, id: impl ToString) -> Self {
        self.target_type = Some(kind.to_owned());
        self.target_id = Some(id.to_string());
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        if let serde_json::Value::Object(map) = &mut self.details {
            map.insert(key.to_owned(), value.into());
        }
        self
    }

    /// Names the patient whose note, appointment, invoice or attachment the entry is about (an
    /// id, never a name), so that a search for the patient finds it too (see `audit_lookup`).
    pub(crate) fn about_patient(&mut self, patient_id: &str) {
        if let serde_json::Value::Object(map) = &mut self.details {
            map.insert(PATIENT_DETAIL.to_owned(), patient_id.into());
        }
    }
}

/// The detail that names the patient an entry is about when its target is one of their records.
pub(crate) const PATIENT_DETAIL: &str = "patient";

/// Who the entry is about (the actor) and who signs it.
pub struct Author<'a> {
    pub actor_id: Option<String>,
    pub actor_name: &'a str,
    pub device: &'a str,
    pub signer_id: String,
    pub signer: &'a SigningKey,
    /// Nonces made ahead for the signer's session, if it keeps them (the gate's entries).
    pub(crate) nonces: Option<&'a crate::audit_signing::NoncePool>,
}

pub struct EntryFields<'a> {
    pub seq: i64,
    pub at: &'a str,
    pub actor_id: Option<&'a str>,
    pub actor_name: &'a str,
    pub device: &'a str,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub outcome: &'a str,
    pub details: &'a str,
    pub signer_id: &'a str,
    pub signer_key: &'a [u8],
    pub prev_hash: &'a [u8],
}

fn opt(v: Option<&str>) -> Vec<u8> {
    // Distinguishes absent from empty: absent is a lone 0x00, present is 0x01 + bytes.
    match v {
        None => vec![0],
        Some(s) => {
            let mut out = vec![1];
            out.extend_from_slice(s.as_bytes());
            out
        }
    }
}

/// The filter SQLite matches against the partial index `audit_milestones` (migrations 9 and
/// 12): a query for one of these actions contains it word for word to use the index.
macro_rules! milestones {
    () => {
        "(action = 'sync.push' OR action = 'backup.export' OR action = 'session.end')"
    };
}
pub(crate) use milestones;

/// Whether any session ever ended (a vault that was never closed has no checkpoint yet).
pub(crate) const ANY_SESSION_ENDED_SQL: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM audit_log WHERE ",
    milestones!(),
    " AND action = 'session.end')"
);

pub fn entry_hash(f: &EntryFields<'_>) -> [u8; 32] {
    let actor_id = opt(f.actor_id);
    let target_type = opt(f.target_type);
    let target_id = opt(f.target_id);
    let bytes = tuple(&[
        b"clinvault/v1/audit-entry",
        &f.seq.to_be_bytes(),
        f.at.as_bytes(),
        &actor_id,
        f.actor_name.as_bytes(),
        f.device.as_bytes(),
        f.action.as_bytes(),
        &target_type,
        &target_id,
        f.outcome.as_bytes(),
        f.details.as_bytes(),
        f.signer_id.as_bytes(),
        f.signer_key,
        f.prev_hash,
    ]);
    Sha256::digest(bytes).into()
}

pub fn genesis_hash(vault_id: &str) -> [u8; 32] {
    Sha256::digest(tuple(&[b"clinvault/v1/audit-genesis", vault_id.as_bytes()])).into()
}

pub(crate) fn vault_id(conn: &Connection) -> Result<String> {
    conn.query_row(
        "SELECT value FROM vault_meta WHERE key = 'vault_id'",
        [],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| Error::Integrity("the vault has no id".into()))
}

/// Appends one entry in the caller's transaction and returns its sequence number.
pub(crate) fn append(
    conn: &Connection,
    at: &str,
    author: &Author<'_>,
    event: &Event,
) -> Result<i64> {
    let last: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (
            seq.checked_add(1).ok_or_else(|| {
                Error::Integrity("the audit trail's last entry number is out of range".into())
            })?,
            hash,
        ),
        None => {
            // After pruning the trail is non-empty by construction, so only a fresh vault lands here.
            (1, genesis_hash(&vault_id(conn)?).to_vec())
        }
    };
    let details = serde_json::to_string(&event.details)
        .map_err(|e| Error::Internal(format!("cannot encode audit details: {e}")))?;
    let signer_key = author.signer.verifying_key().to_bytes();
    let fields = EntryFields {
        seq,
        at,
        actor_id: author.actor_id.as_deref(),
        actor_name: author.actor_name,
        device: author.device,
        action: &event.action,
        target_type: event.target_type.as_deref(),
        target_id: event.target_id.as_deref(),
        outcome: event.outcome.as_str(),
        details: &details,
        signer_id: &author.signer_id,
        signer_key: &signer_key,
        prev_hash: &prev_hash,
    };
    let hash = entry_hash(&fields);
    let signature = crate::audit_signing::sign(author.signer, author.nonces, &hash).to_bytes();
    let written = conn
        .prepare_cached(
            "INSERT INTO audit_log (seq, at, actor_id, actor_name, device, action, target_type,
             target_id, outcome, details, signer_id, signer_key, prev_hash, hash, signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?
        .execute(params![
            seq,
            at,
            author.actor_id,
            author.actor_name,
            author.device,
            event.action,
            event.target_type,
            event.target_id,
            event.outcome.as_str(),
            details,
            author.signer_id,
            signer_key.as_slice(),
            prev_hash,
            hash.as_slice(),
            signature.as_slice()
        ])?;
    // A trigger planted by someone holding the database key could swallow the row (RAISE
    // IGNORE) or remove it as it lands, and the operation would commit without its entry: the
    // entry must be there, as written, or the operation does not commit.
    let stored: Option<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM audit_log WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()?;
    if written != 1 || stored.as_deref() != Some(hash.as_slice()) {
        return Err(Error::Integrity(
            "the audit entry for this operation was not kept by the database, so the \
             operation was not done: the vault's schema may have been altered outside \
             ClinVault; an administrator should sign in again and run audit verify"
                .into(),
        ));
    }
    Ok(seq)
}
