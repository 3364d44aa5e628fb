//! Who may call: bearer tokens, roles and sellers, end to end over gRPC.

use fapiao_proto::v1::{self, BuyerInput, InvoiceInput, LineInput, ValidateInvoiceRequest};
use fapiao_services::auth::Role;
use fapiao_services::config::Config;
use fapiao_tests::{ISSUER_TOKEN, TestApp, spawn_app_with, token};
use tonic::Code;

const DEMO_SELLER: &str = "91310000MA1FP00011";

fn request(seller: &str) -> ValidateInvoiceRequest {
    ValidateInvoiceRequest {
        invoice: Some(InvoiceInput {
            seller_tax_id: seller.into(),
            request_id: "ORDER-1".into(),
            kind: v1::InvoiceKind::General.into(),
            pricing_mode: v1::PricingMode::TaxExclusive.into(),
            drawer: "张三".into(),
            buyer: Some(BuyerInput {
                name: "某公司".into(),
                ..Default::default()
            }),
            lines: vec![LineInput {
                item_name: "软件开发".into(),
                tax_code: "3040201010000000000".into(),
                amount: "100".into(),
                tax_rate: "6%".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

async fn app() -> TestApp {
    spawn_app_with(Config {
        tokens: vec![
            token("orders", ISSUER_TOKEN, vec![Role::Issuer], &[DEMO_SELLER]),
            token(
                "audit",
                "test-auditor-token-01",
                vec![Role::Auditor],
                &["*"],
            ),
            token(
                "other",
                "test-other-seller-001",
                vec![Role::Issuer],
                &["91110302MA01NP925M"],
            ),
        ],
        ..Config::default()
    })
    .await
    .expect("the server starts")
}

#[tokio::test]
async fn an_issuer_for_the_seller_may_call() {
    let app = app().await;
    let answer = app
        .issuance()
        .validate_invoice(request(DEMO_SELLER))
        .await
        .unwrap();
    assert!(answer.into_inner().valid);
}

#[tokio::test]
async fn missing_and_wrong_tokens_are_unauthenticated() {
    let app = app().await;
    let anonymous =
        fapiao_proto::v1::issuance_service_client::IssuanceServiceClient::new(app.channel.clone())
            .validate_invoice(request(DEMO_SELLER))
            .await
            .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let wrong = app
        .issuance_as("test-issuer-token-0002")
        .validate_invoice(request(DEMO_SELLER))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert!(
        !wrong.message().contains("test-issuer-token"),
        "{}",
        wrong.message()
    );
}

#[tokio::test]
async fn the_wrong_role_or_seller_is_permission_denied() {
    let app = app().await;
    let auditor = app
        .issuance_as("test-auditor-token-01")
        .validate_invoice(request(DEMO_SELLER))
        .await
        .unwrap_err();
    assert_eq!(auditor.code(), Code::PermissionDenied);
    assert!(auditor.message().starts_with("ROLE_REQUIRED: "));
    let other_seller = app
        .issuance_as("test-other-seller-001")
        .validate_invoice(request(DEMO_SELLER))
        .await
        .unwrap_err();
    assert_eq!(other_seller.code(), Code::PermissionDenied);
    assert!(other_seller.message().starts_with("SELLER_NOT_ALLOWED: "));
    // A seller the caller may not act for is refused before revealing whether it is configured.
    let unknown = app
        .issuance()
        .validate_invoice(request("91110302MA01NP925M"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn issuing_reading_and_listing_check_role_and_seller() {
    let app = app().await;
    let issue = || v1::IssueInvoiceRequest {
        invoice: request(DEMO_SELLER).invoice,
        ..Default::default()
    };
    let anonymous =
        fapiao_proto::v1::issuance_service_client::IssuanceServiceClient::new(app.channel.clone())
            .issue_invoice(issue())
            .await
            .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let auditor = app
        .issuance_as("test-auditor-token-01")
        .issue_invoice(issue())
        .await
        .unwrap_err();
    assert_eq!(auditor.code(), Code::PermissionDenied);
    let other = app
        .issuance_as("test-other-seller-001")
        .issue_invoice(issue())
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied);

    let number = app
        .issuance()
        .issue_invoice(issue())
        .await
        .expect("the seller's issuer may issue")
        .into_inner()
        .invoice
        .unwrap()
        .invoice_number;
    // Another seller's issuer cannot read it, and cannot even learn that it exists.
    let hidden = app
        .issuance_as("test-other-seller-001")
        .get_invoice(v1::GetInvoiceRequest {
            key: Some(v1::get_invoice_request::Key::InvoiceNumber(number)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let listing = app
        .issuance_as("test-other-seller-001")
        .list_invoices(v1::ListInvoicesRequest {
            seller_tax_id: DEMO_SELLER.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(listing.code(), Code::PermissionDenied);
    let watching = app
        .issuance_as("test-other-seller-001")
        .watch_invoices(v1::WatchInvoicesRequest {
            seller_tax_ids: vec![DEMO_SELLER.into()],
            ..Default::default()
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(watching.code(), Code::PermissionDenied);
}
