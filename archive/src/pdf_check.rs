//! Checks a PDF layout file: that it parses ([`check`]) and that every page can be drawn with
//! the fonts it embeds ([`PdfFile::check_renders`]).
//!
//! It owns the rendering preconditions auditors rely on: each page's content, and that of every
//! form XObject it draws, decodes; every font selected with `Tf` is in the resources in scope,
//! embeds a TrueType or OpenType program (`FontFile2`/`FontFile3`) that loads, and has a
//! `ToUnicode` map (so text can be searched and copied); and every glyph a two-byte (Identity)
//! font shows exists in its program. It parses only what those checks need, must not rasterise
//! or judge the layout, and never panics; every decompression is capped. Content streams are
//! read with a lexer that keeps only the operators checked (`pdf_check::content`), and a font program
//! already inflated on the thread for the OFD is reused (`check::memo`).

mod content;

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use lopdf::{Dictionary, Document, LoadOptions, Object, ObjectId};

use crate::check::memo;
use content::{Operand, for_each_op};

/// Largest input accepted: a one-page invoice with its font subset is tens of kilobytes.
pub const MAX_PDF_BYTES: usize = 32 * 1024 * 1024;
/// Cap on any one decompressed stream (page content, font program).
const MAX_STREAM_BYTES: usize = 32 * 1024 * 1024;

/// What [`check`] reports of a PDF that parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfSummary {
    /// The header version (`1.7`).
    pub version: String,
    pub pages: usize,
}

/// Why a PDF does not parse or cannot be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfError {
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("not a readable PDF: {0}")]
    Load(String),
    #[error("the PDF has no page")]
    NoPages,
    #[error("page {page}: {reason}")]
    Content { page: u32, reason: String },
    #[error("page {page}: font /{name} is selected but not in the page resources")]
    UnknownFont { page: u32, name: String },
    #[error("page {page}: font /{name}: {reason}")]
    Font {
        page: u32,
        name: String,
        reason: String,
    },
    #[error("page {page}: font /{name} shows glyph {glyph}, but its program has {count} glyphs")]
    MissingGlyph {
        page: u32,
        name: String,
        glyph: u32,
        count: u16,
    },
}

/// A loaded PDF, so that parsing and the render check share one parse.
#[derive(Debug)]
pub struct PdfFile {
    doc: Document,
    pages: Vec<(u32, ObjectId)>,
}

/// Load `bytes` as a PDF with at least one page.
pub fn open(bytes: &[u8]) -> Result<PdfFile, PdfError> {
    if bytes.len() > MAX_PDF_BYTES {
        return Err(PdfError::TooLarge {
            limit: MAX_PDF_BYTES,
        });
    }
    // Strict: a file that needs repairing (a cut-off end, a broken cross-reference table) is not
    // the file that was archived, even if a lenient reader could still show some of it.
    let options = LoadOptions {
        max_decompressed_size: Some(MAX_STREAM_BYTES),
        strict: true,
        ..LoadOptions::default()
    };
    let doc = Document::load_mem_with_options(bytes, options)
        .map_err(|e| PdfError::Load(e.to_string()))?;
    let pages: Vec<(u32, ObjectId)> = doc.get_pages().into_iter().collect();
    if pages.is_empty() {
        return Err(PdfError::NoPages);
    }
    Ok(PdfFile { doc, pages })
}

/// Parse `bytes` and summarise them; see [`PdfFile::check_renders`] for the render check.
pub fn check(bytes: &[u8]) -> Result<PdfSummary, PdfError> {
    open(bytes).map(|file| file.summary())
}

/// Parse `bytes` and check that every page can be drawn.
pub fn check_renders(bytes: &[u8]) -> Result<(), PdfError> {
    open(bytes)?.check_renders()
}

/// Fonts already loaded (pages and forms share them; keyed by their dictionary) and forms
/// already checked.
#[derive(Debug, Default)]
struct Seen {
    fonts: HashMap<*const Dictionary, Rc<FontInfo>>,
    forms: HashSet<ObjectId>,
}

/// How deep forms may draw forms.
const MAX_FORM_DEPTH: usize = 8;

/// A font as far as the glyph check needs it.
#[derive(Debug)]
struct FontInfo {
    /// Glyphs in the embedded program.
    glyphs: u16,
    /// How shown codes become glyph ids: `None` for a one-byte font (its codes go through an
    /// encoding and the program's `cmap`, which this check does not model).
    codes: Option<Cids>,
}

#[derive(Debug)]
enum Cids {
    /// Two-byte codes that are glyph ids (`Identity-H`/`-V` with an identity `CIDToGIDMap`).
    Identity,
    /// Two-byte codes mapped through a `CIDToGIDMap` stream.
    Mapped(Vec<u16>),
    /// Codes in an embedded CMap: shown glyphs are not checked.
    Unchecked,
}

impl PdfFile {
    pub fn summary(&self) -> PdfSummary {
        PdfSummary {
            version: self.doc.version.clone(),
            pages: self.pages.len(),
        }
    }

    /// Check that every page can be drawn with the fonts the file embeds (see the module
    /// documentation).
    pub fn check_renders(&self) -> Result<(), PdfError> {
        let mut seen = Seen::default();
        for &(page, id) in &self.pages {
            let missing = |what: &str| PdfError::Content {
                page,
                reason: format!("{what} is missing"),
            };
            if self.doc.get_dictionary(id).is_err() {
                return Err(missing("the page object"));
            }
            for stream in self.doc.get_page_contents(id) {
                if self
                    .doc
                    .get_object(stream)
                    .and_then(Object::as_stream)
                    .is_err()
                {
                    return Err(missing(&format!(
                        "content stream {} {}",
                        stream.0, stream.1
                    )));
                }
            }
            let data = self
                .doc
                .get_page_content_with_limit(id, MAX_STREAM_BYTES)
                .map_err(|e| PdfError::Content {
                    page,
                    reason: e.to_string(),
                })?;
            let resources = self.page_resources(id);
            self.check_stream(page, &data, &resources, None, 0, &mut seen)?;
        }
        Ok(())
    }

    /// The resource dictionaries of a page, nearest first (the page's own, then inherited).
    fn page_resources(&self, page: ObjectId) -> Vec<&Dictionary> {
        let Ok((direct, ids)) = self.doc.get_page_resources(page) else {
            return Vec::new();
        };
        direct
            .into_iter()
            .chain(
                ids.iter()
                    .filter_map(|id| self.doc.get_dictionary(*id).ok()),
            )
            .collect()
    }

    /// The entry `name` of the `category` (`Font`, `XObject`) of the first resource dictionary
    /// that has it.
    fn resource<'d>(
        &'d self,
        resources: &[&'d Dictionary],
        category: &[u8],
        name: &[u8],
    ) -> Option<(Option<ObjectId>, &'d Object)> {
        resources.iter().find_map(|res| {
            let entries = res
                .get_deref(category, &self.doc)
                .and_then(Object::as_dict)
                .ok()?;
            let entry = entries.get(name).ok()?;
            self.doc.dereference(entry).ok()
        })
    }

    /// One content stream (a page's, or a form's it draws), with the resources it sees.
    fn check_stream(
        &self,
        page: u32,
        data: &[u8],
        resources: &[&Dictionary],
        inherited: Option<(String, Rc<FontInfo>)>,
        depth: usize,
        seen: &mut Seen,
    ) -> Result<(), PdfError> {
        let content_error = |reason: String| PdfError::Content { page, reason };
        // The font belongs to the graphics state, which a form inherits from its caller.
        let mut current = inherited;
        let each = |operator: &[u8], operands: &[Operand]| -> Result<(), PdfError> {
            let name_operand = || match operands.first() {
                Some(Operand::Name(name)) => Ok(name.as_slice()),
                _ => Err(content_error(format!(
                    "{} without a name",
                    String::from_utf8_lossy(operator)
                ))),
            };
            let shown: Vec<&[u8]> = match operator {
                b"Tf" => {
                    let name = name_operand()?;
                    current = Some(self.select_font(page, name, resources, seen)?);
                    return Ok(());
                }
                b"Do" => {
                    let name = name_operand()?;
                    return self.check_form(page, name, resources, current.clone(), depth, seen);
                }
                b"Tj" | b"'" => operands.last().and_then(string).into_iter().collect(),
                b"\"" => operands.get(2).and_then(string).into_iter().collect(),
                b"TJ" => match operands.first() {
                    Some(Operand::Array(items)) => items.iter().filter_map(string).collect(),
                    _ => Vec::new(),
                },
                _ => return Ok(()),
            };
            let Some((name, font)) = &current else {
                return Err(content_error(format!(
                    "{} shows text before any Tf",
                    String::from_utf8_lossy(operator)
                )));
            };
            for bytes in shown {
                check_glyphs(page, name, font, bytes)?;
            }
            Ok(())
        };
        for_each_op(data, each, |e| {
            content_error(format!("content does not decode: {e}"))
        })
    }

    /// The font `Tf` selects, loaded once per file.
    fn select_font(
        &self,
        page: u32,
        name: &[u8],
        resources: &[&Dictionary],
        seen: &mut Seen,
    ) -> Result<(String, Rc<FontInfo>), PdfError> {
        let text_name = String::from_utf8_lossy(name).into_owned();
        let dict = match self.resource(resources, b"Font", name) {
            Some((_, Object::Dictionary(dict))) => dict,
            _ => {
                return Err(PdfError::UnknownFont {
                    page,
                    name: text_name,
                });
            }
        };
        let key: *const Dictionary = dict;
        if let Some(info) = seen.fonts.get(&key) {
            return Ok((text_name, Rc::clone(info)));
        }
        let info = self.font(dict).map_err(|reason| PdfError::Font {
            page,
            name: text_name.clone(),
            reason,
        })?;
        let info = Rc::new(info);
        seen.fonts.insert(key, Rc::clone(&info));
        Ok((text_name, info))
    }

    /// The form XObject a `Do` draws, checked like a page the first time it is drawn; images
    /// and other XObjects draw no text and pass.
    fn check_form(
        &self,
        page: u32,
        name: &[u8],
        resources: &[&Dictionary],
        current: Option<(String, Rc<FontInfo>)>,
        depth: usize,
        seen: &mut Seen,
    ) -> Result<(), PdfError> {
        let content_error = |reason: String| PdfError::Content { page, reason };
        let text_name = String::from_utf8_lossy(name);
        let Some((id, object)) = self.resource(resources, b"XObject", name) else {
            return Err(content_error(format!(
                "XObject /{text_name} is not in the resources"
            )));
        };
        let Object::Stream(form) = object else {
            return Err(content_error(format!(
                "XObject /{text_name} is not a stream"
            )));
        };
        if form.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form") {
            return Ok(());
        }
        if depth >= MAX_FORM_DEPTH {
            return Err(content_error("forms nest too deep".to_owned()));
        }
        if let Some(id) = id
            && !seen.forms.insert(id)
        {
            return Ok(());
        }
        let data = form
            .decompressed_content_with_limit(MAX_STREAM_BYTES)
            .map_err(|e| content_error(format!("form /{text_name}: {e}")))?;
        // A form without resources of its own uses its caller's (allowed by older PDFs).
        let own = form
            .dict
            .get_deref(b"Resources", &self.doc)
            .and_then(Object::as_dict);
        let form_resources: Vec<&Dictionary> = match own {
            Ok(own) => vec![own],
            Err(_) => resources.to_vec(),
        };
        self.check_stream(page, &data, &form_resources, current, depth + 1, seen)
    }

    /// What the check needs of one font dictionary, or why it cannot be drawn.
    fn font(&self, dict: &Dictionary) -> Result<FontInfo, String> {
        let doc = &self.doc;
        let subtype = dict
            .get(b"Subtype")
            .and_then(Object::as_name)
            .map_err(|_| "no Subtype".to_owned())?;
        match dict.get_deref(b"ToUnicode", doc) {
            Ok(Object::Stream(_)) => {}
            _ => return Err("no ToUnicode map".to_owned()),
        }
        let (descriptor_owner, codes) = if subtype == b"Type0" {
            let descendant = dict
                .get_deref(b"DescendantFonts", doc)
                .and_then(Object::as_array)
                .ok()
                .and_then(|a| a.first())
                .and_then(|d| doc.dereference(d).ok())
                .and_then(|(_, d)| d.as_dict().ok())
                .ok_or_else(|| "Type0 font without a descendant font".to_owned())?;
            let identity = matches!(
                dict.get(b"Encoding").and_then(Object::as_name),
                Ok(b"Identity-H" | b"Identity-V")
            );
            let codes = if !identity {
                Cids::Unchecked
            } else {
                match descendant.get_deref(b"CIDToGIDMap", doc) {
                    Ok(Object::Stream(map)) => {
                        let data = map
                            .decompressed_content_with_limit(MAX_STREAM_BYTES)
                            .map_err(|e| format!("CIDToGIDMap: {e}"))?;
                        Cids::Mapped(
                            data.chunks_exact(2)
                                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                                .collect(),
                        )
                    }
                    _ => Cids::Identity,
                }
            };
            (descendant, Some(codes))
        } else {
            (dict, None)
        };
        let descriptor = descriptor_owner
            .get_deref(b"FontDescriptor", doc)
            .and_then(Object::as_dict)
            .map_err(|_| "no FontDescriptor".to_owned())?;
        let program = [b"FontFile2".as_slice(), b"FontFile3"]
            .into_iter()
            .find_map(|key| descriptor.get_deref(key, doc).ok())
            .and_then(|o| o.as_stream().ok())
            .ok_or_else(|| "no embedded TrueType or OpenType program".to_owned())?;
        let inflate = || {
            program
                .decompressed_content_with_limit(MAX_STREAM_BYTES)
                .map(Arc::from)
                .map_err(|e| format!("font program: {e}"))
        };
        // The OFD embeds the same subset with the same deflate data: inflate it once.
        let data: Arc<[u8]> = match zlib_payload(program) {
            Some(raw) => memo::get_or_try(&memo::INFLATED, raw, inflate)?,
            None => inflate()?,
        };
        let face = ttf_parser::Face::parse(&data, 0)
            .map_err(|e| format!("font program does not load: {e}"))?;
        Ok(FontInfo {
            glyphs: face.number_of_glyphs(),
            codes,
        })
    }
}

/// The raw deflate data of a stream that is exactly one `FlateDecode` with no parameters: its
/// content without the two-byte zlib header (checked) and the Adler-32 trailer.
fn zlib_payload(stream: &lopdf::Stream) -> Option<&[u8]> {
    let filters = stream.filters().ok()?;
    if filters != [b"FlateDecode".as_slice()] || stream.dict.has(b"DecodeParms") {
        return None;
    }
    let content = &stream.content;
    let (&cmf, &flg) = (content.first()?, content.get(1)?);
    let header_ok = cmf & 0x0f == 8
        && cmf >> 4 <= 7
        && flg & 0x20 == 0
        && (u16::from(cmf) * 256 + u16::from(flg)) % 31 == 0;
    if !header_ok {
        return None;
    }
    content.get(2..content.len().checked_sub(4)?)
}

fn string(operand: &Operand) -> Option<&[u8]> {
    match operand {
        Operand::Str(bytes) => Some(bytes),
        _ => None,
    }
}

fn check_glyphs(page: u32, name: &str, font: &FontInfo, bytes: &[u8]) -> Result<(), PdfError> {
    let map: Option<&[u16]> = match &font.codes {
        None | Some(Cids::Unchecked) => return Ok(()),
        Some(Cids::Identity) => None,
        Some(Cids::Mapped(map)) => Some(map),
    };
    if !bytes.len().is_multiple_of(2) {
        return Err(PdfError::Content {
            page,
            reason: format!("odd-length string shown with two-byte font /{name}"),
        });
    }
    for pair in bytes.chunks_exact(2) {
        let cid = u16::from_be_bytes([pair[0], pair[1]]);
        let glyph = match map {
            None => Some(cid),
            Some(map) => map.get(usize::from(cid)).copied(),
        };
        match glyph {
            Some(g) if g < font.glyphs => {}
            _ => {
                return Err(PdfError::MissingGlyph {
                    page,
                    name: name.to_owned(),
                    glyph: u32::from(glyph.unwrap_or(cid)),
                    count: font.glyphs,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
