//! Booking notification emails to practitioners (new booking, cancellation) over SMTP with
//! `lettre`. Email leaves the clinic's control, so the patient appears as the `emails` privacy
//! setting says ("Patient" by default) and the message carries no notes or reasons.
//!
//! Transport security: STARTTLS (required, not opportunistic) or implicit TLS; plain SMTP only
//! to this computer (localhost, 127.0.0.1, ::1), e.g. a local relay. The SMTP password lives in
//! the OS keyring (service "ClinVault SMTP", account "<vault id>/smtp"), never in the database or
//! a file; settings and practitioners' addresses live in the encrypted database.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};
use rusqlite::{params, Connection, OptionalExtension};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::appointments::Appointment;
use crate::audit::{Event, Outcome};
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::os_keyring::SecretStore;
use crate::permissions::Permission;
use crate::session::{Need, Session};

pub const KEYRING_SERVICE: &str = "ClinVault SMTP";
const PREFIX: &str = "clinic.smtp.";
const NOTIFY_PREFIX: &str = "clinic.notify.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which must succeed.
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No encryption: only to this computer.
    None,
}

impl SmtpSecurity {
    pub fn parse(text: &str) -> Result<SmtpSecurity> {
        match text.trim().to_ascii_lowercase().as_str() {
            "starttls" => Ok(SmtpSecurity::StartTls),
            "tls" => Ok(SmtpSecurity::Tls),
            "none" => Ok(SmtpSecurity::None),
            _ => Err(Error::InvalidInput(
                "security: use starttls, tls or none (none only for localhost)".into(),
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SmtpSecurity::StartTls => "starttls",
            SmtpSecurity::Tls => "tls",
            SmtpSecurity::None => "none",
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// The sender address.
    pub from: String,
    /// Sign in as this user (password from the OS keyring); none for an open local relay.
    pub username: Option<String>,
}

fn is_local(host: &str) -> bool {
    matches!(
        host.trim().to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "::1" | "[::1]"
    )
}

fn check_address(field: &str, a: &str) -> Result<()> {
    a.parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|_| Error::InvalidInput(format!("{field}: not an email address")))
}

impl SmtpSettings {
    pub fn validate(&self) -> Result<()> {
        let host = self.host.trim();
        if host.is_empty() || host.len() > 253 || host.contains(char::is_whitespace) {
            return Err(Error::InvalidInput("host: a server name or address".into()));
        }
        if self.port == 0 {
            return Err(Error::InvalidInput("port: 1–65535".into()));
        }
        if self.security == SmtpSecurity::None && !is_local(host) {
            return Err(Error::InvalidInput(
                "security: unencrypted SMTP is allowed only to localhost; use starttls or tls"
                    .into(),
            ));
        }
        check_address("from", &self.from)
    }

    fn load(conn: &Connection) -> Result<Option<SmtpSettings>> {
        let get = |k: &str| -> Result<Option<String>> {
            Ok(conn
                .query_row(
                    "SELECT value FROM settings WHERE key = ?1",
                    [format!("{PREFIX}{k}")],
                    |r| r.get(0),
                )
                .optional()?)
        };
        let Some(host) = get("host")? else {
            return Ok(None);
        };
        let bad = |k: &str| Error::Integrity(format!("stored SMTP setting {k:?} is invalid"));
        let s = SmtpSettings {
            host,
            port: get("port")?
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad("port"))?,
            security: get("security")?
                .and_then(|p| SmtpSecurity::parse(&p).ok())
                .ok_or_else(|| bad("security"))?,
            from: get("from")?.ok_or_else(|| bad("from"))?,
            username: get("username")?,
        };
        Ok(Some(s))
    }
}

/// What the notification is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookingChange {
    New,
    Cancelled,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum NotifyOutcome {
    Sent {
        to: String,
    },
    /// No SMTP server set up, or the practitioner has no notification address.
    NotConfigured,
}

fn keyring(vault_id: &str) -> (SecretStore, String) {
    (
        SecretStore::new(KEYRING_SERVICE),
        format!("{vault_id}/smtp"),
    )
}

fn transport(s: &SmtpSettings, password: Option<SecretString>) -> Result<SmtpTransport> {
    let refused = |e: lettre::transport::smtp::Error| {
        Error::InvalidInput(format!("host: cannot use {} for SMTP: {e}", s.host))
    };
    let builder = match s.security {
        SmtpSecurity::StartTls => SmtpTransport::starttls_relay(&s.host).map_err(refused)?,
        SmtpSecurity::Tls => SmtpTransport::relay(&s.host).map_err(refused)?,
        SmtpSecurity::None => SmtpTransport::builder_dangerous(s.host.as_str()),
    };
    let mut builder = builder.port(s.port).timeout(Some(Duration::from_secs(20)));
    if let Some(user) = &s.username {
        let password = password.ok_or_else(|| {
            Error::InvalidInput(
                "the SMTP password is not in this computer's keyring; set it with `notify smtp-password`"
                    .into(),
            )
        })?;
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    Ok(builder.build())
}

fn save(tx: &Connection, key: String, value: Option<&str>, now: &str) -> Result<()> {
    match value {
        Some(v) => tx.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![key, v, now],
        )?,
        None => tx.execute("DELETE FROM settings WHERE key = ?1", [key])?,
    };
    Ok(())
}

impl Session {
    /// The clinic's mail server settings (administrators: they name the clinic's mail account).
    pub fn smtp_settings(&mut self) -> Result<Option<SmtpSettings>> {
        self.gate(
            Need::Permission(Permission::SettingsManage),
            Event::new("smtp.show"),
            |tx, _| SmtpSettings::load(tx),
        )
    }

    /// Sets the SMTP server (administrators).
    pub fn set_smtp(&mut self, s: &SmtpSettings) -> Result<()> {
        s.validate()?;
        let now = rfc3339(self.clock().now());
        let event = Event::new("smtp.set")
            .detail("host", s.host.as_str())
            .detail("security", s.security.as_str());
        let s = s.clone();
        self.gate(
            Need::Permission(Permission::SettingsManage),
            event,
            |tx, _| {
                save(tx, format!("{PREFIX}host"), Some(s.host.trim()), &now)?;
                save(tx, format!("{PREFIX}port"), Some(&s.port.to_string()), &now)?;
                save(
                    tx,
                    format!("{PREFIX}security"),
                    Some(s.security.as_str()),
                    &now,
                )?;
                save(tx, format!("{PREFIX}from"), Some(s.from.trim()), &now)?;
                save(tx, format!("{PREFIX}username"), s.username.as_deref(), &now)?;
                Ok(())
            },
        )
    }

    /// Keeps the SMTP password in this computer's OS keyring (administrators).
    pub fn set_smtp_password(&mut self, password: &SecretString) -> Result<()> {
        let vault_id = self.vault()?.vault_id().to_string();
        self.authorize(
            Need::Permission(Permission::SettingsManage),
            Event::new("smtp.password"),
        )?;
        let (store, account) = keyring(&vault_id);
        store
            .set(&account, password.expose_secret().as_bytes())
            .map_err(|e| Error::Internal(format!("cannot keep the SMTP password: {e}")))?;
        self.record(Event::new("smtp.password"))
    }

    /// Where a practitioner's booking notifications go (administrators); None stops them.
    pub fn set_notification_address(
        &mut self,
        practitioner: &str,
        email: Option<&str>,
    ) -> Result<()> {
        if let Some(e) = email {
            check_address("email", e.trim())?;
        }
        let now = rfc3339(self.clock().now());
        let event = Event::new("notify.address")
            .detail("practitioner", practitioner)
            .detail("set", email.is_some());
        self.gate(
            Need::Permission(Permission::SettingsManage),
            event,
            |tx, _| {
                let pr = crate::schedule::practitioner_by_username(tx, practitioner)?;
                save(
                    tx,
                    format!("{NOTIFY_PREFIX}{}", pr.id),
                    email.map(str::trim),
                    &now,
                )
            },
        )
    }

    /// The clinic's rule for when a practitioner hears of a booking, shared by every shell: one
    /// message per booking request (a weekly series is one message about its first
    /// appointment). `None` when the request booked nothing. The booking stands whatever the
    /// email's fate; the outcome is in the trail either way.
    pub fn notify_after_booking(
        &mut self,
        booked: &[Appointment],
    ) -> Option<Result<NotifyOutcome>> {
        let first = booked.first()?;
        Some(self.notify_booking(&first.id, BookingChange::New))
    }

    /// After a status change: only a cancellation is worth an email (arrivals, no-shows and
    /// completions are the clinic's own business).
    pub fn notify_after_status_change(
        &mut self,
        changed: &Appointment,
    ) -> Option<Result<NotifyOutcome>> {
        (changed.status == "cancelled")
            .then(|| self.notify_booking(&changed.id, BookingChange::Cancelled))
    }

    /// Emails the appointment's practitioner about a new booking or a cancellation.
    pub fn notify_booking(
        &mut self,
        appointment_id: &str,
        change: BookingChange,
    ) -> Result<NotifyOutcome> {
        let Some(smtp) = SmtpSettings::load(self.vault()?.conn())? else {
            return Ok(NotifyOutcome::NotConfigured);
        };
        let names = self.privacy_settings()?.emails;
        let tz = crate::appointments::clinic_tz(self);
        let vault_id = self.vault()?.vault_id().to_string();
        let password = if smtp.username.is_some() {
            let (store, account) = keyring(&vault_id);
            store
                .get(&account)
                .ok()
                .flatten()
                .and_then(|b| String::from_utf8(b.to_vec()).ok())
                .map(SecretString::from)
        } else {
            None
        };
        let event = Event::new("booking.notify")
            .target("appointment", appointment_id)
            .detail(
                "change",
                match change {
                    BookingChange::New => "new",
                    BookingChange::Cancelled => "cancelled",
                },
            );
        // Authorised first, sent outside any database transaction (a slow mail server must not
        // hold the vault's write lock), then recorded with its outcome.
        self.authorize(
            Need::Permission(Permission::AppointmentsRead),
            event.clone(),
        )?;
        let mut event = event;
        if let Some(patient) =
            crate::appointments::patient_of(self.vault()?.conn(), appointment_id)?
        {
            event.about_patient(&patient);
        }
        let prepared = prepare(
            self.vault()?.conn(),
            appointment_id,
            change,
            names,
            &tz,
            &smtp,
        );
        let (to, message) = match prepared {
            Ok(Some(m)) => m,
            Ok(None) => {
                self.record(event.detail("sent", false))?;
                return Ok(NotifyOutcome::NotConfigured);
            }
            Err(e) => {
                let _ = self.record(event.outcome(Outcome::Failed));
                return Err(e);
            }
        };
        let sent = transport(&smtp, password).and_then(|t| {
            t.send(&message)
                .map(|_| ())
                .map_err(|e| Error::Internal(format!("the notification email was not sent: {e}")))
        });
        match sent {
            Ok(()) => {
                self.record(event.detail("sent", true))?;
                Ok(NotifyOutcome::Sent { to })
            }
            Err(e) => {
                let _ = self.record(event.outcome(Outcome::Failed).detail("sent", false));
                Err(e)
            }
        }
    }
}

/// The practitioner's address and the message, or None when they have no address.
fn prepare(
    conn: &Connection,
    appointment_id: &str,
    change: BookingChange,
    names: crate::privacy_settings::NameDisplay,
    tz: &jiff::tz::TimeZone,
    smtp: &SmtpSettings,
) -> Result<Option<(String, Message)>> {
    let row: Option<(String, i64, i64, String, String, String)> = conn
        .query_row(
            "SELECT a.practitioner_id, a.starts_at, a.ends_at, p.first_name, p.last_name, t.name
             FROM appointments a JOIN patients p ON p.id = a.patient_id
             JOIN appointment_types t ON t.id = a.type_id WHERE a.id = ?1",
            [appointment_id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .optional()?;
    let Some((pr, starts, ends, first, last, kind)) = row else {
        return Err(Error::NotFound(format!(
            "no appointment with id {appointment_id}"
        )));
    };
    let to: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [format!("{NOTIFY_PREFIX}{pr}")],
            |r| r.get(0),
        )
        .optional()?;
    let Some(to) = to else {
        return Ok(None);
    };
    let local = |s: i64, fmt: &str| {
        jiff::Timestamp::from_second(s)
            .map(|t| t.to_zoned(tz.clone()).strftime(fmt).to_string())
            .unwrap_or_default()
    };
    let when = local(starts, "%a %-d %b %Y %H:%M");
    let subject = match change {
        BookingChange::New => format!("New booking: {when}"),
        BookingChange::Cancelled => format!("Cancelled: {when}"),
    };
    let body = format!(
        "{subject}\r\n\r\nPatient: {}\r\nAppointment: {kind}\r\nWhen: {when} to {} ({})\r\n\r\nSent by ClinVault.\r\n",
        names.show(&first, &last),
        local(ends, "%H:%M"),
        tz.iana_name().unwrap_or("clinic time"),
    );
    let bad_addr = |f: &str| Error::InvalidInput(format!("{f}: not an email address"));
    let message = Message::builder()
        .from(smtp.from.parse().map_err(|_| bad_addr("from"))?)
        .to(to.parse().map_err(|_| bad_addr("notification address"))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| Error::Internal(format!("cannot build the email: {e}")))?;
    Ok(Some((to, message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_smtp_only_to_this_computer() {
        let mut s = SmtpSettings {
            host: "mail.example.org".into(),
            port: 25,
            security: SmtpSecurity::None,
            from: "clinic@example.org".into(),
            username: None,
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("only to localhost"));
        s.host = "127.0.0.1".into();
        s.validate().unwrap();
        s.security = SmtpSecurity::StartTls;
        s.host = "mail.example.org".into();
        s.validate().unwrap();
        s.from = "not an address".into();
        assert!(s.validate().is_err());
        assert!(SmtpSecurity::parse("ssl3").is_err());
    }
}
