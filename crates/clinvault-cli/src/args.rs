//! The command line, as clap definitions. Names, options and environment variables here are a
//! contract other tools rely on.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "clinvault",
    version,
    about = "ClinVault: an encrypted practice vault for clinics"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct Global {
    /// Vault directory (default: the platform data directory)
    #[arg(long, global = true, env = "CLINVAULT_VAULT", value_name = "DIR")]
    pub vault: Option<PathBuf>,
    /// Username to act as (else env CLINVAULT_USER, else a prompt). In `practitioner add` it
    /// names the practitioner instead, and the acting user comes from CLINVAULT_USER.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// Read the passphrase from this file (else env CLINVAULT_PASSPHRASE, else a prompt)
    #[arg(long, global = true, value_name = "PATH")]
    pub passphrase_file: Option<PathBuf>,
    /// Authenticator or recovery code, when your account has two-factor sign-in
    #[arg(
        long,
        global = true,
        env = "CLINVAULT_TOTP",
        value_name = "CODE",
        hide_env_values = true
    )]
    pub totp: Option<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a new vault with its first administrator
    Init {
        #[arg(long, value_name = "NAME")]
        admin: String,
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
        /// Also write the recovery key to this new file
        #[arg(long, value_name = "PATH")]
        recovery_key_file: Option<PathBuf>,
    },
    /// Show the vault without unlocking it
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Show who you are signed in as
    Whoami {
        #[arg(long)]
        json: bool,
    },
    /// Change your passphrase (new one from CLINVAULT_NEW_PASSPHRASE or a prompt)
    Passphrase {
        #[command(subcommand)]
        action: PassphraseAction,
    },
    /// Set a new administrator passphrase using the recovery key
    Recover {
        #[arg(long, value_name = "PATH")]
        recovery_key_file: PathBuf,
        #[arg(long, value_name = "NAME")]
        admin: String,
    },
    /// Users, their roles and two-factor sign-in
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Roles and their permissions
    Role {
        #[command(subcommand)]
        action: RoleAction,
    },
    /// The clinic's security policy
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Patients: add, show, update, search, list
    Patient {
        #[command(subcommand)]
        action: PatientAction,
    },
    /// Privacy settings: patient names in titles, calendars and emails; anonymisation
    Privacy {
        #[command(subcommand)]
        action: PrivacyAction,
    },
    /// Calendar files for phones and calendar apps (patients shown as the privacy setting says)
    Calendar {
        #[command(subcommand)]
        action: CalendarAction,
    },
    /// Booking notification emails to practitioners (SMTP)
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// Retention schedules: jurisdiction presets, periods, and the run that removes what is due
    Retention {
        #[command(subcommand)]
        action: RetentionAction,
    },
    /// Practitioners and their working hours
    Practitioner {
        #[command(subcommand)]
        action: PractitionerAction,
    },
    /// Appointment types (name, length, price)
    #[command(name = "appointment-type")]
    AppointmentType {
        #[command(subcommand)]
        action: AppointmentTypeAction,
    },
    /// Appointments: book, list a day, change status
    Appointment {
        #[command(subcommand)]
        action: AppointmentAction,
    },
    /// Treatment notes: add a draft, finalise, amend, show
    Note {
        #[command(subcommand)]
        action: NoteAction,
    },
    /// Invoices and payments
    Invoice {
        #[command(subcommand)]
        action: InvoiceAction,
    },
    /// Financial reports
    Report {
        #[command(subcommand)]
        action: ReportAction,
    },
    /// Patient attachments, stored encrypted inside the vault
    Attachment {
        #[command(subcommand)]
        action: AttachmentAction,
    },
    /// Encrypted single-file backups: export, verify, restore into a new folder
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Fill an empty vault with a synthetic clinic (deterministic for a seed)
    Demo {
        #[arg(long)]
        patients: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The audit trail: verify, review, export, alerts, retention
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Encrypted, incremental snapshots to a folder, SFTP, WebDAV or S3 target
    Sync {
        #[command(subcommand)]
        action: crate::sync_args::SyncAction,
    },
    /// Key management
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
}

#[derive(Subcommand)]
pub enum PassphraseAction {
    /// Change the passphrase of the signed-in user
    Change,
}

#[derive(Subcommand)]
pub enum UserAction {
    /// Add a user (initial passphrase from CLINVAULT_NEW_PASSPHRASE or a prompt)
    Add {
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
    },
    /// List users
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change a user's role
    SetRole { name: String, role: String },
    /// Disable a user: their key slot is removed and the vault keys rotated
    Disable { name: String },
    /// Enable a user again with a new initial passphrase (CLINVAULT_NEW_PASSPHRASE or a prompt)
    Enable { name: String },
    /// Sign-in history (all users, or one)
    History {
        name: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Two-factor sign-in (TOTP)
    #[command(name = "2fa")]
    TwoFactor {
        #[command(subcommand)]
        action: TwoFactorAction,
    },
}

#[derive(Subcommand)]
pub enum TwoFactorAction {
    /// Start enrolment: prints the otpauth:// URI for your authenticator app
    Enroll {
        /// Also write the QR code as a PNG to this new file
        #[arg(long, value_name = "PATH")]
        qr: Option<PathBuf>,
    },
    /// Finish enrolment with a code from the app; prints your recovery codes
    Confirm { code: String },
    /// Replace your recovery codes
    RecoveryCodes,
    /// Turn a user's two-factor sign-in off so they can enrol again (administrators)
    Reset { name: String },
}

#[derive(Subcommand)]
pub enum RoleAction {
    /// List roles and their permissions
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create a custom role from permissions (comma-separated)
    Create {
        name: String,
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum PolicyAction {
    /// Show every policy setting
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change one setting, e.g. `policy set require-2fa.practitioner on`
    Set { key: String, value: String },
}

#[derive(Subcommand)]
pub enum KeyAction {
    /// Print the raw SQLCipher key in hex (administrators; re-authentication required)
    ExportDbKey {
        #[arg(long)]
        json: bool,
    },
    /// Replace the master key and re-key the database
    Rotate,
}

#[derive(Subcommand)]
pub enum AuditAction {
    /// Check every entry; exit 5 and the first bad entry when the trail was tampered with
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Entries, newest first, filtered
    List {
        /// Acting username
        #[arg(long)]
        user: Option<String>,
        /// An action, or a prefix ending in '.' (e.g. "user.")
        #[arg(long)]
        action: Option<String>,
        /// Entries about one patient (by id): their record, notes, appointments, invoices and
        /// attachments
        #[arg(long, value_name = "ID")]
        patient: Option<String>,
        /// ok, denied or failed
        #[arg(long)]
        outcome: Option<String>,
        /// From this date (YYYY-MM-DD) or time (2026-03-01T09:00), on the clinic's clock unless
        /// the time carries an offset or Z; inclusive
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Up to this date or time, exclusive
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// At most this many entries (default: 100 listed; every matching entry with --json
        /// or --csv)
        #[arg(long)]
        limit: Option<u32>,
        /// Only entries older than this sequence number (next page)
        #[arg(long, value_name = "SEQ")]
        before_seq: Option<i64>,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
    /// Alerts waiting for acknowledgement
    Alerts {
        #[arg(long)]
        json: bool,
        /// Include acknowledged alerts
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge an alert
    Ack { id: i64 },
    /// Remove entries older than DATE (never younger than the retention period)
    Prune {
        #[arg(long, value_name = "DATE")]
        before: String,
    },
    /// After a deliberate restore on this machine: anchor the trail as it now is, replacing the
    /// checkpoint that still vouches for the trail as it was (recorded in the trail)
    Reanchor,
}

/// Demographic fields settable from the command line (others come with the desktop app).
#[derive(Args, Clone, Default)]
pub struct PatientFieldArgs {
    #[arg(long)]
    pub first: Option<String>,
    #[arg(long)]
    pub last: Option<String>,
    /// Date of birth, YYYY-MM-DD
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub dob: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub phone: Option<String>,
}

#[derive(Subcommand)]
pub enum PatientAction {
    /// Add a patient; prints the new id
    Add {
        #[command(flatten)]
        fields: PatientFieldArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show one patient
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Change some fields of a patient (every change is kept in the patient's history)
    Update {
        id: String,
        #[command(flatten)]
        fields: PatientFieldArgs,
        /// The correction was asked for by the patient: their request, kept with the history
        #[arg(long, value_name = "TEXT")]
        requested_by_patient: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Every change of the patient's fields: who, when, old and new value, the patient's request
    History {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Consents and the lawful basis for processing
    Consent {
        #[command(subcommand)]
        action: ConsentAction,
    },
    /// Place a legal hold: nothing about the patient is deleted or anonymised until released
    Hold {
        id: String,
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Release the patient's legal hold
    ReleaseHold {
        id: String,
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// List the patient's legal holds, active and released
    Holds {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Write everything held about the patient (FHIR R4 bundle, plain JSON, readable HTML,
    /// attachments) into a new or empty folder (administrators)
    Export {
        id: String,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Erase the patient's identity and clinical content, keeping invoices under a pseudonym
    /// (administrators; irreversible; asks for the id again unless --confirm repeats it)
    Anonymise {
        id: String,
        /// The patient's id again, to confirm
        #[arg(long, value_name = "ID")]
        confirm: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Find patients by any part of name, phone, email or date of birth
    Search {
        query: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// List patients
    List {
        #[arg(long)]
        archived: bool,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ConsentAction {
    /// List a patient's consents, withdrawn ones included
    List {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Record a consent or lawful basis: kinds processing (with --basis), treatment, email, sms,
    /// phone, research, sharing
    Give {
        id: String,
        #[arg(long)]
        kind: String,
        /// For kind processing: gdpr-6.1.a … gdpr-6.1.f, gdpr-9.2.a/c/h/i, hipaa-tpo, app-3, other
        #[arg(long)]
        basis: Option<String>,
        #[arg(long)]
        note: Option<String>,
        /// Date given, YYYY-MM-DD (default today)
        #[arg(long, value_name = "YYYY-MM-DD")]
        on: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Record that a consent was withdrawn
    Withdraw {
        consent_id: String,
        /// Date withdrawn, YYYY-MM-DD (default today)
        #[arg(long, value_name = "YYYY-MM-DD")]
        on: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum PrivacyAction {
    /// Show the privacy settings
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change one: window-titles|calendar|emails hidden|initials|full;
    /// anonymise-keep-birth-year on|off
    Set { key: String, value: String },
}

#[derive(Subcommand)]
pub enum CalendarAction {
    /// Write a practitioner's appointments as an iCalendar (.ics) file
    Export {
        #[arg(long, value_name = "NAME")]
        practitioner: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: String,
        /// A new file (an existing one is not overwritten)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum NotifyAction {
    /// Set the SMTP server (STARTTLS or TLS; unencrypted only to localhost)
    Smtp {
        #[arg(long)]
        host: String,
        #[arg(long, default_value_t = 587)]
        port: u16,
        /// starttls, tls or none
        #[arg(long, default_value = "starttls")]
        security: String,
        /// Sender address
        #[arg(long)]
        from: String,
        /// Sign in as this user; the password goes in the OS keyring (`notify smtp-password`)
        #[arg(long)]
        username: Option<String>,
    },
    /// Keep the SMTP password in this computer's OS keyring (from CLINVAULT_SMTP_PASSWORD or a
    /// prompt)
    SmtpPassword,
    /// Where a practitioner's booking notifications go
    Address {
        practitioner: String,
        #[arg(required_unless_present = "off")]
        email: Option<String>,
        /// Stop notifications for this practitioner
        #[arg(long, conflicts_with = "email")]
        off: bool,
    },
    /// Show the SMTP set-up
    Show {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum RetentionAction {
    /// Show the clinic's schedule
    Show {
        #[arg(long)]
        json: bool,
    },
    /// List the jurisdiction presets with their sources
    Presets {
        #[arg(long)]
        json: bool,
    },
    /// Adopt a preset: australia, united-kingdom, united-states, european-union
    SetPreset { name: String },
    /// Adjust one period: clinical-years, majority-age, minor-years-after-majority,
    /// financial-years, audit-years
    Set { key: String, value: String },
    /// Anonymise or delete what is due (patients under a legal hold are skipped)
    Run {
        /// Only list what is due (ids and counts, no names)
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum PractitionerAction {
    /// Make a user bookable as a practitioner: `practitioner add --user NAME`
    Add,
    /// Record time away (local clinic times); bookings avoid it
    TimeOff {
        name: String,
        #[arg(long, value_name = "YYYY-MM-DDTHH:MM")]
        from: String,
        #[arg(long, value_name = "YYYY-MM-DDTHH:MM")]
        to: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Set hours for a weekday, e.g. `hours sam Mon 09:00-12:30,13:30-17:00` (or `off`)
    Hours {
        name: String,
        day: String,
        hours: String,
    },
}

#[derive(Subcommand)]
pub enum AppointmentTypeAction {
    /// Add an appointment type
    Add {
        name: String,
        #[arg(long)]
        minutes: i64,
        /// Default price, e.g. 85.00
        #[arg(long)]
        price: String,
        /// Tax rate in percent, e.g. 10
        #[arg(long)]
        tax: Option<String>,
        /// Calendar colour, e.g. #3b82f6
        #[arg(long)]
        colour: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum AppointmentAction {
    /// Book an appointment (local clinic time); prints the new id(s)
    Add {
        #[arg(long, value_name = "ID")]
        patient: String,
        #[arg(long, value_name = "NAME")]
        practitioner: String,
        #[arg(long = "type", value_name = "NAME")]
        appointment_type: String,
        /// YYYY-MM-DDTHH:MM in the clinic's time zone
        #[arg(long, value_name = "YYYY-MM-DDTHH:MM")]
        start: String,
        /// Book this many weekly occurrences
        #[arg(long, default_value_t = 1, value_name = "N")]
        repeat_weekly: u32,
        /// Book even over another booking or outside working hours (needs the permission)
        #[arg(long)]
        r#override: bool,
        #[arg(long)]
        json: bool,
    },
    /// The next free starts for a type with a practitioner
    Free {
        #[arg(long, value_name = "NAME")]
        practitioner: String,
        #[arg(long = "type", value_name = "NAME")]
        appointment_type: String,
        #[arg(long, value_name = "YYYY-MM-DDTHH:MM")]
        from: String,
        #[arg(long, default_value_t = 5)]
        count: usize,
        #[arg(long)]
        json: bool,
    },
    /// A day's appointments
    List {
        #[arg(long, value_name = "YYYY-MM-DD")]
        day: String,
        #[arg(long, value_name = "NAME")]
        practitioner: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change status: booked, arrived, completed, cancelled (with --reason), no-show
    Status {
        id: String,
        status: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum NoteAction {
    /// Start a draft note from a text file; prints the note id
    Add {
        #[arg(long, value_name = "ID")]
        patient: String,
        #[arg(long, value_name = "ID")]
        appointment: Option<String>,
        #[arg(long, value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// Finalise a draft (its own practitioner only); it cannot change afterwards
    Finalize { id: String },
    /// Amend a final note with the full new text and a reason
    Amend {
        id: String,
        #[arg(long, value_name = "FILE")]
        file: std::path::PathBuf,
        #[arg(long)]
        reason: String,
    },
    /// Show a note with all its versions
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum InvoiceAction {
    /// Invoice an appointment at its type's price; prints the invoice id
    Create {
        #[arg(long, value_name = "ID")]
        appointment: String,
    },
    /// Record a payment, e.g. `invoice pay ID --amount 50.00 --method card`
    Pay {
        id: String,
        #[arg(long)]
        amount: String,
        #[arg(long)]
        method: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
    },
    /// Void an unpaid invoice (it keeps its number)
    Void {
        id: String,
        #[arg(long)]
        reason: String,
    },
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Invoices with a balance
    Outstanding {
        #[arg(long)]
        json: bool,
    },
    /// Save the invoice as a PDF to a new file you choose
    Pdf {
        id: String,
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ReportAction {
    /// Revenue by practitioner and appointment type for issued invoices in [from, to]
    Revenue {
        #[arg(long, value_name = "YYYY-MM-DD")]
        from: String,
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AttachmentAction {
    /// Attach a file to a patient; prints the attachment id
    Add {
        #[arg(long, value_name = "ID")]
        patient: String,
        file: std::path::PathBuf,
    },
    /// Save a copy of an attachment to a new file you choose
    Get {
        id: String,
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
pub enum BackupAction {
    /// Write the whole vault to one encrypted file (sealed to the recovery key and, with
    /// CLINVAULT_BACKUP_PASSPHRASE or --with-passphrase, to a backup passphrase)
    Export {
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
        /// Ask for a backup passphrase (unless CLINVAULT_BACKUP_PASSPHRASE is set)
        #[arg(long)]
        with_passphrase: bool,
        #[arg(long)]
        json: bool,
    },
    /// Decrypt and check a backup (database, audit trail, attachments) without restoring it
    Verify {
        file: std::path::PathBuf,
        /// Open with the recovery key in this file (else the backup passphrase)
        #[arg(long, value_name = "PATH")]
        recovery_key_file: Option<std::path::PathBuf>,
        /// Also, signed in to the vault the backup was made from (administrators), check that
        /// its audit trail still holds what the backup's trail ended with; recorded in the
        /// trail, exit 5 when it does not
        #[arg(long)]
        against_vault: bool,
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into a new folder (never over an existing vault)
    Restore {
        file: std::path::PathBuf,
        #[arg(long, value_name = "DIR")]
        to: std::path::PathBuf,
        /// Open with the recovery key in this file (else the backup passphrase)
        #[arg(long, value_name = "PATH")]
        recovery_key_file: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
}
