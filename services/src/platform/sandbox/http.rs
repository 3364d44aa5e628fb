//! The HTTP face of the sandbox: the platform endpoint and the admin API.
//!
//! The platform endpoint `POST /access/v2/invoke/{nlbm}/{fwbm}` checks the `nlbm`/`fwbm` headers
//! against the path, verifies the signed request (refusals are `{"Response":{"Error":…}}` with
//! HTTP 400, 401 or 503), opens the body, applies the fault plan (latency, busy, hang), runs the
//! service and seals its reply into `{"Response":{"Data":…}}` (HTTP 200, business refusals
//! included). `SYSTEM_BUSY` answers are HTTP 503; a failed journal write is `SYSTEM_ERROR`, 500.
//!
//! The admin API under `/admin/` is plain JSON without authentication: it must never be exposed
//! beyond the test or development machine. Its form and clock endpoints live in [`forms`]; admin
//! actions on forms first expire what is due, like the platform's own services.

mod forms;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::config::FaultConfig;
use super::faults::{Action, Plan};
use super::state::Event;
use super::{Sandbox, Shared, service};
use crate::platform::UsageStatus;
use crate::platform::protocol::messages::codes;
use crate::platform::protocol::{self, Credentials, Refusal, ResponseEnvelope};

/// Largest request body accepted (a full upload of large invoices fits).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

pub(crate) fn router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/access/v2/invoke/{nlbm}/{fwbm}", post(invoke))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/stats", get(get_stats))
        .route("/admin/sellers/{tax_id}", put(put_seller))
        .route("/admin/invoices", get(list_numbers))
        .route("/admin/invoices/{number}/usage", put(put_usage))
        .route(
            "/admin/clock",
            get(forms::get_clock).post(forms::advance_clock),
        )
        .route(
            "/admin/forms",
            get(forms::list_forms).post(forms::file_as_buyer),
        )
        .route("/admin/forms/{number}/confirm", post(forms::confirm))
        .route("/admin/forms/{number}/deny", post(forms::deny))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(sandbox)
}

async fn invoke(
    State(sandbox): State<Sandbox>,
    Path((nlbm, fwbm)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let shared = &sandbox.shared;
    shared.count_request(&fwbm);
    let credentials = match shared.verify(&nlbm, &fwbm, uri.path(), &headers, &body) {
        Ok(credentials) => credentials,
        Err(refusal) => return refused(shared, &refusal),
    };
    let text = match protocol::open(&credentials, &body) {
        Ok(text) => text,
        Err(error) => return refused(shared, &Refusal::BodyUnreadable(error)),
    };
    let plan = shared.plan(&fwbm);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    match plan.action {
        Action::Proceed => answer(shared, &credentials, &fwbm, &text, &plan),
        Action::Busy => busy(shared),
        Action::Hang {
            processed: false,
            hang,
        } => {
            tokio::time::sleep(hang).await;
            busy(shared)
        }
        Action::Hang {
            processed: true,
            hang,
        } => {
            let response = answer(shared, &credentials, &fwbm, &text, &plan);
            tokio::time::sleep(hang).await;
            response
        }
    }
}

/// Runs the service and seals its reply.
fn answer(
    shared: &Shared,
    credentials: &Credentials,
    service: &str,
    text: &str,
    plan: &Plan,
) -> Response {
    let now = shared.business_now();
    let json = match service::handle(shared, service, text, plan, now) {
        Ok(json) => json,
        Err(error) => {
            tracing::error!(%error, "cannot write the sandbox state file");
            return system_error(shared);
        }
    };
    match protocol::seal(credentials, &json) {
        Ok(sealed) => envelope(StatusCode::OK, &ResponseEnvelope::data(sealed)),
        Err(error) => {
            tracing::error!(%error, "cannot seal a sandbox reply");
            system_error(shared)
        }
    }
}

fn envelope(status: StatusCode, envelope: &ResponseEnvelope) -> Response {
    (status, Json(envelope)).into_response()
}

fn refused(shared: &Shared, refusal: &Refusal) -> Response {
    shared.count_refusal(refusal.code());
    let status = match refusal {
        Refusal::UnitUnknown
        | Refusal::UserUnknown
        | Refusal::TimestampStale
        | Refusal::SignatureInvalid
        | Refusal::NonceReplayed => StatusCode::UNAUTHORIZED,
        Refusal::ReplayCacheFull => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::HeaderMissing(_) | Refusal::HeaderMalformed(_) | Refusal::BodyUnreadable(_) => {
            StatusCode::BAD_REQUEST
        }
    };
    envelope(status, &refusal.to_envelope())
}

fn busy(shared: &Shared) -> Response {
    shared.count_refusal(codes::SYSTEM_BUSY);
    envelope(
        StatusCode::SERVICE_UNAVAILABLE,
        &ResponseEnvelope::error(codes::SYSTEM_BUSY, "系统繁忙，请稍后重试"),
    )
}

fn system_error(shared: &Shared) -> Response {
    shared.count_refusal(codes::SYSTEM_ERROR);
    envelope(
        StatusCode::INTERNAL_SERVER_ERROR,
        &ResponseEnvelope::error(codes::SYSTEM_ERROR, "系统异常，处理结果未知"),
    )
}

/// Checks that a routing header (`nlbm`, `fwbm`) is present and says the same as the path.
pub(crate) fn check_routing_header(
    headers: &HeaderMap,
    name: &'static str,
    expected: &str,
) -> Result<(), Refusal> {
    let value = headers.get(name).ok_or(Refusal::HeaderMissing(name))?;
    if value.as_bytes() == expected.as_bytes() {
        Ok(())
    } else {
        Err(Refusal::HeaderMalformed(name))
    }
}

/// An admin error: `{"error": "..."}`.
fn admin_error(status: StatusCode, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Body {
        error: String,
    }
    (
        status,
        Json(Body {
            error: message.into(),
        }),
    )
        .into_response()
}

async fn get_faults(State(sandbox): State<Sandbox>) -> Json<FaultConfig> {
    Json(sandbox.faults())
}

async fn put_faults(State(sandbox): State<Sandbox>, Json(faults): Json<FaultConfig>) -> Response {
    match sandbox.set_faults(faults.clone()) {
        Ok(()) => Json(faults).into_response(),
        Err(error) => admin_error(StatusCode::BAD_REQUEST, format!("{error:#}")),
    }
}

async fn get_stats(State(sandbox): State<Sandbox>) -> Json<super::Stats> {
    Json(sandbox.stats())
}

/// `PUT /admin/sellers/{tax_id}`: either field may be left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SellerUpdate {
    numbers_remaining: Option<u64>,
    monthly_quota: Option<Decimal>,
}

async fn put_seller(
    State(sandbox): State<Sandbox>,
    Path(tax_id): Path<String>,
    Json(update): Json<SellerUpdate>,
) -> Response {
    let Ok(seller) = TaxpayerId::parse(&tax_id) else {
        return admin_error(StatusCode::BAD_REQUEST, "not a valid taxpayer id");
    };
    if update.monthly_quota.is_some_and(|q| q.is_sign_negative()) {
        return admin_error(
            StatusCode::BAD_REQUEST,
            "monthly_quota must not be negative",
        );
    }
    let shared = &sandbox.shared;
    let now = shared.business_now();
    let mut ledger = shared.ledger();
    ledger.catch_up(now);
    for event in ledger
        .state
        .set_seller(&seller, update.numbers_remaining, update.monthly_quota)
    {
        ledger.commit(event);
    }
    if let Err(error) = ledger.finish() {
        tracing::error!(%error, "cannot write the sandbox state file");
        return admin_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot write the state file",
        );
    }
    Json(ledger.state.seller_view(&seller)).into_response()
}

async fn put_usage(
    State(sandbox): State<Sandbox>,
    Path(number): Path<String>,
    Json(usage): Json<UsageStatus>,
) -> Response {
    let Ok(number) = number.parse::<InvoiceNumber>() else {
        return admin_error(StatusCode::BAD_REQUEST, "not a 20-digit invoice number");
    };
    let now = sandbox.shared.business_now();
    let mut ledger = sandbox.shared.ledger();
    ledger.catch_up(now);
    if !ledger.state.is_recorded(&number) {
        return admin_error(StatusCode::NOT_FOUND, "no such recorded invoice");
    }
    ledger.commit(Event::UsageSet { number, usage });
    if let Err(error) = ledger.finish() {
        tracing::error!(%error, "cannot write the sandbox state file");
        return admin_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot write the state file",
        );
    }
    Json(usage).into_response()
}

#[derive(Debug, Deserialize)]
struct SellerQuery {
    seller: String,
}

/// `GET /admin/invoices?seller=…`: the seller's recorded numbers, ascending.
#[derive(Debug, Serialize)]
struct RecordedNumbers {
    seller: String,
    numbers: Vec<InvoiceNumber>,
}

async fn list_numbers(
    State(sandbox): State<Sandbox>,
    Query(query): Query<SellerQuery>,
) -> Response {
    let Ok(seller) = TaxpayerId::parse(&query.seller) else {
        return admin_error(StatusCode::BAD_REQUEST, "not a valid taxpayer id");
    };
    let numbers = sandbox.shared.ledger().state.numbers_of(&seller);
    Json(RecordedNumbers {
        seller: seller.to_string(),
        numbers,
    })
    .into_response()
}
