//! Taxpayer identification numbers (纳税人识别号): normalisation, the accepted lengths, the GB 32100
//! check character of unified social credit codes and the GB 11643 check of resident id numbers.
//!
//! Pure functions over strings; the validator turns the errors into field violations. Nothing here
//! panics, whatever the input: callers pass text exactly as it arrived.

/// The 31 characters a USCC may use (GB 32100): I, O, S, V and Z are left out so they are not
/// mistaken for 1, 0, 5, U and 2. A character's value is its index.
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// GB 32100 weights for positions 1..=17 (3^(i−1) mod 31).
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// GB 11643 weights for positions 1..=17 (2^(18−i) mod 11).
const RESIDENT_ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// GB 11643 check characters, indexed by the weighted sum mod 11.
const RESIDENT_ID_CHECK: &[u8; 11] = b"10X98765432";

/// Trim (ASCII and full-width spaces), convert full-width ASCII (U+FF01..U+FF5E, U+3000) to
/// half-width, and upper-case ASCII letters.
///
/// People copy ids out of Chinese documents and input methods, which produce full-width characters;
/// the conversion happens before trimming so a converted U+3000 at either end is trimmed too, which
/// also makes the function idempotent.
pub fn normalize(raw: &str) -> String {
    let half: String = raw.chars().map(to_half_width).collect();
    half.trim().to_ascii_uppercase()
}

fn to_half_width(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// What an accepted taxpayer id is, by its length and check character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
pub struct TaxpayerId {
    value: String,
    // Decided once at parse time so callers never re-run the checks.
    kind: TaxpayerIdKind,
}

/// Why a taxpayer id was refused. `code()` is the stable suffix the validator prefixes with the
/// field's role (`BUYER_`, `SELLER_`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxpayerIdError {
    #[error("taxpayer id is empty")]
    Empty,
    #[error("taxpayer id must have 15, 17, 18 or 20 characters")]
    Length { len: usize },
    /// `position` is 1-based, counted in characters after normalisation.
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
        match self {
            Self::Empty => "纳税人识别号不能为空".to_owned(),
            Self::Length { len } => format!("纳税人识别号应为15、17、18或20位，实际{len}位"),
            Self::Charset { position, found } => {
                format!("纳税人识别号第{position}位字符“{found}”不合法")
            }
            Self::CheckDigit { expected, found } => {
                format!("统一社会信用代码校验位应为{expected}，实际为{found}")
            }
        }
    }
}

impl TaxpayerId {
    /// Normalise and validate.
    ///
    /// An 18-character id is first tried as a resident id number: individuals and 个体户 use their
    /// ID card number as tax id, and applying the USCC check to it would refuse them.
    pub fn parse(raw: &str) -> Result<Self, TaxpayerIdError> {
        let value = normalize(raw);
        let len = value.chars().count();
        if len == 0 {
            return Err(TaxpayerIdError::Empty);
        }
        if !matches!(len, 15 | 17 | 18 | 20) {
            return Err(TaxpayerIdError::Length { len });
        }
        if let Some((position, found)) =
            first_outside(&value, |c| c.is_ascii_digit() || c.is_ascii_uppercase())
        {
            return Err(TaxpayerIdError::Charset { position, found });
        }
        let kind = match len {
            15 => TaxpayerIdKind::Legacy15,
            17 => TaxpayerIdKind::Individual17,
            20 => TaxpayerIdKind::Individual20,
            _ if is_resident_id_number(&value) => TaxpayerIdKind::ResidentId,
            _ => {
                check_uscc(&value)?;
                TaxpayerIdKind::Uscc
            }
        };
        Ok(Self { value, kind })
    }
    pub fn as_str(&self) -> &str {
        &self.value
    }
    pub fn kind(&self) -> TaxpayerIdKind {
        self.kind
    }
}

impl std::fmt::Display for TaxpayerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.value)
    }
}

/// The first character (1-based position) for which `allowed` is false.
fn first_outside(s: &str, allowed: impl Fn(char) -> bool) -> Option<(usize, char)> {
    s.chars()
        .enumerate()
        .find(|&(_, c)| !allowed(c))
        .map(|(i, c)| (i + 1, c))
}

fn uscc_value(c: char) -> Option<u32> {
    let b = u8::try_from(c).ok()?;
    let index = USCC_CHARSET.iter().position(|&x| x == b)?;
    u32::try_from(index).ok()
}

/// Charset and check character of an 18-character USCC.
fn check_uscc(s: &str) -> Result<(), TaxpayerIdError> {
    if let Some((position, found)) = first_outside(s, |c| uscc_value(c).is_some()) {
        return Err(TaxpayerIdError::Charset { position, found });
    }
    let mut chars = s.chars();
    let first17: String = chars.by_ref().take(17).collect();
    let found = chars.next();
    let expected = uscc_check_char(&first17);
    match (expected, found) {
        (Some(expected), Some(found)) if expected == found => Ok(()),
        (Some(expected), Some(found)) => Err(TaxpayerIdError::CheckDigit { expected, found }),
        // Unreachable for a checked 18-character string; refuse rather than accept.
        _ => Err(TaxpayerIdError::Length {
            len: s.chars().count(),
        }),
    }
}

/// The GB 32100 check character for the first 17 characters of a USCC, or `None` when a character
/// is outside the USCC set or there are not exactly 17 characters.
pub fn uscc_check_char(first17: &str) -> Option<char> {
    if first17.chars().count() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in first17.chars().zip(USCC_WEIGHTS) {
        sum += uscc_value(c)? * w;
    }
    let check = (31 - sum % 31) % 31;
    let index = usize::try_from(check).ok()?;
    USCC_CHARSET.get(index).map(|&b| char::from(b))
}

/// True when `s` is exactly 18 characters from the USCC set with a matching check character.
/// No normalisation: pass the output of [`normalize`].
pub fn is_valid_uscc(s: &str) -> bool {
    s.chars().count() == 18 && check_uscc(s).is_ok()
}

/// The GB 11643 check character for the first 17 digits of a resident id number, or `None` when
/// they are not exactly 17 ASCII digits.
pub fn resident_id_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17
        .bytes()
        .zip(RESIDENT_ID_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let index = usize::try_from(sum % 11).ok()?;
    RESIDENT_ID_CHECK.get(index).map(|&b| char::from(b))
}

/// True when `s` (18 characters) is a resident id number with a valid GB 11643 check character.
/// Only an upper-case `X` is accepted as check character: pass the output of [`normalize`].
pub fn is_resident_id_number(s: &str) -> bool {
    match (s.get(..17), s.get(17..)) {
        (Some(first17), Some(last)) if last.chars().count() == 1 => {
            resident_id_check_char(first17).is_some_and(|c| last.starts_with(c))
        }
        _ => false,
    }
}

/// A resident identity card number (居民身份证号码, GB 11643), for natural-person buyers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResidentIdNumber(String);

/// Why a resident id number was refused. `code()` is the stable suffix the validator prefixes with
/// the field's role (`BUYER_`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResidentIdError {
    #[error("resident id number is empty")]
    Empty,
    #[error("resident id number must have 18 characters")]
    Length { len: usize },
    /// `position` is 1-based, counted in characters after normalisation.
    #[error("resident id number has a character outside the allowed set")]
    Charset { position: usize, found: char },
    #[error("resident id number birth date is not a valid date")]
    BirthDate,
    #[error("resident id number check character does not match")]
    CheckDigit { expected: char, found: char },
}

impl ResidentIdError {
    /// Stable machine code suffix: `ID_NUMBER_REQUIRED`, `ID_NUMBER_LENGTH`, `ID_NUMBER_CHARSET`,
    /// `ID_NUMBER_BIRTH_DATE`, `ID_NUMBER_CHECK_DIGIT`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "ID_NUMBER_REQUIRED",
            Self::Length { .. } => "ID_NUMBER_LENGTH",
            Self::Charset { .. } => "ID_NUMBER_CHARSET",
            Self::BirthDate => "ID_NUMBER_BIRTH_DATE",
            Self::CheckDigit { .. } => "ID_NUMBER_CHECK_DIGIT",
        }
    }

    /// A message in Chinese for people.
    pub fn message_zh(&self) -> String {
        match self {
            Self::Empty => "居民身份证号码不能为空".to_owned(),
            Self::Length { len } => format!("居民身份证号码应为18位，实际{len}位"),
            Self::Charset { position, found } => {
                format!("居民身份证号码第{position}位字符“{found}”不合法")
            }
            Self::BirthDate => "居民身份证号码中的出生日期（第7至14位）不是有效日期".to_owned(),
            Self::CheckDigit { expected, found } => {
                format!("居民身份证号码校验位应为{expected}，实际为{found}")
            }
        }
    }
}

impl ResidentIdNumber {
    /// Normalise (a lower-case `x` becomes `X`) and check length, digits, birth date and check
    /// character. Only the 18-character second-generation number is accepted.
    pub fn parse(raw: &str) -> Result<Self, ResidentIdError> {
        let value = normalize(raw);
        let len = value.chars().count();
        if len == 0 {
            return Err(ResidentIdError::Empty);
        }
        if len != 18 {
            return Err(ResidentIdError::Length { len });
        }
        let bad = value
            .chars()
            .enumerate()
            .find(|&(i, c)| !(c.is_ascii_digit() || (i == 17 && c == 'X')));
        if let Some((i, found)) = bad {
            return Err(ResidentIdError::Charset {
                position: i + 1,
                found,
            });
        }
        // All 18 characters are ASCII from here on, so byte ranges are character ranges.
        let birth = value.get(6..14).ok_or(ResidentIdError::BirthDate)?;
        if !is_birth_date(birth) {
            return Err(ResidentIdError::BirthDate);
        }
        let first17 = value.get(..17).unwrap_or_default();
        let found = value.chars().last().unwrap_or_default();
        match resident_id_check_char(first17) {
            Some(expected) if expected == found => Ok(Self(value)),
            Some(expected) => Err(ResidentIdError::CheckDigit { expected, found }),
            None => Err(ResidentIdError::Length { len }),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True when `yyyymmdd` (8 ASCII digits) is a real calendar date with a year in 1900..=2100: no
/// living person was born earlier, and a later year is a typo.
fn is_birth_date(yyyymmdd: &str) -> bool {
    let part =
        |range: std::ops::Range<usize>| yyyymmdd.get(range).and_then(|s| s.parse::<u32>().ok());
    let (Some(year), Some(month), Some(day)) = (part(0..4), part(4..6), part(6..8)) else {
        return false;
    };
    (1900..=2100).contains(&year) && day >= 1 && day <= days_in_month(year, month)
}

/// 0 for a month outside 1..=12.
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

fn is_leap_year(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

serde_as_text!(TaxpayerId, TaxpayerId::as_str, TaxpayerId::parse);

serde_as_text!(
    ResidentIdNumber,
    ResidentIdNumber::as_str,
    ResidentIdNumber::parse
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leap_years_follow_the_gregorian_rule() {
        assert!(is_leap_year(2000));
        assert!(is_leap_year(2024));
        assert!(!is_leap_year(1900));
        assert!(!is_leap_year(2023));
    }
}
