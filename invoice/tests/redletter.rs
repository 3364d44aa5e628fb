//! Red-letter arithmetic: full and partial reversals against what remains of each blue line.

mod common;

use common::*;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{InvoiceContent, LineDraft, LineNature, RedLetterReason, RedReference};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::redletter::{
    LineReversalDraft, ReversalScope, Reversed, balances, plan_reversal, red_invoice,
};
use fapiao_invoice::validate::Validator;
use fapiao_invoice::violation::Code;
use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal::dec;

fn blue(lines: Vec<LineDraft>) -> InvoiceContent {
    let catalog = catalog();
    let limits = Limits::default();
    Validator::new(&catalog, &limits)
        .validate(&draft(lines))
        .expect("valid blue invoice")
}

fn three_lines() -> InvoiceContent {
    blue(vec![
        priced(GOODS, "笔记本电脑", "4", "2500", "10000", "13%"),
        line(SOFTWARE, "软件开发", "3000.33", "6%"),
        line(CATERING, "餐费", "99.99", "6%"),
    ])
}

fn part(line_number: u32, amount: &str, quantity: &str) -> LineReversalDraft {
    LineReversalDraft {
        line_number,
        amount: amount.into(),
        quantity: quantity.into(),
    }
}

fn reference() -> RedReference {
    RedReference {
        blue_number: "26352000000000000042"
            .parse::<InvoiceNumber>()
            .expect("number"),
        form_number: "35010026112100000001".into(),
        reason: RedLetterReason::SalesReturn,
    }
}

fn codes(err: Vec<fapiao_invoice::violation::Violation>) -> Vec<(String, Code)> {
    err.into_iter().map(|v| (v.field, v.code)).collect()
}

#[test]
fn full_reversal_of_an_untouched_invoice_takes_everything() {
    let inv = three_lines();
    let plan = plan_reversal(&inv, &[], &ReversalScope::Full).unwrap();
    assert!(plan.exhausts_blue);
    assert_eq!(plan.amount, inv.totals.amount);
    assert_eq!(plan.tax, inv.totals.tax);
    assert_eq!(plan.lines[0].quantity, Some(dec!(4)));
}

#[test]
fn partial_reversal_of_two_lines_then_the_rest_is_exact() {
    let inv = three_lines();
    let first = plan_reversal(
        &inv,
        &[],
        &ReversalScope::Lines(vec![part(1, "", "1"), part(2, "1000", "")]),
    )
    .unwrap();
    assert!(!first.exhausts_blue);
    // One of four laptops: 2500.00 and 13% of it.
    assert_eq!(
        (first.lines[0].amount, first.lines[0].tax),
        (dec!(2500.00), dec!(325.00))
    );
    assert_eq!(
        (first.lines[1].amount, first.lines[1].tax),
        (dec!(1000), dec!(60.00))
    );
    let done: Vec<Reversed> = first.lines.iter().copied().map(Reversed::from).collect();

    let rest = plan_reversal(&inv, &done, &ReversalScope::Full).unwrap();
    assert!(rest.exhausts_blue);
    assert_eq!(first.amount + rest.amount, inv.totals.amount);
    assert_eq!(first.tax + rest.tax, inv.totals.tax);
    assert_eq!(rest.lines[0].quantity, Some(dec!(3)));

    let mut all = done.clone();
    all.extend(rest.lines.iter().copied().map(Reversed::from));
    assert!(balances(&inv, &all).iter().all(|b| b.is_exhausted()));
    let again = plan_reversal(&inv, &all, &ReversalScope::Full).unwrap_err();
    assert_eq!(
        codes(again),
        vec![("blue_invoice_number".into(), Code::RED_NOTHING_LEFT)]
    );
}

#[test]
fn a_reversal_larger_than_what_remains_is_refused() {
    let inv = three_lines();
    let first = plan_reversal(&inv, &[], &ReversalScope::Lines(vec![part(2, "3000", "")])).unwrap();
    let done: Vec<Reversed> = first.lines.iter().copied().map(Reversed::from).collect();
    let err = plan_reversal(
        &inv,
        &done,
        &ReversalScope::Lines(vec![part(2, "0.34", "")]),
    )
    .unwrap_err();
    assert_eq!(
        codes(err),
        vec![(
            "partial.lines[0].amount".into(),
            Code::RED_AMOUNT_EXCEEDS_REMAINING
        )]
    );
    let ok = plan_reversal(
        &inv,
        &done,
        &ReversalScope::Lines(vec![part(2, "0.33", "")]),
    )
    .unwrap();
    // The last cents take exactly the tax that remains: 180.02 − 180.00.
    assert_eq!(ok.lines[0].tax, dec!(0.02));
    let err = plan_reversal(&inv, &[], &ReversalScope::Lines(vec![part(1, "", "5")])).unwrap_err();
    assert_eq!(
        codes(err),
        vec![(
            "partial.lines[0].quantity".into(),
            Code::RED_QUANTITY_EXCEEDS_REMAINING
        )]
    );
}

#[test]
fn malformed_partial_reversals_report_every_problem() {
    let inv = three_lines();
    let err = plan_reversal(
        &inv,
        &[],
        &ReversalScope::Lines(vec![
            part(9, "1", ""),
            part(2, "", ""),
            part(2, "1", ""),
            part(3, "-1", ""),
            part(1, "1.001", "x"),
            part(2, "", "1"),
        ]),
    )
    .unwrap_err();
    assert_eq!(
        codes(err),
        vec![
            (
                "partial.lines[0].line_number".into(),
                Code::RED_LINE_UNKNOWN
            ),
            ("partial.lines[1].amount".into(), Code::RED_AMOUNT_REQUIRED),
            (
                "partial.lines[2].line_number".into(),
                Code::RED_LINE_DUPLICATE
            ),
            (
                "partial.lines[3].amount".into(),
                Code::RED_AMOUNT_NOT_POSITIVE
            ),
            ("partial.lines[4].amount".into(), Code::RED_AMOUNT_PRECISION),
            (
                "partial.lines[4].quantity".into(),
                Code::RED_QUANTITY_FORMAT
            ),
            (
                "partial.lines[5].line_number".into(),
                Code::RED_LINE_DUPLICATE
            ),
        ]
    );
    let err = plan_reversal(&inv, &[], &ReversalScope::Lines(vec![])).unwrap_err();
    assert_eq!(
        codes(err),
        vec![("partial.lines".into(), Code::RED_LINES_REQUIRED)]
    );
    let err = plan_reversal(&inv, &[], &ReversalScope::Lines(vec![part(2, "", "1")])).unwrap_err();
    assert_eq!(
        codes(err),
        vec![(
            "partial.lines[0].quantity".into(),
            Code::RED_QUANTITY_WITHOUT_BLUE_QUANTITY
        )]
    );
}

#[test]
fn a_discounted_line_is_reversed_net_of_its_discount() {
    let inv = blue(vec![
        LineDraft {
            nature: LineNature::Discounted,
            ..priced(GOODS, "显示器", "2", "500", "1000", "13%")
        },
        LineDraft {
            nature: LineNature::Discount,
            ..line(GOODS, "显示器", "-100", "13%")
        },
    ]);
    let b = balances(&inv, &[]);
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].amount, b[0].tax, b[0].unit_price),
        (dec!(900.00), dec!(117.00), Some(dec!(450)))
    );
    let err = plan_reversal(&inv, &[], &ReversalScope::Lines(vec![part(2, "1", "")])).unwrap_err();
    assert_eq!(
        codes(err),
        vec![(
            "partial.lines[0].line_number".into(),
            Code::RED_LINE_IS_DISCOUNT
        )]
    );
    let half = plan_reversal(&inv, &[], &ReversalScope::Lines(vec![part(1, "", "1")])).unwrap();
    assert_eq!(half.lines[0].amount, dec!(450.00));
}

#[test]
fn the_red_invoice_mirrors_the_blue_with_negative_amounts() {
    let inv = three_lines();
    let plan = plan_reversal(
        &inv,
        &[],
        &ReversalScope::Lines(vec![part(1, "", "2"), part(3, "99.99", "")]),
    )
    .unwrap();
    let red = red_invoice(
        &inv,
        &plan.lines,
        reference(),
        "REFUND-1",
        "退货",
        "王五",
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(red.lines.len(), 2);
    assert_eq!(red.lines[0].amount, dec!(-5000.00));
    assert_eq!(red.lines[0].tax, dec!(-650.00));
    assert_eq!(red.lines[0].quantity, Some(dec!(-2)));
    assert_eq!(red.lines[0].unit_price, Some(dec!(2500)));
    assert_eq!(red.lines[0].printed_name, inv.lines[0].printed_name);
    assert_eq!(red.lines[1].number, 2);
    assert_eq!(red.totals.total, -(plan.amount + plan.tax));
    assert_eq!(red.totals.total, dec!(-5755.99));
    assert_eq!(red.total_in_words, "（负数）伍仟柒佰伍拾伍圆玖角玖分");
    assert_eq!(
        red.remark,
        "被红冲蓝字数电发票号码：26352000000000000042 红字发票信息确认单编号：35010026112100000001 退货"
    );
    assert_eq!(red.colour(), fapiao_invoice::model::Colour::Red);
    assert_eq!(red.buyer, inv.buyer);

    let err = red_invoice(
        &inv,
        &plan.lines,
        reference(),
        "REFUND-1",
        &"备".repeat(383),
        "",
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        codes(err),
        vec![
            ("remark".into(), Code::TEXT_TOO_LONG),
            ("drawer".into(), Code::DRAWER_REQUIRED)
        ]
    );
}

proptest! {
    /// However a blue invoice is reversed in parts, no line ever goes below zero, and a final full
    /// reversal brings every line to exactly zero.
    #[test]
    fn cumulative_reversals_never_exceed_the_blue_invoice(
        cents in proptest::collection::vec(1i64..=10_000_000, 1..5),
        requests in proptest::collection::vec((0usize..5, 1i64..=5_000_000), 0..20),
    ) {
        let lines: Vec<LineDraft> = cents
            .iter()
            .enumerate()
            .map(|(i, c)| line(SOFTWARE, &format!("服务{i}"), &Decimal::new(*c, 2).to_string(), "6%"))
            .collect();
        let inv = blue(lines);
        let mut done: Vec<Reversed> = Vec::new();
        for (line_index, amount_cents) in requests {
            let number = u32::try_from(line_index % cents.len() + 1).unwrap();
            let scope = ReversalScope::Lines(vec![part(number, &Decimal::new(amount_cents, 2).to_string(), "")]);
            let before = balances(&inv, &done);
            match plan_reversal(&inv, &done, &scope) {
                Ok(plan) => {
                    let b = before.iter().find(|b| b.blue_line == number).unwrap();
                    prop_assert!(plan.lines[0].amount <= b.remaining_amount());
                    prop_assert!(plan.lines[0].tax <= b.remaining_tax());
                    done.extend(plan.lines.iter().copied().map(Reversed::from));
                }
                Err(_) => {
                    let b = before.iter().find(|b| b.blue_line == number).unwrap();
                    prop_assert!(b.is_exhausted() || Decimal::new(amount_cents, 2) > b.remaining_amount());
                }
            }
            for b in balances(&inv, &done) {
                prop_assert!(b.remaining_amount() >= Decimal::ZERO);
                prop_assert!(b.remaining_tax() >= Decimal::ZERO);
            }
        }
        if let Ok(rest) = plan_reversal(&inv, &done, &ReversalScope::Full) {
            done.extend(rest.lines.iter().copied().map(Reversed::from));
        }
        for b in balances(&inv, &done) {
            prop_assert_eq!(b.remaining_amount(), Decimal::ZERO);
            prop_assert_eq!(b.remaining_tax(), Decimal::ZERO);
        }
    }
}

#[test]
fn an_extreme_partial_reversal_does_not_panic() {
    // 9×10^15 over a quantity of 10^-13 is beyond any Decimal: the unit price is left out rather
    // than overflowing.
    let inv = blue(vec![priced(
        GOODS,
        "服务器",
        "999999999999",
        "10000",
        "9999999999990000",
        "0%",
    )]);
    let plan = plan_reversal(
        &inv,
        &[],
        &ReversalScope::Lines(vec![part(1, "9000000000000000", "0.0000000000001")]),
    )
    .unwrap();
    let red = red_invoice(
        &inv,
        &plan.lines,
        reference(),
        "REFUND-X",
        "",
        "王五",
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(red.lines[0].amount, dec!(-9000000000000000));
    assert_eq!(red.lines[0].unit_price, None);
}
