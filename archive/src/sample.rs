//! Sample invoices for tests, benchmarks and demonstrations: valid, and varied enough to exercise
//! every part of a layout (goods with quantities and units, a discount pair, a service line, long
//! names, remarks, a red invoice).
//!
//! Each function panics if its sample stops being valid, which is a bug in the sample.

use chrono::{NaiveDate, NaiveDateTime};
use fapiao_invoice::catalog::TaxCodeCatalog;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{
    BuyerDraft, InvoiceContent, InvoiceDraft, InvoiceKind, LineDraft, LineNature, PricingMode,
    RedLetterReason, RedReference, SellerDraft,
};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::redletter::{ReversalScope, plan_reversal, red_invoice};
use fapiao_invoice::validate::Validator;

/// The seller of the samples (a valid 统一社会信用代码 in 上海).
pub const SELLER: &str = "91310000MA1FP00011";
/// The buyer of the samples.
pub const BUYER: &str = "91110302MA01NP925M";

/// The number of the blue sample: 2025, 上海 (31), channel 2, sequence 8848.
pub fn number() -> InvoiceNumber {
    InvoiceNumber::new(25, 31, 2, 8848).unwrap_or_else(|e| panic!("sample number: {e:?}"))
}

/// The number of the red sample.
pub fn red_number() -> InvoiceNumber {
    InvoiceNumber::new(25, 31, 2, 9001).unwrap_or_else(|e| panic!("sample number: {e:?}"))
}

/// 2025-03-07 14:05:09, Beijing time.
pub fn issued_at() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 3, 7)
        .and_then(|d| d.and_hms_opt(14, 5, 9))
        .unwrap_or_else(|| panic!("sample date"))
}

fn line(name: &str, code: &str, rate: &str, amount: &str) -> LineDraft {
    LineDraft {
        item_name: name.into(),
        tax_code: code.into(),
        amount: amount.into(),
        tax_rate: rate.into(),
        ..Default::default()
    }
}

/// A blue 专票 draft with four lines: a computer with quantity, unit and model; a network switch
/// with a discount line; and a software development service.
pub fn blue_draft(request_id: &str) -> InvoiceDraft {
    InvoiceDraft {
        request_id: request_id.into(),
        kind: Some(InvoiceKind::Special),
        seller: SellerDraft {
            tax_id: SELLER.into(),
            name: "上海发票示例科技有限公司".into(),
            address: "上海市浦东新区张江路88号".into(),
            phone: "021-50801234".into(),
            bank_name: "中国工商银行上海张江支行".into(),
            bank_account: "1001234509876543210".into(),
        },
        buyer: BuyerDraft {
            name: "北京某某信息技术有限公司".into(),
            tax_id: BUYER.into(),
            address: "北京市朝阳区建国路1号".into(),
            phone: "010-65001234".into(),
            bank_name: "招商银行北京建国路支行".into(),
            bank_account: "110912345610101".into(),
            ..Default::default()
        },
        pricing: Some(PricingMode::TaxExclusive),
        lines: vec![
            LineDraft {
                specification: "ThinkStation P3".into(),
                unit: "台".into(),
                quantity: "3".into(),
                unit_price: "8850.00".into(),
                ..line("工作站", "1090509010000000000", "13%", "26550.00")
            },
            LineDraft {
                specification: "S5735-L48T4X".into(),
                unit: "台".into(),
                quantity: "2".into(),
                unit_price: "3600.00".into(),
                nature: LineNature::Discounted,
                ..line("交换机", "1090510030000000000", "13%", "7200.00")
            },
            LineDraft {
                nature: LineNature::Discount,
                ..line("交换机", "1090510030000000000", "13%", "-200.00")
            },
            line(
                "订单管理系统定制开发",
                "3040201010000000000",
                "6%",
                "15841.58",
            ),
        ],
        remark: "合同编号：HT-2025-0307；项目：华北区数据中心".into(),
        drawer: "张三".into(),
        payee: "李四".into(),
        reviewer: "王五".into(),
    }
}

/// Validate a draft with the bundled catalog and default limits.
pub fn validate(draft: &InvoiceDraft) -> InvoiceContent {
    Validator::new(&TaxCodeCatalog::bundled(), &Limits::default())
        .validate(draft)
        .unwrap_or_else(|v| panic!("the sample invoice is invalid: {v:?}"))
}

/// The blue sample, validated.
pub fn blue() -> InvoiceContent {
    validate(&blue_draft("SO-20250307-0001"))
}

/// A blue 普票 to a natural person, one line, no bank details.
pub fn to_person() -> InvoiceContent {
    validate(&InvoiceDraft {
        request_id: "SO-20250307-0002".into(),
        kind: Some(InvoiceKind::General),
        seller: blue_draft("").seller,
        buyer: BuyerDraft {
            name: "王小明".into(),
            natural_person: true,
            ..Default::default()
        },
        pricing: Some(PricingMode::TaxInclusive),
        lines: vec![line(
            "订单管理系统定制开发",
            "3040201010000000000",
            "6%",
            "1060.00",
        )],
        drawer: "张三".into(),
        ..Default::default()
    })
}

/// A blue invoice with `lines` service lines (for pagination and speed tests).
pub fn with_lines(request_id: &str, lines: usize) -> InvoiceContent {
    let mut draft = blue_draft(request_id);
    draft.lines = (1..=lines)
        .map(|i| {
            line(
                &format!("技术服务第{i}期"),
                "3040201010000000000",
                "6%",
                &format!("{}.{:02}", 1000 + i, i % 100),
            )
        })
        .collect();
    validate(&draft)
}

/// The full reversal of [`blue`] (reason 01 开票有误), numbered [`red_number`].
pub fn red() -> InvoiceContent {
    let blue = blue();
    let plan = plan_reversal(&blue, &[], &ReversalScope::Full)
        .unwrap_or_else(|v| panic!("sample reversal: {v:?}"));
    let reference = RedReference {
        blue_number: number(),
        form_number: "31011225030700012345".into(),
        reason: RedLetterReason::IssuedInError,
    };
    red_invoice(
        &blue,
        &plan.lines,
        reference,
        "RF-20250308-0001",
        "",
        "张三",
        &Limits::default(),
    )
    .unwrap_or_else(|v| panic!("sample red invoice: {v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fapiao_invoice::model::Colour;

    #[test]
    fn the_samples_are_valid() {
        let blue = blue();
        assert_eq!(blue.lines.len(), 4);
        assert_eq!(blue.colour(), Colour::Blue);
        let red = red();
        assert_eq!(red.colour(), Colour::Red);
        assert_eq!(red.totals.total, -blue.totals.total);
        assert!(red.total_in_words.starts_with("（负数）"));
        assert!(to_person().buyer.natural_person);
        assert_eq!(with_lines("X", 12).lines.len(), 12);
    }
}
