//! Reads an OFD invoice package back: its custom data, its tagged invoice fields, the attached
//! XML, the text of its pages, and what [`check_renders`] needs to tell whether it can be drawn.
//!
//! It owns the walk from the entry point `OFD.xml` through `DocRoot` to the document, its
//! resources, templates, pages, attachments and custom tags, always by the locations those files
//! name (only `OFD.xml` itself is a fixed name), with names matched by local name so the `ofd:`
//! prefix does not matter. It must not render, repair or trust sizes declared in the ZIP, and
//! never panics on any bytes; whether the invoice's number is the expected one is for
//! [`crate::check`] to decide.
//!
//! Speed matters (auditors verify thousands of invoices a second), so the small structural files
//! are parsed as DOMs but page content and custom tags go through a streaming scanner, entries
//! are inflated with one reused inflater, and identical bytes seen before on the thread (the
//! template of a kind, the font the PDF shares) reuse earlier work (`check::memo`).

mod content;
mod package;
mod render;
mod scan;
mod tags;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use roxmltree::{Document, Node};

use crate::check::memo::{self, Memo};
pub use package::{MAX_ENTRIES, MAX_ENTRY_BYTES, MAX_TOTAL_BYTES};
use package::{Package, dir_of, resolve, resolve_dir};
pub use render::check_renders;

/// What an OFD invoice package holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OfdInvoice {
    /// `DocInfo/CustomDatas`: name → value (the first of a repeated name).
    pub custom_datas: BTreeMap<String, String>,
    /// Tagged fields outside the lines: element path (`TaxSupervisionInfo/InvoiceNumber`) → the
    /// text of the referenced text objects, concatenated in reference order.
    pub tags: BTreeMap<String, String>,
    /// One map per tagged `IssuItemInformation`, in order: child path (`ItemName`) → text.
    pub tag_lines: Vec<BTreeMap<String, String>>,
    /// Every declared attachment.
    pub attachments: Vec<OfdAttachment>,
    /// The bytes of the first XML attachment (the invoice XML), if any.
    pub xml: Option<Vec<u8>>,
    /// Pages in document order.
    pub pages: Vec<OfdPage>,
    /// Every declared font (document, public and page resources).
    pub fonts: Vec<OfdFont>,
    /// `CommonData/MaxUnitID` as written.
    pub max_unit_id: Option<String>,
    /// The highest numeric `ID` in the document, resources, templates and pages.
    pub highest_id: u64,
    /// `CommonData/PageArea/PhysicalBox` as written.
    pub physical_box: Option<String>,
}

/// One page: its own text objects with those of its templates, in drawing order (background
/// templates first, foreground templates last).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OfdPage {
    pub id: String,
    /// `Area/PhysicalBox` of the page, when it overrides the document's.
    pub physical_box: Option<String>,
    pub text_objects: Vec<TextObject>,
}

/// A `TextObject`: its `ID`, its `Font` reference and the text of its `TextCode`s.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextObject {
    pub id: String,
    pub font: String,
    pub text: String,
}

/// A declared font and its embedded file.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct OfdFont {
    pub id: String,
    pub name: String,
    pub family: String,
    /// The package path `FontFile` names, if it names one.
    pub file: Option<String>,
    /// The file's bytes, when the package holds it.
    pub data: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for OfdFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfdFont")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("family", &self.family)
            .field("file", &self.file)
            .field("bytes", &self.data.as_ref().map(|d| d.len()))
            .finish()
    }
}

/// A declared attachment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OfdAttachment {
    pub id: String,
    pub name: String,
    pub format: String,
    /// The package path its `FileLoc` resolves to.
    pub path: String,
}

impl OfdInvoice {
    /// A `CustomData` value by name.
    pub fn custom(&self, name: &str) -> Option<&str> {
        self.custom_datas.get(name).map(String::as_str)
    }

    /// A tagged field by element path.
    pub fn tag(&self, path: &str) -> Option<&str> {
        self.tags.get(path).map(String::as_str)
    }

    /// The text of every text object, page by page, in drawing order.
    pub fn page_text(&self) -> Vec<&str> {
        self.pages
            .iter()
            .flat_map(|p| &p.text_objects)
            .map(|t| t.text.as_str())
            .collect()
    }
}

/// Why a package could not be read, or cannot be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfdError {
    #[error("not a readable ZIP package: {0}")]
    Zip(String),
    #[error("{path} decompresses to more than {limit} bytes")]
    TooLarge { path: String, limit: u64 },
    #[error("{0} is not in the package")]
    Missing(String),
    #[error("{0} is not UTF-8")]
    Encoding(String),
    #[error("{path} is not well-formed XML: {message}")]
    Xml { path: String, message: String },
    #[error("{path}: {what}")]
    Structure { path: String, what: String },
    #[error("bad location {0:?}")]
    BadPath(String),
    #[error("custom tag {tag} refers to text object {id:?}, which no page has")]
    DanglingRef { tag: String, id: String },
    #[error("no usable PhysicalBox: {0}")]
    PhysicalBox(String),
    #[error("MaxUnitID {0}")]
    MaxUnitId(String),
    #[error("text object {object} uses font {font:?}, which is not declared")]
    UnknownFont { object: String, font: String },
    #[error("font {font} has no embedded font file{}", missing_file(.file))]
    NoFontFile { font: String, file: Option<String> },
    #[error("font {font} does not load: {reason}")]
    FontLoad { font: String, reason: String },
    #[error("font {font} has no glyph for {ch:?} (U+{:04X})", u32::from(*.ch))]
    MissingGlyph { font: String, ch: char },
}

/// The end of [`OfdError::NoFontFile`]'s message: the file it names, if any.
fn missing_file(file: &Option<String>) -> String {
    file.as_ref()
        .map(|f| format!(" ({f} is not in the package)"))
        .unwrap_or_default()
}

/// Read an OFD invoice package.
pub fn read(bytes: &[u8]) -> Result<OfdInvoice, OfdError> {
    let mut pkg = Package::open(bytes)?;
    let mut out = OfdInvoice::default();

    let entry = "OFD.xml";
    let text = pkg.read_text(entry)?;
    let ofd = parse_xml(entry, &text)?;
    let body =
        expect_root(entry, &ofd, "OFD").and_then(|root| required_child(entry, root, "DocBody"))?;
    for data in children(
        child(body, "DocInfo").and_then(|i| child(i, "CustomDatas")),
        "CustomData",
    ) {
        let name = data.attribute("Name").unwrap_or("").trim().to_owned();
        out.custom_datas
            .entry(name)
            .or_insert_with(|| node_text(data));
    }
    let doc_path = resolve("", &required_text(entry, body, "DocRoot")?)?;
    let doc_dir = dir_of(&doc_path).to_owned();

    let text = pkg.read_text(&doc_path)?;
    let document = parse_xml(&doc_path, &text)?;
    let root = expect_root(&doc_path, &document, "Document")?;
    out.highest_id = highest_id(root);
    let common = required_child(&doc_path, root, "CommonData")?;
    out.max_unit_id = child(common, "MaxUnitID").map(node_text);
    out.physical_box = child(common, "PageArea")
        .and_then(|a| child(a, "PhysicalBox"))
        .map(node_text);
    for res in common
        .children()
        .filter(|n| is_named(n, "PublicRes") || is_named(n, "DocumentRes"))
    {
        let path = resolve(&doc_dir, &node_text(res))?;
        read_res(&mut pkg, &path, &mut out)?;
    }

    let mut templates: HashMap<String, Template> = HashMap::new();
    for tpl in children(Some(common), "TemplatePage") {
        let id = tpl.attribute("ID").unwrap_or("").trim().to_owned();
        let loc = tpl.attribute("BaseLoc").unwrap_or("");
        templates.insert(id, Template::Declared(resolve(&doc_dir, loc)?));
    }

    let pages = required_child(&doc_path, root, "Pages")?;
    for page in children(Some(pages), "Page") {
        let id = page.attribute("ID").unwrap_or("").trim().to_owned();
        let path = resolve(&doc_dir, page.attribute("BaseLoc").unwrap_or(""))?;
        let parsed = read_page(&mut pkg, &path, &mut templates, &mut out)?;
        out.pages.push(OfdPage { id, ..parsed });
    }
    if out.pages.is_empty() {
        return Err(structure(&doc_path, "the document has no page"));
    }

    if let Some(loc) = child(root, "Attachments").map(node_text) {
        read_attachments(&mut pkg, &resolve(&doc_dir, &loc)?, &mut out)?;
    }
    if let Some(loc) = child(root, "CustomTags").map(node_text) {
        read_custom_tags(&mut pkg, &resolve(&doc_dir, &loc)?, &mut out)?;
    }
    Ok(out)
}

thread_local! {
    /// Template content bytes → its text objects and highest id.
    static TEMPLATES: RefCell<Memo<(Arc<Vec<TextObject>>, u64)>> =
        const { RefCell::new(Memo::new()) };
}

/// A template page: known by location until a page uses it, then its text objects, so a
/// template shared by many pages is read once.
enum Template {
    Declared(String),
    Read(Arc<Vec<TextObject>>),
}

/// A resource file (`PublicRes`, `DocumentRes`, `PageRes`): its fonts, with files resolved
/// against the file's `BaseLoc`.
fn read_res(pkg: &mut Package<'_>, path: &str, out: &mut OfdInvoice) -> Result<(), OfdError> {
    let text = pkg.read_text(path)?;
    let res = parse_xml(path, &text)?;
    let root = expect_root(path, &res, "Res")?;
    out.highest_id = out.highest_id.max(highest_id(root));
    let base = resolve_dir(dir_of(path), root.attribute("BaseLoc").unwrap_or(""))?;
    for fonts in children(Some(root), "Fonts") {
        for font in children(Some(fonts), "Font") {
            let file = match child(font, "FontFile").map(node_text) {
                Some(loc) if !loc.is_empty() => Some(resolve(&base, &loc)?),
                _ => None,
            };
            // A font whose file is absent is kept: that is a rendering fault, reported by
            // `check_renders`, not a reason the package cannot be read.
            let data = match &file {
                Some(file) if pkg.contains(file) => Some(pkg.read_shared(file)?),
                _ => None,
            };
            out.fonts.push(OfdFont {
                id: font.attribute("ID").unwrap_or("").trim().to_owned(),
                name: font.attribute("FontName").unwrap_or("").to_owned(),
                family: font.attribute("FamilyName").unwrap_or("").to_owned(),
                file,
                data,
            });
        }
    }
    Ok(())
}

/// A page content file with its templates' text objects placed around its own.
fn read_page(
    pkg: &mut Package<'_>,
    path: &str,
    templates: &mut HashMap<String, Template>,
    out: &mut OfdInvoice,
) -> Result<OfdPage, OfdError> {
    let text = pkg.read_text(path)?;
    let page = content::parse_page(path, &text)?;
    out.highest_id = out.highest_id.max(page.highest_id);
    for loc in &page.page_res {
        let res_path = resolve(dir_of(path), loc)?;
        read_res(pkg, &res_path, out)?;
    }
    let mut before = Vec::new();
    let mut after = Vec::new();
    for (id, foreground) in &page.templates {
        let objects = template_objects(pkg, path, id, templates, out)?;
        if *foreground {
            after.extend(objects.iter().cloned());
        } else {
            before.extend(objects.iter().cloned());
        }
    }
    before.extend(page.objects);
    before.extend(after);
    Ok(OfdPage {
        id: String::new(),
        physical_box: page.physical_box,
        text_objects: before,
    })
}

fn template_objects(
    pkg: &mut Package<'_>,
    page_path: &str,
    id: &str,
    templates: &mut HashMap<String, Template>,
    out: &mut OfdInvoice,
) -> Result<Arc<Vec<TextObject>>, OfdError> {
    let path = match templates.get(id) {
        None => {
            let what = format!("template {id:?} is not declared");
            return Err(structure(page_path, &what));
        }
        Some(Template::Read(objects)) => return Ok(Arc::clone(objects)),
        Some(Template::Declared(path)) => path.clone(),
    };
    let text = pkg.read_text(&path)?;
    // Every invoice of a kind has the same template: its reading is reused for identical bytes.
    let (objects, highest) = memo::get_or_try(&TEMPLATES, text.as_bytes(), || {
        let tpl = content::parse_page(&path, &text)?;
        Ok::<_, OfdError>((Arc::new(tpl.objects), tpl.highest_id))
    })?;
    out.highest_id = out.highest_id.max(highest);
    templates.insert(id.to_owned(), Template::Read(Arc::clone(&objects)));
    Ok(objects)
}

fn read_attachments(
    pkg: &mut Package<'_>,
    path: &str,
    out: &mut OfdInvoice,
) -> Result<(), OfdError> {
    let text = pkg.read_text(path)?;
    let doc = parse_xml(path, &text)?;
    let root = expect_root(path, &doc, "Attachments")?;
    for att in children(Some(root), "Attachment") {
        let loc = required_text(path, att, "FileLoc")?;
        let attachment = OfdAttachment {
            id: att.attribute("ID").unwrap_or("").trim().to_owned(),
            name: att.attribute("Name").unwrap_or("").trim().to_owned(),
            format: att.attribute("Format").unwrap_or("").trim().to_owned(),
            path: resolve(dir_of(path), &loc)?,
        };
        let is_xml = attachment.format.eq_ignore_ascii_case("xml")
            || attachment.name.to_ascii_lowercase().ends_with(".xml");
        if is_xml && out.xml.is_none() {
            out.xml = Some(pkg.read(&attachment.path)?);
        } else if !pkg.contains(&attachment.path) {
            return Err(OfdError::Missing(attachment.path));
        }
        out.attachments.push(attachment);
    }
    Ok(())
}

fn read_custom_tags(
    pkg: &mut Package<'_>,
    path: &str,
    out: &mut OfdInvoice,
) -> Result<(), OfdError> {
    let text = pkg.read_text(path)?;
    let doc = parse_xml(path, &text)?;
    let root = expect_root(path, &doc, "CustomTags")?;
    let tags: Vec<Node<'_, '_>> = children(Some(root), "CustomTag").collect();
    let Some(tag) = tags
        .iter()
        .find(|t| t.attribute("TypeID").map(str::trim) == Some("EInvoice"))
        .or(tags.first())
    else {
        return Ok(());
    };
    let tag_path = resolve(dir_of(path), &required_text(path, *tag, "FileLoc")?)?;
    let text = pkg.read_text(&tag_path)?;

    let (tags, lines) = {
        let objects: HashMap<&str, &str> = out
            .pages
            .iter()
            .flat_map(|p| &p.text_objects)
            .map(|t| (t.id.as_str(), t.text.as_str()))
            .collect();
        tags::walk(&tag_path, &text, &objects)?
    };
    out.tags = tags;
    out.tag_lines = lines;
    Ok(())
}

/// The highest numeric `ID` attribute in a file. Non-numeric ids (attachments may use names) are
/// not unit ids and are skipped.
fn highest_id(root: Node<'_, '_>) -> u64 {
    root.descendants()
        .filter_map(|n| n.attribute("ID"))
        .filter_map(|id| id.trim().parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

fn parse_xml<'i>(path: &str, text: &'i str) -> Result<Document<'i>, OfdError> {
    Document::parse(text).map_err(|e| OfdError::Xml {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn expect_root<'a, 'i>(
    path: &str,
    doc: &'a Document<'i>,
    name: &str,
) -> Result<Node<'a, 'i>, OfdError> {
    let root = doc.root_element();
    if root.tag_name().name() == name {
        Ok(root)
    } else {
        Err(structure(
            path,
            &format!("root is <{}>, not <{name}>", root.tag_name().name()),
        ))
    }
}

fn structure(path: &str, what: &str) -> OfdError {
    OfdError::Structure {
        path: path.to_owned(),
        what: what.to_owned(),
    }
}

fn is_named(node: &Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| is_named(c, name))
}

fn children<'a, 'i>(
    node: Option<Node<'a, 'i>>,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.into_iter()
        .flat_map(|n| n.children())
        .filter(move |c| is_named(c, name))
}

fn required_child<'a, 'i>(
    path: &str,
    node: Node<'a, 'i>,
    name: &str,
) -> Result<Node<'a, 'i>, OfdError> {
    child(node, name).ok_or_else(|| structure(path, &format!("no {name}")))
}

fn required_text(path: &str, node: Node<'_, '_>, name: &str) -> Result<String, OfdError> {
    let text = child(node, name).map(node_text).unwrap_or_default();
    if text.is_empty() {
        return Err(structure(path, &format!("no {name}")));
    }
    Ok(text)
}

/// The trimmed text directly inside `node`.
fn node_text(node: Node<'_, '_>) -> String {
    let mut text = String::new();
    for c in node.children().filter(Node::is_text) {
        text.push_str(c.text().unwrap_or(""));
    }
    text.trim().to_owned()
}
