//! Two-factor sign-in with TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps — what Google
//! Authenticator, Aegis and 1Password use) and single-use recovery codes. The TOTP secret lives
//! only in the encrypted database; recovery codes are stored as salted hashes.
//!
//! In an offline app, the vault is unlocked by the passphrase before the code is checked (the
//! secret is inside the vault). TOTP therefore protects sign-in at the clinic PC, not against
//! someone who has both the vault files and a passphrase; docs/security-model.md says so.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::crypto::random_bytes;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};
use crate::users;
use crate::vault::Vault;

const ISSUER: &str = "ClinVault";
const STEP_SECONDS: u64 = 30;
pub const RECOVERY_CODES: usize = 10;

fn totp(secret: &[u8], account: &str) -> Result<totp_rs::Totp> {
    totp_rs::Builder::new()
        .with_secret(secret.to_vec())
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .map_err(|_| Error::Internal("cannot set up the authenticator".into()))
}

/// The 6-digit code for `secret` at `unix` time (what an authenticator app would show).
pub fn code_at(secret: &[u8], unix: u64) -> Result<String> {
    Ok(totp(secret, "code")?.generate(unix).to_string())
}

/// Authenticator apps show "123 456" and people type "123-456": keep the digits only.
fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect()
}

pub fn is_enabled(conn: &Connection, user_id: uuid::Uuid) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT enabled FROM user_totp WHERE user_id = ?1",
            [user_id.to_string()],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        == Some(1))
}

/// Matches `code` against the user's TOTP secret within ±1 step, refusing a step already used.
/// Returns the matched step, which the caller stores as the last used one.
fn match_totp(
    conn: &Connection,
    user: &users::UserRecord,
    code: &str,
    now: i64,
    enabled: bool,
) -> Result<Option<u64>> {
    let row: Option<(Vec<u8>, Option<i64>)> = conn
        .query_row(
            "SELECT secret, last_used_step FROM user_totp WHERE user_id = ?1 AND enabled = ?2",
            params![user.id.to_string(), i64::from(enabled)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((secret, last)) = row else {
        return Ok(None);
    };
    let secret = Zeroizing::new(secret);
    let t = totp(&secret, &user.username)?;
    let Some(step) = t.check(&normalise_code(code), now.max(0) as u64) else {
        return Ok(None);
    };
    if last.is_some_and(|l| step <= l as u64) {
        return Err(Error::Authentication(
            "that code was already used; wait for the next one".into(),
        ));
    }
    Ok(Some(step))
}

fn hash_code(salt: &[u8], code: &str) -> [u8; 32] {
    let normalised: String = normalise_code(code).to_ascii_lowercase();
    let mut h = Sha256::new();
    h.update(salt);
    h.update(normalised.as_bytes());
    h.finalize().into()
}

/// Marks a matching unused recovery code as used; true when one matched.
fn redeem_recovery_code(
    conn: &Connection,
    user_id: uuid::Uuid,
    code: &str,
    now: &str,
) -> Result<bool> {
    let mut st = conn.prepare(
        "SELECT idx, salt, hash FROM user_recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
    )?;
    let rows = st
        .query_map([user_id.to_string()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut found = None;
    for (idx, salt, hash) in rows {
        // Every code is compared, in constant time, so timing does not tell which was close.
        if bool::from(hash_code(&salt, code).ct_eq(hash.as_slice())) {
            found = Some(idx);
        }
    }
    if let Some(idx) = found {
        conn.execute(
            "UPDATE user_recovery_codes SET used_at = ?1 WHERE user_id = ?2 AND idx = ?3",
            params![now, user_id.to_string(), idx],
        )?;
    }
    Ok(found.is_some())
}

fn wrong_code() -> Error {
    Error::Authentication(
        "that authenticator or recovery code is not correct (check this computer's clock)".into(),
    )
}

/// Verifies a TOTP or recovery code for `vault`'s user and records its use. Returns the method.
pub(crate) fn verify_code(vault: &mut Vault, code: &str, now: i64) -> Result<&'static str> {
    let user = vault.user().clone();
    let at = jiff::Timestamp::from_second(now)
        .map(rfc3339)
        .unwrap_or_default();
    let tx = crate::db::write_tx(vault.conn_mut())?;
    let method = if let Some(step) = match_totp(&tx, &user, code, now, true)? {
        tx.execute(
            "UPDATE user_totp SET last_used_step = ?1 WHERE user_id = ?2",
            params![step as i64, user.id.to_string()],
        )?;
        "totp"
    } else if redeem_recovery_code(&tx, user.id, code, &at)? {
        "recovery_code"
    } else {
        return Err(wrong_code());
    };
    tx.commit()?;
    Ok(method)
}

pub(crate) fn verify_for_sign_in(vault: &mut Vault, code: &str, now: i64) -> Result<&'static str> {
    verify_code(vault, code, now)
}

/// "Remember this device": see `device_trust`.
pub(crate) fn device_is_trusted(vault: &Vault, now: i64) -> bool {
    crate::device_trust::is_trusted(vault, now)
}

#[derive(Serialize)]
pub struct Enrolment {
    /// otpauth:// URI for authenticator apps (contains the secret: show, never log).
    pub otpauth_uri: String,
    pub secret_base32: String,
    #[serde(skip)]
    pub qr_png: Vec<u8>,
}

impl Drop for Enrolment {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.otpauth_uri.zeroize();
        self.secret_base32.zeroize();
    }
}

fn new_recovery_codes(conn: &Connection, user_id: uuid::Uuid) -> Result<Vec<Zeroizing<String>>> {
    conn.execute(
        "DELETE FROM user_recovery_codes WHERE user_id = ?1",
        [user_id.to_string()],
    )?;
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for idx in 0..RECOVERY_CODES {
        // 50 random bits as ten Crockford base32 characters, shown as xxxxx-xxxxx.
        let raw = Zeroizing::new(random_bytes::<7>());
        let text = Zeroizing::new(
            base32::encode(base32::Alphabet::Crockford, raw.as_ref()).to_ascii_lowercase(),
        );
        let code = Zeroizing::new(format!("{}-{}", &text[..5], &text[5..10]));
        let salt = random_bytes::<16>();
        conn.execute(
            "INSERT INTO user_recovery_codes (user_id, idx, salt, hash) VALUES (?1, ?2, ?3, ?4)",
            params![
                user_id.to_string(),
                idx as i64,
                salt.as_slice(),
                hash_code(&salt, &code).as_slice()
            ],
        )?;
        codes.push(code);
    }
    Ok(codes)
}

impl Session {
    /// Starts enrolment: a new secret, pending until confirmed with a valid code.
    pub fn enroll_2fa(&mut self) -> Result<Enrolment> {
        let user = self.user().clone();
        let now = rfc3339(self.clock().now());
        let event = Event::new("2fa.enroll").target("user", user.id);
        self.gate(Need::SignedIn, event, |tx, _| {
            if is_enabled(tx, user.id)? {
                return Err(Error::AlreadyExists(
                    "two-factor sign-in is already on; ask an administrator to reset it first"
                        .into(),
                ));
            }
            let secret = Zeroizing::new(random_bytes::<20>());
            tx.execute(
                "INSERT INTO user_totp (user_id, secret, enabled, created_at) VALUES (?1, ?2, 0, ?3)
                 ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, enabled = 0,
                     last_used_step = NULL, created_at = excluded.created_at, confirmed_at = NULL",
                params![user.id.to_string(), secret.as_slice(), now],
            )?;
            let t = totp(secret.as_ref(), &user.username)?;
            Ok(Enrolment {
                otpauth_uri: t
                    .to_url()
                    .map_err(|_| Error::Internal("cannot build the otpauth URI".into()))?,
                secret_base32: base32::encode(
                    base32::Alphabet::Rfc4648 { padding: false },
                    secret.as_ref(),
                ),
                qr_png: t
                    .to_qr_png()
                    .map_err(|_| Error::Internal("cannot draw the QR code".into()))?,
            })
        })
    }

    /// Turns two-factor sign-in on once a code from the new secret is right; returns the ten
    /// recovery codes, shown once.
    pub fn confirm_2fa(&mut self, code: &str) -> Result<Vec<Zeroizing<String>>> {
        let user = self.user().clone();
        let now_unix = self.clock().now().as_second();
        let now = rfc3339(self.clock().now());
        let event = Event::new("2fa.confirm").target("user", user.id);
        let codes = self.gate(Need::SignedIn, event, |tx, _| {
            let step = match_totp(tx, &user, code, now_unix, false)?.ok_or_else(|| {
                let pending: bool = tx
                    .query_row("SELECT count(*) FROM user_totp WHERE user_id = ?1 AND enabled = 0", [user.id.to_string()], |r| r.get::<_, i64>(0))
                    .map(|n| n > 0)
                    .unwrap_or(false);
                if pending { wrong_code() } else { Error::NotFound("no enrolment is pending; run `user 2fa enroll` first".into()) }
            })?;
            tx.execute(
                "UPDATE user_totp SET enabled = 1, last_used_step = ?1, confirmed_at = ?2 WHERE user_id = ?3",
                params![step as i64, now, user.id.to_string()],
            )?;
            new_recovery_codes(tx, user.id)
        })?;
        self.set_enrolled();
        Ok(codes)
    }

    /// New recovery codes (the old ones stop working).
    pub fn regenerate_recovery_codes(&mut self) -> Result<Vec<Zeroizing<String>>> {
        let user_id = self.user().id;
        let event = Event::new("2fa.recovery_codes").target("user", user_id);
        self.gate(Need::SignedIn, event, |tx, _| {
            if !is_enabled(tx, user_id)? {
                return Err(Error::NotFound(
                    "two-factor sign-in is not on for you".into(),
                ));
            }
            new_recovery_codes(tx, user_id)
        })
    }

    /// An administrator turns a user's two-factor sign-in off (lost phone); they enrol again.
    pub fn reset_2fa(&mut self, username: &str) -> Result<()> {
        let event = Event::new("2fa.reset");
        self.gate(
            Need::Permission(Permission::UsersManage),
            event,
            |tx, ev| {
                let name = users::normalise_username(username)?;
                let user = users::by_username(tx, &name)?
                    .ok_or_else(|| Error::NotFound(format!("no user named {name:?}")))?;
                *ev = ev.clone().target("user", user.id);
                let id = user.id.to_string();
                tx.execute("DELETE FROM user_totp WHERE user_id = ?1", [&id])?;
                tx.execute("DELETE FROM user_recovery_codes WHERE user_id = ?1", [&id])?;
                tx.execute("DELETE FROM trusted_devices WHERE user_id = ?1", [&id])?;
                Ok(())
            },
        )
    }
}
