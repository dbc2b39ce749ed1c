//! Money as integer minor units (cents), parsed from and shown as decimal text. Never floats.

use crate::error::{Error, Result};

/// Parses "85", "85.5" or "85.50" (optionally with thousands separators ',') into minor units.
pub fn parse_minor(field: &str, text: &str) -> Result<i64> {
    let bad = || Error::InvalidInput(format!("{field}: {text:?} is not an amount (e.g. 85.00)"));
    let t = text.trim().replace(',', "");
    if t.starts_with('-') {
        return Err(Error::InvalidInput(format!(
            "{field}: must not be negative"
        )));
    }
    let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 2
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().map_err(|_| bad())? * 10,
        _ => frac.parse().map_err(|_| bad())?,
    };
    let minor = whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)?;
    if minor > MAX_MINOR {
        return Err(Error::InvalidInput(format!(
            "{field}: at most {}",
            format_minor(MAX_MINOR)
        )));
    }
    Ok(minor)
}

/// The largest amount accepted: far above any clinic's price, and low enough that a line
/// (quantity up to 1,000) times a tax rate in basis points (up to 10,000) stays within i64.
pub const MAX_MINOR: i64 = 10_000_000_000;

pub fn format_minor(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02}", m / 100, m % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_without_floats() {
        assert_eq!(parse_minor("price", "85").unwrap(), 8500);
        assert_eq!(parse_minor("price", "85.5").unwrap(), 8550);
        assert_eq!(parse_minor("price", "1,085.05").unwrap(), 108_505);
        assert_eq!(parse_minor("price", ".99").unwrap(), 99);
        assert!(parse_minor("price", "-5")
            .unwrap_err()
            .to_string()
            .contains("negative"));
        assert!(parse_minor("price", "8.555").is_err());
        assert!(parse_minor("price", "abc").is_err());
        assert!(parse_minor("price", "").is_err());
        assert!(parse_minor("price", "99999999999999999999").is_err());
        assert_eq!(parse_minor("price", "100000000").unwrap(), MAX_MINOR);
        let e = parse_minor("price", "100000000.01").unwrap_err();
        assert!(e.to_string().contains("at most 100000000.00"), "{e}");
        assert_eq!(format_minor(108_505), "1085.05");
        assert_eq!(format_minor(-7), "-0.07");
    }
}
