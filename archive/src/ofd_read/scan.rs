//! A streaming XML scanner for the large per-invoice OFD files (page content, custom tags),
//! which a DOM parser spent most of the read on: it reports start tags, end tags and text as
//! events, without building a tree, and finds markup with `memchr`-backed searches.
//!
//! It checks what makes a document well-formed for our purposes (one root, balanced and matching
//! tags, quoted attributes, known entities, nothing but space, comments and processing
//! instructions outside the root) and refuses a DTD, like the DOM parser it stands in for. It
//! does not resolve namespaces: names are given without their prefix. It never panics.

use std::borrow::Cow;

/// What the scanner reports, in document order. An empty element (`<a/>`) is a `Start` followed
/// by an `End`. `'a` is the document's lifetime, `'e` the event's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a, 'e> {
    Start {
        name: &'a str,
        attrs: Attrs<'a, 'e>,
    },
    End {
        name: &'a str,
    },
    /// Character data (entities resolved, CDATA as is), not trimmed.
    Text(Cow<'a, str>),
}

/// The attributes of a start tag: local names and raw values, checked when scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs<'a, 'e>(&'e [(&'a str, &'a str)]);

impl<'a> Attrs<'a, '_> {
    /// The value of the attribute with local name `name`, entities resolved.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, value)| unescape(value).ok())
    }
}

/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 256;

/// Scans `text`, calling `on` for each event; stops at the first error `on` returns. Errors of
/// the document itself are reported as text through `malformed`.
pub fn scan<'a, E>(
    text: &'a str,
    mut on: impl FnMut(Event<'a, '_>) -> Result<(), E>,
    malformed: impl Fn(String) -> E,
) -> Result<(), E> {
    let bad = |what: &str| malformed(what.to_owned());
    let mut open: Vec<&'a str> = Vec::new();
    // Reused for every start tag: no allocation per element.
    let mut attrs: Vec<(&'a str, &'a str)> = Vec::new();
    let mut seen_root = false;
    let mut rest = text;
    loop {
        let Some(lt) = rest.find('<') else {
            if !rest.trim().is_empty() {
                return Err(bad("text after the root element"));
            }
            break;
        };
        let (chars, markup) = rest.split_at(lt);
        if !chars.is_empty() {
            if open.is_empty() {
                if !chars.trim().is_empty() {
                    return Err(bad("text outside the root element"));
                }
            } else {
                on(Event::Text(unescape(chars).map_err(|e| bad(&e))?))?;
            }
        }
        if let Some(after) = markup.strip_prefix("<!--") {
            let end = after
                .find("-->")
                .ok_or_else(|| bad("unterminated comment"))?;
            rest = after.get(end + 3..).unwrap_or_default();
        } else if let Some(after) = markup.strip_prefix("<?") {
            let end = after
                .find("?>")
                .ok_or_else(|| bad("unterminated instruction"))?;
            rest = after.get(end + 2..).unwrap_or_default();
        } else if let Some(after) = markup.strip_prefix("<![CDATA[") {
            if open.is_empty() {
                return Err(bad("CDATA outside the root element"));
            }
            let end = after.find("]]>").ok_or_else(|| bad("unterminated CDATA"))?;
            on(Event::Text(Cow::Borrowed(
                after.get(..end).unwrap_or_default(),
            )))?;
            rest = after.get(end + 3..).unwrap_or_default();
        } else if markup.starts_with("<!") {
            return Err(bad("a DTD or declaration is not allowed"));
        } else if let Some(after) = markup.strip_prefix("</") {
            let end = after.find('>').ok_or_else(|| bad("unterminated end tag"))?;
            let name = after.get(..end).unwrap_or_default().trim_end();
            match open.pop() {
                Some(expected) if expected == name => {}
                _ => return Err(malformed(format!("unexpected end tag </{name}>"))),
            }
            on(Event::End { name: local(name) })?;
            rest = after.get(end + 1..).unwrap_or_default();
        } else {
            let after = markup.get(1..).unwrap_or_default();
            let (name, empty, next) = start_tag(after, &mut attrs).map_err(|e| bad(&e))?;
            if open.is_empty() && seen_root {
                return Err(bad("more than one root element"));
            }
            if open.len() >= MAX_DEPTH {
                return Err(bad("elements nest too deep"));
            }
            seen_root = true;
            on(Event::Start {
                name: local(name),
                attrs: Attrs(&attrs),
            })?;
            if empty {
                on(Event::End { name: local(name) })?;
            } else {
                open.push(name);
            }
            rest = next;
        }
    }
    if !open.is_empty() {
        return Err(bad("unclosed elements at the end"));
    }
    if !seen_root {
        return Err(bad("no root element"));
    }
    Ok(())
}

/// After `<`: the qualified name and whether the tag is empty, the attributes (checked) into
/// `attrs`, and the input after the tag. One pass over the bytes; values are found with
/// `memchr`-backed searches, so long values (`DeltaX`) cost little.
fn start_tag<'a>(
    after: &'a str,
    attrs: &mut Vec<(&'a str, &'a str)>,
) -> Result<(&'a str, bool, &'a str), String> {
    attrs.clear();
    let bytes = after.as_bytes();
    let name_end = bytes
        .iter()
        .position(|b| is_space(*b) || *b == b'/' || *b == b'>')
        .ok_or("unterminated start tag")?;
    let name = after.get(..name_end).ok_or("bad start tag")?;
    check_name(name)?;
    let mut at = name_end;
    loop {
        let spaced = skip_space(bytes, &mut at);
        match bytes.get(at) {
            None => return Err(format!("unterminated start tag <{name}>")),
            Some(b'>') => return Ok((name, false, after.get(at + 1..).unwrap_or_default())),
            Some(b'/') if bytes.get(at + 1) == Some(&b'>') => {
                return Ok((name, true, after.get(at + 2..).unwrap_or_default()));
            }
            Some(_) if !spaced => {
                return Err(format!("attributes of <{name}> are not separated by space"));
            }
            Some(_) => {}
        }
        let start = at;
        while bytes
            .get(at)
            .is_some_and(|b| !is_space(*b) && !matches!(b, b'=' | b'>' | b'/'))
        {
            at += 1;
        }
        let attr = after.get(start..at).unwrap_or_default();
        check_name(attr)?;
        skip_space(bytes, &mut at);
        if bytes.get(at) != Some(&b'=') {
            return Err(format!("attribute {attr} without a value"));
        }
        at += 1;
        skip_space(bytes, &mut at);
        let quote = match bytes.get(at) {
            Some(q @ (b'"' | b'\'')) => *q,
            _ => return Err(format!("attribute {attr} is not quoted")),
        };
        let value_start = at + 1;
        let len = after
            .get(value_start..)
            .and_then(|rest| rest.find(char::from(quote)))
            .ok_or_else(|| format!("attribute {attr} is not closed"))?;
        let value = after
            .get(value_start..value_start + len)
            .unwrap_or_default();
        if value.contains('<') {
            return Err(format!("'<' in attribute {attr}"));
        }
        if value.contains('&') {
            unescape(value)?;
        }
        attrs.push((local(attr), value));
        at = value_start + len + 1;
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Moves `at` past white space; whether there was any.
fn skip_space(bytes: &[u8], at: &mut usize) -> bool {
    let start = *at;
    while bytes.get(*at).is_some_and(|b| is_space(*b)) {
        *at += 1;
    }
    *at > start
}

fn check_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let bad_start = bytes
        .first()
        .is_none_or(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.'));
    let bad_byte = bytes
        .iter()
        .any(|b| matches!(b, b'<' | b'&' | b'"' | b'\'' | b'=' | b'!' | b'?'));
    if bad_start || bad_byte {
        return Err(format!("bad name {name:?}"));
    }
    Ok(())
}

/// A name without its namespace prefix.
fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, local)| local)
}

/// Text with the predefined and numeric character references resolved.
fn unescape(text: &str) -> Result<Cow<'_, str>, String> {
    let Some(first) = text.find('&') else {
        return Ok(Cow::Borrowed(text));
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(text.get(..first).unwrap_or_default());
    let mut rest = text.get(first..).unwrap_or_default();
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        let semi = after.find(';').ok_or("unterminated character reference")?;
        let entity = after.get(..semi).unwrap_or_default();
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .filter(|c| !matches!(c, '\0'))
                    .ok_or_else(|| format!("unknown reference &{entity};"))?
            }
        };
        out.push(c);
        rest = after.get(semi + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Result<Vec<String>, String> {
        // Start tags print their ID attribute.
        let mut out = Vec::new();
        scan(
            text,
            |e| {
                out.push(match e {
                    Event::Start { name, attrs } => {
                        format!("<{name} id={:?}>", attrs.get("ID").unwrap_or_default())
                    }
                    Event::End { name } => format!("</{name}>"),
                    Event::Text(t) => format!("{t:?}"),
                });
                Ok(())
            },
            |e| e,
        )?;
        Ok(out)
    }

    #[test]
    fn reports_elements_attributes_and_text() {
        let got = events(
            "<?xml version=\"1.0\"?>\n<!-- c --><ofd:Page xmlns:ofd=\"u\">\
             <ofd:T ID='5' Font = \"1\"><ofd:C X=\"0\">\
             a &amp; b&#x4E00;&#20;<![CDATA[<x>]]></ofd:C>\
             </ofd:T><e ID=\"&quot;\"/></ofd:Page>\n",
        )
        .unwrap();
        assert_eq!(
            got,
            [
                "<Page id=\"\">",
                "<T id=\"5\">",
                "<C id=\"\">",
                "\"a & b一\\u{14}\"",
                "\"<x>\"",
                "</C>",
                "</T>",
                "<e id=\"\\\"\">",
                "</e>",
                "</Page>"
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_well_formed() {
        for bad in [
            "",
            "text",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "<a>x</a>y",
            "<a b=1/>",
            "<a b=\"1/>",
            "<a b=\"<\"/>",
            "<a b=\"1\"c=\"2\"/>",
            "<a>&unknown;</a>",
            "<a>&#0;</a>",
            "<a>&amp</a>",
            "<!DOCTYPE a><a/>",
            "<a><!-- x</a>",
            "<1a/>",
            "</a>",
        ] {
            assert!(events(bad).is_err(), "{bad:?}");
        }
        let deep = format!("{}{}", "<a>".repeat(300), "</a>".repeat(300));
        assert!(events(&deep).is_err());
    }
}
