//! The OFD layout file of an issued invoice (GB/T 33190): a ZIP package with the document
//! description, the [`crate::layout`] template and pages as text and path objects, the embedded
//! font subset, the invoice XML as an attachment and custom tags binding XML elements to the text
//! objects that show them.
//!
//! The package structure is a contract with [`crate::ofd_read`]: `OFD.xml` (doc info and custom
//! data), `Doc_0/Document.xml`, `Doc_0/PublicRes.xml` + `Doc_0/Res/font_<ID>.ttf`,
//! `Doc_0/Tpls/Tpl_0/Content.xml`, `Doc_0/Pages/Page_N/Content.xml`, `Doc_0/Attachs/…` and
//! `Doc_0/Tags/…`, every element in the `ofd:` namespace, units in millimetres.
//!
//! Ids: 1 is the font, 2 the template page, then the template's objects, the pages, their objects
//! and the attachment; `MaxUnitID` is the last. Output is deterministic: one ZIP timestamp (the
//! issue time), fixed entry order, `DocID` from the SM3 digest of the invoice number. It must not
//! lay anything out itself and never panics on invoice content.

mod content;
mod package;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::LazyLock;

use fapiao_invoice::model::InvoiceKind;

use crate::Issued;
use crate::font::{self, Deflated};
use crate::layout::{self, Tag};
use content::{NS, escape};
use package::{Data, Package};

const FONT_ID: u32 = 1;
const TEMPLATE_ID: u32 = 2;
const XML_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// The template page of a kind, written and compressed once: its ids are fixed (they follow the
/// font and the template page).
struct TemplateEntry {
    compressed: Deflated,
    size: usize,
    /// The next free id after the template's objects.
    next_id: u32,
}

fn template_entry(kind: InvoiceKind) -> &'static TemplateEntry {
    fn build(kind: InvoiceKind) -> TemplateEntry {
        let mut next_id = TEMPLATE_ID + 1;
        let (xml, _) = content::page(&layout::template(kind).layer, FONT_ID, None, &mut next_id);
        TemplateEntry {
            compressed: font::deflate(xml.as_bytes()),
            size: xml.len(),
            next_id,
        }
    }
    static SPECIAL: LazyLock<TemplateEntry> = LazyLock::new(|| build(InvoiceKind::Special));
    static GENERAL: LazyLock<TemplateEntry> = LazyLock::new(|| build(InvoiceKind::General));
    match kind {
        InvoiceKind::Special => &SPECIAL,
        InvoiceKind::General => &GENERAL,
    }
}

/// Render the OFD package of `issued`; `xml` is its EInvoice XML, attached byte for byte.
pub fn write(issued: &Issued<'_>, xml: &[u8]) -> Vec<u8> {
    let layout = layout::shared(issued);
    let subset = font::subset(&layout.template.chars, layout.chars());
    let number = issued.number.to_string();
    let template = template_entry(issued.content.kind);

    // Pages: ids, content files, and where each tagged value went.
    let mut next_id = template.next_id;
    let page_ids: Vec<u32> = layout
        .pages
        .iter()
        .map(|_| {
            next_id += 1;
            next_id - 1
        })
        .collect();
    let mut pages = Vec::with_capacity(layout.pages.len());
    let mut refs: BTreeMap<Tag, Vec<(u32, u32)>> = BTreeMap::new();
    for (layer, page_id) in layout.pages.iter().zip(&page_ids) {
        let (xml, ids) = content::page(layer, FONT_ID, Some(TEMPLATE_ID), &mut next_id);
        for (run, id) in layer.texts.iter().zip(ids) {
            if let Some(tag) = run.tag {
                refs.entry(tag).or_default().push((*page_id, id));
            }
        }
        pages.push(xml);
    }
    let attachment_id = next_id;

    let mut zip = Package::new(issued.issued_at, 64 * 1024);
    zip.add("OFD.xml", ofd_xml(issued, &number).as_bytes());
    zip.add(
        "Doc_0/Document.xml",
        document_xml(attachment_id, &page_ids).as_bytes(),
    );
    zip.add("Doc_0/PublicRes.xml", public_res_xml().as_bytes());
    zip.add_data(
        &format!("Doc_0/Res/font_{FONT_ID}.ttf"),
        Data::deflated(subset.deflated(), subset.data().len()),
    );
    zip.add_data(
        "Doc_0/Tpls/Tpl_0/Content.xml",
        Data::deflated(&template.compressed, template.size),
    );
    for (i, page) in pages.iter().enumerate() {
        zip.add(
            &format!("Doc_0/Pages/Page_{i}/Content.xml"),
            page.as_bytes(),
        );
    }
    zip.add(
        "Doc_0/Attachs/Attachments.xml",
        attachments_xml(issued, attachment_id, &number).as_bytes(),
    );
    zip.add(&format!("Doc_0/Attachs/{number}.xml"), xml);
    zip.add("Doc_0/Tags/CustomTags.xml", custom_tags_xml().as_bytes());
    zip.add("Doc_0/Tags/CustomTag.xml", custom_tag_xml(&refs).as_bytes());
    zip.finish()
}

/// `DocID`: the first 16 bytes of the SM3 digest of the invoice number, in lowercase hex.
fn doc_id(number: &str) -> String {
    use sm3::Digest;
    let digest = sm3::Sm3::digest(number.as_bytes());
    let mut out = String::with_capacity(32);
    for b in digest.iter().take(16) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn ofd_xml(issued: &Issued<'_>, number: &str) -> String {
    let content = issued.content;
    let totals = &content.totals;
    let id_of = |id: Option<&fapiao_invoice::taxpayer::TaxpayerId>| {
        id.map(|id| id.as_str().to_owned()).unwrap_or_default()
    };
    let datas: [(&str, String); 9] = [
        ("发票号码", number.to_owned()),
        (
            "开票日期",
            issued.issued_at.format("%Y年%m月%d日").to_string(),
        ),
        ("合计金额", layout::money(totals.amount)),
        ("合计税额", layout::money(totals.tax)),
        ("价税合计", layout::money(totals.total)),
        ("购买方名称", content.buyer.party.name.clone()),
        (
            "购买方纳税人识别号",
            id_of(content.buyer.party.tax_id.as_ref()),
        ),
        ("销售方名称", content.seller.name.clone()),
        ("销售方纳税人识别号", id_of(content.seller.tax_id.as_ref())),
    ];
    let mut out = String::with_capacity(2048);
    out.push_str(XML_HEAD);
    let _ = write!(
        out,
        "<ofd:OFD xmlns:ofd=\"{NS}\" Version=\"1.1\" DocType=\"OFD\"><ofd:DocBody><ofd:DocInfo>\
         <ofd:DocID>{}</ofd:DocID><ofd:Title>",
        doc_id(number)
    );
    escape(&mut out, content.kind.title_zh());
    let _ = write!(
        out,
        "</ofd:Title><ofd:CreationDate>{}</ofd:CreationDate><ofd:Creator>fapiao</ofd:Creator>\
         <ofd:CreatorVersion>{}</ofd:CreatorVersion><ofd:CustomDatas>",
        issued.issued_at.format("%Y-%m-%d"),
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in datas {
        let _ = write!(out, "<ofd:CustomData Name=\"{name}\">");
        escape(&mut out, &value);
        out.push_str("</ofd:CustomData>");
    }
    out.push_str(
        "</ofd:CustomDatas></ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot>\
         </ofd:DocBody></ofd:OFD>",
    );
    out
}

fn document_xml(max_id: u32, page_ids: &[u32]) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str(XML_HEAD);
    let _ = write!(
        out,
        "<ofd:Document xmlns:ofd=\"{NS}\"><ofd:CommonData><ofd:MaxUnitID>{max_id}</ofd:MaxUnitID>\
         <ofd:PageArea><ofd:PhysicalBox>0 0 210 140</ofd:PhysicalBox></ofd:PageArea>\
         <ofd:PublicRes>PublicRes.xml</ofd:PublicRes>\
         <ofd:TemplatePage ID=\"{TEMPLATE_ID}\" BaseLoc=\"Tpls/Tpl_0/Content.xml\"/>\
         </ofd:CommonData><ofd:Pages>"
    );
    for (i, id) in page_ids.iter().enumerate() {
        let _ = write!(
            out,
            "<ofd:Page ID=\"{id}\" BaseLoc=\"Pages/Page_{i}/Content.xml\"/>"
        );
    }
    out.push_str(
        "</ofd:Pages><ofd:Attachments>Attachs/Attachments.xml</ofd:Attachments>\
         <ofd:CustomTags>Tags/CustomTags.xml</ofd:CustomTags></ofd:Document>",
    );
    out
}

fn public_res_xml() -> String {
    format!(
        "{XML_HEAD}<ofd:Res xmlns:ofd=\"{NS}\" BaseLoc=\"Res\"><ofd:Fonts>\
         <ofd:Font ID=\"{FONT_ID}\" FontName=\"{}\" FamilyName=\"{}\">\
         <ofd:FontFile>font_{FONT_ID}.ttf</ofd:FontFile></ofd:Font></ofd:Fonts></ofd:Res>",
        font::POSTSCRIPT_NAME,
        font::FAMILY_NAME
    )
}

fn attachments_xml(issued: &Issued<'_>, id: u32, number: &str) -> String {
    format!(
        "{XML_HEAD}<ofd:Attachments xmlns:ofd=\"{NS}\">\
         <ofd:Attachment ID=\"{id}\" Name=\"{number}.xml\" Format=\"xml\" CreationDate=\"{}\" \
         Visible=\"false\"><ofd:FileLoc>{number}.xml</ofd:FileLoc></ofd:Attachment>\
         </ofd:Attachments>",
        issued.issued_at.format("%Y-%m-%d")
    )
}

fn custom_tags_xml() -> String {
    format!(
        "{XML_HEAD}<ofd:CustomTags xmlns:ofd=\"{NS}\">\
         <ofd:CustomTag NameSpace=\"urn:fapiao:einvoice\" TypeID=\"EInvoice\">\
         <ofd:FileLoc>CustomTag.xml</ofd:FileLoc></ofd:CustomTag></ofd:CustomTags>"
    )
}

/// Invoice-level tagged elements, in the order of the EInvoice XML.
const TAGGED: [&str; 12] = [
    "EInvoiceData/SellerInformation/SellerIdNum",
    "EInvoiceData/SellerInformation/SellerName",
    "EInvoiceData/BuyerInformation/BuyerIdNum",
    "EInvoiceData/BuyerInformation/BuyerName",
    "EInvoiceData/BasicInformation/TotalAmWithoutTax",
    "EInvoiceData/BasicInformation/TotalTaxAm",
    "EInvoiceData/BasicInformation/TotalTax-includedAmount",
    "EInvoiceData/BasicInformation/TotalTax-includedAmountInChinese",
    "EInvoiceData/BasicInformation/Drawer",
    "EInvoiceData/AdditionalInformation/Remark",
    "TaxSupervisionInfo/InvoiceNumber",
    "TaxSupervisionInfo/IssueTime",
];

/// Writes nested elements from a sequence of paths, opening and closing only what changes.
struct Nest {
    out: String,
    /// Open elements with the item index that tells repeated `IssuItemInformation`s apart.
    open: Vec<(&'static str, Option<usize>)>,
}

impl Nest {
    fn leaf(&mut self, path: &'static str, item: Option<usize>, refs: &[(u32, u32)]) {
        let mut segments: Vec<(&'static str, Option<usize>)> = path
            .split('/')
            .map(|name| (name, item.filter(|_| name == "IssuItemInformation")))
            .collect();
        let Some((leaf, _)) = segments.pop() else {
            return;
        };
        let shared = self
            .open
            .iter()
            .zip(&segments)
            .take_while(|(a, b)| a == b)
            .count();
        self.close_to(shared);
        for segment in &segments[shared..] {
            self.out.push('<');
            self.out.push_str(segment.0);
            self.out.push('>');
            self.open.push(*segment);
        }
        let _ = write!(self.out, "<{leaf}>");
        for (page, object) in refs {
            self.out.push_str("<ofd:ObjectRef PageRef=\"");
            content::int(&mut self.out, *page);
            self.out.push_str("\">");
            content::int(&mut self.out, *object);
            self.out.push_str("</ofd:ObjectRef>");
        }
        let _ = write!(self.out, "</{leaf}>");
    }

    fn close_to(&mut self, depth: usize) {
        while self.open.len() > depth {
            if let Some((name, _)) = self.open.pop() {
                let _ = write!(self.out, "</{name}>");
            }
        }
    }
}

fn custom_tag_xml(refs: &BTreeMap<Tag, Vec<(u32, u32)>>) -> String {
    let mut nest = Nest {
        out: String::with_capacity(4096),
        open: Vec::new(),
    };
    let _ = write!(nest.out, "{XML_HEAD}<EInvoice xmlns:ofd=\"{NS}\">");
    let items = refs
        .keys()
        .filter_map(|t| t.item)
        .max()
        .map_or(0, |m| m + 1);
    let mut emit = |path: &'static str, item: Option<usize>| {
        if let Some(found) = refs.get(&Tag { path, item }) {
            nest.leaf(path, item, found);
        }
    };
    for path in &TAGGED[..9] {
        emit(path, None);
    }
    for item in 0..items {
        for path in layout::item_elements() {
            emit(path, Some(item));
        }
    }
    for path in &TAGGED[9..] {
        emit(path, None);
    }
    nest.close_to(0);
    nest.out.push_str("</EInvoice>");
    nest.out
}

#[cfg(test)]
mod tests;
