//! Line and invoice arithmetic.
//!
//! Tax-exclusive input: `tax = round(amount × rate)`, `total = amount + tax`.
//! Tax-inclusive input: `amount = round(total ÷ (1 + rate))`, `tax = total − amount`, so that
//! amount + tax always equals the inclusive total exactly and the tax deviation is zero.
//! Totals are exact sums of the lines; nothing is rounded twice.
//!
//! Unit prices we derive are rounded half-up to at most 13 decimals and 16 characters
//! ([`fit_unit_price`]); the tax-exclusive price of a tax-inclusive line is chosen so that quantity
//! × price stays within the line tolerance of the amount ([`derived_unit_price`]).

use crate::model::{Line, Totals};
use crate::money::{QUANTITY_DECIMALS, QUANTITY_INTEGER_DIGITS, round_half_up, round_money};
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

/// The tax-exclusive unit price from a tax-inclusive one, as the platform prints it: the inclusive
/// price ÷ (1 + rate), fitted by [`fit_unit_price`].
pub fn exclusive_unit_price(inclusive_price: Decimal, rate: TaxRate) -> Option<Decimal> {
    let divisor = Decimal::ONE.checked_add(rate.fraction())?;
    Some(fit_unit_price(inclusive_price.checked_div(divisor)?))
}

/// The tax-exclusive unit price a tax-inclusive line carries: the first of two candidates with
/// which |quantity × price − amount| stays within `tolerance` (`amount` being the line's computed
/// tax-exclusive amount), so that the issued line passes the platform's line check.
///
/// 1. The inclusive price ÷ (1 + rate) ([`exclusive_unit_price`]), the platform's own formula.
/// 2. The tax-exclusive amount ÷ quantity, fitted the same way. Needed because the inclusive
///    price may already be a cent off the inclusive amount, and the amount is rounded to the
///    cent: 3 × 33.33 at 13% for 100.00 gives 88.50, while 3 × (33.33 ÷ 1.13) is 88.4867.
///
/// `None` when neither fits, which takes a quantity so large that even the last decimal a unit
/// price may carry moves the product by more than the tolerance, or when the price would need
/// more integer digits than a unit price may have.
pub fn derived_unit_price(
    inclusive_price: Decimal,
    quantity: Decimal,
    amount: Decimal,
    rate: TaxRate,
    tolerance: Decimal,
) -> Option<Decimal> {
    let fits = |price: &Decimal| {
        price.abs() < Decimal::from(10_i64.pow(QUANTITY_INTEGER_DIGITS))
            && price_deviation(amount, quantity, *price).is_some_and(|dev| dev <= tolerance)
    };
    exclusive_unit_price(inclusive_price, rate)
        .filter(fits)
        .or_else(|| {
            amount
                .checked_div(quantity)
                .map(fit_unit_price)
                .filter(fits)
        })
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

    const CENT: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

    #[test]
    fn derived_prices_follow_the_platform_when_they_add_up() {
        // 16000 at 1%, quantity 1: the platform's own UnPrice.
        let l = from_inclusive(dec!(16000), pct(dec!(0.01))).unwrap();
        let price = derived_unit_price(dec!(16000), dec!(1), l.amount, pct(dec!(0.01)), CENT);
        assert_eq!(price, Some(dec!(15841.5841584158)));
    }

    #[test]
    fn derived_prices_fall_back_to_amount_over_quantity() {
        // 3 × 33.33 for 100.00 at 13%: 33.33 ÷ 1.13 = 29.4955752212389 misses 88.50 by 0.0133.
        let l = from_inclusive(dec!(100.00), TaxRate::GENERAL).unwrap();
        assert_eq!(l.amount, dec!(88.50));
        let platform = exclusive_unit_price(dec!(33.33), TaxRate::GENERAL).unwrap();
        assert!(price_deviation(l.amount, dec!(3), platform).unwrap() > CENT);
        let price = derived_unit_price(dec!(33.33), dec!(3), l.amount, TaxRate::GENERAL, CENT);
        assert_eq!(price, Some(dec!(29.5)));
    }

    #[test]
    fn no_price_is_derived_when_no_decimal_reaches_a_cent() {
        // 999999999999 × 0.00000001 = 9999.99999999 ≈ 10000.00 inclusive → 8849.56 exclusive; a
        // thirteenth decimal of the price moves the product by 0.1.
        let l = from_inclusive(dec!(10000.00), TaxRate::GENERAL).unwrap();
        let price = derived_unit_price(
            dec!(0.00000001),
            dec!(999999999999),
            l.amount,
            TaxRate::GENERAL,
            CENT,
        );
        assert_eq!(price, None);
    }

    #[test]
    fn derived_prices_keep_to_twelve_integer_digits() {
        // A tiny quantity with a large amount would need a 13-digit price.
        let price = derived_unit_price(
            dec!(999999999999),
            dec!(0.0000000000001),
            dec!(0.11),
            TaxRate::ZERO,
            CENT,
        );
        assert_eq!(price, None);
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
