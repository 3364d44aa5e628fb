//! The per-file integrity check auditors run (the integrity and usability parts of 四性检测):
//! is the file there, is it byte for byte what was archived (size and SM3 digest), does it parse
//! as an invoice with the expected number, and can it be drawn.
//!
//! It owns the verdict per file and its wording ([`FileCheck`]). It must not fetch files or
//! digests (the caller hands in bytes and what the store recorded) and never panics: every
//! parser runs behind a panic guard and has its own size caps, so any bytes get a verdict.

pub(crate) mod memo;

use std::cell::RefCell;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};

use fapiao_invoice::number::InvoiceNumber;
use sm3::{Digest, Sm3};

use crate::xml::XmlError;
use crate::{Format, ofd_read, pdf_check, xml};
use memo::Memo;

/// The verdict of one part of the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Passed,
    Failed,
    /// Not checked: nothing to check against, nothing to check, or not applicable.
    Skipped,
}

/// What the store recorded when the file was archived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded<'a> {
    /// SM3 of the file, hex (either case).
    pub sm3_hex: &'a str,
    pub size: u64,
}

/// The result of checking one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    pub format: Format,
    /// Whether the file was found.
    pub present: bool,
    /// Size and SM3 equal the recorded ones.
    pub digest: Outcome,
    /// The file parses as an invoice with the expected number.
    pub parses: Outcome,
    /// The file can be drawn with what it embeds (`Skipped` for XML, which is not drawn).
    pub renders: Outcome,
    /// What failed or was skipped and why, `; `-separated; empty when everything passed.
    pub detail: String,
    /// `parses` and `renders` were not run again: these exact bytes (the digest matched) passed
    /// the same version of the checks before ([`check_file_reusing`]).
    pub usability_recorded: bool,
}

impl FileCheck {
    /// Whether this check ran the parse and render checks itself and everything passed: the
    /// verdict worth remembering for these bytes under [`CHECKS_VERSION`].
    pub fn newly_usable(&self) -> bool {
        !self.usability_recorded
            && self.digest == Outcome::Passed
            && self.parses == Outcome::Passed
            && self.renders != Outcome::Failed
    }

    /// Present, and no part failed.
    pub fn ok(&self) -> bool {
        self.present
            && [self.digest, self.parses, self.renders]
                .iter()
                .all(|o| *o != Outcome::Failed)
    }
}

/// SM3 (GB/T 32905) of `bytes` as lowercase hex.
pub fn sm3_hex(bytes: &[u8]) -> String {
    let digest = Sm3::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Version of the parse and render checks. Change it whenever a check changes what it accepts:
/// verdicts remembered under another version are then not reused.
pub const CHECKS_VERSION: &str = "fapiao-checks/1";

/// Check one file of invoice `number`. `recorded` is what the store noted at archiving time
/// (`None` if nothing was), `bytes` the file as fetched (`None` if it is missing).
pub fn check_file(
    format: Format,
    number: &InvoiceNumber,
    recorded: Option<&Recorded<'_>>,
    bytes: Option<&[u8]>,
) -> FileCheck {
    check_file_reusing(format, number, recorded, bytes, None)
}

/// [`check_file`], reusing an earlier verdict where that is sound. `passed_before` is the version
/// of the checks that parsed and rendered, without a failure, a file with the recorded digest.
/// When the digest matches now and that version is [`CHECKS_VERSION`], the bytes are the ones that
/// passed (SM3 is collision-resistant) and the checks are deterministic, so they are not run again:
/// the file still gets read and hashed in full, and `usability_recorded` says what was reused.
pub fn check_file_reusing(
    format: Format,
    number: &InvoiceNumber,
    recorded: Option<&Recorded<'_>>,
    bytes: Option<&[u8]>,
    passed_before: Option<&str>,
) -> FileCheck {
    let mut check = FileCheck {
        format,
        present: bytes.is_some(),
        digest: Outcome::Skipped,
        parses: Outcome::Skipped,
        renders: Outcome::Skipped,
        detail: String::new(),
        usability_recorded: false,
    };
    let Some(bytes) = bytes else {
        check.note("the file is missing");
        return check;
    };

    match recorded {
        None => check.note("no digest was recorded"),
        Some(recorded) => {
            let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            if size != recorded.size {
                check.digest = Outcome::Failed;
                check.note(&format!(
                    "size is {size} bytes, {} were recorded",
                    recorded.size
                ));
            } else {
                let actual = sm3_hex(bytes);
                if actual.eq_ignore_ascii_case(recorded.sm3_hex.trim()) {
                    check.digest = Outcome::Passed;
                } else {
                    check.digest = Outcome::Failed;
                    check.note(&format!(
                        "SM3 is {actual}, {} was recorded",
                        recorded.sm3_hex.trim()
                    ));
                }
            }
        }
    }

    if check.digest == Outcome::Passed && passed_before == Some(CHECKS_VERSION) {
        check.parses = Outcome::Passed;
        check.renders = match format {
            Format::Xml => Outcome::Skipped,
            Format::Ofd | Format::Pdf => Outcome::Passed,
        };
        check.usability_recorded = true;
        return check;
    }

    // The parsers are written not to panic; the guard makes sure a bug in one of them (or in a
    // library below it) costs one verdict, not the auditor's whole run.
    let verdict = catch_unwind(AssertUnwindSafe(|| match format {
        Format::Xml => check_xml(number, bytes),
        Format::Ofd => check_ofd(number, bytes),
        Format::Pdf => check_pdf(bytes),
    }));
    let verdict = verdict.unwrap_or_else(|_| Verdict {
        parses: Err("the checker failed on this file".to_owned()),
        renders: Some(Err("not checked".to_owned())),
    });
    match verdict.parses {
        Ok(()) => check.parses = Outcome::Passed,
        Err(why) => {
            check.parses = Outcome::Failed;
            check.note(&format!("does not parse: {why}"));
        }
    }
    match verdict.renders {
        None => {}
        Some(Ok(())) => check.renders = Outcome::Passed,
        Some(Err(why)) => {
            check.renders = Outcome::Failed;
            check.note(&format!("does not render: {why}"));
        }
    }
    check
}

impl FileCheck {
    fn note(&mut self, text: &str) {
        if !self.detail.is_empty() {
            self.detail.push_str("; ");
        }
        self.detail.push_str(text);
    }
}

/// The parse and render verdicts of one file; `renders` is `None` when not applicable.
struct Verdict {
    parses: Result<(), String>,
    renders: Option<Result<(), String>>,
}

fn same_number(what: &str, found: &str, number: &InvoiceNumber) -> Result<(), String> {
    if found.trim() == number.to_string() {
        Ok(())
    } else {
        Err(format!("{what} is {found:?}, not {number}"))
    }
}

thread_local! {
    /// XML bytes → what parsing them gave: the OFD attaches the XML checked just before it.
    static XML_NUMBERS: RefCell<Memo<Result<InvoiceNumber, XmlError>>> =
        const { RefCell::new(Memo::new()) };
}

/// The number an XML file gives, or why it does not parse.
fn xml_number(bytes: &[u8]) -> Result<InvoiceNumber, XmlError> {
    let Ok(parsed) = memo::get_or_try(&XML_NUMBERS, bytes, || {
        Ok::<_, Infallible>(xml::parse(bytes).map(|p| p.number()))
    });
    parsed
}

fn check_xml(number: &InvoiceNumber, bytes: &[u8]) -> Verdict {
    let parses = match xml_number(bytes) {
        Ok(found) => same_number("the invoice number", &found.to_string(), number),
        Err(e) => Err(e.to_string()),
    };
    Verdict {
        parses,
        renders: None,
    }
}

fn check_ofd(number: &InvoiceNumber, bytes: &[u8]) -> Verdict {
    let doc = match ofd_read::read(bytes) {
        Ok(doc) => doc,
        Err(e) => {
            return Verdict {
                parses: Err(e.to_string()),
                renders: Some(Err("the package cannot be opened".to_owned())),
            };
        }
    };
    Verdict {
        parses: ofd_number(number, &doc),
        renders: Some(ofd_read::check_renders(&doc).map_err(|e| e.to_string())),
    }
}

/// The OFD names the invoice in its custom data and its tags, and carries the XML: each place
/// that is there must give `number`, and at least one must be.
fn ofd_number(number: &InvoiceNumber, doc: &ofd_read::OfdInvoice) -> Result<(), String> {
    let custom = doc.custom("发票号码");
    let tagged = doc.tag("TaxSupervisionInfo/InvoiceNumber");
    if custom.is_none() && tagged.is_none() {
        return Err("neither the custom data 发票号码 nor a tag gives the number".to_owned());
    }
    if let Some(found) = custom {
        same_number("the custom data 发票号码", found, number)?;
    }
    if let Some(found) = tagged {
        same_number("the tagged InvoiceNumber", found, number)?;
    }
    if let Some(attached) = &doc.xml {
        let found = xml_number(attached).map_err(|e| format!("the attached XML: {e}"))?;
        same_number("the attached XML's number", &found.to_string(), number)?;
    }
    Ok(())
}

fn check_pdf(bytes: &[u8]) -> Verdict {
    match pdf_check::open(bytes) {
        Ok(file) => Verdict {
            parses: Ok(()),
            renders: Some(file.check_renders().map_err(|e| e.to_string())),
        },
        Err(e) => Verdict {
            parses: Err(e.to_string()),
            renders: Some(Err("the file cannot be opened".to_owned())),
        },
    }
}

#[cfg(test)]
mod tests;
