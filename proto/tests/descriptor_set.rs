//! The embedded `FILE_DESCRIPTOR_SET` is what server reflection will serve: it must decode, hold
//! the three services with their RPCs and streaming shapes, and carry the imported well-known
//! types so that reflection clients can resolve every message.

use std::collections::BTreeSet;

use fapiao_proto::{FILE_DESCRIPTOR_SET, v1};
use prost::Message as _;
use prost_types::{FileDescriptorSet, ServiceDescriptorProto};

fn descriptor_set() -> FileDescriptorSet {
    FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("FILE_DESCRIPTOR_SET decodes")
}

fn service(set: &FileDescriptorSet, name: &str) -> ServiceDescriptorProto {
    set.file
        .iter()
        .filter(|file| file.package() == "fapiao.v1")
        .flat_map(|file| file.service.iter())
        .find(|service| service.name() == name)
        .unwrap_or_else(|| panic!("service fapiao.v1.{name} is missing"))
        .clone()
}

fn method_names(service: &ServiceDescriptorProto) -> BTreeSet<&str> {
    service.method.iter().map(|m| m.name()).collect()
}

fn assert_has_methods(service: &ServiceDescriptorProto, expected: &[&str]) {
    let present = method_names(service);
    let missing: Vec<_> = expected.iter().filter(|m| !present.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "{} lacks {missing:?}; it has {present:?}",
        service.name()
    );
}

#[test]
fn issuance_service_covers_issue_lookup_watch_and_red_letter() {
    let set = descriptor_set();
    let issuance = service(&set, "IssuanceService");
    assert_has_methods(
        &issuance,
        &[
            "IssueInvoice",
            "IssueInvoices",
            "ValidateInvoice",
            "GetInvoice",
            "ListInvoices",
            "WatchInvoices",
            "RequestRedLetter",
            "RequestRedLetters",
            "GetRedLetterForm",
            "ListRedLetterForms",
            "ConfirmRedLetterForm",
            "WithdrawRedLetterForm",
            "WatchRedLetterForms",
        ],
    );
}

#[test]
fn audit_and_ops_services_have_their_rpcs() {
    let set = descriptor_set();
    assert_has_methods(
        &service(&set, "AuditService"),
        &[
            "SearchInvoices",
            "GetArchivedFile",
            "VerifyInvoices",
            "GetInvoiceHistory",
            "ListAccessRecords",
        ],
    );
    assert_has_methods(
        &service(&set, "OpsService"),
        &[
            "ListReconciliationRuns",
            "GetReconciliationRun",
            "ListDrifts",
            "ResolveDrift",
            "TriggerReconciliation",
            "ListPendingRedLetterForms",
            "GetNumberAndQuotaStatus",
        ],
    );
}

#[test]
fn only_watch_download_and_verify_stream_and_only_from_the_server() {
    let set = descriptor_set();
    let expected_streams: BTreeSet<&str> = [
        "WatchInvoices",
        "WatchRedLetterForms",
        "GetArchivedFile",
        "VerifyInvoices",
    ]
    .into();
    let mut streams = BTreeSet::new();
    for name in ["IssuanceService", "AuditService", "OpsService"] {
        for method in service(&set, name).method {
            assert!(
                !method.client_streaming(),
                "{name}.{} must not stream from the client",
                method.name()
            );
            if method.server_streaming() {
                streams.insert(method.name().to_owned());
            }
        }
    }
    let streams: BTreeSet<&str> = streams.iter().map(String::as_str).collect();
    assert_eq!(streams, expected_streams);
}

#[test]
fn well_known_imports_are_embedded_and_source_info_is_not() {
    let set = descriptor_set();
    let names: BTreeSet<&str> = set.file.iter().map(|f| f.name()).collect();
    for import in [
        "google/protobuf/timestamp.proto",
        "google/protobuf/duration.proto",
    ] {
        assert!(names.contains(import), "{import} missing from {names:?}");
    }
    // Every dependency of every file is in the set, so reflection can resolve all types.
    for file in &set.file {
        for dependency in &file.dependency {
            assert!(
                names.contains(dependency.as_str()),
                "{} imports {dependency}, which is not in the set",
                file.name()
            );
        }
    }
    assert!(
        set.file.iter().all(|f| f.source_code_info.is_none()),
        "the reflection set is stripped of comments to stay small"
    );
}

#[test]
fn generated_servers_are_named_after_the_descriptor_services() {
    assert_eq!(
        v1::issuance_service_server::SERVICE_NAME,
        "fapiao.v1.IssuanceService"
    );
    assert_eq!(
        v1::audit_service_server::SERVICE_NAME,
        "fapiao.v1.AuditService"
    );
    assert_eq!(v1::ops_service_server::SERVICE_NAME, "fapiao.v1.OpsService");
}
