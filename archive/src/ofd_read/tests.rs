//! The reader and the render check against packages built to the contract, and against broken
//! ones.

use super::testkit::{OfdFiles, tiny_font};
use super::*;

const NUMBER: &str = "25312000000000008848";
const PAGE: &str = "Doc_0/Pages/Page_0/Content.xml";

fn files() -> OfdFiles {
    OfdFiles::contract(NUMBER, b"<EInvoice/>")
}

#[test]
fn reads_every_part_of_a_contract_package() {
    let doc = read(&files().zip()).unwrap();
    assert_eq!(doc.custom("发票号码"), Some(NUMBER));
    assert_eq!(doc.custom("开票日期"), Some("2025年03月07日"));
    assert_eq!(doc.custom("购买方纳税人识别号"), Some(""));
    assert_eq!(doc.custom_datas.len(), 9);

    assert_eq!(doc.tag("TaxSupervisionInfo/InvoiceNumber"), Some(NUMBER));
    assert_eq!(
        doc.tag("TaxSupervisionInfo/IssueTime"),
        Some("2025年03月07日")
    );
    assert_eq!(
        doc.tag("EInvoiceData/BuyerInformation/BuyerName"),
        Some("王小明")
    );
    assert_eq!(
        doc.tag("EInvoiceData/BuyerInformation/BuyerIdNum"),
        Some("")
    );
    assert_eq!(
        doc.tag("EInvoiceData/SellerInformation/SellerName"),
        Some("上海发票示例科技有限公司")
    );
    assert_eq!(
        doc.tag("EInvoiceData/AdditionalInformation/Remark"),
        Some("")
    );
    assert_eq!(doc.tag_lines.len(), 1);
    assert_eq!(
        doc.tag_lines[0].get("ItemName").map(String::as_str),
        Some("*信息技术服务*订单管理系统定制开发"),
        "two references concatenate in order"
    );
    assert_eq!(
        doc.tag_lines[0].get("Amount").map(String::as_str),
        Some("1000.00")
    );

    assert_eq!(doc.xml.as_deref(), Some(b"<EInvoice/>".as_slice()));
    assert_eq!(doc.attachments.len(), 1);
    assert_eq!(
        doc.attachments[0].path,
        format!("Doc_0/Attachs/{NUMBER}.xml")
    );

    assert_eq!(doc.pages.len(), 1);
    assert_eq!(doc.pages[0].id, "3");
    let text = doc.page_text();
    assert_eq!(
        text[..3],
        ["电子发票（普通发票）", "发票号码：", NUMBER],
        "template first"
    );
    assert_eq!(text.len(), 10);
    assert_eq!(doc.fonts.len(), 1);
    assert_eq!(doc.fonts[0].file.as_deref(), Some("Doc_0/Res/font_1.ttf"));
    assert_eq!(doc.max_unit_id.as_deref(), Some("20"));
    assert_eq!(doc.highest_id, 16);
    check_renders(&doc).unwrap();
}

#[test]
fn follows_the_locations_the_files_name() {
    // Everything moved and renamed: only OFD.xml stays where it is.
    let mut f = OfdFiles {
        files: files()
            .files
            .into_iter()
            .map(|(p, d)| (p.replacen("Doc_0/", "Doc_7/", 1), d))
            .collect(),
    };
    f.edit("OFD.xml", "Doc_0/Document.xml", "Doc_7/Document.xml");
    let renamed = [
        ("Doc_7/Res/font_1.ttf", "Doc_7/fonts/a.ttf"),
        ("Doc_7/PublicRes.xml", "Doc_7/res/Public.xml"),
    ];
    for (from, to) in renamed {
        let data = f.files.iter().find(|(p, _)| p == from).unwrap().1.clone();
        f.remove(from);
        f.set(to, data);
    }
    f.edit("Doc_7/Document.xml", ">PublicRes.xml<", ">res/Public.xml<");
    f.edit(
        "Doc_7/res/Public.xml",
        "BaseLoc=\"Res\"",
        "BaseLoc=\"/Doc_7/fonts\"",
    );
    f.edit("Doc_7/res/Public.xml", "font_1.ttf", "a.ttf");
    let doc = read(&f.zip()).unwrap();
    assert_eq!(doc.fonts[0].file.as_deref(), Some("Doc_7/fonts/a.ttf"));
    assert_eq!(doc.custom("发票号码"), Some(NUMBER));
    check_renders(&doc).unwrap();
}

#[test]
fn a_real_cjk_font_passes_the_render_check() {
    let mut f = files();
    // The bundled font has CJK and full-width forms but no ASCII: keep only CJK text.
    f.set(
        "Doc_0/Res/font_1.ttf",
        include_bytes!("../../fonts/DroidSansFallbackFull.ttf").to_vec(),
    );
    for (from, to) in [
        (NUMBER, "二五三一"),
        ("1000.00", "壹仟"),
        ("*", "＊"),
        ("2025年03月07日", "二〇二五年三月七日"),
    ] {
        f.edit(PAGE, from, to);
    }
    check_renders(&read(&f.zip_with(zip::CompressionMethod::Stored)).unwrap()).unwrap();
    f.edit(PAGE, "壹仟", "1000");
    assert!(matches!(
        check_renders(&read(&f.zip_with(zip::CompressionMethod::Stored)).unwrap()),
        Err(OfdError::MissingGlyph { ch, .. }) if ch.is_ascii_digit()
    ));
}

fn render_error(f: &OfdFiles) -> OfdError {
    check_renders(&read(&f.zip()).unwrap()).unwrap_err()
}

#[test]
fn render_faults_are_reported() {
    let mut f = files();
    f.edit(PAGE, "订单管理", "订单管理🧾");
    assert_eq!(
        render_error(&f),
        OfdError::MissingGlyph {
            font: "1".into(),
            ch: '🧾'
        }
    );

    let mut f = files();
    f.edit(
        PAGE,
        "ID=\"15\" Boundary=\"10 10 100 6\" Font=\"1\"",
        "ID=\"15\" Boundary=\"10 10 100 6\" Font=\"99\"",
    );
    let unknown = OfdError::UnknownFont {
        object: "15".into(),
        font: "99".into(),
    };
    assert_eq!(render_error(&f), unknown);

    let mut f = files();
    f.remove("Doc_0/Res/font_1.ttf");
    assert!(matches!(
        render_error(&f),
        OfdError::NoFontFile { file: Some(_), .. }
    ));

    let mut f = files();
    f.set("Doc_0/Res/font_1.ttf", b"not a font".to_vec());
    assert!(matches!(render_error(&f), OfdError::FontLoad { .. }));

    let mut f = files();
    f.edit(
        "Doc_0/Document.xml",
        "<ofd:MaxUnitID>20<",
        "<ofd:MaxUnitID>15<",
    );
    assert!(matches!(render_error(&f), OfdError::MaxUnitId(_)));

    let mut f = files();
    f.edit(
        "Doc_0/Document.xml",
        "<ofd:MaxUnitID>20</ofd:MaxUnitID>",
        "",
    );
    assert!(matches!(render_error(&f), OfdError::MaxUnitId(_)));

    let mut f = files();
    f.edit(
        "Doc_0/Document.xml",
        "<ofd:PageArea><ofd:PhysicalBox>0 0 210 140</ofd:PhysicalBox></ofd:PageArea>",
        "",
    );
    assert!(matches!(render_error(&f), OfdError::PhysicalBox(_)));
    // A page's own box is enough.
    f.edit(
        PAGE,
        "<ofd:Content>",
        "<ofd:Area><ofd:PhysicalBox>0 0 210 140</ofd:PhysicalBox></ofd:Area><ofd:Content>",
    );
    check_renders(&read(&f.zip()).unwrap()).unwrap();
}

#[test]
fn broken_packages_are_read_errors() {
    let mut f = files();
    f.remove("OFD.xml");
    assert_eq!(read(&f.zip()), Err(OfdError::Missing("OFD.xml".into())));

    let mut f = files();
    f.remove(PAGE);
    assert_eq!(read(&f.zip()), Err(OfdError::Missing(PAGE.into())));

    let mut f = files();
    f.remove(&format!("Doc_0/Attachs/{NUMBER}.xml"));
    assert!(matches!(read(&f.zip()), Err(OfdError::Missing(_))));

    let mut f = files();
    f.edit("Doc_0/Tags/CustomTag.xml", ">13<", ">77<");
    assert_eq!(
        read(&f.zip()),
        Err(OfdError::DanglingRef {
            tag: "ItemName".into(),
            id: "77".into()
        })
    );

    let mut f = files();
    f.edit("OFD.xml", "Doc_0/Document.xml", "../Document.xml");
    assert!(matches!(read(&f.zip()), Err(OfdError::BadPath(_))));

    let mut f = files();
    f.edit("Doc_0/Document.xml", "</ofd:Document>", "");
    assert!(matches!(read(&f.zip()), Err(OfdError::Xml { .. })));

    let mut f = files();
    f.edit(PAGE, "TemplateID=\"2\"", "TemplateID=\"5\"");
    assert!(matches!(read(&f.zip()), Err(OfdError::Structure { .. })));

    let mut f = files();
    f.set(
        "Doc_0/Tags/CustomTag.xml",
        format!("<a>{}</a>", "<b>".repeat(40) + &"</b>".repeat(40)).into_bytes(),
    );
    assert!(matches!(read(&f.zip()), Err(OfdError::Structure { .. })));

    assert!(matches!(read(b"PK\x03\x04garbage"), Err(OfdError::Zip(_))));
    assert!(matches!(read(b""), Err(OfdError::Zip(_))));
}

#[test]
fn an_entry_that_inflates_past_the_cap_is_refused() {
    let mut f = files();
    // 40 MiB of zeros deflates to about 40 KiB: more than any entry may hold.
    let size = usize::try_from(package::MAX_ENTRY_BYTES).unwrap() + 8 * 1024 * 1024;
    f.set("Doc_0/Res/font_1.ttf", vec![0; size]);
    let zipped = f.zip();
    assert!(zipped.len() < 1024 * 1024);
    assert!(matches!(read(&zipped), Err(OfdError::TooLarge { .. })));
}

#[test]
fn a_flipped_byte_in_an_entry_fails_its_checksum() {
    // Incompressible content, so that its deflated data is long enough to hit.
    let mut state = 0x2545_f491_u32;
    let noise: Vec<u8> = (0..4000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect();
    let bytes = OfdFiles::contract(NUMBER, &noise).zip();
    // Somewhere in the middle of the attachment's deflated data.
    let at = bytes
        .windows(NUMBER.len() + 4)
        .position(|w| w == format!("{NUMBER}.xml").as_bytes())
        .unwrap();
    let mut tampered = bytes.clone();
    tampered[at + 60] ^= 0x01;
    assert!(read(&tampered).is_err());
}

#[test]
fn tiny_fonts_map_what_they_are_given() {
    let font = tiny_font("发票A1".chars());
    let face = ttf_parser::Face::parse(&font, 0).unwrap();
    assert_eq!(face.number_of_glyphs(), 5);
    for c in "发票A1".chars() {
        assert!(face.glyph_index(c).is_some_and(|g| g.0 != 0), "{c}");
    }
    assert_eq!(face.glyph_index('B'), None);
}
