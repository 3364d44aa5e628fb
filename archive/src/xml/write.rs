//! Renders an [`Issued`] invoice as `EInvoice` XML.
//!
//! Owns the element order and the text of every leaf. No indentation and no attributes: the
//! output is one declaration line and one element, so the same invoice always gives the same
//! bytes. It must not write the `TaxBureauSignature`, which only the tax bureau can produce.

use std::fmt::Write as _;

use fapiao_invoice::model::{Colour, InvoiceKind, Party};
use fapiao_invoice::money::format_money;
use rust_decimal::Decimal;

use crate::Issued;

/// `Header/Version`.
const VERSION: &str = "0.32";
/// `SellerAuthentication/AuthenticationMethods`.
const AUTHENTICATION_METHOD: &str = "01";

/// The `EInvoice` XML of `issued`, UTF-8.
pub fn write(issued: &Issued<'_>) -> Vec<u8> {
    let content = issued.content;
    let mut x = Xml::with_capacity(2048 + 640 * content.lines.len());
    x.out
        .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.open("EInvoice");

    x.open("Header");
    x.leaf("EIid", &issued.number.to_string());
    x.leaf("EInvoiceTag", &issued.e_invoice_tag());
    x.leaf("Version", VERSION);
    x.open("InherentLabel");
    let blue = content.colour() == Colour::Blue;
    x.label(
        "InIssuType",
        if blue { "Y" } else { "N" },
        "是否蓝字发票标志",
    );
    x.label("EInvoiceType", "01", "电子发票");
    let kind_name = match content.kind {
        InvoiceKind::Special => "增值税专用发票",
        InvoiceKind::General => "普通发票",
    };
    x.label("GeneralOrSpecialVAT", content.kind.code(), kind_name);
    x.close("InherentLabel");
    x.open("UndefinedLabel");
    x.open("Label");
    x.leaf("LabelType", "发票开具方式");
    x.leaf("LabelCode", "5");
    x.leaf("LabelName", "自建平台开票");
    x.close("Label");
    x.close("UndefinedLabel");
    x.close("Header");

    x.open("EInvoiceData");
    x.party("Seller", &content.seller);
    x.party("Buyer", &content.buyer.party);

    x.open("BasicInformation");
    x.leaf("TotalAmWithoutTax", &format_money(content.totals.amount));
    x.leaf("TotalTaxAm", &format_money(content.totals.tax));
    x.leaf(
        "TotalTax-includedAmount",
        &format_money(content.totals.total),
    );
    x.leaf("TotalTax-includedAmountInChinese", &content.total_in_words);
    x.leaf("Drawer", &content.drawer);
    x.leaf(
        "RequestTime",
        &issued.issued_at.format("%Y-%m-%d %H:%M:%S").to_string(),
    );
    x.close("BasicInformation");

    for line in &content.lines {
        x.open("IssuItemInformation");
        x.leaf("ItemName", &line.printed_name);
        x.leaf("SpecMod", &line.specification);
        x.leaf("MeaUnits", &line.unit);
        x.leaf("Quantity", &plain(line.quantity));
        x.leaf("UnPrice", &plain(line.unit_price));
        x.leaf("Amount", &format_money(line.amount));
        x.leaf("TaxRate", &line.rate.xml_text());
        x.leaf("ComTaxAm", &format_money(line.tax));
        x.leaf("TotaltaxIncludedAmount", &format_money(line.total));
        x.leaf("TaxClassificationCode", line.tax_code.as_str());
        x.close("IssuItemInformation");
    }

    match &content.red {
        None => x.empty("SpecificInformation"),
        Some(red) => {
            x.open("SpecificInformation");
            x.open("RedEInvoice");
            x.leaf("OriginalInvoiceCode", &red.blue_number.to_string());
            x.leaf("CreditNoteNumber", &red.form_number);
            x.close("RedEInvoice");
            x.close("SpecificInformation");
        }
    }
    x.open("AdditionalInformation");
    x.leaf("Remark", &content.remark);
    x.close("AdditionalInformation");
    x.close("EInvoiceData");

    x.open("SellerAuthentication");
    x.leaf("AuthenticationMethods", AUTHENTICATION_METHOD);
    x.close("SellerAuthentication");

    x.open("TaxSupervisionInfo");
    x.leaf("InvoiceNumber", &issued.number.to_string());
    x.leaf(
        "IssueTime",
        &issued.issued_at.format("%Y-%m-%d").to_string(),
    );
    x.leaf("TaxBureauCode", &issued.tax_bureau_code());
    x.leaf("TaxBureauName", &issued.tax_bureau_name());
    x.close("TaxSupervisionInfo");

    x.close("EInvoice");
    x.out.push('\n');
    x.out.into_bytes()
}

/// A quantity or unit price without trailing zeros (`3`, `8850`, `0.5`); empty when absent.
fn plain(value: Option<Decimal>) -> String {
    value.map(|v| v.normalize().to_string()).unwrap_or_default()
}

/// The output buffer and the few shapes of element the file uses.
struct Xml {
    out: String,
}

impl Xml {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            out: String::with_capacity(capacity),
        }
    }

    fn open(&mut self, name: &str) {
        let _ = write!(self.out, "<{name}>");
    }

    fn close(&mut self, name: &str) {
        let _ = write!(self.out, "</{name}>");
    }

    fn empty(&mut self, name: &str) {
        let _ = write!(self.out, "<{name}/>");
    }

    /// `<name>text</name>`, also for empty text, so that every field is present in every file.
    fn leaf(&mut self, name: &str, text: &str) {
        self.open(name);
        escape_into(&mut self.out, text);
        self.close(name);
    }

    fn label(&mut self, name: &str, code: &str, label: &str) {
        self.open(name);
        self.leaf("LabelCode", code);
        self.leaf("LabelName", label);
        self.close(name);
    }

    /// `{Seller|Buyer}Information` with its six `{role}…` children.
    fn party(&mut self, role: &str, party: &Party) {
        let tax_id = party.tax_id.as_ref().map(|id| id.as_str()).unwrap_or("");
        let block = format!("{role}Information");
        self.open(&block);
        for (suffix, text) in [
            ("IdNum", tax_id),
            ("Name", party.name.as_str()),
            ("Addr", party.address.as_str()),
            ("TelNum", party.phone.as_str()),
            ("BankName", party.bank_name.as_str()),
            ("BankAccNum", party.bank_account.as_str()),
        ] {
            self.leaf(&format!("{role}{suffix}"), text);
        }
        self.close(&block);
    }
}

/// Appends `text` as XML character data.
///
/// `&`, `<` and `>` become entities; a carriage return becomes `&#13;` so that a reader's
/// line-end normalisation cannot turn it into a line feed. Characters XML 1.0 cannot carry at all
/// (other C0 controls, U+FFFE, U+FFFF) are dropped: validation keeps them out of invoices, and
/// the file must stay well-formed whatever it is given.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    fn written(content: &fapiao_invoice::model::InvoiceContent) -> String {
        let issued = Issued {
            number: sample::number(),
            issued_at: sample::issued_at(),
            content,
        };
        String::from_utf8(write(&issued)).unwrap()
    }

    #[test]
    fn escapes_markup_and_drops_what_xml_cannot_hold() {
        let mut out = String::new();
        escape_into(&mut out, "A&B <c> \"d\" 'e'\r\n\t\u{1}\u{FFFF}发票");
        assert_eq!(out, "A&amp;B &lt;c&gt; \"d\" 'e'&#13;\n\t发票");
    }

    #[test]
    fn writes_the_documented_layout() {
        let xml = written(&sample::blue());
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<EInvoice><Header>"));
        for needle in [
            "<EIid>25312000000000008848</EIid>",
            "<EInvoiceTag>SWEI3100</EInvoiceTag>",
            "<InIssuType><LabelCode>Y</LabelCode><LabelName>是否蓝字发票标志</LabelName></InIssuType>",
            "<GeneralOrSpecialVAT><LabelCode>01</LabelCode><LabelName>增值税专用发票</LabelName>",
            "<Quantity>3</Quantity><UnPrice>8850</UnPrice><Amount>26550.00</Amount>",
            "<Amount>26550.00</Amount><TaxRate>0.13</TaxRate>",
            "<TotaltaxIncludedAmount>",
            "<SpecificInformation/>",
            "<IssueTime>2025-03-07</IssueTime>",
            "<RequestTime>2025-03-07 14:05:09</RequestTime>",
            "<TaxBureauName>国家税务总局上海市税务局</TaxBureauName>",
        ] {
            assert!(xml.contains(needle), "{needle} not in {xml}");
        }
        assert_eq!(xml.matches("<IssuItemInformation>").count(), 4);
        assert!(!xml.contains("TaxBureauSignature"));
    }

    #[test]
    fn the_same_invoice_gives_the_same_bytes() {
        let content = sample::red();
        assert_eq!(written(&content), written(&content));
        assert!(written(&content).contains("<InIssuType><LabelCode>N</LabelCode>"));
    }
}
