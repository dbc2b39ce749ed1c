//! `cargo bench -p clinvault-core --bench patients`: demo generation time for 100,000 patients,
//! and patient search latency (p50/p95, through the gate with its audit entry) for three-letter
//! name prefixes, phone fragments and dates of birth.

#![allow(clippy::unwrap_used, clippy::expect_used)] // benches may panic on setup failures

mod support;

use std::time::{Duration, Instant};

const PATIENTS: u32 = 100_000;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn main() {
    let (_tmp, mut s) = support::admin_session();
    let t = Instant::now();
    s.generate_demo_patients(PATIENTS, 42).unwrap();
    println!(
        "demo generation: {PATIENTS} patients in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let queries: Vec<String> = [
        "smi", "ngu", "pat", "oli", "kha", "jen", "cos", "tan", "wil", "mar",
    ]
    .iter()
    .map(|q| q.to_string())
    .chain((0..10).map(|i| format!("04{}{} 5", i, (i * 3) % 10)))
    .chain((1940..1950).map(|y| format!("{y}-0{}", y % 9 + 1)))
    .collect();
    for (label, range) in [
        ("name prefixes", 0..10),
        ("phone fragments", 10..20),
        ("dates of birth", 20..30),
    ] {
        let mut times = Vec::new();
        for _ in 0..20 {
            for q in &queries[range.clone()] {
                let t = Instant::now();
                let rows = s.search_patients(q, 20).unwrap();
                times.push(t.elapsed());
                assert!(!rows.is_empty() || label != "name prefixes");
            }
        }
        times.sort();
        println!(
            "patient search, {label:<16} p50 {:>6.2} ms  p95 {:>6.2} ms  (target p95 <= 20 ms: {})",
            pct(&times, 0.5),
            pct(&times, 0.95),
            if pct(&times, 0.95) <= 20.0 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}
