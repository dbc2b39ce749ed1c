// Generated from src-tauri/api.rs by ts-rs. Do not edit: run
// `UPDATE_BINDINGS=1 cargo test -p clinvault-desktop --lib bindings` after changing the Rust types.

export type ErrorKind = "invalid_input" | "authentication" | "permission_denied" | "session_locked" | "integrity" | "not_found" | "already_exists" | "conflict" | "busy" | "incompatible" | "io" | "internal";

export type ApiError = { kind: ErrorKind, message: string, };

export type VaultInfo = { path: string, exists: boolean, 
/**
 * Set by CLINVAULT_VAULT: the first-run screen cannot choose another place.
 */
fixed: boolean, };

export type SessionInfo = { username: string, display_name: string, role: string, 
/**
 * The role's permissions, to shape menus; the core still checks every operation.
 */
permissions: Array<string>, must_enrol_2fa: boolean, two_factor: boolean, idle_lock_minutes: number, notices: Array<string>, };

export type Stage = { "stage": "no_vault" } | { "stage": "signed_out" } | { "stage": "second_factor", username: string, } | { "stage": "locked", username: string, display_name: string, } | { "stage": "active", session: SessionInfo, };

export type AppStatus = { vault: VaultInfo, stage: Stage, };

export type CreateVault = { 
/**
 * A folder for the vault; None keeps the default.
 */
location: string | null, username: string, display_name: string | null, passphrase: string, };

export type VaultCreated = { 
/**
 * Shown once; the UI asks for "I have saved it" before moving on.
 */
recovery_key: string, status: AppStatus, };

export type SignInRequest = { username: string, passphrase: string, };

export type SecondFactor = { 
/**
 * An authenticator code or a recovery code.
 */
code: string, remember_device: boolean, };

export type Unlock = { passphrase: string, };

export type StrengthRequest = { passphrase: string, username: string | null, display_name: string | null, };

export type Strength = { 
/**
 * 0 (trivial) to 4 (strong).
 */
score: number, acceptable: boolean, reason: string | null, min_length: number, };

export type Enrolment = { otpauth_uri: string, secret_base32: string, 
/**
 * The same URI as a QR code, a PNG in base64.
 */
qr_png_base64: string, };

export type Code = { code: string, };

export type RecoveryCodes = { codes: Array<string>, };

export type ChangePassphrase = { current: string, new: string, };

export type UserRow = { username: string, display_name: string, role: string, status: string, created_at: string, two_factor: boolean, };

export type AddUser = { username: string, display_name: string | null, role: string, 
/**
 * The initial passphrase, which the person changes at first use.
 */
passphrase: string, };

export type EnableUser = { username: string, passphrase: string, };

export type UserRef = { username: string, };

export type SetRole = { username: string, role: string, };

export type HistoryRequest = { username: string | null, limit: number | null, };

export type SignInRow = { username: string, at: string, device: string, outcome: string, detail: string, };

export type RoleRow = { name: string, builtin: boolean, permissions: Array<string>, };

export type PermissionRow = { name: string, description: string, admin_only: boolean, };

export type RolesMatrix = { roles: Array<RoleRow>, permissions: Array<PermissionRow>, };

export type CreateRole = { name: string, permissions: Array<string>, };

export type PolicyEntry = { key: string, value: string, };

export type SetPolicy = { key: string, value: string, };

export type Rotated = { key_epoch: number, };

export type PatientForm = { title: string | null, first_name: string | null, last_name: string | null, preferred_name: string | null, date_of_birth: string | null, sex: string | null, gender_identity: string | null, phone: string | null, phone_alt: string | null, email: string | null, address: string | null, emergency_contact: string | null, insurance_number: string | null, referral_source: string | null, occupation: string | null, general_notes: string | null, archived: boolean | null, };

export type PatientSearch = { text: string, limit: number | null, };

export type PatientList = { archived: boolean, limit: number | null, };

export type PatientRow = { id: string, first_name: string, last_name: string, preferred_name: string | null, date_of_birth: string | null, phone: string | null, archived: boolean, };

export type PatientRef = { id: string, };

export type UpdatePatient = { id: string, fields: PatientForm, 
/**
 * Set when the patient asked for the correction (kept in the rectification history).
 */
requested_by_patient: string | null, };

export type PatientRecord = { id: string, fields: PatientForm, created_at: string, updated_at: string, anonymised: boolean, 
/**
 * The window title the shell set for this record (names only as the privacy setting allows).
 */
window_title: string, };

export type AppointmentRow = { id: string, patient_id: string, patient_name: string, practitioner: string, appointment_type: string, 
/**
 * Local clinic time, YYYY-MM-DDTHH:MM.
 */
starts_local: string, ends_local: string, status: string, cancel_reason: string | null, };

export type NoteRow = { id: string, appointment_id: string | null, practitioner: string, status: string, created_at: string, finalised_at: string | null, versions: number, };

export type InvoiceRow = { id: string, number: number | null, appointment_id: string | null, status: string, issued_on: string | null, 
/**
 * Amounts in the currency's minor unit (cents).
 */
total_minor: number, paid_minor: number, balance_minor: number, };

export type AttachmentRow = { id: string, file_name: string, media_type: string, size: number, created_at: string, };

export type Balance = { 
/**
 * What the patient owes across issued invoices, in minor units.
 */
balance_minor: number, };

export type ScreenTitle = { screen: string, };

export type WorkingSpanRow = { 
/**
 * 1 = Monday … 7 = Sunday.
 */
weekday: number, 
/**
 * HH:MM, local clinic time.
 */
starts: string, ends: string, };

export type PractitionerColumn = { username: string, display_name: string, hours: Array<WorkingSpanRow>, };

export type AppointmentTypeRow = { name: string, minutes: number, colour: string | null, };

export type CalendarRange = { 
/**
 * The first local day, YYYY-MM-DD.
 */
date: string, 
/**
 * One practitioner's username, or None for all.
 */
practitioner: string | null, };

export type BookRequest = { patient_id: string, practitioner: string, appointment_type: string, 
/**
 * Local clinic time, YYYY-MM-DDTHH:MM.
 */
start_local: string, 
/**
 * None or 1 for one booking; N for N weekly occurrences.
 */
weekly_occurrences: number | null, allow_override: boolean, };

export type MoveRequest = { id: string, 
/**
 * Local clinic time, YYYY-MM-DDTHH:MM.
 */
start_local: string, 
/**
 * Another practitioner's column, or None to stay.
 */
practitioner: string | null, allow_override: boolean, };

export type StatusRequest = { id: string, 
/**
 * booked, arrived, completed, cancelled or no_show.
 */
status: string, 
/**
 * Needed for a cancellation.
 */
reason: string | null, };

export type ResizeRequest = { id: string, 
/**
 * The new end, local clinic time, YYYY-MM-DDTHH:MM (the start stays).
 */
end_local: string, allow_override: boolean, };

export type TimeOffRange = { 
/**
 * The first local day, YYYY-MM-DD.
 */
date: string, 
/**
 * How many days (1 for a day view, 7 for a week).
 */
days: number, 
/**
 * One practitioner's username, or None for all.
 */
practitioner: string | null, };

export type TimeOffRow = { id: string, practitioner: string, 
/**
 * Local clinic time, YYYY-MM-DDTHH:MM.
 */
starts_local: string, ends_local: string, 
/**
 * Only for administrators (the core withholds it from others).
 */
reason: string | null, 
/**
 * Appointments still booked (or arrived) inside it.
 */
booked_inside: number, };

export type TimeOffRef = { id: string, };

export type NewTimeOff = { practitioner: string, 
/**
 * Local clinic time, YYYY-MM-DDTHH:MM.
 */
from_local: string, to_local: string, reason: string | null, 
/**
 * Record it even though appointments are still booked inside (the person was told how
 * many and chose to); without it such time off is refused with that count.
 */
allow_booked: boolean, };

export type WorkingHours = { username: string, 
/**
 * Mon … Sun.
 */
day: string, 
/**
 * "08:00-12:00,13:00-17:00", or "off".
 */
hours: string, };

export type NewAppointmentType = { name: string, minutes: number, 
/**
 * Decimal text, e.g. "75.00".
 */
price: string, tax_rate_percent: string | null, };

export type NameRef = { name: string, };

export type NewTemplate = { name: string, 
/**
 * Section titles; each becomes a free-text section.
 */
sections: Array<string>, };

export type NewNote = { patient_id: string, appointment_id: string | null, body: string, };

export type NoteRef = { id: string, };

export type NoteText = { id: string, body: string, };

export type Amendment = { id: string, body: string, reason: string, };

export type NoteVersionRow = { version: number, 
/**
 * draft, final or amendment.
 */
kind: string, body: string, reason: string | null, created_at: string, };

export type NoteView = { id: string, patient_id: string, appointment_id: string | null, practitioner: string, status: string, created_at: string, finalised_at: string | null, 
/**
 * Oldest first; the last is the current text.
 */
versions: Array<NoteVersionRow>, };

export type AppointmentRef = { appointment_id: string, };

export type InvoiceRef = { id: string, };

export type Payment = { invoice_id: string, 
/**
 * Decimal text, e.g. "75.00".
 */
amount: string, 
/**
 * cash, card, eftpos, transfer, insurance or other.
 */
method: string, 
/**
 * YYYY-MM-DD; None for today.
 */
paid_on: string | null, };

export type InvoiceLineRow = { description: string, quantity: number, unit_price_minor: number, tax_rate_bp: number, net_minor: number, tax_minor: number, };

export type InvoiceView = { id: string, number: number | null, patient_id: string, appointment_id: string | null, status: string, issued_on: string | null, lines: Array<InvoiceLineRow>, net_minor: number, tax_minor: number, total_minor: number, paid_minor: number, balance_minor: number, void_reason: string | null, };

export type NewAttachment = { patient_id: string, file_name: string, 
/**
 * The file's bytes in base64, read in the webview from the file the person picked.
 */
content_base64: string, };

export type AttachmentRef = { id: string, };

export type AuditQuery = { 
/**
 * Username of the actor.
 */
user: string | null, 
/**
 * An exact action, or a prefix ending in '.' (e.g. "patient.").
 */
action: string | null, 
/**
 * A patient's id: entries whose target is that patient.
 */
patient_id: string | null, outcome: string | null, 
/**
 * YYYY-MM-DD or YYYY-MM-DD HH:MM on the clinic's clock, or RFC 3339; inclusive.
 */
since: string | null, 
/**
 * Exclusive.
 */
until: string | null, before_seq: number | null, limit: number | null, };

export type AuditRow = { seq: number, at: string, actor_name: string, device: string, action: string, target_type: string | null, target_id: string | null, outcome: string, 
/**
 * The entry's details as JSON text (field names and counts, never patient data).
 */
details: string, };

export type VerifyResult = { intact: boolean, entries_checked: number, first_seq: number | null, last_seq: number | null, problem: string | null, checkpoint: string, };

export type Reanchored = { replaced_size: number, anchored_at: number, };

export type AlertsQuery = { include_acknowledged: boolean, };

export type AlertRow = { id: number, rule: string, raised_at: string, actor_name: string | null, summary: string, acknowledged_by: string | null, acknowledged_at: string | null, };

export type AlertRef = { id: number, };

export type AuditCsv = { query: AuditQuery, 
/**
 * A full path for a new file.
 */
path: string, };

export type VoidInvoice = { id: string, reason: string, };

export type ConsentRow = { id: string, kind: string, basis: string | null, note: string | null, given_on: string, recorded_by: string, withdrawn_on: string | null, };

export type NewConsentRequest = { patient_id: string, kind: string, basis: string | null, note: string | null, 
/**
 * YYYY-MM-DD; None for today.
 */
given_on: string | null, };

export type WithdrawConsent = { id: string, 
/**
 * YYYY-MM-DD; None for today.
 */
on: string | null, };

export type ConsentChoice = { name: string, description: string, };

export type ConsentOptions = { kinds: Array<ConsentChoice>, bases: Array<ConsentChoice>, };

export type RevenueRequest = { 
/**
 * YYYY-MM-DD, inclusive.
 */
from: string, 
/**
 * YYYY-MM-DD, inclusive.
 */
to: string, };

export type RevenueRowView = { 
/**
 * practitioner, appointment_type or total.
 */
group: string, key: string, invoices: number, net_minor: number, tax_minor: number, total_minor: number, paid_minor: number, };

export type ExportBackup = { 
/**
 * A full path for the new backup file (which must not exist yet), chosen by the person.
 */
path: string, 
/**
 * An optional backup passphrase; without one, the recovery key opens the backup.
 */
passphrase: string | null, };

export type BackupProgress = { done: number, total: number, };

export type BackupReport = { path: string, backup_id: string, bytes: number, patients: number, attachments: number, audit_entries: number, with_passphrase: boolean, };

export type VerifyBackup = { path: string, 
/**
 * For a restore: a new folder (which must not exist) to restore the vault into; None to
 * only verify.
 */
restore_to: string | null, 
/**
 * The backup passphrase, or None to use the recovery key.
 */
passphrase: string | null, recovery_key: string | null, };

export type BackupCheckResult = { backup_id: string, created_at: string, patients: number, attachments: number, audit_entries: number, audit_intact: boolean, 
/**
 * Whether this vault's audit trail still holds what the backup's trail ended with (null
 * for a restore, or a backup of another vault); false raises an alert for administrators.
 */
trail_holds_backup: boolean | null, };

export type InvoiceItem = { description: string, quantity: number, 
/**
 * Decimal text, e.g. "12.50".
 */
unit_price: string, 
/**
 * Percent, e.g. "10"; None or empty for untaxed.
 */
tax_percent: string | null, };

export type NewDraftInvoice = { patient_id: string, items: Array<InvoiceItem>, };

export type DraftLines = { id: string, items: Array<InvoiceItem>, };

export type SaveInvoicePdf = { id: string, number: number | null, };

export type SaveAttachment = { id: string, file_name: string, };

export type SavedCopy = { saved: boolean, 
/**
 * The chosen file's name (not its folder), for the confirmation message.
 */
file_name: string | null, bytes: number, };

export type PickedAttachment = { attachment: AttachmentRow | null, };

export type ChooseBackupPath = { purpose: string, };

export type ChosenPath = { path: string | null, };

export type SetSyncTarget = { url: string, 
/**
 * WebDAV password (when the URL names a user).
 */
password: string | null, 
/**
 * S3 access key id and secret access key.
 */
s3_key_id: string | null, s3_secret: string | null, 
/**
 * "1.3" (default) or "1.2" for an old NAS.
 */
tls_min: string | null, 
/**
 * A CA certificate file (PEM) that alone is trusted for this target.
 */
ca_file: string | null, 
/**
 * SFTP: the private key file.
 */
ssh_key: string | null, };

export type SyncTargetView = { url: string, 
/**
 * file, sftp, webdav or s3.
 */
kind: string, tls_min: string, ca_file: string | null, ssh_key: string | null, 
/**
 * True when the target needs a password or keys (kept in the OS keyring, not shown).
 */
has_secret: boolean, };

export type AutoPushView = { 
/**
 * RFC 3339, by the session's clock.
 */
at: string, ok: boolean, 
/**
 * "Snapshot … pushed" or the failure, as a person can act on it.
 */
message: string, };

export type SyncStatusView = { target_set: boolean, 
/**
 * Automatic push every this many hours while the app is unlocked; 0 = off.
 */
every_hours: number, 
/**
 * When the last push completed (RFC 3339) and how long ago, in seconds.
 */
last_good_at: string | null, last_good_age_seconds: number | null, 
/**
 * The last push that failed, when newer than the last good one.
 */
last_failed_at: string | null, 
/**
 * No good snapshot, or the last one is older than the schedule allows.
 */
stale: boolean, push_due: boolean, auto_push: AutoPushView | null, };

export type SyncOverview = { target: SyncTargetView | null, status: SyncStatusView, };

export type SetSyncSchedule = { 
/**
 * 0 turns automatic pushes off; at most 168 (a week).
 */
every_hours: number, };

export type ConnectionResult = { kind: string, 
/**
 * empty, this_vault or other.
 */
repository: string, message: string, };

export type SnapshotRow = { 
/**
 * The first 12 hex digits of the snapshot's name.
 */
id: string, time: string, host: string, files: number, bytes: number, audit_entries: number | null, };

export type SyncProgress = { phase: string, 
/**
 * bytes or an item name (files, packs, …).
 */
unit: string, done: number, 
/**
 * 0 when unknown.
 */
total: number, };

export type PushResult = { snapshot: string, files: number, bytes: number, unchanged_files: number, new_blobs: number, uploaded_bytes: number, };

export type FailedSnapshot = { snapshot: string, reason: string, };

export type RestoreTestResult = { ok: boolean, snapshot: string | null, time: string | null, age_seconds: number | null, patients: number | null, audit_entries: number | null, failed: Array<FailedSnapshot>, message: string, };

