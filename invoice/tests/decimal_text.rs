//! Decimal text as the contract writes it: `-?digits(.digits)?` and the rate spellings, with no
//! spaces anywhere. A figure with spaces is refused with its field's format code, every one at
//! once, in invoices and in partial reversals alike; only the empty text means "not sent".

mod common;

use common::*;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{InvoiceDraft, LineDraft};
use fapiao_invoice::redletter::{LineReversalDraft, ReversalScope, plan_reversal};
use fapiao_invoice::validate::Validator;
use fapiao_invoice::violation::Code;

fn problems(d: &InvoiceDraft) -> Vec<(String, Code)> {
    let catalog = catalog();
    let limits = Limits::default();
    match Validator::new(&catalog, &limits).validate(d) {
        Ok(_) => Vec::new(),
        Err(v) => v.into_iter().map(|v| (v.field, v.code)).collect(),
    }
}

fn at(i: usize, field: &str, code: Code) -> (String, Code) {
    (format!("lines[{i}].{field}"), code)
}

#[test]
fn spaced_amounts_quantities_prices_and_rates_are_each_refused() {
    let found = problems(&draft(vec![
        line(SOFTWARE, "软件开发", " 1 ", "6%"),
        line(SOFTWARE, "软件开发", "1", "6 %"),
        priced(GOODS, "鼠标", " 3", "33.33", "99.99", "13%"),
        priced(GOODS, "鼠标", "3", "33.33 ", "99.99", "13%"),
        line(SOFTWARE, "软件开发", "1", " 0.06"),
        line(SOFTWARE, "软件开发", "1\u{3000}", "6%"),
    ]));
    assert_eq!(
        found,
        vec![
            at(0, "amount", Code::LINE_AMOUNT_FORMAT),
            at(1, "tax_rate", Code::LINE_TAX_RATE_FORMAT),
            at(2, "quantity", Code::LINE_QUANTITY_FORMAT),
            at(3, "unit_price", Code::LINE_UNIT_PRICE_FORMAT),
            at(4, "tax_rate", Code::LINE_TAX_RATE_FORMAT),
            at(5, "amount", Code::LINE_AMOUNT_FORMAT),
        ]
    );
}

#[test]
fn only_the_empty_text_is_not_sent() {
    // Blank is not empty: it is malformed, not missing.
    let blank = LineDraft {
        quantity: " ".into(),
        unit_price: "  ".into(),
        ..line(SOFTWARE, "软件开发", "\t", " ")
    };
    assert_eq!(
        problems(&draft(vec![blank])),
        vec![
            at(0, "tax_rate", Code::LINE_TAX_RATE_FORMAT),
            at(0, "quantity", Code::LINE_QUANTITY_FORMAT),
            at(0, "unit_price", Code::LINE_UNIT_PRICE_FORMAT),
            at(0, "amount", Code::LINE_AMOUNT_FORMAT),
        ]
    );
    assert_eq!(
        problems(&draft(vec![line(SOFTWARE, "软件开发", "", "")])),
        vec![
            at(0, "tax_rate", Code::LINE_TAX_RATE_REQUIRED),
            at(0, "amount", Code::LINE_AMOUNT_REQUIRED),
        ]
    );
}

#[test]
fn discount_lines_with_spaced_amounts_are_refused() {
    let mut discounted = line(SOFTWARE, "软件开发", "100", "6%");
    discounted.nature = fapiao_invoice::model::LineNature::Discounted;
    let mut discount = line(SOFTWARE, "软件开发", "-10 ", "6%");
    discount.nature = fapiao_invoice::model::LineNature::Discount;
    assert_eq!(
        problems(&draft(vec![discounted, discount])),
        vec![at(1, "amount", Code::LINE_AMOUNT_FORMAT)]
    );
}

#[test]
fn the_same_figures_without_spaces_are_accepted() {
    assert!(
        problems(&draft(vec![
            line(SOFTWARE, "软件开发", "1", "6%"),
            line(SOFTWARE, "软件开发", "1", "6％"),
            priced(GOODS, "鼠标", "3", "33.33", "99.99", "13%"),
            line(SOFTWARE, "软件开发", "1", "0.06"),
        ]))
        .is_empty()
    );
}

#[test]
fn partial_reversals_refuse_spaced_figures() {
    let catalog = catalog();
    let limits = Limits::default();
    let blue = Validator::new(&catalog, &limits)
        .validate(&draft(vec![
            priced(GOODS, "笔记本电脑", "4", "2500", "10000", "13%"),
            line(SOFTWARE, "软件开发", "3000.33", "6%"),
        ]))
        .expect("a valid blue invoice");
    let part = |line_number: u32, amount: &str, quantity: &str| LineReversalDraft {
        line_number,
        amount: amount.into(),
        quantity: quantity.into(),
    };
    let found: Vec<(String, Code)> = plan_reversal(
        &blue,
        &[],
        &ReversalScope::Lines(vec![part(1, " 2500", "1 "), part(2, "1 000", "")]),
    )
    .unwrap_err()
    .into_iter()
    .map(|v| (v.field, v.code))
    .collect();
    assert_eq!(
        found,
        vec![
            (
                "partial.lines[0].amount".to_owned(),
                Code::RED_AMOUNT_FORMAT
            ),
            (
                "partial.lines[0].quantity".to_owned(),
                Code::RED_QUANTITY_FORMAT
            ),
            (
                "partial.lines[1].amount".to_owned(),
                Code::RED_AMOUNT_FORMAT
            ),
        ]
    );
}
