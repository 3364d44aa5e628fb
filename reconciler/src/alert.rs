//! Alerts, their lifecycle between reconciliation passes, and the bodies the sinks send.
//!
//! It owns what an alert is ([`Alert`], identified by its name and labels), the alerts the
//! reconciler raises ([`from_breach`], [`stale_reconciler`], [`open_critical_drifts`]), the book
//! that turns each pass's firing set into fired, repeated and resolved notifications
//! ([`AlertBook::step`]), and the JSON bodies of the generic webhook and of Alertmanager's
//! `POST /api/v2/alerts` ([`webhook_payload`], [`alertmanager_payload`]).
//!
//! It must not send, store or read the clock: the service persists the book between passes,
//! passes `now` in and posts the payloads. Changing numbers (rates, counts) go into the text,
//! never into labels, so that an alert keeps its identity while its numbers move.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::slo::{BreachKind, Scope, SloBreach, human_duration};

/// How loudly an alert is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Invoices may be wrong at the tax platform: act now.
    Critical,
    /// Wake someone up.
    Page,
    /// Needs a person within a working day.
    Ticket,
    /// Worth a look; nobody is woken.
    Warning,
}

impl Severity {
    /// The lowercase name used in labels and payloads.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Page => "page",
            Severity::Ticket => "ticket",
            Severity::Warning => "warning",
        }
    }
}

/// Alert name of a burn-rate breach.
pub const ERROR_BUDGET_BURN: &str = "FapiaoErrorBudgetBurn";
/// Alert name of the plain below-objective breach.
pub const SUCCESS_BELOW_OBJECTIVE: &str = "FapiaoSuccessBelowObjective";
/// Alert name of a reconciler that has not finished a pass in time.
pub const RECONCILER_STALE: &str = "FapiaoReconcilerStale";
/// Alert name of critical drift nobody has repaired yet.
pub const OPEN_CRITICAL_DRIFTS: &str = "FapiaoOpenCriticalDrifts";

/// One condition that holds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// What is wrong, as an Alertmanager `alertname` (`FapiaoErrorBudgetBurn`).
    pub name: String,
    /// How loudly to announce it.
    pub severity: Severity,
    /// What tells this alert apart from others of the same name (`seller`, `rule`). Stable values
    /// only: `alertname` and `severity` are added by [`Alert::label_set`].
    pub labels: BTreeMap<String, String>,
    /// One line for a pager.
    pub summary: String,
    /// The numbers behind it.
    pub description: String,
    /// Where on-call reads what to do.
    pub runbook: Option<String>,
}

impl Alert {
    /// The same alert with a runbook link.
    #[must_use]
    pub fn with_runbook(mut self, url: impl Into<String>) -> Alert {
        self.runbook = Some(url.into());
        self
    }

    /// Every label as Alertmanager sees it: the alert's own, plus `alertname` and `severity`,
    /// which take precedence over labels of the same name.
    pub fn label_set(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert("alertname".to_owned(), self.name.clone());
        labels.insert("severity".to_owned(), self.severity.as_str().to_owned());
        labels
    }

    /// The identity of the alert: its name and labels, `"name"{"label"="value",…}`. Debug quoting
    /// escapes quotes and backslashes, so two different label sets never share a key.
    pub fn key(&self) -> String {
        let labels: Vec<String> = self
            .label_set()
            .iter()
            .map(|(label, value)| format!("{label:?}={value:?}"))
            .collect();
        format!("{:?}{{{}}}", self.name, labels.join(","))
    }
}

fn scope_labels(scope: &Scope) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    match scope {
        Scope::Overall => {
            labels.insert("scope".to_owned(), "overall".to_owned());
        }
        Scope::Seller(taxpayer_id) => {
            labels.insert("scope".to_owned(), "seller".to_owned());
            labels.insert("seller".to_owned(), taxpayer_id.clone());
        }
    }
    labels
}

/// A rate as a percentage for people: `0.9985` → `99.85%`.
fn percent(rate: Option<Decimal>) -> String {
    match rate {
        Some(rate) => match rate.checked_mul(Decimal::ONE_HUNDRED) {
            Some(percent) => format!("{}%", percent.normalize()),
            // Only a hand-made breach gets here; say the number rather than panic.
            None => format!("rate {}", rate.normalize()),
        },
        None => "no outcomes".to_owned(),
    }
}

/// A burn rate for people: `20×`.
fn times(rate: Option<Decimal>) -> String {
    rate.map_or_else(|| "-".to_owned(), |rate| format!("{}×", rate.normalize()))
}

/// The alert for an SLO breach: labelled with its scope and rule, worded with its numbers.
pub fn from_breach(breach: &SloBreach) -> Alert {
    let mut labels = scope_labels(&breach.scope);
    labels.insert("rule".to_owned(), breach.rule.clone());
    let who = breach.scope.describe();
    let long = &breach.window;
    let objective = percent(Some(breach.target));
    let over_long = format!(
        "over the last {}, {} of {} issuance attempts succeeded (objective {objective})",
        human_duration(long.length),
        percent(long.success_rate),
        long.outcomes.total(),
    );
    let (name, summary, description) = match &breach.kind {
        BreachKind::Burn { factor, short } => (
            ERROR_BUDGET_BURN,
            format!(
                "{who}: issuance error budget burning at {} over {}",
                times(long.burn_rate),
                human_duration(long.length),
            ),
            format!(
                "{over_long}; the error budget burns at {} over {} and {} over {} \
                 ({} of {} attempts); rule {} fires at {}× in both windows",
                times(long.burn_rate),
                human_duration(long.length),
                times(short.burn_rate),
                human_duration(short.length),
                short.outcomes.bad(),
                short.outcomes.total(),
                breach.rule,
                factor.normalize(),
            ),
        ),
        BreachKind::BelowObjective => (
            SUCCESS_BELOW_OBJECTIVE,
            format!(
                "{who}: issuance success rate {} is below the {objective} objective",
                percent(long.success_rate),
            ),
            over_long,
        ),
    };
    Alert {
        name: name.to_owned(),
        severity: breach.severity,
        labels,
        summary,
        description,
        runbook: None,
    }
}

/// Fires when no reconciliation pass has finished within `max_age` of `now`. Before the first
/// pass (`last_finished` is `None`) the clock starts at `since`, when the service started, so a
/// fresh start gets `max_age` to finish its first pass.
pub fn stale_reconciler(
    last_finished: Option<DateTime<Utc>>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    max_age: Duration,
) -> Option<Alert> {
    let reference = last_finished.unwrap_or(since);
    let age = now.signed_duration_since(reference);
    if age <= max_age {
        return None;
    }
    let description = match last_finished {
        Some(finished) => format!(
            "the last reconciliation pass finished at {} ({} ago); passes are expected every {}",
            rfc3339(finished),
            human_duration(age),
            human_duration(max_age),
        ),
        None => format!(
            "no reconciliation pass has finished since the service started at {} ({} ago)",
            rfc3339(since),
            human_duration(age),
        ),
    };
    Some(Alert {
        name: RECONCILER_STALE.to_owned(),
        severity: Severity::Ticket,
        labels: BTreeMap::new(),
        summary: "the reconciler has not finished a pass in time; drift goes unnoticed".to_owned(),
        description,
        runbook: None,
    })
}

/// Fires, critical, while drift classified critical waits for repair.
pub fn open_critical_drifts(count: u64) -> Option<Alert> {
    (count > 0).then(|| Alert {
        name: OPEN_CRITICAL_DRIFTS.to_owned(),
        severity: Severity::Critical,
        labels: BTreeMap::new(),
        summary: "invoices disagree with the tax platform and need repair".to_owned(),
        description: format!("{count} critical drift(s) are open"),
        runbook: None,
    })
}

/// What a notification announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationKind {
    /// The alert started firing.
    Fired,
    /// The alert is still firing; sinks forget alerts that are not re-sent.
    Repeated,
    /// The alert stopped firing at `ends_at`.
    Resolved {
        /// When the condition was first seen gone.
        ends_at: DateTime<Utc>,
    },
}

impl NotificationKind {
    /// `fired`, `repeated` or `resolved`.
    pub fn as_str(&self) -> &'static str {
        match self {
            NotificationKind::Fired => "fired",
            NotificationKind::Repeated => "repeated",
            NotificationKind::Resolved { .. } => "resolved",
        }
    }

    /// `firing` or `resolved`, as Alertmanager says it.
    pub fn status(&self) -> &'static str {
        match self {
            NotificationKind::Fired | NotificationKind::Repeated => "firing",
            NotificationKind::Resolved { .. } => "resolved",
        }
    }
}

/// One message for the sinks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Fired, repeated or resolved.
    pub kind: NotificationKind,
    /// The alert as last seen firing.
    pub alert: Alert,
    /// When the alert started firing.
    pub starts_at: DateTime<Utc>,
}

/// An alert the book knows to be firing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Active {
    alert: Alert,
    starts_at: DateTime<Utc>,
    last_sent: DateTime<Utc>,
}

/// The alerts firing as of the last pass, persisted by the service between passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertBook {
    #[serde(rename = "repeat_every_ms", with = "milliseconds")]
    repeat_every: Duration,
    active: BTreeMap<String, Active>,
}

impl AlertBook {
    /// An empty book re-sending still-firing alerts every `repeat_every`.
    pub fn new(repeat_every: Duration) -> AlertBook {
        AlertBook {
            repeat_every,
            active: BTreeMap::new(),
        }
    }

    /// How often a still-firing alert is sent again.
    pub fn repeat_every(&self) -> Duration {
        self.repeat_every
    }

    /// The alerts firing as of the last step, by key.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values().map(|active| &active.alert)
    }

    /// Takes the alerts firing at `now` and says what to send: `Fired` for a new alert,
    /// `Repeated` when an alert still fires and was last sent `repeat_every` or longer ago, and
    /// `Resolved` for a known alert missing from `firing` (which then leaves the book). Firing
    /// alerts come first, then resolved ones, each in key order; alerts with the same key count once.
    pub fn step(&mut self, now: DateTime<Utc>, firing: Vec<Alert>) -> Vec<Notification> {
        let firing: BTreeMap<String, Alert> = firing
            .into_iter()
            .map(|alert| (alert.key(), alert))
            .collect();
        let mut notifications = Vec::new();
        let gone: Vec<String> = self
            .active
            .keys()
            .filter(|key| !firing.contains_key(*key))
            .cloned()
            .collect();
        for (key, alert) in firing {
            match self.active.get_mut(&key) {
                None => {
                    notifications.push(Notification {
                        kind: NotificationKind::Fired,
                        alert: alert.clone(),
                        starts_at: now,
                    });
                    let active = Active {
                        alert,
                        starts_at: now,
                        last_sent: now,
                    };
                    self.active.insert(key, active);
                }
                Some(active) => {
                    active.alert = alert;
                    let since_sent = now.signed_duration_since(active.last_sent);
                    if now > active.last_sent && since_sent >= self.repeat_every {
                        active.last_sent = now;
                        notifications.push(Notification {
                            kind: NotificationKind::Repeated,
                            alert: active.alert.clone(),
                            starts_at: active.starts_at,
                        });
                    }
                }
            }
        }
        for key in gone {
            if let Some(active) = self.active.remove(&key) {
                notifications.push(Notification {
                    kind: NotificationKind::Resolved { ends_at: now },
                    alert: active.alert,
                    starts_at: active.starts_at,
                });
            }
        }
        notifications
    }
}

/// `Duration` as whole milliseconds, which chrono's serde support does not cover.
mod milliseconds {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(duration.num_milliseconds())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let ms = i64::deserialize(deserializer)?;
        Duration::try_milliseconds(ms).ok_or_else(|| D::Error::custom("duration out of range"))
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The generic webhook body: `{"version": "1", "notifications": [...]}`, one object per
/// notification with its status, kind, alert fields and RFC 3339 times (`ends_at` null unless
/// resolved, `runbook` null unless set).
pub fn webhook_payload(notifications: &[Notification]) -> Value {
    let items: Vec<Value> = notifications
        .iter()
        .map(|notification| {
            let alert = &notification.alert;
            let ends_at = match notification.kind {
                NotificationKind::Resolved { ends_at } => Value::String(rfc3339(ends_at)),
                NotificationKind::Fired | NotificationKind::Repeated => Value::Null,
            };
            json!({
                "status": notification.kind.status(),
                "kind": notification.kind.as_str(),
                "name": alert.name,
                "severity": alert.severity.as_str(),
                "labels": alert.labels,
                "summary": alert.summary,
                "description": alert.description,
                "runbook": alert.runbook,
                "starts_at": rfc3339(notification.starts_at),
                "ends_at": ends_at,
            })
        })
        .collect();
    json!({ "version": "1", "notifications": items })
}

/// The body of Alertmanager's `POST /api/v2/alerts`: an array of postable alerts. A firing alert
/// ends at `now + horizon`, so Alertmanager keeps it active until the next re-send (pass about
/// three repeat intervals); a resolved one ends when it resolved. `generatorURL` is left out when
/// `generator_url` is empty, and `endsAt` when `now + horizon` is not representable.
pub fn alertmanager_payload(
    notifications: &[Notification],
    now: DateTime<Utc>,
    generator_url: &str,
    horizon: Duration,
) -> Value {
    let items: Vec<Value> = notifications
        .iter()
        .map(|notification| {
            let alert = &notification.alert;
            let mut annotations = Map::new();
            annotations.insert("summary".to_owned(), alert.summary.clone().into());
            annotations.insert("description".to_owned(), alert.description.clone().into());
            if let Some(runbook) = &alert.runbook {
                annotations.insert("runbook_url".to_owned(), runbook.clone().into());
            }
            let mut item = Map::new();
            item.insert("labels".to_owned(), json!(alert.label_set()));
            item.insert("annotations".to_owned(), Value::Object(annotations));
            item.insert(
                "startsAt".to_owned(),
                rfc3339(notification.starts_at).into(),
            );
            let ends_at = match notification.kind {
                NotificationKind::Resolved { ends_at } => Some(ends_at),
                NotificationKind::Fired | NotificationKind::Repeated => {
                    now.checked_add_signed(horizon)
                }
            };
            if let Some(ends_at) = ends_at {
                item.insert("endsAt".to_owned(), rfc3339(ends_at).into());
            }
            if !generator_url.is_empty() {
                item.insert("generatorURL".to_owned(), generator_url.into());
            }
            Value::Object(item)
        })
        .collect();
    Value::Array(items)
}

#[cfg(test)]
mod tests;
