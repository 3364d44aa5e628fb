//! VAT rates and levy rates (税率/征收率), including 免税 and 不征税.

use rust_decimal::Decimal;

/// A rate as printed on an invoice line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaxRate {
    /// A percentage rate held as a fraction: `0.13` for 13%, `0.015` for 1.5%, `0` for 0%.
    Percent(Decimal),
    /// 免税: exempt; the tax is zero and the rate prints as `免税`.
    Exempt,
    /// 不征税: non-taxable item (6-prefix codes); the tax is zero and the rate prints as `不征税`.
    NonTaxable,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxRateError {
    #[error("tax rate is empty")]
    Empty,
    #[error("tax rate is not a number, a percentage, 免税 or 不征税")]
    Format,
    #[error("tax rate is not one of the rates in force")]
    Unknown,
}

impl TaxRate {
    /// Parse `0.13`, `0.130000`, `13%`, `免税`, `不征税` (surrounding whitespace ignored). Only rates
    /// in force are accepted (13, 9, 6, 5, 3, 2, 1.5, 1, 0 percent).
    pub fn parse(text: &str) -> Result<Self, TaxRateError> {
        let _ = text;
        Err(TaxRateError::Format)
    }
    /// The multiplier used for tax: the fraction, or zero for 免税 and 不征税.
    pub fn fraction(&self) -> Decimal {
        match self {
            Self::Percent(f) => *f,
            Self::Exempt | Self::NonTaxable => Decimal::ZERO,
        }
    }
    /// The text of the XML `TaxRate` element: `0.13`, `0.015`, `0`, `免税`, `不征税`.
    pub fn xml_text(&self) -> String {
        String::new()
    }
    /// The rate as printed on the layout: `13%`, `1.5%`, `0%`, `免税`, `不征税`.
    pub fn display_percent(&self) -> String {
        String::new()
    }
}

impl std::fmt::Display for TaxRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display_percent())
    }
}
