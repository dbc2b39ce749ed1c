//! `cargo bench -p clinvault-core --bench vault`: prints unlock time (Argon2id + HPKE + open) at
//! the default KDF cost, and the SQLCipher / plain-SQLite time ratio for the same workload run by
//! the same code with the same connection settings (db::configure), plain meaning no key.
//! BENCH_EXTRA_PRAGMAS adds pragmas to both connections for experiments.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benches may panic on setup failures

use std::path::Path;
use std::time::{Duration, Instant};

use clinvault_core::crypto::{KdfCost, Secret32};
use clinvault_core::{db, vault, InitOptions, Vault, VaultDir};
use rusqlite::{params, Connection};
use secrecy::SecretString;

const ROWS: i64 = 50_000;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench_unlock() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = VaultDir::new(tmp.path().join("v"));
    let pass = SecretString::from("correct horse battery staple".to_owned());
    vault::init(
        &dir,
        InitOptions {
            admin_username: "admin".into(),
            admin_display_name: None,
            passphrase: pass.clone(),
            kdf_cost: KdfCost::RECOMMENDED,
            recovery_key_file: None,
        },
    )
    .expect("init");
    let times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let v = Vault::unlock(&dir, "admin", &pass).expect("unlock");
            let d = t.elapsed();
            drop(v);
            d
        })
        .collect();
    let c = KdfCost::RECOMMENDED;
    println!(
        "unlock (Argon2id m={} MiB t={} p={} + HPKE + SQLCipher open): median {:.1} ms over 5",
        c.memory_kib / 1024,
        c.iterations,
        c.parallelism,
        median(times).as_secs_f64() * 1e3
    );
}

struct Figures {
    bulk_load: Duration,
    day: Duration,
    day_reads: Duration,
}

const DAY_ACTIONS: i64 = 2_000;

/// Two phases on a patients-like schema. The bulk load (50k rows, 100 per transaction, random
/// index order) is the worst case for encryption: every commit dirties ~100 pages and each page
/// written costs an AES-256-CBC encryption and an HMAC-SHA512. The "clinic day" is the
/// representative workload the target applies to: each action is one small write transaction
/// (book an appointment, update a phone number, append an audit row) surrounded by the reads a
/// screen makes (ten record reads, two indexed name searches).
fn run_workload(conn: &mut Connection) -> Figures {
    conn.execute_batch(
        "CREATE TABLE patients (id INTEGER PRIMARY KEY, first TEXT, last TEXT, dob TEXT,
                                phone TEXT, email TEXT, notes TEXT);
         CREATE INDEX patients_last ON patients(last);
         CREATE TABLE appointments (id INTEGER PRIMARY KEY, patient INTEGER, starts TEXT,
                                    practitioner INTEGER, status TEXT);
         CREATE INDEX appointments_starts ON appointments(practitioner, starts);
         CREATE TABLE audit (seq INTEGER PRIMARY KEY, at TEXT, actor TEXT, action TEXT,
                             target TEXT, hash BLOB);",
    )
    .expect("schema");
    let t = Instant::now();
    for batch in 0..(ROWS / 100) {
        let tx = conn.transaction().expect("tx");
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO patients (first, last, dob, phone, email, notes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .expect("prepare");
            for i in 0..100 {
                let n = batch * 100 + i;
                st.execute(params![
                    format!("First{n}"),
                    format!("Last{:05}", (n * 7919) % ROWS),
                    format!("19{:02}-{:02}-{:02}", n % 100, n % 12 + 1, n % 28 + 1),
                    format!("+61 4{:08}", n),
                    format!("patient{n}@example.org"),
                    "Presenting with lower back pain after lifting; review in two weeks.",
                ])
                .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let bulk_load = t.elapsed();

    let t = Instant::now();
    let mut day_reads = Duration::ZERO;
    for i in 0..DAY_ACTIONS {
        let reads_started = Instant::now();
        for r in 0..10 {
            let id = ((i * 10 + r) * 104_729) % ROWS + 1;
            let _: (String, String, String) = conn
                .prepare_cached("SELECT first, last, email FROM patients WHERE id = ?1")
                .expect("prepare")
                .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .expect("read");
        }
        for s in 0..2 {
            let lo = format!("Last{:03}", (i * 2 + s) % 500);
            let hi = format!("Last{:03}", (i * 2 + s) % 500 + 1);
            let found = conn
                .prepare_cached(
                    "SELECT id, first FROM patients WHERE last >= ?1 AND last < ?2 LIMIT 20",
                )
                .expect("prepare")
                .query_map([lo, hi], |row| row.get::<_, i64>(0))
                .expect("scan")
                .count();
            assert!(found > 0);
        }
        day_reads += reads_started.elapsed();
        let patient = (i * 7) % ROWS + 1;
        let tx = conn.transaction().expect("tx");
        tx.execute(
            "INSERT INTO appointments (patient, starts, practitioner, status)
             VALUES (?1, ?2, ?3, 'booked')",
            params![
                patient,
                format!("2026-{:02}-{:02}T09:00", i % 12 + 1, i % 28 + 1),
                i % 10
            ],
        )
        .expect("book");
        tx.execute(
            "UPDATE patients SET phone = ?1 WHERE id = ?2",
            params![format!("+61 5{:08}", i), patient],
        )
        .expect("update");
        tx.execute(
            "INSERT INTO audit (at, actor, action, target, hash) VALUES (?1, 'u1', 'book', ?2, ?3)",
            params![
                "2026-11-22T10:00:00Z",
                format!("patient:{patient}"),
                vec![0u8; 32]
            ],
        )
        .expect("audit");
        tx.commit().expect("commit");
    }
    Figures {
        bulk_load,
        day: t.elapsed(),
        day_reads,
    }
}

fn fresh(path: &Path, key: Option<&Secret32>) -> Connection {
    let conn = match key {
        Some(k) => db::create_new(path, k).expect("encrypted db"),
        None => Connection::open(path).expect("plain db"),
    };
    db::configure(&conn).expect("configure");
    if let Ok(extra) = std::env::var("BENCH_EXTRA_PRAGMAS") {
        conn.execute_batch(&extra).expect("extra pragmas");
    }
    conn
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is accepted and ignored.
    bench_unlock();
    let tmp = tempfile::tempdir().expect("temp dir");
    let key = Secret32::random();
    // Interleaved plain, encrypted, three times; each side keeps its best run, so disk cache
    // warm-up and fsync noise favour neither.
    let mut plain_runs = Vec::new();
    let mut enc_runs = Vec::new();
    for round in 0..3 {
        let path = tmp.path().join(format!("plain{round}.db"));
        plain_runs.push(run_workload(&mut fresh(&path, None)));
        let path = tmp.path().join(format!("enc{round}.db"));
        enc_runs.push(run_workload(&mut fresh(&path, Some(&key))));
    }
    let best_of = |runs: &[Figures]| Figures {
        bulk_load: runs.iter().map(|r| r.bulk_load).min().unwrap_or_default(),
        day: runs.iter().map(|r| r.day).min().unwrap_or_default(),
        day_reads: runs.iter().map(|r| r.day_reads).min().unwrap_or_default(),
    };
    let (p1, p2) = (&best_of(&plain_runs), &best_of(&plain_runs));
    let e = best_of(&enc_runs);
    let best = |a: Duration, b: Duration| a.min(b);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let bulk_plain = best(p1.bulk_load, p2.bulk_load);
    let day_plain = best(p1.day, p2.day);
    println!(
        "{:<58} {:>10} {:>10} {:>6}",
        "workload", "SQLCipher", "plain", "ratio"
    );
    println!(
        "{:<58} {:>8.1}ms {:>8.1}ms {:>6.2}  (worst case, no target)",
        "bulk load: 50k patients, 100 per transaction",
        ms(e.bulk_load),
        ms(bulk_plain),
        e.bulk_load.as_secs_f64() / bulk_plain.as_secs_f64()
    );
    let ratio = e.day.as_secs_f64() / day_plain.as_secs_f64();
    println!(
        "{:<58} {:>8.1}ms {:>8.1}ms {:>6.2}  (target <= 1.30: {})",
        "clinic day: 2k actions (10 reads, 2 searches, 1 write tx)",
        ms(e.day),
        ms(day_plain),
        ratio,
        if ratio <= 1.3 { "met" } else { "NOT met" }
    );
    let reads_plain = best(p1.day_reads, p2.day_reads);
    println!(
        "{:<58} {:>8.1}ms {:>8.1}ms {:>6.2}",
        "  of which reads and searches",
        ms(e.day_reads),
        ms(reads_plain),
        e.day_reads.as_secs_f64() / reads_plain.as_secs_f64()
    );
    let writes_enc = e.day - e.day_reads;
    let writes_plain = day_plain.saturating_sub(reads_plain);
    println!(
        "{:<58} {:>8.1}ms {:>8.1}ms {:>6.2}",
        "  of which write transactions (fsync each)",
        ms(writes_enc),
        ms(writes_plain),
        writes_enc.as_secs_f64() / writes_plain.as_secs_f64()
    );
}
