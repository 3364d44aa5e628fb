//! Properties of the invoice arithmetic over random valid invoices.

mod common;

use common::*;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{LineDraft, PricingMode};
use fapiao_invoice::money::round_money;
use fapiao_invoice::validate::Validator;
use proptest::prelude::*;
use rust_decimal::Decimal;

fn any_line() -> impl Strategy<Value = (LineDraft, Decimal)> {
    let rate = prop::sample::select(vec!["13%", "3%", "1%", "0%"]);
    (
        1i64..=100_000_000_000,
        rate,
        prop::option::of(1_000i64..=1_000_000),
    )
        .prop_map(|(cents, rate, qty_thousandths)| {
            let amount = Decimal::new(cents, 2);
            let mut l = line(GOODS, "商品", &amount.to_string(), rate);
            if let Some(q) = qty_thousandths {
                let quantity = Decimal::new(q, 3);
                l.quantity = quantity.to_string();
                // A price with 13 decimals reproduces the amount within a cent.
                l.unit_price = (amount / quantity).round_dp(13).to_string();
            }
            (l, amount)
        })
}

proptest! {
    #[test]
    fn totals_are_exact_sums_and_amount_plus_tax_is_the_total(
        lines in proptest::collection::vec(any_line(), 1..12),
        inclusive in any::<bool>(),
    ) {
        let mut d = draft(lines.iter().map(|(l, _)| l.clone()).collect());
        if inclusive {
            d.pricing = Some(PricingMode::TaxInclusive);
        }
        let catalog = catalog();
        let limits = Limits::default();
        let inv = Validator::new(&catalog, &limits).validate(&d).map_err(|v| {
            TestCaseError::fail(format!("{v:?}"))
        })?;
        for (computed, (_, sent)) in inv.lines.iter().zip(&lines) {
            prop_assert_eq!(computed.amount + computed.tax, computed.total);
            prop_assert_eq!(round_money(computed.tax), computed.tax);
            if inclusive {
                // The caller's inclusive amount is kept exactly.
                prop_assert_eq!(computed.total, *sent);
            } else {
                prop_assert_eq!(computed.amount, *sent);
                prop_assert_eq!(computed.tax, round_money(*sent * computed.rate.fraction()));
            }
        }
        let sum = |f: fn(&fapiao_invoice::model::Line) -> Decimal| inv.lines.iter().map(f).sum::<Decimal>();
        prop_assert_eq!(inv.totals.amount, sum(|l| l.amount));
        prop_assert_eq!(inv.totals.tax, sum(|l| l.tax));
        prop_assert_eq!(inv.totals.total, sum(|l| l.total));
        prop_assert_eq!(inv.totals.amount + inv.totals.tax, inv.totals.total);
        prop_assert_eq!(
            fapiao_invoice::capitals::parse_capitals(&inv.total_in_words),
            Some(inv.totals.total)
        );
    }

    /// Arbitrary text in every numeric field never panics the validator.
    #[test]
    fn arbitrary_text_never_panics(
        amount in ".{0,30}", qty in ".{0,30}", price in ".{0,30}", rate in ".{0,10}", code in ".{0,25}",
        tax_id in ".{0,25}",
    ) {
        let mut l = line(&code, "商品", &amount, &rate);
        l.quantity = qty;
        l.unit_price = price;
        let mut d = draft(vec![l]);
        d.buyer.tax_id = tax_id;
        let catalog = catalog();
        let limits = Limits::default();
        let _ = Validator::new(&catalog, &limits).validate(&d);
    }
}
