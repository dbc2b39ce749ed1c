//! The clinic's security policy: typed settings with defaults and bounds, stored in the
//! `settings` table (inside the encrypted database) and changed only by administrators.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::permissions::BuiltinRole;

#[derive(Clone, Debug, Serialize)]
pub struct Policy {
    /// Roles (built-in or custom) whose users must use two-factor sign-in.
    pub require_2fa: BTreeMap<String, bool>,
    pub idle_lock_minutes: u32,
    pub session_hours: u32,
    pub remember_device_days: u32,
    /// Minimum passphrase length where the passphrase is the only factor (NIST: ≥ 15).
    pub min_passphrase_length: u32,
    /// Minimum where the user also has two-factor sign-in (NIST: ≥ 8).
    pub min_passphrase_length_2fa: u32,
    pub notes_restricted_to_treating: bool,
    /// 0 turns scheduled rotation off.
    pub key_rotation_days: u32,
    /// Alert when one user views or exports this many distinct patient records...
    pub alert_bulk_view_count: u32,
    /// ...within this many minutes.
    pub alert_bulk_view_minutes: u32,
    /// Alert after this many failed sign-ins for one username.
    pub alert_failed_signins: u32,
    /// When the clinic is open, e.g. "Mon-Fri 08:00-18:00; Sat 09:00-12:00", or "always".
    pub clinic_hours: String,
    /// IANA time zone the clinic hours are in.
    pub clinic_timezone: String,
    /// The clinic's name as shown in the app and on invoices (not a secret, not patient data).
    pub clinic_name: String,
    /// ISO 4217 code of the currency the clinic invoices in.
    pub clinic_currency: String,
    pub audit_retention_years: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            require_2fa: BuiltinRole::ALL
                .iter()
                .map(|r| (r.name().to_owned(), false))
                .collect(),
            idle_lock_minutes: 15,
            session_hours: 12,
            remember_device_days: 30,
            min_passphrase_length: 15,
            min_passphrase_length_2fa: 8,
            notes_restricted_to_treating: false,
            key_rotation_days: 90,
            alert_bulk_view_count: 50,
            alert_bulk_view_minutes: 10,
            alert_failed_signins: 5,
            clinic_hours: "Mon-Fri 08:00-18:00".into(),
            clinic_timezone: "UTC".into(),
            clinic_name: "My clinic".into(),
            clinic_currency: "EUR".into(),
            audit_retention_years: 6,
        }
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(Error::InvalidInput(format!("{key}: use on or off"))),
    }
}

fn parse_range(key: &str, v: &str, min: u32, max: u32) -> Result<u32> {
    let n: u32 = v
        .trim()
        .parse()
        .map_err(|_| Error::InvalidInput(format!("{key}: expected a whole number")))?;
    if n < min || n > max {
        return Err(Error::InvalidInput(format!(
            "{key}: must be between {min} and {max} (got {n})"
        )));
    }
    Ok(n)
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_owned()
}

impl Policy {
    /// Applies one `KEY VALUE` pair, validating both; returns the canonical stored value.
    fn apply(&mut self, key: &str, value: &str) -> Result<String> {
        if let Some(role) = key.strip_prefix("require-2fa.") {
            let b = parse_bool(key, value)?;
            self.require_2fa.insert(role.to_owned(), b);
            return Ok(on_off(b));
        }
        let canonical = match key {
            "idle-lock-minutes" => {
                self.idle_lock_minutes = parse_range(key, value, 1, 240)?;
                self.idle_lock_minutes.to_string()
            }
            "session-hours" => {
                self.session_hours = parse_range(key, value, 1, 24 * 7)?;
                self.session_hours.to_string()
            }
            "remember-device-days" => {
                self.remember_device_days = parse_range(key, value, 0, 365)?;
                self.remember_device_days.to_string()
            }
            // Raisable only: NIST's floors are the minimum a clinic may choose.
            "min-passphrase-length" => {
                self.min_passphrase_length = parse_range(key, value, 15, 128)?;
                self.min_passphrase_length.to_string()
            }
            "min-passphrase-length-2fa" => {
                self.min_passphrase_length_2fa = parse_range(key, value, 8, 128)?;
                self.min_passphrase_length_2fa.to_string()
            }
            "notes-restricted-to-treating" => {
                self.notes_restricted_to_treating = parse_bool(key, value)?;
                on_off(self.notes_restricted_to_treating)
            }
            "key-rotation-days" => {
                self.key_rotation_days = parse_range(key, value, 0, 3650)?;
                self.key_rotation_days.to_string()
            }
            "alert.bulk-view-count" => {
                self.alert_bulk_view_count = parse_range(key, value, 2, 100_000)?;
                self.alert_bulk_view_count.to_string()
            }
            "alert.bulk-view-minutes" => {
                self.alert_bulk_view_minutes = parse_range(key, value, 1, 24 * 60)?;
                self.alert_bulk_view_minutes.to_string()
            }
            "alert.failed-signins" => {
                self.alert_failed_signins = parse_range(key, value, 1, 1000)?;
                self.alert_failed_signins.to_string()
            }
            "clinic-hours" => {
                crate::clinic_hours::ClinicHours::parse(value)?;
                self.clinic_hours = value.trim().to_owned();
                self.clinic_hours.clone()
            }
            "clinic-timezone" => {
                jiff::tz::TimeZone::get(value.trim()).map_err(|_| {
                    Error::InvalidInput(format!(
                        "{key}: {:?} is not an IANA time zone (e.g. Australia/Sydney)",
                        value.trim()
                    ))
                })?;
                self.clinic_timezone = value.trim().to_owned();
                self.clinic_timezone.clone()
            }
            "clinic-name" => {
                let name = value.trim();
                if name.is_empty()
                    || name.chars().count() > 100
                    || name.chars().any(char::is_control)
                {
                    return Err(Error::InvalidInput(format!(
                        "{key}: give the clinic's name, 1 to 100 characters on one line"
                    )));
                }
                self.clinic_name = name.to_owned();
                self.clinic_name.clone()
            }
            "clinic-currency" => {
                let code = value.trim().to_ascii_uppercase();
                if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(Error::InvalidInput(format!(
                        "{key}: {:?} is not a three-letter ISO 4217 currency code (e.g. EUR, GBP, AUD)",
                        value.trim()
                    )));
                }
                self.clinic_currency = code;
                self.clinic_currency.clone()
            }
            "audit-retention-years" => {
                self.audit_retention_years = parse_range(key, value, 1, 100)?;
                self.audit_retention_years.to_string()
            }
            other => {
                return Err(Error::InvalidInput(format!(
                    "unknown policy setting {other:?}; see `clinvault policy show`"
                )))
            }
        };
        Ok(canonical)
    }

    pub fn load(conn: &Connection) -> Result<Policy> {
        let mut policy = Policy::default();
        let mut st =
            conn.prepare("SELECT key, value FROM settings WHERE key NOT LIKE 'clinic.%'")?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (k, v) in rows {
            policy.apply(&k, &v).map_err(|e| {
                Error::Integrity(format!("stored policy setting {k:?} is invalid: {e}"))
            })?;
        }
        Ok(policy)
    }

    pub fn requires_2fa(&self, role: &str) -> bool {
        self.require_2fa.get(role).copied().unwrap_or(false)
    }

    /// Every setting as `KEY VALUE` text, in the form `policy set` accepts.
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .require_2fa
            .iter()
            .map(|(r, b)| (format!("require-2fa.{r}"), on_off(*b)))
            .collect();
        out.extend([
            (
                "idle-lock-minutes".into(),
                self.idle_lock_minutes.to_string(),
            ),
            ("session-hours".into(), self.session_hours.to_string()),
            (
                "remember-device-days".into(),
                self.remember_device_days.to_string(),
            ),
            (
                "min-passphrase-length".into(),
                self.min_passphrase_length.to_string(),
            ),
            (
                "min-passphrase-length-2fa".into(),
                self.min_passphrase_length_2fa.to_string(),
            ),
            (
                "notes-restricted-to-treating".into(),
                on_off(self.notes_restricted_to_treating),
            ),
            (
                "key-rotation-days".into(),
                self.key_rotation_days.to_string(),
            ),
            (
                "alert.bulk-view-count".into(),
                self.alert_bulk_view_count.to_string(),
            ),
            (
                "alert.bulk-view-minutes".into(),
                self.alert_bulk_view_minutes.to_string(),
            ),
            (
                "alert.failed-signins".into(),
                self.alert_failed_signins.to_string(),
            ),
            ("clinic-hours".into(), self.clinic_hours.clone()),
            ("clinic-timezone".into(), self.clinic_timezone.clone()),
            ("clinic-name".into(), self.clinic_name.clone()),
            ("clinic-currency".into(), self.clinic_currency.clone()),
            (
                "audit-retention-years".into(),
                self.audit_retention_years.to_string(),
            ),
        ]);
        out
    }
}

/// The policy as one user may see it. The alert thresholds are shown only to those who review
/// alerts (`audit.read`): anyone else could otherwise learn how many records they may open
/// before the bulk-access alert fires, and stay under it.
#[derive(Clone, Debug)]
pub struct ShownPolicy {
    policy: Policy,
    alert_rules: bool,
}

impl ShownPolicy {
    pub(crate) fn new(policy: Policy, alert_rules: bool) -> ShownPolicy {
        ShownPolicy {
            policy,
            alert_rules,
        }
    }

    /// Whether the alert thresholds are part of what this user sees.
    pub fn shows_alert_rules(&self) -> bool {
        self.alert_rules
    }

    /// As `Policy::entries`, without the alert thresholds where they are not shown.
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut out = self.policy.entries();
        if !self.alert_rules {
            out.retain(|(k, _)| !k.starts_with(ALERT_KEYS));
        }
        out
    }
}

/// Where the alert thresholds' names start, as `policy set` keys and as JSON fields.
const ALERT_KEYS: &str = "alert.";
const ALERT_FIELDS: &str = "alert_";

impl Serialize for ShownPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut value = serde_json::to_value(&self.policy).map_err(serde::ser::Error::custom)?;
        if let (false, Some(fields)) = (self.alert_rules, value.as_object_mut()) {
            fields.retain(|k, _| !k.starts_with(ALERT_FIELDS));
        }
        value.serialize(s)
    }
}

/// Validates and stores one setting; returns (old, new) canonical values for the audit entry.
pub(crate) fn set(
    conn: &Connection,
    key: &str,
    value: &str,
    known_roles: &[String],
    now: &str,
) -> Result<(String, String)> {
    let mut policy = Policy::load(conn)?;
    if let Some(role) = key.strip_prefix("require-2fa.") {
        if !known_roles.iter().any(|r| r == role) {
            return Err(Error::NotFound(format!("no role named {role:?}")));
        }
    }
    let old = policy
        .entries()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_default();
    let new = policy.apply(key, value)?;
    conn.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, new, now],
    )?;
    Ok((old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_list_every_setting_and_each_round_trips() {
        let p = Policy::default();
        let entries = p.entries();
        for key in [
            "clinic-hours",
            "clinic-timezone",
            "clinic-name",
            "clinic-currency",
            "alert.failed-signins",
            "audit-retention-years",
        ] {
            assert!(entries.iter().any(|(k, _)| k == key), "{key} missing");
        }
        let mut q = Policy::default();
        for (k, v) in &entries {
            assert_eq!(&q.apply(k, v).unwrap(), v, "{k}");
        }
        // One entry per role for require-2fa, plus one per other field of `Policy` (15).
        assert_eq!(entries.len(), p.require_2fa.len() + 15);
    }

    #[test]
    fn settings_are_validated_with_clear_reasons() {
        let mut p = Policy::default();
        assert_eq!(p.apply("idle-lock-minutes", "5").unwrap(), "5");
        assert_eq!(p.idle_lock_minutes, 5);
        let e = p.apply("session-hours", "500").unwrap_err().to_string();
        assert!(e.contains("between 1 and 168"), "{e}");
        assert_eq!(p.apply("clinic-currency", " gbp ").unwrap(), "GBP");
        let e = p.apply("clinic-currency", "POUND").unwrap_err().to_string();
        assert!(e.contains("ISO 4217"), "{e}");
        assert_eq!(
            p.apply("clinic-name", " Riverside Physio ").unwrap(),
            "Riverside Physio"
        );
        let e = p.apply("clinic-name", "a\nb").unwrap_err().to_string();
        assert!(e.contains("1 to 100 characters"), "{e}");
        assert!(p.apply("clinic-name", "").is_err());
        let e = p
            .apply("min-passphrase-length", "10")
            .unwrap_err()
            .to_string();
        assert!(e.contains("between 15 and 128"), "{e}");
        assert_eq!(p.apply("require-2fa.biller", "ON").unwrap(), "on");
        assert!(p.requires_2fa("biller"));
        assert!(p.apply("notes-restricted-to-treating", "maybe").is_err());
        assert!(p.apply("colour", "blue").is_err());
        assert!(p.apply("idle-lock-minutes", "-3").is_err());
    }
}
