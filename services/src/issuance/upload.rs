//! The upload worker: uploads issued invoices to the platform and settles each one.
//!
//! It claims due work from the store (see `store::upload`), groups it — uploads by seller in
//! batches, result queries by receipt, unknown outcomes one by one — calls the platform with a
//! bounded number of calls in flight, and writes what it learnt in one transaction per group.
//! The decisions are the pure functions [`after_send`], [`after_poll`] and [`after_query`], so
//! back-off and attempt budgets are tested without a platform or a clock that moves by itself.
//!
//! Rules: a timeout means "unknown", never "failed" — the invoice is queried and only re-sent when
//! the platform has no record (the platform is idempotent by number anyway). "Busy" waits out the
//! back-off. A spent attempt budget parks the invoice for the reconciler instead of retrying
//! forever. Rejections keep the platform's code and message.

use super::Shared;
use crate::platform::{
    CallError, IssuedInvoice, RemoteInvoice, UploadOutcome, UploadReceipt, UploadResult,
};
use crate::store::{AttemptNote, DueUpload, InvoiceState, UploadPhase, UploadUpdate};
use chrono::{DateTime, Utc};
use fapiao_invoice::taxpayer::TaxpayerId;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

/// Settings of the upload worker.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Invoices per upload call (QDFPSC).
    pub batch_size: usize,
    /// Waits before the 1st, 2nd, … retry after "busy" or a timeout; the last repeats.
    #[serde(with = "crate::config::durations")]
    pub backoff: Vec<Duration>,
    /// Uploads sent per invoice before it is parked for the reconciler.
    pub max_attempts: u32,
    /// Wait after a receipt before asking for the result.
    #[serde(with = "humantime_serde")]
    pub poll_delay: Duration,
    /// Wait between result queries while the platform says "pending".
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long a claim is held; a crashed replica's claims come back to others after it (the
    /// same replica takes its own back when it starts again).
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Platform calls in flight at once.
    pub concurrency: usize,
    /// Longest sleep when nothing is due (new work wakes the worker earlier).
    #[serde(with = "humantime_serde")]
    pub idle_poll: Duration,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            batch_size: 50,
            backoff: vec![
                Duration::from_secs(10),
                Duration::from_secs(30),
                Duration::from_secs(60),
            ],
            max_attempts: 8,
            poll_delay: Duration::from_millis(500),
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            concurrency: 8,
            idle_poll: Duration::from_millis(500),
        }
    }
}

impl UploadConfig {
    /// The wait before retry number `attempt` (1-based).
    pub fn backoff_for(&self, attempt: u32) -> Duration {
        crate::config::backoff_at(&self.backoff, attempt, Duration::from_secs(10))
    }
}

fn later(now: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX)
}

fn base(item: &DueUpload, reason: &str) -> UploadUpdate {
    UploadUpdate {
        item: item.clone(),
        state: None,
        phase: None,
        next_attempt_at: None,
        receipt: None,
        sent: false,
        attempt: None,
        platform: None,
        reason: reason.to_owned(),
    }
}

fn note(outcome: &'static str, error: Option<&CallError>) -> AttemptNote {
    AttemptNote {
        outcome,
        code: error.map(|e| e.code().to_owned()),
        message: error.map(ToString::to_string),
    }
}

/// Retry `item` later in `phase`, or park it when the budget is spent.
fn retry(
    mut u: UploadUpdate,
    phase: UploadPhase,
    now: DateTime<Utc>,
    config: &UploadConfig,
) -> UploadUpdate {
    let sent = u.item.attempts + u32::from(u.sent);
    if phase == UploadPhase::Send && sent >= config.max_attempts {
        u.phase = Some(UploadPhase::Parked);
        u.next_attempt_at = None;
        u.reason = format!(
            "{}; attempt budget of {} spent",
            u.reason, config.max_attempts
        );
    } else {
        u.phase = Some(phase);
        u.next_attempt_at = Some(later(now, config.backoff_for(sent.max(1))));
    }
    u
}

/// What to write after an upload of `items` answered `result`.
pub fn after_send(
    items: &[DueUpload],
    result: &Result<UploadReceipt, CallError>,
    now: DateTime<Utc>,
    config: &UploadConfig,
) -> Vec<UploadUpdate> {
    items
        .iter()
        .map(|item| {
            let mut u = base(item, "uploaded");
            u.sent = true;
            match result {
                Ok(receipt) => {
                    u.state = Some(InvoiceState::Uploading);
                    u.phase = Some(UploadPhase::Poll);
                    u.next_attempt_at = Some(later(now, config.poll_delay));
                    u.receipt = Some(receipt.serial.clone());
                    u.attempt = Some(note("ACCEPTED", None));
                    u
                }
                Err(CallError::Refused { code, message }) => {
                    u.state = Some(InvoiceState::Rejected);
                    u.platform = Some((code.clone(), message.clone()));
                    u.attempt = Some(note("REFUSED", result.as_ref().err()));
                    u.reason = "the platform refused the upload".into();
                    u
                }
                Err(error) if error.outcome_unknown() => {
                    // It may have arrived: from now on the platform decides, so it is UPLOADING.
                    u.state = Some(InvoiceState::Uploading);
                    u.attempt = Some(note("TIMEOUT", Some(error)));
                    u.reason = "upload outcome unknown; will query".into();
                    retry(u, UploadPhase::Query, now, config)
                }
                Err(error) => {
                    u.attempt = Some(note("BUSY", Some(error)));
                    u.reason = format!("upload not accepted ({}); will retry", error.code());
                    retry(u, UploadPhase::Send, now, config)
                }
            }
        })
        .collect()
}

/// What to write after a result query for `items` (sharing one receipt) answered `result`.
pub fn after_poll(
    items: &[DueUpload],
    result: &Result<UploadResult, CallError>,
    now: DateTime<Utc>,
    config: &UploadConfig,
) -> Vec<UploadUpdate> {
    let outcomes: HashMap<String, &UploadOutcome> = match result {
        Ok(UploadResult::Done(list)) => {
            let mut map = HashMap::new();
            for r in list {
                // The platform may repeat an item: the first answer counts.
                map.entry(r.number.to_string()).or_insert(&r.outcome);
            }
            map
        }
        _ => HashMap::new(),
    };
    items
        .iter()
        .map(|item| match result {
            Ok(UploadResult::Pending) => {
                let mut u = base(item, "result pending");
                u.phase = Some(UploadPhase::Poll);
                u.next_attempt_at = Some(later(now, config.poll_interval));
                u
            }
            Ok(UploadResult::Done(_)) => match outcomes.get(&item.number.to_string()) {
                Some(UploadOutcome::Recorded) => settled(item, InvoiceState::Recorded, None),
                Some(UploadOutcome::Rejected { code, message }) => {
                    settled(item, InvoiceState::Rejected, Some((code, message)))
                }
                None => query_now(item, now, "missing from the upload result"),
            },
            Ok(UploadResult::UnknownReceipt) => {
                query_now(item, now, "the platform lost the receipt")
            }
            Err(error) => {
                let mut u = base(item, &format!("result query failed ({})", error.code()));
                u.phase = Some(UploadPhase::Poll);
                u.next_attempt_at = Some(later(now, config.backoff_for(1)));
                u
            }
        })
        .collect()
}

/// Hand the written outcomes to the metrics.
fn count(metrics: &crate::metrics::Metrics, updates: &[UploadUpdate]) {
    use crate::metrics::UploadAttempt;
    for update in updates {
        let seller = update.item.seller_tax_id.as_str();
        if let Some(outcome) = update
            .attempt
            .as_ref()
            .and_then(|a| UploadAttempt::from_code(a.outcome))
        {
            metrics.upload_attempt(seller, outcome);
        }
        match update.state {
            Some(InvoiceState::Recorded) => metrics.recorded(seller),
            Some(InvoiceState::Rejected) => metrics.rejected(seller),
            _ => {}
        }
    }
}

/// What to write after querying one invoice whose outcome was unknown.
pub fn after_query(
    item: &DueUpload,
    result: &Result<Option<RemoteInvoice>, CallError>,
    now: DateTime<Utc>,
    config: &UploadConfig,
) -> UploadUpdate {
    match result {
        Ok(Some(_)) => settled(item, InvoiceState::Recorded, None),
        Ok(None) => {
            let mut u = base(item, "the platform has no record; re-sending");
            if item.attempts >= config.max_attempts {
                return retry(u, UploadPhase::Send, now, config);
            }
            u.phase = Some(UploadPhase::Send);
            u.next_attempt_at = Some(now);
            u
        }
        Err(error) => {
            let mut u = base(item, &format!("invoice query failed ({})", error.code()));
            u.phase = Some(UploadPhase::Query);
            u.next_attempt_at = Some(later(now, config.backoff_for(item.attempts.max(1))));
            u
        }
    }
}

fn settled(
    item: &DueUpload,
    state: InvoiceState,
    rejection: Option<(&String, &String)>,
) -> UploadUpdate {
    let mut u = base(
        item,
        if state == InvoiceState::Recorded {
            "recorded by the platform"
        } else {
            "rejected by the platform"
        },
    );
    u.state = Some(state);
    u.attempt = Some(AttemptNote {
        outcome: state.as_str(),
        code: rejection.map(|r| r.0.clone()),
        message: rejection.map(|r| r.1.clone()),
    });
    u.platform = rejection.map(|(c, m)| (c.clone(), m.clone()));
    u
}

fn query_now(item: &DueUpload, now: DateTime<Utc>, reason: &str) -> UploadUpdate {
    let mut u = base(item, reason);
    u.phase = Some(UploadPhase::Query);
    u.next_attempt_at = Some(now);
    u
}

/// One piece of work for a platform call.
enum Group {
    Send(TaxpayerId, Vec<DueUpload>),
    Poll(TaxpayerId, String, Vec<DueUpload>),
    Query(TaxpayerId, Box<DueUpload>),
}

fn group(claimed: Vec<DueUpload>, batch_size: usize) -> Vec<Group> {
    let mut sends: BTreeMap<String, Vec<DueUpload>> = BTreeMap::new();
    let mut polls: BTreeMap<(String, String), Vec<DueUpload>> = BTreeMap::new();
    let mut groups = Vec::new();
    for item in claimed {
        let Ok(seller) = TaxpayerId::parse(&item.seller_tax_id) else {
            tracing::error!(number = %item.number, "stored seller tax id does not parse");
            continue;
        };
        match (item.phase, item.receipt.clone()) {
            (UploadPhase::Poll, Some(receipt)) => polls
                .entry((item.seller_tax_id.clone(), receipt))
                .or_default()
                .push(item),
            (UploadPhase::Query, _) | (UploadPhase::Poll, None) => {
                groups.push(Group::Query(seller, Box::new(item)));
            }
            (UploadPhase::Send, _) => sends
                .entry(item.seller_tax_id.clone())
                .or_default()
                .push(item),
            (UploadPhase::Parked, _) => {}
        }
    }
    for (seller, items) in sends {
        let Ok(id) = TaxpayerId::parse(&seller) else {
            continue;
        };
        for chunk in items.chunks(batch_size.max(1)) {
            groups.push(Group::Send(id.clone(), chunk.to_vec()));
        }
    }
    for ((seller, receipt), items) in polls {
        let Ok(id) = TaxpayerId::parse(&seller) else {
            continue;
        };
        groups.push(Group::Poll(id, receipt, items));
    }
    groups
}

async fn run_group(shared: &Shared, config: &UploadConfig, group: Group) -> Vec<UploadUpdate> {
    match group {
        Group::Send(seller, items) => {
            // SEND work is always claimed with its content.
            let invoices: Vec<IssuedInvoice> = items
                .iter()
                .filter_map(|i| {
                    Some(IssuedInvoice {
                        number: i.number,
                        issued_at: i.issued_at,
                        content: i.content.clone()?,
                    })
                })
                .collect();
            let started = std::time::Instant::now();
            let result = shared.platform.upload(&seller, &invoices).await;
            shared.metrics.observe_upload(started.elapsed());
            after_send(&items, &result, shared.clock.now(), config)
        }
        Group::Poll(seller, receipt, items) => {
            let result = shared
                .platform
                .upload_result(&seller, &UploadReceipt { serial: receipt })
                .await;
            after_poll(&items, &result, shared.clock.now(), config)
        }
        Group::Query(seller, item) => {
            let result = shared.platform.query_invoice(&seller, &item.number).await;
            vec![after_query(&item, &result, shared.clock.now(), config)]
        }
    }
}

const ACTOR: &str = "upload-worker";
/// How often the worker logs the backlog (invoices the platform has not settled yet).
const BACKLOG_REPORT: Duration = Duration::from_secs(5);

async fn report_backlog(shared: &Shared) {
    match shared.store.upload_backlog().await {
        Ok(phases) => {
            let count = |p: UploadPhase| {
                phases
                    .iter()
                    .find(|(phase, _)| *phase == p)
                    .map_or(0, |(_, n)| *n)
            };
            let backlog: i64 = phases.iter().map(|(_, n)| n).sum();
            if backlog > 0 {
                tracing::info!(
                    backlog,
                    send = count(UploadPhase::Send),
                    poll = count(UploadPhase::Poll),
                    query = count(UploadPhase::Query),
                    parked = count(UploadPhase::Parked),
                    "upload backlog"
                );
            }
        }
        Err(error) => tracing::warn!(
            error = format!("{error:#}"),
            "measuring the upload backlog failed"
        ),
    }
}

/// Start the worker, claiming under `owner`. When `stop` turns true it stops claiming, lets the
/// calls in flight finish and writes their outcomes, so what was under way resumes after a restart.
pub fn spawn(
    shared: Shared,
    config: UploadConfig,
    owner: crate::instance::InstanceId,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let mut running: JoinSet<()> = JoinSet::new();
        let claim_limit =
            u32::try_from(config.batch_size.max(1) * config.concurrency.max(1)).unwrap_or(u32::MAX);
        let mut reported = tokio::time::Instant::now();
        while !*stop.borrow() {
            while running.try_join_next().is_some() {}
            if reported.elapsed() >= BACKLOG_REPORT {
                reported = tokio::time::Instant::now();
                report_backlog(&shared).await;
            }
            let now = shared.clock.now();
            let claimed = match shared
                .store
                .claim_due_uploads(owner.as_str(), now, later(now, config.lease), claim_limit)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "claiming upload work failed");
                    Vec::new()
                }
            };
            let busy = !claimed.is_empty();
            for group in group(claimed, config.batch_size) {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let shared = shared.clone();
                let config = config.clone();
                running.spawn(async move {
                    let updates = run_group(&shared, &config, group).await;
                    let changed = updates.iter().any(|u| u.state.is_some());
                    if let Err(error) = shared
                        .store
                        .apply_upload_updates(&updates, shared.clock.now(), ACTOR)
                        .await
                    {
                        tracing::error!(
                            error = format!("{error:#}"),
                            "writing upload progress failed; the claim will expire and be retried"
                        );
                    } else {
                        // Counted only once written, so the counts match the stored rows.
                        count(&shared.metrics, &updates);
                        if changed {
                            shared.bump();
                        }
                    }
                    drop(permit);
                });
            }
            if busy {
                continue;
            }
            let pause = match shared.store.next_upload_due().await {
                Ok(Some(due)) => (due - shared.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(config.idle_poll),
                _ => config.idle_poll,
            };
            if pause.is_zero() {
                // Due work exists but all of it is claimed or in flight: let calls finish.
                tokio::select! {
                    _ = running.join_next(), if !running.is_empty() => {}
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
                continue;
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        while running.join_next().await.is_some() {}
        tracing::debug!("upload worker stopped");
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use fapiao_invoice::number::InvoiceNumber;

    fn item(attempts: u32, phase: UploadPhase) -> DueUpload {
        let content = crate::issuance::sample_content("order-1");
        DueUpload {
            number: InvoiceNumber::new(26, 31, 2, 7).unwrap(),
            seller_tax_id: "91310000MA1FP00011".into(),
            request_id: "order-1".into(),
            colour: fapiao_invoice::model::Colour::Blue,
            state: if attempts == 0 {
                InvoiceState::Issued
            } else {
                InvoiceState::Uploading
            },
            phase,
            attempts,
            receipt: None,
            issued_at: now(),
            content: Some(content),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 8, 0, 0).unwrap()
    }

    fn config() -> UploadConfig {
        UploadConfig::default()
    }

    #[test]
    fn backoff_follows_the_schedule_and_repeats_its_last_step() {
        let c = config();
        assert_eq!(c.backoff_for(1), Duration::from_secs(10));
        assert_eq!(c.backoff_for(2), Duration::from_secs(30));
        assert_eq!(c.backoff_for(3), Duration::from_secs(60));
        assert_eq!(c.backoff_for(9), Duration::from_secs(60));
    }

    #[test]
    fn a_receipt_moves_the_invoice_to_uploading_and_polls_later() {
        let u = &after_send(
            &[item(0, UploadPhase::Send)],
            &Ok(UploadReceipt {
                serial: "S1".into(),
            }),
            now(),
            &config(),
        )[0];
        assert_eq!(u.state, Some(InvoiceState::Uploading));
        assert_eq!(u.phase, Some(UploadPhase::Poll));
        assert_eq!(u.receipt.as_deref(), Some("S1"));
        assert_eq!(
            u.next_attempt_at,
            Some(now() + chrono::Duration::milliseconds(500))
        );
        assert!(u.sent);
    }

    #[test]
    fn busy_waits_out_the_backoff_and_a_timeout_queries_instead_of_failing() {
        let busy = CallError::Busy {
            code: "9999".into(),
            message: "系统繁忙".into(),
        };
        let u = &after_send(&[item(1, UploadPhase::Send)], &Err(busy), now(), &config())[0];
        assert_eq!(u.phase, Some(UploadPhase::Send));
        assert_eq!(u.state, None);
        assert_eq!(
            u.next_attempt_at,
            Some(now() + chrono::Duration::seconds(30))
        );

        let u = &after_send(
            &[item(0, UploadPhase::Send)],
            &Err(CallError::Timeout),
            now(),
            &config(),
        )[0];
        assert_eq!(u.phase, Some(UploadPhase::Query));
        assert_eq!(u.state, Some(InvoiceState::Uploading));
        assert_eq!(
            u.next_attempt_at,
            Some(now() + chrono::Duration::seconds(10))
        );
        assert_ne!(u.state, Some(InvoiceState::Rejected));
    }

    #[test]
    fn the_attempt_budget_parks_the_invoice() {
        let busy = CallError::Busy {
            code: "9999".into(),
            message: "系统繁忙".into(),
        };
        let c = config();
        let u = &after_send(
            &[item(c.max_attempts - 1, UploadPhase::Send)],
            &Err(busy),
            now(),
            &c,
        )[0];
        assert_eq!(u.phase, Some(UploadPhase::Parked));
        assert_eq!(u.next_attempt_at, None);
        assert!(u.reason.contains("budget"), "{}", u.reason);
    }

    #[test]
    fn a_refused_upload_is_rejected_with_the_platform_code() {
        let refused = CallError::Refused {
            code: "FP0101".into(),
            message: "发票号码不在已分配号段内".into(),
        };
        let u = &after_send(
            &[item(0, UploadPhase::Send)],
            &Err(refused),
            now(),
            &config(),
        )[0];
        assert_eq!(u.state, Some(InvoiceState::Rejected));
        assert_eq!(u.phase, None);
        assert_eq!(
            u.platform,
            Some(("FP0101".into(), "发票号码不在已分配号段内".into()))
        );
    }

    #[test]
    fn poll_results_settle_each_invoice_and_tolerate_repeats() {
        let a = item(1, UploadPhase::Poll);
        let mut b = item(1, UploadPhase::Poll);
        b.number = InvoiceNumber::new(26, 31, 2, 8).unwrap();
        let mut c = item(1, UploadPhase::Poll);
        c.number = InvoiceNumber::new(26, 31, 2, 9).unwrap();
        let result = Ok(UploadResult::Done(vec![
            crate::platform::UploadItemResult {
                number: a.number,
                outcome: UploadOutcome::Recorded,
            },
            crate::platform::UploadItemResult {
                number: a.number,
                outcome: UploadOutcome::Recorded,
            },
            crate::platform::UploadItemResult {
                number: b.number,
                outcome: UploadOutcome::Rejected {
                    code: "FP0203".into(),
                    message: "合计金额不等于明细之和".into(),
                },
            },
        ]));
        let updates = after_poll(&[a, b, c], &result, now(), &config());
        assert_eq!(updates[0].state, Some(InvoiceState::Recorded));
        assert_eq!(updates[0].phase, None);
        assert_eq!(updates[1].state, Some(InvoiceState::Rejected));
        assert_eq!(
            updates[1].platform.as_ref().map(|p| p.0.as_str()),
            Some("FP0203")
        );
        assert_eq!(updates[2].state, None);
        assert_eq!(updates[2].phase, Some(UploadPhase::Query));
    }

    #[test]
    fn a_pending_result_polls_again_and_a_lost_receipt_queries() {
        let u = &after_poll(
            &[item(1, UploadPhase::Poll)],
            &Ok(UploadResult::Pending),
            now(),
            &config(),
        )[0];
        assert_eq!(u.phase, Some(UploadPhase::Poll));
        assert_eq!(
            u.next_attempt_at,
            Some(now() + chrono::Duration::seconds(1))
        );
        let u = &after_poll(
            &[item(1, UploadPhase::Poll)],
            &Ok(UploadResult::UnknownReceipt),
            now(),
            &config(),
        )[0];
        assert_eq!(u.phase, Some(UploadPhase::Query));
        assert_eq!(u.next_attempt_at, Some(now()));
    }

    #[test]
    fn a_query_records_what_the_platform_has_and_resends_what_it_lacks() {
        let i = item(2, UploadPhase::Query);
        let u = after_query(&i, &Ok(None), now(), &config());
        assert_eq!(u.phase, Some(UploadPhase::Send));
        assert_eq!(u.next_attempt_at, Some(now()));
        let remote = RemoteInvoice {
            number: i.number,
            issued_at: now(),
            recorded_at: now(),
            state: crate::platform::RemoteState::Normal,
            content: i.content.clone().unwrap(),
        };
        let u = after_query(&i, &Ok(Some(remote)), now(), &config());
        assert_eq!(u.state, Some(InvoiceState::Recorded));
        assert_eq!(u.phase, None);
        let spent = item(config().max_attempts, UploadPhase::Query);
        assert_eq!(
            after_query(&spent, &Ok(None), now(), &config()).phase,
            Some(UploadPhase::Parked)
        );
    }
}
