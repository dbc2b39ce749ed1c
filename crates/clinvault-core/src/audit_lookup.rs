//! The lookup from a record to its audit entries (migration 10). It is not kept up to date on
//! every write, because an index there cost one more encrypted page on almost every operation;
//! the query that needs it brings it up to the end of the trail first, in its own transaction.
//! It is only an accelerator, so nothing in it is trusted: a query joins back to the entry and
//! checks the entry's own target, and `audit verify` checks that it lists exactly the entries
//! with a target up to its mark.

use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;

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

/// What is wrong with the lookup, given how many entries with a target the trail has up to
/// `mark`: the first row that names an entry that does not exist or has another target, or
/// the number of entries missing from it.
pub(crate) fn problem(
    conn: &Connection,
    mark: i64,
    targeted_entries: u64,
) -> Result<Option<(i64, String)>> {
    let foreign: Option<i64> = conn
        .query_row(
            "SELECT t.seq FROM audit_targets t LEFT JOIN audit_log a ON a.seq = t.seq
             WHERE a.seq IS NULL OR a.target_type IS NOT t.target_type
                OR a.target_id IS NOT t.target_id
             ORDER BY t.seq LIMIT 1",
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
    if listed < targeted_entries {
        let first_missing: Option<i64> = conn
            .query_row(
                "SELECT a.seq FROM audit_log a
                 WHERE a.seq <= ?1 AND a.target_type IS NOT NULL AND a.target_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM audit_targets t WHERE t.target_id = a.target_id
                                   AND t.target_type = a.target_type AND t.seq = a.seq)
                 ORDER BY a.seq LIMIT 1",
                [mark],
                |r| r.get(0),
            )
            .optional()?;
        return Ok(Some((
            first_missing.unwrap_or(mark),
            format!(
                "{} entries are missing from the record lookup, so a search by record would not show them",
                targeted_entries - listed
            ),
        )));
    }
    Ok(None)
}
