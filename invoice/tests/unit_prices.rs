//! Unit prices that add up: every issued line with a quantity satisfies |quantity × unit price −
//! amount| ≤ 0.01 on the tax-exclusive side (domain.md §6.1), in both pricing modes.
//!
//! A tax-inclusive line carries the inclusive price ÷ (1 + rate) when that adds up (the
//! platform's own formula), otherwise the tax-exclusive amount ÷ quantity; a line for which
//! neither adds up is refused (LINE_UNIT_PRICE_UNREPRESENTABLE). No tax-inclusive unit price is
//! carried anywhere (the model's `Line`, the XML `UnPrice` and the contract's
//! `InvoiceLine.unit_price` are tax-exclusive), so on the inclusive side what must agree is the
//! caller's inclusive price with the inclusive total the line keeps.

mod common;

use common::*;
use fapiao_invoice::catalog::{TaxCode, TaxCodeCatalog};
use fapiao_invoice::compute;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{InvoiceContent, InvoiceDraft, LineDraft, LineNature, PricingMode};
use fapiao_invoice::money::round_money;
use fapiao_invoice::rate::TaxRate;
use fapiao_invoice::validate::Validator;
use fapiao_invoice::violation::{Code, Violation};
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal::dec;

const CENT: Decimal = dec!(0.01);

fn validate_with(
    catalog: &TaxCodeCatalog,
    d: &InvoiceDraft,
) -> Result<InvoiceContent, Vec<Violation>> {
    Validator::new(catalog, &Limits::default()).validate(d)
}

fn inclusive(lines: Vec<LineDraft>) -> InvoiceDraft {
    InvoiceDraft {
        pricing: Some(PricingMode::TaxInclusive),
        ..draft(lines)
    }
}

fn deviation(line: &fapiao_invoice::model::Line) -> Decimal {
    let (Some(q), Some(p)) = (line.quantity, line.unit_price) else {
        return Decimal::ZERO;
    };
    (q * p - line.amount).abs()
}

#[test]
fn the_reported_tax_inclusive_line_adds_up() {
    // 3 × 33.33 for 100.00 at 13%: 100.00 ÷ 1.13 = 88.50, and 33.33 ÷ 1.13 = 29.4955752212389
    // would give 88.4867, 0.0133 off. The line carries 88.50 ÷ 3 = 29.5 instead.
    let d = inclusive(vec![priced(GOODS, "鼠标", "3", "33.33", "100.00", "13%")]);
    let inv = validate_with(&catalog(), &d).expect("valid");
    let l = &inv.lines[0];
    assert_eq!(
        (l.amount, l.tax, l.total),
        (dec!(88.50), dec!(11.50), dec!(100.00))
    );
    assert_eq!(l.unit_price, Some(dec!(29.5)));
    assert!(deviation(l) <= CENT);
}

#[test]
fn the_platform_formula_is_kept_when_it_adds_up() {
    // The platform's sample: 16000 at 1% → UnPrice 15841.5841584158, not 15841.58.
    let d = inclusive(vec![priced(
        SOFTWARE,
        "软件开发",
        "1",
        "16000",
        "16000.00",
        "1%",
    )]);
    let inv = validate_with(&catalog(), &d).expect("valid");
    assert_eq!(inv.lines[0].unit_price, Some(dec!(15841.5841584158)));
    // 3 × 33.333 for 99.99 at 13%: 33.333 ÷ 1.13 = 29.4982300884956, × 3 = 88.4947 vs 88.49.
    let d = inclusive(vec![priced(GOODS, "键盘", "3", "33.333", "99.99", "13%")]);
    let inv = validate_with(&catalog(), &d).expect("valid");
    assert_eq!(inv.lines[0].unit_price, Some(dec!(29.4982300884956)));
    assert!(deviation(&inv.lines[0]) <= CENT);
}

#[test]
fn exempt_inclusive_lines_carry_the_price_sent() {
    let d = inclusive(vec![priced(
        VEGETABLES, "山药", "2.5", "7.98", "19.95", "免税",
    )]);
    let inv = validate_with(&catalog(), &d).expect("valid");
    let l = &inv.lines[0];
    assert_eq!(
        (l.amount, l.tax, l.unit_price),
        (dec!(19.95), dec!(0), Some(dec!(7.98)))
    );
}

#[test]
fn a_quantity_no_price_can_follow_is_refused() {
    // 999999999999 × 0.00000001 = 9999.99999999 ≈ 10000.00 inclusive, 8849.56 exclusive. One unit
    // in the 13th decimal of a price moves the product by 0.1, so no price reaches the cent.
    let line = priced(
        GOODS,
        "螺丝",
        "999999999999",
        "0.00000001",
        "10000.00",
        "13%",
    );
    let refused = validate_with(&catalog(), &inclusive(vec![line.clone()])).unwrap_err();
    let found: Vec<(&str, Code)> = refused.iter().map(|v| (v.field.as_str(), v.code)).collect();
    assert_eq!(
        found,
        vec![("lines[0].unit_price", Code::LINE_UNIT_PRICE_UNREPRESENTABLE)]
    );
    assert!(!refused[0].message.is_empty());
    // Priced tax-exclusive, the caller's own price is carried and it adds up.
    let line = priced(
        GOODS,
        "螺丝",
        "999999999999",
        "0.00000001",
        "9999.99",
        "13%",
    );
    let inv = validate_with(&catalog(), &draft(vec![line])).expect("valid");
    assert!(deviation(&inv.lines[0]) <= CENT);
}

/// One code per rate in force, from the bundled catalogue, so every rate is drawn.
fn code_per_rate(catalog: &TaxCodeCatalog) -> Vec<(TaxRate, TaxCode)> {
    TaxRate::IN_FORCE
        .iter()
        .map(|rate| {
            let entry = catalog
                .iter()
                .find(|e| e.allows(rate))
                .unwrap_or_else(|| panic!("no code in the bundled catalogue allows {rate}"));
            (*rate, entry.code)
        })
        .collect()
}

/// One line, or a discounted line followed by its discount line (1–100% of it), at sensible
/// magnitudes: quantities from 10⁻¹³ to 10⁸ with up to 13 decimals, prices with up to 13
/// decimals near target amounts of 0.01 to 10⁸ yuan, and the amount left out, rounded, or a cent
/// off either way where that is still within the tolerance.
fn any_item(codes: Vec<(TaxRate, TaxCode)>) -> impl Strategy<Value = Vec<LineDraft>> {
    (
        prop::sample::select(codes),
        1i64..=100_000_000,
        0u32..=13,
        1i64..=10_000_000_000,
        0u32..=13,
        prop::sample::select(vec![None, Some(-1i64), Some(0), Some(1)]),
        prop::option::of(1i64..=100),
    )
        .prop_filter_map(
            "the price rounds to zero or past twelve integer digits",
            |((rate, code), q_mantissa, q_scale, target_cents, price_scale, offset, discount)| {
                let quantity = Decimal::new(q_mantissa, q_scale);
                let target = Decimal::new(target_cents, 2);
                let price = (target / quantity).round_dp(price_scale).normalize();
                if price.is_zero() || price >= dec!(1000000000000) {
                    return None;
                }
                let product = quantity.checked_mul(price)?;
                let exact = round_money(product);
                // A cent off either way, where that stays within the tolerance of q × P.
                let amount = offset.map(|cents| exact + Decimal::new(cents, 2)).map(|a| {
                    if (a - product).abs() <= CENT {
                        a
                    } else {
                        exact
                    }
                });
                let rate_text = rate.xml_text();
                let mut line = LineDraft {
                    item_name: "商品".into(),
                    tax_code: code.as_str().into(),
                    quantity: quantity.to_string(),
                    unit_price: price.to_string(),
                    amount: amount.map(|a| a.to_string()).unwrap_or_default(),
                    tax_rate: rate_text.clone(),
                    ..Default::default()
                };
                let mut lines = vec![];
                if let Some(percent) = discount {
                    let base = amount.unwrap_or(exact);
                    let off = round_money(base * Decimal::new(percent, 2)).max(CENT);
                    line.nature = LineNature::Discounted;
                    lines.push(line.clone());
                    lines.push(LineDraft {
                        quantity: String::new(),
                        unit_price: String::new(),
                        amount: (-off).to_string(),
                        nature: LineNature::Discount,
                        ..line
                    });
                } else {
                    lines.push(line);
                }
                Some(lines)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_issued_line_adds_up(
        items in prop::collection::vec(any_item(code_per_rate(&TaxCodeCatalog::bundled())), 1..6),
        tax_inclusive in any::<bool>(),
    ) {
        let catalog = TaxCodeCatalog::bundled();
        let sent: Vec<LineDraft> = items.into_iter().flatten().collect();
        let mut d = draft(sent.clone());
        if tax_inclusive {
            d.pricing = Some(PricingMode::TaxInclusive);
        }
        let inv = match validate_with(&catalog, &d) {
            Ok(inv) => inv,
            Err(violations) => {
                // Refusals come from the figures as sent (an amount rounding to zero, a discount
                // netting the total to zero), never from the unit-price rule at these magnitudes.
                prop_assert!(
                    violations.iter().all(|v| v.code != Code::LINE_UNIT_PRICE_UNREPRESENTABLE),
                    "{violations:?}"
                );
                return Ok(());
            }
        };
        for (line, sent) in inv.lines.iter().zip(&sent) {
            let (Some(q), Some(p)) = (line.quantity, line.unit_price) else {
                prop_assert!(line.quantity.is_none() && line.unit_price.is_none());
                prop_assert_eq!(line.nature, LineNature::Discount);
                continue;
            };
            prop_assert!(p > Decimal::ZERO && p.scale() <= 13, "{p}");
            prop_assert!(p < dec!(1000000000000), "{p}");
            let off = (q * p - line.amount).abs();
            prop_assert!(off <= CENT, "line {}: {q} × {p} vs {} is {off} off", line.number, line.amount);
            let sent_price: Decimal = sent.unit_price.parse().expect("generated decimal");
            if tax_inclusive {
                // The inclusive side: the caller's inclusive price against the inclusive total.
                prop_assert!((q * sent_price - line.total).abs() <= CENT);
                prop_assert!(p.to_string().len() <= compute::DERIVED_PRICE_MAX_CHARS, "{p}");
                // The rule's preference: the platform's formula whenever it adds up.
                let platform = compute::exclusive_unit_price(sent_price, line.rate).expect("fits");
                if (q * platform - line.amount).abs() <= CENT {
                    prop_assert_eq!(p, platform);
                } else {
                    prop_assert_eq!(p, compute::fit_unit_price(line.amount / q));
                }
            } else {
                prop_assert_eq!(p, sent_price);
            }
        }
    }
}
