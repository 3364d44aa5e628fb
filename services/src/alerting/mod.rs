//! Alert evaluation and delivery: the service's side of the reconciler's alert rules.
//!
//! Every `evaluate_every` the service counts stored upload outcomes over the windows the
//! success-rate objective needs, per seller and for all sellers together, and hands them to the
//! reconciler's burn-rate rules (`fapiao_reconciler::slo`). Breaches become alerts, joined by two
//! alerts about the reconciler itself: no pass finished for too long, and critical drift waiting
//! for repair. The reconciler's `AlertBook` turns the alerts firing now into fired, repeated and
//! resolved notifications; it is kept in the store between evaluations, so a restart neither fires
//! the same alerts again nor forgets to resolve them. Notifications go to the log, to generic JSON
//! webhooks and to Alertmanager ([`Sinks`]).
//!
//! The rules stay in the reconciler crate; this module only counts, converts and sends. The
//! evaluation itself ([`Evaluator::evaluate`]) is pure: it takes what was read from the store and
//! the time, so tests decide both. Only one replica steps the book and sends at a time: it holds
//! the `alerting` lease in the store, as a reconciliation pass holds its own.

mod sinks;
#[cfg(test)]
mod tests;

pub use sinks::{Delivery, Sinks};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use fapiao_reconciler::alert::{self, Alert, AlertBook, Notification};
use fapiao_reconciler::slo::{self, BurnRule, Objective, Outcomes, Scope, SloSettings};
use rust_decimal::Decimal;
use secrecy::SecretString;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::store::{OutcomeCount, Store};

/// The name the service's alert book is stored under.
pub const BOOK: &str = "default";

/// The lease that lets one replica at a time step the alert book and send notifications.
pub const LEASE: &str = "alerting";

/// How alerts are evaluated and where they go: the `[alerts]` section of the configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// The share of upload outcomes that must succeed, strictly between 0 and 1 (`"0.999"`).
    /// Rejections and failed attempts spend the rest, the error budget; the burn-rate alerts
    /// say how fast.
    pub objective: Decimal,
    /// No success-rate alert fires with fewer outcomes than this in its long window: one failure
    /// among twenty attempts is noise, not an outage.
    pub min_volume: u64,
    /// The window of the plain "success rate below objective" alert.
    #[serde(with = "humantime_serde")]
    pub objective_window: StdDuration,
    /// How often the alerts are evaluated and notifications sent.
    #[serde(with = "humantime_serde")]
    pub evaluate_every: StdDuration,
    /// How often an alert that is still firing is sent again, so that receivers which forget
    /// alerts they no longer hear about (Alertmanager) keep it.
    #[serde(with = "humantime_serde")]
    pub repeat_every: StdDuration,
    /// The reconciler counts as stale when no real (not dry-run) pass has succeeded for this long,
    /// or, before the first one, for this long since the service started.
    #[serde(with = "humantime_serde")]
    pub stale_after: StdDuration,
    /// Where the runbooks live; each alert links to its runbook file under this address. Empty
    /// leaves alerts without a link.
    pub runbook_base: String,
    /// Generic JSON webhooks, each sent every notification.
    pub webhooks: Vec<WebhookConfig>,
    /// An Alertmanager to send alerts to, through its v2 API.
    pub alertmanager: Option<AlertmanagerConfig>,
}

impl Default for AlertConfig {
    /// 99.9% over a minimum of 100 outcomes, a one-hour objective window, evaluated every minute,
    /// repeated every hour, stale after 15 minutes, the project's runbooks, no webhook and no
    /// Alertmanager.
    fn default() -> AlertConfig {
        AlertConfig {
            objective: Objective::default().target(),
            min_volume: 100,
            objective_window: StdDuration::from_secs(3600),
            evaluate_every: StdDuration::from_secs(60),
            repeat_every: StdDuration::from_secs(3600),
            stale_after: StdDuration::from_secs(15 * 60),
            runbook_base: "https://github.com/fapiao-rs/fapiao/blob/main/deploy/runbooks/"
                .to_owned(),
            webhooks: Vec::new(),
            alertmanager: None,
        }
    }
}

impl AlertConfig {
    /// Checks the section the way [`Alerting::new`] would use it, so a bad value is reported at
    /// start-up rather than at the first evaluation.
    ///
    /// # Errors
    ///
    /// An objective outside (0, 1), a zero or overlong duration, or a webhook or Alertmanager URL
    /// or authorization value that cannot be used. Messages never quote an authorization value.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.check_period()?;
        Evaluator::new(self)?;
        Sinks::new(self)?;
        Ok(())
    }

    fn check_period(&self) -> anyhow::Result<()> {
        if self.evaluate_every.is_zero() {
            anyhow::bail!("alerts.evaluate_every must be longer than zero");
        }
        Ok(())
    }

    /// How long Alertmanager keeps a firing alert it has not heard about again: three repeat
    /// intervals, so that one lost re-send does not resolve it.
    pub fn alertmanager_horizon(&self) -> Duration {
        to_chrono(self.repeat_every)
            .checked_mul(3)
            .unwrap_or(Duration::MAX)
    }
}

/// The default time a sink waits for an answer.
fn default_timeout() -> StdDuration {
    StdDuration::from_secs(5)
}

/// A generic JSON webhook: every notification batch is POSTed to it as `alert::webhook_payload`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST (`http://` or `https://`).
    pub url: String,
    /// The `Authorization` header value to send (`"Bearer …"`), if the receiver wants one. Kept
    /// secret: it is never logged nor put in an error message.
    #[serde(default)]
    pub authorization: Option<SecretString>,
    /// How long to wait for the receiver to answer.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: StdDuration,
}

/// An Alertmanager, fed through `POST /api/v2/alerts`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager's base address (`http://127.0.0.1:9093`), including any path prefix it is
    /// served under; `/api/v2/alerts` is appended.
    pub url: String,
    /// The `Authorization` header value, when Alertmanager sits behind a proxy that asks for one.
    /// Kept secret like a webhook's.
    #[serde(default)]
    pub authorization: Option<SecretString>,
    /// How long to wait for Alertmanager to answer.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: StdDuration,
    /// The link Alertmanager shows as the alerts' source (a dashboard, say); none when absent.
    #[serde(default)]
    pub generator_url: Option<String>,
}

/// A standard duration as chrono's, saturating rather than failing on absurd lengths.
fn to_chrono(duration: StdDuration) -> Duration {
    Duration::from_std(duration).unwrap_or(Duration::MAX)
}

/// The runbook file of each alert the reconciler raises.
pub fn runbook_file(alert_name: &str) -> Option<&'static str> {
    match alert_name {
        alert::ERROR_BUDGET_BURN => Some("error-budget-burn.md"),
        alert::SUCCESS_BELOW_OBJECTIVE => Some("success-below-objective.md"),
        alert::RECONCILER_STALE => Some("reconciler-stale.md"),
        alert::OPEN_CRITICAL_DRIFTS => Some("open-critical-drifts.md"),
        _ => None,
    }
}

/// The runbook link of an alert under `base`; `None` for an empty base or an alert without a
/// runbook.
pub fn runbook_url(base: &str, alert_name: &str) -> Option<String> {
    let base = base.trim();
    let file = runbook_file(alert_name)?;
    if base.is_empty() {
        return None;
    }
    let separator = if base.ends_with('/') { "" } else { "/" };
    Some(format!("{base}{separator}{file}"))
}

/// A window length as people and metric labels say it: `5m`, `6h`, `3d`, `90s`.
pub fn window_label(length: Duration) -> String {
    match length.num_seconds() {
        s if s != 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s != 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s != 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// What the store said, as one evaluation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observations {
    /// Upload outcomes over [`Evaluator::windows`] ending at the evaluation's `now`
    /// ([`Store::outcome_counts`]).
    pub outcomes: Vec<OutcomeCount>,
    /// When the last real reconciliation pass succeeded, if one ever did.
    pub last_finished_pass: Option<DateTime<Utc>>,
    /// When this service started: before the first pass, staleness counts from here.
    pub service_started_at: DateTime<Utc>,
    /// Open drifts of urgency `critical`.
    pub open_critical_drifts: u64,
}

/// The success rate of one scope over one window, for the `fapiao_success_ratio` gauge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccessReading {
    /// Whose outcomes.
    pub scope: Scope,
    /// The window's length; it ends at the evaluation's time.
    pub window: Duration,
    /// The outcomes counted.
    pub outcomes: Outcomes,
    /// `recorded ÷ (recorded + rejected + failed attempts)`, exact; `None` without outcomes, so a
    /// quiet window is not mistaken for a failing or a perfect one.
    pub success_rate: Option<Decimal>,
}

impl SuccessReading {
    /// The gauge's `scope` label: `overall`, or the seller's taxpayer id.
    pub fn scope_label(&self) -> String {
        match &self.scope {
            Scope::Overall => "overall".to_owned(),
            Scope::Seller(taxpayer_id) => taxpayer_id.clone(),
        }
    }

    /// The gauge's `window` label: `5m`, `1h`, `3d`.
    pub fn window_label(&self) -> String {
        window_label(self.window)
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// When it was evaluated; every window ends here.
    pub at: DateTime<Utc>,
    /// Every alert firing now, with its runbook link.
    pub alerts: Vec<Alert>,
    /// The success rate of every scope over every window the rules look at: all sellers together
    /// first, then each seller with outcomes in the longest window, shortest window first.
    pub readings: Vec<SuccessReading>,
}

impl Evaluation {
    /// The reading of `scope` over the window labelled `window` (`"1h"`).
    pub fn reading(&self, scope: &Scope, window: &str) -> Option<&SuccessReading> {
        self.readings
            .iter()
            .find(|reading| reading.scope == *scope && reading.window_label() == window)
    }

    /// Every reading as `(scope label, window label, success rate)`, the shape the metrics'
    /// `fapiao_success_ratio{scope, window}` gauge is set from.
    pub fn success_ratios(&self) -> Vec<(String, String, Option<Decimal>)> {
        self.readings
            .iter()
            .map(|reading| {
                (
                    reading.scope_label(),
                    reading.window_label(),
                    reading.success_rate,
                )
            })
            .collect()
    }
}

/// Which way an upload outcome counts for the objective.
fn tally(outcome: &str, count: u64) -> Option<Outcomes> {
    let mut outcomes = Outcomes::default();
    match outcome {
        // The platform recorded the invoice.
        "RECORDED" => outcomes.recorded = count,
        // The platform's verdict went against the invoice.
        "REFUSED" | "REJECTED" => outcomes.rejected = count,
        // The attempt failed without a verdict.
        "TIMEOUT" | "BUSY" => outcomes.failed_attempts = count,
        // `ACCEPTED` only says the platform took the upload; its verdict comes later, as its own
        // outcome. Anything else is not an outcome of the objective.
        _ => return None,
    }
    Some(outcomes)
}

/// The alert rules with the configuration applied: the objective, the burn-rate rules, the
/// staleness limit and the runbook links.
#[derive(Debug, Clone)]
pub struct Evaluator {
    objective: Objective,
    rules: Vec<BurnRule>,
    settings: SloSettings,
    stale_after: Duration,
    runbook_base: String,
}

impl Evaluator {
    /// The rules of `config`, with the reconciler's default burn-rate rules.
    ///
    /// # Errors
    ///
    /// An objective outside (0, 1), or a zero or overlong objective window or staleness limit.
    pub fn new(config: &AlertConfig) -> anyhow::Result<Evaluator> {
        let objective =
            Objective::new(config.objective).context("alerts.objective is out of range")?;
        let positive = |name: &str, duration: StdDuration| {
            let chrono = Duration::from_std(duration)
                .ok()
                .with_context(|| format!("alerts.{name} is too long"))?;
            if chrono <= Duration::zero() {
                anyhow::bail!("alerts.{name} must be longer than zero");
            }
            Ok(chrono)
        };
        let objective_window = positive("objective_window", config.objective_window)?;
        let stale_after = positive("stale_after", config.stale_after)?;
        positive("repeat_every", config.repeat_every)?;
        Ok(Evaluator {
            objective,
            rules: slo::default_rules(),
            settings: SloSettings {
                min_volume: config.min_volume,
                objective_window,
                ..SloSettings::default()
            },
            stale_after,
            runbook_base: config.runbook_base.clone(),
        })
    }

    /// Every window length the rules look at, shortest first: what to count before
    /// [`Evaluator::evaluate`].
    pub fn windows(&self) -> Vec<Duration> {
        slo::windows_needed(&self.rules, &self.settings)
    }

    /// The alerts firing at `now` and the success-rate readings, from what the store said.
    /// Outcomes counted in a window longer than any the rules look at are ignored.
    pub fn evaluate(&self, observed: &Observations, now: DateTime<Utc>) -> Evaluation {
        let windows = self.windows();
        // Outcomes per scope and ring (the attempts of one window that no shorter window holds).
        let mut rings: BTreeMap<Scope, Vec<Outcomes>> = BTreeMap::new();
        rings.insert(Scope::Overall, vec![Outcomes::default(); windows.len()]);
        for count in &observed.outcomes {
            let Some(outcomes) = tally(&count.outcome, count.count) else {
                continue;
            };
            let Some(ring) = windows.iter().position(|length| *length >= count.within) else {
                continue;
            };
            for scope in [Scope::Overall, Scope::Seller(count.seller_tax_id.clone())] {
                let scope_rings = rings
                    .entry(scope)
                    .or_insert_with(|| vec![Outcomes::default(); windows.len()]);
                if let Some(slot) = scope_rings.get_mut(ring) {
                    *slot += outcomes;
                }
            }
        }

        let mut alerts = Vec::new();
        let mut readings = Vec::new();
        for (scope, scope_rings) in &rings {
            // A window holds its own ring and every shorter one.
            let totals: Vec<(Duration, Outcomes)> = windows
                .iter()
                .zip(scope_rings.iter().scan(Outcomes::default(), |sum, ring| {
                    *sum += *ring;
                    Some(*sum)
                }))
                .map(|(length, outcomes)| (*length, outcomes))
                .collect();
            let over = |length: Duration| {
                totals
                    .iter()
                    .find(|(counted, _)| *counted == length)
                    .map(|(_, outcomes)| *outcomes)
                    .unwrap_or_default()
            };
            let breaches = slo::evaluate(&self.objective, &self.rules, &self.settings, scope, over);
            alerts.extend(breaches.iter().map(alert::from_breach));
            readings.extend(totals.iter().map(|(length, outcomes)| SuccessReading {
                scope: scope.clone(),
                window: *length,
                outcomes: *outcomes,
                success_rate: outcomes.success_rate(),
            }));
        }
        alerts.extend(alert::stale_reconciler(
            observed.last_finished_pass,
            observed.service_started_at,
            now,
            self.stale_after,
        ));
        alerts.extend(alert::open_critical_drifts(observed.open_critical_drifts));
        let alerts = alerts
            .into_iter()
            .map(|alert| match runbook_url(&self.runbook_base, &alert.name) {
                Some(url) => alert.with_runbook(url),
                None => alert,
            })
            .collect();
        Evaluation {
            at: now,
            alerts,
            readings,
        }
    }
}

/// What one [`Alerting::step`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// When the step evaluated.
    pub at: DateTime<Utc>,
    /// The alerts firing and the success-rate readings.
    pub evaluation: Evaluation,
    /// Another replica's name when it holds the alerting lease: this step then evaluated but
    /// neither stepped the book nor sent anything.
    pub held_by: Option<String>,
    /// What the book said to send.
    pub notifications: Vec<Notification>,
    /// How each sink took them; empty when there was nothing to send.
    pub deliveries: Vec<Delivery>,
}

/// Alert evaluation and delivery for one service: reads the store, evaluates, steps the stored
/// alert book and sends the notifications, every `evaluate_every` once spawned.
#[derive(Debug)]
pub struct Alerting {
    store: Store,
    clock: SharedClock,
    evaluator: Evaluator,
    sinks: Sinks,
    repeat_every: Duration,
    evaluate_every: StdDuration,
    started_at: DateTime<Utc>,
    holder: String,
    latest: watch::Sender<Option<Arc<Evaluation>>>,
}

impl Alerting {
    /// Alerting over `store` with `config`, started now by `clock`, under a name of its own for
    /// the alerting lease (the process id and a random suffix).
    ///
    /// # Errors
    ///
    /// What [`AlertConfig::validate`] finds wrong.
    pub fn new(store: Store, clock: SharedClock, config: &AlertConfig) -> anyhow::Result<Alerting> {
        config.check_period()?;
        let evaluator = Evaluator::new(config)?;
        let sinks = Sinks::new(config)?;
        let started_at = clock.now();
        let holder = format!(
            "alerting:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        Ok(Alerting {
            store,
            clock,
            evaluator,
            sinks,
            repeat_every: to_chrono(config.repeat_every),
            evaluate_every: config.evaluate_every,
            started_at,
            holder,
            latest: watch::channel(None).0,
        })
    }

    /// The same, holding the alerting lease under `holder`: a replica that restarts under the same
    /// name takes over its own lease at once instead of waiting for it to expire.
    #[must_use]
    pub fn with_holder(mut self, holder: impl Into<String>) -> Alerting {
        self.holder = holder.into();
        self
    }

    /// The same, counting the reconciler's staleness from `at` before its first pass instead of
    /// from when this was built (when the service started earlier).
    #[must_use]
    pub fn with_started_at(mut self, at: DateTime<Utc>) -> Alerting {
        self.started_at = at;
        self
    }

    /// The same, with other sinks (for example with a different retry policy).
    #[must_use]
    pub fn with_sinks(mut self, sinks: Sinks) -> Alerting {
        self.sinks = sinks;
        self
    }

    /// The name this holds the alerting lease under.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The latest evaluation, updated by every step (on every replica, lease or not): what the
    /// `fapiao_success_ratio` gauge should show. `None` before the first step.
    pub fn evaluations(&self) -> watch::Receiver<Option<Arc<Evaluation>>> {
        self.latest.subscribe()
    }

    /// Reads the store and evaluates at `now`, without touching the book or sending anything.
    ///
    /// # Errors
    ///
    /// The store could not be read.
    pub async fn evaluate(&self, now: DateTime<Utc>) -> anyhow::Result<Evaluation> {
        let observed = Observations {
            outcomes: self
                .store
                .outcome_counts(now, &self.evaluator.windows())
                .await?,
            last_finished_pass: self.store.last_finished_pass().await?,
            service_started_at: self.started_at,
            open_critical_drifts: self.store.count_open_drifts("critical").await?,
        };
        Ok(self.evaluator.evaluate(&observed, now))
    }

    /// One evaluation: evaluates at the clock's time, and, holding the alerting lease, loads the
    /// book, steps it, sends what it says and saves it. The book is saved after sending, so a
    /// crash in between sends a notification twice rather than never.
    ///
    /// # Errors
    ///
    /// The store could not be read or written. A sink that fails is not an error: see the
    /// report's deliveries.
    pub async fn step(&self) -> anyhow::Result<StepReport> {
        let now = self.clock.now();
        let evaluation = self.evaluate(now).await?;
        self.latest.send_replace(Some(Arc::new(evaluation.clone())));
        let until = now
            .checked_add_signed(self.lease_length())
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if let Err((holder, _)) = self
            .store
            .take_lease(LEASE, &self.holder, now, until)
            .await?
        {
            return Ok(StepReport {
                at: now,
                evaluation,
                held_by: Some(holder),
                notifications: Vec::new(),
                deliveries: Vec::new(),
            });
        }
        let mut book = self.load_book().await?;
        let notifications = book.step(now, evaluation.alerts.clone());
        let deliveries = self.sinks.deliver(&notifications, now).await;
        let json = serde_json::to_string(&book).context("writing the alert book as JSON")?;
        self.store.save_alert_book(BOOK, &json, now).await?;
        Ok(StepReport {
            at: now,
            evaluation,
            held_by: None,
            notifications,
            deliveries,
        })
    }

    /// Steps every `evaluate_every`, the first time at once, until `stop` turns true (or its
    /// sender is gone); then gives the alerting lease back so another replica can take over.
    pub fn spawn(self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            // A zero period would make the interval panic; the configuration refuses it anyway.
            let period = self.evaluate_every.max(StdDuration::from_millis(10));
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !*stop.borrow() {
                tokio::select! {
                    _ = ticks.tick() => {}
                    changed = stop.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        continue;
                    }
                }
                match self.step().await {
                    Ok(report) => tracing::debug!(
                        firing = report.evaluation.alerts.len(),
                        notifications = report.notifications.len(),
                        held_by = report.held_by.as_deref().unwrap_or(""),
                        "alerts evaluated"
                    ),
                    Err(error) => tracing::warn!(
                        error = format!("{error:#}"),
                        "evaluating alerts failed; will retry"
                    ),
                }
            }
            if let Err(error) = self.store.release_lease(LEASE, &self.holder).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "giving back the alerting lease failed; it expires by itself"
                );
            }
            tracing::debug!("alerting stopped");
        })
    }

    /// Three evaluation periods: a replica that stops stepping loses the lease soon, but one slow
    /// step does not.
    fn lease_length(&self) -> Duration {
        to_chrono(self.evaluate_every)
            .checked_mul(3)
            .unwrap_or(Duration::MAX)
    }

    /// The stored book, or a new one when there is none or it cannot be read.
    async fn load_book(&self) -> anyhow::Result<AlertBook> {
        let Some(json) = self.store.load_alert_book(BOOK).await? else {
            return Ok(AlertBook::new(self.repeat_every));
        };
        Ok(read_book(&json, self.repeat_every).unwrap_or_else(|| {
            tracing::warn!(
                book = BOOK,
                "the stored alert book cannot be read; starting a new one, so alerts firing now \
                 fire again and ones that stopped are not resolved"
            );
            AlertBook::new(self.repeat_every)
        }))
    }
}

/// A stored book, re-sending every `repeat_every` even when it was saved with another interval
/// (the configuration changed): the interval is a field of the stored JSON, `repeat_every_ms`,
/// which is replaced before the book is read. `None` when the JSON is not a book.
fn read_book(json: &str, repeat_every: Duration) -> Option<AlertBook> {
    let mut value: serde_json::Value = serde_json::from_str(json).ok()?;
    let stored: AlertBook = serde_json::from_value(value.clone()).ok()?;
    if stored.repeat_every() == repeat_every {
        return Some(stored);
    }
    if let Some(fields) = value.as_object_mut() {
        fields.insert(
            "repeat_every_ms".to_owned(),
            repeat_every.num_milliseconds().into(),
        );
    }
    Some(serde_json::from_value(value).unwrap_or(stored))
}
