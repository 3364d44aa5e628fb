//! `ValidateInvoice` over gRPC against a running server: previews, every violation at once, the
//! seller profile, and the contract's conventions for RPCs that are not served yet.

use fapiao_proto::v1::{
    self, BuyerInput, InvoiceInput, LineInput, ValidateInvoiceRequest, ValidateInvoiceResponse,
};
use fapiao_tests::{TestApp, spawn_app};

const DEMO_SELLER: &str = "91310000MA1FP00011";

fn input() -> InvoiceInput {
    InvoiceInput {
        seller_tax_id: DEMO_SELLER.into(),
        request_id: "ORDER-1".into(),
        kind: v1::InvoiceKind::General.into(),
        pricing_mode: v1::PricingMode::TaxExclusive.into(),
        drawer: "张三".into(),
        buyer: Some(BuyerInput {
            name: "北京某某信息技术有限公司".into(),
            tax_id: "91110302MA01NP925M".into(),
            ..Default::default()
        }),
        lines: vec![
            LineInput {
                item_name: "软件开发".into(),
                tax_code: "3040201010000000000".into(),
                amount: "100.05".into(),
                tax_rate: "6%".into(),
                ..Default::default()
            },
            LineInput {
                item_name: "餐费".into(),
                tax_code: "3070401000000000000".into(),
                quantity: "2".into(),
                unit_price: "50".into(),
                amount: "100".into(),
                tax_rate: "0.06".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

async fn validate(
    app: &TestApp,
    invoice: InvoiceInput,
) -> Result<ValidateInvoiceResponse, tonic::Status> {
    app.issuance()
        .validate_invoice(ValidateInvoiceRequest {
            invoice: Some(invoice),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_valid_invoice_comes_back_computed() {
    let app = spawn_app().await.unwrap();
    let answer = validate(&app, input()).await.unwrap();
    assert!(answer.valid, "{:?}", answer.violations);
    assert!(answer.violations.is_empty());
    let preview = answer.preview.expect("preview");
    assert_eq!(
        preview.seller.expect("seller").name,
        "上海发票示例科技有限公司"
    );
    let l0 = &preview.lines[0];
    assert_eq!(
        (l0.amount.as_str(), l0.tax.as_str(), l0.total.as_str()),
        ("100.05", "6.00", "106.05")
    );
    assert_eq!(l0.printed_item_name, "*信息技术服务*软件开发");
    assert_eq!(l0.tax_rate, "0.06");
    assert_eq!(l0.line_number, 1);
    let l1 = &preview.lines[1];
    assert_eq!((l1.quantity.as_str(), l1.unit_price.as_str()), ("2", "50"));
    assert_eq!(l1.printed_item_name, "*餐饮服务*餐费");
    let totals = preview.totals.expect("totals");
    assert_eq!(
        (
            totals.amount.as_str(),
            totals.tax.as_str(),
            totals.total.as_str()
        ),
        ("200.05", "12.00", "212.05")
    );
    assert_eq!(totals.total_in_words, "贰佰壹拾贰圆零伍分");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_problem_is_reported_at_once() {
    let app = spawn_app().await.unwrap();
    let mut bad = input();
    bad.kind = v1::InvoiceKind::Special.into();
    if let Some(buyer) = bad.buyer.as_mut() {
        buyer.tax_id = "91110302MA01NP925N".into();
    }
    bad.lines[0].tax_rate = "17%".into();
    bad.lines[1].amount = "100.5".into();
    bad.lines.push(LineInput {
        nature: v1::LineNature::Discount.into(),
        ..bad.lines[0].clone()
    });
    bad.drawer = String::new();
    let answer = validate(&app, bad).await.unwrap();
    assert!(!answer.valid);
    assert!(answer.preview.is_none());
    let found: Vec<(&str, &str)> = answer
        .violations
        .iter()
        .map(|v| (v.field.as_str(), v.code.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            ("buyer.tax_id", "BUYER_TAX_ID_CHECK_DIGIT"),
            ("drawer", "DRAWER_REQUIRED"),
            ("lines[0].tax_rate", "LINE_TAX_RATE_UNKNOWN"),
            ("lines[1].amount", "LINE_AMOUNT_MISMATCH"),
            ("lines[2].tax_rate", "LINE_TAX_RATE_UNKNOWN"),
            ("lines[2].amount", "DISCOUNT_AMOUNT_NOT_NEGATIVE"),
            ("lines[2].nature", "DISCOUNT_NOT_AFTER_DISCOUNTED"),
        ]
    );
    assert!(answer.violations.iter().all(|v| !v.message.is_empty()));
}

#[tokio::test]
async fn decimal_text_with_spaces_is_refused_field_by_field() {
    let app = spawn_app().await.unwrap();
    let mut spaced = input();
    spaced.lines[0].amount = " 1 ".into();
    spaced.lines[1].tax_rate = "6 %".into();
    spaced.lines[1].quantity = "2 ".into();
    let answer = validate(&app, spaced.clone()).await.unwrap();
    assert!(!answer.valid);
    let found: Vec<(&str, &str)> = answer
        .violations
        .iter()
        .map(|v| (v.field.as_str(), v.code.as_str()))
        .collect();
    let expected = vec![
        ("lines[0].amount", "LINE_AMOUNT_FORMAT"),
        ("lines[1].tax_rate", "LINE_TAX_RATE_FORMAT"),
        ("lines[1].quantity", "LINE_QUANTITY_FORMAT"),
    ];
    assert_eq!(found, expected);

    // Issuing refuses it the same way, and without the spaces it is a valid invoice.
    let refused = app
        .issuance()
        .issue_invoice(v1::IssueInvoiceRequest {
            invoice: Some(spaced),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let reasons = fapiao_tests::violations(&refused);
    let reasons: Vec<(&str, &str)> = reasons
        .iter()
        .map(|(f, c)| (f.as_str(), c.as_str()))
        .collect();
    assert_eq!(reasons, expected);
    let mut plain = input();
    plain.lines[0].amount = "1".into();
    plain.lines[1].tax_rate = "6%".into();
    assert!(validate(&app, plain).await.unwrap().valid);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_seller_without_a_profile_is_a_failed_precondition() {
    let app = spawn_app().await.unwrap();
    let mut other = input();
    other.seller_tax_id = "91350100M000100Y43".into();
    let status = validate(&app, other).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().starts_with("SELLER_NOT_CONFIGURED: "),
        "{}",
        status.message()
    );

    // A malformed seller id is a violation like any other, not a missing profile.
    let mut malformed = input();
    malformed.seller_tax_id = "123".into();
    let answer = validate(&app, malformed).await.unwrap();
    let found: Vec<_> = answer
        .violations
        .iter()
        .map(|v| (v.field.as_str(), v.code.as_str()))
        .collect();
    assert_eq!(found, vec![("seller_tax_id", "SELLER_TAX_ID_LENGTH")]);
}

#[tokio::test]
async fn an_empty_request_lists_what_is_missing() {
    let app = spawn_app().await.unwrap();
    let answer = validate(&app, InvoiceInput::default()).await.unwrap();
    let codes: Vec<&str> = answer.violations.iter().map(|v| v.code.as_str()).collect();
    for expected in [
        "REQUEST_ID_REQUIRED",
        "KIND_REQUIRED",
        "PRICING_MODE_REQUIRED",
        "SELLER_TAX_ID_REQUIRED",
        "BUYER_NAME_REQUIRED",
        "DRAWER_REQUIRED",
        "LINES_REQUIRED",
    ] {
        assert!(codes.contains(&expected), "missing {expected} in {codes:?}");
    }
}

#[tokio::test]
async fn an_operators_catalog_file_replaces_the_bundled_one_without_a_rebuild() {
    let dir = std::env::temp_dir().join(format!("fapiao-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tax_codes.toml");
    // Only catering, and under a short name of the operator's choosing.
    std::fs::write(
        &path,
        "[[code]]\ncode = \"3070401000000000000\"\nname = \"餐饮服务\"\nshort_name = \"餐饮\"\nrates = [\"6%\"]\n",
    )
    .unwrap();
    let app = fapiao_tests::spawn_app_with(fapiao_services::config::Config {
        tax_codes: Some(path),
        ..Default::default()
    })
    .await
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let answer = validate(&app, input()).await.unwrap();
    let found: Vec<(&str, &str)> = answer
        .violations
        .iter()
        .map(|v| (v.field.as_str(), v.code.as_str()))
        .collect();
    assert_eq!(found, vec![("lines[0].tax_code", "LINE_TAX_CODE_UNKNOWN")]);

    let mut catering_only = input();
    catering_only.lines.remove(0);
    let answer = validate(&app, catering_only).await.unwrap();
    assert!(answer.valid, "{:?}", answer.violations);
    assert_eq!(
        answer.preview.unwrap().lines[0].printed_item_name,
        "*餐饮*餐费"
    );
}
