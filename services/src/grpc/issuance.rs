//! `IssuanceService`: issue, validate, read, list and watch invoices, and reverse them. Handlers
//! check the caller, convert, delegate to the issuance workflow (red-letter calls to
//! [`super::redletter`]) and convert back.

use super::edge::ServerConfig;
use super::redletter::RedLetterRpc;
use super::watch::Pace;
use super::{convert, paging, status};
use crate::auth::{self, Caller, Role};
use crate::issuance::{Issuance, IssueError};
use crate::sellers::SellerDirectory;
use crate::store::{InvoiceFilter, StoredInvoice};
use fapiao_invoice::catalog::TaxCodeCatalog;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{InvoiceContent, InvoiceDraft, InvoiceKind, SellerDraft};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_invoice::validate::Validator;
use fapiao_proto::v1::{self, issuance_service_server::IssuanceService};
use std::sync::Arc;
use std::time::Duration;
use tonic::codegen::BoxStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

const DEFAULT_WAIT: Duration = Duration::from_secs(10);
const MAX_WAIT: Duration = Duration::from_secs(60);

/// What the issuance handlers need, shared by every call.
#[derive(Debug, Clone)]
pub struct IssuanceApi {
    catalog: Arc<TaxCodeCatalog>,
    limits: Arc<Limits>,
    sellers: Arc<SellerDirectory>,
    issuance: Issuance,
    red: RedLetterRpc,
    /// How watches pace themselves.
    pace: Pace,
}

impl IssuanceApi {
    pub fn new(
        catalog: Arc<TaxCodeCatalog>,
        limits: Arc<Limits>,
        sellers: Arc<SellerDirectory>,
        issuance: Issuance,
        red_letters: crate::redletter::RedLetters,
        server: Arc<ServerConfig>,
    ) -> Self {
        let pace = Pace::from(server.as_ref());
        Self {
            red: RedLetterRpc::new(red_letters, sellers.clone(), limits.clone(), pace),
            catalog,
            limits,
            sellers,
            issuance,
            pace,
        }
    }

    /// Check the caller may act for the seller, then put the seller's profile into the draft. A
    /// well-formed tax id without a profile is refused (after the permission check, so callers
    /// cannot probe which sellers exist); a malformed one is left for validation to report with
    /// everything else.
    fn with_seller_profile(
        &self,
        caller: &Caller,
        mut draft: InvoiceDraft,
    ) -> Result<InvoiceDraft, Status> {
        if let Ok(id) = TaxpayerId::parse(&draft.seller.tax_id) {
            caller.require_seller(&id)?;
            let profile = self
                .sellers
                .get(&id)
                .ok_or_else(|| status::seller_not_configured(id.as_str()))?;
            draft.seller = SellerDraft::from(profile);
        }
        Ok(draft)
    }

    /// Everything up to issuing: permission, seller profile, validation.
    fn prepare(
        &self,
        caller: &Caller,
        input: v1::InvoiceInput,
    ) -> Result<(TaxpayerId, InvoiceContent), Status> {
        let draft = self.with_seller_profile(caller, convert::invoice_draft(input))?;
        let content = Validator::new(&self.catalog, &self.limits)
            .validate(&draft)
            .map_err(|v| status::invalid_argument(&v))?;
        let seller = TaxpayerId::parse(&draft.seller.tax_id).map_err(|_| {
            status::bad_field("seller_tax_id", "SELLER_TAX_ID_INVALID", "纳税人识别号无效")
        })?;
        Ok((seller, content))
    }

    async fn settle(
        &self,
        invoices: Vec<StoredInvoice>,
        wait: Option<Duration>,
    ) -> Result<Vec<StoredInvoice>, Status> {
        match wait {
            None => Ok(invoices),
            Some(timeout) => self
                .issuance
                .wait_settled(invoices, timeout)
                .await
                .map_err(|e| status::internal("waiting for the platform", &e)),
        }
    }
}

/// How long to wait for the platform: `None` when not asked; the default, the cap and the call's
/// own deadline applied.
fn wait_for(
    wait: bool,
    timeout: Option<&prost_types::Duration>,
    metadata: &MetadataMap,
) -> Result<Option<Duration>, Status> {
    if !wait {
        return Ok(None);
    }
    let asked = match timeout {
        None => DEFAULT_WAIT,
        Some(d) if d.seconds < 0 || d.nanos < 0 => {
            return Err(status::bad_field(
                "wait_timeout",
                "WAIT_TIMEOUT_NEGATIVE",
                "等待时间不能为负",
            ));
        }
        Some(d) => Duration::new(
            u64::try_from(d.seconds).unwrap_or(0),
            u32::try_from(d.nanos).unwrap_or(0),
        ),
    };
    let mut wait = asked.min(MAX_WAIT);
    if let Some(deadline) = grpc_timeout(metadata) {
        // Answer a little before the caller gives up, so it gets the invoice rather than an error.
        wait = wait.min(deadline.saturating_sub(deadline / 10 + Duration::from_millis(20)));
    }
    Ok(Some(wait))
}

/// The call's deadline from the `grpc-timeout` header ("10S", "500m", …).
fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn parse_cursor(cursor: &str) -> Result<Option<i64>, Status> {
    if cursor.is_empty() {
        return Ok(None);
    }
    cursor
        .strip_prefix('e')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .map(Some)
        .ok_or_else(|| status::bad_field("after_cursor", "CURSOR_INVALID", "游标无效"))
}

#[tonic::async_trait]
impl IssuanceService for IssuanceApi {
    async fn issue_invoice(
        &self,
        request: Request<v1::IssueInvoiceRequest>,
    ) -> Result<Response<v1::IssueInvoiceResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        let (metadata, _, req) = request.into_parts();
        let wait = wait_for(
            req.wait_until_recorded,
            req.wait_timeout.as_ref(),
            &metadata,
        )?;
        let (seller, content) = self.prepare(&caller, req.invoice.unwrap_or_default())?;
        let result = self
            .issuance
            .issue(vec![(seller, content)], &caller.name)
            .await
            .pop()
            .unwrap_or(Err(IssueError::Unavailable));
        let issued = result.map_err(|e| status::issue_error(&e))?;
        let invoice = self
            .settle(vec![issued.invoice], wait)
            .await?
            .pop()
            .ok_or_else(|| Status::internal("INTERNAL: the invoice went missing while waiting"))?;
        Ok(Response::new(v1::IssueInvoiceResponse {
            invoice: Some(convert::invoice(&invoice, &[])),
            replayed: issued.replayed,
        }))
    }

    async fn issue_invoices(
        &self,
        request: Request<v1::IssueInvoicesRequest>,
    ) -> Result<Response<v1::IssueInvoicesResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        let (metadata, _, req) = request.into_parts();
        let wait = wait_for(
            req.wait_until_recorded,
            req.wait_timeout.as_ref(),
            &metadata,
        )?;
        if req.invoices.is_empty() || req.invoices.len() > super::MAX_BATCH {
            return Err(status::bad_field(
                "invoices",
                "BATCH_SIZE_INVALID",
                "每批发票数量须为1至100张",
            ));
        }
        let mut results: Vec<Option<v1::IssueInvoicesItemResult>> = Vec::new();
        let mut accepted = Vec::new();
        let mut positions = Vec::new();
        for (index, input) in req.invoices.into_iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            match self.prepare(&caller, input) {
                Ok(item) => {
                    positions.push(results.len());
                    accepted.push(item);
                    results.push(None);
                }
                Err(e) => results.push(Some(v1::IssueInvoicesItemResult {
                    index,
                    result: Some(v1::issue_invoices_item_result::Result::Error(
                        status::item_error(&e),
                    )),
                    replayed: false,
                })),
            }
        }
        let outcomes = self.issuance.issue(accepted, &caller.name).await;
        let mut issued = Vec::new();
        for (position, outcome) in positions.iter().zip(outcomes) {
            match outcome {
                Ok(ok) => issued.push((*position, ok)),
                Err(e) => {
                    results[*position] = Some(v1::IssueInvoicesItemResult {
                        index: u32::try_from(*position).unwrap_or(u32::MAX),
                        result: Some(v1::issue_invoices_item_result::Result::Error(
                            status::item_error(&status::issue_error(&e)),
                        )),
                        replayed: false,
                    });
                }
            }
        }
        let invoices = self
            .settle(
                issued.iter().map(|(_, i)| i.invoice.clone()).collect(),
                wait,
            )
            .await?;
        for ((position, ok), invoice) in issued.into_iter().zip(invoices) {
            results[position] = Some(v1::IssueInvoicesItemResult {
                index: u32::try_from(position).unwrap_or(u32::MAX),
                result: Some(v1::issue_invoices_item_result::Result::Invoice(
                    convert::invoice(&invoice, &[]),
                )),
                replayed: ok.replayed,
            });
        }
        Ok(Response::new(v1::IssueInvoicesResponse {
            results: results.into_iter().flatten().collect(),
        }))
    }

    async fn validate_invoice(
        &self,
        request: Request<v1::ValidateInvoiceRequest>,
    ) -> Result<Response<v1::ValidateInvoiceResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        let input = request.into_inner().invoice.unwrap_or_default();
        let draft = self.with_seller_profile(&caller, convert::invoice_draft(input))?;
        let answer = match Validator::new(&self.catalog, &self.limits).validate(&draft) {
            Ok(content) => v1::ValidateInvoiceResponse {
                valid: true,
                violations: Vec::new(),
                preview: Some(convert::preview(&content)),
            },
            Err(violations) => v1::ValidateInvoiceResponse {
                valid: false,
                violations: violations.iter().map(convert::field_violation).collect(),
                preview: None,
            },
        };
        Ok(Response::new(answer))
    }

    async fn get_invoice(
        &self,
        request: Request<v1::GetInvoiceRequest>,
    ) -> Result<Response<v1::GetInvoiceResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        let (metadata, _, req) = request.into_parts();
        let wait = wait_for(
            req.wait_until_recorded,
            req.wait_timeout.as_ref(),
            &metadata,
        )?;
        let not_found = || Status::not_found("INVOICE_NOT_FOUND: no such invoice");
        let found = match req.key {
            None => {
                return Err(status::bad_field(
                    "key",
                    "KEY_REQUIRED",
                    "须提供发票号码或请求编号",
                ));
            }
            Some(v1::get_invoice_request::Key::InvoiceNumber(text)) => {
                let number: InvoiceNumber = text.trim().parse().map_err(|_| {
                    status::bad_field(
                        "invoice_number",
                        "INVOICE_NUMBER_INVALID",
                        "发票号码须为20位数字",
                    )
                })?;
                self.issuance.get(&caller.scope(), &number).await
            }
            Some(v1::get_invoice_request::Key::ByRequest(key)) => {
                let seller = TaxpayerId::parse(&key.seller_tax_id).map_err(|_| {
                    status::bad_field(
                        "by_request.seller_tax_id",
                        "SELLER_TAX_ID_INVALID",
                        "纳税人识别号无效",
                    )
                })?;
                let scope = caller.scope_of(std::slice::from_ref(&seller))?;
                match convert::lookup_key(&key.request_id) {
                    Some(request_id) => self.issuance.find(&scope, &seller, request_id).await,
                    None => Ok(None),
                }
            }
        }
        .map_err(|e| status::internal("reading an invoice", &e))?
        // An invoice of a seller the caller may not see is "not found", not "forbidden".
        .ok_or_else(not_found)?;
        let invoice = self
            .settle(vec![found], wait)
            .await?
            .pop()
            .ok_or_else(not_found)?;
        let files = self
            .issuance
            .store()
            .archived_files(&[invoice.number])
            .await
            .map_err(|e| status::internal("reading archived files", &e))?
            .remove(&invoice.number)
            .unwrap_or_default();
        let mut wire = convert::invoice(&invoice, &files);
        super::redletter::annotate(self.issuance.store(), &caller.scope(), &invoice, &mut wire)
            .await?;
        Ok(Response::new(v1::GetInvoiceResponse {
            invoice: Some(wire),
        }))
    }

    async fn list_invoices(
        &self,
        request: Request<v1::ListInvoicesRequest>,
    ) -> Result<Response<v1::ListInvoicesResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        let req = request.into_inner();
        let seller = TaxpayerId::parse(&req.seller_tax_id).map_err(|_| {
            status::bad_field(
                "seller_tax_id",
                "SELLER_TAX_ID_INVALID",
                "须提供有效的销售方纳税人识别号",
            )
        })?;
        let scope = caller.scope_of(std::slice::from_ref(&seller))?;
        let states = paging::states(&req.states)?;
        let time = |t: &Option<prost_types::Timestamp>, field: &str| {
            t.as_ref()
                .map(|t| {
                    convert::from_timestamp(t)
                        .ok_or_else(|| status::bad_field(field, "TIME_INVALID", "时间无效"))
                })
                .transpose()
        };
        let filter = InvoiceFilter {
            states,
            kind: match v1::InvoiceKind::try_from(req.kind) {
                Ok(v1::InvoiceKind::Special) => Some(InvoiceKind::Special),
                Ok(v1::InvoiceKind::General) => Some(InvoiceKind::General),
                _ => None,
            },
            colour: paging::colour(req.colour),
            buyer_tax_id: convert::filter_text("buyer_tax_id", &req.buyer_tax_id)?.map(|id| {
                TaxpayerId::parse(&id)
                    .map(|t| t.as_str().to_owned())
                    .unwrap_or(id)
            }),
            buyer_name_contains: None,
            invoice_number: None,
            issued_from: time(&req.issued_from, "issued_from")?,
            issued_to: time(&req.issued_to, "issued_to")?,
        };
        let (invoices, next_page_token) = paging::invoice_page(
            self.issuance.store(),
            &scope,
            &filter,
            &req.page_token,
            req.page_size,
            "listing invoices",
        )
        .await?;
        Ok(Response::new(v1::ListInvoicesResponse {
            invoices,
            next_page_token,
        }))
    }

    type WatchInvoicesStream = BoxStream<v1::WatchInvoicesResponse>;

    async fn watch_invoices(
        &self,
        request: Request<v1::WatchInvoicesRequest>,
    ) -> Result<Response<Self::WatchInvoicesStream>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        let req = request.into_inner();
        let mut requested = Vec::with_capacity(req.seller_tax_ids.len());
        for (i, s) in req.seller_tax_ids.iter().enumerate() {
            requested.push(TaxpayerId::parse(s).map_err(|_| {
                status::bad_field(
                    &format!("seller_tax_ids[{i}]"),
                    "SELLER_TAX_ID_INVALID",
                    "纳税人识别号无效",
                )
            })?);
        }
        let scope = caller.scope_of(&requested)?;
        let store = self.issuance.store().clone();
        let cursor = match parse_cursor(&req.after_cursor)? {
            Some(c) => c,
            None => store
                .last_event_id()
                .await
                .map_err(|e| status::internal("reading the event position", &e))?,
        };
        let read = move |after: i64, limit: u32| {
            let (store, scope) = (store.clone(), scope.clone());
            async move { store.events_after(&scope, after, limit).await }
        };
        Ok(Response::new(super::watch::follow(
            cursor,
            self.issuance.changes(),
            read,
            |cursor, event| v1::WatchInvoicesResponse {
                cursor: format!("e{cursor}"),
                event: event.map(convert::event),
            },
            "reading invoice events",
            self.pace,
        )))
    }

    async fn request_red_letter(
        &self,
        request: Request<v1::RequestRedLetterRequest>,
    ) -> Result<Response<v1::RequestRedLetterResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        let input = request.into_inner().red_letter.unwrap_or_default();
        let (outcome, replayed) = self.red.request(&caller, &input).await?;
        Ok(Response::new(v1::RequestRedLetterResponse {
            form: outcome.form,
            red_invoice: outcome.red_invoice,
            replayed,
        }))
    }

    async fn request_red_letters(
        &self,
        request: Request<v1::RequestRedLettersRequest>,
    ) -> Result<Response<v1::RequestRedLettersResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        let inputs = request.into_inner().red_letters;
        let results = self.red.request_many(&caller, &inputs).await?;
        Ok(Response::new(v1::RequestRedLettersResponse { results }))
    }

    async fn get_red_letter_form(
        &self,
        request: Request<v1::GetRedLetterFormRequest>,
    ) -> Result<Response<v1::GetRedLetterFormResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        let form = self.red.get(&caller, request.into_inner()).await?;
        Ok(Response::new(v1::GetRedLetterFormResponse {
            form: Some(form),
        }))
    }

    async fn list_red_letter_forms(
        &self,
        request: Request<v1::ListRedLetterFormsRequest>,
    ) -> Result<Response<v1::ListRedLetterFormsResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        Ok(Response::new(
            self.red.list(&caller, request.into_inner()).await?,
        ))
    }

    async fn confirm_red_letter_form(
        &self,
        request: Request<v1::ConfirmRedLetterFormRequest>,
    ) -> Result<Response<v1::ConfirmRedLetterFormResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        Ok(Response::new(
            self.red.confirm(&caller, request.into_inner()).await?,
        ))
    }

    async fn withdraw_red_letter_form(
        &self,
        request: Request<v1::WithdrawRedLetterFormRequest>,
    ) -> Result<Response<v1::WithdrawRedLetterFormResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        let form = self.red.withdraw(&caller, request.into_inner()).await?;
        Ok(Response::new(v1::WithdrawRedLetterFormResponse {
            form: Some(form),
        }))
    }

    type WatchRedLetterFormsStream = BoxStream<v1::WatchRedLetterFormsResponse>;

    async fn watch_red_letter_forms(
        &self,
        request: Request<v1::WatchRedLetterFormsRequest>,
    ) -> Result<Response<Self::WatchRedLetterFormsStream>, Status> {
        let caller = auth::caller(&request)?;
        caller.require_role(Role::Issuer)?;
        Ok(Response::new(
            self.red.watch(&caller, request.into_inner()).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_default_cap_and_respect_the_deadline() {
        let none = MetadataMap::new();
        assert_eq!(wait_for(false, None, &none).unwrap(), None);
        assert_eq!(wait_for(true, None, &none).unwrap(), Some(DEFAULT_WAIT));
        let long = prost_types::Duration {
            seconds: 600,
            nanos: 0,
        };
        assert_eq!(wait_for(true, Some(&long), &none).unwrap(), Some(MAX_WAIT));
        let negative = prost_types::Duration {
            seconds: -1,
            nanos: 0,
        };
        assert_eq!(
            wait_for(true, Some(&negative), &none).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let mut deadline = MetadataMap::new();
        deadline.insert("grpc-timeout", "2S".parse().unwrap());
        let wait = wait_for(true, None, &deadline).unwrap().unwrap();
        assert!(
            wait < Duration::from_secs(2) && wait > Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[test]
    fn cursors_and_page_tokens_refuse_what_they_did_not_make() {
        assert_eq!(parse_cursor("").unwrap(), None);
        assert_eq!(parse_cursor("e42").unwrap(), Some(42));
        assert!(parse_cursor("42").is_err());
        assert!(parse_cursor("e-1").is_err());
        assert!(paging::parse_page_token("v1.1.2.x", "y").is_err());
        assert!(paging::parse_page_token("garbage", "y").is_err());
        assert!(
            paging::parse_page_token("v1.1700000000000000.26312000000000000007.y", "y")
                .unwrap()
                .is_some()
        );
    }
}
