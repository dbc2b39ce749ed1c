//! `clinvault`: the command-line shell over the ClinVault core. It parses arguments, gathers
//! secrets, calls the core and prints; every decision is the core's.
//!
//! Exit codes (a contract for scripts): 0 ok, 1 other error, 2 usage, 3 authentication failed,
//! 4 permission denied, 5 integrity failure, 6 not found.

mod prompt;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use clinvault_core::crypto::KdfCost;
use clinvault_core::{Error, ErrorKind, InitOptions, Vault, VaultDir};
use secrecy::SecretString;

#[derive(Parser)]
#[command(
    name = "clinvault",
    version,
    about = "ClinVault: an encrypted practice vault for clinics"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Vault directory (default: the platform data directory)
    #[arg(long, global = true, env = "CLINVAULT_VAULT", value_name = "DIR")]
    vault: Option<PathBuf>,
    /// Username to act as
    #[arg(long, global = true, env = "CLINVAULT_USER", value_name = "NAME")]
    user: Option<String>,
    /// Read the passphrase from this file (else env CLINVAULT_PASSPHRASE, else a prompt)
    #[arg(long, global = true, value_name = "PATH")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new vault with its first administrator
    Init {
        #[arg(long, value_name = "NAME")]
        admin: String,
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
        /// Also write the recovery key to this new file
        #[arg(long, value_name = "PATH")]
        recovery_key_file: Option<PathBuf>,
    },
    /// Show the vault without unlocking it
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Change your passphrase (new one from CLINVAULT_NEW_PASSPHRASE or a prompt)
    Passphrase {
        #[command(subcommand)]
        action: PassphraseAction,
    },
    /// Set a new administrator passphrase using the recovery key
    Recover {
        #[arg(long, value_name = "PATH")]
        recovery_key_file: PathBuf,
        #[arg(long, value_name = "NAME")]
        admin: String,
    },
    /// Show who you are signed in as (unlocks the vault)
    Whoami {
        #[arg(long)]
        json: bool,
    },
    /// Key management
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
}

#[derive(Subcommand)]
enum PassphraseAction {
    /// Change the passphrase of the signed-in user
    Change,
}

#[derive(Subcommand)]
enum KeyAction {
    /// Print the raw SQLCipher key in hex (administrators; re-authentication required)
    ExportDbKey {
        #[arg(long)]
        json: bool,
    },
    /// Replace the master key and re-key the database
    Rotate,
}

fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidInput => 2,
        ErrorKind::Authentication => 3,
        ErrorKind::PermissionDenied => 4,
        ErrorKind::Integrity => 5,
        ErrorKind::NotFound => 6,
        ErrorKind::AlreadyExists
        | ErrorKind::Busy
        | ErrorKind::Incompatible
        | ErrorKind::Io
        | ErrorKind::Internal => 1,
    }
}

impl Global {
    fn dir(&self) -> Result<VaultDir, Error> {
        match &self.vault {
            Some(path) => Ok(VaultDir::new(path)),
            None => VaultDir::platform_default(),
        }
    }

    fn passphrase(&self, label: &str) -> Result<SecretString, Error> {
        if let Some(path) = &self.passphrase_file {
            return prompt::from_file(path);
        }
        if let Some(p) = prompt::from_env("CLINVAULT_PASSPHRASE") {
            return Ok(p);
        }
        prompt::ask(label, "CLINVAULT_PASSPHRASE or --passphrase-file")
    }

    fn username(&self) -> Result<String, Error> {
        match &self.user {
            Some(u) => Ok(u.clone()),
            None => prompt::ask_line("Username", "--user or CLINVAULT_USER"),
        }
    }

    fn unlock(&self) -> Result<Vault, Error> {
        let dir = self.dir()?;
        // Fail fast (exit 6) on a missing vault before asking anyone for secrets.
        clinvault_core::vault::status(&dir)?;
        let user = self.username()?;
        let passphrase = self.passphrase("Passphrase")?;
        Vault::unlock(&dir, &user, &passphrase)
    }
}

fn new_passphrase() -> Result<SecretString, Error> {
    match prompt::from_env("CLINVAULT_NEW_PASSPHRASE") {
        Some(p) => Ok(p),
        None => prompt::ask_new("New passphrase", "CLINVAULT_NEW_PASSPHRASE"),
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Internal(format!("cannot format output: {e}")))?;
    println!("{text}");
    Ok(())
}

fn run(cli: Cli) -> Result<(), Error> {
    let g = &cli.global;
    match cli.command {
        Command::Init {
            admin,
            display_name,
            recovery_key_file,
        } => {
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
            println!(
                "Anyone holding it can open the vault and reset an administrator's passphrase."
            );
            Ok(())
        }
        Command::Status { json } => {
            let status = clinvault_core::vault::status(&g.dir()?)?;
            if json {
                print_json(&status)
            } else {
                println!("vault:           {}", status.path);
                println!("vault id:        {}", status.vault_id);
                println!("format version:  {}", status.format_version);
                println!("SQLCipher:       {}", status.sqlcipher_version);
                println!("created:         {}", status.created_at);
                println!("key slots:       {}", status.key_slots);
                println!("key epoch:       {}", status.key_epoch);
                if status.rotation_pending {
                    println!("note:            a key rotation was interrupted; it completes at the next sign-in");
                }
                Ok(())
            }
        }
        Command::Passphrase {
            action: PassphraseAction::Change,
        } => {
            let mut vault = g.unlock()?;
            let new = new_passphrase()?;
            vault.change_passphrase(&new)?;
            println!("Passphrase changed for {}.", vault.user().username);
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
        Command::Whoami { json } => {
            let vault = g.unlock()?;
            let user = vault.user();
            if json {
                print_json(user)
            } else {
                println!("{} ({}, {})", user.username, user.display_name, user.role);
                Ok(())
            }
        }
        Command::Key {
            action: KeyAction::ExportDbKey { json },
        } => {
            let vault = g.unlock()?;
            let again = g.passphrase("Passphrase (again, to confirm)")?;
            let key = vault.export_db_key(&again)?;
            if json {
                print_json(&serde_json::json!({ "db_key_hex": key.as_str() }))?;
            } else {
                println!("{}", key.as_str());
                eprintln!(
                    "Open the database with any SQLCipher 4 tool: PRAGMA key = \"x'<key>'\"; \
                     anyone with this key can read every record."
                );
            }
            Ok(())
        }
        Command::Key {
            action: KeyAction::Rotate,
        } => {
            let mut vault = g.unlock()?;
            vault.rotate()?;
            println!("Vault keys rotated (key epoch {}).", vault.key_epoch());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // A panic message could carry data; print one fixed line instead (below) and nothing else.
    std::panic::set_hook(Box::new(|_| {}));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as ClapKind;
            if matches!(
                e.kind(),
                ClapKind::DisplayHelp
                    | ClapKind::DisplayVersion
                    | ClapKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ClapKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            let rendered = e.to_string();
            let first = rendered
                .lines()
                .next()
                .unwrap_or("error: invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("error: {first} (see clinvault --help)");
            return ExitCode::from(2);
        }
    };
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(e.kind()))
        }
        Err(_) => {
            eprintln!(
                "error: internal error; the operation was stopped and nothing further was changed"
            );
            ExitCode::from(1)
        }
    }
}
