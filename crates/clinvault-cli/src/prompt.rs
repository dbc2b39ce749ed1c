//! Where secrets come from: environment variables, a file, or a no-echo prompt on a terminal —
//! never command-line arguments, which other users can read from the process list.

use std::io::IsTerminal;
use std::path::Path;

use clinvault_core::Error;
use secrecy::SecretString;
use zeroize::Zeroizing;

pub fn from_env(var: &str) -> Option<SecretString> {
    std::env::var(var).ok().map(SecretString::from)
}

/// Reads an input file named by the user; a missing one is "not found" (exit 6) whatever it
/// holds. `what` names it in the messages ("file", "passphrase file").
pub fn read_input(path: &Path, what: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound(format!("no {what} at {}", path.display()))
        } else {
            Error::Io {
                context: format!("cannot read {what} {}", path.display()),
                source: e,
            }
        }
    })
}

pub fn from_file(path: &Path) -> Result<SecretString, Error> {
    let text = Zeroizing::new(read_input(path, "passphrase file")?);
    // One trailing newline is how editors save a one-line file; it is not part of the passphrase.
    let trimmed = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(SecretString::from(trimmed.to_owned()))
}

pub fn is_terminal() -> bool {
    terminal()
}

fn terminal() -> bool {
    std::io::stdin().is_terminal()
}

pub fn ask(label: &str, env_hint: &str) -> Result<SecretString, Error> {
    if !terminal() {
        return Err(Error::InvalidInput(format!(
            "{label} needed: set {env_hint} or run in a terminal"
        )));
    }
    rpassword::prompt_password(format!("{label}: "))
        .map(SecretString::from)
        .map_err(|e| Error::Io {
            context: "cannot read from the terminal".into(),
            source: e,
        })
}

/// Asks twice on a terminal so a typo does not lock someone out of a new passphrase.
pub fn ask_new(label: &str, env_hint: &str) -> Result<SecretString, Error> {
    use secrecy::ExposeSecret;
    let first = ask(label, env_hint)?;
    let second = ask(&format!("{label} (again)"), env_hint)?;
    if first.expose_secret() != second.expose_secret() {
        return Err(Error::InvalidInput("the two passphrases differ".into()));
    }
    Ok(first)
}

/// A line typed at a terminal (shown as typed). `what` names it in the error when there is
/// no terminal: "{what} needed: use {hint} or run in a terminal".
pub fn ask_line(label: &str, what: &str, hint: &str) -> Result<String, Error> {
    if !terminal() {
        return Err(Error::InvalidInput(format!(
            "{what} needed: use {hint} or run in a terminal"
        )));
    }
    eprint!("{label}: ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Error::Io {
            context: "cannot read from the terminal".into(),
            source: e,
        })?;
    Ok(line.trim().to_owned())
}
