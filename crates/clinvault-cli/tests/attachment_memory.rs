//! A 100 MB attachment goes in and out of the real `clinvault` binary with bounded memory: the
//! largest resident set of any child process stays far below the file's size. (The only test in
//! this binary, so RUSAGE_CHILDREN sees only these processes.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on setup failures

mod common;

use common::*;
use std::io::Write;

fn max_child_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss
}

#[test]
fn a_100_mb_attachment_round_trips_with_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("v");
    init(&vault);
    let mut c = cv(&vault);
    c.args(["patient", "add", "--first", "Ann", "--last", "Jones"]);
    let patient = stdout(&ok(run(c))).trim().to_owned();

    const SIZE: usize = 100 * 1024 * 1024;
    let src = tmp.path().join("scan.pdf");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..(SIZE >> 20) {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (j as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(i as u32)
                    .to_le_bytes()[1];
            }
            f.write_all(&block).unwrap();
        }
    }
    let mut c = cv(&vault);
    c.args(["attachment", "add", "--patient", &patient])
        .arg(&src);
    let id = stdout(&ok(run(c))).trim().to_owned();
    let copy = tmp.path().join("copy.pdf");
    let mut c = cv(&vault);
    c.args(["attachment", "get", &id, "--out"]).arg(&copy);
    ok(run(c));

    let same = {
        use std::io::Read;
        let (mut a, mut b) = (
            std::fs::File::open(&src).unwrap(),
            std::fs::File::open(&copy).unwrap(),
        );
        let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        loop {
            let (n, m) = (a.read(&mut x).unwrap(), b.read(&mut y).unwrap());
            if n != m || x[..n] != y[..m] {
                break false;
            }
            if n == 0 {
                break true;
            }
        }
    };
    assert!(same, "the copy is byte-identical");
    let peak = max_child_rss_kib();
    eprintln!("largest clinvault process: {peak} KiB resident for a 100 MiB attachment");
    assert!(
        peak < 48 * 1024,
        "a clinvault process peaked at {peak} KiB for a 100 MiB file"
    );
}
