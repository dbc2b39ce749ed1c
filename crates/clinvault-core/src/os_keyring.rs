//! Secrets kept in the operating system's keyring, and "remember this device"
//! tokens for TOTP sign-in built on top of them.
//!
//! The store talks to the keyring-core ecosystem (the crates behind `keyring` 4)
//! directly rather than through the `keyring` facade, because the facade only
//! offers one global, fixed store, while ClinVault must pick a store at runtime
//! and fall back cleanly when none works.
//!
//! On Linux two stores are used, in this order of preference:
//! * the Secret Service over D-Bus (gnome-keyring, KWallet, KeePassXC...),
//!   which survives reboots;
//! * the kernel key retention service (keyutils), which is always present on
//!   Linux but forgets everything at reboot.
//!
//! Errors never carry secret bytes: every error of the underlying crates is
//! turned into our own message here, and payload-carrying variants are wiped.
#![forbid(unsafe_code)]

#[cfg(target_os = "linux")]
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use keyring_core::{CredentialStore, Entry, Error as CoreError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Environment variable that forces a choice: `secret-service`, `keyutils`,
/// `none` (or `auto`, the same as leaving it unset).
pub const KEYRING_ENV: &str = "CLINVAULT_KEYRING";

/// How long one keyring operation may take before it is abandoned. Generous
/// because the desktop keyring may ask the person to unlock it first.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Accounts starting with this are used by [`SecretStore::probe`].
pub const PROBE_ACCOUNT_PREFIX: &str = ".probe/";

const NO_KEYRING: &str = "no OS keyring is available on this computer";

const DEVICE_TRUST_UNAVAILABLE: &str =
    "no OS keyring is available on this computer; the authenticator code will be asked each time";

/// What went wrong talking to the OS keyring. Messages are meant for people
/// and never contain secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No keyring can be used right now (none installed, not running, locked,
    /// refused, blocked, or switched off). Callers should fall back to not
    /// remembering anything.
    #[error("{0}")]
    Unavailable(String),
    /// The keyring is there but the operation failed.
    #[error("{0}")]
    Other(String),
}

/// A concrete keyring store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The freedesktop Secret Service on the D-Bus session bus.
    SecretService,
    /// The Linux kernel key retention service (session and persistent keyrings).
    KeyUtils,
}

impl Backend {
    /// Preference order for automatic selection.
    pub const ALL: [Backend; 2] = [Backend::SecretService, Backend::KeyUtils];

    /// The name accepted in [`KEYRING_ENV`].
    pub fn name(self) -> &'static str {
        match self {
            Backend::SecretService => "secret-service",
            Backend::KeyUtils => "keyutils",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Backend::SecretService => "the desktop keyring (Secret Service)",
            Backend::KeyUtils => "the kernel keyring (keyutils)",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which store a [`SecretStore`] may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringChoice {
    /// The first store of [`Backend::ALL`] that passes a write/read/delete check.
    Auto,
    /// Only this store; its failures are reported, never papered over.
    Only(Backend),
    /// Never touch a keyring (every call reports `Unavailable`).
    Disabled,
}

impl KeyringChoice {
    /// Parses a [`KEYRING_ENV`] value. Empty means `auto`.
    pub fn parse(value: &str) -> Result<Self, KeyringError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(KeyringChoice::Auto),
            "secret-service" | "secretservice" => Ok(KeyringChoice::Only(Backend::SecretService)),
            "keyutils" => Ok(KeyringChoice::Only(Backend::KeyUtils)),
            "none" | "off" => Ok(KeyringChoice::Disabled),
            _ => Err(KeyringError::Other(format!(
                "{KEYRING_ENV}={value:?} is not understood; use secret-service, keyutils, none or auto"
            ))),
        }
    }

    /// Reads [`KEYRING_ENV`]; unset means `auto`.
    pub fn from_env() -> Result<Self, KeyringError> {
        match std::env::var(KEYRING_ENV) {
            Ok(value) => Self::parse(&value),
            Err(std::env::VarError::NotPresent) => Ok(KeyringChoice::Auto),
            Err(std::env::VarError::NotUnicode(_)) => Err(KeyringError::Other(format!(
                "{KEYRING_ENV} is not valid text; use secret-service, keyutils, none or auto"
            ))),
        }
    }
}

#[derive(Clone)]
struct Resolved {
    backend: Backend,
    store: Arc<CredentialStore>,
}

/// Secrets for one application `service`, addressed by account name.
pub struct SecretStore {
    service: String,
    // An invalid env value is kept rather than ignored so that every call
    // reports the misconfiguration instead of silently using another store.
    choice: Result<KeyringChoice, KeyringError>,
    timeout: Duration,
    // Opening the Secret Service costs a D-Bus handshake and, in auto mode, a
    // probe write, so the outcome is cached until an operation fails.
    resolved: Mutex<Option<Resolved>>,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretStore")
            .field("service", &self.service)
            .field("choice", &self.choice)
            .field("timeout", &self.timeout)
            .field("backend", &self.cached().map(|r| r.backend))
            .finish()
    }
}

impl SecretStore {
    /// Automatic choice, unless [`KEYRING_ENV`] says otherwise.
    pub fn new(service: impl Into<String>) -> Self {
        Self::build(service.into(), KeyringChoice::from_env())
    }

    /// Automatic choice, ignoring [`KEYRING_ENV`].
    pub fn auto(service: impl Into<String>) -> Self {
        Self::with_choice(service, KeyringChoice::Auto)
    }

    /// Exactly this store, ignoring [`KEYRING_ENV`].
    pub fn with_backend(service: impl Into<String>, backend: Backend) -> Self {
        Self::with_choice(service, KeyringChoice::Only(backend))
    }

    /// An explicit choice, ignoring [`KEYRING_ENV`].
    pub fn with_choice(service: impl Into<String>, choice: KeyringChoice) -> Self {
        Self::build(service.into(), Ok(choice))
    }

    fn build(service: String, choice: Result<KeyringChoice, KeyringError>) -> Self {
        SecretStore {
            service,
            choice,
            timeout: DEFAULT_TIMEOUT,
            resolved: Mutex::new(None),
        }
    }

    /// Bounds each keyring operation (see [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// The store this instance uses, choosing one now if needed.
    pub fn backend(&self) -> Result<Backend, KeyringError> {
        self.resolve().map(|r| r.backend)
    }

    /// Checks that a keyring can store, return and delete a secret right now.
    /// In auto mode this also re-does the choice, so a keyring that appeared or
    /// vanished since the last call is noticed.
    pub fn probe(&self) -> Result<(), KeyringError> {
        let choice = self.choice.clone()?;
        self.clear_cache();
        let resolved = match choice {
            KeyringChoice::Disabled => return Err(disabled()),
            KeyringChoice::Auto => self.auto_select()?,
            KeyringChoice::Only(backend) => self.open_and_probe(backend)?,
        };
        self.store_cache(resolved);
        Ok(())
    }

    /// Stores `secret` under `account`, replacing any previous value.
    pub fn set(&self, account: &str, secret: &[u8]) -> Result<(), KeyringError> {
        check_account(account)?;
        if secret.is_empty() {
            // keyutils cannot hold empty keys; refusing everywhere keeps the
            // behaviour independent of the store that happens to be chosen.
            return Err(KeyringError::Other(
                "an empty secret cannot be stored in the OS keyring".to_string(),
            ));
        }
        let resolved = self.resolve()?;
        let service = self.service.clone();
        let account = account.to_string();
        let secret = Zeroizing::new(secret.to_vec());
        self.run_op(move || store_secret(&resolved, &service, &account, &secret))
    }

    /// The secret under `account`, or `None` if there is none.
    pub fn get(&self, account: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
        check_account(account)?;
        let resolved = self.resolve()?;
        let service = self.service.clone();
        let account = account.to_string();
        self.run_op(move || load_secret(&resolved, &service, &account))
    }

    /// Removes the secret under `account`; nothing stored is not an error.
    pub fn delete(&self, account: &str) -> Result<(), KeyringError> {
        check_account(account)?;
        let resolved = self.resolve()?;
        let service = self.service.clone();
        let account = account.to_string();
        self.run_op(move || delete_secret(&resolved, &service, &account))
    }

    fn resolve(&self) -> Result<Resolved, KeyringError> {
        let choice = self.choice.clone()?;
        if let Some(resolved) = self.cached() {
            return Ok(resolved);
        }
        let resolved = match choice {
            KeyringChoice::Disabled => return Err(disabled()),
            // A forced store is not probed: its own errors are more precise
            // than a probe's, and they surface on the first real operation.
            KeyringChoice::Only(backend) => {
                let store = self.bounded(move || open_store(backend))?;
                Resolved { backend, store }
            }
            KeyringChoice::Auto => self.auto_select()?,
        };
        self.store_cache(resolved.clone());
        Ok(resolved)
    }

    fn auto_select(&self) -> Result<Resolved, KeyringError> {
        let mut reasons = Vec::new();
        for backend in Backend::ALL {
            match self.open_and_probe(backend) {
                Ok(resolved) => return Ok(resolved),
                Err(err) => {
                    let reason = detail(&err);
                    if reason.contains(backend.describe()) {
                        reasons.push(reason);
                    } else {
                        reasons.push(format!("{}: {reason}", backend.describe()));
                    }
                }
            }
        }
        Err(KeyringError::Unavailable(format!(
            "{NO_KEYRING} ({})",
            reasons.join("; ")
        )))
    }

    fn open_and_probe(&self, backend: Backend) -> Result<Resolved, KeyringError> {
        let service = self.service.clone();
        self.bounded(move || {
            let store = open_store(backend)?;
            let resolved = Resolved { backend, store };
            round_trip(&resolved, &service)?;
            Ok(resolved)
        })
    }

    fn run_op<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> Result<T, KeyringError> + Send + 'static,
    ) -> Result<T, KeyringError> {
        let result = self.bounded(op);
        if result.is_err() {
            // The store may have gone away (daemon restarted, session ended);
            // choosing again on the next call lets us recover or fall back.
            self.clear_cache();
        }
        result
    }

    // Keyring calls can block indefinitely (a D-Bus peer that never answers, an
    // unlock prompt nobody sees), which must not freeze the sign-in screen. The
    // worker is left behind on timeout; it holds no lock of ours.
    fn bounded<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> Result<T, KeyringError> + Send + 'static,
    ) -> Result<T, KeyringError> {
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("clinvault-keyring".to_string())
            .spawn(move || {
                // The caller may have given up; the value is then dropped (and
                // zeroized, for secrets) here.
                let _ = tx.send(op());
            })
            .map_err(|_| {
                KeyringError::Other("could not start a thread to talk to the OS keyring".into())
            })?;
        match rx.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.clear_cache();
                Err(KeyringError::Unavailable(format!(
                    "{NO_KEYRING} (the keyring did not answer within {} seconds)",
                    self.timeout.as_secs_f32()
                )))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(KeyringError::Other(
                "the OS keyring connection failed unexpectedly".to_string(),
            )),
        }
    }

    fn cached(&self) -> Option<Resolved> {
        match self.resolved.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store_cache(&self, resolved: Resolved) {
        match self.resolved.lock() {
            Ok(mut guard) => *guard = Some(resolved),
            Err(poisoned) => *poisoned.into_inner() = Some(resolved),
        }
    }

    fn clear_cache(&self) {
        match self.resolved.lock() {
            Ok(mut guard) => *guard = None,
            Err(poisoned) => *poisoned.into_inner() = None,
        }
    }
}

fn disabled() -> KeyringError {
    KeyringError::Unavailable(format!(
        "{NO_KEYRING} (the OS keyring is switched off by {KEYRING_ENV}=none)"
    ))
}

// Strips the leading "no OS keyring..." so nested reasons read well.
fn detail(err: &KeyringError) -> String {
    let text = err.to_string();
    text.strip_prefix(NO_KEYRING)
        .and_then(|rest| rest.strip_prefix(" ("))
        .and_then(|rest| rest.strip_suffix(')'))
        .map(str::to_string)
        .unwrap_or(text)
}

fn check_account(account: &str) -> Result<(), KeyringError> {
    if account.is_empty() {
        return Err(KeyringError::Other(
            "a keyring account name cannot be empty".to_string(),
        ));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn open_store(backend: Backend) -> Result<Arc<CredentialStore>, KeyringError> {
    let opened: Result<Arc<CredentialStore>, CoreError> = match backend {
        Backend::SecretService => zbus_secret_service_keyring_store::Store::new()
            .map(|store| -> Arc<CredentialStore> { store }),
        Backend::KeyUtils => {
            // Without this, service "a@b" + user "c" and service "b" + user
            // "c@a"-like pairs could map to the same kernel key description.
            let config = HashMap::from([("service_no_divider", "true")]);
            linux_keyutils_keyring_store::Store::new_with_configuration(&config)
                .map(|store| -> Arc<CredentialStore> { store })
        }
    };
    opened.map_err(|err| {
        KeyringError::Unavailable(format!(
            "{NO_KEYRING} ({} cannot be reached: {})",
            backend.describe(),
            core_detail(err)
        ))
    })
}

#[cfg(not(target_os = "linux"))]
fn open_store(backend: Backend) -> Result<Arc<CredentialStore>, KeyringError> {
    Err(KeyringError::Unavailable(format!(
        "{NO_KEYRING} ({} exists only on Linux)",
        backend.describe()
    )))
}

fn entry_for(resolved: &Resolved, service: &str, account: &str) -> Result<Entry, KeyringError> {
    let label = format!("{service}: {account}");
    let built = match resolved.backend {
        // The label is what people see in Seahorse / KWallet Manager.
        Backend::SecretService => {
            let modifiers = std::collections::HashMap::from([("label", label.as_str())]);
            resolved.store.build(service, account, Some(&modifiers))
        }
        Backend::KeyUtils => resolved.store.build(service, account, None),
    };
    built.map_err(|err| map_core(resolved.backend, "prepare", err))
}

fn store_secret(
    resolved: &Resolved,
    service: &str,
    account: &str,
    secret: &[u8],
) -> Result<(), KeyringError> {
    let entry = entry_for(resolved, service, account)?;
    match entry.set_secret(secret) {
        Ok(()) => Ok(()),
        // Another program created look-alike items; ours must end up the only
        // one, or later reads would be ambiguous forever.
        Err(CoreError::Ambiguous(duplicates)) => {
            delete_all(resolved.backend, duplicates)?;
            entry
                .set_secret(secret)
                .map_err(|err| map_core(resolved.backend, "store", err))
        }
        Err(err) => Err(map_core(resolved.backend, "store", err)),
    }
}

fn load_secret(
    resolved: &Resolved,
    service: &str,
    account: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
    let entry = entry_for(resolved, service, account)?;
    match entry.get_secret() {
        Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
        Err(CoreError::NoEntry) => Ok(None),
        Err(err) => Err(map_core(resolved.backend, "read", err)),
    }
}

fn delete_secret(resolved: &Resolved, service: &str, account: &str) -> Result<(), KeyringError> {
    let entry = entry_for(resolved, service, account)?;
    match entry.delete_credential() {
        Ok(()) | Err(CoreError::NoEntry) => Ok(()),
        Err(CoreError::Ambiguous(duplicates)) => delete_all(resolved.backend, duplicates),
        Err(err) => Err(map_core(resolved.backend, "delete", err)),
    }
}

fn delete_all(backend: Backend, entries: Vec<Entry>) -> Result<(), KeyringError> {
    for entry in entries {
        match entry.delete_credential() {
            Ok(()) | Err(CoreError::NoEntry) => {}
            Err(err) => return Err(map_core(backend, "delete", err)),
        }
    }
    Ok(())
}

static PROBE_COUNTER: AtomicU64 = AtomicU64::new(0);

fn round_trip(resolved: &Resolved, service: &str) -> Result<(), KeyringError> {
    // Unique per call so that concurrent probes (other threads, other
    // ClinVault processes) never read each other's value.
    let account = format!(
        "{PROBE_ACCOUNT_PREFIX}{}-{}",
        std::process::id(),
        PROBE_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut value = Zeroizing::new([0u8; 16]);
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, value.as_mut_slice()).map_err(
        |_| KeyringError::Other("the system random number generator failed".to_string()),
    )?;
    store_secret(resolved, service, &account, value.as_slice())?;
    let read_back = load_secret(resolved, service, &account);
    let deleted = delete_secret(resolved, service, &account);
    let same = match read_back? {
        Some(bytes) => bool::from(bytes.as_slice().ct_eq(value.as_slice())),
        None => false,
    };
    deleted?;
    if same {
        Ok(())
    } else {
        Err(KeyringError::Unavailable(format!(
            "{NO_KEYRING} ({} did not return what was stored)",
            resolved.backend.describe()
        )))
    }
}

// Only the kinds of failure that mean "no usable keyring" become Unavailable.
fn map_core(backend: Backend, action: &str, err: CoreError) -> KeyringError {
    let what = backend.describe();
    match err {
        CoreError::NoStorageAccess(inner) => KeyringError::Unavailable(format!(
            "{NO_KEYRING} ({what} is locked or refused access: {inner})"
        )),
        CoreError::NoDefaultStore => {
            KeyringError::Unavailable(format!("{NO_KEYRING} ({what} is not set up)"))
        }
        other => KeyringError::Other(format!(
            "could not {action} a secret in {what}: {}",
            core_detail(other)
        )),
    }
}

// Our own wording for keyring-core errors. The payload-carrying variants
// (BadEncoding, BadDataFormat) hold raw secret bytes: they are wiped and never
// formatted.
fn core_detail(err: CoreError) -> String {
    match err {
        CoreError::PlatformFailure(inner) => inner.to_string(),
        CoreError::NoStorageAccess(inner) => format!("access refused: {inner}"),
        CoreError::NoEntry => "nothing is stored there".to_string(),
        CoreError::BadEncoding(mut bytes) => {
            bytes.zeroize();
            "the stored data is not text".to_string()
        }
        CoreError::BadDataFormat(mut bytes, _) => {
            bytes.zeroize();
            "the stored data is malformed".to_string()
        }
        CoreError::BadStoreFormat(_) => "the keyring's own data is malformed".to_string(),
        CoreError::TooLong(name, limit) => {
            format!("the {name} is longer than the keyring allows ({limit})")
        }
        CoreError::Invalid(name, reason) => format!("the {name} was rejected: {reason}"),
        CoreError::Ambiguous(items) => format!(
            "{} keyring items match the same name; remove the extra ones",
            items.len()
        ),
        CoreError::NoDefaultStore => "no keyring store is set up".to_string(),
        CoreError::NotSupportedByStore(reason) => format!("not supported: {reason}"),
        _ => "unexpected keyring failure".to_string(),
    }
}

/// "Remember this device" for TOTP sign-in.
///
/// The keyring holds a random token and its expiry; the vault database holds
/// only SHA-256(token). Skipping the authenticator code then needs both this
/// computer's keyring (for the token) and the vault (for the hash): a copied
/// vault file alone, or a keyring entry alone, is not enough.
pub struct DeviceTrust;

const RECORD_VERSION: u8 = 1;
const TOKEN_LEN: usize = 32;
const RECORD_LEN: usize = 1 + TOKEN_LEN + 8;
const SECONDS_PER_DAY: i64 = 86_400;

impl DeviceTrust {
    /// Keyring account for this vault and user: "<vault_id>/<username>/device",
    /// with '%' and '/' escaped inside each part so that different pairs can
    /// never produce the same name (vault "a/b" + user "c" vs "a" + "b/c").
    pub fn account(vault_id: &str, username: &str) -> String {
        format!("{}/{}/device", escape(vault_id), escape(username))
    }

    /// Creates a token valid for `days` days from `now_unix`, stores it in the
    /// keyring (replacing any previous one) and returns SHA-256(token), which
    /// the caller keeps in the vault database.
    pub fn remember(
        store: &SecretStore,
        vault_id: &str,
        username: &str,
        days: u32,
        now_unix: i64,
    ) -> Result<[u8; 32], KeyringError> {
        check_names(vault_id, username)?;
        if days == 0 {
            return Err(KeyringError::Other(
                "a device must be remembered for at least one day".to_string(),
            ));
        }
        let expiry = now_unix
            .checked_add(i64::from(days) * SECONDS_PER_DAY)
            .ok_or_else(|| KeyringError::Other("the expiry date is out of range".to_string()))?;
        let mut token = Zeroizing::new([0u8; TOKEN_LEN]);
        rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, token.as_mut_slice()).map_err(
            |_| KeyringError::Other("the system random number generator failed".to_string()),
        )?;
        let record = encode_record(&token, expiry);
        store
            .set(&Self::account(vault_id, username), &record)
            .map_err(|err| match err {
                KeyringError::Unavailable(_) => KeyringError::Unavailable(format!(
                    "{DEVICE_TRUST_UNAVAILABLE} ({})",
                    detail(&err)
                )),
                other => other,
            })?;
        Ok(Sha256::digest(token.as_slice()).into())
    }

    /// True only if the keyring holds an unexpired token for this vault and
    /// user whose SHA-256 equals `stored_hash`. Any failure means "ask for the
    /// code", so errors are folded into `false`. Read-only: an expired token
    /// is left for the next `remember` to overwrite.
    pub fn check(
        store: &SecretStore,
        vault_id: &str,
        username: &str,
        stored_hash: &[u8; 32],
        now_unix: i64,
    ) -> bool {
        if check_names(vault_id, username).is_err() {
            return false;
        }
        let record = match store.get(&Self::account(vault_id, username)) {
            Ok(Some(record)) => record,
            Ok(None) | Err(_) => return false,
        };
        let Some((token, expiry)) = decode_record(&record) else {
            return false;
        };
        let hash = Zeroizing::new(<[u8; 32]>::from(Sha256::digest(token.as_slice())));
        let matches = bool::from(hash.as_slice().ct_eq(stored_hash.as_slice()));
        matches && now_unix < expiry
    }

    /// Removes this vault and user's token from the keyring (absent is fine).
    pub fn forget(store: &SecretStore, vault_id: &str, username: &str) -> Result<(), KeyringError> {
        check_names(vault_id, username)?;
        store.delete(&Self::account(vault_id, username))
    }
}

fn check_names(vault_id: &str, username: &str) -> Result<(), KeyringError> {
    if vault_id.is_empty() || username.is_empty() {
        return Err(KeyringError::Other(
            "vault id and user name must not be empty".to_string(),
        ));
    }
    Ok(())
}

fn escape(part: &str) -> String {
    part.replace('%', "%25").replace('/', "%2F")
}

// A version byte first, so the format can change without misreading old
// entries.
fn encode_record(token: &[u8; TOKEN_LEN], expiry: i64) -> Zeroizing<Vec<u8>> {
    let mut record = Zeroizing::new(Vec::with_capacity(RECORD_LEN));
    record.push(RECORD_VERSION);
    record.extend_from_slice(token);
    record.extend_from_slice(&expiry.to_be_bytes());
    record
}

fn decode_record(record: &[u8]) -> Option<(Zeroizing<[u8; TOKEN_LEN]>, i64)> {
    if record.len() != RECORD_LEN || record[0] != RECORD_VERSION {
        return None;
    }
    let mut token = Zeroizing::new([0u8; TOKEN_LEN]);
    token.copy_from_slice(&record[1..1 + TOKEN_LEN]);
    let expiry_bytes: [u8; 8] = record[1 + TOKEN_LEN..].try_into().ok()?;
    Some((token, i64::from_be_bytes(expiry_bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique_service(tag: &str) -> String {
        let mut bytes = [0u8; 6];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("clinvault-test-{tag}-{}-{suffix}", std::process::id())
    }

    fn assert_unavailable<T: fmt::Debug>(result: Result<T, KeyringError>) -> String {
        match result {
            Err(KeyringError::Unavailable(message)) => {
                assert!(
                    message.starts_with(NO_KEYRING),
                    "message should explain itself to a person: {message}"
                );
                message
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn choice_parsing_accepts_documented_values_only() {
        assert_eq!(KeyringChoice::parse(""), Ok(KeyringChoice::Auto));
        assert_eq!(KeyringChoice::parse("auto"), Ok(KeyringChoice::Auto));
        assert_eq!(
            KeyringChoice::parse("secret-service"),
            Ok(KeyringChoice::Only(Backend::SecretService))
        );
        assert_eq!(
            KeyringChoice::parse(" KeyUtils "),
            Ok(KeyringChoice::Only(Backend::KeyUtils))
        );
        assert_eq!(KeyringChoice::parse("none"), Ok(KeyringChoice::Disabled));
        match KeyringChoice::parse("kwallet") {
            Err(KeyringError::Other(message)) => assert!(message.contains(KEYRING_ENV)),
            other => panic!("unknown value must be rejected, got {other:?}"),
        }
        for backend in Backend::ALL {
            assert_eq!(
                KeyringChoice::parse(backend.name()),
                Ok(KeyringChoice::Only(backend))
            );
        }
    }

    #[test]
    fn disabled_store_reports_unavailable_everywhere() {
        let store = SecretStore::with_choice(unique_service("off"), KeyringChoice::Disabled);
        assert_unavailable(store.probe());
        assert_unavailable(store.backend());
        assert_unavailable(store.set("acct", b"secret"));
        assert_unavailable(store.get("acct"));
        assert_unavailable(store.delete("acct"));
        let message = assert_unavailable(DeviceTrust::remember(&store, "v", "alice", 30, 0));
        assert!(message.starts_with(DEVICE_TRUST_UNAVAILABLE), "{message}");
        assert!(!DeviceTrust::check(&store, "v", "alice", &[0; 32], 0));
        assert_unavailable(DeviceTrust::forget(&store, "v", "alice"));
    }

    #[test]
    fn misconfigured_env_value_is_reported_not_ignored() {
        let store = SecretStore::build("svc".into(), KeyringChoice::parse("gnome"));
        for result in [store.probe(), store.set("acct", b"x"), store.delete("acct")] {
            match result {
                Err(KeyringError::Other(message)) => assert!(message.contains("gnome")),
                other => panic!("expected a configuration error, got {other:?}"),
            }
        }
    }

    #[test]
    fn bad_arguments_are_rejected_before_touching_a_keyring() {
        // A disabled store would answer Unavailable, so Other proves the
        // argument check came first.
        let store = SecretStore::with_choice("svc", KeyringChoice::Disabled);
        assert!(matches!(store.set("", b"x"), Err(KeyringError::Other(_))));
        assert!(matches!(
            store.set("acct", b""),
            Err(KeyringError::Other(_))
        ));
        assert!(matches!(store.get(""), Err(KeyringError::Other(_))));
        assert!(matches!(
            DeviceTrust::remember(&store, "v", "alice", 0, 0),
            Err(KeyringError::Other(_))
        ));
        assert!(matches!(
            DeviceTrust::remember(&store, "", "alice", 1, 0),
            Err(KeyringError::Other(_))
        ));
        assert!(matches!(
            DeviceTrust::remember(&store, "v", "alice", 1, i64::MAX),
            Err(KeyringError::Other(_))
        ));
    }

    #[test]
    fn device_accounts_never_collide() {
        assert_eq!(DeviceTrust::account("v1", "alice"), "v1/alice/device");
        let pairs = [
            ("a/b", "c"),
            ("a", "b/c"),
            ("a%2Fb", "c"),
            ("a", "b%2Fc"),
            ("v1", "alice"),
            ("v1", "bob"),
            ("v2", "alice"),
            ("v1", "alice/device"),
        ];
        let accounts: std::collections::HashSet<String> = pairs
            .iter()
            .map(|(vault, user)| DeviceTrust::account(vault, user))
            .collect();
        assert_eq!(accounts.len(), pairs.len(), "{accounts:?}");
    }

    #[test]
    fn device_record_round_trips_and_rejects_garbage() {
        let token = [7u8; TOKEN_LEN];
        let record = encode_record(&token, -5);
        assert_eq!(record.len(), RECORD_LEN);
        let (decoded, expiry) = decode_record(&record).unwrap();
        assert_eq!(*decoded, token);
        assert_eq!(expiry, -5);
        assert!(decode_record(&record[..RECORD_LEN - 1]).is_none());
        let mut other_version = record.to_vec();
        other_version[0] = 2;
        assert!(decode_record(&other_version).is_none());
    }

    #[test]
    fn error_messages_never_contain_secret_bytes() {
        let secret = b"hunter2-top-secret".to_vec();
        // What `{:?}` of the bytes would print, e.g. "104, 117, 110".
        let as_numbers = format!("{:?}", &secret[..3]);
        let as_numbers = as_numbers.trim_matches(['[', ']']);
        let inner: keyring_core::error::PlatformError = Box::new(std::io::Error::other("boom"));
        for err in [
            CoreError::BadEncoding(secret.clone()),
            CoreError::BadDataFormat(secret.clone(), inner),
        ] {
            for backend in Backend::ALL {
                let mapped = map_core(backend, "read", err_clone(&err));
                let text = format!("{mapped} {mapped:?}");
                assert!(matches!(mapped, KeyringError::Other(_)), "{text}");
                assert!(!text.contains("hunter2"), "{text}");
                assert!(!text.contains(as_numbers), "{text}");
            }
        }
    }

    // keyring_core::Error is not Clone; rebuild the two variants under test.
    fn err_clone(err: &CoreError) -> CoreError {
        match err {
            CoreError::BadEncoding(bytes) => CoreError::BadEncoding(bytes.clone()),
            CoreError::BadDataFormat(bytes, inner) => CoreError::BadDataFormat(
                bytes.clone(),
                Box::new(std::io::Error::other(inner.to_string())),
            ),
            _ => CoreError::NoEntry,
        }
    }

    #[test]
    fn nested_reasons_keep_their_own_parentheses() {
        let err = KeyringError::Unavailable(format!("{NO_KEYRING} (bus gone (os error 2))"));
        assert_eq!(detail(&err), "bus gone (os error 2)");
        let other = KeyringError::Other("could not read (x)".to_string());
        assert_eq!(detail(&other), "could not read (x)");
    }

    #[test]
    fn a_hung_keyring_is_abandoned_after_the_timeout() {
        let store = SecretStore::auto("svc").with_timeout(Duration::from_millis(100));
        let started = std::time::Instant::now();
        let result: Result<(), KeyringError> = store.bounded(|| {
            std::thread::sleep(Duration::from_secs(3));
            Ok(())
        });
        let message = assert_unavailable(result);
        assert!(message.contains("did not answer"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[cfg(target_os = "linux")]
    mod real {
        //! Tests against real keyring services. Each outer test starts what it
        //! needs, re-runs this test binary as a child (filtered to `#[ignore]`d
        //! child tests) inside that environment, and stops everything again.
        //! Child processes keep env changes away from the other tests.

        use super::super::*;
        use super::{assert_unavailable, unique_service};
        use std::io::{BufRead, BufReader, Write};
        use std::path::{Path, PathBuf};
        use std::process::{Child, Command, Stdio};
        use std::time::Instant;

        const CHILD_ENV: &str = "CLINVAULT_KEYRING_TEST_CHILD";
        const CHILD_TIME_LIMIT: Duration = Duration::from_secs(180);
        const NOW: i64 = 1_700_000_000;
        const DAY: i64 = 86_400;

        // ---------- helpers for the outer tests ----------

        fn require_tool(tool: &str, apt_packages: &str) -> PathBuf {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
                .map(|dir| dir.join(tool))
                .find(|candidate| candidate.is_file())
                .unwrap_or_else(|| {
                    panic!(
                        "`{tool}` is not installed, so the real-keyring tests cannot run; \
                         install it with: apt-get install -y {apt_packages}"
                    )
                })
        }

        fn keyctl() -> PathBuf {
            require_tool("keyctl", "keyutils")
        }

        /// Runs the named child tests of this module in a new process and
        /// asserts that exactly those tests ran and passed.
        fn run_children(
            scenario: &str,
            wrapper: Option<(&Path, &[&str])>,
            tests: &[&str],
            configure: impl FnOnce(&mut Command),
        ) {
            let exe = std::env::current_exe().unwrap();
            let mut command = match wrapper {
                Some((program, args)) => {
                    let mut command = Command::new(program);
                    command.args(args).arg(&exe);
                    command
                }
                None => Command::new(&exe),
            };
            // The module path without the crate name is the libtest test path,
            // whatever crate this file ends up in.
            let module = module_path!()
                .split_once("::")
                .map(|(_, rest)| rest)
                .unwrap();
            for test in tests {
                command.arg(format!("{module}::{test}"));
            }
            command.args(["--exact", "--ignored", "--nocapture", "--test-threads=1"]);
            command.env(CHILD_ENV, scenario).env_remove(KEYRING_ENV);
            configure(&mut command);

            let logs = tempfile::tempdir().unwrap();
            let out_path = logs.path().join("stdout");
            let err_path = logs.path().join("stderr");
            command
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out_path).unwrap())
                .stderr(std::fs::File::create(&err_path).unwrap());
            let mut child = command
                .spawn()
                .unwrap_or_else(|err| panic!("cannot start {:?}: {err}", command.get_program()));
            let deadline = Instant::now() + CHILD_TIME_LIMIT;
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("child tests for {scenario} did not finish in {CHILD_TIME_LIMIT:?}");
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            // Shown by `cargo test -- --nocapture` and on failure.
            println!("--- child tests for {scenario} ---\n{stdout}\n{stderr}");
            let expected = format!("{} passed; 0 failed", tests.len());
            assert!(
                status.success() && stdout.contains(&expected),
                "child tests for {scenario} failed ({status}); expected `{expected}`\n\
                 --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            );
        }

        fn no_bus(command: &mut Command, dir: &Path) {
            command
                .env(
                    "DBUS_SESSION_BUS_ADDRESS",
                    format!("unix:path={}", dir.join("no-such-bus").display()),
                )
                .env("XDG_RUNTIME_DIR", dir);
        }

        /// A private D-Bus session bus with an unlocked gnome-keyring on it,
        /// all state under a temporary directory. Nothing here can reach the
        /// developer's own keyring or desktop, and no service can be
        /// auto-started behind our back (the bus config has no service dirs).
        struct PrivateSecretService {
            dir: tempfile::TempDir,
            address: String,
            bus: Option<Child>,
            keyring: Option<Child>,
        }

        impl PrivateSecretService {
            fn start() -> Self {
                let dbus_daemon = require_tool("dbus-daemon", "dbus-daemon");
                let gnome_keyring = require_tool("gnome-keyring-daemon", "gnome-keyring");
                let dir = tempfile::Builder::new()
                    .prefix("clinvault-ss-")
                    .tempdir()
                    .unwrap();
                let runtime = dir.path().join("run");
                let home = dir.path().join("home");
                std::fs::create_dir(&runtime).unwrap();
                std::fs::create_dir(&home).unwrap();
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700))
                        .unwrap();
                }
                let config = dir.path().join("bus.conf");
                std::fs::write(
                    &config,
                    format!(
                        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                        runtime.join("bus").display()
                    ),
                )
                .unwrap();

                let mut service = PrivateSecretService {
                    address: String::new(),
                    bus: None,
                    keyring: None,
                    dir,
                };
                let mut bus = Command::new(dbus_daemon)
                    .arg(format!("--config-file={}", config.display()))
                    .args(["--nofork", "--nopidfile", "--print-address=1"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(service.log("dbus-daemon.log"))
                    .spawn()
                    .unwrap();
                let stdout = bus.stdout.take().unwrap();
                service.bus = Some(bus);
                // The daemon prints its address once it listens: our readiness signal.
                let mut address = String::new();
                BufReader::new(stdout).read_line(&mut address).unwrap();
                service.address = address.trim().to_string();
                assert!(
                    service.address.starts_with("unix:"),
                    "dbus-daemon did not start: {}",
                    service.read_log("dbus-daemon.log")
                );

                let mut keyring = Command::new(gnome_keyring)
                    .args(["--foreground", "--unlock", "--components=secrets"])
                    .env_clear()
                    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                    .env("HOME", &home)
                    .env("XDG_RUNTIME_DIR", &runtime)
                    .env("XDG_DATA_HOME", home.join(".local/share"))
                    .env("XDG_CONFIG_HOME", home.join(".config"))
                    .env("XDG_CACHE_HOME", home.join(".cache"))
                    .env("DBUS_SESSION_BUS_ADDRESS", &service.address)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(service.log("gnome-keyring.log"))
                    .spawn()
                    .unwrap();
                // The password creates and unlocks a fresh login keyring; closing
                // stdin tells the daemon the password is complete.
                let mut stdin = keyring.stdin.take().unwrap();
                stdin.write_all(b"clinvault-test-password").unwrap();
                drop(stdin);
                service.keyring = Some(keyring);
                service
            }

            fn log(&self, name: &str) -> std::fs::File {
                std::fs::File::create(self.dir.path().join(name)).unwrap()
            }

            fn read_log(&self, name: &str) -> String {
                std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
            }

            fn configure(&self, command: &mut Command) {
                command
                    .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
                    .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
                    .env_remove("DISPLAY")
                    .env_remove("WAYLAND_DISPLAY");
            }

            /// Stops both daemons and asserts they are gone.
            fn stop(mut self) {
                if let Some(keyring) = self.keyring.as_mut() {
                    assert!(
                        keyring.try_wait().unwrap().is_none(),
                        "gnome-keyring-daemon died during the test: {}",
                        self.read_log("gnome-keyring.log")
                    );
                }
                for child in [self.keyring.take(), self.bus.take()].into_iter().flatten() {
                    let pid = child.id();
                    let mut child = child;
                    child.kill().unwrap();
                    child.wait().unwrap();
                    assert!(
                        !Path::new(&format!("/proc/{pid}")).exists(),
                        "process {pid} survived"
                    );
                }
            }
        }

        impl Drop for PrivateSecretService {
            // Runs when a test panics before `stop`: never leave daemons behind.
            fn drop(&mut self) {
                for child in [self.keyring.take(), self.bus.take()].into_iter().flatten() {
                    let mut child = child;
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }

        // ---------- outer tests (run by `cargo test`) ----------

        #[test]
        fn secret_service_with_private_gnome_keyring() {
            let keyctl = keyctl();
            let service = PrivateSecretService::start();
            run_children(
                "secret-service",
                // Inside a session keyring so keyutils works too, which lets
                // the children check that auto mode still prefers the
                // Secret Service and that the env override wins.
                Some((&keyctl, &["session", "-"])),
                &[
                    "ss_child_round_trip",
                    "ss_child_device_trust",
                    "ss_child_auto_prefers_secret_service",
                    "ss_child_env_forces_keyutils",
                    "ss_child_quick_anchoring_keeps_the_keyring_evidence_of_a_rollback",
                    "ss_child_reanchoring_replaces_the_keyring_copy_of_a_longer_trail",
                    "ss_child_a_shorter_keyring_copy_still_catches_a_rewritten_trail",
                ],
                |command| {
                    service.configure(command);
                    command.env(KEYRING_ENV, "keyutils");
                },
            );
            service.stop();
        }

        #[test]
        fn keyutils_in_private_session_keyring() {
            let keyctl = keyctl();
            let dir = tempfile::tempdir().unwrap();
            run_children(
                "keyutils",
                Some((&keyctl, &["session", "-"])),
                &[
                    "ku_child_round_trip",
                    "ku_child_device_trust",
                    "ku_child_auto_falls_back_to_keyutils",
                    "ku_child_env_forces_secret_service",
                ],
                |command| {
                    no_bus(command, dir.path());
                    command.env(KEYRING_ENV, "secret-service");
                },
            );
        }

        #[test]
        fn env_none_switches_the_keyring_off() {
            let keyctl = keyctl();
            let dir = tempfile::tempdir().unwrap();
            run_children(
                "none",
                Some((&keyctl, &["session", "-"])),
                &["none_child_env_disables_keyring"],
                |command| {
                    no_bus(command, dir.path());
                    command.env(KEYRING_ENV, "none");
                },
            );
        }

        #[test]
        fn secret_service_unavailable_without_session_bus() {
            let dir = tempfile::tempdir().unwrap();
            run_children(
                "no-bus",
                None,
                &["nobus_child_secret_service_unavailable"],
                |command| {
                    command
                        .env_remove("DBUS_SESSION_BUS_ADDRESS")
                        // zbus falls back to $XDG_RUNTIME_DIR/bus: make that empty.
                        .env("XDG_RUNTIME_DIR", dir.path())
                        .env(KEYRING_ENV, "secret-service");
                },
            );
        }

        // ---------- shared bodies of the child tests ----------

        fn expect_scenario(scenario: &str) {
            let actual = std::env::var(CHILD_ENV).unwrap_or_default();
            assert_eq!(
                actual, scenario,
                "this test needs a keyring environment prepared by its outer test; \
                 run `cargo test` without --ignored"
            );
        }

        // The service may still be registering on the bus when the child starts.
        fn wait_until_usable(store: &SecretStore) {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match store.probe() {
                    Ok(()) => return,
                    Err(err) if Instant::now() > deadline => {
                        panic!("keyring never became usable: {err}")
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }

        /// Deletes the listed accounts even when an assertion fails midway:
        /// keyutils entries are also linked into the user's persistent keyring
        /// and would otherwise outlive the test session by days.
        struct Cleanup<'a> {
            store: &'a SecretStore,
            accounts: Vec<String>,
        }

        impl Drop for Cleanup<'_> {
            fn drop(&mut self) {
                for account in &self.accounts {
                    let _ = self.store.delete(account);
                }
            }
        }

        fn get_bytes(store: &SecretStore, account: &str) -> Option<Vec<u8>> {
            store.get(account).unwrap().map(|secret| secret.to_vec())
        }

        fn round_trip_suite(backend: Backend) {
            let store = SecretStore::with_backend(unique_service("rt"), backend);
            wait_until_usable(&store);
            assert_eq!(store.backend(), Ok(backend));
            let account = "smtp/alice@example.org";
            let _cleanup = Cleanup {
                store: &store,
                accounts: vec![account.to_string()],
            };
            assert_eq!(get_bytes(&store, account), None);

            // Binary, not UTF-8, with a NUL: must come back byte for byte.
            let secret = [0u8, 0x9f, 0x92, 0x96, 0xff, b'a', 0];
            store.set(account, &secret).unwrap();
            assert_eq!(get_bytes(&store, account).as_deref(), Some(&secret[..]));
            store.set(account, b"replaced").unwrap();
            assert_eq!(
                get_bytes(&store, account).as_deref(),
                Some(&b"replaced"[..])
            );
            assert_eq!(get_bytes(&store, "smtp/bob@example.org"), None);

            // Same account name under another service is a different secret.
            let other = SecretStore::with_backend(unique_service("rt-other"), backend);
            let _cleanup_other = Cleanup {
                store: &other,
                accounts: vec![account.to_string()],
            };
            assert_eq!(get_bytes(&other, account), None);
            other.set(account, b"other service").unwrap();
            assert_eq!(
                get_bytes(&store, account).as_deref(),
                Some(&b"replaced"[..])
            );

            store.delete(account).unwrap();
            assert_eq!(get_bytes(&store, account), None);
            store.delete(account).unwrap();
            assert_eq!(
                get_bytes(&other, account).as_deref(),
                Some(&b"other service"[..])
            );
            other.delete(account).unwrap();
            assert_eq!(get_bytes(&other, account), None);
        }

        fn device_trust_suite(backend: Backend) {
            let store = SecretStore::with_backend(unique_service("dt"), backend);
            wait_until_usable(&store);
            let _cleanup = Cleanup {
                store: &store,
                accounts: [("vault-1", "alice"), ("vault-1", "bob"), ("a/b", "c")]
                    .iter()
                    .map(|(vault, user)| DeviceTrust::account(vault, user))
                    .collect(),
            };
            let check = |vault: &str, user: &str, hash: &[u8; 32], now: i64| {
                DeviceTrust::check(&store, vault, user, hash, now)
            };

            let alice = DeviceTrust::remember(&store, "vault-1", "alice", 30, NOW).unwrap();
            assert!(check("vault-1", "alice", &alice, NOW));
            assert!(check("vault-1", "alice", &alice, NOW + 30 * DAY - 1));
            assert!(!check("vault-1", "alice", &alice, NOW + 30 * DAY));
            let mut tampered = alice;
            tampered[31] ^= 1;
            assert!(!check("vault-1", "alice", &tampered, NOW));

            // Same hash, other user or other vault: nothing stored there.
            assert!(!check("vault-1", "bob", &alice, NOW));
            assert!(!check("vault-2", "alice", &alice, NOW));

            let bob = DeviceTrust::remember(&store, "vault-1", "bob", 30, NOW).unwrap();
            assert_ne!(alice, bob);
            assert!(check("vault-1", "bob", &bob, NOW));
            assert!(!check("vault-1", "bob", &alice, NOW));
            assert!(!check("vault-1", "alice", &bob, NOW));
            assert!(check("vault-1", "alice", &alice, NOW));

            // Names that would clash if joined naively stay apart.
            let slashy = DeviceTrust::remember(&store, "a/b", "c", 1, NOW).unwrap();
            assert!(check("a/b", "c", &slashy, NOW));
            assert!(!check("a", "b/c", &slashy, NOW));

            // The keyring holds version || token || expiry, and the returned
            // hash is SHA-256 of that token.
            let raw = store
                .get(&DeviceTrust::account("vault-1", "bob"))
                .unwrap()
                .unwrap();
            assert_eq!(raw.len(), RECORD_LEN);
            assert_eq!(<[u8; 32]>::from(Sha256::digest(&raw[1..33])), bob);
            assert_eq!(
                i64::from_be_bytes(raw[33..].try_into().unwrap()),
                NOW + 30 * DAY
            );

            // Remembering again replaces the token: the old hash stops working.
            let alice_again = DeviceTrust::remember(&store, "vault-1", "alice", 7, NOW).unwrap();
            assert!(!check("vault-1", "alice", &alice, NOW));
            assert!(check("vault-1", "alice", &alice_again, NOW));

            DeviceTrust::forget(&store, "vault-1", "alice").unwrap();
            assert!(!check("vault-1", "alice", &alice_again, NOW));
            assert!(check("vault-1", "bob", &bob, NOW));
            DeviceTrust::forget(&store, "vault-1", "alice").unwrap();

            DeviceTrust::forget(&store, "vault-1", "bob").unwrap();
            DeviceTrust::forget(&store, "a/b", "c").unwrap();
            assert!(!check("vault-1", "bob", &bob, NOW));
            assert!(!check("a/b", "c", &slashy, NOW));
        }

        // ---------- child tests (run only inside the outer tests) ----------

        #[test]
        #[ignore = "run by secret_service_with_private_gnome_keyring"]
        fn ss_child_round_trip() {
            expect_scenario("secret-service");
            round_trip_suite(Backend::SecretService);
        }

        #[test]
        #[ignore = "run by secret_service_with_private_gnome_keyring"]
        fn ss_child_device_trust() {
            expect_scenario("secret-service");
            device_trust_suite(Backend::SecretService);
        }

        const AUDIT_PASS: &str = "plum harbour velvet tractor";

        /// A new vault (administrator "admin", `AUDIT_PASS`) in its own temporary folder, with a
        /// clock the test moves.
        fn audit_vault() -> (
            tempfile::TempDir,
            crate::vault_dir::VaultDir,
            crate::clock::ManualClock,
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let dir = crate::vault_dir::VaultDir::new(tmp.path().join("v"));
            crate::tests::new_vault(&dir, AUDIT_PASS);
            (tmp, dir, crate::clock::ManualClock::at(1_800_000_000))
        }

        /// What someone going around the app does: drops the trigger that protects the trail
        /// and deletes every entry after `seq`.
        fn cut_trail_back_to(s: &crate::Session, seq: i64) {
            s.vault()
                .unwrap()
                .conn()
                .execute_batch(&format!(
                    "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq > {seq};"
                ))
                .unwrap();
        }

        /// The audit checkpoint's keyring copy (here in the session keyring, as this scenario
        /// forces keyutils) outlives a rollback of the trail and of `audit.checkpoint` made while
        /// a session is open: the session's periodic anchoring and its end, which never compare
        /// with the keyring, must not replace that evidence, so the next sign-in raises the alert.
        #[test]
        #[ignore = "run by secret_service_with_private_gnome_keyring"]
        fn ss_child_quick_anchoring_keeps_the_keyring_evidence_of_a_rollback() {
            expect_scenario("secret-service");
            let (_tmp, dir, clock) = audit_vault();
            let mut s = crate::tests::sign_in(&dir, &clock, "admin", AUDIT_PASS);
            s.set_policy("idle-lock-minutes", "60").unwrap();
            let file = dir.file(crate::checkpoint::CHECKPOINT_FILE);
            let old_file = std::fs::read(&file).unwrap();
            let rolled_back_to: i64 = crate::checkpoint::read_file(&dir).unwrap().unwrap().size;
            for _ in 0..3 {
                s.list_roles().unwrap();
            }
            // Verification anchors in full: the keyring copy now vouches for the longer trail.
            assert!(s.verify_audit().unwrap().intact);
            // Someone going around the app cuts the trail back and puts the old file back.
            cut_trail_back_to(&s, rolled_back_to);
            std::fs::write(&file, old_file).unwrap();
            clock.advance(11 * 60);
            s.check();
            drop(s);
            let mut a = crate::tests::sign_in(&dir, &clock, "admin", AUDIT_PASS);
            let alerts = a.audit_alerts(false).unwrap();
            assert!(
                alerts.iter().any(|x| x.rule == crate::alerts::CHECKPOINT
                    && x.summary.contains("no longer matches")),
                "{alerts:#?}"
            );
        }

        /// A deliberate restore on this machine: the database goes back to a copy taken earlier
        /// while the keyring copy of the checkpoint still vouches for the longer trail. Every
        /// sign-in reports the rollback until an administrator anchors the trail anew, which
        /// must replace the keyring copy although it vouches for more entries.
        #[test]
        #[ignore = "run by secret_service_with_private_gnome_keyring"]
        fn ss_child_reanchoring_replaces_the_keyring_copy_of_a_longer_trail() {
            expect_scenario("secret-service");
            let (tmp, dir, clock) = audit_vault();
            let copy = |from: &std::path::Path, to: &std::path::Path| {
                std::fs::copy(from, to).unwrap();
            };
            let db = dir.db_file();
            let file = dir.file(crate::checkpoint::CHECKPOINT_FILE);
            let saved = tmp.path().join("saved");
            std::fs::create_dir(&saved).unwrap();
            drop(crate::tests::sign_in(&dir, &clock, "admin", AUDIT_PASS));
            // The copy taken while the vault is closed (its write-ahead log folded in).
            copy(&db, &saved.join("db"));
            copy(&file, &saved.join("checkpoint"));
            let mut s = crate::tests::sign_in(&dir, &clock, "admin", AUDIT_PASS);
            for _ in 0..3 {
                s.list_roles().unwrap();
            }
            assert!(s.verify_audit().unwrap().intact);
            drop(s);
            copy(&saved.join("db"), &db);
            copy(&saved.join("checkpoint"), &file);
            let mut a = crate::tests::sign_in(&dir, &clock, "admin", AUDIT_PASS);
            assert!(!a.verify_audit().unwrap().intact);
            a.audit_reanchor().unwrap();
            assert!(a.verify_audit().unwrap().intact);
            drop(a);
            clock.advance(2 * 3600);
            let mut a = crate::tests::sign_in(&dir, &clock, "admin", AUDIT_PASS);
            assert!(a.verify_audit().unwrap().intact);
        }

        /// An insider cuts the trail back, carries the vault to a machine whose keyring knows
        /// nothing longer (simulated here by putting the cut trail's own checkpoint in the
        /// keyring), lets it grow there past the clinic's keyring copy, and brings it back with a
        /// consistent file checkpoint that vouches for more than the keyring copy. The keyring
        /// copy is still compared with the trail: it no longer matches, so sign-in keeps it as
        /// evidence and raises the alert, and verification reports the cut.
        #[test]
        #[ignore = "run by secret_service_with_private_gnome_keyring"]
        fn ss_child_a_shorter_keyring_copy_still_catches_a_rewritten_trail() {
            expect_scenario("secret-service");
            let (_tmp, dir, clock) = audit_vault();
            let mut s = crate::tests::sign_in(&dir, &clock, "admin", AUDIT_PASS);
            let origin = crate::checkpoint::origin(&s.vault().unwrap().vault_id().to_string());
            s.set_policy("idle-lock-minutes", "60").unwrap();
            let cut = crate::checkpoint::read_file(&dir).unwrap().unwrap();
            for _ in 0..3 {
                s.list_roles().unwrap();
            }
            assert!(s.verify_audit().unwrap().intact);
            let evidence = crate::checkpoint::read_keyring(&origin).unwrap();
            assert!(evidence.size > cut.size);
            cut_trail_back_to(&s, cut.size);
            crate::checkpoint::write_file(&dir, &cut).unwrap();
            crate::checkpoint::write_keyring(&cut);
            drop(s);
            clock.advance(5 * 60);
            let mut elsewhere = crate::tests::sign_in(&dir, &clock, "admin", AUDIT_PASS);
            for _ in 0..6 {
                elsewhere.list_roles().unwrap();
            }
            // There, with no longer anchor to compare, the cut trail passes for intact.
            assert!(elsewhere.verify_audit().unwrap().intact);
            drop(elsewhere);
            assert!(crate::checkpoint::read_file(&dir).unwrap().unwrap().size > evidence.size);
            crate::checkpoint::write_keyring(&evidence);

            clock.advance(5 * 60);
            let mut a = crate::tests::sign_in(&dir, &clock, "admin", AUDIT_PASS);
            let alerts = a.audit_alerts(false).unwrap();
            assert!(
                alerts.iter().any(|x| x.rule == crate::alerts::CHECKPOINT
                    && x.summary.contains("no longer matches")),
                "{alerts:#?}"
            );
            assert_eq!(
                crate::checkpoint::read_keyring(&origin),
                Some(evidence.clone())
            );
            let report = a.verify_audit().unwrap();
            let problem = report.problem.unwrap();
            assert_eq!(
                (problem.kind, problem.seq),
                (crate::audit_verify::ProblemKind::Truncated, evidence.size)
            );
            a.audit_reanchor().unwrap();
            assert!(a.verify_audit().unwrap().intact);
        }

        #[test]
        #[ignore = "run by secret_service_with_private_gnome_keyring"]
        fn ss_child_auto_prefers_secret_service() {
            expect_scenario("secret-service");
            let secret_service =
                SecretStore::with_backend(unique_service("pref"), Backend::SecretService);
            wait_until_usable(&secret_service);
            // Both work here, so the choice below is a preference, not a fallback.
            SecretStore::with_backend(unique_service("pref"), Backend::KeyUtils)
                .probe()
                .unwrap();
            let auto = SecretStore::auto(unique_service("pref"));
            assert_eq!(auto.backend(), Ok(Backend::SecretService));
        }

        #[test]
        #[ignore = "run by secret_service_with_private_gnome_keyring"]
        fn ss_child_env_forces_keyutils() {
            expect_scenario("secret-service");
            wait_until_usable(&SecretStore::with_backend(
                unique_service("env"),
                Backend::SecretService,
            ));
            let store = SecretStore::new(unique_service("env"));
            let _cleanup = Cleanup {
                store: &store,
                accounts: vec!["acct".to_string()],
            };
            assert_eq!(store.backend(), Ok(Backend::KeyUtils));
            store.set("acct", b"via keyutils").unwrap();
            assert_eq!(
                get_bytes(&store, "acct").as_deref(),
                Some(&b"via keyutils"[..])
            );
            store.delete("acct").unwrap();
            assert_eq!(get_bytes(&store, "acct"), None);
        }

        #[test]
        #[ignore = "run by keyutils_in_private_session_keyring"]
        fn ku_child_round_trip() {
            expect_scenario("keyutils");
            round_trip_suite(Backend::KeyUtils);
        }

        #[test]
        #[ignore = "run by keyutils_in_private_session_keyring"]
        fn ku_child_device_trust() {
            expect_scenario("keyutils");
            device_trust_suite(Backend::KeyUtils);
        }

        #[test]
        #[ignore = "run by keyutils_in_private_session_keyring"]
        fn ku_child_auto_falls_back_to_keyutils() {
            expect_scenario("keyutils");
            assert_unavailable(
                SecretStore::with_backend(unique_service("auto"), Backend::SecretService).probe(),
            );
            let auto = SecretStore::auto(unique_service("auto"));
            assert_eq!(auto.backend(), Ok(Backend::KeyUtils));
            auto.probe().unwrap();
        }

        #[test]
        #[ignore = "run by keyutils_in_private_session_keyring"]
        fn ku_child_env_forces_secret_service() {
            expect_scenario("keyutils");
            // keyutils works here, yet the forced choice must not fall back to it.
            SecretStore::with_backend(unique_service("env"), Backend::KeyUtils)
                .probe()
                .unwrap();
            let store = SecretStore::new(unique_service("env"));
            let message = assert_unavailable(store.probe());
            assert!(message.contains("Secret Service"), "{message}");
            assert_unavailable(store.set("acct", b"x"));
            assert_unavailable(store.get("acct"));
        }

        #[test]
        #[ignore = "run by env_none_switches_the_keyring_off"]
        fn none_child_env_disables_keyring() {
            expect_scenario("none");
            SecretStore::with_backend(unique_service("none"), Backend::KeyUtils)
                .probe()
                .unwrap();
            let store = SecretStore::new(unique_service("none"));
            let message = assert_unavailable(store.probe());
            assert!(message.contains("none"), "{message}");
            assert_unavailable(store.set("acct", b"x"));
            assert_unavailable(store.get("acct"));
            let message = assert_unavailable(DeviceTrust::remember(&store, "v", "u", 1, NOW));
            assert!(message.starts_with(DEVICE_TRUST_UNAVAILABLE), "{message}");
        }

        #[test]
        #[ignore = "run by secret_service_unavailable_without_session_bus"]
        fn nobus_child_secret_service_unavailable() {
            expect_scenario("no-bus");
            assert!(std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none());
            let forced = SecretStore::with_backend(unique_service("nobus"), Backend::SecretService);
            let message = assert_unavailable(forced.probe());
            assert!(message.contains("Secret Service"), "{message}");
            assert_unavailable(forced.set("acct", b"x"));

            let from_env = SecretStore::new(unique_service("nobus"));
            assert_unavailable(from_env.get("acct"));
            assert_unavailable(from_env.delete("acct"));
            let message =
                assert_unavailable(DeviceTrust::remember(&from_env, "v", "alice", 30, NOW));
            assert!(message.starts_with(DEVICE_TRUST_UNAVAILABLE), "{message}");
            assert!(!DeviceTrust::check(&from_env, "v", "alice", &[0; 32], NOW));
        }
    }
}
