//! Validated content survives a trip through JSON (how the store keeps it and the platform client
//! sends it), and deserialising re-checks ids and codes instead of trusting stored text.

mod common;

use common::*;
use fapiao_invoice::catalog::TaxCode;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_invoice::validate::Validator;

#[test]
fn content_round_trips_through_json_exactly() {
    let catalog = catalog();
    let limits = Limits::default();
    let mut d = draft(vec![
        priced(
            GOODS,
            "笔记本电脑",
            "3",
            "3333.3333333333333",
            "10000.00",
            "13%",
        ),
        line(VEGETABLES, "山药", "88.80", "免税"),
    ]);
    d.buyer.natural_person = true;
    d.buyer.tax_id = String::new();
    d.buyer.id_type = "201".into();
    d.buyer.id_number = "11010519491231002X".into();
    let content = Validator::new(&catalog, &limits)
        .validate(&d)
        .expect("valid");
    let json = serde_json::to_string(&content).unwrap();
    // Money travels as text, never as a float.
    assert!(
        json.contains(r#""amount":"10000.00""#) || json.contains(r#""amount":"10000""#),
        "{json}"
    );
    assert!(json.contains(r#""rate":"免税""#), "{json}");
    let back: InvoiceContent = serde_json::from_str(&json).unwrap();
    assert_eq!(back, content);
}

#[test]
fn deserialising_checks_ids_and_codes() {
    assert!(serde_json::from_str::<TaxpayerId>(r#""91110302MA01NP925M""#).is_ok());
    assert!(serde_json::from_str::<TaxpayerId>(r#""91110302MA01NP925N""#).is_err());
    assert!(serde_json::from_str::<TaxCode>(r#""3040201010000000000""#).is_ok());
    assert!(serde_json::from_str::<TaxCode>(r#""304020101""#).is_err());
}
