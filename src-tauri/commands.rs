//! The Tauri commands: each locks the shell and calls its method of the same name. They run off
//! the main thread (`async`), so a key derivation never freezes the window. Every command is
//! listed in `commands.txt`, from which build.rs declares the app's permissions; the capability
//! in `capabilities/main.json` grants them to the main window only.

use std::sync::Mutex;

use tauri::State;

use crate::api::*;
use crate::host::DesktopHost;
use crate::shell::Shell;

pub type AppState = Mutex<Shell<DesktopHost>>;
pub(crate) type Reply<T> = Result<T, ApiError>;

pub(crate) fn with<T>(
    state: &AppState,
    f: impl FnOnce(&mut Shell<DesktopHost>) -> Reply<T>,
) -> Reply<T> {
    // Tauri runs these commands on its async runtime, which has one worker per core. Waiting
    // there for the lock (a backup export holds it for minutes) would take a worker, and two
    // such waits (the status poll, a click) would stall every other call, the backup's own
    // Cancel included. block_in_place hands the worker's other tasks to a new thread while
    // this one waits; outside the runtime (the schedule timer's thread) it just runs.
    tokio::task::block_in_place(|| {
        // A panic while holding the lock poisons it; the shell itself stays consistent
        // (sessions are dropped, not half-updated), so carry on rather than wedge the app.
        let mut shell = state.lock().unwrap_or_else(|p| p.into_inner());
        contain(|| f(&mut shell))
    })
}

/// Runs one command so that a panic (a bug) reaches the webview as an `internal` error with a
/// fixed message, never as a dropped call or a message that could carry data. The session that
/// was open stays as it was; the panic hook set in `run` prints nothing.
pub(crate) fn contain<T>(f: impl FnOnce() -> Reply<T>) -> Reply<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(ApiError::new(
            ErrorKind::Internal,
            "ClinVault hit an internal error; nothing was changed by this step. Please report it.",
        ))
    })
}

macro_rules! commands {
    ($( $name:ident ( $($arg:ident : $ty:ty)? ) -> $ret:ty; )*) => {
        $(
            #[tauri::command(async)]
            pub fn $name(state: State<'_, AppState> $(, $arg: $ty)?) -> Reply<$ret> {
                with(&state, |s| s.$name($($arg)?))
            }
        )*
        /// Every command name, in the order declared.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

commands! {
    create_vault(req: CreateVault) -> VaultCreated;
    enroll_2fa() -> Enrolment;
    confirm_2fa(req: Code) -> RecoveryCodes;
    regenerate_recovery_codes() -> RecoveryCodes;
    change_passphrase(req: ChangePassphrase) -> ();
    list_users() -> Vec<UserRow>;
    add_user(req: AddUser) -> ();
    disable_user(req: UserRef) -> ();
    enable_user(req: EnableUser) -> ();
    set_user_role(req: SetRole) -> ();
    reset_2fa(req: UserRef) -> ();
    signin_history(req: HistoryRequest) -> Vec<SignInRow>;
    roles() -> RolesMatrix;
    create_role(req: CreateRole) -> ();
    policy() -> Vec<PolicyEntry>;
    set_policy(req: SetPolicy) -> Vec<PolicyEntry>;
    rotate_keys() -> Rotated;
    search_patients(req: PatientSearch) -> Vec<PatientRow>;
    list_patients(req: PatientList) -> Vec<PatientRow>;
    patient_appointments(req: PatientRef) -> Vec<AppointmentRow>;
    patient_notes(req: PatientRef) -> Vec<NoteRow>;
    patient_invoices(req: PatientRef) -> Vec<InvoiceRow>;
    patient_attachments(req: PatientRef) -> Vec<AttachmentRow>;
    patient_balance(req: PatientRef) -> Balance;
    list_practitioners() -> Vec<PractitionerColumn>;
    list_appointment_types() -> Vec<AppointmentTypeRow>;
    day_appointments(req: CalendarRange) -> Vec<AppointmentRow>;
    week_appointments(req: CalendarRange) -> Vec<AppointmentRow>;
    book_appointment(req: BookRequest) -> Vec<AppointmentRow>;
    move_appointment(req: MoveRequest) -> AppointmentRow;
    set_appointment_status(req: StatusRequest) -> AppointmentRow;
    resize_appointment(req: ResizeRequest) -> AppointmentRow;
    list_time_off(req: TimeOffRange) -> Vec<TimeOffRow>;
    add_time_off(req: NewTimeOff) -> TimeOffRow;
    remove_time_off(req: TimeOffRef) -> ();
    add_practitioner(req: UserRef) -> ();
    set_working_hours(req: WorkingHours) -> ();
    add_appointment_type(req: NewAppointmentType) -> ();
    note_templates() -> Vec<String>;
    template_text(req: NameRef) -> String;
    add_note_template(req: NewTemplate) -> ();
    add_note(req: NewNote) -> NoteView;
    save_draft(req: NoteText) -> NoteView;
    finalise_note(req: NoteRef) -> NoteView;
    amend_note(req: Amendment) -> NoteView;
    show_note(req: NoteRef) -> NoteView;
    invoice_appointment(req: AppointmentRef) -> InvoiceView;
    show_invoice(req: InvoiceRef) -> InvoiceView;
    record_payment(req: Payment) -> InvoiceView;
    add_attachment(req: NewAttachment) -> AttachmentRow;
    audit_list(req: AuditQuery) -> Vec<AuditRow>;
    verify_audit() -> VerifyResult;
    reanchor_audit() -> Reanchored;
    audit_alerts(req: AlertsQuery) -> Vec<AlertRow>;
    acknowledge_alert(req: AlertRef) -> ();
    export_audit_csv(req: AuditCsv) -> String;
    void_invoice(req: VoidInvoice) -> InvoiceView;
    patient_consents(req: PatientRef) -> Vec<ConsentRow>;
    record_consent(req: NewConsentRequest) -> ConsentRow;
    withdraw_consent(req: WithdrawConsent) -> ConsentRow;
    consent_options() -> ConsentOptions;
    outstanding_invoices() -> Vec<InvoiceView>;
    revenue_report(req: RevenueRequest) -> Vec<RevenueRowView>;
}

/// Commands that report where the app is. When nobody is active (signed out, locked, idle
/// lock noticed by the status poll), the window title goes back to the bare app name, so no
/// record's title outlives the session that showed it.
macro_rules! staged {
    ($( $name:ident ( $($arg:ident : $ty:ty)? ); )*) => {
        $(
            #[tauri::command(async)]
            pub fn $name(
                window: tauri::WebviewWindow,
                state: State<'_, AppState>
                $(, $arg: $ty)?
            ) -> Reply<AppStatus> {
                let reply = with(&state, |s| s.$name($($arg)?))?;
                if !matches!(reply.stage, Stage::Active { .. }) {
                    let _ = window.set_title(APP_TITLE);
                }
                Ok(reply)
            }
        )*
        /// The status commands, in the order declared.
        pub const STAGED: &[&str] = &[$(stringify!($name)),*];
    };
}

/// The window title when no screen has set one.
const APP_TITLE: &str = "ClinVault";

staged! {
    status();
    sign_in(req: SignInRequest);
    complete_sign_in(req: SecondFactor);
    cancel_sign_in();
    sign_out();
    report_activity();
    lock();
    unlock(req: Unlock);
}

/// Commands that show one patient also set the window title, which the core's `display_title`
/// computed (no name unless the clinic's privacy setting allows it). The title is set from
/// Rust: the webview has no permission to change it.
macro_rules! titled {
    ($( $name:ident ( $arg:ident : $ty:ty ) -> $ret:ty; )*) => {
        $(
            #[tauri::command(async)]
            pub fn $name(
                window: tauri::WebviewWindow,
                state: State<'_, AppState>,
                $arg: $ty,
            ) -> Reply<$ret> {
                let reply = with(&state, |s| s.$name($arg))?;
                // A title that cannot be set is cosmetic; the reply still stands.
                let _ = window.set_title(&reply.window_title);
                Ok(reply)
            }
        )*
        /// The titled commands, in the order declared.
        pub const TITLED: &[&str] = &[$(stringify!($name)),*];
    };
}

titled! {
    show_patient(req: PatientRef) -> PatientRecord;
    add_patient(req: PatientForm) -> PatientRecord;
    update_patient(req: UpdatePatient) -> PatientRecord;
}

/// A screen without a patient: the window title for it, set from Rust.
#[tauri::command(async)]
pub fn screen_title(
    window: tauri::WebviewWindow,
    state: State<'_, AppState>,
    req: ScreenTitle,
) -> Reply<String> {
    let title = with(&state, |s| s.screen_title(req))?;
    let _ = window.set_title(&title);
    Ok(title)
}

/// Infallible in the shell, so outside the macro.
#[tauri::command(async)]
pub fn passphrase_strength(state: State<'_, AppState>, req: StrengthRequest) -> Reply<Strength> {
    with(&state, |s| Ok(s.passphrase_strength(req)))
}

/// The cancel flag of the backup that is running. Kept outside the shell's lock, which the
/// export holds while it runs, so `cancel_backup` is answered at once.
#[derive(Default)]
pub struct BackupCancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl BackupCancel {
    /// Asks the running export or verification, if any, to stop.
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Progress at most every whole percent, so the channel is not flooded.
fn progress_sender(
    channel: tauri::ipc::Channel<BackupProgress>,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> impl FnMut(u64, u64) -> bool {
    let mut last = u64::MAX;
    move |done, total| {
        if cancel.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        let pct = done.saturating_mul(100).checked_div(total).unwrap_or(0);
        if pct != last || done == total {
            last = pct;
            let _ = channel.send(BackupProgress { done, total });
        }
        true
    }
}

#[tauri::command(async)]
pub fn export_backup(
    state: State<'_, AppState>,
    cancel: State<'_, BackupCancel>,
    req: ExportBackup,
    progress: tauri::ipc::Channel<BackupProgress>,
) -> Reply<BackupReport> {
    cancel.0.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut send = progress_sender(progress, cancel.0.clone());
    with(&state, |s| s.export_backup(req, &mut send))
}

#[tauri::command(async)]
pub fn verify_backup(
    state: State<'_, AppState>,
    cancel: State<'_, BackupCancel>,
    req: VerifyBackup,
    progress: tauri::ipc::Channel<BackupProgress>,
) -> Reply<BackupCheckResult> {
    cancel.0.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut send = progress_sender(progress, cancel.0.clone());
    with(&state, |s| s.verify_backup(req, &mut send))
}

/// Asks the running export or verification to stop (the core then keeps nothing).
#[tauri::command(async)]
pub fn cancel_backup(cancel: State<'_, BackupCancel>) -> Reply<()> {
    cancel.cancel();
    Ok(())
}

// The sync commands (administrator's Backup and sync screen) and the scheduled-push timer.
#[path = "sync_commands.rs"]
pub mod sync;
