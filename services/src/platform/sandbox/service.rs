//! The business services of the sandbox: decode a verified, opened request, act on the state, and
//! encode the business reply (`returncode`, `returnmsg` and the payload).
//!
//! Decoding, hashing and encoding happen outside the state lock; the lock is held only to decide
//! and commit. It must not verify, seal, sleep or inject faults: that is the HTTP layer's job (the
//! one exception is the self-issued red invoice, a fault of the platform's own behaviour, rolled
//! in [`forms`] when a form is confirmed). `now` is business time.

use chrono::{DateTime, Utc};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) mod forms;

use super::Shared;
use super::checks::Rejection;
use super::faults::Plan;
use super::state::{Event, Grant, Judgement, Prepared, Record, UploadView};
use super::stats::Stats;
use crate::platform::protocol::messages::{self, codes};
use crate::platform::protocol::platform_digest;
use crate::platform::{UploadItemResult, UploadOutcome};

/// Largest page of a day's listing.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Why a service gave no successful reply.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A business refusal: answered with its code.
    Refused(Rejection),
    /// The journal could not be written: the outcome is unknown to the caller.
    Journal(std::io::Error),
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Self {
        Self::Refused(rejection)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Self::Journal(error)
    }
}

/// Answers one business request; `Err` only when the journal failed.
pub(crate) fn handle(
    shared: &Shared,
    service: &str,
    body: &str,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, std::io::Error> {
    let answer = match service {
        messages::RESERVE_NUMBERS => reserve(shared, body, now),
        messages::QUERY_QUOTA => quota(shared, body, now),
        messages::DOWNLOAD_QUOTA => download(shared, body, now),
        messages::UPLOAD => upload(shared, body, plan, now),
        messages::UPLOAD_RESULT => upload_result(shared, body, plan, now),
        messages::QUERY_INVOICE => query_invoice(shared, body),
        messages::LIST_INVOICES => list(shared, body),
        messages::USAGE_STATUS => usage(shared, body),
        messages::FILE_FORM => forms::file(shared, body, now),
        messages::QUERY_FORM => forms::query(shared, body, now),
        messages::ANSWER_FORM => forms::answer(shared, body, now),
        messages::LIST_FORMS => forms::list(shared, body, now),
        _ => Err(Rejection::new(codes::SERVICE_UNKNOWN, "服务编码不存在").into()),
    };
    match answer {
        Ok(json) => Ok(json),
        Err(Failure::Refused(rejection)) => {
            shared.with_stats(|s| Stats::bump(&mut s.refusals, rejection.code, 1));
            Ok(refusal(&rejection))
        }
        Err(Failure::Journal(error)) => Err(error),
    }
}

fn success<T: Serialize>(data: &T) -> Vec<u8> {
    let reply = messages::SuccessReply {
        returncode: codes::SUCCESS,
        returnmsg: "成功",
        data,
    };
    serde_json::to_vec(&reply).expect("business replies are plain data and always serialise")
}

fn refusal(rejection: &Rejection) -> Vec<u8> {
    let status = messages::ReplyStatus {
        returncode: rejection.code.to_owned(),
        returnmsg: rejection.message.clone(),
    };
    serde_json::to_vec(&status).expect("business replies are plain data and always serialise")
}

/// The request as `T`; the error gives the position only, never the text (it may be personal).
fn decode<T: DeserializeOwned>(body: &str) -> Result<T, Rejection> {
    serde_json::from_str(body).map_err(|e| {
        Rejection::new(
            codes::REQUEST_INVALID,
            format!("请求报文格式不正确（第{}行第{}列）", e.line(), e.column()),
        )
    })
}

fn seller(nsrsbh: &str) -> Result<TaxpayerId, Rejection> {
    TaxpayerId::parse(nsrsbh)
        .map_err(|_| Rejection::new(codes::SELLER_INVALID, "纳税人识别号不正确"))
}

fn reserve(shared: &Shared, body: &str, now: DateTime<Utc>) -> Result<Vec<u8>, Failure> {
    let request: messages::ReserveNumbersRequest = decode(body)?;
    let seller = seller(&request.nsrsbh)?;
    let mut ledger = shared.ledger();
    let (first, last) = ledger.state.reserve(&seller, request.lysl, now)?;
    ledger.commit(Event::Reserved {
        seller,
        first,
        last,
    });
    let reply = messages::ReserveNumbersReply {
        fpqshm: first,
        fpzzhm: last,
        lysl: last.sequence() - first.sequence() + 1,
    };
    ledger.finish()?;
    Ok(success(&reply))
}

fn quota(shared: &Shared, body: &str, now: DateTime<Utc>) -> Result<Vec<u8>, Failure> {
    let request: messages::SellerRequest = decode(body)?;
    let seller = seller(&request.nsrsbh)?;
    let view = shared.ledger().state.quota(&seller, now);
    Ok(success(&messages::QuotaReply {
        ssyf: view.month.to_string(),
        zsxed: view.total,
        yxzed: view.downloaded,
        kxzed: view.available,
    }))
}

fn download(shared: &Shared, body: &str, now: DateTime<Utc>) -> Result<Vec<u8>, Failure> {
    let request: messages::DownloadQuotaRequest = decode(body)?;
    let seller = seller(&request.nsrsbh)?;
    if request.sqlx != "0" {
        return Err(Rejection::new(codes::REQUEST_INVALID, "仅支持申请类型0（下载额度）").into());
    }
    let mut ledger = shared.ledger();
    let granted = match ledger
        .state
        .download(&seller, request.sqed, &request.ywlsh, now)?
    {
        Grant::Repeat(granted) => granted,
        Grant::New(granted, event) => {
            ledger.commit(event);
            ledger.finish()?;
            granted
        }
    };
    Ok(success(&messages::DownloadQuotaReply {
        ywlsh: request.ywlsh,
        xzed: granted,
    }))
}

/// Counts of one upload, added to the stats once the state lock is released.
#[derive(Debug, Default)]
struct UploadCounts {
    recorded: u64,
    duplicates: u64,
    /// Answered as recorded, then dropped (a fault).
    dropped: u64,
    rejections: Vec<&'static str>,
}

fn upload(
    shared: &Shared,
    body: &str,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, Failure> {
    let request: messages::UploadRequest<'static> = decode(body)?;
    let seller = seller(&request.nsrsbh)?;
    let count = request.fpxx.len();
    if count == 0 {
        return Err(Rejection::new(codes::REQUEST_INVALID, "发票信息不能为空").into());
    }
    if count > shared.max_upload {
        return Err(Rejection::new(
            codes::UPLOAD_TOO_LARGE,
            format!("单次上传发票数量不能超过{}张", shared.max_upload),
        )
        .into());
    }
    let prepared = prepare(request.fpxx);
    let receipt = shared.next_receipt();
    shared.with_stats(|s| {
        s.uploads_received += u64::try_from(count).unwrap_or(u64::MAX);
        if plan.lose_upload {
            Stats::bump(&mut s.faults, "lost_upload", 1);
        }
    });
    if !plan.lose_upload {
        let dropped = plan
            .drop_records
            .map(|dice| dice.roll(prepared.len()))
            .unwrap_or_default();
        let counts = record(shared, &seller, prepared, &dropped, &receipt, now)?;
        shared.with_stats(|s| {
            s.invoices_recorded += counts.recorded;
            s.duplicate_uploads += counts.duplicates;
            if counts.dropped > 0 {
                Stats::bump(&mut s.faults, "dropped_record", counts.dropped);
            }
            for code in counts.rejections {
                Stats::bump(&mut s.rejections, code, 1);
            }
        });
    }
    Ok(success(&messages::UploadReply { sllsh: receipt }))
}

/// Decodes the content out of the request and hashes it, before the lock.
fn prepare(invoices: Vec<messages::UploadedInvoice<'static>>) -> Vec<Prepared> {
    invoices
        .into_iter()
        .map(|invoice| {
            let content = invoice.fpnr.into_owned();
            Prepared {
                number: invoice.fphm,
                issued_at: invoice.kprq,
                content_sm3: platform_digest(&content),
                content,
            }
        })
        .collect()
}

/// Judges and records each invoice in order (so a red invoice may follow its blue one in the same
/// upload), then the upload's results under its receipt. An invoice marked in `dropped` is
/// answered as recorded but not kept (a fault).
fn record(
    shared: &Shared,
    seller: &TaxpayerId,
    prepared: Vec<Prepared>,
    dropped: &[bool],
    receipt: &str,
    now: DateTime<Utc>,
) -> Result<UploadCounts, Failure> {
    let mut counts = UploadCounts::default();
    let mut items = Vec::with_capacity(prepared.len());
    let mut ledger = shared.ledger();
    ledger.catch_up(now);
    for (index, invoice) in prepared.into_iter().enumerate() {
        let judgement = match ledger.state.judge(seller, &invoice) {
            Ok(judgement) => judgement,
            Err(busy) => {
                // What was recorded so far stays recorded; the retried upload finds it again.
                ledger.finish()?;
                return Err(busy.into());
            }
        };
        let outcome = match judgement {
            Judgement::Accept if dropped.get(index).copied().unwrap_or(false) => {
                counts.dropped += 1;
                UploadOutcome::Recorded
            }
            Judgement::Accept => {
                counts.recorded += 1;
                let number = invoice.number;
                let form = invoice.content.red.as_ref().map(|r| r.form_number.clone());
                ledger.commit(Event::Recorded {
                    seller: seller.clone(),
                    number,
                    issued_at: invoice.issued_at,
                    recorded_at: now,
                    content_sm3: invoice.content_sm3,
                    content: Box::new(invoice.content),
                });
                if let Some(form) = form {
                    ledger.commit(Event::FormRedRecorded {
                        number: form,
                        red_number: number,
                    });
                }
                UploadOutcome::Recorded
            }
            Judgement::Duplicate => {
                counts.duplicates += 1;
                UploadOutcome::Recorded
            }
            Judgement::Reject(rejection) => {
                counts.rejections.push(rejection.code);
                UploadOutcome::Rejected {
                    code: rejection.code.to_owned(),
                    message: rejection.message,
                }
            }
        };
        items.push(UploadItemResult {
            number: invoice.number,
            outcome,
        });
    }
    ledger.commit(Event::UploadAccepted {
        receipt: receipt.to_owned(),
        seller: seller.clone(),
        ready_at: now + shared.result_delay,
        items,
    });
    ledger.finish()?;
    Ok(counts)
}

fn upload_result(
    shared: &Shared,
    body: &str,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, Failure> {
    let request: messages::UploadResultRequest = decode(body)?;
    let seller = seller(&request.nsrsbh)?;
    let mut reply = {
        let ledger = shared.ledger();
        match ledger.state.upload_result(&seller, &request.sllsh, now)? {
            None => {
                return Err(Rejection::new(codes::RECEIPT_NOT_FOUND, "受理流水号不存在").into());
            }
            Some(UploadView::Pending) => messages::UploadResultReply {
                clzt: messages::ProcessingState::Processing,
                jgxx: Vec::new(),
            },
            Some(UploadView::Done(items)) => messages::UploadResultReply {
                clzt: messages::ProcessingState::Done,
                jgxx: items.iter().map(wire_item).collect(),
            },
        }
    };
    if plan.duplicate_results && reply.clzt == messages::ProcessingState::Done {
        let repeated = reply.jgxx.clone();
        reply.jgxx.extend(repeated);
        shared.with_stats(|s| Stats::bump(&mut s.faults, "duplicate_result", 1));
    }
    Ok(success(&reply))
}

fn wire_item(item: &UploadItemResult) -> messages::UploadItem {
    match &item.outcome {
        UploadOutcome::Recorded => messages::UploadItem {
            fphm: item.number,
            sczt: messages::ItemState::Recorded,
            cwdm: String::new(),
            cwxx: String::new(),
        },
        UploadOutcome::Rejected { code, message } => messages::UploadItem {
            fphm: item.number,
            sczt: messages::ItemState::Rejected,
            cwdm: code.clone(),
            cwxx: message.clone(),
        },
    }
}

fn not_found(number: &InvoiceNumber) -> Failure {
    Rejection::new(codes::INVOICE_NOT_FOUND, format!("发票{number}不存在")).into()
}

fn query_invoice(shared: &Shared, body: &str) -> Result<Vec<u8>, Failure> {
    let request: messages::InvoiceRequest = decode(body)?;
    let seller = seller(&request.nsrsbh)?;
    let reply = {
        let ledger = shared.ledger();
        let record = ledger
            .state
            .invoice(&seller, &request.fphm)?
            .ok_or_else(|| not_found(&request.fphm))?;
        messages::InvoiceReply {
            fphm: request.fphm,
            kprq: record.issued_at,
            rksj: record.recorded_at,
            fpzt: record.state().into(),
            fpnr: record.content,
        }
    };
    Ok(success(&reply))
}

fn list(shared: &Shared, body: &str) -> Result<Vec<u8>, Failure> {
    let request: messages::ListRequest = decode(body)?;
    let seller = seller(&request.nsrsbh)?;
    if !(1..=MAX_PAGE_SIZE).contains(&request.mysl) {
        return Err(Rejection::new(
            codes::REQUEST_INVALID,
            format!("每页数量应在1至{MAX_PAGE_SIZE}之间"),
        )
        .into());
    }
    let reply = {
        let ledger = shared.ledger();
        let (rows, next) =
            ledger
                .state
                .day_page(&seller, request.kprq, request.ym, request.mysl)?;
        messages::ListReply {
            fplb: rows
                .into_iter()
                .map(|(number, record)| list_item(number, &record))
                .collect(),
            xyym: next,
        }
    };
    Ok(success(&reply))
}

fn list_item(number: InvoiceNumber, record: &Record) -> messages::ListItem {
    let content = &record.content;
    messages::ListItem {
        fphm: number,
        kprq: record.issued_at,
        lzfpbz: content.colour().into(),
        fpzt: record.state().into(),
        gmfmc: content.buyer.party.name.clone(),
        gmfnsrsbh: content.buyer.party.tax_id.clone(),
        hjje: content.totals.amount,
        hjse: content.totals.tax,
        qqlsh: content.request_id.clone(),
        nrsm3: record.content_sm3.clone(),
    }
}

fn usage(shared: &Shared, body: &str) -> Result<Vec<u8>, Failure> {
    let request: messages::InvoiceRequest = decode(body)?;
    let seller = seller(&request.nsrsbh)?;
    let usage = shared
        .ledger()
        .state
        .invoice(&seller, &request.fphm)?
        .map(|record| record.usage)
        .ok_or_else(|| not_found(&request.fphm))?;
    Ok(success(&messages::UsageReply {
        fphm: request.fphm,
        ytqrbz: usage.used_for_deduction.into(),
        rzbz: usage.booked.into(),
    }))
}
