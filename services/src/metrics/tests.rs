use super::*;
use chrono::TimeZone;
use std::io::Write as _;
use std::process::{Command, Stdio};

const SELLER: &str = "91310000MA1FP00011";
const QUIET_SELLER: &str = "91110302MA01NP925M";

/// Where the rules, their tests and the runbooks query the exported metrics.
const CONTRACT: [(&str, &str); 8] = [
    (
        "fapiao-rules.yml",
        include_str!("../../../deploy/prometheus/fapiao-rules.yml"),
    ),
    (
        "fapiao-rules.test.yml",
        include_str!("../../../deploy/prometheus/fapiao-rules.test.yml"),
    ),
    (
        "prometheus/README.md",
        include_str!("../../../deploy/prometheus/README.md"),
    ),
    (
        "archive-parked.md",
        include_str!("../../../deploy/runbooks/archive-parked.md"),
    ),
    (
        "error-budget-burn.md",
        include_str!("../../../deploy/runbooks/error-budget-burn.md"),
    ),
    (
        "open-critical-drifts.md",
        include_str!("../../../deploy/runbooks/open-critical-drifts.md"),
    ),
    (
        "reconciler-stale.md",
        include_str!("../../../deploy/runbooks/reconciler-stale.md"),
    ),
    (
        "success-below-objective.md",
        include_str!("../../../deploy/runbooks/success-below-objective.md"),
    ),
];

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 8, minute, 0).unwrap()
}

/// A little of everything. Durations are binary fractions of a second so that sums print exactly.
fn record_some(m: &Metrics) {
    m.register_seller(QUIET_SELLER);
    m.issued(SELLER, 3);
    m.issued(SELLER, 2);
    m.recorded(SELLER);
    m.recorded(SELLER);
    m.rejected(SELLER);
    for outcome in [
        UploadAttempt::Accepted,
        UploadAttempt::Accepted,
        UploadAttempt::Timeout,
        UploadAttempt::Busy,
        UploadAttempt::Refused,
        UploadAttempt::Recorded,
        UploadAttempt::Recorded,
    ] {
        m.upload_attempt(SELLER, outcome);
    }
    m.observe_issue(Duration::from_nanos(3_906_250)); // 1/256 s
    m.observe_issue(Duration::from_micros(62_500)); // 1/16 s
    m.observe_upload(Duration::from_millis(125));
    m.drifts_found("stuck", 2);
    m.drifts_found("content_mismatch", 1);
    m.set_open_drifts(&[
        ("content_mismatch", "critical", 1),
        ("status_mismatch", "warning", 2),
    ]);
    m.set_success_ratios(&[
        ("overall", "5m", Some(Decimal::new(9995, 4))),
        ("overall", "1h", Some(Decimal::new(99_875, 5))),
        (SELLER, "1h", Some(Decimal::ONE)),
        (QUIET_SELLER, "5m", None),
    ]);
    m.pass_finished(true, Duration::from_secs(12), at(0));
    m.pass_finished(false, Duration::from_secs(3), at(5));
    m.set_archive_backlog("pending", 40);
    m.set_archive_backlog("parked", 1);
}

/// The exposition's sample lines, as `(series, value)` with the series exactly as printed.
fn samples(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.rsplit_once(' '))
        .collect()
}

/// The value of `series` (name and labels exactly as printed), if exported.
fn value<'t>(text: &'t str, series: &str) -> Option<&'t str> {
    samples(text)
        .into_iter()
        .find(|(s, _)| *s == series)
        .map(|(_, v)| v)
}

#[track_caller]
fn assert_series(text: &str, expected: &[(&str, &str)]) {
    for (series, want) in expected {
        assert_eq!(
            value(text, series),
            Some(*want),
            "series {series} in:\n{text}"
        );
    }
}

struct Served {
    address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Served {
    async fn start(metrics: &Metrics) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, metrics.clone(), async {
            let _ = stopped.await;
        }));
        Served {
            address,
            stop,
            task,
        }
    }

    /// `GET /metrics` over HTTP: the status, the content type and the body.
    async fn scrape(&self, accept: Option<&str>) -> (StatusCode, String, String) {
        self.get("/metrics", accept).await
    }

    async fn scrape_path(&self, path: &str) -> (StatusCode, String, String) {
        self.get(path, None).await
    }

    async fn get(&self, path: &str, accept: Option<&str>) -> (StatusCode, String, String) {
        let mut request = reqwest::Client::new().get(format!("http://{}{path}", self.address));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, content_type, response.text().await.unwrap())
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// What Prometheus 2.42 sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
     application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[tokio::test]
async fn every_metric_is_scraped_over_http_under_its_contract_name() {
    let metrics = Metrics::new();
    record_some(&metrics);
    let served = Served::start(&metrics).await;
    let (status, content_type, text) = served.scrape(Some(PROMETHEUS_ACCEPT)).await;
    served.stop().await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, OPENMETRICS_CONTENT_TYPE);
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    for (name, kind) in [
        ("fapiao_invoices_issued", "counter"),
        ("fapiao_invoices_recorded", "counter"),
        ("fapiao_invoices_rejected", "counter"),
        ("fapiao_upload_attempts", "counter"),
        ("fapiao_issue_duration_seconds", "histogram"),
        ("fapiao_upload_duration_seconds", "histogram"),
        ("fapiao_drifts_found", "counter"),
        ("fapiao_drifts_open", "gauge"),
        ("fapiao_success_ratio", "gauge"),
        ("fapiao_reconcile_last_success_timestamp_seconds", "gauge"),
        ("fapiao_reconcile_pass_duration_seconds", "histogram"),
        ("fapiao_reconcile_passes", "counter"),
        ("fapiao_archive_backlog", "gauge"),
    ] {
        let line = format!("# TYPE {name} {kind}");
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }

    let seller = |name: &str, seller: &str| format!("{name}{{seller=\"{seller}\"}}");
    let attempts = |outcome: &str| {
        format!("fapiao_upload_attempts_total{{seller=\"{SELLER}\",outcome=\"{outcome}\"}}")
    };
    let ts = at(0).timestamp().to_string();
    assert_series(
        &text,
        &[
            (&seller("fapiao_invoices_issued_total", SELLER), "5"),
            (&seller("fapiao_invoices_recorded_total", SELLER), "2"),
            (&seller("fapiao_invoices_rejected_total", SELLER), "1"),
            (&attempts("accepted"), "2"),
            (&attempts("refused"), "1"),
            (&attempts("recorded"), "2"),
            (&attempts("rejected"), "0"),
            (&attempts("failed"), "2"),
            // A registered seller is exported at zero before anything happens to it.
            (&seller("fapiao_invoices_issued_total", QUIET_SELLER), "0"),
            (&seller("fapiao_invoices_recorded_total", QUIET_SELLER), "0"),
            (&seller("fapiao_invoices_rejected_total", QUIET_SELLER), "0"),
            (
                &format!(
                    "fapiao_upload_attempts_total{{seller=\"{QUIET_SELLER}\",outcome=\"failed\"}}"
                ),
                "0",
            ),
            ("fapiao_issue_duration_seconds_count", "2"),
            ("fapiao_issue_duration_seconds_sum", "0.06640625"),
            ("fapiao_issue_duration_seconds_bucket{le=\"0.0025\"}", "0"),
            ("fapiao_issue_duration_seconds_bucket{le=\"0.005\"}", "1"),
            ("fapiao_issue_duration_seconds_bucket{le=\"0.05\"}", "1"),
            ("fapiao_issue_duration_seconds_bucket{le=\"0.1\"}", "2"),
            ("fapiao_issue_duration_seconds_bucket{le=\"+Inf\"}", "2"),
            ("fapiao_upload_duration_seconds_count", "1"),
            ("fapiao_upload_duration_seconds_sum", "0.125"),
            ("fapiao_upload_duration_seconds_bucket{le=\"0.1\"}", "0"),
            ("fapiao_upload_duration_seconds_bucket{le=\"0.25\"}", "1"),
            ("fapiao_drifts_found_total{class=\"stuck\"}", "2"),
            ("fapiao_drifts_found_total{class=\"content_mismatch\"}", "1"),
            (
                "fapiao_drifts_found_total{class=\"missing_on_platform\"}",
                "0",
            ),
            ("fapiao_drifts_found_total{class=\"status_mismatch\"}", "0"),
            ("fapiao_drifts_found_total{class=\"remote_only\"}", "0"),
            (
                "fapiao_drifts_open{class=\"content_mismatch\",urgency=\"critical\"}",
                "1",
            ),
            (
                "fapiao_drifts_open{class=\"status_mismatch\",urgency=\"warning\"}",
                "2",
            ),
            (
                "fapiao_success_ratio{scope=\"overall\",window=\"5m\"}",
                "0.9995",
            ),
            (
                "fapiao_success_ratio{scope=\"overall\",window=\"1h\"}",
                "0.99875",
            ),
            (
                &format!("fapiao_success_ratio{{scope=\"{SELLER}\",window=\"1h\"}}"),
                "1.0",
            ),
            ("fapiao_reconcile_last_success_timestamp_seconds", &ts),
            ("fapiao_reconcile_pass_duration_seconds_count", "2"),
            ("fapiao_reconcile_pass_duration_seconds_sum", "15.0"),
            (
                "fapiao_reconcile_pass_duration_seconds_bucket{le=\"5.0\"}",
                "1",
            ),
            (
                "fapiao_reconcile_pass_duration_seconds_bucket{le=\"30.0\"}",
                "2",
            ),
            ("fapiao_reconcile_passes_total{outcome=\"succeeded\"}", "1"),
            ("fapiao_reconcile_passes_total{outcome=\"failed\"}", "1"),
            ("fapiao_archive_backlog{kind=\"pending\"}", "40"),
            ("fapiao_archive_backlog{kind=\"parked\"}", "1"),
        ],
    );
    // A window without outcomes has no ratio at all.
    assert!(
        !text.contains(&format!("scope=\"{QUIET_SELLER}\"")),
        "{text}"
    );
    // The HTTP body is what `encode` gives.
    assert_eq!(text, metrics.encode());
}

#[tokio::test]
async fn a_new_registry_starts_at_zero_and_shares_nothing() {
    let busy = Metrics::new();
    record_some(&busy);
    let served = Served::start(&Metrics::new()).await;
    let (_, _, text) = served.scrape(Some(PROMETHEUS_ACCEPT)).await;
    served.stop().await;

    assert_series(
        &text,
        &[
            ("fapiao_reconcile_last_success_timestamp_seconds", "0"),
            ("fapiao_issue_duration_seconds_count", "0"),
            ("fapiao_upload_duration_seconds_count", "0"),
            ("fapiao_reconcile_pass_duration_seconds_count", "0"),
            ("fapiao_reconcile_passes_total{outcome=\"succeeded\"}", "0"),
            ("fapiao_reconcile_passes_total{outcome=\"failed\"}", "0"),
            ("fapiao_drifts_found_total{class=\"stuck\"}", "0"),
            ("fapiao_drifts_found_total{class=\"content_mismatch\"}", "0"),
        ],
    );
    for absent in [
        "fapiao_invoices_issued",
        "fapiao_upload_attempts",
        "fapiao_drifts_open",
        "fapiao_success_ratio",
        "fapiao_archive_backlog",
        SELLER,
    ] {
        assert!(
            !text.contains(absent),
            "{absent} in a fresh registry:\n{text}"
        );
    }
    // And the busy one kept its own counts.
    assert_series(
        &busy.encode(),
        &[(
            &format!("fapiao_invoices_issued_total{{seller=\"{SELLER}\"}}"),
            "5",
        )],
    );
}

#[tokio::test]
async fn open_drifts_are_replaced_as_a_whole_and_a_closed_label_set_reads_zero() {
    let m = Metrics::new();
    m.set_open_drifts(&[
        ("content_mismatch", "critical", 1),
        ("stuck", "warning", 4),
        ("stuck", "warning", 1),
    ]);
    let text = m.encode();
    assert_series(
        &text,
        &[
            (
                "fapiao_drifts_open{class=\"content_mismatch\",urgency=\"critical\"}",
                "1",
            ),
            (
                "fapiao_drifts_open{class=\"stuck\",urgency=\"warning\"}",
                "5",
            ),
        ],
    );

    let owned = vec![("status_mismatch".to_owned(), "none".to_owned(), 3)];
    m.set_open_drifts(&owned);
    let text = m.encode();
    assert_series(
        &text,
        &[
            (
                "fapiao_drifts_open{class=\"content_mismatch\",urgency=\"critical\"}",
                "0",
            ),
            (
                "fapiao_drifts_open{class=\"stuck\",urgency=\"warning\"}",
                "0",
            ),
            (
                "fapiao_drifts_open{class=\"status_mismatch\",urgency=\"none\"}",
                "3",
            ),
        ],
    );

    m.set_open_drifts::<&str, &str>(&[]);
    let text = m.encode();
    let open: Vec<_> = samples(&text)
        .into_iter()
        .filter(|(s, _)| s.starts_with("fapiao_drifts_open"))
        .collect();
    assert_eq!(open.len(), 3, "{open:?}");
    assert!(open.iter().all(|(_, v)| *v == "0"), "{open:?}");
}

#[tokio::test]
async fn success_ratios_are_replaced_as_a_whole_and_a_missing_ratio_disappears() {
    let m = Metrics::new();
    m.set_success_ratios(&[
        ("overall", "5m", Some(Decimal::new(999, 3))),
        ("overall", "1h", Some(Decimal::new(95, 2))),
        (SELLER, "5m", Some(Decimal::ZERO)),
    ]);
    assert_series(
        &m.encode(),
        &[
            (
                "fapiao_success_ratio{scope=\"overall\",window=\"5m\"}",
                "0.999",
            ),
            (
                "fapiao_success_ratio{scope=\"overall\",window=\"1h\"}",
                "0.95",
            ),
            (
                &format!("fapiao_success_ratio{{scope=\"{SELLER}\",window=\"5m\"}}"),
                "0.0",
            ),
        ],
    );

    m.set_success_ratios(&[
        ("overall".to_owned(), "5m".to_owned(), Some(Decimal::ONE)),
        ("overall".to_owned(), "1h".to_owned(), None),
    ]);
    let text = m.encode();
    let ratios: Vec<_> = samples(&text)
        .into_iter()
        .filter(|(s, _)| s.starts_with("fapiao_success_ratio"))
        .collect();
    assert_eq!(
        ratios,
        vec![(
            "fapiao_success_ratio{scope=\"overall\",window=\"5m\"}",
            "1.0"
        )]
    );

    m.set_success_ratios::<&str, &str>(&[]);
    assert!(!m.encode().contains("fapiao_success_ratio"));
}

#[tokio::test]
async fn the_last_success_only_moves_forward_and_failed_passes_leave_it() {
    let m = Metrics::new();
    let ts = |text: &str| {
        value(text, "fapiao_reconcile_last_success_timestamp_seconds").map(str::to_owned)
    };
    assert_eq!(ts(&m.encode()).as_deref(), Some("0"));
    m.pass_finished(false, Duration::from_secs(1), at(1));
    assert_eq!(ts(&m.encode()).as_deref(), Some("0"));
    m.pass_finished(true, Duration::from_secs(1), at(10));
    let ten = at(10).timestamp().to_string();
    assert_eq!(ts(&m.encode()), Some(ten.clone()));
    m.pass_finished(true, Duration::from_secs(1), at(5));
    assert_eq!(ts(&m.encode()), Some(ten));
    assert_series(
        &m.encode(),
        &[
            ("fapiao_reconcile_passes_total{outcome=\"succeeded\"}", "2"),
            ("fapiao_reconcile_passes_total{outcome=\"failed\"}", "1"),
        ],
    );
}

#[tokio::test]
async fn upload_attempts_are_labelled_as_the_rules_expect() {
    for (code, label) in [
        ("ACCEPTED", "accepted"),
        ("REFUSED", "refused"),
        ("RECORDED", "recorded"),
        ("REJECTED", "rejected"),
        ("TIMEOUT", "failed"),
        ("BUSY", "failed"),
    ] {
        let attempt = UploadAttempt::from_code(code).unwrap();
        assert_eq!(attempt.label(), label, "{code}");
        assert_eq!(ATTEMPT_OUTCOMES.get(attempt.slot()), Some(&label), "{code}");
    }
    assert_eq!(UploadAttempt::from_code("accepted"), None);
    assert_eq!(UploadAttempt::from_code(""), None);
}

/// Every series the rules, their tests and the runbooks select exists, with the label values they
/// match on, once each kind of event has happened.
#[tokio::test]
async fn every_series_the_rules_and_runbooks_query_is_exported() {
    let m = Metrics::new();
    record_some(&m);
    let text = m.encode();
    let exported = samples(&text);
    let mut checked = 0;
    for (file, contract) in CONTRACT {
        let mut rest = contract;
        while let Some(start) = rest.find("fapiao_") {
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let mut matchers = Vec::new();
            if let Some(selector) = tail[end..].strip_prefix('{') {
                let close = selector.find('}').unwrap();
                for matcher in selector[..close].split(',') {
                    let matcher = matcher.trim();
                    if let Some((label, value)) = matcher.split_once("=\"")
                        && !label.ends_with('!')
                        && !label.ends_with('=')
                        && label != "instance"
                    {
                        matchers.push(format!("{label}=\"{value}"));
                    }
                }
            }
            rest = &tail[end..];
            let family = text
                .lines()
                .any(|l| l.starts_with(&format!("# TYPE {name} ")));
            let found = exported.iter().any(|(series, _)| {
                let (series_name, labels) = series.split_once('{').unwrap_or((series, "}"));
                let labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                series_name == name && matchers.iter().all(|m| labels.contains(&m.as_str()))
            });
            assert!(
                found || (family && matchers.is_empty()),
                "{file} queries {name}{{{}}}, not exported:\n{text}",
                matchers.join(",")
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} references found");
}

/// The path of promtool: `FAPIAO_TEST_PROMTOOL`, else `promtool` on `PATH`.
fn promtool() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("FAPIAO_TEST_PROMTOOL") {
        return path.into();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("promtool"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "promtool not found (set FAPIAO_TEST_PROMTOOL or put it on PATH): run the tests \
                 through scripts/test, which installs it (Debian package `prometheus`)"
            )
        })
}

/// `promtool check metrics` on `text`: whether it passed, and what it said.
fn promtool_check(text: &str) -> (bool, String) {
    let path = promtool();
    let mut child = Command::new(&path)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run promtool at {}: {error}; run the tests through scripts/test, which \
                 installs it (Debian package `prometheus`)",
                path.display()
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

#[tokio::test]
async fn a_scrape_that_does_not_ask_for_openmetrics_gets_text_that_promtool_accepts() {
    let metrics = Metrics::new();
    record_some(&metrics);
    // Label values that need escaping must not break the exposition.
    metrics.issued("a \"quoted\"\\seller\nwith a newline", 1);
    let served = Served::start(&metrics).await;
    let (status, content_type, text) = served.scrape(None).await;
    let (_, plain_type, plain) = served.scrape(Some("text/plain")).await;
    let (_, refused_type, _) = served
        .scrape(Some("application/openmetrics-text;q=0, text/plain;q=0.5"))
        .await;
    let (missing, _, _) = served.scrape_path("/other").await;
    served.stop().await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, TEXT_CONTENT_TYPE);
    assert_eq!(plain_type, TEXT_CONTENT_TYPE);
    assert_eq!(refused_type, TEXT_CONTENT_TYPE);
    assert_eq!(missing, StatusCode::NOT_FOUND);
    assert_eq!(text, plain);
    assert!(!text.contains("# EOF"), "{text}");
    assert!(
        text.lines()
            .any(|l| l == "# TYPE fapiao_invoices_issued_total counter"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("# HELP fapiao_invoices_issued_total ")),
        "{text}"
    );
    // The samples are the OpenMetrics ones.
    assert_eq!(samples(&text), samples(&metrics.encode()));
    assert!(
        text.contains(
            "fapiao_invoices_issued_total{seller=\"a \\\"quoted\\\"\\\\seller\\nwith a newline\"} 1"
        ),
        "{text}"
    );

    let (passed, said) = promtool_check(&text);
    assert!(
        passed,
        "promtool check metrics failed:\n{said}\non:\n{text}"
    );
}

#[tokio::test]
async fn the_endpoint_stops_when_asked() {
    let served = Served::start(&Metrics::new()).await;
    let address = served.address;
    served.stop().await;
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}

#[test]
fn the_config_defaults_to_loopback_and_can_be_switched_off() {
    let default = MetricsConfig::default();
    assert_eq!(
        default.address(),
        Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
    );
    let parse = |text: &str| crate::config::Config::from_toml_str(text).map(|c| c.metrics);
    assert_eq!(parse("").unwrap(), default);
    assert_eq!(
        parse("[metrics]\nenabled = false\n").unwrap().address(),
        None
    );
    assert_eq!(
        parse("[metrics]\nlisten = \"0.0.0.0:0\"\n")
            .unwrap()
            .address(),
        Some(SocketAddr::from(([0, 0, 0, 0], 0)))
    );
    assert!(parse("[metrics]\nlisten = \"off\"\n").is_err());
    assert!(parse("[metrics]\nport = 9464\n").is_err());
}

#[test]
fn openmetrics_is_chosen_only_when_asked_for() {
    let accepts = |values: &[&str]| {
        let values: Vec<HeaderValue> = values
            .iter()
            .map(|v| HeaderValue::from_str(v).unwrap())
            .collect();
        wants_openmetrics(values.iter())
    };
    assert!(accepts(&[PROMETHEUS_ACCEPT]));
    assert!(accepts(&["Application/OpenMetrics-Text"]));
    assert!(accepts(&[
        "text/plain",
        "application/openmetrics-text; version=1.0.0"
    ]));
    assert!(!accepts(&[]));
    assert!(!accepts(&["*/*"]));
    assert!(!accepts(&["text/plain;version=0.0.4"]));
    assert!(!accepts(&["application/openmetrics-text; q=0.0"]));
}
