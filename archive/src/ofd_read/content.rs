//! Page and template content files, read with the streaming scanner: the text objects (with the
//! text of their `TextCode`s), the templates and resources a page names, its own page box, and
//! the highest numeric id.
//!
//! It must not resolve locations or fonts (the reader does) and never panics.

use super::scan::{Event, scan};
use super::{OfdError, TextObject, structure};

/// What a content file holds that the reader uses.
#[derive(Debug, Default)]
pub struct PageContent {
    /// `Template` references: `(TemplateID, drawn in the foreground)`.
    pub templates: Vec<(String, bool)>,
    /// `PageRes` locations.
    pub page_res: Vec<String>,
    /// `Area/PhysicalBox`.
    pub physical_box: Option<String>,
    /// Every `TextObject` under `Content`, at any depth, in document order.
    pub objects: Vec<TextObject>,
    pub highest_id: u64,
}

/// Text being collected for a root child: a `PageRes` location or the page box.
enum Capture {
    PageRes(String),
    PhysicalBox(String),
}

/// Reads a page or template content file (root `Page`).
pub fn parse_page<'t>(path: &str, text: &'t str) -> Result<PageContent, OfdError> {
    let mut out = PageContent::default();
    let mut stack: Vec<&'t str> = Vec::new();
    // Depths (stack lengths once opened) of the open Content, TextObject and TextCode.
    let mut content_at: Option<usize> = None;
    let mut object_at: Option<usize> = None;
    let mut code_at: Option<usize> = None;
    let mut current: Option<TextObject> = None;
    let mut capture: Option<(usize, Capture)> = None;
    let on = |event: Event<'t, '_>| -> Result<(), OfdError> {
        match event {
            Event::Start { name, attrs } => {
                if stack.is_empty() && name != "Page" {
                    return Err(structure(path, &format!("root is <{name}>, not <Page>")));
                }
                if let Some(id) = attrs.get("ID").and_then(|id| id.trim().parse::<u64>().ok()) {
                    out.highest_id = out.highest_id.max(id);
                }
                let depth = stack.len() + 1;
                let parent = stack.last().copied();
                match (depth, name) {
                    (2, "Template") => {
                        let id = attrs.get("TemplateID").unwrap_or_default();
                        let front = attrs
                            .get("ZOrder")
                            .is_some_and(|z| z.trim() == "Foreground");
                        out.templates.push((id.trim().to_owned(), front));
                    }
                    (2, "PageRes") => capture = Some((depth, Capture::PageRes(String::new()))),
                    (2, "Content") => content_at = Some(depth),
                    (3, "PhysicalBox") if parent == Some("Area") => {
                        capture = Some((depth, Capture::PhysicalBox(String::new())));
                    }
                    _ => {}
                }
                if content_at.is_some() && name == "TextObject" && current.is_none() {
                    current = Some(TextObject {
                        id: attrs.get("ID").unwrap_or_default().trim().to_owned(),
                        font: attrs.get("Font").unwrap_or_default().trim().to_owned(),
                        text: String::new(),
                    });
                    object_at = Some(depth);
                } else if current.is_some() && name == "TextCode" && code_at.is_none() {
                    code_at = Some(depth);
                }
                stack.push(name);
            }
            Event::Text(text) => {
                if code_at.is_some()
                    && let Some(object) = current.as_mut()
                {
                    // TextCode content is drawn as is, spaces included: not trimmed.
                    object.text.push_str(&text);
                }
                if let Some((_, Capture::PageRes(s) | Capture::PhysicalBox(s))) = capture.as_mut() {
                    s.push_str(&text);
                }
            }
            Event::End { .. } => {
                let depth = stack.len();
                if code_at == Some(depth) {
                    code_at = None;
                }
                if object_at == Some(depth) {
                    object_at = None;
                    out.objects.extend(current.take());
                }
                if content_at == Some(depth) {
                    content_at = None;
                }
                if capture.as_ref().is_some_and(|(at, _)| *at == depth) {
                    match capture.take() {
                        Some((_, Capture::PageRes(s))) => out.page_res.push(s.trim().to_owned()),
                        Some((_, Capture::PhysicalBox(s))) => {
                            out.physical_box = Some(s.trim().to_owned());
                        }
                        None => {}
                    }
                }
                stack.pop();
            }
        }
        Ok(())
    };
    scan(text, on, |message| OfdError::Xml {
        path: path.to_owned(),
        message,
    })?;
    Ok(out)
}
