//! Fixtures shared by the sandbox's unit tests and its HTTP tests: a seller, blue invoices of two
//! lines, and red invoices that reverse given lines.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeZone, Utc};
use fapiao_invoice::catalog::TaxCodeCatalog;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{
    BuyerDraft, InvoiceContent, InvoiceDraft, InvoiceKind, LineDraft, PricingMode, RedLetterReason,
    RedReference, SellerDraft,
};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::redletter::{self, RedLine};
use fapiao_invoice::taxpayer::TaxpayerId;
use rust_decimal::Decimal;

pub(crate) const SELLER: &str = "91310000MA1FP00011";

pub(crate) fn seller() -> TaxpayerId {
    TaxpayerId::parse(SELLER).unwrap()
}

/// 10:00 China time on 2026-03-01.
pub(crate) fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap()
}

/// A money amount from text.
pub(crate) fn yuan(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// A form line.
pub(crate) fn line(blue_line: u32, amount: &str, tax: &str) -> RedLine {
    RedLine {
        blue_line,
        amount: yuan(amount),
        tax: yuan(tax),
        quantity: None,
    }
}

/// A validated blue invoice of [`seller`]: line 1 is 100.00 and line 2 is 50.00, both at 6%
/// (tax 6.00 and 3.00).
pub(crate) fn blue_content(request_id: &str, kind: InvoiceKind) -> InvoiceContent {
    let item = |amount: &str| LineDraft {
        item_name: "软件开发".into(),
        tax_code: "3040201010000000000".into(),
        amount: amount.into(),
        tax_rate: "6%".into(),
        ..LineDraft::default()
    };
    let draft = InvoiceDraft {
        request_id: request_id.into(),
        kind: Some(kind),
        seller: SellerDraft {
            tax_id: SELLER.into(),
            name: "上海发票示例科技有限公司".into(),
            ..SellerDraft::default()
        },
        buyer: BuyerDraft {
            name: "北京某某信息技术有限公司".into(),
            tax_id: "91110302MA01NP925M".into(),
            ..BuyerDraft::default()
        },
        pricing: Some(PricingMode::TaxExclusive),
        lines: vec![item("100.00"), item("50.00")],
        drawer: "张三".into(),
        ..InvoiceDraft::default()
    };
    fapiao_invoice::validate::Validator::new(&TaxCodeCatalog::bundled(), &Limits::default())
        .validate(&draft)
        .unwrap()
}

/// The red invoice reversing `lines` of `blue` under the form `form_number`, as a seller's system
/// would issue it.
pub(crate) fn red_content(
    blue: &InvoiceContent,
    blue_number: InvoiceNumber,
    form_number: &str,
    lines: &[RedLine],
    request_id: &str,
) -> InvoiceContent {
    let reference = RedReference {
        blue_number,
        form_number: form_number.to_owned(),
        reason: RedLetterReason::SalesReturn,
    };
    redletter::red_invoice(
        blue,
        lines,
        reference,
        request_id,
        "",
        "张三",
        &Limits::default(),
    )
    .unwrap()
}
