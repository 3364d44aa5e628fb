//! Compiles the `fapiao.v1` contract at build time.
//!
//! protox parses the `.proto` files in pure Rust (no `protoc` on the machine), tonic-prost-build
//! turns the descriptors into prost messages and tonic clients and servers, and the encoded
//! `FileDescriptorSet` (imports included) is written next to them for gRPC server reflection.

use std::{env, error::Error, fs, path::PathBuf};

use protox::prost::Message as _;

/// The contract's files, relative to the crate root (which is also the include root, so imports
/// read `fapiao/v1/invoice.proto`).
const PROTO_FILES: &[&str] = &[
    "fapiao/v1/common.proto",
    "fapiao/v1/invoice.proto",
    "fapiao/v1/red_letter.proto",
    "fapiao/v1/issuance.proto",
    "fapiao/v1/audit.proto",
    "fapiao/v1/ops.proto",
];

/// Name of the encoded descriptor set in `OUT_DIR`; `src/lib.rs` includes it.
const DESCRIPTOR_SET_FILE: &str = "fapiao_v1_descriptor_set.bin";

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=fapiao");

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    // Source info carries the comments, which become the rustdoc of the generated code.
    let descriptors = protox::Compiler::new(["."])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(PROTO_FILES)?
        .file_descriptor_set();

    // Reflection needs the types, not the comments: strip source info to keep the binary small.
    let mut for_reflection = descriptors.clone();
    for file in &mut for_reflection.file {
        file.source_code_info = None;
    }
    fs::write(
        out_dir.join(DESCRIPTOR_SET_FILE),
        for_reflection.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .compile_fds(descriptors)?;

    Ok(())
}
