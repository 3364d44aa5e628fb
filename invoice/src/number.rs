//! The 20-digit 数电 invoice number: year (2), region (2), channel (1), sequence (15).

use std::{fmt, str::FromStr};

/// A 20-digit 数电 invoice number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvoiceNumber(u128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceNumberError {
    #[error("invoice number must be 20 digits")]
    Format,
    #[error("invoice number region is not a province code")]
    Region { region: u8 },
    #[error("invoice number part out of range")]
    OutOfRange,
}

impl InvoiceNumber {
    pub const SEQUENCE_MAX: u64 = 999_999_999_999_999;

    /// Build from parts: `year` is the last two digits (0..=99), `region` a GB/T 2260 province code,
    /// `channel` 0..=9, `sequence` 0..=SEQUENCE_MAX.
    pub fn new(year: u8, region: u8, channel: u8, sequence: u64) -> Result<Self, InvoiceNumberError> {
        let _ = (year, region, channel, sequence);
        Err(InvoiceNumberError::OutOfRange)
    }
    pub fn year(&self) -> u8 {
        0
    }
    pub fn region(&self) -> u8 {
        0
    }
    pub fn channel(&self) -> u8 {
        0
    }
    pub fn sequence(&self) -> u64 {
        0
    }
    /// The next number in the same year, region and channel, or `None` at the end of the sequence.
    pub fn next(&self) -> Option<Self> {
        None
    }
}

impl FromStr for InvoiceNumber {
    type Err = InvoiceNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let _ = s;
        Err(InvoiceNumberError::Format)
    }
}

impl fmt::Display for InvoiceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:020}", self.0)
    }
}
