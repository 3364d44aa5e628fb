//! Validation of blue invoice drafts: each rule, and every violation reported at once.

mod common;

use common::*;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{InvoiceContent, InvoiceDraft, InvoiceKind, LineNature, PricingMode};
use fapiao_invoice::rate::TaxRate;
use fapiao_invoice::validate::Validator;
use fapiao_invoice::violation::{Code, Violation};
use rust_decimal::Decimal;
use rust_decimal::dec;

fn validate(d: &InvoiceDraft) -> Result<InvoiceContent, Vec<Violation>> {
    let catalog = catalog();
    let limits = Limits::default();
    Validator::new(&catalog, &limits).validate(d)
}

/// The (field, code) pairs of a refused draft.
fn problems(d: &InvoiceDraft) -> Vec<(String, Code)> {
    match validate(d) {
        Ok(_) => panic!("expected violations"),
        Err(v) => v.into_iter().map(|v| (v.field, v.code)).collect(),
    }
}

fn has(d: &InvoiceDraft, field: &str, code: Code) {
    let found = problems(d);
    assert!(
        found.iter().any(|(f, c)| f == field && *c == code),
        "expected {field} {code}, got {found:?}"
    );
}

#[test]
fn computes_a_tax_exclusive_invoice() {
    let inv = validate(&draft(vec![
        priced(GOODS, "笔记本电脑", "2", "4999.50", "9999.00", "13%"),
        line(SOFTWARE, "软件维护服务费", "100.05", "0.06"),
    ]))
    .expect("valid");
    let l0 = &inv.lines[0];
    assert_eq!(
        (l0.amount, l0.tax, l0.total),
        (dec!(9999.00), dec!(1299.87), dec!(11298.87))
    );
    assert_eq!(l0.printed_name, "*电子计算机*笔记本电脑");
    assert_eq!(l0.number, 1);
    let l1 = &inv.lines[1];
    // 100.05 × 0.06 = 6.003 → 6.00
    assert_eq!(
        (l1.amount, l1.tax, l1.total),
        (dec!(100.05), dec!(6.00), dec!(106.05))
    );
    assert_eq!(l1.printed_name, "*信息技术服务*软件维护服务费");
    assert_eq!(l1.rate, TaxRate::Percent(dec!(0.06)));
    assert_eq!(inv.totals.amount, dec!(10099.05));
    assert_eq!(inv.totals.tax, dec!(1305.87));
    assert_eq!(inv.totals.total, dec!(11404.92));
    assert_eq!(inv.total_in_words, "壹万壹仟肆佰零肆圆玖角贰分");
    assert_eq!(
        inv.buyer.party.tax_id.as_ref().map(|t| t.as_str()),
        Some(BUYER_TAX_ID)
    );
}

#[test]
fn computes_a_tax_inclusive_invoice_like_the_platform() {
    let mut d = draft(vec![priced(
        SOFTWARE,
        "软件开发",
        "1",
        "16000",
        "16000.00",
        "1%",
    )]);
    d.pricing = Some(PricingMode::TaxInclusive);
    let inv = validate(&d).expect("valid");
    let l = &inv.lines[0];
    assert_eq!(
        (l.amount, l.tax, l.total),
        (dec!(15841.58), dec!(158.42), dec!(16000.00))
    );
    assert_eq!(l.unit_price, Some(dec!(15841.5841584158)));
    assert_eq!(inv.total_in_words, "壹万陆仟圆整");
}

#[test]
fn derives_the_amount_from_quantity_and_price() {
    let inv = validate(&draft(vec![priced(
        GOODS, "鼠标", "3", "33.333", "", "13%",
    )]))
    .unwrap();
    assert_eq!(inv.lines[0].amount, dec!(100.00));
}

#[test]
fn accepts_a_deviation_of_one_cent_and_refuses_more() {
    // 3 × 33.333 = 99.999
    assert!(
        validate(&draft(vec![priced(
            GOODS, "键盘", "3", "33.333", "99.99", "13%"
        )]))
        .is_ok()
    );
    has(
        &draft(vec![priced(GOODS, "键盘", "3", "33.333", "100.01", "13%")]),
        "lines[0].amount",
        Code::LINE_AMOUNT_MISMATCH,
    );
}

#[test]
fn reports_every_violation_at_once() {
    let mut d = draft(vec![
        line("123", "", "abc", "17%"),
        priced(GOODS, "显示器", "2", "", "1.001", "6%"),
    ]);
    d.request_id = " ".into();
    d.kind = None;
    d.pricing = None;
    d.seller.tax_id = "91350100M000100Y44".into();
    d.buyer.tax_id = "9111030".into();
    d.buyer.email = "not-an-email".into();
    d.drawer = String::new();
    d.remark = "备".repeat(451);
    let found = problems(&d);
    let expected = [
        ("request_id", Code::REQUEST_ID_REQUIRED),
        ("kind", Code::KIND_REQUIRED),
        ("pricing_mode", Code::PRICING_MODE_REQUIRED),
        ("seller_tax_id", Code::SELLER_TAX_ID_CHECK_DIGIT),
        ("buyer.tax_id", Code::BUYER_TAX_ID_LENGTH),
        ("buyer.email", Code::BUYER_EMAIL_FORMAT),
        ("drawer", Code::DRAWER_REQUIRED),
        ("remark", Code::TEXT_TOO_LONG),
        ("lines[0].item_name", Code::LINE_ITEM_NAME_REQUIRED),
        ("lines[0].tax_code", Code::LINE_TAX_CODE_FORMAT),
        ("lines[0].tax_rate", Code::LINE_TAX_RATE_UNKNOWN),
        ("lines[0].amount", Code::LINE_AMOUNT_FORMAT),
        ("lines[1].tax_rate", Code::LINE_TAX_RATE_NOT_ALLOWED),
        ("lines[1].unit_price", Code::LINE_QUANTITY_WITHOUT_PRICE),
        ("lines[1].amount", Code::LINE_AMOUNT_PRECISION),
    ];
    for (field, code) in expected {
        assert!(
            found.iter().any(|(f, c)| f == field && *c == code),
            "missing {field} {code} in {found:?}"
        );
    }
    assert_eq!(
        found.len(),
        expected.len(),
        "unexpected extras in {found:?}"
    );
}

#[test]
fn every_violation_has_a_chinese_message() {
    let Err(all) = validate(&draft(vec![line("1", "", "-1", "x")])) else {
        panic!("expected violations")
    };
    for v in all {
        assert!(
            v.message
                .chars()
                .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
            "{v}"
        );
    }
}

#[test]
fn special_invoices_need_an_organisation_buyer_with_a_tax_id() {
    let mut d = draft(vec![line(SOFTWARE, "开发", "100", "6%")]);
    d.kind = Some(InvoiceKind::Special);
    d.buyer.tax_id = String::new();
    has(&d, "buyer.tax_id", Code::BUYER_TAX_ID_REQUIRED);

    d.buyer.natural_person = true;
    has(
        &d,
        "buyer.natural_person",
        Code::BUYER_NATURAL_PERSON_ON_SPECIAL,
    );

    let mut d = draft(vec![line(VEGETABLES, "白菜", "100", "免税")]);
    d.kind = Some(InvoiceKind::Special);
    has(&d, "lines[0].tax_rate", Code::LINE_EXEMPT_ON_SPECIAL);
    d.kind = Some(InvoiceKind::General);
    let inv = validate(&d).expect("exempt lines are fine on 普票");
    assert_eq!(
        (inv.lines[0].tax, inv.lines[0].rate),
        (Decimal::ZERO, TaxRate::Exempt)
    );
}

#[test]
fn general_invoices_accept_natural_person_buyers() {
    let mut d = draft(vec![line(CATERING, "餐费", "88", "6%")]);
    d.buyer = fapiao_invoice::model::BuyerDraft {
        name: "李四".into(),
        natural_person: true,
        id_type: "201".into(),
        id_number: "11010519491231002x".into(),
        mobile: "13800138000".into(),
        ..Default::default()
    };
    let inv = validate(&d).expect("valid");
    let id = inv.buyer.personal_id.expect("personal id kept");
    assert_eq!(id.number, "11010519491231002X");
    assert!(id.resident_id.is_some());
    assert!(inv.buyer.party.tax_id.is_none());

    d.buyer.id_number = "110105194912310021".into();
    has(&d, "buyer.id_number", Code::BUYER_ID_NUMBER_CHECK_DIGIT);
    d.buyer.id_type = "999".into();
    has(&d, "buyer.id_type", Code::BUYER_ID_TYPE_UNKNOWN);
    d.buyer.natural_person = false;
    has(&d, "buyer.id_type", Code::BUYER_ID_NOT_NATURAL_PERSON);
}

#[test]
fn taxpayer_ids_are_normalised_and_checked() {
    let mut d = draft(vec![line(SOFTWARE, "开发", "100", "6%")]);
    d.buyer.tax_id = " ９１１１０３０２ｍａ０１ｎｐ９２５ｍ ".into();
    let inv = validate(&d).expect("full-width and lower case are normalised");
    assert_eq!(inv.buyer.party.tax_id.unwrap().as_str(), BUYER_TAX_ID);
    d.buyer.tax_id = "91110302MA01NP925N".into();
    has(&d, "buyer.tax_id", Code::BUYER_TAX_ID_CHECK_DIGIT);
    d.buyer.tax_id = "91110302MA01NP92OM".into();
    has(&d, "buyer.tax_id", Code::BUYER_TAX_ID_CHARSET);
}

#[test]
fn field_lengths_follow_the_platform() {
    let mut d = draft(vec![line(SOFTWARE, "开发", "100", "6%")]);
    d.buyer.name = "名".repeat(300);
    d.remark = "备".repeat(450);
    assert!(validate(&d).is_ok());
    d.buyer.name.push('名');
    d.buyer.address = "址".repeat(301);
    d.buyer.phone = "1".repeat(61);
    d.buyer.bank_name = "行".repeat(121);
    d.buyer.bank_account = "1".repeat(51);
    d.drawer = "人".repeat(301);
    d.lines[0].specification = "规".repeat(151);
    for field in [
        "buyer.name",
        "buyer.address",
        "buyer.phone",
        "buyer.bank_name",
        "buyer.bank_account",
        "drawer",
        "lines[0].specification",
    ] {
        has(&d, field, Code::TEXT_TOO_LONG);
    }
}

#[test]
fn printed_names_are_limited_to_300_characters() {
    let d = draft(vec![line(SOFTWARE, &"软".repeat(295), "100", "6%")]);
    has(&d, "lines[0].item_name", Code::LINE_PRINTED_NAME_TOO_LONG);
}

#[test]
fn quantity_and_price_rules() {
    has(
        &draft(vec![priced(GOODS, "A", "", "5", "5", "13%")]),
        "lines[0].quantity",
        Code::LINE_PRICE_WITHOUT_QUANTITY,
    );
    has(
        &draft(vec![priced(GOODS, "A", "0", "5", "5", "13%")]),
        "lines[0].quantity",
        Code::LINE_QUANTITY_ZERO,
    );
    has(
        &draft(vec![priced(GOODS, "A", "-1", "5", "5", "13%")]),
        "lines[0].quantity",
        Code::LINE_QUANTITY_NEGATIVE,
    );
    has(
        &draft(vec![priced(GOODS, "A", "1", "0", "5", "13%")]),
        "lines[0].unit_price",
        Code::LINE_UNIT_PRICE_ZERO,
    );
    has(
        &draft(vec![priced(
            GOODS,
            "A",
            "1",
            "1.12345678901234",
            "1.12",
            "13%",
        )]),
        "lines[0].unit_price",
        Code::LINE_UNIT_PRICE_PRECISION,
    );
    has(
        &draft(vec![priced(GOODS, "A", "1234567890123", "1", "1", "13%")]),
        "lines[0].quantity",
        Code::LINE_QUANTITY_RANGE,
    );
    has(
        &draft(vec![line(GOODS, "A", "", "13%")]),
        "lines[0].amount",
        Code::LINE_AMOUNT_REQUIRED,
    );
    has(
        &draft(vec![line(GOODS, "A", "0", "13%")]),
        "lines[0].amount",
        Code::LINE_AMOUNT_ZERO,
    );
    has(
        &draft(vec![line(GOODS, "A", "-5", "13%")]),
        "lines[0].amount",
        Code::LINE_AMOUNT_NEGATIVE,
    );
    has(
        &draft(vec![line(GOODS, "A", "12345678901234567", "13%")]),
        "lines[0].amount",
        Code::LINE_AMOUNT_RANGE,
    );
}

#[test]
fn codes_and_rates_are_checked_against_the_catalog() {
    has(
        &draft(vec![line("3040201019999999999", "A", "1", "6%")]),
        "lines[0].tax_code",
        Code::LINE_TAX_CODE_UNKNOWN,
    );
    has(
        &draft(vec![line(GOODS, "A", "1", "9%")]),
        "lines[0].tax_rate",
        Code::LINE_TAX_RATE_NOT_ALLOWED,
    );
    has(
        &draft(vec![line(GOODS, "A", "1", "")]),
        "lines[0].tax_rate",
        Code::LINE_TAX_RATE_REQUIRED,
    );
    has(
        &draft(vec![line(GOODS, "A", "1", "thirteen")]),
        "lines[0].tax_rate",
        Code::LINE_TAX_RATE_FORMAT,
    );
    has(&draft(vec![]), "lines", Code::LINES_REQUIRED);
}

fn discount(code: &str, name: &str, amount: &str, rate: &str) -> fapiao_invoice::model::LineDraft {
    fapiao_invoice::model::LineDraft {
        nature: LineNature::Discount,
        ..line(code, name, amount, rate)
    }
}

fn discounted(
    code: &str,
    name: &str,
    amount: &str,
    rate: &str,
) -> fapiao_invoice::model::LineDraft {
    fapiao_invoice::model::LineDraft {
        nature: LineNature::Discounted,
        ..line(code, name, amount, rate)
    }
}

#[test]
fn a_discount_pair_nets_out() {
    let inv = validate(&draft(vec![
        discounted(GOODS, "显示器", "1000", "13%"),
        discount(GOODS, "显示器", "-100", "13%"),
        line(SOFTWARE, "开发", "100", "6%"),
    ]))
    .expect("valid");
    assert_eq!(inv.lines[1].tax, dec!(-13.00));
    assert_eq!(inv.totals.amount, dec!(1000.00));
    assert_eq!(inv.totals.tax, dec!(123.00));
}

#[test]
fn discount_line_rules() {
    has(
        &draft(vec![discount(GOODS, "A", "-1", "13%")]),
        "lines[0].nature",
        Code::DISCOUNT_FIRST_LINE,
    );
    has(
        &draft(vec![
            line(GOODS, "A", "10", "13%"),
            discount(GOODS, "A", "-1", "13%"),
        ]),
        "lines[1].nature",
        Code::DISCOUNT_NOT_AFTER_DISCOUNTED,
    );
    has(
        &draft(vec![
            discounted(GOODS, "A", "10", "13%"),
            discount(GOODS, "A", "-1", "13%"),
            discount(GOODS, "A", "-1", "13%"),
        ]),
        "lines[2].nature",
        Code::DISCOUNT_NOT_AFTER_DISCOUNTED,
    );
    has(
        &draft(vec![
            line(GOODS, "A", "10", "13%"),
            discounted(GOODS, "A", "10", "13%"),
        ]),
        "lines[1].nature",
        Code::DISCOUNTED_WITHOUT_DISCOUNT,
    );
    has(
        &draft(vec![
            discounted(GOODS, "A", "10", "13%"),
            discount(GOODS, "B", "-1", "13%"),
        ]),
        "lines[1].item_name",
        Code::DISCOUNT_ITEM_MISMATCH,
    );
    has(
        &draft(vec![
            discounted(GOODS, "A", "10", "13%"),
            discount(GOODS, "A", "-1", "3%"),
        ]),
        "lines[1].item_name",
        Code::DISCOUNT_ITEM_MISMATCH,
    );
    has(
        &draft(vec![
            discounted(GOODS, "A", "10", "13%"),
            discount(GOODS, "A", "-10.01", "13%"),
        ]),
        "lines[1].amount",
        Code::DISCOUNT_EXCEEDS_DISCOUNTED,
    );
    has(
        &draft(vec![
            discounted(GOODS, "A", "10", "13%"),
            discount(GOODS, "A", "1", "13%"),
        ]),
        "lines[1].amount",
        Code::DISCOUNT_AMOUNT_NOT_NEGATIVE,
    );
    let mut with_quantity = discount(GOODS, "A", "-1", "13%");
    with_quantity.quantity = "1".into();
    has(
        &draft(vec![discounted(GOODS, "A", "10", "13%"), with_quantity]),
        "lines[1].quantity",
        Code::DISCOUNT_HAS_QUANTITY,
    );
    has(
        &draft(vec![
            discounted(GOODS, "A", "10", "13%"),
            discount(GOODS, "A", "-10", "13%"),
        ]),
        "lines",
        Code::TOTAL_NOT_POSITIVE,
    );
}

#[test]
fn the_sum_of_lines_must_fit_number_18_2() {
    let big = "9999999999999999.99";
    has(
        &draft(vec![
            line(GOODS, "A", big, "0%"),
            line(GOODS, "B", big, "0%"),
        ]),
        "lines",
        Code::TOTAL_RANGE,
    );
}

#[test]
fn request_ids_are_limited() {
    let mut d = draft(vec![line(SOFTWARE, "开发", "100", "6%")]);
    d.request_id = "x".repeat(65);
    has(&d, "request_id", Code::TEXT_TOO_LONG);
    d.request_id = "a\u{7}b".into();
    has(&d, "request_id", Code::REQUEST_ID_FORMAT);
}

#[test]
fn control_characters_in_free_text_are_refused_but_line_breaks_are_not() {
    let catalog = common::catalog();
    let limits = fapiao_invoice::limits::Limits::default();
    let mut d = common::draft(vec![common::line(
        common::SOFTWARE,
        "软件\u{0}开发",
        "100",
        "6%",
    )]);
    d.buyer.name = "北京某某\u{7}公司".into();
    d.remark = "第一行\n第二行\t备注".into();
    let found: Vec<(String, fapiao_invoice::violation::Code)> =
        fapiao_invoice::validate::Validator::new(&catalog, &limits)
            .validate(&d)
            .unwrap_err()
            .into_iter()
            .map(|v| (v.field, v.code))
            .collect();
    use fapiao_invoice::violation::Code::TEXT_CONTROL_CHARACTER;
    assert_eq!(
        found,
        vec![
            ("buyer.name".to_owned(), TEXT_CONTROL_CHARACTER),
            ("lines[0].item_name".to_owned(), TEXT_CONTROL_CHARACTER),
        ]
    );
}
