//! The admin API of confirmation forms and of the business clock: the sandbox's operator acts as
//! the buyer (files a form, confirms or denies the seller's), lists a seller's forms, and moves
//! business time forward so tests can reach a form's 72-hour deadline without sleeping.
//!
//! - `GET /admin/clock`, `POST /admin/clock` `{"advance_seconds": N}` (N ≥ 0): `{"now": "<RFC 3339>"}`,
//!   business time (journaled, so it survives a restart with a state file).
//! - `POST /admin/forms` `{"seller", "blue_number", "reason": "01".."04", "full": true}` or with
//!   `"lines": [{"blue_line", "amount", "tax", "quantity"}]`: the buyer's form (03), as JSON of
//!   `RemoteForm`. Refusals: 400 for a malformed body or line, 404 for an unknown blue invoice, 409
//!   for a pending form or amounts beyond what remains; `{"error", "code"}`.
//! - `POST /admin/forms/{number}/confirm` (02 → 04) and `/deny` (02 → 05): the form; 404 unknown,
//!   409 in another status (the message names it).
//! - `GET /admin/forms?seller=…`: `{"seller", "forms": [...]}`, newest first.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use fapiao_invoice::model::RedLetterReason;
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::redletter::RedLine;
use fapiao_invoice::taxpayer::TaxpayerId;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::super::Sandbox;
use super::super::checks::Rejection;
use super::super::service::forms::{after_confirmation, count_self_issued};
use super::super::state::{BuyerAnswerError, Event, FormLines, status_text};
use super::{SellerQuery, admin_error};
use crate::platform::RemoteForm;
use crate::platform::protocol::messages::codes;

/// `{"now": …}`: business time.
#[derive(Debug, Serialize)]
pub(super) struct ClockView {
    now: DateTime<Utc>,
}

/// `POST /admin/clock`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClockAdvance {
    advance_seconds: i64,
}

pub(super) async fn get_clock(State(sandbox): State<Sandbox>) -> Json<ClockView> {
    Json(ClockView { now: sandbox.now() })
}

pub(super) async fn advance_clock(
    State(sandbox): State<Sandbox>,
    Json(advance): Json<ClockAdvance>,
) -> Response {
    let shared = &sandbox.shared;
    let clock = shared.clock.now();
    let mut ledger = shared.ledger();
    let Some(event) = ledger.state.advance_clock(advance.advance_seconds) else {
        return admin_error(
            StatusCode::BAD_REQUEST,
            "advance_seconds must be zero or positive, and the clock at most 100 years ahead",
        );
    };
    ledger.commit(event);
    let now = ledger.state.business_time(clock);
    ledger.catch_up(now);
    if let Err(error) = ledger.finish() {
        return journal_failed(&error);
    }
    Json(ClockView { now }).into_response()
}

fn journal_failed(error: &std::io::Error) -> Response {
    tracing::error!(%error, "cannot write the sandbox state file");
    admin_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "cannot write the state file",
    )
}

/// A platform refusal on the admin API: `{"error", "code"}` with a status by code.
fn refusal(rejection: &Rejection) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
        code: &'a str,
    }
    let status = match rejection.code {
        codes::BLUE_NOT_FOUND => StatusCode::NOT_FOUND,
        codes::FORM_LINE_INVALID | codes::REQUEST_INVALID => StatusCode::BAD_REQUEST,
        _ => StatusCode::CONFLICT,
    };
    let body = Body {
        error: &rejection.message,
        code: rejection.code,
    };
    (status, Json(body)).into_response()
}

/// One line of the buyer's form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BuyerLine {
    blue_line: u32,
    amount: Decimal,
    tax: Decimal,
    #[serde(default)]
    quantity: Option<Decimal>,
}

/// `POST /admin/forms`: `full: true` or `lines`, not both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BuyerFiling {
    seller: String,
    blue_number: String,
    reason: String,
    #[serde(default)]
    full: bool,
    #[serde(default)]
    lines: Option<Vec<BuyerLine>>,
}

pub(super) async fn file_as_buyer(
    State(sandbox): State<Sandbox>,
    Json(filing): Json<BuyerFiling>,
) -> Response {
    let Ok(seller) = TaxpayerId::parse(&filing.seller) else {
        return admin_error(StatusCode::BAD_REQUEST, "seller is not a valid taxpayer id");
    };
    let Ok(blue_number) = filing.blue_number.parse::<InvoiceNumber>() else {
        return admin_error(
            StatusCode::BAD_REQUEST,
            "blue_number is not a 20-digit invoice number",
        );
    };
    let Some(reason) = RedLetterReason::from_code(&filing.reason) else {
        return admin_error(StatusCode::BAD_REQUEST, "reason must be 01, 02, 03 or 04");
    };
    let lines = match (filing.full, filing.lines) {
        (true, None) => FormLines::Full,
        (false, Some(lines)) => FormLines::Lines(
            lines
                .into_iter()
                .map(|line| RedLine {
                    blue_line: line.blue_line,
                    amount: line.amount,
                    tax: line.tax,
                    quantity: line.quantity,
                })
                .collect(),
        ),
        _ => {
            return admin_error(
                StatusCode::BAD_REQUEST,
                "give either \"full\": true or \"lines\"",
            );
        }
    };
    let shared = &sandbox.shared;
    let now = shared.business_now();
    let mut ledger = shared.ledger();
    ledger.catch_up(now);
    let decided = ledger
        .state
        .file_form_as_buyer(&seller, blue_number, reason, lines, now);
    if let Ok(form) = &decided {
        ledger.commit(Event::FormFiled {
            form: Box::new(form.clone()),
        });
    }
    if let Err(error) = ledger.finish() {
        return journal_failed(&error);
    }
    match decided {
        Ok(form) => Json(form).into_response(),
        Err(rejection) => refusal(&rejection),
    }
}

pub(super) async fn confirm(sandbox: State<Sandbox>, number: Path<String>) -> Response {
    buyer_answer(sandbox, number, true)
}

pub(super) async fn deny(sandbox: State<Sandbox>, number: Path<String>) -> Response {
    buyer_answer(sandbox, number, false)
}

fn buyer_answer(
    State(sandbox): State<Sandbox>,
    Path(number): Path<String>,
    agree: bool,
) -> Response {
    let shared = &sandbox.shared;
    let now = shared.business_now();
    let mut ledger = shared.ledger();
    ledger.catch_up(now);
    let mut issued = false;
    let answered = ledger
        .state
        .buyer_answer(&number, agree, now)
        .map(|event| ledger.commit(event));
    if answered.is_ok() && agree {
        issued = after_confirmation(shared, &mut ledger, &number, now);
    }
    if let Err(error) = ledger.finish() {
        return journal_failed(&error);
    }
    let response = match answered {
        Ok(()) => match ledger.state.form_by_number(&number) {
            Some(form) => Json(form).into_response(),
            None => admin_error(StatusCode::NOT_FOUND, "no such form"),
        },
        Err(BuyerAnswerError::NotFound) => admin_error(StatusCode::NOT_FOUND, "no such form"),
        Err(BuyerAnswerError::WrongStatus(status)) => admin_error(
            StatusCode::CONFLICT,
            format!(
                "form {number} is in status {}; only a form awaiting the buyer (02) can be {}",
                status_text(status),
                if agree { "confirmed" } else { "denied" }
            ),
        ),
    };
    drop(ledger);
    count_self_issued(shared, issued);
    response
}

/// `GET /admin/forms?seller=…`.
#[derive(Debug, Serialize)]
struct SellerForms<'a> {
    seller: String,
    forms: Vec<&'a RemoteForm>,
}

pub(super) async fn list_forms(
    State(sandbox): State<Sandbox>,
    Query(query): Query<SellerQuery>,
) -> Response {
    let Ok(seller) = TaxpayerId::parse(&query.seller) else {
        return admin_error(StatusCode::BAD_REQUEST, "not a valid taxpayer id");
    };
    let shared = &sandbox.shared;
    let now = shared.business_now();
    let mut ledger = shared.ledger();
    ledger.catch_up(now);
    if let Err(error) = ledger.finish() {
        return journal_failed(&error);
    }
    Json(SellerForms {
        seller: seller.to_string(),
        forms: ledger.state.forms_of(&seller),
    })
    .into_response()
}
