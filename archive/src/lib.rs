//! Layout files and the archive.
//!
//! This crate renders the three layout files of an issued invoice — the 数电 `EInvoice` XML
//! ([`xml`]), the OFD package ([`ofd_write`]) and the PDF ([`pdf`]) — from one page layout
//! ([`layout`]) drawn with one bundled, subset-embedded font ([`font`]); it keeps them in a
//! write-once object store ([`store`]) and checks them again for auditors ([`check`]: presence,
//! SM3 digest, parsing and rendering, the integrity and usability parts of 四性检测).
//!
//! It never knows about gRPC or SQL: callers hand it an [`Issued`] invoice and get bytes, keys and
//! digests back. Rendering is deterministic: the same invoice always gives the same bytes, so a
//! retried archive write finds an identical object and succeeds.
//!
//! # Object keys
//!
//! Every file lives under
//! `{seller_tax_id}/{yyyy}/{mm}/{dd}/{invoice_number}/{invoice_number}.{xml|ofd|pdf}`, the date
//! being the Beijing issue date (see [`object_key`]). Keys are predictable so that an operator can
//! find a file with nothing but the invoice, and so that one seller's or one day's files can be
//! listed, copied or put under a retention rule by prefix.

pub mod check;
pub mod font;
pub mod layout;
pub mod ofd_read;
pub mod ofd_write;
pub mod pdf;
pub mod pdf_check;
pub mod sample;
pub mod store;
pub mod xml;

use chrono::{Datelike, NaiveDateTime};
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::number::InvoiceNumber;

/// An issued invoice: everything a layout file shows.
#[derive(Debug, Clone, Copy)]
pub struct Issued<'a> {
    pub number: InvoiceNumber,
    /// 开票时间 in Beijing time (the XML's `RequestTime`; its date is `IssueTime`).
    pub issued_at: NaiveDateTime,
    pub content: &'a InvoiceContent,
}

impl Issued<'_> {
    /// 税务机关代码: `1` + the number's two-digit region + `00000000` (e.g. `14400000000` for 广东).
    pub fn tax_bureau_code(&self) -> String {
        format!("1{:02}00000000", self.number.region())
    }

    /// 税务机关名称, e.g. `国家税务总局广东省税务局`; the bare prefix for an unknown region.
    pub fn tax_bureau_name(&self) -> String {
        match self.number.region_name() {
            Some(name) => format!("国家税务总局{}{}税务局", name, region_suffix(name)),
            None => "国家税务总局".to_owned(),
        }
    }

    /// `EInvoiceTag`: `SWEI` + region + `00` (e.g. `SWEI3300`).
    pub fn e_invoice_tag(&self) -> String {
        format!("SWEI{:02}00", self.number.region())
    }
}

/// 省, 市 or 自治区 after a region's short name.
fn region_suffix(name: &str) -> &'static str {
    match name {
        "北京" | "天津" | "上海" | "重庆" => "市",
        "内蒙古" | "广西" | "西藏" | "宁夏" | "新疆" => "自治区",
        "香港" | "澳门" => "特别行政区",
        _ => "省",
    }
}

/// The three layout files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Xml,
    Ofd,
    Pdf,
}

impl Format {
    /// Every format, in the order files are written and reported.
    pub const ALL: [Format; 3] = [Format::Xml, Format::Ofd, Format::Pdf];

    /// File extension, also the stored spelling: `xml`, `ofd`, `pdf`.
    pub fn extension(&self) -> &'static str {
        match self {
            Self::Xml => "xml",
            Self::Ofd => "ofd",
            Self::Pdf => "pdf",
        }
    }

    /// MIME type of the file.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Xml => "application/xml",
            Self::Ofd => "application/ofd",
            Self::Pdf => "application/pdf",
        }
    }

    /// The format with this extension (case-insensitive).
    pub fn from_extension(text: &str) -> Option<Format> {
        Self::ALL
            .into_iter()
            .find(|f| f.extension().eq_ignore_ascii_case(text))
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.extension())
    }
}

/// The object key of one file: `{seller}/{yyyy}/{mm}/{dd}/{number}/{number}.{ext}`.
pub fn object_key(
    seller_tax_id: &str,
    issued_at: NaiveDateTime,
    number: &InvoiceNumber,
    format: Format,
) -> String {
    format!(
        "{seller_tax_id}/{:04}/{:02}/{:02}/{number}/{number}.{}",
        issued_at.year(),
        issued_at.month(),
        issued_at.day(),
        format.extension()
    )
}

/// The three layout files of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub xml: Vec<u8>,
    pub ofd: Vec<u8>,
    pub pdf: Vec<u8>,
}

impl Rendered {
    /// The files with their formats, in [`Format::ALL`] order.
    pub fn into_files(self) -> [(Format, Vec<u8>); 3] {
        [
            (Format::Xml, self.xml),
            (Format::Ofd, self.ofd),
            (Format::Pdf, self.pdf),
        ]
    }
}

/// Render an invoice's XML, its OFD (which carries that XML as an attachment) and its PDF.
pub fn render(issued: &Issued<'_>) -> Rendered {
    let xml = xml::write(issued);
    let ofd = ofd_write::write(issued, &xml);
    let pdf = pdf::write(issued);
    Rendered { xml, ofd, pdf }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let number = InvoiceNumber::new(25, 31, 2, 123).unwrap();
        let at = chrono::NaiveDate::from_ymd_opt(2025, 3, 7)
            .unwrap()
            .and_hms_opt(23, 59, 1)
            .unwrap();
        assert_eq!(
            object_key("91310000MA1FP00011", at, &number, Format::Pdf),
            format!("91310000MA1FP00011/2025/03/07/{number}/{number}.pdf")
        );
        assert_eq!(Format::from_extension("OFD"), Some(Format::Ofd));
        assert_eq!(Format::from_extension("doc"), None);
    }

    #[test]
    fn the_tax_bureau_follows_the_region() {
        let content = sample::blue();
        let issued = Issued {
            number: InvoiceNumber::new(25, 44, 2, 1).unwrap(),
            issued_at: sample::issued_at(),
            content: &content,
        };
        assert_eq!(issued.tax_bureau_code(), "14400000000");
        assert_eq!(issued.tax_bureau_name(), "国家税务总局广东省税务局");
        assert_eq!(issued.e_invoice_tag(), "SWEI4400");
    }

    #[test]
    fn rendering_is_deterministic_and_the_ofd_carries_the_xml() {
        for content in [sample::blue(), sample::red(), sample::to_person()] {
            let issued = Issued {
                number: sample::number(),
                issued_at: sample::issued_at(),
                content: &content,
            };
            let first = render(&issued);
            assert_eq!(first, render(&issued), "same invoice, same bytes");
            let read = ofd_read::read(&first.ofd).unwrap();
            assert_eq!(read.xml.as_deref(), Some(&first.xml[..]));
            assert!(first.pdf.starts_with(b"%PDF-"));
        }
    }
}
