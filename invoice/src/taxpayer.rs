//! Taxpayer identification numbers (纳税人识别号): normalisation, the accepted lengths, the GB 32100
//! check character of unified social credit codes and the GB 11643 check of resident id numbers.
//!
//! Pure functions over strings; the validator turns the errors into field violations.

/// Trim, convert full-width ASCII (U+FF01..U+FF5E, U+3000) to half-width, and upper-case.
pub fn normalize(raw: &str) -> String {
    raw.trim().to_uppercase()
}

/// What an accepted taxpayer id is, by its length and check character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaxpayerIdKind {
    /// 15 characters: old 税务登记号 (6-digit region + 9-character organisation code).
    Legacy15,
    /// 17 characters: old 个体户 id (15-digit ID card + 2-digit sequence).
    Individual17,
    /// 18 characters passing the GB 32100 check: 统一社会信用代码.
    Uscc,
    /// 18 characters passing the GB 11643 check: a resident id number used as a tax id.
    ResidentId,
    /// 20 characters: 18-digit ID card + 2-digit sequence (个体户).
    Individual20,
}

/// A normalised, validated taxpayer id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaxpayerId(String);

/// Why a taxpayer id was refused. `code()` is the stable suffix the validator prefixes with the
/// field's role (`BUYER_`, `SELLER_`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxpayerIdError {
    #[error("taxpayer id is empty")]
    Empty,
    #[error("taxpayer id must have 15, 17, 18 or 20 characters")]
    Length { len: usize },
    #[error("taxpayer id has a character outside the allowed set")]
    Charset { position: usize, found: char },
    #[error("unified social credit code check character does not match")]
    CheckDigit { expected: char, found: char },
}

impl TaxpayerIdError {
    /// Stable machine code suffix: `TAX_ID_REQUIRED`, `TAX_ID_LENGTH`, `TAX_ID_CHARSET`,
    /// `TAX_ID_CHECK_DIGIT`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "TAX_ID_REQUIRED",
            Self::Length { .. } => "TAX_ID_LENGTH",
            Self::Charset { .. } => "TAX_ID_CHARSET",
            Self::CheckDigit { .. } => "TAX_ID_CHECK_DIGIT",
        }
    }

    /// A message in Chinese for people.
    pub fn message_zh(&self) -> String {
        String::new()
    }
}

impl TaxpayerId {
    /// Normalise and validate.
    pub fn parse(raw: &str) -> Result<Self, TaxpayerIdError> {
        let s = normalize(raw);
        if s.is_empty() {
            return Err(TaxpayerIdError::Empty);
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn kind(&self) -> TaxpayerIdKind {
        TaxpayerIdKind::Uscc
    }
}

impl std::fmt::Display for TaxpayerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The GB 32100 check character for the first 17 characters of a USCC, or `None` when a character
/// is outside the USCC set.
pub fn uscc_check_char(first17: &str) -> Option<char> {
    let _ = first17;
    None
}

/// True when `s` (18 characters) is a resident id number with a valid GB 11643 check character.
pub fn is_resident_id_number(s: &str) -> bool {
    let _ = s;
    false
}

/// A resident identity card number (居民身份证号码, GB 11643), for natural-person buyers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResidentIdNumber(String);

impl ResidentIdNumber {
    /// Normalise and check length, digits, birth date and check character.
    pub fn parse(raw: &str) -> Result<Self, TaxpayerIdError> {
        Ok(Self(normalize(raw)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
