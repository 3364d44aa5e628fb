//! Unit tests of alert evaluation, configuration and sinks. The sinks are exercised against a
//! real HTTP server on the loopback interface.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{Duration, TimeZone, Utc};
use fapiao_reconciler::alert::{self, Alert, AlertBook, Notification, NotificationKind, Severity};
use fapiao_reconciler::slo::Scope;
use rust_decimal::Decimal;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::*;

const SELLER_A: &str = "91310000MA1FL8TQ4X";
const SELLER_B: &str = "91440300MA5EXAMPLE";
const SECRET: &str = "Bearer s3cr3t-hook-token";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn evaluator() -> Evaluator {
    Evaluator::new(&AlertConfig::default()).unwrap()
}

fn observations(outcomes: Vec<OutcomeCount>) -> Observations {
    Observations {
        outcomes,
        // A pass has just finished: the reconciler is not stale.
        last_finished_pass: Some(now() - Duration::minutes(1)),
        service_started_at: now() - Duration::days(10),
        open_critical_drifts: 0,
    }
}

fn count(seller: &str, outcome: &str, within: Duration, count: u64) -> OutcomeCount {
    OutcomeCount {
        seller_tax_id: seller.to_owned(),
        outcome: outcome.to_owned(),
        within,
        count,
    }
}

/// A steady stream over the last three days, `recorded` and `failed` (timeouts) in every five
/// minutes, counted in the rings of the evaluator's windows as the store would.
fn steady(seller: &str, recorded: u64, failed: u64) -> Vec<OutcomeCount> {
    let windows = evaluator().windows();
    let mut counts = Vec::new();
    let mut inner = Duration::zero();
    for window in windows {
        let slots = u64::try_from((window - inner).num_minutes() / 5).unwrap();
        counts.push(count(seller, "RECORDED", window, recorded * slots));
        if failed > 0 {
            counts.push(count(seller, "TIMEOUT", window, failed * slots));
        }
        inner = window;
    }
    counts
}

/// The firing alerts as `name scope rule`, sorted.
fn firing(evaluation: &Evaluation) -> Vec<String> {
    let mut names: Vec<String> = evaluation
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

fn expected(lines: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    lines.sort();
    lines
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let config = AlertConfig::default();
    assert_eq!(config.objective, Decimal::new(999, 3));
    assert_eq!(config.min_volume, 100);
    assert_eq!(config.objective_window, StdDuration::from_secs(3600));
    assert_eq!(config.evaluate_every, StdDuration::from_secs(60));
    assert_eq!(config.repeat_every, StdDuration::from_secs(3600));
    assert_eq!(config.stale_after, StdDuration::from_secs(900));
    assert_eq!(
        config.runbook_base,
        "https://github.com/fapiao-rs/fapiao/blob/main/deploy/runbooks/"
    );
    assert!(config.webhooks.is_empty());
    assert!(config.alertmanager.is_none());
    assert_eq!(config.alertmanager_horizon(), Duration::hours(3));
    config.validate().unwrap();
    let windows: Vec<String> = evaluator()
        .windows()
        .into_iter()
        .map(window_label)
        .collect();
    assert_eq!(windows, ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]);
}

#[test]
fn the_section_reads_from_toml() {
    let config: AlertConfig = toml::from_str(
        r#"
        objective = "0.995"
        min_volume = 50
        objective_window = "30m"
        evaluate_every = "30s"
        repeat_every = "2h"
        stale_after = "20m"
        runbook_base = "https://runbooks.example.com/fapiao"

        [[webhooks]]
        url = "https://hooks.example.com/fapiao"
        authorization = "Bearer s3cr3t-hook-token"
        timeout = "2s"

        [[webhooks]]
        url = "http://127.0.0.1:8080/alerts"

        [alertmanager]
        url = "http://127.0.0.1:9093"
        generator_url = "https://grafana.example.com/d/fapiao"
        "#,
    )
    .unwrap();
    assert_eq!(config.objective, Decimal::new(995, 3));
    assert_eq!(config.min_volume, 50);
    assert_eq!(config.objective_window, StdDuration::from_secs(1800));
    assert_eq!(config.evaluate_every, StdDuration::from_secs(30));
    assert_eq!(config.repeat_every, StdDuration::from_secs(7200));
    assert_eq!(config.stale_after, StdDuration::from_secs(1200));
    assert_eq!(config.webhooks.len(), 2);
    assert_eq!(
        config.webhooks[0]
            .authorization
            .as_ref()
            .map(|s| s.expose_secret().to_owned()),
        Some(SECRET.to_owned())
    );
    assert_eq!(config.webhooks[0].timeout, StdDuration::from_secs(2));
    assert_eq!(config.webhooks[1].timeout, StdDuration::from_secs(5));
    assert!(config.webhooks[1].authorization.is_none());
    let am = config.alertmanager.as_ref().unwrap();
    assert_eq!(am.url, "http://127.0.0.1:9093");
    assert_eq!(am.timeout, StdDuration::from_secs(5));
    config.validate().unwrap();

    // A number works as well as a string for the objective; unknown keys are refused.
    let config: AlertConfig = toml::from_str("objective = 0.99").unwrap();
    assert_eq!(config.objective, Decimal::new(99, 2));
    assert!(toml::from_str::<AlertConfig>("objectve = \"0.99\"").is_err());
    assert!(toml::from_str::<AlertConfig>("[[webhooks]]\nurl = \"http://x\"\nnme = 1").is_err());
}

#[test]
fn bad_values_are_refused_at_validation() {
    let bad = |change: &dyn Fn(&mut AlertConfig)| {
        let mut config = AlertConfig::default();
        change(&mut config);
        config.validate().unwrap_err().to_string()
    };
    assert!(bad(&|c| c.objective = Decimal::ONE).contains("objective"));
    assert!(bad(&|c| c.objective = Decimal::ZERO).contains("objective"));
    assert!(bad(&|c| c.objective_window = StdDuration::ZERO).contains("objective_window"));
    assert!(bad(&|c| c.evaluate_every = StdDuration::ZERO).contains("evaluate_every"));
    assert!(bad(&|c| c.repeat_every = StdDuration::ZERO).contains("repeat_every"));
    assert!(bad(&|c| c.stale_after = StdDuration::ZERO).contains("stale_after"));
    let webhook = |url: &str| WebhookConfig {
        url: url.to_owned(),
        authorization: None,
        timeout: StdDuration::from_secs(1),
    };
    assert!(
        bad(&|c| c.webhooks = vec![webhook("ftp://example.com/x")]).contains("webhooks[1].url")
    );
    assert!(bad(&|c| c.webhooks = vec![webhook("not a url")]).contains("webhooks[1].url"));
    assert!(
        bad(&|c| {
            c.alertmanager = Some(AlertmanagerConfig {
                url: "localhost:9093".to_owned(),
                authorization: None,
                timeout: StdDuration::from_secs(1),
                generator_url: None,
            })
        })
        .contains("alertmanager.url")
    );
}

#[test]
fn an_authorization_value_never_shows_in_debug_output_or_errors() {
    let config: AlertConfig = toml::from_str(&format!(
        "[[webhooks]]\nurl = \"http://127.0.0.1:1/hook\"\nauthorization = \"{SECRET}\"\n\
         [alertmanager]\nurl = \"http://127.0.0.1:1\"\nauthorization = \"{SECRET}\"\n"
    ))
    .unwrap();
    let shown = format!("{config:?} {config:#?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    let sinks = Sinks::new(&config).unwrap();
    let shown = format!("{sinks:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");

    // A value that cannot be a header is refused without quoting it.
    let mut bad = config.clone();
    bad.webhooks[0].authorization = Some(SecretString::from("Bearer s3cr3t\nnext-line"));
    let error = format!("{:#}", Sinks::new(&bad).unwrap_err());
    assert!(error.contains("webhooks[1].authorization"), "{error}");
    assert!(!error.contains("s3cr3t"), "{error}");
}

#[test]
fn a_steady_one_percent_failure_fires_page_6h_the_tickets_and_below_objective() {
    let evaluation = evaluator().evaluate(&observations(steady(SELLER_A, 99, 1)), now());
    // 1% failing is a 10× burn: below page-1h's 14.4×, above page-6h's 6×.
    let seller = format!("seller:{SELLER_A}");
    assert_eq!(
        firing(&evaluation),
        expected(&[
            "FapiaoErrorBudgetBurn overall page-6h",
            "FapiaoErrorBudgetBurn overall ticket-1d",
            "FapiaoErrorBudgetBurn overall ticket-3d",
            "FapiaoSuccessBelowObjective overall below-objective",
            &format!("FapiaoErrorBudgetBurn {seller} page-6h"),
            &format!("FapiaoErrorBudgetBurn {seller} ticket-1d"),
            &format!("FapiaoErrorBudgetBurn {seller} ticket-3d"),
            &format!("FapiaoSuccessBelowObjective {seller} below-objective"),
        ])
    );
    let page = evaluation
        .alerts
        .iter()
        .find(|a| a.labels.get("rule").map(String::as_str) == Some("page-6h"))
        .unwrap();
    assert_eq!(page.severity, Severity::Page);
    assert_eq!(
        page.runbook.as_deref(),
        Some("https://github.com/fapiao-rs/fapiao/blob/main/deploy/runbooks/error-budget-burn.md")
    );
    let below = evaluation
        .alerts
        .iter()
        .find(|a| a.name == alert::SUCCESS_BELOW_OBJECTIVE)
        .unwrap();
    assert_eq!(
        below.runbook.as_deref(),
        Some(
            "https://github.com/fapiao-rs/fapiao/blob/main/deploy/runbooks/\
             success-below-objective.md"
        )
    );
    let hour = evaluation.reading(&Scope::Overall, "1h").unwrap();
    assert_eq!(hour.outcomes.total(), 1200);
    assert_eq!(hour.success_rate, Some(Decimal::new(99, 2)));
}

#[test]
fn a_low_burn_or_a_tiny_volume_fires_nothing() {
    // 0.05% failing: half the budget.
    let evaluation = evaluator().evaluate(&observations(steady(SELLER_A, 1999, 1)), now());
    assert_eq!(firing(&evaluation), Vec::<String>::new());

    // One failure among fifty in the last five minutes: 2%, but too few outcomes to mean much.
    let five = Duration::minutes(5);
    let evaluation = evaluator().evaluate(
        &observations(vec![
            count(SELLER_A, "RECORDED", five, 49),
            count(SELLER_A, "TIMEOUT", five, 1),
        ]),
        now(),
    );
    assert_eq!(firing(&evaluation), Vec::<String>::new());
    let hour = evaluation.reading(&Scope::Overall, "1h").unwrap();
    assert_eq!(hour.success_rate, Some(Decimal::new(98, 2)));
}

#[test]
fn each_seller_is_judged_apart_from_all_sellers_together() {
    // A fails 1%, B never: together 0.5%, a 5× burn (tickets, not page-6h's 6×).
    let mut outcomes = steady(SELLER_A, 99, 1);
    outcomes.extend(steady(SELLER_B, 100, 0));
    let evaluation = evaluator().evaluate(&observations(outcomes), now());
    let seller = format!("seller:{SELLER_A}");
    assert_eq!(
        firing(&evaluation),
        expected(&[
            "FapiaoErrorBudgetBurn overall ticket-1d",
            "FapiaoErrorBudgetBurn overall ticket-3d",
            "FapiaoSuccessBelowObjective overall below-objective",
            &format!("FapiaoErrorBudgetBurn {seller} page-6h"),
            &format!("FapiaoErrorBudgetBurn {seller} ticket-1d"),
            &format!("FapiaoErrorBudgetBurn {seller} ticket-3d"),
            &format!("FapiaoSuccessBelowObjective {seller} below-objective"),
        ])
    );
    let b = Scope::Seller(SELLER_B.to_owned());
    assert_eq!(
        evaluation.reading(&b, "3d").unwrap().success_rate,
        Some(Decimal::ONE)
    );
    assert_eq!(
        evaluation
            .reading(&Scope::Overall, "5m")
            .unwrap()
            .success_rate,
        Some(Decimal::new(995, 3))
    );
    // Readings: all sellers first, then each seller, shortest window first.
    let ratios = evaluation.success_ratios();
    assert_eq!(ratios.len(), 3 * 7);
    assert_eq!(ratios[0].0, "overall");
    assert_eq!(ratios[0].1, "5m");
    assert_eq!(ratios[7].0, SELLER_A);
    assert_eq!(
        ratios[20],
        (SELLER_B.to_owned(), "3d".to_owned(), Some(Decimal::ONE))
    );
}

#[test]
fn outcomes_count_by_kind_and_rings_add_up_to_windows() {
    let minutes = Duration::minutes;
    let evaluation = evaluator().evaluate(
        &observations(vec![
            count(SELLER_A, "RECORDED", minutes(5), 10),
            // Taken, no verdict yet: not an outcome.
            count(SELLER_A, "ACCEPTED", minutes(5), 500),
            count(SELLER_A, "REFUSED", minutes(30), 1),
            count(SELLER_A, "REJECTED", minutes(60), 2),
            count(SELLER_A, "BUSY", Duration::hours(6), 3),
            count(SELLER_A, "TIMEOUT", Duration::days(3), 4),
            count(SELLER_A, "SOMETHING_NEW", minutes(5), 7),
            // Longer ago than any window: not counted.
            count(SELLER_A, "RECORDED", Duration::days(30), 1000),
        ]),
        now(),
    );
    let at = |window: &str| {
        evaluation
            .reading(&Scope::Overall, window)
            .unwrap()
            .outcomes
    };
    assert_eq!(
        (
            at("5m").recorded,
            at("5m").rejected,
            at("5m").failed_attempts
        ),
        (10, 0, 0)
    );
    assert_eq!((at("30m").rejected, at("30m").failed_attempts), (1, 0));
    assert_eq!((at("1h").rejected, at("2h").rejected), (3, 3));
    assert_eq!((at("2h").failed_attempts, at("6h").failed_attempts), (0, 3));
    assert_eq!((at("1d").failed_attempts, at("3d").failed_attempts), (3, 7));
    assert_eq!(at("3d").recorded, 10);
    let quiet = evaluator().evaluate(&observations(Vec::new()), now());
    assert_eq!(quiet.readings.len(), 7, "all sellers together, always");
    assert!(quiet.readings.iter().all(|r| r.success_rate.is_none()));
}

#[test]
fn the_reconciler_alerts_fire_with_their_runbooks() {
    let mut observed = observations(Vec::new());
    observed.last_finished_pass = Some(now() - Duration::minutes(16));
    observed.open_critical_drifts = 2;
    let evaluation = evaluator().evaluate(&observed, now());
    assert_eq!(
        firing(&evaluation),
        expected(&["FapiaoOpenCriticalDrifts", "FapiaoReconcilerStale"])
    );
    let runbooks: Vec<&str> = evaluation
        .alerts
        .iter()
        .filter_map(|a| a.runbook.as_deref())
        .collect();
    assert!(
        runbooks[0].ends_with("/reconciler-stale.md"),
        "{runbooks:?}"
    );
    assert!(
        runbooks[1].ends_with("/open-critical-drifts.md"),
        "{runbooks:?}"
    );

    // Fifteen minutes exactly is not yet stale; before any pass, the clock starts at start-up.
    observed.last_finished_pass = Some(now() - Duration::minutes(15));
    observed.open_critical_drifts = 0;
    assert!(evaluator().evaluate(&observed, now()).alerts.is_empty());
    observed.last_finished_pass = None;
    observed.service_started_at = now() - Duration::minutes(10);
    assert!(evaluator().evaluate(&observed, now()).alerts.is_empty());
    observed.service_started_at = now() - Duration::minutes(20);
    assert_eq!(
        firing(&evaluator().evaluate(&observed, now())),
        ["FapiaoReconcilerStale"]
    );
}

#[test]
fn runbook_links_and_window_labels() {
    let base = "https://example.com/runbooks";
    assert_eq!(
        runbook_url(base, alert::RECONCILER_STALE).as_deref(),
        Some("https://example.com/runbooks/reconciler-stale.md")
    );
    assert_eq!(
        runbook_url("https://example.com/runbooks/", alert::OPEN_CRITICAL_DRIFTS).as_deref(),
        Some("https://example.com/runbooks/open-critical-drifts.md")
    );
    assert_eq!(runbook_url("", alert::RECONCILER_STALE), None);
    assert_eq!(runbook_url(base, "SomebodyElsesAlert"), None);
    let config = AlertConfig {
        runbook_base: String::new(),
        ..AlertConfig::default()
    };
    let mut observed = observations(Vec::new());
    observed.open_critical_drifts = 1;
    let evaluation = Evaluator::new(&config).unwrap().evaluate(&observed, now());
    assert_eq!(evaluation.alerts[0].runbook, None);

    assert_eq!(window_label(Duration::minutes(5)), "5m");
    assert_eq!(window_label(Duration::hours(6)), "6h");
    assert_eq!(window_label(Duration::days(3)), "3d");
    assert_eq!(window_label(Duration::seconds(90)), "90s");
}

#[test]
fn a_stored_book_takes_the_configured_repeat_interval() {
    let mut book = AlertBook::new(Duration::hours(1));
    let drifts = alert::open_critical_drifts(1).unwrap();
    book.step(now(), vec![drifts.clone()]);
    let json = serde_json::to_string(&book).unwrap();

    let same = read_book(&json, Duration::hours(1)).unwrap();
    assert_eq!(same, book);
    let mut faster = read_book(&json, Duration::minutes(10)).unwrap();
    assert_eq!(faster.repeat_every(), Duration::minutes(10));
    assert_eq!(faster.active().count(), 1, "the firing alert is kept");
    let sent = faster.step(now() + Duration::minutes(10), vec![drifts]);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, NotificationKind::Repeated);
    assert_eq!(sent[0].starts_at, now());

    assert!(read_book("{\"not\": \"a book\"}", Duration::hours(1)).is_none());
    assert!(read_book("not json", Duration::hours(1)).is_none());
}

// --- sinks, against real HTTP servers ---

/// What a receiver saw: each request's `Authorization` header and JSON body.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A receiver on a free loopback port answering `status` after `failures_first` 503s.
async fn receiver(status: StatusCode, failures_first: usize) -> (String, Seen) {
    #[derive(Clone)]
    struct Shared {
        seen: Seen,
        status: StatusCode,
        failures_first: usize,
    }
    async fn take(
        State(shared): State<Shared>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> StatusCode {
        let authorization = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        let mut seen = shared.seen.lock().unwrap();
        seen.push((authorization, body));
        if seen.len() <= shared.failures_first {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            shared.status
        }
    }
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(take))
        .with_state(Shared {
            seen: seen.clone(),
            status,
            failures_first,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook"), seen)
}

/// A loopback URL nobody listens on.
async fn closed_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/hook?token=in-the-query")
}

fn webhook(url: &str, authorization: Option<&str>) -> WebhookConfig {
    WebhookConfig {
        url: url.to_owned(),
        authorization: authorization.map(SecretString::from),
        timeout: StdDuration::from_secs(2),
    }
}

fn fired_and_resolved() -> Vec<Notification> {
    let drifts = alert::open_critical_drifts(3)
        .unwrap()
        .with_runbook("https://example.com/open-critical-drifts.md");
    let stale = Alert {
        labels: [("team".to_owned(), "invoicing".to_owned())].into(),
        ..alert::stale_reconciler(
            None,
            now() - Duration::hours(1),
            now(),
            Duration::minutes(15),
        )
        .unwrap()
    };
    vec![
        Notification {
            kind: NotificationKind::Fired,
            alert: drifts,
            starts_at: now(),
        },
        Notification {
            kind: NotificationKind::Resolved { ends_at: now() },
            alert: stale,
            starts_at: now() - Duration::minutes(30),
        },
    ]
}

#[tokio::test]
async fn webhooks_get_the_payload_with_authorization_and_a_dead_one_stops_nobody() {
    let (first, first_seen) = receiver(StatusCode::OK, 0).await;
    let (second, second_seen) = receiver(StatusCode::NO_CONTENT, 0).await;
    let dead = closed_url().await;
    let config = AlertConfig {
        webhooks: vec![
            webhook(&first, Some(SECRET)),
            webhook(&dead, Some(SECRET)),
            webhook(&second, None),
        ],
        ..AlertConfig::default()
    };
    let sinks = Sinks::new(&config)
        .unwrap()
        .with_retries(3, StdDuration::from_millis(10));
    let notifications = fired_and_resolved();
    let deliveries = sinks.deliver(&notifications, now()).await;

    let sinks_named: Vec<&str> = deliveries.iter().map(|d| d.sink.as_str()).collect();
    assert_eq!(sinks_named.len(), 4, "{deliveries:?}");
    assert_eq!(sinks_named[0], "log");
    assert!(sinks_named[1].starts_with("webhook 1 (http://127.0.0.1:"));
    assert!(sinks_named[2].starts_with("webhook 2 (http://127.0.0.1:"));
    assert!(
        !sinks_named[2].contains("token"),
        "no path or query in the name"
    );
    assert!(deliveries[0].is_ok() && deliveries[1].is_ok() && deliveries[3].is_ok());
    assert_eq!(deliveries[1].attempts, 1);
    let failed = &deliveries[2];
    assert_eq!(failed.attempts, 3, "retried before giving up");
    let error = failed.error.as_deref().unwrap();
    assert!(!error.contains("s3cr3t"), "{error}");
    assert!(!error.contains("in-the-query"), "{error}");

    let first_seen = first_seen.lock().unwrap().clone();
    assert_eq!(first_seen.len(), 1);
    let (authorization, body) = &first_seen[0];
    assert_eq!(authorization.as_deref(), Some(SECRET));
    assert_eq!(*body, alert::webhook_payload(&notifications));
    assert_eq!(body["version"], "1");
    let fired = &body["notifications"][0];
    assert_eq!(fired["status"], "firing");
    assert_eq!(fired["kind"], "fired");
    assert_eq!(fired["name"], alert::OPEN_CRITICAL_DRIFTS);
    assert_eq!(fired["severity"], "critical");
    assert_eq!(
        fired["runbook"],
        "https://example.com/open-critical-drifts.md"
    );
    assert_eq!(fired["starts_at"], "2026-03-01T12:00:00Z");
    assert_eq!(fired["ends_at"], Value::Null);
    let resolved = &body["notifications"][1];
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["labels"], json!({"team": "invoicing"}));
    assert_eq!(resolved["ends_at"], "2026-03-01T12:00:00Z");
    assert_eq!(resolved["starts_at"], "2026-03-01T11:30:00Z");

    let second_seen = second_seen.lock().unwrap().clone();
    assert_eq!(second_seen.len(), 1);
    assert_eq!(second_seen[0].0, None, "no authorization unless configured");
    assert_eq!(second_seen[0].1, first_seen[0].1);

    // Nothing to say: nothing sent, nothing reported.
    assert!(sinks.deliver(&[], now()).await.is_empty());
    assert_eq!(first_seen.len(), 1);
}

#[tokio::test]
async fn only_failures_another_try_could_fix_are_retried() {
    let (flaky, flaky_seen) = receiver(StatusCode::OK, 2).await;
    let (refusing, refusing_seen) = receiver(StatusCode::BAD_REQUEST, 0).await;
    let config = AlertConfig {
        webhooks: vec![webhook(&flaky, None), webhook(&refusing, Some(SECRET))],
        ..AlertConfig::default()
    };
    let sinks = Sinks::new(&config)
        .unwrap()
        .with_retries(3, StdDuration::from_millis(10));
    let deliveries = sinks.deliver(&fired_and_resolved(), now()).await;
    assert!(deliveries[1].is_ok(), "{deliveries:?}");
    assert_eq!(deliveries[1].attempts, 3, "two 503s, then taken");
    assert_eq!(flaky_seen.lock().unwrap().len(), 3);
    assert_eq!(deliveries[2].attempts, 1, "a 400 is not retried");
    let error = deliveries[2].error.as_deref().unwrap();
    assert!(error.contains("400"), "{error}");
    assert_eq!(refusing_seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn alertmanager_gets_its_payload_under_the_v2_path() {
    // A stand-in that records what arrives at /prefix/api/v2/alerts.
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let app = axum::Router::new().route(
        "/prefix/api/v2/alerts",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let recorded = recorded.clone();
            async move {
                recorded.lock().unwrap().push((None, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = AlertConfig {
        repeat_every: StdDuration::from_secs(600),
        alertmanager: Some(AlertmanagerConfig {
            url: format!("http://{address}/prefix/"),
            authorization: None,
            timeout: StdDuration::from_secs(2),
            generator_url: Some("https://grafana.example.com/d/fapiao".to_owned()),
        }),
        ..AlertConfig::default()
    };
    let sinks = Sinks::new(&config).unwrap();
    let notifications = fired_and_resolved();
    let deliveries = sinks.deliver(&notifications, now()).await;
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries[1].is_ok(), "{deliveries:?}");
    assert!(
        deliveries[1]
            .sink
            .starts_with("alertmanager (http://127.0.0.1:")
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].1,
        alert::alertmanager_payload(
            &notifications,
            now(),
            "https://grafana.example.com/d/fapiao",
            Duration::minutes(30),
        )
    );
    assert_eq!(
        seen[0].1[0]["endsAt"], "2026-03-01T12:30:00Z",
        "three repeats ahead"
    );
}
