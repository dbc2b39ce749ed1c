//! The vault database's triggers against those its migrations make. Someone holding the
//! database key can add a trigger that silently swallows or removes audit entries or alerts as
//! they are written, or drop the triggers that keep the trail append-only; the gate refuses to
//! commit an operation whose entry did not land (see `audit::append`), and this finds such
//! changes at sign-in, removes planted triggers and puts back dropped ones, recording what it
//! did in the trail and raising an alert.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use rusqlite::Connection;

use crate::error::{Error, Result};

fn triggers(conn: &Connection) -> Result<BTreeMap<String, Option<String>>> {
    let mut st = conn.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
    Ok(rows)
}

/// The triggers of a database made by this build's migrations, by name, with their SQL as
/// SQLite keeps it.
fn expected() -> Result<&'static BTreeMap<String, Option<String>>> {
    static EXPECTED: OnceLock<BTreeMap<String, Option<String>>> = OnceLock::new();
    if let Some(m) = EXPECTED.get() {
        return Ok(m);
    }
    let mut conn = Connection::open_in_memory()
        .map_err(|e| Error::Internal(format!("cannot open a scratch database: {e}")))?;
    crate::db::migrate(&mut conn)?;
    let made = triggers(&conn)?;
    Ok(EXPECTED.get_or_init(|| made))
}

/// How the database's triggers differ from the migrations': triggers they did not make as they
/// are (a trigger of a known name with other SQL counts too), and triggers of theirs that are
/// gone, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Drift {
    pub foreign: Vec<String>,
    pub missing: Vec<String>,
}

impl Drift {
    pub(crate) fn is_empty(&self) -> bool {
        self.foreign.is_empty() && self.missing.is_empty()
    }
}

pub(crate) fn drift(conn: &Connection) -> Result<Drift> {
    let expected = expected()?;
    let present = triggers(conn)?;
    Ok(Drift {
        foreign: present
            .iter()
            .filter(|(name, sql)| expected.get(*name) != Some(sql))
            .map(|(name, _)| name.clone())
            .collect(),
        missing: expected
            .keys()
            .filter(|name| !present.contains_key(*name))
            .cloned()
            .collect(),
    })
}

/// What `repair` did, with names fit for the trail.
#[derive(Debug, Default)]
pub(crate) struct Repaired {
    pub removed: Vec<String>,
    pub restored: Vec<String>,
}

/// Drops the foreign triggers and puts back the migrations' own where one of theirs was
/// replaced or dropped. Removed names are shortened and stripped of control characters for the
/// trail (they were chosen by whoever planted them).
pub(crate) fn repair(conn: &Connection, drift: &Drift) -> Result<Repaired> {
    let expected = expected()?;
    let mut done = Repaired::default();
    for name in &drift.foreign {
        conn.execute_batch(&format!("DROP TRIGGER \"{}\"", name.replace('"', "\"\"")))?;
        if let Some(Some(sql)) = expected.get(name) {
            conn.execute_batch(sql)?;
        }
        done.removed.push(
            name.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>(),
        );
    }
    for name in &drift.missing {
        if let Some(Some(sql)) = expected.get(name) {
            conn.execute_batch(sql)?;
            done.restored.push(name.clone());
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_database_has_no_foreign_trigger_and_a_planted_one_is_found_and_removed() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut conn).unwrap();
        assert!(drift(&conn).unwrap().is_empty());
        conn.execute_batch(
            "CREATE TRIGGER swallow BEFORE INSERT ON audit_log BEGIN SELECT RAISE(IGNORE); END;
             DROP TRIGGER audit_log_no_delete;
             CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT 1; END;",
        )
        .unwrap();
        let found = drift(&conn).unwrap();
        assert_eq!(
            found.foreign,
            vec!["audit_log_no_delete".to_owned(), "swallow".to_owned()]
        );
        assert!(found.missing.is_empty());
        let done = repair(&conn, &found).unwrap();
        assert_eq!(done.removed.len(), 2);
        assert!(
            drift(&conn).unwrap().is_empty(),
            "the planted trigger is gone and the migration's own is back as it was"
        );
        assert!(triggers(&conn).unwrap().contains_key("audit_log_no_delete"));
    }

    #[test]
    fn a_dropped_trigger_of_the_migrations_is_found_and_put_back() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "DROP TRIGGER audit_log_no_update; DROP TRIGGER note_versions_no_delete;",
        )
        .unwrap();
        let found = drift(&conn).unwrap();
        assert!(found.foreign.is_empty());
        assert_eq!(
            found.missing,
            vec![
                "audit_log_no_update".to_owned(),
                "note_versions_no_delete".to_owned()
            ]
        );
        let done = repair(&conn, &found).unwrap();
        assert_eq!(done.restored, found.missing);
        assert!(drift(&conn).unwrap().is_empty());
        conn.execute_batch(
            "INSERT INTO audit_log (seq, at, actor_name, device, action, outcome, details,
             signer_id, signer_key, prev_hash, hash, signature)
             VALUES (1, 'a', 'b', 'c', 'd', 'ok', '{}', 'e', x'00', x'00', x'00', x'00');",
        )
        .unwrap();
        let refused = conn
            .execute("UPDATE audit_log SET device = 'elsewhere'", [])
            .unwrap_err();
        assert!(refused.to_string().contains("append-only"), "{refused}");
    }
}
