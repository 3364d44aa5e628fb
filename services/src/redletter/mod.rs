//! The red-letter workflow: from a request to reverse a blue invoice to a filed confirmation form
//! (红字发票信息确认单) and, when the form allows it, the red invoice.
//!
//! - A request is checked against its blue invoice and stored as a `FILING` form in one
//!   transaction ([`Store::reserve_red_letter`]), then filed with the platform under the caller's
//!   request id, which the platform keeps idempotent. A refusal frees the reservation; no answer
//!   leaves the form for the follow-up worker to file again.
//! - A form in `01` or `04` gets its red invoice through the issuing writer, under the form's
//!   request id, so issuing it twice is impossible; the upload worker uploads it like any invoice,
//!   and once the platform records it the blue invoice turns partially or fully reversed.
//! - The follow-up worker ([`spawn`]) files again what had no answer, issues red invoices that
//!   could not be issued at once, asks the platform about forms waiting for an answer (02, 03)
//!   until they are confirmed, denied, withdrawn or expire, and picks up forms buyers filed.
//!
//! It must not know about gRPC: handlers call [`RedLetters`] and map [`RedLetterError`].

use crate::clock::SharedClock;
use crate::issuance::{Issuance, IssueError};
use crate::platform::{CallError, FormAnswer, FormRequest, RemoteForm, TaxPlatform};
use crate::store::{
    FormPhase, InvoiceState, Reservation, Reserved, Scope, Store, StoredForm, StoredInvoice,
};
use chrono::{DateTime, Utc};
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::RedReference;
use fapiao_invoice::redletter::{
    FormStatus, Initiator, RedLetterRequest, ReversalScope, red_invoice,
};
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_invoice::violation::{Code, Violation};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Who the follow-up worker acts as, in event rows.
pub const ACTOR: &str = "system:red-letter";

/// Settings of the red-letter workflow (`[red_letter]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedLetterConfig {
    /// How often a form waiting for an answer is asked about, and forms buyers filed are looked
    /// for.
    #[serde(with = "humantime_serde")]
    pub poll_every: Duration,
    /// How long to wait before trying again after the platform or the store failed.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// How far back the first look for forms buyers filed reaches (a form lives 72 hours).
    #[serde(with = "humantime_serde")]
    pub look_back: Duration,
}

impl Default for RedLetterConfig {
    fn default() -> Self {
        Self {
            poll_every: Duration::from_secs(30),
            retry_after: Duration::from_secs(10),
            look_back: Duration::from_secs(73 * 3600),
        }
    }
}

/// Why a red-letter call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum RedLetterError {
    #[error("the red-letter request is invalid")]
    Invalid(Vec<Violation>),
    #[error("seller {seller} has no blue invoice {number}")]
    BlueNotFound { seller: String, number: String },
    #[error("blue invoice {number} is {state}; it can be reversed once it is RECORDED")]
    BlueNotRecorded { number: String, state: InvoiceState },
    #[error("request id {request_id} was already used for another request or invoice")]
    Conflict { request_id: String },
    #[error("red-letter form {form_number} for this blue invoice still waits for an answer")]
    Pending { form_number: String },
    #[error("the tax platform refused the request ({code}: {message})")]
    Refused { code: String, message: String },
    #[error("the tax platform did not answer; retry with the same request id ({0})")]
    Unavailable(String),
    #[error("no red-letter form {0} for this seller")]
    FormNotFound(String),
    #[error("red-letter form {number} is {status}, which does not allow this")]
    WrongStatus {
        code: &'static str,
        number: String,
        status: String,
    },
    #[error("the store failed: {0:#}")]
    Store(#[from] anyhow::Error),
}

/// A filed form, its red invoice when issued, and whether the call only found them.
#[derive(Debug, Clone, PartialEq)]
pub struct Filed {
    pub form: StoredForm,
    pub red: Option<StoredInvoice>,
    pub replayed: bool,
}

/// The handle the API holds. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RedLetters {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    issuance: Issuance,
    platform: Arc<dyn TaxPlatform>,
    clock: SharedClock,
    limits: Limits,
    config: RedLetterConfig,
    /// Wakes the follow-up worker.
    wake: Notify,
    /// Bumped whenever form events are written, for watchers.
    changes: watch::Sender<u64>,
}

impl RedLetters {
    pub fn new(
        store: Store,
        issuance: Issuance,
        platform: Arc<dyn TaxPlatform>,
        clock: SharedClock,
        config: RedLetterConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                issuance,
                platform,
                clock,
                limits: Limits::default(),
                config,
                wake: Notify::new(),
                changes: watch::channel(0).0,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// A receiver that changes whenever this process writes form events.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn bump(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    fn later(&self, by: Duration) -> DateTime<Utc> {
        self.now() + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX)
    }

    /// Reverse a blue invoice: reserve, file, and issue the red invoice when the form allows it.
    pub async fn request(
        &self,
        seller: &TaxpayerId,
        request: RedLetterRequest,
        actor: &str,
    ) -> Result<Filed, RedLetterError> {
        let reservation = Reservation {
            seller_tax_id: seller.as_str().to_owned(),
            request_sm3: request_digest(&request),
            request_id: request.request_id.clone(),
            blue_number: request.blue_number,
            reason: request.reason,
            scope: request.scope,
            remark: request.remark,
            drawer: request.drawer,
            actor: actor.to_owned(),
        };
        let (form, replayed) = match self
            .inner
            .store
            .reserve_red_letter(&reservation, self.now())
            .await?
        {
            Reserved::New(form) => (*form, false),
            Reserved::Existing(form) => (*form, true),
            Reserved::Conflict => {
                return Err(RedLetterError::Conflict {
                    request_id: reservation.request_id,
                });
            }
            Reserved::BlueNotFound => {
                return Err(RedLetterError::BlueNotFound {
                    seller: reservation.seller_tax_id,
                    number: reservation.blue_number.to_string(),
                });
            }
            Reserved::BlueIsRed => {
                return Err(RedLetterError::Invalid(vec![Violation {
                    field: "blue_invoice_number".into(),
                    code: Code::RED_BLUE_IS_RED,
                    message: "红字发票不能再被红冲".into(),
                }]));
            }
            Reserved::BlueNotRecorded(state) => {
                return Err(RedLetterError::BlueNotRecorded {
                    number: reservation.blue_number.to_string(),
                    state,
                });
            }
            Reserved::Pending { form_number } => {
                return Err(RedLetterError::Pending { form_number });
            }
            Reserved::Invalid(violations) => return Err(RedLetterError::Invalid(violations)),
        };
        let form = if form.phase == FormPhase::Filing {
            self.file(form, actor).await?
        } else {
            form
        };
        let (form, red) = self.with_red(form, actor).await?;
        Ok(Filed {
            form,
            red,
            replayed,
        })
    }

    /// The red invoice of a form: issued now when the form allows it and has none yet.
    async fn red_of(
        &self,
        form: &StoredForm,
        actor: &str,
    ) -> Result<Option<StoredInvoice>, RedLetterError> {
        if let Some(number) = &form.red_number {
            return Ok(self
                .inner
                .store
                .get_invoice(&Scope::unrestricted(), number)
                .await?);
        }
        if form.phase.status().is_some_and(FormStatus::allows_red) {
            return self.issue_red(form, actor).await;
        }
        Ok(None)
    }

    /// The form and its red invoice, issued now when the form allows it; the form names the red
    /// invoice as the store now does.
    async fn with_red(
        &self,
        mut form: StoredForm,
        actor: &str,
    ) -> Result<(StoredForm, Option<StoredInvoice>), RedLetterError> {
        let red = self.red_of(&form, actor).await?;
        if let Some(red) = &red {
            form.red_number = Some(red.number);
        }
        Ok((form, red))
    }

    /// File a `FILING` form with the platform and take its answer.
    async fn file(&self, form: StoredForm, actor: &str) -> Result<StoredForm, RedLetterError> {
        let seller = seller_of(&form)?;
        let request_id = form.request_id.clone().unwrap_or_default();
        // Remembered first: if the platform issues the red invoice on its own, reconciliation
        // knows it is ours.
        self.inner
            .store
            .remember_platform_request(&form.seller_tax_id, &request_id, "red_letter", self.now())
            .await?;
        let filing = FormRequest {
            request_id,
            blue_number: form.blue_number,
            reason: form.reason,
            lines: form.lines.clone(),
        };
        match self
            .inner
            .platform
            .file_red_letter_form(&seller, &filing)
            .await
        {
            Ok(remote) => Ok(self.take(&form, &remote, actor).await?),
            Err(CallError::Refused { code, message }) => {
                self.inner.store.drop_filing(form.id).await?;
                Err(RedLetterError::Refused { code, message })
            }
            Err(error) => {
                self.inner
                    .store
                    .defer_form(
                        form.id,
                        Some(self.later(self.inner.config.retry_after)),
                        Some(&error.to_string()),
                    )
                    .await?;
                self.inner.wake.notify_one();
                Err(RedLetterError::Unavailable(error.to_string()))
            }
        }
    }

    /// When the follow-up looks at a form next: at once when its red invoice is due, at its
    /// expiry while it waits for an answer (answers before that arrive through the listing of
    /// changed forms), never once it is settled.
    fn next_check(&self, remote: &RemoteForm, has_red: bool) -> Option<DateTime<Utc>> {
        if remote.status.is_pending() {
            remote.expires_at.map(|at| at.max(self.now()))
        } else if remote.status.allows_red() && !has_red && remote.red_number.is_none() {
            Some(self.now())
        } else {
            None
        }
    }

    /// Store the platform's view of a form, and say when to look at it again.
    async fn take(
        &self,
        form: &StoredForm,
        remote: &RemoteForm,
        actor: &str,
    ) -> anyhow::Result<StoredForm> {
        let next = self.next_check(remote, form.red_number.is_some());
        let stored = self
            .inner
            .store
            .follow_form(form.id, remote, next, actor, self.now())
            .await?;
        if stored.phase != form.phase || stored.red_number != form.red_number {
            self.bump();
        }
        Ok(stored)
    }

    /// Issue the red invoice of a form in 01 or 04 through the writer, and link it. `None` when
    /// it could not be issued now (the follow-up worker tries again).
    async fn issue_red(
        &self,
        form: &StoredForm,
        actor: &str,
    ) -> Result<Option<StoredInvoice>, RedLetterError> {
        let store = &self.inner.store;
        let seller = seller_of(form)?;
        let (Some(number), Some(blue)) = (
            &form.number,
            store
                .get_invoice(&Scope::unrestricted(), &form.blue_number)
                .await?,
        ) else {
            return Err(
                anyhow::anyhow!("red-letter form {} lost its blue invoice", form.id).into(),
            );
        };
        let reference = RedReference {
            blue_number: form.blue_number,
            form_number: number.clone(),
            reason: form.reason,
        };
        let drawer = if form.drawer.is_empty() {
            blue.content.drawer.clone()
        } else {
            form.drawer.clone()
        };
        let content = red_invoice(
            &blue.content,
            &form.lines,
            reference,
            &form.red_request_id(),
            &form.remark,
            &drawer,
            &self.inner.limits,
        )
        .map_err(RedLetterError::Invalid)?;
        let issued = self
            .inner
            .issuance
            .issue(vec![(seller, content)], actor)
            .await
            .pop();
        match issued {
            Some(Ok(issued)) => {
                if store
                    .link_red_invoice(form.id, &issued.invoice, actor, self.now())
                    .await?
                {
                    self.bump();
                }
                Ok(Some(issued.invoice))
            }
            Some(Err(error)) => {
                let permanent = matches!(
                    error,
                    IssueError::Conflict { .. } | IssueError::HeldByRedLetter { .. }
                );
                tracing::warn!(
                    form = number.as_str(),
                    error = %error,
                    "the red invoice of a form could not be issued now"
                );
                let retry = (!permanent).then(|| self.later(self.inner.config.retry_after));
                store
                    .defer_form(form.id, retry, Some(&error.to_string()))
                    .await?;
                self.inner.wake.notify_one();
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Answer a form the buyer filed (03): agree issues the red invoice, disagree voids it.
    pub async fn answer(
        &self,
        seller: &TaxpayerId,
        form_number: &str,
        agree: bool,
        drawer: &str,
        actor: &str,
    ) -> Result<Filed, RedLetterError> {
        let drawer = drawer.trim();
        if agree && drawer.is_empty() {
            return Err(RedLetterError::Invalid(vec![Violation {
                field: "drawer".into(),
                code: Code::DRAWER_REQUIRED,
                message: "同意时必须填写红字发票的开票人".into(),
            }]));
        }
        let form = self.form_of(seller, form_number).await?;
        let (wanted, answer) = if agree {
            (FormStatus::Confirmed, FormAnswer::Agree)
        } else {
            (FormStatus::VoidSellerDisagreed, FormAnswer::Disagree)
        };
        let status = form.phase.status();
        let form = if status == Some(FormStatus::AwaitingSeller) {
            if agree {
                self.inner.store.set_form_drawer(form.id, drawer).await?;
            }
            self.tell_platform(seller, form, answer, actor).await?
        } else if status == Some(wanted) && form.initiator == Initiator::Buyer {
            form
        } else {
            return Err(wrong_status("RED_LETTER_FORM_NOT_AWAITING_SELLER", &form));
        };
        let (form, red) = self.with_red(form, actor).await?;
        Ok(Filed {
            form,
            red,
            replayed: false,
        })
    }

    /// Withdraw a pending form the seller filed (02 → 08).
    pub async fn withdraw(
        &self,
        seller: &TaxpayerId,
        form_number: &str,
        actor: &str,
    ) -> Result<StoredForm, RedLetterError> {
        let form = self.form_of(seller, form_number).await?;
        match form.phase.status() {
            Some(FormStatus::AwaitingBuyer) if form.initiator == Initiator::Seller => {
                self.tell_platform(seller, form, FormAnswer::Withdraw, actor)
                    .await
            }
            Some(FormStatus::VoidWithdrawn) => Ok(form),
            _ => Err(wrong_status("RED_LETTER_FORM_NOT_WITHDRAWABLE", &form)),
        }
    }

    async fn tell_platform(
        &self,
        seller: &TaxpayerId,
        form: StoredForm,
        answer: FormAnswer,
        actor: &str,
    ) -> Result<StoredForm, RedLetterError> {
        let number = form.number.clone().unwrap_or_default();
        match self
            .inner
            .platform
            .answer_red_letter_form(seller, &number, answer)
            .await
        {
            Ok(remote) => Ok(self.take(&form, &remote, actor).await?),
            Err(CallError::Refused { code, message }) => {
                // Our view may be stale (the form expired, say): look again before saying no.
                if let Ok(Some(remote)) = self.inner.platform.red_letter_form(seller, &number).await
                {
                    let fresh = self.take(&form, &remote, actor).await?;
                    if fresh.phase != form.phase {
                        return Err(wrong_status("RED_LETTER_FORM_STATUS_CHANGED", &fresh));
                    }
                }
                Err(RedLetterError::Refused { code, message })
            }
            Err(error) => Err(RedLetterError::Unavailable(error.to_string())),
        }
    }

    async fn form_of(
        &self,
        seller: &TaxpayerId,
        number: &str,
    ) -> Result<StoredForm, RedLetterError> {
        self.inner
            .store
            .form_by_number(&Scope::sellers([seller.as_str()]), number)
            .await?
            .ok_or_else(|| RedLetterError::FormNotFound(number.to_owned()))
    }

    /// Do what is due for one form; errors put it off by `retry_after`.
    async fn follow_up(&self, form: StoredForm) {
        let id = form.id;
        if let Err(error) = self.try_follow_up(form).await {
            let message = error.to_string();
            tracing::warn!(form = id, error = %message, "red-letter follow-up failed");
            let retry = Some(self.later(self.inner.config.retry_after));
            if let Err(error) = self.inner.store.defer_form(id, retry, Some(&message)).await {
                tracing::error!(
                    form = id,
                    error = format!("{error:#}"),
                    "cannot defer a form"
                );
            }
        }
    }

    async fn try_follow_up(&self, form: StoredForm) -> Result<(), RedLetterError> {
        match form.phase {
            FormPhase::Filing => match self.file(form, ACTOR).await {
                // A refusal is final and already written; an outage is already deferred.
                Ok(_) | Err(RedLetterError::Refused { .. } | RedLetterError::Unavailable(_)) => {
                    Ok(())
                }
                Err(error) => Err(error),
            },
            FormPhase::Platform(status) if status.allows_red() && form.red_number.is_none() => {
                self.issue_red(&form, ACTOR).await.map(|_| ())
            }
            FormPhase::Platform(_) => {
                let seller = seller_of(&form)?;
                let number = form.number.clone().unwrap_or_default();
                match self.inner.platform.red_letter_form(&seller, &number).await {
                    Ok(Some(remote)) => self.take_and_issue(&form, &remote).await,
                    Ok(None) => Err(RedLetterError::FormNotFound(number)),
                    Err(error) => Err(RedLetterError::Unavailable(error.to_string())),
                }
            }
        }
    }

    /// Take the platform's view of a form and issue its red invoice if that is now due.
    async fn take_and_issue(
        &self,
        form: &StoredForm,
        remote: &RemoteForm,
    ) -> Result<(), RedLetterError> {
        let fresh = self.take(form, remote, ACTOR).await?;
        if fresh.phase.status().is_some_and(FormStatus::allows_red) && fresh.red_number.is_none() {
            self.issue_red(&fresh, ACTOR).await?;
        }
        Ok(())
    }

    /// Pick up forms of `seller` changed on the platform since `since`: forms buyers filed, and
    /// changes to ours.
    async fn discover(
        &self,
        seller: &TaxpayerId,
        since: DateTime<Utc>,
    ) -> Result<(), RedLetterError> {
        let mut page = Some(0);
        while let Some(p) = page {
            let listed = self
                .inner
                .platform
                .list_red_letter_forms(seller, since, p, 200)
                .await
                .map_err(|e| RedLetterError::Unavailable(e.to_string()))?;
            for remote in &listed.items {
                self.discovered(remote).await?;
            }
            page = listed.next_page;
        }
        Ok(())
    }

    async fn discovered(&self, remote: &RemoteForm) -> Result<(), RedLetterError> {
        let store = &self.inner.store;
        if let Some(form) = store
            .form_by_number(&Scope::unrestricted(), &remote.number)
            .await?
        {
            if form.phase.status() != Some(remote.status)
                || (form.red_number.is_none() && remote.red_number.is_some())
            {
                self.take_and_issue(&form, remote).await?;
            }
            return Ok(());
        }
        if remote.initiator != Initiator::Buyer {
            // Ours, but not stored under its number yet: the filing's follow-up takes it.
            return Ok(());
        }
        let Some(blue) = store
            .get_invoice(&Scope::unrestricted(), &remote.blue_number)
            .await?
        else {
            tracing::warn!(
                form = remote.number.as_str(),
                blue = %remote.blue_number,
                "a buyer filed a form for a blue invoice this store does not hold"
            );
            return Ok(());
        };
        let next = self.next_check(remote, false);
        if store
            .add_buyer_form(remote, blue.content.kind, next, ACTOR)
            .await?
            .is_some()
        {
            self.bump();
        }
        Ok(())
    }
}

fn seller_of(form: &StoredForm) -> anyhow::Result<TaxpayerId> {
    TaxpayerId::parse(&form.seller_tax_id)
        .map_err(|_| anyhow::anyhow!("seller tax id of form {} in the store", form.id))
}

fn wrong_status(code: &'static str, form: &StoredForm) -> RedLetterError {
    RedLetterError::WrongStatus {
        code,
        number: form.number.clone().unwrap_or_default(),
        status: form.phase.as_str().to_owned(),
    }
}

/// SM3 of what a request asks, so the same request again is recognised: decimals normalised
/// ("40" equals "40.00"), one line per field.
fn request_digest(request: &RedLetterRequest) -> String {
    let decimal = |text: &str| {
        text.trim()
            .parse::<rust_decimal::Decimal>()
            .map_or_else(|_| text.trim().to_owned(), |d| d.normalize().to_string())
    };
    let scope = match &request.scope {
        ReversalScope::Full => "full".to_owned(),
        ReversalScope::Lines(lines) => lines
            .iter()
            .map(|l| {
                format!(
                    "{}:{}:{}",
                    l.line_number,
                    decimal(&l.amount),
                    decimal(&l.quantity)
                )
            })
            .collect::<Vec<_>>()
            .join(";"),
    };
    let text = [
        request.request_id.as_str(),
        &request.blue_number.to_string(),
        request.reason.code(),
        &scope,
        &request.remark,
        &request.drawer,
    ]
    .join("\n");
    crate::platform::protocol::sm3_hex(text.as_bytes())
}

/// Start the follow-up worker over the forms of `sellers`. It stops when `stop` turns true.
pub fn spawn(
    red_letters: RedLetters,
    sellers: Vec<TaxpayerId>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let config = red_letters.inner.config.clone();
        let look_back = chrono::Duration::from_std(config.look_back).unwrap_or_default();
        let mut since = red_letters.now() - look_back;
        let mut next_discovery = red_letters.now();
        while !*stop.borrow() {
            let now = red_letters.now();
            match red_letters.inner.store.due_forms(now, 100).await {
                Ok(due) => {
                    for form in due {
                        red_letters.follow_up(form).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "reading due red-letter forms failed"
                    );
                }
            }
            if now >= next_discovery {
                let mut all_seen = true;
                for seller in &sellers {
                    if let Err(error) = red_letters.discover(seller, since).await {
                        all_seen = false;
                        tracing::warn!(seller = seller.as_str(), error = %error, "looking for red-letter forms failed");
                    }
                }
                if all_seen {
                    // A minute of overlap: a change stamped just before the look is not missed.
                    since = now - chrono::Duration::minutes(1);
                }
                next_discovery = red_letters.later(config.poll_every);
            }
            let pause = match red_letters.inner.store.next_form_check().await {
                Ok(Some(due)) => (due - red_letters.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(config.poll_every),
                _ => config.poll_every,
            };
            let pause = pause.max(Duration::from_millis(20));
            tokio::select! {
                () = red_letters.inner.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::debug!("red-letter follow-up stopped");
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fapiao_invoice::model::RedLetterReason;
    use fapiao_invoice::redletter::LineReversalDraft;

    fn partial(amount: &str) -> RedLetterRequest {
        RedLetterRequest {
            request_id: "refund-1".into(),
            blue_number: "26312000000000000001".parse().expect("a number"),
            reason: RedLetterReason::SalesAllowance,
            scope: ReversalScope::Lines(vec![LineReversalDraft {
                line_number: 1,
                amount: amount.into(),
                quantity: String::new(),
            }]),
            remark: String::new(),
            drawer: "张三".into(),
        }
    }

    #[test]
    fn the_same_request_in_other_notation_has_the_same_digest() {
        assert_eq!(
            request_digest(&partial("40")),
            request_digest(&partial("40.00"))
        );
        assert_ne!(
            request_digest(&partial("40")),
            request_digest(&partial("40.01"))
        );
        let full = RedLetterRequest {
            scope: ReversalScope::Full,
            ..partial("40")
        };
        assert_ne!(request_digest(&full), request_digest(&partial("40")));
    }
}
