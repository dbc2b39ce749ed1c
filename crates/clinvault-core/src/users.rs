//! User records as stored in the database. The key slots in vault.keys say who can decrypt;
//! these rows say who someone is and what role they hold.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::crypto::Secret32;
use crate::encoding::tuple;
use crate::error::{Error, Result};

pub const ROLE_ADMINISTRATOR: &str = "administrator";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(UserStatus::Active),
            "disabled" => Ok(UserStatus::Disabled),
            other => Err(Error::Integrity(format!("unknown user status {other:?}"))),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct UserRecord {
    pub id: uuid::Uuid,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub status: UserStatus,
    pub created_at: String,
}

/// Usernames are case-insensitive identifiers a person types at a shared PC: lower-case ASCII
/// letters, digits, '.', '_' and '-', 1–64 characters, starting with a letter or digit.
pub fn normalise_username(raw: &str) -> Result<String> {
    let name = raw.trim().to_ascii_lowercase();
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 64 || !valid_chars || !starts_well {
        return Err(Error::InvalidInput(
            "username: use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit"
                .into(),
        ));
    }
    Ok(name)
}

pub(crate) fn insert(
    conn: &Connection,
    id: uuid::Uuid,
    username: &str,
    display_name: &str,
    role: &str,
    now: &str,
) -> Result<()> {
    let inserted = conn.execute(
        "INSERT INTO users (id, username, display_name, role, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?5)
         ON CONFLICT (username) DO NOTHING",
        params![id.to_string(), username, display_name, role, now],
    )?;
    if inserted == 0 {
        return Err(Error::AlreadyExists(format!(
            "a user named {username:?} already exists"
        )));
    }
    Ok(())
}

fn key_registration_input(user_id: &str, ed: &[u8], x: &[u8], valid_from: &str) -> Vec<u8> {
    tuple(&[
        b"clinvault/v1/user-key",
        user_id.as_bytes(),
        ed,
        x,
        valid_from.as_bytes(),
    ])
}

pub(crate) fn key_registration_mac(
    integrity_key: &Secret32,
    user_id: &str,
    ed25519_public: &[u8],
    x25519_public: &[u8],
    valid_from: &str,
) -> Result<[u8; 32]> {
    crate::crypto::hmac_sha256(
        integrity_key,
        &key_registration_input(user_id, ed25519_public, x25519_public, valid_from),
    )
}

/// True when a key registration row carries a valid MAC (constant-time comparison).
pub(crate) fn key_registration_is_genuine(
    integrity_key: &Secret32,
    user_id: &str,
    ed25519_public: &[u8],
    x25519_public: &[u8],
    valid_from: &str,
    mac: &[u8],
) -> bool {
    crate::crypto::hmac_sha256_verify(
        integrity_key,
        &key_registration_input(user_id, ed25519_public, x25519_public, valid_from),
        mac,
    )
    .unwrap_or(false)
}

pub(crate) fn record_public_keys(
    conn: &Connection,
    integrity_key: &Secret32,
    user_id: uuid::Uuid,
    ed25519_public: &[u8],
    x25519_public: &[u8],
    now: &str,
) -> Result<()> {
    let id = user_id.to_string();
    let mac = key_registration_mac(integrity_key, &id, ed25519_public, x25519_public, now)?;
    conn.execute(
        "UPDATE user_keys SET valid_until = ?2 WHERE user_id = ?1 AND valid_until IS NULL",
        params![id, now],
    )?;
    conn.execute(
        "INSERT INTO user_keys (user_id, ed25519_public, x25519_public, valid_from, mac)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, ed25519_public, x25519_public, now, mac.as_slice()],
    )?;
    Ok(())
}

/// Re-authenticates the key registrations under a new integrity key (after rotation): only
/// those genuine under the key they were registered with (or already under the new one, when
/// a rotation is resumed). A row planted by someone holding only the database key stays
/// unauthenticated, rather than becoming a trusted key in a colleague's name at the next
/// rotation.
pub(crate) fn remac_public_keys(
    conn: &Connection,
    previous_key: &Secret32,
    integrity_key: &Secret32,
) -> Result<()> {
    type Row = (String, Vec<u8>, Vec<u8>, String, Option<Vec<u8>>);
    let rows: Vec<Row> = {
        let mut st = conn.prepare(
            "SELECT user_id, ed25519_public, x25519_public, valid_from, mac FROM user_keys",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    };
    for (id, ed, x, from, mac) in rows {
        let mac = mac.unwrap_or_default();
        let genuine = |key: &Secret32| key_registration_is_genuine(key, &id, &ed, &x, &from, &mac);
        if !genuine(previous_key) || genuine(integrity_key) {
            continue;
        }
        let new_mac = key_registration_mac(integrity_key, &id, &ed, &x, &from)?;
        conn.execute(
            "UPDATE user_keys SET mac = ?1 WHERE user_id = ?2 AND ed25519_public = ?3",
            params![new_mac.as_slice(), id, ed],
        )?;
    }
    Ok(())
}

fn from_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, String, String, String, String)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn to_record(raw: (String, String, String, String, String, String)) -> Result<UserRecord> {
    let (id, username, display_name, role, status, created_at) = raw;
    Ok(UserRecord {
        id: uuid::Uuid::parse_str(&id)
            .map_err(|_| Error::Integrity("a user row has a malformed id".into()))?,
        username,
        display_name,
        role,
        status: UserStatus::parse(&status)?,
        created_at,
    })
}

const COLUMNS: &str = "id, username, display_name, role, status, created_at";

/// A user's role and status, read by the gate on every operation (so a cached statement and
/// only these two columns).
pub(crate) fn standing(conn: &Connection, id: uuid::Uuid) -> Result<Option<(String, UserStatus)>> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT role, status FROM users WHERE id = ?1")?
        .query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(role, status)| Ok((role, UserStatus::parse(&status)?)))
        .transpose()
}

pub(crate) fn by_id(conn: &Connection, id: uuid::Uuid) -> Result<Option<UserRecord>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
        [id.to_string()],
        from_row,
    )
    .optional()?
    .map(to_record)
    .transpose()
}

pub(crate) fn by_username(conn: &Connection, username: &str) -> Result<Option<UserRecord>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE username = ?1"),
        [username],
        from_row,
    )
    .optional()?
    .map(to_record)
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_validated() {
        assert_eq!(normalise_username("  Dr.Smith ").unwrap(), "dr.smith");
        assert!(normalise_username("").is_err());
        assert!(normalise_username("-admin").is_err());
        assert!(normalise_username("a b").is_err());
        assert!(normalise_username(&"a".repeat(65)).is_err());
        let err = normalise_username("ädmin").unwrap_err();
        assert!(err.to_string().starts_with("username:"));
    }
}
