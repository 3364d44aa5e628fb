//! Validation results: one [`Violation`] per problem, each with the field path as the caller named
//! it (`lines[2].tax_rate`, indices 0-based like the request's list), a stable machine [`Code`] and
//! a message in Chinese for people.
//!
//! Codes are part of the public contract: callers branch on them, so a code is never renamed or
//! reused for another meaning. New codes may be added.

use std::fmt;

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Every stable violation code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(non_camel_case_types)]
        pub enum Code {
            $($(#[$doc])* $name,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The code with this wire name, if any.
            pub fn from_name(name: &str) -> Option<Code> {
                Self::ALL.iter().copied().find(|c| c.as_str() == name)
            }

            /// The code as sent on the wire, e.g. `BUYER_TAX_ID_CHECK_DIGIT`.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Code::$name => stringify!($name),)*
                }
            }
        }
    };
}

codes! {
    /// A value is malformed in a way no more specific code names; the message says how.
    INVALID_VALUE,
    /// `request_id` is empty.
    REQUEST_ID_REQUIRED,
    /// `request_id` has characters outside printable ASCII.
    REQUEST_ID_FORMAT,
    /// The invoice kind (专票/普票) is missing.
    KIND_REQUIRED,
    /// The pricing mode (tax-exclusive/tax-inclusive) is missing.
    PRICING_MODE_REQUIRED,
    /// A text field is longer than its limit.
    TEXT_TOO_LONG,
    SELLER_TAX_ID_REQUIRED,
    SELLER_TAX_ID_LENGTH,
    SELLER_TAX_ID_CHARSET,
    SELLER_TAX_ID_CHECK_DIGIT,
    SELLER_NAME_REQUIRED,
    BUYER_NAME_REQUIRED,
    /// 专票 needs the buyer's tax id; an organisation buyer on any invoice too.
    BUYER_TAX_ID_REQUIRED,
    BUYER_TAX_ID_LENGTH,
    BUYER_TAX_ID_CHARSET,
    BUYER_TAX_ID_CHECK_DIGIT,
    /// 专票 cannot be issued to a natural person.
    BUYER_NATURAL_PERSON_ON_SPECIAL,
    /// An id number was sent without an id type (自然人证件类型).
    BUYER_ID_TYPE_REQUIRED,
    /// The id type is not one of the known 自然人证件类型 codes.
    BUYER_ID_TYPE_UNKNOWN,
    /// An id type or number was sent for a buyer that is not a natural person.
    BUYER_ID_NOT_NATURAL_PERSON,
    BUYER_ID_NUMBER_REQUIRED,
    BUYER_ID_NUMBER_LENGTH,
    BUYER_ID_NUMBER_CHARSET,
    BUYER_ID_NUMBER_BIRTH_DATE,
    BUYER_ID_NUMBER_CHECK_DIGIT,
    BUYER_EMAIL_FORMAT,
    BUYER_MOBILE_FORMAT,
    /// 开票人 is missing.
    DRAWER_REQUIRED,
    LINES_REQUIRED,
    LINES_TOO_MANY,
    LINE_ITEM_NAME_REQUIRED,
    /// `*简称*名称` is longer than 300 characters.
    LINE_PRINTED_NAME_TOO_LONG,
    LINE_TAX_CODE_FORMAT,
    /// The code is not in the catalog this deployment accepts.
    LINE_TAX_CODE_UNKNOWN,
    LINE_TAX_RATE_REQUIRED,
    LINE_TAX_RATE_FORMAT,
    /// Not a rate in force.
    LINE_TAX_RATE_UNKNOWN,
    /// The rate is not allowed with the line's tax classification code.
    LINE_TAX_RATE_NOT_ALLOWED,
    /// 专票 cannot carry an exempt (免税) line.
    LINE_EXEMPT_ON_SPECIAL,
    LINE_QUANTITY_FORMAT,
    LINE_QUANTITY_PRECISION,
    LINE_QUANTITY_RANGE,
    LINE_QUANTITY_ZERO,
    /// Quantities of a blue invoice are positive.
    LINE_QUANTITY_NEGATIVE,
    LINE_UNIT_PRICE_FORMAT,
    LINE_UNIT_PRICE_PRECISION,
    LINE_UNIT_PRICE_RANGE,
    LINE_UNIT_PRICE_ZERO,
    LINE_UNIT_PRICE_NEGATIVE,
    /// A quantity was given without a unit price.
    LINE_QUANTITY_WITHOUT_PRICE,
    /// A unit price was given without a quantity.
    LINE_PRICE_WITHOUT_QUANTITY,
    /// Neither an amount nor a quantity and a unit price.
    LINE_AMOUNT_REQUIRED,
    LINE_AMOUNT_FORMAT,
    LINE_AMOUNT_PRECISION,
    LINE_AMOUNT_RANGE,
    LINE_AMOUNT_ZERO,
    /// A normal or discounted line of a blue invoice has a negative amount.
    LINE_AMOUNT_NEGATIVE,
    /// |amount − quantity × unit price| exceeds the tolerance (0.01).
    LINE_AMOUNT_MISMATCH,
    /// A discount line is the first line.
    DISCOUNT_FIRST_LINE,
    /// A discount line does not follow a discounted line (被折扣行).
    DISCOUNT_NOT_AFTER_DISCOUNTED,
    /// A discounted line is not followed by its discount line (also: the last line is discounted).
    DISCOUNTED_WITHOUT_DISCOUNT,
    /// A discount line's item name, code or rate differs from its discounted line.
    DISCOUNT_ITEM_MISMATCH,
    /// A discount line of a blue invoice must be negative.
    DISCOUNT_AMOUNT_NOT_NEGATIVE,
    /// |discount| exceeds the discounted line's amount.
    DISCOUNT_EXCEEDS_DISCOUNTED,
    /// A discount line carries a quantity or unit price.
    DISCOUNT_HAS_QUANTITY,
    /// A total exceeds number(18,2).
    TOTAL_RANGE,
    /// The tax-inclusive total of a blue invoice is not positive.
    TOTAL_NOT_POSITIVE,
    /// Red-letter: no reason (冲红原因 01–04) was given.
    RED_REASON_REQUIRED,
    /// Red-letter: neither a full nor a partial reversal was asked for.
    RED_SCOPE_REQUIRED,
    /// Red-letter: the blue invoice has nothing left to reverse.
    RED_NOTHING_LEFT,
    /// Red-letter: the blue invoice number is not 20 digits.
    RED_BLUE_NUMBER_FORMAT,
    /// Red-letter: the invoice named is itself a red invoice.
    RED_BLUE_IS_RED,
    /// Red-letter: a partial reversal names no line.
    RED_LINES_REQUIRED,
    /// Red-letter: the line number is not a line of the blue invoice.
    RED_LINE_UNKNOWN,
    /// Red-letter: a discount line is reversed together with its discounted line, not alone.
    RED_LINE_IS_DISCOUNT,
    /// Red-letter: the same blue line is named twice.
    RED_LINE_DUPLICATE,
    /// Red-letter: neither an amount nor a quantity for a line.
    RED_AMOUNT_REQUIRED,
    RED_AMOUNT_FORMAT,
    RED_AMOUNT_PRECISION,
    RED_AMOUNT_RANGE,
    /// Red-letter: amounts and quantities to reverse are positive.
    RED_AMOUNT_NOT_POSITIVE,
    RED_QUANTITY_FORMAT,
    RED_QUANTITY_PRECISION,
    RED_QUANTITY_RANGE,
    RED_QUANTITY_NOT_POSITIVE,
    /// Red-letter: a quantity on a blue line that has none.
    RED_QUANTITY_WITHOUT_BLUE_QUANTITY,
    /// Red-letter: more than what remains of the blue line.
    RED_AMOUNT_EXCEEDS_REMAINING,
    RED_QUANTITY_EXCEEDS_REMAINING,
    /// A tax-inclusive line has no tax-exclusive unit price (at most 12 integer digits, 13
    /// decimals and 16 characters) with which quantity × price is within the tolerance (0.01) of
    /// its tax-exclusive amount: the quantity is so large that the last decimal of the price moves
    /// the product by more than a cent. A larger unit of measure makes the quantity smaller.
    LINE_UNIT_PRICE_UNREPRESENTABLE,
    /// A text field holds a control character other than tab and line breaks; neither the
    /// platform's XML nor the layout files can carry one, and some databases cannot store NUL.
    TEXT_CONTROL_CHARACTER,
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the field as the request names it: `buyer.tax_id`, `lines[2].tax_rate`.
    pub field: String,
    pub code: Code,
    /// For people, in Chinese.
    pub message: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, code: Code, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.code, self.message)
    }
}

/// Collects violations while a request is checked, so every problem is reported at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<Violation>);

impl Violations {
    pub fn push(&mut self, field: impl Into<String>, code: Code, message: impl Into<String>) {
        self.0.push(Violation::new(field, code, message));
    }

    /// Push the code `{prefix}_{suffix}`: lower modules report a suffix (`TAX_ID_CHECK_DIGIT`),
    /// the caller knows the field's role (`BUYER`). A unit test proves every pair in use is
    /// declared; should one be missed, the violation is still reported, as `INVALID_VALUE`.
    pub fn push_prefixed(&mut self, field: &str, prefix: &str, suffix: &str, message: String) {
        let code = Code::from_name(&format!("{prefix}_{suffix}"));
        debug_assert!(code.is_some(), "no violation code {prefix}_{suffix}");
        self.push(field, code.unwrap_or(Code::INVALID_VALUE), message);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn into_vec(self) -> Vec<Violation> {
        self.0
    }

    /// `Ok(value)` when nothing was collected.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<Violation>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_upper_snake() {
        let mut seen = HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{s} is not UPPER_SNAKE"
            );
        }
        assert_eq!(
            Code::BUYER_TAX_ID_CHECK_DIGIT.as_str(),
            "BUYER_TAX_ID_CHECK_DIGIT"
        );
    }

    #[test]
    fn finish_reports_everything_collected() {
        let mut v = Violations::default();
        assert_eq!(Violations::default().finish(1), Ok(1));
        v.push("a", Code::KIND_REQUIRED, "x");
        v.push("b", Code::DRAWER_REQUIRED, "y");
        let err = v.finish(()).unwrap_err();
        assert_eq!(err.len(), 2);
        assert_eq!(err[1].field, "b");
    }
}
