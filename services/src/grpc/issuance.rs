//! `IssuanceService`. Today it answers `ValidateInvoice`; the other RPCs of the contract answer
//! `UNIMPLEMENTED` until the issuance workflow, the store and the platform client land.

use super::{convert, status};
use fapiao_invoice::catalog::TaxCodeCatalog;
use fapiao_invoice::limits::Limits;
use fapiao_invoice::model::{InvoiceDraft, SellerDraft};
use fapiao_invoice::taxpayer::TaxpayerId;
use fapiao_invoice::validate::Validator;
use fapiao_proto::v1::{self, issuance_service_server::IssuanceService};
use std::sync::Arc;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::auth::{self, Role};
use crate::sellers::SellerDirectory;

/// What the issuance handlers need, shared by every call.
#[derive(Debug, Clone)]
pub struct IssuanceApi {
    catalog: Arc<TaxCodeCatalog>,
    limits: Arc<Limits>,
    sellers: Arc<SellerDirectory>,
}

impl IssuanceApi {
    pub fn new(
        catalog: Arc<TaxCodeCatalog>,
        limits: Arc<Limits>,
        sellers: Arc<SellerDirectory>,
    ) -> Self {
        Self {
            catalog,
            limits,
            sellers,
        }
    }

    /// Check the caller may act for the seller, then put the seller's profile into the draft. A
    /// well-formed tax id without a profile is refused (after the permission check, so callers
    /// cannot probe which sellers exist); a malformed one is left for validation to report with
    /// everything else.
    fn with_seller_profile(
        &self,
        caller: &auth::Caller,
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
}

#[tonic::async_trait]
impl IssuanceService for IssuanceApi {
    async fn issue_invoice(
        &self,
        _: Request<v1::IssueInvoiceRequest>,
    ) -> Result<Response<v1::IssueInvoiceResponse>, Status> {
        Err(status::not_yet("IssueInvoice"))
    }

    async fn issue_invoices(
        &self,
        _: Request<v1::IssueInvoicesRequest>,
    ) -> Result<Response<v1::IssueInvoicesResponse>, Status> {
        Err(status::not_yet("IssueInvoices"))
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
        _: Request<v1::GetInvoiceRequest>,
    ) -> Result<Response<v1::GetInvoiceResponse>, Status> {
        Err(status::not_yet("GetInvoice"))
    }

    async fn list_invoices(
        &self,
        _: Request<v1::ListInvoicesRequest>,
    ) -> Result<Response<v1::ListInvoicesResponse>, Status> {
        Err(status::not_yet("ListInvoices"))
    }

    type WatchInvoicesStream = BoxStream<v1::WatchInvoicesResponse>;

    async fn watch_invoices(
        &self,
        _: Request<v1::WatchInvoicesRequest>,
    ) -> Result<Response<Self::WatchInvoicesStream>, Status> {
        Err(status::not_yet("WatchInvoices"))
    }

    async fn request_red_letter(
        &self,
        _: Request<v1::RequestRedLetterRequest>,
    ) -> Result<Response<v1::RequestRedLetterResponse>, Status> {
        Err(status::not_yet("RequestRedLetter"))
    }

    async fn request_red_letters(
        &self,
        _: Request<v1::RequestRedLettersRequest>,
    ) -> Result<Response<v1::RequestRedLettersResponse>, Status> {
        Err(status::not_yet("RequestRedLetters"))
    }

    async fn get_red_letter_form(
        &self,
        _: Request<v1::GetRedLetterFormRequest>,
    ) -> Result<Response<v1::GetRedLetterFormResponse>, Status> {
        Err(status::not_yet("GetRedLetterForm"))
    }

    async fn list_red_letter_forms(
        &self,
        _: Request<v1::ListRedLetterFormsRequest>,
    ) -> Result<Response<v1::ListRedLetterFormsResponse>, Status> {
        Err(status::not_yet("ListRedLetterForms"))
    }

    async fn confirm_red_letter_form(
        &self,
        _: Request<v1::ConfirmRedLetterFormRequest>,
    ) -> Result<Response<v1::ConfirmRedLetterFormResponse>, Status> {
        Err(status::not_yet("ConfirmRedLetterForm"))
    }

    async fn withdraw_red_letter_form(
        &self,
        _: Request<v1::WithdrawRedLetterFormRequest>,
    ) -> Result<Response<v1::WithdrawRedLetterFormResponse>, Status> {
        Err(status::not_yet("WithdrawRedLetterForm"))
    }

    type WatchRedLetterFormsStream = BoxStream<v1::WatchRedLetterFormsResponse>;

    async fn watch_red_letter_forms(
        &self,
        _: Request<v1::WatchRedLetterFormsRequest>,
    ) -> Result<Response<Self::WatchRedLetterFormsStream>, Status> {
        Err(status::not_yet("WatchRedLetterForms"))
    }
}
