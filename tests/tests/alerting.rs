//! Alerting against the store, on SQLite and PostgreSQL: the success-rate alerts follow the upload
//! outcomes stored at chosen times, alerts fire once, repeat and resolve through a book that
//! survives a restart, the reconciler's staleness follows its real passes, and one replica at a
//! time sends. Then delivery to a real Alertmanager, and secrets kept out of sight.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use fapiao_reconciler::alert::{self, AlertBook, Notification, NotificationKind};
use fapiao_reconciler::slo::Scope;
use fapiao_services::alerting::{
    AlertConfig, Alerting, AlertmanagerConfig, Evaluator, Observations, Sinks, StepReport,
};
use fapiao_services::clock::{ManualClock, SharedClock};
use fapiao_services::config::Config;
use fapiao_services::store::{OutcomeCount, Store};
use fapiao_tests::db::{self, TestDatabase};
use serde_json::Value;
use sqlx::AnyPool;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration as StdDuration;

fapiao_tests::on_both_databases!(
    slo_alerts_follow_the_stored_upload_outcomes,
    a_low_burn_or_a_tiny_volume_fires_nothing,
    alerts_fire_repeat_resolve_and_survive_a_restart,
    the_reconciler_is_stale_until_a_real_pass_succeeds,
    one_replica_at_a_time_steps_the_book,
    the_spawned_loop_steps_until_stopped_and_gives_the_lease_back,
);

const SELLER_A: &str = "91310000MA1FL8TQ4X";
const SELLER_B: &str = "91440300MA5EXAMPLE";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().unwrap()
}

/// A store on `db` and a second pool on the same database, to plant rows with plain SQL.
async fn open(db: &TestDatabase) -> (Store, AnyPool) {
    let store = db::open_store(&db.url).await;
    store.migrate().await.unwrap();
    (store, db::raw_pool(&db.url).await)
}

/// A manual clock at `at`, and the same clock as the service takes it.
fn clock(at: DateTime<Utc>) -> (Arc<ManualClock>, SharedClock) {
    let manual = Arc::new(ManualClock::new(at));
    let shared: SharedClock = manual.clone();
    (manual, shared)
}

/// The defaults, with the reconciler never stale unless a test wants it.
fn config() -> AlertConfig {
    AlertConfig {
        stale_after: StdDuration::from_secs(1000 * 86_400),
        ..AlertConfig::default()
    }
}

/// Plant upload attempts: `(seller, at, outcome, how many)`.
async fn plant(pool: &AnyPool, batches: &[(&str, DateTime<Utc>, &str, usize)]) {
    let rows: Vec<String> = batches
        .iter()
        .enumerate()
        .flat_map(|(batch, (seller, at, outcome, n))| {
            (0..*n).map(move |i| {
                format!(
                    "('INV-{batch}-{i}', '{seller}', 1, {}, '{outcome}')",
                    at.timestamp_micros()
                )
            })
        })
        .collect();
    for chunk in rows.chunks(500) {
        let sql = format!(
            "INSERT INTO upload_attempts (invoice_number, seller_tax_id, attempt, at, outcome) \
             VALUES {}",
            chunk.join(", ")
        );
        sqlx::query(&sql).execute(pool).await.unwrap();
    }
}

/// Record a reconciliation run that finished at `finished_at`.
async fn record_run(pool: &AnyPool, finished_at: DateTime<Utc>, status: &str, dry_run: bool) {
    let at = finished_at.timestamp_micros();
    sqlx::query(
        "INSERT INTO reconcile_runs (kind, holder, dry_run, window_from, window_to, started_at, \
         finished_at, status) VALUES ('recent', 'test', $1, $2, $3, $4, $5, $6)",
    )
    .bind(i64::from(dry_run))
    .bind(at - 86_400_000_000)
    .bind(at)
    .bind(at - 1_000_000)
    .bind(at)
    .bind(status.to_owned())
    .execute(pool)
    .await
    .unwrap();
}

/// Record a drift of `urgency` with `status`.
async fn record_drift(pool: &AnyPool, invoice: &str, urgency: &str, status: &str) {
    let at = t0().timestamp_micros();
    sqlx::query(
        "INSERT INTO drifts (invoice_number, seller_tax_id, issued_at, class, urgency, detail, \
         repair, outcome, first_run_id, last_run_id, first_seen_at, last_seen_at, status) \
         VALUES ($1, $2, $3, 'content_mismatch', $4, '', '{}', '', 1, 1, $3, $3, $5)",
    )
    .bind(invoice.to_owned())
    .bind(SELLER_A.to_owned())
    .bind(at)
    .bind(urgency.to_owned())
    .bind(status.to_owned())
    .execute(pool)
    .await
    .unwrap();
}

/// The firing alerts as `name scope rule`, sorted.
fn firing(report: &StepReport) -> Vec<String> {
    let mut names: Vec<String> = report
        .evaluation
        .alerts
        .iter()
        .map(|alert| {
            let scope = match alert.labels.get("seller") {
                Some(seller) => format!("seller:{seller}"),
                None => alert.labels.get("scope").cloned().unwrap_or_default(),
            };
            let rule = alert.labels.get("rule").cloned().unwrap_or_default();
            format!("{} {scope} {rule}", alert.name).trim().to_owned()
        })
        .collect();
    names.sort();
    names
}

/// The notifications as `kind name`, in the book's order.
fn sent(report: &StepReport) -> Vec<String> {
    report
        .notifications
        .iter()
        .map(|n| format!("{} {}", n.kind.as_str(), n.alert.name))
        .collect()
}

/// The outcomes (not counting `ACCEPTED`) the store counted in the ring of `within`.
fn ring(counts: &[OutcomeCount], within: Duration) -> u64 {
    counts
        .iter()
        .filter(|c| c.within == within && c.outcome != "ACCEPTED")
        .map(|c| c.count)
        .sum()
}

fn rate(report: &StepReport, scope: &Scope, window: &str) -> String {
    report
        .evaluation
        .reading(scope, window)
        .and_then(|r| r.success_rate)
        .map(|rate| rate.normalize().to_string())
        .unwrap_or_default()
}

async fn slo_alerts_follow_the_stored_upload_outcomes(db: TestDatabase) {
    let (store, pool) = open(&db).await;
    let now = t0();
    // Every hour for three days, seller A fails one upload attempt in a hundred and seller B none.
    let mut batches = Vec::new();
    for hour in 0..72 {
        let at = now - Duration::minutes(1) - Duration::hours(hour);
        batches.push((SELLER_A, at, "RECORDED", 99));
        batches.push((SELLER_A, at, "TIMEOUT", 1));
        batches.push((SELLER_B, at, "RECORDED", 100));
        // Taken by the platform, no verdict yet: not an outcome.
        batches.push((SELLER_A, at, "ACCEPTED", 10));
    }
    // Older than the longest window, and later than now: neither counts.
    batches.push((
        SELLER_B,
        now - Duration::days(3) - Duration::minutes(1),
        "BUSY",
        500,
    ));
    batches.push((SELLER_B, now + Duration::minutes(1), "BUSY", 500));
    plant(&pool, &batches).await;

    let (_, shared) = clock(now);
    let alerting = Alerting::new(store.clone(), shared, &config()).unwrap();
    let report = alerting.step().await.unwrap();
    // Seller A burns at 10× (page-6h's 6×, not page-1h's 14.4×); all sellers together at 5×
    // (tickets only); seller B not at all.
    let a = format!("seller:{SELLER_A}");
    let mut expected = vec![
        "FapiaoErrorBudgetBurn overall ticket-1d".to_owned(),
        "FapiaoErrorBudgetBurn overall ticket-3d".to_owned(),
        "FapiaoSuccessBelowObjective overall below-objective".to_owned(),
        format!("FapiaoErrorBudgetBurn {a} page-6h"),
        format!("FapiaoErrorBudgetBurn {a} ticket-1d"),
        format!("FapiaoErrorBudgetBurn {a} ticket-3d"),
        format!("FapiaoSuccessBelowObjective {a} below-objective"),
    ];
    expected.sort();
    assert_eq!(firing(&report), expected, "{}", db.backend);
    assert_eq!(report.notifications.len(), 7);
    assert!(
        report
            .notifications
            .iter()
            .all(|n| n.kind == NotificationKind::Fired)
    );
    assert_eq!(report.held_by, None);
    assert_eq!(report.deliveries.len(), 1, "the log only");

    let seller_a = Scope::Seller(SELLER_A.to_owned());
    let seller_b = Scope::Seller(SELLER_B.to_owned());
    assert_eq!(rate(&report, &Scope::Overall, "1h"), "0.995");
    assert_eq!(rate(&report, &seller_a, "5m"), "0.99");
    assert_eq!(rate(&report, &seller_a, "3d"), "0.99");
    assert_eq!(rate(&report, &seller_b, "3d"), "1");
    let three_days = report.evaluation.reading(&seller_a, "3d").unwrap();
    assert_eq!(three_days.outcomes.recorded, 72 * 99);
    assert_eq!(three_days.outcomes.failed_attempts, 72);
    let six_hours = report.evaluation.reading(&Scope::Overall, "6h").unwrap();
    assert_eq!(six_hours.outcomes.total(), 6 * 200);
    let ratios = report.evaluation.success_ratios();
    assert_eq!(
        ratios.len(),
        3 * 7,
        "overall and two sellers over seven windows"
    );
    assert!(ratios.contains(&(SELLER_B.to_owned(), "2h".to_owned(), Some(1.into()))));

    // The store counts rings of windows ending at the time asked for, edges exact: an attempt
    // exactly five minutes old is in the hour but not in the five minutes; one made at that time
    // counts; later ones do not.
    let minutes = Duration::minutes;
    let counts = store
        .outcome_counts(now, &[Duration::hours(1), minutes(5)])
        .await
        .unwrap();
    assert_eq!(ring(&counts, minutes(5)), 200);
    assert_eq!(
        ring(&counts, Duration::hours(1)),
        0,
        "none from 5 to 60 minutes ago"
    );
    let counts = store
        .outcome_counts(now + minutes(4), &[minutes(5), Duration::hours(1)])
        .await
        .unwrap();
    assert_eq!(ring(&counts, minutes(5)), 500);
    assert_eq!(ring(&counts, Duration::hours(1)), 200);
    let counts = store
        .outcome_counts(now + minutes(1), &[minutes(5)])
        .await
        .unwrap();
    assert_eq!(ring(&counts, minutes(5)), 700);
    assert!(store.outcome_counts(now, &[]).await.unwrap().is_empty());
    store.close().await;
}

async fn a_low_burn_or_a_tiny_volume_fires_nothing(db: TestDatabase) {
    let (store, pool) = open(&db).await;
    let (manual, shared) = clock(t0());
    let alerting = Alerting::new(store.clone(), shared, &config()).unwrap();

    // One failure in two thousand, 0.05%: half the error budget.
    plant(
        &pool,
        &[
            (SELLER_A, t0() - Duration::minutes(2), "RECORDED", 1999),
            (SELLER_A, t0() - Duration::minutes(2), "REJECTED", 1),
        ],
    )
    .await;
    let report = alerting.step().await.unwrap();
    assert_eq!(firing(&report), Vec::<String>::new(), "{}", db.backend);
    assert!(report.notifications.is_empty());
    assert_eq!(rate(&report, &Scope::Overall, "1h"), "0.9995");

    // Ten days later, one failure among fifty: 2%, but too few outcomes to page anyone.
    manual.advance(Duration::days(10));
    let later = t0() + Duration::days(10);
    plant(
        &pool,
        &[
            (SELLER_A, later - Duration::minutes(1), "RECORDED", 49),
            (SELLER_A, later - Duration::minutes(1), "BUSY", 1),
        ],
    )
    .await;
    let report = alerting.step().await.unwrap();
    assert_eq!(firing(&report), Vec::<String>::new());
    assert!(report.notifications.is_empty());
    assert_eq!(rate(&report, &Scope::Overall, "1h"), "0.98");
    store.close().await;
}

async fn alerts_fire_repeat_resolve_and_survive_a_restart(db: TestDatabase) {
    let (store, pool) = open(&db).await;
    record_drift(&pool, "24312000000000000001", "critical", "open").await;
    // Neither an open warning nor a repaired critical drift counts.
    record_drift(&pool, "24312000000000000002", "warning", "open").await;
    record_drift(&pool, "24312000000000000003", "critical", "repaired").await;
    assert_eq!(store.count_open_drifts("critical").await.unwrap(), 1);
    assert_eq!(store.count_open_drifts("warning").await.unwrap(), 1);
    assert!(store.load_alert_book("default").await.unwrap().is_none());

    let (manual, shared) = clock(t0());
    let first = Alerting::new(store.clone(), shared.clone(), &config())
        .unwrap()
        .with_holder("replica-1");
    let report = first.step().await.unwrap();
    assert_eq!(
        sent(&report),
        ["fired FapiaoOpenCriticalDrifts"],
        "{}",
        db.backend
    );
    let runbook = report.notifications[0].alert.runbook.as_deref().unwrap();
    assert!(runbook.ends_with("/deploy/runbooks/open-critical-drifts.md"));
    assert!(report.deliveries.iter().all(|d| d.is_ok()));

    manual.advance(Duration::minutes(30));
    assert!(first.step().await.unwrap().notifications.is_empty());

    // A restart: a new instance under the same name continues from the stored book.
    drop(first);
    manual.advance(Duration::minutes(15));
    let second = Alerting::new(store.clone(), shared, &config())
        .unwrap()
        .with_holder("replica-1");
    let report = second.step().await.unwrap();
    assert!(report.notifications.is_empty(), "{:?}", sent(&report));
    assert_eq!(firing(&report), ["FapiaoOpenCriticalDrifts"]);

    // An hour after it was sent, it is sent again, with its original start.
    manual.advance(Duration::minutes(15));
    let report = second.step().await.unwrap();
    assert_eq!(sent(&report), ["repeated FapiaoOpenCriticalDrifts"]);
    assert_eq!(report.notifications[0].starts_at, t0());

    // Repaired: resolved once, then quiet.
    sqlx::query("UPDATE drifts SET status = 'repaired' WHERE status = 'open'")
        .execute(&pool)
        .await
        .unwrap();
    manual.advance(Duration::minutes(1));
    let report = second.step().await.unwrap();
    assert_eq!(sent(&report), ["resolved FapiaoOpenCriticalDrifts"]);
    assert_eq!(
        report.notifications[0].kind,
        NotificationKind::Resolved {
            ends_at: t0() + Duration::minutes(61)
        }
    );
    manual.advance(Duration::minutes(1));
    assert!(second.step().await.unwrap().notifications.is_empty());

    let stored = store.load_alert_book("default").await.unwrap().unwrap();
    let book: AlertBook = serde_json::from_str(&stored).unwrap();
    assert_eq!(book.active().count(), 0);
    assert_eq!(book.repeat_every(), Duration::hours(1));
    store.close().await;
}

async fn the_reconciler_is_stale_until_a_real_pass_succeeds(db: TestDatabase) {
    let (store, pool) = open(&db).await;
    let (manual, shared) = clock(t0());
    let config = AlertConfig::default();
    let alerting = Alerting::new(store.clone(), shared, &config).unwrap();
    assert_eq!(store.last_finished_pass().await.unwrap(), None);

    // A fresh start has fifteen minutes to finish its first pass.
    manual.advance(Duration::minutes(15));
    assert!(alerting.step().await.unwrap().notifications.is_empty());
    manual.advance(Duration::minutes(1));
    let report = alerting.step().await.unwrap();
    assert_eq!(
        sent(&report),
        ["fired FapiaoReconcilerStale"],
        "{}",
        db.backend
    );
    assert!(
        report.notifications[0]
            .alert
            .runbook
            .as_deref()
            .unwrap()
            .ends_with("/reconciler-stale.md")
    );

    // A dry run and a failed run do not show the reconciler works.
    record_run(&pool, t0() + Duration::minutes(16), "succeeded", true).await;
    record_run(&pool, t0() + Duration::minutes(16), "failed", false).await;
    manual.advance(Duration::minutes(1));
    let report = alerting.step().await.unwrap();
    assert_eq!(firing(&report), ["FapiaoReconcilerStale"]);
    assert!(report.notifications.is_empty());

    record_run(&pool, t0() + Duration::minutes(17), "succeeded", false).await;
    assert_eq!(
        store.last_finished_pass().await.unwrap(),
        Some(t0() + Duration::minutes(17))
    );
    manual.advance(Duration::minutes(1));
    let report = alerting.step().await.unwrap();
    assert_eq!(sent(&report), ["resolved FapiaoReconcilerStale"]);
    assert!(report.evaluation.alerts.is_empty());

    // More than fifteen minutes after that pass it is stale again.
    manual.advance(Duration::minutes(14));
    assert!(alerting.step().await.unwrap().notifications.is_empty());
    manual.advance(Duration::minutes(1));
    assert_eq!(
        sent(&alerting.step().await.unwrap()),
        ["fired FapiaoReconcilerStale"]
    );
    store.close().await;
}

async fn one_replica_at_a_time_steps_the_book(db: TestDatabase) {
    let (store, pool) = open(&db).await;
    record_drift(&pool, "24312000000000000001", "critical", "open").await;
    let (manual, shared) = clock(t0());
    let one = Alerting::new(store.clone(), shared.clone(), &config())
        .unwrap()
        .with_holder("replica-1");
    let two = Alerting::new(store.clone(), shared, &config())
        .unwrap()
        .with_holder("replica-2");
    assert_eq!(
        sent(&one.step().await.unwrap()),
        ["fired FapiaoOpenCriticalDrifts"]
    );

    // The second replica evaluates (its gauges stay current) but leaves the book alone.
    manual.advance(Duration::minutes(1));
    let report = two.step().await.unwrap();
    assert_eq!(
        report.held_by.as_deref(),
        Some("replica-1"),
        "{}",
        db.backend
    );
    assert_eq!(firing(&report), ["FapiaoOpenCriticalDrifts"]);
    assert!(report.notifications.is_empty());
    let latest = two.evaluations().borrow().clone().unwrap();
    assert_eq!(latest.at, t0() + Duration::minutes(1));

    // The first stops; once its lease (three evaluation periods) runs out, the second takes over
    // from the stored book: the alert is not fired a second time.
    manual.advance(Duration::minutes(3));
    let report = two.step().await.unwrap();
    assert_eq!(report.held_by, None);
    assert!(report.notifications.is_empty(), "{:?}", sent(&report));
    let report = one.step().await.unwrap();
    assert_eq!(report.held_by.as_deref(), Some("replica-2"));
    store.close().await;
}

async fn the_spawned_loop_steps_until_stopped_and_gives_the_lease_back(db: TestDatabase) {
    let (store, pool) = open(&db).await;
    record_drift(&pool, "24312000000000000001", "critical", "open").await;
    let (_, shared) = clock(t0());
    let config = AlertConfig {
        evaluate_every: StdDuration::from_millis(20),
        ..config()
    };
    let alerting = Alerting::new(store.clone(), shared.clone(), &config)
        .unwrap()
        .with_holder("replica-1");
    let mut evaluations = alerting.evaluations();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = alerting.spawn(stopped);
    tokio::time::timeout(StdDuration::from_secs(10), evaluations.changed())
        .await
        .unwrap()
        .unwrap();
    let first = evaluations.borrow_and_update().clone().unwrap();
    assert_eq!(first.alerts.len(), 1, "{}", db.backend);
    // It keeps stepping.
    tokio::time::timeout(StdDuration::from_secs(10), evaluations.changed())
        .await
        .unwrap()
        .unwrap();
    let stored = store.load_alert_book("default").await.unwrap().unwrap();
    let book: AlertBook = serde_json::from_str(&stored).unwrap();
    assert_eq!(book.active().count(), 1);

    stop.send(true).unwrap();
    tokio::time::timeout(StdDuration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    // The lease was given back: another replica steps at once, without a second "fired".
    let other = Alerting::new(store.clone(), shared, &config)
        .unwrap()
        .with_holder("replica-2");
    let report = other.step().await.unwrap();
    assert_eq!(report.held_by, None);
    assert!(report.notifications.is_empty());
    store.close().await;
}

// --- Alertmanager ---

/// The Alertmanager binary: `FAPIAO_TEST_ALERTMANAGER`, or `prometheus-alertmanager` or
/// `alertmanager` on the PATH.
fn alertmanager_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FAPIAO_TEST_ALERTMANAGER") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["prometheus-alertmanager", "alertmanager"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no Alertmanager binary: set FAPIAO_TEST_ALERTMANAGER, or run the tests through \
         scripts/test, which installs it (Debian package prometheus-alertmanager)"
    );
}

/// A running Alertmanager, killed when dropped.
struct RunningAlertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for RunningAlertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start Alertmanager on a free loopback port with every alert routed to a receiver that sends
/// nothing, and wait until it says it is ready.
async fn start_alertmanager() -> RunningAlertmanager {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n",
    )
    .unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
    let child = Command::new(alertmanager_binary())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let running = RunningAlertmanager {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    loop {
        let ready = client
            .get(format!("{}/-/ready", running.url))
            .timeout(StdDuration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return running;
        }
        if std::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(running._dir.path().join("alertmanager.log"))
                .unwrap_or_default();
            panic!("Alertmanager was not ready within 30 s:\n{log}");
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

/// The alerts Alertmanager lists (`GET /api/v2/alerts`, default filters: active, silenced,
/// inhibited and unprocessed alike) whose `alertname` starts with `Fapiao`.
async fn listed(url: &str) -> Vec<Value> {
    let alerts: Vec<Value> = reqwest::get(format!("{url}/api/v2/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    alerts
        .into_iter()
        .filter(|a| {
            a["labels"]["alertname"]
                .as_str()
                .is_some_and(|name| name.starts_with("Fapiao"))
        })
        .collect()
}

/// Poll until `done` holds of the listed alerts (at most 10 s); returns them.
async fn listed_when(url: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + StdDuration::from_secs(10);
    loop {
        let alerts = listed(url).await;
        if done(&alerts) {
            return alerts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Alertmanager never listed what was expected: {alerts:#?}"
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_lists_a_fired_alert_and_drops_it_once_resolved() {
    let am = start_alertmanager().await;
    let config = AlertConfig {
        alertmanager: Some(AlertmanagerConfig {
            url: am.url.clone(),
            authorization: None,
            timeout: StdDuration::from_secs(5),
            generator_url: Some("https://grafana.example.com/d/fapiao".to_owned()),
        }),
        ..AlertConfig::default()
    };
    // Alertmanager judges times by its own clock, so these notifications are made at real time.
    let now = Utc::now();
    let evaluator = Evaluator::new(&config).unwrap();
    let one_percent = |outcome: &str, count: u64| OutcomeCount {
        seller_tax_id: SELLER_A.to_owned(),
        outcome: outcome.to_owned(),
        within: Duration::minutes(5),
        count,
    };
    let evaluation = evaluator.evaluate(
        &Observations {
            outcomes: vec![one_percent("RECORDED", 990), one_percent("TIMEOUT", 10)],
            last_finished_pass: Some(now),
            service_started_at: now,
            open_critical_drifts: 1,
        },
        now,
    );
    let mut book = AlertBook::new(Duration::hours(1));
    let fired: Vec<Notification> = book.step(now, evaluation.alerts.clone());
    assert_eq!(fired.len(), 9, "four per scope and the drifts");
    let sinks = Sinks::new(&config).unwrap();
    let deliveries = sinks.deliver(&fired, now).await;
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries.iter().all(|d| d.is_ok()), "{deliveries:?}");

    let alerts = listed_when(&am.url, |alerts| alerts.len() == 9).await;
    let page = alerts
        .iter()
        .find(|a| a["labels"]["rule"] == "page-6h" && a["labels"]["scope"] == "seller")
        .unwrap_or_else(|| panic!("no page-6h alert of the seller: {alerts:#?}"));
    assert_eq!(page["labels"]["alertname"], alert::ERROR_BUDGET_BURN);
    assert_eq!(page["labels"]["severity"], "page");
    assert_eq!(page["labels"]["seller"], SELLER_A);
    assert_eq!(page["status"]["state"], "active");
    assert!(
        page["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains(SELLER_A)
    );
    assert!(
        page["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("page-6h")
    );
    assert_eq!(
        page["annotations"]["runbook_url"],
        "https://github.com/fapiao-rs/fapiao/blob/main/deploy/runbooks/error-budget-burn.md"
    );
    assert_eq!(page["generatorURL"], "https://grafana.example.com/d/fapiao");
    let ends_at: DateTime<Utc> = page["endsAt"].as_str().unwrap().parse().unwrap();
    assert!(
        ends_at > now + Duration::minutes(179),
        "kept for three repeat intervals: {ends_at}"
    );
    let drifts = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == alert::OPEN_CRITICAL_DRIFTS)
        .unwrap();
    assert_eq!(drifts["labels"]["severity"], "critical");

    // The drift is repaired: the resolved notification ends it, and Alertmanager stops listing
    // it (an alert whose end has passed is left out of the list, whatever the filters), while
    // the others stay active.
    let later = Utc::now();
    let still: Vec<_> = evaluation
        .alerts
        .iter()
        .filter(|a| a.name != alert::OPEN_CRITICAL_DRIFTS)
        .cloned()
        .collect();
    let resolved = book.step(later, still);
    assert_eq!(resolved.len(), 1);
    assert!(matches!(
        resolved[0].kind,
        NotificationKind::Resolved { .. }
    ));
    let deliveries = sinks.deliver(&resolved, later).await;
    assert!(deliveries.iter().all(|d| d.is_ok()), "{deliveries:?}");
    let alerts = listed_when(&am.url, |alerts| alerts.len() == 8).await;
    assert!(
        alerts
            .iter()
            .all(|a| a["labels"]["alertname"] != alert::OPEN_CRITICAL_DRIFTS)
    );
    assert!(alerts.iter().all(|a| a["status"]["state"] == "active"));
    let active: Vec<Value> = reqwest::get(format!("{}/api/v2/alerts?active=true", am.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        active
            .iter()
            .all(|a| a["labels"]["alertname"] != alert::OPEN_CRITICAL_DRIFTS)
    );
}

#[tokio::test]
async fn a_webhook_authorization_stays_out_of_debug_output_and_errors() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let config = Config::from_toml_str(&format!(
        "[alerts]\n[[alerts.webhooks]]\nurl = \"http://{dead}/hook\"\n\
         authorization = \"Bearer hunter2-very-secret\"\ntimeout = \"1s\"\n"
    ))
    .unwrap();
    let shown = format!("{:?} {:#?}", config.alerts, config);
    assert!(!shown.contains("hunter2"), "{shown}");
    config.alerts.validate().unwrap();

    let sinks = Sinks::new(&config.alerts)
        .unwrap()
        .with_retries(2, StdDuration::from_millis(10));
    assert!(!format!("{sinks:?}").contains("hunter2"));
    let drifts = alert::open_critical_drifts(1).unwrap();
    let deliveries = sinks
        .deliver(
            &[Notification {
                kind: NotificationKind::Fired,
                alert: drifts,
                starts_at: t0(),
            }],
            t0(),
        )
        .await;
    assert_eq!(deliveries.len(), 2);
    let failed = &deliveries[1];
    assert_eq!(failed.attempts, 2);
    let error = failed.error.as_deref().unwrap();
    assert!(!error.contains("hunter2"), "{error}");
    assert!(!format!("{deliveries:?}").contains("hunter2"));

    // A value that cannot be sent as a header is refused without being quoted.
    let bad = Config::from_toml_str(
        "[alerts]\n[[alerts.webhooks]]\nurl = \"http://127.0.0.1:1/hook\"\n\
         authorization = \"Bearer hunter2\\nX-Injected: yes\"\n",
    )
    .unwrap();
    let error = format!("{:#}", bad.alerts.validate().unwrap_err());
    assert!(error.contains("authorization"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}
