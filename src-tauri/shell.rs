//! The command layer: one method per command, each translating a request into core calls and
//! the result (or core error) into reply types. No rule is decided here — sessions, the idle
//! lock, permissions and passphrase policy are the core's. The shell holds at most one session
//! (locked or not) and at most one sign-in waiting for its second factor.

use std::path::PathBuf;

use base64::Engine;
use clinvault_core::account_view;
use clinvault_core::appointments::Appointment;
use clinvault_core::crypto::KdfCost;
use clinvault_core::patients::{Patient, PatientFields, PatientSummary};
use clinvault_core::permissions::Permission;
use clinvault_core::policy::Policy;
use clinvault_core::privacy_settings::{display_title, PrivacySettings};
use clinvault_core::session::PendingSignIn;
use clinvault_core::{InitOptions, Session, SessionConfig, SessionState, SignIn, VaultDir};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::api::*;
use crate::host::Host;

type Result<T> = std::result::Result<T, ApiError>;

/// How many sign-ins the history screen shows when the UI does not say.
const DEFAULT_HISTORY: u32 = 200;

pub struct Shell<H: Host> {
    host: H,
    session: Option<Session>,
    pending: Option<PendingSignIn>,
    /// The last automatic push's outcome in this window (sync screen and Home show it).
    auto_push: Option<crate::sync_api::AutoPushView>,
    /// Set while a push or restore test runs (they run without the shell's lock).
    sync_running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Pushes and restore tests that ended while the session was locked: recorded when their
    /// person is back.
    unrecorded: Vec<(
        clinvault_core::snapshot::AuditedRun,
        Option<clinvault_core::ErrorKind>,
    )>,
}

// The sync commands (set-up, test, schedule, push, snapshots, restore test, the timer's push).
#[path = "sync_shell.rs"]
mod sync;
pub use sync::{ProgressSink, PushInFlight, RestoreTestInFlight};

pub(crate) fn core<T>(r: clinvault_core::Result<T>) -> Result<T> {
    r.map_err(ApiError::from)
}

fn parse_permissions(names: &[String]) -> Result<Vec<Permission>> {
    names
        .iter()
        .map(|n| n.parse::<Permission>())
        .collect::<clinvault_core::Result<Vec<_>>>()
        .map_err(ApiError::from)
}

/// How many audit entries a page shows when the UI does not say.
const DEFAULT_AUDIT: u32 = 200;
/// How many rows instant search returns when the UI does not say.
const DEFAULT_SEARCH: u32 = 50;
/// How many patients the list shows when the UI does not say.
const DEFAULT_LIST: u32 = 500;

fn patient_row(p: PatientSummary) -> PatientRow {
    PatientRow {
        id: p.id,
        first_name: p.first_name,
        last_name: p.last_name,
        preferred_name: p.preferred_name,
        date_of_birth: p.date_of_birth,
        phone: p.phone,
        archived: p.archived,
    }
}

macro_rules! map_fields {
    ($from:expr, $to:ident) => {{
        let f = $from;
        $to {
            title: f.title,
            first_name: f.first_name,
            last_name: f.last_name,
            preferred_name: f.preferred_name,
            date_of_birth: f.date_of_birth,
            sex: f.sex,
            gender_identity: f.gender_identity,
            phone: f.phone,
            phone_alt: f.phone_alt,
            email: f.email,
            address: f.address,
            emergency_contact: f.emergency_contact,
            insurance_number: f.insurance_number,
            referral_source: f.referral_source,
            occupation: f.occupation,
            general_notes: f.general_notes,
            archived: f.archived,
        }
    }};
}

fn core_fields(f: PatientForm) -> PatientFields {
    map_fields!(f, PatientFields)
}

fn patient_record(p: Patient, settings: &PrivacySettings) -> PatientRecord {
    let first = p.fields.first_name.clone().unwrap_or_default();
    let last = p.fields.last_name.clone().unwrap_or_default();
    let window_title = display_title(settings, "Patient record", Some((&first, &last)));
    PatientRecord {
        id: p.id,
        fields: map_fields!(p.fields, PatientForm),
        created_at: p.created_at,
        updated_at: p.updated_at,
        anonymised: p.anonymised_at.is_some(),
        window_title,
    }
}

fn note_view(n: clinvault_core::notes::Note) -> NoteView {
    NoteView {
        id: n.id,
        patient_id: n.patient_id,
        appointment_id: n.appointment_id,
        practitioner: n.practitioner,
        status: n.status,
        created_at: n.created_at,
        finalised_at: n.finalised_at,
        versions: n
            .versions
            .into_iter()
            .map(|v| NoteVersionRow {
                version: v.version,
                kind: v.kind,
                body: v.body,
                reason: v.reason,
                created_at: v.created_at,
            })
            .collect(),
    }
}

pub(crate) fn invoice_view(i: clinvault_core::invoices::Invoice) -> InvoiceView {
    InvoiceView {
        id: i.id,
        number: i.number,
        patient_id: i.patient_id,
        appointment_id: i.appointment_id,
        status: i.status,
        issued_on: i.issued_on,
        lines: i
            .lines
            .into_iter()
            .map(|l| InvoiceLineRow {
                description: l.description,
                quantity: l.quantity,
                unit_price_minor: l.unit_price_minor,
                tax_rate_bp: l.tax_rate_bp,
                net_minor: l.net_minor,
                tax_minor: l.tax_minor,
            })
            .collect(),
        net_minor: i.net_minor,
        tax_minor: i.tax_minor,
        total_minor: i.total_minor,
        paid_minor: i.paid_minor,
        balance_minor: i.balance_minor,
        void_reason: i.void_reason,
    }
}

pub(crate) fn attachment_row(a: clinvault_core::attachments::Attachment) -> AttachmentRow {
    AttachmentRow {
        id: a.id,
        file_name: a.file_name,
        media_type: a.media_type,
        size: a.size,
        created_at: a.created_at,
    }
}

/// The screen's filter as the core's; dates are read on the clinic's clock by the core.
fn audit_filter(
    s: &clinvault_core::Session,
    req: AuditQuery,
) -> Result<clinvault_core::audit_review::AuditFilter> {
    use clinvault_core::audit_review::AuditFilter;
    let text = |o: Option<String>| o.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    let since = text(req.since)
        .map(|t| core(s.parse_when("since", &t)))
        .transpose()?;
    let until = text(req.until)
        .map(|t| core(s.parse_when("until", &t)))
        .transpose()?;
    let patient = text(req.patient_id);
    Ok(AuditFilter {
        user: text(req.user),
        action: text(req.action),
        target_type: patient.as_ref().map(|_| "patient".to_owned()),
        target_id: patient,
        outcome: text(req.outcome),
        since,
        until,
        before_seq: req.before_seq,
        limit: req.limit.unwrap_or(DEFAULT_AUDIT),
    })
}

/// A path the person typed: it must be absolute (the app has no working folder of its own).
fn full_path(field: &str, text: &str) -> Result<PathBuf> {
    let p = PathBuf::from(text.trim());
    if text.trim().is_empty() || !p.is_absolute() {
        return Err(ApiError::new(
            ErrorKind::InvalidInput,
            format!("{field}: give a full path (starting with /)"),
        ));
    }
    Ok(p)
}

fn consent_row(c: clinvault_core::consents::Consent) -> ConsentRow {
    ConsentRow {
        id: c.id,
        kind: c.kind,
        basis: c.basis,
        note: c.note,
        given_on: c.given_on,
        recorded_by: c.recorded_by,
        withdrawn_on: c.withdrawn_on,
    }
}

fn appointment_row(a: Appointment) -> AppointmentRow {
    AppointmentRow {
        id: a.id,
        patient_id: a.patient_id,
        patient_name: a.patient_name,
        practitioner: a.practitioner,
        appointment_type: a.appointment_type,
        starts_local: a.starts_local,
        ends_local: a.ends_local,
        status: a.status,
        cancel_reason: a.cancel_reason,
    }
}

fn time_off_row(t: clinvault_core::appointments::TimeOff) -> TimeOffRow {
    TimeOffRow {
        id: t.id,
        practitioner: t.practitioner,
        starts_local: t.starts_local,
        ends_local: t.ends_local,
        reason: t.reason,
        booked_inside: t.booked_inside,
    }
}

impl<H: Host> Shell<H> {
    pub fn new(host: H) -> Self {
        Shell {
            host,
            session: None,
            pending: None,
            auto_push: None,
            sync_running: Default::default(),
            unrecorded: Vec::new(),
        }
    }

    fn dir(&self) -> Result<(VaultDir, bool)> {
        let loc = self.host.vault_location()?;
        Ok((VaultDir::new(loc.path), loc.fixed))
    }

    fn config(&self) -> SessionConfig {
        SessionConfig {
            device: self.host.device(),
            clock: self.host.clock(),
        }
    }

    /// The active session, or the core's reason why there is none.
    pub(crate) fn active(&mut self) -> Result<&mut Session> {
        let session = self.session.as_mut().ok_or_else(ApiError::signed_out)?;
        match session.check() {
            SessionState::Active => Ok(session),
            SessionState::Locked => Err(clinvault_core::Error::SessionLocked(
                "the session is locked; unlock with your passphrase".into(),
            )
            .into()),
            SessionState::Expired => Err(clinvault_core::Error::SessionLocked(
                "the session has expired; sign in again".into(),
            )
            .into()),
        }
    }

    fn session_info(session: &Session) -> Result<SessionInfo> {
        let user = session.user();
        Ok(SessionInfo {
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            role: user.role.clone(),
            permissions: core(session.own_permissions())?
                .into_iter()
                .map(|p| p.name().to_owned())
                .collect(),
            must_enrol_2fa: session.must_enrol_2fa(),
            two_factor: core(session.two_factor_enabled())?,
            idle_lock_minutes: session.policy().idle_lock_minutes,
            notices: session.notices().to_vec(),
        })
    }

    /// Where the app is. Applies the core's time limits first (it is polled by the UI), and
    /// forgets a session the core has expired.
    pub fn status(&mut self) -> Result<AppStatus> {
        let (dir, fixed) = self.dir()?;
        let vault = VaultInfo {
            path: dir.root().display().to_string(),
            exists: dir.exists(),
            fixed,
        };
        if let Some(s) = &mut self.session {
            if s.check() == SessionState::Expired {
                self.session = None;
            }
        }
        let stage = if let Some(s) = &self.session {
            match s.state() {
                SessionState::Active => Stage::Active {
                    session: Self::session_info(s)?,
                },
                _ => Stage::Locked {
                    username: s.user().username.clone(),
                    display_name: s.user().display_name.clone(),
                },
            }
        } else if let Some(p) = &self.pending {
            Stage::SecondFactor {
                username: p.username().to_owned(),
            }
        } else if vault.exists {
            Stage::SignedOut
        } else {
            Stage::NoVault
        };
        Ok(AppStatus { vault, stage })
    }

    /// A meter reading for a passphrase being typed, against the session's policy (or the
    /// default policy before a vault exists).
    pub fn passphrase_strength(&mut self, req: StrengthRequest) -> Strength {
        let policy = match &self.session {
            Some(s) => s.policy().clone(),
            None => Policy::default(),
        };
        let mut inputs: Vec<&str> = Vec::new();
        if let Some(u) = req.username.as_deref() {
            inputs.push(u);
        }
        if let Some(d) = req.display_name.as_deref() {
            inputs.push(d);
        }
        let s = account_view::assess(&policy, &req.passphrase, false, &inputs);
        Strength {
            score: s.score,
            acceptable: s.acceptable,
            reason: s.reason,
            min_length: s.min_length,
        }
    }

    /// First run: creates the vault and its administrator, signs them in, and hands back the
    /// recovery key to be shown once.
    pub fn create_vault(&mut self, req: CreateVault) -> Result<VaultCreated> {
        let (default_dir, fixed) = self.dir()?;
        let chosen = req
            .location
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(PathBuf::from);
        let dir = match chosen {
            Some(path) if path != default_dir.root() => {
                if fixed {
                    return Err(ApiError::new(
                        ErrorKind::InvalidInput,
                        "the vault location is set by CLINVAULT_VAULT and cannot be changed here",
                    ));
                }
                if !path.is_absolute() {
                    return Err(ApiError::new(
                        ErrorKind::InvalidInput,
                        "vault location: give a full path (starting with /)",
                    ));
                }
                VaultDir::new(path)
            }
            _ => default_dir,
        };
        let recovery = core(clinvault_core::vault::init(
            &dir,
            InitOptions {
                admin_username: req.username.clone(),
                admin_display_name: req.display_name.clone(),
                passphrase: req.passphrase.clone(),
                kdf_cost: KdfCost::for_new_vaults(),
                recovery_key_file: None,
            },
        ))?;
        if !fixed {
            self.host.remember_vault_location(dir.root())?;
        }
        let shown = Shown(recovery.display());
        drop(recovery);
        self.session = None;
        self.pending = None;
        match core(Session::sign_in(
            &dir,
            &req.username,
            &req.passphrase,
            self.config(),
        ))? {
            SignIn::Complete(s) => self.session = Some(*s),
            SignIn::NeedsSecondFactor(p) => self.pending = Some(*p),
        }
        Ok(VaultCreated {
            recovery_key: shown,
            status: self.status()?,
        })
    }

    pub fn sign_in(&mut self, req: SignInRequest) -> Result<AppStatus> {
        // One session at a time: signing in ends (and so locks) any other.
        self.session = None;
        self.pending = None;
        let (dir, _) = self.dir()?;
        match core(Session::sign_in(
            &dir,
            &req.username,
            &req.passphrase,
            self.config(),
        ))? {
            SignIn::Complete(s) => self.session = Some(*s),
            SignIn::NeedsSecondFactor(p) => self.pending = Some(*p),
        }
        self.record_unrecorded();
        self.warm_up();
        self.status()
    }

    /// The authenticator or recovery code. A wrong code ends the attempt (the core counts it
    /// as a failed sign-in); the passphrase must be entered again.
    pub fn complete_sign_in(&mut self, req: SecondFactor) -> Result<AppStatus> {
        let pending = self.pending.take().ok_or_else(|| {
            ApiError::new(ErrorKind::InvalidInput, "no sign-in is waiting for a code")
        })?;
        let session = core(pending.complete(req.code.trim(), req.remember_device))?;
        self.session = Some(session);
        self.record_unrecorded();
        self.warm_up();
        self.status()
    }

    /// After a sign-in, the core warms this session's page cache for patient search (see
    /// `Session::warm_search_cache`); a failure there only means a slower first search.
    fn warm_up(&mut self) {
        if let Some(s) = self.session.as_mut() {
            let _ = s.warm_search_cache();
        }
    }

    pub fn cancel_sign_in(&mut self) -> Result<AppStatus> {
        self.pending = None;
        self.status()
    }

    /// Ends the session (the core records it, closes the database and wipes the keys).
    pub fn sign_out(&mut self) -> Result<AppStatus> {
        self.session = None;
        self.pending = None;
        self.auto_push = None;
        self.status()
    }

    /// Keyboard or mouse activity the UI saw. The core decides whether the session was
    /// already past its idle limit (then it stays locked).
    pub fn report_activity(&mut self) -> Result<AppStatus> {
        if let Some(s) = &mut self.session {
            // A locked or expired session refuses; the status says so.
            let _ = s.record_activity();
        }
        self.status()
    }

    pub fn lock(&mut self) -> Result<AppStatus> {
        if let Some(s) = &mut self.session {
            s.lock("manual");
        }
        self.status()
    }

    pub fn unlock(&mut self, req: Unlock) -> Result<AppStatus> {
        let session = self.session.as_mut().ok_or_else(ApiError::signed_out)?;
        let result = session.unlock(&req.passphrase);
        if session.state() == SessionState::Expired {
            self.session = None;
        }
        core(result)?;
        self.record_unrecorded();
        self.status()
    }

    pub fn enroll_2fa(&mut self) -> Result<Enrolment> {
        let e = core(self.active()?.enroll_2fa())?;
        Ok(Enrolment {
            otpauth_uri: Shown(Zeroizing::new(e.otpauth_uri.clone())),
            secret_base32: Shown(Zeroizing::new(e.secret_base32.clone())),
            qr_png_base64: base64::engine::general_purpose::STANDARD.encode(&e.qr_png),
        })
    }

    pub fn confirm_2fa(&mut self, req: Code) -> Result<RecoveryCodes> {
        let codes = core(self.active()?.confirm_2fa(req.code.trim()))?;
        Ok(RecoveryCodes {
            codes: codes.into_iter().map(Shown).collect(),
        })
    }

    pub fn regenerate_recovery_codes(&mut self) -> Result<RecoveryCodes> {
        let codes = core(self.active()?.regenerate_recovery_codes())?;
        Ok(RecoveryCodes {
            codes: codes.into_iter().map(Shown).collect(),
        })
    }

    pub fn change_passphrase(&mut self, req: ChangePassphrase) -> Result<()> {
        core(self.active()?.change_passphrase(&req.current, &req.new))
    }

    pub fn list_users(&mut self) -> Result<Vec<UserRow>> {
        let users = core(self.active()?.list_users())?;
        Ok(users
            .into_iter()
            .map(|u| UserRow {
                username: u.user.username,
                display_name: u.user.display_name,
                role: u.user.role,
                status: u.user.status.as_str().to_owned(),
                created_at: u.user.created_at,
                two_factor: u.two_factor,
            })
            .collect())
    }

    pub fn add_user(&mut self, req: AddUser) -> Result<()> {
        core(self.active()?.add_user(
            &req.username,
            req.display_name.as_deref(),
            &req.role,
            &req.passphrase,
        ))
        .map(|_| ())
    }

    pub fn disable_user(&mut self, req: UserRef) -> Result<()> {
        core(self.active()?.disable_user(&req.username)).map(|_| ())
    }

    pub fn enable_user(&mut self, req: EnableUser) -> Result<()> {
        core(self.active()?.enable_user(&req.username, &req.passphrase))
    }

    pub fn set_user_role(&mut self, req: SetRole) -> Result<()> {
        core(self.active()?.set_user_role(&req.username, &req.role))
    }

    pub fn reset_2fa(&mut self, req: UserRef) -> Result<()> {
        core(self.active()?.reset_2fa(&req.username))
    }

    pub fn signin_history(&mut self, req: HistoryRequest) -> Result<Vec<SignInRow>> {
        let rows = core(self.active()?.signin_history(
            req.username.as_deref().filter(|u| !u.trim().is_empty()),
            req.limit.unwrap_or(DEFAULT_HISTORY),
        ))?;
        Ok(rows
            .into_iter()
            .map(|r| SignInRow {
                username: r.username,
                at: r.at,
                device: r.device,
                outcome: r.outcome,
                detail: r.detail,
            })
            .collect())
    }

    pub fn roles(&mut self) -> Result<RolesMatrix> {
        let roles = core(self.active()?.list_roles())?;
        Ok(RolesMatrix {
            roles: roles
                .into_iter()
                .map(|r| RoleRow {
                    name: r.name,
                    builtin: r.builtin,
                    permissions: r.permissions.iter().map(|p| p.name().to_owned()).collect(),
                })
                .collect(),
            permissions: Permission::ALL
                .iter()
                .map(|p| PermissionRow {
                    name: p.name().to_owned(),
                    description: p.describe().to_owned(),
                    admin_only: p.admin_only(),
                })
                .collect(),
        })
    }

    pub fn create_role(&mut self, req: CreateRole) -> Result<()> {
        let perms = parse_permissions(&req.permissions)?;
        core(self.active()?.create_role(&req.name, &perms)).map(|_| ())
    }

    pub fn policy(&mut self) -> Result<Vec<PolicyEntry>> {
        let policy = core(self.active()?.show_policy())?;
        Ok(policy
            .entries()
            .into_iter()
            .map(|(key, value)| PolicyEntry { key, value })
            .collect())
    }

    pub fn set_policy(&mut self, req: SetPolicy) -> Result<Vec<PolicyEntry>> {
        core(self.active()?.set_policy(&req.key, &req.value))?;
        self.policy()
    }

    pub fn rotate_keys(&mut self) -> Result<Rotated> {
        let key_epoch = core(self.active()?.rotate_keys())?;
        Ok(Rotated { key_epoch })
    }

    pub fn search_patients(&mut self, req: PatientSearch) -> Result<Vec<PatientRow>> {
        let rows = core(
            self.active()?
                .search_patients(&req.text, req.limit.unwrap_or(DEFAULT_SEARCH)),
        )?;
        Ok(rows.into_iter().map(patient_row).collect())
    }

    pub fn list_patients(&mut self, req: PatientList) -> Result<Vec<PatientRow>> {
        let rows = core(
            self.active()?
                .list_patients(req.archived, req.limit.unwrap_or(DEFAULT_LIST)),
        )?;
        Ok(rows.into_iter().map(patient_row).collect())
    }

    /// One patient, with the window title for the record as the privacy setting allows.
    pub fn show_patient(&mut self, req: PatientRef) -> Result<PatientRecord> {
        let s = self.active()?;
        let p = core(s.show_patient(&req.id))?;
        let settings = core(s.privacy_settings())?;
        Ok(patient_record(p, &settings))
    }

    pub fn add_patient(&mut self, req: PatientForm) -> Result<PatientRecord> {
        let s = self.active()?;
        let p = core(s.add_patient(core_fields(req)))?;
        let settings = core(s.privacy_settings())?;
        Ok(patient_record(p, &settings))
    }

    pub fn update_patient(&mut self, req: UpdatePatient) -> Result<PatientRecord> {
        let s = self.active()?;
        let p = core(s.update_patient_with_request(
            &req.id,
            core_fields(req.fields),
            req.requested_by_patient.as_deref(),
        ))?;
        let settings = core(s.privacy_settings())?;
        Ok(patient_record(p, &settings))
    }

    pub fn patient_appointments(&mut self, req: PatientRef) -> Result<Vec<AppointmentRow>> {
        let rows = core(self.active()?.patient_appointments(&req.id))?;
        Ok(rows.into_iter().map(appointment_row).collect())
    }

    pub fn patient_notes(&mut self, req: PatientRef) -> Result<Vec<NoteRow>> {
        let rows = core(self.active()?.patient_notes(&req.id))?;
        Ok(rows
            .into_iter()
            .map(|n| NoteRow {
                id: n.id,
                appointment_id: n.appointment_id,
                practitioner: n.practitioner,
                status: n.status,
                created_at: n.created_at,
                finalised_at: n.finalised_at,
                versions: n.versions,
            })
            .collect())
    }

    pub fn patient_invoices(&mut self, req: PatientRef) -> Result<Vec<InvoiceRow>> {
        let rows = core(self.active()?.patient_invoices(&req.id))?;
        Ok(rows
            .into_iter()
            .map(|i| InvoiceRow {
                id: i.id,
                number: i.number,
                appointment_id: i.appointment_id,
                status: i.status,
                issued_on: i.issued_on,
                total_minor: i.total_minor,
                paid_minor: i.paid_minor,
                balance_minor: i.balance_minor,
            })
            .collect())
    }

    pub fn patient_attachments(&mut self, req: PatientRef) -> Result<Vec<AttachmentRow>> {
        let rows = core(self.active()?.list_attachments(&req.id))?;
        Ok(rows.into_iter().map(attachment_row).collect())
    }

    /// Stores a file the person picked, streamed from memory into the core's encrypted store.
    pub fn add_attachment(&mut self, req: NewAttachment) -> Result<AttachmentRow> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(req.content_base64.as_bytes())
                .map_err(|_| {
                    ApiError::new(
                        ErrorKind::InvalidInput,
                        "content: the file did not arrive intact; pick it again",
                    )
                })?,
        );
        let mut reader = std::io::Cursor::new(bytes.as_slice());
        let a = core(
            self.active()?
                .add_attachment(&req.patient_id, &req.file_name, &mut reader),
        )?;
        Ok(attachment_row(a))
    }

    /// The decrypted bytes for the in-app viewer, in memory only (the core checks the
    /// permission and records the view).
    pub fn read_attachment(&mut self, req: AttachmentRef) -> Result<Zeroizing<Vec<u8>>> {
        let mut bytes = Zeroizing::new(Vec::new());
        core(self.active()?.read_attachment(&req.id, &mut *bytes))?;
        Ok(bytes)
    }

    pub fn patient_balance(&mut self, req: PatientRef) -> Result<Balance> {
        let balance_minor = core(self.active()?.patient_balance(&req.id))?;
        Ok(Balance { balance_minor })
    }

    pub fn list_practitioners(&mut self) -> Result<Vec<PractitionerColumn>> {
        let rows = core(self.active()?.list_practitioners())?;
        Ok(rows
            .into_iter()
            .map(|p| PractitionerColumn {
                username: p.username,
                display_name: p.display_name,
                hours: p
                    .hours
                    .into_iter()
                    .map(|h| WorkingSpanRow {
                        weekday: h.weekday,
                        starts: h.starts,
                        ends: h.ends,
                    })
                    .collect(),
            })
            .collect())
    }

    pub fn list_appointment_types(&mut self) -> Result<Vec<AppointmentTypeRow>> {
        let rows = core(self.active()?.list_appointment_types())?;
        Ok(rows
            .into_iter()
            .map(|t| AppointmentTypeRow {
                name: t.name,
                minutes: t.minutes,
                colour: t.colour,
            })
            .collect())
    }

    pub fn day_appointments(&mut self, req: CalendarRange) -> Result<Vec<AppointmentRow>> {
        let rows = core(
            self.active()?
                .day_appointments(&req.date, req.practitioner.as_deref()),
        )?;
        Ok(rows.into_iter().map(appointment_row).collect())
    }

    pub fn week_appointments(&mut self, req: CalendarRange) -> Result<Vec<AppointmentRow>> {
        let rows = core(
            self.active()?
                .week_appointments(&req.date, req.practitioner.as_deref()),
        )?;
        Ok(rows.into_iter().map(appointment_row).collect())
    }

    pub fn book_appointment(&mut self, req: BookRequest) -> Result<Vec<AppointmentRow>> {
        let rows = core(
            self.active()?
                .book_appointment(&clinvault_core::appointments::Booking {
                    patient_id: &req.patient_id,
                    practitioner: &req.practitioner,
                    appointment_type: &req.appointment_type,
                    start_local: &req.start_local,
                    weekly_occurrences: req.weekly_occurrences.unwrap_or(1),
                    allow_override: req.allow_override,
                }),
        )?;
        // The core decides whether and whom to email and records the outcome in the trail;
        // the booking stands either way, as in the CLI.
        if let Ok(s) = self.active() {
            let _ = s.notify_after_booking(&rows);
        }
        Ok(rows.into_iter().map(appointment_row).collect())
    }

    pub fn move_appointment(&mut self, req: MoveRequest) -> Result<AppointmentRow> {
        let a = core(self.active()?.move_appointment(
            &req.id,
            &req.start_local,
            req.practitioner.as_deref(),
            req.allow_override,
        ))?;
        Ok(appointment_row(a))
    }

    pub fn set_appointment_status(&mut self, req: StatusRequest) -> Result<AppointmentRow> {
        let a = core(self.active()?.set_appointment_status(
            &req.id,
            &req.status,
            req.reason.as_deref(),
        ))?;
        if let Ok(s) = self.active() {
            let _ = s.notify_after_status_change(&a);
        }
        Ok(appointment_row(a))
    }

    // --- Calendar: resize and time off ---

    pub fn resize_appointment(&mut self, req: ResizeRequest) -> Result<AppointmentRow> {
        let a = core(self.active()?.resize_appointment(
            &req.id,
            &req.end_local,
            req.allow_override,
        ))?;
        Ok(appointment_row(a))
    }

    pub fn list_time_off(&mut self, req: TimeOffRange) -> Result<Vec<TimeOffRow>> {
        let rows = core(self.active()?.list_time_off(
            &req.date,
            i64::from(req.days),
            req.practitioner.as_deref(),
        ))?;
        Ok(rows.into_iter().map(time_off_row).collect())
    }

    pub fn add_time_off(&mut self, req: NewTimeOff) -> Result<TimeOffRow> {
        let s = self.active()?;
        let (who, from, to, reason) = (
            &req.practitioner,
            &req.from_local,
            &req.to_local,
            req.reason.as_deref(),
        );
        let t = core(if req.allow_booked {
            s.add_time_off(who, from, to, reason)
        } else {
            s.add_time_off_unless_booked(who, from, to, reason)
        })?;
        Ok(time_off_row(t))
    }

    pub fn remove_time_off(&mut self, req: TimeOffRef) -> Result<()> {
        core(self.active()?.remove_time_off(&req.id))
    }

    // --- end calendar: resize and time off ---

    /// Makes an existing user a practitioner (a calendar column).
    pub fn add_practitioner(&mut self, req: UserRef) -> Result<()> {
        core(self.active()?.add_practitioner(&req.username)).map(|_| ())
    }

    pub fn set_working_hours(&mut self, req: WorkingHours) -> Result<()> {
        core(
            self.active()?
                .set_working_hours(&req.username, &req.day, &req.hours),
        )
    }

    pub fn add_appointment_type(&mut self, req: NewAppointmentType) -> Result<()> {
        core(
            self.active()?.add_appointment_type(
                &req.name,
                req.minutes,
                &req.price,
                req.tax_rate_percent
                    .as_deref()
                    .filter(|t| !t.trim().is_empty()),
            ),
        )
        .map(|_| ())
    }

    pub fn note_templates(&mut self) -> Result<Vec<String>> {
        core(self.active()?.list_note_templates())
    }

    pub fn template_text(&mut self, req: NameRef) -> Result<String> {
        core(self.active()?.template_text(&req.name))
    }

    /// A template whose sections are free text (administrators).
    pub fn add_note_template(&mut self, req: NewTemplate) -> Result<()> {
        let sections: Vec<clinvault_core::notes::TemplateSection> = req
            .sections
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .map(|t| clinvault_core::notes::TemplateSection {
                title: t.to_owned(),
                kind: "text".into(),
                options: Vec::new(),
            })
            .collect();
        core(self.active()?.add_note_template(&req.name, &sections)).map(|_| ())
    }

    pub fn add_note(&mut self, req: NewNote) -> Result<NoteView> {
        core(
            self.active()?
                .add_note(&req.patient_id, req.appointment_id.as_deref(), &req.body),
        )
        .map(note_view)
    }

    /// Autosave of a draft (into the vault).
    pub fn save_draft(&mut self, req: NoteText) -> Result<NoteView> {
        core(self.active()?.save_draft(&req.id, &req.body)).map(note_view)
    }

    pub fn finalise_note(&mut self, req: NoteRef) -> Result<NoteView> {
        core(self.active()?.finalise_note(&req.id)).map(note_view)
    }

    pub fn amend_note(&mut self, req: Amendment) -> Result<NoteView> {
        core(self.active()?.amend_note(&req.id, &req.body, &req.reason)).map(note_view)
    }

    pub fn show_note(&mut self, req: NoteRef) -> Result<NoteView> {
        core(self.active()?.show_note(&req.id)).map(note_view)
    }

    pub fn invoice_appointment(&mut self, req: AppointmentRef) -> Result<InvoiceView> {
        core(self.active()?.invoice_appointment(&req.appointment_id)).map(invoice_view)
    }

    pub fn show_invoice(&mut self, req: InvoiceRef) -> Result<InvoiceView> {
        core(self.active()?.show_invoice(&req.id)).map(invoice_view)
    }

    pub fn patient_consents(&mut self, req: PatientRef) -> Result<Vec<ConsentRow>> {
        let rows = core(self.active()?.list_consents(&req.id))?;
        Ok(rows.into_iter().map(consent_row).collect())
    }

    pub fn record_consent(&mut self, req: NewConsentRequest) -> Result<ConsentRow> {
        let c = core(self.active()?.record_consent(
            &req.patient_id,
            &clinvault_core::consents::NewConsent {
                kind: &req.kind,
                basis: req.basis.as_deref().filter(|b| !b.trim().is_empty()),
                note: req.note.as_deref().filter(|n| !n.trim().is_empty()),
                given_on: req.given_on.as_deref().filter(|d| !d.trim().is_empty()),
            },
        ))?;
        Ok(consent_row(c))
    }

    pub fn withdraw_consent(&mut self, req: WithdrawConsent) -> Result<ConsentRow> {
        let c = core(
            self.active()?
                .withdraw_consent(&req.id, req.on.as_deref().filter(|d| !d.trim().is_empty())),
        )?;
        Ok(consent_row(c))
    }

    /// The core's list of consent kinds and lawful bases (reference data, no patient data).
    pub fn consent_options(&mut self) -> Result<ConsentOptions> {
        self.active()?;
        let list = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(n, d)| ConsentChoice {
                    name: (*n).to_owned(),
                    description: (*d).to_owned(),
                })
                .collect()
        };
        Ok(ConsentOptions {
            kinds: list(clinvault_core::consents::KINDS),
            bases: list(clinvault_core::consents::BASES),
        })
    }

    /// Issued invoices with a balance, oldest first.
    pub fn outstanding_invoices(&mut self) -> Result<Vec<InvoiceView>> {
        let rows = core(self.active()?.outstanding_invoices())?;
        Ok(rows.into_iter().map(invoice_view).collect())
    }

    pub fn revenue_report(&mut self, req: RevenueRequest) -> Result<Vec<RevenueRowView>> {
        let rows = core(self.active()?.revenue_report(&req.from, &req.to))?;
        Ok(rows
            .into_iter()
            .map(|r| RevenueRowView {
                group: r.group,
                key: r.key,
                invoices: r.invoices,
                net_minor: r.net_minor,
                tax_minor: r.tax_minor,
                total_minor: r.total_minor,
                paid_minor: r.paid_minor,
            })
            .collect())
    }

    pub fn void_invoice(&mut self, req: VoidInvoice) -> Result<InvoiceView> {
        core(self.active()?.void_invoice(&req.id, &req.reason)).map(invoice_view)
    }

    pub fn record_payment(&mut self, req: Payment) -> Result<InvoiceView> {
        core(self.active()?.record_payment(
            &req.invoice_id,
            &req.amount,
            &req.method,
            req.paid_on.as_deref().filter(|d| !d.trim().is_empty()),
        ))
        .map(invoice_view)
    }

    pub fn audit_list(&mut self, req: AuditQuery) -> Result<Vec<AuditRow>> {
        let s = self.active()?;
        let filter = audit_filter(s, req)?;
        let rows = core(s.audit_list(&filter))?;
        Ok(rows
            .into_iter()
            .map(|e| AuditRow {
                seq: e.seq,
                at: e.at,
                actor_name: e.actor_name,
                device: e.device,
                action: e.action,
                target_type: e.target_type,
                target_id: e.target_id,
                outcome: e.outcome,
                details: e.details.to_string(),
            })
            .collect())
    }

    /// The filtered trail as CSV, written to a new file where the administrator chose (the
    /// trail holds ids, actions and counts, never patient data).
    pub fn export_audit_csv(&mut self, req: AuditCsv) -> Result<String> {
        let path = full_path("path", &req.path)?;
        let limit = req.query.limit;
        let s = self.active()?;
        let mut filter = audit_filter(s, req.query)?;
        // An export holds every matching entry unless the UI asked for fewer.
        filter.limit = limit.unwrap_or(u32::MAX);
        let io = |e: std::io::Error| {
            ApiError::new(
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    ErrorKind::AlreadyExists
                } else {
                    ErrorKind::Io
                },
                format!("cannot write {}: {e}", path.display()),
            )
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        // Owner-only, like every other file the app writes: staff names, devices, record ids.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        // The file is made before the export is recorded, so a name already taken (or a folder
        // that refuses it) records no export that never reached a file.
        let mut file = opts.open(&path).map_err(io)?;
        let written =
            core(s.audit_export(&filter, clinvault_core::audit_review::ExportFormat::Csv))
                .and_then(|csv| {
                    std::io::Write::write_all(&mut file, csv.as_bytes()).map_err(io)?;
                    file.sync_all().map_err(io)
                });
        if let Err(e) = written {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(path.display().to_string())
    }

    pub fn verify_audit(&mut self) -> Result<VerifyResult> {
        let r = core(self.active()?.verify_audit())?;
        Ok(VerifyResult {
            intact: r.intact,
            entries_checked: r.entries_checked,
            first_seq: r.first_seq,
            last_seq: r.last_seq,
            problem: r.problem.map(|p| format!("entry {}: {}", p.seq, p.detail)),
            checkpoint: r.checkpoint,
        })
    }

    pub fn reanchor_audit(&mut self) -> Result<Reanchored> {
        let r = core(self.active()?.audit_reanchor())?;
        Ok(Reanchored {
            replaced_size: r.replaced_size,
            anchored_at: r.anchored_at,
        })
    }

    pub fn audit_alerts(&mut self, req: AlertsQuery) -> Result<Vec<AlertRow>> {
        let rows = core(self.active()?.audit_alerts(req.include_acknowledged))?;
        Ok(rows
            .into_iter()
            .map(|a| AlertRow {
                id: a.id,
                rule: a.rule,
                raised_at: a.raised_at,
                actor_name: a.actor_name,
                summary: a.summary,
                acknowledged_by: a.acknowledged_by,
                acknowledged_at: a.acknowledged_at,
            })
            .collect())
    }

    pub fn acknowledge_alert(&mut self, req: AlertRef) -> Result<()> {
        core(self.active()?.acknowledge_alert(req.id))
    }

    /// Writes a backup where the person chose; `progress` gets (done, total) and cancels by
    /// returning false (the core then keeps nothing).
    pub fn export_backup(
        &mut self,
        req: ExportBackup,
        progress: &mut dyn FnMut(u64, u64) -> bool,
    ) -> Result<BackupReport> {
        let path = full_path("path", &req.path)?;
        let r = core(
            self.active()?
                .export_backup(&path, req.passphrase.as_ref(), progress),
        )?;
        Ok(BackupReport {
            path: r.path.display().to_string(),
            backup_id: r.backup_id.to_string(),
            bytes: r.bytes,
            patients: r.patients,
            attachments: r.attachments as u64,
            audit_entries: r.audit_entries,
            with_passphrase: r.with_passphrase,
        })
    }

    /// Checks a backup (the core decrypts and verifies everything) and, when `restore_to` is
    /// given, restores it into that new folder once every check passed.
    pub fn verify_backup(
        &mut self,
        req: VerifyBackup,
        progress: &mut dyn FnMut(u64, u64) -> bool,
    ) -> Result<BackupCheckResult> {
        let session = self.active()?;
        let path = full_path("path", &req.path)?;
        let restore_to = req
            .restore_to
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(|t| full_path("restore_to", t))
            .transpose()?;
        // Verify only, or restore into a new folder (which the core verifies first).
        let mut run =
            |opener: &clinvault_core::backup::Opener<'_>,
             progress: &mut dyn FnMut(u64, u64) -> bool| match &restore_to {
                Some(to) => session.restore_backup_file(&path, opener, to, progress),
                None => session.verify_backup_file(&path, opener, progress),
            };
        let check = match (&req.recovery_key, &req.passphrase) {
            (Some(k), _) => {
                let key = core(clinvault_core::RecoveryKey::parse(k.expose_secret()))?;
                run(&clinvault_core::backup::Opener::RecoveryKey(&key), progress)
            }
            (None, Some(p)) => run(&clinvault_core::backup::Opener::Passphrase(p), progress),
            (None, None) => {
                return Err(ApiError::new(
                    ErrorKind::InvalidInput,
                    "passphrase: give the backup passphrase or the recovery key",
                ))
            }
        };
        let c = core(check)?;
        Ok(BackupCheckResult {
            backup_id: c.backup_id.to_string(),
            created_at: c.created_at,
            patients: c.vault.patients,
            attachments: c.vault.attachments,
            audit_entries: c.vault.audit_entries,
            audit_intact: c.vault.audit.intact,
            trail_holds_backup: c.trail_holds_backup,
        })
    }

    /// The window title for a screen that shows no patient (the core's `display_title`).
    pub fn screen_title(&mut self, req: ScreenTitle) -> Result<String> {
        let settings = core(self.active()?.privacy_settings())?;
        Ok(display_title(&settings, &req.screen, None))
    }

    /// The signed-in session, for tests that set up records no command creates yet.
    #[cfg(test)]
    pub(crate) fn session_for_test(&mut self) -> Result<&mut Session> {
        self.active()
    }

    /// The window is closing: end the session so the vault is locked and its keys wiped.
    pub fn window_closed(&mut self) {
        self.auto_push = None;
        self.pending = None;
        self.session = None;
    }
}
