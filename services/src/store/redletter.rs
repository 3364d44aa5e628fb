//! Red-letter confirmation forms: reserving a reversal against its blue invoice, following the
//! platform's status, linking the red invoice, turning a blue invoice reversed once its red
//! invoices are recorded, and the status events `WatchRedLetterForms` reads.
//!
//! The invariant it owns: what the forms of one blue invoice reverse never exceeds the blue
//! invoice, line by line, however many requests arrive at once. A form is stored (as `FILING`)
//! before the platform is asked, in a transaction that holds the blue invoice's row (PostgreSQL:
//! `FOR UPDATE`; SQLite: its single writer), and is checked against every form of that invoice
//! that is not void.

mod read;

use super::read::NewEvent;
use super::{
    INVOICE_COLUMNS, InvoiceState, Store, StoredInvoice, decode_invoice, from_micros, kind_text,
    micros, placeholders,
};
use crate::platform::RemoteForm;
use anyhow::Context;
use chrono::{DateTime, Utc};
use fapiao_invoice::model::{Colour, InvoiceKind, RedLetterReason};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::redletter::{
    FormStatus, Initiator, RedLine, ReversalScope, Reversed, plan_reversal,
};
use fapiao_invoice::violation::Violation;
use rust_decimal::Decimal;
use sqlx::Row;
use sqlx::any::AnyRow;

/// Where a form stands: being filed (the platform has not answered yet), or the platform's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormPhase {
    Filing,
    Platform(FormStatus),
}

impl FormPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filing => "FILING",
            Self::Platform(status) => status.code(),
        }
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        if text == "FILING" {
            return Ok(Self::Filing);
        }
        FormStatus::from_code(text)
            .map(Self::Platform)
            .with_context(|| format!("unknown red-letter form status {text:?} in the store"))
    }

    /// The platform's status, once it has one.
    pub fn status(self) -> Option<FormStatus> {
        match self {
            Self::Filing => None,
            Self::Platform(status) => Some(status),
        }
    }

    /// Whether the form holds on to what it reverses: everything but a void form.
    pub fn reserves(self) -> bool {
        self.status().is_none_or(|s| !s.is_void())
    }
}

/// A form as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredForm {
    pub id: i64,
    pub seller_tax_id: String,
    /// `None` for a form the buyer filed.
    pub request_id: Option<String>,
    pub request_sm3: Option<String>,
    /// `None` while filing.
    pub number: Option<String>,
    pub uuid: Option<String>,
    pub blue_number: InvoiceNumber,
    pub blue_kind: InvoiceKind,
    pub reason: RedLetterReason,
    pub phase: FormPhase,
    pub initiator: Initiator,
    /// What each blue line loses, as positive magnitudes.
    pub lines: Vec<RedLine>,
    /// Positive magnitudes.
    pub amount: Decimal,
    pub tax: Decimal,
    pub remark: String,
    pub drawer: String,
    pub actor: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub status_changed_at: DateTime<Utc>,
    pub red_number: Option<InvoiceNumber>,
}

impl StoredForm {
    /// The request id its red invoice is issued under: the seller's, or the form number for a
    /// form the buyer filed.
    pub fn red_request_id(&self) -> String {
        self.request_id
            .clone()
            .or_else(|| self.number.clone())
            .unwrap_or_default()
    }
}

/// A status change of a form, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFormEvent {
    /// Increases in commit order; the cursor of `WatchRedLetterForms`.
    pub id: i64,
    pub form_number: String,
    pub seller_tax_id: String,
    pub request_id: String,
    pub blue_number: String,
    pub status: FormStatus,
    pub previous_status: Option<FormStatus>,
    pub at: DateTime<Utc>,
    pub reason: String,
    pub actor: String,
    pub red_number: Option<String>,
}

/// A seller's request to reverse a blue invoice.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub seller_tax_id: String,
    pub request_id: String,
    /// SM3 of the request: equal digests mean "the same request again".
    pub request_sm3: String,
    pub blue_number: InvoiceNumber,
    pub reason: RedLetterReason,
    pub scope: ReversalScope,
    pub remark: String,
    pub drawer: String,
    pub actor: String,
}

/// What became of a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// Stored as `FILING`: file it with the platform now.
    New(Box<StoredForm>),
    /// The same request was made before: its form, as it stands.
    Existing(Box<StoredForm>),
    /// The request id was used before for another request or invoice.
    Conflict,
    /// No such blue invoice of this seller.
    BlueNotFound,
    /// The blue invoice is a red one.
    BlueIsRed,
    /// The blue invoice is not recorded by the platform yet (or was rejected).
    BlueNotRecorded(InvoiceState),
    /// Another form for the blue invoice waits for an answer.
    Pending { form_number: String },
    /// The reversal does not fit what remains (or names lines badly).
    Invalid(Vec<Violation>),
}

/// What a form listing filters on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormFilter {
    pub seller_tax_id: String,
    /// Platform status codes; empty means every status.
    pub statuses: Vec<String>,
    pub initiator: Option<Initiator>,
    pub blue_number: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
}

const FORM_COLUMNS: &str = "id, seller_tax_id, request_id, request_sm3, form_number, uuid, \
     blue_invoice_number, blue_kind, reason, status, initiator, lines, amount, tax, remark, drawer, \
     actor, created_at, expires_at, status_changed_at, red_invoice_number";

const EVENT_COLUMNS: &str = "id, form_number, seller_tax_id, request_id, blue_invoice_number, \
     status, previous_status, at, reason, actor, red_invoice_number";

fn initiator_text(initiator: Initiator) -> &'static str {
    match initiator {
        Initiator::Seller => "SELLER",
        Initiator::Buyer => "BUYER",
    }
}

fn decode_form(row: &AnyRow) -> anyhow::Result<StoredForm> {
    let blue: String = row.try_get("blue_invoice_number")?;
    let kind: String = row.try_get("blue_kind")?;
    let initiator: String = row.try_get("initiator")?;
    let lines: String = row.try_get("lines")?;
    let decimal = |name: &str| -> anyhow::Result<Decimal> {
        let text: String = row.try_get(name)?;
        text.parse()
            .with_context(|| format!("{name} of a red-letter form in the store"))
    };
    let red: Option<String> = row.try_get("red_invoice_number")?;
    Ok(StoredForm {
        id: row.try_get("id")?,
        seller_tax_id: row.try_get("seller_tax_id")?,
        request_id: row.try_get("request_id")?,
        request_sm3: row.try_get("request_sm3")?,
        number: row.try_get("form_number")?,
        uuid: row.try_get("uuid")?,
        blue_number: blue.parse().context("blue invoice number in the store")?,
        blue_kind: match kind.as_str() {
            "SPECIAL" => InvoiceKind::Special,
            "GENERAL" => InvoiceKind::General,
            other => anyhow::bail!("unknown invoice kind {other:?} in the store"),
        },
        reason: {
            let code: String = row.try_get("reason")?;
            RedLetterReason::from_code(&code)
                .with_context(|| format!("unknown red-letter reason {code:?} in the store"))?
        },
        phase: FormPhase::parse(&row.try_get::<String, _>("status")?)?,
        initiator: match initiator.as_str() {
            "SELLER" => Initiator::Seller,
            "BUYER" => Initiator::Buyer,
            other => anyhow::bail!("unknown initiator {other:?} in the store"),
        },
        lines: serde_json::from_str(&lines).context("lines of a red-letter form in the store")?,
        amount: decimal("amount")?,
        tax: decimal("tax")?,
        remark: row.try_get("remark")?,
        drawer: row.try_get("drawer")?,
        actor: row.try_get("actor")?,
        created_at: from_micros(row.try_get("created_at")?),
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")?
            .map(from_micros),
        status_changed_at: from_micros(row.try_get("status_changed_at")?),
        red_number: red
            .map(|r| r.parse())
            .transpose()
            .context("red invoice number in the store")?,
    })
}

fn decode_form_event(row: &AnyRow) -> anyhow::Result<StoredFormEvent> {
    let status = |name: &str| -> anyhow::Result<Option<FormStatus>> {
        let text: Option<String> = row.try_get(name)?;
        text.map(|t| {
            FormStatus::from_code(&t)
                .with_context(|| format!("unknown form status {t:?} in the store"))
        })
        .transpose()
    };
    Ok(StoredFormEvent {
        id: row.try_get("id")?,
        form_number: row.try_get("form_number")?,
        seller_tax_id: row.try_get("seller_tax_id")?,
        request_id: row.try_get("request_id")?,
        blue_number: row.try_get("blue_invoice_number")?,
        status: status("status")?.context("a form event without a status")?,
        previous_status: status("previous_status")?,
        at: from_micros(row.try_get("at")?),
        reason: row.try_get("reason")?,
        actor: row.try_get("actor")?,
        red_number: row.try_get("red_invoice_number")?,
    })
}

/// A form event to write.
struct FormEventWrite<'a> {
    form: &'a StoredForm,
    number: &'a str,
    status: FormStatus,
    previous: Option<FormStatus>,
    at: DateTime<Utc>,
    reason: &'a str,
    actor: &'a str,
    red_number: Option<String>,
}

async fn insert_form_event(
    tx: &mut sqlx::AnyConnection,
    e: FormEventWrite<'_>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO red_letter_events (form_number, seller_tax_id, request_id, \
         blue_invoice_number, status, previous_status, at, reason, actor, red_invoice_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(e.number.to_owned())
    .bind(e.form.seller_tax_id.clone())
    .bind(e.form.request_id.clone().unwrap_or_default())
    .bind(e.form.blue_number.to_string())
    .bind(e.status.code().to_owned())
    .bind(e.previous.map(|p| p.code().to_owned()))
    .bind(micros(e.at))
    .bind(e.reason.to_owned())
    .bind(e.actor.to_owned())
    .bind(e.red_number)
    .execute(&mut *tx)
    .await
    .context("writing a red-letter form event")?;
    Ok(())
}

/// Words for a status reached, for the event row.
pub fn status_reason(status: FormStatus) -> &'static str {
    match status {
        FormStatus::NoConfirmationNeeded => "filed; no confirmation needed",
        FormStatus::AwaitingBuyer => "filed; waiting for the buyer",
        FormStatus::AwaitingSeller => "filed by the buyer; waiting for the seller",
        FormStatus::Confirmed => "confirmed",
        FormStatus::VoidBuyerDisagreed => "the buyer disagreed",
        FormStatus::VoidSellerDisagreed => "the seller disagreed",
        FormStatus::VoidExpired => "expired after 72 h",
        FormStatus::VoidWithdrawn => "withdrawn",
        FormStatus::VoidRevokedAfterConfirmation => "revoked after confirmation",
        FormStatus::VoidAbnormalVoucher => "void: abnormal voucher",
        FormStatus::VoidTaxpayerBlocked => "void: taxpayer status blocked",
        FormStatus::VoidNaturalPersonRefused => "void: the natural-person buyer refused",
        FormStatus::VoidRefundApplicationIssued => "void: an export-refund application exists",
    }
}

impl Store {
    /// Check a reversal against its blue invoice and every form of it that is not void, and
    /// store it as `FILING` when it fits, all under the blue invoice's lock.
    pub async fn reserve_red_letter(
        &self,
        r: &Reservation,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Reserved> {
        let mut tx = self
            .write
            .begin()
            .await
            .context("starting a red-letter reservation")?;
        if let Some(known) = self.known_request(&mut tx, r).await? {
            return Ok(known);
        }
        let sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE invoice_number = $1{}",
            self.for_update()
        );
        let blue = sqlx::query(&sql)
            .bind(r.blue_number.to_string())
            .fetch_optional(&mut *tx)
            .await
            .context("reading the blue invoice")?
            .map(|row| decode_invoice(&row))
            .transpose()?;
        let Some(blue) = blue.filter(|b| b.seller_tax_id == r.seller_tax_id) else {
            return Ok(Reserved::BlueNotFound);
        };
        if blue.content.colour() == Colour::Red {
            return Ok(Reserved::BlueIsRed);
        }
        if !blue.state.is_recorded() {
            return Ok(Reserved::BlueNotRecorded(blue.state));
        }
        let forms = forms_of_blue(&mut tx, &r.blue_number).await?;
        if let Some(pending) = forms
            .iter()
            .find(|f| f.phase.status().is_some_and(FormStatus::is_pending))
        {
            return Ok(Reserved::Pending {
                form_number: pending.number.clone().unwrap_or_default(),
            });
        }
        let plan = match plan_reversal(&blue.content, &reversed_by(&forms), &r.scope) {
            Ok(plan) => plan,
            Err(violations) => return Ok(Reserved::Invalid(violations)),
        };
        let inserted = sqlx::query(
            "INSERT INTO red_letter_forms (seller_tax_id, request_id, request_sm3, \
             blue_invoice_number, blue_kind, reason, status, initiator, lines, amount, tax, remark, \
             drawer, actor, created_at, status_changed_at, next_check_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'FILING', 'SELLER', $7, $8, $9, $10, $11, $12, $13, \
             $13, $13) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(r.seller_tax_id.clone())
        .bind(r.request_id.clone())
        .bind(r.request_sm3.clone())
        .bind(r.blue_number.to_string())
        .bind(kind_text(blue.content.kind).to_owned())
        .bind(r.reason.code().to_owned())
        .bind(serde_json::to_string(&plan.lines)?)
        .bind(plan.amount.to_string())
        .bind(plan.tax.to_string())
        .bind(r.remark.clone())
        .bind(r.drawer.clone())
        .bind(r.actor.clone())
        .bind(micros(now))
        .fetch_optional(&mut *tx)
        .await
        .context("storing a red-letter form")?;
        let Some(row) = inserted else {
            // The request id arrived through another path meanwhile.
            tx.rollback().await.ok();
            let mut tx = self.write.begin().await?;
            return Ok(self
                .known_request(&mut tx, r)
                .await?
                .unwrap_or(Reserved::Conflict));
        };
        let id: i64 = row.try_get("id")?;
        let form = form_where(&mut tx, "id = $1", id)
            .await?
            .context("the form just stored")?;
        tx.commit()
            .await
            .context("committing a red-letter reservation")?;
        Ok(Reserved::New(Box::new(form)))
    }

    /// A replay or a conflict when the request id is already used by a form or an invoice.
    async fn known_request(
        &self,
        tx: &mut sqlx::AnyConnection,
        r: &Reservation,
    ) -> anyhow::Result<Option<Reserved>> {
        if let Some(form) = form_of_request(tx, &r.seller_tax_id, &r.request_id).await? {
            return Ok(Some(
                if form.request_sm3.as_deref() == Some(r.request_sm3.as_str()) {
                    Reserved::Existing(Box::new(form))
                } else {
                    Reserved::Conflict
                },
            ));
        }
        let invoice = sqlx::query(
            "SELECT invoice_number FROM invoices WHERE seller_tax_id = $1 AND request_id = $2",
        )
        .bind(r.seller_tax_id.clone())
        .bind(r.request_id.clone())
        .fetch_optional(&mut *tx)
        .await
        .context("looking up a request id among invoices")?;
        Ok(invoice.map(|_| Reserved::Conflict))
    }

    /// Give up a filing the platform refused: what it reserved is free again, and the request
    /// id may be used again.
    pub async fn drop_filing(&self, id: i64) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM red_letter_forms WHERE id = $1 AND status = 'FILING'")
            .bind(id)
            .execute(&self.write)
            .await
            .context("dropping a refused filing")?;
        Ok(())
    }

    /// Take the platform's view of a form: its number and times once filed, a new status, the
    /// red invoice it issued on its own. Writes an event per change; `next_check_at` is when to
    /// look again (`None`: nothing to follow). Returns the form as now stored.
    pub async fn follow_form(
        &self,
        id: i64,
        remote: &RemoteForm,
        next_check_at: Option<DateTime<Utc>>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<StoredForm> {
        let mut tx = self.write.begin().await.context("starting a form update")?;
        let form = form_where(&mut tx, "id = $1", id)
            .await?
            .context("the form to update")?;
        let previous = form.phase.status();
        let new_red = form.red_number.is_none() && remote.red_number.is_some();
        sqlx::query(
            "UPDATE red_letter_forms SET form_number = $1, uuid = $2, status = $3, \
             created_at = $4, expires_at = $5, status_changed_at = $6, \
             red_invoice_number = COALESCE(red_invoice_number, $7), next_check_at = $8, \
             check_attempts = 0, last_error = NULL WHERE id = $9",
        )
        .bind(remote.number.clone())
        .bind(remote.uuid.clone())
        .bind(remote.status.code().to_owned())
        .bind(micros(remote.created_at))
        .bind(remote.expires_at.map(micros))
        .bind(micros(remote.status_changed_at))
        .bind(remote.red_number.map(|n| n.to_string()))
        .bind(next_check_at.map(micros))
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("updating a red-letter form")?;
        if previous != Some(remote.status) || new_red {
            self.lock_event_order(&mut tx).await?;
        }
        if previous != Some(remote.status) {
            let reason = match (previous, remote.status) {
                (None, FormStatus::Confirmed) => "filed; confirmed",
                (_, FormStatus::Confirmed) if form.initiator == Initiator::Buyer => {
                    "the seller agreed"
                }
                (_, FormStatus::Confirmed) => "the buyer confirmed",
                (_, status) => status_reason(status),
            };
            let at = if previous.is_none() {
                remote.created_at
            } else {
                remote.status_changed_at
            };
            insert_form_event(
                &mut tx,
                FormEventWrite {
                    form: &form,
                    number: &remote.number,
                    status: remote.status,
                    previous,
                    at,
                    reason,
                    actor,
                    red_number: None,
                },
            )
            .await?;
        }
        if new_red {
            insert_form_event(
                &mut tx,
                FormEventWrite {
                    form: &form,
                    number: &remote.number,
                    status: remote.status,
                    previous: Some(remote.status),
                    at: now,
                    reason: "red invoice issued by the platform",
                    actor,
                    red_number: remote.red_number.map(|n| n.to_string()),
                },
            )
            .await?;
        }
        let form = form_where(&mut tx, "id = $1", id)
            .await?
            .context("the form just updated")?;
        tx.commit().await.context("committing a form update")?;
        Ok(form)
    }

    /// Store a form the buyer filed, first seen in the platform's listing. `None` when it is
    /// already stored.
    pub async fn add_buyer_form(
        &self,
        remote: &RemoteForm,
        blue_kind: InvoiceKind,
        next_check_at: Option<DateTime<Utc>>,
        actor: &str,
    ) -> anyhow::Result<Option<StoredForm>> {
        let mut tx = self.write.begin().await.context("starting a form insert")?;
        let inserted = sqlx::query(
            "INSERT INTO red_letter_forms (seller_tax_id, form_number, uuid, blue_invoice_number, \
             blue_kind, reason, status, initiator, lines, amount, tax, remark, drawer, actor, \
             created_at, expires_at, status_changed_at, red_invoice_number, next_check_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'BUYER', $8, $9, $10, '', '', $11, $12, $13, $14, \
             $15, $16) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(remote.seller.as_str().to_owned())
        .bind(remote.number.clone())
        .bind(remote.uuid.clone())
        .bind(remote.blue_number.to_string())
        .bind(kind_text(blue_kind).to_owned())
        .bind(remote.reason.code().to_owned())
        .bind(remote.status.code().to_owned())
        .bind(serde_json::to_string(&remote.lines)?)
        .bind(remote.amount.to_string())
        .bind(remote.tax.to_string())
        .bind(actor.to_owned())
        .bind(micros(remote.created_at))
        .bind(remote.expires_at.map(micros))
        .bind(micros(remote.status_changed_at))
        .bind(remote.red_number.map(|n| n.to_string()))
        .bind(next_check_at.map(micros))
        .fetch_optional(&mut *tx)
        .await
        .context("storing a form the buyer filed")?;
        let Some(row) = inserted else {
            return Ok(None);
        };
        let id: i64 = row.try_get("id")?;
        let form = form_where(&mut tx, "id = $1", id)
            .await?
            .context("the form just stored")?;
        self.lock_event_order(&mut tx).await?;
        insert_form_event(
            &mut tx,
            FormEventWrite {
                form: &form,
                number: &remote.number,
                status: remote.status,
                previous: None,
                at: remote.created_at,
                reason: "filed by the buyer",
                actor,
                red_number: None,
            },
        )
        .await?;
        tx.commit().await.context("committing a buyer's form")?;
        Ok(Some(form))
    }

    /// Link the red invoice issued for a form; the form needs no more follow-up. `false` when
    /// it already had one.
    pub async fn link_red_invoice(
        &self,
        id: i64,
        red: &StoredInvoice,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.write.begin().await.context("starting a red link")?;
        let linked = self
            .link_red(
                &mut tx,
                "id = $1",
                id,
                &red.number,
                "red invoice issued",
                actor,
                now,
            )
            .await?;
        tx.commit().await.context("committing a red link")?;
        Ok(linked)
    }

    /// The drawer of the red invoice a form will get (given when the seller agrees to a form the
    /// buyer filed).
    pub async fn set_form_drawer(&self, id: i64, drawer: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE red_letter_forms SET drawer = $1 WHERE id = $2")
            .bind(drawer.to_owned())
            .bind(id)
            .execute(&self.write)
            .await
            .context("setting a form's drawer")?;
        Ok(())
    }

    /// Look at a form again at `next_check_at`, keeping why the last look failed.
    pub async fn defer_form(
        &self,
        id: i64,
        next_check_at: Option<DateTime<Utc>>,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE red_letter_forms SET next_check_at = $1, \
             check_attempts = check_attempts + $2, last_error = $3 WHERE id = $4",
        )
        .bind(next_check_at.map(micros))
        .bind(i64::from(error.is_some()))
        .bind(error.map(str::to_owned))
        .bind(id)
        .execute(&self.write)
        .await
        .context("deferring a red-letter form")?;
        Ok(())
    }

    /// Forms whose follow-up is due, soonest first.
    pub async fn due_forms(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredForm>> {
        let sql = format!(
            "SELECT {FORM_COLUMNS} FROM red_letter_forms \
             WHERE next_check_at IS NOT NULL AND next_check_at <= $1 \
             ORDER BY next_check_at, id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(micros(now))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .context("reading due red-letter forms")?;
        rows.iter().map(decode_form).collect()
    }

    /// When the next follow-up is due, if any.
    pub async fn next_form_check(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MIN(next_check_at) AS due FROM red_letter_forms WHERE next_check_at IS NOT NULL",
        )
        .fetch_one(&self.read)
        .await
        .context("reading the next red-letter follow-up")?;
        Ok(row.try_get::<Option<i64>, _>("due")?.map(from_micros))
    }

    /// Link a red invoice adopted from the platform to its form, if the form does not name one
    /// yet.
    pub(crate) async fn link_adopted_red(
        &self,
        tx: &mut sqlx::AnyConnection,
        form_number: &str,
        red: &InvoiceNumber,
        now: DateTime<Utc>,
        actor: &str,
    ) -> anyhow::Result<()> {
        let reason = "red invoice adopted from the platform";
        self.link_red(
            tx,
            "form_number = $1",
            form_number.to_owned(),
            red,
            reason,
            actor,
            now,
        )
        .await?;
        Ok(())
    }

    /// Name `red` on the form `condition` finds, if it names no red invoice yet, and stop
    /// following the form; the event says `reason`. `false` when there is no such form or it
    /// already had a red invoice.
    #[allow(clippy::too_many_arguments)]
    async fn link_red<T>(
        &self,
        tx: &mut sqlx::AnyConnection,
        condition: &str,
        key: T,
        red: &InvoiceNumber,
        reason: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool>
    where
        T: 'static + for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send,
    {
        let Some(form) = form_where(tx, condition, key).await? else {
            return Ok(false);
        };
        let updated = sqlx::query(
            "UPDATE red_letter_forms SET red_invoice_number = $1, next_check_at = NULL, \
             check_attempts = 0, last_error = NULL WHERE id = $2 AND red_invoice_number IS NULL",
        )
        .bind(red.to_string())
        .bind(form.id)
        .execute(&mut *tx)
        .await
        .context("linking a red invoice")?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        if let (Some(number), Some(status)) = (&form.number, form.phase.status()) {
            self.lock_event_order(tx).await?;
            insert_form_event(
                tx,
                FormEventWrite {
                    form: &form,
                    number,
                    status,
                    previous: Some(status),
                    at: now,
                    reason,
                    actor,
                    red_number: Some(red.to_string()),
                },
            )
            .await?;
        }
        Ok(true)
    }

    /// Turn the blue invoices of newly recorded red invoices partially or fully reversed, by
    /// what all their recorded red invoices reverse. Returns the events to write with it (the
    /// caller holds the event-order lock).
    pub(crate) async fn reverse_blues(
        &self,
        tx: &mut sqlx::AnyConnection,
        recorded_reds: &[String],
        now: DateTime<Utc>,
        actor: &str,
    ) -> anyhow::Result<Vec<NewEvent>> {
        if recorded_reds.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT DISTINCT blue_invoice_number FROM invoices WHERE colour = 'RED' \
             AND blue_invoice_number IS NOT NULL AND invoice_number IN ({})",
            placeholders(1, recorded_reds.len())
        );
        let mut query = sqlx::query(&sql);
        for red in recorded_reds {
            query = query.bind(red.clone());
        }
        let blues: Vec<String> = query
            .fetch_all(&mut *tx)
            .await
            .context("finding reversed blue invoices")?
            .iter()
            .map(|row| row.try_get("blue_invoice_number"))
            .collect::<Result<_, _>>()?;
        let mut events = Vec::new();
        for blue in blues {
            let sql = format!(
                "SELECT state, seller_tax_id, request_id, amount, tax FROM invoices \
                 WHERE invoice_number = $1{}",
                self.for_update()
            );
            let Some(row) = sqlx::query(&sql)
                .bind(blue.clone())
                .fetch_optional(&mut *tx)
                .await
                .context("reading a reversed blue invoice")?
            else {
                continue;
            };
            let state: InvoiceState = row.try_get::<String, _>("state")?.parse()?;
            if !state.is_recorded() {
                continue;
            }
            let money = |row: &AnyRow, name: &str| -> anyhow::Result<Decimal> {
                let text: String = row.try_get(name)?;
                text.parse().context("an amount in the store")
            };
            let (blue_amount, blue_tax) = (money(&row, "amount")?, money(&row, "tax")?);
            let request_id: String = row.try_get("request_id")?;
            let seller_tax_id: String = row.try_get("seller_tax_id")?;
            let reds = sqlx::query(
                "SELECT amount, tax FROM invoices WHERE blue_invoice_number = $1 \
                 AND colour = 'RED' AND state = 'RECORDED'",
            )
            .bind(blue.clone())
            .fetch_all(&mut *tx)
            .await
            .context("reading red invoices of a blue invoice")?;
            let (mut amount, mut tax) = (Decimal::ZERO, Decimal::ZERO);
            for red in &reds {
                amount -= money(red, "amount")?;
                tax -= money(red, "tax")?;
            }
            let target = if amount >= blue_amount && tax >= blue_tax {
                InvoiceState::FullyReversed
            } else if amount.is_zero() && tax.is_zero() {
                InvoiceState::Recorded
            } else {
                InvoiceState::PartiallyReversed
            };
            if target == state {
                continue;
            }
            sqlx::query(
                "UPDATE invoices SET state = $1, state_changed_at = $2 WHERE invoice_number = $3",
            )
            .bind(target.as_str().to_owned())
            .bind(micros(now))
            .bind(blue.clone())
            .execute(&mut *tx)
            .await
            .context("marking a blue invoice reversed")?;
            events.push(NewEvent {
                invoice_number: blue,
                seller_tax_id,
                request_id,
                colour: Colour::Blue,
                state: target,
                previous_state: Some(state),
                at: now,
                reason: "red invoice recorded".to_owned(),
                actor: actor.to_owned(),
                platform_code: None,
                platform_message: None,
            });
        }
        Ok(events)
    }
}

/// What the forms that are not void take from each blue line.
fn reversed_by(forms: &[StoredForm]) -> Vec<Reversed> {
    forms
        .iter()
        .filter(|f| f.phase.reserves())
        .flat_map(|f| f.lines.iter().map(|l| Reversed::from(*l)))
        .collect()
}

async fn forms_of_blue(
    conn: &mut sqlx::AnyConnection,
    blue: &InvoiceNumber,
) -> anyhow::Result<Vec<StoredForm>> {
    let sql = format!(
        "SELECT {FORM_COLUMNS} FROM red_letter_forms WHERE blue_invoice_number = $1 ORDER BY id"
    );
    let rows = sqlx::query(&sql)
        .bind(blue.to_string())
        .fetch_all(&mut *conn)
        .await
        .context("reading the forms of a blue invoice")?;
    rows.iter().map(decode_form).collect()
}

async fn form_of_request(
    conn: &mut sqlx::AnyConnection,
    seller: &str,
    request_id: &str,
) -> anyhow::Result<Option<StoredForm>> {
    let sql = format!(
        "SELECT {FORM_COLUMNS} FROM red_letter_forms WHERE seller_tax_id = $1 AND request_id = $2"
    );
    sqlx::query(&sql)
        .bind(seller.to_owned())
        .bind(request_id.to_owned())
        .fetch_optional(&mut *conn)
        .await
        .context("looking up a red-letter request id")?
        .map(|row| decode_form(&row))
        .transpose()
}

async fn form_where<T>(
    conn: &mut sqlx::AnyConnection,
    condition: &str,
    value: T,
) -> anyhow::Result<Option<StoredForm>>
where
    T: 'static + for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send,
{
    let sql = format!("SELECT {FORM_COLUMNS} FROM red_letter_forms WHERE {condition}");
    sqlx::query(&sql)
        .bind(value)
        .fetch_optional(&mut *conn)
        .await
        .context("reading a red-letter form")?
        .map(|row| decode_form(&row))
        .transpose()
}

impl crate::grpc::watch::Followed for StoredFormEvent {
    fn id(&self) -> i64 {
        self.id
    }
}
