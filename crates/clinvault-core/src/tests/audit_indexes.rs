//! The trail keeps few indexes so that every audited operation writes few pages (migration 9).
//! These checks make sure the lookups the app depends on still go through an index, and that
//! none of the remaining ones is written for entries it does not cover.

use super::{new_vault, sign_in};
use crate::audit::Event;
use crate::clock::ManualClock;
use crate::session::{Need, Session};
use crate::vault_dir::VaultDir;

const PASS: &str = "plum harbour velvet tractor";

fn session() -> (tempfile::TempDir, Session) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    new_vault(&dir, PASS);
    let s = sign_in(&dir, &ManualClock::at(1_800_000_000), "admin", PASS);
    (tmp, s)
}

fn plan(s: &Session, sql: &str) -> String {
    let conn = s.vault().unwrap().conn();
    let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let n = st.parameter_count();
    let args: Vec<rusqlite::types::Value> = (0..n)
        .map(|_| rusqlite::types::Value::Text("x".into()))
        .collect();
    st.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
        .join(" | ")
}

#[test]
fn lookups_by_action_and_by_record_use_an_index() {
    let (_tmp, s) = session();
    for sql in [
        crate::sync_config::LAST_PUSH_SQL,
        crate::retention::OLD_BACKUPS_SQL,
        crate::audit::ANY_SESSION_ENDED_SQL,
    ] {
        let p = plan(&s, sql);
        assert!(p.contains("audit_milestones"), "{sql}\n{p}");
    }
    let p = plan(
        &s,
        "SELECT seq FROM audit_log WHERE target_type = ? AND target_id = ? ORDER BY seq DESC LIMIT 50",
    );
    assert!(p.contains("audit_target"), "{p}");
}

fn index_entries(s: &Session, index: &str) -> i64 {
    // Counting through INDEXED BY reads the index itself, not the table.
    let sql = match index {
        "audit_target" => {
            "SELECT count(*) FROM audit_log INDEXED BY audit_target WHERE target_type IS NOT NULL"
        }
        _ => concat!(
            "SELECT count(*) FROM audit_log INDEXED BY audit_milestones WHERE ",
            crate::audit::milestones!()
        ),
    };
    s.vault()
        .unwrap()
        .conn()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn entries_without_a_target_or_milestone_write_no_index_entry() {
    let (_tmp, mut s) = session();
    let target = index_entries(&s, "audit_target");
    let milestones = index_entries(&s, "audit_milestones");
    for _ in 0..3 {
        s.gate(Need::SignedIn, Event::new("settings.read"), |_, _| Ok(()))
            .unwrap();
    }
    assert_eq!(index_entries(&s, "audit_target"), target);
    assert_eq!(index_entries(&s, "audit_milestones"), milestones);
    s.gate(
        Need::SignedIn,
        Event::new("patient.view").target("patient", 7),
        |_, _| Ok(()),
    )
    .unwrap();
    s.gate(Need::SignedIn, Event::new("backup.export"), |_, _| Ok(()))
        .unwrap();
    assert_eq!(index_entries(&s, "audit_target"), target + 1);
    assert_eq!(index_entries(&s, "audit_milestones"), milestones + 1);
    let names: Vec<String> = s
        .vault()
        .unwrap()
        .conn()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_log'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    assert_eq!(names.len(), 2, "{names:?}");
}
