//! Recovery end to end: with timeouts and "system busy" injected into the sandbox platform, every
//! invoice still ends RECORDED exactly once on the platform; a graceful stop loses nothing that was
//! accepted, and uploads under way resume after a restart. On SQLite and on PostgreSQL.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use fapiao_proto::v1::{self, IssueInvoiceRequest, IssueInvoicesRequest};
use fapiao_services::config::Config;
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::sample::{self, DEMO_SELLER};
use fapiao_tests::{TestApp, spawn_app_on};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn config() -> Config {
    let mut config = Config::default();
    config.platform.timeout = Duration::from_millis(300);
    config.sandbox.seed = Some(7);
    config.supply.interval = Duration::from_millis(100);
    config.upload.poll_delay = Duration::from_millis(20);
    config.upload.poll_interval = Duration::from_millis(20);
    config.upload.idle_poll = Duration::from_millis(50);
    config.upload.backoff = vec![
        Duration::from_millis(50),
        Duration::from_millis(100),
        Duration::from_millis(200),
    ];
    config.upload.max_attempts = 30;
    config
}

async fn count(app: &TestApp, states: &[v1::InvoiceState]) -> usize {
    app.list_all(DEMO_SELLER, states).await.len()
}

/// Poll until nothing waits for the platform; the deadline only bounds a broken run.
async fn wait_until_settled(app: &TestApp, limit: Duration) {
    let give_up = Instant::now() + limit;
    loop {
        let waiting = count(
            app,
            &[v1::InvoiceState::Issued, v1::InvoiceState::Uploading],
        )
        .await;
        if waiting == 0 {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "{waiting} invoices still wait for the platform"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_thousand_invoices_survive_timeouts_and_busy(db: TestDatabase) {
    let app = spawn_app_on(db, config()).await.unwrap();
    // Faults switched on at run time through the sandbox's admin API.
    app.sandbox_call(
        reqwest::Method::PUT,
        "faults",
        Some(json!({ "timeout_rate": "10%", "busy_rate": "5%", "timeout_hang": "1s" })),
    )
    .await;
    for batch in 0..10 {
        let answer = app
            .issuance()
            .issue_invoices(IssueInvoicesRequest {
                invoices: (0..100)
                    .map(|i| sample::input(&format!("rec-{batch}-{i}"), "100"))
                    .collect(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            answer.results.iter().all(|r| matches!(
                r.result,
                Some(v1::issue_invoices_item_result::Result::Invoice(_))
            )),
            "every item issued"
        );
    }
    wait_until_settled(&app, Duration::from_secs(180)).await;
    assert_eq!(count(&app, &[v1::InvoiceState::Recorded]).await, 1000);

    let stats = app.sandbox_call(reqwest::Method::GET, "stats", None).await;
    let faults = &stats["faults"];
    let injected = |kind: &str| faults[kind].as_u64().unwrap_or(0);
    assert!(injected("busy") > 0, "busy answers were injected: {faults}");
    assert!(
        injected("timeout_processed") + injected("timeout_unprocessed") > 0,
        "timeouts were injected: {faults}"
    );
    assert_eq!(stats["invoices_recorded"], 1000, "{stats}");
    let recorded = app
        .sandbox_call(
            reqwest::Method::GET,
            &format!("invoices?seller={DEMO_SELLER}"),
            None,
        )
        .await;
    let numbers: Vec<&str> = recorded["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let distinct: HashSet<&str> = numbers.iter().copied().collect();
    assert_eq!(numbers.len(), 1000, "the platform holds each invoice once");
    assert_eq!(distinct.len(), 1000);
}

async fn a_graceful_stop_loses_nothing_and_uploads_resume(db: TestDatabase) {
    let app = spawn_app_on(db, config()).await.unwrap();
    // The platform answers every upload "busy": invoices are issued but wait in back-off.
    app.sandbox_call(
        reqwest::Method::PUT,
        "faults",
        Some(json!({ "busy_rate": "100%", "services": ["QDFPSC"] })),
    )
    .await;
    let mut calls = Vec::new();
    for i in 0..100 {
        let mut client = app.issuance();
        calls.push(tokio::spawn(async move {
            let answer = client
                .issue_invoice(IssueInvoiceRequest {
                    invoice: Some(sample::input(&format!("stop-{i}"), "10")),
                    ..Default::default()
                })
                .await;
            (
                i,
                answer.map(|a| a.into_inner().invoice.unwrap().invoice_number),
            )
        }));
    }
    // Stop while the calls are still arriving: some are answered, some are cut off.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let database = app.stop().await.unwrap();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }

    let app = spawn_app_on(database, config()).await.unwrap();
    wait_until_settled(&app, Duration::from_secs(60)).await;
    // Every call that was answered with a number kept it, and is now recorded; a call that was
    // cut off either issued (and a retry replays it) or left nothing behind.
    for (i, answer) in answers {
        let retried = app
            .issuance()
            .issue_invoice(IssueInvoiceRequest {
                invoice: Some(sample::input(&format!("stop-{i}"), "10")),
                wait_until_recorded: true,
                wait_timeout: Some(prost_types::Duration {
                    seconds: 20,
                    nanos: 0,
                }),
            })
            .await
            .unwrap()
            .into_inner();
        let invoice = retried.invoice.unwrap();
        if let Ok(number) = answer {
            assert!(retried.replayed, "stop-{i} was issued before the stop");
            assert_eq!(invoice.invoice_number, number);
        }
        assert_eq!(invoice.state(), v1::InvoiceState::Recorded, "stop-{i}");
    }
    assert_eq!(count(&app, &[]).await, 100);
}

fapiao_tests::on_both_databases!(
    a_thousand_invoices_survive_timeouts_and_busy,
    a_graceful_stop_loses_nothing_and_uploads_resume,
);
