//! Unit prices that add up, end to end on SQLite and PostgreSQL: a tax-inclusive line whose
//! inclusive price ÷ (1 + rate) would miss its tax-exclusive amount by more than a cent is issued
//! with a unit price that adds up, and the gRPC answer, the archived XML (`UnPrice`) and the OFD
//! say the same.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use fapiao_invoice::compute::price_deviation;
use fapiao_invoice::money::{parse_money, parse_quantity};
use fapiao_proto::v1::{self, IssueInvoiceRequest, LineInput};
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::{quick_config, sample, spawn_app_on};

fapiao_tests::on_both_databases!(a_tax_inclusive_line_is_issued_with_a_unit_price_that_adds_up);

/// The reported line (3 × 33.33 for 100.00 at 13%, 普票, tax-inclusive) and the platform's own
/// sample (16000 at 1%), whose price the platform's formula already gets right.
fn reported_invoice() -> v1::InvoiceInput {
    let mut input = sample::input("unit-prices-1", "1");
    input.kind = v1::InvoiceKind::General.into();
    input.pricing_mode = v1::PricingMode::TaxInclusive.into();
    input.lines = vec![
        LineInput {
            item_name: "系统软件".into(),
            tax_code: "1060301010100000000".into(),
            unit: "套".into(),
            quantity: "3".into(),
            unit_price: "33.33".into(),
            amount: "100.00".into(),
            tax_rate: "13%".into(),
            ..Default::default()
        },
        LineInput {
            item_name: "系统软件".into(),
            tax_code: "1060301010100000000".into(),
            unit: "套".into(),
            quantity: "1".into(),
            unit_price: "16000".into(),
            amount: "16000.00".into(),
            tax_rate: "1%".into(),
            ..Default::default()
        },
    ];
    input
}

/// |quantity × unit price − amount| of figures as printed.
fn off(quantity: &str, unit_price: &str, amount: &str) -> String {
    let deviation = price_deviation(
        parse_money(amount).unwrap(),
        parse_quantity(quantity).unwrap(),
        parse_quantity(unit_price).unwrap(),
    )
    .unwrap();
    assert!(
        deviation <= parse_money("0.01").unwrap(),
        "{quantity} × {unit_price} is {deviation} away from {amount}"
    );
    deviation.to_string()
}

async fn a_tax_inclusive_line_is_issued_with_a_unit_price_that_adds_up(db: TestDatabase) {
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let issued = app
        .issuance()
        .issue_invoice(IssueInvoiceRequest {
            invoice: Some(reported_invoice()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    let printed: Vec<(&str, &str, &str, &str, &str)> = issued
        .lines
        .iter()
        .map(|l| {
            (
                l.quantity.as_str(),
                l.unit_price.as_str(),
                l.amount.as_str(),
                l.tax.as_str(),
                l.total.as_str(),
            )
        })
        .collect();
    assert_eq!(
        printed,
        vec![
            ("3", "29.5", "88.50", "11.50", "100.00"),
            ("1", "15841.5841584158", "15841.58", "158.42", "16000.00"),
        ]
    );
    for l in &issued.lines {
        off(&l.quantity, &l.unit_price, &l.amount);
    }

    // The archived XML and the OFD carry the same figures.
    app.invoice_when(&issued.invoice_number, |i| i.files.len() == 3)
        .await;
    let (_, xml) = app
        .download(&issued.invoice_number, v1::FileFormat::Xml)
        .await
        .unwrap();
    let parsed = fapiao_archive::xml::parse(&xml).unwrap();
    let in_xml: Vec<(String, String, String)> = parsed
        .lines
        .iter()
        .map(|l| {
            (
                l.quantity.unwrap().to_string(),
                l.unit_price.unwrap().to_string(),
                l.amount.to_string(),
            )
        })
        .collect();
    for (quantity, unit_price, amount) in &in_xml {
        off(quantity, unit_price, amount);
    }
    assert_eq!(in_xml[0].1, "29.5");
    assert_eq!(in_xml[1].1, "15841.5841584158");
    assert!(String::from_utf8_lossy(&xml).contains("<UnPrice>29.5</UnPrice>"));

    let (_, ofd) = app
        .download(&issued.invoice_number, v1::FileFormat::Ofd)
        .await
        .unwrap();
    let read = fapiao_archive::ofd_read::read(&ofd).unwrap();
    assert_eq!(read.xml.as_deref(), Some(xml.as_slice()));
    let tagged: Vec<&str> = read
        .tag_lines
        .iter()
        .map(|l| l.get("UnPrice").map(String::as_str).unwrap_or_default())
        .collect();
    assert_eq!(tagged, vec!["29.5", "15841.5841584158"]);
    app.shutdown().await.unwrap();
}
