//! Verifying the audit trail: every entry's hash recomputed, the chain followed from the genesis
//! (or from the signed checkpoint of the last prune), every signature checked against a signing
//! key whose registration is authenticated by the integrity key, and the end of the trail
//! compared with the checkpoint kept outside the database. The first bad entry is reported with
//! what is wrong with it.
//!
//! Cost per entry: one SHA-256 over a few hundred bytes and one Ed25519 verification; signatures
//! are checked in batches (ed25519-dalek's batch verification, about twice as fast), so the
//! construction bounds verification at roughly the batch-verification rate of the machine.

use std::collections::HashMap;

use ed25519_dalek::{Signature, VerifyingKey};
use serde::Serialize;

use crate::audit::{entry_hash, genesis_hash, EntryFields};
use crate::checkpoint::Checkpoint;
use crate::crypto::Secret32;
use crate::error::Result;
use crate::users;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    Modified,
    Inserted,
    Deleted,
    Reordered,
    Truncated,
    BadSignature,
    /// The lookup from records to their entries was altered; the entries themselves are intact.
    LookupAltered,
    /// The checkpoint outside the database was replaced (found missing or not authentic) and no
    /// administrator has anchored the trail anew since: the entries are intact, but whether
    /// entries were cut from the end before the replacement cannot be ruled out.
    AnchorReplaced,
}

#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub seq: i64,
    pub kind: ProblemKind,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub intact: bool,
    pub entries_checked: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub problem: Option<Problem>,
    /// What the checkpoint outside the database says about the end of the trail.
    pub checkpoint: String,
    /// When the trail is otherwise intact: the latest finding about its anchors that no
    /// re-anchoring has accepted since (a replaced checkpoint, or a sync push or backup check
    /// that found a copy vouching for entries the trail no longer holds).
    /// `Session::verify_audit` reports it as the problem; a backup's copy is judged without it
    /// (the live vault's administrator answers for it).
    pub anchor_replaced: Option<Problem>,
}

/// Actions whose entries are signed by someone other than the actor, by design: failed
/// sign-ins carried in by the next person to sign in (only as failures: a sign-in that
/// succeeded is always signed by the person who signed in).
const CARRIED: &[&str] = &["signin", "signin.locked_out"];

struct Row {
    seq: i64,
    at: String,
    actor_id: Option<String>,
    actor_name: String,
    device: String,
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    outcome: String,
    details: String,
    signer_id: String,
    signer_key: Vec<u8>,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
    signature: Vec<u8>,
}

/// The key epoch a checkpoint's integrity MAC is judged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacEpoch {
    pub current: u64,
    /// A rotation promoted `current` and the checkpoint has not been anchored under it yet
    /// (the key file says so, under its MAC): a checkpoint of an earlier epoch, whose integrity
    /// key is gone, stands on its signature alone.
    pub earlier_stands: bool,
}

impl MacEpoch {
    /// A copy (backup, sync snapshot) is judged in its own epoch only: every copy is made by a
    /// session, after the sign-in that anchored under the current key.
    pub fn only(current: u64) -> MacEpoch {
        MacEpoch {
            current,
            earlier_stands: false,
        }
    }
}

/// A checkpoint is authentic when a registered key of its signer signed it and its integrity
/// MAC is from the current key epoch — or, for one made before a rotation that has not been
/// re-anchored yet (a crash between the two), on the signature alone.
pub(crate) fn checkpoint_authentic(
    keys: &HashMap<String, Vec<[u8; 32]>>,
    ik: &Secret32,
    epoch: MacEpoch,
    cp: &Checkpoint,
) -> bool {
    let signed = keys
        .get(&cp.signer)
        .is_some_and(|ks| ks.iter().any(|k| cp.verify_signature(k)));
    signed
        && match cp.mac_epoch {
            Some(e) if e == epoch.current => cp.verify_mac(ik),
            Some(e) => epoch.earlier_stands && e < epoch.current,
            None => false,
        }
}

/// The checkpoint kept outside the database that verification and anchoring compare with:
/// whichever of the file and the keyring copy vouches for more, unless the other is authentic
/// and no longer matches the trail while that one does. A keyring copy that vouches for less
/// than the file (it moves only with full anchoring) still catches a trail cut and regrown
/// elsewhere and brought back with a consistent file; a file that vouches for less, a keyring
/// copy rewritten in step with the trail. Err when the file is damaged.
pub(crate) fn stored_checkpoint(
    conn: &rusqlite::Connection,
    dir: &crate::vault_dir::VaultDir,
    ik: &Secret32,
    epoch: MacEpoch,
    keyring: Option<Checkpoint>,
) -> Result<Option<Checkpoint>> {
    let file = crate::checkpoint::read_file(dir);
    let (f, k) = match (file, keyring) {
        (Ok(Some(f)), Some(k)) => (f, k),
        (Ok(None), Some(k)) => return Ok(Some(k)),
        (other, _) => return other,
    };
    let keys = trusted_keys(conn, ik)?;
    if !checkpoint_authentic(&keys, ik, epoch, &k) {
        return Ok(Some(f));
    }
    let (longer, shorter) = if k.size > f.size { (k, f) } else { (f, k) };
    let shorter_is_evidence = checkpoint_authentic(&keys, ik, epoch, &shorter)
        && !trail_disagrees(conn, &longer)?
        && trail_disagrees(conn, &shorter)?;
    Ok(Some(if shorter_is_evidence { shorter } else { longer }))
}

/// True when the trail no longer holds what `cp` vouches for: it ends before the checkpoint's
/// entry, or that entry is another. An entry pruned since proves nothing either way.
pub(crate) fn trail_disagrees(conn: &rusqlite::Connection, cp: &Checkpoint) -> Result<bool> {
    trail_disagrees_at(conn, cp.size, &cp.head_hash)
}

/// As `trail_disagrees`, for an anchor that says its last entry is `seq` with hash `head`.
pub(crate) fn trail_disagrees_at(
    conn: &rusqlite::Connection,
    seq: i64,
    head: &[u8],
) -> Result<bool> {
    let (end, at_seq): (Option<i64>, Option<Vec<u8>>) = conn.query_row(
        "SELECT (SELECT max(seq) FROM audit_log), (SELECT hash FROM audit_log WHERE seq = ?1)",
        [seq],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(end.unwrap_or(0) < seq || at_seq.is_some_and(|h| h != head))
}

pub(crate) fn trusted_keys(
    conn: &rusqlite::Connection,
    ik: &Secret32,
) -> Result<HashMap<String, Vec<[u8; 32]>>> {
    let mut st = conn
        .prepare("SELECT user_id, ed25519_public, x25519_public, valid_from, mac FROM user_keys")?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out: HashMap<String, Vec<[u8; 32]>> = HashMap::new();
    for (user, ed, x, from, mac) in rows {
        let genuine =
            mac.is_some_and(|m| users::key_registration_is_genuine(ik, &user, &ed, &x, &from, &m));
        if let (true, Ok(key)) = (genuine, <[u8; 32]>::try_from(ed.as_slice())) {
            out.entry(user).or_default().push(key);
        }
    }
    Ok(out)
}

fn problem(seq: i64, kind: ProblemKind, detail: impl Into<String>) -> Problem {
    Problem {
        seq,
        kind,
        detail: detail.into(),
    }
}

/// Where the retained trail starts: after the last prune, from its signed checkpoint. The mark
/// counts only with the prune's own entry in the retained trail (signed by whoever signed the
/// checkpoint, and verified with the rest): a checkpoint copied into the marks table by someone
/// going around the app would otherwise hide the deletion of every entry up to it.
fn start(
    conn: &rusqlite::Connection,
    vault_id: &str,
    keys: &HashMap<String, Vec<[u8; 32]>>,
) -> Result<(i64, Vec<u8>, Option<Problem>)> {
    let mark: Option<(i64, String)> = rusqlite::OptionalExtension::optional(conn.query_row(
        "SELECT upto_seq, checkpoint FROM audit_prune_marks ORDER BY upto_seq DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    ))?;
    let Some((upto, text)) = mark else {
        return Ok((1, genesis_hash(vault_id).to_vec(), None));
    };
    let trusted = Checkpoint::parse(&text).ok().filter(|cp| {
        cp.size == upto
            && keys
                .get(&cp.signer)
                .is_some_and(|ks| ks.iter().any(|k| cp.verify_signature(k)))
    });
    match trusted {
        Some(cp) => {
            let recorded: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM audit_log WHERE seq > ?1 AND action = 'audit.prune'
                     AND outcome = 'ok' AND signer_id = ?2
                     AND CASE WHEN json_valid(details) THEN json_extract(details, '$.upto_seq')
                         END = ?1)",
                rusqlite::params![upto, cp.signer],
                |r| r.get(0),
            )?;
            let missing = (!recorded).then(|| {
                problem(
                    upto.saturating_add(1),
                    ProblemKind::Deleted,
                    format!(
                        "the entries up to {upto} are gone and no prune of them is recorded in \
                         the trail"
                    ),
                )
            });
            Ok((upto.saturating_add(1), cp.head_hash.to_vec(), missing))
        }
        None => Ok((
            upto.saturating_add(1),
            Vec::new(),
            Some(problem(
                upto,
                ProblemKind::BadSignature,
                "the checkpoint recorded when the trail was pruned is not validly signed",
            )),
        )),
    }
}

pub fn verify(
    conn: &rusqlite::Connection,
    vault_id: &str,
    ik: &Secret32,
    epoch: MacEpoch,
    outside: Option<&Checkpoint>,
) -> Result<VerifyReport> {
    let keys = trusted_keys(conn, ik)?;
    let lookup_mark = crate::audit_lookup::mark(conn)?;
    let mut lookup_rows_up_to_mark = 0u64;
    let (mut expected_seq, mut expected_prev, mut found) = start(conn, vault_id, &keys)?;
    let mut st = conn.prepare(
        "SELECT seq, at, actor_id, actor_name, device, action, target_type, target_id, outcome,
                details, signer_id, signer_key, prev_hash, hash, signature
         FROM audit_log ORDER BY seq",
    )?;
    let mut rows = st.query([])?;
    let mut checked = 0u64;
    let mut first_seq = None;
    let mut last_seq = None;
    let mut hash_at_checkpoint: Option<Vec<u8>> = None;
    // The latest finding about the trail's anchors that no re-anchoring has accepted since.
    let mut replaced: Option<Problem> = None;
    // Signatures waiting for batch verification: (seq, message, signature, key).
    let mut batch: Vec<(i64, [u8; 32], Signature, VerifyingKey)> = Vec::with_capacity(256);
    let flush = |batch: &mut Vec<(i64, [u8; 32], Signature, VerifyingKey)>| -> Option<Problem> {
        if batch.is_empty() {
            return None;
        }
        let msgs: Vec<&[u8]> = batch.iter().map(|b| b.1.as_slice()).collect();
        let sigs: Vec<Signature> = batch.iter().map(|b| b.2).collect();
        let vks: Vec<VerifyingKey> = batch.iter().map(|b| b.3).collect();
        let result = if ed25519_dalek::verify_batch(&msgs, &sigs, &vks).is_ok() {
            None
        } else {
            batch
                .iter()
                .find(|(_, m, s, k)| k.verify_strict(m, s).is_err())
                .map(|(seq, ..)| {
                    problem(
                        *seq,
                        ProblemKind::BadSignature,
                        "the signature does not match the entry",
                    )
                })
        };
        batch.clear();
        result
    };
    while found.is_none() {
        let Some(r) = rows.next()? else { break };
        let seq: i64 = r.get(0)?;
        let read = || -> rusqlite::Result<Row> {
            Ok(Row {
                seq,
                at: r.get(1)?,
                actor_id: r.get(2)?,
                actor_name: r.get(3)?,
                device: r.get(4)?,
                action: r.get(5)?,
                target_type: r.get(6)?,
                target_id: r.get(7)?,
                outcome: r.get(8)?,
                details: r.get(9)?,
                signer_id: r.get(10)?,
                signer_key: r.get(11)?,
                prev_hash: r.get(12)?,
                hash: r.get(13)?,
                signature: r.get(14)?,
            })
        };
        let row = match read() {
            Ok(row) => row,
            // Bytes that are not text where the entry holds text (someone wrote them with the
            // DB key): the entry was modified, and is named, rather than the check failing.
            Err(
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::Utf8Error(..),
            ) => {
                first_seq.get_or_insert(seq);
                last_seq = Some(seq);
                checked += 1;
                found = Some(problem(
                    seq,
                    ProblemKind::Modified,
                    "the entry holds bytes that are not valid text",
                ));
                break;
            }
            Err(e) => return Err(e.into()),
        };
        first_seq.get_or_insert(row.seq);
        last_seq = Some(row.seq);
        checked += 1;
        if row.seq < expected_seq {
            // Numbers are checked in order, so a smaller one is a row someone added (a number
            // before the start, or one the pruned part already used).
            found = Some(problem(
                row.seq,
                ProblemKind::Inserted,
                format!(
                    "entry {} does not belong: the trail starts at {expected_seq}",
                    row.seq
                ),
            ));
            break;
        }
        if row.seq != expected_seq {
            found = Some(problem(
                expected_seq,
                ProblemKind::Deleted,
                format!(
                    "entries {expected_seq}..{} are missing",
                    row.seq.saturating_sub(1)
                ),
            ));
            break;
        }
        if row.prev_hash != expected_prev {
            let elsewhere: Option<i64> = rusqlite::OptionalExtension::optional(conn.query_row(
                "SELECT seq FROM audit_log WHERE hash = ?1",
                [&row.prev_hash],
                |r| r.get(0),
            ))?;
            found = Some(match elsewhere {
                Some(other) => problem(
                    row.seq,
                    ProblemKind::Reordered,
                    format!("it follows entry {other}, not entry {}", row.seq - 1),
                ),
                None => problem(
                    row.seq,
                    ProblemKind::Inserted,
                    "it does not link to the entry before it",
                ),
            });
            break;
        }
        let computed = entry_hash(&EntryFields {
            seq: row.seq,
            at: &row.at,
            actor_id: row.actor_id.as_deref(),
            actor_name: &row.actor_name,
            device: &row.device,
            action: &row.action,
            target_type: row.target_type.as_deref(),
            target_id: row.target_id.as_deref(),
            outcome: &row.outcome,
            details: &row.details,
            signer_id: &row.signer_id,
            signer_key: &row.signer_key,
            prev_hash: &row.prev_hash,
        });
        if computed.as_slice() != row.hash {
            found = Some(problem(
                row.seq,
                ProblemKind::Modified,
                "the entry's content does not match its hash",
            ));
            break;
        }
        let registered = keys
            .get(&row.signer_id)
            .is_some_and(|ks| ks.iter().any(|k| k.as_slice() == row.signer_key));
        let in_own_name = row.actor_id.as_deref() == Some(row.signer_id.as_str())
            || (CARRIED.contains(&row.action.as_str()) && row.outcome == "failed");
        let (Ok(key_bytes), Ok(sig_bytes)) = (
            <[u8; 32]>::try_from(row.signer_key.as_slice()),
            <[u8; 64]>::try_from(row.signature.as_slice()),
        ) else {
            found = Some(problem(
                row.seq,
                ProblemKind::BadSignature,
                "malformed key or signature",
            ));
            break;
        };
        let vk = match VerifyingKey::from_bytes(&key_bytes) {
            Ok(vk) if registered && in_own_name => vk,
            _ => {
                found = Some(problem(
                    row.seq,
                    ProblemKind::BadSignature,
                    if !registered {
                        "signed with a key that is not registered to its signer"
                    } else {
                        "signed by one user in another's name"
                    },
                ));
                break;
            }
        };
        batch.push((row.seq, computed, Signature::from_bytes(&sig_bytes), vk));
        if batch.len() == 256 {
            found = flush(&mut batch);
        }
        if row.seq <= lookup_mark {
            lookup_rows_up_to_mark += crate::audit_lookup::rows_for(
                row.target_type.as_deref(),
                row.target_id.as_deref(),
                &row.details,
            );
        }
        if outside.is_some_and(|cp| cp.size == row.seq) {
            hash_at_checkpoint = Some(row.hash.clone());
        }
        match (row.action.as_str(), row.outcome.as_str()) {
            ("audit.checkpoint_replaced", "ok") => {
                replaced = Some(anchor_replaced_at(&row));
            }
            ("sync.push" | "backup.verify", "ok") => {
                if let Some(p) = earlier_copy_not_held(&row) {
                    replaced = Some(p);
                }
            }
            ("audit.reanchor", "ok") => replaced = None,
            _ => {}
        }
        expected_prev = row.hash;
        expected_seq = expected_seq.saturating_add(1);
    }
    // A chain problem later in the batch must not hide an earlier bad signature.
    let sig_problem = flush(&mut batch);
    found = match (found, sig_problem) {
        (Some(a), Some(b)) => Some(if b.seq < a.seq { b } else { a }),
        (a, b) => a.or(b),
    };
    if found.is_none() {
        found = crate::audit_lookup::problem(conn, lookup_mark, lookup_rows_up_to_mark)?
            .map(|(seq, detail)| problem(seq, ProblemKind::LookupAltered, detail));
    }
    let authentic = outside.map(|cp| checkpoint_authentic(&keys, ik, epoch, cp));
    let checkpoint_note = match outside {
        None => "no checkpoint outside the database was found; truncation cannot be ruled out"
            .to_owned(),
        Some(cp) if authentic == Some(false) => {
            if found.is_none() {
                found = Some(problem(
                    cp.size,
                    ProblemKind::BadSignature,
                    "the checkpoint kept outside the database is not authentic",
                ));
            }
            "checkpoint is not authentic".to_owned()
        }
        Some(cp) => {
            let end = last_seq.unwrap_or(expected_seq.saturating_sub(1));
            if found.is_none() && cp.size > end {
                found = Some(problem(
                    end.saturating_add(1),
                    ProblemKind::Truncated,
                    format!(
                        "the trail ends at entry {end} but the checkpoint records {} entries",
                        cp.size
                    ),
                ));
            } else if found.is_none()
                && hash_at_checkpoint
                    .as_deref()
                    .is_some_and(|h| h != cp.head_hash)
            {
                // Every entry chains and verifies, so none was edited in place: the end was
                // cut and the trail went on from the cut (sign-ins append at once).
                found = Some(problem(
                    cp.size,
                    ProblemKind::Truncated,
                    format!(
                        "entries were cut off the end at or before entry {} and the trail went \
                         on from there: that entry is not the one the checkpoint outside the \
                         database records",
                        cp.size
                    ),
                ));
            }
            format!(
                "checkpoint at entry {} {}",
                cp.size,
                if found.is_none() {
                    "matches"
                } else {
                    "checked"
                }
            )
        }
    };
    let anchor_replaced = replaced.filter(|_| found.is_none());
    Ok(VerifyReport {
        intact: found.is_none(),
        entries_checked: checked,
        first_seq,
        last_seq,
        problem: found,
        checkpoint: checkpoint_note,
        anchor_replaced,
    })
}

/// What an `audit.checkpoint_replaced` entry means for the trail, in words for the report.
fn anchor_replaced_at(row: &Row) -> Problem {
    let details = serde_json::from_str::<serde_json::Value>(&row.details).ok();
    let reason = match details.as_ref().and_then(|d| d.get("reason")?.as_str()) {
        Some("missing") => "missing",
        Some("not authentic") => "not authentic",
        _ => "unusable",
    };
    problem(
        row.seq,
        ProblemKind::AnchorReplaced,
        format!(
            "the checkpoint outside the database was {reason} at {} and a new one was written \
             with this entry: entries cut from the end before then cannot be ruled out. Once an \
             administrator has looked into it, anchoring the trail anew (audit reanchor) accepts \
             the trail as it is",
            row.at
        ),
    )
}

/// The copy of the vault whose audit anchor a run of `action` compared with the trail.
pub(crate) fn earlier_copy_name(action: &str) -> &'static str {
    match action {
        "backup.verify" => "the backup file checked",
        _ => "the sync target's latest copy of this vault",
    }
}

/// A run that found an earlier copy of the vault vouching for entries the trail no longer
/// holds (`earlier_copy_held` false): the cut is at or before that copy's last entry.
fn earlier_copy_not_held(row: &Row) -> Option<Problem> {
    let details = serde_json::from_str::<serde_json::Value>(&row.details).ok()?;
    let flag = |name: &str| details.get(name).and_then(serde_json::Value::as_bool);
    if flag("earlier_copy_held")? || flag("earlier_copy_accepted") == Some(true) {
        return None;
    }
    let upto = details.get("earlier_copy_last_seq")?.as_i64()?;
    Some(problem(
        upto,
        ProblemKind::Truncated,
        format!(
            "{} found at {} (entry {}, {}) vouches for entries up to {upto} that the trail no \
             longer holds: entries were cut off at or before entry {upto} and the trail went \
             on, or an older copy was restored. Once an administrator has looked into it, \
             anchoring the trail anew (audit reanchor) accepts the trail as it is",
            earlier_copy_name(&row.action),
            row.at,
            row.seq,
            row.action
        ),
    ))
}
