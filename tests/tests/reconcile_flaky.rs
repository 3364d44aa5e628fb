//! Reconciliation through a flaky platform, on SQLite and PostgreSQL: a 100,000-invoice day is
//! compared in one pass while the listing answers "busy" or not at all to one call in ten, and
//! the invoices the upload worker gave up on are sent again; a run a stopped process left
//! unfinished continues from the seller-days it had not done, and a day whose listing retries
//! were spent is compared by the run's next attempt.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_proto::v1;
use fapiao_reconciler::pass::Window;
use fapiao_services::clock::china_day;
use fapiao_services::config::Config;
use fapiao_services::platform::sandbox::FaultRate;
use fapiao_services::store::SellerDayWrite;
use fapiao_tests::busy_day::{self, BusyDay};
use fapiao_tests::db::{self, TestDatabase};
use fapiao_tests::sample::DEMO_SELLER;
use fapiao_tests::{TestApp, quick_config, spawn_app_on};
use serde_json::json;

fapiao_tests::on_both_databases!(
    a_busy_day_through_a_flaky_listing_is_compared_in_one_pass_with_the_parked_invoices,
    a_run_left_unfinished_continues_from_the_seller_days_not_done,
);

/// The platform's service code of the day listing.
const LISTING: &str = "CXQDFPLB";

/// The China day `days_back` days before today with `invoices` invoices of the demo seller,
/// prepared in the database and the sandbox journal of `db` before any server starts. The numbers
/// are far above any the sandbox hands out, so the server issues more beside them.
async fn busy_day_before(db: &TestDatabase, days_back: u64, invoices: u64) -> BusyDay {
    let day = china_day(Utc::now())
        .checked_sub_days(Days::new(days_back))
        .unwrap();
    let year = u8::try_from(chrono::Datelike::year(&day) % 100).unwrap();
    let busy = BusyDay {
        day,
        invoices,
        first: InvoiceNumber::new(year, 31, 2, 900_000_000_000_001).unwrap(),
    };
    let store = db::open_store(&db.url).await;
    store.migrate().await.unwrap();
    busy_day::prepare(&store, &db.url, &busy, &db.dir.path().join("sandbox.jsonl"))
        .await
        .unwrap();
    store.close().await;
    busy
}

fn quick() -> Config {
    let mut config = quick_config();
    // Drift is judged at once instead of after the in-flight grace and the stuck limit.
    config.reconcile.grace = Duration::ZERO;
    config.reconcile.stuck_after = Duration::ZERO;
    config.reconcile.page_backoff = vec![Duration::from_millis(10)];
    // A call the sandbox leaves unanswered (it hangs 3 s) times out after 2 s.
    config.platform.timeout = Duration::from_secs(2);
    config.sandbox.faults.timeout_hang = Duration::from_secs(3);
    config.sandbox.seed = Some(14);
    config
}

async fn set_faults(app: &TestApp, faults: serde_json::Value) {
    app.sandbox_call(reqwest::Method::PUT, "faults", Some(faults))
        .await;
}

async fn sandbox_stats(app: &TestApp) -> serde_json::Value {
    app.sandbox_call(reqwest::Method::GET, "stats", None).await
}

fn stat(stats: &serde_json::Value, group: &str, key: &str) -> u64 {
    stats[group][key].as_u64().unwrap_or(0)
}

fn stamp(at: chrono::DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap(),
    }
}

/// Poll run `id` until `done` holds (at most `within`); returns it.
async fn run_when(
    app: &TestApp,
    id: &str,
    within: Duration,
    done: impl Fn(&v1::ReconciliationRun) -> bool,
) -> v1::ReconciliationRun {
    let deadline = Instant::now() + within;
    loop {
        let run = app
            .ops()
            .get_reconciliation_run(v1::GetReconciliationRunRequest { run_id: id.into() })
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap();
        if done(&run) {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id}: {run:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ask for a pass over `[from, now)` and wait until it is finished (at most 5 minutes).
async fn pass_over(app: &TestApp, from: chrono::DateTime<Utc>, why: &str) -> v1::ReconciliationRun {
    let started = app
        .ops()
        .trigger_reconciliation(v1::TriggerReconciliationRequest {
            window: Some(v1::TimeRange {
                from: Some(stamp(from)),
                to: Some(stamp(Utc::now())),
            }),
            seller_tax_ids: Vec::new(),
            reason: why.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    run_when(app, &started.run_id, Duration::from_secs(300), finished).await
}

fn finished(run: &v1::ReconciliationRun) -> bool {
    matches!(
        run.status(),
        v1::RunStatus::Succeeded | v1::RunStatus::Failed
    )
}

fn found(run: &v1::ReconciliationRun, kind: v1::DriftKind) -> u64 {
    run.drifts_found
        .iter()
        .find(|count| count.kind() == kind)
        .map_or(0, |count| count.count)
}

/// Issue `count` sample invoices and wait until the upload worker has parked every one of them
/// in `state`.
async fn parked(
    app: &TestApp,
    pool: &sqlx::AnyPool,
    prefix: &str,
    count: usize,
    state: &str,
) -> Vec<String> {
    let mut numbers = Vec::new();
    for i in 0..count {
        numbers.push(app.issue_sample(&format!("{prefix}-{i}"), "100").await);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = true;
        for number in &numbers {
            let (phase, now): (Option<String>, String) = sqlx::query_as(
                "SELECT upload_phase, state FROM invoices WHERE invoice_number = $1",
            )
            .bind(number.clone())
            .fetch_one(pool)
            .await
            .unwrap();
            all &= phase.as_deref() == Some("PARKED") && now == state;
        }
        if all {
            return numbers;
        }
        assert!(Instant::now() < deadline, "{prefix}: not parked in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A pass over yesterday's 100,000 invoices and today's, while the listing answers 5% of calls
/// "busy" and leaves 5% unanswered: failed pages are read again, so the pass compares every
/// invoice and leaves no gap; and the invoices the upload worker parked (every upload refused
/// busy, or every upload unanswered and then unknown to the platform) are found and sent again.
async fn a_busy_day_through_a_flaky_listing_is_compared_in_one_pass_with_the_parked_invoices(
    db: TestDatabase,
) {
    const BUSY: u64 = 100_000;
    let began = Instant::now();
    let busy = busy_day_before(&db, 1, BUSY).await;
    let prepared = began.elapsed();
    let url = db.url.clone();
    let mut config = quick();
    config.upload.max_attempts = 2;
    config.upload.backoff = vec![Duration::from_millis(20)];
    let app = spawn_app_on(db, config).await.unwrap();
    let pool = db::raw_pool(&url).await;

    let live_from = Utc::now();
    set_faults(&app, json!({"busy_rate": "100%", "services": ["QDFPSC"]})).await;
    let refused = parked(&app, &pool, "refused", 3, "ISSUED").await;
    set_faults(
        &app,
        json!({"timeout_rate": "100%", "timeout_processed_rate": "0%", "timeout_hang": "3s",
               "services": ["QDFPSC"]}),
    )
    .await;
    let unanswered = parked(&app, &pool, "unanswered", 3, "UPLOADING").await;

    set_faults(
        &app,
        json!({"busy_rate": "5%", "timeout_rate": "5%", "timeout_hang": "3s",
               "services": [LISTING]}),
    )
    .await;
    let before = sandbox_stats(&app).await;
    let passing = Instant::now();
    let from = busy.window().unwrap().from;
    let run = pass_over(&app, from, "a busy day through a flaky listing").await;
    let pass = passing.elapsed();
    assert_eq!(run.status(), v1::RunStatus::Succeeded, "{run:?}");
    assert!(run.error.is_empty(), "{run:?}");
    assert_eq!(run.invoices_compared, BUSY + 6, "every invoice compared");
    assert_eq!(found(&run, v1::DriftKind::MissingOnPlatform), 3, "{run:?}");
    assert_eq!(found(&run, v1::DriftKind::Stuck), 3, "{run:?}");
    assert_eq!(run.drifts_found.len(), 2, "{run:?}");
    assert_eq!((run.repairs_attempted, run.repairs_succeeded), (6, 6));

    // The listing did fail, and the failed pages were read again: 100 pages of yesterday and
    // one of today, plus one more call for every fault.
    let after = sandbox_stats(&app).await;
    let faults = ["busy", "timeout_unprocessed", "timeout_processed"]
        .iter()
        .map(|kind| stat(&after, "faults", kind) - stat(&before, "faults", kind))
        .sum::<u64>();
    let calls = stat(&after, "requests", LISTING) - stat(&before, "requests", LISTING);
    assert!(faults > 0, "no listing call failed: {after}");
    assert!(
        calls >= 101 + faults,
        "{calls} listing calls, {faults} failed"
    );

    // The parked invoices reach the platform; then both sides agree on today.
    set_faults(&app, json!({})).await;
    for number in refused.iter().chain(&unanswered) {
        app.invoice_when(number, |invoice| {
            invoice.state() == v1::InvoiceState::Recorded
        })
        .await;
    }
    let check = pass_over(&app, live_from, "after the re-uploads").await;
    assert_eq!(check.status(), v1::RunStatus::Succeeded, "{check:?}");
    assert_eq!(check.invoices_compared, 6);
    assert!(check.drifts_found.is_empty(), "{check:?}");
    eprintln!(
        "{BUSY} invoices prepared in {prepared:.1?}; the pass took {pass:.1?} with {faults} of \
         {calls} listing calls failed; {:.1?} in all",
        began.elapsed()
    );
    pool.close().await;
    app.shutdown().await.unwrap();
}

/// A process stopped part way through a run over three days, with the first compared and the
/// other two (yesterday, empty, and today) not: the next server takes the run up and compares the
/// two. Their listing is busy through all of that attempt's retries, so the run is queued again,
/// and its next attempt, once the platform answers, compares them and finishes the run with the
/// first day's count kept.
async fn a_run_left_unfinished_continues_from_the_seller_days_not_done(db: TestDatabase) {
    const KEPT: u64 = 1_000;
    let busy = busy_day_before(&db, 2, KEPT).await;
    let url = db.url.clone();
    let app = spawn_app_on(db, quick()).await.unwrap();
    let mut today = Vec::new();
    for i in 0..4 {
        today.push(app.issue_sample(&format!("today-{i}"), "100").await);
    }
    for number in &today {
        app.invoice_when(number, |invoice| {
            invoice.state() == v1::InvoiceState::Recorded
        })
        .await;
    }
    let db = app.stop().await.unwrap();

    // What the stopped process left: its run `running`, the first day kept, the rest not reached.
    let store = db::open_store(&url).await;
    let now = Utc::now();
    let window = (
        busy.window().unwrap().from,
        now + chrono::TimeDelta::minutes(10),
    );
    let run = store
        .start_run("daily", "serve:stopped:1", false, window, now)
        .await
        .unwrap();
    let kept = SellerDayWrite {
        seller_tax_id: DEMO_SELLER.to_owned(),
        day: busy.day,
        local: KEPT,
        remote: KEPT,
        in_agreement: KEPT,
        drifts: Vec::new(),
        repairs_attempted: 0,
        repairs_succeeded: 0,
    };
    store.keep_seller_day(run, &kept, now).await.unwrap();

    let mut config = quick();
    config.reconcile.page_attempts = 2;
    config.reconcile.run_attempts = 3;
    config.reconcile.resume_after = Duration::from_secs(3);
    config.sandbox.faults.busy_rate = FaultRate::ALWAYS;
    config.sandbox.faults.services = vec![LISTING.to_owned()];
    let app = spawn_app_on(db, config).await.unwrap();
    let id = run.to_string();

    // Taken up at start: each day's listing is busy twice, so the attempt leaves both as gaps.
    let queued = run_when(&app, &id, Duration::from_secs(60), |r| {
        r.status() == v1::RunStatus::Queued && r.error.contains("attempt 2 of 3")
    })
    .await;
    set_faults(&app, json!({})).await;
    assert!(queued.error.contains("could not be compared"), "{queued:?}");
    assert!(queued.error.contains("busy"), "{queued:?}");
    let stored = store
        .get_run(&fapiao_services::store::Scope::unrestricted(), run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.attempts, 2);
    assert_eq!(
        stored.local,
        i64::try_from(KEPT).unwrap(),
        "the first day kept"
    );
    assert_eq!(stored.status, "queued");

    // The next attempt reads the two days and nothing else.
    let done = run_when(&app, &id, Duration::from_secs(60), finished).await;
    assert_eq!(done.status(), v1::RunStatus::Succeeded, "{done:?}");
    assert!(done.error.is_empty(), "{done:?}");
    assert_eq!(done.invoices_compared, KEPT + 4);
    assert!(done.drifts_found.is_empty(), "{done:?}");
    let stored = store
        .get_run(&fapiao_services::store::Scope::unrestricted(), run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.attempts, 3);
    assert_eq!(stored.in_agreement, i64::try_from(KEPT + 4).unwrap());
    assert!(
        store.done_seller_days(run).await.unwrap().is_empty(),
        "a finished run forgets its seller-days"
    );
    // One page a day for each day not kept (yesterday and today, or three days when China
    // midnight passed meanwhile), twice busy and once answered; the kept day's page was never
    // asked for.
    let stats = sandbox_stats(&app).await;
    let days = Window {
        from: window.0,
        to: window.1,
    }
    .days()
    .len();
    let left = u64::try_from(days - 1).unwrap();
    assert_eq!(stat(&stats, "requests", LISTING), 3 * left, "{stats}");
    assert_eq!(stat(&stats, "faults", "busy"), 2 * left, "{stats}");
    store.close().await;
    app.shutdown().await.unwrap();
}
