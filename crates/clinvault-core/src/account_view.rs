//! What a front end may know about the signed-in person without an audit entry: the permissions
//! of their own role (to shape menus — the gate still decides every operation) and a strength
//! estimate for a passphrase they are typing (for a meter; the policy check is `passphrase_rules`).

use secrecy::SecretString;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::permissions::{self, Permission};
use crate::policy::Policy;
use crate::session::Session;
use crate::{crypto, passphrase_rules};

impl Session {
    /// The permissions of the signed-in user's role, read fresh (a role change applies at once).
    pub fn own_permissions(&self) -> Result<Vec<Permission>> {
        let role =
            permissions::load(self.vault()?.conn(), &self.user().role)?.ok_or_else(|| {
                Error::Integrity(format!("role {:?} does not exist", self.user().role))
            })?;
        Ok(role.permissions.into_iter().collect())
    }

    /// Whether the signed-in user has two-factor sign-in on.
    pub fn two_factor_enabled(&self) -> Result<bool> {
        crate::two_factor::is_enabled(self.vault()?.conn(), self.user().id)
    }
}

/// A passphrase meter reading: zxcvbn's 0–4 score, and whether (and why not) the policy accepts it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Strength {
    pub score: u8,
    pub acceptable: bool,
    /// The policy's reason when it is not acceptable.
    pub reason: Option<String>,
    pub min_length: u32,
}

pub fn assess(
    policy: &Policy,
    passphrase: &SecretString,
    has_2fa: bool,
    user_inputs: &[&str],
) -> Strength {
    let normalised = crypto::normalise_passphrase(passphrase);
    let score = if normalised.is_empty() || normalised.chars().count() > passphrase_rules::MAX_CHARS
    {
        0
    } else {
        u8::from(zxcvbn::zxcvbn(&normalised, user_inputs).score())
    };
    let verdict = passphrase_rules::check(policy, passphrase, has_2fa, user_inputs);
    Strength {
        score,
        acceptable: verdict.is_ok(),
        reason: verdict.err().map(|e| e.to_string()),
        min_length: if has_2fa {
            policy.min_passphrase_length_2fa
        } else {
            policy.min_passphrase_length
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn a_short_common_passphrase_is_weak_with_the_policy_reason() {
        let s = assess(&Policy::default(), &secret("password"), false, &[]);
        assert!(!s.acceptable);
        assert!(s.score <= 1, "{s:?}");
        let reason = s.reason.unwrap_or_default();
        assert!(reason.contains("at least 15"), "{reason}");
        assert_eq!(s.min_length, 15);
    }

    #[test]
    fn a_long_passphrase_of_unrelated_words_is_acceptable() {
        let s = assess(
            &Policy::default(),
            &secret("velvet harbour tractor quietly"),
            false,
            &[],
        );
        assert!(s.acceptable, "{s:?}");
        assert_eq!(s.reason, None);
        assert!(s.score >= 3);
    }

    #[test]
    fn the_username_makes_a_passphrase_weaker() {
        let p = secret("jordanjordanjordan1");
        let with = assess(&Policy::default(), &p, false, &["jordan"]);
        assert!(!with.acceptable, "{with:?}");
    }

    #[test]
    fn the_2fa_floor_applies_with_two_factor_sign_in() {
        let s = assess(&Policy::default(), &secret("x"), true, &[]);
        assert_eq!(s.min_length, 8);
        assert_eq!(s.score, 0);
    }
}
