//! Two-way comparison of local invoices with the platform's listing: drift classes and the repair
//! plan.
//!
//! [`compare`] matches the local store's invoices ([`LocalInvoice`]) with the platform's listing of
//! the same window ([`PlatformInvoice`]) by invoice number, counts those that agree and returns one
//! [`Drift`] for each that does not, with the [`Repair`] to make, ordered by number.
//!
//! It owns the rules below and nothing else. It must not do I/O, SQL or HTTP, must not read the
//! clock (`now` is passed in), must not carry out a repair (the service does, and records the
//! event), and must never plan an automatic repair of a content mismatch. It does not depend on
//! `fapiao-services`: the service converts its rows into these input types.
//!
//! *Age* is `now` minus a time. A local invoice whose last change (the later of `issued_at` and
//! `state_since`) is less than [`Settings::grace`] old, or a remote-only invoice issued less than
//! `grace` ago, is in flight: never drift, counted in agreement. Content mismatch is the one
//! exception: an issued invoice's content never changes, so a mismatch is never "in flight".
//! "Bounded" means the repair while `reconcile_attempts < max_reuploads`, else a critical alert
//! (the drift persists despite re-uploads).
//!
//! | local | platform | when | class | repair |
//! |---|---|---|---|---|
//! | recorded, partially or fully reversed | absent | age ≥ grace | missing on platform | bounded re-upload |
//! | issued | absent | age ≥ grace | missing on platform | bounded re-upload |
//! | uploading | absent | `state_since` age ≥ `stuck_after` | stuck | bounded query then re-upload |
//! | uploading (younger), issued (in flight), rejected | absent | | agreement | |
//! | any | any | seller, colour, amount, tax, buyer name, buyer tax id or content digest differ | content mismatch | critical alert |
//! | issued, uploading, rejected | normal, partially or fully reversed | age ≥ grace | status mismatch | adopt the platform's state |
//! | recorded | partially or fully reversed | age ≥ grace | status mismatch | adopt the platform's state |
//! | partially reversed | fully reversed | age ≥ grace | status mismatch | adopt fully reversed |
//! | further along than the platform | | age ≥ grace | status mismatch | warning alert |
//! | recorded, partially reversed, fully reversed | normal, partially reversed, fully reversed (same) | | agreement | |
//! | absent | any | (seller, request id) known | remote only | adopt the remote invoice |
//! | absent | any | not known | remote only | critical alert |
//!
//! Content is compared with buyer names trimmed, buyer tax ids trimmed and uppercased (empty is
//! none) and content digests case-insensitively. A number repeated on one side counts once: the
//! later entry in the slice wins, as a later page of a listing supersedes an earlier one.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::hash::BuildHasher;

use chrono::{DateTime, TimeDelta, Utc};
use fapiao_invoice::model::Colour;
use fapiao_invoice::number::InvoiceNumber;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An invoice's state in the local store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalState {
    /// Issued locally, not yet uploaded.
    Issued,
    /// Uploaded, the platform's result not yet known.
    Uploading,
    /// The platform recorded it.
    Recorded,
    /// The platform refused it.
    Rejected,
    /// Partly reversed by red invoices.
    PartiallyReversed,
    /// Fully reversed.
    FullyReversed,
}

impl LocalState {
    /// Stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Uploading => "uploading",
            Self::Recorded => "recorded",
            Self::Rejected => "rejected",
            Self::PartiallyReversed => "partially_reversed",
            Self::FullyReversed => "fully_reversed",
        }
    }

    /// How far along the platform's life the state is: 0 = the platform should hold no record.
    fn rank(self) -> u8 {
        match self {
            Self::Issued | Self::Uploading | Self::Rejected => 0,
            Self::Recorded => 1,
            Self::PartiallyReversed => 2,
            Self::FullyReversed => 3,
        }
    }
}

impl fmt::Display for LocalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PartiallyReversed => "partially reversed",
            Self::FullyReversed => "fully reversed",
            other => other.as_str(),
        })
    }
}

/// An invoice's state on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformState {
    /// 正常.
    Normal,
    /// 部分红冲.
    PartiallyReversed,
    /// 全额红冲.
    FullyReversed,
}

impl PlatformState {
    /// Stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::PartiallyReversed => "partially_reversed",
            Self::FullyReversed => "fully_reversed",
        }
    }

    /// The local state that agrees with this one.
    pub fn as_local(self) -> LocalState {
        match self {
            Self::Normal => LocalState::Recorded,
            Self::PartiallyReversed => LocalState::PartiallyReversed,
            Self::FullyReversed => LocalState::FullyReversed,
        }
    }
}

impl fmt::Display for PlatformState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Normal => "normal",
            Self::PartiallyReversed => "partially reversed",
            Self::FullyReversed => "fully reversed",
        })
    }
}

/// One invoice as the local store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalInvoice {
    pub number: InvoiceNumber,
    /// The seller's taxpayer id.
    pub seller: String,
    /// The caller's idempotency key the invoice was issued under.
    pub request_id: String,
    pub issued_at: DateTime<Utc>,
    pub colour: Colour,
    pub state: LocalState,
    /// When the invoice entered `state`.
    pub state_since: DateTime<Utc>,
    pub buyer_name: String,
    pub buyer_tax_id: Option<String>,
    /// Tax-exclusive total.
    pub amount: Decimal,
    pub tax: Decimal,
    /// Digest of the content computed the way the platform computes it.
    pub content_sm3: String,
    /// Re-uploads the reconciler has already made for this invoice.
    pub reconcile_attempts: u32,
}

/// One row of the platform's listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformInvoice {
    pub number: InvoiceNumber,
    /// The seller's taxpayer id.
    pub seller: String,
    /// The caller's `request_id` as uploaded, so a remote-only invoice can be matched.
    pub request_id: String,
    pub issued_at: DateTime<Utc>,
    pub colour: Colour,
    pub state: PlatformState,
    pub buyer_name: String,
    pub buyer_tax_id: Option<String>,
    /// Tax-exclusive total.
    pub amount: Decimal,
    pub tax: Decimal,
    /// Digest of the content the platform received.
    pub content_sm3: String,
}

/// The limits of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long an upload may stay unanswered before it is stuck.
    pub stuck_after: TimeDelta,
    /// An invoice issued or changed less than this long ago is in flight, never drift.
    pub grace: TimeDelta,
    /// Re-uploads the reconciler makes for one invoice before it alerts instead.
    pub max_reuploads: u32,
}

impl Default for Settings {
    /// 15 minutes, 2 minutes, 3 re-uploads.
    fn default() -> Self {
        Self {
            stuck_after: TimeDelta::minutes(15),
            grace: TimeDelta::minutes(2),
            max_reuploads: 3,
        }
    }
}

/// Whether a remote-only invoice's (seller, request id) is a request we know, such as a
/// red-letter confirmation we initiated. Implemented for closures and for sets of pairs.
pub trait KnownRequests {
    /// True when the platform invoice made under this seller and request id can be adopted.
    fn is_known(&self, seller: &str, request_id: &str) -> bool;
}

impl<F> KnownRequests for F
where
    F: Fn(&str, &str) -> bool,
{
    fn is_known(&self, seller: &str, request_id: &str) -> bool {
        self(seller, request_id)
    }
}

/// Looking up a pair allocates it; only remote-only invoices are looked up, and they are rare.
impl<S: BuildHasher> KnownRequests for HashSet<(String, String), S> {
    fn is_known(&self, seller: &str, request_id: &str) -> bool {
        self.contains(&(seller.to_owned(), request_id.to_owned()))
    }
}

/// The kind of disagreement between the local store and the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftClass {
    /// Issued locally but not recorded on the platform.
    MissingOnPlatform,
    /// Uploading for longer than the limit, and the platform has no record.
    Stuck,
    /// Both hold the invoice with the same content but different states.
    StatusMismatch,
    /// The platform holds an invoice the local store does not.
    RemoteOnly,
    /// Both hold the invoice but its amounts, parties or digest differ.
    ContentMismatch,
}

impl DriftClass {
    /// Stable snake_case code, as stored and exported.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingOnPlatform => "missing_on_platform",
            Self::Stuck => "stuck",
            Self::StatusMismatch => "status_mismatch",
            Self::RemoteOnly => "remote_only",
            Self::ContentMismatch => "content_mismatch",
        }
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Someone must look now: money or records may be wrong.
    Critical,
    /// Someone should look during working hours.
    Warning,
}

impl Urgency {
    /// Stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Warning => "warning",
        }
    }
}

/// What the service should do about one drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Repair {
    /// Upload the local invoice again.
    Reupload,
    /// Query the platform for the upload's result; re-upload if it has none.
    QueryThenReupload,
    /// Move the local invoice to this state and record the event.
    AdoptState(LocalState),
    /// Store the platform's invoice locally.
    AdoptRemote,
    /// Do nothing automatically; alert a person.
    Alert {
        /// How urgent the alert is.
        severity: Urgency,
    },
}

/// One invoice on which the local store and the platform disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub number: InvoiceNumber,
    pub seller: String,
    /// When the invoice was issued (locally, or as the platform lists it for a remote-only one):
    /// which window a later pass must cover to see whether the drift is gone.
    pub issued_at: DateTime<Utc>,
    pub class: DriftClass,
    /// What differs, in words.
    pub detail: String,
    pub repair: Repair,
    /// `None` when the local store has no such invoice.
    pub local_state: Option<LocalState>,
    /// `None` when the platform has no such invoice.
    pub platform_state: Option<PlatformState>,
}

/// The result of one comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    /// Distinct invoice numbers on which both sides agree (in-flight invoices included).
    pub in_agreement: u64,
    /// Every disagreement, ordered by number; at most one per number.
    pub drifts: Vec<Drift>,
}

impl Comparison {
    /// How many drifts are of `class`.
    pub fn count(&self, class: DriftClass) -> usize {
        self.drifts.iter().filter(|d| d.class == class).count()
    }
}

/// Compares the local invoices of a window with the platform's listing of the same window.
///
/// Inputs may come in any order; every distinct number of `local ∪ remote` is either counted in
/// agreement or reported in exactly one drift.
pub fn compare<K>(
    local: &[LocalInvoice],
    remote: &[PlatformInvoice],
    known_requests: &K,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Comparison
where
    K: KnownRequests + ?Sized,
{
    // One index, of the platform's rows; both slices are then walked in their own order, which
    // keeps memory access sequential when (as usual) both come sorted by number or time.
    let mut remote_index: HashMap<InvoiceNumber, usize> = HashMap::with_capacity(remote.len());
    let mut partners = vec![Partner::None; remote.len()];
    for (at, there) in remote.iter().enumerate() {
        if let Some(earlier) = remote_index.insert(there.number, at) {
            partners[earlier] = Partner::Superseded;
        }
    }
    let mut local_only = Vec::new();
    for (at, here) in local.iter().enumerate() {
        match remote_index.get(&here.number) {
            // A later local entry of the same number overwrites an earlier one.
            Some(&remote_at) => partners[remote_at] = Partner::Local(at),
            None => local_only.push((here.number, at)),
        }
    }
    drop(remote_index);

    let mut comparison = Comparison::default();
    let mut record = |drift: Option<Drift>| match drift {
        Some(drift) => comparison.drifts.push(drift),
        None => comparison.in_agreement += 1,
    };
    for (there, partner) in remote.iter().zip(&partners) {
        match *partner {
            Partner::Superseded => {}
            Partner::None => record(remote_only_drift(there, known_requests, settings, now)),
            Partner::Local(at) => {
                if let Some(here) = local.get(at) {
                    record(both_present_drift(here, there, settings, now));
                }
            }
        }
    }
    // A stable sort, so the last entry of each repeated number is the last of its run.
    local_only.sort_by_key(|&(number, _)| number);
    for run in local_only.chunk_by(|a, b| a.0 == b.0) {
        if let Some(here) = run.last().and_then(|&(_, at)| local.get(at)) {
            record(local_only_drift(here, settings, now));
        }
    }
    comparison.drifts.sort_unstable_by_key(|d| d.number);
    comparison
}

/// Which local entry, if any, a platform row is compared with.
#[derive(Debug, Clone, Copy)]
enum Partner {
    /// No local invoice has its number: remote only.
    None,
    /// A later row of the listing has the same number and is the one compared.
    Superseded,
    /// The index of the local invoice with its number.
    Local(usize),
}

fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> TimeDelta {
    now.signed_duration_since(since)
}

/// Whether the invoice was issued or changed state less than `grace` ago.
fn in_flight(here: &LocalInvoice, settings: &Settings, now: DateTime<Utc>) -> bool {
    age(here.issued_at.max(here.state_since), now) < settings.grace
}

fn drift_here(here: &LocalInvoice, class: DriftClass, detail: String, repair: Repair) -> Drift {
    Drift {
        number: here.number,
        seller: here.seller.clone(),
        issued_at: here.issued_at,
        class,
        detail,
        repair,
        local_state: Some(here.state),
        platform_state: None,
    }
}

/// `repair` while re-uploads remain, else a critical alert saying so in `detail`.
fn bounded(
    here: &LocalInvoice,
    settings: &Settings,
    repair: Repair,
    mut detail: String,
) -> (Repair, String) {
    if here.reconcile_attempts < settings.max_reuploads {
        return (repair, detail);
    }
    let _ = write!(
        detail,
        "; persists after {} re-uploads (limit {})",
        here.reconcile_attempts, settings.max_reuploads
    );
    let alert = Repair::Alert {
        severity: Urgency::Critical,
    };
    (alert, detail)
}

fn local_only_drift(here: &LocalInvoice, settings: &Settings, now: DateTime<Utc>) -> Option<Drift> {
    match here.state {
        // The platform refused it: that it holds no record is consistent.
        LocalState::Rejected => None,
        LocalState::Uploading => {
            let waited = age(here.state_since, now);
            if waited < settings.stuck_after || in_flight(here, settings, now) {
                return None;
            }
            let detail = format!(
                "uploading here for {}, absent on the platform",
                human(waited)
            );
            let (repair, detail) = bounded(here, settings, Repair::QueryThenReupload, detail);
            Some(drift_here(here, DriftClass::Stuck, detail, repair))
        }
        LocalState::Issued
        | LocalState::Recorded
        | LocalState::PartiallyReversed
        | LocalState::FullyReversed => {
            if in_flight(here, settings, now) {
                return None;
            }
            let detail = format!(
                "issued locally but not recorded: {} here, absent on the platform",
                here.state
            );
            let (repair, detail) = bounded(here, settings, Repair::Reupload, detail);
            Some(drift_here(
                here,
                DriftClass::MissingOnPlatform,
                detail,
                repair,
            ))
        }
    }
}

fn both_present_drift(
    here: &LocalInvoice,
    there: &PlatformInvoice,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Option<Drift> {
    let with_platform = |class, detail, repair| Drift {
        platform_state: Some(there.state),
        ..drift_here(here, class, detail, repair)
    };
    if let Some(detail) = content_differences(here, there) {
        let repair = Repair::Alert {
            severity: Urgency::Critical,
        };
        return Some(with_platform(DriftClass::ContentMismatch, detail, repair));
    }
    let (ours, theirs) = (here.state.rank(), there.state.as_local().rank());
    if ours == theirs || in_flight(here, settings, now) {
        return None;
    }
    let detail = format!("{} here, {} on the platform", here.state, there.state);
    let repair = if ours < theirs {
        Repair::AdoptState(there.state.as_local())
    } else {
        // The platform never loses a reversal it made; ours ran ahead of it, which a person must
        // explain, but nothing is lost while the invoice stays recorded there.
        Repair::Alert {
            severity: Urgency::Warning,
        }
    };
    Some(with_platform(DriftClass::StatusMismatch, detail, repair))
}

/// Every differing content field in words, or `None` when the content agrees.
fn content_differences(here: &LocalInvoice, there: &PlatformInvoice) -> Option<String> {
    let mut detail = String::new();
    let mut note = |args: fmt::Arguments<'_>| {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        let _ = detail.write_fmt(args);
    };
    if here.seller.trim() != there.seller.trim() {
        note(format_args!(
            "seller {} here, {} on the platform",
            here.seller, there.seller
        ));
    }
    if here.colour != there.colour {
        note(format_args!(
            "colour {} here, {} on the platform",
            colour_word(here.colour),
            colour_word(there.colour)
        ));
    }
    if here.amount != there.amount {
        note(format_args!(
            "amount {} here, {} on the platform",
            here.amount, there.amount
        ));
    }
    if here.tax != there.tax {
        note(format_args!(
            "tax {} here, {} on the platform",
            here.tax, there.tax
        ));
    }
    if here.buyer_name.trim() != there.buyer_name.trim() {
        note(format_args!(
            "buyer name {:?} here, {:?} on the platform",
            here.buyer_name.trim(),
            there.buyer_name.trim()
        ));
    }
    let (our_id, their_id) = (tax_id(&here.buyer_tax_id), tax_id(&there.buyer_tax_id));
    if !same_tax_id(our_id, their_id) {
        note(format_args!(
            "buyer tax id {} here, {} on the platform",
            our_id.unwrap_or("none"),
            their_id.unwrap_or("none")
        ));
    }
    if !here.content_sm3.eq_ignore_ascii_case(&there.content_sm3) {
        note(format_args!(
            "content digest {} here, {} on the platform",
            here.content_sm3, there.content_sm3
        ));
    }
    (!detail.is_empty()).then_some(detail)
}

/// A tax id trimmed, with an empty one read as none.
fn tax_id(id: &Option<String>) -> Option<&str> {
    id.as_deref().map(str::trim).filter(|id| !id.is_empty())
}

/// Equal once uppercased, compared without allocating.
fn same_tax_id(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a
            .chars()
            .flat_map(char::to_uppercase)
            .eq(b.chars().flat_map(char::to_uppercase)),
        _ => false,
    }
}

fn colour_word(colour: Colour) -> &'static str {
    match colour {
        Colour::Blue => "blue",
        Colour::Red => "red",
    }
}

fn remote_only_drift<K>(
    there: &PlatformInvoice,
    known_requests: &K,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Option<Drift>
where
    K: KnownRequests + ?Sized,
{
    // Our own record of an invoice the platform just issued (an auto-issued red invoice) may
    // still be on its way into the store.
    if age(there.issued_at, now) < settings.grace {
        return None;
    }
    let known = known_requests.is_known(&there.seller, &there.request_id);
    let (repair, whose) = if known {
        (Repair::AdoptRemote, "one we made")
    } else {
        let alert = Repair::Alert {
            severity: Urgency::Critical,
        };
        (alert, "not one we know")
    };
    Some(Drift {
        number: there.number,
        seller: there.seller.clone(),
        issued_at: there.issued_at,
        class: DriftClass::RemoteOnly,
        detail: format!(
            "{} on the platform, absent here; request {:?} is {whose}",
            there.state, there.request_id
        ),
        repair,
        local_state: None,
        platform_state: Some(there.state),
    })
}

/// A duration in the coarsest unit that still says something: minutes, hours or days.
fn human(duration: TimeDelta) -> String {
    let minutes = duration.num_minutes();
    if minutes < 120 {
        format!("{minutes} min")
    } else if minutes < 48 * 60 {
        format!("{} h", minutes / 60)
    } else {
        format!("{} d", minutes / (24 * 60))
    }
}

#[cfg(test)]
mod tests;
