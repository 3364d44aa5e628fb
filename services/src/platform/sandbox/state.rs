//! What the sandbox platform knows: reserved number ranges, quota, uploads, recorded invoices,
//! red-letter confirmation forms ([`forms`]) and the offset of its business clock.
//!
//! Every change is an [`Event`]: an operation first decides (reading the state, the time passed
//! in) and returns the events it wants, then [`State::apply`] makes them happen. Replaying a journal
//! is applying its events again. It must not read a clock or sleep, nor do I/O beyond its
//! [`records`], which keep recorded invoices and upload results in a scratch file
//! ([`super::shelf`]) so that memory does not grow with every invoice; a record that cannot be read
//! back is answered `SYSTEM_BUSY`. Lookups are hash or B-tree lookups, never scans of all invoices.
//!
//! Business time is the sandbox's clock plus an offset the admin API advances (journaled as
//! [`Event::ClockOffsetSet`], so it survives a restart with a journal). Every business decision
//! (number years, quota months, upload result delays, issue and record times of self-issued
//! invoices, form times and expiry) uses business time; only the protocol's timestamp window uses
//! the unshifted clock, so tests can jump 72 hours ahead and still sign requests.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::{TaxpayerId, TaxpayerIdKind};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::checks::Rejection;
use super::shelf::Shelf;
use crate::clock::china_offset;
use crate::platform::protocol::messages::codes;
use crate::platform::{RemoteForm, UploadItemResult, UsageStatus};
use fapiao_invoice::redletter::FormStatus;

mod forms;
mod records;
#[cfg(test)]
mod tests;
mod uploads;

pub(crate) use forms::{BuyerAnswerError, Filing, FormBook, FormLines, status_text};
pub(crate) use records::Record;
use records::{Records, Upload};
use uploads::busy;
pub(crate) use uploads::{Judgement, Prepared, UploadView};

/// The fixed settings the state is run with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub channel: u8,
    pub default_region: u8,
    pub numbers_per_seller: u64,
    pub max_range: u32,
    pub monthly_quota: Decimal,
    /// Per-seller allotment and monthly quota from the configuration.
    pub overrides: HashMap<TaxpayerId, (Option<u64>, Option<Decimal>)>,
    /// Folder of the scratch file recorded invoices are kept in ([`super::shelf`]); the system's
    /// temporary folder when `None`.
    pub scratch_dir: Option<std::path::PathBuf>,
}

/// The furthest business time may run ahead of the sandbox's clock: 100 years, in seconds.
pub(crate) const MAX_CLOCK_OFFSET: i64 = 100 * 366 * 24 * 3600;

/// One change of state, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event {
    Reserved {
        seller: TaxpayerId,
        first: InvoiceNumber,
        last: InvoiceNumber,
    },
    QuotaDownloaded {
        seller: TaxpayerId,
        /// `YYYYMM`, China time.
        month: u32,
        serial: String,
        granted: Decimal,
    },
    Recorded {
        seller: TaxpayerId,
        number: InvoiceNumber,
        issued_at: DateTime<Utc>,
        recorded_at: DateTime<Utc>,
        content_sm3: String,
        content: Box<InvoiceContent>,
    },
    UploadAccepted {
        receipt: String,
        seller: TaxpayerId,
        ready_at: DateTime<Utc>,
        items: Vec<UploadItemResult>,
    },
    AllotmentSet {
        seller: TaxpayerId,
        allotment: u64,
    },
    MonthlyQuotaSet {
        seller: TaxpayerId,
        quota: Decimal,
    },
    UsageSet {
        number: InvoiceNumber,
        usage: UsageStatus,
    },
    /// A confirmation form was filed, by the seller or (through the admin API) the buyer.
    FormFiled {
        form: Box<RemoteForm>,
    },
    /// A form's status changed at `at` (an answer, a withdrawal, or expiry at its deadline).
    FormStatusChanged {
        number: String,
        status: FormStatus,
        at: DateTime<Utc>,
    },
    /// A red invoice was recorded for a form.
    FormRedRecorded {
        number: String,
        red_number: InvoiceNumber,
    },
    /// Business time is now the sandbox's clock plus this many seconds.
    ClockOffsetSet {
        offset_seconds: i64,
    },
}

#[derive(Debug, Clone)]
struct SellerState {
    reserved: u64,
    allotment: u64,
    monthly_quota: Decimal,
    downloaded: HashMap<u32, Decimal>,
}

/// The seller's quota of one month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuotaView {
    pub month: u32,
    pub total: Decimal,
    pub downloaded: Decimal,
    pub available: Decimal,
}

/// The answer to a quota download.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Grant {
    /// Already granted under this serial: the same amount, nothing new.
    Repeat(Decimal),
    /// A new grant, to be committed.
    New(Decimal, Event),
}

/// A seller's allotment and quota, as the admin API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SellerView {
    pub tax_id: String,
    pub numbers_reserved: u64,
    pub numbers_remaining: u64,
    pub monthly_quota: Decimal,
}

/// One page of a seller-day's recorded invoices, and the next page when there is one.
pub(crate) type DayPage = (Vec<(InvoiceNumber, Record)>, Option<u32>);

/// The platform's whole state.
#[derive(Debug)]
pub(crate) struct State {
    settings: Settings,
    next_sequence: HashMap<(u8, u8, u8), u64>,
    /// First number of each reserved range → (last number, seller).
    ranges: BTreeMap<InvoiceNumber, (InvoiceNumber, TaxpayerId)>,
    sellers: HashMap<TaxpayerId, SellerState>,
    grants: HashMap<(TaxpayerId, String), Decimal>,
    records: Records,
    forms: FormBook,
    /// Business time minus the sandbox's clock, in seconds (never negative).
    clock_offset_seconds: i64,
}

impl State {
    pub fn new(settings: Settings) -> Self {
        Self {
            records: Records::new(Shelf::new(settings.scratch_dir.clone())),
            settings,
            next_sequence: HashMap::new(),
            ranges: BTreeMap::new(),
            sellers: HashMap::new(),
            grants: HashMap::new(),
            forms: FormBook::default(),
            clock_offset_seconds: 0,
        }
    }

    /// Makes an event happen.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Reserved {
                seller,
                first,
                last,
            } => self.apply_reserved(seller, first, last),
            Event::QuotaDownloaded {
                seller,
                month,
                serial,
                granted,
            } => {
                *self
                    .seller_mut(&seller)
                    .downloaded
                    .entry(month)
                    .or_default() += granted;
                self.grants.insert((seller, serial), granted);
            }
            Event::Recorded {
                seller,
                number,
                issued_at,
                recorded_at,
                content_sm3,
                content,
            } => self.apply_recorded(
                Record {
                    seller,
                    issued_at,
                    recorded_at,
                    content: *content,
                    content_sm3,
                    reversed: Decimal::ZERO,
                    usage: UsageStatus {
                        used_for_deduction: false,
                        booked: false,
                    },
                },
                number,
            ),
            Event::UploadAccepted {
                receipt,
                seller,
                ready_at,
                items,
            } => {
                self.records.insert_upload(
                    receipt,
                    Upload {
                        seller,
                        ready_at,
                        items,
                    },
                );
            }
            Event::AllotmentSet { seller, allotment } => {
                self.seller_mut(&seller).allotment = allotment;
            }
            Event::MonthlyQuotaSet { seller, quota } => {
                self.seller_mut(&seller).monthly_quota = quota;
            }
            Event::UsageSet { number, usage } => {
                let changed = self.records.update(&number, |record| record.usage = usage);
                unreadable(changed, &number);
            }
            Event::FormFiled { form } => self.forms.file(*form),
            Event::FormStatusChanged { number, status, at } => {
                self.forms.change_status(&number, status, at);
            }
            Event::FormRedRecorded { number, red_number } => {
                self.forms.set_red_number(&number, red_number);
            }
            Event::ClockOffsetSet { offset_seconds } => {
                self.clock_offset_seconds = offset_seconds;
            }
        }
    }

    fn apply_reserved(&mut self, seller: TaxpayerId, first: InvoiceNumber, last: InvoiceNumber) {
        let key = (first.year(), first.region(), first.channel());
        let next = self.next_sequence.entry(key).or_default();
        *next = (*next).max(last.sequence().saturating_add(1));
        let count = last.sequence().saturating_sub(first.sequence()) + 1;
        let state = self.seller_mut(&seller);
        state.reserved = state.reserved.saturating_add(count);
        self.ranges.insert(first, (last, seller));
    }

    fn apply_recorded(&mut self, record: Record, number: InvoiceNumber) {
        if let Some(reference) = &record.content.red {
            let total = record.content.totals.total;
            let changed = self
                .records
                .update(&reference.blue_number, |blue| blue.reversed -= total);
            unreadable(changed, &reference.blue_number);
        }
        self.records.insert(number, record);
    }

    fn seller_mut(&mut self, seller: &TaxpayerId) -> &mut SellerState {
        if !self.sellers.contains_key(seller) {
            let fresh = self.fresh_seller(seller);
            self.sellers.insert(seller.clone(), fresh);
        }
        self.sellers
            .get_mut(seller)
            .expect("the seller was inserted just above")
    }

    fn fresh_seller(&self, seller: &TaxpayerId) -> SellerState {
        let (numbers, quota) = self
            .settings
            .overrides
            .get(seller)
            .copied()
            .unwrap_or_default();
        SellerState {
            reserved: 0,
            allotment: numbers.unwrap_or(self.settings.numbers_per_seller),
            monthly_quota: quota.unwrap_or(self.settings.monthly_quota),
            downloaded: HashMap::new(),
        }
    }

    fn seller(&self, seller: &TaxpayerId) -> SellerState {
        self.sellers
            .get(seller)
            .cloned()
            .unwrap_or_else(|| self.fresh_seller(seller))
    }

    /// The first and last number of up to `count` numbers to reserve for the seller, continuing the
    /// shared sequence of the seller's (year, region, channel). Commit them as [`Event::Reserved`].
    pub fn reserve(
        &self,
        seller: &TaxpayerId,
        count: u32,
        now: DateTime<Utc>,
    ) -> Result<(InvoiceNumber, InvoiceNumber), Rejection> {
        if count == 0 {
            return Err(Rejection::new(codes::REQUEST_INVALID, "领用数量必须大于0"));
        }
        let exhausted =
            || Rejection::new(codes::NUMBERS_EXHAUSTED, "该纳税人可领用的发票号码已用完");
        let (reserved, allotment) = match self.sellers.get(seller) {
            Some(s) => (s.reserved, s.allotment),
            None => (0, self.fresh_seller(seller).allotment),
        };
        let key = (
            china_year(now),
            region_of(seller, self.settings.default_region),
            self.settings.channel,
        );
        let next = self
            .next_sequence
            .get(&key)
            .copied()
            .unwrap_or_else(|| sequence_floor(now));
        let room = (InvoiceNumber::SEQUENCE_MAX + 1).saturating_sub(next);
        let granted = u64::from(count.min(self.settings.max_range))
            .min(allotment.saturating_sub(reserved))
            .min(room);
        if granted == 0 {
            return Err(exhausted());
        }
        let first = InvoiceNumber::new(key.0, key.1, key.2, next).map_err(|_| exhausted())?;
        let last =
            InvoiceNumber::new(key.0, key.1, key.2, next + granted - 1).map_err(|_| exhausted())?;
        Ok((first, last))
    }

    /// The seller's quota in the month of `now`.
    pub fn quota(&self, seller: &TaxpayerId, now: DateTime<Utc>) -> QuotaView {
        let month = china_month(now);
        let state = self.seller(seller);
        let downloaded = state.downloaded.get(&month).copied().unwrap_or_default();
        QuotaView {
            month,
            total: state.monthly_quota,
            downloaded,
            available: (state.monthly_quota - downloaded).max(Decimal::ZERO),
        }
    }

    /// Grants up to `amount` of this month's quota under `serial`, once per serial.
    pub fn download(
        &self,
        seller: &TaxpayerId,
        amount: Decimal,
        serial: &str,
        now: DateTime<Utc>,
    ) -> Result<Grant, Rejection> {
        if amount <= Decimal::ZERO || amount.normalize().scale() > 2 {
            return Err(Rejection::new(
                codes::QUOTA_AMOUNT_INVALID,
                "申请额度必须大于0且最多两位小数",
            ));
        }
        if serial.trim().is_empty() {
            return Err(Rejection::new(codes::REQUEST_INVALID, "业务流水号不能为空"));
        }
        if let Some(granted) = self.grants.get(&(seller.clone(), serial.to_owned())) {
            return Ok(Grant::Repeat(*granted));
        }
        let quota = self.quota(seller, now);
        if quota.available <= Decimal::ZERO {
            return Err(Rejection::new(
                codes::QUOTA_INSUFFICIENT,
                "本月可用授信额度不足",
            ));
        }
        let granted = amount.min(quota.available);
        Ok(Grant::New(
            granted,
            Event::QuotaDownloaded {
                seller: seller.clone(),
                month: quota.month,
                serial: serial.to_owned(),
                granted,
            },
        ))
    }

    /// The seller a number was reserved for.
    pub(super) fn assigned_to(&self, number: &InvoiceNumber) -> Option<&TaxpayerId> {
        self.ranges
            .range(..=*number)
            .next_back()
            .filter(|(_, (last, _))| number <= last)
            .map(|(_, (_, seller))| seller)
    }

    /// A recorded invoice of `seller`.
    pub fn invoice(
        &self,
        seller: &TaxpayerId,
        number: &InvoiceNumber,
    ) -> Result<Option<Record>, Rejection> {
        let record = self.records.get(number).map_err(busy)?;
        Ok(record.filter(|r| r.seller == *seller))
    }

    /// Whether any seller has recorded `number`.
    pub fn is_recorded(&self, number: &InvoiceNumber) -> bool {
        self.records.contains(number)
    }

    /// One page of the seller's invoices issued on `day`, ordered by number, and the next page.
    pub fn day_page(
        &self,
        seller: &TaxpayerId,
        day: NaiveDate,
        page: u32,
        page_size: u32,
    ) -> Result<DayPage, Rejection> {
        let sorted = self.records.day(seller, day);
        let size = usize::try_from(page_size).unwrap_or(usize::MAX);
        let start = usize::try_from(page)
            .unwrap_or(usize::MAX)
            .saturating_mul(size);
        let mut items = Vec::new();
        for number in sorted.iter().skip(start).take(size) {
            if let Some(record) = self.records.get(number).map_err(busy)? {
                items.push((*number, record));
            }
        }
        let next = (start.saturating_add(size) < sorted.len())
            .then(|| page.checked_add(1))
            .flatten();
        Ok((items, next))
    }

    /// The admin's change of a seller's remaining allotment and monthly quota.
    pub fn set_seller(
        &self,
        seller: &TaxpayerId,
        numbers_remaining: Option<u64>,
        monthly_quota: Option<Decimal>,
    ) -> Vec<Event> {
        let reserved = self.seller(seller).reserved;
        let allotment = numbers_remaining.map(|remaining| Event::AllotmentSet {
            seller: seller.clone(),
            allotment: reserved.saturating_add(remaining),
        });
        let quota = monthly_quota.map(|quota| Event::MonthlyQuotaSet {
            seller: seller.clone(),
            quota,
        });
        allotment.into_iter().chain(quota).collect()
    }

    /// Business time: the sandbox's clock plus the offset the admin has advanced it by.
    pub fn business_time(&self, clock: DateTime<Utc>) -> DateTime<Utc> {
        clock + chrono::Duration::seconds(self.clock_offset_seconds)
    }

    /// Moves business time `seconds` ahead; `None` when negative or beyond [`MAX_CLOCK_OFFSET`].
    pub fn advance_clock(&self, seconds: i64) -> Option<Event> {
        if seconds < 0 {
            return None;
        }
        let offset_seconds = self
            .clock_offset_seconds
            .checked_add(seconds)
            .filter(|offset| *offset <= MAX_CLOCK_OFFSET)?;
        Some(Event::ClockOffsetSet { offset_seconds })
    }

    pub fn seller_view(&self, seller: &TaxpayerId) -> SellerView {
        let state = self.seller(seller);
        SellerView {
            tax_id: seller.to_string(),
            numbers_reserved: state.reserved,
            numbers_remaining: state.allotment.saturating_sub(state.reserved),
            monthly_quota: state.monthly_quota,
        }
    }

    /// Every number recorded for the seller, ascending (admin only).
    pub fn numbers_of(&self, seller: &TaxpayerId) -> Vec<InvoiceNumber> {
        self.records.numbers_of(seller)
    }
}

/// The end of a change to a recorded invoice that could not be read back: logged, as the change
/// (a usage or a reversal) is lost.
fn unreadable(changed: std::io::Result<()>, number: &InvoiceNumber) {
    if let Err(error) = changed {
        tracing::error!(%error, %number, "the sandbox cannot read a recorded invoice to change it");
    }
}

/// Last two digits of the China-time year.
fn china_year(now: DateTime<Utc>) -> u8 {
    let year = now.with_timezone(&china_offset()).year();
    u8::try_from(year.rem_euclid(100)).unwrap_or(0)
}

/// `YYYYMM` of the China-time month.
fn china_month(now: DateTime<Utc>) -> u32 {
    let local = now.with_timezone(&china_offset());
    u32::try_from(local.year()).unwrap_or(0) * 100 + local.month()
}

/// The province digits of a seller: characters 3–4 of a unified social credit code, 1–2 of the
/// other kinds (which start with a region or ID-card code); `default` when they are not digits.
fn region_of(seller: &TaxpayerId, default: u8) -> u8 {
    let text = seller.as_str().as_bytes();
    let digits = match seller.kind() {
        TaxpayerIdKind::Uscc => text.get(2..4),
        _ => text.get(0..2),
    };
    match digits {
        Some([tens, ones]) if tens.is_ascii_digit() && ones.is_ascii_digit() => {
            (tens - b'0') * 10 + (ones - b'0')
        }
        _ => default,
    }
}

/// Where a (year, region, channel) sequence starts when nothing was reserved in it yet: the
/// milliseconds since the start of the China-time year, times 1000. A memory-only sandbox restarted
/// later thus starts above what it handed out before (unless it handed out more than 1000 numbers
/// per millisecond), so an issuer keeping its numbers does not get them twice.
fn sequence_floor(now: DateTime<Utc>) -> u64 {
    let local = now.with_timezone(&china_offset()).naive_local();
    let start = NaiveDate::from_ymd_opt(local.year(), 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or(local);
    let millis = u64::try_from((local - start).num_milliseconds()).unwrap_or(0);
    millis
        .saturating_mul(1000)
        .clamp(1, InvoiceNumber::SEQUENCE_MAX / 2)
}
