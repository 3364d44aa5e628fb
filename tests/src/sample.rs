//! Sample invoices for tests: valid by default, easy to vary.

use fapiao_invoice::catalog::TaxCodeCatalog;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{
    BuyerDraft, InvoiceContent, InvoiceDraft, InvoiceKind, LineDraft, LineNature, PricingMode,
    SellerDraft,
};
use fapiao_invoice::validate::Validator;
use fapiao_proto::v1;

/// The seller of the embedded defaults.
pub const DEMO_SELLER: &str = "91310000MA1FP00011";
/// A valid buyer taxpayer id.
pub const BUYER: &str = "91110302MA01NP925M";

/// A valid blue 专票 for the demo seller: one line of software development at 6 % for `amount`.
pub fn input(request_id: &str, amount: &str) -> v1::InvoiceInput {
    v1::InvoiceInput {
        seller_tax_id: DEMO_SELLER.into(),
        request_id: request_id.into(),
        kind: v1::InvoiceKind::Special.into(),
        pricing_mode: v1::PricingMode::TaxExclusive.into(),
        drawer: "张三".into(),
        buyer: Some(v1::BuyerInput {
            name: "北京某某信息技术有限公司".into(),
            tax_id: BUYER.into(),
            ..Default::default()
        }),
        lines: vec![v1::LineInput {
            item_name: "软件开发".into(),
            tax_code: "3040201010000000000".into(),
            amount: amount.into(),
            tax_rate: "6%".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The same invoice as [`input`], validated into domain content (for store-level tests).
pub fn content(seller_tax_id: &str, request_id: &str, amount: &str) -> InvoiceContent {
    let draft = InvoiceDraft {
        request_id: request_id.into(),
        kind: Some(InvoiceKind::Special),
        seller: SellerDraft {
            tax_id: seller_tax_id.into(),
            name: "上海发票示例科技有限公司".into(),
            ..Default::default()
        },
        buyer: BuyerDraft {
            name: "北京某某信息技术有限公司".into(),
            tax_id: BUYER.into(),
            ..Default::default()
        },
        pricing: Some(PricingMode::TaxExclusive),
        lines: vec![LineDraft {
            item_name: "软件开发".into(),
            tax_code: "3040201010000000000".into(),
            amount: amount.into(),
            tax_rate: "6%".into(),
            nature: LineNature::Normal,
            ..Default::default()
        }],
        drawer: "张三".into(),
        ..Default::default()
    };
    Validator::new(&TaxCodeCatalog::bundled(), &Limits::default())
        .validate(&draft)
        .unwrap_or_else(|v| panic!("the sample invoice is invalid: {v:?}"))
}

/// A valid blue 专票 for the demo seller with two lines: `first` yuan of software development at
/// 6 %, and 10 laptops at 50.00 yuan at 13 % (500.00).
pub fn two_lines(request_id: &str, first: &str) -> v1::InvoiceInput {
    let mut invoice = input(request_id, first);
    invoice.lines.push(v1::LineInput {
        item_name: "笔记本电脑".into(),
        tax_code: "1090509010000000000".into(),
        quantity: "10".into(),
        unit_price: "50".into(),
        unit: "套".into(),
        tax_rate: "13%".into(),
        ..Default::default()
    });
    invoice
}

/// A full reversal of `blue` for the demo seller under `request_id` (reason: issued in error).
pub fn full_reversal(request_id: &str, blue: &str) -> v1::RedLetterInput {
    v1::RedLetterInput {
        seller_tax_id: DEMO_SELLER.into(),
        request_id: request_id.into(),
        blue_invoice_number: blue.into(),
        reason: v1::RedLetterReason::IssuedInError.into(),
        scope: Some(v1::red_letter_input::Scope::Full(v1::FullReversal {})),
        drawer: "李四".into(),
        ..Default::default()
    }
}

/// A partial reversal of `blue` by `(line, amount, quantity)` (reason: sales return).
pub fn partial_reversal(
    request_id: &str,
    blue: &str,
    lines: &[(u32, &str, &str)],
) -> v1::RedLetterInput {
    v1::RedLetterInput {
        reason: v1::RedLetterReason::SalesReturn.into(),
        scope: Some(v1::red_letter_input::Scope::Partial(v1::PartialReversal {
            lines: lines
                .iter()
                .map(|(line, amount, quantity)| v1::LineReversal {
                    line_number: *line,
                    amount: (*amount).into(),
                    quantity: (*quantity).into(),
                })
                .collect(),
        })),
        ..full_reversal(request_id, blue)
    }
}
