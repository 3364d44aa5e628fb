//! Mapping between `fapiao.v1` messages and domain types. No rules live here: a field that is
//! missing or malformed is carried into the domain draft as it is, and validation reports it with
//! the rest, so a caller sees every problem at once.

use crate::store::{FileRecord, InvoiceState, StoredEvent, StoredInvoice};
use fapiao_archive::Format;
use fapiao_invoice::model::{
    Buyer, BuyerDraft, InvoiceContent, InvoiceDraft, InvoiceKind, Line, LineDraft, LineNature,
    Party, PricingMode, SellerDraft, Totals,
};
use fapiao_invoice::money::format_money;
use fapiao_invoice::violation::Violation;
use fapiao_proto::v1;
use rust_decimal::Decimal;

/// A blue invoice request as a domain draft. The seller carries only the tax id; its profile is
/// filled in by the caller of this function.
pub fn invoice_draft(input: v1::InvoiceInput) -> InvoiceDraft {
    let kind = match v1::InvoiceKind::try_from(input.kind) {
        Ok(v1::InvoiceKind::Special) => Some(InvoiceKind::Special),
        Ok(v1::InvoiceKind::General) => Some(InvoiceKind::General),
        Ok(v1::InvoiceKind::Unspecified) | Err(_) => None,
    };
    let pricing = match v1::PricingMode::try_from(input.pricing_mode) {
        Ok(v1::PricingMode::TaxExclusive) => Some(PricingMode::TaxExclusive),
        Ok(v1::PricingMode::TaxInclusive) => Some(PricingMode::TaxInclusive),
        Ok(v1::PricingMode::Unspecified) | Err(_) => None,
    };
    InvoiceDraft {
        request_id: input.request_id,
        kind,
        seller: SellerDraft {
            tax_id: input.seller_tax_id,
            ..SellerDraft::default()
        },
        buyer: input.buyer.map(buyer_draft).unwrap_or_default(),
        pricing,
        lines: input.lines.into_iter().map(line_draft).collect(),
        remark: input.remark,
        drawer: input.drawer,
        payee: input.payee,
        reviewer: input.reviewer,
    }
}

fn buyer_draft(b: v1::BuyerInput) -> BuyerDraft {
    BuyerDraft {
        name: b.name,
        tax_id: b.tax_id,
        natural_person: b.natural_person,
        id_type: b.id_type,
        id_number: b.id_number,
        address: b.address,
        phone: b.phone,
        bank_name: b.bank_name,
        bank_account: b.bank_account,
        email: b.email,
        mobile: b.mobile,
    }
}

fn line_draft(l: v1::LineInput) -> LineDraft {
    // The contract reads an unset nature as normal. An unknown number is not a nature we can
    // honour either; normal is the reading that cannot hide a discount.
    let nature = match v1::LineNature::try_from(l.nature) {
        Ok(v1::LineNature::Discount) => LineNature::Discount,
        Ok(v1::LineNature::Discounted) => LineNature::Discounted,
        _ => LineNature::Normal,
    };
    LineDraft {
        item_name: l.item_name,
        tax_code: l.tax_code,
        specification: l.specification,
        unit: l.unit,
        quantity: l.quantity,
        unit_price: l.unit_price,
        amount: l.amount,
        tax_rate: l.tax_rate,
        nature,
    }
}

pub fn field_violation(v: &Violation) -> v1::FieldViolation {
    v1::FieldViolation {
        field: v.field.clone(),
        code: v.code.as_str().to_owned(),
        message: v.message.clone(),
    }
}

/// What a validated invoice would look like if issued now.
pub fn preview(c: &InvoiceContent) -> v1::InvoicePreview {
    v1::InvoicePreview {
        seller: Some(party(&c.seller)),
        lines: c.lines.iter().map(line).collect(),
        totals: Some(totals(&c.totals, &c.total_in_words)),
    }
}

pub fn party(p: &Party) -> v1::Party {
    v1::Party {
        name: p.name.clone(),
        tax_id: p
            .tax_id
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        address: p.address.clone(),
        phone: p.phone.clone(),
        bank_name: p.bank_name.clone(),
        bank_account: p.bank_account.clone(),
    }
}

pub fn buyer(b: &Buyer) -> v1::Buyer {
    let id = b.personal_id.as_ref();
    v1::Buyer {
        party: Some(party(&b.party)),
        natural_person: b.natural_person,
        id_type: id.map(|i| i.id_type.clone()).unwrap_or_default(),
        id_number: id.map(|i| i.number.clone()).unwrap_or_default(),
        email: b.email.clone(),
        mobile: b.mobile.clone(),
    }
}

fn nature(n: LineNature) -> v1::LineNature {
    match n {
        LineNature::Normal => v1::LineNature::Normal,
        LineNature::Discount => v1::LineNature::Discount,
        LineNature::Discounted => v1::LineNature::Discounted,
    }
}

/// Quantities and unit prices drop trailing zeros.
fn plain(d: Option<Decimal>) -> String {
    d.map(|d| d.normalize().to_string()).unwrap_or_default()
}

pub fn line(l: &Line) -> v1::InvoiceLine {
    v1::InvoiceLine {
        line_number: l.number,
        nature: nature(l.nature).into(),
        item_name: l.item_name.clone(),
        printed_item_name: l.printed_name.clone(),
        tax_code: l.tax_code.as_str().to_owned(),
        specification: l.specification.clone(),
        unit: l.unit.clone(),
        quantity: plain(l.quantity),
        unit_price: plain(l.unit_price),
        amount: format_money(l.amount),
        tax_rate: l.rate.xml_text(),
        tax: format_money(l.tax),
        total: format_money(l.total),
        ..Default::default()
    }
}

pub fn totals(t: &Totals, in_words: &str) -> v1::Totals {
    v1::Totals {
        amount: format_money(t.amount),
        tax: format_money(t.tax),
        total: format_money(t.total),
        total_in_words: in_words.to_owned(),
    }
}

/// A protobuf timestamp of a time.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A time of a protobuf timestamp; `None` when it is out of range.
/// A wire timestamp as a time, if it is one the contract allows: nanoseconds in
/// `0..1_000_000_000` and a moment from 0001-01-01 to 9999-12-31 (the range protobuf defines), so
/// no arithmetic on it can leave chrono's range.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    /// 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z, in unix seconds.
    const FIRST: i64 = -62_135_596_800;
    const END: i64 = 253_402_300_800;
    let nanos = u32::try_from(t.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    if !(FIRST..END).contains(&t.seconds) {
        return None;
    }
    chrono::DateTime::from_timestamp(t.seconds, nanos)
}

/// Why a wire duration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationProblem {
    Negative,
    /// Longer than protobuf's 10,000 years, or nanoseconds out of their range.
    OutOfRange,
}

/// A non-negative wire duration as a `TimeDelta`, refusing what protobuf does not allow (more
/// than 10,000 years, nanoseconds of 1 s or more, mixed signs) so that adding it to a time the
/// contract allows never overflows.
pub fn from_duration(d: &prost_types::Duration) -> Result<chrono::TimeDelta, DurationProblem> {
    const MAX_SECONDS: i64 = 315_576_000_000;
    if d.seconds < 0 || d.nanos < 0 {
        return Err(DurationProblem::Negative);
    }
    if d.seconds > MAX_SECONDS || d.nanos >= 1_000_000_000 {
        return Err(DurationProblem::OutOfRange);
    }
    let nanos = u32::try_from(d.nanos).map_err(|_| DurationProblem::OutOfRange)?;
    chrono::TimeDelta::new(d.seconds, nanos).ok_or(DurationProblem::OutOfRange)
}

pub fn state(s: InvoiceState) -> v1::InvoiceState {
    match s {
        InvoiceState::Issued => v1::InvoiceState::Issued,
        InvoiceState::Uploading => v1::InvoiceState::Uploading,
        InvoiceState::Recorded => v1::InvoiceState::Recorded,
        InvoiceState::Rejected => v1::InvoiceState::Rejected,
        InvoiceState::PartiallyReversed => v1::InvoiceState::PartiallyReversed,
        InvoiceState::FullyReversed => v1::InvoiceState::FullyReversed,
    }
}

/// The store's state for a wire state; `None` for UNSPECIFIED or unknown values.
pub fn state_from_wire(value: i32) -> Option<InvoiceState> {
    Some(match v1::InvoiceState::try_from(value).ok()? {
        v1::InvoiceState::Unspecified => return None,
        v1::InvoiceState::Issued => InvoiceState::Issued,
        v1::InvoiceState::Uploading => InvoiceState::Uploading,
        v1::InvoiceState::Recorded => InvoiceState::Recorded,
        v1::InvoiceState::Rejected => InvoiceState::Rejected,
        v1::InvoiceState::PartiallyReversed => InvoiceState::PartiallyReversed,
        v1::InvoiceState::FullyReversed => InvoiceState::FullyReversed,
    })
}

pub fn kind(k: InvoiceKind) -> v1::InvoiceKind {
    match k {
        InvoiceKind::Special => v1::InvoiceKind::Special,
        InvoiceKind::General => v1::InvoiceKind::General,
    }
}

fn pricing(p: PricingMode) -> v1::PricingMode {
    match p {
        PricingMode::TaxExclusive => v1::PricingMode::TaxExclusive,
        PricingMode::TaxInclusive => v1::PricingMode::TaxInclusive,
    }
}

fn colour(c: fapiao_invoice::model::Colour) -> v1::InvoiceColour {
    match c {
        fapiao_invoice::model::Colour::Blue => v1::InvoiceColour::Blue,
        fapiao_invoice::model::Colour::Red => v1::InvoiceColour::Red,
    }
}

/// A stored invoice as the contract shows it.
pub fn invoice(i: &StoredInvoice, files: &[FileRecord]) -> v1::Invoice {
    let c = &i.content;
    v1::Invoice {
        invoice_number: i.number.to_string(),
        seller_tax_id: i.seller_tax_id.clone(),
        request_id: i.request_id.clone(),
        kind: kind(c.kind).into(),
        colour: colour(c.colour()).into(),
        state: state(i.state).into(),
        issued_at: Some(timestamp(i.issued_at)),
        state_changed_at: Some(timestamp(i.state_changed_at)),
        seller: Some(party(&c.seller)),
        buyer: Some(buyer(&c.buyer)),
        pricing_mode: pricing(c.pricing).into(),
        lines: c.lines.iter().map(line).collect(),
        totals: Some(totals(&c.totals, &c.total_in_words)),
        remark: c.remark.clone(),
        drawer: c.drawer.clone(),
        payee: c.payee.clone(),
        reviewer: c.reviewer.clone(),
        blue_invoice_number: c
            .red
            .as_ref()
            .map(|r| r.blue_number.to_string())
            .unwrap_or_default(),
        red_letter_form_number: c
            .red
            .as_ref()
            .map(|r| r.form_number.clone())
            .unwrap_or_default(),
        reversal: None,
        platform_outcome: i.platform.as_ref().map(|p| v1::PlatformOutcome {
            code: p.code.clone(),
            message: p.message.clone(),
            received_at: Some(timestamp(p.at)),
        }),
        files: files.iter().map(archived_file).collect(),
    }
}

/// The wire spelling of a file format.
pub fn file_format(format: Format) -> v1::FileFormat {
    match format {
        Format::Xml => v1::FileFormat::Xml,
        Format::Ofd => v1::FileFormat::Ofd,
        Format::Pdf => v1::FileFormat::Pdf,
    }
}

/// A recorded archive file as the contract shows it. Every file today is rendered by fapiao; the
/// platform's signed originals will be recorded with `rendered_locally = false`.
pub fn archived_file(file: &FileRecord) -> v1::ArchivedFile {
    v1::ArchivedFile {
        format: file_format(file.format).into(),
        object_key: file.object_key.clone(),
        sm3_hex: file.sm3_hex.clone(),
        size_bytes: file.size_bytes,
        archived_at: Some(timestamp(file.archived_at)),
        rendered_locally: true,
    }
}

/// A stored event as the contract shows it.
pub fn event(e: &StoredEvent) -> v1::InvoiceEvent {
    v1::InvoiceEvent {
        invoice_number: e.invoice_number.clone(),
        seller_tax_id: e.seller_tax_id.clone(),
        request_id: e.request_id.clone(),
        colour: colour(e.colour).into(),
        state: state(e.state).into(),
        previous_state: e
            .previous_state
            .map_or(v1::InvoiceState::Unspecified, state)
            .into(),
        at: Some(timestamp(e.at)),
        reason: e.reason.clone(),
        actor: e.actor.clone(),
        platform_code: e.platform_code.clone().unwrap_or_default(),
        platform_message: e.platform_message.clone().unwrap_or_default(),
    }
}

/// A key the caller looks something up by (a request id, a form number), trimmed; `None` when it
/// holds a control character, which no stored key does, so the lookup finds nothing without
/// asking the store (PostgreSQL refuses NUL in text).
pub fn lookup_key(text: &str) -> Option<&str> {
    let text = text.trim();
    (!text.chars().any(char::is_control)).then_some(text)
}

/// A text filter, trimmed, or the field violation of one holding a control character.
pub fn filter_text(field: &str, text: &str) -> Result<Option<String>, tonic::Status> {
    match lookup_key(text) {
        None => Err(super::status::bad_field(
            field,
            "TEXT_CONTROL_CHARACTER",
            "不能含有控制字符",
        )),
        Some("") => Ok(None),
        Some(text) => Ok(Some(text.to_owned())),
    }
}
