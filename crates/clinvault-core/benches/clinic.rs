//! `cargo bench -p clinvault-core --bench clinic`: on a demo vault of 100,000 patients and a
//! year of appointments for 10 practitioners — demo generation time, the week view for all
//! practitioners, booking an appointment (with its audit entry), a year's revenue report, and
//! attachment write/read throughput. Every figure goes through the gate (permission + audit).

#![allow(clippy::unwrap_used, clippy::expect_used)] // benches may panic on setup failures

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clinvault_core::appointments::Booking;
use clinvault_core::clock::SystemClock;
use clinvault_core::crypto::KdfCost;
use clinvault_core::{vault, InitOptions, Session, SessionConfig, VaultDir};
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
    let tmp = tempfile::tempdir().unwrap();
    let dir = VaultDir::new(tmp.path().join("v"));
    let pass = SecretString::from("plum harbour velvet tractor".to_owned());
    vault::init(
        &dir,
        InitOptions {
            admin_username: "admin".into(),
            admin_display_name: None,
            passphrase: pass.clone(),
            kdf_cost: KdfCost {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            recovery_key_file: None,
        },
    )
    .unwrap();
    let mut s = Session::sign_in_with(
        &dir,
        "admin",
        &pass,
        None,
        SessionConfig {
            device: "bench".into(),
            clock: Arc::new(SystemClock),
        },
    )
    .unwrap();
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
}
