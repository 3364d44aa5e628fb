//! The 20-digit 数电 invoice number: year (2), region (2), channel (1), sequence (15).
//!
//! Owns the layout of the number and its text form, not how numbers are allocated: the issuance
//! workflow reserves them. The region is not checked against the province list, because how the
//! 计划单列市 (深圳, 大连, 青岛, 宁波, 厦门) are encoded is unknown and a real number must not be refused.

use std::{fmt, str::FromStr};

/// A 20-digit 数电 invoice number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvoiceNumber(u128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceNumberError {
    #[error("invoice number must be 20 digits")]
    Format,
    #[error("invoice number part out of range")]
    OutOfRange,
}

/// Place values of the parts inside the 20-digit number.
const YEAR_PLACE: u128 = 1_000_000_000_000_000_000;
const REGION_PLACE: u128 = 10_000_000_000_000_000;
const CHANNEL_PLACE: u128 = 1_000_000_000_000_000;

/// GB/T 2260 province-level codes (first two digits) and their short names.
const PROVINCES: [(u8, &str); 34] = [
    (11, "北京"),
    (12, "天津"),
    (13, "河北"),
    (14, "山西"),
    (15, "内蒙古"),
    (21, "辽宁"),
    (22, "吉林"),
    (23, "黑龙江"),
    (31, "上海"),
    (32, "江苏"),
    (33, "浙江"),
    (34, "安徽"),
    (35, "福建"),
    (36, "江西"),
    (37, "山东"),
    (41, "河南"),
    (42, "湖北"),
    (43, "湖南"),
    (44, "广东"),
    (45, "广西"),
    (46, "海南"),
    (50, "重庆"),
    (51, "四川"),
    (52, "贵州"),
    (53, "云南"),
    (54, "西藏"),
    (61, "陕西"),
    (62, "甘肃"),
    (63, "青海"),
    (64, "宁夏"),
    (65, "新疆"),
    (71, "台湾"),
    (81, "香港"),
    (82, "澳门"),
];

impl InvoiceNumber {
    pub const SEQUENCE_MAX: u64 = 999_999_999_999_999;

    /// Build from parts: `year` is the last two digits (0..=99), `region` a GB/T 2260 province code
    /// (0..=99, not checked against the list), `channel` 0..=9, `sequence` 0..=SEQUENCE_MAX.
    pub fn new(
        year: u8,
        region: u8,
        channel: u8,
        sequence: u64,
    ) -> Result<Self, InvoiceNumberError> {
        if year > 99 || region > 99 || channel > 9 || sequence > Self::SEQUENCE_MAX {
            return Err(InvoiceNumberError::OutOfRange);
        }
        Ok(Self(
            u128::from(year) * YEAR_PLACE
                + u128::from(region) * REGION_PLACE
                + u128::from(channel) * CHANNEL_PLACE
                + u128::from(sequence),
        ))
    }
    /// Last two digits of the year of issue.
    pub fn year(&self) -> u8 {
        part_u8(self.0 / YEAR_PLACE)
    }
    /// GB/T 2260 province code.
    pub fn region(&self) -> u8 {
        part_u8(self.0 / REGION_PLACE % 100)
    }
    /// 开具渠道等信息: no official enumeration; `2` is seen on ordinary platform invoices.
    pub fn channel(&self) -> u8 {
        part_u8(self.0 / CHANNEL_PLACE % 10)
    }
    pub fn sequence(&self) -> u64 {
        u64::try_from(self.0 % CHANNEL_PLACE).unwrap_or(0)
    }
    /// The short name of the province-level region (北京, 广东, …), or `None` for a code outside
    /// the 34 province-level codes (including whatever 计划单列市 use).
    pub fn region_name(&self) -> Option<&'static str> {
        let region = self.region();
        PROVINCES
            .iter()
            .find(|(code, _)| *code == region)
            .map(|(_, name)| *name)
    }
    /// The next number in the same year, region and channel, or `None` at the end of the sequence.
    pub fn next(&self) -> Option<Self> {
        (self.sequence() < Self::SEQUENCE_MAX).then_some(Self(self.0 + 1))
    }
}

/// Parts are extracted with divisions that keep them below 100.
fn part_u8(v: u128) -> u8 {
    u8::try_from(v).unwrap_or(0)
}

impl FromStr for InvoiceNumber {
    type Err = InvoiceNumberError;
    /// Exactly 20 ASCII digits: no spaces, signs or full-width digits, which `u128::from_str` would
    /// partly accept.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvoiceNumberError::Format);
        }
        Ok(Self(
            s.bytes().fold(0u128, |n, b| n * 10 + u128::from(b - b'0')),
        ))
    }
}

impl fmt::Display for InvoiceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:020}", self.0)
    }
}

// The number travels as its 20-digit text: it does not fit a JSON number safely and leading
// zeros are part of it.
serde_as_text!(
    InvoiceNumber,
    std::convert::identity,
    <InvoiceNumber as FromStr>::from_str
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_looking_number_splits_into_its_parts() {
        let n: InvoiceNumber = "24442000000012345678".parse().unwrap();
        assert_eq!(n.year(), 24);
        assert_eq!(n.region(), 44);
        assert_eq!(n.channel(), 2);
        assert_eq!(n.sequence(), 12_345_678);
        assert_eq!(n.region_name(), Some("广东"));
        assert_eq!(n.to_string(), "24442000000012345678");
    }

    #[test]
    fn new_and_display_round_trip_with_leading_zeros() {
        let n = InvoiceNumber::new(5, 11, 0, 42).unwrap();
        assert_eq!(n.to_string(), "05110000000000000042");
        assert_eq!(n.to_string().parse::<InvoiceNumber>(), Ok(n));
        assert_eq!(n.region_name(), Some("北京"));
        let zero = InvoiceNumber::new(0, 0, 0, 0).unwrap();
        assert_eq!(zero.to_string(), "00000000000000000000");
    }

    #[test]
    fn unknown_regions_are_accepted_without_a_name() {
        // 计划单列市 may use codes outside the province list.
        let n: InvoiceNumber = "24992000000000000001".parse().unwrap();
        assert_eq!(n.region(), 99);
        assert_eq!(n.region_name(), None);
        assert_eq!(InvoiceNumber::new(24, 0, 2, 1).unwrap().region_name(), None);
        assert_eq!(
            InvoiceNumber::new(24, 82, 2, 1).unwrap().region_name(),
            Some("澳门")
        );
        assert_eq!(PROVINCES.len(), 34);
    }

    #[test]
    fn malformed_strings_are_refused_with_format() {
        for bad in [
            "",
            "2444200000001234567",
            "244420000000123456789",
            " 24442000000012345678",
            "24442000000012345678 ",
            "+4442000000012345678",
            "-4442000000012345678",
            "2444200000001234567X",
            "２4442000000012345678",
            "2444200000001234567٣",
        ] {
            assert_eq!(
                bad.parse::<InvoiceNumber>(),
                Err(InvoiceNumberError::Format),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parts_out_of_range_are_refused() {
        assert_eq!(
            InvoiceNumber::new(100, 44, 2, 1),
            Err(InvoiceNumberError::OutOfRange)
        );
        assert_eq!(
            InvoiceNumber::new(24, 100, 2, 1),
            Err(InvoiceNumberError::OutOfRange)
        );
        assert_eq!(
            InvoiceNumber::new(24, 44, 10, 1),
            Err(InvoiceNumberError::OutOfRange)
        );
        assert_eq!(
            InvoiceNumber::new(24, 44, 2, InvoiceNumber::SEQUENCE_MAX + 1),
            Err(InvoiceNumberError::OutOfRange)
        );
        assert!(InvoiceNumber::new(99, 99, 9, InvoiceNumber::SEQUENCE_MAX).is_ok());
    }

    #[test]
    fn next_increments_the_sequence_and_stops_at_the_max() {
        let n = InvoiceNumber::new(24, 44, 2, 7).unwrap();
        assert_eq!(n.next(), Some(InvoiceNumber::new(24, 44, 2, 8).unwrap()));
        let last = InvoiceNumber::new(24, 44, 2, InvoiceNumber::SEQUENCE_MAX).unwrap();
        assert_eq!(last.next(), None);
        let before_last = InvoiceNumber::new(24, 44, 2, InvoiceNumber::SEQUENCE_MAX - 1).unwrap();
        assert_eq!(before_last.next(), Some(last));
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Holder {
        number: InvoiceNumber,
    }

    #[test]
    fn serde_uses_the_20_digit_string() {
        let holder = Holder {
            number: InvoiceNumber::new(5, 11, 2, 42).unwrap(),
        };
        let text = toml::to_string(&holder).unwrap();
        assert_eq!(text.trim(), r#"number = "05112000000000000042""#);
        assert_eq!(toml::from_str::<Holder>(&text).unwrap(), holder);
        assert!(toml::from_str::<Holder>(r#"number = "0511200000000000004""#).is_err());
        assert!(toml::from_str::<Holder>("number = 5112000000000000042").is_err());
    }
}
