//! Code generation for `virtengine.hpc.v1`.
//!
//! The `.proto` files are parsed by `protox` (pure Rust, no `protoc` needed), then:
//! - `prost-build` + `tonic-build` generate messages, enums, `Name` impls and the gRPC
//!   client and server of the `Msg` and `Query` services;
//! - `pbjson-build` generates proto3-JSON `serde` impls (snake_case field names as in
//!   the `.proto` files, enums as strings, 64-bit integers as strings, every field emitted);
//! - the encoded `FileDescriptorSet` (with imports and extension options such as
//!   `cosmos.msg.v1.signer`) is written to `OUT_DIR/hpc_descriptor.bin` for gRPC reflection.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

/// Our package; only its files get Rust code, everything imported is reused from elsewhere.
const PACKAGE: &str = "virtengine.hpc.v1";

/// Proto files of the package, relative to the `proto/` crate directory.
const PROTO_FILES: &[&str] = &[
    "virtengine/hpc/v1/types.proto",
    "virtengine/hpc/v1/params.proto",
    "virtengine/hpc/v1/genesis.proto",
    "virtengine/hpc/v1/tx.proto",
    "virtengine/hpc/v1/query.proto",
];

/// The Cosmos services hpcd serves (`third_party/`, see its README): in the reflection
/// descriptor set only; their Rust types come from cosmos-sdk-proto.
const COSMOS_SERVICE_FILES: &[&str] = &[
    "cosmos/auth/v1beta1/query.proto",
    "cosmos/bank/v1beta1/query.proto",
    "cosmos/tx/v1beta1/service.proto",
    "cosmos/base/tendermint/v1beta1/query.proto",
    "cosmos/consensus/v1/query.proto",
];

/// Imported protobuf packages mapped to the Rust types that already exist for them, so the
/// generated code reuses them instead of generating duplicates.
const EXTERN_PATHS: &[(&str, &str)] = &[
    (
        ".cosmos.base.query.v1beta1",
        "::cosmos_sdk_proto::cosmos::base::query::v1beta1",
    ),
    // The Timestamp that cosmos-sdk-proto and tendermint use (RFC 3339 serde, `From<tendermint::Time>`).
    (
        ".google.protobuf.Timestamp",
        "::cosmos_sdk_proto::Timestamp",
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let third_party = root.join("third_party");

    rerun_if_changed_recursive(&root.join("virtengine"))?;
    rerun_if_changed_recursive(&third_party)?;

    // One compilation of our files and the Cosmos services hpcd serves, with all imports
    // and source comments: its encoding (extension options such as `cosmos.msg.v1.signer`
    // kept) is the descriptor set gRPC reflection serves.
    let mut compiler = protox::Compiler::new([root.clone(), third_party.clone()])?;
    compiler
        .include_imports(true)
        .include_source_info(true)
        .open_files(PROTO_FILES.iter().map(|f| root.join(f)))?
        .open_files(COSMOS_SERVICE_FILES.iter().map(|f| third_party.join(f)))?;
    let descriptor_bytes = compiler.encode_file_descriptor_set();
    fs::write(out_dir.join("hpc_descriptor.bin"), &descriptor_bytes)?;

    // Rust code only for our own package.
    let mut fds = compiler.file_descriptor_set();
    fds.file.retain(|f| f.package() == PACKAGE);

    let mut config = prost_build::Config::new();
    config.enable_type_names();
    for (proto, rust) in EXTERN_PATHS {
        config.extern_path(*proto, *rust);
    }
    tonic_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(config, fds)?;

    let mut json = pbjson_build::Builder::new();
    json.register_descriptors(&descriptor_bytes)?
        .preserve_proto_field_names()
        .emit_fields();
    for (proto, rust) in EXTERN_PATHS {
        json.extern_path(*proto, *rust);
    }
    json.build(&[format!(".{PACKAGE}")])?;

    Ok(())
}

fn rerun_if_changed_recursive(dir: &Path) -> std::io::Result<()> {
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rerun_if_changed_recursive(&path)?;
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Ok(())
}
