//! The lookup from a record to its audit entries (migration 10). It is not kept up to date on
//! every write, because an index there cost one more encrypted page on almost every operation;
//! the query that needs it brings it up to the end of the trail first, in its own transaction.
//! It is only an accelerator, so nothing in it is trusted: a query joins back to the entry and
//! checks the entry's own target, and `audit verify` checks that it lists exactly the entries
//! with a target up to its mark.
//!
//! An entry is listed under its own target and, when its details name a patient (an entry
//! about a patient's note, appointment, invoice or attachment), under that patient too, so
//! that "who looked at this patient's record" finds the views of their notes.

use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;

/// The patient an entry's details name, as SQL over the entry `a`: NULL when there is none, and
/// also when the details are not valid JSON (only an entry edited outside the app can be, and
/// `audit verify` reports that entry), so that a search never fails on one. `named_patient` is
/// the same rule in Rust; the two must agree.
pub(crate) const NAMED_PATIENT_SQL: &str = "(CASE
        WHEN instr(a.details, '\"patient\"') = 0 THEN NULL
        WHEN NOT json_valid(a.details) THEN NULL
        WHEN json_type(a.details, '$.patient') = 'text' THEN json_extract(a.details, '$.patient')
    END)";

/// The patient named by an entry's details (see `NAMED_PATIENT_SQL`).
pub(crate) fn named_patient(details: &str) -> Option<String> {
    if !details.contains("\"patient\"") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(details).ok()?;
    value
        .get(crate::audit::PATIENT_DETAIL)?
        .as_str()
        .map(str::to_owned)
}

/// How many lookup rows an entry has: one for its target, one for a patient its details name
/// unless that patient is its target.
pub(crate) fn rows_for(target_type: Option<&str>, target_id: Option<&str>, details: &str) -> u64 {
    let targeted = target_type.is_some() && target_id.is_some();
    let patient = named_patient(details);
    let patient_row =
        patient.is_some_and(|p| !(target_type == Some("patient") && target_id == Some(p.as_str())));
    u64::from(targeted) + u64::from(patient_row)
}

/// Adds the entries appended since the last catch-up. `INSERT OR IGNORE` because rows can only
/// be missing if someone went around the app; a lowered mark must not make the query fail.
pub(crate) fn catch_up(conn: &Connection) -> Result<()> {
    let upto: i64 = conn
        .query_row("SELECT seq FROM audit_targets_upto", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let last: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM audit_log", [], |r| {
        r.get(0)
    })?;
    if last <= upto {
        return Ok(());
    }
    conn.execute(
        "INSERT OR IGNORE INTO audit_targets (target_id, target_type, seq)
         SELECT target_id, target_type, seq FROM audit_log
         WHERE seq > ?1 AND target_type IS NOT NULL AND target_id IS NOT NULL",
        [upto],
    )?;
    conn.execute(
        &format!(
            "INSERT OR IGNORE INTO audit_targets (target_id, target_type, seq)
             SELECT p, 'patient', seq FROM (SELECT {NAMED_PATIENT_SQL} AS p, a.seq FROM audit_log a
                                             WHERE a.seq > ?1)
             WHERE p IS NOT NULL"
        ),
        [upto],
    )?;
    conn.execute(
        "INSERT INTO audit_targets_upto (only, seq) VALUES (1, ?1)
         ON CONFLICT (only) DO UPDATE SET seq = excluded.seq",
        [last],
    )?;
    Ok(())
}

/// Builds the lookup again from the trail, after verification found it altered (the failure is
/// recorded and alerted first; the trail itself is the evidence).
pub(crate) fn rebuild(conn: &Connection) -> Result<()> {
    conn.execute_batch("DELETE FROM audit_targets; DELETE FROM audit_targets_upto;")?;
    catch_up(conn)
}

/// Drops the lookup rows of pruned entries, in the prune's transaction.
pub(crate) fn prune(conn: &Connection, upto_seq: i64) -> Result<()> {
    conn.execute("DELETE FROM audit_targets WHERE seq <= ?1", [upto_seq])?;
    Ok(())
}

/// Up to which entry the lookup claims to be complete.
pub(crate) fn mark(conn: &Connection) -> Result<i64> {
    Ok(conn
        .query_row("SELECT seq FROM audit_targets_upto", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// What is wrong with the lookup, given how many rows the entries up to `mark` should have
/// in it (`rows_for`): the first row that names an entry that does not exist or is about
/// another record, or the number of rows missing from it.
pub(crate) fn problem(
    conn: &Connection,
    mark: i64,
    expected_rows: u64,
) -> Result<Option<(i64, String)>> {
    let foreign: Option<i64> = conn
        .query_row(
            &format!(
                "SELECT t.seq FROM audit_targets t LEFT JOIN audit_log a ON a.seq = t.seq
                 WHERE a.seq IS NULL
                    OR NOT ((a.target_type IS t.target_type AND a.target_id IS t.target_id)
                            OR (t.target_type = 'patient' AND {NAMED_PATIENT_SQL} IS t.target_id))
                 ORDER BY t.seq LIMIT 1"
            ),
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(seq) = foreign {
        return Ok(Some((
            seq,
            format!("the record lookup lists entry {seq} under a record it is not about"),
        )));
    }
    let listed: i64 = conn.query_row(
        "SELECT count(*) FROM audit_targets WHERE seq <= ?1",
        [mark],
        |r| r.get(0),
    )?;
    let listed = u64::try_from(listed).unwrap_or(0);
    if listed < expected_rows {
        let first_missing: Option<i64> = conn
            .query_row(
                &format!(
                    "SELECT a.seq FROM audit_log a
                     WHERE a.seq <= ?1
                       AND ((a.target_type IS NOT NULL AND a.target_id IS NOT NULL
                             AND NOT EXISTS (SELECT 1 FROM audit_targets t
                                             WHERE t.target_id = a.target_id
                                               AND t.target_type = a.target_type AND t.seq = a.seq))
                            OR ({NAMED_PATIENT_SQL} IS NOT NULL
                                AND NOT EXISTS (SELECT 1 FROM audit_targets t
                                                WHERE t.target_id = {NAMED_PATIENT_SQL}
                                                  AND t.target_type = 'patient' AND t.seq = a.seq)))
                     ORDER BY a.seq LIMIT 1"
                ),
                [mark],
                |r| r.get(0),
            )
            .optional()?;
        return Ok(Some((
            first_missing.unwrap_or(mark),
            format!(
                "{} entries are missing from the record lookup, so a search by record would not show them",
                expected_rows - listed
            ),
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQL and the Rust rule must agree, or `audit verify` would count rows the catch-up
    /// never writes (or the reverse) and report an intact lookup as altered.
    #[test]
    fn the_sql_and_the_rust_rule_name_the_same_patient() {
        let conn = Connection::open_in_memory().unwrap();
        for details in [
            r#"{"patient":"p-1"}"#,
            r#"{"fields":["note"],"patient":"p-2"}"#,
            r#"{"patient":7}"#,
            r#"{"patient":null}"#,
            r#"{"other":{"patient":"p-3"}}"#,
            r#"{"reason":"\"patient\""}"#,
            r#"{"patient":"p-4""#,
            r#"{}"#,
            "not json",
        ] {
            let sql: Option<String> = conn
                .query_row(
                    &format!("SELECT {NAMED_PATIENT_SQL} FROM (SELECT ?1 AS details) a"),
                    [details],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(sql, named_patient(details), "{details}");
        }
        assert_eq!(
            named_patient(r#"{"patient":"p-1"}"#).as_deref(),
            Some("p-1")
        );
    }

    #[test]
    fn an_entry_has_a_row_for_its_target_and_one_for_another_patient_it_names() {
        assert_eq!(rows_for(None, None, "{}"), 0);
        assert_eq!(rows_for(Some("patient"), Some("p-1"), "{}"), 1);
        assert_eq!(
            rows_for(Some("patient"), Some("p-1"), r#"{"patient":"p-1"}"#),
            1
        );
        assert_eq!(
            rows_for(Some("note"), Some("n-1"), r#"{"patient":"p-1"}"#),
            2
        );
        assert_eq!(rows_for(None, None, r#"{"patient":"p-1"}"#), 1);
    }
}
