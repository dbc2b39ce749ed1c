//! The passphrase policy, after NIST SP 800-63B rev. 4: a minimum length (15 characters where
//! the passphrase is the only factor, 8 with two-factor sign-in; both raisable by the clinic),
//! at least 128 characters allowed, any Unicode (compared after NFC normalisation), paste
//! allowed, no composition rules, no forced periodic change — but refused when it is a commonly
//! used password or is easy to guess. The reason is always given; the passphrase never is.

use secrecy::{ExposeSecret, SecretString};
use zxcvbn::feedback::Warning;
use zxcvbn::matching::patterns::MatchPattern;
use zxcvbn::Score;

use crate::crypto::normalise_passphrase;
use crate::error::{Error, Result};
use crate::policy::Policy;

pub const MAX_CHARS: usize = 1024;

fn reject(reason: impl Into<String>) -> Error {
    Error::InvalidInput(format!("passphrase: {}", reason.into()))
}

/// Checks a new passphrase; `user_inputs` are words a guesser would try first (username,
/// display name, clinic name).
pub fn check(
    policy: &Policy,
    passphrase: &SecretString,
    has_2fa: bool,
    user_inputs: &[&str],
) -> Result<()> {
    let normalised = normalise_passphrase(passphrase);
    let chars = normalised.chars().count();
    let min = if has_2fa {
        policy.min_passphrase_length_2fa
    } else {
        policy.min_passphrase_length
    } as usize;
    if chars < min {
        return Err(reject(format!(
            "use at least {min} characters (this one has {chars}){}",
            if has_2fa {
                ""
            } else {
                "; a few unrelated words make a good one"
            }
        )));
    }
    if chars > MAX_CHARS {
        return Err(reject(format!("use at most {MAX_CHARS} characters")));
    }
    if passphrase.expose_secret().chars().all(char::is_whitespace) {
        return Err(reject("it cannot be only spaces"));
    }
    let estimate = zxcvbn::zxcvbn(&normalised, user_inputs);
    // zxcvbn ships the 30,000 most frequent passwords of the Xato breach corpus; a passphrase
    // that is (or is a light variant of) one of them is refused as common.
    let common = estimate.sequence().len() == 1
        && matches!(estimate.sequence()[0].pattern, MatchPattern::Dictionary(_))
        && matches!(
            estimate.feedback().and_then(|f| f.warning()),
            Some(
                Warning::ThisIsATop10Password
                    | Warning::ThisIsATop100Password
                    | Warning::ThisIsACommonPassword
                    | Warning::ThisIsSimilarToACommonlyUsedPassword
            )
        );
    if common {
        return Err(reject(
            "it is on a list of commonly used or breached passwords",
        ));
    }
    if estimate.score() < Score::Three {
        let why = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| w.to_string())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "it follows a pattern guessers try early".into());
        return Err(reject(format!(
            "it is too easy to guess ({}); add a few unrelated words",
            why.trim_end_matches('.')
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_str(p: &str, has_2fa: bool) -> Result<()> {
        check(
            &Policy::default(),
            &SecretString::from(p.to_owned()),
            has_2fa,
            &["amy", "Amy Wong"],
        )
    }

    #[test]
    fn length_depends_on_the_second_factor() {
        let e = check_str("kx8#Lq2!vZ", false).unwrap_err().to_string();
        assert!(
            e.contains("at least 15 characters (this one has 10)"),
            "{e}"
        );
        assert!(check_str("kx8#Lq2!vZ", true).is_ok());
        assert!(check_str("kx8#Lq2", true)
            .unwrap_err()
            .to_string()
            .contains("at least 8"));
        assert!(check_str("plum harbour velvet tractor", false).is_ok());
    }

    #[test]
    fn long_and_unicode_passphrases_are_allowed() {
        let long: String = "river stone maple quartz ".repeat(6);
        assert!(long.chars().count() >= 128);
        assert!(check_str(&long, false).is_ok());
        assert!(check_str("çà et là, où vont les hirondelles", false).is_ok());
        assert!(check_str(&"ab9 ".repeat(300), false)
            .unwrap_err()
            .to_string()
            .contains("at most"));
    }

    #[test]
    fn common_and_guessable_passphrases_are_refused_with_a_reason() {
        let e = check_str("password1234567", false).unwrap_err().to_string();
        assert!(
            e.contains("commonly used") || e.contains("too easy to guess"),
            "{e}"
        );
        let e = check_str("aaaaaaaaaaaaaaaaaaaa", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("too easy to guess"), "{e}");
        let e = check_str("qwertyuiopasdfgh", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("too easy to guess"), "{e}");
        // Messages never echo the passphrase.
        assert!(!e.contains("qwerty"));
        let e = check_str("iloveyou", true).unwrap_err().to_string();
        assert!(e.contains("commonly used"), "{e}");
    }
}
