//! Every RPC applies the caller's seller scope, on SQLite and on PostgreSQL.
//!
//! A table: every RPC of the contract × every role × the caller's own seller, another configured
//! seller, a seller this deployment does not have, and no seller at all, each cell asserted:
//! - with a role the caller does not hold: `PERMISSION_DENIED` (`ROLE_REQUIRED`), whatever it names;
//! - its own seller: the answer shows the caller's seller only (or, for answers about a form it
//!   may not answer itself, a refusal that is neither "not found" nor "forbidden");
//! - another seller and an unknown one: the same answer, word for word but for the names, and
//!   nothing of the other seller (so no answer says whether a seller or an object exists);
//! - nothing named: only the caller's seller's data, or the refusal the row names.
//!
//! After the table, what the refused cells would have changed is checked unchanged.

// The shared test bodies are plain functions called from generated #[tokio::test]s, so the
// test-only allowance of `unwrap` does not reach them.
#![allow(clippy::unwrap_used)]

mod cells;
mod support;
mod world;

use cells::{Answer, Rpc, Target, call};
use fapiao_proto::v1;
use fapiao_tests::db::{self, TestDatabase};
use std::collections::BTreeSet;
use tonic::Code;
use world::{A, ADMIN, AUDITOR_A, B, ISSUER_A, OPERATOR_A, World};

/// What the caller's own seller gets.
#[derive(Debug, Clone, Copy)]
enum Own {
    /// An answer showing the caller's seller, and only it.
    Sees,
    /// That, or a refusal about the object itself (neither "not found" nor "forbidden").
    Reaches,
    /// The RPC names no seller or object: every cell is the unnamed call.
    NamesNothing,
}

/// What a call naming nothing gets.
#[derive(Debug, Clone, Copy)]
enum Unnamed {
    /// Only the caller's seller's data (perhaps none).
    OnlyOwn,
    /// This refusal.
    Refused(Code),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Issuer,
    Auditor,
    Operator,
}

const ROLES: [(Role, &str); 3] = [
    (Role::Issuer, ISSUER_A),
    (Role::Auditor, AUDITOR_A),
    (Role::Operator, OPERATOR_A),
];

const TARGETS: [Target; 4] = [
    Target::Own,
    Target::Other,
    Target::Unknown,
    Target::Unfiltered,
];

/// The table's rows: the RPC, the role it needs, and what the own and unnamed cells get.
const ROWS: &[(Rpc, Role, Own, Unnamed)] = {
    use Code::{InvalidArgument, NotFound};
    use Own::{NamesNothing, Reaches, Sees};
    use Unnamed::{OnlyOwn, Refused};
    &[
        (
            Rpc::IssueInvoice,
            Role::Issuer,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::IssueInvoices,
            Role::Issuer,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::ValidateInvoice,
            Role::Issuer,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::GetInvoice,
            Role::Issuer,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::GetInvoiceByRequest,
            Role::Issuer,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::ListInvoices,
            Role::Issuer,
            Sees,
            Refused(InvalidArgument),
        ),
        (Rpc::WatchInvoices, Role::Issuer, Sees, OnlyOwn),
        (
            Rpc::RequestRedLetter,
            Role::Issuer,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::RequestRedLetterOfBlue,
            Role::Issuer,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::RequestRedLetters,
            Role::Issuer,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::GetRedLetterForm,
            Role::Issuer,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::ListRedLetterForms,
            Role::Issuer,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::ConfirmRedLetterForm,
            Role::Issuer,
            Reaches,
            Refused(InvalidArgument),
        ),
        (
            Rpc::ConfirmRedLetterFormOfForm,
            Role::Issuer,
            Reaches,
            Refused(NotFound),
        ),
        (
            Rpc::WithdrawRedLetterForm,
            Role::Issuer,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::WithdrawRedLetterFormOfForm,
            Role::Issuer,
            Sees,
            Refused(NotFound),
        ),
        (Rpc::WatchRedLetterForms, Role::Issuer, Sees, OnlyOwn),
        (Rpc::SearchInvoices, Role::Auditor, Sees, OnlyOwn),
        (
            Rpc::GetArchivedFile,
            Role::Auditor,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::VerifyInvoices,
            Role::Auditor,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::VerifyInvoicesOfRange,
            Role::Auditor,
            Sees,
            Refused(InvalidArgument),
        ),
        (
            Rpc::GetInvoiceHistory,
            Role::Auditor,
            Sees,
            Refused(InvalidArgument),
        ),
        (Rpc::ListAccessRecords, Role::Auditor, Sees, OnlyOwn),
        (
            Rpc::ListReconciliationRuns,
            Role::Operator,
            NamesNothing,
            OnlyOwn,
        ),
        (
            Rpc::GetReconciliationRun,
            Role::Operator,
            Sees,
            Refused(NotFound),
        ),
        (Rpc::ListDrifts, Role::Operator, Sees, OnlyOwn),
        (Rpc::ResolveDrift, Role::Operator, Sees, Refused(NotFound)),
        (Rpc::TriggerReconciliation, Role::Operator, Sees, OnlyOwn),
        (
            Rpc::ListPendingRedLetterForms,
            Role::Operator,
            Sees,
            OnlyOwn,
        ),
        (Rpc::GetNumberAndQuotaStatus, Role::Operator, Sees, OnlyOwn),
    ]
};

/// The contract's method a row calls.
fn method(rpc: Rpc) -> String {
    let name = format!("{rpc:?}");
    for suffix in ["ByRequest", "OfBlue", "OfForm", "OfRange"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base.to_owned();
        }
    }
    name
}

/// A refusal's code and message with every name in it (tax ids, numbers, ids) blanked, so the
/// answers about another seller and about none can be compared word for word.
fn normalised(answer: &Answer) -> String {
    match answer {
        Ok(sellers) => format!("OK {sellers:?}"),
        Err(status) => {
            let mut out = String::new();
            let mut word = String::new();
            let flush = |word: &mut String, out: &mut String| {
                if word.chars().any(|c| c.is_ascii_digit()) {
                    out.push_str("<id>");
                } else {
                    out.push_str(word);
                }
                word.clear();
            };
            for ch in status.message().chars() {
                if ch.is_ascii_alphanumeric() {
                    word.push(ch);
                } else {
                    flush(&mut word, &mut out);
                    out.push(ch);
                }
            }
            flush(&mut word, &mut out);
            format!("{:?} {out}", status.code())
        }
    }
}

fn only_own(sellers: &[String]) -> bool {
    sellers.iter().all(|s| s == A)
}

/// What is wrong with one cell, if anything.
fn judge(
    row: &(Rpc, Role, Own, Unnamed),
    role: Role,
    target: Target,
    answer: &Answer,
    unknown: &Answer,
) -> Option<String> {
    let (_, needs, own, unnamed) = *row;
    if role != needs {
        return match answer {
            Err(s)
                if s.code() == Code::PermissionDenied
                    && s.message().starts_with("ROLE_REQUIRED") =>
            {
                None
            }
            other => Some(format!("without the role: {other:?}")),
        };
    }
    let target = match own {
        Own::NamesNothing => Target::Unfiltered,
        _ => target,
    };
    match (target, answer) {
        (Target::Own, Ok(sellers)) if !sellers.is_empty() && only_own(sellers) => None,
        (Target::Own, Err(s))
            if matches!(own, Own::Reaches)
                && !matches!(s.code(), Code::NotFound | Code::PermissionDenied) =>
        {
            None
        }
        (Target::Own, other) => Some(format!("own seller: {other:?}")),
        (Target::Other | Target::Unknown, _) if normalised(answer) != normalised(unknown) => {
            Some(format!(
                "another seller's answer differs from an unknown one's: {} / {}",
                normalised(answer),
                normalised(unknown)
            ))
        }
        (Target::Other | Target::Unknown, Ok(sellers)) if sellers.is_empty() => None,
        (Target::Other | Target::Unknown, Err(s))
            if matches!(s.code(), Code::NotFound | Code::PermissionDenied) =>
        {
            None
        }
        (Target::Other | Target::Unknown, other) => Some(format!("not own: {other:?}")),
        (Target::Unfiltered, Ok(sellers)) if matches!(unnamed, Unnamed::OnlyOwn) => {
            (!only_own(sellers)).then(|| format!("nothing named: {sellers:?}"))
        }
        (Target::Unfiltered, Err(s)) if matches!(unnamed, Unnamed::Refused(c) if c == s.code()) => {
            None
        }
        (Target::Unfiltered, other) => Some(format!("nothing named: {other:?}")),
    }
}

async fn every_rpc_applies_the_callers_scope(db: TestDatabase) {
    let backend = db.backend;
    let world = World::build(db).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in ROWS {
        for (role, token) in ROLES {
            // The unknown target first: the other seller's answer must be the same.
            let unknown = call(&world, row.0, token, Target::Unknown).await;
            for target in TARGETS {
                let answer = if target == Target::Unknown {
                    unknown.clone()
                } else {
                    call(&world, row.0, token, target).await
                };
                cells += 1;
                if let Some(wrong) = judge(row, role, target, &answer, &unknown) {
                    failures.push(format!("{:?} as {role:?}, {target:?}: {wrong}", row.0));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{backend}: {} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(cells, ROWS.len() * ROLES.len() * TARGETS.len());
    nothing_of_the_other_seller_changed(&world).await;
}

/// What the refused cells would have changed of B is as it was.
async fn nothing_of_the_other_seller_changed(w: &World) {
    let mut ops = support::ops(w, ADMIN);
    let drifts = ops
        .list_drifts(v1::ListDriftsRequest {
            seller_tax_id: B.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .drifts;
    let open: Vec<&str> = drifts.iter().map(|d| d.drift_id.as_str()).collect();
    assert_eq!(open, [w.b_drift.as_str()], "B's drift is still open");
    let form = w
        .app
        .issuance_as(ADMIN)
        .get_red_letter_form(v1::GetRedLetterFormRequest {
            key: Some(v1::get_red_letter_form_request::Key::FormNumber(
                w.b_form.clone(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .form
        .unwrap();
    assert_eq!(form.status(), v1::RedLetterFormStatus::AwaitingBuyer);
    let runs = ops
        .list_reconciliation_runs(v1::ListReconciliationRunsRequest {
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .runs;
    let not_a: Vec<&str> = runs
        .iter()
        .map(|r| r.run_id.as_str())
        .filter(|id| w.run_owner(id) != A)
        .collect();
    assert_eq!(
        not_a.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([w.b_run.as_str(), w.all_run.as_str()]),
        "no pass over B was started by A's operator"
    );
    let b_invoices = w
        .app
        .issuance_as(ADMIN)
        .list_invoices(v1::ListInvoicesRequest {
            seller_tax_id: B.into(),
            colour: v1::InvoiceColour::Blue.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .invoices;
    assert_eq!(b_invoices.len(), 2, "no invoice was issued for B");
}

/// The table names every RPC of the three services, so a new RPC fails this test until its
/// scope is part of it.
#[test]
fn the_table_covers_every_rpc_of_the_contract() {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(fapiao_proto::FILE_DESCRIPTOR_SET).unwrap();
    let contract: BTreeSet<String> = set
        .file
        .iter()
        .flat_map(|f| f.service.iter())
        .flat_map(|s| s.method.iter())
        .filter_map(|m| m.name.clone())
        .collect();
    let table: BTreeSet<String> = ROWS.iter().map(|row| method(row.0)).collect();
    assert_eq!(table, contract);
    assert_eq!(contract.len(), 25);
}

fapiao_tests::on_both_databases!(every_rpc_applies_the_callers_scope);
