//! Whether a read OFD package can be drawn by a reader that has none of our fonts installed.
//!
//! Owns the rendering preconditions checked for auditors: a page size, a `MaxUnitID` covering
//! every id, and for every text object a declared font whose embedded file loads and maps every
//! character shown. It must not rasterise anything or judge the layout.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use super::{OfdError, OfdInvoice};

/// Check that `doc` can be drawn: see the module documentation for what that means.
pub fn check_renders(doc: &OfdInvoice) -> Result<(), OfdError> {
    if doc.physical_box.is_none()
        && let Some(page) = doc.pages.iter().find(|p| p.physical_box.is_none())
    {
        return Err(OfdError::PhysicalBox(format!(
            "neither the document nor page {} has one",
            page.id
        )));
    }
    let page_boxes = doc.pages.iter().filter_map(|p| p.physical_box.as_ref());
    for text in doc.physical_box.iter().chain(page_boxes) {
        physical_box(text)?;
    }

    let max = doc
        .max_unit_id
        .as_deref()
        .ok_or_else(|| OfdError::MaxUnitId("is missing".to_owned()))?;
    let max: u64 = max
        .parse()
        .map_err(|_| OfdError::MaxUnitId(format!("{max:?} is not a number")))?;
    if doc.highest_id > max {
        return Err(OfdError::MaxUnitId(format!(
            "{max} is below the id {} used in the document",
            doc.highest_id
        )));
    }

    // Characters per font, collected first so each font is loaded once and each character
    // looked up once, however many objects and pages show it.
    let mut shown: BTreeMap<&str, BTreeSet<char>> = BTreeMap::new();
    for object in doc.pages.iter().flat_map(|p| &p.text_objects) {
        if !doc.fonts.iter().any(|f| f.id == object.font) {
            return Err(OfdError::UnknownFont {
                object: object.id.clone(),
                font: object.font.clone(),
            });
        }
        shown
            .entry(object.font.as_str())
            .or_default()
            .extend(object.text.chars());
    }
    for (id, chars) in shown {
        let Some(font) = doc.fonts.iter().find(|f| f.id == id) else {
            continue;
        };
        let Some(data) = font.data.as_deref() else {
            return Err(OfdError::NoFontFile {
                font: id.to_owned(),
                file: font.file.clone(),
            });
        };
        let face = ttf_parser::Face::parse(data, 0).map_err(|e| OfdError::FontLoad {
            font: id.to_owned(),
            reason: e.to_string(),
        })?;
        // Line ends and tabs inside a TextCode are not drawn, so they need no glyph.
        for ch in chars
            .into_iter()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        {
            if face.glyph_index(ch).is_none_or(|g| g.0 == 0) {
                return Err(OfdError::MissingGlyph {
                    font: id.to_owned(),
                    ch,
                });
            }
        }
    }
    Ok(())
}

/// A `PhysicalBox` is four numbers `x y width height` with a positive width and height.
fn physical_box(text: &str) -> Result<(), OfdError> {
    let numbers: Vec<Decimal> = text
        .split_ascii_whitespace()
        .map(|n| crate::xml::decimal(n).ok_or(()))
        .collect::<Result<_, _>>()
        .map_err(|()| OfdError::PhysicalBox(format!("{text:?} is not four numbers")))?;
    match numbers.as_slice() {
        [_, _, w, h] if *w > Decimal::ZERO && *h > Decimal::ZERO => Ok(()),
        _ => Err(OfdError::PhysicalBox(format!(
            "{text:?} is not a box with a size"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physical_boxes() {
        assert!(physical_box("0 0 210 140").is_ok());
        assert!(physical_box(" 0 0 210.5 140 ").is_ok());
        for bad in [
            "",
            "0 0 210",
            "0 0 0 140",
            "0 0 210 -1",
            "0 0 a 140",
            "0 0 210 140 5",
        ] {
            assert!(physical_box(bad).is_err(), "{bad:?}");
        }
    }
}
