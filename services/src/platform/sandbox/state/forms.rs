//! Red-letter confirmation forms (红字发票信息确认单) as the sandbox platform keeps them: the
//! [`FormBook`] with its indexes, numbering, lookups and expiry. The platform's rules for filing,
//! answering and the red invoice it issues itself are in [`rules`].
//!
//! - Numbers: 20 digits, the China-time year of filing (2 digits), the seller's province (the
//!   region digits of its tax id, as for invoice numbers) and a 16-digit sequence per (year,
//!   province), starting where the time of year says (as invoice numbers do) and continuing from
//!   the journal, so numbers never repeat. The `hzqrduuid` is the first 32 hex digits of the SM3 of
//!   `seller:number`: deterministic and unique with the number.
//! - Filing checks the blue invoice (recorded for the seller, blue), that no other form of it is
//!   pending (02, 03), and each line against what remains of its blue line once the lines of every
//!   non-void form of the blue invoice (pending, 01, 04) are taken off. A seller's form is 02 when
//!   the buyer has used the blue invoice (专票: selected for deduction or booked; 普票: booked),
//!   else 01; a buyer's form is 03. Pending forms expire 72 hours after filing.
//! - Expiry is applied lazily by the caller ([`State::expire_due`]) from an index of pending forms
//!   by deadline, so it never scans all forms.
//!
//! It must not do I/O or read a clock: times are passed in.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::redletter::{FormStatus, Reversed};
use fapiao_invoice::taxpayer::TaxpayerId;

use super::{Event, Rejection, State, sequence_floor};
use crate::platform::RemoteForm;
use crate::platform::protocol::messages::codes;
use crate::platform::protocol::sm3_hex;

mod rules;

pub(crate) use rules::{BuyerAnswerError, Filing, FormLines, status_text};

/// Every form, indexed for the lookups the platform makes.
#[derive(Debug, Default)]
pub(crate) struct FormBook {
    forms: HashMap<String, RemoteForm>,
    /// (seller, request id) → number; seller-filed forms only.
    by_request: HashMap<(TaxpayerId, String), String>,
    /// Blue number → its forms' numbers.
    by_blue: HashMap<InvoiceNumber, Vec<String>>,
    /// Seller → its forms' numbers, in filing order.
    by_seller: HashMap<TaxpayerId, Vec<String>>,
    /// Pending forms by deadline.
    pending: BTreeSet<(DateTime<Utc>, String)>,
    /// Each seller's forms by the time of their last status change.
    changes: HashMap<TaxpayerId, BTreeSet<(DateTime<Utc>, String)>>,
    /// Next sequence per (year, province).
    next_sequence: HashMap<(u8, u8), u64>,
    /// How many forms are in each status.
    counts: BTreeMap<&'static str, u64>,
}

impl FormBook {
    pub fn get(&self, number: &str) -> Option<&RemoteForm> {
        self.forms.get(number)
    }

    /// Adds a filed form (a replayed duplicate is ignored).
    pub fn file(&mut self, form: RemoteForm) {
        if self.forms.contains_key(&form.number) {
            return;
        }
        let number = form.number.clone();
        if let Some((key, sequence)) = sequence_of(&number) {
            let next = self.next_sequence.entry(key).or_default();
            *next = (*next).max(sequence.saturating_add(1));
        }
        if !form.request_id.is_empty() {
            self.by_request.insert(
                (form.seller.clone(), form.request_id.clone()),
                number.clone(),
            );
        }
        self.by_blue
            .entry(form.blue_number)
            .or_default()
            .push(number.clone());
        self.by_seller
            .entry(form.seller.clone())
            .or_default()
            .push(number.clone());
        if form.status.is_pending()
            && let Some(deadline) = form.expires_at
        {
            self.pending.insert((deadline, number.clone()));
        }
        self.changes
            .entry(form.seller.clone())
            .or_default()
            .insert((form.status_changed_at, number.clone()));
        *self.counts.entry(form.status.code()).or_default() += 1;
        self.forms.insert(number, form);
    }

    pub fn change_status(&mut self, number: &str, status: FormStatus, at: DateTime<Utc>) {
        let Some(form) = self.forms.get_mut(number) else {
            return;
        };
        if let Some(deadline) = form.expires_at {
            self.pending.remove(&(deadline, number.to_owned()));
            if status.is_pending() {
                self.pending.insert((deadline, number.to_owned()));
            }
        }
        if let Some(changes) = self.changes.get_mut(&form.seller) {
            changes.remove(&(form.status_changed_at, number.to_owned()));
            changes.insert((at, number.to_owned()));
        }
        if let Some(count) = self.counts.get_mut(form.status.code()) {
            *count = count.saturating_sub(1);
        }
        *self.counts.entry(status.code()).or_default() += 1;
        form.status = status;
        form.status_changed_at = at;
    }

    pub fn set_red_number(&mut self, number: &str, red_number: InvoiceNumber) {
        if let Some(form) = self.forms.get_mut(number) {
            form.red_number = Some(red_number);
        }
    }

    fn of_blue(&self, blue: &InvoiceNumber) -> impl Iterator<Item = &RemoteForm> {
        self.by_blue
            .get(blue)
            .into_iter()
            .flatten()
            .filter_map(|number| self.forms.get(number))
    }

    /// What the non-void forms of a blue invoice take of its lines.
    fn reserved_of(&self, blue: &InvoiceNumber) -> Vec<Reversed> {
        self.of_blue(blue)
            .filter(|form| !form.status.is_void())
            .flat_map(|form| form.lines.iter().copied().map(Reversed::from))
            .collect()
    }

    fn next_number(&self, year: u8, region: u8, now: DateTime<Utc>) -> String {
        let sequence = self
            .next_sequence
            .get(&(year, region))
            .copied()
            .unwrap_or_else(|| sequence_floor(now));
        format!("{year:02}{region:02}{sequence:016}")
    }
}

/// The (year, province) and sequence of a form number this sandbox wrote.
fn sequence_of(number: &str) -> Option<((u8, u8), u64)> {
    if number.len() != 20 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = number.get(0..2)?.parse().ok()?;
    let region = number.get(2..4)?.parse().ok()?;
    let sequence = number.get(4..)?.parse().ok()?;
    Some(((year, region), sequence))
}

/// `hzqrduuid`: the first 32 hex digits of the SM3 of `seller:number`.
fn form_uuid(seller: &TaxpayerId, number: &str) -> String {
    let mut digest = sm3_hex(format!("{seller}:{number}").as_bytes());
    digest.truncate(32);
    digest
}

impl State {
    /// A form of `seller`.
    pub fn form(&self, seller: &TaxpayerId, number: &str) -> Option<&RemoteForm> {
        self.forms.get(number).filter(|form| form.seller == *seller)
    }

    /// A form of any seller (the admin API acts as the buyer, who names no seller).
    pub fn form_by_number(&self, number: &str) -> Option<&RemoteForm> {
        self.forms.get(number)
    }

    /// How many forms are in each status, by code.
    pub fn form_counts(&self) -> BTreeMap<String, u64> {
        self.forms
            .counts
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(code, count)| ((*code).to_owned(), *count))
            .collect()
    }

    /// Pending forms whose deadline is at or before `now` become void (07) at their deadline.
    pub fn expire_due(&self, now: DateTime<Utc>) -> Vec<Event> {
        self.forms
            .pending
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(deadline, number)| Event::FormStatusChanged {
                number: number.clone(),
                status: FormStatus::VoidExpired,
                at: *deadline,
            })
            .collect()
    }

    /// One page of the seller's forms whose status changed at or after `since`, oldest change
    /// first, and the next page.
    pub fn forms_changed_since(
        &self,
        seller: &TaxpayerId,
        since: DateTime<Utc>,
        page: u32,
        page_size: u32,
    ) -> (Vec<&RemoteForm>, Option<u32>) {
        let Some(changes) = self.forms.changes.get(seller) else {
            return (Vec::new(), None);
        };
        let size = usize::try_from(page_size).unwrap_or(usize::MAX);
        let start = usize::try_from(page)
            .unwrap_or(usize::MAX)
            .saturating_mul(size);
        let mut rows = changes.range((since, String::new())..).skip(start);
        let items = rows
            .by_ref()
            .take(size)
            .filter_map(|(_, number)| self.forms.get(number))
            .collect();
        let next = rows.next().is_some().then(|| page.checked_add(1)).flatten();
        (items, next)
    }

    /// Every form of the seller, newest first (admin).
    pub fn forms_of(&self, seller: &TaxpayerId) -> Vec<&RemoteForm> {
        self.forms
            .by_seller
            .get(seller)
            .into_iter()
            .flatten()
            .rev()
            .filter_map(|number| self.forms.get(number))
            .collect()
    }
}

fn form_not_found(number: &str) -> Rejection {
    Rejection::new(
        codes::FORM_NOT_FOUND,
        format!("红字发票信息确认单{number}不存在"),
    )
}

#[cfg(test)]
mod tests;
