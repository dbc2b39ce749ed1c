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
type Reply<T> = Result<T, ApiError>;

fn with<T>(state: &AppState, f: impl FnOnce(&mut Shell<DesktopHost>) -> Reply<T>) -> Reply<T> {
    // A panic while holding the lock poisons it; the shell itself stays consistent (sessions
    // are dropped, not half-updated), so carry on rather than wedge the app.
    let mut shell = state.lock().unwrap_or_else(|p| p.into_inner());
    contain(|| f(&mut shell))
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
    status() -> AppStatus;
    create_vault(req: CreateVault) -> VaultCreated;
    sign_in(req: SignInRequest) -> AppStatus;
    complete_sign_in(req: SecondFactor) -> AppStatus;
    cancel_sign_in() -> AppStatus;
    sign_out() -> AppStatus;
    report_activity() -> AppStatus;
    lock() -> AppStatus;
    unlock(req: Unlock) -> AppStatus;
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
}

/// Infallible in the shell, so outside the macro.
#[tauri::command(async)]
pub fn passphrase_strength(state: State<'_, AppState>, req: StrengthRequest) -> Reply<Strength> {
    with(&state, |s| Ok(s.passphrase_strength(req)))
}
