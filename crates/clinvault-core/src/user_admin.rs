//! Administration of users, roles, policy and keys, as session operations behind the gate.

use rusqlite::params;
use secrecy::SecretString;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::audit::{Event, Outcome};
use crate::clock::rfc3339;
use crate::error::{Error, Result};
use crate::permissions::{self, Permission, Role};
use crate::session::{Need, Session};
use crate::users::{self, UserRecord, UserStatus};
use crate::{passphrase_rules, policy, two_factor};

#[derive(Clone, Debug, Serialize)]
pub struct UserSummary {
    #[serde(flatten)]
    pub user: UserRecord,
    pub two_factor: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SignInRecord {
    pub username: String,
    pub at: String,
    pub device: String,
    pub outcome: String,
    pub detail: String,
}

fn load_user(tx: &rusqlite::Connection, username: &str) -> Result<UserRecord> {
    let name = users::normalise_username(username)?;
    users::by_username(tx, &name)?.ok_or_else(|| Error::NotFound(format!("no user named {name:?}")))
}

pub(crate) fn active_admins(tx: &rusqlite::Connection) -> Result<i64> {
    Ok(tx.query_row(
        "SELECT count(*) FROM users WHERE role = ?1 AND status = 'active'",
        [users::ROLE_ADMINISTRATOR],
        |r| r.get(0),
    )?)
}

impl Session {
    /// Adds a user with a role and an initial passphrase (they should change it at first use).
    pub fn add_user(
        &mut self,
        username: &str,
        display_name: Option<&str>,
        role: &str,
        passphrase: &SecretString,
    ) -> Result<UserRecord> {
        let name = users::normalise_username(username)?;
        let role = permissions::normalise_role_name(role)?;
        let display = display_name
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .unwrap_or(&name)
            .to_owned();
        passphrase_rules::check(self.policy(), passphrase, false, &[&name, &display])?;
        let now = rfc3339(self.clock().now());
        let id = uuid::Uuid::new_v4();
        let event = Event::new("user.add")
            .target("user", id)
            .detail("role", role.as_str());
        let user = self.gate(Need::Permission(Permission::UsersManage), event, |tx, _| {
            if permissions::load(tx, &role)?.is_none() {
                return Err(Error::NotFound(format!("no role named {role:?}")));
            }
            users::insert(tx, id, &name, &display, &role, &now)?;
            users::by_id(tx, id)?.ok_or_else(|| Error::Internal("new user vanished".into()))
        })?;
        self.vault_mut()?.install_slot(&user, passphrase)?;
        Ok(user)
    }

    pub fn list_users(&mut self) -> Result<Vec<UserSummary>> {
        let event = Event::new("user.list");
        self.gate(
            Need::Permission(Permission::UsersManage),
            event,
            |tx, ev| {
                let mut st = tx.prepare("SELECT id FROM users ORDER BY username")?;
                let ids = st
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    let id = uuid::Uuid::parse_str(&id)
                        .map_err(|_| Error::Integrity("a user row has a malformed id".into()))?;
                    if let Some(user) = users::by_id(tx, id)? {
                        out.push(UserSummary {
                            two_factor: two_factor::is_enabled(tx, id)?,
                            user,
                        });
                    }
                }
                *ev = ev.clone().detail("count", out.len());
                Ok(out)
            },
        )
    }

    pub fn set_user_role(&mut self, username: &str, role: &str) -> Result<()> {
        let role = permissions::normalise_role_name(role)?;
        let now = rfc3339(self.clock().now());
        let event = Event::new("user.set_role").detail("role", role.as_str());
        self.gate(Need::Permission(Permission::UsersManage), event, |tx, ev| {
            let user = load_user(tx, username)?;
            *ev = ev.clone().target("user", user.id).detail("previous_role", user.role.as_str());
            if permissions::load(tx, &role)?.is_none() {
                return Err(Error::NotFound(format!("no role named {role:?}")));
            }
            if user.role == users::ROLE_ADMINISTRATOR
                && role != users::ROLE_ADMINISTRATOR
                && user.status == UserStatus::Active
                && active_admins(tx)? <= 1
            {
                return Err(Error::InvalidInput(
                    "this is the last active administrator; make someone else an administrator first"
                        .into(),
                ));
            }
            tx.execute(
                "UPDATE users SET role = ?1, updated_at = ?2 WHERE id = ?3",
                params![role, now, user.id.to_string()],
            )?;
            Ok(())
        })?;
        self.reload_policy()
    }

    /// Disables a user and revokes their access at once: their key slot is removed and the
    /// master key rotated, so neither their passphrase nor an old copy of the key file opens the
    /// database any more. If the vault is open elsewhere the rotation finishes at the next
    /// sign-in that has it alone; until then the account is refused at sign-in.
    pub fn disable_user(&mut self, username: &str) -> Result<UserRecord> {
        let now = rfc3339(self.clock().now());
        let me = self.user().id;
        let event = Event::new("user.disable");
        let user = self.gate(
            Need::Permission(Permission::UsersManage),
            event,
            |tx, ev| {
                let user = load_user(tx, username)?;
                *ev = ev.clone().target("user", user.id);
                if user.id == me {
                    return Err(Error::InvalidInput(
                        "you cannot disable your own account".into(),
                    ));
                }
                if user.status == UserStatus::Disabled {
                    return Err(Error::InvalidInput(format!(
                        "{} is already disabled",
                        user.username
                    )));
                }
                if user.role == users::ROLE_ADMINISTRATOR && active_admins(tx)? <= 1 {
                    return Err(Error::InvalidInput(
                        "this is the last active administrator and cannot be disabled".into(),
                    ));
                }
                tx.execute(
                    "UPDATE users SET status = 'disabled', updated_at = ?1 WHERE id = ?2",
                    params![now, user.id.to_string()],
                )?;
                tx.execute(
                    "DELETE FROM trusted_devices WHERE user_id = ?1",
                    [user.id.to_string()],
                )?;
                Ok(user)
            },
        )?;
        self.rotate_with_audit(&[user.id], "revocation")?;
        Ok(user)
    }

    /// Re-enables a user with a new key slot under a new initial passphrase.
    pub fn enable_user(&mut self, username: &str, passphrase: &SecretString) -> Result<()> {
        let now = rfc3339(self.clock().now());
        let event = Event::new("user.enable");
        let policy = self.policy().clone();
        let user = self.gate(
            Need::Permission(Permission::UsersManage),
            event,
            |tx, ev| {
                let user = load_user(tx, username)?;
                *ev = ev.clone().target("user", user.id);
                if user.status == UserStatus::Active {
                    return Err(Error::InvalidInput(format!(
                        "{} is already active",
                        user.username
                    )));
                }
                passphrase_rules::check(
                    &policy,
                    passphrase,
                    false,
                    &[&user.username, &user.display_name],
                )?;
                tx.execute(
                    "UPDATE users SET status = 'active', updated_at = ?1 WHERE id = ?2",
                    params![now, user.id.to_string()],
                )?;
                users::by_id(tx, user.id)?.ok_or_else(|| Error::Internal("user vanished".into()))
            },
        )?;
        self.vault_mut()?.install_slot(&user, passphrase)
    }

    pub fn signin_history(
        &mut self,
        username: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SignInRecord>> {
        let event = Event::new("user.signin_history");
        self.gate(
            Need::Permission(Permission::UsersManage),
            event,
            |tx, ev| {
                let name = username.map(users::normalise_username).transpose()?;
                if let Some(n) = &name {
                    *ev = ev.clone().detail("username", n.as_str());
                }
                let mut st = tx.prepare(
                    "SELECT username, at, device, outcome, detail FROM signin_history
                 WHERE ?1 IS NULL OR username = ?1 ORDER BY id DESC LIMIT ?2",
                )?;
                let rows = st
                    .query_map(params![name, limit], |r| {
                        Ok(SignInRecord {
                            username: r.get(0)?,
                            at: r.get(1)?,
                            device: r.get(2)?,
                            outcome: r.get(3)?,
                            detail: r.get(4)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            },
        )
    }

    pub fn list_roles(&mut self) -> Result<Vec<Role>> {
        self.gate(Need::SignedIn, Event::new("role.list"), |tx, _| {
            permissions::list(tx)
        })
    }

    pub fn create_role(&mut self, name: &str, perms: &[Permission]) -> Result<Role> {
        let name = permissions::validate_custom(name, perms)?;
        let now = rfc3339(self.clock().now());
        let list: Vec<&str> = perms.iter().map(|p| p.name()).collect();
        let event = Event::new("role.create")
            .target("role", &name)
            .detail("permissions", list.join(" "));
        self.gate(Need::Permission(Permission::UsersManage), event, |tx, _| {
            let inserted = tx.execute(
                "INSERT INTO custom_roles (name, permissions, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO NOTHING",
                params![name, list.join(" "), now],
            )?;
            if inserted == 0 {
                return Err(Error::AlreadyExists(format!(
                    "a role named {name:?} exists"
                )));
            }
            permissions::load(tx, &name)?.ok_or_else(|| Error::Internal("role vanished".into()))
        })
    }

    /// The clinic's policy, with the alert thresholds only for those who review alerts.
    pub fn show_policy(&mut self) -> Result<policy::ShownPolicy> {
        let me = self.user().id.to_string();
        self.gate(Need::SignedIn, Event::new("policy.show"), |tx, _| {
            let alert_rules = permissions::user_may(tx, &me, Permission::AuditRead)?;
            Ok(policy::ShownPolicy::new(
                policy::Policy::load(tx)?,
                alert_rules,
            ))
        })
    }

    pub fn set_policy(&mut self, key: &str, value: &str) -> Result<(String, String)> {
        let now = rfc3339(self.clock().now());
        let event = Event::new("policy.set").target("setting", key);
        let changed = self.gate(
            Need::Permission(Permission::SettingsManage),
            event,
            |tx, ev| {
                let roles: Vec<String> =
                    permissions::list(tx)?.into_iter().map(|r| r.name).collect();
                let (old, new) = policy::set(tx, key, value, &roles, &now)?;
                *ev = ev
                    .clone()
                    .detail("old", old.as_str())
                    .detail("new", new.as_str());
                Ok((old, new))
            },
        )?;
        self.reload_policy()?;
        Ok(changed)
    }

    /// Changes the signed-in user's passphrase; only their key slot is re-wrapped.
    pub fn change_passphrase(&mut self, current: &SecretString, new: &SecretString) -> Result<()> {
        let has_2fa = two_factor::is_enabled(self.vault()?.conn(), self.user().id)?;
        let (name, display) = (
            self.user().username.clone(),
            self.user().display_name.clone(),
        );
        passphrase_rules::check(self.policy(), new, has_2fa, &[&name, &display])?;
        let event = Event::new("passphrase.change").target("user", self.user().id);
        // Re-authentication first: a session left unlocked is not enough to change it.
        self.authorize(Need::SignedIn, event.clone())?;
        if let Err(e) = self.passphrase_again(current) {
            let kind = serde_json::to_value(e.kind()).unwrap_or_default();
            self.record(event.outcome(Outcome::Failed).detail("error", kind))?;
            return Err(self.after_wrong_passphrase(e));
        }
        self.vault_mut()?.change_passphrase(new)?;
        self.record(event)
    }

    /// Records a completed rotation and when it happened (the schedule counts from it).
    pub(crate) fn record_rotation(&mut self, event: Event) -> Result<()> {
        let epoch = self.vault()?.key_epoch();
        let now = rfc3339(self.clock().now());
        let event = event.detail("epoch", epoch);
        self.record_with(event, |tx| {
            for (key, value) in [
                ("last_key_rotation", now.clone()),
                ("audited_epoch", epoch.to_string()),
            ] {
                tx.execute(
                    "INSERT INTO vault_meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [key, &value],
                )?;
            }
            Ok(())
        })
    }

    /// Rotates on the clinic's schedule (`key-rotation-days`) when an administrator signs in and
    /// has the vault to themselves; otherwise it waits for a later sign-in.
    pub(crate) fn rotate_if_due(&mut self) -> Result<()> {
        let days = self.policy().key_rotation_days;
        if days == 0 || self.denial_for(Permission::KeysManage)? {
            return Ok(());
        }
        let last: String = self.vault()?.conn().query_row(
            "SELECT value FROM vault_meta WHERE key IN ('last_key_rotation', 'created_at')
             ORDER BY key = 'last_key_rotation' DESC LIMIT 1",
            [],
            |r| r.get(0),
        )?;
        let last: jiff::Timestamp = last
            .parse()
            .map_err(|_| Error::Integrity("the vault's last rotation time is malformed".into()))?;
        let due = self.clock().now().duration_since(last)
            >= jiff::SignedDuration::from_hours(24 * i64::from(days));
        if !due {
            return Ok(());
        }
        match self.rotate_with_audit(&[], "schedule") {
            Ok(()) | Err(Error::Busy(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Rotates the master key and re-keys the database, recording the outcome.
    pub fn rotate_keys(&mut self) -> Result<u64> {
        self.authorize(
            Need::Permission(Permission::KeysManage),
            Event::new("key.rotate"),
        )?;
        self.rotate_with_audit(&[], "on demand")?;
        Ok(self.vault()?.key_epoch())
    }

    pub(crate) fn rotate_with_audit(&mut self, remove: &[uuid::Uuid], reason: &str) -> Result<()> {
        let previous_ik = self.vault()?.integrity_key()?;
        let result = self.vault_mut()?.rotate_keys(remove);
        let mut event = Event::new("key.rotate").detail("reason", reason);
        for id in remove {
            event = event.target("user", id);
        }
        match &result {
            Ok(()) => {
                self.vault_mut()?.take_rotation();
                self.record_rotation(event)?;
                // The checkpoint's integrity MAC follows the new master key.
                self.write_checkpoint_after(Some(&previous_ik), crate::session::Anchoring::Full)?;
                self.note_anchoring()?;
            }
            Err(e) => {
                let kind = serde_json::to_value(e.kind()).unwrap_or_default();
                self.record(event.outcome(Outcome::Failed).detail("error", kind))?;
            }
        }
        result
    }

    /// The raw SQLCipher key, after full re-authentication (passphrase, and the authenticator
    /// code when the user has two-factor sign-in).
    pub fn export_db_key(
        &mut self,
        passphrase: &SecretString,
        code: Option<&str>,
    ) -> Result<Zeroizing<String>> {
        self.authorize(
            Need::Permission(Permission::KeysManage),
            Event::new("key.export_db_key"),
        )?;
        let reauth = self.reauthenticate(passphrase, code);
        if let Err(e) = reauth {
            let kind = serde_json::to_value(e.kind()).unwrap_or_default();
            self.record(
                Event::new("key.export_db_key")
                    .outcome(Outcome::Failed)
                    .detail("error", kind),
            )?;
            return Err(self.after_wrong_passphrase(e));
        }
        let key = self.vault()?.db_key_hex()?;
        self.record(Event::new("key.export_db_key"))?;
        Ok(key)
    }
}
