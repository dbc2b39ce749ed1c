//! The vault database's triggers against those its migrations make. Someone holding the
//! database key can add a trigger that silently swallows or removes audit entries or alerts as
//! they are written; the gate refuses to commit an operation whose entry did not land (see
//! `audit::append`), and this finds and removes such triggers at sign-in, recording what it
//! removed in the trail and raising an alert.

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

/// Triggers in `conn` that the migrations did not make as they are (a trigger of a known name
/// with other SQL counts too), by name.
pub(crate) fn foreign_triggers(conn: &Connection) -> Result<Vec<String>> {
    let expected = expected()?;
    Ok(triggers(conn)?
        .into_iter()
        .filter(|(name, sql)| expected.get(name) != Some(sql))
        .map(|(name, _)| name)
        .collect())
}

/// Drops the foreign triggers and puts back the migration's own trigger where one of its name
/// was replaced. Returns the names removed, shortened and stripped of control characters for
/// the trail (they were chosen by whoever planted them).
pub(crate) fn remove_foreign(conn: &Connection, names: &[String]) -> Result<Vec<String>> {
    let expected = expected()?;
    let mut removed = Vec::new();
    for name in names {
        conn.execute_batch(&format!("DROP TRIGGER \"{}\"", name.replace('"', "\"\"")))?;
        if let Some(Some(sql)) = expected.get(name) {
            conn.execute_batch(sql)?;
        }
        removed.push(
            name.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>(),
        );
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_database_has_no_foreign_trigger_and_a_planted_one_is_found_and_removed() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut conn).unwrap();
        assert!(foreign_triggers(&conn).unwrap().is_empty());
        conn.execute_batch(
            "CREATE TRIGGER swallow BEFORE INSERT ON audit_log BEGIN SELECT RAISE(IGNORE); END;
             DROP TRIGGER audit_log_no_delete;
             CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT 1; END;",
        )
        .unwrap();
        let found = foreign_triggers(&conn).unwrap();
        assert_eq!(
            found,
            vec!["audit_log_no_delete".to_owned(), "swallow".to_owned()]
        );
        remove_foreign(&conn, &found).unwrap();
        assert!(
            foreign_triggers(&conn).unwrap().is_empty(),
            "the planted trigger is gone and the migration's own is back as it was"
        );
        assert!(triggers(&conn).unwrap().contains_key("audit_log_no_delete"));
    }
}
