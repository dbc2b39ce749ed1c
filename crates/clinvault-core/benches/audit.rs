//! `cargo bench -p clinvault-core --bench audit`: the cost an audited write adds over the same
//! write unaudited, and audit verification speed in entries per second on one core.
//!
//! Two writes are measured, both on SQLCipher with the vault's settings, each its own
//! transaction with fsync:
//! * the smallest write there is: one row into a table without indexes (worst case for the
//!   ratio, since the entry costs about what the row costs);
//! * a clinic's everyday write: the statements `Session::update_patient` runs for a phone
//!   change (load the row, update it with its full-text index, one history row) among 20,000
//!   patients, through the gate with its permission check, entry and alert rules, and the same
//!   statements in a plain transaction on an identical database.
//!
//! Each figure alternates the two sides write by write, swapping the order each time, so that a
//! slow spell of this shared machine's disk falls on both sides alike; the ratio is of the sums.
//! (Batches of 100 writes a side, as measured before, let the disk's slow spells fall on one
//! side: the same code gave +12.7 %, +16.6 % and +20.9 % in three runs; write by write, runs agree
//! within about three points.)
//!
//! A third figure is the everyday write with nothing added but an entry's row and an ordinary
//! (deterministic, RFC 8032) Ed25519 signature, written by hand without the gate; a fourth, what
//! that signature alone adds. The gate signs with nonces made ahead on another thread
//! (`audit_signing`), so the fourth figure is about what that takes off the write path.
//!
//! Also: what the first search by record costs when it brings the record lookup up to date over
//! a trail that grew by tens of thousands of entries, and the search after it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benches may panic on setup failures

mod support;

use std::time::{Duration, Instant};

use clinvault_core::audit::Event;
use clinvault_core::crypto::Secret32;
use clinvault_core::permissions::Permission;
use clinvault_core::{db, Need};
use rusqlite::{params, Connection};

const PAIRS: usize = 2000;
const PATIENTS: i64 = 20_000;
const VERIFY_ENTRIES: i64 = 30_000;

const INSERT: &str = "INSERT INTO bench_rows (patient, field, value) VALUES (?1, 'phone', ?2)";

/// Runs `PAIRS` pairs of one `unaudited` and one `audited` write, alternating which goes
/// first, and returns the total time of each side.
fn alternate(mut unaudited: impl FnMut(i64), mut audited: impl FnMut(i64)) -> (Duration, Duration) {
    let (mut u, mut a) = (Duration::ZERO, Duration::ZERO);
    let mut next = 0i64;
    for pair in 0..PAIRS {
        for side in [pair % 2, 1 - pair % 2] {
            next += 1;
            let t = Instant::now();
            if side == 0 {
                unaudited(next);
                u += t.elapsed();
            } else {
                audited(next);
                a += t.elapsed();
            }
        }
    }
    (u, a)
}

fn report(name: &str, audited: &str, sides: (Duration, Duration)) {
    report_against(name, audited, sides, Some(0.15));
}

/// As `report`; `target` is the overhead the figure is held to, if it is held to one.
fn report_against(name: &str, audited: &str, (u, a): (Duration, Duration), target: Option<f64>) {
    let n = PAIRS as f64;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n;
    let overhead = a.as_secs_f64() / u.as_secs_f64() - 1.0;
    println!("{name}: {PAIRS} alternating pairs of writes, synchronous=FULL");
    println!("  unaudited                 {:>8.1} µs/write", per(u));
    let judged = match target {
        Some(t) => format!(
            " (target <= {:.0}%: {})",
            t * 100.0,
            if overhead <= t { "met" } else { "NOT met" }
        ),
        None => String::new(),
    };
    println!(
        "  {audited:<24}  {:>8.1} µs/write   adds {:>6.1} µs = {:+.1}%{judged}",
        per(a),
        per(a) - per(u),
        overhead * 100.0,
    );
}

fn plain_copy(path: &std::path::Path) -> Connection {
    let mut plain = db::create_new(path, &Secret32::random()).unwrap();
    db::configure(&plain).unwrap();
    db::migrate(&mut plain).unwrap();
    plain
}

const SEED: &str =
    "INSERT INTO patients (id, first_name, last_name, date_of_birth, phone, phone_digits,
        created_at, updated_at)
     VALUES (?1, ?2, ?3, '1980-04-02', ?4, ?5, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')";

fn seed(conn: &Connection) {
    let mut st = conn.prepare(SEED).unwrap();
    for i in 0..PATIENTS {
        let phone = format!("+61 3{i:08}");
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        st.execute(params![
            patient_id(i),
            format!("Given{}", i % 997),
            format!("Family{}", i % 4999),
            phone,
            digits
        ])
        .unwrap();
    }
}

fn patient_id(i: i64) -> String {
    format!("bench-{:06}", (i * 7919) % PATIENTS)
}

/// The statements of a phone change as `update_patient` runs them for one field (load the row,
/// write it back with its full-text index, one history row), on `tx`.
fn update_phone(tx: &rusqlite::Transaction<'_>, i: i64, user_id: &str) -> rusqlite::Result<()> {
    let id = patient_id(i);
    let phone = format!("+61 4{i:08}");
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let now = jiff::Timestamp::now().to_string();
    let old: Option<String> = tx
        .prepare_cached("SELECT * FROM patients WHERE id = ?1")?
        .query_row([&id], |r| r.get("phone"))?;
    tx.prepare_cached(
        "UPDATE patients SET phone = ?2, phone_digits = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, phone, digits, now])?;
    tx.prepare_cached(
        "INSERT INTO patient_history (patient_id, change_id, changed_at, changed_by,
             changed_by_name, field, old_value, new_value, patient_request)
         VALUES (?1, ?2, ?3, ?4, 'admin', 'phone', ?5, ?6, NULL)",
    )?
    .execute(params![
        id,
        uuid::Uuid::new_v4().to_string(),
        now,
        user_id,
        old,
        phone
    ])?;
    Ok(())
}

/// The phone change in a plain transaction of its own on `conn`, with `extra` before commit.
fn phone_change(
    conn: &mut Connection,
    i: i64,
    user_id: &str,
    extra: impl FnOnce(&rusqlite::Transaction<'_>),
) {
    let tx = db::write_tx(conn).unwrap();
    update_phone(&tx, i, user_id).unwrap();
    extra(&tx);
    tx.commit().unwrap();
}

/// An entry's statements without the gate, written by hand in the operation's transaction: those
/// of `audit::append` (read the last entry, insert the new one) and a deterministic Ed25519
/// signature over a SHA-256 hash.
fn bare_entry(tx: &rusqlite::Transaction<'_>, i: i64, key: &ed25519_dalek::SigningKey) {
    use ed25519_dalek::Signer;
    use sha2::Digest;
    let (seq, prev): (i64, Vec<u8>) = tx
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .unwrap()
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap_or((0, vec![0u8; 32]));
    let hash: [u8; 32] = sha2::Sha256::digest([prev.as_slice(), &i.to_be_bytes()].concat()).into();
    let signature = key.sign(&hash).to_bytes();
    let who = "0b0c1d8e-5a1f-4a57-9b0e-1f4f1d2c3b4a";
    tx.prepare_cached(
        "INSERT INTO audit_log (seq, at, actor_id, actor_name, device, action, target_type,
             target_id, outcome, details, signer_id, signer_key, prev_hash, hash, signature)
         VALUES (?1, ?2, ?3, 'admin', 'bench', 'patient.update', 'patient', ?4, 'ok',
                 '{\"fields\":[\"phone\"]}', ?3, ?5, ?6, ?7, ?8)",
    )
    .unwrap()
    .execute(params![
        seq + 1,
        jiff::Timestamp::now().to_string(),
        who,
        patient_id(i),
        key.verifying_key().to_bytes().as_slice(),
        prev,
        hash.as_slice(),
        signature.as_slice()
    ])
    .unwrap();
}

fn main() {
    let (tmp, mut s) = support::admin_session();
    s.gate_for_tests(Need::SignedIn, Event::new("bench.setup"), |tx, _| {
        tx.execute_batch(
            "CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, patient INTEGER, field TEXT, value TEXT)",
        )?;
        seed(tx);
        Ok(())
    })
    .unwrap();
    let mut plain = plain_copy(&tmp.path().join("unaudited.db"));
    plain
        .execute_batch("CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, patient INTEGER, field TEXT, value TEXT)")
        .unwrap();
    {
        let tx = db::write_tx(&mut plain).unwrap();
        seed(&tx);
        tx.commit().unwrap();
    }

    let user_id = s.whoami().unwrap().id.to_string();

    let smallest = alternate(
        |i| {
            let tx = db::write_tx(&mut plain).unwrap();
            tx.prepare_cached(INSERT)
                .unwrap()
                .execute(params![i, format!("+61 4{i:08}")])
                .unwrap();
            tx.commit().unwrap();
        },
        |i| {
            let event = Event::new("patient.update")
                .target("patient", i)
                .detail("fields", "phone");
            s.gate_for_tests(Need::SignedIn, event, |tx, _| {
                tx.prepare_cached(INSERT)?
                    .execute(params![i, format!("+61 4{i:08}")])?;
                Ok(())
            })
            .unwrap();
        },
    );
    report(
        "smallest write (one row, no index)",
        "audited (gate + entry)",
        smallest,
    );

    let everyday = alternate(
        |i| phone_change(&mut plain, i, &user_id, |_| {}),
        |i| {
            let event = Event::new("patient.update")
                .target("patient", patient_id(i))
                .detail("fields", ["phone"]);
            s.gate_for_tests(
                Need::Permission(Permission::PatientWrite),
                event,
                |tx, _| Ok(update_phone(tx, i, &user_id)?),
            )
            .unwrap();
        },
    );
    report(
        "everyday write (a patient's phone: row, full-text index, history)",
        "audited (gate + entry)",
        everyday,
    );

    // The everyday write with only an entry's row and a deterministic signature added by hand,
    // no gate, against a plain database made at the same moment the same way
    // (not the one the writes above have grown).
    let mut bare = plain_copy(&tmp.path().join("bare-entry.db"));
    let mut plain = plain_copy(&tmp.path().join("unaudited-2.db"));
    for conn in [&mut bare, &mut plain] {
        let tx = db::write_tx(conn).unwrap();
        seed(&tx);
        tx.commit().unwrap();
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let by_hand = alternate(
        |i| phone_change(&mut plain, i, &user_id, |_| {}),
        |i| phone_change(&mut bare, i, &user_id, |tx| bare_entry(tx, i, &key)),
    );
    report_against(
        "the everyday write plus only an entry's row and a deterministic signature, by hand",
        "row + signature only",
        by_hand,
        None,
    );
    // What the deterministic signature alone adds (the rest is the entry's row: its encrypted
    // page and what writing it costs).
    let signature = alternate(
        |i| phone_change(&mut plain, i, &user_id, |_| {}),
        |i| {
            use ed25519_dalek::Signer;
            phone_change(&mut bare, i, &user_id, |_| {
                std::hint::black_box(key.sign(&i.to_be_bytes()));
            })
        },
    );
    report_against(
        "of that, the signature alone: the everyday write plus a deterministic Ed25519 signature",
        "signature only",
        signature,
        None,
    );

    // A view runs the bulk-access rule, which counts the records this user opened within its
    // window (10 minutes): after the first view it reads only the entries appended since.
    for busy in [0, 2_000] {
        for _ in 0..busy {
            s.gate_for_tests(Need::SignedIn, Event::new("patient.search"), |_, _| Ok(()))
                .unwrap();
        }
        let t = Instant::now();
        for i in 0..200 {
            s.gate_for_tests(
                Need::Permission(Permission::PatientRead),
                Event::new("patient.view").target("patient", patient_id(i)),
                |_, _| Ok(()),
            )
            .unwrap();
        }
        println!(
            "patient view (entry + bulk-access rule) after {busy} more entries in the window: {:.0} µs",
            t.elapsed().as_secs_f64() * 1e6 / 200.0
        );
    }

    // Grow the trail, then verify it.
    let have = s
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            limit: 1,
            ..Default::default()
        })
        .unwrap()[0]
        .seq;
    for i in have..VERIFY_ENTRIES {
        s.gate_for_tests(
            Need::SignedIn,
            Event::new("bench.fill").target("patient", i),
            |_, _| Ok(()),
        )
        .unwrap();
    }
    // The record lookup is brought up to date by the first search by record (migration 10).
    let by_record = clinvault_core::audit_review::AuditFilter {
        target_type: Some("patient".into()),
        // The last entry the fill below writes names this record.
        target_id: Some((VERIFY_ENTRIES - 1).to_string()),
        limit: 100,
        ..Default::default()
    };
    for label in [
        "first search by record, catching up",
        "next search by record",
    ] {
        let t = Instant::now();
        let found = s.audit_list(&by_record).unwrap();
        println!(
            "{label}: {} entries found among {VERIFY_ENTRIES} in {:.1} ms",
            found.len(),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let t = Instant::now();
    let report = s.verify_audit().unwrap();
    let took = t.elapsed();
    assert!(report.intact, "{:?}", report.problem);
    let rate = report.entries_checked as f64 / took.as_secs_f64();
    println!(
        "verification: {} entries in {:.0} ms = {:.0} entries/s on one core (target >= 20,000: {})",
        report.entries_checked,
        took.as_secs_f64() * 1e3,
        rate,
        if rate >= 20_000.0 { "met" } else { "NOT met" }
    );
}
