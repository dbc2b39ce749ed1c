//! The audit trail against an insider who opens the database with the exported key and edits
//! rows directly, as with any SQLCipher client: every kind of tampering is found and named;
//! alerts fire at their thresholds and stay quiet below; retention pruning keeps the chain
//! verifiable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod support;

use support::{secret, ADMIN_PASS, USER_PASS};

use std::sync::Arc;

use clinvault_core::alerts::Alert;
use clinvault_core::audit::Event;
use clinvault_core::audit_review::{AuditFilter, ExportFormat};
use clinvault_core::audit_verify::ProblemKind;
use clinvault_core::clock::ManualClock;
use clinvault_core::snapshot::AuditAnchor;
use clinvault_core::{Need, Session, SessionConfig, VaultDir};
use rusqlite::Connection;
use tempfile::TempDir;

// A Monday, 10:00 UTC: inside default clinic hours (UTC).
const T0: i64 = 1_795_000_000 - (1_795_000_000 % 86_400) + 10 * 3600 + 5 * 86_400;

struct Clinic {
    _tmp: TempDir,
    dir: VaultDir,
    clock: ManualClock,
}

impl Clinic {
    fn new() -> Clinic {
        let tmp = TempDir::new().unwrap();
        let dir = VaultDir::new(tmp.path().join("v"));
        support::new_vault(&dir);
        Clinic {
            _tmp: tmp,
            dir,
            clock: ManualClock::at(T0),
        }
    }

    fn sign_in(&self, user: &str, pass: &str) -> Session {
        Session::sign_in_with(
            &self.dir,
            user,
            &secret(pass),
            None,
            SessionConfig {
                device: "front-desk".into(),
                clock: Arc::new(self.clock.clone()),
            },
        )
        .unwrap()
    }

    fn admin(&self) -> Session {
        self.sign_in("admin", ADMIN_PASS)
    }

    /// A sign-in with a wrong passphrase: refused, and waiting outside the database to be
    /// carried into the trail by the next good sign-in.
    fn wrong_sign_in(&self, user: &str) {
        let refused = Session::sign_in_with(
            &self.dir,
            user,
            &secret("wrong wrong wrong wrong"),
            None,
            SessionConfig {
                device: "x".into(),
                clock: Arc::new(self.clock.clone()),
            },
        );
        assert!(refused.is_err());
    }

    /// A vault with some history, and the database key an insider exported.
    fn with_history() -> (Clinic, String) {
        let c = Clinic::new();
        let mut a = c.admin();
        a.add_user("jo", None, "receptionist", &secret(USER_PASS))
            .unwrap();
        for i in 0..6 {
            a.set_policy("idle-lock-minutes", &(10 + i).to_string())
                .unwrap();
        }
        let key = a
            .export_db_key(&secret(ADMIN_PASS), None)
            .unwrap()
            .to_string();
        drop(a);
        let mut jo = c.sign_in("jo", USER_PASS);
        jo.list_roles().unwrap();
        drop(jo);
        (c, key)
    }

    /// A connection to the vault's database keyed by hand with the exported key.
    fn keyed(&self, key: &str) -> Connection {
        let conn = Connection::open(self.dir.db_file()).unwrap();
        conn.execute_batch(&format!("PRAGMA key = \"x'{key}'\";"))
            .unwrap();
        conn
    }

    /// The insider's own connection, keyed by hand, triggers dropped as they would.
    fn insider(&self, key: &str) -> Connection {
        let conn = self.keyed(key);
        conn.execute_batch(
            "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;",
        )
        .unwrap();
        conn
    }

    /// The insider deletes the last `n` entries; returns the number the trail ended at.
    fn cut_off_last(&self, key: &str, n: i64) -> i64 {
        let conn = self.insider(key);
        let last = max_seq(&conn);
        conn.execute("DELETE FROM audit_log WHERE seq > ?1", [last - n])
            .unwrap();
        last
    }

    fn verify(&self) -> clinvault_core::audit_verify::VerifyReport {
        self.admin().verify_audit().unwrap()
    }
}

fn max_seq(conn: &Connection) -> i64 {
    conn.query_row("SELECT max(seq) FROM audit_log", [], |r| r.get(0))
        .unwrap()
}

fn alerts(s: &mut Session) -> Vec<Alert> {
    s.audit_alerts(true).unwrap()
}

/// How many bulk-access alerts have been raised.
fn bulk_alerts(s: &mut Session) -> usize {
    alerts(s)
        .iter()
        .filter(|x| x.rule == "bulk_record_access")
        .count()
}

#[test]
fn an_untouched_trail_verifies_and_triggers_refuse_edits() {
    let (c, key) = Clinic::with_history();
    let r = c.verify();
    assert!(r.intact, "{:?}", r.problem);
    assert!(r.entries_checked > 10, "{}", r.entries_checked);
    assert!(r.checkpoint.contains("matches"), "{}", r.checkpoint);
    // Through the app's own rules, the table is append-only even for the key holder.
    let conn = Connection::open(c.dir.db_file()).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{key}'\";"))
        .unwrap();
    let e = conn
        .execute("UPDATE audit_log SET details = '{}' WHERE seq = 2", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = conn
        .execute("DELETE FROM audit_log WHERE seq = 2", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
}

/// Checks every `(public key, message, signature)` with an Ed25519 implementation that shares no
/// code with ours (pycryptodome, RFC 8032 mode); returns how many it accepted.
fn independently_verified(triples: &[(Vec<u8>, Vec<u8>, Vec<u8>)]) -> usize {
    let script = r#"
import sys
from Crypto.Signature import eddsa
ok = 0
for line in sys.stdin:
    pub, msg, sig = (bytes.fromhex(x) for x in line.split())
    eddsa.new(eddsa.import_public_key(pub), "rfc8032").verify(msg, sig)
    ok += 1
print(ok)
"#;
    let mut input = String::new();
    for (public, message, signature) in triples {
        input += &format!(
            "{} {} {}\n",
            hex::encode(public),
            hex::encode(message),
            hex::encode(signature)
        );
    }
    support::python_with_input(
        script,
        &input,
        "pycryptodome",
        "an independent Ed25519 verifier refused a signature",
    )
    .trim()
    .parse()
    .unwrap()
}

#[test]
fn entries_signed_with_nonces_made_ahead_are_standard_ed25519_signatures() {
    let c = Clinic::new();
    let mut a = c.admin();
    for i in 0..40 {
        a.set_policy("idle-lock-minutes", &(10 + i % 7).to_string())
            .unwrap();
    }
    let key = a
        .export_db_key(&secret(ADMIN_PASS), None)
        .unwrap()
        .to_string();
    let rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = {
        let conn = c.keyed(&key);
        let mut st = conn
            .prepare("SELECT signer_key, hash, signature FROM audit_log ORDER BY seq")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // The deterministic (RFC 8032) signature of the same hash differs for an entry signed with
    // a nonce made ahead: most of the gate's entries were.
    let made_ahead = rows
        .iter()
        .filter(|(_, hash, signature)| a.sign_for_tests(hash).unwrap().1.as_slice() != signature)
        .count();
    assert!(made_ahead >= 20, "{made_ahead} of {} entries", rows.len());
    drop(a);
    assert_eq!(independently_verified(&rows), rows.len());
    // And a changed message is refused by the same verifier (it can fail).
    let mut wrong = rows[rows.len() - 1].clone();
    wrong.1[0] ^= 1;
    let refused = std::panic::catch_unwind(|| independently_verified(&[wrong]));
    assert!(refused.is_err());
    let r = c.verify();
    assert!(r.intact, "{:?}", r.problem);
}

/// The insider runs `sql` on a trail with some history; verification must name entry 5 as
/// modified.
fn edit_of_entry_5_is_found(sql: &str) {
    let (c, key) = Clinic::with_history();
    c.insider(&key).execute(sql, []).unwrap();
    let p = c.verify().problem.unwrap();
    assert_eq!((p.seq, p.kind), (5, ProblemKind::Modified), "{p:?}");
}

#[test]
fn a_modified_entry_is_found() {
    edit_of_entry_5_is_found("UPDATE audit_log SET details = '{\"old\":\"99\"}' WHERE seq = 5");
}

#[test]
fn a_deleted_entry_is_found() {
    let (c, key) = Clinic::with_history();
    c.insider(&key)
        .execute("DELETE FROM audit_log WHERE seq = 6", [])
        .unwrap();
    let p = c.verify().problem.unwrap();
    assert_eq!((p.seq, p.kind), (6, ProblemKind::Deleted), "{p:?}");
}

#[test]
fn reordered_entries_are_found() {
    let (c, key) = Clinic::with_history();
    c.insider(&key)
        .execute_batch(
            "UPDATE audit_log SET seq = -1 WHERE seq = 4;
             UPDATE audit_log SET seq = 4 WHERE seq = 5;
             UPDATE audit_log SET seq = 5 WHERE seq = -1;",
        )
        .unwrap();
    let p = c.verify().problem.unwrap();
    assert_eq!((p.seq, p.kind), (4, ProblemKind::Reordered), "{p:?}");
}

#[test]
fn an_inserted_entry_is_found() {
    let (c, key) = Clinic::with_history();
    let conn = c.insider(&key);
    // Shift entries from 7 on and slip a copy of entry 3 in at 7.
    let last = max_seq(&conn);
    for seq in (7..=last).rev() {
        conn.execute("UPDATE audit_log SET seq = seq + 1 WHERE seq = ?1", [seq])
            .unwrap();
    }
    conn.execute(
        "INSERT INTO audit_log SELECT 7, at, actor_id, actor_name, device, action, target_type,
             target_id, outcome, details, signer_id, signer_key, prev_hash, hash, signature
         FROM audit_log WHERE seq = 3",
        [],
    )
    .unwrap();
    let p = c.verify().problem.unwrap();
    assert_eq!(p.seq, 7, "{p:?}");
    assert!(
        matches!(p.kind, ProblemKind::Inserted | ProblemKind::Reordered),
        "{p:?}"
    );
    // A forged entry that links nowhere is "inserted".
    let (c, key) = Clinic::with_history();
    let conn = c.insider(&key);
    let last = max_seq(&conn);
    conn.execute(
        "INSERT INTO audit_log SELECT ?1, at, actor_id, actor_name, device, action, target_type,
             target_id, outcome, details, signer_id, signer_key, randomblob(32), hash, signature
         FROM audit_log WHERE seq = 3",
        [last + 1],
    )
    .unwrap();
    let p = c.verify().problem.unwrap();
    assert_eq!((p.seq, p.kind), (last + 1, ProblemKind::Inserted), "{p:?}");
}

#[test]
fn a_truncated_trail_is_found_through_the_checkpoint_outside_the_database() {
    let (c, key) = Clinic::with_history();
    let last = c.cut_off_last(&key, 4);
    let mut a = c.admin();
    let r = a.verify_audit().unwrap();
    let p = r.problem.unwrap();
    assert_eq!(p.kind, ProblemKind::Truncated, "{p:?}");
    assert!(p.seq <= last, "{p:?}");
    // The sign-in did not re-anchor over the evidence, and both problems raised alerts.
    let rules: Vec<String> = alerts(&mut a).into_iter().map(|a| a.rule).collect();
    assert!(
        rules.iter().any(|r| r == "audit_checkpoint_mismatch"),
        "{rules:?}"
    );
    assert!(
        rules.iter().any(|r| r == "audit_verification_failed"),
        "{rules:?}"
    );
}

fn checkpoint_alerts(s: &mut Session) -> usize {
    s.audit_alerts(true)
        .unwrap()
        .into_iter()
        .filter(|a| a.rule == "audit_checkpoint_mismatch")
        .count()
}

/// A trail rolled back on purpose (a restore on this machine) disagrees with the checkpoint
/// that vouched for the longer trail, and no anchoring may replace that evidence by itself: an
/// administrator anchors it anew, the replaced checkpoint is recorded, and from then on the
/// trail verifies and the alert stops.
#[test]
fn an_administrator_anchors_a_rolled_back_trail_anew() {
    let (c, key) = Clinic::with_history();
    let mut a = c.admin();
    let nothing = a.audit_reanchor().unwrap_err();
    assert_eq!(
        nothing.kind(),
        clinvault_core::ErrorKind::InvalidInput,
        "{nothing}"
    );
    assert!(
        nothing.to_string().contains("nothing to anchor anew"),
        "{nothing}"
    );
    drop(a);
    let last = c.cut_off_last(&key, 4);
    let mut a = c.admin();
    assert!(!a.verify_audit().unwrap().intact);
    // Only an administrator may.
    a.add_user("pat", None, "practitioner", &secret(USER_PASS))
        .unwrap();
    let mut pat = c.sign_in("pat", USER_PASS);
    let denied = pat.audit_reanchor().unwrap_err();
    assert_eq!(
        denied.kind(),
        clinvault_core::ErrorKind::PermissionDenied,
        "{denied}"
    );
    drop(pat);

    let raised = checkpoint_alerts(&mut a);
    assert!(raised >= 1);
    let r = a.audit_reanchor().unwrap();
    assert!(r.replaced_size >= last, "{r:?}");
    assert!(a.verify_audit().unwrap().intact);
    let entry = a
        .audit_list(&AuditFilter {
            action: Some("audit.reanchor".into()),
            limit: 5,
            ..Default::default()
        })
        .unwrap();
    // Pat's attempt is there too, as denied (the refused one before the rollback was cut off
    // with it).
    assert_eq!(entry.len(), 2);
    assert_eq!(
        (entry[0].outcome.as_str(), entry[1].outcome.as_str()),
        ("ok", "denied")
    );
    assert_eq!(entry[0].seq, r.anchored_at);
    assert_eq!(entry[0].details["replaced_size"], r.replaced_size);
    drop(a);
    // Past the alert's hourly pause, a sign-in finds nothing more to report.
    c.clock.advance(2 * 3600);
    let mut a = c.admin();
    assert_eq!(checkpoint_alerts(&mut a), raised);
    assert!(a.verify_audit().unwrap().intact);
}

/// Re-anchoring would vouch for the trail, so it is refused while the trail itself is damaged.
#[test]
fn a_damaged_trail_is_not_anchored_anew() {
    let (c, key) = Clinic::with_history();
    c.insider(&key)
        .execute(
            "UPDATE audit_log SET device = 'elsewhere' WHERE seq = 5",
            [],
        )
        .unwrap();
    let mut a = c.admin();
    let e = a.audit_reanchor().unwrap_err();
    assert_eq!(e.kind(), clinvault_core::ErrorKind::Integrity, "{e}");
    assert!(e.to_string().contains("entry 5"), "{e}");
    assert!(!a.verify_audit().unwrap().intact);
}

#[test]
fn a_bad_signature_is_found() {
    let (c, key) = Clinic::with_history();
    c.insider(&key)
        .execute(
            "UPDATE audit_log SET signature = randomblob(64) WHERE seq = 8",
            [],
        )
        .unwrap();
    let p = c.verify().problem.unwrap();
    assert_eq!((p.seq, p.kind), (8, ProblemKind::BadSignature), "{p:?}");
}

/// Who an insider's hand-made entry names and who signs it.
struct Forged<'a> {
    actor_id: &'a str,
    actor_name: &'a str,
    action: &'a str,
    outcome: &'a str,
    details: &'a str,
    signer_id: &'a str,
    signer_key: [u8; 32],
}

/// Appends `f` after the last entry, hashed correctly and signed with `sign`; returns its number.
fn append_forged(conn: &Connection, f: &Forged<'_>, sign: impl Fn(&[u8]) -> [u8; 64]) -> i64 {
    let (seq, prev): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let fields = clinvault_core::audit::EntryFields {
        seq: seq + 1,
        at: "2030-01-01T00:00:00Z",
        actor_id: Some(f.actor_id),
        actor_name: f.actor_name,
        device: "x",
        action: f.action,
        target_type: None,
        target_id: None,
        outcome: f.outcome,
        details: f.details,
        signer_id: f.signer_id,
        signer_key: &f.signer_key,
        prev_hash: &prev,
    };
    let hash = clinvault_core::audit::entry_hash(&fields);
    conn.execute(
        "INSERT INTO audit_log VALUES (?1, ?2, ?3, ?4, 'x', ?5, NULL, NULL, ?6, ?7, ?8, ?9, ?10,
             ?11, ?12)",
        rusqlite::params![
            seq + 1,
            fields.at,
            f.actor_id,
            f.actor_name,
            f.action,
            f.outcome,
            f.details,
            f.signer_id,
            f.signer_key.as_slice(),
            prev,
            hash.as_slice(),
            sign(&hash).as_slice()
        ],
    )
    .unwrap();
    seq + 1
}

fn user_id(conn: &Connection, username: &str) -> String {
    conn.query_row(
        "SELECT id FROM users WHERE username = ?1",
        [username],
        |r| r.get(0),
    )
    .unwrap()
}

/// The insider's own signing key, planted as one of Jo's keys with `mac` (SQL) as its MAC.
fn plant_key_for_jo(conn: &Connection, mac: &str) -> ed25519_dalek::SigningKey {
    let forger = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]);
    conn.execute(
        &format!(
            "INSERT INTO user_keys (user_id, ed25519_public, x25519_public, valid_from, mac)
             VALUES (?1, ?2, zeroblob(32), '2020-01-01T00:00:00Z', {mac})"
        ),
        rusqlite::params![
            user_id(conn, "jo"),
            forger.verifying_key().to_bytes().as_slice()
        ],
    )
    .unwrap();
    forger
}

/// Appends an entry in Jo's name signed with `forger`, then expects verification to report it
/// as signed by a key that is not registered.
fn forged_as_jo_is_found(c: &Clinic, conn: Connection, forger: &ed25519_dalek::SigningKey) {
    use ed25519_dalek::Signer;
    let jo_id = user_id(&conn, "jo");
    let seq = append_forged(
        &conn,
        &Forged {
            actor_id: &jo_id,
            actor_name: "jo",
            action: "user.list",
            outcome: "ok",
            details: "{}",
            signer_id: &jo_id,
            signer_key: forger.verifying_key().to_bytes(),
        },
        |hash| forger.sign(hash).to_bytes(),
    );
    drop(conn);
    let p = c.verify().problem.unwrap();
    assert_eq!((p.seq, p.kind), (seq, ProblemKind::BadSignature), "{p:?}");
    assert!(p.detail.contains("not registered"), "{p:?}");
}

#[test]
fn an_entry_forged_in_another_users_name_with_a_planted_key_is_found() {
    let (c, key) = Clinic::with_history();
    let conn = c.insider(&key);
    // The insider plants their own signing key as one of Jo's keys and appends an entry in her
    // name, hashed and signed correctly with that key.
    let forger = plant_key_for_jo(&conn, "randomblob(32)");
    forged_as_jo_is_found(&c, conn, &forger);
}

/// A sign-in carried in is signed by whoever signed in next, in the name of the user who tried:
/// verification accepts that only for failures, so a user with the database key and their own
/// signing key cannot record a colleague's successful sign-in.
#[test]
fn only_failed_sign_ins_may_be_signed_in_a_colleagues_name() {
    for (outcome, accepted) in [("failed", true), ("ok", false)] {
        let (c, key) = Clinic::with_history();
        let jo = c.sign_in("jo", USER_PASS);
        let conn = c.insider(&key);
        let (jo_id, admin_id) = (user_id(&conn, "jo"), user_id(&conn, "admin"));
        let (jo_key, _) = jo.sign_for_tests(b"").unwrap();
        let seq = append_forged(
            &conn,
            &Forged {
                actor_id: &admin_id,
                actor_name: "admin",
                action: "signin",
                outcome,
                details: r#"{"carried_in_by":"jo"}"#,
                signer_id: &jo_id,
                signer_key: jo_key,
            },
            |hash| jo.sign_for_tests(hash).unwrap().1,
        );
        drop(conn);
        drop(jo);
        let report = c.verify();
        if accepted {
            assert!(report.intact, "{outcome}: {:?}", report.problem);
        } else {
            let p = report.problem.unwrap();
            assert_eq!((p.seq, p.kind), (seq, ProblemKind::BadSignature), "{p:?}");
            assert!(p.detail.contains("another's name"), "{p:?}");
        }
    }
}

#[test]
fn review_filters_and_export_are_recorded() {
    let (c, _) = Clinic::with_history();
    let mut a = c.admin();
    let page = a
        .audit_list(&AuditFilter {
            action: Some("policy.".into()),
            limit: 4,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.len(), 4);
    assert!(page.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let next = a
        .audit_list(&AuditFilter {
            action: Some("policy.".into()),
            before_seq: Some(page[3].seq),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(next.len(), 2);
    let jo = a
        .audit_list(&AuditFilter {
            user: Some("jo".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert!(!jo.is_empty() && jo.iter().all(|e| e.actor_name == "jo"));
    let none = a
        .audit_list(&AuditFilter {
            until: Some(jiff::Timestamp::from_second(T0 - 1).unwrap()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert!(none.is_empty());
    let csv = a
        .audit_export(
            &AuditFilter {
                limit: 1000,
                ..Default::default()
            },
            ExportFormat::Csv,
        )
        .unwrap();
    assert!(csv.starts_with("seq,at,actor_id"));
    let json = a
        .audit_export(
            &AuditFilter {
                limit: 1000,
                ..Default::default()
            },
            ExportFormat::Json,
        )
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(parsed.as_array().unwrap().len() > 10);
    let exports = a
        .audit_list(&AuditFilter {
            action: Some("audit.export".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(exports.len(), 2);
    assert!(exports
        .iter()
        .all(|e| e.details["count"].as_u64().unwrap() > 10));
}

fn entries_about(s: &mut Session, patient: &str) -> Vec<i64> {
    s.audit_list(&AuditFilter {
        target_type: Some("patient".into()),
        target_id: Some(patient.into()),
        limit: 100,
        ..Default::default()
    })
    .unwrap()
    .iter()
    .map(|e| e.seq)
    .collect()
}

fn open_record(s: &mut Session, patient: &str) {
    s.gate_for_tests(
        Need::SignedIn,
        Event::new("patient.view").target("patient", patient),
        |_, _| Ok(()),
    )
    .unwrap();
}

/// Opens a record and returns its entry's number.
fn opened(s: &mut Session, patient: &str) -> i64 {
    open_record(s, patient);
    s.audit_list(&AuditFilter {
        limit: 1,
        action: Some("patient.view".into()),
        ..Default::default()
    })
    .unwrap()[0]
        .seq
}

/// Records a view of one of a patient's notes (the entry names the patient in its details, as
/// the core's note, appointment, invoice and attachment operations do) and returns its number.
fn viewed_note(s: &mut Session, note: &str, patient: &str) -> i64 {
    s.gate_for_tests(
        Need::SignedIn,
        Event::new("note.view")
            .target("note", note)
            .detail("patient", patient),
        |_, _| Ok(()),
    )
    .unwrap();
    s.audit_list(&AuditFilter {
        limit: 1,
        action: Some("note.view".into()),
        ..Default::default()
    })
    .unwrap()[0]
        .seq
}

/// An insider's row in the record lookup listing entry `seq` under patient p-1.
fn file_under_p1(insider: &Connection, seq: i64) {
    insider
        .execute(
            "INSERT INTO audit_targets (target_id, target_type, seq) VALUES ('p-1', 'patient', ?1)",
            [seq],
        )
        .unwrap();
}

/// Verification's finding about an altered record lookup, which it then rebuilt.
fn lookup_problem(s: &mut Session) -> clinvault_core::audit_verify::Problem {
    let p = s.verify_audit().unwrap().problem.unwrap();
    assert_eq!(p.kind, ProblemKind::LookupAltered, "{p:?}");
    assert!(p.detail.contains("rebuilt"), "{}", p.detail);
    p
}

#[test]
fn the_record_lookup_finds_every_entry_and_altering_it_is_found() {
    let (c, key) = Clinic::with_history();
    let mut a = c.admin();
    let first = opened(&mut a, "p-1");
    opened(&mut a, "p-2");
    assert_eq!(entries_about(&mut a, "p-1"), vec![first]);
    // Entries appended after a lookup are found by the next one.
    let second = opened(&mut a, "p-1");
    assert_eq!(entries_about(&mut a, "p-1"), vec![second, first]);
    assert!(a.verify_audit().unwrap().intact);
    drop(a);

    // An insider removes an entry from the lookup to hide it from a search by record.
    let insider = c.insider(&key);
    insider
        .execute("DELETE FROM audit_targets WHERE seq = ?1", [first])
        .unwrap();
    let mut a = c.admin();
    assert_eq!(entries_about(&mut a, "p-1"), vec![second]);
    let p = lookup_problem(&mut a);
    assert_eq!(p.seq, first, "{p:?}");
    assert!(p.detail.contains("1 entries are missing"), "{}", p.detail);
    // Verification rebuilt the lookup from the trail.
    assert_eq!(entries_about(&mut a, "p-1"), vec![second, first]);
    drop(a);

    // Or files another patient's entry under this one: the search checks the entry itself.
    let other: i64 = insider
        .query_row(
            "SELECT seq FROM audit_log WHERE target_id = 'p-2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    file_under_p1(&insider, other);
    let mut a = c.admin();
    assert_eq!(entries_about(&mut a, "p-1"), vec![second, first]);
    assert_eq!(lookup_problem(&mut a).seq, other);

    // The failure stays on record and alerted; the lookup was rebuilt from the trail.
    let r = a.verify_audit().unwrap();
    assert!(r.intact, "{:?}", r.problem);
    assert_eq!(entries_about(&mut a, "p-1"), vec![second, first]);
    assert!(alerts(&mut a)
        .iter()
        .any(|al| al.rule == clinvault_core::alerts::VERIFY_FAILED));
    drop(a);

    // Or moves the lookup's mark far ahead, so that new entries would never be added to it.
    insider
        .execute("UPDATE audit_targets_upto SET seq = 1000000000", [])
        .unwrap();
    let mut a = c.admin();
    let third = opened(&mut a, "p-1");
    assert_eq!(entries_about(&mut a, "p-1"), vec![second, first]);
    let p = lookup_problem(&mut a);
    // The first entry with a record after the move, which may be another record's.
    assert!(p.seq > second && p.seq <= third, "{p:?}");
    assert!(p.detail.contains("missing"), "{}", p.detail);
    assert_eq!(entries_about(&mut a, "p-1"), vec![third, second, first]);
}

#[test]
fn a_search_for_a_patient_finds_entries_about_their_records_and_altering_those_is_found() {
    let (c, key) = Clinic::with_history();
    let mut a = c.admin();
    let record = opened(&mut a, "p-1");
    let note = viewed_note(&mut a, "n-1", "p-1");
    let other = viewed_note(&mut a, "n-2", "p-2");
    assert_eq!(entries_about(&mut a, "p-1"), vec![note, record]);
    assert_eq!(entries_about(&mut a, "p-2"), vec![other]);
    let by_note = a
        .audit_list(&AuditFilter {
            target_type: Some("note".into()),
            target_id: Some("n-1".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        by_note.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![note]
    );
    let r = a.verify_audit().unwrap();
    assert!(r.intact, "{:?}", r.problem);
    drop(a);

    // An insider hides the note view from a search for the patient.
    let insider = c.insider(&key);
    insider
        .execute(
            "DELETE FROM audit_targets WHERE target_type = 'patient' AND seq = ?1",
            [note],
        )
        .unwrap();
    let mut a = c.admin();
    assert_eq!(entries_about(&mut a, "p-1"), vec![record]);
    assert_eq!(lookup_problem(&mut a).seq, note);
    assert_eq!(entries_about(&mut a, "p-1"), vec![note, record]);
    drop(a);

    // Or files another patient's note view under this one.
    file_under_p1(&insider, other);
    let mut a = c.admin();
    assert_eq!(entries_about(&mut a, "p-1"), vec![note, record]);
    assert_eq!(lookup_problem(&mut a).seq, other);
    let r = a.verify_audit().unwrap();
    assert!(r.intact, "{:?}", r.problem);
}

#[test]
fn pruning_drops_the_lookup_rows_of_pruned_entries() {
    let (c, _) = Clinic::with_history();
    let mut a = c.admin();
    let old = opened(&mut a, "p-1");
    assert_eq!(entries_about(&mut a, "p-1"), vec![old]);
    drop(a);
    c.clock.advance(7 * 366 * 86_400);
    let mut a = c.admin();
    let recent = opened(&mut a, "p-1");
    let r = a
        .audit_prune(jiff::Timestamp::from_second(T0 + 3600).unwrap())
        .unwrap();
    assert!(r.upto_seq.unwrap() >= old, "{r:?}");
    assert_eq!(entries_about(&mut a, "p-1"), vec![recent]);
    let report = a.verify_audit().unwrap();
    assert!(report.intact, "{:?}", report.problem);
}

/// A patient's change history and an invoice PDF are views of the patient's record too.
#[test]
fn bulk_record_access_counts_history_and_invoice_pdf_views() {
    let c = Clinic::new();
    let mut a = c.admin();
    a.set_policy("alert.bulk-view-count", "3").unwrap();
    a.set_policy("alert.bulk-view-minutes", "10").unwrap();
    open_record(&mut a, "p1");
    a.gate_for_tests(
        Need::SignedIn,
        Event::new("patient.history").target("patient", "p2"),
        |_, _| Ok(()),
    )
    .unwrap();
    assert_eq!(bulk_alerts(&mut a), 0);
    a.gate_for_tests(
        Need::SignedIn,
        Event::new("invoice.export_pdf")
            .target("invoice", "i3")
            .detail("patient", "p3"),
        |_, _| Ok(()),
    )
    .unwrap();
    assert_eq!(bulk_alerts(&mut a), 1);
}

#[test]
fn bulk_record_access_alert_fires_at_its_threshold_only() {
    let c = Clinic::new();
    let mut a = c.admin();
    a.set_policy("alert.bulk-view-count", "5").unwrap();
    a.set_policy("alert.bulk-view-minutes", "10").unwrap();
    for i in 0..4 {
        open_record(&mut a, &format!("p{i}"));
        open_record(&mut a, &format!("p{i}"));
    }
    assert!(!alerts(&mut a)
        .iter()
        .any(|x| x.rule == "bulk_record_access"));
    // Views spread out beyond the window do not add up.
    c.clock.advance(11 * 60);
    open_record(&mut a, "p4");
    assert!(!alerts(&mut a)
        .iter()
        .any(|x| x.rule == "bulk_record_access"));
    for i in 5..9 {
        open_record(&mut a, &format!("p{i}"));
    }
    let fired: Vec<Alert> = alerts(&mut a)
        .into_iter()
        .filter(|x| x.rule == "bulk_record_access")
        .collect();
    assert_eq!(fired.len(), 1);
    assert!(
        !fired[0].summary.contains("p5"),
        "no record ids or names in the summary"
    );
    a.acknowledge_alert(fired[0].id).unwrap();
    assert!(a
        .audit_alerts(false)
        .unwrap()
        .iter()
        .all(|x| x.id != fired[0].id));
    let acks = a
        .audit_list(&AuditFilter {
            action: Some("audit.alert_ack".into()),
            limit: 5,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(acks.len(), 1);
}

#[test]
fn bulk_record_access_counts_views_of_patients_notes_by_patient() {
    let c = Clinic::new();
    let mut a = c.admin();
    a.set_policy("alert.bulk-view-count", "5").unwrap();
    a.set_policy("alert.bulk-view-minutes", "10").unwrap();
    open_record(&mut a, "p0");
    open_record(&mut a, "p1");
    // Two notes of the same patient are one patient.
    viewed_note(&mut a, "n-0", "p2");
    viewed_note(&mut a, "n-1", "p2");
    viewed_note(&mut a, "n-2", "p1");
    viewed_note(&mut a, "n-3", "p3");
    assert_eq!(bulk_alerts(&mut a), 0);
    viewed_note(&mut a, "n-4", "p4");
    assert_eq!(bulk_alerts(&mut a), 1);

    // The alert is about the administrator: with another administrator, that one clears it.
    let alert = alerts(&mut a)
        .into_iter()
        .find(|x| x.rule == "bulk_record_access")
        .unwrap();
    a.add_user("ben", None, "administrator", &secret(USER_PASS))
        .unwrap();
    let e = a.acknowledge_alert(alert.id).unwrap_err();
    assert_eq!(e.kind(), clinvault_core::ErrorKind::PermissionDenied, "{e}");
    let mut ben = c.sign_in("ben", USER_PASS);
    ben.acknowledge_alert(alert.id).unwrap();
    assert_eq!(
        alerts(&mut a)
            .iter()
            .find(|x| x.id == alert.id)
            .unwrap()
            .acknowledged_by
            .as_deref(),
        Some("ben")
    );
}

/// A long operation run in two halves (a push uploading without its session) is recorded only
/// by the person who ran it, and only once their session is open again.
#[test]
fn a_long_operation_is_recorded_by_the_person_who_ran_it_once_they_are_back() {
    let (c, _) = Clinic::with_history();
    let mut a = c.admin();
    // A backup run is recorded only under the permission backups need.
    let e = a
        .begin_audited(Need::SignedIn, Event::new("backup.export"))
        .err()
        .unwrap();
    assert_eq!(e.kind(), clinvault_core::ErrorKind::Internal, "{e}");
    // Nothing else is recorded this way, whatever permission is named: a view recorded apart
    // from its transaction could be recorded without happening, or happen unrecorded.
    let before = a.audit_list(&AuditFilter::default()).unwrap().len();
    let patient_read = Need::Permission(clinvault_core::permissions::Permission::PatientRead);
    let e = a
        .run_audited(patient_read, Event::new("patient.view"), |_, _| Ok(()))
        .unwrap_err();
    assert_eq!(e.kind(), clinvault_core::ErrorKind::Internal, "{e}");
    let after = a.audit_list(&AuditFilter::default()).unwrap();
    // Only the listing itself was recorded.
    assert_eq!(after.len(), before + 1);
    assert_eq!(after[0].action, "audit.list");
    let mut jo = c.sign_in("jo", USER_PASS);
    let forged = jo.gate_for_tests(Need::SignedIn, Event::new("sync.push"), |_, _| Ok(()));
    assert!(forged.is_err());
    drop(jo);
    let mut run = a
        .begin_audited(
            Need::Permission(clinvault_core::permissions::Permission::BackupManage),
            Event::new("backup.export"),
        )
        .unwrap();
    *run.event_mut() = run.event_mut().clone().detail("files", 3);
    a.lock("manual");
    let e = a.finish_audited(&run, None).unwrap_err();
    assert_eq!(e.kind(), clinvault_core::ErrorKind::SessionLocked, "{e}");
    let mut jo = c.sign_in("jo", USER_PASS);
    let e = jo.finish_audited(&run, None).unwrap_err();
    assert_eq!(e.kind(), clinvault_core::ErrorKind::PermissionDenied, "{e}");
    drop(jo);
    a.unlock(&secret(ADMIN_PASS)).unwrap();
    a.finish_audited(&run, Some(clinvault_core::ErrorKind::Io))
        .unwrap();
    let entries = a
        .audit_list(&AuditFilter {
            action: Some("backup.export".into()),
            limit: 5,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0].actor_name.as_str(), entries[0].outcome.as_str()),
        ("admin", "failed")
    );
    assert_eq!(entries[0].details["files"], serde_json::json!(3));
    assert_eq!(entries[0].details["error"], serde_json::json!("io"));
}

/// The count is carried from one view to the next and then reads only the entries appended
/// since, which must include those of the same user's other sessions (another window, the CLI).
#[test]
fn bulk_record_access_counts_views_from_the_same_users_other_sessions() {
    let c = Clinic::new();
    let mut a = c.admin();
    a.set_policy("alert.bulk-view-count", "5").unwrap();
    open_record(&mut a, "p0");
    open_record(&mut a, "p1");
    let mut b = c.admin();
    open_record(&mut b, "p2");
    open_record(&mut b, "p3");
    assert_eq!(bulk_alerts(&mut b), 0);
    open_record(&mut a, "p4");
    assert_eq!(bulk_alerts(&mut a), 1);
}

/// The rule reads only the window's entries, newest first. Neither another user's views nor a
/// failed sign-in carried into the trail later (with its original, older time) may change
/// what it counts.
#[test]
fn bulk_record_access_counts_one_user_across_carried_in_sign_in_failures() {
    let c = Clinic::new();
    let mut a = c.admin();
    a.set_policy("alert.bulk-view-count", "5").unwrap();
    a.set_policy("alert.bulk-view-minutes", "10").unwrap();
    a.set_policy("idle-lock-minutes", "120").unwrap();
    a.add_user("jo", None, "receptionist", &secret(USER_PASS))
        .unwrap();
    drop(a);
    let mut jo = c.sign_in("jo", USER_PASS);
    // A failed sign-in nobody can sign yet: it waits outside the database.
    c.wrong_sign_in("admin");
    c.clock.advance(50 * 60);
    for id in ["p1", "p2", "p3"] {
        open_record(&mut jo, id);
    }
    // The administrator's sign-in carries the failure in, 50 minutes after it happened.
    let mut a = c.admin();
    for id in ["a1", "a2", "a3", "a4"] {
        open_record(&mut a, id);
    }
    open_record(&mut jo, "p4");
    assert!(!alerts(&mut a)
        .iter()
        .any(|x| x.rule == "bulk_record_access"));
    open_record(&mut jo, "p5");
    let fired: Vec<Alert> = alerts(&mut a)
        .into_iter()
        .filter(|x| x.rule == "bulk_record_access")
        .collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].actor_name.as_deref(), Some("jo"));
    assert_eq!(fired[0].details["distinct_records"], 5);
}

#[test]
fn outside_hours_failed_sign_in_and_role_change_alerts() {
    let c = Clinic::new();
    let mut a = c.admin();
    a.set_policy("clinic-timezone", "Australia/Sydney").unwrap();
    assert!(a.set_policy("clinic-timezone", "Mars/Olympus").is_err());
    a.set_policy("clinic-hours", "Mon-Fri 08:00-18:00").unwrap();
    a.add_user("jo", None, "receptionist", &secret(USER_PASS))
        .unwrap();
    let count = |a: &mut Session, rule: &str| alerts(a).iter().filter(|x| x.rule == rule).count();
    let jo_count = |a: &mut Session, rule: &str| {
        alerts(a)
            .iter()
            .filter(|x| x.rule == rule && x.actor_name.as_deref() == Some("jo"))
            .count()
    };
    assert_eq!(count(&mut a, "role_or_permission_change"), 1);
    a.set_user_role("jo", "biller").unwrap();
    assert_eq!(count(&mut a, "role_or_permission_change"), 2);
    drop(a);
    // T0 is Monday 10:00 UTC = 21:00 in Sydney: outside hours.
    c.sign_in("jo", USER_PASS);
    let mut a = c.admin();
    assert_eq!(jo_count(&mut a, "access_outside_hours"), 1);
    a.set_policy("clinic-timezone", "UTC").unwrap();
    drop(a);
    c.clock.advance(2 * 3600);
    c.sign_in("jo", USER_PASS);
    let mut a = c.admin();
    assert_eq!(
        jo_count(&mut a, "access_outside_hours"),
        1,
        "inside hours: quiet"
    );
    a.set_policy("alert.failed-signins", "3").unwrap();
    drop(a);
    for _ in 0..2 {
        c.wrong_sign_in("jo");
    }
    let mut a = c.admin();
    assert_eq!(
        count(&mut a, "repeated_failed_signins"),
        0,
        "below threshold: quiet"
    );
    drop(a);
    for _ in 0..3 {
        c.wrong_sign_in("jo");
    }
    let mut a = c.admin();
    assert_eq!(count(&mut a, "repeated_failed_signins"), 1);
    drop(a);

    // Failures carried in by different sign-ins add up within an hour.
    c.clock.advance(2 * 3600);
    // A good sign-in resets the throttle, so the next failures are counted without waiting.
    drop(c.sign_in("jo", USER_PASS));
    c.wrong_sign_in("jo");
    c.clock.advance(60);
    c.wrong_sign_in("jo");
    let mut a = c.admin();
    assert_eq!(count(&mut a, "repeated_failed_signins"), 1, "2 of 3: quiet");
    drop(a);
    c.clock.advance(10 * 60);
    c.wrong_sign_in("jo");
    let mut a = c.admin();
    assert_eq!(count(&mut a, "repeated_failed_signins"), 2);

    // Disabling an account is a change of who may do what.
    let before = count(&mut a, "role_or_permission_change");
    a.disable_user("jo").unwrap();
    assert_eq!(count(&mut a, "role_or_permission_change"), before + 1);

    // Unlocking outside hours is access outside hours too (after 18:00 UTC, the clinic's zone).
    let admin_count = |a: &mut Session| {
        alerts(a)
            .iter()
            .filter(|x| {
                x.rule == "access_outside_hours" && x.actor_name.as_deref() == Some("admin")
            })
            .count()
    };
    let outside_before = admin_count(&mut a);
    a.lock("test");
    c.clock.advance(4 * 3600);
    a.unlock(&secret(ADMIN_PASS)).unwrap();
    assert_eq!(admin_count(&mut a), outside_before + 1);
}

/// Failures wait outside the database until the next good sign-in: a burst at night carried in
/// the next morning is counted in the hour it happened, not the hour it was carried in.
#[test]
fn failed_sign_ins_carried_in_hours_later_still_alert() {
    let c = Clinic::new();
    let mut a = c.admin();
    a.set_policy("alert.failed-signins", "3").unwrap();
    a.add_user("jo", None, "receptionist", &secret(USER_PASS))
        .unwrap();
    drop(a);
    for _ in 0..3 {
        c.wrong_sign_in("jo");
        c.clock.advance(10);
    }
    c.clock.advance(6 * 3600);
    // One more mistype in the morning, carried in with the night's burst.
    c.wrong_sign_in("jo");
    let mut a = c.admin();
    let fired: Vec<Alert> = alerts(&mut a)
        .into_iter()
        .filter(|x| x.rule == "repeated_failed_signins")
        .collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].details["failures"], 3);
}

#[test]
fn a_checkpoint_copied_in_as_a_prune_mark_does_not_hide_deleted_entries() {
    let (c, key) = Clinic::with_history();
    // The checkpoint kept outside the database is a genuine signed one; the insider files it as
    // if a prune had cut the trail there, and deletes everything up to it.
    let text = std::fs::read_to_string(c.dir.file("audit.checkpoint")).unwrap();
    let size: i64 = text.lines().nth(1).unwrap().parse().unwrap();
    let conn = c.insider(&key);
    conn.execute(
        "INSERT INTO audit_prune_marks (upto_seq, at, checkpoint) VALUES (?1, '2026-01-01T00:00:00Z', ?2)",
        rusqlite::params![size, text],
    )
    .unwrap();
    conn.execute("DELETE FROM audit_log WHERE seq <= ?1", [size])
        .unwrap();
    conn.execute("DELETE FROM audit_targets WHERE seq <= ?1", [size])
        .unwrap();
    drop(conn);
    let p = c.verify().problem.unwrap();
    assert_eq!((p.seq, p.kind), (size + 1, ProblemKind::Deleted), "{p:?}");
    assert!(p.detail.contains("no prune"), "{p:?}");
}

/// A session left open all day (the front desk's) anchors the trail's end every ten minutes
/// when the app's timer checks it, not only when it ends.
#[test]
fn an_open_session_anchors_the_trail_as_it_goes() {
    let c = Clinic::new();
    let mut a = c.admin();
    a.set_policy("idle-lock-minutes", "60").unwrap();
    let anchored = || -> i64 {
        let text = std::fs::read_to_string(c.dir.file("audit.checkpoint")).unwrap();
        text.lines().nth(1).unwrap().parse().unwrap()
    };
    let at_sign_in = anchored();
    for _ in 0..3 {
        a.list_roles().unwrap();
    }
    a.check();
    assert_eq!(anchored(), at_sign_in, "not due yet");
    c.clock.advance(11 * 60);
    a.check();
    let newest = a
        .audit_list(&AuditFilter {
            limit: 1,
            ..Default::default()
        })
        .unwrap()[0]
        .seq;
    // Everything before the list just made is covered (the list shows the trail as it was
    // before its own entry).
    assert_eq!(anchored(), newest);
    assert_eq!(
        anchored(),
        at_sign_in + 4,
        "the policy change and three lists"
    );
}

#[test]
fn cutting_off_only_what_the_last_session_did_is_found() {
    let (c, key) = Clinic::with_history();
    // Jo's session (a role list, then its end) was the last; the insider removes just that.
    c.cut_off_last(&key, 2);
    let mut a = c.admin();
    let p = a.verify_audit().unwrap().problem.unwrap();
    assert_eq!(p.kind, ProblemKind::Truncated, "{p:?}");
    assert!(alerts(&mut a)
        .iter()
        .any(|x| x.rule == "audit_checkpoint_mismatch"));
}

#[test]
fn pruning_keeps_the_chain_verifiable_and_respects_retention() {
    let (c, _) = Clinic::with_history();
    let mut a = c.admin();
    let e = a
        .audit_prune(jiff::Timestamp::from_second(T0 + 60).unwrap())
        .err()
        .unwrap();
    assert!(e.to_string().contains("retention period"), "{e}");
    drop(a);
    c.clock.advance(7 * 366 * 86_400);
    let mut a = c.admin();
    let r = a
        .audit_prune(jiff::Timestamp::from_second(T0 + 3600).unwrap())
        .unwrap();
    assert!(r.removed > 10, "{r:?}");
    let report = a.verify_audit().unwrap();
    assert!(report.intact, "{:?}", report.problem);
    assert_eq!(report.first_seq, Some(r.upto_seq.unwrap() + 1));
}

const YEAR: i64 = 366 * 86_400;

/// The entries of the trail with this action, oldest first.
fn seqs_of(s: &mut Session, action: &str) -> Vec<i64> {
    let mut v: Vec<i64> = s
        .audit_list(&AuditFilter {
            action: Some(action.into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    v.reverse();
    v
}

#[test]
fn a_prune_removes_only_a_prefix_of_old_entries_even_after_an_old_time_further_on() {
    let (c, _) = Clinic::with_history();
    c.clock.advance(7 * YEAR);
    let mut a = c.admin();
    let recent = opened(&mut a, "p-recent");
    // The system clock is set eight years back for a moment: an entry far down the trail
    // carries an old time.
    c.clock.advance(-8 * YEAR);
    let misdated = opened(&mut a, "p-misdated");
    drop(a);
    c.clock.advance(8 * YEAR);
    let mut a = c.admin();
    let after = opened(&mut a, "p-after");
    let r = a
        .audit_prune(jiff::Timestamp::from_second(T0 + 3600).unwrap())
        .unwrap();
    let upto = r.upto_seq.unwrap();
    assert!(upto < recent, "the prune took recent entries: {r:?}");
    assert_eq!(
        seqs_of(&mut a, "patient.view"),
        vec![recent, misdated, after]
    );
    let report = a.verify_audit().unwrap();
    assert!(report.intact, "{:?}", report.problem);
    assert_eq!(report.first_seq, Some(upto + 1));
}

#[test]
fn a_prune_stops_before_the_first_entry_about_a_patient_under_a_legal_hold() {
    let (c, _) = Clinic::with_history();
    let mut a = c.admin();
    let patient = a
        .add_patient(clinvault_core::patients::PatientFields {
            first_name: Some("Hilda".into()),
            last_name: Some("Held".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    let created = seqs_of(&mut a, "patient.create")[0];
    for i in 0..3 {
        a.set_policy("idle-lock-minutes", &(20 + i).to_string())
            .unwrap();
    }
    a.place_legal_hold(&patient, "complaint under investigation")
        .unwrap();
    drop(a);
    c.clock.advance(7 * YEAR);
    let mut a = c.admin();
    let plan = a.retention_plan().unwrap();
    let r = a
        .audit_prune(jiff::Timestamp::from_second(T0 + 3600).unwrap())
        .unwrap();
    assert_eq!(r.upto_seq, Some(created - 1), "{r:?}");
    assert_eq!(
        plan.audit_entries_due, r.removed,
        "the plan counts what the prune cuts"
    );
    assert_eq!(entries_about(&mut a, &patient)[..].last(), Some(&created));

    // Once the hold is released, the rest of the old entries can go.
    a.release_legal_hold(&patient, Some("closed")).unwrap();
    let r = a
        .audit_prune(jiff::Timestamp::from_second(T0 + 3600).unwrap())
        .unwrap();
    assert!(r.upto_seq.unwrap() > created, "{r:?}");
    assert!(entries_about(&mut a, &patient)
        .iter()
        .all(|&s| s > r.upto_seq.unwrap()));
    let report = a.verify_audit().unwrap();
    assert!(report.intact, "{:?}", report.problem);
}

/// The newest `limit` entries of `action` (exact, or a prefix ending in '.').
fn with_action(
    s: &mut Session,
    action: &str,
    limit: u32,
) -> Vec<clinvault_core::audit_review::AuditEntry> {
    s.audit_list(&AuditFilter {
        action: Some(action.into()),
        limit,
        ..Default::default()
    })
    .unwrap()
}

/// A trigger planted with the database key that swallows entries (RAISE IGNORE) would let
/// operations commit without their entries; instead the operation fails, and the next sign-in
/// removes the trigger, records that in the trail and alerts.
#[test]
fn a_trigger_planted_to_swallow_entries_fails_the_operation_and_is_removed_at_sign_in() {
    let (c, key) = Clinic::with_history();
    let mut jo = c.sign_in("jo", USER_PASS);
    let insider = c.insider(&key);
    insider
        .execute_batch(
            "CREATE TRIGGER quiet BEFORE INSERT ON audit_log WHEN NEW.action = 'role.list'
             BEGIN SELECT RAISE(IGNORE); END;",
        )
        .unwrap();
    let before = max_seq(&insider);
    drop(insider);
    let refused = jo.list_roles().unwrap_err();
    assert_eq!(
        refused.kind(),
        clinvault_core::error::ErrorKind::Integrity,
        "{refused}"
    );
    assert!(refused.to_string().contains("not kept"), "{refused}");
    drop(jo);

    let mut jo = c.sign_in("jo", USER_PASS);
    jo.list_roles().unwrap();
    drop(jo);
    let mut a = c.admin();
    let repaired = with_action(&mut a, "audit.schema_repaired", 10);
    assert_eq!(repaired.len(), 1);
    assert_eq!(repaired[0].actor_name, "jo");
    assert_eq!(repaired[0].details["triggers_removed"][0], "quiet");
    let listed = with_action(&mut a, "role.list", 10);
    assert!(
        listed
            .iter()
            .any(|e| e.seq > before && e.actor_name == "jo"),
        "the list after the repair is recorded"
    );
    assert!(alerts(&mut a)
        .iter()
        .any(|x| x.rule == "audit_verification_failed" && x.summary.contains("quiet")));
    let report = a.verify_audit().unwrap();
    assert!(report.intact, "{:?}", report.problem);
}

/// An insider who drops the triggers that keep the trail append-only (and leaves the rows
/// alone) would leave the trail open to quiet edits by the next one: the next sign-in puts them
/// back, records which in the trail and alerts.
#[test]
fn triggers_dropped_with_the_database_key_are_put_back_at_sign_in() {
    let (c, key) = Clinic::with_history();
    drop(c.insider(&key));
    let mut a = c.admin();
    let repaired = with_action(&mut a, "audit.schema_repaired", 10);
    assert_eq!(repaired.len(), 1);
    assert_eq!(repaired[0].actor_name, "admin");
    assert_eq!(
        repaired[0].details["triggers_restored"],
        serde_json::json!(["audit_log_no_delete", "audit_log_no_update"])
    );
    assert_eq!(
        repaired[0].details["triggers_removed"],
        serde_json::json!([])
    );
    assert!(alerts(&mut a)
        .iter()
        .any(|x| x.rule == "audit_verification_failed"
            && x.summary.contains("audit_log_no_update")
            && x.summary.contains("put back")));
    assert!(a.verify_audit().unwrap().intact);
    drop(a);

    // The insider's next attempt meets the triggers again.
    let conn = c.keyed(&key);
    let refused = conn
        .execute(
            "UPDATE audit_log SET device = 'elsewhere' WHERE seq = 3",
            [],
        )
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    let refused = conn
        .execute("DELETE FROM audit_log WHERE seq = 3", [])
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    drop(conn);
    // Nothing to repair any more: no second entry.
    let mut a = c.admin();
    assert_eq!(with_action(&mut a, "audit.schema_repaired", 10).len(), 1);
}

/// A verification failure is about the trail, not about the administrator who found it: with
/// two administrators, the finder may acknowledge it; and an acknowledged alert does not keep
/// the next occurrence quiet.
#[test]
fn a_verification_alert_is_acknowledged_by_its_finder_and_acknowledged_alerts_silence_nothing() {
    let (c, key) = Clinic::with_history();
    let mut a = c.admin();
    a.add_user("ann", None, "administrator", &secret(USER_PASS))
        .unwrap();
    c.insider(&key)
        .execute(
            "UPDATE audit_log SET device = 'elsewhere' WHERE seq = 3",
            [],
        )
        .unwrap();
    assert!(!a.verify_audit().unwrap().intact);
    let found = alerts(&mut a)
        .into_iter()
        .find(|x| x.rule == "audit_verification_failed")
        .unwrap();
    assert_eq!(found.actor_name, None);
    assert_eq!(found.details["found_by"], "admin");
    a.acknowledge_alert(found.id).unwrap();
    drop(a);

    // Outside hours, the alert comes back after an acknowledgement.
    let mut a = c.admin();
    a.set_policy("clinic-hours", "Mon-Fri 08:00-18:00").unwrap();
    drop(a);
    c.clock.advance(9 * 3600); // Monday 19:00 UTC
    drop(c.sign_in("jo", USER_PASS));
    let outside = |a: &mut Session| {
        alerts(a)
            .into_iter()
            .filter(|x| x.rule == "access_outside_hours" && x.actor_name.as_deref() == Some("jo"))
            .collect::<Vec<_>>()
    };
    let mut a = c.admin();
    let first = outside(&mut a);
    assert_eq!(first.len(), 1);
    a.acknowledge_alert(first[0].id).unwrap();
    drop(a);
    c.clock.advance(600);
    drop(c.sign_in("jo", USER_PASS));
    let mut a = c.admin();
    assert_eq!(
        outside(&mut a).len(),
        2,
        "a new alert after the acknowledgement"
    );
}

/// Access outside clinic hours is any operation, not only signing in: a session opened just
/// before closing that goes on into the evening alerts too (once an hour).
#[test]
fn working_on_past_closing_time_alerts_once_an_hour() {
    let (c, _) = Clinic::with_history();
    let mut a = c.admin();
    a.set_policy("clinic-hours", "Mon-Fri 08:00-18:00").unwrap();
    drop(a);
    c.clock.advance(7 * 3600 + 50 * 60); // Monday 17:50 UTC
    let mut jo = c.sign_in("jo", USER_PASS);
    jo.list_roles().unwrap();
    let jo_alerts = |c: &Clinic| {
        let mut a = c.admin();
        let n = alerts(&mut a)
            .iter()
            .filter(|x| x.rule == "access_outside_hours" && x.actor_name.as_deref() == Some("jo"))
            .count();
        n
    };
    assert_eq!(jo_alerts(&c), 0, "inside hours: quiet");
    for _ in 0..3 {
        c.clock.advance(10 * 60); // 18:00, 18:10, 18:20
        jo.list_roles().unwrap();
    }
    assert_eq!(
        jo_alerts(&c),
        1,
        "past closing: one alert, not one per operation"
    );
}

/// A value a spreadsheet would run as a formula is neutralised in the CSV export (kept as it
/// is in JSON), and text that cannot be a username is recorded under a placeholder, not as
/// typed.
#[test]
fn the_csv_export_runs_no_formula_and_odd_usernames_are_not_recorded_as_typed() {
    let (c, _) = Clinic::with_history();
    c.wrong_sign_in("=HYPERLINK(\"http://example.invalid\",\"open\")");
    let mut jo = c.sign_in("jo", USER_PASS);
    assert!(jo.set_policy("=2+3", "x").is_err());
    drop(jo);
    let mut a = c.admin();
    let filter = AuditFilter {
        limit: 1000,
        ..Default::default()
    };
    let csv = a.audit_export(&filter, ExportFormat::Csv).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let mut neutralised = 0;
    for row in reader.records() {
        for cell in row.unwrap().iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a live formula in the CSV: {cell}"
            );
            neutralised += usize::from(cell == "'=2+3");
        }
    }
    assert_eq!(neutralised, 1, "the refused setting's name, kept readable");
    let json: serde_json::Value =
        serde_json::from_str(&a.audit_export(&filter, ExportFormat::Json).unwrap()).unwrap();
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["target_id"] == "=2+3"));
    let failed = a
        .audit_list(&AuditFilter {
            action: Some("signin".into()),
            outcome: Some("failed".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].actor_name,
        clinvault_core::session::NOT_A_USERNAME
    );
    assert!(!csv.contains("HYPERLINK") && !json.to_string().contains("HYPERLINK"));
}

/// An export of a patient's access log records what was asked for and names the patient, so
/// that a search for the patient shows who exported it; a review on screen records its filter.
/// Text that is no id or username (a patient's name typed into the wrong field) is not recorded.
#[test]
fn a_review_records_its_filter_and_an_export_of_a_patients_trail_names_the_patient() {
    let c = Clinic::new();
    let mut a = c.admin();
    let pid = a
        .add_patient(clinvault_core::patients::PatientFields {
            first_name: Some("Hilda".into()),
            last_name: Some("Held".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    open_record(&mut a, &pid);
    let filter = AuditFilter {
        target_type: Some("patient".into()),
        target_id: Some(pid.clone()),
        since: Some(jiff::Timestamp::from_second(T0 - 60).unwrap()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        a.audit_list(&filter).unwrap().len(),
        2,
        "created and viewed"
    );
    a.audit_export(&filter, ExportFormat::Json).unwrap();
    let reviews = with_action(&mut a, "audit.", 10);
    let export = reviews.iter().find(|e| e.action == "audit.export").unwrap();
    assert_eq!(export.details["filter"]["target_id"], pid.as_str());
    assert_eq!(export.details["filter"]["since"], "2026-11-23T09:59:00Z");
    let list = reviews.iter().find(|e| e.action == "audit.list").unwrap();
    assert_eq!(list.details["filter"]["target_id"], pid.as_str());
    let about = entries_about(&mut a, &pid);
    assert!(
        about.contains(&export.seq),
        "the export is found under the patient"
    );
    assert!(
        !about.contains(&list.seq),
        "a review on screen is not added to the patient's trail"
    );

    let typed_name = AuditFilter {
        user: Some("Hilda Held".into()),
        action: Some("Hilda Held".into()),
        target_type: Some("patient".into()),
        target_id: Some("Hilda Held".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(a.audit_list(&typed_name).unwrap().is_empty());
    a.audit_export(&typed_name, ExportFormat::Csv).unwrap();
    for e in with_action(&mut a, "audit.", 2) {
        assert!(!e.details.to_string().contains("Hilda"), "{}", e.details);
        assert_eq!(e.details["filter"]["target_id"], "(no such record)");
        assert_eq!(e.details["filter"]["user"], "(no such user)");
    }
}

/// Pruning stops before a held patient's entries even when someone with the database key
/// removed them from the record lookup, which is an accelerator and not evidence.
#[test]
fn a_prune_finds_a_held_patients_entries_in_the_trail_not_the_lookup() {
    let c = Clinic::new();
    let mut a = c.admin();
    let patient = a
        .add_patient(clinvault_core::patients::PatientFields {
            first_name: Some("Hilda".into()),
            last_name: Some("Held".into()),
            ..Default::default()
        })
        .unwrap()
        .id;
    let created = seqs_of(&mut a, "patient.create")[0];
    a.place_legal_hold(&patient, "complaint under investigation")
        .unwrap();
    // Bring the lookup up to date, then remove the held patient from it.
    entries_about(&mut a, &patient);
    let key = a
        .export_db_key(&secret(ADMIN_PASS), None)
        .unwrap()
        .to_string();
    drop(a);
    c.insider(&key)
        .execute("DELETE FROM audit_targets WHERE target_id = ?1", [&patient])
        .unwrap();
    c.clock.advance(7 * YEAR);
    let mut a = c.admin();
    let r = a
        .audit_prune(jiff::Timestamp::from_second(T0 + 3600).unwrap())
        .unwrap();
    assert_eq!(r.upto_seq, Some(created - 1), "{r:?}");
}

/// A key planted with the database key stays unregistered through a key rotation: rotation
/// re-authenticates only registrations that were genuine, so the insider cannot wait for the
/// next rotation (and a newly exported key) to sign in a colleague's name.
#[test]
fn a_planted_key_does_not_become_genuine_at_the_next_rotation() {
    let (c, key) = Clinic::with_history();
    let forger = plant_key_for_jo(&c.insider(&key), "NULL");
    let mut a = c.admin();
    a.rotate_keys().unwrap();
    let key = a
        .export_db_key(&secret(ADMIN_PASS), None)
        .unwrap()
        .to_string();
    drop(a);
    forged_as_jo_is_found(&c, c.insider(&key), &forger);
}

/// Rows an insider adds with numbers before the trail's start, or a prune mark with an absurd
/// number, are reported as what they are, without arithmetic overflowing.
#[test]
fn rows_numbered_before_the_start_and_absurd_prune_marks_are_reported() {
    let (c, key) = Clinic::with_history();
    let insider = c.insider(&key);
    insider
        .execute(
            "INSERT INTO audit_log SELECT 0, at, actor_id, actor_name, device, action,
                 target_type, target_id, outcome, details, signer_id, signer_key, prev_hash,
                 hash, signature FROM audit_log WHERE seq = 3",
            [],
        )
        .unwrap();
    drop(insider);
    let p = c.verify().problem.unwrap();
    assert_eq!((p.seq, p.kind), (0, ProblemKind::Inserted), "{p:?}");

    let (c, key) = Clinic::with_history();
    c.insider(&key)
        .execute(
            "INSERT INTO audit_prune_marks (upto_seq, at, checkpoint)
             VALUES (9223372036854775807, '2026-01-01T00:00:00Z', 'not a checkpoint')",
            [],
        )
        .unwrap();
    let report = c.verify();
    assert!(!report.intact);
    assert_eq!(report.problem.unwrap().kind, ProblemKind::BadSignature);
}

/// Failures under made-up usernames fill at most half of the list kept for the trail; those it
/// has no room for are counted, and the next sign-in records their number and alerts.
#[test]
fn failures_too_many_to_keep_are_counted_in_the_trail_and_alerted() {
    let c = Clinic::new();
    drop(c.admin());
    for i in 0..600 {
        clinvault_core::throttle::record_failure(
            &c.dir,
            &format!("junk{i}"),
            false,
            "x",
            "wrong",
            T0,
        )
        .unwrap();
    }
    let mut a = c.admin();
    let not_kept = with_action(&mut a, "signin.not_kept", 10);
    assert_eq!(not_kept.len(), 1);
    assert_eq!(not_kept[0].details["count"], 100);
    let carried = a
        .audit_list(&AuditFilter {
            action: Some("signin".into()),
            outcome: Some("failed".into()),
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(carried.len(), 500);
    assert!(alerts(&mut a)
        .iter()
        .any(|x| x.rule == "repeated_failed_signins" && x.details["not_kept"] == 100));
    let report = a.verify_audit().unwrap();
    assert!(report.intact, "{:?}", report.problem);
    drop(a);
    // Counted once: the next sign-in has nothing more to record.
    let mut a = c.admin();
    let again = with_action(&mut a, "signin.not_kept", 10);
    assert_eq!(again.len(), 1);
}

/// Bytes that are not text, written where an entry holds text, are reported as a modification
/// of that entry, not as a failure of the check itself.
#[test]
fn an_entry_made_invalid_text_is_named_as_modified() {
    edit_of_entry_5_is_found("UPDATE audit_log SET actor_name = CAST(x'ff' AS TEXT) WHERE seq = 5");
}

/// A checkpoint file that was deleted or garbled is replaced at the next sign-in (so the vault
/// stays anchored), and the trail itself keeps, signed, that it was replaced and why: the alert
/// alone lives in a table anyone with the database key can edit. Verification reports the
/// replacement (the trail may have been cut before it) until an administrator anchors the
/// trail anew; a later replacement is reported again.
#[test]
fn a_replaced_checkpoint_is_reported_until_an_administrator_anchors_anew() {
    let (c, _) = Clinic::with_history();
    let file = c.dir.file("audit.checkpoint");
    let replaced = |c: &Clinic| {
        let mut a = c.admin();
        let rows = with_action(&mut a, "audit.checkpoint_replaced", 10);
        let report = a.verify_audit().unwrap();
        assert!(!report.intact);
        let p = report.problem.unwrap();
        assert_eq!(p.kind, ProblemKind::AnchorReplaced, "{p:?}");
        assert_eq!(p.seq, rows[0].seq, "{p:?}");
        assert!(p.detail.contains("audit reanchor"), "{p:?}");
        let reasons = rows
            .iter()
            .map(|e| e.details["reason"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        (a, p.detail, reasons)
    };
    std::fs::remove_file(&file).unwrap();
    let (mut a, detail, reasons) = replaced(&c);
    assert_eq!(reasons, ["missing"]);
    assert!(detail.contains("was missing"), "{detail}");
    // The new checkpoint covers the record of its replacing.
    let cp = clinvault_core::checkpoint::read_file(&c.dir)
        .unwrap()
        .unwrap();
    let newest = with_action(&mut a, "audit.checkpoint_replaced", 1);
    assert!(cp.size >= newest[0].seq);
    assert!(checkpoint_alerts(&mut a) >= 1);

    // Only an administrator accepts it.
    a.add_user("pat", None, "practitioner", &secret(USER_PASS))
        .unwrap();
    drop(a);
    let mut pat = c.sign_in("pat", USER_PASS);
    let denied = pat.audit_reanchor().unwrap_err();
    assert_eq!(denied.kind(), clinvault_core::ErrorKind::PermissionDenied);
    drop(pat);
    let mut a = c.admin();
    let r = a.audit_reanchor().unwrap();
    let report = a.verify_audit().unwrap();
    assert!(report.intact, "{:?}", report.problem);
    assert!(report.anchor_replaced.is_none());
    assert_eq!(
        with_action(&mut a, "audit.reanchor", 1)[0].seq,
        r.anchored_at
    );
    // Accepted once, there is nothing more to accept.
    let nothing = a.audit_reanchor().unwrap_err();
    assert!(
        nothing.to_string().contains("nothing to anchor anew"),
        "{nothing}"
    );
    drop(a);

    std::fs::write(&file, "clinvault.audit/x\n1\nAAAA\n\n— nobody AAAA\n").unwrap();
    let (_, detail, reasons) = replaced(&c);
    assert_eq!(reasons, ["not authentic", "missing"]);
    assert!(detail.contains("was not authentic"), "{detail}");
}

/// The insider's way around the anchor without the OS keyring: cut entries off the end and
/// delete the checkpoint file, so that the next sign-in anchors the shortened trail. The cut is
/// not proved, but verification says that it cannot be ruled out, and names the entry that
/// records the replacement.
#[test]
fn cutting_the_end_and_deleting_the_checkpoint_is_not_reported_intact() {
    let (c, key) = Clinic::with_history();
    c.cut_off_last(&key, 3);
    std::fs::remove_file(c.dir.file("audit.checkpoint")).unwrap();
    let mut a = c.admin();
    let report = a.verify_audit().unwrap();
    assert!(!report.intact);
    let p = report.problem.unwrap();
    assert_eq!(p.kind, ProblemKind::AnchorReplaced, "{p:?}");
    assert!(p.detail.contains("cannot be ruled out"), "{p:?}");
    let failed = with_action(&mut a, "audit.verify", 1);
    assert_eq!(failed[0].outcome, "failed");
    assert_eq!(failed[0].details["kind"], "anchor_replaced");
    assert!(alerts(&mut a)
        .iter()
        .any(|x| x.rule == "audit_verification_failed"));
}

/// The whole trail wiped with the database key, with the checkpoint file, would look like a new
/// vault's; the key file (under a MAC the database key cannot make) keeps that the trail was
/// anchored before, so the next sign-in records the checkpoint as replaced and verification
/// reports it.
#[test]
fn a_wiped_trail_does_not_pass_for_a_new_vault() {
    let (c, key) = Clinic::with_history();
    c.insider(&key)
        .execute_batch(
            "DELETE FROM audit_log; DELETE FROM audit_targets; DELETE FROM audit_targets_upto;",
        )
        .unwrap();
    std::fs::remove_file(c.dir.file("audit.checkpoint")).unwrap();
    let mut a = c.admin();
    let report = a.verify_audit().unwrap();
    let p = report.problem.unwrap();
    assert_eq!(p.kind, ProblemKind::AnchorReplaced, "{p:?}");
    assert!(p.detail.contains("was missing"), "{p:?}");
    assert_eq!(
        report.first_seq,
        Some(1),
        "the trail starts again from nothing"
    );
}

/// A verification that cannot finish (here the record lookup's table was dropped with the
/// database key) is recorded as a failed verification and alerted, not only answered with the
/// error.
#[test]
fn a_verification_that_cannot_finish_is_recorded_and_alerted() {
    let (c, key) = Clinic::with_history();
    c.insider(&key)
        .execute_batch("DROP TABLE audit_targets")
        .unwrap();
    let mut a = c.admin();
    assert!(a.verify_audit().is_err());
    let verified = with_action(&mut a, "audit.verify", 1);
    assert_eq!(verified[0].outcome, "failed");
    assert!(alerts(&mut a).iter().any(|x| {
        x.rule == "audit_verification_failed" && x.summary.contains("could not be completed")
    }));
}

/// What a sync push hands the core: the anchor of the target's latest copy, ending at `seq`
/// with the entry hash `head`.
fn copy_anchor(s: &Session, seq: i64, head: &[u8]) -> AuditAnchor {
    AuditAnchor {
        vault_id: s.vault_id().unwrap(),
        epoch: 1,
        entries: u64::try_from(seq).unwrap(),
        last_seq: Some(seq),
        head_hash: Some(hex::encode(head)),
        checkpoint: None,
    }
}

/// A push whose target's latest copy is `copy`, recorded as the sync crate records it.
fn push_against(s: &mut Session, copy: AuditAnchor) {
    let mut run = s
        .begin_audited(
            Need::Permission(clinvault_core::permissions::Permission::SyncManage),
            Event::new("sync.push"),
        )
        .unwrap();
    run.compare_with_earlier_copy(copy);
    s.finish_audited(&run, None).unwrap();
}

/// A sync push compares the target's latest copy with the trail. A copy the trail holds is
/// quiet; one vouching for an entry the trail holds no longer (another entry at its end, or
/// an end beyond the trail's) raises the checkpoint alert, and `audit verify` reports it,
/// signed in the trail, until an administrator anchors anew. A copy no newer than what that
/// re-anchoring accepted does not count against the trail again.
#[test]
fn a_push_finds_a_trail_that_no_longer_holds_the_targets_latest_copy() {
    let (c, key) = Clinic::with_history();
    let mut a = c.admin();
    let (end, head): (i64, Vec<u8>) = c
        .keyed(&key)
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let held = copy_anchor(&a, end, &head);
    push_against(&mut a, held.clone());
    assert_eq!(checkpoint_alerts(&mut a), 0);
    let pushed = with_action(&mut a, "sync.push", 1);
    assert_eq!(pushed[0].details["earlier_copy_held"], true, "{pushed:?}");
    assert!(a.verify_audit().unwrap().intact);

    let other_entry = copy_anchor(&a, end, &[7u8; 32]);
    let beyond = copy_anchor(&a, end + 500, &head);
    push_against(&mut a, other_entry.clone());
    push_against(&mut a, beyond);
    let pushed = with_action(&mut a, "sync.push", 3);
    let held_flags: Vec<_> = pushed
        .iter()
        .map(|e| &e.details["earlier_copy_held"])
        .collect();
    assert_eq!(held_flags, [false, false, true], "{pushed:?}");
    assert_eq!(checkpoint_alerts(&mut a), 2);
    assert!(alerts(&mut a)
        .iter()
        .any(|x| x.summary.contains("sync target's latest copy")));
    let p = a.verify_audit().unwrap().problem.unwrap();
    assert_eq!(
        (p.kind, p.seq),
        (ProblemKind::Truncated, end + 500),
        "{p:?}"
    );
    assert!(
        p.detail.contains("sync.push") && p.detail.contains("audit reanchor"),
        "{p:?}"
    );

    a.audit_reanchor().unwrap();
    assert!(a.verify_audit().unwrap().intact);
    // An older copy the re-anchoring covered (it replaced a checkpoint vouching for more).
    push_against(&mut a, other_entry);
    assert_eq!(checkpoint_alerts(&mut a), 2);
    let pushed = with_action(&mut a, "sync.push", 1);
    assert_eq!(
        (
            &pushed[0].details["earlier_copy_held"],
            &pushed[0].details["earlier_copy_accepted"]
        ),
        (&serde_json::json!(false), &serde_json::json!(true)),
        "{pushed:?}"
    );
    assert!(a.verify_audit().unwrap().intact);
    // A copy the trail holds is still quiet, and one beyond what was accepted still counts.
    push_against(&mut a, held);
    assert_eq!(checkpoint_alerts(&mut a), 2);
    let far_beyond = copy_anchor(&a, end + 5000, &head);
    push_against(&mut a, far_beyond);
    assert_eq!(checkpoint_alerts(&mut a), 3);
}
