//! The OFD and PDF layout files checked with outside tools: qpdf, pdftotext and pdftoppm
//! (Debian packages `qpdf` and `poppler-utils`), xmllint (`libxml2-utils`) and an independent OFD
//! reader, the Python package `easyofd` (`pip install easyofd`, which brings PyMuPDF).
//!
//! A missing tool fails the test with a message naming its package; nothing is skipped. Set
//! `FAPIAO_RENDER_DIR` to keep the rendered files for a look.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fapiao_archive::{Issued, layout, ofd_write, pdf, sample, xml};
use fapiao_invoice::model::InvoiceContent;
use fapiao_invoice::number::InvoiceNumber;

const OFD_NS: &str = "http://www.ofdspec.org/2016";

/// A sample invoice and what its files must show.
struct Case {
    name: &'static str,
    number: InvoiceNumber,
    content: InvoiceContent,
}

impl Case {
    fn issued(&self) -> Issued<'_> {
        Issued {
            number: self.number,
            issued_at: sample::issued_at(),
            content: &self.content,
        }
    }

    /// Texts every file of this invoice must show.
    fn expected(&self) -> Vec<String> {
        let c = &self.content;
        let mut out = vec![
            self.number.to_string(),
            "2025年03月07日".to_owned(),
            c.buyer.party.name.clone(),
            c.seller.name.clone(),
            layout::money(c.totals.amount),
            layout::money(c.totals.tax),
            layout::money(c.totals.total),
            c.total_in_words.clone(),
            c.kind.title_zh().to_owned(),
        ];
        out.extend(c.seller.tax_id.iter().map(|id| id.as_str().to_owned()));
        out.extend(c.buyer.party.tax_id.iter().map(|id| id.as_str().to_owned()));
        for line in &c.lines {
            out.push(line.printed_name.clone());
            out.push(layout::money(line.amount));
            out.push(layout::money(line.tax));
        }
        out
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "blue",
            number: sample::number(),
            content: sample::blue(),
        },
        Case {
            name: "red",
            number: sample::red_number(),
            content: sample::red(),
        },
        Case {
            name: "person",
            number: sample::number(),
            content: sample::to_person(),
        },
        Case {
            name: "forty",
            number: sample::number(),
            content: sample::with_lines("X", 40),
        },
    ]
}

/// Where files go: `FAPIAO_RENDER_DIR` if set (kept), else a temporary directory.
fn out_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("FAPIAO_RENDER_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).expect("create FAPIAO_RENDER_DIR");
            (dir, None)
        }
        None => {
            let tmp = tempfile::tempdir().expect("a temporary directory");
            (tmp.path().to_owned(), Some(tmp))
        }
    }
}

/// Run a tool; a missing tool fails with the package that provides it.
fn run(program: &str, args: &[&str], package: &str) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install {package}"))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// pdftotext output with the spaces it puts between runs removed.
fn compact(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn pdfs_pass_qpdf_extract_and_render() {
    let (dir, _keep) = out_dir();
    for case in cases() {
        let pdf = pdf::write(&case.issued());
        let path = dir.join(format!("{}.pdf", case.name));
        std::fs::write(&path, &pdf).expect("write the PDF");
        let p = path_str(&path);

        let check = run("qpdf", &["--check", p], "the Debian package qpdf");
        assert!(
            check.status.success(),
            "{}: qpdf --check: {}{}",
            case.name,
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );

        let text = run(
            "pdftotext",
            &["-layout", "-enc", "UTF-8", p, "-"],
            "the Debian package poppler-utils",
        );
        assert!(text.status.success(), "{}: pdftotext failed", case.name);
        let text = String::from_utf8(text.stdout).expect("UTF-8 text");
        let flat = compact(&text);
        for want in case.expected() {
            assert!(
                flat.contains(&compact(&want)),
                "{}: {want:?} is not in the extracted text:\n{text}",
                case.name
            );
        }
        // Whole runs extract as written: the number and a name on one line each.
        assert!(text.lines().any(|l| l.contains(&case.number.to_string())));
        if case.name == "red" {
            assert!(flat.contains("（负数）"), "red capitals");
            assert!(
                flat.contains("-49391.58") && flat.contains("-26550.00"),
                "{text}"
            );
        }
        if case.name == "forty" {
            for page in 1..=4 {
                assert!(flat.contains(&format!("共4页第{page}页")), "page {page}");
            }
        }

        let prefix = dir.join(format!("{}-page", case.name));
        let render = run(
            "pdftoppm",
            &["-r", "50", "-png", p, path_str(&prefix)],
            "the Debian package poppler-utils",
        );
        assert!(render.status.success(), "{}: pdftoppm failed", case.name);
        assert!(
            String::from_utf8_lossy(&render.stderr).is_empty(),
            "{}: pdftoppm complained: {}",
            case.name,
            String::from_utf8_lossy(&render.stderr)
        );
        let pages = if case.name == "forty" { 4 } else { 1 };
        for page in 1..=pages {
            let png = std::fs::read(dir.join(format!("{}-page-{page}.png", case.name)))
                .expect("pdftoppm wrote the page");
            assert!(
                png.starts_with(b"\x89PNG") && png.len() > 2000,
                "{} page {page}",
                case.name
            );
        }
    }
}

/// The entries of an OFD package.
fn unzip(ofd: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(ofd)).expect("a ZIP package");
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).expect("an entry");
        let name = file.name().expect("an entry name").to_string();
        let mut data = Vec::new();
        file.read_to_end(&mut data).expect("entry data");
        out.insert(name, data);
    }
    out
}

#[test]
fn ofd_packages_follow_the_contract_and_embed_usable_fonts() {
    let (dir, _keep) = out_dir();
    for case in cases() {
        let issued = case.issued();
        let invoice_xml = xml::write(&issued);
        let ofd = ofd_write::write(&issued, &invoice_xml);
        std::fs::write(dir.join(format!("{}.ofd", case.name)), &ofd).expect("write the OFD");
        let files = unzip(&ofd);
        let number = case.number.to_string();
        for name in [
            "OFD.xml",
            "Doc_0/Document.xml",
            "Doc_0/PublicRes.xml",
            "Doc_0/Tpls/Tpl_0/Content.xml",
            "Doc_0/Pages/Page_0/Content.xml",
            "Doc_0/Attachs/Attachments.xml",
            "Doc_0/Tags/CustomTags.xml",
            "Doc_0/Tags/CustomTag.xml",
        ] {
            assert!(files.contains_key(name), "{}: {name}", case.name);
        }
        assert_eq!(
            files[&format!("Doc_0/Attachs/{number}.xml")],
            invoice_xml,
            "{}: the XML is attached byte for byte",
            case.name
        );

        // Every XML entry parses, with xmllint as well.
        let xml_dir = tempfile::tempdir().expect("a temporary directory");
        let mut fonts: BTreeMap<String, String> = BTreeMap::new();
        let mut objects = Vec::new();
        for (name, data) in &files {
            if !name.ends_with(".xml") {
                continue;
            }
            let text = std::str::from_utf8(data).expect("UTF-8 XML");
            let doc = roxmltree::Document::parse(text)
                .unwrap_or_else(|e| panic!("{}: {name}: {e}", case.name));
            for node in doc.descendants() {
                if node.has_tag_name((OFD_NS, "Font")) {
                    let file = node
                        .children()
                        .find(|n| n.has_tag_name((OFD_NS, "FontFile")))
                        .and_then(|n| n.text())
                        .expect("a FontFile");
                    fonts.insert(
                        node.attribute("ID").expect("a font ID").to_owned(),
                        file.to_owned(),
                    );
                }
                if node.has_tag_name((OFD_NS, "TextObject")) {
                    let code = node
                        .children()
                        .find(|n| n.has_tag_name((OFD_NS, "TextCode")))
                        .expect("a TextCode");
                    objects.push((
                        node.attribute("Font").expect("a Font").to_owned(),
                        code.text().unwrap_or("").to_owned(),
                    ));
                }
            }
            let path = xml_dir.path().join(name.replace('/', "_"));
            std::fs::write(&path, data).expect("write an entry");
            let lint = run(
                "xmllint",
                &["--noout", path_str(&path)],
                "the Debian package libxml2-utils",
            );
            assert!(lint.status.success(), "{}: xmllint {name}", case.name);
        }
        assert!(!objects.is_empty());
        for (font, text) in &objects {
            let file = fonts
                .get(font)
                .unwrap_or_else(|| panic!("font {font} is declared"));
            let data = &files[&format!("Doc_0/Res/{file}")];
            let face = ttf_parser::Face::parse(data, 0).expect("the embedded font loads");
            for c in text.chars() {
                assert!(
                    face.glyph_index(c).is_some(),
                    "{}: no glyph for {c:?}",
                    case.name
                );
            }
        }
    }
}

/// The Python reader: for each OFD path, one JSON line with the page texts easyofd extracts and
/// whether PyMuPDF (FreeType) finds a glyph in the embedded font for every character. (easyofd's
/// `to_pdf` is not used: it scans every system font first, seconds per call, and draws text only
/// with a system 宋体.)
const EASYOFD: &str = r#"
import json, sys, warnings, zipfile
warnings.filterwarnings("ignore")
try:
    from loguru import logger
    logger.remove()
except Exception:
    pass
from easyofd.ofd import OFD
import fitz

for path in sys.argv[1:]:
    ofd = OFD()
    ofd.read(path, fmt="path", save_xml=False)
    doc = ofd.data[0]
    pages = []
    for number, page in sorted(doc["page_info"].items()):
        pages.append([t["text"] for t in page["text_list"]])
    with zipfile.ZipFile(path) as z:
        font = z.read("Doc_0/Res/font_1.ttf")
    face = fitz.Font(fontbuffer=font)
    covered = all(face.has_glyph(ord(c)) for page in pages for text in page for c in text)
    print(json.dumps({"path": path, "pages": pages, "fonts_cover": covered}, ensure_ascii=False))
"#;

#[test]
fn easyofd_reads_the_ofd() {
    let (dir, _keep) = out_dir();
    let script = dir.join("read_ofd.py");
    std::fs::write(&script, EASYOFD).expect("write the script");
    let cases = cases();
    let mut paths = Vec::new();
    for case in &cases {
        let issued = case.issued();
        let ofd = ofd_write::write(&issued, &xml::write(&issued));
        let path = dir.join(format!("{}-easyofd.ofd", case.name));
        std::fs::write(&path, &ofd).expect("write the OFD");
        paths.push(path);
    }
    let mut args = vec![path_str(&script)];
    args.extend(paths.iter().map(|p| path_str(p)));
    let out = run("python3", &args, "Python 3 with the pip package easyofd");
    assert!(
        out.status.success(),
        "easyofd failed (pip install easyofd): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"path\""))
        .collect();
    assert_eq!(lines.len(), cases.len(), "one result per file:\n{stdout}");
    for (case, json) in cases.iter().zip(lines) {
        assert!(json.contains(&format!("{}-easyofd.ofd", case.name)));
        // easyofd merges the template into the first page only; values are on every page.
        for want in case.expected() {
            assert!(
                json.contains(&want),
                "{}: easyofd does not show {want:?}",
                case.name
            );
        }
        assert!(
            json.contains("\"fonts_cover\": true"),
            "{}: PyMuPDF lacks glyphs",
            case.name
        );
    }
}

#[test]
fn the_archive_reader_reads_back_the_values() {
    for case in cases() {
        let issued = case.issued();
        let ofd = ofd_write::write(&issued, &xml::write(&issued));
        let read = fapiao_archive::ofd_read::read(&ofd)
            .unwrap_or_else(|e| panic!("{}: ofd_read: {e}", case.name));
        let c = &case.content;
        assert_eq!(
            read.custom("发票号码"),
            Some(case.number.to_string().as_str())
        );
        assert_eq!(
            read.custom("合计金额"),
            Some(layout::money(c.totals.amount).as_str())
        );
        assert_eq!(
            read.tag("TaxSupervisionInfo/InvoiceNumber"),
            Some(case.number.to_string().as_str())
        );
        assert_eq!(
            read.tag("EInvoiceData/BuyerInformation/BuyerName"),
            Some(c.buyer.party.name.as_str())
        );
        assert_eq!(
            read.tag("EInvoiceData/BasicInformation/TotalTax-includedAmount"),
            Some(layout::money(c.totals.total).as_str())
        );
        assert_eq!(read.tag_lines.len(), c.lines.len());
        for (tags, line) in read.tag_lines.iter().zip(&c.lines) {
            assert_eq!(tags.get("ItemName"), Some(&line.printed_name));
            assert_eq!(tags.get("Amount"), Some(&layout::money(line.amount)));
        }
        fapiao_archive::ofd_read::check_renders(&read)
            .unwrap_or_else(|e| panic!("{}: ofd_read::check_renders: {e}", case.name));
    }
}

#[test]
fn rendering_is_deterministic() {
    for case in cases() {
        let issued = case.issued();
        let invoice_xml = xml::write(&issued);
        let (ofd, pdf) = (ofd_write::write(&issued, &invoice_xml), pdf::write(&issued));
        fapiao_archive::font::clear_cache();
        layout::clear_shared();
        assert_eq!(
            ofd_write::write(&issued, &invoice_xml),
            ofd,
            "{}",
            case.name
        );
        assert_eq!(pdf::write(&issued), pdf, "{}", case.name);
    }
}
