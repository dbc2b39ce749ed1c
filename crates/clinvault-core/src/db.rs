//! Opening the SQLCipher database with a raw 256-bit key, the connection settings every
//! connection gets, the embedded forward-only migrations, and the re-keyed copy used by rotation.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use zeroize::Zeroizing;

use crate::crypto::Secret32;
use crate::error::{Error, Result};

/// The schema history, applied in order; index + 1 is the `user_version` after each step.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/0001_foundation.sql"),
    include_str!("../../../migrations/0002_access.sql"),
    include_str!("../../../migrations/0003_audit.sql"),
    include_str!("../../../migrations/0004_patients.sql"),
    include_str!("../../../migrations/0005_schedule.sql"),
    include_str!("../../../migrations/0006_clinical.sql"),
    include_str!("../../../migrations/0007_privacy.sql"),
    include_str!("../../../migrations/0008_sync.sql"),
    include_str!("../../../migrations/0009_audit_write_cost.sql"),
    include_str!("../../../migrations/0010_audit_record_lookup.sql"),
    include_str!("../../../migrations/0011_audit_lookup_by_patient.sql"),
    include_str!("../../../migrations/0012_audit_check_without_in_lists.sql"),
];

pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;
const PAGE_SIZE: u64 = 4096;
/// A page cache that holds a clinic's working set; with SQLite's 2 MB default every cache miss
/// pays a page decryption and encrypted reads were measured ~3× slower than plain SQLite.
const CACHE_KIB: i64 = 64 * 1024;

/// Keys the connection with raw key bytes in SQLCipher's `x'<hex>'` form, so SQLCipher uses the
/// key directly (no PBKDF2) and the key never passes through SQL text or a Rust String.
fn apply_key(conn: &Connection, key: &Secret32) -> Result<()> {
    silence_sqlcipher_log(conn);
    let mut blob = Zeroizing::new(vec![0u8; 3 + 64]);
    blob[0] = b'x';
    blob[1] = b'\'';
    hex::encode_to_slice(key.expose(), &mut blob[2..66])
        .map_err(|_| Error::Internal("cannot encode database key".into()))?;
    blob[66] = b'\'';
    // SAFETY: the handle is a live connection owned by `conn`; SQLCipher copies the key bytes
    // during the call and we pass their exact length.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_key(
            conn.handle(),
            blob.as_ptr().cast(),
            blob.len() as std::os::raw::c_int,
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        return Err(Error::Internal(format!(
            "SQLCipher refused the key (code {rc})"
        )));
    }
    Ok(())
}

/// SQLCipher logs decryption failures to stderr by default; a wrong key is an expected event
/// that we report ourselves, in one line, so its own log is switched off.
fn silence_sqlcipher_log(conn: &Connection) {
    let _ = conn.query_row("PRAGMA cipher_log_level = NONE", [], |_| Ok(()));
}

/// Opens an existing database; Integrity error when the key does not decrypt it.
pub fn open_existing(path: &Path, key: &Secret32) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::Integrity(format!("cannot open the vault database: {e}")))?;
    apply_key(&conn, key)?;
    // A wrong key only shows on the first read.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(conn)
}

/// True when `key` decrypts the database at `path`; no change is made either way.
pub fn key_opens(path: &Path, key: &Secret32) -> bool {
    let Ok(conn) = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return false;
    };
    apply_key(&conn, key).is_ok()
        && conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .is_ok()
}

pub fn create_new(path: &Path, key: &Secret32) -> Result<Connection> {
    // Created empty first so the file (and the -wal/-shm files SQLite derives from it) are
    // readable by the owner only.
    crate::vault_dir::create_private(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::Internal(format!("cannot create the vault database: {e}")))?;
    apply_key(&conn, key)?;
    conn.pragma_update(None, "page_size", PAGE_SIZE as i64)?;
    Ok(conn)
}

/// Settings for every connection. WAL lets the app and the CLI read while one writes;
/// synchronous=FULL because a lost commit in a clinic is a lost record; secure_delete so erased
/// data does not linger in free pages; temp_store=MEMORY so sorts never spill to temp files.
pub fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Internal(format!(
            "the database refused WAL mode (got {mode})"
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -{CACHE_KIB};"
    ))?;
    Ok(())
}

/// Detects a database file cut short (e.g. an interrupted copy) before anything reads past the
/// cut. Only meaningful when no WAL holds pages beyond the main file.
pub fn check_not_truncated(conn: &Connection, path: &Path) -> Result<()> {
    let wal = path.with_extension("db-wal");
    let wal_has_frames = std::fs::metadata(&wal)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    if wal_has_frames {
        return Ok(());
    }
    let len = std::fs::metadata(path)
        .map_err(Error::io(format!("cannot read {}", path.display())))?
        .len();
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    // SQLCipher answers this pragma as text.
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i,
            rusqlite::types::Value::Text(t) => t.parse().unwrap_or(PAGE_SIZE as i64),
            _ => PAGE_SIZE as i64,
        })?;
    let expected = (pages.max(0) as u64).saturating_mul(page_size.max(0) as u64);
    // An empty file would be taken by SQLite for a new, empty database.
    if len == 0 || len % PAGE_SIZE != 0 || len < expected {
        return Err(Error::Integrity(format!(
            "the vault database is truncated ({len} bytes on disk, {expected} expected); \
             restore it from a backup"
        )));
    }
    Ok(())
}

/// Applies pending migrations, each in its own transaction. A database from a newer build is
/// refused rather than guessed at.
pub fn migrate(conn: &mut Connection) -> Result<u32> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(Error::Incompatible(format!(
            "this vault was written by a newer ClinVault (database format {current}); this build \
             understands up to format {SCHEMA_VERSION}: update ClinVault"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as u32 + 1;
        let tx = write_tx(conn)?;
        tx.execute_batch(sql)
            .map_err(|e| Error::Internal(format!("migration {version} failed: {e}")))?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(SCHEMA_VERSION)
}

/// Copies the whole database into a new file under another key with SQLite's online backup API.
/// The destination is keyed before the copy, so no page is ever written unencrypted.
pub fn copy_rekeyed(src: &Connection, dest_path: &Path, dest_key: &Secret32) -> Result<()> {
    let mut dest = create_new(dest_path, dest_key)?;
    {
        let backup = rusqlite::backup::Backup::new(src, &mut dest)?;
        backup.run_to_completion(4096, Duration::ZERO, None)?;
    }
    dest.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    dest.close().map_err(|(_, e)| Error::from(e))?;
    std::fs::File::open(dest_path)
        .and_then(|f| f.sync_all())
        .map_err(Error::io(format!("cannot flush {}", dest_path.display())))?;
    Ok(())
}

/// A write transaction that takes the write lock up front (BEGIN IMMEDIATE), so it waits for
/// another writer through the busy timeout instead of failing when a read would later need to
/// become a write.
pub fn write_tx(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>> {
    Ok(conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
}

pub fn sqlcipher_version() -> Result<String> {
    let conn = Connection::open_in_memory()?;
    silence_sqlcipher_log(&conn);
    Ok(conn.query_row("PRAGMA cipher_version", [], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIT_ROW: &str = "INSERT INTO audit_log (seq, at, actor_name, device, action, outcome,
         details, signer_id, signer_key, prev_hash, hash, signature)
         VALUES (?1, '2026-01-01T00:00:00Z', 'admin', 'test', ?2, ?3, '{}', 'u', x'00', x'00',
                 x'00', x'00')";

    /// A vault database left at format 11 with a trail, as an earlier build wrote it.
    fn at_format_11(path: &Path, key: &Secret32) -> Connection {
        let mut conn = create_new(path, key).unwrap();
        configure(&conn).unwrap();
        for (i, sql) in MIGRATIONS[..11].iter().enumerate() {
            let tx = write_tx(&mut conn).unwrap();
            tx.execute_batch(sql).unwrap();
            tx.pragma_update(None, "user_version", i as u32 + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        for (seq, action) in [(1, "signin"), (2, "backup.export"), (3, "session.end")] {
            conn.execute(AUDIT_ROW, rusqlite::params![seq, action, "ok"])
                .unwrap();
        }
        conn
    }

    /// How many temporary b-trees running `sql` builds.
    fn temporary_tables_of(conn: &Connection, sql: &str) -> usize {
        let mut st = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        let n = st.parameter_count();
        let args = (0..n).map(|_| rusqlite::types::Value::Integer(4));
        st.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(1))
            .unwrap()
            .filter(|op| op.as_deref() == Ok("OpenEphemeral"))
            .count()
    }

    #[test]
    fn format_12_checks_an_entry_in_place_and_keeps_the_trail_and_its_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("v.db");
        let key = Secret32::random();
        let mut old = at_format_11(&path, &key);
        // What this migration removes: two temporary b-trees for every entry written.
        assert_eq!(temporary_tables_of(&old, AUDIT_ROW), 2);
        assert_eq!(migrate(&mut old).unwrap(), 12);
        drop(old);

        // Connections opened afterwards read the new conditions.
        let conn = open_existing(&path, &key).unwrap();
        configure(&conn).unwrap();
        assert_eq!(temporary_tables_of(&conn, AUDIT_ROW), 0);
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        // The trail is as it was, the milestone index holds its two milestones, and both
        // rules still hold: an unknown outcome is refused, and so is an edit.
        let n: i64 = conn
            .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        let indexed: i64 = conn
            .query_row(
                concat!(
                    "SELECT count(*) FROM audit_log INDEXED BY audit_milestones WHERE ",
                    crate::audit::milestones!()
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexed, 2);
        let refused = conn
            .execute(AUDIT_ROW, rusqlite::params![4, "signin", "maybe"])
            .unwrap_err();
        assert!(
            refused.to_string().contains("CHECK constraint failed"),
            "{refused}"
        );
        for outcome in ["ok", "denied", "failed"] {
            let seq: i64 = conn
                .query_row("SELECT max(seq) + 1 FROM audit_log", [], |r| r.get(0))
                .unwrap();
            conn.execute(AUDIT_ROW, rusqlite::params![seq, "signin", outcome])
                .unwrap();
        }
        let edit = conn
            .execute("UPDATE audit_log SET outcome = 'ok' WHERE seq = 1", [])
            .unwrap_err();
        assert!(edit.to_string().contains("append-only"), "{edit}");
    }
}
