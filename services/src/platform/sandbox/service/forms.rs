//! The confirmation-form services (`HZQRXXLR`, `HZQRXXCX`, `HZQRXXQR`, `HZQRXXLB`) and the step
//! both the seller's agreement and the buyer's confirmation take: rolling the dice of the
//! self-issued red invoice fault.
//!
//! Each call first lets time act (pending forms past their deadline expire, journaled), then
//! decides and commits under the state lock. Business time is passed in.

use chrono::{DateTime, Utc};
use fapiao_invoice::redletter::{FormStatus, RedLine};
use fapiao_invoice::taxpayer::TaxpayerId;

use super::super::state::{Event, Filing};
use super::super::stats::Stats;
use super::super::{Ledger, Shared, lock};
use super::{Failure, MAX_PAGE_SIZE, decode, seller, success};
use crate::platform::protocol::messages::{self, codes};
use crate::platform::sandbox::checks::Rejection;
use crate::platform::{FormRequest, RemoteForm};

/// Runs `act` under the state lock after expiring what is due, then flushes the journal (also
/// when `act` refused: expiry may have been journaled).
pub(crate) fn with_ledger<T>(
    shared: &Shared,
    now: DateTime<Utc>,
    act: impl FnOnce(&mut Ledger) -> Result<T, Rejection>,
) -> Result<T, Failure> {
    let mut ledger = shared.ledger();
    ledger.catch_up(now);
    let outcome = act(&mut ledger);
    ledger.finish()?;
    Ok(outcome?)
}

/// After a form became 04: with the `self_issued_red_rate` fault, the platform issues and records
/// the red invoice itself. Whether it did.
pub(crate) fn after_confirmation(
    shared: &Shared,
    ledger: &mut Ledger,
    number: &str,
    now: DateTime<Utc>,
) -> bool {
    if !lock(&shared.faults).self_issued_red() {
        return false;
    }
    match ledger.state.self_issued_red(number, now) {
        Ok(events) => {
            for event in events {
                ledger.commit(event);
            }
            true
        }
        Err(rejection) => {
            tracing::warn!(
                form = number,
                code = rejection.code,
                reason = %rejection.message,
                "the sandbox could not issue a red invoice itself"
            );
            false
        }
    }
}

/// Counts a self-issued red invoice (outside the state lock).
pub(crate) fn count_self_issued(shared: &Shared, issued: bool) {
    if issued {
        shared.with_stats(|s| Stats::bump(&mut s.faults, "self_issued_red", 1));
    }
}

fn found<'a>(
    ledger: &'a Ledger,
    seller: &TaxpayerId,
    number: &str,
) -> Result<&'a RemoteForm, Rejection> {
    ledger.state.form(seller, number).ok_or_else(|| {
        Rejection::new(
            codes::FORM_NOT_FOUND,
            format!("红字发票信息确认单{number}不存在"),
        )
    })
}

/// `HZQRXXLR`.
pub(super) fn file(shared: &Shared, body: &str, now: DateTime<Utc>) -> Result<Vec<u8>, Failure> {
    let request: messages::FileFormRequest = decode(body)?;
    let seller = seller(&request.xsfnsrsbh)?;
    let form = FormRequest {
        request_id: request.ywlsh,
        blue_number: request.lzfphm,
        reason: request.chyy_dm,
        lines: request.hzqrdmx_list.iter().map(RedLine::from).collect(),
    };
    let info = with_ledger(shared, now, |ledger| {
        let number = match ledger.state.file_form(&seller, &form, now)? {
            Filing::Existing(number) => number,
            Filing::New(event, number) => {
                ledger.commit(event);
                number
            }
        };
        found(ledger, &seller, &number).map(messages::FormInfo::from)
    })?;
    Ok(success(&info))
}

/// `HZQRXXCX`.
pub(super) fn query(shared: &Shared, body: &str, now: DateTime<Utc>) -> Result<Vec<u8>, Failure> {
    let request: messages::FormRequest = decode(body)?;
    let seller = seller(&request.xsfnsrsbh)?;
    let info = with_ledger(shared, now, |ledger| {
        found(ledger, &seller, &request.hzqrxxdbh).map(messages::FormInfo::from)
    })?;
    Ok(success(&info))
}

/// `HZQRXXQR`.
pub(super) fn answer(shared: &Shared, body: &str, now: DateTime<Utc>) -> Result<Vec<u8>, Failure> {
    let request: messages::AnswerFormRequest = decode(body)?;
    let seller = seller(&request.xsfnsrsbh)?;
    let number = request.hzqrxxdbh;
    let (info, issued) = with_ledger(shared, now, |ledger| {
        let change = ledger
            .state
            .answer_form(&seller, &number, request.qrlx.into(), now)?;
        let mut issued = false;
        if let Some(event) = change {
            let confirmed = matches!(
                event,
                Event::FormStatusChanged {
                    status: FormStatus::Confirmed,
                    ..
                }
            );
            ledger.commit(event);
            issued = confirmed && after_confirmation(shared, ledger, &number, now);
        }
        Ok((
            found(ledger, &seller, &number).map(messages::FormInfo::from)?,
            issued,
        ))
    })?;
    count_self_issued(shared, issued);
    Ok(success(&info))
}

/// `HZQRXXLB`.
pub(super) fn list(shared: &Shared, body: &str, now: DateTime<Utc>) -> Result<Vec<u8>, Failure> {
    let request: messages::ListFormsRequest = decode(body)?;
    let seller = seller(&request.xsfnsrsbh)?;
    if !(1..=MAX_PAGE_SIZE).contains(&request.mysl) {
        return Err(Rejection::new(
            codes::REQUEST_INVALID,
            format!("每页数量应在1至{MAX_PAGE_SIZE}之间"),
        )
        .into());
    }
    let reply = with_ledger(shared, now, |ledger| {
        let (forms, next) =
            ledger
                .state
                .forms_changed_since(&seller, request.qssj, request.ym, request.mysl);
        Ok(messages::ListFormsReply {
            hzqrxx_list: forms.into_iter().map(messages::FormInfo::from).collect(),
            xyym: next,
        })
    })?;
    Ok(success(&reply))
}
