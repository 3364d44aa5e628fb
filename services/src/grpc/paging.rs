//! What the listings share: page sizes, cutting a page and its next token from one row too many,
//! page tokens bound to their filters (by issue time and number for invoices, by id for the
//! listings that go newest first by id), the wire filters `ListInvoices` and `SearchInvoices` both
//! accept (states, colour), and reading one page of invoices with its files.

use super::{convert, status};
use crate::store::{InvoiceFilter, InvoiceState, Scope, Store, StoredInvoice};
use fapiao_invoice::model::Colour;
use fapiao_invoice::number::InvoiceNumber;
use fapiao_proto::v1;
use tonic::Status;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// The page size a request asked for: 50 when 0, at most 500.
pub fn page_size(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// One page of invoices inside `scope` matching `filter`, after the cursor in `token`, each with its
/// archived files, and the token of the next page (empty on the last). `what` names the call in
/// errors.
pub async fn invoice_page(
    store: &Store,
    scope: &Scope,
    filter: &InvoiceFilter,
    token: &str,
    requested_size: u32,
    what: &str,
) -> Result<(Vec<v1::Invoice>, String), Status> {
    let print = fingerprint(&(filter, scope));
    let after = parse_page_token(token, &print)?;
    let size = page_size(requested_size);
    let rows = store
        .list_invoices(scope, filter, after.as_ref(), size + 1)
        .await
        .map_err(|e| status::internal(what, &e))?;
    let (page, next_page_token) = split_page(rows, size, |last| page_token(last, &print));
    let numbers: Vec<InvoiceNumber> = page.iter().map(|i| i.number).collect();
    let files = store
        .archived_files(&numbers)
        .await
        .map_err(|e| status::internal("reading archived files", &e))?;
    let invoices = page
        .iter()
        .map(|i| convert::invoice(i, files.get(&i.number).map_or(&[], |f| f)))
        .collect();
    Ok((invoices, next_page_token))
}

/// The first `size` of `rows`, read one beyond `size`, and the token of the next page that `token`
/// makes from the last row kept; the token is empty when no row was left over.
pub fn split_page<T>(
    mut rows: Vec<T>,
    size: u32,
    token: impl Fn(&T) -> String,
) -> (Vec<T>, String) {
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    let next = match (more, rows.last()) {
        (true, Some(last)) => token(last),
        _ => String::new(),
    };
    (rows, next)
}

/// `o1.<id>.<filter fingerprint>`: the last id of a page of a listing that goes newest first by
/// id, and what it filtered.
pub fn id_token(last: i64, fingerprint: &str) -> String {
    format!("o1.{last}.{fingerprint}")
}

/// The id in a token from [`id_token`], refused unless it was made for the same filter.
pub fn parse_id_token(token: &str, fingerprint: &str) -> Result<Option<i64>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("o1"), Some(id), Some(print), None) if print == fingerprint => {
            id.parse().map(Some).map_err(|_| bad_token())
        }
        _ => Err(bad_token()),
    }
}

/// `v1.<micros>.<number>.<filter fingerprint>`: where a page ended and what it filtered.
pub fn page_token(last: &StoredInvoice, fingerprint: &str) -> String {
    format!(
        "v1.{}.{}.{fingerprint}",
        last.issued_at.timestamp_micros(),
        last.number
    )
}

/// The cursor in `token`, refused unless it was made for the same filter.
pub fn parse_page_token(
    token: &str,
    fingerprint: &str,
) -> Result<Option<(chrono::DateTime<chrono::Utc>, String)>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let mut parts = token.split('.');
    let (Some("v1"), Some(micros), Some(number), Some(print), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad_token());
    };
    if print != fingerprint {
        return Err(bad_token());
    }
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .ok_or_else(bad_token)?;
    let number: InvoiceNumber = number.parse().map_err(|_| bad_token())?;
    Ok(Some((at, number.to_string())))
}

/// A short digest of what a listing filters on, so a token cannot be replayed with other filters.
pub fn fingerprint(filter: &impl std::fmt::Debug) -> String {
    let mut digest = crate::platform::protocol::sm3_hex(format!("{filter:?}").as_bytes());
    digest.truncate(16);
    digest
}

/// The error of a token that is malformed or belongs to other filters.
pub fn bad_token() -> Status {
    status::bad_field(
        "page_token",
        "PAGE_TOKEN_INVALID",
        "分页标记无效或与筛选条件不符",
    )
}

/// The states a request filters on; each unknown value is a field violation.
pub fn states(wire: &[i32]) -> Result<Vec<InvoiceState>, Status> {
    wire.iter()
        .enumerate()
        .map(|(i, s)| {
            convert::state_from_wire(*s).ok_or_else(|| {
                status::bad_field(&format!("states[{i}]"), "STATE_INVALID", "发票状态无效")
            })
        })
        .collect()
}

/// The colour a request filters on; unspecified means both.
pub fn colour(wire: i32) -> Option<Colour> {
    match v1::InvoiceColour::try_from(wire) {
        Ok(v1::InvoiceColour::Blue) => Some(Colour::Blue),
        Ok(v1::InvoiceColour::Red) => Some(Colour::Red),
        _ => None,
    }
}
