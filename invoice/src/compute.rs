//! Line and invoice arithmetic.
//!
//! Tax-exclusive input: `tax = round(amount × rate)`, `total = amount + tax`.
//! Tax-inclusive input: `amount = round(total ÷ (1 + rate))`, `tax = total − amount`, so that
//! amount + tax always equals the inclusive total exactly and the tax deviation is zero.
//! Totals are exact sums of the lines; nothing is rounded twice.

use crate::model::{Line, Totals};
use crate::money::{QUANTITY_DECIMALS, round_half_up, round_money};
use crate::rate::TaxRate;
use rust_decimal::Decimal;

/// The three amounts of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineAmounts {
    /// Tax-exclusive amount (金额).
    pub amount: Decimal,
    /// Tax (税额).
    pub tax: Decimal,
    /// Tax-inclusive total (价税合计).
    pub total: Decimal,
}

/// From a tax-exclusive amount. `None` only on arithmetic overflow.
pub fn from_exclusive(amount: Decimal, rate: TaxRate) -> Option<LineAmounts> {
    let amount = round_money(amount);
    let tax = round_money(amount.checked_mul(rate.fraction())?);
    Some(LineAmounts {
        amount,
        tax,
        total: amount.checked_add(tax)?,
    })
}

/// From a tax-inclusive total. `None` only on arithmetic overflow.
pub fn from_inclusive(total: Decimal, rate: TaxRate) -> Option<LineAmounts> {
    let total = round_money(total);
    let divisor = Decimal::ONE.checked_add(rate.fraction())?;
    let amount = round_money(total.checked_div(divisor)?);
    Some(LineAmounts {
        amount,
        tax: total.checked_sub(amount)?,
        total,
    })
}

/// Longest text of a derived unit price: the 乐企 connector's field holds 16 characters. The
/// platform's own output matches (16000 at 1% prints `15841.5841584158`).
pub const DERIVED_PRICE_MAX_CHARS: usize = 16;

/// A unit price computed by us (e.g. tax-exclusive from tax-inclusive): rounded half-up to as many
/// decimals as fit in [`DERIVED_PRICE_MAX_CHARS`] characters, at most 13, trailing zeros dropped.
pub fn fit_unit_price(price: Decimal) -> Decimal {
    let int_digits = price.abs().trunc().to_string().len();
    let sign = usize::from(price.is_sign_negative());
    let room = DERIVED_PRICE_MAX_CHARS.saturating_sub(int_digits + sign + 1);
    let decimals = u32::try_from(room)
        .unwrap_or(QUANTITY_DECIMALS)
        .min(QUANTITY_DECIMALS);
    round_half_up(price, decimals).normalize()
}

/// The tax-exclusive unit price from a tax-inclusive one.
pub fn exclusive_unit_price(inclusive_price: Decimal, rate: TaxRate) -> Option<Decimal> {
    let divisor = Decimal::ONE.checked_add(rate.fraction())?;
    Some(fit_unit_price(inclusive_price.checked_div(divisor)?))
}

/// |amount − quantity × unit price|, or `None` on overflow.
pub fn price_deviation(amount: Decimal, quantity: Decimal, unit_price: Decimal) -> Option<Decimal> {
    Some(amount.checked_sub(quantity.checked_mul(unit_price)?)?.abs())
}

/// Exact sums of the lines. `None` only on overflow.
pub fn totals(lines: &[Line]) -> Option<Totals> {
    let mut t = Totals::default();
    for line in lines {
        t.amount = t.amount.checked_add(line.amount)?;
        t.tax = t.tax.checked_add(line.tax)?;
        t.total = t.total.checked_add(line.total)?;
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn pct(d: Decimal) -> TaxRate {
        TaxRate::Percent(d)
    }

    #[test]
    fn exclusive_rounds_tax_half_up() {
        let l = from_exclusive(dec!(100.05), pct(dec!(0.13))).unwrap();
        // 100.05 × 0.13 = 13.0065 → 13.01
        assert_eq!(
            (l.amount, l.tax, l.total),
            (dec!(100.05), dec!(13.01), dec!(113.06))
        );
        let l = from_exclusive(dec!(0.50), pct(dec!(0.09))).unwrap();
        // 0.045 → 0.05 (half-up, not banker's)
        assert_eq!(l.tax, dec!(0.05));
    }

    #[test]
    fn inclusive_matches_the_platform_sample() {
        // A real platform invoice: 16000.00 at 1% → 15841.58 + 158.42, unit price 15841.5841584158.
        let l = from_inclusive(dec!(16000.00), pct(dec!(0.01))).unwrap();
        assert_eq!(
            (l.amount, l.tax, l.total),
            (dec!(15841.58), dec!(158.42), dec!(16000.00))
        );
        assert_eq!(
            exclusive_unit_price(dec!(16000), pct(dec!(0.01))).unwrap(),
            dec!(15841.5841584158)
        );
    }

    #[test]
    fn exempt_and_non_taxable_have_no_tax() {
        for rate in [TaxRate::Exempt, TaxRate::NonTaxable] {
            let l = from_inclusive(dec!(88.88), rate).unwrap();
            assert_eq!((l.amount, l.tax), (dec!(88.88), dec!(0)));
            let l = from_exclusive(dec!(88.88), rate).unwrap();
            assert_eq!((l.tax, l.total), (dec!(0), dec!(88.88)));
        }
    }

    #[test]
    fn negative_lines_mirror_positive_ones() {
        let blue = from_exclusive(dec!(100.05), pct(dec!(0.13))).unwrap();
        let red = from_exclusive(dec!(-100.05), pct(dec!(0.13))).unwrap();
        assert_eq!(red.tax, -blue.tax);
        let blue = from_inclusive(dec!(16000), pct(dec!(0.01))).unwrap();
        let red = from_inclusive(dec!(-16000), pct(dec!(0.01))).unwrap();
        assert_eq!((red.amount, red.tax), (-blue.amount, -blue.tax));
    }

    #[test]
    fn unit_prices_fit_sixteen_characters() {
        assert_eq!(fit_unit_price(dec!(1) / dec!(3)), dec!(0.3333333333333));
        assert_eq!(
            fit_unit_price(dec!(123456789012.123456789)),
            dec!(123456789012.123)
        );
        assert_eq!(fit_unit_price(dec!(2.50)), dec!(2.5));
        assert!(fit_unit_price(dec!(-100) / dec!(7)).to_string().len() <= 16);
    }
}
