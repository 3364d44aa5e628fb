//! Reconciliation against the store, on SQLite and PostgreSQL: the ledger reads a seller's
//! invoices of a window as the comparison needs them, repairs apply only to invoices still as
//! compared and leave an event, and a re-upload queued by a repair is sent by the running server.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use chrono::{Duration as Span, Utc};
use fapiao_proto::v1::{self, GetInvoiceHistoryRequest};
use fapiao_reconciler::diff::{Drift, DriftClass, LocalState, Repair};
use fapiao_reconciler::pass::{Ledger, RepairOutcome, Repairs, Window};
use fapiao_services::clock::SystemClock;
use fapiao_services::reconciling::{ACTOR, StoreLedger, StoreRepairs};
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::sample::DEMO_SELLER;
use fapiao_tests::{TestApp, quick_config, spawn_app_on};
use std::collections::HashSet;
use std::sync::Arc;

fapiao_tests::on_both_databases!(the_ledger_reads_a_window_and_repairs_apply_only_as_compared);

/// Wait until the platform has recorded `number` (again).
async fn recorded(app: &TestApp, number: &str) {
    app.invoice_when(number, |invoice| {
        invoice.state() == v1::InvoiceState::Recorded
    })
    .await;
}

async fn the_ledger_reads_a_window_and_repairs_apply_only_as_compared(db: TestDatabase) {
    let url = db.url.clone();
    let app = spawn_app_on(db, quick_config()).await.unwrap();
    let a = app.issue_sample("reconcile-a", "100").await;
    let b = app.issue_sample("reconcile-b", "250").await;
    recorded(&app, &a).await;
    recorded(&app, &b).await;
    let store = db::open_store(&url).await;

    let ledger = StoreLedger {
        store: store.clone(),
        sellers: vec![DEMO_SELLER.to_owned()],
    };
    let now = Utc::now();
    let window = Window {
        from: now - Span::hours(1),
        to: now + Span::hours(1),
    };
    let local = ledger.local_invoices(DEMO_SELLER, &window).await.unwrap();
    let numbers: Vec<String> = local.iter().map(|l| l.number.to_string()).collect();
    assert_eq!(numbers, [a.clone(), b.clone()], "in issue order");
    assert!(local.iter().all(|l| l.state == LocalState::Recorded));
    assert!(local.iter().all(|l| l.reconcile_attempts == 0));
    assert_eq!(local[0].amount.to_string(), "100.00");
    // The digest recorded at issue is the one of the content as sent; invoices stored before the
    // column existed get theirs computed from the content, the same.
    let stored = store
        .get_invoice(
            &fapiao_services::store::Scope::unrestricted(),
            &a.parse().unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let sent = fapiao_services::reconciling::platform_digest(&stored.content);
    assert_eq!(local[0].content_sm3, sent);
    let pool = db::raw_pool(&url).await;
    sqlx::query("UPDATE invoices SET platform_sm3 = NULL WHERE invoice_number = $1")
        .bind(a.clone())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let again = ledger.local_invoices(DEMO_SELLER, &window).await.unwrap();
    assert_eq!(again, local, "computed from the content when not recorded");
    let later = Window {
        from: now + Span::hours(1),
        to: now + Span::hours(2),
    };
    assert!(
        ledger
            .local_invoices(DEMO_SELLER, &later)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        ledger
            .local_invoices("91440300MA5EXAMPLE", &window)
            .await
            .unwrap()
            .is_empty(),
        "another seller's window"
    );
    // Known requests are those that make the platform issue on its own, not our own invoices'.
    store
        .remember_platform_request(DEMO_SELLER, "form-1", "red_letter", now)
        .await
        .unwrap();
    store
        .remember_platform_request(DEMO_SELLER, "form-1", "red_letter", now)
        .await
        .unwrap();
    let known = ledger
        .known_requests(DEMO_SELLER, &["reconcile-a", "form-1", "someone-else"])
        .await
        .unwrap();
    assert_eq!(known, HashSet::from(["form-1".to_owned()]));
    assert!(
        ledger
            .known_requests("91440300MA5EXAMPLE", &["form-1"])
            .await
            .unwrap()
            .is_empty()
    );

    let repairs = StoreRepairs {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        platform: None,
    };
    let lost = Drift {
        number: a.parse().unwrap(),
        seller: DEMO_SELLER.to_owned(),
        issued_at: now,
        class: DriftClass::MissingOnPlatform,
        detail: String::new(),
        repair: Repair::Reupload,
        local_state: Some(LocalState::Recorded),
        platform_state: None,
    };
    let outcome = repairs.repair(&lost).await;
    assert!(matches!(outcome, RepairOutcome::Done(_)), "{outcome:?}");
    // The running server's upload worker sends it again and the platform records it.
    recorded(&app, &a).await;
    let events = app
        .audit()
        .get_invoice_history(GetInvoiceHistoryRequest {
            invoice_number: a.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let by_reconciler: Vec<&v1::InvoiceEvent> =
        events.iter().filter(|e| e.actor == ACTOR).collect();
    assert_eq!(by_reconciler.len(), 1, "{events:?}");
    assert_eq!(by_reconciler[0].state(), v1::InvoiceState::Issued);
    assert_eq!(
        by_reconciler[0].previous_state(),
        v1::InvoiceState::Recorded
    );
    assert!(by_reconciler[0].reason.contains("no record"));
    let again = ledger.local_invoices(DEMO_SELLER, &window).await.unwrap();
    assert_eq!(again[0].reconcile_attempts, 1, "counted against the bound");
    assert_eq!(again[1].reconcile_attempts, 0);

    // A drift compared against a state the invoice no longer has is not applied.
    let stale = Drift {
        number: b.parse().unwrap(),
        seller: DEMO_SELLER.to_owned(),
        issued_at: now,
        class: DriftClass::StatusMismatch,
        detail: String::new(),
        repair: Repair::AdoptState(LocalState::FullyReversed),
        local_state: Some(LocalState::Uploading),
        platform_state: None,
    };
    let outcome = repairs.repair(&stale).await;
    assert!(
        matches!(&outcome, RepairOutcome::Failed(why) if why.contains("changed")),
        "{outcome:?}"
    );
    let b_now = ledger.local_invoices(DEMO_SELLER, &window).await.unwrap();
    assert_eq!(b_now[1].state, LocalState::Recorded, "left as it was");
    store.close().await;
}
