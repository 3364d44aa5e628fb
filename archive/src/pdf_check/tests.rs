//! The PDF checks against small PDFs built here with lopdf, good and broken.

use lopdf::content::{Content, Operation};
use lopdf::{Object, Stream, StringFormat, dictionary};

use super::*;
use crate::ofd_read::testkit::tiny_font;

/// What the built PDF contains; each test breaks one thing.
pub(crate) struct Spec {
    /// Bytes shown with `Tj` (two-byte glyph ids).
    pub(crate) shown: Vec<u8>,
    /// The name selected with `Tf`.
    pub(crate) selected: &'static str,
    pub(crate) to_unicode: bool,
    pub(crate) program_key: &'static str,
    pub(crate) program: Vec<u8>,
    pub(crate) cid_to_gid: Option<Vec<u16>>,
    pub(crate) pages: usize,
    /// Draw the text from a form XObject (as the writer draws its template), whose resources
    /// hold the font only when `form_has_font`.
    pub(crate) form: bool,
    pub(crate) form_has_font: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            shown: vec![0, 1, 0, 2, 0, 4],
            selected: "F1",
            to_unicode: true,
            program_key: "FontFile2",
            // .notdef and four glyphs.
            program: tiny_font("发票号码".chars()),
            cid_to_gid: None,
            pages: 2,
            form: false,
            form_has_font: true,
        }
    }
}

pub(crate) fn build(spec: Spec) -> Vec<u8> {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let program_id = doc.add_object(Stream::new(dictionary! {}, spec.program));
    let descriptor_id = doc.add_object(dictionary! {
        "Type" => "FontDescriptor",
        "FontName" => "AAAAAA+Tiny",
        "Flags" => 4,
        "FontBBox" => vec![0.into(), 0.into(), 1000.into(), 1000.into()],
        "ItalicAngle" => 0,
        "Ascent" => 800,
        "Descent" => -200,
        "CapHeight" => 700,
        "StemV" => 80,
        spec.program_key => program_id,
    });
    let cid_to_gid: Object = match spec.cid_to_gid {
        None => "Identity".into(),
        Some(map) => {
            let bytes = map.iter().flat_map(|g| g.to_be_bytes()).collect();
            doc.add_object(Stream::new(dictionary! {}, bytes)).into()
        }
    };
    let cid_font = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "CIDFontType2",
        "BaseFont" => "AAAAAA+Tiny",
        "CIDSystemInfo" => dictionary! {
            "Registry" => Object::string_literal("Adobe"),
            "Ordering" => Object::string_literal("Identity"),
            "Supplement" => 0,
        },
        "FontDescriptor" => descriptor_id,
        "CIDToGIDMap" => cid_to_gid,
    });
    let mut font = dictionary! {
        "Type" => "Font",
        "Subtype" => "Type0",
        "BaseFont" => "AAAAAA+Tiny",
        "Encoding" => "Identity-H",
        "DescendantFonts" => vec![cid_font.into()],
    };
    if spec.to_unicode {
        let cmap = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap \
            1 begincodespacerange <0000> <FFFF> endcodespacerange \
            1 beginbfchar <0001> <53D1> endbfchar endcmap end end"
            .to_vec();
        font.set(
            "ToUnicode",
            doc.add_object(Stream::new(dictionary! {}, cmap)),
        );
    }
    let font_id = doc.add_object(font);
    let resources = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let content = Content {
        operations: vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec![spec.selected.into(), 12.into()]),
            Operation::new("Td", vec![100.into(), 600.into()]),
            Operation::new(
                "Tj",
                vec![Object::String(spec.shown, StringFormat::Hexadecimal)],
            ),
            Operation::new("ET", vec![]),
        ],
    };
    let text = content.encode().unwrap();
    let content_id = if spec.form {
        let form_resources = if spec.form_has_font {
            dictionary! { "Font" => dictionary! { "F1" => font_id } }
        } else {
            dictionary! {}
        };
        let mut form_dict = dictionary! {
            "Type" => "XObject",
            "Subtype" => "Form",
            "BBox" => vec![0.into(), 0.into(), 595.into(), 397.into()],
            "Resources" => form_resources,
        };
        form_dict.set("Length", i64::try_from(text.len()).unwrap());
        let form = doc.add_object(Stream::new(form_dict, text));
        let page_resources = doc
            .get_object_mut(resources)
            .and_then(Object::as_dict_mut)
            .unwrap();
        page_resources.set("XObject", dictionary! { "T0" => form });
        doc.add_object(Stream::new(dictionary! {}, b"q /T0 Do Q".to_vec()))
    } else {
        doc.add_object(Stream::new(dictionary! {}, text))
    };
    let kids: Vec<Object> = (0..spec.pages)
        .map(|_| {
            doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content_id,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 397.into()],
            })
            .into()
        })
        .collect();
    let count = i64::try_from(kids.len()).unwrap();
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources,
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    doc.compress();
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

#[test]
fn a_good_pdf_parses_and_renders() {
    let bytes = build(Spec::default());
    assert_eq!(
        check(&bytes).unwrap(),
        PdfSummary {
            version: "1.7".into(),
            pages: 2
        }
    );
    check_renders(&bytes).unwrap();
    let mapped = Spec {
        cid_to_gid: Some(vec![0, 4, 3, 2, 1]),
        ..Spec::default()
    };
    check_renders(&build(mapped)).unwrap();
    let form = Spec {
        form: true,
        ..Spec::default()
    };
    check_renders(&build(form)).unwrap();
}

#[test]
fn text_drawn_by_a_form_is_checked_with_the_form_resources() {
    let no_font = Spec {
        form: true,
        form_has_font: false,
        ..Spec::default()
    };
    assert!(matches!(
        check_renders(&build(no_font)),
        Err(PdfError::UnknownFont { .. })
    ));
    let bad_glyph = Spec {
        form: true,
        shown: vec![0, 7],
        ..Spec::default()
    };
    assert!(matches!(
        check_renders(&build(bad_glyph)),
        Err(PdfError::MissingGlyph { glyph: 7, .. })
    ));
}

#[test]
fn render_faults_are_named() {
    let err = |spec: Spec| check_renders(&build(spec)).unwrap_err();
    assert!(matches!(
        err(Spec {
            shown: vec![0, 1, 0, 9],
            ..Spec::default()
        }),
        PdfError::MissingGlyph {
            page: 1,
            glyph: 9,
            count: 5,
            ..
        }
    ));
    assert!(matches!(
        err(Spec {
            shown: vec![0, 1, 0],
            ..Spec::default()
        }),
        PdfError::Content { .. }
    ));
    assert!(matches!(
        err(Spec { selected: "F2", ..Spec::default() }),
        PdfError::UnknownFont { name, .. } if name == "F2"
    ));
    let no_map = err(Spec {
        to_unicode: false,
        ..Spec::default()
    });
    assert!(no_map.to_string().contains("ToUnicode"), "{no_map}");
    let type1 = err(Spec {
        program_key: "FontFile",
        ..Spec::default()
    });
    assert!(type1.to_string().contains("no embedded"), "{type1}");
    let broken = err(Spec {
        program: b"not a font".to_vec(),
        ..Spec::default()
    });
    assert!(broken.to_string().contains("does not load"), "{broken}");
    assert!(matches!(
        err(Spec {
            cid_to_gid: Some(vec![0, 1]),
            ..Spec::default()
        }),
        PdfError::MissingGlyph { .. }
    ));
}

#[test]
fn garbage_and_truncations_are_errors_not_panics() {
    let bytes = build(Spec::default());
    assert!(check(b"").is_err());
    assert!(check(b"%PDF-1.7\n").is_err());
    assert!(
        check(&bytes[..bytes.len() / 2]).is_err()
            || check_renders(&bytes[..bytes.len() / 2]).is_err()
    );
    assert!(matches!(
        check(&build(Spec {
            pages: 0,
            ..Spec::default()
        })),
        Err(PdfError::NoPages)
    ));
    for cut in (0..bytes.len()).step_by(97) {
        let _ = check(&bytes[..cut]);
        let _ = check_renders(&bytes[..cut]);
    }
}
