//! What a client encodes is what a server decodes: decimal strings stay byte-exact, enums keep
//! their numbers, and nested and repeated fields survive.

use fapiao_proto::v1::{
    BuyerInput, InvoiceInput, InvoiceKind, IssueInvoiceRequest, LineInput, LineNature, PricingMode,
    RedLetterInput, red_letter_input,
};
use prost::Message as _;

fn sample_invoice() -> InvoiceInput {
    InvoiceInput {
        seller_tax_id: "91440300708461136T".into(),
        request_id: "ORDER-2026-000123".into(),
        kind: InvoiceKind::Special.into(),
        buyer: Some(BuyerInput {
            name: "深圳市某某科技有限公司".into(),
            tax_id: "91350100M000100Y43".into(),
            natural_person: false,
            address: "深圳市南山区科技园".into(),
            phone: "0755-12345678".into(),
            bank_name: "招商银行深圳分行".into(),
            bank_account: "755900000000001".into(),
            email: "finance@example.com".into(),
            mobile: "13800000000".into(),
            ..Default::default()
        }),
        pricing_mode: PricingMode::TaxInclusive.into(),
        lines: vec![
            LineInput {
                item_name: "软件维护服务费".into(),
                tax_code: "3040201030000000000".into(),
                specification: "年度".into(),
                unit: "次".into(),
                quantity: "1".into(),
                unit_price: "16000.00".into(),
                amount: "16000.00".into(),
                tax_rate: "0.01".into(),
                nature: LineNature::Discounted.into(),
            },
            LineInput {
                item_name: "软件维护服务费".into(),
                tax_code: "3040201030000000000".into(),
                amount: "-100.50".into(),
                tax_rate: "1%".into(),
                nature: LineNature::Discount.into(),
                ..Default::default()
            },
            LineInput {
                item_name: "技术咨询".into(),
                tax_code: "3040603000000000000".into(),
                quantity: "0.5".into(),
                unit_price: "15841.5841584158".into(),
                tax_rate: "免税".into(),
                ..Default::default()
            },
        ],
        remark: "合同号 HT-001".into(),
        drawer: "张三".into(),
        payee: "李四".into(),
        reviewer: "王五".into(),
    }
}

#[test]
fn invoice_input_survives_encode_and_decode() {
    let input = sample_invoice();
    let bytes = input.encode_to_vec();
    let decoded = InvoiceInput::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(decoded, input);
    assert_eq!(decoded.lines[2].unit_price, "15841.5841584158");
    assert_eq!(decoded.lines[1].amount, "-100.50");
    assert_eq!(decoded.kind(), InvoiceKind::Special);
    assert_eq!(decoded.pricing_mode(), PricingMode::TaxInclusive);
    assert_eq!(decoded.lines[1].nature(), LineNature::Discount);
}

#[test]
fn unset_enums_decode_as_unspecified_and_unknown_numbers_are_kept() {
    let decoded =
        InvoiceInput::decode(InvoiceInput::default().encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(decoded.kind(), InvoiceKind::Unspecified);
    assert_eq!(decoded.pricing_mode(), PricingMode::Unspecified);

    // A newer client may send a value this build does not know; the raw number survives so the
    // server can report it instead of silently treating it as another value.
    let future = InvoiceInput {
        kind: 99,
        ..Default::default()
    };
    let decoded = InvoiceInput::decode(future.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(decoded.kind, 99);
    assert!(InvoiceKind::try_from(decoded.kind).is_err());
}

#[test]
fn issue_request_keeps_the_wait_timeout_and_red_letter_keeps_its_scope() {
    let request = IssueInvoiceRequest {
        invoice: Some(sample_invoice()),
        wait_until_recorded: true,
        wait_timeout: Some(prost_types::Duration {
            seconds: 5,
            nanos: 500_000_000,
        }),
    };
    let decoded = IssueInvoiceRequest::decode(request.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(decoded, request);

    let red = RedLetterInput {
        seller_tax_id: "91440300708461136T".into(),
        request_id: "REFUND-1".into(),
        blue_invoice_number: "26442000000000000001".into(),
        reason: fapiao_proto::v1::RedLetterReason::SalesAllowance.into(),
        scope: Some(red_letter_input::Scope::Partial(
            fapiao_proto::v1::PartialReversal {
                lines: vec![fapiao_proto::v1::LineReversal {
                    line_number: 1,
                    amount: "500.00".into(),
                    quantity: String::new(),
                }],
            },
        )),
        remark: String::new(),
        drawer: "张三".into(),
    };
    let decoded = RedLetterInput::decode(red.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(decoded, red);
}
