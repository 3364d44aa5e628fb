//! Reading invoices and events, and writing event rows.

use super::{
    INVOICE_COLUMNS, InvoiceState, Scope, Store, StoredInvoice, colour_text, decode_invoice,
    from_micros, kind_text, micros, parse_colour, placeholders,
};
use anyhow::Context;
use chrono::{DateTime, Utc};
use fapiao_invoice::model::{Colour, InvoiceKind};
use fapiao_invoice::number::InvoiceNumber;
use sqlx::any::AnyArguments;
use sqlx::{Arguments, Row};

/// One state change of an invoice, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Increases in commit order; the cursor of `WatchInvoices`.
    pub id: i64,
    pub invoice_number: String,
    pub seller_tax_id: String,
    pub request_id: String,
    pub colour: Colour,
    pub state: InvoiceState,
    pub previous_state: Option<InvoiceState>,
    pub at: DateTime<Utc>,
    pub reason: String,
    pub actor: String,
    pub platform_code: Option<String>,
    pub platform_message: Option<String>,
}

/// An event row to write.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub invoice_number: String,
    pub seller_tax_id: String,
    pub request_id: String,
    pub colour: Colour,
    pub state: InvoiceState,
    pub previous_state: Option<InvoiceState>,
    pub at: DateTime<Utc>,
    pub reason: String,
    pub actor: String,
    pub platform_code: Option<String>,
    pub platform_message: Option<String>,
}

const EVENT_COLUMNS: usize = 11;

/// Insert events (the caller holds the event-order lock on PostgreSQL).
pub(crate) async fn insert_events(
    tx: &mut sqlx::AnyConnection,
    events: &[NewEvent],
) -> anyhow::Result<()> {
    let backend = super::Backend::of(tx);
    for chunk in events.chunks(1000) {
        let values: Vec<String> = (0..chunk.len())
            .map(|r| format!("({})", backend.params(1 + r * EVENT_COLUMNS, EVENT_COLUMNS)))
            .collect();
        let sql = format!(
            "INSERT INTO invoice_events (invoice_number, seller_tax_id, request_id, colour, state, \
             previous_state, at, reason, actor, platform_code, platform_message) VALUES {}",
            values.join(", ")
        );
        let mut args = AnyArguments::default();
        for e in chunk {
            let bind = |args: &mut AnyArguments<'_>, v: Option<String>| {
                args.add(v).map_err(|e| anyhow::anyhow!("binding: {e}"))
            };
            bind(&mut args, Some(e.invoice_number.clone()))?;
            bind(&mut args, Some(e.seller_tax_id.clone()))?;
            bind(&mut args, Some(e.request_id.clone()))?;
            bind(&mut args, Some(colour_text(e.colour).to_owned()))?;
            bind(&mut args, Some(e.state.as_str().to_owned()))?;
            bind(&mut args, e.previous_state.map(|s| s.as_str().to_owned()))?;
            args.add(micros(e.at))
                .map_err(|e| anyhow::anyhow!("binding: {e}"))?;
            bind(&mut args, Some(e.reason.clone()))?;
            bind(&mut args, Some(e.actor.clone()))?;
            bind(&mut args, e.platform_code.clone())?;
            bind(&mut args, e.platform_message.clone())?;
        }
        sqlx::query_with(&sql, args)
            .execute(&mut *tx)
            .await
            .context("inserting invoice events")?;
    }
    Ok(())
}

/// What `ListInvoices` and `SearchInvoices` filter on, within the caller's scope; empty fields do
/// not filter.
#[derive(Debug, Clone, Default)]
pub struct InvoiceFilter {
    pub states: Vec<InvoiceState>,
    pub kind: Option<InvoiceKind>,
    pub colour: Option<Colour>,
    pub buyer_tax_id: Option<String>,
    /// Buyer names containing this text.
    pub buyer_name_contains: Option<String>,
    pub invoice_number: Option<String>,
    pub issued_from: Option<DateTime<Utc>>,
    pub issued_to: Option<DateTime<Utc>>,
}

/// `text` with LIKE's wildcards taken literally (escape character `\`).
fn like_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}

/// Where the previous page ended: `(issued_at, invoice_number)` of its last row.
pub type ListCursor = (DateTime<Utc>, String);

impl Store {
    /// One invoice by number, if `scope` admits its seller.
    pub async fn get_invoice(
        &self,
        scope: &Scope,
        number: &InvoiceNumber,
    ) -> anyhow::Result<Option<StoredInvoice>> {
        let (scope_sql, sellers) = scope_clause(scope, 2);
        let sql =
            format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE invoice_number = $1{scope_sql}");
        let mut query = sqlx::query(&sql).bind(number.to_string());
        for seller in sellers {
            query = query.bind(seller.clone());
        }
        query
            .fetch_optional(&self.read)
            .await
            .context("reading an invoice")?
            .map(|row| decode_invoice(&row))
            .transpose()
    }

    /// The invoices of `numbers` that exist inside `scope`, in no particular order, in one query.
    pub async fn get_invoices(
        &self,
        scope: &Scope,
        numbers: &[InvoiceNumber],
    ) -> anyhow::Result<Vec<StoredInvoice>> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let (scope_sql, sellers) = scope_clause(scope, numbers.len() + 1);
        let sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE invoice_number IN ({}){scope_sql}",
            placeholders(1, numbers.len())
        );
        let mut query = sqlx::query(&sql);
        for number in numbers {
            query = query.bind(number.to_string());
        }
        for seller in sellers {
            query = query.bind(seller.clone());
        }
        query
            .fetch_all(&self.read)
            .await
            .context("reading invoices")?
            .iter()
            .map(decode_invoice)
            .collect()
    }

    /// One invoice by its seller and the caller's request id, if `scope` admits the seller.
    pub async fn find_by_request(
        &self,
        scope: &Scope,
        seller_tax_id: &str,
        request_id: &str,
    ) -> anyhow::Result<Option<StoredInvoice>> {
        if !scope.admits(seller_tax_id) {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE seller_tax_id = $1 AND request_id = $2"
        );
        sqlx::query(&sql)
            .bind(seller_tax_id)
            .bind(request_id)
            .fetch_optional(&self.read)
            .await
            .context("reading an invoice by request id")?
            .map(|row| decode_invoice(&row))
            .transpose()
    }

    /// A page of invoices inside `scope`, newest first, after `cursor`.
    pub async fn list_invoices(
        &self,
        scope: &Scope,
        filter: &InvoiceFilter,
        after: Option<&ListCursor>,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredInvoice>> {
        let mut clauses: Vec<String> = Vec::new();
        let mut args = AnyArguments::default();
        let mut n = 0usize;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        let err = |e| anyhow::anyhow!("binding: {e}");
        if let Some(sellers) = scope.listed() {
            if sellers.is_empty() {
                return Ok(Vec::new());
            }
            let marks: Vec<String> = sellers.iter().map(|_| next()).collect();
            clauses.push(format!("seller_tax_id IN ({})", marks.join(", ")));
            for s in sellers {
                args.add(s.clone()).map_err(err)?;
            }
        }
        if !filter.states.is_empty() {
            let marks: Vec<String> = filter.states.iter().map(|_| next()).collect();
            clauses.push(format!("state IN ({})", marks.join(", ")));
            for s in &filter.states {
                args.add(s.as_str().to_owned()).map_err(err)?;
            }
        }
        for (column, value) in [
            ("kind", filter.kind.map(|k| kind_text(k).to_owned())),
            ("colour", filter.colour.map(|c| colour_text(c).to_owned())),
            ("buyer_tax_id", filter.buyer_tax_id.clone()),
            ("invoice_number", filter.invoice_number.clone()),
        ] {
            if let Some(v) = value {
                clauses.push(format!("{column} = {}", next()));
                args.add(v).map_err(err)?;
            }
        }
        if let Some(text) = &filter.buyer_name_contains {
            clauses.push(format!("buyer_name LIKE {} ESCAPE '\\'", next()));
            args.add(format!("%{}%", like_escape(text))).map_err(err)?;
        }
        if let Some(from) = filter.issued_from {
            clauses.push(format!("issued_at >= {}", next()));
            args.add(micros(from)).map_err(err)?;
        }
        if let Some(to) = filter.issued_to {
            clauses.push(format!("issued_at < {}", next()));
            args.add(micros(to)).map_err(err)?;
        }
        if let Some((at, number)) = after {
            let (a, b, c) = (next(), next(), next());
            clauses.push(format!(
                "(issued_at < {a} OR (issued_at = {b} AND invoice_number < {c}))"
            ));
            args.add(micros(*at)).map_err(err)?;
            args.add(micros(*at)).map_err(err)?;
            args.add(number.clone()).map_err(err)?;
        }
        let limit_mark = next();
        args.add(i64::from(limit)).map_err(err)?;
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices {filter_sql} \
             ORDER BY issued_at DESC, invoice_number DESC LIMIT {limit_mark}"
        );
        sqlx::query_with(&sql, args)
            .fetch_all(&self.read)
            .await
            .context("listing invoices")?
            .iter()
            .map(decode_invoice)
            .collect()
    }

    /// Events with id greater than `after` of invoices inside `scope`, oldest first.
    pub async fn events_after(
        &self,
        scope: &Scope,
        after: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        let mut args = AnyArguments::default();
        let err = |e| anyhow::anyhow!("binding: {e}");
        args.add(after).map_err(err)?;
        args.add(i64::from(limit)).map_err(err)?;
        let (seller_sql, sellers) = scope_clause(scope, 3);
        for s in sellers {
            args.add(s.clone()).map_err(err)?;
        }
        let sql = format!(
            "SELECT id, invoice_number, seller_tax_id, request_id, colour, state, previous_state, \
             at, reason, actor, platform_code, platform_message FROM invoice_events \
             WHERE id > $1{seller_sql} ORDER BY id LIMIT $2"
        );
        sqlx::query_with(&sql, args)
            .fetch_all(&self.read)
            .await
            .context("reading invoice events")?
            .iter()
            .map(decode_event)
            .collect()
    }

    /// Every event of one invoice inside `scope`, oldest first.
    pub async fn invoice_events(
        &self,
        scope: &Scope,
        number: &InvoiceNumber,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        let (scope_sql, sellers) = scope_clause(scope, 2);
        let sql = format!(
            "SELECT id, invoice_number, seller_tax_id, request_id, colour, state, previous_state, \
             at, reason, actor, platform_code, platform_message FROM invoice_events \
             WHERE invoice_number = $1{scope_sql} ORDER BY id"
        );
        let mut query = sqlx::query(&sql).bind(number.to_string());
        for seller in sellers {
            query = query.bind(seller.clone());
        }
        query
            .fetch_all(&self.read)
            .await
            .context("reading an invoice's events")?
            .iter()
            .map(decode_event)
            .collect()
    }

    /// The id of the newest event, 0 when there is none.
    pub async fn last_event_id(&self) -> anyhow::Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS last FROM invoice_events")
            .fetch_one(&self.read)
            .await
            .context("reading the last event id")?;
        Ok(row.try_get("last")?)
    }

    /// How many invoices are in each state (for tests, metrics and the load generator).
    pub async fn count_by_state(&self) -> anyhow::Result<Vec<(InvoiceState, i64)>> {
        sqlx::query("SELECT state, COUNT(*) AS n FROM invoices GROUP BY state")
            .fetch_all(&self.read)
            .await
            .context("counting invoices")?
            .iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                Ok((state.parse()?, row.try_get("n")?))
            })
            .collect()
    }
}

/// ` AND <seller_tax_id restricted to scope>` with placeholders from `first`, and its values; empty
/// for an unrestricted scope.
pub(crate) fn scope_clause(scope: &Scope, first: usize) -> (String, &[String]) {
    match scope.condition("seller_tax_id", first) {
        Some((sql, values)) => (format!(" AND {sql}"), values),
        None => (String::new(), &[]),
    }
}

fn decode_event(row: &sqlx::any::AnyRow) -> anyhow::Result<StoredEvent> {
    let state: String = row.try_get("state")?;
    let previous: Option<String> = row.try_get("previous_state")?;
    Ok(StoredEvent {
        id: row.try_get("id")?,
        invoice_number: row.try_get("invoice_number")?,
        seller_tax_id: row.try_get("seller_tax_id")?,
        request_id: row.try_get("request_id")?,
        colour: parse_colour(&row.try_get::<String, _>("colour")?)?,
        state: state.parse()?,
        previous_state: previous.map(|p| p.parse()).transpose()?,
        at: from_micros(row.try_get("at")?),
        reason: row.try_get("reason")?,
        actor: row.try_get("actor")?,
        platform_code: row.try_get("platform_code")?,
        platform_message: row.try_get("platform_message")?,
    })
}

impl crate::grpc::watch::Followed for StoredEvent {
    fn id(&self) -> i64 {
        self.id
    }
}
