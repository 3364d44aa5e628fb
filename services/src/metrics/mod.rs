//! The service's Prometheus metrics and the `/metrics` endpoint that exposes them.
//!
//! The names and labels exported here are a contract: the recording and alerting rules in
//! `deploy/prometheus/fapiao-rules.yml` and the runbooks query them, so renaming a metric, a label
//! or a label value silently breaks alerting. The tests check every series the rules select
//! against what this module exports.
//!
//! [`Metrics`] is created once at start-up and cloned into every task that records; each
//! instance owns its own registry, so tests and several servers in one process never share
//! counters. Recording is a few atomic operations: the series of a seller are looked up by `&str`
//! in a map of ready handles, so the per-invoice calls on the hot path neither format nor allocate
//! once a seller has been seen.
//!
//! The endpoint answers in the OpenMetrics text format when the scraper asks for it (Prometheus
//! does by default) and in the Prometheus text format 0.0.4 otherwise (`curl`, `promtool check
//! metrics`). The two differ in how counters are named in `# HELP`/`# TYPE` and in the final
//! `# EOF`; the samples are the same.
//!
//! Floats are only ever converted to, never computed with: values arrive as integers, durations
//! or exact `Decimal`s and are turned into `f64` at the boundary.

mod edge;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
pub use edge::EdgeMetrics;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

#[cfg(test)]
mod tests;

/// The `[metrics]` section of the configuration: whether and where `/metrics` is served.
///
/// The endpoint is on by default and bound to the loopback interface, so a laptop run exposes
/// nothing to the network; a deployment that is scraped from elsewhere sets `listen` to a
/// reachable address. It has its own listener, apart from gRPC, because scrapers speak plain
/// HTTP/1 and must not need the gRPC bearer tokens.
///
/// ```toml
/// [metrics]
/// enabled = true            # false: no endpoint at all
/// listen = "0.0.0.0:9464"   # port 0 picks a free port
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether to serve `/metrics`. Off, nothing listens; the metrics are still recorded (it
    /// costs next to nothing) so that turning the endpoint on needs no other change.
    pub enabled: bool,
    /// Address of the HTTP listener serving `GET /metrics`. Port 0 picks a free port.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    /// Enabled on `127.0.0.1:9464`, the port commonly used by OpenTelemetry's Prometheus
    /// exporter, so it is unlikely to collide with anything else fapiao runs next to.
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

impl MetricsConfig {
    /// The address to listen on, or `None` when the endpoint is disabled. Callers branch on this
    /// one value instead of checking two fields.
    pub fn address(&self) -> Option<SocketAddr> {
        self.enabled.then_some(self.listen)
    }
}

/// Content type of the OpenMetrics text format, served to scrapers that ask for it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Content type of the Prometheus text format 0.0.4, served to everyone else.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How one upload attempt ended, as the upload worker records it in the attempts table.
///
/// The exported `outcome` label follows the Prometheus rules, not the stored codes: attempts that
/// ended before the platform gave a verdict (a timeout, "busy", a transport error) are all
/// `failed`, because that is what the error ratio counts (`outcome="failed"`). The stored codes
/// keep the finer distinction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UploadAttempt {
    /// The platform took the upload and gave a receipt to poll (`ACCEPTED`).
    Accepted,
    /// The platform refused the upload itself; the invoice is rejected (`REFUSED`).
    Refused,
    /// The platform's answer recorded the invoice (`RECORDED`).
    Recorded,
    /// The platform's answer rejected the invoice (`REJECTED`).
    Rejected,
    /// No answer in time: the outcome is unknown and the invoice will be queried (`TIMEOUT`).
    Timeout,
    /// The platform was busy or the call failed before a verdict; it is retried (`BUSY`).
    Busy,
}

/// Every `outcome` label value of `fapiao_upload_attempts_total`, in the order of
/// [`UploadAttempt::slot`].
const ATTEMPT_OUTCOMES: [&str; 5] = ["accepted", "refused", "recorded", "rejected", "failed"];

impl UploadAttempt {
    /// The attempt recorded under a stored outcome code (`ACCEPTED`, `BUSY`, `TIMEOUT`,
    /// `REFUSED`, `RECORDED`, `REJECTED`), so the worker can count exactly the rows it wrote;
    /// `None` for any other text.
    pub fn from_code(code: &str) -> Option<UploadAttempt> {
        Some(match code {
            "ACCEPTED" => Self::Accepted,
            "REFUSED" => Self::Refused,
            "RECORDED" => Self::Recorded,
            "REJECTED" => Self::Rejected,
            "TIMEOUT" => Self::Timeout,
            "BUSY" => Self::Busy,
            _ => return None,
        })
    }

    /// The exported `outcome` label value; [`Timeout`](Self::Timeout) and
    /// [`Busy`](Self::Busy) are both `failed`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Refused => "refused",
            Self::Recorded => "recorded",
            Self::Rejected => "rejected",
            Self::Timeout | Self::Busy => "failed",
        }
    }

    /// Position of the label in [`ATTEMPT_OUTCOMES`].
    fn slot(self) -> usize {
        match self {
            Self::Accepted => 0,
            Self::Refused => 1,
            Self::Recorded => 2,
            Self::Rejected => 3,
            Self::Timeout | Self::Busy => 4,
        }
    }
}

/// Buckets of the issue latency: a single invoice commits in a few milliseconds, a busy batch in
/// tens to hundreds, and a stalled database in seconds.
const ISSUE_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of one platform upload call: tens of milliseconds when healthy, up to the client
/// timeout (5 s by default) and beyond when it is configured longer.
const UPLOAD_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of a reconciliation pass: seconds for a quiet day, minutes for a busy window.
const PASS_BUCKETS: [f64; 11] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// The `outcome` label values of `fapiao_reconcile_passes_total`.
const PASS_SUCCEEDED: &str = "succeeded";
const PASS_FAILED: &str = "failed";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SellerLabels {
    seller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    seller: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// The service's metrics. Cheap to clone (one `Arc`), safe to share between tasks.
///
/// Each [`Metrics::new`] has its own registry and starts at zero: nothing is global, so tests and
/// several servers in one process never see each other's counts.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    issued: Family<SellerLabels, Counter>,
    recorded: Family<SellerLabels, Counter>,
    rejected: Family<SellerLabels, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    issue_duration: Histogram,
    upload_duration: Histogram,
    drifts_found: Family<ClassLabels, Counter>,
    drifts_open: GaugeSet<u64>,
    success_ratio: GaugeSet<f64>,
    last_success: Gauge,
    pass_duration: Histogram,
    passes: Family<OutcomeLabels, Counter>,
    archive_backlog: Family<KindLabels, Gauge>,
    edge: EdgeMetrics,
    /// Ready handles of each seller's series, looked up by `&str` so recording does not allocate.
    sellers: RwLock<HashMap<Box<str>, SellerSeries>>,
}

/// Handles of one seller's counters; they share their values with the families they came from.
#[derive(Debug)]
struct SellerSeries {
    issued: Counter,
    recorded: Counter,
    rejected: Counter,
    attempts: [Counter; ATTEMPT_OUTCOMES.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered. Series whose label values are known in
    /// advance (drift classes, pass outcomes) start at zero, so Prometheus sees their first
    /// increase; per-seller series start at zero once [`Metrics::register_seller`] is called.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let issued = Family::<SellerLabels, Counter>::default();
        registry.register(
            "fapiao_invoices_issued",
            "Invoices committed by the issuing writer, by seller",
            issued.clone(),
        );
        let recorded = Family::<SellerLabels, Counter>::default();
        registry.register(
            "fapiao_invoices_recorded",
            "Invoices the tax platform recorded, by seller",
            recorded.clone(),
        );
        let rejected = Family::<SellerLabels, Counter>::default();
        registry.register(
            "fapiao_invoices_rejected",
            "Invoices the tax platform rejected or refused, by seller",
            rejected.clone(),
        );
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "fapiao_upload_attempts",
            "Upload attempts by seller and outcome (accepted, refused, recorded, rejected; \
             failed: ended before the platform gave a verdict)",
            attempts.clone(),
        );
        let issue_duration = Histogram::new(ISSUE_BUCKETS);
        registry.register(
            "fapiao_issue_duration_seconds",
            "Time from an issue request being accepted to its invoice being committed",
            issue_duration.clone(),
        );
        let upload_duration = Histogram::new(UPLOAD_BUCKETS);
        registry.register(
            "fapiao_upload_duration_seconds",
            "Duration of one upload call to the tax platform, whatever its result",
            upload_duration.clone(),
        );
        let drifts_found = Family::<ClassLabels, Counter>::default();
        for class in DRIFT_CLASSES {
            drop(drifts_found.get_or_create(&ClassLabels {
                class: class.as_str().to_owned(),
            }));
        }
        registry.register(
            "fapiao_drifts_found",
            "Drifts between the store and the tax platform found by reconciliation passes, by class",
            drifts_found.clone(),
        );
        let drifts_open = GaugeSet::new(["class", "urgency"]);
        registry.register(
            "fapiao_drifts_open",
            "Open drifts after the last reconciliation pass, by class and urgency",
            drifts_open.clone(),
        );
        let success_ratio = GaugeSet::new(["scope", "window"]);
        registry.register(
            "fapiao_success_ratio",
            "Share of issuance outcomes that succeeded, as the service evaluates its objective, \
             by scope (overall or a seller) and window",
            success_ratio.clone(),
        );
        let last_success = Gauge::default();
        registry.register(
            "fapiao_reconcile_last_success_timestamp_seconds",
            "Unix time of the last successful reconciliation pass; 0 when none since start",
            last_success.clone(),
        );
        let pass_duration = Histogram::new(PASS_BUCKETS);
        registry.register(
            "fapiao_reconcile_pass_duration_seconds",
            "Duration of one reconciliation pass",
            pass_duration.clone(),
        );
        let passes = Family::<OutcomeLabels, Counter>::default();
        for outcome in [PASS_SUCCEEDED, PASS_FAILED] {
            drop(passes.get_or_create(&OutcomeLabels { outcome }));
        }
        registry.register(
            "fapiao_reconcile_passes",
            "Reconciliation passes by outcome (succeeded, failed)",
            passes.clone(),
        );
        let archive_backlog = Family::<KindLabels, Gauge>::default();
        registry.register(
            "fapiao_archive_backlog",
            "Invoices whose layout files are not archived yet, by kind (pending: waiting for \
             an attempt; parked: needs an operator)",
            archive_backlog.clone(),
        );
        let edge = EdgeMetrics::register(&mut registry);
        Metrics {
            inner: Arc::new(Inner {
                registry,
                issued,
                recorded,
                rejected,
                attempts,
                issue_duration,
                upload_duration,
                drifts_found,
                drifts_open,
                success_ratio,
                last_success,
                pass_duration,
                passes,
                archive_backlog,
                edge,
                sellers: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// What the gRPC edge counts.
    pub fn edge(&self) -> &EdgeMetrics {
        &self.inner.edge
    }

    /// Create a seller's series at zero: its issued, recorded and rejected counters and an upload
    /// attempt counter per outcome. Call it for every configured seller at start-up, so the
    /// first invoice, rejection or failed attempt after a restart shows up as an increase in
    /// `rate()` instead of as the series' first sample. Recording for a seller does the same
    /// on first use.
    pub fn register_seller(&self, seller: &str) {
        self.with_seller(seller, |_| ());
    }

    /// `count` invoices of `seller` were committed by the issuing writer (new invoices only, not
    /// replays of an earlier request).
    pub fn issued(&self, seller: &str, count: u64) {
        self.with_seller(seller, |s| {
            s.issued.inc_by(count);
        });
    }

    /// The tax platform recorded one invoice of `seller`: a success for the objective.
    pub fn recorded(&self, seller: &str) {
        self.with_seller(seller, |s| {
            s.recorded.inc();
        });
    }

    /// The tax platform rejected one invoice of `seller`, in its upload result or by refusing the
    /// upload: a final failure for the objective.
    pub fn rejected(&self, seller: &str) {
        self.with_seller(seller, |s| {
            s.rejected.inc();
        });
    }

    /// One upload attempt for an invoice of `seller` ended with `outcome`. Count the attempts
    /// the worker stores (one per invoice per attempt), so these series agree with the service's
    /// own objective evaluation.
    pub fn upload_attempt(&self, seller: &str, outcome: UploadAttempt) {
        self.with_seller(seller, |s| {
            if let Some(counter) = s.attempts.get(outcome.slot()) {
                counter.inc();
            }
        });
    }

    /// One invoice took `took` from its issue request being accepted to its commit.
    pub fn observe_issue(&self, took: Duration) {
        self.inner.issue_duration.observe(took.as_secs_f64());
    }

    /// One upload call to the tax platform took `took`, whatever it answered: slow calls come
    /// before timeouts, so this is the early sign of platform trouble.
    pub fn observe_upload(&self, took: Duration) {
        self.inner.upload_duration.observe(took.as_secs_f64());
    }

    /// A reconciliation pass found `count` drifts of `class` (`missing_on_platform`, `stuck`,
    /// `status_mismatch`, `remote_only`, `content_mismatch`).
    pub fn drifts_found(&self, class: &str, count: u64) {
        self.inner
            .drifts_found
            .get_or_create(&ClassLabels {
                class: class.to_owned(),
            })
            .inc_by(count);
    }

    /// Replace the open drifts with `open`, one `(class, urgency, count)` per label set (urgency
    /// `critical`, `warning` or `none`; repeated label sets add up).
    ///
    /// A label set reported earlier and missing from `open` reads 0 rather than disappearing:
    /// "no open drift of this kind" is a true, known value, and a series that stays put keeps
    /// graphs and `max by (class)` continuous. The whole set changes at once, so a scrape never
    /// sees half of an update.
    pub fn set_open_drifts<C: AsRef<str>, U: AsRef<str>>(&self, open: &[(C, U, u64)]) {
        self.inner.drifts_open.update(|values| {
            for value in values.values_mut() {
                *value = 0;
            }
            for (class, urgency, count) in open {
                let value = values
                    .entry((class.as_ref().to_owned(), urgency.as_ref().to_owned()))
                    .or_insert(0);
                *value = value.saturating_add(*count);
            }
        });
    }

    /// Replace the success ratios with `ratios`, one `(scope, window, ratio)` each: scope
    /// `overall` or a seller's taxpayer id, window such as `5m` or `1h`, and the ratio of
    /// recorded invoices to all outcomes as the service computed it.
    ///
    /// `None` (no outcome in the window), and any label set missing from `ratios`, removes the
    /// series: a ratio of nothing is undefined, and exporting 0 or 1 for it would fire or
    /// silence alerts for no reason. The whole set changes at once.
    pub fn set_success_ratios<S: AsRef<str>, W: AsRef<str>>(
        &self,
        ratios: &[(S, W, Option<Decimal>)],
    ) {
        let fresh: BTreeMap<(String, String), f64> = ratios
            .iter()
            .filter_map(|(scope, window, ratio)| {
                let value = ratio.as_ref()?.to_f64()?;
                Some((
                    (scope.as_ref().to_owned(), window.as_ref().to_owned()),
                    value,
                ))
            })
            .collect();
        self.inner.success_ratio.update(|values| *values = fresh);
    }

    /// A reconciliation pass ended after `took`: counted as succeeded or failed, and, when it
    /// `succeeded`, `finished_at` becomes the last-success timestamp the staleness alert reads.
    /// The timestamp never moves backwards, so a late report of an older pass cannot hide a
    /// newer one.
    pub fn pass_finished(&self, succeeded: bool, took: Duration, finished_at: DateTime<Utc>) {
        let outcome = if succeeded {
            PASS_SUCCEEDED
        } else {
            PASS_FAILED
        };
        self.inner
            .passes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.inner.pass_duration.observe(took.as_secs_f64());
        if succeeded {
            self.inner
                .last_success
                .inner()
                .fetch_max(finished_at.timestamp(), Ordering::Relaxed);
        }
    }

    /// `count` invoices wait for their layout files, of `kind`: `pending` (waiting for a first or
    /// another attempt) or `parked` (a conflicting object needs an operator; the rules alert on
    /// any). Measured from the store, so every replica reports the same store-wide value.
    pub fn set_archive_backlog(&self, kind: &str, count: u64) {
        self.inner
            .archive_backlog
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The exposition in the OpenMetrics text format, ending with `# EOF`. Empty, with an error
    /// logged, in the impossible case that encoding fails (it only writes to a `String`).
    pub fn encode(&self) -> String {
        match self.try_encode() {
            Ok(text) => text,
            Err(error) => {
                tracing::error!(%error, "encoding the metrics failed");
                String::new()
            }
        }
    }

    fn try_encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)?;
        Ok(text)
    }

    /// A router serving `GET /metrics` (and `HEAD`) from these metrics, in the format the
    /// scraper's `Accept` header asks for. Other paths answer 404 and other methods 405.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(scrape))
            .with_state(self.clone())
    }

    /// Run `record` on the handles of `seller`'s series, creating them on first use.
    fn with_seller(&self, seller: &str, record: impl FnOnce(&SellerSeries)) {
        {
            let sellers = self
                .inner
                .sellers
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = sellers.get(seller) {
                record(series);
                return;
            }
        }
        let mut sellers = self
            .inner
            .sellers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let series = sellers
            .entry(Box::from(seller))
            .or_insert_with(|| self.inner.seller_series(seller));
        record(series);
    }
}

impl Inner {
    fn seller_series(&self, seller: &str) -> SellerSeries {
        let labels = SellerLabels {
            seller: seller.to_owned(),
        };
        SellerSeries {
            issued: self.issued.get_or_create_owned(&labels),
            recorded: self.recorded.get_or_create_owned(&labels),
            rejected: self.rejected.get_or_create_owned(&labels),
            attempts: ATTEMPT_OUTCOMES.map(|outcome| {
                self.attempts.get_or_create_owned(&AttemptLabels {
                    seller: seller.to_owned(),
                    outcome,
                })
            }),
        }
    }
}

/// The drift classes, each exported from the start with a count of 0.
const DRIFT_CLASSES: [fapiao_reconciler::diff::DriftClass; 5] = {
    use fapiao_reconciler::diff::DriftClass;
    [
        DriftClass::MissingOnPlatform,
        DriftClass::Stuck,
        DriftClass::StatusMismatch,
        DriftClass::RemoteOnly,
        DriftClass::ContentMismatch,
    ]
};

/// A gauge family with two labels whose whole set of series is replaced at once, for values
/// computed as a snapshot (open drifts, success ratios). Unlike a [`Family`], the update and the
/// encoding take the same lock, so a scrape sees either the old set or the new one, and series
/// come out sorted by label values.
#[derive(Debug, Clone)]
struct GaugeSet<V> {
    keys: [&'static str; 2],
    values: Arc<Mutex<BTreeMap<(String, String), V>>>,
}

impl<V> GaugeSet<V> {
    fn new(keys: [&'static str; 2]) -> Self {
        Self {
            keys,
            values: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, String), V>> {
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut BTreeMap<(String, String), V>)) {
        change(&mut self.lock());
    }
}

impl<V> EncodeMetric for GaugeSet<V>
where
    V: prometheus_client::encoding::EncodeGaugeValue + Copy,
{
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let [first, second] = self.keys;
        for ((a, b), value) in self.lock().iter() {
            let labels = [(first, a.as_str()), (second, b.as_str())];
            ConstGauge::new(*value).encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// `GET /metrics`: OpenMetrics when the `Accept` header asks for it, the 0.0.4 text otherwise.
async fn scrape(State(metrics): State<Metrics>, headers: HeaderMap) -> Response {
    let text = match metrics.try_encode() {
        Ok(text) => text,
        Err(error) => {
            tracing::error!(%error, "encoding the metrics failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if wants_openmetrics(headers.get_all(ACCEPT).iter()) {
        (
            [(
                CONTENT_TYPE,
                HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
            )],
            text,
        )
            .into_response()
    } else {
        (
            [(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE))],
            text_format(&text),
        )
            .into_response()
    }
}

/// Whether any `Accept` value lists `application/openmetrics-text` with a non-zero quality.
/// Prometheus lists it first by default; `curl` and `promtool` do not ask for it.
fn wants_openmetrics<'a>(accept: impl Iterator<Item = &'a HeaderValue>) -> bool {
    accept
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            media.eq_ignore_ascii_case("application/openmetrics-text")
                && !parts.any(|param| {
                    param
                        .strip_prefix("q=")
                        .is_some_and(|q| q.chars().all(|c| c == '0' || c == '.'))
                })
        })
}

/// The OpenMetrics text turned into the Prometheus text format 0.0.4.
///
/// The samples are the same; only the metadata differs. OpenMetrics names a counter family
/// without its `_total` suffix (`# TYPE fapiao_invoices_issued counter`) while 0.0.4 names it by
/// its samples (`# TYPE fapiao_invoices_issued_total counter`), and a 0.0.4 parser would
/// otherwise see untyped samples with no help. `# EOF` and `# UNIT` have no place in 0.0.4, and
/// OpenMetrics' `unknown` type is 0.0.4's `untyped`.
fn text_format(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len().saturating_add(512));
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|rest| ("# HELP ", rest))
            .or_else(|| line.strip_prefix("# TYPE ").map(|rest| ("# TYPE ", rest)));
        match meta {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(kind);
                out.push_str(name);
                if counters.contains(&name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(if kind == "# TYPE " && tail == "unknown" {
                    "untyped"
                } else {
                    tail
                });
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Serve `GET /metrics` on `listener` until `shutdown` completes, then finish the scrapes in
/// flight and return. Takes a bound listener, so the caller learns the address when the
/// configured port is 0 and a bind error surfaces at start-up, not in a background task.
///
/// # Errors
///
/// When the server fails to accept connections (the socket broke).
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving /metrics");
    }
    axum::serve(listener, metrics.router())
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving /metrics")
}
