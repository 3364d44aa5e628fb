//! `OpsService` end to end, on SQLite and PostgreSQL: an operator starts a pass over the running
//! server (which compares against its in-process sandbox), reads the run and the drifts it found,
//! and resolves by hand the one drift the reconciler never repairs. Passes also start on the
//! schedule, and a large faulty issuance ends in agreement after one pass. Operators also see the
//! numbers and quota each seller holds.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::Utc;
use fapiao_proto::v1;
use fapiao_services::config::Config;
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::{ISSUER_TOKEN, TestApp, spawn_app_on};
use serde_json::json;
use sqlx::AnyPool;
use tonic::Code;

fapiao_tests::on_both_databases!(
    operators_trigger_passes_and_resolve_what_they_found,
    scheduled_passes_run_inside_the_server,
    invoices_only_the_platform_holds_are_adopted_when_ours_and_alerted_otherwise,
    operators_see_the_numbers_and_quota_each_seller_holds,
);

fn quick() -> Config {
    let mut config = fapiao_tests::quick_config();
    // Planted drift is judged at once instead of after the in-flight grace.
    config.reconcile.grace = Duration::ZERO;
    config
}

async fn recorded(app: &TestApp, number: &str) {
    app.invoice_when(number, |invoice| {
        invoice.state() == v1::InvoiceState::Recorded
    })
    .await;
}

async fn set_faults(app: &TestApp, faults: serde_json::Value) {
    app.sandbox_call(reqwest::Method::PUT, "faults", Some(faults))
        .await;
}

fn window(from: chrono::DateTime<Utc>, to: chrono::DateTime<Utc>) -> Option<v1::TimeRange> {
    let stamp = |at: chrono::DateTime<Utc>| prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap(),
    };
    Some(v1::TimeRange {
        from: Some(stamp(from)),
        to: Some(stamp(to)),
    })
}

/// Poll until run `id` is finished (at most 60 s); returns it.
async fn finished(app: &TestApp, id: &str) -> v1::ReconciliationRun {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let run = app
            .ops()
            .get_reconciliation_run(v1::GetReconciliationRunRequest { run_id: id.into() })
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap();
        if matches!(
            run.status(),
            v1::RunStatus::Succeeded | v1::RunStatus::Failed
        ) {
            return run;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {id} did not finish: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ask for a pass over the last hour and wait for it.
async fn pass(app: &TestApp, why: &str) -> v1::ReconciliationRun {
    let now = Utc::now();
    let started = app
        .ops()
        .trigger_reconciliation(v1::TriggerReconciliationRequest {
            window: window(now - chrono::TimeDelta::hours(1), now),
            seller_tax_ids: Vec::new(),
            reason: why.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert!(
        matches!(
            started.status(),
            v1::RunStatus::Queued | v1::RunStatus::Running
        ),
        "{started:?}"
    );
    assert_eq!(started.trigger(), v1::RunTrigger::Manual);
    assert_eq!(started.triggered_by, "operator");
    assert_eq!(started.reason, why);
    finished(app, &started.run_id).await
}

fn found(run: &v1::ReconciliationRun, kind: v1::DriftKind) -> u64 {
    run.drifts_found
        .iter()
        .find(|count| count.kind() == kind)
        .map_or(0, |count| count.count)
}

async fn drifts(app: &TestApp, status: v1::DriftStatus) -> Vec<v1::Drift> {
    app.ops()
        .list_drifts(v1::ListDriftsRequest {
            status: status as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .drifts
}

async fn operators_trigger_passes_and_resolve_what_they_found(db: TestDatabase) {
    let url = db.url.clone();
    let mut config = quick();
    // An upload that has not settled is stuck at once (the planted one is parked).
    config.reconcile.stuck_after = Duration::ZERO;
    let app = spawn_app_on(db, config).await.unwrap();

    // The platform answers the first two uploads "recorded" and then drops them.
    set_faults(&app, json!({"dropped_record_rate": "100%"})).await;
    let lost = app.issue_sample("ops-lost", "100").await;
    let stuck = app.issue_sample("ops-stuck", "150").await;
    recorded(&app, &lost).await;
    recorded(&app, &stuck).await;
    set_faults(&app, json!({})).await;
    let behind = app.issue_sample("ops-behind", "200").await;
    let changed = app.issue_sample("ops-changed", "300").await;
    let fine = app.issue_sample("ops-fine", "400").await;
    for number in [&behind, &changed, &fine] {
        recorded(&app, number).await;
    }
    // Locally, one invoice never heard back, another's buyer name changed, and one is parked as
    // uploading (the worker gave up on it).
    let pool = db::raw_pool(&url).await;
    sqlx::query(
        "UPDATE invoices SET state = 'UPLOADING', upload_phase = NULL, next_attempt_at = NULL \
         WHERE invoice_number = $1",
    )
    .bind(stuck.clone())
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE invoices SET state = 'ISSUED' WHERE invoice_number = $1")
        .bind(behind.clone())
        .execute(&pool)
        .await
        .unwrap();
    let rewritten = sqlx::query(
        "UPDATE invoices SET buyer_name = buyer_name || '（改）' WHERE invoice_number = $1",
    )
    .bind(changed.clone())
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(rewritten.rows_affected(), 1);

    let first = pass(&app, "after the platform incident").await;
    assert_eq!(first.status(), v1::RunStatus::Succeeded, "{first:?}");
    assert_eq!(first.invoices_compared, 5);
    assert_eq!(found(&first, v1::DriftKind::MissingOnPlatform), 1);
    assert_eq!(found(&first, v1::DriftKind::Stuck), 1);
    assert_eq!(found(&first, v1::DriftKind::StatusMismatch), 1);
    assert_eq!(found(&first, v1::DriftKind::ContentMismatch), 1);
    assert_eq!(first.repairs_attempted, 3, "{first:?}");
    assert_eq!(first.repairs_succeeded, 3, "{first:?}");
    // The re-upload reaches the platform, the stuck one is asked about and sent again, the
    // adopted state is written.
    recorded(&app, &lost).await;
    recorded(&app, &stuck).await;
    recorded(&app, &behind).await;
    // The changed content is a critical drift, and so a critical alert.
    let critical: Vec<String> =
        sqlx::query_scalar("SELECT class FROM drifts WHERE urgency = 'critical'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(critical, ["content_mismatch"]);
    let alerting = fapiao_services::alerting::Alerting::new(
        db::open_store(&url).await,
        std::sync::Arc::new(fapiao_services::clock::SystemClock),
        &fapiao_services::alerting::AlertConfig::default(),
    )
    .unwrap();
    let alerts = alerting.evaluate(Utc::now()).await.unwrap().alerts;
    assert!(
        alerts
            .iter()
            .any(|a| a.name == "FapiaoOpenCriticalDrifts" && a.description.contains("1 critical")),
        "{alerts:?}"
    );

    let open = drifts(&app, v1::DriftStatus::Unspecified).await;
    let mut kinds: Vec<(String, v1::DriftKind)> = open
        .iter()
        .map(|d| (d.invoice_number.clone(), d.kind()))
        .collect();
    kinds.sort();
    let mut expected = vec![
        (lost.clone(), v1::DriftKind::MissingOnPlatform),
        (stuck.clone(), v1::DriftKind::Stuck),
        (behind.clone(), v1::DriftKind::StatusMismatch),
        (changed.clone(), v1::DriftKind::ContentMismatch),
    ];
    expected.sort();
    assert_eq!(
        kinds, expected,
        "every drift is open until a pass finds it gone"
    );
    let missing = open
        .iter()
        .find(|d| d.kind() == v1::DriftKind::MissingOnPlatform)
        .unwrap();
    assert_eq!(missing.repair_attempts, 1);
    assert!(missing.last_repair_at.is_some());
    assert_eq!(missing.local_state(), v1::InvoiceState::Recorded);
    assert_eq!(missing.platform_status, "");
    assert_eq!(missing.run_id, first.run_id);

    // The next pass finds the repaired invoices in agreement; the content drift stays.
    let second = pass(&app, "check the repairs").await;
    assert_eq!(second.status(), v1::RunStatus::Succeeded);
    assert_eq!(found(&second, v1::DriftKind::ContentMismatch), 1);
    assert_eq!(second.drifts_found.len(), 1, "{second:?}");
    assert_eq!(second.repairs_attempted, 0);
    let open = drifts(&app, v1::DriftStatus::Open).await;
    assert_eq!(open.len(), 1);
    let content = open[0].clone();
    let of_first = app
        .ops()
        .list_drifts(v1::ListDriftsRequest {
            status: v1::DriftStatus::Repaired as i32,
            run_id: first.run_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .drifts;
    assert_eq!(of_first.len(), 3, "the repaired drifts the first run found");
    let by_run = app
        .ops()
        .list_drifts(v1::ListDriftsRequest {
            run_id: second.run_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .drifts;
    assert_eq!(by_run.len(), 1, "found again by the second run: {by_run:?}");
    assert_eq!(by_run[0].drift_id, content.drift_id);
    assert_eq!(content.kind(), v1::DriftKind::ContentMismatch);
    assert_eq!(content.invoice_number, changed);
    let repaired = drifts(&app, v1::DriftStatus::Repaired).await;
    assert_eq!(repaired.len(), 3);
    assert!(
        repaired
            .iter()
            .all(|d| d.closed_by == "system:reconciler" && d.closed_at.is_some())
    );

    // The server exports what happened.
    let metrics = reqwest::get(app.metrics_url.clone().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} is not exported:\n{metrics}"))
    };
    let seller = fapiao_tests::sample::DEMO_SELLER;
    assert_eq!(
        value(&format!(
            "fapiao_invoices_issued_total{{seller=\"{seller}\"}}"
        )),
        5.0
    );
    assert!(
        value(&format!(
            "fapiao_invoices_recorded_total{{seller=\"{seller}\"}}"
        )) >= 5.0
    );
    assert_eq!(
        value("fapiao_reconcile_passes_total{outcome=\"succeeded\"}"),
        2.0
    );
    assert_eq!(
        value("fapiao_drifts_found_total{class=\"content_mismatch\"}"),
        2.0
    );
    assert_eq!(value("fapiao_drifts_found_total{class=\"stuck\"}"), 1.0);
    assert_eq!(
        value("fapiao_drifts_open{class=\"content_mismatch\",urgency=\"critical\"}"),
        1.0
    );
    assert!(value("fapiao_reconcile_last_success_timestamp_seconds") > 0.0);
    assert!(value("fapiao_issue_duration_seconds_count") >= 5.0);

    // Resolving by hand needs a reason, works once, and names the operator.
    let mut ops = app.ops();
    let refused = ops
        .resolve_drift(v1::ResolveDriftRequest {
            drift_id: content.drift_id.clone(),
            reason: "   ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        fapiao_tests::violations(&refused),
        vec![("reason".to_owned(), "RESOLUTION_REASON_REQUIRED".to_owned())]
    );
    let resolved = ops
        .resolve_drift(v1::ResolveDriftRequest {
            drift_id: content.drift_id.clone(),
            reason: "amount corrected by finance, ticket FIN-42".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .drift
        .unwrap();
    assert_eq!(resolved.status(), v1::DriftStatus::Resolved);
    assert_eq!(resolved.closed_by, "operator");
    assert_eq!(
        resolved.resolution,
        "amount corrected by finance, ticket FIN-42"
    );
    let again = ops
        .resolve_drift(v1::ResolveDriftRequest {
            drift_id: content.drift_id.clone(),
            reason: "twice".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(
        again.message().starts_with("DRIFT_ALREADY_CLOSED"),
        "{again:?}"
    );
    let unknown = ops
        .resolve_drift(v1::ResolveDriftRequest {
            drift_id: "999999".into(),
            reason: "no such drift".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(drifts(&app, v1::DriftStatus::Open).await.is_empty());

    // Runs list newest first, a page at a time; kind filters apply.
    let page = ops
        .list_reconciliation_runs(v1::ListReconciliationRunsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.runs.len(), 1);
    assert_eq!(page.runs[0].run_id, second.run_id);
    let rest = ops
        .list_reconciliation_runs(v1::ListReconciliationRunsRequest {
            page_size: 1,
            page_token: page.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.runs.len(), 1);
    assert_eq!(rest.runs[0].run_id, first.run_id);
    assert!(rest.next_page_token.is_empty());
    let by_kind = ops
        .list_drifts(v1::ListDriftsRequest {
            status: v1::DriftStatus::Repaired as i32,
            kinds: vec![v1::DriftKind::MissingOnPlatform as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .drifts;
    assert_eq!(by_kind.len(), 1);
    assert_eq!(by_kind[0].invoice_number, lost);

    // Every problem of a request comes back at once.
    let future = Utc::now() + chrono::TimeDelta::days(2);
    let bad = ops
        .trigger_reconciliation(v1::TriggerReconciliationRequest {
            window: window(future - chrono::TimeDelta::days(40), future),
            seller_tax_ids: vec!["not-a-tax-id".into(), fapiao_tests::sample::BUYER.into()],
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let mut fields = fapiao_tests::violations(&bad);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            ("reason".to_owned(), "REASON_REQUIRED".to_owned()),
            (
                "seller_tax_ids[0]".to_owned(),
                "SELLER_TAX_ID_INVALID".to_owned()
            ),
            (
                "seller_tax_ids[1]".to_owned(),
                "SELLER_NOT_CONFIGURED".to_owned()
            ),
            ("window".to_owned(), "RANGE_TOO_LONG".to_owned()),
            ("window.to".to_owned(), "TIME_IN_FUTURE".to_owned()),
        ]
    );
    let no_window = ops
        .trigger_reconciliation(v1::TriggerReconciliationRequest {
            reason: "why not".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let mut fields = fapiao_tests::violations(&no_window);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            ("window.from".to_owned(), "WINDOW_REQUIRED".to_owned()),
            ("window.to".to_owned(), "WINDOW_REQUIRED".to_owned()),
        ]
    );

    // Only operators.
    let denied = app
        .ops_as(ISSUER_TOKEN)
        .list_drifts(v1::ListDriftsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    pool.close().await;
    app.shutdown().await.unwrap();
}

async fn scheduled_passes_run_inside_the_server(db: TestDatabase) {
    let mut config = quick();
    config.reconcile.schedule = true;
    config.reconcile.recent = "* * * * * *".into();
    config.reconcile.daily = "0 0 2 * * *".into();
    let app = spawn_app_on(db, config).await.unwrap();
    let number = app.issue_sample("scheduled", "100").await;
    recorded(&app, &number).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let run = loop {
        let runs = app
            .ops()
            .list_reconciliation_runs(v1::ListReconciliationRunsRequest {
                status: v1::RunStatus::Succeeded as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .runs;
        if let Some(run) = runs.into_iter().find(|run| run.invoices_compared == 1) {
            break run;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled pass compared the invoice"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run.trigger(), v1::RunTrigger::Scheduled);
    assert!(run.triggered_by.is_empty());
    assert!(run.drifts_found.is_empty(), "{run:?}");
    let window = run.window.unwrap();
    let span = window.to.unwrap().seconds - window.from.unwrap().seconds;
    assert_eq!(
        span,
        2 * 3600,
        "the recent window is the configured two hours"
    );
    app.shutdown().await.unwrap();
}

/// How many invoices the sandbox platform holds, and how many it dropped after answering
/// "recorded" (its own counters, independent of ours).
async fn platform_counts(app: &TestApp) -> (u64, u64) {
    let stats = app.sandbox_call(reqwest::Method::GET, "stats", None).await;
    (
        stats["invoices_recorded"].as_u64().unwrap(),
        stats["faults"]["dropped_record"].as_u64().unwrap_or(0),
    )
}

async fn count_recorded(pool: &AnyPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM invoices WHERE state = 'RECORDED'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// 5,000 invoices issued while the platform times out 5% of calls, loses 2% of acknowledged
/// uploads (receipt forgotten) and drops 2% of the invoices it answered "recorded": the upload
/// worker settles what it can see, one pass finds exactly what the platform lacks and re-uploads
/// it, and then both sides hold the same 5,000 invoices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_faulty_day_one_pass_brings_local_and_platform_into_agreement() {
    const INVOICES: usize = 5_000;
    let db = db::sqlite();
    let url = db.url.clone();
    let mut config = quick();
    config.platform.timeout = Duration::from_secs(2);
    config.upload.backoff = vec![Duration::from_millis(50), Duration::from_millis(200)];
    let app = spawn_app_on(db, config).await.unwrap();
    set_faults(
        &app,
        json!({
            "timeout_rate": "5%",
            "timeout_hang": "3s",
            "lost_upload_rate": "2%",
            "dropped_record_rate": "2%",
            "services": ["QDFPSC", "CXQDFPSCJG", "CXQDFPXX"],
        }),
    )
    .await;
    let mut client = app.issuance();
    for batch in 0..INVOICES / 100 {
        let invoices = (0..100)
            .map(|i| {
                fapiao_tests::sample::input(&format!("faulty-{batch}-{i}"), &format!("{}", 100 + i))
            })
            .collect();
        let answer = client
            .issue_invoices(v1::IssueInvoicesRequest {
                invoices,
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
            "every invoice is issued"
        );
    }
    // The upload worker settles every invoice it can see: locally all are recorded.
    let pool = db::raw_pool(&url).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    while count_recorded(&pool).await < INVOICES as i64 {
        assert!(
            std::time::Instant::now() < deadline,
            "uploads did not settle: {} recorded",
            count_recorded(&pool).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The incident ends; the platform holds fewer invoices than we recorded.
    set_faults(&app, json!({})).await;
    let (held, dropped) = platform_counts(&app).await;
    let missing = INVOICES as u64 - held;
    assert!(dropped > 0 && missing > 0, "the platform dropped records");
    assert!(missing <= dropped);

    let repair = pass(&app, "after the platform incident").await;
    assert_eq!(repair.status(), v1::RunStatus::Succeeded, "{repair:?}");
    assert_eq!(repair.invoices_compared, INVOICES as u64);
    assert_eq!(found(&repair, v1::DriftKind::MissingOnPlatform), missing);
    assert_eq!(
        repair.drifts_found.len(),
        1,
        "only missing invoices: {repair:?}"
    );
    assert_eq!(repair.repairs_succeeded, missing);

    // The re-uploads reach the platform: it holds every invoice, and a check finds no drift.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while platform_counts(&app).await.0 < INVOICES as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "re-uploads did not land"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let check = pass(&app, "check").await;
    assert_eq!(check.status(), v1::RunStatus::Succeeded);
    assert_eq!(check.invoices_compared, INVOICES as u64);
    assert!(check.drifts_found.is_empty(), "{check:?}");
    assert!(drifts(&app, v1::DriftStatus::Open).await.is_empty());
    assert_eq!(count_recorded(&pool).await, INVOICES as i64);
    pool.close().await;
    app.shutdown().await.unwrap();
}

/// Add an invoice to the (stopped) sandbox's journal, as the platform issuing it on its own.
fn platform_issues(data_dir: &std::path::Path, number: &str, request_id: &str, amount: &str) {
    use std::io::Write as _;
    let content =
        fapiao_tests::sample::content(fapiao_tests::sample::DEMO_SELLER, request_id, amount);
    let issued_at = Utc::now() - chrono::TimeDelta::minutes(10);
    let line = json!({
        "event": "recorded",
        "seller": fapiao_tests::sample::DEMO_SELLER,
        "number": number,
        "issued_at": issued_at,
        "recorded_at": issued_at,
        "content_sm3": fapiao_services::reconciling::platform_digest(&content),
        "content": content,
    });
    let mut journal = std::fs::OpenOptions::new()
        .append(true)
        .open(data_dir.join("sandbox.jsonl"))
        .unwrap();
    writeln!(journal, "{line}").unwrap();
}

async fn get_invoice(app: &TestApp, number: &str) -> Result<v1::Invoice, tonic::Status> {
    use v1::get_invoice_request::Key;
    app.issuance()
        .get_invoice(v1::GetInvoiceRequest {
            key: Some(Key::InvoiceNumber(number.into())),
            ..Default::default()
        })
        .await
        .map(|answer| answer.into_inner().invoice.unwrap())
}

async fn invoices_only_the_platform_holds_are_adopted_when_ours_and_alerted_otherwise(
    db: TestDatabase,
) {
    let url = db.url.clone();
    let app = spawn_app_on(db, quick()).await.unwrap();
    let ours = app.issue_sample("adopt-ours", "100").await;
    recorded(&app, &ours).await;
    let db = app.stop().await.unwrap();
    // While we were away the platform issued two invoices for our seller: one for a request of
    // ours (as after a buyer's red-letter confirmation), one for a request nobody here made.
    let adopted = "26312099999999990001";
    let stranger = "26312099999999990002";
    platform_issues(db.dir.path(), adopted, "form-7", "500");
    platform_issues(db.dir.path(), stranger, "someone-else", "600");
    let store = db::open_store(&url).await;
    store
        .remember_platform_request(
            fapiao_tests::sample::DEMO_SELLER,
            "form-7",
            "red_letter",
            Utc::now(),
        )
        .await
        .unwrap();
    store.close().await;

    let app = spawn_app_on(db, quick()).await.unwrap();
    assert_eq!(
        get_invoice(&app, adopted).await.unwrap_err().code(),
        Code::NotFound
    );
    let first = pass(&app, "after the platform issued on its own").await;
    assert_eq!(first.status(), v1::RunStatus::Succeeded, "{first:?}");
    assert_eq!(found(&first, v1::DriftKind::RemoteOnly), 2, "{first:?}");
    assert_eq!(first.repairs_attempted, 1, "only ours is adopted");
    assert_eq!(first.repairs_succeeded, 1);

    let invoice = get_invoice(&app, adopted).await.unwrap();
    assert_eq!(invoice.state(), v1::InvoiceState::Recorded);
    assert_eq!(invoice.request_id, "form-7");
    assert_eq!(invoice.totals.as_ref().unwrap().amount, "500.00");
    let history = app
        .audit()
        .get_invoice_history(v1::GetInvoiceHistoryRequest {
            invoice_number: adopted.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].actor, "reconciler");
    assert!(history[0].reason.contains("adopted"), "{history:?}");
    assert_eq!(
        get_invoice(&app, stranger).await.unwrap_err().code(),
        Code::NotFound,
        "an invoice nobody here asked for is not taken in"
    );

    // The next pass finds the adopted invoice in agreement; the stranger stays a critical drift.
    let second = pass(&app, "check the adoption").await;
    assert_eq!(found(&second, v1::DriftKind::RemoteOnly), 1, "{second:?}");
    assert_eq!(second.invoices_compared, 2, "ours and the adopted one");
    let open = drifts(&app, v1::DriftStatus::Open).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].invoice_number, stranger);
    assert_eq!(open[0].kind(), v1::DriftKind::RemoteOnly);
    assert_eq!(open[0].local_state(), v1::InvoiceState::Unspecified);
    assert_eq!(open[0].platform_status, "normal");
    let repaired = drifts(&app, v1::DriftStatus::Repaired).await;
    assert_eq!(repaired.len(), 1);
    assert_eq!(repaired[0].invoice_number, adopted);
    app.shutdown().await.unwrap();
}

/// A schedule that is not a cron expression with seconds stops the start with the key named.
#[tokio::test]
async fn a_bad_schedule_stops_the_start() {
    let mut config = quick();
    config.reconcile.schedule = true;
    config.reconcile.recent = "every five minutes".into();
    let error = spawn_app_on(db::sqlite(), config).await.unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("reconcile.recent") && text.contains("every five minutes"),
        "{text}"
    );
}

/// Yuan with 2 decimals as integer fen.
fn fen(text: &str) -> i64 {
    let (yuan, cents) = text.split_once('.').unwrap();
    assert_eq!(cents.len(), 2, "{text}");
    yuan.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap()
}

async fn operators_see_the_numbers_and_quota_each_seller_holds(db: TestDatabase) {
    let app = spawn_app_on(db, quick()).await.unwrap();
    let status = |seller: &str| {
        let mut ops = app.ops();
        let seller = seller.to_owned();
        async move {
            ops.get_number_and_quota_status(v1::GetNumberAndQuotaStatusRequest {
                seller_tax_id: seller,
            })
            .await
            .map(tonic::Response::into_inner)
        }
    };
    let before = status("").await.unwrap().sellers;
    assert_eq!(before.len(), 1, "every configured seller");
    let used_before = fen(&before[0].quota_used);
    let first = app.issue_sample("reserves-1", "100.00").await;
    app.issue_sample("reserves-2", "250.50").await;

    let after = status(fapiao_tests::sample::DEMO_SELLER)
        .await
        .unwrap()
        .sellers;
    let seller = &after[0];
    assert_eq!(seller.seller_tax_id, fapiao_tests::sample::DEMO_SELLER);
    let range = &seller.number_ranges[0];
    assert_eq!(range.first_number, first);
    let next = first.parse::<u128>().unwrap() + 2;
    assert_eq!(range.next_number, format!("{next:020}"));
    let last = range.last_number.parse::<u128>().unwrap();
    assert_eq!(u128::from(range.remaining), last - next + 1);
    assert_eq!(
        seller.numbers_remaining,
        seller
            .number_ranges
            .iter()
            .map(|r| r.remaining)
            .sum::<u64>()
    );
    assert_eq!(fen(&seller.quota_used) - used_before, 35_050);
    assert_eq!(
        fen(&seller.quota_remaining),
        fen(&seller.quota_reserved) - fen(&seller.quota_used)
    );
    let china = Utc::now() + chrono::TimeDelta::hours(8);
    assert_eq!(seller.quota_month, china.format("%Y-%m").to_string());
    assert!(seller.synced_at.is_some());

    let unknown = status(fapiao_tests::sample::BUYER).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let malformed = status("not-a-tax-id").await.unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    let issuer = app
        .ops_as(ISSUER_TOKEN)
        .get_number_and_quota_status(v1::GetNumberAndQuotaStatusRequest::default())
        .await
        .unwrap_err();
    assert_eq!(issuer.code(), Code::PermissionDenied);
}
