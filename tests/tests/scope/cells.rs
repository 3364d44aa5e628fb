//! One call per RPC and target. Each returns whose data the answer showed (a seller tax id per
//! item, `*` for data of every seller, empty for no data) or the refusal.

use super::support::{drain, item_answer, part_of, stamp, trigger, verified};
use super::world::{A, B, NO_FORM, NO_INVOICE, U, World, invoice_of, reversal};
use fapiao_proto::v1;
use tonic::Status;

/// What a cell asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The caller's own seller, or an object of it.
    Own,
    /// Another configured seller, or an object of it.
    Other,
    /// A seller this deployment does not have, or an object that does not exist.
    Unknown,
    /// No seller or object named at all.
    Unfiltered,
}

/// Every RPC of the contract, by its method name; variants with a suffix name a second way of
/// addressing the same RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    IssueInvoice,
    IssueInvoices,
    ValidateInvoice,
    GetInvoice,
    GetInvoiceByRequest,
    ListInvoices,
    WatchInvoices,
    RequestRedLetter,
    RequestRedLetterOfBlue,
    RequestRedLetters,
    GetRedLetterForm,
    ListRedLetterForms,
    ConfirmRedLetterForm,
    ConfirmRedLetterFormOfForm,
    WithdrawRedLetterForm,
    WithdrawRedLetterFormOfForm,
    WatchRedLetterForms,
    SearchInvoices,
    GetArchivedFile,
    VerifyInvoices,
    VerifyInvoicesOfRange,
    GetInvoiceHistory,
    ListAccessRecords,
    ListReconciliationRuns,
    GetReconciliationRun,
    ListDrifts,
    ResolveDrift,
    TriggerReconciliation,
    ListPendingRedLetterForms,
    GetNumberAndQuotaStatus,
}

/// The result of one cell: whose data the answer showed, or the refusal.
pub type Answer = Result<Vec<String>, Status>;

fn seller_named(target: Target) -> &'static str {
    match target {
        Target::Own => A,
        Target::Other => B,
        Target::Unknown => U,
        Target::Unfiltered => "",
    }
}

fn invoice_named(w: &World, target: Target) -> String {
    match target {
        Target::Own => w.a_invoice.clone(),
        Target::Other => w.b_invoice.clone(),
        Target::Unknown => NO_INVOICE.into(),
        Target::Unfiltered => String::new(),
    }
}

fn form_named(w: &World, target: Target, withdrawing: bool) -> String {
    match target {
        Target::Own if withdrawing => w.a_form_to_withdraw.clone(),
        Target::Own => w.a_form.clone(),
        Target::Other => w.b_form.clone(),
        Target::Unknown => NO_FORM.into(),
        Target::Unfiltered => String::new(),
    }
}

pub fn sellers_named(target: Target) -> Vec<String> {
    match target {
        Target::Unfiltered => Vec::new(),
        other => vec![seller_named(other).to_owned()],
    }
}

/// A unique request id for a cell that creates something.
fn request_id(rpc: Rpc, token: &str, target: Target) -> String {
    format!("{rpc:?}-{target:?}-{}", &token[..12])
}

/// Make the call `rpc` about `target` as the holder of `token`.
pub async fn call(w: &World, rpc: Rpc, token: &str, target: Target) -> Answer {
    let app = &w.app;
    let seller = seller_named(target);
    let number = invoice_named(w, target);
    let mut issuance = app.issuance_as(token);
    let mut audit = app.audit_as(token);
    let mut ops = app.ops_as(token);
    match rpc {
        Rpc::IssueInvoice => {
            let input = invoice_of(seller, &request_id(rpc, token, target));
            let answer = issuance
                .issue_invoice(v1::IssueInvoiceRequest {
                    invoice: Some(input),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(answer
                .invoice
                .into_iter()
                .map(|i| i.seller_tax_id)
                .collect())
        }
        Rpc::IssueInvoices => {
            let input = invoice_of(seller, &request_id(rpc, token, target));
            let answer = issuance
                .issue_invoices(v1::IssueInvoicesRequest {
                    invoices: vec![input],
                    ..Default::default()
                })
                .await?
                .into_inner();
            let item = answer.results.first().cloned().unwrap_or_default();
            let error = match &item.result {
                Some(v1::issue_invoices_item_result::Result::Error(e)) => Some(e),
                _ => None,
            };
            item_answer(error, seller)
        }
        Rpc::ValidateInvoice => {
            let answer = issuance
                .validate_invoice(v1::ValidateInvoiceRequest {
                    invoice: Some(invoice_of(seller, "validate")),
                })
                .await?
                .into_inner();
            if answer.valid {
                Ok(vec![seller.to_owned()])
            } else {
                Err(Status::invalid_argument(format!("{:?}", answer.violations)))
            }
        }
        Rpc::GetInvoice => {
            let key = (target != Target::Unfiltered)
                .then_some(v1::get_invoice_request::Key::InvoiceNumber(number));
            let answer = issuance
                .get_invoice(v1::GetInvoiceRequest {
                    key,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(answer
                .invoice
                .into_iter()
                .map(|i| i.seller_tax_id)
                .collect())
        }
        Rpc::GetInvoiceByRequest => {
            let request_id = match target {
                Target::Other => "b-1",
                _ => "a-1",
            };
            let answer = issuance
                .get_invoice(v1::GetInvoiceRequest {
                    key: Some(v1::get_invoice_request::Key::ByRequest(
                        v1::SellerRequestKey {
                            seller_tax_id: seller.into(),
                            request_id: request_id.into(),
                        },
                    )),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(answer
                .invoice
                .into_iter()
                .map(|i| i.seller_tax_id)
                .collect())
        }
        Rpc::ListInvoices => {
            let answer = issuance
                .list_invoices(v1::ListInvoicesRequest {
                    seller_tax_id: seller.into(),
                    page_size: 500,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(answer
                .invoices
                .into_iter()
                .map(|i| i.seller_tax_id)
                .collect())
        }
        Rpc::WatchInvoices => {
            let stream = issuance
                .watch_invoices(v1::WatchInvoicesRequest {
                    seller_tax_ids: sellers_named(target),
                    after_cursor: "e0".into(),
                })
                .await?
                .into_inner();
            Ok(drain(stream)
                .await?
                .into_iter()
                .filter_map(|m| m.event)
                .map(|e| e.seller_tax_id)
                .collect())
        }
        Rpc::RequestRedLetter | Rpc::RequestRedLetterOfBlue => {
            // By seller: the seller named, with its own blue invoice. Of blue: the caller's
            // seller, with the blue invoice named.
            let (seller, blue) = match rpc {
                Rpc::RequestRedLetter => (seller.to_owned(), w.b_invoice.clone()),
                _ => (A.to_owned(), number),
            };
            let blue = if rpc == Rpc::RequestRedLetter && target == Target::Own {
                w.a_invoice.clone()
            } else {
                blue
            };
            let answer = issuance
                .request_red_letter(v1::RequestRedLetterRequest {
                    red_letter: Some(part_of(reversal(
                        &seller,
                        &request_id(rpc, token, target),
                        &blue,
                    ))),
                })
                .await?
                .into_inner();
            Ok(answer.form.into_iter().map(|f| f.seller_tax_id).collect())
        }
        Rpc::RequestRedLetters => {
            let blue = match target {
                Target::Own => w.a_invoice.clone(),
                _ => w.b_invoice.clone(),
            };
            let answer = issuance
                .request_red_letters(v1::RequestRedLettersRequest {
                    red_letters: vec![part_of(reversal(
                        seller,
                        &request_id(rpc, token, target),
                        &blue,
                    ))],
                })
                .await?
                .into_inner();
            let item = answer.results.first().cloned().unwrap_or_default();
            match &item.result {
                Some(v1::request_red_letters_item_result::Result::Outcome(o)) => {
                    Ok(o.form.iter().map(|f| f.seller_tax_id.clone()).collect())
                }
                Some(v1::request_red_letters_item_result::Result::Error(e)) => {
                    item_answer(Some(e), seller)
                }
                None => Ok(Vec::new()),
            }
        }
        Rpc::GetRedLetterForm => {
            let key = (target != Target::Unfiltered).then_some(
                v1::get_red_letter_form_request::Key::FormNumber(form_named(w, target, false)),
            );
            let answer = issuance
                .get_red_letter_form(v1::GetRedLetterFormRequest { key })
                .await?
                .into_inner();
            Ok(answer.form.into_iter().map(|f| f.seller_tax_id).collect())
        }
        Rpc::ListRedLetterForms => {
            let answer = issuance
                .list_red_letter_forms(v1::ListRedLetterFormsRequest {
                    seller_tax_id: seller.into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(answer.forms.into_iter().map(|f| f.seller_tax_id).collect())
        }
        Rpc::ConfirmRedLetterForm | Rpc::ConfirmRedLetterFormOfForm => {
            let (seller, form) = match rpc {
                Rpc::ConfirmRedLetterForm => (seller.to_owned(), w.b_form.clone()),
                _ => (A.to_owned(), form_named(w, target, false)),
            };
            let form = if target == Target::Own {
                w.a_form.clone()
            } else {
                form
            };
            let answer = issuance
                .confirm_red_letter_form(v1::ConfirmRedLetterFormRequest {
                    seller_tax_id: seller,
                    form_number: form,
                    decision: v1::RedLetterFormDecision::Agree.into(),
                    drawer: "张三".into(),
                })
                .await?
                .into_inner();
            Ok(answer.form.into_iter().map(|f| f.seller_tax_id).collect())
        }
        Rpc::WithdrawRedLetterForm | Rpc::WithdrawRedLetterFormOfForm => {
            let (seller, form) = match rpc {
                Rpc::WithdrawRedLetterForm => (seller.to_owned(), w.b_form.clone()),
                _ => (A.to_owned(), form_named(w, target, true)),
            };
            let form = if target == Target::Own {
                w.a_form_to_withdraw.clone()
            } else {
                form
            };
            let answer = issuance
                .withdraw_red_letter_form(v1::WithdrawRedLetterFormRequest {
                    seller_tax_id: seller,
                    form_number: form,
                })
                .await?
                .into_inner();
            Ok(answer.form.into_iter().map(|f| f.seller_tax_id).collect())
        }
        Rpc::WatchRedLetterForms => {
            let stream = issuance
                .watch_red_letter_forms(v1::WatchRedLetterFormsRequest {
                    seller_tax_ids: sellers_named(target),
                    after_cursor: "r0".into(),
                })
                .await?
                .into_inner();
            Ok(drain(stream)
                .await?
                .into_iter()
                .filter_map(|m| m.event)
                .map(|e| e.seller_tax_id)
                .collect())
        }
        Rpc::SearchInvoices => {
            let answer = audit
                .search_invoices(v1::SearchInvoicesRequest {
                    seller_tax_id: seller.into(),
                    page_size: 500,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(answer
                .invoices
                .into_iter()
                .map(|i| i.seller_tax_id)
                .collect())
        }
        Rpc::GetArchivedFile => {
            let stream = audit
                .get_archived_file(v1::GetArchivedFileRequest {
                    invoice_number: number,
                    format: v1::FileFormat::Pdf.into(),
                    purpose: "scope table".into(),
                })
                .await?
                .into_inner();
            let mut sellers = Vec::new();
            for message in drain(stream).await? {
                if let Some(v1::get_archived_file_response::Part::Metadata(m)) = message.part {
                    sellers.push(w.seller_of(&m.invoice_number));
                }
            }
            Ok(sellers)
        }
        Rpc::VerifyInvoices => {
            let scope = (target != Target::Unfiltered)
                .then_some(v1::verify_invoices_request::Scope::InvoiceNumber(number));
            let stream = audit
                .verify_invoices(v1::VerifyInvoicesRequest {
                    scope,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(verified(drain(stream).await?))
        }
        Rpc::VerifyInvoicesOfRange => {
            let now = chrono::Utc::now();
            let stream = audit
                .verify_invoices(v1::VerifyInvoicesRequest {
                    scope: Some(v1::verify_invoices_request::Scope::Issued(v1::TimeRange {
                        from: Some(stamp(now - chrono::TimeDelta::hours(1))),
                        to: Some(stamp(now + chrono::TimeDelta::hours(1))),
                    })),
                    seller_tax_id: seller.into(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(verified(drain(stream).await?))
        }
        Rpc::GetInvoiceHistory => {
            let answer = audit
                .get_invoice_history(v1::GetInvoiceHistoryRequest {
                    invoice_number: number,
                })
                .await?
                .into_inner();
            Ok(answer
                .events
                .into_iter()
                .map(|e| e.seller_tax_id)
                .chain(
                    answer
                        .red_letter_form_events
                        .into_iter()
                        .map(|e| e.seller_tax_id),
                )
                .collect())
        }
        Rpc::ListAccessRecords => {
            let answer = audit
                .list_access_records(v1::ListAccessRecordsRequest {
                    invoice_number: number,
                    page_size: 500,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(answer
                .records
                .into_iter()
                .map(|r| {
                    if r.seller_tax_id.is_empty() {
                        format!("no seller: {} {}", r.method, r.invoice_number)
                    } else {
                        r.seller_tax_id
                    }
                })
                .collect())
        }
        Rpc::ListReconciliationRuns => {
            let answer = ops
                .list_reconciliation_runs(v1::ListReconciliationRunsRequest {
                    page_size: 500,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(answer.runs.iter().map(|r| w.run_owner(&r.run_id)).collect())
        }
        Rpc::GetReconciliationRun => {
            let run_id = match target {
                Target::Own => w.a_run.clone(),
                Target::Other => w.b_run.clone(),
                Target::Unknown => "999999999".into(),
                Target::Unfiltered => String::new(),
            };
            let answer = ops
                .get_reconciliation_run(v1::GetReconciliationRunRequest { run_id })
                .await?
                .into_inner();
            Ok(answer.run.iter().map(|r| w.run_owner(&r.run_id)).collect())
        }
        Rpc::ListDrifts => {
            let answer = ops
                .list_drifts(v1::ListDriftsRequest {
                    seller_tax_id: seller.into(),
                    page_size: 500,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(answer.drifts.into_iter().map(|d| d.seller_tax_id).collect())
        }
        Rpc::ResolveDrift => {
            let drift_id = match target {
                Target::Own => w.a_drift_to_resolve.clone(),
                Target::Other => w.b_drift.clone(),
                Target::Unknown => "999999999".into(),
                Target::Unfiltered => String::new(),
            };
            let answer = ops
                .resolve_drift(v1::ResolveDriftRequest {
                    drift_id,
                    reason: "checked by hand".into(),
                })
                .await?
                .into_inner();
            Ok(answer.drift.into_iter().map(|d| d.seller_tax_id).collect())
        }
        Rpc::TriggerReconciliation => trigger(w, token, target).await,
        Rpc::ListPendingRedLetterForms => {
            let answer = ops
                .list_pending_red_letter_forms(v1::ListPendingRedLetterFormsRequest {
                    seller_tax_id: seller.into(),
                    page_size: 500,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(answer.forms.into_iter().map(|f| f.seller_tax_id).collect())
        }
        Rpc::GetNumberAndQuotaStatus => {
            let answer = ops
                .get_number_and_quota_status(v1::GetNumberAndQuotaStatusRequest {
                    seller_tax_id: seller.into(),
                })
                .await?
                .into_inner();
            Ok(answer
                .sellers
                .into_iter()
                .map(|s| s.seller_tax_id)
                .collect())
        }
    }
}
