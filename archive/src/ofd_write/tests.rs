//! Tests of the OFD writer: the contract entries, ids, custom tags and determinism.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use super::*;
use crate::sample;

fn entries(ofd: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(ofd)).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut data = Vec::new();
        file.read_to_end(&mut data).unwrap();
        out.insert(file.name().unwrap().to_string(), data);
    }
    out
}

fn text(entries: &BTreeMap<String, Vec<u8>>, name: &str) -> String {
    String::from_utf8(entries[name].clone()).unwrap()
}

fn write_sample(content: &fapiao_invoice::model::InvoiceContent) -> Vec<u8> {
    let issued = Issued {
        number: sample::number(),
        issued_at: sample::issued_at(),
        content,
    };
    write(&issued, b"<EInvoice>xml</EInvoice>")
}

#[test]
fn the_package_holds_the_contract_entries() {
    let content = sample::blue();
    let files = entries(&write_sample(&content));
    let number = sample::number().to_string();
    let names: BTreeSet<&str> = files.keys().map(String::as_str).collect();
    for name in [
        "OFD.xml",
        "Doc_0/Document.xml",
        "Doc_0/PublicRes.xml",
        "Doc_0/Res/font_1.ttf",
        "Doc_0/Tpls/Tpl_0/Content.xml",
        "Doc_0/Pages/Page_0/Content.xml",
        "Doc_0/Attachs/Attachments.xml",
        "Doc_0/Tags/CustomTags.xml",
        "Doc_0/Tags/CustomTag.xml",
    ] {
        assert!(names.contains(name), "{name}");
    }
    assert_eq!(
        files[&format!("Doc_0/Attachs/{number}.xml")],
        b"<EInvoice>xml</EInvoice>"
    );
    let ofd = text(&files, "OFD.xml");
    let doc = roxmltree::Document::parse(&ofd).unwrap();
    let data: BTreeMap<&str, &str> = doc
        .descendants()
        .filter(|n| n.has_tag_name((NS, "CustomData")))
        .map(|n| (n.attribute("Name").unwrap(), n.text().unwrap_or("")))
        .collect();
    assert_eq!(data.len(), 9);
    assert_eq!(data["发票号码"], number);
    assert_eq!(data["开票日期"], "2025年03月07日");
    assert_eq!(data["合计金额"], "49391.58");
    assert_eq!(data["购买方纳税人识别号"], sample::BUYER);
    let doc_id = doc
        .descendants()
        .find(|n| n.has_tag_name((NS, "DocID")))
        .unwrap();
    let doc_id = doc_id.text().unwrap();
    assert_eq!(doc_id.len(), 32);
    assert!(
        doc_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[test]
fn ids_are_unique_and_bounded_by_max_unit_id() {
    let content = sample::with_lines("X", 40);
    let files = entries(&write_sample(&content));
    let mut ids = BTreeSet::new();
    let mut max = 0;
    for (name, data) in &files {
        if !name.ends_with(".xml") || name.starts_with("Doc_0/Attachs/2") {
            continue;
        }
        let xml = String::from_utf8(data.clone()).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        for node in doc.descendants() {
            if node.has_tag_name((NS, "MaxUnitID")) {
                max = node.text().unwrap().parse().unwrap();
            }
            // Page references in Document.xml repeat the pages' ids; everything else is unique.
            if let Some(id) = node.attribute("ID") {
                let id: u32 = id.parse().unwrap();
                assert!(
                    ids.insert(id) || name == "Doc_0/Document.xml",
                    "{id} in {name}"
                );
            }
        }
    }
    assert!(files.keys().any(|k| k == "Doc_0/Pages/Page_2/Content.xml"));
    assert_eq!(ids.last().copied(), Some(max));
}

/// Object id → text of every text object of every page (template included).
fn object_texts(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, data) in files {
        if name.ends_with("Content.xml") {
            let xml = String::from_utf8(data.clone()).unwrap();
            let doc = roxmltree::Document::parse(&xml).unwrap();
            for object in doc
                .descendants()
                .filter(|n| n.has_tag_name((NS, "TextObject")))
            {
                let code = object
                    .children()
                    .find(|n| n.has_tag_name((NS, "TextCode")))
                    .unwrap();
                out.insert(
                    object.attribute("ID").unwrap().to_owned(),
                    code.text().unwrap().to_owned(),
                );
            }
        }
    }
    out
}

#[test]
fn custom_tags_point_at_the_values() {
    let content = sample::blue();
    let files = entries(&write_sample(&content));
    let texts = object_texts(&files);
    let xml = text(&files, "Doc_0/Tags/CustomTag.xml");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let resolve = |node: roxmltree::Node<'_, '_>| -> String {
        node.children()
            .filter(|n| n.has_tag_name((NS, "ObjectRef")))
            .map(|r| texts[r.text().unwrap()].as_str())
            .collect()
    };
    let find = |path: &str| {
        let mut node = doc.root_element();
        for name in path.split('/') {
            node = node
                .children()
                .find(|n| n.tag_name().name() == name)
                .unwrap();
        }
        resolve(node)
    };
    assert_eq!(
        find("TaxSupervisionInfo/InvoiceNumber"),
        sample::number().to_string()
    );
    assert_eq!(find("TaxSupervisionInfo/IssueTime"), "2025年03月07日");
    assert_eq!(
        find("EInvoiceData/SellerInformation/SellerName"),
        content.seller.name
    );
    assert_eq!(
        find("EInvoiceData/BasicInformation/TotalTax-includedAmount"),
        "54703.57"
    );
    assert_eq!(
        find("EInvoiceData/AdditionalInformation/Remark"),
        content.remark
    );
    let items: Vec<_> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "IssuItemInformation")
        .collect();
    assert_eq!(items.len(), content.lines.len());
    for (item, line) in items.iter().zip(&content.lines) {
        let leaf = |name: &str| {
            item.children()
                .find(|n| n.tag_name().name() == name)
                .map(resolve)
        };
        assert_eq!(leaf("ItemName").unwrap(), line.printed_name);
        assert_eq!(leaf("Amount").unwrap(), layout::money(line.amount));
        assert_eq!(leaf("ComTaxAm").unwrap(), layout::money(line.tax));
        assert_eq!(leaf("Quantity").is_some(), line.quantity.is_some());
    }
    // PageRef names the page.
    let page_ref = doc
        .descendants()
        .find(|n| n.has_tag_name((NS, "ObjectRef")))
        .unwrap()
        .attribute("PageRef")
        .unwrap();
    assert!(text(&files, "Doc_0/Document.xml").contains(&format!("<ofd:Page ID=\"{page_ref}\"")));
}

#[test]
fn the_same_invoice_gives_the_same_bytes() {
    let content = sample::red();
    let a = write_sample(&content);
    font::clear_cache();
    let b = write_sample(&content);
    assert_eq!(a, b);
    assert_ne!(a, write_sample(&sample::blue()));
}

#[test]
fn the_embedded_font_covers_every_text_object() {
    let content = sample::to_person();
    let files = entries(&write_sample(&content));
    let face = ttf_parser::Face::parse(&files["Doc_0/Res/font_1.ttf"], 0).unwrap();
    for (id, text) in object_texts(&files) {
        for c in text.chars() {
            assert!(face.glyph_index(c).is_some(), "{c:?} of object {id}");
        }
    }
}
