//! The `AuditService`: auditors find invoices across sellers, download archived files, verify
//! them and read histories and the access trail.
//!
//! Every call that reaches the service, allowed or not, is appended to the access trail with the
//! caller, the peer address, the invoice and file concerned, the stated purpose and the outcome.
//! A call whose trail entry cannot be written fails: an unrecorded read of evidence is worse than
//! no read. Handlers only map messages; searching, archive reads and verification live in the
//! store and `archiving`.

use super::{convert, paging, status};
use crate::archiving::read::{ReadError, read_checked};
use crate::archiving::verify::{self, InvoiceReport, VerifyScope};
use crate::auth::{self, Caller, Role};
use crate::clock::SharedClock;
use crate::store::{AccessFilter, AccessRecord, InvoiceFilter, Store};
use fapiao_archive::Format;
use fapiao_archive::check::Outcome;
use fapiao_archive::store::Archive;
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_proto::v1;
use fapiao_proto::v1::audit_service_server::AuditService;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// Largest chunk of a file in one stream message.
const CHUNK: usize = 64 * 1024;
/// Longest verification range.
const MAX_RANGE_DAYS: i64 = 366;
const SERVICE: &str = "/fapiao.v1.AuditService/";

/// The service.
#[derive(Debug, Clone)]
pub struct AuditApi {
    store: Store,
    archive: Archive,
    clock: SharedClock,
}

/// Who called and from where, kept for the trail.
struct Call {
    caller: Option<Arc<Caller>>,
    peer: String,
    method: &'static str,
}

/// What a trail entry says about the call.
#[derive(Default)]
struct About {
    /// The seller the call named; when it names none, the store records the invoice's seller.
    seller_tax_id: Option<String>,
    invoice_number: Option<String>,
    format: Option<Format>,
    purpose: String,
}

impl AuditApi {
    pub fn new(store: Store, archive: Archive, clock: SharedClock) -> Self {
        Self {
            store,
            archive,
            clock,
        }
    }

    fn begin<T>(request: &Request<T>, method: &'static str) -> Call {
        Call {
            caller: auth::caller(request).ok(),
            peer: request
                .remote_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            method,
        }
    }

    /// Append the call to the trail; a failure to record fails the call.
    async fn record(&self, call: &Call, about: About, outcome: tonic::Code) -> Result<(), Status> {
        let record = AccessRecord {
            id: 0,
            at: self.clock.now(),
            actor: call
                .caller
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            method: format!("{SERVICE}{}", call.method),
            seller_tax_id: about.seller_tax_id,
            invoice_number: about.invoice_number,
            format: about.format,
            purpose: about.purpose,
            outcome: code_name(outcome).to_owned(),
            peer: call.peer.clone(),
        };
        self.store
            .record_access(&record)
            .await
            .map_err(|e| status::internal("recording an access", &e))
    }

    /// The invoice `number` if it exists and the caller may see its seller; `not_found` otherwise
    /// (another seller's invoice is "not found", not "forbidden").
    async fn visible_invoice(
        &self,
        call: &Call,
        number: &InvoiceNumber,
        not_found: impl Fn() -> Status,
    ) -> Result<crate::store::StoredInvoice, Status> {
        self.store
            .get_invoice(&call.caller()?.scope(), number)
            .await
            .map_err(|e| status::internal("reading an invoice", &e))?
            .ok_or_else(&not_found)
    }

    /// Run `body` as `call`, recording its outcome.
    async fn audited<T>(
        &self,
        call: &Call,
        about: About,
        body: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let result = match authorise(call) {
            Ok(()) => body.await,
            Err(denied) => Err(denied),
        };
        let code = result
            .as_ref()
            .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        self.record(call, about, code).await?;
        result
    }
}

impl Call {
    /// The authenticated caller (every call passed the interceptor, so there is one).
    fn caller(&self) -> Result<&Caller, Status> {
        self.caller
            .as_deref()
            .ok_or_else(|| Status::unauthenticated("UNAUTHENTICATED: no caller"))
    }
}

fn authorise(call: &Call) -> Result<(), Status> {
    call.caller()?.require_role(Role::Auditor)
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

fn parse_number(field: &str, text: &str) -> Result<InvoiceNumber, Status> {
    text.trim()
        .parse()
        .map_err(|_| status::bad_field(field, "INVOICE_NUMBER_INVALID", "发票号码须为20位数字"))
}

fn format_from_wire(value: i32) -> Result<Format, Status> {
    match v1::FileFormat::try_from(value) {
        Ok(v1::FileFormat::Xml) => Ok(Format::Xml),
        Ok(v1::FileFormat::Ofd) => Ok(Format::Ofd),
        Ok(v1::FileFormat::Pdf) => Ok(Format::Pdf),
        _ => Err(status::bad_field(
            "format",
            "FORMAT_REQUIRED",
            "须指定文件格式（XML、OFD或PDF）",
        )),
    }
}

/// Optional lower and upper bounds of a time range.
type Bounds = (
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// The bounds of a range, checked: each a valid time, the end after the start.
fn time_range(field: &str, range: Option<&v1::TimeRange>) -> Result<Bounds, Status> {
    let bound = |t: &Option<prost_types::Timestamp>, name: &str| {
        t.as_ref()
            .map(|t| {
                convert::from_timestamp(t).ok_or_else(|| {
                    status::bad_field(&format!("{field}.{name}"), "TIME_INVALID", "时间无效")
                })
            })
            .transpose()
    };
    let Some(range) = range else {
        return Ok((None, None));
    };
    let (from, to) = (bound(&range.from, "from")?, bound(&range.to, "to")?);
    if let (Some(from), Some(to)) = (from, to)
        && to <= from
    {
        return Err(status::bad_field(
            &format!("{field}.to"),
            "TIME_RANGE_INVALID",
            "结束时间须晚于开始时间",
        ));
    }
    Ok((from, to))
}

/// Access-trail page tokens: `a1.<last id>.<filter fingerprint>`.
fn access_token(last_id: i64, fingerprint: &str) -> String {
    format!("a1.{last_id}.{fingerprint}")
}

fn parse_access_token(token: &str, fingerprint: &str) -> Result<Option<i64>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = token.split('.').collect();
    let ["a1", id, seen] = parts[..] else {
        return Err(paging::bad_token());
    };
    if seen != fingerprint {
        return Err(paging::bad_token());
    }
    id.parse::<i64>().map(Some).map_err(|_| paging::bad_token())
}

fn outcome_message(outcome: Outcome) -> v1::CheckOutcome {
    match outcome {
        Outcome::Passed => v1::CheckOutcome::Passed,
        Outcome::Failed => v1::CheckOutcome::Failed,
        Outcome::Skipped => v1::CheckOutcome::Skipped,
    }
}

fn report_message(report: &InvoiceReport) -> v1::InvoiceVerification {
    v1::InvoiceVerification {
        invoice_number: report.invoice_number.clone(),
        seller_tax_id: report.seller_tax_id.clone(),
        ok: report.ok,
        files: report
            .files
            .iter()
            .map(|f| v1::FileCheck {
                format: convert::file_format(f.format).into(),
                present: f.present,
                digest_matches: outcome_message(f.digest).into(),
                parses: outcome_message(f.parses).into(),
                renders: outcome_message(f.renders).into(),
                detail: f.detail.clone(),
                usability_recorded: f.usability_recorded,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn search_invoices(
        &self,
        request: Request<v1::SearchInvoicesRequest>,
    ) -> Result<Response<v1::SearchInvoicesResponse>, Status> {
        let call = Self::begin(&request, "SearchInvoices");
        let req = request.into_inner();
        let about = About {
            seller_tax_id: TaxpayerId::parse(req.seller_tax_id.trim())
                .ok()
                .map(|s| s.as_str().to_owned()),
            invoice_number: Some(req.invoice_number.trim().to_owned()).filter(|n| !n.is_empty()),
            ..About::default()
        };
        let body = async {
            let caller = call.caller()?;
            let states = paging::states(&req.states)?;
            let (issued_from, issued_to) = time_range("issued", req.issued.as_ref())?;
            let seller = match req.seller_tax_id.trim() {
                "" => None,
                text => Some(TaxpayerId::parse(text).map_err(|_| {
                    status::bad_field("seller_tax_id", "SELLER_TAX_ID_INVALID", "纳税人识别号无效")
                })?),
            };
            let scope = caller.scope_of(seller.as_slice())?;
            let number = match req.invoice_number.trim() {
                "" => None,
                text => Some(parse_number("invoice_number", text)?.to_string()),
            };
            let name = convert::filter_text("buyer_name_contains", &req.buyer_name_contains)?
                .unwrap_or_default();
            if name.chars().count() > 300 {
                return Err(status::bad_field(
                    "buyer_name_contains",
                    "TEXT_TOO_LONG",
                    "购买方名称最多300个字符",
                ));
            }
            let filter = InvoiceFilter {
                states,
                kind: None,
                colour: paging::colour(req.colour),
                buyer_tax_id: convert::filter_text("buyer_tax_id", &req.buyer_tax_id)?,
                buyer_name_contains: Some(name.to_owned()).filter(|t| !t.is_empty()),
                invoice_number: number,
                issued_from,
                issued_to,
            };
            let (invoices, next_page_token) = paging::invoice_page(
                &self.store,
                &scope,
                &filter,
                &req.page_token,
                req.page_size,
                "searching invoices",
            )
            .await?;
            Ok(v1::SearchInvoicesResponse {
                invoices,
                next_page_token,
            })
        };
        self.audited(&call, about, body).await.map(Response::new)
    }

    type GetArchivedFileStream = BoxStream<v1::GetArchivedFileResponse>;

    async fn get_archived_file(
        &self,
        request: Request<v1::GetArchivedFileRequest>,
    ) -> Result<Response<Self::GetArchivedFileStream>, Status> {
        let call = Self::begin(&request, "GetArchivedFile");
        let req = request.into_inner();
        let purpose: String = req.purpose.trim().chars().take(200).collect();
        let format = format_from_wire(req.format).ok();
        let about = About {
            seller_tax_id: None,
            invoice_number: Some(req.invoice_number.trim().to_owned()),
            format,
            purpose,
        };
        let body = async {
            let number = parse_number("invoice_number", &req.invoice_number)?;
            let format = format_from_wire(req.format)?;
            let not_found =
                || Status::not_found(format!("FILE_NOT_FOUND: no archived {format} of {number}"));
            self.visible_invoice(&call, &number, not_found).await?;
            let (record, bytes) = read_checked(&self.store, &self.archive, &number, format)
                .await
                .map_err(|e| match &e {
                    ReadError::NotRecorded { .. } => not_found(),
                    ReadError::Missing { .. } => Status::data_loss(format!("FILE_MISSING: {e}")),
                    ReadError::DigestMismatch { .. } => {
                        Status::data_loss(format!("DIGEST_MISMATCH: {e}"))
                    }
                    ReadError::Failed(error) => status::internal("reading an archived file", error),
                })?;
            Ok((record, bytes, format))
        };
        let (record, bytes, format) = self.audited(&call, about, body).await?;
        let mut messages = vec![Ok(v1::GetArchivedFileResponse {
            part: Some(v1::get_archived_file_response::Part::Metadata(
                v1::ArchivedFileMetadata {
                    invoice_number: req.invoice_number.trim().to_owned(),
                    file: Some(convert::archived_file(&record)),
                    content_type: format.content_type().to_owned(),
                },
            )),
        })];
        messages.extend(bytes.chunks(CHUNK).map(|chunk| {
            Ok(v1::GetArchivedFileResponse {
                part: Some(v1::get_archived_file_response::Part::Chunk(chunk.to_vec())),
            })
        }));
        Ok(Response::new(Box::pin(tokio_stream::iter(messages))))
    }

    type VerifyInvoicesStream = BoxStream<v1::VerifyInvoicesResponse>;

    async fn verify_invoices(
        &self,
        request: Request<v1::VerifyInvoicesRequest>,
    ) -> Result<Response<Self::VerifyInvoicesStream>, Status> {
        let call = Self::begin(&request, "VerifyInvoices");
        let req = request.into_inner();
        let about = About {
            seller_tax_id: TaxpayerId::parse(req.seller_tax_id.trim())
                .ok()
                .map(|s| s.as_str().to_owned()),
            invoice_number: match &req.scope {
                Some(v1::verify_invoices_request::Scope::InvoiceNumber(n)) => {
                    Some(n.trim().to_owned())
                }
                _ => None,
            },
            ..About::default()
        };
        let body = async {
            let caller = call.caller()?;
            match &req.scope {
                None => Err(status::bad_field(
                    "scope",
                    "SCOPE_REQUIRED",
                    "须指定发票号码或开票时间范围",
                )),
                Some(v1::verify_invoices_request::Scope::InvoiceNumber(text)) => {
                    let number = parse_number("invoice_number", text)?;
                    self.visible_invoice(&call, &number, || {
                        Status::not_found(format!("INVOICE_NOT_FOUND: no invoice {number}"))
                    })
                    .await?;
                    Ok(VerifyScope::One(number))
                }
                Some(v1::verify_invoices_request::Scope::Issued(range)) => {
                    let (Some(from), Some(to)) = time_range("issued", Some(range))? else {
                        return Err(status::bad_field(
                            "issued",
                            "TIME_RANGE_REQUIRED",
                            "须同时指定开始和结束时间",
                        ));
                    };
                    if to - from > chrono::Duration::days(MAX_RANGE_DAYS) {
                        return Err(status::bad_field(
                            "issued",
                            "TIME_RANGE_TOO_LONG",
                            "时间范围最长366天",
                        ));
                    }
                    let seller = match req.seller_tax_id.trim() {
                        "" => None,
                        text => Some(
                            TaxpayerId::parse(text)
                                .map_err(|_| {
                                    status::bad_field(
                                        "seller_tax_id",
                                        "SELLER_TAX_ID_INVALID",
                                        "纳税人识别号无效",
                                    )
                                })?
                                .as_str()
                                .to_owned(),
                        ),
                    };
                    // A caller limited to some sellers verifies one of them at a time.
                    if !caller.scope().is_unrestricted() {
                        let Some(seller) = &seller else {
                            return Err(status::bad_field(
                                "seller_tax_id",
                                "SELLER_REQUIRED",
                                "须指定销售方纳税人识别号",
                            ));
                        };
                        let id = TaxpayerId::parse(seller)
                            .map_err(|_| Status::permission_denied("SELLER_NOT_ALLOWED"))?;
                        caller.require_seller(&id)?;
                    }
                    Ok(VerifyScope::Range { from, to, seller })
                }
            }
        };
        let scope = self.audited(&call, about, body).await?;
        let (reports_tx, mut reports_rx) = mpsc::channel::<InvoiceReport>(256);
        let (out_tx, out_rx) = mpsc::channel(64);
        let store = self.store.clone();
        let archive = self.archive.clone();
        let clock = self.clock.clone();
        let deep = req.deep;
        let failures_only = req.failures_only;
        tokio::spawn(async move {
            let started_at = clock.now();
            let forward = {
                let out_tx = out_tx.clone();
                async move {
                    while let Some(report) = reports_rx.recv().await {
                        if failures_only && report.ok {
                            continue;
                        }
                        let message = v1::VerifyInvoicesResponse {
                            item: Some(v1::verify_invoices_response::Item::Report(report_message(
                                &report,
                            ))),
                        };
                        if out_tx.send(Ok(message)).await.is_err() {
                            break;
                        }
                    }
                }
            };
            let (result, ()) = tokio::join!(
                verify::verify(&store, &archive, &scope, deep, reports_tx),
                forward
            );
            let last = match result {
                Ok(summary) => Ok(v1::VerifyInvoicesResponse {
                    item: Some(v1::verify_invoices_response::Item::Summary(
                        v1::VerificationSummary {
                            invoices_checked: summary.invoices_checked,
                            invoices_ok: summary.invoices_ok,
                            invoices_failed: summary.invoices_failed,
                            files_missing: summary.files_missing,
                            digest_mismatches: summary.digest_mismatches,
                            parse_failures: summary.parse_failures,
                            render_failures: summary.render_failures,
                            started_at: Some(convert::timestamp(started_at)),
                            finished_at: Some(convert::timestamp(clock.now())),
                        },
                    )),
                }),
                Err(error) => Err(status::internal("verifying the archive", &error)),
            };
            let _ = out_tx.send(last).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }

    async fn get_invoice_history(
        &self,
        request: Request<v1::GetInvoiceHistoryRequest>,
    ) -> Result<Response<v1::GetInvoiceHistoryResponse>, Status> {
        let call = Self::begin(&request, "GetInvoiceHistory");
        let req = request.into_inner();
        let about = About {
            invoice_number: Some(req.invoice_number.trim().to_owned()),
            ..About::default()
        };
        let body = async {
            let number = parse_number("invoice_number", &req.invoice_number)?;
            let not_found = || Status::not_found(format!("INVOICE_NOT_FOUND: no invoice {number}"));
            let invoice = self.visible_invoice(&call, &number, not_found).await?;
            let scope = call.caller()?.scope();
            let events = self
                .store
                .invoice_events(&scope, &number)
                .await
                .map_err(|e| status::internal("reading events", &e))?;
            let form_events = self
                .store
                .invoice_form_events(&scope, &invoice)
                .await
                .map_err(|e| status::internal("reading red-letter form events", &e))?;
            Ok(v1::GetInvoiceHistoryResponse {
                events: events.iter().map(convert::event).collect(),
                red_letter_form_events: form_events.iter().map(super::redletter::event).collect(),
            })
        };
        self.audited(&call, about, body).await.map(Response::new)
    }

    async fn list_access_records(
        &self,
        request: Request<v1::ListAccessRecordsRequest>,
    ) -> Result<Response<v1::ListAccessRecordsResponse>, Status> {
        let call = Self::begin(&request, "ListAccessRecords");
        let req = request.into_inner();
        let about = About {
            invoice_number: Some(req.invoice_number.trim().to_owned()).filter(|n| !n.is_empty()),
            ..About::default()
        };
        let body = async {
            let scope = call.caller()?.scope();
            let (from, to) = time_range("at", req.at.as_ref())?;
            let filter = AccessFilter {
                actor: convert::filter_text("actor", &req.actor)?,
                invoice_number: convert::filter_text("invoice_number", &req.invoice_number)?,
                from,
                to,
            };
            let print = paging::fingerprint(&(&filter, &scope));
            let before = parse_access_token(&req.page_token, &print)?;
            let size = paging::page_size(req.page_size);
            let mut records = self
                .store
                .access_records(&scope, &filter, before, size + 1)
                .await
                .map_err(|e| status::internal("listing access records", &e))?;
            let more = records.len() > size as usize;
            records.truncate(size as usize);
            let next_page_token = match (more, records.last()) {
                (true, Some(last)) => access_token(last.id, &print),
                _ => String::new(),
            };
            Ok(v1::ListAccessRecordsResponse {
                records: records
                    .iter()
                    .map(|r| v1::AccessRecord {
                        actor: r.actor.clone(),
                        at: Some(convert::timestamp(r.at)),
                        method: r.method.clone(),
                        invoice_number: r.invoice_number.clone().unwrap_or_default(),
                        format: r
                            .format
                            .map_or(v1::FileFormat::Unspecified, convert::file_format)
                            .into(),
                        purpose: r.purpose.clone(),
                        outcome: r.outcome.clone(),
                        peer: r.peer.clone(),
                        seller_tax_id: r.seller_tax_id.clone().unwrap_or_default(),
                    })
                    .collect(),
                next_page_token,
            })
        };
        self.audited(&call, about, body).await.map(Response::new)
    }
}
