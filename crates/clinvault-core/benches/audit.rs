//! `cargo bench -p clinvault-core --bench audit`: the cost an audited write adds over the same
//! write unaudited (both on SQLCipher with the same settings, each its own transaction with
//! fsync), and audit verification speed in entries per second on one core.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benches may panic on setup failures

mod support;

use std::time::{Duration, Instant};

use clinvault_core::audit::Event;
use clinvault_core::crypto::Secret32;
use clinvault_core::{db, Need};
use rusqlite::params;

const WRITES: i64 = 2_000;
const VERIFY_ENTRIES: i64 = 30_000;

const INSERT: &str = "INSERT INTO bench_rows (patient, field, value) VALUES (?1, 'phone', ?2)";

fn main() {
    let (tmp, mut s) = support::admin_session();
    s.gate(Need::SignedIn, Event::new("bench.setup"), |tx, _| {
        tx.execute_batch("CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, patient INTEGER, field TEXT, value TEXT)")?;
        Ok(())
    })
    .unwrap();

    // The same write on an identical encrypted database, without the gate.
    let mut plain = db::create_new(&tmp.path().join("unaudited.db"), &Secret32::random()).unwrap();
    db::configure(&plain).unwrap();
    plain
        .execute_batch("CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, patient INTEGER, field TEXT, value TEXT)")
        .unwrap();

    let mut audited = Duration::MAX;
    let mut unaudited = Duration::MAX;
    for round in 0..2 {
        let t = Instant::now();
        for i in 0..WRITES {
            let tx = db::write_tx(&mut plain).unwrap();
            tx.execute(INSERT, params![i, format!("+61 4{i:08}")])
                .unwrap();
            tx.commit().unwrap();
        }
        unaudited = unaudited.min(t.elapsed());
        let t = Instant::now();
        for i in 0..WRITES {
            let event = Event::new("patient.update")
                .target("patient", i)
                .detail("fields", "phone");
            s.gate(Need::SignedIn, event, |tx, _| {
                tx.execute(INSERT, params![i + round * WRITES, format!("+61 4{i:08}")])?;
                Ok(())
            })
            .unwrap();
        }
        audited = audited.min(t.elapsed());
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / WRITES as f64;
    let overhead = audited.as_secs_f64() / unaudited.as_secs_f64() - 1.0;
    println!("write transactions: {WRITES} each, best of 2 rounds, synchronous=FULL");
    println!(
        "  unaudited                 {:>8.1} µs/write",
        per(unaudited)
    );
    println!(
        "  audited (gate + entry)    {:>8.1} µs/write   overhead {:+.1}% (target <= 15%: {})",
        per(audited),
        overhead * 100.0,
        if overhead <= 0.15 { "met" } else { "NOT met" }
    );

    // Grow the trail, then verify it.
    let have = s
        .audit_list(&clinvault_core::audit_review::AuditFilter {
            limit: 1,
            ..Default::default()
        })
        .unwrap()[0]
        .seq;
    for i in have..VERIFY_ENTRIES {
        s.gate(
            Need::SignedIn,
            Event::new("bench.fill").target("patient", i),
            |_, _| Ok(()),
        )
        .unwrap();
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
