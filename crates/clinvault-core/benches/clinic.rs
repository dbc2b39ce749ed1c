//! `cargo bench -p clinvault-core --bench clinic`: on a demo vault of 100,000 patients and a
//! year of appointments for 10 practitioners — demo generation time, the week view for all
//! practitioners, booking an appointment (with its audit entry), a year's revenue report, and
//! attachment write/read throughput. Every figure goes through the gate (permission + audit).

#![allow(clippy::unwrap_used, clippy::expect_used)] // benches may panic on setup failures

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use clinvault_core::appointments::Booking;
use secrecy::SecretString;

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

struct Zeros(u64);
impl Read for Zeros {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0 as usize);
        // Not zeros really: a cheap pattern, so nothing compresses or dedups it away.
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = (i as u64).wrapping_mul(2654435761).wrapping_add(self.0) as u8;
        }
        self.0 -= n as u64;
        Ok(n)
    }
}
struct Sink(u64);
impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let (_tmp, mut s) = support::admin_session();
    let t = Instant::now();
    let d = s.generate_demo_clinic(100_000, 42).unwrap();
    println!(
        "demo generation: {} patients, {} practitioners, {} appointments, {} invoices in {:.1} s",
        d.patients,
        d.practitioners,
        d.appointments,
        d.invoices,
        t.elapsed().as_secs_f64()
    );

    let today = jiff::Zoned::now().date();
    let mut weeks = Vec::new();
    for w in 1..=20 {
        let monday = today
            .checked_sub(
                jiff::Span::new().days(i64::from(today.weekday().to_monday_zero_offset()) + 7 * w),
            )
            .unwrap()
            .to_string();
        let t = Instant::now();
        let rows = s.week_appointments(&monday, None).unwrap();
        weeks.push(t.elapsed());
        assert!(rows.len() > 200);
    }
    let p95 = pct(&mut weeks, 0.95);
    println!("week view, all 10 practitioners (~280 appointments): p50 {:.2} ms  p95 {:.2} ms (target <= 20 ms: {})", pct(&mut weeks, 0.5), p95, verdict(p95 <= 20.0));

    s.add_user(
        "bench.prac",
        None,
        "practitioner",
        &SecretString::from("quiet lantern orbit meadow".to_owned()),
    )
    .unwrap();
    s.add_practitioner("bench.prac").unwrap();
    for day in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] {
        s.set_working_hours("bench.prac", day, "00:00-23:30")
            .unwrap();
    }
    let patient = s.search_patients("smith", 1).unwrap()[0].id.clone();
    let mut bookings = Vec::new();
    for i in 0..300 {
        let day = today
            .checked_add(jiff::Span::new().days(40 + i / 40))
            .unwrap();
        let start = format!("{day}T{:02}:{:02}", (i % 40) / 2, (i % 2) * 30);
        let t = Instant::now();
        s.book_appointment(&Booking {
            patient_id: &patient,
            practitioner: "bench.prac",
            appointment_type: "Demo follow-up",
            start_local: &start,
            weekly_occurrences: 1,
            allow_override: false,
        })
        .unwrap();
        bookings.push(t.elapsed());
    }
    let p95 = pct(&mut bookings, 0.95);
    println!("book an appointment (rules + audit, fsync): p50 {:.2} ms  p95 {:.2} ms (target <= 10 ms: {})", pct(&mut bookings, 0.5), p95, verdict(p95 <= 10.0));

    let from = today
        .checked_sub(jiff::Span::new().days(365))
        .unwrap()
        .to_string();
    let mut reports = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = s.revenue_report(&from, &today.to_string()).unwrap();
        reports.push(t.elapsed());
        assert!(r.len() > 10);
    }
    let p50 = pct(&mut reports, 0.5);
    println!(
        "revenue report for a year ({} invoices): median {:.0} ms (target <= 200 ms: {})",
        d.invoices,
        p50,
        verdict(p50 <= 200.0)
    );

    const SIZE: u64 = 200 * 1024 * 1024;
    let t = Instant::now();
    let att = s
        .add_attachment(&patient, "scan.pdf", &mut Zeros(SIZE))
        .unwrap();
    let w = SIZE as f64 / 1_048_576.0 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut sink = Sink(0);
    s.read_attachment(&att.id, &mut sink).unwrap();
    let r = SIZE as f64 / 1_048_576.0 / t.elapsed().as_secs_f64();
    assert_eq!(sink.0, SIZE);
    println!(
        "attachment 200 MiB: write {w:.0} MiB/s, read {r:.0} MiB/s (target >= 200 MB/s: write {}, read {})",
        verdict(w * 1.048_576 >= 200.0),
        verdict(r * 1.048_576 >= 200.0)
    );
    ratio_section();
}

/// The same schema (the real migrations), the same data and the same queries on SQLCipher and
/// on plain SQLite (the same library without a key): patient search and the week view.
fn ratio_section() {
    use clinvault_core::crypto::Secret32;
    use clinvault_core::db;
    use rusqlite::{params, Connection};
    let tmp = tempfile::tempdir().unwrap();
    let mut enc = db::create_new(&tmp.path().join("enc.db"), &Secret32::random()).unwrap();
    let mut plain = Connection::open(tmp.path().join("plain.db")).unwrap();
    let fill = |c: &mut Connection| {
        db::configure(c).unwrap();
        db::migrate(c).unwrap();
        c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        let tx = c.transaction().unwrap();
        let last = [
            "Smith", "Jones", "Nguyen", "Patel", "Khan", "Jensen", "Costa", "Tanaka", "Wilson",
            "Martin",
        ];
        for i in 0..100_000i64 {
            tx.execute(
                "INSERT INTO patients (id, first_name, last_name, date_of_birth, phone, phone_digits, email, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'x', 'x')",
                params![
                    format!("p{i}"),
                    format!("First{}", i % 997),
                    format!("{}{}", last[(i % 10) as usize], i % 89),
                    format!("19{:02}-0{}-1{}", i % 90 + 10, i % 9 + 1, i % 9),
                    format!("04{:08}", i * 7919 % 100_000_000),
                    format!("4{:08}", i * 7919 % 100_000_000),
                    format!("p{i}@example.org")
                ],
            )
            .unwrap();
        }
        for i in 0..16_000i64 {
            tx.execute(
                "INSERT INTO appointments (id, patient_id, practitioner_id, type_id, starts_at, ends_at, status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 't', ?4, ?4 + 1800, 'completed', 'x', 'x')",
                params![format!("a{i}"), format!("p{}", i * 13 % 100_000), format!("pr{}", i % 10), 1_750_000_000 + i * 1800],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    };
    fill(&mut enc);
    fill(&mut plain);
    let search = "SELECT p.id, p.first_name, p.last_name FROM patients_fts JOIN patients p ON p.rowid = patients_fts.rowid
                  WHERE patients_fts MATCH ?1 AND p.archived = 0 ORDER BY bm25(patients_fts, 10.0, 10.0, 5.0, 2.0, 2.0, 2.0) LIMIT 20";
    let week = "SELECT a.id, a.patient_id, p.first_name, p.last_name, a.starts_at FROM appointments a
                JOIN patients p ON p.id = a.patient_id WHERE a.starts_at >= ?1 AND a.starts_at < ?2 ORDER BY a.starts_at";
    let time = |c: &Connection, sql: &str, args: &dyn Fn(usize) -> (String, i64)| {
        let mut v = Vec::new();
        let mut st = c.prepare(sql).unwrap();
        for i in 0..200 {
            let (text, n) = args(i);
            let t = Instant::now();
            let rows = if sql.contains("MATCH") {
                st.query_map(params![text], |_| Ok(())).unwrap().count()
            } else {
                st.query_map(params![n, n + 7 * 86_400], |_| Ok(()))
                    .unwrap()
                    .count()
            };
            v.push(t.elapsed());
            assert!(rows > 0);
        }
        pct(&mut v, 0.5)
    };
    let terms = [
        "(\"smi\" OR \"smi\"*)",
        "(\"ngu\" OR \"ngu\"*)",
        "(\"pat\" OR \"pat\"*)",
        "(\"kha\" OR \"kha\"*)",
        "(\"tan\" OR \"tan\"*)",
    ];
    let s_args = |i: usize| (terms[i % terms.len()].to_owned(), 0);
    let w_args = |i: usize| (String::new(), 1_750_000_000 + (i as i64 % 40) * 86_400);
    let (se, sp) = (time(&enc, search, &s_args), time(&plain, search, &s_args));
    let (we, wp) = (time(&enc, week, &w_args), time(&plain, week, &w_args));
    println!("same queries, SQLCipher vs plain SQLite (median):");
    println!(
        "  patient search (FTS5, 100k)   {se:>6.2} ms vs {sp:>6.2} ms   ratio {:.2}",
        se / sp
    );
    println!(
        "  week view (~336 appointments) {we:>6.2} ms vs {wp:>6.2} ms   ratio {:.2}",
        we / wp
    );
}
