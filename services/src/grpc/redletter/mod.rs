//! The red-letter RPCs of `IssuanceService` (and the form conversion `OpsService` shares): check
//! the caller, convert, delegate to [`RedLetters`], convert back.

mod reversal;

use reversal::number_red_lines;
pub use reversal::{annotate, reversal};

use super::{convert, paging, status};
use crate::auth::Caller;
use crate::redletter::{Filed, RedLetterError, RedLetters};
use crate::sellers::SellerDirectory;
use crate::store::{FormFilter, Scope, Store, StoredForm, StoredFormEvent, StoredInvoice};
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{InvoiceContent, RedLetterReason};
use fapiao_invoice::money::format_money;
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::redletter::{
    FormStatus, Initiator, LineReversalDraft, RedLetterDraft, ReversalScope, red_lines,
    validate_request,
};
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_invoice::violation::{Code, Violation};
use fapiao_proto::v1;
use std::collections::HashMap;
use std::sync::Arc;
use tonic::Status;
use tonic::codegen::BoxStream;

/// What the red-letter handlers need.
#[derive(Debug, Clone)]
pub struct RedLetterRpc {
    red_letters: RedLetters,
    sellers: Arc<SellerDirectory>,
    limits: Arc<Limits>,
    pace: super::watch::Pace,
}

/// The contract's words for a workflow error.
pub fn red_error(e: &RedLetterError) -> Status {
    match e {
        RedLetterError::Invalid(violations) => status::invalid_argument(violations),
        RedLetterError::BlueNotFound { .. } => Status::not_found(format!(
            "BLUE_INVOICE_NOT_FOUND: {}",
            status::clipped(&e.to_string())
        )),
        RedLetterError::BlueNotRecorded { .. } => Status::failed_precondition(format!(
            "BLUE_NOT_RECORDED: {}",
            status::clipped(&e.to_string())
        )),
        RedLetterError::Conflict { .. } => Status::already_exists(format!(
            "REQUEST_ID_REUSED: {}",
            status::clipped(&e.to_string())
        )),
        RedLetterError::Pending { .. } => Status::failed_precondition(format!(
            "RED_LETTER_FORM_PENDING: {}",
            status::clipped(&e.to_string())
        )),
        RedLetterError::Refused { code, .. } => {
            Status::failed_precondition(format!("PLATFORM_REFUSED: {e} [{code}]"))
        }
        RedLetterError::Unavailable(_) => Status::unavailable(format!("PLATFORM_UNAVAILABLE: {e}")),
        RedLetterError::FormNotFound(_) => Status::not_found(format!(
            "RED_LETTER_FORM_NOT_FOUND: {}",
            status::clipped(&e.to_string())
        )),
        RedLetterError::WrongStatus { code, .. } => {
            Status::failed_precondition(format!("{code}: {e}"))
        }
        RedLetterError::Store(error) => status::internal("red-letter workflow", error),
    }
}

fn reason_from_wire(value: i32) -> Option<RedLetterReason> {
    match v1::RedLetterReason::try_from(value).ok()? {
        v1::RedLetterReason::IssuedInError => Some(RedLetterReason::IssuedInError),
        v1::RedLetterReason::SalesReturn => Some(RedLetterReason::SalesReturn),
        v1::RedLetterReason::ServiceTerminated => Some(RedLetterReason::ServiceTerminated),
        v1::RedLetterReason::SalesAllowance => Some(RedLetterReason::SalesAllowance),
        v1::RedLetterReason::Unspecified => None,
    }
}

fn reason_to_wire(reason: RedLetterReason) -> v1::RedLetterReason {
    match reason {
        RedLetterReason::IssuedInError => v1::RedLetterReason::IssuedInError,
        RedLetterReason::SalesReturn => v1::RedLetterReason::SalesReturn,
        RedLetterReason::ServiceTerminated => v1::RedLetterReason::ServiceTerminated,
        RedLetterReason::SalesAllowance => v1::RedLetterReason::SalesAllowance,
    }
}

/// The wire status of a platform status: the enum's numbers are the platform's codes.
pub fn status_to_wire(status: Option<FormStatus>) -> i32 {
    status
        .and_then(|s| s.code().parse::<i32>().ok())
        .unwrap_or(0)
}

fn status_from_wire(value: i32) -> Option<FormStatus> {
    FormStatus::from_code(&format!("{value:02}"))
}

fn initiator_to_wire(initiator: Initiator) -> v1::RedLetterInitiator {
    match initiator {
        Initiator::Seller => v1::RedLetterInitiator::Seller,
        Initiator::Buyer => v1::RedLetterInitiator::Buyer,
    }
}

/// A form on the wire; `blue` (the blue invoice's content) gives the parties and line details.
pub fn form(f: &StoredForm, blue: Option<&InvoiceContent>) -> v1::RedLetterForm {
    let lines = blue
        .map(|b| {
            red_lines(b, &f.lines)
                .iter()
                .zip(&f.lines)
                .map(|(line, red)| v1::InvoiceLine {
                    blue_line_number: red.blue_line,
                    ..convert::line(line)
                })
                .collect()
        })
        .unwrap_or_default();
    v1::RedLetterForm {
        form_number: f.number.clone().unwrap_or_default(),
        uuid: f.uuid.clone().unwrap_or_default(),
        seller_tax_id: f.seller_tax_id.clone(),
        request_id: f.request_id.clone().unwrap_or_default(),
        seller: blue.map(|b| convert::party(&b.seller)),
        buyer: blue.map(|b| convert::party(&b.buyer.party)),
        blue_invoice_number: f.blue_number.to_string(),
        blue_kind: convert::kind(f.blue_kind).into(),
        reason: reason_to_wire(f.reason).into(),
        status: status_to_wire(f.phase.status()),
        initiator: initiator_to_wire(f.initiator).into(),
        lines,
        amount: format_money(-f.amount),
        tax: format_money(-f.tax),
        created_at: Some(convert::timestamp(f.created_at)),
        expires_at: f.expires_at.map(convert::timestamp),
        status_changed_at: Some(convert::timestamp(f.status_changed_at)),
        red_invoice_number: f.red_number.map(|n| n.to_string()).unwrap_or_default(),
    }
}

/// Forms on the wire, with one read for all their blue invoices (of the same sellers, so inside
/// the same `scope`).
pub async fn forms(
    store: &Store,
    scope: &Scope,
    forms: &[StoredForm],
) -> Result<Vec<v1::RedLetterForm>, Status> {
    let mut numbers: Vec<InvoiceNumber> = forms.iter().map(|f| f.blue_number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let blues: HashMap<InvoiceNumber, StoredInvoice> = store
        .get_invoices(scope, &numbers)
        .await
        .map_err(|e| status::internal("reading blue invoices", &e))?
        .into_iter()
        .map(|i| (i.number, i))
        .collect();
    Ok(forms
        .iter()
        .map(|f| form(f, blues.get(&f.blue_number).map(|b| &b.content)))
        .collect())
}

/// A form's status change on the wire.
pub fn event(e: &StoredFormEvent) -> v1::RedLetterFormEvent {
    v1::RedLetterFormEvent {
        form_number: e.form_number.clone(),
        seller_tax_id: e.seller_tax_id.clone(),
        request_id: e.request_id.clone(),
        blue_invoice_number: e.blue_number.clone(),
        status: status_to_wire(Some(e.status)),
        previous_status: status_to_wire(e.previous_status),
        at: Some(convert::timestamp(e.at)),
        reason: e.reason.clone(),
        actor: e.actor.clone(),
        red_invoice_number: e.red_number.clone().unwrap_or_default(),
    }
}

fn draft(input: &v1::RedLetterInput) -> RedLetterDraft {
    RedLetterDraft {
        request_id: input.request_id.clone(),
        blue_invoice_number: input.blue_invoice_number.clone(),
        reason: reason_from_wire(input.reason),
        scope: match &input.scope {
            None => None,
            Some(v1::red_letter_input::Scope::Full(_)) => Some(ReversalScope::Full),
            Some(v1::red_letter_input::Scope::Partial(p)) => Some(ReversalScope::Lines(
                p.lines
                    .iter()
                    .map(|l| LineReversalDraft {
                        line_number: l.line_number,
                        amount: l.amount.clone(),
                        quantity: l.quantity.clone(),
                    })
                    .collect(),
            )),
        },
        remark: input.remark.clone(),
        drawer: input.drawer.clone(),
    }
}

/// A form number to act on; one no form can have is "not found" like any unknown number.
fn form_key(text: &str) -> Result<&str, Status> {
    convert::lookup_key(text)
        .ok_or_else(|| red_error(&RedLetterError::FormNotFound(status::echo(text))))
}

fn seller_field(text: &str, field: &str) -> Result<TaxpayerId, Status> {
    TaxpayerId::parse(text.trim()).map_err(|_| {
        status::bad_field(
            field,
            "SELLER_TAX_ID_INVALID",
            "须提供有效的销售方纳税人识别号",
        )
    })
}

impl RedLetterRpc {
    pub fn new(
        red_letters: RedLetters,
        sellers: Arc<SellerDirectory>,
        limits: Arc<Limits>,
        pace: super::watch::Pace,
    ) -> Self {
        Self {
            red_letters,
            sellers,
            limits,
            pace,
        }
    }

    fn store(&self) -> &Store {
        self.red_letters.store()
    }

    async fn outcome(
        &self,
        caller: &Caller,
        filed: &Filed,
    ) -> Result<v1::RedLetterOutcome, Status> {
        let mut wire = forms(
            self.store(),
            &caller.scope(),
            std::slice::from_ref(&filed.form),
        )
        .await?;
        let red_invoice = filed.red.as_ref().map(|r| {
            let mut red = convert::invoice(r, &[]);
            number_red_lines(&mut red, &filed.form);
            red
        });
        Ok(v1::RedLetterOutcome {
            form: wire.pop(),
            red_invoice,
        })
    }

    /// One reversal: permission, validation (every problem at once), the workflow.
    pub async fn request(
        &self,
        caller: &Caller,
        input: &v1::RedLetterInput,
    ) -> Result<(v1::RedLetterOutcome, bool), Status> {
        let mut violations = Vec::new();
        let seller = match TaxpayerId::parse(input.seller_tax_id.trim()) {
            Ok(seller) => {
                caller.require_seller(&seller)?;
                if self.sellers.get(&seller).is_none() {
                    return Err(status::seller_not_configured(seller.as_str()));
                }
                Some(seller)
            }
            Err(e) => {
                violations.push(Violation::new(
                    "seller_tax_id",
                    Code::from_name(&format!("SELLER_{}", e.code())).unwrap_or(Code::INVALID_VALUE),
                    e.message_zh(),
                ));
                None
            }
        };
        let request = match validate_request(&draft(input), &self.limits) {
            Ok(request) if violations.is_empty() => request,
            Ok(_) => return Err(status::invalid_argument(&violations)),
            Err(more) => {
                violations.extend(more);
                return Err(status::invalid_argument(&violations));
            }
        };
        let Some(seller) = seller else {
            return Err(status::invalid_argument(&violations));
        };
        let filed = self
            .red_letters
            .request(&seller, request, &caller.name)
            .await
            .map_err(|e| red_error(&e))?;
        Ok((self.outcome(caller, &filed).await?, filed.replayed))
    }

    /// Up to 100 reversals, each on its own, concurrently.
    pub async fn request_many(
        &self,
        caller: &Caller,
        inputs: &[v1::RedLetterInput],
    ) -> Result<Vec<v1::RequestRedLettersItemResult>, Status> {
        if inputs.is_empty() || inputs.len() > super::MAX_BATCH {
            return Err(status::bad_field(
                "red_letters",
                "BATCH_SIZE_INVALID",
                "每批红冲请求数量须为1至100个",
            ));
        }
        let results =
            futures::future::join_all(inputs.iter().map(|input| self.request(caller, input))).await;
        Ok(results
            .into_iter()
            .enumerate()
            .map(|(index, result)| {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                match result {
                    Ok((outcome, replayed)) => v1::RequestRedLettersItemResult {
                        index,
                        result: Some(v1::request_red_letters_item_result::Result::Outcome(
                            outcome,
                        )),
                        replayed,
                    },
                    Err(e) => v1::RequestRedLettersItemResult {
                        index,
                        result: Some(v1::request_red_letters_item_result::Result::Error(
                            status::item_error(&e),
                        )),
                        replayed: false,
                    },
                }
            })
            .collect())
    }

    /// One form by number or by seller and request id; forms of sellers the caller may not see
    /// are "not found".
    pub async fn get(
        &self,
        caller: &Caller,
        req: v1::GetRedLetterFormRequest,
    ) -> Result<v1::RedLetterForm, Status> {
        let not_found = || Status::not_found("RED_LETTER_FORM_NOT_FOUND: no such red-letter form");
        let scope = caller.scope();
        let found = match req.key {
            None => {
                return Err(status::bad_field(
                    "key",
                    "KEY_REQUIRED",
                    "须提供确认单编号或请求编号",
                ));
            }
            Some(v1::get_red_letter_form_request::Key::FormNumber(number)) => {
                match convert::lookup_key(&number) {
                    Some(number) => self.store().form_by_number(&scope, number).await,
                    None => Ok(None),
                }
            }
            Some(v1::get_red_letter_form_request::Key::ByRequest(key)) => {
                let seller = seller_field(&key.seller_tax_id, "by_request.seller_tax_id")?;
                let scope = caller.scope_of(std::slice::from_ref(&seller))?;
                match convert::lookup_key(&key.request_id) {
                    Some(request_id) => {
                        self.store()
                            .form_by_request(&scope, seller.as_str(), request_id)
                            .await
                    }
                    None => Ok(None),
                }
            }
        }
        .map_err(|e| status::internal("reading a red-letter form", &e))?
        .ok_or_else(not_found)?;
        forms(self.store(), &scope, &[found])
            .await?
            .pop()
            .ok_or_else(not_found)
    }

    pub async fn list(
        &self,
        caller: &Caller,
        req: v1::ListRedLetterFormsRequest,
    ) -> Result<v1::ListRedLetterFormsResponse, Status> {
        let mut problems: Vec<(String, &str, &str)> = Vec::new();
        let seller = TaxpayerId::parse(req.seller_tax_id.trim()).ok();
        if seller.is_none() {
            problems.push((
                "seller_tax_id".into(),
                "SELLER_TAX_ID_INVALID",
                "须提供有效的销售方纳税人识别号",
            ));
        }
        let mut statuses = Vec::new();
        for (i, value) in req.statuses.iter().enumerate() {
            match status_from_wire(*value) {
                Some(s) => statuses.push(s.code().to_owned()),
                None if *value == 0 => {}
                None => problems.push((
                    format!("statuses[{i}]"),
                    "STATUS_UNKNOWN",
                    "未知的确认单状态",
                )),
            }
        }
        let blue_number = match req.blue_invoice_number.trim() {
            "" => None,
            text => match text.parse::<InvoiceNumber>() {
                Ok(n) => Some(n.to_string()),
                Err(_) => {
                    problems.push((
                        "blue_invoice_number".into(),
                        "INVOICE_NUMBER_INVALID",
                        "发票号码须为20位数字",
                    ));
                    None
                }
            },
        };
        let time = |t: &Option<prost_types::Timestamp>| t.as_ref().map(convert::from_timestamp);
        let (created_from, created_to) = (time(&req.created_from), time(&req.created_to));
        if matches!(created_from, Some(None)) {
            problems.push(("created_from".into(), "TIME_INVALID", "时间无效"));
        }
        if matches!(created_to, Some(None)) {
            problems.push(("created_to".into(), "TIME_INVALID", "时间无效"));
        }
        let Some(seller) = seller.filter(|_| problems.is_empty()) else {
            return Err(status::bad_fields(&problems));
        };
        let scope = caller.scope_of(std::slice::from_ref(&seller))?;
        let filter = FormFilter {
            seller_tax_id: seller.as_str().to_owned(),
            statuses,
            initiator: match v1::RedLetterInitiator::try_from(req.initiator) {
                Ok(v1::RedLetterInitiator::Seller) => Some(Initiator::Seller),
                Ok(v1::RedLetterInitiator::Buyer) => Some(Initiator::Buyer),
                _ => None,
            },
            blue_number,
            created_from: created_from.flatten(),
            created_to: created_to.flatten(),
        };
        let fingerprint = paging::fingerprint(&filter);
        let before = paging::parse_id_token(&req.page_token, &fingerprint)?;
        let size = paging::page_size(req.page_size);
        let found = self
            .store()
            .list_forms(&scope, &filter, before, size + 1)
            .await
            .map_err(|e| status::internal("listing red-letter forms", &e))?;
        let (page, next_page_token) =
            paging::split_page(found, size, |last| paging::id_token(last.id, &fingerprint));
        Ok(v1::ListRedLetterFormsResponse {
            forms: forms(self.store(), &scope, &page).await?,
            next_page_token,
        })
    }

    pub async fn confirm(
        &self,
        caller: &Caller,
        req: v1::ConfirmRedLetterFormRequest,
    ) -> Result<v1::ConfirmRedLetterFormResponse, Status> {
        let seller = seller_field(&req.seller_tax_id, "seller_tax_id")?;
        caller.require_seller(&seller)?;
        let agree = match v1::RedLetterFormDecision::try_from(req.decision) {
            Ok(v1::RedLetterFormDecision::Agree) => true,
            Ok(v1::RedLetterFormDecision::Disagree) => false,
            _ => {
                return Err(status::bad_field(
                    "decision",
                    "DECISION_REQUIRED",
                    "须选择同意或不同意",
                ));
            }
        };
        let filed = self
            .red_letters
            .answer(
                &seller,
                form_key(&req.form_number)?,
                agree,
                &req.drawer,
                &caller.name,
            )
            .await
            .map_err(|e| red_error(&e))?;
        let outcome = self.outcome(caller, &filed).await?;
        Ok(v1::ConfirmRedLetterFormResponse {
            form: outcome.form,
            red_invoice: outcome.red_invoice,
        })
    }

    pub async fn withdraw(
        &self,
        caller: &Caller,
        req: v1::WithdrawRedLetterFormRequest,
    ) -> Result<v1::RedLetterForm, Status> {
        let seller = seller_field(&req.seller_tax_id, "seller_tax_id")?;
        caller.require_seller(&seller)?;
        let form = self
            .red_letters
            .withdraw(&seller, form_key(&req.form_number)?, &caller.name)
            .await
            .map_err(|e| red_error(&e))?;
        forms(self.store(), &caller.scope(), &[form])
            .await?
            .pop()
            .ok_or_else(|| Status::internal("INTERNAL: the form went missing"))
    }

    pub async fn watch(
        &self,
        caller: &Caller,
        req: v1::WatchRedLetterFormsRequest,
    ) -> Result<BoxStream<v1::WatchRedLetterFormsResponse>, Status> {
        let mut requested = Vec::with_capacity(req.seller_tax_ids.len());
        for (i, s) in req.seller_tax_ids.iter().enumerate() {
            requested.push(seller_field(s, &format!("seller_tax_ids[{i}]"))?);
        }
        let scope = caller.scope_of(&requested)?;
        let store = self.store().clone();
        let cursor = match req.after_cursor.trim() {
            "" => store
                .last_form_event_id()
                .await
                .map_err(|e| status::internal("reading the form event position", &e))?,
            text => text
                .strip_prefix('r')
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| status::bad_field("after_cursor", "CURSOR_INVALID", "游标无效"))?,
        };
        let read = move |after: i64, limit: u32| {
            let (store, scope) = (store.clone(), scope.clone());
            async move { store.form_events_after(&scope, after, limit).await }
        };
        Ok(super::watch::follow(
            cursor,
            self.red_letters.changes(),
            read,
            |cursor, e| v1::WatchRedLetterFormsResponse {
                cursor: format!("r{cursor}"),
                event: e.map(event),
            },
            "reading form events",
            self.pace,
        ))
    }
}
