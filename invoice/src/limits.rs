//! The limits a request is checked against: field lengths (乐企 upload specification), the amount
//! tolerance and the number of lines.
//!
//! Some of these are only our best knowledge of the platform (the red remark limit, the line count),
//! so they live in one value that a deployment can override instead of in constants spread around.

use rust_decimal::Decimal;

/// Field lengths are counted in characters (Unicode scalar values), as the platform counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub party_name: usize,
    pub address: usize,
    pub phone: usize,
    pub bank_name: usize,
    pub bank_account: usize,
    pub email: usize,
    pub mobile: usize,
    pub drawer: usize,
    pub payee: usize,
    pub reviewer: usize,
    pub remark_blue: usize,
    /// Smaller than on blue invoices, presumably to leave room for the red remark prefix.
    pub remark_red: usize,
    /// 项目名称 as sent.
    pub item_name: usize,
    /// `*简称*名称` as printed.
    pub printed_item_name: usize,
    pub specification: usize,
    pub unit: usize,
    pub request_id: usize,
    pub lines: usize,
    /// Largest accepted |amount − quantity × unit price|.
    pub line_amount_tolerance: Decimal,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            party_name: 300,
            address: 300,
            phone: 60,
            bank_name: 120,
            bank_account: 50,
            email: 100,
            mobile: 20,
            drawer: 300,
            payee: 150,
            reviewer: 75,
            remark_blue: 450,
            remark_red: 382,
            item_name: 600,
            printed_item_name: 300,
            specification: 150,
            unit: 300,
            request_id: 64,
            lines: 2000,
            line_amount_tolerance: Decimal::new(1, 2),
        }
    }
}

/// Length in characters.
pub fn char_len(text: &str) -> usize {
    text.chars().count()
}
