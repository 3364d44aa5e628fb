//! Issuing invoices end to end over gRPC against a running server and its sandbox platform, on
//! SQLite and on PostgreSQL: issue and wait for RECORDED, batches, idempotency (also under
//! concurrency), validation failures that store nothing, number and quota exhaustion, reading,
//! listing and watching.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use fapiao_proto::v1::{
    self, GetInvoiceRequest, IssueInvoiceRequest, IssueInvoicesRequest, ListInvoicesRequest,
    SellerRequestKey, WatchInvoicesRequest, get_invoice_request, issue_invoices_item_result,
};
use fapiao_services::config::Config;
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::sample::{self, DEMO_SELLER};
use fapiao_tests::{TestApp, spawn_app_on};
use std::collections::HashSet;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

/// A configuration whose platform answers quickly: results at once, short back-off.
fn quick() -> Config {
    let mut config = fapiao_tests::quick_config();
    config.upload.backoff = vec![Duration::from_millis(50), Duration::from_millis(100)];
    config
}

async fn start(db: TestDatabase, config: Config) -> TestApp {
    spawn_app_on(db, config).await.expect("the server starts")
}

fn issue(request_id: &str, amount: &str) -> IssueInvoiceRequest {
    IssueInvoiceRequest {
        invoice: Some(sample::input(request_id, amount)),
        wait_until_recorded: false,
        wait_timeout: None,
    }
}

fn waiting(mut request: IssueInvoiceRequest) -> IssueInvoiceRequest {
    request.wait_until_recorded = true;
    request.wait_timeout = Some(prost_types::Duration {
        seconds: 20,
        nanos: 0,
    });
    request
}

async fn list(app: &TestApp, states: &[v1::InvoiceState]) -> Vec<v1::Invoice> {
    app.list_all(DEMO_SELLER, states).await
}

async fn an_invoice_is_issued_then_recorded(db: TestDatabase) {
    let app = start(db, quick()).await;
    let issued = app
        .issuance()
        .issue_invoice(issue("order-1", "16000"))
        .await
        .expect("issued")
        .into_inner();
    assert!(!issued.replayed);
    let invoice = issued.invoice.expect("an invoice");
    assert_eq!(invoice.invoice_number.len(), 20);
    assert!(invoice.invoice_number.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        &invoice.invoice_number[2..4],
        "31",
        "Shanghai's region code"
    );
    assert_eq!(
        invoice.seller.as_ref().unwrap().name,
        "上海发票示例科技有限公司"
    );
    let totals = invoice.totals.as_ref().unwrap();
    assert_eq!(
        (
            totals.amount.as_str(),
            totals.tax.as_str(),
            totals.total.as_str()
        ),
        ("16000.00", "960.00", "16960.00")
    );
    assert_eq!(totals.total_in_words, "壹万陆仟玖佰陆拾圆整");
    assert!(invoice.issued_at.is_some());

    let recorded = app
        .issuance()
        .get_invoice(GetInvoiceRequest {
            key: Some(get_invoice_request::Key::InvoiceNumber(
                invoice.invoice_number.clone(),
            )),
            wait_until_recorded: true,
            wait_timeout: Some(prost_types::Duration {
                seconds: 20,
                nanos: 0,
            }),
        })
        .await
        .expect("found")
        .into_inner()
        .invoice
        .unwrap();
    assert_eq!(recorded.state(), v1::InvoiceState::Recorded);
    assert_eq!(recorded.invoice_number, invoice.invoice_number);

    let by_request = app
        .issuance()
        .get_invoice(GetInvoiceRequest {
            key: Some(get_invoice_request::Key::ByRequest(SellerRequestKey {
                seller_tax_id: DEMO_SELLER.into(),
                request_id: "order-1".into(),
            })),
            ..Default::default()
        })
        .await
        .expect("found by request")
        .into_inner()
        .invoice
        .unwrap();
    assert_eq!(by_request.invoice_number, invoice.invoice_number);

    let missing = app
        .issuance()
        .get_invoice(GetInvoiceRequest {
            key: Some(get_invoice_request::Key::InvoiceNumber(
                "26312000000999999999".into(),
            )),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

async fn issuing_can_wait_until_recorded(db: TestDatabase) {
    let app = start(db, quick()).await;
    let invoice = app
        .issuance()
        .issue_invoice(waiting(issue("order-w", "100")))
        .await
        .expect("issued")
        .into_inner()
        .invoice
        .unwrap();
    assert_eq!(invoice.state(), v1::InvoiceState::Recorded);
    assert!(invoice.platform_outcome.is_none());
}

async fn the_same_request_replays_and_other_content_is_already_exists(db: TestDatabase) {
    let app = start(db, quick()).await;
    let first = app
        .issuance()
        .issue_invoice(issue("order-r", "100"))
        .await
        .unwrap()
        .into_inner();
    // "100" and "100.00" are the same content.
    let again = app
        .issuance()
        .issue_invoice(issue("order-r", "100.00"))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    assert_eq!(
        again.invoice.unwrap().invoice_number,
        first.invoice.unwrap().invoice_number
    );
    let changed = app
        .issuance()
        .issue_invoice(issue("order-r", "101"))
        .await
        .unwrap_err();
    assert_eq!(changed.code(), Code::AlreadyExists);
    assert!(
        changed.message().starts_with("REQUEST_ID_REUSED: "),
        "{}",
        changed.message()
    );
    assert_eq!(list(&app, &[]).await.len(), 1);
}

async fn fifty_concurrent_identical_requests_make_one_invoice(db: TestDatabase) {
    let app = start(db, quick()).await;
    let mut calls = Vec::new();
    for _ in 0..50 {
        let mut client = app.issuance();
        calls.push(tokio::spawn(async move {
            client.issue_invoice(issue("order-c", "88.80")).await
        }));
    }
    let mut numbers = HashSet::new();
    let mut fresh = 0;
    for call in calls {
        let answer = call
            .await
            .unwrap()
            .expect("every call succeeds")
            .into_inner();
        fresh += usize::from(!answer.replayed);
        numbers.insert(answer.invoice.unwrap().invoice_number);
    }
    assert_eq!(numbers.len(), 1, "one number for all 50 calls");
    assert_eq!(fresh, 1, "exactly one call issued, the others replayed");
    assert_eq!(list(&app, &[]).await.len(), 1);
}

async fn a_batch_answers_item_by_item(db: TestDatabase) {
    let app = start(db, quick()).await;
    let mut bad = sample::input("b-2", "100");
    bad.lines[0].tax_rate = "7%".into();
    bad.buyer.as_mut().unwrap().tax_id = "91110302MA01NP925X".into();
    let answer = app
        .issuance()
        .issue_invoices(IssueInvoicesRequest {
            invoices: vec![
                sample::input("b-1", "100"),
                bad,
                sample::input("b-1", "100"),
                sample::input("b-3", "200"),
            ],
            wait_until_recorded: true,
            wait_timeout: Some(prost_types::Duration {
                seconds: 20,
                nanos: 0,
            }),
        })
        .await
        .expect("a batch answer")
        .into_inner();
    assert_eq!(answer.results.len(), 4);
    assert_eq!(
        answer.results.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    let invoice = |i: usize| match &answer.results[i].result {
        Some(issue_invoices_item_result::Result::Invoice(inv)) => inv.clone(),
        other => panic!("item {i}: {other:?}"),
    };
    assert_eq!(invoice(0).state(), v1::InvoiceState::Recorded);
    assert_eq!(invoice(3).state(), v1::InvoiceState::Recorded);
    assert_eq!(invoice(0).invoice_number, invoice(2).invoice_number);
    assert!(answer.results[2].replayed);
    let Some(issue_invoices_item_result::Result::Error(error)) = &answer.results[1].result else {
        panic!("item 1 should fail");
    };
    assert_eq!(error.code, "INVALID_ARGUMENT");
    let fields: Vec<(&str, &str)> = error
        .violations
        .iter()
        .map(|v| (v.field.as_str(), v.code.as_str()))
        .collect();
    assert!(
        fields.contains(&("lines[0].tax_rate", "LINE_TAX_RATE_UNKNOWN")),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|(f, _)| *f == "buyer.tax_id"),
        "{fields:?}"
    );
    assert_eq!(list(&app, &[]).await.len(), 2);
    let empty = app
        .issuance()
        .issue_invoices(IssueInvoicesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
}

async fn an_invalid_invoice_is_refused_with_every_problem_and_nothing_stored(db: TestDatabase) {
    let app = start(db, quick()).await;
    let mut input = sample::input("bad-1", "-5");
    input.drawer = String::new();
    input.lines[0].tax_code = "123".into();
    input.kind = 0;
    let status = app
        .issuance()
        .issue_invoice(IssueInvoiceRequest {
            invoice: Some(input),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let bad = status
        .get_details_bad_request()
        .expect("BadRequest details");
    let fields: HashSet<&str> = bad
        .field_violations
        .iter()
        .map(|f| f.field.as_str())
        .collect();
    for field in ["drawer", "kind", "lines[0].tax_code"] {
        assert!(fields.contains(field), "{field} missing from {fields:?}");
    }
    assert!(bad.field_violations.iter().all(|f| {
        !f.reason.is_empty()
            && f.reason
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
    }));
    assert!(list(&app, &[]).await.is_empty(), "nothing is stored");
}

async fn a_dry_run_computes_and_stores_nothing(db: TestDatabase) {
    let app = start(db, quick()).await;
    let answer = app
        .issuance()
        .validate_invoice(v1::ValidateInvoiceRequest {
            invoice: Some(sample::input("dry-1", "16000")),
        })
        .await
        .expect("a dry run")
        .into_inner();
    assert!(answer.valid, "{:?}", answer.violations);
    let totals = answer.preview.unwrap().totals.unwrap();
    assert_eq!(totals.total, "16960.00");
    assert!(list(&app, &[]).await.is_empty(), "a dry run stores nothing");
    // The request id stays free: issuing it afterwards is a first issue, not a replay.
    let issued = app
        .issuance()
        .issue_invoice(issue("dry-1", "16000"))
        .await
        .unwrap()
        .into_inner();
    assert!(!issued.replayed);
}

async fn numbers_run_out_with_resource_exhausted(db: TestDatabase) {
    let mut config = quick();
    config.sandbox.numbers_per_seller = 3;
    config.supply.numbers.reserve = 10;
    config.supply.numbers.low_watermark = 5;
    let app = start(db, config).await;
    for i in 0..3 {
        app.issuance()
            .issue_invoice(issue(&format!("n-{i}"), "10"))
            .await
            .expect("a number is left");
    }
    let status = app
        .issuance()
        .issue_invoice(issue("n-3", "10"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().starts_with("NUMBERS_EXHAUSTED: "),
        "{}",
        status.message()
    );
    let numbers: HashSet<String> = list(&app, &[])
        .await
        .into_iter()
        .map(|i| i.invoice_number)
        .collect();
    assert_eq!(numbers.len(), 3);
}

async fn quota_beyond_the_month_is_failed_precondition(db: TestDatabase) {
    let mut config = quick();
    config.sandbox.monthly_quota = "100.00".parse().unwrap();
    let app = start(db, config).await;
    app.issuance()
        .issue_invoice(issue("q-1", "60"))
        .await
        .expect("within quota");
    let status = app
        .issuance()
        .issue_invoice(issue("q-2", "60"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().starts_with("QUOTA_INSUFFICIENT: "),
        "{}",
        status.message()
    );
    app.issuance()
        .issue_invoice(issue("q-3", "40"))
        .await
        .expect("the rest of the quota");
}

async fn quota_short_locally_is_topped_up(db: TestDatabase) {
    let mut config = quick();
    config.supply.quota.download = "50.00".parse().unwrap();
    config.supply.quota.low_watermark = "0".parse().unwrap();
    config.supply.interval = Duration::from_secs(3600);
    let app = start(db, config).await;
    let status = app
        .issuance()
        .issue_invoice(issue("t-1", "80"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().starts_with("QUOTA_EXHAUSTED: "),
        "{}",
        status.message()
    );
    // The refusal asked for a top-up of at least what the invoice needs; a retry gets through.
    let mut issued = None;
    for _ in 0..100 {
        match app.issuance().issue_invoice(issue("t-1", "80")).await {
            Ok(answer) => {
                issued = Some(answer.into_inner());
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(issued.is_some(), "the top-up never came");
}

async fn watching_streams_each_state_change_and_resumes(db: TestDatabase) {
    let app = start(db, quick()).await;
    let mut stream = app
        .issuance()
        .watch_invoices(WatchInvoicesRequest::default())
        .await
        .expect("watching")
        .into_inner();
    let invoice = app
        .issuance()
        .issue_invoice(waiting(issue("watch-1", "10")))
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    let mut seen = Vec::new();
    let mut cursors = Vec::new();
    while seen.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("an event in time")
            .expect("the stream stays open")
            .expect("no error");
        let event = message.event.expect("an event, not a heartbeat");
        assert_eq!(event.invoice_number, invoice.invoice_number);
        seen.push((event.previous_state(), event.state()));
        cursors.push(message.cursor);
    }
    use v1::InvoiceState as S;
    assert_eq!(
        seen,
        vec![
            (S::Unspecified, S::Issued),
            (S::Issued, S::Uploading),
            (S::Uploading, S::Recorded),
        ]
    );
    let mut resumed = app
        .issuance()
        .watch_invoices(WatchInvoicesRequest {
            seller_tax_ids: vec![DEMO_SELLER.into()],
            after_cursor: cursors[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let next = resumed.next().await.unwrap().unwrap();
    assert_eq!(next.cursor, cursors[1]);
    assert_eq!(next.event.unwrap().state(), S::Uploading);
    let malformed = app
        .issuance()
        .watch_invoices(WatchInvoicesRequest {
            after_cursor: "yesterday".into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
}

async fn listing_pages_with_tokens_bound_to_their_filters(db: TestDatabase) {
    let app = start(db, quick()).await;
    for i in 0..5 {
        app.issuance()
            .issue_invoice(issue(&format!("p-{i}"), "10"))
            .await
            .unwrap();
    }
    let request = |token: String| ListInvoicesRequest {
        seller_tax_id: DEMO_SELLER.into(),
        page_size: 2,
        page_token: token,
        ..Default::default()
    };
    let first = app
        .issuance()
        .list_invoices(request(String::new()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.invoices.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = app
        .issuance()
        .list_invoices(request(first.next_page_token.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.invoices.len(), 2);
    let mut other_filter = request(first.next_page_token);
    other_filter.states = vec![v1::InvoiceState::Recorded.into()];
    let refused = app
        .issuance()
        .list_invoices(other_filter)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(list(&app, &[]).await.len(), 5);
}

fapiao_tests::on_both_databases!(
    an_invoice_is_issued_then_recorded,
    issuing_can_wait_until_recorded,
    the_same_request_replays_and_other_content_is_already_exists,
    fifty_concurrent_identical_requests_make_one_invoice,
    a_batch_answers_item_by_item,
    an_invalid_invoice_is_refused_with_every_problem_and_nothing_stored,
    a_dry_run_computes_and_stores_nothing,
    numbers_run_out_with_resource_exhausted,
    quota_beyond_the_month_is_failed_precondition,
    quota_short_locally_is_topped_up,
    watching_streams_each_state_change_and_resumes,
    listing_pages_with_tokens_bound_to_their_filters,
);
