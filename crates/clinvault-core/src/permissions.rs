//! Permissions, the built-in roles and custom roles. The core checks these on every operation
//! (see `session::Session::gate`); the UI only reflects them. docs/permissions.md is generated
//! from this file and a test fails when the two drift.

use std::collections::BTreeSet;
use std::fmt;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Error, Result};

macro_rules! permissions {
    ($( $variant:ident = $name:literal, $admin_only:literal, $describe:literal; )*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum Permission { $( #[serde(rename = $name)] $variant, )* }

        impl Permission {
            pub const ALL: &'static [Permission] = &[ $( Permission::$variant, )* ];

            pub fn name(self) -> &'static str {
                match self { $( Permission::$variant => $name, )* }
            }

            /// Destructive or organisation-wide: never granted to any role but administrator,
            /// and refused in custom roles (separation of duties).
            pub fn admin_only(self) -> bool {
                match self { $( Permission::$variant => $admin_only, )* }
            }

            pub fn describe(self) -> &'static str {
                match self { $( Permission::$variant => $describe, )* }
            }
        }
    };
}

permissions! {
    PatientRead = "patient.read", false, "read patient demographics";
    PatientWrite = "patient.write", false, "create and edit patient demographics";
    NotesRead = "notes.read", false, "read treatment notes";
    NotesWrite = "notes.write", false, "write and amend treatment notes";
    NotesFinalise = "notes.finalise", false, "finalise treatment notes";
    AppointmentsRead = "appointments.read", false, "view the calendar";
    AppointmentsManage = "appointments.manage", false, "book, move and cancel appointments";
    AppointmentsOverride = "appointments.override", false, "book over another booking or outside working hours";
    AttachmentsRead = "attachments.read", false, "open patient attachments";
    AttachmentsWrite = "attachments.write", false, "add patient attachments";
    InvoicesRead = "invoices.read", false, "read invoices and payments";
    InvoicesWrite = "invoices.write", false, "raise invoices and record payments";
    FinancialReports = "reports.financial", false, "run financial reports";
    PatientExport = "patient.export", true, "export a patient's data";
    RecordsErase = "records.erase", true, "delete or anonymise records";
    UsersManage = "users.manage", true, "manage users and roles";
    SettingsManage = "settings.manage", true, "change security policy and clinic settings";
    AuditRead = "audit.read", true, "read and export the audit trail";
    AuditPrune = "audit.prune", true, "prune audit entries older than the retention period, and anchor the trail anew after a restore";
    BackupManage = "backup.manage", true, "export and restore backups";
    SyncManage = "sync.manage", true, "configure and run sync";
    KeysManage = "keys.manage", true, "rotate keys and export the database key";
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Permission {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Permission::ALL
            .iter()
            .copied()
            .find(|p| p.name() == s)
            .ok_or_else(|| Error::InvalidInput(format!("unknown permission {s:?}")))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinRole {
    Administrator,
    Practitioner,
    Receptionist,
    Biller,
}

impl BuiltinRole {
    pub const ALL: &'static [BuiltinRole] = &[
        BuiltinRole::Administrator,
        BuiltinRole::Practitioner,
        BuiltinRole::Receptionist,
        BuiltinRole::Biller,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BuiltinRole::Administrator => "administrator",
            BuiltinRole::Practitioner => "practitioner",
            BuiltinRole::Receptionist => "receptionist",
            BuiltinRole::Biller => "biller",
        }
    }

    pub fn from_name(name: &str) -> Option<BuiltinRole> {
        BuiltinRole::ALL.iter().copied().find(|r| r.name() == name)
    }

    pub fn permissions(self) -> BTreeSet<Permission> {
        use Permission::*;
        let list: &[Permission] = match self {
            BuiltinRole::Administrator => Permission::ALL,
            BuiltinRole::Practitioner => &[
                PatientRead,
                PatientWrite,
                NotesRead,
                NotesWrite,
                NotesFinalise,
                AppointmentsRead,
                AppointmentsManage,
                AttachmentsRead,
                AttachmentsWrite,
                InvoicesRead,
            ],
            // Books and bills, files scanned letters, never reads clinical content.
            BuiltinRole::Receptionist => &[
                PatientRead,
                PatientWrite,
                AppointmentsRead,
                AppointmentsManage,
                AttachmentsWrite,
                InvoicesRead,
                InvoicesWrite,
            ],
            BuiltinRole::Biller => &[
                PatientRead,
                AppointmentsRead,
                InvoicesRead,
                InvoicesWrite,
                FinancialReports,
            ],
        };
        list.iter().copied().collect()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Role {
    pub name: String,
    pub builtin: bool,
    pub permissions: BTreeSet<Permission>,
}

impl Role {
    pub fn allows(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }
}

pub fn normalise_role_name(raw: &str) -> Result<String> {
    let name = raw.trim().to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(Error::InvalidInput(
            "role: use 1–40 lower-case letters, digits, '-' or '_'".into(),
        ));
    }
    Ok(name)
}

pub fn load(conn: &Connection, name: &str) -> Result<Option<Role>> {
    if let Some(b) = BuiltinRole::from_name(name) {
        return Ok(Some(Role {
            name: name.to_owned(),
            builtin: true,
            permissions: b.permissions(),
        }));
    }
    let row: Option<String> = conn
        .prepare_cached("SELECT permissions FROM custom_roles WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    row.map(|perms| {
        let permissions = perms
            .split_whitespace()
            .map(|p| p.parse::<Permission>())
            .collect::<Result<BTreeSet<_>>>()
            .map_err(|_| Error::Integrity(format!("role {name:?} names an unknown permission")))?;
        Ok(Role {
            name: name.to_owned(),
            builtin: false,
            permissions,
        })
    })
    .transpose()
}

/// Whether the user's current role (read on `conn`: inside an operation's transaction, as it
/// stands when the operation commits) allows `p`.
pub(crate) fn user_may(conn: &Connection, user_id: &str, p: Permission) -> Result<bool> {
    let role: Option<String> = conn
        .prepare_cached("SELECT role FROM users WHERE id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()?;
    Ok(match role {
        Some(role) => load(conn, &role)?.is_some_and(|r| r.allows(p)),
        None => false,
    })
}

pub fn list(conn: &Connection) -> Result<Vec<Role>> {
    let mut roles: Vec<Role> = BuiltinRole::ALL
        .iter()
        .map(|b| Role {
            name: b.name().into(),
            builtin: true,
            permissions: b.permissions(),
        })
        .collect();
    let mut st = conn.prepare("SELECT name FROM custom_roles ORDER BY name")?;
    let names = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for name in names {
        if let Some(role) = load(conn, &name)? {
            roles.push(role);
        }
    }
    Ok(roles)
}

/// Validates a custom role: a new name and only permissions a non-administrator may hold.
pub fn validate_custom(name: &str, permissions: &[Permission]) -> Result<String> {
    let name = normalise_role_name(name)?;
    if BuiltinRole::from_name(&name).is_some() {
        return Err(Error::InvalidInput(format!(
            "role: {name:?} is a built-in role"
        )));
    }
    if let Some(p) = permissions.iter().find(|p| p.admin_only()) {
        return Err(Error::InvalidInput(format!(
            "permission {p} is reserved for administrators and cannot be given to a custom role"
        )));
    }
    if permissions.is_empty() {
        return Err(Error::InvalidInput(
            "a role needs at least one permission".into(),
        ));
    }
    Ok(name)
}

/// The role × permission table of docs/permissions.md.
pub fn render_markdown() -> String {
    let mut out = String::from(
        "# Roles and permissions\n\n\
         Generated from `crates/clinvault-core/src/permissions.rs` (a test fails when this file \
         drifts; regenerate with `CLINVAULT_UPDATE_DOCS=1 cargo test -p clinvault-core \
         --test permissions_doc`).\n\n\
         Permissions marked *admin only* are never granted to any other role and cannot be put \
         in a custom role (separation of duties). Custom roles combine the other permissions.\n\n",
    );
    out.push_str("| permission | what it allows |");
    for r in BuiltinRole::ALL {
        out.push_str(&format!(" {} |", r.name()));
    }
    out.push_str("\n| --- | --- |");
    for _ in BuiltinRole::ALL {
        out.push_str(" :---: |");
    }
    out.push('\n');
    for p in Permission::ALL {
        let admin = if p.admin_only() { " (admin only)" } else { "" };
        out.push_str(&format!("| `{}` | {}{} |", p.name(), p.describe(), admin));
        for r in BuiltinRole::ALL {
            out.push_str(if r.permissions().contains(p) {
                " ✓ |"
            } else {
                " |"
            });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_only_permissions_belong_to_administrators_alone() {
        for p in Permission::ALL.iter().filter(|p| p.admin_only()) {
            for r in BuiltinRole::ALL {
                assert_eq!(
                    r.permissions().contains(p),
                    *r == BuiltinRole::Administrator,
                    "{p} in {}",
                    r.name()
                );
            }
        }
    }

    #[test]
    fn receptionists_never_read_clinical_notes() {
        let r = BuiltinRole::Receptionist.permissions();
        assert!(!r.contains(&Permission::NotesRead));
        assert!(r.contains(&Permission::AppointmentsManage));
        assert!(r.contains(&Permission::InvoicesWrite));
    }

    #[test]
    fn custom_roles_cannot_take_admin_permissions_or_builtin_names() {
        assert!(validate_custom("scheduler", &[Permission::AppointmentsManage]).is_ok());
        assert!(validate_custom("administrator", &[Permission::PatientRead]).is_err());
        let err = validate_custom("sneaky", &[Permission::AuditRead]).unwrap_err();
        assert!(err.to_string().contains("reserved for administrators"));
        assert!(validate_custom("empty", &[]).is_err());
        assert!("no.such".parse::<Permission>().is_err());
        assert_eq!(
            "notes.read".parse::<Permission>().unwrap(),
            Permission::NotesRead
        );
    }
}
