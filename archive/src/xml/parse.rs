//! Reads an `EInvoice` file into a [`ParsedInvoice`].
//!
//! Owns the tolerance for real platform files: elements are matched by local name (so a default
//! namespace or a prefix does not matter), text is trimmed, `xsi:nil` and empty elements read as
//! absent, lines are found however they are wrapped, and rates, times and capitals are read in
//! every spelling seen. It must not judge whether the values are consistent with each other, only
//! whether each can be read; and it never panics, whatever the bytes.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use fapiao_invoice::capitals::parse_capitals;
use fapiao_invoice::model::{Colour, InvoiceKind};
use fapiao_invoice::number::InvoiceNumber;
use fapiao_invoice::rate::{TaxRate, TaxRateError};
use roxmltree::{Document, Node};
use rust_decimal::Decimal;

use super::{
    BasicInfo, BureauSignature, Header, ItemLine, Label, ParsedInvoice, PartyInfo, RedInfo,
    TaxSupervision, XmlError,
};

/// The largest file read. A real invoice XML is a few kilobytes, one with a thousand lines about
/// a megabyte; the cap bounds the work a hostile file can cause.
pub const MAX_XML_BYTES: usize = 16 * 1024 * 1024;

/// Parse an `EInvoice` file.
///
/// Required: the `EInvoice` root, `TaxSupervisionInfo/InvoiceNumber` and `IssueTime`, the
/// seller's id and name, the buyer's name, the three totals, and at least one line with its
/// amount, rate and tax. Everything else may be missing. A present value that cannot be read (an
/// amount `12,00`, a number of 19 digits) is an error naming its element.
pub fn parse(bytes: &[u8]) -> Result<ParsedInvoice, XmlError> {
    if bytes.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge {
            limit: MAX_XML_BYTES,
        });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::Encoding)?;
    // Default options refuse a DTD, so no entity expansion can blow the document up.
    let doc = Document::parse(text).map_err(|e| XmlError::Malformed(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "EInvoice" {
        return Err(XmlError::Root(root.tag_name().name().to_owned()));
    }
    let p = Place::from(root);
    let data = p.child("EInvoiceData");
    Ok(ParsedInvoice {
        header: header(p.child("Header")),
        seller: party(data.child("SellerInformation"), "Seller", true)?,
        buyer: party(data.child("BuyerInformation"), "Buyer", false)?,
        basic: basic(data.child("BasicInformation"))?,
        lines: lines(data)?,
        red: red(data.child("SpecificInformation")),
        remark: data.child("AdditionalInformation").text("Remark"),
        authentication_method: p
            .child("SellerAuthentication")
            .text("AuthenticationMethods"),
        supervision: supervision(p.child("TaxSupervisionInfo"))?,
        signature: signature(root),
    })
}

fn header(h: Place<'_, '_>) -> Header {
    let labels = h.child("InherentLabel");
    let colour = match labels.child("InIssuType").text("LabelCode").as_str() {
        "Y" | "y" => Some(Colour::Blue),
        "N" | "n" => Some(Colour::Red),
        _ => None,
    };
    let vat = labels.child("GeneralOrSpecialVAT");
    let kind = match vat.text("LabelCode").as_str() {
        "01" => Some(InvoiceKind::Special),
        "02" => Some(InvoiceKind::General),
        _ => None,
    };
    Header {
        eiid: h.text("EIid"),
        e_invoice_tag: h.text("EInvoiceTag"),
        version: h.text("Version"),
        colour,
        invoice_type_code: labels.child("EInvoiceType").text("LabelCode"),
        kind,
        kind_name: vat.text("LabelName"),
        labels: h
            .child("UndefinedLabel")
            .children("Label")
            .map(|l| Label {
                label_type: l.text("LabelType"),
                code: l.text("LabelCode"),
                name: l.text("LabelName"),
            })
            .collect(),
    }
}

fn party(block: Place<'_, '_>, role: &str, is_seller: bool) -> Result<PartyInfo, XmlError> {
    let field = |suffix: &str| block.text(&format!("{role}{suffix}"));
    let info = PartyInfo {
        id_num: field("IdNum"),
        name: field("Name"),
        address: field("Addr"),
        phone: field("TelNum"),
        bank_name: field("BankName"),
        bank_account: field("BankAccNum"),
    };
    let block_path = format!("EInvoiceData/{role}Information");
    if info.name.is_empty() {
        return Err(XmlError::Missing(format!("{block_path}/{role}Name")));
    }
    if is_seller && info.id_num.is_empty() {
        return Err(XmlError::Missing(format!("{block_path}/{role}IdNum")));
    }
    Ok(info)
}

fn basic(b: Place<'_, '_>) -> Result<BasicInfo, XmlError> {
    const PATH: &str = "EInvoiceData/BasicInformation";
    let total_in_words = b.text("TotalTax-includedAmountInChinese");
    let request_time = b.text("RequestTime");
    Ok(BasicInfo {
        total_amount: required_amount(b, PATH, "TotalAmWithoutTax")?,
        total_tax: required_amount(b, PATH, "TotalTaxAm")?,
        total_with_tax: required_amount(b, PATH, "TotalTax-includedAmount")?,
        total_in_words_amount: parse_capitals(&total_in_words),
        total_in_words,
        drawer: b.text("Drawer"),
        request_time: if request_time.is_empty() {
            None
        } else {
            let (date, time) = date_time(&request_time)
                .ok_or_else(|| invalid(&format!("{PATH}/RequestTime"), "time", &request_time))?;
            Some(date.and_time(time.unwrap_or(NaiveTime::MIN)))
        },
    })
}

/// Every `IssuItemInformation` under `EInvoiceData`, at any depth: the platform writes them as
/// siblings, but a wrapper element (as some exporters add) must not hide them.
fn lines(data: Place<'_, '_>) -> Result<Vec<ItemLine>, XmlError> {
    let Some(node) = data.0 else {
        return Err(XmlError::Missing("EInvoiceData".to_owned()));
    };
    let lines: Vec<ItemLine> = node
        .descendants()
        .filter(|n| is_named(n, "IssuItemInformation"))
        .enumerate()
        .map(|(i, n)| line(Place(Some(n)), i + 1))
        .collect::<Result<_, _>>()?;
    if lines.is_empty() {
        return Err(XmlError::NoLines);
    }
    Ok(lines)
}

fn line(l: Place<'_, '_>, index: usize) -> Result<ItemLine, XmlError> {
    let path = format!("EInvoiceData/IssuItemInformation[{index}]");
    let rate_text = l.text("TaxRate");
    Ok(ItemLine {
        item_name: l.text("ItemName"),
        specification: l.text("SpecMod"),
        unit: l.text("MeaUnits"),
        quantity: optional_decimal(l, &path, "Quantity")?,
        unit_price: optional_decimal(l, &path, "UnPrice")?,
        amount: required_amount(l, &path, "Amount")?,
        rate: rate(&rate_text).map_err(|missing| {
            let at = format!("{path}/TaxRate");
            if missing {
                XmlError::Missing(at)
            } else {
                invalid(&at, "tax rate", &rate_text)
            }
        })?,
        tax: required_amount(l, &path, "ComTaxAm")?,
        total: optional_decimal(l, &path, "TotaltaxIncludedAmount")?,
        tax_code: l.text("TaxClassificationCode"),
    })
}

/// A rate in any spelling; a well-formed fraction in [0, 1) or percentage in [0, 100) that is not
/// in force today is kept as is. `Err(true)` when empty, `Err(false)` when unreadable.
fn rate(text: &str) -> Result<TaxRate, bool> {
    match TaxRate::parse(text) {
        Ok(rate) => Ok(rate),
        Err(TaxRateError::Empty) => Err(true),
        Err(TaxRateError::Format) => Err(false),
        Err(TaxRateError::Unknown) => {
            let trimmed = text.trim();
            let (number, scale) = match trimmed
                .strip_suffix('%')
                .or_else(|| trimmed.strip_suffix('％'))
            {
                Some(n) => (n.trim_end(), Decimal::ONE_HUNDRED),
                None => (trimmed, Decimal::ONE),
            };
            let value = decimal(number)
                .and_then(|d| d.checked_div(scale))
                .ok_or(false)?;
            if value.is_sign_negative() || value >= Decimal::ONE {
                return Err(false);
            }
            Ok(TaxRate::Percent(value.normalize()))
        }
    }
}

fn red(specific: Place<'_, '_>) -> Option<RedInfo> {
    let r = specific.child("RedEInvoice");
    r.0?;
    Some(RedInfo {
        original_invoice_code: r.text("OriginalInvoiceCode"),
        original_invoice_number: r.text("OriginalInvoiceNumber"),
        form_number: r.text("CreditNoteNumber"),
    })
}

fn supervision(s: Place<'_, '_>) -> Result<TaxSupervision, XmlError> {
    const PATH: &str = "TaxSupervisionInfo";
    let number_text = s.text("InvoiceNumber");
    if number_text.is_empty() {
        return Err(XmlError::Missing(format!("{PATH}/InvoiceNumber")));
    }
    let invoice_number: InvoiceNumber = number_text.parse().map_err(|_| {
        invalid(
            &format!("{PATH}/InvoiceNumber"),
            "20-digit invoice number",
            &number_text,
        )
    })?;
    let issue_text = s.text("IssueTime");
    if issue_text.is_empty() {
        return Err(XmlError::Missing(format!("{PATH}/IssueTime")));
    }
    let (issue_date, issue_time) = date_time(&issue_text)
        .ok_or_else(|| invalid(&format!("{PATH}/IssueTime"), "date", &issue_text))?;
    Ok(TaxSupervision {
        invoice_number,
        issue_date,
        issue_time,
        tax_bureau_code: s.text("TaxBureauCode"),
        tax_bureau_name: s.text("TaxBureauName"),
    })
}

/// `TaxBureauSignature`, wherever it sits below the root, its parts found at any depth because
/// signature blocks nest them differently.
fn signature(root: Node<'_, '_>) -> Option<BureauSignature> {
    let sig = root
        .descendants()
        .find(|n| is_named(n, "TaxBureauSignature"))?;
    let find = |name: &str| sig.descendants().find(|n| is_named(n, name));
    let text = |name: &str| find(name).map(element_text).unwrap_or_default();
    Some(BureauSignature {
        reference_uri: find("Reference")
            .and_then(|r| r.attribute("URI"))
            .unwrap_or("")
            .trim()
            .to_owned(),
        algorithm: text("SignatureAlgorithm"),
        format: text("SignatureFormat"),
        time: text("SignatureTime"),
        value: text("SignatureValue"),
        key_info: find("KeyInfo").is_some(),
    })
}

fn required_amount(p: Place<'_, '_>, path: &str, name: &str) -> Result<Decimal, XmlError> {
    optional_decimal(p, path, name)?.ok_or_else(|| XmlError::Missing(format!("{path}/{name}")))
}

fn optional_decimal(p: Place<'_, '_>, path: &str, name: &str) -> Result<Option<Decimal>, XmlError> {
    let text = p.text(name);
    if text.is_empty() {
        return Ok(None);
    }
    decimal(&text)
        .map(Some)
        .ok_or_else(|| invalid(&format!("{path}/{name}"), "decimal number", &text))
}

/// `-?digits(.digits)?` (a leading `+` allowed), never an exponent, separator or float.
/// `Decimal::from_str` alone would accept `1_000`, which no invoice means.
pub(crate) fn decimal(text: &str) -> Option<Decimal> {
    let body = text
        .strip_prefix('-')
        .or_else(|| text.strip_prefix('+'))
        .unwrap_or(text);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    let value: Decimal = body.parse().ok()?;
    Some(if text.starts_with('-') { -value } else { value })
}

/// A date with an optional time: `2025-03-07`, `2025-03-07 14:05:09`, `2025-03-07T14:05:09`
/// (fractions of a second allowed), `20250307`, `2025年03月07日`.
fn date_time(text: &str) -> Option<(NaiveDate, Option<NaiveTime>)> {
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y%m%d%H%M%S",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Some((at.date(), Some(at.time())));
        }
    }
    for format in ["%Y-%m-%d", "%Y%m%d", "%Y年%m月%d日", "%Y/%m/%d"] {
        if let Ok(date) = NaiveDate::parse_from_str(text, format) {
            return Some((date, None));
        }
    }
    None
}

fn invalid(path: &str, expected: &'static str, text: &str) -> XmlError {
    // Only the start of the offending text: enough to recognise it, not a whole copied field.
    XmlError::Invalid {
        path: path.to_owned(),
        expected,
        text: text.chars().take(40).collect(),
    }
}

fn is_named(node: &Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name
}

/// `xsi:nil="true"` (any prefix bound to any namespace: files disagree on the URI).
fn is_nil(node: &Node<'_, '_>) -> bool {
    node.attributes()
        .any(|a| a.name() == "nil" && matches!(a.value().trim(), "true" | "1"))
}

/// The trimmed character data directly inside `node`; empty when it is nil.
fn element_text(node: Node<'_, '_>) -> String {
    if is_nil(&node) {
        return String::new();
    }
    let mut text = String::new();
    for child in node.children().filter(Node::is_text) {
        text.push_str(child.text().unwrap_or(""));
    }
    text.trim().to_owned()
}

/// A place in the document that may not exist, so that optional blocks read as empty without an
/// `Option` check at every step.
#[derive(Clone, Copy)]
struct Place<'a, 'input>(Option<Node<'a, 'input>>);

impl<'a, 'input> Place<'a, 'input> {
    fn child(self, name: &str) -> Self {
        Self(
            self.0
                .and_then(|n| n.children().find(|c| is_named(c, name))),
        )
    }

    fn children(self, name: &'a str) -> impl Iterator<Item = Place<'a, 'input>> + 'a {
        self.0
            .into_iter()
            .flat_map(|n| n.children())
            .filter(move |c| is_named(c, name))
            .map(|n| Place(Some(n)))
    }

    fn text(self, name: &str) -> String {
        self.child(name).0.map(element_text).unwrap_or_default()
    }
}

impl<'a, 'input> From<Node<'a, 'input>> for Place<'a, 'input> {
    fn from(node: Node<'a, 'input>) -> Self {
        Self(Some(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn decimals_are_plain_numbers_only() {
        assert_eq!(decimal("12.50"), Some(d("12.50")));
        assert_eq!(decimal("-0.05"), Some(d("-0.05")));
        assert_eq!(decimal("+3"), Some(d("3")));
        for bad in [
            "", "-", "1_000", "1e3", "12,00", ".5", "5.", "NaN", "--1", "１２",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rates_in_every_spelling() {
        assert_eq!(rate("0.06"), Ok(TaxRate::REDUCED_6));
        assert_eq!(rate("0.130000"), Ok(TaxRate::GENERAL));
        assert_eq!(rate("6%"), Ok(TaxRate::REDUCED_6));
        assert_eq!(rate("免税"), Ok(TaxRate::Exempt));
        assert_eq!(rate("0.16"), Ok(TaxRate::Percent(d("0.16"))));
        assert_eq!(rate("17%"), Ok(TaxRate::Percent(d("0.17"))));
        assert_eq!(rate(""), Err(true));
        assert_eq!(rate("13"), Err(false));
        assert_eq!(rate("-0.13"), Err(false));
        assert_eq!(rate("abc"), Err(false));
    }

    #[test]
    fn dates_with_and_without_a_time() {
        let d = NaiveDate::from_ymd_opt(2025, 3, 7).unwrap();
        let t = NaiveTime::from_hms_opt(14, 5, 9);
        assert_eq!(date_time("2025-03-07"), Some((d, None)));
        assert_eq!(date_time("2025-03-07 14:05:09"), Some((d, t)));
        assert_eq!(date_time("2025-03-07T14:05:09"), Some((d, t)));
        assert_eq!(date_time("20250307140509"), Some((d, t)));
        assert_eq!(date_time("2025年03月07日"), Some((d, None)));
        assert_eq!(date_time("2025-03-07 14:05:09.250").map(|x| x.0), Some(d));
        assert_eq!(date_time("07/03/2025"), None);
        assert_eq!(date_time("2025-02-30"), None);
    }

    #[test]
    fn errors_name_the_element() {
        let err = crate::xml::parse(b"<EInvoice><EInvoiceData/></EInvoice>").unwrap_err();
        assert_eq!(
            err,
            XmlError::Missing("EInvoiceData/SellerInformation/SellerName".into())
        );
        assert!(matches!(
            crate::xml::parse(b"<Invoice/>"),
            Err(XmlError::Root(r)) if r == "Invoice"
        ));
        assert!(matches!(
            crate::xml::parse(b"<EInvoice>"),
            Err(XmlError::Malformed(_))
        ));
        assert_eq!(crate::xml::parse(b"\xff\xfe<"), Err(XmlError::Encoding));
        let dtd = b"<?xml version=\"1.0\"?><!DOCTYPE EInvoice [<!ENTITY a \"aaaa\">]><EInvoice/>";
        assert!(matches!(
            crate::xml::parse(dtd),
            Err(XmlError::Malformed(_))
        ));
    }
}
