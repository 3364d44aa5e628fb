//! The upload side of the state: judging an uploaded invoice, and an upload's results.

use chrono::{DateTime, Utc};
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;

use super::super::checks::{self, BlueView, Rejection};
use super::State;
use crate::platform::UploadItemResult;
use crate::platform::protocol::messages::codes;

/// An uploaded invoice, decoded and hashed before the state is locked.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub number: InvoiceNumber,
    pub issued_at: DateTime<Utc>,
    pub content: InvoiceContent,
    pub content_sm3: String,
}

/// What the platform makes of one uploaded invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Judgement {
    /// New and valid: record it.
    Accept,
    /// Already recorded with the same content: recorded again, idempotently.
    Duplicate,
    Reject(Rejection),
}

/// An upload's result as a query sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UploadView {
    Pending,
    Done(Vec<UploadItemResult>),
}

impl State {
    /// What to do with one uploaded invoice of `seller`; `Err` (busy) when a recorded invoice it
    /// needs cannot be read back.
    pub fn judge(&self, seller: &TaxpayerId, invoice: &Prepared) -> Result<Judgement, Rejection> {
        if let Some(record) = self.records.get(&invoice.number).map_err(busy)? {
            return Ok(
                if record.seller == *seller && record.content == invoice.content {
                    Judgement::Duplicate
                } else {
                    Judgement::Reject(Rejection::new(
                        codes::NUMBER_CONFLICT,
                        format!("发票号码{}已上传，且内容与本次上传不一致", invoice.number),
                    ))
                },
            );
        }
        if self.assigned_to(&invoice.number) != Some(seller) {
            return Ok(Judgement::Reject(Rejection::new(
                codes::NUMBER_NOT_ASSIGNED,
                format!("发票号码{}未分配给该纳税人", invoice.number),
            )));
        }
        let blue = match &invoice.content.red {
            Some(reference) => self.records.get(&reference.blue_number).map_err(busy)?,
            None => None,
        };
        let checked = checks::content(seller, &invoice.content).and_then(|()| {
            let view = blue.as_ref().map(|record| BlueView {
                seller: &record.seller,
                content: &record.content,
                reversed: record.reversed,
            });
            checks::red_reference(seller, &invoice.content, view)?;
            let form = invoice
                .content
                .red
                .as_ref()
                .and_then(|reference| self.forms.get(&reference.form_number));
            checks::red_form(seller, &invoice.content, form)
        });
        Ok(match checked {
            Ok(()) => Judgement::Accept,
            Err(rejection) => Judgement::Reject(rejection),
        })
    }

    /// The result of an upload of `seller`, `None` when unknown.
    pub fn upload_result(
        &self,
        seller: &TaxpayerId,
        receipt: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UploadView>, Rejection> {
        let upload = self.records.upload(receipt).map_err(busy)?;
        Ok(upload.filter(|u| u.seller == *seller).map(|upload| {
            if now < upload.ready_at {
                UploadView::Pending
            } else {
                UploadView::Done(upload.items)
            }
        }))
    }
}

/// A recorded invoice the sandbox cannot read back: logged, and answered busy, so the caller tries
/// again.
pub(super) fn busy(error: std::io::Error) -> Rejection {
    tracing::error!(%error, "the sandbox cannot read its scratch file");
    Rejection::new(codes::SYSTEM_BUSY, "系统繁忙，请稍后重试")
}
