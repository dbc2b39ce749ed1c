//! Reading the audit trail: filter by user, action, target, outcome and date range, newest
//! first, paginated. Reading it is itself recorded.

use rusqlite::types::Value;
use serde::Serialize;

use crate::audit::Event;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};

#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub device: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub details: serde_json::Value,
    pub signer_id: String,
}

#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Username of the actor.
    pub user: Option<String>,
    /// An exact action, or a prefix ending in '.' (e.g. "user.").
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: Option<String>,
    /// Inclusive lower bound (UTC).
    pub since: Option<jiff::Timestamp>,
    /// Exclusive upper bound (UTC).
    pub until: Option<jiff::Timestamp>,
    /// Only entries with seq below this (the next page after a previous one).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// Parses a date or time someone typed for a filter or a prune. A bare date (YYYY-MM-DD) is
/// midnight, and a date and time without an offset (YYYY-MM-DDTHH:MM[:SS], or with a space) is
/// a time on the clinic's clock, both in `tz`; an RFC 3339 time with an offset or Z is taken as
/// it is. Anything else is refused with a clear message, never cut down to the date it starts
/// with (which would silently move the bound to midnight).
pub fn parse_when(field: &str, text: &str, tz: &jiff::tz::TimeZone) -> Result<jiff::Timestamp> {
    let t = text.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    let local = if !is_civil_shape(t) {
        None
    } else if t.len() == 10 {
        t.parse::<jiff::civil::Date>()
            .ok()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    } else {
        t.parse::<jiff::civil::DateTime>().ok()
    };
    if let Some(z) = local.and_then(|dt| dt.to_zoned(tz.clone()).ok()) {
        return Ok(z.timestamp());
    }
    Err(Error::InvalidInput(format!(
        "{field}: {t:?} is not a date (use YYYY-MM-DD, a time on the clinic's clock such as \
         2026-03-01T09:00, or an RFC 3339 time such as 2026-03-01T09:00:00Z)"
    )))
}

/// YYYY-MM-DD, optionally followed by T or a space and HH:MM, HH:MM:SS or HH:MM:SS.fff, and
/// nothing else.
fn is_civil_shape(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let date = b.len() >= 10
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10);
    if !date {
        return false;
    }
    let rest = &b[10..];
    if rest.is_empty() {
        return true;
    }
    let time = rest.len() >= 6
        && matches!(rest[0], b'T' | b't' | b' ')
        && digits(11..13)
        && rest[3] == b':'
        && digits(14..16);
    if !time {
        return false;
    }
    match &rest[6..] {
        [] => true,
        [b':', s @ ..] => {
            s.len() >= 2
                && s[..2].iter().all(u8::is_ascii_digit)
                && match &s[2..] {
                    [] => true,
                    [b'.', frac @ ..] => !frac.is_empty() && frac.iter().all(u8::is_ascii_digit),
                    _ => false,
                }
        }
        _ => false,
    }
}

const OUTCOMES: &[&str] = &["ok", "denied", "failed"];

/// The statement for `f` and its arguments.
pub(crate) fn sql(f: &AuditFilter) -> Result<(String, Vec<Value>)> {
    let mut sql = String::from(
        "SELECT a.seq, a.at, a.actor_id, a.actor_name, a.device, a.action, a.target_type,
                a.target_id, a.outcome, a.details, a.signer_id FROM ",
    );
    let mut args: Vec<Value> = Vec::new();
    if let Some(t) = &f.target_id {
        // One record's entries come through the record lookup (see `query`): for a patient,
        // also those about their notes, appointments, invoices and attachments. The entry
        // itself is checked too, so an altered lookup cannot show foreign entries.
        sql.push_str(&format!(
            "audit_targets t CROSS JOIN audit_log a ON a.seq = t.seq
             WHERE t.target_id = ?1
               AND ((a.target_type = t.target_type AND a.target_id = ?1)
                    OR (t.target_type = 'patient' AND {} = ?1))",
            crate::audit_lookup::NAMED_PATIENT_SQL
        ));
        args.push(Value::Text(t.clone()));
        if let Some(kind) = &f.target_type {
            sql.push_str(" AND t.target_type = ?");
            args.push(Value::Text(kind.clone()));
        }
    } else {
        sql.push_str("audit_log a WHERE 1 = 1");
        if let Some(kind) = &f.target_type {
            sql.push_str(" AND a.target_type = ?");
            args.push(Value::Text(kind.clone()));
        }
    }
    if let Some(u) = &f.user {
        sql.push_str(" AND a.actor_name = ?");
        args.push(Value::Text(u.trim().to_ascii_lowercase()));
    }
    if let Some(a) = &f.action {
        if let Some(prefix) = a.strip_suffix('.') {
            sql.push_str(" AND (a.action = ? OR a.action LIKE ? ESCAPE '\\')");
            args.push(Value::Text(prefix.to_owned()));
            let escaped = prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            args.push(Value::Text(format!("{escaped}.%")));
        } else {
            sql.push_str(" AND a.action = ?");
            args.push(Value::Text(a.clone()));
        }
    }
    if let Some(o) = &f.outcome {
        if !OUTCOMES.contains(&o.as_str()) {
            return Err(Error::InvalidInput(format!(
                "outcome: use one of {}",
                OUTCOMES.join(", ")
            )));
        }
        sql.push_str(" AND a.outcome = ?");
        args.push(Value::Text(o.clone()));
    }
    // Timestamps are stored as RFC 3339 UTC text; compare on the instant, not the text.
    if let Some(s) = f.since {
        sql.push_str(" AND unixepoch(a.at, 'subsec') >= ?");
        args.push(Value::Real(s.as_millisecond() as f64 / 1000.0));
    }
    if let Some(u) = f.until {
        sql.push_str(" AND unixepoch(a.at, 'subsec') < ?");
        args.push(Value::Real(u.as_millisecond() as f64 / 1000.0));
    }
    if let Some(b) = f.before_seq {
        sql.push_str(" AND a.seq < ?");
        args.push(Value::Integer(b));
    }
    sql.push_str(" ORDER BY a.seq DESC LIMIT ?");
    args.push(Value::Integer(i64::from(if f.limit == 0 {
        100
    } else {
        f.limit
    })));
    Ok((sql, args))
}

pub(crate) fn query(conn: &rusqlite::Connection, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
    if f.target_id.is_some() {
        crate::audit_lookup::catch_up(conn)?;
    }
    let (sql, args) = sql(f)?;
    let mut st = conn.prepare(&sql)?;
    let rows = st
        .query_map(rusqlite::params_from_iter(args), |r| {
            let details: String = r.get(9)?;
            Ok(AuditEntry {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor_id: r.get(2)?,
                actor_name: r.get(3)?,
                device: r.get(4)?,
                action: r.get(5)?,
                target_type: r.get(6)?,
                target_id: r.get(7)?,
                outcome: r.get(8)?,
                details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
                signer_id: r.get(10)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The last entry a prune up to `before` may remove, and its hash. Only a prefix of the trail
/// can go (the chain is verified from the prune's checkpoint), so the cut stops before the
/// first entry that is not older than `before`, whatever comes after it: entries are not
/// strictly in time order (a clock set wrong, a sign-in failure carried in late), and one old
/// time far down the trail must not take everything before it. It also stops before the first
/// entry about a patient under an active legal hold, since nothing about them is deleted.
pub(crate) fn prune_cut(
    tx: &rusqlite::Connection,
    before: jiff::Timestamp,
) -> Result<Option<(i64, Vec<u8>)>> {
    use rusqlite::OptionalExtension;
    // The entries under a legal hold are found in the trail itself, not through the record
    // lookup: the lookup is an accelerator anyone with the database key can edit, and a row
    // removed there must not let a prune delete a held patient's entries.
    let upto: Option<i64> = tx.query_row(
        &format!(
            "SELECT min(coalesce(
                 (SELECT min(seq) FROM audit_log
                  WHERE coalesce(unixepoch(at, 'subsec') < ?1, 0) = 0),
                 (SELECT max(seq) + 1 FROM audit_log)),
               coalesce(
                 (SELECT min(a.seq) FROM audit_log a JOIN legal_holds h
                    ON h.released_at IS NULL
                   AND ((a.target_type = 'patient' AND a.target_id = h.patient_id)
                        OR {named} = h.patient_id)),
                 (SELECT max(seq) + 1 FROM audit_log))) - 1",
            named = crate::audit_lookup::NAMED_PATIENT_SQL
        ),
        [before.as_millisecond() as f64 / 1000.0],
        |r| r.get(0),
    )?;
    let Some(upto) = upto else { return Ok(None) };
    Ok(tx
        .query_row(
            "SELECT seq, hash FROM audit_log WHERE seq = ?1",
            [upto],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

impl Session {
    /// `parse_when` on the clinic's clock (its time zone setting).
    pub fn parse_when(&self, field: &str, text: &str) -> Result<jiff::Timestamp> {
        parse_when(field, text, &crate::appointments::clinic_tz(self))
    }

    pub fn audit_list(&mut self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let event = Event::new("audit.list");
        self.gate(Need::Permission(Permission::AuditRead), event, |tx, ev| {
            record_filter(tx, ev, filter, false)?;
            let rows = query(tx, filter)?;
            *ev = ev.clone().detail("count", rows.len());
            Ok(rows)
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// What `audit_reanchor` replaced and where the trail is anchored now.
#[derive(Clone, Debug, Serialize)]
pub struct Reanchored {
    /// The entry count the replaced checkpoint vouched for.
    pub replaced_size: i64,
    /// The entry that records the re-anchoring, which the new checkpoint covers.
    pub anchored_at: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PruneResult {
    pub removed: u64,
    pub upto_seq: Option<i64>,
}

/// A review's entry names what was asked for: a staff username, an action, an outcome, dates
/// and a patient's id, each only as far as it is one (a patient's name typed into the patient
/// or user field must not reach the trail). An export of one patient's trail (`disclosure`)
/// also names the patient, so that a search for the patient finds it; a review on screen does
/// not, so that looking at a patient's trail does not keep adding to it.
fn record_filter(
    tx: &rusqlite::Connection,
    ev: &mut Event,
    f: &AuditFilter,
    disclosure: bool,
) -> Result<()> {
    use rusqlite::OptionalExtension;
    let mut asked = serde_json::Map::new();
    let mut put = |key: &str, value: serde_json::Value| {
        asked.insert(key.to_owned(), value);
    };
    if let Some(u) = &f.user {
        let known = crate::users::by_username(tx, u)?.is_some();
        put(
            "user",
            if known { u.as_str() } else { "(no such user)" }.into(),
        );
    }
    if let Some(a) = &f.action {
        let action_like = a.len() <= 64
            && a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_'));
        put(
            "action",
            if action_like {
                a.as_str()
            } else {
                "(not an action name)"
            }
            .into(),
        );
    }
    if let Some(o) = &f.outcome {
        let valid = OUTCOMES.contains(&o.as_str());
        put(
            "outcome",
            if valid {
                o.as_str()
            } else {
                "(not an outcome)"
            }
            .into(),
        );
    }
    if let Some(t) = f.since {
        put("since", crate::clock::rfc3339(t).into());
    }
    if let Some(t) = f.until {
        put("until", crate::clock::rfc3339(t).into());
    }
    if let Some(b) = f.before_seq {
        put("before_seq", b.into());
    }
    let mut patient = None;
    if let (Some(kind), Some(id)) = (&f.target_type, &f.target_id) {
        let exists = kind == "patient"
            && tx
                .query_row("SELECT 1 FROM patients WHERE id = ?1", [id], |_| Ok(()))
                .optional()?
                .is_some();
        put("target_type", kind.as_str().into());
        put(
            "target_id",
            if exists {
                id.as_str()
            } else {
                "(no such record)"
            }
            .into(),
        );
        patient = exists.then_some(id);
    }
    if !asked.is_empty() {
        *ev = ev
            .clone()
            .detail("filter", serde_json::Value::Object(asked));
    }
    if let Some(p) = patient.filter(|_| disclosure) {
        ev.about_patient(p);
    }
    Ok(())
}

/// A cell a spreadsheet would run as a formula (=, +, -, @, or a leading tab or carriage
/// return, OWASP's list) is prefixed with an apostrophe, so that a username typed at the
/// sign-in screen or a record id typed in a refused request cannot become a live formula in
/// the administrator's spreadsheet. The JSON export keeps values exactly.
fn csv_cell(value: String) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value
    }
}

fn to_csv(rows: &[AuditEntry]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "seq",
        "at",
        "actor_id",
        "actor_name",
        "device",
        "action",
        "target_type",
        "target_id",
        "outcome",
        "details",
        "signer_id",
    ])
    .map_err(|e| Error::Internal(format!("cannot write CSV: {e}")))?;
    for r in rows {
        w.write_record(
            [
                r.seq.to_string(),
                r.at.clone(),
                r.actor_id.clone().unwrap_or_default(),
                r.actor_name.clone(),
                r.device.clone(),
                r.action.clone(),
                r.target_type.clone().unwrap_or_default(),
                r.target_id.clone().unwrap_or_default(),
                r.outcome.clone(),
                r.details.to_string(),
                r.signer_id.clone(),
            ]
            .map(csv_cell),
        )
        .map_err(|e| Error::Internal(format!("cannot write CSV: {e}")))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Internal(format!("cannot write CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|_| Error::Internal("CSV is not UTF-8".into()))
}

impl Session {
    /// The filtered trail as CSV or JSON; the export is itself recorded with its row count.
    pub fn audit_export(&mut self, filter: &AuditFilter, format: ExportFormat) -> Result<String> {
        let event = Event::new("audit.export").detail(
            "format",
            match format {
                ExportFormat::Csv => "csv",
                ExportFormat::Json => "json",
            },
        );
        self.gate(Need::Permission(Permission::AuditRead), event, |tx, ev| {
            // A patient's access log leaving the vault is a disclosure about that patient.
            record_filter(tx, ev, filter, true)?;
            let rows = query(tx, filter)?;
            *ev = ev.clone().detail("count", rows.len());
            match format {
                ExportFormat::Csv => to_csv(&rows),
                ExportFormat::Json => serde_json::to_string_pretty(&rows)
                    .map_err(|e| Error::Internal(format!("cannot write JSON: {e}"))),
            }
        })
    }

    /// Verifies the whole trail against the checkpoint kept outside the database. A failure is
    /// recorded, raises an alert, and leaves the checkpoint as it was.
    pub fn verify_audit(&mut self) -> Result<crate::audit_verify::VerifyReport> {
        self.authorize(
            Need::Permission(Permission::AuditRead),
            Event::new("audit.verify"),
        )?;
        let outside = {
            let vault = self.vault()?;
            crate::audit_verify::stored_checkpoint(
                vault.conn(),
                self.dir(),
                &vault.integrity_key()?,
                vault.mac_epoch(),
                crate::checkpoint::read_keyring(&crate::checkpoint::origin(
                    &vault.vault_id().to_string(),
                )),
            )
        };
        let report = match self.verified_report(&outside) {
            Ok(report) => report,
            Err(e) => {
                // A check that could not finish is a failed check too: recorded and alerted,
                // not only answered with the error.
                let at = crate::clock::rfc3339(self.clock().now());
                let me = self.user().username.clone();
                let kind = serde_json::to_value(e.kind()).unwrap_or_default();
                let event = Event::new("audit.verify")
                    .outcome(crate::audit::Outcome::Failed)
                    .detail("error", kind.clone());
                let _ = self.record_with(event, |tx| {
                    crate::alerts::raise(
                        tx,
                        crate::alerts::VERIFY_FAILED,
                        &at,
                        None,
                        "audit trail verification could not be completed: the trail or its \
                         record lookup cannot be read as ClinVault wrote it",
                        serde_json::json!({ "error": kind, "found_by": me }),
                    )
                });
                return Err(e);
            }
        };
        let mut event = Event::new("audit.verify").detail("entries", report.entries_checked);
        if let Some(p) = &report.problem {
            event = event
                .outcome(crate::audit::Outcome::Failed)
                .detail("first_bad_seq", p.seq)
                .detail("kind", serde_json::to_value(p.kind).unwrap_or_default());
        }
        let at = crate::clock::rfc3339(self.clock().now());
        let me = self.user().username.clone();
        let mut report = report;
        let lookup_altered = report
            .problem
            .as_ref()
            .is_some_and(|p| p.kind == crate::audit_verify::ProblemKind::LookupAltered);
        if let Some(p) = report.problem.as_mut().filter(|_| lookup_altered) {
            p.detail.push_str("; it was rebuilt from the trail");
        }
        let problem = report.problem.clone();
        self.record_with(event, |tx| {
            if lookup_altered {
                crate::audit_lookup::rebuild(tx)?;
            }
            if let Some(p) = &problem {
                // About the trail, not the administrator who found the damage, who must be
                // able to acknowledge it like any other.
                crate::alerts::raise(
                    tx,
                    crate::alerts::VERIFY_FAILED,
                    &at,
                    None,
                    &format!(
                        "audit trail verification failed at entry {}: {}",
                        p.seq, p.detail
                    ),
                    serde_json::json!({ "seq": p.seq, "kind": p.kind, "found_by": me }),
                )?;
            }
            Ok(())
        })?;
        if report.intact {
            self.write_checkpoint()?;
        }
        Ok(report)
    }

    /// The trail verified against the checkpoint kept outside the database (`outside`, or the
    /// error reading it: a damaged checkpoint is itself a finding).
    fn verified_report(
        &self,
        outside: &Result<Option<crate::checkpoint::Checkpoint>>,
    ) -> Result<crate::audit_verify::VerifyReport> {
        let vault = self.vault()?;
        let ik = vault.integrity_key()?;
        let mut report = match outside {
            Ok(cp) => crate::audit_verify::verify(
                vault.conn(),
                &vault.vault_id().to_string(),
                &ik,
                vault.mac_epoch(),
                cp.as_ref(),
            )?,
            Err(_) => {
                let mut r = crate::audit_verify::verify(
                    vault.conn(),
                    &vault.vault_id().to_string(),
                    &ik,
                    vault.mac_epoch(),
                    None,
                )?;
                if r.problem.is_none() {
                    r.intact = false;
                    r.problem = Some(crate::audit_verify::Problem {
                        seq: r.last_seq.unwrap_or(0),
                        kind: crate::audit_verify::ProblemKind::BadSignature,
                        detail: "the checkpoint kept outside the database is damaged".into(),
                    });
                }
                r
            }
        };
        // Until an administrator accepts it, a replaced anchor is what verification reports:
        // the trail may have been cut before the replacement.
        if report.problem.is_none() {
            if let Some(p) = report.anchor_replaced.clone() {
                report.intact = false;
                report.problem = Some(p);
            }
        }
        Ok(report)
    }

    /// Anchors the trail as it now is, after a deliberate restore on a machine whose stored
    /// checkpoint (the OS keyring's copy, or the file) still vouches for the trail as it was
    /// before: every anchoring reports that rollback and none may replace the evidence, so
    /// without this the vault would stay unanchored and alerting. Also the acceptance, once
    /// looked into, of a checkpoint that a sign-in found missing or not authentic and replaced:
    /// verification reports that replacement until then. Allowed only when the trail itself
    /// verifies (chain, signatures, record lookup) and disagrees only with that checkpoint, or
    /// has such a replacement unaccepted. The replaced checkpoint (its entry count and head) is
    /// recorded in the trail, and the new checkpoint covers that entry.
    pub fn audit_reanchor(&mut self) -> Result<Reanchored> {
        let (vault_id, ik, epoch) = {
            let vault = self.vault()?;
            (
                vault.vault_id().to_string(),
                vault.integrity_key()?,
                vault.mac_epoch(),
            )
        };
        let keyring = crate::checkpoint::read_keyring(&crate::checkpoint::origin(&vault_id));
        let dir = self.dir().clone();
        let event = Event::new("audit.reanchor");
        let replaced_size =
            self.gate(Need::Permission(Permission::AuditPrune), event, |tx, ev| {
                let by_itself = crate::audit_verify::verify(tx, &vault_id, &ik, epoch, None)?;
                if let Some(p) = by_itself.problem {
                    return Err(Error::Integrity(format!(
                        "the audit trail itself does not verify (entry {}: {}): anchoring it anew \
                     would vouch for it",
                        p.seq, p.detail
                    )));
                }
                let stored = crate::audit_verify::stored_checkpoint(tx, &dir, &ik, epoch, keyring)
                    .ok()
                    .flatten();
                let Some(cp) = stored else {
                    return Err(Error::InvalidInput(
                        "there is no readable checkpoint to replace: the next sign-in anchors the \
                     trail"
                            .into(),
                    ));
                };
                let against = crate::audit_verify::verify(tx, &vault_id, &ik, epoch, Some(&cp))?;
                if against.intact && against.anchor_replaced.is_none() {
                    return Err(Error::InvalidInput(
                        "the audit trail matches its checkpoint: there is nothing to anchor anew"
                            .into(),
                    ));
                }
                *ev = ev
                    .clone()
                    .detail("replaced_size", cp.size)
                    .detail("replaced_head", hex::encode(cp.head_hash));
                Ok(cp.size)
            })?;
        let anchored_at =
            self.vault()?
                .conn()
                .query_row("SELECT max(seq) FROM audit_log", [], |r| r.get::<_, i64>(0))?;
        self.write_checkpoint_after(None, crate::session::Anchoring::Anew)?;
        self.note_anchoring()?;
        Ok(Reanchored {
            replaced_size,
            anchored_at,
        })
    }

    /// Removes entries older than `before`, never younger than the retention period. The chain
    /// stays verifiable: a checkpoint of the last removed entry, signed by the administrator, is
    /// kept and the remaining trail is verified from it.
    pub fn audit_prune(&mut self, before: jiff::Timestamp) -> Result<PruneResult> {
        let years = self.policy().audit_retention_years;
        let now = self.clock().now();
        let limit = now
            .to_zoned(jiff::tz::TimeZone::UTC)
            .checked_sub(jiff::Span::new().years(i64::from(years)))
            .map(|z| z.timestamp())
            .map_err(|_| Error::Internal("cannot compute the retention limit".into()))?;
        let signer = self.vault()?.user_keys().signing_key().clone();
        let signer_id = self.user().id.to_string();
        let origin = crate::checkpoint::origin(&self.vault()?.vault_id().to_string());
        let at = crate::clock::rfc3339(now);
        let event = Event::new("audit.prune").detail("before", before.to_string());
        let result = self.gate(Need::Permission(Permission::AuditPrune), event, |tx, ev| {
            if before > limit {
                return Err(Error::InvalidInput(format!(
                    "before: entries younger than the retention period ({years} years, i.e. after {}) cannot be pruned",
                    limit.strftime("%Y-%m-%d")
                )));
            }
            let cut = prune_cut(tx, before)?;
            let Some((upto, hash)) = cut else {
                return Ok(PruneResult { removed: 0, upto_seq: None });
            };
            let head: [u8; 32] = hash
                .try_into()
                .map_err(|_| Error::Integrity("an audit entry has a malformed hash".into()))?;
            let cp = crate::checkpoint::Checkpoint::sign(origin.clone(), upto, head, &signer_id, &signer, None)?;
            tx.execute(
                "INSERT INTO audit_prune_marks (upto_seq, at, checkpoint) VALUES (?1, ?2, ?3)",
                rusqlite::params![upto, at, cp.encode()],
            )?;
            let removed = tx.execute("DELETE FROM audit_log WHERE seq <= ?1", [upto])? as u64;
            crate::audit_lookup::prune(tx, upto)?;
            *ev = ev.clone().detail("removed", removed).detail("upto_seq", upto);
            Ok(PruneResult { removed, upto_seq: Some(upto) })
        })?;
        self.write_checkpoint()?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_are_read_on_the_clinics_clock_and_nothing_is_cut_short() {
        let utc = jiff::tz::TimeZone::UTC;
        let sydney = jiff::tz::TimeZone::get("Australia/Sydney").unwrap();
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            parse_when("since", "2026-03-02", &utc).unwrap(),
            at("2026-03-02T00:00:00Z")
        );
        // Midnight in Sydney (UTC+11 in March) is 13:00 the day before in UTC.
        assert_eq!(
            parse_when("since", "2026-03-02", &sydney).unwrap(),
            at("2026-03-01T13:00:00Z")
        );
        assert_eq!(
            parse_when("until", "2026-03-01T23:59", &utc).unwrap(),
            at("2026-03-01T23:59:00Z"),
            "a time without an offset keeps its time"
        );
        assert_eq!(
            parse_when("until", "2026-03-01 17:30:15", &sydney).unwrap(),
            at("2026-03-01T06:30:15Z")
        );
        assert_eq!(
            parse_when("until", "2026-03-01T17:30:00+02:00", &sydney).unwrap(),
            at("2026-03-01T15:30:00Z"),
            "an explicit offset wins over the clinic's zone"
        );
        for bad in [
            "2026-03-01x",
            "2026-03-01T25:00",
            "2026-13-01",
            "yesterday",
            "2026-03-01T9:00",
            "",
        ] {
            let e = parse_when("until", bad, &utc).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().contains("is not a date"), "{bad}: {e}");
        }
    }
}
