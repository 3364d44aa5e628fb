//! Money, quantities and rounding.
//!
//! Amounts are yuan with two decimals inside number(18,2); quantities and unit prices have at most
//! 12 integer digits and 13 decimals. Every rounding is half-up (away from zero on a tie), so a red
//! line rounds to exactly the negative of its blue line. Input arrives as text, and parsing is
//! strict: an optional minus sign, digits, and an optional fraction. Exponents, `+`, separators and
//! spaces inside the number are refused, so what a caller sent is what we stored.

use rust_decimal::{Decimal, RoundingStrategy};
use std::str::FromStr;

/// Decimals of an amount of money.
pub const MONEY_DECIMALS: u32 = 2;
/// Integer digits of an amount of money: number(18,2) leaves 16.
pub const MONEY_INTEGER_DIGITS: u32 = 16;
/// Integer digits of a quantity or unit price.
pub const QUANTITY_INTEGER_DIGITS: u32 = 12;
/// Decimals of a quantity or unit price.
pub const QUANTITY_DECIMALS: u32 = 13;

/// Round half-up (away from zero) to two decimals, and hold exactly two, so that every amount
/// prints, stores and serialises as `10000.00`, whatever the caller wrote.
pub fn round_money(value: Decimal) -> Decimal {
    let mut rounded =
        value.round_dp_with_strategy(MONEY_DECIMALS, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(MONEY_DECIMALS);
    rounded
}

/// Round half-up (away from zero) to `decimals` places.
pub fn round_half_up(value: Decimal, decimals: u32) -> Decimal {
    value.round_dp_with_strategy(decimals, RoundingStrategy::MidpointAwayFromZero)
}

/// Why a number sent as text was refused. The validator turns these into `{FIELD}_FORMAT`,
/// `{FIELD}_PRECISION` and `{FIELD}_RANGE` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("not a plain decimal number")]
    Format,
    #[error("too many decimals")]
    Precision { max_decimals: u32 },
    #[error("too many integer digits")]
    Range { max_integer_digits: u32 },
}

impl NumberError {
    /// The stable suffix of the violation code.
    pub fn code_suffix(&self) -> &'static str {
        match self {
            Self::Format => "FORMAT",
            Self::Precision { .. } => "PRECISION",
            Self::Range { .. } => "RANGE",
        }
    }

    pub fn message_zh(&self, what: &str) -> String {
        match self {
            Self::Format => format!("{what}不是有效的数字"),
            Self::Precision { max_decimals } => format!("{what}最多{max_decimals}位小数"),
            Self::Range { max_integer_digits } => {
                format!("{what}整数部分最多{max_integer_digits}位")
            }
        }
    }
}

/// Parse a decimal written as `-?digits(.digits)?` with at most the given digits on each side.
pub fn parse_decimal(
    text: &str,
    max_integer_digits: u32,
    max_decimals: u32,
) -> Result<Decimal, NumberError> {
    let body = text.strip_prefix('-').unwrap_or(text);
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || frac_part.is_some_and(|f| !all_digits(f)) {
        return Err(NumberError::Format);
    }
    let significant_int = int_part.trim_start_matches('0').len();
    if significant_int > max_integer_digits as usize {
        return Err(NumberError::Range { max_integer_digits });
    }
    let significant_frac = frac_part.map_or(0, |f| f.trim_end_matches('0').len());
    if significant_frac > max_decimals as usize {
        return Err(NumberError::Precision { max_decimals });
    }
    // Both parts are bounded above, so the value always fits a Decimal (28 digits).
    Decimal::from_str(text)
        .map(|d| d.normalize())
        .map_err(|_| NumberError::Format)
}

/// Parse an amount of money: at most 16 integer digits and 2 decimals.
pub fn parse_money(text: &str) -> Result<Decimal, NumberError> {
    parse_decimal(text, MONEY_INTEGER_DIGITS, MONEY_DECIMALS)
}

/// Parse a quantity or unit price: at most 12 integer digits and 13 decimals.
pub fn parse_quantity(text: &str) -> Result<Decimal, NumberError> {
    parse_decimal(text, QUANTITY_INTEGER_DIGITS, QUANTITY_DECIMALS)
}

/// True when `value` fits number(18,2) (after rounding to two places).
pub fn fits_money(value: Decimal) -> bool {
    round_money(value).abs() < Decimal::from(10_i64.pow(MONEY_INTEGER_DIGITS))
}

/// An amount formatted with exactly two decimals: `1234.50`, `-0.05`.
pub fn format_money(value: Decimal) -> String {
    round_money(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn rounds_half_up_away_from_zero() {
        assert_eq!(round_money(dec!(1.005)), dec!(1.01));
        assert_eq!(round_money(dec!(1.004)), dec!(1.00));
        assert_eq!(round_money(dec!(-1.005)), dec!(-1.01));
        assert_eq!(round_money(dec!(2.675)), dec!(2.68));
    }

    #[test]
    fn parses_plain_decimals_only() {
        assert_eq!(parse_money("1234.50"), Ok(dec!(1234.5)));
        assert_eq!(parse_money("-0.05"), Ok(dec!(-0.05)));
        assert_eq!(parse_money("007"), Ok(dec!(7)));
        for bad in [
            "", "-", ".5", "5.", "1e3", "+1", "1,000", " 1", "1_000", "１", "--1", "1.2.3",
        ] {
            assert_eq!(parse_money(bad), Err(NumberError::Format), "{bad:?}");
        }
    }

    #[test]
    fn spaces_anywhere_are_a_format_error() {
        for bad in [
            " 1 ",
            " 1",
            "1 ",
            "1\t",
            "\n1",
            "- 1",
            "1 000",
            "1. 5",
            "\u{3000}1",
            "\u{a0}1",
            " ",
        ] {
            assert_eq!(parse_money(bad), Err(NumberError::Format), "{bad:?}");
            assert_eq!(parse_quantity(bad), Err(NumberError::Format), "{bad:?}");
        }
    }

    #[test]
    fn refuses_too_many_digits() {
        assert_eq!(
            parse_money("1.001"),
            Err(NumberError::Precision { max_decimals: 2 })
        );
        assert_eq!(parse_money("1.100"), Ok(dec!(1.1)));
        assert_eq!(
            parse_money("12345678901234567"),
            Err(NumberError::Range {
                max_integer_digits: 16
            })
        );
        assert!(parse_money("9999999999999999.99").is_ok());
        assert!(parse_quantity("123456789012.1234567890123").is_ok());
        assert_eq!(
            parse_quantity("1.12345678901234"),
            Err(NumberError::Precision { max_decimals: 13 })
        );
    }

    #[test]
    fn rounded_money_always_has_two_decimals() {
        assert_eq!(round_money(dec!(10000)).to_string(), "10000.00");
        assert_eq!(round_money(dec!(-0.5)).to_string(), "-0.50");
        assert_eq!(round_money(dec!(9999999999999999.99)).scale(), 2);
    }

    #[test]
    fn formats_two_decimals() {
        assert_eq!(format_money(dec!(5)), "5.00");
        assert_eq!(format_money(dec!(-0.5)), "-0.50");
        assert_eq!(format_money(dec!(158.415)), "158.42");
    }

    #[test]
    fn money_bounds() {
        assert!(fits_money(dec!(9999999999999999.99)));
        assert!(!fits_money(dec!(10000000000000000)));
        assert!(!fits_money(dec!(9999999999999999.995)));
    }
}
