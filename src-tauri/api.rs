//! What crosses the IPC boundary: request and reply types of the commands, and the error shape.
//! TypeScript declarations for all of them are generated from these definitions (ts-rs) into
//! `ui/src/lib/bindings.ts`; a test fails when that file is out of date, so the two sides cannot
//! drift. Passphrases arrive as `SecretString`; the only secrets that ever travel the other way
//! are those the person must see once (recovery key, authenticator secret, recovery codes), in
//! `Shown`, which wipes its copy when dropped.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use zeroize::Zeroizing;

/// The stable classification of a failure; the UI branches on it (mirrors the core's `ErrorKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidInput,
    Authentication,
    PermissionDenied,
    SessionLocked,
    Integrity,
    NotFound,
    AlreadyExists,
    Conflict,
    Busy,
    Incompatible,
    Io,
    Internal,
}

/// Every command's error: a stable kind and a message a person can act on (never a secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

/// A secret shown to the person once (and then wiped from this process).
pub struct Shown(pub Zeroizing<String>);

impl Serialize for Shown {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct VaultInfo {
    pub path: String,
    pub exists: bool,
    /// Set by CLINVAULT_VAULT: the first-run screen cannot choose another place.
    pub fixed: bool,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct SessionInfo {
    pub username: String,
    pub display_name: String,
    pub role: String,
    /// The role's permissions, to shape menus; the core still checks every operation.
    pub permissions: Vec<String>,
    pub must_enrol_2fa: bool,
    pub two_factor: bool,
    pub idle_lock_minutes: u32,
    pub notices: Vec<String>,
}

/// Where the app is: which screen the UI shows follows from this alone.
#[derive(Clone, Debug, Serialize, TS)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    NoVault,
    SignedOut,
    SecondFactor {
        username: String,
    },
    Locked {
        username: String,
        display_name: String,
    },
    Active {
        session: SessionInfo,
    },
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct AppStatus {
    pub vault: VaultInfo,
    pub stage: Stage,
}

#[derive(Deserialize, TS)]
pub struct CreateVault {
    /// A folder for the vault; None keeps the default.
    pub location: Option<String>,
    pub username: String,
    pub display_name: Option<String>,
    #[ts(type = "string")]
    pub passphrase: SecretString,
}

#[derive(Serialize, TS)]
pub struct VaultCreated {
    /// Shown once; the UI asks for "I have saved it" before moving on.
    #[ts(type = "string")]
    pub recovery_key: Shown,
    pub status: AppStatus,
}

#[derive(Deserialize, TS)]
pub struct SignInRequest {
    pub username: String,
    #[ts(type = "string")]
    pub passphrase: SecretString,
}

#[derive(Deserialize, TS)]
pub struct SecondFactor {
    /// An authenticator code or a recovery code.
    pub code: String,
    pub remember_device: bool,
}

#[derive(Deserialize, TS)]
pub struct Unlock {
    #[ts(type = "string")]
    pub passphrase: SecretString,
}

#[derive(Deserialize, TS)]
pub struct StrengthRequest {
    #[ts(type = "string")]
    pub passphrase: SecretString,
    pub username: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Strength {
    /// 0 (trivial) to 4 (strong).
    pub score: u8,
    pub acceptable: bool,
    pub reason: Option<String>,
    pub min_length: u32,
}

#[derive(Serialize, TS)]
pub struct Enrolment {
    #[ts(type = "string")]
    pub otpauth_uri: Shown,
    #[ts(type = "string")]
    pub secret_base32: Shown,
    /// The same URI as a QR code, a PNG in base64.
    pub qr_png_base64: String,
}

#[derive(Deserialize, TS)]
pub struct Code {
    pub code: String,
}

#[derive(Serialize, TS)]
pub struct RecoveryCodes {
    #[ts(type = "Array<string>")]
    pub codes: Vec<Shown>,
}

#[derive(Deserialize, TS)]
pub struct ChangePassphrase {
    #[ts(type = "string")]
    pub current: SecretString,
    #[ts(type = "string")]
    pub new: SecretString,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct UserRow {
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub status: String,
    pub created_at: String,
    pub two_factor: bool,
}

#[derive(Deserialize, TS)]
pub struct AddUser {
    pub username: String,
    pub display_name: Option<String>,
    pub role: String,
    /// The initial passphrase, which the person changes at first use.
    #[ts(type = "string")]
    pub passphrase: SecretString,
}

#[derive(Deserialize, TS)]
pub struct EnableUser {
    pub username: String,
    #[ts(type = "string")]
    pub passphrase: SecretString,
}

#[derive(Deserialize, TS)]
pub struct UserRef {
    pub username: String,
}

#[derive(Deserialize, TS)]
pub struct SetRole {
    pub username: String,
    pub role: String,
}

#[derive(Deserialize, TS)]
pub struct HistoryRequest {
    pub username: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct SignInRow {
    pub username: String,
    pub at: String,
    pub device: String,
    pub outcome: String,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct RoleRow {
    pub name: String,
    pub builtin: bool,
    pub permissions: Vec<String>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct PermissionRow {
    pub name: String,
    pub description: String,
    pub admin_only: bool,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct RolesMatrix {
    pub roles: Vec<RoleRow>,
    pub permissions: Vec<PermissionRow>,
}

#[derive(Deserialize, TS)]
pub struct CreateRole {
    pub name: String,
    pub permissions: Vec<String>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct PolicyEntry {
    pub key: String,
    pub value: String,
}

#[derive(Deserialize, TS)]
pub struct SetPolicy {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Rotated {
    pub key_epoch: u64,
}

/// Every editable patient field; None (or empty text) leaves a field as it is. The core
/// validates and names the field in its message ("date_of_birth: …"), which the form shows
/// beside that field.
#[derive(Clone, Debug, Default, Deserialize, Serialize, TS)]
pub struct PatientForm {
    pub title: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub preferred_name: Option<String>,
    pub date_of_birth: Option<String>,
    pub sex: Option<String>,
    pub gender_identity: Option<String>,
    pub phone: Option<String>,
    pub phone_alt: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub emergency_contact: Option<String>,
    pub insurance_number: Option<String>,
    pub referral_source: Option<String>,
    pub occupation: Option<String>,
    pub general_notes: Option<String>,
    pub archived: Option<bool>,
}

#[derive(Deserialize, TS)]
pub struct PatientSearch {
    pub text: String,
    pub limit: Option<u32>,
}

#[derive(Deserialize, TS)]
pub struct PatientList {
    pub archived: bool,
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct PatientRow {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub preferred_name: Option<String>,
    pub date_of_birth: Option<String>,
    pub phone: Option<String>,
    pub archived: bool,
}

#[derive(Deserialize, TS)]
pub struct PatientRef {
    pub id: String,
}

#[derive(Deserialize, TS)]
pub struct UpdatePatient {
    pub id: String,
    pub fields: PatientForm,
    /// Set when the patient asked for the correction (kept in the rectification history).
    pub requested_by_patient: Option<String>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct PatientRecord {
    pub id: String,
    pub fields: PatientForm,
    pub created_at: String,
    pub updated_at: String,
    pub anonymised: bool,
    /// The window title the shell set for this record (names only as the privacy setting allows).
    pub window_title: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct AppointmentRow {
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub practitioner: String,
    pub appointment_type: String,
    /// Local clinic time, YYYY-MM-DDTHH:MM.
    pub starts_local: String,
    pub ends_local: String,
    pub status: String,
    pub cancel_reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct NoteRow {
    pub id: String,
    pub appointment_id: Option<String>,
    pub practitioner: String,
    pub status: String,
    pub created_at: String,
    pub finalised_at: Option<String>,
    pub versions: i64,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct InvoiceRow {
    pub id: String,
    pub number: Option<i64>,
    pub appointment_id: Option<String>,
    pub status: String,
    pub issued_on: Option<String>,
    /// Amounts in the currency's minor unit (cents).
    pub total_minor: i64,
    pub paid_minor: i64,
    pub balance_minor: i64,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct AttachmentRow {
    pub id: String,
    pub file_name: String,
    pub media_type: String,
    pub size: i64,
    pub created_at: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct Balance {
    /// What the patient owes across issued invoices, in minor units.
    pub balance_minor: i64,
}

#[derive(Deserialize, TS)]
pub struct ScreenTitle {
    pub screen: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct WorkingSpanRow {
    /// 1 = Monday … 7 = Sunday.
    pub weekday: i64,
    /// HH:MM, local clinic time.
    pub starts: String,
    pub ends: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct PractitionerColumn {
    pub username: String,
    pub display_name: String,
    pub hours: Vec<WorkingSpanRow>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct AppointmentTypeRow {
    pub name: String,
    pub minutes: i64,
    pub colour: Option<String>,
}

#[derive(Deserialize, TS)]
pub struct CalendarRange {
    /// The first local day, YYYY-MM-DD.
    pub date: String,
    /// One practitioner's username, or None for all.
    pub practitioner: Option<String>,
}

#[derive(Deserialize, TS)]
pub struct BookRequest {
    pub patient_id: String,
    pub practitioner: String,
    pub appointment_type: String,
    /// Local clinic time, YYYY-MM-DDTHH:MM.
    pub start_local: String,
    /// None or 1 for one booking; N for N weekly occurrences.
    pub weekly_occurrences: Option<u32>,
    pub allow_override: bool,
}

#[derive(Deserialize, TS)]
pub struct MoveRequest {
    pub id: String,
    /// Local clinic time, YYYY-MM-DDTHH:MM.
    pub start_local: String,
    /// Another practitioner's column, or None to stay.
    pub practitioner: Option<String>,
    pub allow_override: bool,
}

#[derive(Deserialize, TS)]
pub struct StatusRequest {
    pub id: String,
    /// booked, arrived, completed, cancelled or no_show.
    pub status: String,
    /// Needed for a cancellation.
    pub reason: Option<String>,
}

// --- Calendar: resize and time off ---

#[derive(Deserialize, TS)]
pub struct ResizeRequest {
    pub id: String,
    /// The new end, local clinic time, YYYY-MM-DDTHH:MM (the start stays).
    pub end_local: String,
    pub allow_override: bool,
}

#[derive(Deserialize, TS)]
pub struct TimeOffRange {
    /// The first local day, YYYY-MM-DD.
    pub date: String,
    /// How many days (1 for a day view, 7 for a week).
    pub days: u32,
    /// One practitioner's username, or None for all.
    pub practitioner: Option<String>,
}

/// One recorded time off, to remove.
#[derive(Deserialize, TS)]
pub struct TimeOffRef {
    pub id: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct TimeOffRow {
    pub id: String,
    pub practitioner: String,
    /// Local clinic time, YYYY-MM-DDTHH:MM.
    pub starts_local: String,
    pub ends_local: String,
    /// Only for administrators (the core withholds it from others).
    pub reason: Option<String>,
    /// Appointments still booked (or arrived) inside it.
    pub booked_inside: u32,
}

#[derive(Deserialize, TS)]
pub struct NewTimeOff {
    pub practitioner: String,
    /// Local clinic time, YYYY-MM-DDTHH:MM.
    pub from_local: String,
    pub to_local: String,
    pub reason: Option<String>,
    /// Record it even though appointments are still booked inside (the person was told how
    /// many and chose to); without it such time off is refused with that count.
    pub allow_booked: bool,
}

// --- end calendar: resize and time off ---

#[derive(Deserialize, TS)]
pub struct WorkingHours {
    pub username: String,
    /// Mon … Sun.
    pub day: String,
    /// "08:00-12:00,13:00-17:00", or "off".
    pub hours: String,
}

#[derive(Deserialize, TS)]
pub struct NewAppointmentType {
    pub name: String,
    pub minutes: i64,
    /// Decimal text, e.g. "75.00".
    pub price: String,
    pub tax_rate_percent: Option<String>,
}

#[derive(Deserialize, TS)]
pub struct NameRef {
    pub name: String,
}

#[derive(Deserialize, TS)]
pub struct NewTemplate {
    pub name: String,
    /// Section titles; each becomes a free-text section.
    pub sections: Vec<String>,
}

#[derive(Deserialize, TS)]
pub struct NewNote {
    pub patient_id: String,
    pub appointment_id: Option<String>,
    pub body: String,
}

#[derive(Deserialize, TS)]
pub struct NoteRef {
    pub id: String,
}

#[derive(Deserialize, TS)]
pub struct NoteText {
    pub id: String,
    pub body: String,
}

#[derive(Deserialize, TS)]
pub struct Amendment {
    pub id: String,
    pub body: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct NoteVersionRow {
    pub version: i64,
    /// draft, final or amendment.
    pub kind: String,
    pub body: String,
    pub reason: Option<String>,
    pub created_at: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct NoteView {
    pub id: String,
    pub patient_id: String,
    pub appointment_id: Option<String>,
    pub practitioner: String,
    pub status: String,
    pub created_at: String,
    pub finalised_at: Option<String>,
    /// Oldest first; the last is the current text.
    pub versions: Vec<NoteVersionRow>,
}

#[derive(Deserialize, TS)]
pub struct AppointmentRef {
    pub appointment_id: String,
}

#[derive(Deserialize, TS)]
pub struct InvoiceRef {
    pub id: String,
}

#[derive(Deserialize, TS)]
pub struct Payment {
    pub invoice_id: String,
    /// Decimal text, e.g. "75.00".
    pub amount: String,
    /// cash, card, eftpos, transfer, insurance or other.
    pub method: String,
    /// YYYY-MM-DD; None for today.
    pub paid_on: Option<String>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct InvoiceLineRow {
    pub description: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub tax_rate_bp: i64,
    pub net_minor: i64,
    pub tax_minor: i64,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct InvoiceView {
    pub id: String,
    pub number: Option<i64>,
    pub patient_id: String,
    pub appointment_id: Option<String>,
    pub status: String,
    pub issued_on: Option<String>,
    pub lines: Vec<InvoiceLineRow>,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub paid_minor: i64,
    pub balance_minor: i64,
    pub void_reason: Option<String>,
}

#[derive(Deserialize, TS)]
pub struct NewAttachment {
    pub patient_id: String,
    pub file_name: String,
    /// The file's bytes in base64, read in the webview from the file the person picked.
    pub content_base64: String,
}

#[derive(Deserialize, TS)]
pub struct AttachmentRef {
    pub id: String,
}

#[derive(Deserialize, TS)]
pub struct AuditQuery {
    /// Username of the actor.
    pub user: Option<String>,
    /// An exact action, or a prefix ending in '.' (e.g. "patient.").
    pub action: Option<String>,
    /// A patient's id: entries whose target is that patient.
    pub patient_id: Option<String>,
    pub outcome: Option<String>,
    /// YYYY-MM-DD or YYYY-MM-DD HH:MM on the clinic's clock, or RFC 3339; inclusive.
    pub since: Option<String>,
    /// Exclusive.
    pub until: Option<String>,
    pub before_seq: Option<i64>,
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor_name: String,
    pub device: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    /// The entry's details as JSON text (field names and counts, never patient data).
    pub details: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct VerifyResult {
    pub intact: bool,
    pub entries_checked: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub problem: Option<String>,
    pub checkpoint: String,
}

/// What anchoring the trail anew replaced, and where the trail is anchored now.
#[derive(Clone, Debug, Serialize, TS)]
pub struct Reanchored {
    pub replaced_size: i64,
    pub anchored_at: i64,
}

#[derive(Deserialize, TS)]
pub struct AlertsQuery {
    pub include_acknowledged: bool,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct AlertRow {
    pub id: i64,
    pub rule: String,
    pub raised_at: String,
    pub actor_name: Option<String>,
    pub summary: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
}

#[derive(Deserialize, TS)]
pub struct AlertRef {
    pub id: i64,
}

#[derive(Deserialize, TS)]
pub struct ExportBackup {
    /// A full path for the new backup file (which must not exist yet), chosen by the person.
    pub path: String,
    /// An optional backup passphrase; without one, the recovery key opens the backup.
    #[ts(type = "string | null")]
    pub passphrase: Option<SecretString>,
}

/// How far an export or verification has got (sent on a channel while it runs).
#[derive(Clone, Debug, Serialize, TS)]
pub struct BackupProgress {
    #[ts(type = "number")]
    pub done: u64,
    #[ts(type = "number")]
    pub total: u64,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct BackupReport {
    pub path: String,
    pub backup_id: String,
    #[ts(type = "number")]
    pub bytes: u64,
    pub patients: i64,
    #[ts(type = "number")]
    pub attachments: u64,
    #[ts(type = "number")]
    pub audit_entries: u64,
    pub with_passphrase: bool,
}

#[derive(Deserialize, TS)]
pub struct VerifyBackup {
    pub path: String,
    /// For a restore: a new folder (which must not exist) to restore the vault into; None to
    /// only verify.
    pub restore_to: Option<String>,
    /// The backup passphrase, or None to use the recovery key.
    #[ts(type = "string | null")]
    pub passphrase: Option<SecretString>,
    #[ts(type = "string | null")]
    pub recovery_key: Option<SecretString>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct BackupCheckResult {
    pub backup_id: String,
    pub created_at: String,
    pub patients: i64,
    pub attachments: i64,
    #[ts(type = "number")]
    pub audit_entries: u64,
    pub audit_intact: bool,
    /// Whether this vault's audit trail still holds what the backup's trail ended with (null
    /// for a restore, or a backup of another vault); false raises an alert for administrators.
    #[ts(type = "boolean | null")]
    pub trail_holds_backup: Option<bool>,
}

#[derive(Deserialize, TS)]
pub struct AuditCsv {
    pub query: AuditQuery,
    /// A full path for a new file.
    pub path: String,
}

#[derive(Deserialize, TS)]
pub struct VoidInvoice {
    pub id: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct ConsentRow {
    pub id: String,
    pub kind: String,
    pub basis: Option<String>,
    pub note: Option<String>,
    pub given_on: String,
    pub recorded_by: String,
    pub withdrawn_on: Option<String>,
}

#[derive(Deserialize, TS)]
pub struct NewConsentRequest {
    pub patient_id: String,
    pub kind: String,
    pub basis: Option<String>,
    pub note: Option<String>,
    /// YYYY-MM-DD; None for today.
    pub given_on: Option<String>,
}

#[derive(Deserialize, TS)]
pub struct WithdrawConsent {
    pub id: String,
    /// YYYY-MM-DD; None for today.
    pub on: Option<String>,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct ConsentChoice {
    pub name: String,
    pub description: String,
}

/// The kinds of consent and lawful bases the core knows, for the form.
#[derive(Clone, Debug, Serialize, TS)]
pub struct ConsentOptions {
    pub kinds: Vec<ConsentChoice>,
    pub bases: Vec<ConsentChoice>,
}

#[derive(Deserialize, TS)]
pub struct RevenueRequest {
    /// YYYY-MM-DD, inclusive.
    pub from: String,
    /// YYYY-MM-DD, inclusive.
    pub to: String,
}

#[derive(Clone, Debug, Serialize, TS)]
pub struct RevenueRowView {
    /// practitioner, appointment_type or total.
    pub group: String,
    pub key: String,
    pub invoices: i64,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub paid_minor: i64,
}

/// The TypeScript declarations of every type above, as written to `ui/src/lib/bindings.ts`.
pub fn typescript_bindings() -> String {
    let decls = [
        ErrorKind::decl(),
        ApiError::decl(),
        VaultInfo::decl(),
        SessionInfo::decl(),
        Stage::decl(),
        AppStatus::decl(),
        CreateVault::decl(),
        VaultCreated::decl(),
        SignInRequest::decl(),
        SecondFactor::decl(),
        Unlock::decl(),
        StrengthRequest::decl(),
        Strength::decl(),
        Enrolment::decl(),
        Code::decl(),
        RecoveryCodes::decl(),
        ChangePassphrase::decl(),
        UserRow::decl(),
        AddUser::decl(),
        EnableUser::decl(),
        UserRef::decl(),
        SetRole::decl(),
        HistoryRequest::decl(),
        SignInRow::decl(),
        RoleRow::decl(),
        PermissionRow::decl(),
        RolesMatrix::decl(),
        CreateRole::decl(),
        PolicyEntry::decl(),
        SetPolicy::decl(),
        Rotated::decl(),
        PatientForm::decl(),
        PatientSearch::decl(),
        PatientList::decl(),
        PatientRow::decl(),
        PatientRef::decl(),
        UpdatePatient::decl(),
        PatientRecord::decl(),
        AppointmentRow::decl(),
        NoteRow::decl(),
        InvoiceRow::decl(),
        AttachmentRow::decl(),
        Balance::decl(),
        ScreenTitle::decl(),
        WorkingSpanRow::decl(),
        PractitionerColumn::decl(),
        AppointmentTypeRow::decl(),
        CalendarRange::decl(),
        BookRequest::decl(),
        MoveRequest::decl(),
        StatusRequest::decl(),
        ResizeRequest::decl(),
        TimeOffRange::decl(),
        TimeOffRow::decl(),
        TimeOffRef::decl(),
        NewTimeOff::decl(),
        WorkingHours::decl(),
        NewAppointmentType::decl(),
        NameRef::decl(),
        NewTemplate::decl(),
        NewNote::decl(),
        NoteRef::decl(),
        NoteText::decl(),
        Amendment::decl(),
        NoteVersionRow::decl(),
        NoteView::decl(),
        AppointmentRef::decl(),
        InvoiceRef::decl(),
        Payment::decl(),
        InvoiceLineRow::decl(),
        InvoiceView::decl(),
        NewAttachment::decl(),
        AttachmentRef::decl(),
        AuditQuery::decl(),
        AuditRow::decl(),
        VerifyResult::decl(),
        Reanchored::decl(),
        AlertsQuery::decl(),
        AlertRow::decl(),
        AlertRef::decl(),
        AuditCsv::decl(),
        VoidInvoice::decl(),
        ConsentRow::decl(),
        NewConsentRequest::decl(),
        WithdrawConsent::decl(),
        ConsentChoice::decl(),
        ConsentOptions::decl(),
        RevenueRequest::decl(),
        RevenueRowView::decl(),
        ExportBackup::decl(),
        BackupProgress::decl(),
        BackupReport::decl(),
        VerifyBackup::decl(),
        BackupCheckResult::decl(),
    ];
    let mut out = String::from(
        "// Generated from src-tauri/api.rs by ts-rs. Do not edit: run\n\
         // `UPDATE_BINDINGS=1 cargo test -p clinvault-desktop --lib bindings` after changing the Rust types.\n\n",
    );
    for d in decls
        .into_iter()
        .chain(crate::documents::typescript_decls())
        .chain(crate::sync_api::decls())
    {
        out.push_str("export ");
        // ts-rs types 64-bit integers as `bigint`, but serde_json writes them as JSON numbers
        // and `JSON.parse` reads numbers: the page never holds a bigint. Every such value here
        // (amounts in minor units, counts, sequence numbers, sizes) stays far below 2^53.
        out.push_str(&d.replace("bigint", "number"));
        out.push_str("\n\n");
    }
    out
}
