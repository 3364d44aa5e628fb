//! The custom-tag tree (`CustomTag.xml`), read with the streaming scanner: every leaf element
//! becomes a field keyed by its element path, its value the text of the text objects its
//! `ObjectRef`s name, concatenated in order; each `IssuItemInformation` becomes a line of its own.
//!
//! It must not read pages (the caller hands in the text objects by id) and never panics.

use std::collections::{BTreeMap, HashMap};

use super::scan::{Event, scan};
use super::{OfdError, structure};

/// Deepest tag nesting accepted: invoices nest three levels.
const MAX_TAG_DEPTH: usize = 32;

/// The tagged fields and lines.
pub type Tagged = (BTreeMap<String, String>, Vec<BTreeMap<String, String>>);

/// One open element.
struct Frame<'a> {
    name: &'a str,
    /// Has element children other than `ObjectRef`.
    parent: bool,
    is_ref: bool,
    /// Its own character data.
    text: String,
    /// The text its `ObjectRef`s resolve to, once it has one.
    refs: Option<String>,
}

/// Walks the tag file at `path` (text `text`), resolving references through `objects` (text
/// object id → text).
pub fn walk<'t>(
    path: &str,
    text: &'t str,
    objects: &HashMap<&str, &str>,
) -> Result<Tagged, OfdError> {
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    let mut lines: Vec<BTreeMap<String, String>> = Vec::new();
    let mut stack: Vec<Frame<'t>> = Vec::new();
    // Index in `stack` of the open IssuItemInformation, whose children are a line's fields.
    let mut line_at: Option<usize> = None;
    let field_path = |stack: &[Frame<'_>], line_at: Option<usize>, leaf: &str| {
        let base = line_at.map_or(1, |at| at + 1);
        let mut out = String::new();
        for frame in stack.get(base..).unwrap_or_default() {
            out.push_str(frame.name);
            out.push('/');
        }
        out.push_str(leaf);
        out
    };
    let on = |event: Event<'t, '_>| -> Result<(), OfdError> {
        match event {
            Event::Start { name, .. } => {
                if stack.len() > MAX_TAG_DEPTH {
                    return Err(structure(path, "custom tags nest too deep"));
                }
                let is_ref = name == "ObjectRef" && !stack.is_empty();
                if !is_ref && let Some(parent) = stack.last_mut() {
                    parent.parent = true;
                }
                if !is_ref
                    && name == "IssuItemInformation"
                    && line_at.is_none()
                    && !stack.is_empty()
                {
                    line_at = Some(stack.len());
                    lines.push(BTreeMap::new());
                }
                stack.push(Frame {
                    name,
                    parent: false,
                    is_ref,
                    text: String::new(),
                    refs: None,
                });
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::End { .. } => {
                let Some(frame) = stack.pop() else {
                    return Ok(());
                };
                if frame.is_ref {
                    let id = frame.text.trim();
                    let Some(owner) = stack.last() else {
                        return Ok(());
                    };
                    let Some(text) = objects.get(id) else {
                        let above = stack.get(..stack.len() - 1).unwrap_or_default();
                        let tag = field_path(above, line_at, owner.name);
                        return Err(OfdError::DanglingRef {
                            tag,
                            id: id.to_owned(),
                        });
                    };
                    if let Some(owner) = stack.last_mut() {
                        owner.refs.get_or_insert_with(String::new).push_str(text);
                    }
                } else if line_at == Some(stack.len()) {
                    line_at = None;
                } else if !frame.parent && !stack.is_empty() {
                    let key = field_path(&stack, line_at, frame.name);
                    let value = frame.refs.unwrap_or_else(|| frame.text.trim().to_owned());
                    let into = match line_at {
                        Some(_) => lines.last_mut(),
                        None => Some(&mut tags),
                    };
                    if let Some(into) = into {
                        into.entry(key).or_default().push_str(&value);
                    }
                }
            }
        }
        Ok(())
    };
    scan(text, on, |message| OfdError::Xml {
        path: path.to_owned(),
        message,
    })?;
    Ok((tags, lines))
}
