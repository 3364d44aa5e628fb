//! Conventions of the `fapiao.v1` contract, checked on the `.proto` sources themselves:
//!
//! - every message, field, oneof, enum, enum value, service and method has a leading comment;
//! - every enum's value 0 is `<ENUM_NAME>_UNSPECIFIED` and every value carries that prefix;
//! - every RPC takes `<Rpc>Request` and returns `<Rpc>Response`, used by no other RPC.
//!
//! The sources are compiled again here with protox, with source info (comments), from the files
//! on disk. Each check is a function returning the offending names, and each is also run on a
//! small inline file that breaks the rule, so a check that can no longer fail is caught too.

use std::{collections::BTreeMap, fs, path::PathBuf};

use prost_types::{
    DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    source_code_info::Location,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

const PACKAGE: &str = "fapiao.v1";

// Field numbers of descriptor.proto, used to build source-info paths.
const FILE_MESSAGE_TYPE: i32 = 4;
const FILE_ENUM_TYPE: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED_TYPE: i32 = 3;
const MESSAGE_ENUM_TYPE: i32 = 4;
const MESSAGE_ONEOF_DECL: i32 = 8;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

/// The contract as it is on disk, compiled with comments; only files of `fapiao.v1` are kept.
fn contract() -> Vec<FileDescriptorProto> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("fapiao/v1");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("proto directory is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "expected the contract's files in {dir:?}");
    let set = protox::Compiler::new([&root])
        .expect("include root")
        .include_source_info(true)
        .include_imports(false)
        .open_files(&files)
        .expect("contract compiles")
        .file_descriptor_set();
    own_files(set)
}

fn own_files(set: FileDescriptorSet) -> Vec<FileDescriptorProto> {
    set.file
        .into_iter()
        .filter(|file| file.package() == PACKAGE)
        .collect()
}

/// A file that exists only in memory, for proving that the checks fail.
struct InlineFile {
    name: &'static str,
    source: &'static str,
}

impl FileResolver for InlineFile {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == self.name {
            File::from_source(name, self.source)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

fn compile_inline(source: &'static str) -> Vec<FileDescriptorProto> {
    let mut resolver = ChainFileResolver::new();
    resolver.add(InlineFile {
        name: "inline.proto",
        source,
    });
    resolver.add(GoogleFileResolver::new());
    let set = protox::Compiler::with_file_resolver(resolver)
        .include_source_info(true)
        .open_file("inline.proto")
        .expect("inline file compiles")
        .file_descriptor_set();
    own_files(set)
}

// ---------------------------------------------------------------------------------------------
// Documentation

/// Full names of elements without a non-blank leading comment, with their kind.
fn undocumented(files: &[FileDescriptorProto]) -> Vec<String> {
    let mut missing = Vec::new();
    for file in files {
        let comments: BTreeMap<&[i32], &Location> = file
            .source_code_info
            .as_ref()
            .expect("compiled with source info")
            .location
            .iter()
            .map(|location| (location.path.as_slice(), location))
            .collect();
        let mut check = |path: &[i32], name: String, kind: &str| {
            let documented = comments
                .get(path)
                .is_some_and(|l| !l.leading_comments().trim().is_empty());
            if !documented {
                missing.push(format!("{name} ({kind})"));
            }
        };
        let package = file.package();
        for (i, message) in file.message_type.iter().enumerate() {
            walk_message(message, &[FILE_MESSAGE_TYPE, i as i32], package, &mut check);
        }
        for (i, enumeration) in file.enum_type.iter().enumerate() {
            walk_enum(
                enumeration,
                &[FILE_ENUM_TYPE, i as i32],
                package,
                &mut check,
            );
        }
        for (i, service) in file.service.iter().enumerate() {
            let path = [FILE_SERVICE, i as i32];
            let name = format!("{package}.{}", service.name());
            check(&path, name.clone(), "service");
            for (j, method) in service.method.iter().enumerate() {
                let method_path = [FILE_SERVICE, i as i32, SERVICE_METHOD, j as i32];
                check(&method_path, format!("{name}.{}", method.name()), "rpc");
            }
        }
    }
    missing
}

fn walk_message(
    message: &DescriptorProto,
    path: &[i32],
    scope: &str,
    check: &mut impl FnMut(&[i32], String, &str),
) {
    let name = format!("{scope}.{}", message.name());
    check(path, name.clone(), "message");
    let child = |kind: i32, index: usize| [path, &[kind, index as i32]].concat();
    for (i, field) in message.field.iter().enumerate() {
        check(
            &child(MESSAGE_FIELD, i),
            format!("{name}.{}", field.name()),
            "field",
        );
    }
    for (i, oneof) in message.oneof_decl.iter().enumerate() {
        check(
            &child(MESSAGE_ONEOF_DECL, i),
            format!("{name}.{}", oneof.name()),
            "oneof",
        );
    }
    for (i, nested) in message.nested_type.iter().enumerate() {
        walk_message(nested, &child(MESSAGE_NESTED_TYPE, i), &name, check);
    }
    for (i, enumeration) in message.enum_type.iter().enumerate() {
        walk_enum(enumeration, &child(MESSAGE_ENUM_TYPE, i), &name, check);
    }
}

fn walk_enum(
    enumeration: &EnumDescriptorProto,
    path: &[i32],
    scope: &str,
    check: &mut impl FnMut(&[i32], String, &str),
) {
    let name = format!("{scope}.{}", enumeration.name());
    check(path, name.clone(), "enum");
    for (i, value) in enumeration.value.iter().enumerate() {
        let value_path = [path, &[ENUM_VALUE, i as i32]].concat();
        check(
            &value_path,
            format!("{name}.{}", value.name()),
            "enum value",
        );
    }
}

#[test]
fn every_element_of_the_contract_has_a_leading_comment() {
    let missing = undocumented(&contract());
    assert!(
        missing.is_empty(),
        "undocumented elements:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_documentation_check_names_what_is_undocumented() {
    let files = compile_inline(
        r#"
        syntax = "proto3";
        package fapiao.v1;
        // Documented message.
        message Good {
          // Documented field.
          string documented = 1;
          string bare = 2; // a trailing comment does not count
          oneof choice {
            // Documented member.
            string a = 3;
          }
          // Documented nested message.
          message Inner {
            //
            string blank = 1;
          }
        }
        enum Bare {
          // Documented value.
          BARE_UNSPECIFIED = 0;
          BARE_OTHER = 1;
        }
        // Documented service.
        service Svc {
          rpc Call(Good) returns (Good);
        }
        "#,
    );
    assert_eq!(
        undocumented(&files),
        [
            "fapiao.v1.Good.bare (field)",
            "fapiao.v1.Good.choice (oneof)",
            "fapiao.v1.Good.Inner.blank (field)",
            "fapiao.v1.Bare (enum)",
            "fapiao.v1.Bare.BARE_OTHER (enum value)",
            "fapiao.v1.Svc.Call (rpc)",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Enums

/// `RedLetterFormStatus` → `RED_LETTER_FORM_STATUS`.
fn upper_snake(name: &str) -> String {
    let mut out = String::new();
    let mut previous: Option<char> = None;
    for c in name.chars() {
        if c.is_ascii_uppercase()
            && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
        {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
        previous = Some(c);
    }
    out
}

fn all_enums(files: &[FileDescriptorProto]) -> Vec<&EnumDescriptorProto> {
    fn nested<'a>(message: &'a DescriptorProto, out: &mut Vec<&'a EnumDescriptorProto>) {
        out.extend(&message.enum_type);
        for inner in &message.nested_type {
            nested(inner, out);
        }
    }
    let mut out = Vec::new();
    for file in files {
        out.extend(&file.enum_type);
        for message in &file.message_type {
            nested(message, &mut out);
        }
    }
    out
}

/// Enums whose first value is not `<PREFIX>_UNSPECIFIED = 0`, or with a value lacking the prefix.
fn misnamed_enum_values(files: &[FileDescriptorProto]) -> Vec<String> {
    let mut problems = Vec::new();
    for enumeration in all_enums(files) {
        let prefix = upper_snake(enumeration.name());
        let unspecified = format!("{prefix}_UNSPECIFIED");
        match enumeration.value.first() {
            Some(first) if first.number() == 0 && first.name() == unspecified => {}
            Some(first) => problems.push(format!(
                "{}: first value is {} = {}, expected {unspecified} = 0",
                enumeration.name(),
                first.name(),
                first.number()
            )),
            None => problems.push(format!("{}: no values", enumeration.name())),
        }
        for value in &enumeration.value {
            if !value.name().starts_with(&format!("{prefix}_")) {
                problems.push(format!(
                    "{}: {} lacks the prefix {prefix}_",
                    enumeration.name(),
                    value.name()
                ));
            }
        }
    }
    problems
}

#[test]
fn every_enum_starts_with_its_unspecified_value() {
    let files = contract();
    assert!(
        all_enums(&files).len() >= 10,
        "the contract's enums are found"
    );
    let problems = misnamed_enum_values(&files);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_enum_check_catches_a_wrong_zero_value_and_a_missing_prefix() {
    assert_eq!(upper_snake("RedLetterFormStatus"), "RED_LETTER_FORM_STATUS");
    assert_eq!(upper_snake("Sm3Digest"), "SM3_DIGEST");
    let files = compile_inline(
        r#"
        syntax = "proto3";
        package fapiao.v1;
        enum InvoiceFlavour {
          INVOICE_FLAVOUR_NONE = 0;
          INVOICE_FLAVOUR_SWEET = 1;
        }
        enum FileKind {
          FILE_KIND_UNSPECIFIED = 0;
          XML = 1;
        }
        "#,
    );
    assert_eq!(
        misnamed_enum_values(&files),
        [
            "InvoiceFlavour: first value is INVOICE_FLAVOUR_NONE = 0, expected \
             INVOICE_FLAVOUR_UNSPECIFIED = 0",
            "FileKind: XML lacks the prefix FILE_KIND_",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// RPC request and response names

/// RPCs whose input or output is not `<Rpc>Request`/`<Rpc>Response`, and types used by two RPCs.
fn misnamed_rpc_messages(files: &[FileDescriptorProto]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        for service in &file.service {
            for method in &service.method {
                let rpc = format!("{}.{}", service.name(), method.name());
                for (actual, suffix) in [
                    (method.input_type(), "Request"),
                    (method.output_type(), "Response"),
                ] {
                    let expected = format!(".{PACKAGE}.{}{suffix}", method.name());
                    if actual != expected {
                        problems.push(format!("{rpc}: uses {actual}, expected {expected}"));
                    }
                    users
                        .entry(actual.to_owned())
                        .or_default()
                        .push(rpc.clone());
                }
            }
        }
    }
    for (message, rpcs) in users {
        if rpcs.len() > 1 {
            problems.push(format!("{message} is used by {}", rpcs.join(" and ")));
        }
    }
    problems
}

#[test]
fn every_rpc_has_its_own_request_and_response() {
    let files = contract();
    let rpcs: usize = files
        .iter()
        .flat_map(|f| &f.service)
        .map(|s| s.method.len())
        .sum();
    assert!(rpcs >= 25, "the contract's RPCs are found (got {rpcs})");
    let problems = misnamed_rpc_messages(&files);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_rpc_check_catches_foreign_and_shared_messages() {
    let files = compile_inline(
        r#"
        syntax = "proto3";
        package fapiao.v1;
        message GetThingRequest {}
        message GetThingResponse {}
        message Thing {}
        service Things {
          rpc GetThing(GetThingRequest) returns (GetThingResponse);
          rpc GetOther(GetThingRequest) returns (Thing);
        }
        "#,
    );
    assert_eq!(
        misnamed_rpc_messages(&files),
        [
            "Things.GetOther: uses .fapiao.v1.GetThingRequest, expected \
             .fapiao.v1.GetOtherRequest",
            "Things.GetOther: uses .fapiao.v1.Thing, expected .fapiao.v1.GetOtherResponse",
            ".fapiao.v1.GetThingRequest is used by Things.GetThing and Things.GetOther",
        ]
    );
}
