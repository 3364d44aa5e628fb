//! The 数电 (fully digitalized e-invoice) domain: everything about an invoice that can be decided
//! without I/O.
//!
//! It owns money and rounding ([`money`]), rates ([`rate`]) and the tax classification catalog
//! ([`catalog`]), taxpayer ids ([`taxpayer`]), the 20-digit invoice number ([`number`]), amounts in
//! Chinese capitals ([`capitals`]), the invoice model ([`model`]), line computation ([`compute`]),
//! validation that reports every violation at once ([`validate`], [`violation`]) and red-letter
//! arithmetic ([`redletter`]).
//!
//! It must never do I/O or depend on tonic, sqlx, object_store or reqwest: the catalog is parsed from
//! text that the caller loads, and time comes in as values.

/// Serde for a value whose wire and storage form is its text: written with `$to_text`, read back
/// through `$parse`, so stored data re-runs the checks a request gets and cannot smuggle in an
/// invalid value. The error names the problem, not the text, which may be personal data.
macro_rules! serde_as_text {
    ($ty:ty, $to_text:expr, $parse:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&$to_text(self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text =
                    <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                $parse(&*text).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod capitals;
pub mod catalog;
pub mod compute;
pub mod limits;
pub mod model;
pub mod money;
pub mod number;
pub mod rate;
pub mod redletter;
pub mod taxpayer;
pub mod validate;
pub mod violation;
