//! Reading red-letter forms and their events for callers: by number or request id, the forms of a
//! blue invoice, listings, the pending forms operators watch and the event stream. Every read
//! takes the caller's [`Scope`]: a form of another seller reads like one that does not exist.

use super::super::conditions::Conditions;
use super::super::read::scope_clause;
use super::super::{Scope, Store, StoredInvoice, micros, placeholders};
use super::{
    EVENT_COLUMNS, FORM_COLUMNS, FormFilter, StoredForm, StoredFormEvent, decode_form,
    decode_form_event, form_of_request, form_where, forms_of_blue, initiator_text,
};
use anyhow::Context;
use chrono::{DateTime, Utc};
use fapiao_invoice::number::InvoiceNumber;
use sqlx::Row;

impl Store {
    /// The form with platform number `number`, if `scope` admits its seller.
    pub async fn form_by_number(
        &self,
        scope: &Scope,
        number: &str,
    ) -> anyhow::Result<Option<StoredForm>> {
        let mut conn = self.read.acquire().await?;
        let form = form_where(&mut conn, "form_number = $1", number.to_owned()).await?;
        Ok(form.filter(|f| scope.admits(&f.seller_tax_id)))
    }

    /// The form `seller` filed under `request_id`, if `scope` admits the seller.
    pub async fn form_by_request(
        &self,
        scope: &Scope,
        seller: &str,
        request_id: &str,
    ) -> anyhow::Result<Option<StoredForm>> {
        if !scope.admits(seller) {
            return Ok(None);
        }
        let mut conn = self.read.acquire().await?;
        form_of_request(&mut conn, seller, request_id).await
    }

    /// Every form of a blue invoice inside `scope`, oldest first.
    pub async fn blue_forms(
        &self,
        scope: &Scope,
        blue: &InvoiceNumber,
    ) -> anyhow::Result<Vec<StoredForm>> {
        let mut conn = self.read.acquire().await?;
        let mut forms = forms_of_blue(&mut conn, blue).await?;
        forms.retain(|f| scope.admits(&f.seller_tax_id));
        Ok(forms)
    }

    /// Filed forms matching `filter` inside `scope` with an id below `before` (the page cursor),
    /// newest first.
    pub async fn list_forms(
        &self,
        scope: &Scope,
        filter: &FormFilter,
        before: Option<i64>,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredForm>> {
        let mut query = Conditions::new(format!("SELECT {FORM_COLUMNS} FROM red_letter_forms"));
        query.and_scope("seller_tax_id", scope)?;
        query.and("seller_tax_id = {}", filter.seller_tax_id.clone())?;
        query.and("id < {}", before.unwrap_or(i64::MAX))?;
        if filter.statuses.is_empty() {
            query.and("status <> {}", "FILING".to_owned())?;
        } else {
            query.and_in("status", &filter.statuses)?;
        }
        if let Some(initiator) = filter.initiator {
            query.and("initiator = {}", initiator_text(initiator).to_owned())?;
        }
        if let Some(blue) = &filter.blue_number {
            query.and("blue_invoice_number = {}", blue.clone())?;
        }
        if let Some(from) = filter.created_from {
            query.and("created_at >= {}", micros(from))?;
        }
        if let Some(to) = filter.created_to {
            query.and("created_at < {}", micros(to))?;
        }
        let (sql, args) = query.newest_first(limit)?;
        let rows = sqlx::query_with(&sql, args)
            .fetch_all(&self.read)
            .await
            .context("listing red-letter forms")?;
        rows.iter().map(decode_form).collect()
    }

    /// Forms inside `scope` waiting for an answer (02, 03), soonest expiry first, after the cursor
    /// `(expires_at, id)`; only those expiring before `expiring_before` when set.
    pub async fn pending_forms(
        &self,
        scope: &Scope,
        expiring_before: Option<DateTime<Utc>>,
        after: Option<(DateTime<Utc>, i64)>,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredForm>> {
        let (scope_sql, sellers) = scope_clause(scope, 1);
        let mut sql = format!(
            "SELECT {FORM_COLUMNS} FROM red_letter_forms WHERE status IN ('02', '03'){scope_sql}"
        );
        let mut n = sellers.len();
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if expiring_before.is_some() {
            sql.push_str(&format!(" AND expires_at < {}", next()));
        }
        if after.is_some() {
            let (at, tie, id) = (next(), next(), next());
            sql.push_str(&format!(
                " AND (expires_at > {at} OR (expires_at = {tie} AND id > {id}))"
            ));
        }
        sql.push_str(&format!(" ORDER BY expires_at, id LIMIT {}", next()));
        let mut query = sqlx::query(&sql);
        for seller in sellers {
            query = query.bind(seller.clone());
        }
        if let Some(before) = expiring_before {
            query = query.bind(micros(before));
        }
        if let Some((at, id)) = after {
            query = query.bind(micros(at)).bind(micros(at)).bind(id);
        }
        let rows = query
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .context("listing pending red-letter forms")?;
        rows.iter().map(decode_form).collect()
    }

    /// Form events inside `scope` after `after` (the cursor), oldest first.
    pub async fn form_events_after(
        &self,
        scope: &Scope,
        after: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredFormEvent>> {
        let (scope_sql, sellers) = scope_clause(scope, 3);
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM red_letter_events WHERE id > $1{scope_sql} \
             ORDER BY id LIMIT $2"
        );
        let mut query = sqlx::query(&sql).bind(after).bind(i64::from(limit));
        for seller in sellers {
            query = query.bind(seller.clone());
        }
        let rows = query
            .fetch_all(&self.read)
            .await
            .context("reading red-letter form events")?;
        rows.iter().map(decode_form_event).collect()
    }

    /// The status changes of the forms filed against a blue invoice, or of the form that
    /// produced a red invoice, oldest first; nothing when `scope` does not admit its seller.
    pub async fn invoice_form_events(
        &self,
        scope: &Scope,
        invoice: &StoredInvoice,
    ) -> anyhow::Result<Vec<StoredFormEvent>> {
        if !scope.admits(&invoice.seller_tax_id) {
            return Ok(Vec::new());
        }
        let numbers: Vec<String> = match &invoice.content.red {
            Some(red) => vec![red.form_number.clone()],
            None => self
                .blue_forms(scope, &invoice.number)
                .await?
                .into_iter()
                .filter_map(|f| f.number)
                .collect(),
        };
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM red_letter_events WHERE form_number IN ({}) ORDER BY id",
            placeholders(1, numbers.len())
        );
        let mut query = sqlx::query(&sql);
        for number in numbers {
            query = query.bind(number);
        }
        let rows = query
            .fetch_all(&self.read)
            .await
            .context("reading the form events of an invoice")?;
        rows.iter().map(decode_form_event).collect()
    }

    /// The id of the newest form event, 0 when there is none.
    pub async fn last_form_event_id(&self) -> anyhow::Result<i64> {
        let row = sqlx::query("SELECT MAX(id) AS id FROM red_letter_events")
            .fetch_one(&self.read)
            .await
            .context("reading the last form event")?;
        Ok(row.try_get::<Option<i64>, _>("id")?.unwrap_or(0))
    }
}
