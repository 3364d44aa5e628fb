//! The OFD reader and the PDF checker against the real writers: what `ofd_write` puts in comes
//! back out (custom data, tags, the attached XML, the page text), both files pass the render
//! checks, and tampering is caught.

use std::collections::BTreeMap;

use fapiao_archive::check::{Outcome, Recorded, check_file, sm3_hex};
use fapiao_archive::layout::{self, Layer};
use fapiao_archive::{Format, Issued, ofd_read, ofd_write, pdf, pdf_check, sample, xml};
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::number::InvoiceNumber;

fn samples() -> Vec<(&'static str, InvoiceNumber, InvoiceContent)> {
    vec![
        ("blue", sample::number(), sample::blue()),
        ("red", sample::red_number(), sample::red()),
        ("to_person", sample::number(), sample::to_person()),
        ("long", sample::number(), sample::with_lines("SO-LONG", 40)),
    ]
}

fn issued(number: InvoiceNumber, content: &InvoiceContent) -> Issued<'_> {
    Issued {
        number,
        issued_at: sample::issued_at(),
        content,
    }
}

/// The text of the layout's tagged runs, concatenated per tag in drawing order: what the custom
/// tags must give back. Item fields go to per-line maps.
type Expected = (
    BTreeMap<String, String>,
    BTreeMap<usize, BTreeMap<String, String>>,
);

fn tagged(pages: &[Layer]) -> Expected {
    let mut fields = BTreeMap::new();
    let mut lines: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
    for run in pages.iter().flat_map(|p| &p.texts) {
        let Some(tag) = run.tag else { continue };
        let into = match tag.item {
            Some(item) => lines.entry(item).or_default(),
            None => &mut fields,
        };
        let key = tag
            .path
            .strip_prefix("EInvoiceData/IssuItemInformation/")
            .filter(|_| tag.item.is_some())
            .unwrap_or(tag.path);
        into.entry(key.to_owned())
            .or_insert_with(String::new)
            .push_str(&run.text);
    }
    (fields, lines)
}

#[test]
fn what_the_writer_puts_in_reads_back() {
    for (name, number, content) in samples() {
        let issued = issued(number, &content);
        let xml = xml::write(&issued);
        let ofd = ofd_write::write(&issued, &xml);
        let doc = ofd_read::read(&ofd).unwrap_or_else(|e| panic!("{name}: {e}"));

        let custom = |key: &str| doc.custom(key).unwrap_or_else(|| panic!("{name}: {key}"));
        let id = |p: &fapiao_invoice::model::Party| {
            p.tax_id
                .as_ref()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(custom("发票号码"), number.to_string(), "{name}");
        assert_eq!(custom("开票日期"), "2025年03月07日", "{name}");
        assert_eq!(
            custom("合计金额"),
            layout::money(content.totals.amount),
            "{name}"
        );
        assert_eq!(
            custom("合计税额"),
            layout::money(content.totals.tax),
            "{name}"
        );
        assert_eq!(
            custom("价税合计"),
            layout::money(content.totals.total),
            "{name}"
        );
        assert_eq!(custom("购买方名称"), content.buyer.party.name, "{name}");
        assert_eq!(
            custom("购买方纳税人识别号"),
            id(&content.buyer.party),
            "{name}"
        );
        assert_eq!(custom("销售方名称"), content.seller.name, "{name}");
        assert_eq!(custom("销售方纳税人识别号"), id(&content.seller), "{name}");

        assert_eq!(
            doc.xml.as_deref(),
            Some(xml.as_slice()),
            "{name}: attachment"
        );
        let attached = xml::parse(doc.xml.as_deref().unwrap_or_default()).unwrap();
        assert_eq!(attached.number(), number);

        let laid_out = layout::layout(&issued);
        let (fields, lines) = tagged(&laid_out.pages);
        assert_eq!(doc.tags, fields, "{name}: tags");
        assert_eq!(
            doc.tag_lines.len(),
            content.lines.len(),
            "{name}: tagged lines"
        );
        for (i, line) in doc.tag_lines.iter().enumerate() {
            assert_eq!(Some(line), lines.get(&i), "{name}: line {i}");
        }
        assert_eq!(
            doc.tag("TaxSupervisionInfo/InvoiceNumber"),
            Some(number.to_string().as_str())
        );
        assert_eq!(
            doc.tag("EInvoiceData/BuyerInformation/BuyerName"),
            Some(content.buyer.party.name.as_str())
        );

        // Every page shows the template's text, then its own values.
        assert_eq!(doc.pages.len(), laid_out.pages.len(), "{name}: pages");
        let template: Vec<&str> = laid_out
            .template
            .layer
            .texts
            .iter()
            .map(|r| r.text.as_str())
            .collect();
        for (page, values) in doc.pages.iter().zip(&laid_out.pages) {
            let text: Vec<&str> = page.text_objects.iter().map(|t| t.text.as_str()).collect();
            let want: Vec<&str> = template
                .iter()
                .copied()
                .chain(values.texts.iter().map(|r| r.text.as_str()))
                .collect();
            assert_eq!(text, want, "{name}: page {}", page.id);
        }
        ofd_read::check_renders(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));

        let pdf = pdf::write(&issued);
        let summary = pdf_check::check(&pdf).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(summary.pages, laid_out.pages.len(), "{name}");
        pdf_check::check_renders(&pdf).unwrap_or_else(|e| panic!("{name}: {e}"));

        for (format, bytes) in [
            (Format::Xml, &xml),
            (Format::Ofd, &ofd),
            (Format::Pdf, &pdf),
        ] {
            let hex = sm3_hex(bytes);
            let recorded = Recorded {
                sm3_hex: &hex,
                size: u64::try_from(bytes.len()).unwrap(),
            };
            let check = check_file(format, &number, Some(&recorded), Some(bytes));
            assert!(check.ok(), "{name} {format}: {}", check.detail);
        }
    }
}

fn blue_files() -> (InvoiceNumber, Vec<u8>, Vec<u8>) {
    let content = sample::blue();
    let issued = issued(sample::number(), &content);
    let xml = xml::write(&issued);
    (
        sample::number(),
        ofd_write::write(&issued, &xml),
        pdf::write(&issued),
    )
}

#[test]
fn flipping_bytes_of_the_real_files_fails_the_digest() {
    let (number, ofd, pdf) = blue_files();
    for (format, original) in [(Format::Ofd, ofd), (Format::Pdf, pdf)] {
        let hex = sm3_hex(&original);
        let recorded = Recorded {
            sm3_hex: &hex,
            size: u64::try_from(original.len()).unwrap(),
        };
        let mut tampered = original.clone();
        for i in (0..original.len()).step_by(31) {
            tampered[i] ^= 0x20;
            let check = check_file(format, &number, Some(&recorded), Some(&tampered));
            assert_eq!(check.digest, Outcome::Failed, "{format} byte {i}");
            assert!(!check.ok());
            tampered[i] ^= 0x20;
        }
    }
}

/// The byte range of the stored data of `name` in a ZIP written by `ofd_write` (no extra fields,
/// sizes in the local header), and the offsets of its CRC in both headers.
fn zip_entry(zip: &[u8], name: &str) -> (std::ops::Range<usize>, usize, usize) {
    let find = |signature: &[u8], name_at: usize| {
        (0..zip.len())
            .find(|&i| {
                zip[i..].starts_with(signature) && zip[i + name_at..].starts_with(name.as_bytes())
            })
            .unwrap_or_else(|| panic!("{name} not found"))
    };
    let local = find(b"PK\x03\x04", 30);
    let central = find(b"PK\x01\x02", 46);
    let word =
        |at: usize| u32::from_le_bytes(zip[at..at + 4].try_into().expect("4 bytes")) as usize;
    let half =
        |at: usize| u16::from_le_bytes(zip[at..at + 2].try_into().expect("4 bytes")) as usize;
    let start = local + 30 + half(local + 26) + half(local + 28);
    (start..start + word(local + 18), local + 14, central + 16)
}

#[test]
fn a_changed_entry_fails_its_checksum_even_when_the_pdf_shares_the_font() {
    let (number, ofd, pdf) = blue_files();
    let (data, local_crc, central_crc) = zip_entry(&ofd, "Doc_0/Res/font_1.ttf");

    // A flipped byte in the font's data: inflating fails or the CRC does not match.
    let mut broken = ofd.clone();
    broken[data.start + data.len() / 2] ^= 0x01;
    assert!(ofd_read::read(&broken).is_err());

    // The data intact but both CRCs wrong: the PDF's check inflates the same data first, so the
    // OFD's font comes from the memo, and its CRC must still be checked against it.
    let mut wrong_crc = ofd.clone();
    wrong_crc[local_crc] ^= 0x01;
    wrong_crc[central_crc] ^= 0x01;
    let pdf_check = check_file(Format::Pdf, &number, None, Some(&pdf));
    assert!(pdf_check.ok(), "{}", pdf_check.detail);
    let check = check_file(Format::Ofd, &number, None, Some(&wrong_crc));
    assert_eq!(check.parses, Outcome::Failed, "{}", check.detail);
    assert!(check.detail.contains("checksum"), "{}", check.detail);
    assert!(check_file(Format::Ofd, &number, None, Some(&ofd)).ok());
}

#[test]
fn truncated_real_files_fail() {
    let (number, ofd, pdf) = blue_files();
    for (format, bytes) in [(Format::Ofd, &ofd), (Format::Pdf, &pdf)] {
        for cut in (0..bytes.len()).step_by(211) {
            let check = check_file(format, &number, None, Some(&bytes[..cut]));
            assert!(!check.ok(), "{format} cut at {cut}");
        }
    }
}
