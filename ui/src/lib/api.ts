// Typed calls to the shell's commands. Request and reply types come from bindings.ts, which is
// generated from the Rust definitions (src-tauri/api.rs), so a change on one side that the other
// does not follow fails the Rust test suite or the TypeScript build.
import { invoke } from '@tauri-apps/api/core';
import type * as B from './bindings';

export type * from './bindings';

/** Every command: [request type (or null), reply type]. Names must match src-tauri/commands.txt. */
interface Commands {
  status: [null, B.AppStatus];
  create_vault: [B.CreateVault, B.VaultCreated];
  sign_in: [B.SignInRequest, B.AppStatus];
  complete_sign_in: [B.SecondFactor, B.AppStatus];
  cancel_sign_in: [null, B.AppStatus];
  sign_out: [null, B.AppStatus];
  report_activity: [null, B.AppStatus];
  lock: [null, B.AppStatus];
  unlock: [B.Unlock, B.AppStatus];
  enroll_2fa: [null, B.Enrolment];
  confirm_2fa: [B.Code, B.RecoveryCodes];
  regenerate_recovery_codes: [null, B.RecoveryCodes];
  change_passphrase: [B.ChangePassphrase, null];
  list_users: [null, B.UserRow[]];
  add_user: [B.AddUser, null];
  disable_user: [B.UserRef, null];
  enable_user: [B.EnableUser, null];
  set_user_role: [B.SetRole, null];
  reset_2fa: [B.UserRef, null];
  signin_history: [B.HistoryRequest, B.SignInRow[]];
  roles: [null, B.RolesMatrix];
  create_role: [B.CreateRole, null];
  policy: [null, B.PolicyEntry[]];
  set_policy: [B.SetPolicy, B.PolicyEntry[]];
  rotate_keys: [null, B.Rotated];
  passphrase_strength: [B.StrengthRequest, B.Strength];
  search_patients: [B.PatientSearch, B.PatientRow[]];
  list_patients: [B.PatientList, B.PatientRow[]];
  show_patient: [B.PatientRef, B.PatientRecord];
  add_patient: [B.PatientForm, B.PatientRecord];
  update_patient: [B.UpdatePatient, B.PatientRecord];
  patient_appointments: [B.PatientRef, B.AppointmentRow[]];
  patient_notes: [B.PatientRef, B.NoteRow[]];
  patient_invoices: [B.PatientRef, B.InvoiceRow[]];
  patient_attachments: [B.PatientRef, B.AttachmentRow[]];
  patient_balance: [B.PatientRef, B.Balance];
  screen_title: [B.ScreenTitle, string];
  list_practitioners: [null, B.PractitionerColumn[]];
  list_appointment_types: [null, B.AppointmentTypeRow[]];
  day_appointments: [B.CalendarRange, B.AppointmentRow[]];
  week_appointments: [B.CalendarRange, B.AppointmentRow[]];
  book_appointment: [B.BookRequest, B.AppointmentRow[]];
  move_appointment: [B.MoveRequest, B.AppointmentRow];
  set_appointment_status: [B.StatusRequest, B.AppointmentRow];
  resize_appointment: [B.ResizeRequest, B.AppointmentRow];
  list_time_off: [B.TimeOffRange, B.TimeOffRow[]];
  add_time_off: [B.NewTimeOff, B.TimeOffRow];
  remove_time_off: [B.TimeOffRef, null];
  add_practitioner: [B.UserRef, null];
  set_working_hours: [B.WorkingHours, null];
  add_appointment_type: [B.NewAppointmentType, null];
  note_templates: [null, string[]];
  template_text: [B.NameRef, string];
  add_note_template: [B.NewTemplate, null];
  add_note: [B.NewNote, B.NoteView];
  save_draft: [B.NoteText, B.NoteView];
  finalise_note: [B.NoteRef, B.NoteView];
  amend_note: [B.Amendment, B.NoteView];
  show_note: [B.NoteRef, B.NoteView];
  invoice_appointment: [B.AppointmentRef, B.InvoiceView];
  show_invoice: [B.InvoiceRef, B.InvoiceView];
  record_payment: [B.Payment, B.InvoiceView];
  add_attachment: [B.NewAttachment, B.AttachmentRow];
  audit_list: [B.AuditQuery, B.AuditRow[]];
  verify_audit: [null, B.VerifyResult];
  reanchor_audit: [null, B.Reanchored];
  audit_alerts: [B.AlertsQuery, B.AlertRow[]];
  acknowledge_alert: [B.AlertRef, null];
  cancel_backup: [null, null];
  export_audit_csv: [B.AuditCsv, string];
  void_invoice: [B.VoidInvoice, B.InvoiceView];
  patient_consents: [B.PatientRef, B.ConsentRow[]];
  record_consent: [B.NewConsentRequest, B.ConsentRow];
  withdraw_consent: [B.WithdrawConsent, B.ConsentRow];
  consent_options: [null, B.ConsentOptions];
  outstanding_invoices: [null, B.InvoiceView[]];
  revenue_report: [B.RevenueRequest, B.RevenueRowView[]];
  // Invoice drafts, invoice PDFs and attachment files (src-tauri/documents.rs). The save and
  // open dialogs are opened by Rust; the webview never names a path.
  create_draft_invoice: [B.NewDraftInvoice, B.InvoiceView];
  update_draft_invoice: [B.DraftLines, B.InvoiceView];
  issue_invoice: [B.InvoiceRef, B.InvoiceView];
  save_invoice_pdf: [B.SaveInvoicePdf, B.SavedCopy];
  save_attachment_copy: [B.SaveAttachment, B.SavedCopy];
  pick_attachment: [B.PatientRef, B.PickedAttachment];
  choose_backup_path: [B.ChooseBackupPath, B.ChosenPath];
  // Sync (administrators); sync_push and sync_restore_test take a progress channel (invoke).
  sync_overview: [null, B.SyncOverview];
  sync_status: [null, B.SyncStatusView];
  set_sync_target: [B.SetSyncTarget, B.SyncTargetView];
  test_sync_target: [null, B.ConnectionResult];
  set_sync_schedule: [B.SetSyncSchedule, B.SyncStatusView];
  sync_snapshots: [null, B.SnapshotRow[]];
}

export function isApiError(e: unknown): e is B.ApiError {
  return typeof e === 'object' && e !== null && 'kind' in e && 'message' in e;
}

/** A message for a person, whatever was thrown. */
export function messageOf(e: unknown): string {
  if (isApiError(e)) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

export function call<K extends keyof Commands>(
  cmd: K,
  ...req: Commands[K][0] extends null ? [] : [Commands[K][0]]
): Promise<Commands[K][1]> {
  return invoke<Commands[K][1]>(cmd, req.length ? { req: req[0] } : {});
}

/** An attachment's decrypted bytes for the viewer: one binary reply (an ArrayBuffer, no base64),
 * kept in memory only. The core checks the permission and records the view. */
export async function readAttachment(id: string): Promise<Uint8Array> {
  return new Uint8Array(await invoke<ArrayBuffer>('read_attachment', { req: { id } }));
}

/** A core validation message names the field first ("invalid input: date_of_birth: …"):
 * the field and the rest, so a form can show it beside that field. */
export function fieldError(e: unknown): { field: string | null; message: string } {
  const msg = messageOf(e);
  if (!isApiError(e) || e.kind !== 'invalid_input') return { field: null, message: msg };
  const m = /^(?:invalid input: )?([a-z_]+(?: and [a-z_]+)?): (.*)$/s.exec(msg);
  if (!m) return { field: null, message: msg };
  return { field: m[1].split(' and ')[0], message: m[2] };
}

/** Minor units (cents) as money text, e.g. 7500 → "75.00". */
export function money(minor: number): string {
  const sign = minor < 0 ? '-' : '';
  const a = Math.abs(minor);
  return `${sign}${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')}`;
}

const INSTANT = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:?\d{2})$/i;

/** An instant from the core (RFC 3339, in UTC or with an offset) as this computer's local
 * date and time, "YYYY-MM-DD HH:MM". Parsed by hand: the core writes up to nine fractional
 * digits, which Date.parse need not accept. Text without a zone is already a local time and
 * is only tidied; text that is not a time at all is shown as it came. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '';
  const m = INSTANT.exec(iso.trim());
  if (!m) return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(iso) ? iso.replace('T', ' ').slice(0, 16) : iso;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  let offset = 0;
  if (zone.toUpperCase() !== 'Z') {
    const z = zone.replace(':', '');
    offset = (z[0] === '-' ? -1 : 1) * (Number(z.slice(1, 3)) * 60 + Number(z.slice(3, 5)));
  }
  const ms = Date.UTC(+y, +mo - 1, +d, +h, +mi, +(s ?? 0), +(frac ?? '').padEnd(3, '0').slice(0, 3)) - offset * 60_000;
  const t = new Date(ms);
  if (Number.isNaN(t.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}`;
}

/** A duration in seconds as a person says it: "3 hours ago", "2 days ago". */
export function ago(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const unit = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'} ago`;
  if (s < 60) return 'just now';
  if (s < 3600) return unit(Math.floor(s / 60), 'minute');
  if (s < 86400) return unit(Math.floor(s / 3600), 'hour');
  return unit(Math.floor(s / 86400), 'day');
}
