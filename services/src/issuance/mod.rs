//! The issuance workflow: from a validated invoice to a numbered, stored, uploaded one.
//!
//! - [`writer`]: one task that issues queued invoices in batches, each batch one transaction
//!   (group commit): idempotency, quota debit, numbers, rows and events together.
//! - [`supply`]: tops up number ranges and quota from the platform before they run out.
//! - [`upload`]: uploads issued invoices, follows receipts, backs off, and settles each invoice as
//!   `RECORDED` or `REJECTED`.
//!
//! [`Issuance`] is what the gRPC handlers call. It must not know about gRPC; it speaks domain and
//! store types and its own [`IssueError`].

pub mod supply;
pub mod upload;
pub mod writer;

use crate::clock::SharedClock;
use crate::store::{IssueItem, IssueOutcome, Scope, Store, StoredInvoice};
use fapiao_invoice::model::{Colour, InvoiceContent};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Why an invoice was not issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error(
        "request id {request_id} was already used for invoice {existing} with different content"
    )]
    Conflict {
        request_id: String,
        existing: InvoiceNumber,
    },
    #[error("request id {request_id} belongs to red-letter request {form_number}")]
    HeldByRedLetter {
        request_id: String,
        form_number: String,
    },
    #[error("no reserved invoice numbers left for seller {seller}; a top-up is under way")]
    NumbersExhausted { seller: String },
    #[error("downloaded quota of seller {seller} cannot cover this invoice; a top-up is under way")]
    QuotaExhausted { seller: String },
    #[error(
        "the monthly quota of seller {seller} cannot cover this invoice ({needed} yuan needed, {left} left)"
    )]
    QuotaInsufficient {
        seller: String,
        needed: Decimal,
        left: Decimal,
    },
    #[error("the store is unavailable; retry with the same request id")]
    Unavailable,
}

impl IssueError {
    /// The stable code callers branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Conflict { .. } | Self::HeldByRedLetter { .. } => "REQUEST_ID_REUSED",
            Self::NumbersExhausted { .. } => "NUMBERS_EXHAUSTED",
            Self::QuotaExhausted { .. } => "QUOTA_EXHAUSTED",
            Self::QuotaInsufficient { .. } => "QUOTA_INSUFFICIENT",
            Self::Unavailable => "STORE_UNAVAILABLE",
        }
    }
}

/// An issued invoice, and whether this call only found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub invoice: StoredInvoice,
    pub replayed: bool,
}

/// The handle the API holds. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Issuance {
    store: Store,
    queue: mpsc::Sender<writer::Job>,
    changes: watch::Receiver<u64>,
    supply: supply::SupplyHandle,
    /// Turns true at shutdown: waits then answer with the current state.
    stopping: watch::Receiver<bool>,
}

impl Issuance {
    pub fn new(
        store: Store,
        queue: mpsc::Sender<writer::Job>,
        changes: watch::Receiver<u64>,
        supply: supply::SupplyHandle,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            queue,
            changes,
            supply,
            stopping,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The handle of the task that tops numbers and quota up.
    pub fn supply(&self) -> &supply::SupplyHandle {
        &self.supply
    }

    /// Issue validated invoices, each for its seller; one result per input, in order.
    pub async fn issue(
        &self,
        items: Vec<(TaxpayerId, InvoiceContent)>,
        actor: &str,
    ) -> Vec<Result<Issued, IssueError>> {
        let mut pending = Vec::with_capacity(items.len());
        for (seller, content) in items {
            let item = IssueItem {
                seller_tax_id: seller.as_str().to_owned(),
                request_id: content.request_id.clone(),
                content_sm3: content_digest(&content),
                quota_fen: quota_fen(&content),
                content,
                actor: actor.to_owned(),
            };
            let (reply, answer) = oneshot::channel();
            let needed = item.quota_fen;
            let request_id = item.request_id.clone();
            let job = writer::Job {
                item,
                reply,
                accepted: std::time::Instant::now(),
            };
            let sent = self.queue.send(job).await.is_ok();
            pending.push((seller, sent, answer, needed, request_id));
        }
        let mut results = Vec::with_capacity(pending.len());
        for (seller, sent, answer, needed, request_id) in pending {
            let outcome = if sent { answer.await.ok() } else { None };
            results.push(match outcome {
                Some(Ok(outcome)) => self.interpret(&seller, outcome, needed, request_id).await,
                Some(Err(())) | None => Err(IssueError::Unavailable),
            });
        }
        results
    }

    async fn interpret(
        &self,
        seller: &TaxpayerId,
        outcome: IssueOutcome,
        needed_fen: i64,
        request_id: String,
    ) -> Result<Issued, IssueError> {
        let seller_text = seller.as_str().to_owned();
        match outcome {
            IssueOutcome::Issued(invoice) => Ok(Issued {
                invoice: *invoice,
                replayed: false,
            }),
            IssueOutcome::Replayed(invoice) => Ok(Issued {
                invoice: *invoice,
                replayed: true,
            }),
            IssueOutcome::Conflict { existing } => Err(IssueError::Conflict {
                request_id,
                existing,
            }),
            IssueOutcome::HeldByRedLetter { form_number } => Err(IssueError::HeldByRedLetter {
                request_id,
                form_number,
            }),
            IssueOutcome::NumbersExhausted => {
                self.supply.wake();
                Err(IssueError::NumbersExhausted {
                    seller: seller_text,
                })
            }
            IssueOutcome::QuotaExhausted => {
                let status = self.store.supply_status(seller).await.ok();
                if let Some(status) = status
                    && let Some(available) = status.platform_available_fen
                    && status.quota_left_fen.saturating_add(available) < needed_fen
                {
                    return Err(IssueError::QuotaInsufficient {
                        seller: seller_text,
                        needed: Decimal::new(needed_fen, 2),
                        left: Decimal::new(status.quota_left_fen.saturating_add(available), 2),
                    });
                }
                self.supply.want_quota(seller, needed_fen);
                Err(IssueError::QuotaExhausted {
                    seller: seller_text,
                })
            }
        }
    }

    /// One invoice by number, if `scope` admits its seller.
    pub async fn get(
        &self,
        scope: &Scope,
        number: &InvoiceNumber,
    ) -> anyhow::Result<Option<StoredInvoice>> {
        self.store.get_invoice(scope, number).await
    }

    /// One invoice by seller and request id, if `scope` admits the seller.
    pub async fn find(
        &self,
        scope: &Scope,
        seller: &TaxpayerId,
        request_id: &str,
    ) -> anyhow::Result<Option<StoredInvoice>> {
        self.store
            .find_by_request(scope, seller.as_str(), request_id)
            .await
    }

    /// Re-read the invoices until each has the platform's final word or `timeout` passes; returns
    /// them in their latest state.
    pub async fn wait_settled(
        &self,
        mut invoices: Vec<StoredInvoice>,
        timeout: Duration,
    ) -> anyhow::Result<Vec<StoredInvoice>> {
        let mut changes = self.changes.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stopping = *self.stopping.borrow();
            if stopping || invoices.iter().all(|i| i.state.is_settled()) {
                return Ok(invoices);
            }
            // Wake on a local change, or poll now and then for changes made by other replicas.
            let wake = tokio::time::timeout(Duration::from_millis(500), changes.changed());
            if tokio::time::timeout_at(deadline, wake).await.is_err() {
                return Ok(invoices);
            }
            // One read for all the invoices still waiting, however many were issued together.
            let waiting: Vec<InvoiceNumber> = invoices
                .iter()
                .filter(|i| !i.state.is_settled())
                .map(|i| i.number)
                .collect();
            // These invoices were already read for the caller; only their state is new.
            let fresh = self
                .store
                .get_invoices(&Scope::unrestricted(), &waiting)
                .await?;
            for invoice in &mut invoices {
                if let Some(newer) = fresh.iter().find(|f| f.number == invoice.number) {
                    *invoice = newer.clone();
                }
            }
        }
    }

    /// A receiver that changes whenever this process writes invoice events.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

/// SM3 of the content with decimals normalised ("1" equals "1.000"), so a retried request is
/// recognised as the same whatever notation the caller used.
pub fn content_digest(content: &InvoiceContent) -> String {
    let mut normal = content.clone();
    for line in &mut normal.lines {
        line.quantity = line.quantity.map(|q| q.normalize());
        line.unit_price = line.unit_price.map(|p| p.normalize());
    }
    let json = serde_json::to_vec(&normal).unwrap_or_default();
    crate::platform::protocol::sm3_hex(&json)
}

/// Quota an invoice uses, in fen: the tax-exclusive total of a blue invoice; red invoices use none.
pub fn quota_fen(content: &InvoiceContent) -> i64 {
    if content.colour() == Colour::Red {
        return 0;
    }
    (content.totals.amount * Decimal::ONE_HUNDRED)
        .round()
        .to_i64()
        .unwrap_or(i64::MAX)
        .max(0)
}

/// The shared pieces every background task gets.
#[derive(Debug, Clone)]
pub struct Shared {
    pub store: Store,
    pub clock: SharedClock,
    pub platform: Arc<dyn crate::platform::TaxPlatform>,
    /// Bumped whenever invoice events are written.
    pub changes: watch::Sender<u64>,
    /// What the workflow counts for `/metrics`.
    pub metrics: crate::metrics::Metrics,
}

impl Shared {
    pub(crate) fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A valid blue invoice for tests: one line of goods at 13 %.
#[cfg(test)]
pub(crate) fn sample_content(request_id: &str) -> InvoiceContent {
    use fapiao_invoice::catalog::TaxCodeCatalog;
    use fapiao_invoice::limits::Limits;
    use fapiao_invoice::model::{
        BuyerDraft, InvoiceDraft, InvoiceKind, LineDraft, LineNature, PricingMode,
    };
    let draft = InvoiceDraft {
        request_id: request_id.into(),
        kind: Some(InvoiceKind::Special),
        seller: fapiao_invoice::model::SellerDraft::from(&crate::sellers::SellerProfile::demo()),
        buyer: BuyerDraft {
            name: "北京示例采购有限公司".into(),
            tax_id: "91110302MA01NP925M".into(),
            ..Default::default()
        },
        pricing: Some(PricingMode::TaxExclusive),
        lines: vec![LineDraft {
            item_name: "笔记本电脑".into(),
            tax_code: "1090509010000000000".into(),
            amount: "1000.00".into(),
            tax_rate: "13%".into(),
            nature: LineNature::Normal,
            ..Default::default()
        }],
        drawer: "张三".into(),
        ..Default::default()
    };
    fapiao_invoice::validate::Validator::new(&TaxCodeCatalog::bundled(), &Limits::default())
        .validate(&draft)
        .expect("the sample invoice is valid")
}
