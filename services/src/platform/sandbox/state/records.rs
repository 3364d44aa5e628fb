//! The recorded invoices and upload results, on the [`Shelf`]: memory holds an index (a number's
//! place on the shelf, each seller-day's numbers in order), the shelf holds the values.

use std::collections::HashMap;
use std::io;

use chrono::{DateTime, NaiveDate, Utc};
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::taxpayer::TaxpayerId;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::super::shelf::{Kept, Shelf};
use crate::clock::china_day;
use crate::platform::{RemoteState, UploadItemResult, UsageStatus};

/// A recorded invoice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub seller: TaxpayerId,
    pub issued_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub content: InvoiceContent,
    pub content_sm3: String,
    /// Tax-inclusive amount reversed by recorded red invoices (positive).
    pub reversed: Decimal,
    pub usage: UsageStatus,
}

impl Record {
    pub fn state(&self) -> RemoteState {
        if self.reversed.is_zero() {
            RemoteState::Normal
        } else if self.reversed >= self.content.totals.total {
            RemoteState::FullyReversed
        } else {
            RemoteState::PartiallyReversed
        }
    }
}

/// An accepted upload's results, visible from `ready_at`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Upload {
    pub seller: TaxpayerId,
    pub ready_at: DateTime<Utc>,
    pub items: Vec<UploadItemResult>,
}

#[derive(Debug)]
pub(crate) struct Records {
    shelf: Shelf,
    invoices: HashMap<InvoiceNumber, Kept<Record>>,
    by_day: HashMap<(TaxpayerId, NaiveDate), Vec<InvoiceNumber>>,
    uploads: HashMap<String, Kept<Upload>>,
}

impl Records {
    pub fn new(shelf: Shelf) -> Self {
        Self {
            shelf,
            invoices: HashMap::new(),
            by_day: HashMap::new(),
            uploads: HashMap::new(),
        }
    }

    /// Records (or records again) `number`.
    pub fn insert(&mut self, number: InvoiceNumber, record: Record) {
        // Kept sorted as it grows (numbers mostly arrive in order, so this is nearly always a
        // push), so a page is a slice and listing a busy day stays linear.
        let day = self
            .by_day
            .entry((record.seller.clone(), china_day(record.issued_at)))
            .or_default();
        match day.last() {
            Some(last) if *last > number => {
                if let Err(at) = day.binary_search(&number) {
                    day.insert(at, number);
                }
            }
            Some(last) if *last == number => {}
            _ => day.push(number),
        }
        let kept = self.shelf.keep(record);
        self.invoices.insert(number, kept);
    }

    pub fn contains(&self, number: &InvoiceNumber) -> bool {
        self.invoices.contains_key(number)
    }

    pub fn get(&self, number: &InvoiceNumber) -> io::Result<Option<Record>> {
        self.invoices
            .get(number)
            .map(|kept| self.shelf.read(kept))
            .transpose()
    }

    /// Changes a recorded invoice (nothing when `number` is not recorded).
    pub fn update(
        &mut self,
        number: &InvoiceNumber,
        change: impl FnOnce(&mut Record),
    ) -> io::Result<()> {
        let Some(mut record) = self.get(number)? else {
            return Ok(());
        };
        change(&mut record);
        let kept = self.shelf.keep(record);
        self.invoices.insert(*number, kept);
        Ok(())
    }

    /// The seller's numbers issued on `day`, ascending.
    pub fn day(&self, seller: &TaxpayerId, day: NaiveDate) -> &[InvoiceNumber] {
        self.by_day
            .get(&(seller.clone(), day))
            .map_or(&[], Vec::as_slice)
    }

    /// Every number recorded for the seller, ascending.
    pub fn numbers_of(&self, seller: &TaxpayerId) -> Vec<InvoiceNumber> {
        let mut numbers: Vec<InvoiceNumber> = self
            .by_day
            .iter()
            .filter(|((owner, _), _)| owner == seller)
            .flat_map(|(_, numbers)| numbers.iter().copied())
            .collect();
        numbers.sort_unstable();
        numbers
    }

    pub fn insert_upload(&mut self, receipt: String, upload: Upload) {
        let kept = self.shelf.keep(upload);
        self.uploads.insert(receipt, kept);
    }

    pub fn upload(&self, receipt: &str) -> io::Result<Option<Upload>> {
        self.uploads
            .get(receipt)
            .map(|kept| self.shelf.read(kept))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::UploadOutcome;
    use crate::platform::sandbox::test_support::{blue_content, seller, start_time};
    use fapiao_invoice::model::InvoiceKind;

    fn record(request_id: &str, issued_at: DateTime<Utc>) -> Record {
        Record {
            seller: seller(),
            issued_at,
            recorded_at: issued_at,
            content: blue_content(request_id, InvoiceKind::General),
            content_sm3: format!("sm3-of-{request_id}"),
            reversed: Decimal::ZERO,
            usage: UsageStatus {
                used_for_deduction: false,
                booked: false,
            },
        }
    }

    fn number(sequence: u64) -> InvoiceNumber {
        InvoiceNumber::new(26, 31, 2, sequence).unwrap()
    }

    #[test]
    fn recorded_invoices_come_back_from_the_shelf_and_take_their_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut records = Records::new(Shelf::new(Some(dir.path().to_owned())));
        let day = start_time();
        let next_day = day + chrono::Duration::days(1);
        for (sequence, at) in [(3, day), (1, day), (2, next_day)] {
            records.insert(number(sequence), record(&format!("R{sequence}"), at));
        }
        let first = records.get(&number(1)).unwrap().unwrap();
        assert_eq!(first.content, blue_content("R1", InvoiceKind::General));
        assert_eq!(first.content_sm3, "sm3-of-R1");
        assert!(records.get(&number(4)).unwrap().is_none());
        assert_eq!(
            records.day(&seller(), china_day(day)),
            [number(1), number(3)]
        );
        assert_eq!(
            records.numbers_of(&seller()),
            [number(1), number(2), number(3)]
        );

        records
            .update(&number(3), |r| r.reversed = Decimal::ONE)
            .unwrap();
        assert_eq!(
            records.get(&number(3)).unwrap().unwrap().reversed,
            Decimal::ONE
        );
        assert_eq!(
            records.get(&number(1)).unwrap().unwrap().reversed,
            Decimal::ZERO
        );

        let items = vec![UploadItemResult {
            number: number(1),
            outcome: UploadOutcome::Recorded,
        }];
        records.insert_upload(
            "SL1".to_owned(),
            Upload {
                seller: seller(),
                ready_at: day,
                items: items.clone(),
            },
        );
        assert_eq!(records.upload("SL1").unwrap().unwrap().items, items);
        assert!(records.upload("SL2").unwrap().is_none());
        assert!(
            records
                .invoices
                .values()
                .all(|kept| matches!(kept, Kept::Shelved { .. })),
            "nothing recorded is held in memory"
        );
    }
}
