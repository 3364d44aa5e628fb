//! Test support: a small OFD package built by hand following the package contract the writer
//! keeps, and a tiny TrueType font mapping exactly the characters it is given.
//!
//! Used by the unit tests and, through `#[path]`, by the integration tests, so it may only use
//! what both can see: std and the `zip` crate. It must never be compiled into the library.

#![allow(dead_code)]

use std::io::{Cursor, Write};

use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

/// The namespace of every OFD file.
pub const OFD_NS: &str = "http://www.ofdspec.org/2016";

/// A package as a list of entries that tests can change before zipping.
#[derive(Debug, Clone)]
pub struct OfdFiles {
    pub files: Vec<(String, Vec<u8>)>,
}

/// The text objects of the hand-built page: `(ID, text)`.
pub const PAGE_TEXT: [(u32, &str); 8] = [
    (9, "{number}"),
    (10, "2025年03月07日"),
    (11, "王小明"),
    (12, "上海发票示例科技有限公司"),
    (13, "*信息技术服务*订单管理"),
    (14, "系统定制开发"),
    (15, "1000.00"),
    (16, "壹仟零陆拾圆整"),
];

/// The text objects of the template: `(ID, text)`.
pub const TEMPLATE_TEXT: [(u32, &str); 2] = [(5, "电子发票（普通发票）"), (6, "发票号码：")];

impl OfdFiles {
    /// A one-page invoice package for `number` with `xml` attached, its font mapping every
    /// character shown.
    pub fn contract(number: &str, xml: &[u8]) -> Self {
        let page: Vec<(u32, String)> = PAGE_TEXT
            .iter()
            .map(|(id, t)| (*id, t.replace("{number}", number)))
            .collect();
        let template: Vec<(u32, String)> = TEMPLATE_TEXT
            .iter()
            .map(|(id, t)| (*id, (*t).to_owned()))
            .collect();
        let chars = page.iter().chain(&template).flat_map(|(_, t)| t.chars());
        let font = tiny_font(chars);
        Self::with_font(number, xml, &template, &page, font)
    }

    fn with_font(
        number: &str,
        xml: &[u8],
        template: &[(u32, String)],
        page: &[(u32, String)],
        font: Vec<u8>,
    ) -> Self {
        let head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
        let ofd = format!(
            "{head}<ofd:OFD xmlns:ofd=\"{OFD_NS}\" Version=\"1.1\" DocType=\"OFD\"><ofd:DocBody>\
             <ofd:DocInfo><ofd:DocID>0f1e2d3c4b5a69788796a5b4c3d2e1f0</ofd:DocID>\
             <ofd:Title>{number}</ofd:Title><ofd:CreationDate>2025-03-07</ofd:CreationDate>\
             <ofd:Creator>fapiao</ofd:Creator><ofd:CreatorVersion>0.1.0</ofd:CreatorVersion>\
             <ofd:CustomDatas>\
             <ofd:CustomData Name=\"发票号码\">{number}</ofd:CustomData>\
             <ofd:CustomData Name=\"开票日期\">2025年03月07日</ofd:CustomData>\
             <ofd:CustomData Name=\"合计金额\">1000.00</ofd:CustomData>\
             <ofd:CustomData Name=\"合计税额\">60.00</ofd:CustomData>\
             <ofd:CustomData Name=\"价税合计\">1060.00</ofd:CustomData>\
             <ofd:CustomData Name=\"购买方名称\">王小明</ofd:CustomData>\
             <ofd:CustomData Name=\"购买方纳税人识别号\"></ofd:CustomData>\
             <ofd:CustomData Name=\"销售方名称\">上海发票示例科技有限公司</ofd:CustomData>\
             <ofd:CustomData Name=\"销售方纳税人识别号\">91310000MA1FP00011</ofd:CustomData>\
             </ofd:CustomDatas></ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot>\
             </ofd:DocBody></ofd:OFD>"
        );
        let document = format!(
            "{head}<ofd:Document xmlns:ofd=\"{OFD_NS}\"><ofd:CommonData>\
             <ofd:MaxUnitID>20</ofd:MaxUnitID>\
             <ofd:PageArea><ofd:PhysicalBox>0 0 210 140</ofd:PhysicalBox></ofd:PageArea>\
             <ofd:PublicRes>PublicRes.xml</ofd:PublicRes>\
             <ofd:TemplatePage ID=\"2\" BaseLoc=\"Tpls/Tpl_0/Content.xml\"/>\
             </ofd:CommonData>\
             <ofd:Pages><ofd:Page ID=\"3\" BaseLoc=\"Pages/Page_0/Content.xml\"/></ofd:Pages>\
             <ofd:Attachments>Attachs/Attachments.xml</ofd:Attachments>\
             <ofd:CustomTags>Tags/CustomTags.xml</ofd:CustomTags></ofd:Document>"
        );
        let res = format!(
            "{head}<ofd:Res xmlns:ofd=\"{OFD_NS}\" BaseLoc=\"Res\"><ofd:Fonts>\
             <ofd:Font ID=\"1\" FontName=\"Tiny\" FamilyName=\"Tiny\">\
             <ofd:FontFile>font_1.ttf</ofd:FontFile></ofd:Font></ofd:Fonts></ofd:Res>"
        );
        let content = |layer: u32, objects: &[(u32, String)], extra: &str| {
            let mut out = format!("<ofd:Content><ofd:Layer ID=\"{layer}\">");
            for (id, text) in objects {
                out.push_str(&format!(
                    "<ofd:TextObject ID=\"{id}\" Boundary=\"10 10 100 6\" Font=\"1\" Size=\"3.5\">\
                     <ofd:FillColor Value=\"0 0 0\"/>\
                     <ofd:TextCode X=\"0\" Y=\"4\">{text}</ofd:TextCode></ofd:TextObject>"
                ));
            }
            out.push_str(extra);
            out.push_str("</ofd:Layer></ofd:Content>");
            out
        };
        let frame = "<ofd:PathObject ID=\"7\" Boundary=\"5 5 200 130\" LineWidth=\"0.25\">\
                     <ofd:AbbreviatedData>M 0 0 L 200 0 L 200 130 L 0 130 C</ofd:AbbreviatedData>\
                     </ofd:PathObject>";
        let tpl = format!(
            "{head}<ofd:Page xmlns:ofd=\"{OFD_NS}\">{}</ofd:Page>",
            content(4, template, frame)
        );
        let page_xml = format!(
            "{head}<ofd:Page xmlns:ofd=\"{OFD_NS}\">\
             <ofd:Template TemplateID=\"2\" ZOrder=\"Background\"/>{}</ofd:Page>",
            content(8, page, "")
        );
        let attachments = format!(
            "{head}<ofd:Attachments xmlns:ofd=\"{OFD_NS}\">\
             <ofd:Attachment ID=\"att_0\" Name=\"{number}.xml\" Format=\"xml\" \
             CreationDate=\"2025-03-07\" Size=\"{}\" Visible=\"false\">\
             <ofd:FileLoc>{number}.xml</ofd:FileLoc></ofd:Attachment></ofd:Attachments>",
            xml.len()
        );
        let tags = format!(
            "{head}<ofd:CustomTags xmlns:ofd=\"{OFD_NS}\">\
             <ofd:CustomTag NameSpace=\"urn:fapiao:einvoice\" TypeID=\"EInvoice\">\
             <ofd:FileLoc>CustomTag.xml</ofd:FileLoc></ofd:CustomTag></ofd:CustomTags>"
        );
        let r = |id: u32| format!("<ofd:ObjectRef PageRef=\"3\">{id}</ofd:ObjectRef>");
        let tag = format!(
            "{head}<EInvoice xmlns:ofd=\"{OFD_NS}\">\
             <TaxSupervisionInfo><InvoiceNumber>{}</InvoiceNumber>\
             <IssueTime>{}</IssueTime></TaxSupervisionInfo>\
             <EInvoiceData><BuyerInformation><BuyerName>{}</BuyerName><BuyerIdNum/>\
             </BuyerInformation><SellerInformation><SellerName>{}</SellerName>\
             </SellerInformation><BasicInformation>\
             <TotalTax-includedAmountInChinese>{}</TotalTax-includedAmountInChinese>\
             </BasicInformation>\
             <IssuItemInformation><ItemName>{}{}</ItemName><Amount>{}</Amount>\
             </IssuItemInformation>\
             <AdditionalInformation><Remark/></AdditionalInformation></EInvoiceData></EInvoice>",
            r(9),
            r(10),
            r(11),
            r(12),
            r(16),
            r(13),
            r(14),
            r(15)
        );
        let files = vec![
            ("OFD.xml".to_owned(), ofd.into_bytes()),
            ("Doc_0/Document.xml".to_owned(), document.into_bytes()),
            ("Doc_0/PublicRes.xml".to_owned(), res.into_bytes()),
            ("Doc_0/Res/font_1.ttf".to_owned(), font),
            ("Doc_0/Tpls/Tpl_0/Content.xml".to_owned(), tpl.into_bytes()),
            (
                "Doc_0/Pages/Page_0/Content.xml".to_owned(),
                page_xml.into_bytes(),
            ),
            (
                "Doc_0/Attachs/Attachments.xml".to_owned(),
                attachments.into_bytes(),
            ),
            (format!("Doc_0/Attachs/{number}.xml"), xml.to_vec()),
            ("Doc_0/Tags/CustomTags.xml".to_owned(), tags.into_bytes()),
            ("Doc_0/Tags/CustomTag.xml".to_owned(), tag.into_bytes()),
        ];
        Self { files }
    }

    /// Replace (or add) the entry at `path`.
    pub fn set(&mut self, path: &str, data: Vec<u8>) {
        match self.files.iter_mut().find(|(p, _)| p == path) {
            Some(entry) => entry.1 = data,
            None => self.files.push((path.to_owned(), data)),
        }
    }

    pub fn remove(&mut self, path: &str) {
        self.files.retain(|(p, _)| p != path);
    }

    /// Replace text inside the entry at `path`; panics when it is not there, so a test cannot
    /// silently change nothing.
    pub fn edit(&mut self, path: &str, from: &str, to: &str) {
        let entry = self
            .files
            .iter_mut()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("no entry {path}"));
        let text = String::from_utf8(entry.1.clone()).unwrap_or_else(|_| panic!("{path} text"));
        assert!(text.contains(from), "{from:?} not in {path}");
        entry.1 = text.replace(from, to).into_bytes();
    }

    /// The ZIP, entries deflated in list order.
    pub fn zip(&self) -> Vec<u8> {
        self.zip_with(CompressionMethod::Deflated)
    }

    /// The ZIP, entries compressed with `method` in list order (stored is quicker for big fonts
    /// in unoptimised test builds).
    pub fn zip_with(&self, method: CompressionMethod) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default().compression_method(method);
        for (path, data) in &self.files {
            zip.start_file(path.as_str(), options)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            zip.write_all(data)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        zip.finish()
            .unwrap_or_else(|e| panic!("zip: {e}"))
            .into_inner()
    }
}

/// A minimal TrueType font: `.notdef` plus one empty glyph per distinct character, mapped by a
/// format-12 `cmap`. Enough for `ttf_parser` to load it and map the characters; nothing draws.
pub fn tiny_font(chars: impl IntoIterator<Item = char>) -> Vec<u8> {
    let mut chars: Vec<char> = chars.into_iter().collect();
    chars.sort_unstable();
    chars.dedup();
    let glyphs = u16::try_from(chars.len() + 1).unwrap_or(u16::MAX);

    let mut cmap = Vec::new();
    put16(&mut cmap, 0); // version
    put16(&mut cmap, 1); // one encoding record
    put16(&mut cmap, 3); // Windows
    put16(&mut cmap, 10); // Unicode full repertoire
    put32(&mut cmap, 12); // subtable offset
    let groups = u32::try_from(chars.len()).unwrap_or(0);
    put16(&mut cmap, 12); // format
    put16(&mut cmap, 0);
    put32(&mut cmap, 16 + 12 * groups); // length
    put32(&mut cmap, 0); // language
    put32(&mut cmap, groups);
    for (i, c) in chars.iter().enumerate() {
        put32(&mut cmap, u32::from(*c));
        put32(&mut cmap, u32::from(*c));
        put32(&mut cmap, u32::try_from(i + 1).unwrap_or(0));
    }

    let mut head = Vec::new();
    put32(&mut head, 0x0001_0000);
    put32(&mut head, 0x0001_0000); // font revision
    put32(&mut head, 0); // checksum adjustment
    put32(&mut head, 0x5F0F_3CF5); // magic
    put16(&mut head, 0); // flags
    put16(&mut head, 1000); // units per em
    head.extend_from_slice(&[0; 16]); // created, modified
    for v in [0u16, 0, 1000, 1000] {
        put16(&mut head, v); // bounding box
    }
    put16(&mut head, 0); // mac style
    put16(&mut head, 8); // lowest readable size
    put16(&mut head, 2); // direction hint
    put16(&mut head, 0); // short loca offsets
    put16(&mut head, 0); // glyph data format

    let mut hhea = Vec::new();
    put32(&mut hhea, 0x0001_0000);
    for v in [
        800u16,
        (-200i16) as u16,
        0,
        1000,
        0,
        0,
        1000,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ] {
        put16(&mut hhea, v);
    }
    put16(&mut hhea, glyphs); // number of long metrics

    let mut hmtx = Vec::new();
    for _ in 0..glyphs {
        put16(&mut hmtx, 1000);
        put16(&mut hmtx, 0);
    }
    let loca = vec![0u8; 2 * (usize::from(glyphs) + 1)];
    let mut maxp = Vec::new();
    put32(&mut maxp, 0x0000_5000);
    put16(&mut maxp, glyphs);

    let tables: [(&[u8; 4], Vec<u8>); 7] = [
        (b"cmap", cmap),
        (b"glyf", Vec::new()),
        (b"head", head),
        (b"hhea", hhea),
        (b"hmtx", hmtx),
        (b"loca", loca),
        (b"maxp", maxp),
    ];
    let mut out = Vec::new();
    put32(&mut out, 0x0001_0000);
    put16(&mut out, 7);
    for v in [64u16, 2, 48] {
        put16(&mut out, v); // search range, entry selector, range shift
    }
    let mut offset = 12 + 16 * tables.len();
    let mut body = Vec::new();
    for (tag, data) in &tables {
        out.extend_from_slice(*tag);
        put32(&mut out, 0); // checksum: not checked by readers of a test font
        put32(&mut out, u32::try_from(offset).unwrap_or(0));
        put32(&mut out, u32::try_from(data.len()).unwrap_or(0));
        body.extend_from_slice(data);
        while body.len() % 4 != 0 {
            body.push(0);
        }
        offset = 12 + 16 * tables.len() + body.len();
    }
    out.extend_from_slice(&body);
    out
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}
