//! One function per command: gather input, call the core, print the result.

use std::io::Write;
use std::sync::Arc;

use clinvault_core::booking_mail::{NotifyOutcome, SmtpSecurity, SmtpSettings};
use clinvault_core::clock::SystemClock;
use clinvault_core::crypto::KdfCost;
use clinvault_core::permissions::Permission;
use clinvault_core::session::device_name;
use clinvault_core::{Error, InitOptions, Session, SessionConfig, SignIn, VaultDir};
use secrecy::SecretString;

use crate::args::*;
use crate::prompt;

type Result<T> = std::result::Result<T, Error>;

impl Global {
    pub(crate) fn signed_in(&self) -> Result<Session> {
        self.sign_in()
    }

    fn dir(&self) -> Result<VaultDir> {
        match &self.vault {
            Some(path) => Ok(VaultDir::new(path)),
            None => VaultDir::platform_default(),
        }
    }

    fn passphrase(&self, label: &str) -> Result<SecretString> {
        if let Some(path) = &self.passphrase_file {
            return prompt::from_file(path);
        }
        if let Some(p) = prompt::from_env("CLINVAULT_PASSPHRASE") {
            return Ok(p);
        }
        prompt::ask(label, "CLINVAULT_PASSPHRASE or --passphrase-file")
    }

    fn username(&self) -> Result<String> {
        match self
            .user
            .clone()
            // An empty variable is no username (not the username "").
            .or_else(|| {
                std::env::var("CLINVAULT_USER")
                    .ok()
                    .filter(|u| !u.trim().is_empty())
            }) {
            Some(u) => Ok(u),
            None => prompt::ask_line("Username", "username", "--user or CLINVAULT_USER"),
        }
    }

    fn code(&self) -> Result<String> {
        match &self.totp {
            Some(c) => Ok(c.clone()),
            // Not echoed: a recovery code stays valid until used.
            None => {
                use secrecy::ExposeSecret;
                prompt::ask("Authenticator or recovery code", "--totp or CLINVAULT_TOTP")
                    .map(|c| c.expose_secret().trim().to_owned())
            }
        }
    }

    pub(crate) fn sign_in(&self) -> Result<Session> {
        let dir = self.dir()?;
        // Fail fast (exit 6) on a missing vault before asking anyone for secrets.
        clinvault_core::vault::status(&dir)?;
        let user = self.username()?;
        let passphrase = self.passphrase("Passphrase")?;
        let cfg = SessionConfig {
            device: device_name("cli"),
            clock: Arc::new(SystemClock),
        };
        match Session::sign_in(&dir, &user, &passphrase, cfg)? {
            SignIn::Complete(s) => Ok(*s),
            SignIn::NeedsSecondFactor(pending) => pending.complete(&self.code()?, false),
        }
    }
}

fn new_passphrase() -> Result<SecretString> {
    match prompt::from_env("CLINVAULT_NEW_PASSPHRASE") {
        Some(p) => Ok(p),
        None => prompt::ask_new("New passphrase", "CLINVAULT_NEW_PASSPHRASE"),
    }
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Internal(format!("cannot format output: {e}")))?;
    println!("{text}");
    Ok(())
}

pub fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Init {
            admin,
            display_name,
            recovery_key_file,
        } => init(g, admin, display_name, recovery_key_file),
        Command::Status { json } => status(g, json),
        Command::Whoami { json } => {
            let session = g.sign_in()?;
            let me = session.whoami()?;
            if json {
                print_json(&me)
            } else {
                println!("{} ({}, {})", me.username, me.display_name, me.role);
                if session.must_enrol_2fa() {
                    println!(
                        "Your role requires two-factor sign-in: run `clinvault user 2fa enroll`."
                    );
                }
                Ok(())
            }
        }
        Command::Passphrase {
            action: PassphraseAction::Change,
        } => {
            let mut session = g.sign_in()?;
            let current = g.passphrase("Current passphrase (again, to confirm)")?;
            let new = new_passphrase()?;
            session.change_passphrase(&current, &new)?;
            println!("Passphrase changed for {}.", session.user().username);
            Ok(())
        }
        Command::Recover {
            recovery_key_file,
            admin,
        } => {
            let dir = g.dir()?;
            clinvault_core::vault::status(&dir)?;
            let key = clinvault_core::vault::read_recovery_file(&recovery_key_file)?;
            let new = new_passphrase()?;
            clinvault_core::vault::recover(&dir, &key, &admin, &new)?;
            println!(
                "New passphrase set for administrator {}.",
                admin.trim().to_ascii_lowercase()
            );
            Ok(())
        }
        Command::User { action } => user(g, action),
        Command::Role { action } => role(g, action),
        Command::Policy { action } => policy(g, action),
        Command::Key { action } => key(g, action),
        Command::Audit { action } => audit(g, action),
        Command::Patient { action } => patient(g, action),
        Command::Privacy { action } => privacy(g, action),
        Command::Retention { action } => retention(g, action),
        Command::Notify { action } => notify_cmd(g, action),
        Command::Calendar {
            action:
                CalendarAction::Export {
                    practitioner,
                    from,
                    to,
                    out,
                },
        } => {
            let mut s = g.sign_in()?;
            let ics = s.calendar_ics(&practitioner, &from, &to)?;
            let mut f = clinvault_core::vault_dir::create_private(&out)?;
            f.write_all(ics.as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::Io {
                    context: format!("cannot write {}", out.display()),
                    source: e,
                })?;
            println!("Wrote {}.", out.display());
            Ok(())
        }
        Command::Practitioner { action } => match action {
            PractitionerAction::Add => {
                let target = g.user.clone().ok_or_else(|| {
                    Error::InvalidInput("practitioner add: name the user with --user NAME".into())
                })?;
                if std::env::var("CLINVAULT_USER").map_or(true, |u| u.trim().is_empty())
                    && !prompt::is_terminal()
                {
                    return Err(Error::InvalidInput(
                        "practitioner add: --user names the new practitioner, so set \
                         CLINVAULT_USER to the administrator who adds them"
                            .into(),
                    ));
                }
                // Here --user names the practitioner; the acting user comes from the environment.
                let acting = Global {
                    user: None,
                    vault: g.vault.clone(),
                    passphrase_file: g.passphrase_file.clone(),
                    totp: g.totp.clone(),
                };
                let p = acting.sign_in()?.add_practitioner(&target)?;
                println!("{}", p.id);
                Ok(())
            }
            PractitionerAction::TimeOff {
                name,
                from,
                to,
                reason,
            } => {
                let t = g
                    .sign_in()?
                    .add_time_off(&name, &from, &to, reason.as_deref())?;
                println!(
                    "Time off recorded for {}.",
                    name.trim().to_ascii_lowercase()
                );
                if t.booked_inside > 0 {
                    eprintln!(
                        "warning: {} appointment(s) are still booked inside it: move or cancel them.",
                        t.booked_inside
                    );
                }
                Ok(())
            }
            PractitionerAction::Hours { name, day, hours } => {
                let mut s = g.sign_in()?;
                s.set_working_hours(&name, &day, &hours)?;
                println!(
                    "Hours set for {} on {day}.",
                    name.trim().to_ascii_lowercase()
                );
                Ok(())
            }
        },
        Command::AppointmentType {
            action:
                AppointmentTypeAction::Add {
                    name,
                    minutes,
                    price,
                    tax,
                    colour,
                },
        } => {
            let mut s = g.sign_in()?;
            let t = s.add_appointment_type(&name, minutes, &price, tax.as_deref())?;
            if let Some(c) = colour {
                s.set_appointment_type_colour(&name, &c)?;
            }
            println!("{}", t.id);
            Ok(())
        }
        Command::Appointment { action } => appointment(g, action),
        Command::Note { action } => note(g, action),
        Command::Invoice { action } => invoice(g, action),
        Command::Report {
            action: ReportAction::Revenue { from, to, json },
        } => {
            let rows = g.sign_in()?.revenue_report(&from, &to)?;
            if json {
                return print_json(&rows);
            }
            use clinvault_core::money::format_minor as m;
            for r in rows {
                println!(
                    "{:<17} {:<24} invoices {:>5}  net {:>12}  tax {:>10}  total {:>12}  paid {:>12}",
                    r.group, r.key, r.invoices, m(r.net_minor), m(r.tax_minor), m(r.total_minor), m(r.paid_minor)
                );
            }
            Ok(())
        }
        Command::Attachment { action } => attachment(g, action),
        Command::Sync { action } => crate::sync_commands::sync(g, action),
        Command::Backup { action } => crate::backup_cmd::run(g, action),
        Command::Demo { patients, seed } => {
            let d = g.sign_in()?.generate_demo_clinic(patients, seed)?;
            println!(
                "Demo clinic added (seed {seed}): {} patients, {} practitioners, {} appointments, \
                 {} invoices, {} notes, {} attachments.",
                d.patients, d.practitioners, d.appointments, d.invoices, d.notes, d.attachments
            );
            Ok(())
        }
    }
}

fn init(
    g: &Global,
    admin: String,
    display_name: Option<String>,
    recovery_key_file: Option<std::path::PathBuf>,
) -> Result<()> {
    let dir = g.dir()?;
    let passphrase = match (&g.passphrase_file, prompt::from_env("CLINVAULT_PASSPHRASE")) {
        (Some(path), _) => prompt::from_file(path)?,
        (None, Some(p)) => p,
        (None, None) => prompt::ask_new(
            "Administrator passphrase",
            "CLINVAULT_PASSPHRASE or --passphrase-file",
        )?,
    };
    let recovery = clinvault_core::vault::init(
        &dir,
        InitOptions {
            admin_username: admin.clone(),
            admin_display_name: display_name,
            passphrase,
            kdf_cost: KdfCost::for_new_vaults(),
            recovery_key_file: recovery_key_file.clone(),
        },
    )?;
    println!("Vault created at {}", dir.root().display());
    println!("Administrator: {}", admin.trim().to_ascii_lowercase());
    println!();
    println!("RECOVERY KEY (shown only this once; write it down and keep it offline):");
    println!();
    println!("    {}", recovery.display().as_str());
    println!();
    if let Some(path) = recovery_key_file {
        println!("It was also written to {}.", path.display());
    }
    println!("Anyone holding it can open the vault and reset an administrator's passphrase.");
    Ok(())
}

fn status(g: &Global, json: bool) -> Result<()> {
    let status = clinvault_core::vault::status(&g.dir()?)?;
    if json {
        return print_json(&status);
    }
    println!("vault:           {}", status.path);
    println!("vault id:        {}", status.vault_id);
    println!("format version:  {}", status.format_version);
    println!("SQLCipher:       {}", status.sqlcipher_version);
    println!("created:         {}", status.created_at);
    println!("key slots:       {}", status.key_slots);
    println!("key epoch:       {}", status.key_epoch);
    if status.rotation_pending {
        println!(
            "note:            a key rotation was interrupted; it completes at the next sign-in"
        );
    }
    Ok(())
}

fn user(g: &Global, action: UserAction) -> Result<()> {
    let mut s = g.sign_in()?;
    match action {
        UserAction::Add {
            name,
            role,
            display_name,
        } => {
            let pass = new_passphrase()?;
            let user = s.add_user(&name, display_name.as_deref(), &role, &pass)?;
            println!("{}", user.id);
            eprintln!("Added {} as {}.", user.username, user.role);
        }
        UserAction::List { json } => {
            let users = s.list_users()?;
            if json {
                return print_json(&users);
            }
            for u in users {
                println!(
                    "{:<20} {:<14} {:<9} 2fa:{:<4} {}",
                    u.user.username,
                    u.user.role,
                    u.user.status.as_str(),
                    if u.two_factor { "on" } else { "off" },
                    u.user.display_name
                );
            }
        }
        UserAction::SetRole { name, role } => {
            s.set_user_role(&name, &role)?;
            println!("{} is now {}.", name.trim().to_ascii_lowercase(), role);
        }
        UserAction::Disable { name } => {
            let user = s.disable_user(&name)?;
            println!(
                "{} is disabled; their key slot was removed and the vault keys rotated.",
                user.username
            );
        }
        UserAction::Enable { name } => {
            let pass = new_passphrase()?;
            s.enable_user(&name, &pass)?;
            println!(
                "{} is enabled with a new initial passphrase.",
                name.trim().to_ascii_lowercase()
            );
        }
        UserAction::History { name, limit, json } => {
            let rows = s.signin_history(name.as_deref(), limit)?;
            if json {
                return print_json(&rows);
            }
            for r in rows {
                println!(
                    "{}  {:<16} {:<10} {:<24} {}",
                    r.at, r.username, r.outcome, r.device, r.detail
                );
            }
        }
        UserAction::TwoFactor { action } => two_factor(&mut s, action)?,
    }
    Ok(())
}

fn two_factor(s: &mut Session, action: TwoFactorAction) -> Result<()> {
    match action {
        TwoFactorAction::Enroll { qr } => {
            let e = s.enroll_2fa()?;
            if let Some(path) = qr {
                let mut f = clinvault_core::vault_dir::create_private(&path)?;
                f.write_all(&e.qr_png).map_err(|err| Error::Io {
                    context: format!("cannot write {}", path.display()),
                    source: err,
                })?;
                eprintln!("QR code written to {}.", path.display());
            }
            println!("{}", e.otpauth_uri);
            eprintln!(
                "Add this to your authenticator app (or type the key {}), then run \
                 `clinvault user 2fa confirm CODE` with the code it shows.",
                e.secret_base32
            );
        }
        TwoFactorAction::Confirm { code } => {
            let codes = s.confirm_2fa(&code)?;
            eprintln!(
                "Two-factor sign-in is on. Recovery codes (each works once; keep them safe):"
            );
            for c in codes {
                println!("{}", c.as_str());
            }
        }
        TwoFactorAction::RecoveryCodes => {
            let codes = s.regenerate_recovery_codes()?;
            eprintln!("New recovery codes (the old ones no longer work):");
            for c in codes {
                println!("{}", c.as_str());
            }
        }
        TwoFactorAction::Reset { name } => {
            s.reset_2fa(&name)?;
            println!(
                "Two-factor sign-in reset for {}.",
                name.trim().to_ascii_lowercase()
            );
        }
    }
    Ok(())
}

fn role(g: &Global, action: RoleAction) -> Result<()> {
    let mut s = g.sign_in()?;
    match action {
        RoleAction::List { json } => {
            let roles = s.list_roles()?;
            if json {
                return print_json(&roles);
            }
            for r in roles {
                let perms: Vec<&str> = r.permissions.iter().map(|p| p.name()).collect();
                println!("{:<14} {}", r.name, perms.join(" "));
            }
        }
        RoleAction::Create { name, permissions } => {
            let perms = permissions
                .iter()
                .map(|p| p.trim().parse::<Permission>())
                .collect::<Result<Vec<_>>>()?;
            let role = s.create_role(&name, &perms)?;
            println!("Role {} created.", role.name);
        }
    }
    Ok(())
}

fn policy(g: &Global, action: PolicyAction) -> Result<()> {
    let mut s = g.sign_in()?;
    match action {
        PolicyAction::Show { json } => {
            let p = s.show_policy()?;
            if json {
                return print_json(&p);
            }
            for (k, v) in p.entries() {
                println!("{k:<32} {v}");
            }
        }
        PolicyAction::Set { key, value } => {
            let (old, new) = s.set_policy(&key, &value)?;
            println!("{key}: {old} -> {new}");
        }
    }
    Ok(())
}

fn key(g: &Global, action: KeyAction) -> Result<()> {
    let mut s = g.sign_in()?;
    match action {
        KeyAction::ExportDbKey { json } => {
            let again = g.passphrase("Passphrase (again, to confirm)")?;
            // The code given for this command was proved at sign-in a moment ago; it is single
            // use, so re-authentication relies on that proof rather than asking for it again.
            let key = s.export_db_key(&again, None)?;
            if json {
                print_json(&serde_json::json!({ "db_key_hex": key.as_str() }))?;
            } else {
                println!("{}", key.as_str());
                eprintln!(
                    "Open the database with any SQLCipher 4 tool: PRAGMA key = \"x'<key>'\"; \
                     anyone with this key can read every record."
                );
            }
        }
        KeyAction::Rotate => {
            let epoch = s.rotate_keys()?;
            println!("Vault keys rotated (key epoch {epoch}).");
        }
    }
    Ok(())
}

/// Trail text for the terminal: an entry can hold text someone typed into a refused request
/// (a record id, a setting's name), and control characters in it must not drive the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn audit(g: &Global, action: AuditAction) -> Result<()> {
    use clinvault_core::audit_review::{AuditFilter, ExportFormat};
    let mut s = g.sign_in()?;
    match action {
        AuditAction::Verify { json } => {
            let report = s.verify_audit()?;
            if json {
                print_json(&report)?;
            } else if report.intact {
                println!(
                    "audit trail intact: {} entries checked; {}",
                    report.entries_checked, report.checkpoint
                );
            }
            if let Some(p) = report.problem {
                return Err(Error::Integrity(format!(
                    "audit trail verification failed at entry {}: {} ({})",
                    p.seq,
                    serde_json::to_value(p.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    p.detail
                )));
            }
        }
        AuditAction::List {
            user,
            action,
            patient,
            outcome,
            since,
            until,
            limit,
            before_seq,
            json,
            csv,
        } => {
            let filter = AuditFilter {
                user,
                action,
                target_type: patient.as_ref().map(|_| "patient".to_owned()),
                target_id: patient,
                outcome,
                since: since.map(|d| s.parse_when("since", &d)).transpose()?,
                until: until.map(|d| s.parse_when("until", &d)).transpose()?,
                before_seq,
                // An export is for an investigation: all of it, unless asked for less.
                limit: limit.unwrap_or(if json || csv { u32::MAX } else { 100 }),
            };
            if json || csv {
                let format = if csv {
                    ExportFormat::Csv
                } else {
                    ExportFormat::Json
                };
                print!("{}", s.audit_export(&filter, format)?);
                if json {
                    println!();
                }
            } else {
                for e in s.audit_list(&filter)? {
                    println!(
                        "{:>6} {} {:<14} {:<22} {:<7} {}{}",
                        e.seq,
                        e.at,
                        printable(&e.actor_name),
                        printable(&e.action),
                        e.outcome,
                        e.target_type
                            .map(|t| format!("{}:", printable(&t)))
                            .unwrap_or_default(),
                        printable(&e.target_id.unwrap_or_default())
                    );
                }
            }
        }
        AuditAction::Alerts { json, all } => {
            let alerts = s.audit_alerts(all)?;
            if json {
                return print_json(&alerts);
            }
            for a in alerts {
                println!(
                    "{:>4} {} {:<26} {}{}",
                    a.id,
                    a.raised_at,
                    a.rule,
                    printable(&a.summary),
                    a.acknowledged_by
                        .map(|b| format!(" (acknowledged by {})", printable(&b)))
                        .unwrap_or_default()
                );
            }
        }
        AuditAction::Ack { id } => {
            s.acknowledge_alert(id)?;
            println!("Alert {id} acknowledged.");
        }
        AuditAction::Prune { before } => {
            let before = s.parse_when("before", &before)?;
            let r = s.audit_prune(before)?;
            println!("{} entries removed.", r.removed);
        }
        AuditAction::Reanchor => {
            let r = s.audit_reanchor()?;
            println!(
                "The audit trail is anchored anew at entry {}; the replaced checkpoint \
                 (entry {}) is recorded in the trail.",
                r.anchored_at, r.replaced_size
            );
        }
    }
    Ok(())
}

fn patient_fields(a: PatientFieldArgs) -> clinvault_core::patients::PatientFields {
    clinvault_core::patients::PatientFields {
        first_name: a.first,
        last_name: a.last,
        date_of_birth: a.dob,
        email: a.email,
        phone: a.phone,
        ..Default::default()
    }
}

fn print_patient(p: &clinvault_core::patients::Patient, json: bool) -> Result<()> {
    if json {
        return print_json(p);
    }
    let f = &p.fields;
    println!("id:            {}", p.id);
    println!(
        "name:          {} {}",
        f.first_name.as_deref().unwrap_or(""),
        f.last_name.as_deref().unwrap_or("")
    );
    for (label, v) in [
        ("preferred:", &f.preferred_name),
        ("date of birth:", &f.date_of_birth),
        ("phone:", &f.phone),
        ("email:", &f.email),
    ] {
        if let Some(v) = v {
            println!("{label:<15}{v}");
        }
    }
    if f.archived == Some(true) {
        println!("archived");
    }
    if let (Some(at), Some(pseudonym)) = (&p.anonymised_at, &p.pseudonym) {
        println!("anonymised:    {at} (reference {pseudonym})");
    }
    Ok(())
}

fn print_summaries(rows: &[clinvault_core::patients::PatientSummary], json: bool) -> Result<()> {
    if json {
        return print_json(&rows);
    }
    for p in rows {
        println!(
            "{}  {} {}  {}  {}",
            p.id,
            p.first_name,
            p.last_name,
            p.date_of_birth.as_deref().unwrap_or("-"),
            p.phone.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

fn patient(g: &Global, action: PatientAction) -> Result<()> {
    let mut s = g.sign_in()?;
    match action {
        PatientAction::Add { fields, json } => {
            let p = s.add_patient(patient_fields(fields))?;
            if json {
                print_json(&p)?;
            } else {
                println!("{}", p.id);
            }
        }
        PatientAction::Show { id, json } => print_patient(&s.show_patient(&id)?, json)?,
        PatientAction::Update {
            id,
            fields,
            requested_by_patient,
            json,
        } => {
            let p = s.update_patient_with_request(
                &id,
                patient_fields(fields),
                requested_by_patient.as_deref(),
            )?;
            if json {
                print_json(&p)?;
            } else {
                println!("{}", p.id);
            }
        }
        PatientAction::History { id, json } => {
            let rows = s.patient_history(&id)?;
            if json {
                return print_json(&rows);
            }
            for h in rows {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not set)".into());
                println!(
                    "{}  {:<10} {:<18} {} -> {}",
                    h.changed_at,
                    h.changed_by,
                    h.field,
                    show(&h.old_value),
                    show(&h.new_value)
                );
                if let Some(r) = h.patient_request {
                    println!("    requested by the patient: {r}");
                }
            }
        }
        PatientAction::Consent { action } => consent(&mut s, action)?,
        PatientAction::Hold { id, reason } => {
            let h = s.place_legal_hold(&id, &reason)?;
            println!("Legal hold {} placed on patient {}.", h.id, h.patient_id);
        }
        PatientAction::ReleaseHold { id, note } => {
            let h = s.release_legal_hold(&id, note.as_deref())?;
            println!("Legal hold {} released.", h.id);
        }
        PatientAction::Holds { id, json } => {
            let rows = s.legal_holds(&id)?;
            if json {
                return print_json(&rows);
            }
            for h in rows {
                let state = match &h.released_at {
                    None => "ACTIVE".to_owned(),
                    Some(at) => format!(
                        "released {at} by {}",
                        h.released_by.as_deref().unwrap_or("?")
                    ),
                };
                println!(
                    "{}  placed {} by {}  {}  reason: {}",
                    h.id, h.placed_at, h.placed_by, state, h.reason
                );
            }
        }
        PatientAction::Export { id, out, json } => {
            let done = s.export_patient(&id, &out)?;
            if json {
                return print_json(&done);
            }
            println!(
                "Exported {} records into {}: {}",
                done.records,
                done.out_dir.display(),
                done.files.join(", ")
            );
        }
        PatientAction::Anonymise { id, confirm, json } => {
            let confirm = match confirm {
                Some(c) => c,
                None => prompt::ask_line(
                    "This erases the patient's identity and clinical records for good. \
                     Type the patient's id to confirm",
                    "confirmation",
                    "--confirm ID",
                )?,
            };
            let done = s.anonymise_patient(&id, &confirm)?;
            if json {
                return print_json(&done);
            }
            println!(
                "Patient {} anonymised as {}: {} notes and {} attachments removed, {} invoices kept.",
                done.patient_id,
                done.pseudonym,
                done.notes_removed,
                done.attachments_removed,
                done.invoices_kept
            );
            if !done.log_truncated {
                println!(
                    "Another program has the vault open: old pages leave the database log when it closes."
                );
            }
            if done.sync_snapshots_hold_patient {
                println!("{SYNC_ERASURE_HINT}");
            }
        }
        PatientAction::Search { query, limit, json } => {
            print_summaries(&s.search_patients(&query, limit)?, json)?
        }
        PatientAction::List {
            archived,
            limit,
            json,
        } => print_summaries(&s.list_patients(archived, limit)?, json)?,
    }
    Ok(())
}

fn consent(s: &mut Session, action: ConsentAction) -> Result<()> {
    match action {
        ConsentAction::List { id, json } => {
            let rows = s.list_consents(&id)?;
            if json {
                return print_json(&rows);
            }
            for c in rows {
                let state = match &c.withdrawn_on {
                    None => "active".to_owned(),
                    Some(d) => format!("withdrawn {d}"),
                };
                println!(
                    "{}  {:<10} {:<12} given {}  {}",
                    c.id,
                    c.kind,
                    c.basis.as_deref().unwrap_or("-"),
                    c.given_on,
                    state
                );
            }
        }
        ConsentAction::Give {
            id,
            kind,
            basis,
            note,
            on,
            json,
        } => {
            let c = s.record_consent(
                &id,
                &clinvault_core::consents::NewConsent {
                    kind: &kind,
                    basis: basis.as_deref(),
                    note: note.as_deref(),
                    given_on: on.as_deref(),
                },
            )?;
            if json {
                return print_json(&c);
            }
            println!("{}", c.id);
        }
        ConsentAction::Withdraw { consent_id, on } => {
            let c = s.withdraw_consent(&consent_id, on.as_deref())?;
            println!(
                "Consent {} withdrawn on {}.",
                c.id,
                c.withdrawn_on.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

fn privacy(g: &Global, action: PrivacyAction) -> Result<()> {
    let mut s = g.sign_in()?;
    let settings = match action {
        PrivacyAction::Show { json } => {
            let settings = s.privacy_settings()?;
            if json {
                return print_json(&settings);
            }
            settings
        }
        PrivacyAction::Set { key, value } => s.set_privacy_setting(&key, &value)?,
    };
    for (k, v) in settings.entries() {
        println!("{k:<28}{v}");
    }
    Ok(())
}

fn print_rules(r: &clinvault_core::retention::Rules) {
    println!("preset:                      {}", r.preset);
    println!(
        "clinical records:            {} years after the last visit",
        r.clinical_years
    );
    println!(
        "minors (younger than {}):    also until {} years after turning {}",
        r.majority_age, r.minor_years_after_majority, r.majority_age
    );
    println!("financial records:           {} years", r.financial_years);
    println!("audit trail:                 {} years", r.audit_years);
}

fn print_plan(p: &clinvault_core::retention::RetentionPlan) {
    println!("As of {} ({} schedule):", p.as_of, p.rules.preset);
    println!("  patients to anonymise: {}", p.patients_to_anonymise.len());
    for d in &p.patients_to_anonymise {
        println!("    {}  due {}", d.patient_id, d.due_on);
    }
    println!(
        "  skipped, under a legal hold: {}",
        p.held_patients_skipped.len()
    );
    for id in &p.held_patients_skipped {
        println!("    {id}");
    }
    println!("  invoices to delete: {}", p.invoices_to_delete.len());
    for id in &p.invoices_to_delete {
        println!("    {id}");
    }
    println!(
        "  audit entries before {}: {}",
        p.audit_before, p.audit_entries_due
    );
    if !p.backups_past_retention.is_empty() {
        println!(
            "  single-file backups older than the retention period (made {}): destroy them, \
             they may hold removed records",
            p.backups_past_retention.join(", ")
        );
    }
}

fn retention(g: &Global, action: RetentionAction) -> Result<()> {
    if let RetentionAction::Presets { json } = action {
        let all = clinvault_core::retention::presets()?;
        if json {
            return print_json(&all);
        }
        for (name, p) in all {
            println!(
                "{name}: {} — clinical {} y, minors to {}+{}, financial {} y, audit {} y",
                p.label,
                p.clinical_years,
                p.majority_age,
                p.minor_years_after_majority,
                p.financial_years,
                p.audit_years
            );
            for src in p.sources {
                println!("    {src}");
            }
        }
        return Ok(());
    }
    let mut s = g.sign_in()?;
    match action {
        RetentionAction::Presets { .. } => {}
        RetentionAction::Show { json } => {
            let r = s.retention_rules()?;
            if json {
                return print_json(&r);
            }
            print_rules(&r);
        }
        RetentionAction::SetPreset { name } => print_rules(&s.set_retention_preset(&name)?),
        RetentionAction::Set { key, value } => print_rules(&s.set_retention(&key, &value)?),
        RetentionAction::Run { dry_run, json } => {
            if dry_run {
                let p = s.retention_plan()?;
                if json {
                    return print_json(&p);
                }
                print_plan(&p);
            } else {
                let r = s.retention_run()?;
                if json {
                    return print_json(&r);
                }
                print_plan(&r.plan);
                println!(
                    "Done: {} patients anonymised, {} invoices deleted, {} audit entries pruned.",
                    r.patients_anonymised, r.invoices_deleted, r.audit_entries_pruned
                );
                if r.sync_snapshots_hold_patients {
                    println!("{SYNC_ERASURE_HINT}");
                }
            }
        }
    }
    Ok(())
}

const SYNC_ERASURE_HINT: &str = "Sync snapshots pushed before this still hold the patient: run \
     `clinvault sync push`, then `clinvault sync prune --keep-last 1` (or a policy that keeps no \
     older snapshot) to remove them from the sync target.";

fn appointment(g: &Global, action: AppointmentAction) -> Result<()> {
    let mut s = g.sign_in()?;
    match action {
        AppointmentAction::Add {
            patient,
            practitioner,
            appointment_type,
            start,
            repeat_weekly,
            r#override,
            json,
        } => {
            let booked = s.book_appointment(&clinvault_core::appointments::Booking {
                patient_id: &patient,
                practitioner: &practitioner,
                appointment_type: &appointment_type,
                start_local: &start,
                weekly_occurrences: repeat_weekly,
                allow_override: r#override,
            })?;
            warn_unnotified(s.notify_after_booking(&booked));
            if json {
                return print_json(&booked);
            }
            for a in booked {
                println!("{}", a.id);
            }
        }
        AppointmentAction::Free {
            practitioner,
            appointment_type,
            from,
            count,
            json,
        } => {
            let slots = s.next_free_slots(&practitioner, &appointment_type, &from, count)?;
            if json {
                return print_json(&slots);
            }
            for slot in slots {
                println!("{slot}");
            }
        }
        AppointmentAction::List {
            day,
            practitioner,
            json,
        } => {
            let rows = s.day_appointments(&day, practitioner.as_deref())?;
            if json {
                return print_json(&rows);
            }
            for a in rows {
                println!(
                    "{}  {}-{}  {:<12} {:<18} {:<20} {}",
                    a.id,
                    a.starts_local.get(11..).unwrap_or(""),
                    a.ends_local.get(11..).unwrap_or(""),
                    a.practitioner,
                    a.appointment_type,
                    a.patient_name,
                    a.status
                );
            }
        }
        AppointmentAction::Status { id, status, reason } => {
            let a = s.set_appointment_status(&id, &status, reason.as_deref())?;
            warn_unnotified(s.notify_after_status_change(&a));
            println!("{} is {}.", a.id, a.status);
        }
    }
    Ok(())
}

/// The booking stands whether or not the practitioner's email went out, so a failure is a
/// warning, not an error.
fn warn_unnotified(outcome: Option<clinvault_core::Result<NotifyOutcome>>) {
    if let Some(Err(e)) = outcome {
        eprintln!("warning: the practitioner was not notified: {e}");
    }
}

fn notify_cmd(g: &Global, action: NotifyAction) -> Result<()> {
    let mut s = g.sign_in()?;
    match action {
        NotifyAction::Smtp {
            host,
            port,
            security,
            from,
            username,
        } => {
            s.set_smtp(&SmtpSettings {
                host,
                port,
                security: SmtpSecurity::parse(&security)?,
                from,
                username,
            })?;
            println!("SMTP server set.");
        }
        NotifyAction::SmtpPassword => {
            let password = match prompt::from_env("CLINVAULT_SMTP_PASSWORD") {
                Some(p) => p,
                None => prompt::ask("SMTP password", "CLINVAULT_SMTP_PASSWORD")?,
            };
            s.set_smtp_password(&password)?;
            println!("SMTP password kept in this computer's keyring.");
        }
        NotifyAction::Address {
            practitioner,
            email,
            off,
        } => {
            if email.is_none() && !off {
                return Err(Error::InvalidInput(
                    "email: give an address, or --off to stop notifications".into(),
                ));
            }
            s.set_notification_address(&practitioner, email.as_deref())?;
            println!("Notification address for {practitioner} updated.");
        }
        NotifyAction::Show { json } => {
            let smtp = s.smtp_settings()?;
            if json {
                return print_json(&smtp);
            }
            match smtp {
                None => println!("No SMTP server set up: no notification emails are sent."),
                Some(m) => println!(
                    "{}:{} ({:?}) from {}{}",
                    m.host,
                    m.port,
                    m.security,
                    m.from,
                    m.username
                        .map(|u| format!(", signing in as {u}"))
                        .unwrap_or_default()
                ),
            }
        }
    }
    Ok(())
}

fn note(g: &Global, action: NoteAction) -> Result<()> {
    let mut s = g.sign_in()?;
    let n = match action {
        NoteAction::Add {
            patient,
            appointment,
            file,
        } => s.add_note(
            &patient,
            appointment.as_deref(),
            &prompt::read_input(&file, "file")?,
        )?,
        NoteAction::Finalize { id } => s.finalise_note(&id)?,
        NoteAction::Amend { id, file, reason } => {
            s.amend_note(&id, &prompt::read_input(&file, "file")?, &reason)?
        }
        NoteAction::Show { id, json } => {
            let n = s.show_note(&id)?;
            if json {
                return print_json(&n);
            }
            println!("note {} ({}, by {})", n.id, n.status, n.practitioner);
            for v in &n.versions {
                println!(
                    "--- version {} ({}) {}{}",
                    v.version,
                    v.kind,
                    v.created_at,
                    v.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
                println!("{}", v.body);
            }
            return Ok(());
        }
    };
    println!("{}", n.id);
    Ok(())
}

fn print_invoice(i: &clinvault_core::invoices::Invoice, json: bool) -> Result<()> {
    if json {
        return print_json(i);
    }
    use clinvault_core::money::format_minor as m;
    println!(
        "invoice {} ({}) dated {} — {}",
        i.number
            .map(|n| n.to_string())
            .unwrap_or_else(|| "(draft)".into()),
        i.id,
        i.issued_on.as_deref().unwrap_or("-"),
        i.status
    );
    for l in &i.lines {
        println!(
            "  {} × {}  {}  tax {}",
            l.quantity,
            l.description,
            m(l.net_minor),
            m(l.tax_minor)
        );
    }
    println!(
        "  total {}  paid {}  balance {}",
        m(i.total_minor),
        m(i.paid_minor),
        m(i.balance_minor)
    );
    Ok(())
}

fn invoice(g: &Global, action: InvoiceAction) -> Result<()> {
    let mut s = g.sign_in()?;
    match action {
        InvoiceAction::Create { appointment } => {
            println!("{}", s.invoice_appointment(&appointment)?.id)
        }
        InvoiceAction::Pay {
            id,
            amount,
            method,
            date,
        } => print_invoice(
            &s.record_payment(&id, &amount, &method, date.as_deref())?,
            false,
        )?,
        InvoiceAction::Void { id, reason } => print_invoice(&s.void_invoice(&id, &reason)?, false)?,
        InvoiceAction::Show { id, json } => print_invoice(&s.show_invoice(&id)?, json)?,
        InvoiceAction::Outstanding { json } => {
            let rows = s.outstanding_invoices()?;
            if json {
                return print_json(&rows);
            }
            for i in rows {
                println!(
                    "{:>6}  {}  {}  balance {}",
                    i.number.unwrap_or_default(),
                    i.issued_on.as_deref().unwrap_or("-"),
                    i.id,
                    clinvault_core::money::format_minor(i.balance_minor)
                );
            }
        }
        InvoiceAction::Pdf { id, out } => {
            let pdf = s.invoice_pdf(&id)?;
            // Only where the person chose, never over an existing file; removed if the write fails.
            let mut f = clinvault_core::vault_dir::create_private(&out)?;
            let written = std::io::Write::write_all(&mut f, &pdf).and_then(|()| f.sync_all());
            if let Err(e) = written {
                drop(f);
                let _ = std::fs::remove_file(&out);
                return Err(Error::Io {
                    context: format!("cannot write {}", out.display()),
                    source: e,
                });
            }
            eprintln!(
                "Saved the invoice ({} bytes) to {}.",
                pdf.len(),
                out.display()
            );
        }
    }
    Ok(())
}

fn attachment(g: &Global, action: AttachmentAction) -> Result<()> {
    let mut s = g.sign_in()?;
    match action {
        AttachmentAction::Add { patient, file } => {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| Error::InvalidInput("file: not a file name".into()))?;
            let mut f = std::fs::File::open(&file).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::NotFound(format!("no file at {}", file.display()))
                } else {
                    Error::Io {
                        context: format!("cannot read {}", file.display()),
                        source: e,
                    }
                }
            })?;
            println!("{}", s.add_attachment(&patient, &name, &mut f)?.id);
        }
        AttachmentAction::Get { id, out } => {
            // Only where the person chose, never over an existing file; removed if the read fails.
            let f = clinvault_core::vault_dir::create_private(&out)?;
            let mut w = std::io::BufWriter::new(f);
            let result = s.read_attachment(&id, &mut w).and_then(|meta| {
                use std::io::Write;
                w.flush().map_err(|e| Error::Io {
                    context: format!("cannot write {}", out.display()),
                    source: e,
                })?;
                Ok(meta)
            });
            match result {
                Ok(meta) => eprintln!(
                    "Saved {} ({} bytes) to {}.",
                    meta.file_name,
                    meta.size,
                    out.display()
                ),
                Err(e) => {
                    drop(w);
                    let _ = std::fs::remove_file(&out);
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}
