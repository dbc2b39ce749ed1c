//! The trail keeps few indexes so that every audited operation writes few pages (migrations 9
//! and 10). These checks make sure the lookups the app depends on still go through an index or
//! the record lookup, and that nothing but the entry itself is written for an ordinary entry.

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
    let by_record = crate::audit_review::AuditFilter {
        target_type: Some("patient".into()),
        target_id: Some("x".into()),
        limit: 50,
        ..Default::default()
    };
    let p = plan(&s, &crate::audit_review::sql(&by_record).unwrap().0);
    assert!(
        p.contains("SEARCH t USING PRIMARY KEY")
            && p.contains("SEARCH a USING INTEGER PRIMARY KEY"),
        "{p}"
    );
}

fn index_entries(s: &Session, index: &str) -> i64 {
    // Counting through INDEXED BY reads the index itself, not the table.
    let sql = match index {
        "audit_targets" => "SELECT count(*) FROM audit_targets",
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
fn an_ordinary_entry_writes_no_index_or_lookup_row() {
    let (_tmp, mut s) = session();
    let target = index_entries(&s, "audit_targets");
    let milestones = index_entries(&s, "audit_milestones");
    for _ in 0..3 {
        s.gate(Need::SignedIn, Event::new("settings.read"), |_, _| Ok(()))
            .unwrap();
    }
    assert_eq!(index_entries(&s, "audit_targets"), target);
    assert_eq!(index_entries(&s, "audit_milestones"), milestones);
    s.gate(
        Need::SignedIn,
        Event::new("patient.view").target("patient", 7),
        |_, _| Ok(()),
    )
    .unwrap();
    s.gate(
        Need::Permission(crate::permissions::Permission::BackupManage),
        Event::new("backup.export"),
        |_, _| Ok(()),
    )
    .unwrap();
    // A record's entry reaches the lookup only when a search by record needs it.
    assert_eq!(index_entries(&s, "audit_targets"), target);
    assert_eq!(index_entries(&s, "audit_milestones"), milestones + 1);
    s.audit_list(&crate::audit_review::AuditFilter {
        target_type: Some("patient".into()),
        target_id: Some("7".into()),
        limit: 10,
        ..Default::default()
    })
    .unwrap();
    assert!(index_entries(&s, "audit_targets") > target);
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
    assert_eq!(names, vec!["audit_milestones".to_owned()]);
}
