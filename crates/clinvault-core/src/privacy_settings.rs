//! The clinic's privacy settings, set by administrators and kept in the `settings` table under
//! `clinic.privacy.*` (inside the encrypted database). Defaults preserve privacy: no patient
//! names in window titles, calendar exports or notification emails, and no year of birth kept
//! after anonymisation.

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::audit::Event;
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::Permission;
use crate::session::{Need, Session};

/// How a patient is shown where the clinic does not control who sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NameDisplay {
    /// The word "Patient".
    Hidden,
    /// Initials, e.g. "A.J.".
    Initials,
    /// The full name.
    Full,
}

impl NameDisplay {
    fn parse(key: &str, v: &str) -> Result<NameDisplay> {
        match v.trim().to_ascii_lowercase().as_str() {
            "hidden" | "off" | "none" => Ok(NameDisplay::Hidden),
            "initials" => Ok(NameDisplay::Initials),
            "full" | "on" => Ok(NameDisplay::Full),
            _ => Err(Error::InvalidInput(format!(
                "{key}: use hidden, initials or full"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NameDisplay::Hidden => "hidden",
            NameDisplay::Initials => "initials",
            NameDisplay::Full => "full",
        }
    }

    /// The patient as this setting shows them.
    pub fn show(self, first: &str, last: &str) -> String {
        match self {
            NameDisplay::Hidden => "Patient".into(),
            NameDisplay::Initials => {
                let initial = |s: &str| {
                    s.trim()
                        .chars()
                        .next()
                        .map(|c| c.to_uppercase().collect::<String>())
                };
                match (initial(first), initial(last)) {
                    (Some(f), Some(l)) => format!("{f}.{l}."),
                    (Some(x), None) | (None, Some(x)) => format!("{x}."),
                    (None, None) => "Patient".into(),
                }
            }
            NameDisplay::Full => format!("{} {}", first.trim(), last.trim())
                .trim()
                .to_owned(),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PrivacySettings {
    /// Window titles, taskbar entries and desktop notifications.
    pub window_titles: NameDisplay,
    /// Calendar (iCalendar) exports and feeds.
    pub calendar: NameDisplay,
    /// Booking notification emails to practitioners.
    pub emails: NameDisplay,
    /// Keep the year of birth when a patient is anonymised (for age statistics).
    pub anonymise_keep_birth_year: bool,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        PrivacySettings {
            window_titles: NameDisplay::Hidden,
            calendar: NameDisplay::Hidden,
            emails: NameDisplay::Hidden,
            anonymise_keep_birth_year: false,
        }
    }
}

const PREFIX: &str = "clinic.privacy.";
pub const KEYS: &[&str] = &[
    "window-titles",
    "calendar",
    "emails",
    "anonymise-keep-birth-year",
];

impl PrivacySettings {
    /// Applies one setting; returns its canonical value.
    fn apply(&mut self, key: &str, value: &str) -> Result<String> {
        Ok(match key {
            "window-titles" => {
                self.window_titles = NameDisplay::parse(key, value)?;
                self.window_titles.as_str().into()
            }
            "calendar" => {
                self.calendar = NameDisplay::parse(key, value)?;
                self.calendar.as_str().into()
            }
            "emails" => {
                self.emails = NameDisplay::parse(key, value)?;
                self.emails.as_str().into()
            }
            "anonymise-keep-birth-year" => {
                self.anonymise_keep_birth_year = match value.trim().to_ascii_lowercase().as_str() {
                    "on" | "true" | "yes" => true,
                    "off" | "false" | "no" => false,
                    _ => return Err(Error::InvalidInput(format!("{key}: use on or off"))),
                };
                if self.anonymise_keep_birth_year {
                    "on"
                } else {
                    "off"
                }
                .into()
            }
            _ => {
                return Err(Error::InvalidInput(format!(
                    "unknown privacy setting {key:?} (one of: {})",
                    KEYS.join(", ")
                )))
            }
        })
    }

    pub fn load(conn: &Connection) -> Result<PrivacySettings> {
        let mut s = PrivacySettings::default();
        let mut st = conn.prepare_cached(
            "SELECT substr(key, length(?1) + 1), value FROM settings WHERE key LIKE ?1 || '%'",
        )?;
        let rows = st
            .query_map([PREFIX], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (k, v) in rows {
            s.apply(&k, &v).map_err(|e| {
                Error::Integrity(format!("stored privacy setting {k:?} is invalid: {e}"))
            })?;
        }
        Ok(s)
    }

    pub fn entries(&self) -> Vec<(&'static str, String)> {
        vec![
            ("window-titles", self.window_titles.as_str().into()),
            ("calendar", self.calendar.as_str().into()),
            ("emails", self.emails.as_str().into()),
            (
                "anonymise-keep-birth-year",
                if self.anonymise_keep_birth_year {
                    "on"
                } else {
                    "off"
                }
                .into(),
            ),
        ]
    }
}

/// A window or notification title for a screen, honouring the window-title setting: the
/// desktop shell calls this for every title so a patient's name appears only where the clinic
/// allowed it. `patient` is (first name, last name) when the screen shows one patient.
pub fn display_title(
    settings: &PrivacySettings,
    screen: &str,
    patient: Option<(&str, &str)>,
) -> String {
    let screen = screen.trim();
    let base = if screen.is_empty() {
        "ClinVault".to_owned()
    } else {
        format!("{screen} — ClinVault")
    };
    match patient {
        None => base,
        Some((first, last)) => format!("{} · {base}", settings.window_titles.show(first, last)),
    }
}

impl Session {
    /// The privacy settings (no audit entry: settings are not patient data, and every screen
    /// needs them).
    pub fn privacy_settings(&self) -> Result<PrivacySettings> {
        PrivacySettings::load(self.vault()?.conn())
    }

    /// Changes one privacy setting (administrators).
    pub fn set_privacy_setting(&mut self, key: &str, value: &str) -> Result<PrivacySettings> {
        let mut s = self.privacy_settings()?;
        let canonical = s.apply(key, value)?;
        let now = rfc3339(self.clock().now());
        let event = Event::new("privacy.set")
            .detail("key", key)
            .detail("new", canonical.as_str());
        self.gate(
            Need::Permission(Permission::SettingsManage),
            event,
            |tx, _| {
                tx.execute(
                    "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                     updated_at = excluded.updated_at",
                    params![format!("{PREFIX}{key}"), canonical, now],
                )?;
                Ok(())
            },
        )?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_hide_names_by_default_and_show_what_the_setting_allows() {
        let mut s = PrivacySettings::default();
        assert_eq!(
            display_title(&s, "Patient record", Some(("Ann", "Jones"))),
            "Patient · Patient record — ClinVault"
        );
        assert_eq!(display_title(&s, "Calendar", None), "Calendar — ClinVault");
        s.apply("window-titles", "initials").unwrap();
        assert_eq!(
            display_title(&s, "Patient record", Some(("ann", "Jones"))),
            "A.J. · Patient record — ClinVault"
        );
        s.apply("window-titles", "full").unwrap();
        assert!(display_title(&s, "", Some(("Ann", "Jones"))).starts_with("Ann Jones · "));
        assert!(s.apply("window-titles", "sometimes").is_err());
        assert!(s.apply("colour", "on").is_err());
        assert_eq!(s.apply("anonymise-keep-birth-year", "YES").unwrap(), "on");
    }
}
