//! The same round-trip, incremental, interrupted-upload, prune and tamper tests on every kind
//! of target, each against a real server on 127.0.0.1 (folder, SFTP via OpenSSH, WebDAV via
//! rclone plain and over TLS 1.3 with a pinned CA, S3 via s3s-fs). Each target's suite runs in a
//! child run of this binary (so the SFTP client's PATH wrapper stays private to it); pushes that
//! must die run in grandchildren, killed at named points or with SIGKILL mid-upload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod servers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clinvault_core::ErrorKind;
use clinvault_sync::backend::Backend;
use clinvault_sync::target::{Credentials, TargetSpec};
use clinvault_sync::{KeepPolicy, NoProgress, RepoKey, Repository, SourceFile};
use zeroize::Zeroizing;

use servers::Server;

const MIB: usize = 1 << 20;
const PACK: usize = MIB;

fn run_child(test: &str, extra_env: &[(&str, String)]) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("1 passed; 0 failed"),
        text,
    )
}

fn suite_in_child(target: &str) {
    let (ok, text) = run_child(&format!("suite_{}", target.replace('-', "_")), &[]);
    assert!(ok, "suite for {target} failed:\n{text}");
}

#[test]
fn folder_target() {
    suite_in_child("folder");
}
#[test]
fn sftp_target() {
    suite_in_child("sftp");
}
#[test]
fn webdav_target() {
    suite_in_child("webdav");
}
#[test]
fn webdav_tls13_target() {
    suite_in_child("webdav-tls");
}
#[test]
fn s3_target() {
    suite_in_child("s3");
}

#[test]
#[ignore = "run by folder_target"]
fn suite_folder() {
    suite(&servers::folder());
}
#[test]
#[ignore = "run by sftp_target"]
fn suite_sftp() {
    let (server, bin) = servers::sftp();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // This child runs one test on one thread: nothing else reads the environment meanwhile.
    std::env::set_var("PATH", path);
    suite(&server);
}
#[test]
#[ignore = "run by webdav_target"]
fn suite_webdav() {
    suite(&servers::webdav());
}
#[test]
#[ignore = "run by webdav_tls13_target"]
fn suite_webdav_tls() {
    let server = servers::webdav_tls();
    tls_rules(&server);
    suite(&server);
}
#[test]
#[ignore = "run by s3_target"]
fn suite_s3() {
    suite(&servers::s3());
}

// ---------- the source "vault" ----------

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

const MARKER: &str = "MARKER-PLAINTEXT-7c1f";

fn make_source(dir: &Path) {
    std::fs::create_dir_all(dir.join("attachments")).unwrap();
    std::fs::write(dir.join("vault.db"), random_bytes(8 * MIB, 1)).unwrap();
    let text: String = (0..400)
        .map(|i| format!("{{\"slot\":{i},\"note\":\"{MARKER}\"}}\n"))
        .collect();
    std::fs::write(dir.join("vault.keys"), text).unwrap();
    std::fs::write(
        dir.join("audit.checkpoint"),
        format!("checkpoint {MARKER}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("attachments/a.bin"), random_bytes(10 * MIB, 2)).unwrap();
    std::fs::write(dir.join("attachments/b.bin"), random_bytes(4 * MIB, 3)).unwrap();
}

fn files_of(dir: &Path) -> Vec<SourceFile> {
    let mut out = Vec::new();
    fn walk(root: &Path, d: &Path, out: &mut Vec<SourceFile>) {
        let mut entries: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(SourceFile {
                    rel_path: p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                    size: std::fs::metadata(&p).unwrap().len(),
                    path: p,
                });
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_of(dir)
        .into_iter()
        .map(|f| (f.rel_path, std::fs::read(f.path).unwrap()))
        .collect()
}

fn anchor(n: u64) -> serde_json::Value {
    serde_json::json!({"vault_id": "v-test", "epoch": 1, "entries": n, "checkpoint": null})
}

fn open_repo(server: &Server, key: &RepoKey) -> Repository {
    Repository::open(
        Backend::open(&server.spec, &server.creds()).unwrap(),
        key,
        PACK,
    )
    .unwrap()
}

fn assert_restores(
    repo: &Repository,
    snapshot: &str,
    expected: &BTreeMap<String, Vec<u8>>,
    scratch: &Path,
) {
    let to = scratch.join(format!("restore-{}", uuid::Uuid::new_v4()));
    let restored = repo.restore_files(snapshot, &to, &NoProgress).unwrap();
    assert_eq!(
        &tree(&to),
        expected,
        "restored files differ from the snapshot's source"
    );
    assert_eq!(restored.report.files, expected.len());
    std::fs::remove_dir_all(&to).unwrap();
}

fn scan_storage_for(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    fn walk(d: &Path, needle: &[u8], hits: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, needle, hits);
            } else if std::fs::read(&p)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                hits.push(p);
            }
        }
    }
    walk(dir, needle, &mut hits);
    hits
}

/// Where the server keeps object `rel` (e.g. "data/<name>").
fn stored(server: &Server, rel: &str) -> PathBuf {
    server.storage.join(rel)
}

// ---------- grandchild: a push that is meant to die ----------

#[derive(serde::Serialize, serde::Deserialize)]
struct PushJob {
    spec: TargetSpec,
    password: Option<String>,
    s3: Option<(String, String)>,
    key_hex: String,
    source: PathBuf,
}

#[test]
#[ignore = "run by the target suites"]
fn child_push() {
    let job: PushJob = serde_json::from_str(&std::env::var("SYNC_TEST_JOB").unwrap()).unwrap();
    let creds = Credentials {
        password: job.password.map(Zeroizing::new),
        s3_key_id: job.s3.as_ref().map(|k| Zeroizing::new(k.0.clone())),
        s3_secret: job.s3.as_ref().map(|k| Zeroizing::new(k.1.clone())),
    };
    let key = RepoKey::from_bytes(&hex::decode(job.key_hex).unwrap()).unwrap();
    let repo = Repository::open(Backend::open(&job.spec, &creds).unwrap(), &key, PACK).unwrap();
    repo.push(&files_of(&job.source), anchor(99), b"keys", &NoProgress)
        .unwrap();
}

fn job_env(server: &Server, key: &RepoKey, source: &Path) -> String {
    serde_json::to_string(&PushJob {
        spec: server.spec.clone(),
        password: server.password.clone(),
        s3: server.s3_keys.clone(),
        key_hex: hex::encode(key.expose()),
        source: source.to_owned(),
    })
    .unwrap()
}

// ---------- the suite ----------

fn suite(server: &Server) {
    let scratch = tempfile::tempdir().unwrap();
    let src = scratch.path().join("vault");
    make_source(&src);
    let key = RepoKey::generate();
    let recovery = clinvault_core::RecoveryKey::generate();
    let backend = Backend::open(&server.spec, &server.creds()).unwrap();
    let repo = Repository::init(
        backend,
        &key,
        uuid::Uuid::new_v4(),
        &recovery.public().unwrap(),
        "v-test",
        PACK,
    )
    .unwrap();

    // Round trip.
    let original = tree(&src);
    let r1 = repo
        .push(&files_of(&src), anchor(10), b"vault-keys-1", &NoProgress)
        .unwrap();
    assert!(r1.packs >= 15, "{r1:?}");
    assert!(
        r1.compressed_blobs >= 1,
        "the plaintext key file should compress: {r1:?}"
    );
    assert_restores(&repo, &r1.snapshot, &original, scratch.path());
    let restored = repo
        .restore_files(&r1.snapshot, &scratch.path().join("k"), &NoProgress)
        .unwrap();
    assert_eq!(&restored.vault_keys[..], b"vault-keys-1");
    assert_eq!(repo.snapshots().unwrap()[0].audit_entries, Some(10));
    assert!(
        repo.restore_files(&r1.snapshot, &scratch.path().join("k"), &NoProgress)
            .unwrap_err()
            .kind()
            == ErrorKind::AlreadyExists
    );

    // Incremental: three scattered database pages change.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(src.join("vault.db"))
            .unwrap();
        for off in [4096u64 * 3, 4096 * 700, 4096 * 1500] {
            f.seek(SeekFrom::Start(off)).unwrap();
            f.write_all(&random_bytes(4096, off)).unwrap();
        }
    }
    let changed = tree(&src);
    let r2 = repo
        .push(&files_of(&src), anchor(11), b"vault-keys-2", &NoProgress)
        .unwrap();
    assert_eq!(r2.unchanged_files, 2, "{r2:?}");
    assert_eq!(r2.new_blobs, 3, "{r2:?}");
    assert!(r2.uploaded_bytes < 4 * 65536, "{r2:?}");
    assert_restores(&repo, &r2.snapshot, &changed, scratch.path());
    assert_restores(&repo, &r1.snapshot, &original, scratch.path());
    assert_eq!(repo.resolve("latest").unwrap(), r2.snapshot);
    assert_eq!(repo.resolve(&r2.snapshot[..8]).unwrap(), r2.snapshot);

    // The target never sees readable content.
    assert!(scan_storage_for(&server.storage, MARKER.as_bytes()).is_empty());
    assert!(scan_storage_for(&server.storage, b"vault-keys").is_empty());

    // Another key does not open it.
    let e = Repository::open(
        Backend::open(&server.spec, &server.creds()).unwrap(),
        &RepoKey::generate(),
        PACK,
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::Integrity);

    // Interrupted uploads: a push dies at each named point, then the next push completes.
    let can_rename = !matches!(
        server.spec.location,
        clinvault_sync::target::Location::S3 { .. }
    );
    for (i, point) in [
        "sync.after_second_pack",
        "sync.pack_before_rename",
        "sync.after_index_checkpoint",
        "sync.before_snapshot",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(
            src.join(format!("attachments/c{i}.bin")),
            random_bytes(6 * MIB, 10 + i as u64),
        )
        .unwrap();
        let before = repo.snapshots().unwrap().len();
        let (ok, text) = run_child(
            "child_push",
            &[
                ("SYNC_TEST_JOB", job_env(server, &key, &src)),
                ("CLINVAULT_FAULT_POINT", point.to_string()),
            ],
        );
        if can_rename || *point != "sync.pack_before_rename" {
            assert!(!ok, "the push should have died at {point}:\n{text}");
            assert_eq!(repo.snapshots().unwrap().len(), before, "{point}");
        }
        let expected = tree(&src);
        let r = repo
            .push(&files_of(&src), anchor(20 + i as u64), b"k", &NoProgress)
            .unwrap();
        assert_restores(&repo, &r.snapshot, &expected, scratch.path());
        let c = repo.check(false, &NoProgress).unwrap();
        assert!(c.problems.is_empty(), "{point}: {:?}", c.problems);
    }

    // SIGKILL in the middle of an upload.
    std::fs::write(src.join("attachments/d.bin"), random_bytes(12 * MIB, 42)).unwrap();
    let packs_before = repo.backend().list("data").unwrap().len();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "child_push", "--ignored", "--test-threads=1"])
        .env("SYNC_TEST_JOB", job_env(server, &key, &src))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if repo.backend().list("data").unwrap().len() >= packs_before + 2
            || Instant::now() > deadline
        {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let expected = tree(&src);
    let r = repo
        .push(&files_of(&src), anchor(30), b"k", &NoProgress)
        .unwrap();
    assert_restores(&repo, &r.snapshot, &expected, scratch.path());

    // Prune: b.bin and the c*.bin are deleted from the vault; keeping only the last snapshot
    // must delete their data from the target.
    std::fs::remove_file(src.join("attachments/b.bin")).unwrap();
    for i in 0..4 {
        std::fs::remove_file(src.join(format!("attachments/c{i}.bin"))).unwrap();
    }
    let last = repo
        .push(&files_of(&src), anchor(40), b"k", &NoProgress)
        .unwrap();
    let before = repo.usage().unwrap();
    let p = repo
        .prune(
            KeepPolicy {
                last: 1,
                ..Default::default()
            },
            &NoProgress,
        )
        .unwrap();
    let after = repo.usage().unwrap();
    assert!(p.removed_snapshots >= 7, "{p:?}");
    assert_eq!(after.snapshots, 1);
    assert_eq!(after.indexed_blobs, after.referenced_blobs, "{after:?}");
    assert_eq!(after.packs_on_target, after.index_packs, "{after:?}");
    let live: u64 = tree(&src).values().map(|v| v.len() as u64).sum();
    assert!(
        after.pack_bytes_on_target < before.pack_bytes_on_target / 2,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.pack_bytes_on_target < live + live / 10,
        "{after:?} for {live} live bytes"
    );
    let c = repo.check(true, &NoProgress).unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_restores(&repo, &last.snapshot, &tree(&src), scratch.path());
    assert!(repo.prune(KeepPolicy::default(), &NoProgress).is_err());

    // Tampering: one flipped bit in a pack is found by check --read-data and stops a restore.
    let idx = repo.load_index().unwrap();
    let victim = idx.packs.keys().next().unwrap().clone();
    let path = stored(server, &format!("data/{victim}"));
    let original = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let flipped = |at: usize| {
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
    };
    // A bit of the pack's header, which a restore does not read (it has the index): the pack's
    // name no longer matches, which check reports; the restore, which authenticates every byte
    // it uses by the blobs' AEAD tags, is complete and exact.
    flipped(original.len() - 8);
    let c = repo.check(true, &NoProgress).unwrap();
    assert!(
        c.problems.iter().any(|p| p.contains(&victim[..12])),
        "{:?}",
        c.problems
    );
    assert_restores(&repo, &last.snapshot, &tree(&src), scratch.path());
    // A bit of a blob the snapshot uses (found by check) and then a truncated pack: each stops
    // the restore with an integrity error.
    let blob = &idx.packs[&victim].blobs[0];
    flipped((blob.offset + blob.length / 2) as usize);
    let c = repo.check(true, &NoProgress).unwrap();
    assert!(
        c.problems.iter().any(|p| p.contains(&victim[..12])),
        "{:?}",
        c.problems
    );
    let e = repo
        .restore_files(&last.snapshot, &scratch.path().join("t1"), &NoProgress)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    std::fs::write(&path, &original[..blob.offset as usize + 10]).unwrap();
    let e = repo
        .restore_files(&last.snapshot, &scratch.path().join("t3"), &NoProgress)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    // ... and a missing pack is found by the quick check too.
    std::fs::remove_file(&path).unwrap();
    let c = repo.check(false, &NoProgress).unwrap();
    assert!(
        c.problems.iter().any(|p| p.contains("missing")),
        "{:?}",
        c.problems
    );
    let e = repo
        .restore_files(&last.snapshot, &scratch.path().join("t2"), &NoProgress)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
    // A damaged snapshot file is reported, not trusted.
    let snap_path = stored(server, &format!("snapshots/{}", last.snapshot));
    std::fs::write(&snap_path, b"garbage").unwrap();
    let c = open_repo(server, &key).check(false, &NoProgress).unwrap();
    assert!(
        c.problems.iter().any(|p| p.contains("snapshot")),
        "{:?}",
        c.problems
    );
    println!("suite passed on {}", server.name);
}

/// TLS rules on the TLS 1.3 WebDAV server: without the pinned CA the certificate is refused at
/// once (no retries), with it everything works; a TLS 1.2-only server is refused by default.
fn tls_rules(server: &Server) {
    let mut unpinned = server.spec.clone();
    unpinned.ca_file = None;
    let started = Instant::now();
    let e =
        Repository::read_config(&Backend::open(&unpinned, &server.creds()).unwrap()).unwrap_err();
    assert!(e.to_string().contains("not trusted"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "certificate failures must not be retried"
    );
    assert!(
        Repository::read_config(&Backend::open(&server.spec, &server.creds()).unwrap())
            .unwrap()
            .is_none()
    );

    // A server that speaks at most TLS 1.2, with a certificate from the same kind of CA.
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = servers::make_ca(dir.path());
    let port = servers::free_port();
    let mut s = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-tls1_2",
            "-www",
            "-accept",
            &port.to_string(),
        ])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut old = TargetSpec::parse(&format!("webdavs://clinic@127.0.0.1:{port}/cv")).unwrap();
    old.ca_file = Some(ca);
    let e = Repository::read_config(&Backend::open(&old, &server.creds()).unwrap()).unwrap_err();
    assert!(e.to_string().contains("TLS 1.3"), "{e}");
    old.tls_min = clinvault_sync::TlsMin::Tls12;
    // With 1.2 allowed the handshake succeeds (the toy server then answers with something that
    // is not WebDAV, which is a different error).
    let e2 = Repository::read_config(&Backend::open(&old, &server.creds()).unwrap());
    if let Err(e2) = e2 {
        assert!(
            !e2.to_string().contains("TLS 1.3") && !e2.to_string().contains("not trusted"),
            "{e2}"
        );
    }
    let _ = s.kill();
    let _ = s.wait();
}
