//! Amounts in Chinese capitals (大写金额), as printed in 价税合计（大写）.
//!
//! Canonical form: 圆, `整` after 圆 or 角, the optional 零s written, `（负数）` before negatives.

use rust_decimal::Decimal;

/// The capitals of `amount`, rounded half-up to 2 places first.
pub fn amount_in_capitals(amount: Decimal) -> String {
    let _ = amount;
    String::new()
}

/// Parse capitals back to an amount (accepts 元 or 圆, 整 or 正, with or without optional 零s).
pub fn parse_capitals(text: &str) -> Option<Decimal> {
    let _ = text;
    None
}
