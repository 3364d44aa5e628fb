//! Where notifications go: the log, generic JSON webhooks and Alertmanager.
//!
//! Every sink gets every batch, independently: the HTTP sinks are sent to at the same time, each
//! tried a few times with a growing pause, and one that keeps failing is logged and reported
//! without holding up or stopping the others. Authorization values are sent as sensitive headers
//! and never appear in a log line, an error or `Debug` output; sinks are named by the scheme, host
//! and port of their URL only, since a webhook's path or query often carries a token too.

use std::fmt;
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use fapiao_reconciler::alert::{self, Notification, NotificationKind};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::AlertConfig;

/// Tries of one HTTP delivery, the first included.
const ATTEMPTS: u32 = 3;
/// The pause before the first retry; it doubles for each further one.
const BACKOFF: StdDuration = StdDuration::from_millis(250);
/// How much of a refusing answer's body goes into the error.
const ANSWER_EXCERPT: usize = 200;

/// How one sink took one batch of notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Which sink: `log`, `webhook 1 (https://hooks.example.com)` (numbered from 1 in
    /// configuration order) or `alertmanager (http://127.0.0.1:9093)`.
    pub sink: String,
    /// Tries made, the first included.
    pub attempts: u32,
    /// Why the last try failed; `None` when the sink took the batch.
    pub error: Option<String>,
}

impl Delivery {
    /// Whether the sink took the batch.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
}

/// One HTTP receiver.
struct Target {
    /// How logs and reports name it, without path, query or credentials.
    label: String,
    url: reqwest::Url,
    /// The `Authorization` header, marked sensitive.
    authorization: Option<HeaderValue>,
    /// The same value, to blank out should a receiver echo it back in an error.
    secret: Option<SecretString>,
    timeout: StdDuration,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("label", &self.label)
            .field("authorization", &self.authorization.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Target {
    fn new(
        key: &str,
        label: &str,
        raw_url: &str,
        authorization: Option<&SecretString>,
        timeout: StdDuration,
    ) -> anyhow::Result<Target> {
        // The URL is not quoted in the error: its path or query may be a credential.
        let url = reqwest::Url::parse(raw_url.trim())
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .with_context(|| format!("{key}.url is not an http(s) URL"))?;
        let header = authorization
            .map(|secret| {
                HeaderValue::from_str(secret.expose_secret())
                    .map(|mut value| {
                        value.set_sensitive(true);
                        value
                    })
                    .ok()
                    .with_context(|| format!("{key}.authorization is not a valid header value"))
            })
            .transpose()?;
        Ok(Target {
            label: format!("{label} ({})", url.origin().ascii_serialization()),
            url,
            authorization: header,
            secret: authorization.cloned(),
            timeout,
        })
    }

    /// `text` with the authorization value blanked out.
    fn redact(&self, text: String) -> String {
        match &self.secret {
            Some(secret) if !secret.expose_secret().is_empty() => {
                text.replace(secret.expose_secret(), "[redacted]")
            }
            _ => text,
        }
    }
}

/// Alertmanager, with what its payload needs.
#[derive(Debug)]
struct Alertmanager {
    target: Target,
    generator_url: String,
}

/// Why one try failed, and whether another could do better.
struct Failure {
    message: String,
    retry: bool,
}

/// Every sink of the configuration: the log always, each webhook, and Alertmanager if set.
pub struct Sinks {
    client: reqwest::Client,
    webhooks: Vec<Target>,
    alertmanager: Option<Alertmanager>,
    horizon: Duration,
    attempts: u32,
    backoff: StdDuration,
}

impl fmt::Debug for Sinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sinks")
            .field("webhooks", &self.webhooks)
            .field("alertmanager", &self.alertmanager)
            .field("horizon", &self.horizon)
            .field("attempts", &self.attempts)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl Sinks {
    /// The sinks of `config`, each HTTP delivery tried three times, 250 ms apart and then 500 ms.
    ///
    /// # Errors
    ///
    /// A URL that is not http(s), an authorization value that is not a valid header value (the
    /// message names the setting, never the value), or an HTTP client that cannot be built.
    pub fn new(config: &AlertConfig) -> anyhow::Result<Sinks> {
        let webhooks = config
            .webhooks
            .iter()
            .enumerate()
            .map(|(index, webhook)| {
                let number = index.saturating_add(1);
                Target::new(
                    &format!("alerts.webhooks[{number}]"),
                    &format!("webhook {number}"),
                    &webhook.url,
                    webhook.authorization.as_ref(),
                    webhook.timeout,
                )
            })
            .collect::<anyhow::Result<Vec<Target>>>()?;
        let alertmanager = config
            .alertmanager
            .as_ref()
            .map(|am| {
                let mut target = Target::new(
                    "alerts.alertmanager",
                    "alertmanager",
                    &am.url,
                    am.authorization.as_ref(),
                    am.timeout,
                )?;
                let path = format!("{}/api/v2/alerts", target.url.path().trim_end_matches('/'));
                target.url.set_path(&path);
                anyhow::Ok(Alertmanager {
                    target,
                    generator_url: am.generator_url.clone().unwrap_or_default(),
                })
            })
            .transpose()?;
        let client = reqwest::Client::builder()
            .build()
            .context("building the HTTP client of the alert sinks")?;
        Ok(Sinks {
            client,
            webhooks,
            alertmanager,
            horizon: config.alertmanager_horizon(),
            attempts: ATTEMPTS,
            backoff: BACKOFF,
        })
    }

    /// The same sinks, trying each HTTP delivery `attempts` times (at least once) and pausing
    /// `backoff` before the first retry, twice that before the next, and so on.
    #[must_use]
    pub fn with_retries(mut self, attempts: u32, backoff: StdDuration) -> Sinks {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    /// Sends `notifications` to every sink and says how each took them: the log first, then the
    /// webhooks in configuration order, then Alertmanager. Nothing is sent, and nothing reported,
    /// for an empty batch. `now` is when the batch was made; Alertmanager keeps a firing alert
    /// until three repeat intervals after it.
    pub async fn deliver(
        &self,
        notifications: &[Notification],
        now: DateTime<Utc>,
    ) -> Vec<Delivery> {
        if notifications.is_empty() {
            return Vec::new();
        }
        let mut deliveries = vec![log(notifications)];
        let webhook_body = alert::webhook_payload(notifications);
        let alertmanager_body = self.alertmanager.as_ref().map(|am| {
            alert::alertmanager_payload(notifications, now, &am.generator_url, self.horizon)
        });
        let mut posts: Vec<_> = self
            .webhooks
            .iter()
            .map(|target| self.post(target, &webhook_body))
            .collect();
        if let (Some(am), Some(body)) = (&self.alertmanager, &alertmanager_body) {
            posts.push(self.post(&am.target, body));
        }
        deliveries.extend(futures::future::join_all(posts).await);
        deliveries
    }

    /// POSTs `body` to `target`, retrying failures that another try could fix.
    async fn post(&self, target: &Target, body: &Value) -> Delivery {
        let mut pause = self.backoff;
        let mut attempts = 0u32;
        loop {
            attempts = attempts.saturating_add(1);
            let failure = match self.try_post(target, body).await {
                Ok(()) => {
                    return Delivery {
                        sink: target.label.clone(),
                        attempts,
                        error: None,
                    };
                }
                Err(failure) => failure,
            };
            if !failure.retry || attempts >= self.attempts {
                tracing::warn!(
                    sink = %target.label,
                    attempts,
                    error = %failure.message,
                    "sending alerts failed"
                );
                return Delivery {
                    sink: target.label.clone(),
                    attempts,
                    error: Some(failure.message),
                };
            }
            tracing::debug!(
                sink = %target.label,
                attempts,
                error = %failure.message,
                "sending alerts failed; trying again"
            );
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
        }
    }

    async fn try_post(&self, target: &Target, body: &Value) -> Result<(), Failure> {
        let mut request = self
            .client
            .post(target.url.clone())
            .timeout(target.timeout)
            .json(body);
        if let Some(authorization) = &target.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let response = request.send().await.map_err(|error| Failure {
            message: target.redact(describe(error)),
            retry: true,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let answer = response.text().await.unwrap_or_default();
        let excerpt: String = answer.trim().chars().take(ANSWER_EXCERPT).collect();
        let message = if excerpt.is_empty() {
            format!("answered {status}")
        } else {
            format!("answered {status}: {excerpt}")
        };
        Err(Failure {
            message: target.redact(message),
            // A refusal of the request itself will not change on a retry; an overloaded or
            // failing receiver may.
            retry: status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::REQUEST_TIMEOUT,
        })
    }
}

/// A transport error and its causes, without the URL.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// The log sink: a warning for each firing alert (fired or repeated), an info line for each
/// resolved one. It cannot fail.
fn log(notifications: &[Notification]) -> Delivery {
    for notification in notifications {
        let alert = &notification.alert;
        let labels = alert
            .labels
            .iter()
            .map(|(label, value)| format!("{label}={value}"))
            .collect::<Vec<_>>()
            .join(",");
        let starts_at = notification.starts_at.to_rfc3339();
        match notification.kind {
            NotificationKind::Fired | NotificationKind::Repeated => tracing::warn!(
                alert = %alert.name,
                kind = notification.kind.as_str(),
                severity = alert.severity.as_str(),
                labels = %labels,
                summary = %alert.summary,
                description = %alert.description,
                runbook = alert.runbook.as_deref().unwrap_or(""),
                starts_at = %starts_at,
                "alert firing"
            ),
            NotificationKind::Resolved { ends_at } => tracing::info!(
                alert = %alert.name,
                kind = notification.kind.as_str(),
                severity = alert.severity.as_str(),
                labels = %labels,
                summary = %alert.summary,
                starts_at = %starts_at,
                ends_at = %ends_at.to_rfc3339(),
                "alert resolved"
            ),
        }
    }
    Delivery {
        sink: "log".to_owned(),
        attempts: 1,
        error: None,
    }
}
