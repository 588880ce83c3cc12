//! Protobuf types and gRPC services of the `virtengine.hpc.v1` package (x/hpc).
//!
//! Everything is generated at build time from `virtengine/hpc/v1/*.proto` by `build.rs`
//! (protox + prost + tonic + pbjson; no `protoc` needed):
//!
//! - messages and enums: [`virtengine::hpc::v1`], e.g. [`virtengine::hpc::v1::Cluster`];
//! - gRPC servers: [`virtengine::hpc::v1::msg_server::Msg`] and
//!   [`virtengine::hpc::v1::query_server::Query`] (traits), with `MsgServer` / `QueryServer`;
//! - gRPC clients: [`virtengine::hpc::v1::msg_client::MsgClient`] and
//!   [`virtengine::hpc::v1::query_client::QueryClient`];
//! - every message implements [`prost::Name`], so it packs into
//!   [`cosmos_sdk_proto::Any`] with type URL `/virtengine.hpc.v1.<Message>`;
//! - every message and enum implements `serde::Serialize` / `serde::Deserialize` with the
//!   canonical proto3 JSON mapping, except that field names stay snake_case as in the
//!   `.proto` files: enums as their full names (`"CLUSTER_STATE_ACTIVE"`), 64-bit
//!   integers as strings, bytes as base64, timestamps as RFC 3339, every field emitted;
//!   deserialization also accepts lowerCamelCase names, enum numbers and numeric 64-bit values;
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptor set for `tonic-reflection` (x/hpc and
//!   the Cosmos services hpcd serves).
//!
//! Imported types are reused rather than regenerated: `cosmos.base.query.v1beta1.PageRequest`
//! / `PageResponse` are [`cosmos_sdk_proto::cosmos::base::query::v1beta1`] types and
//! `google.protobuf.Timestamp` is [`cosmos_sdk_proto::Timestamp`] (the tendermint-proto type).

pub use cosmos_sdk_proto;
pub use prost;

/// Generated code, laid out like the protobuf package names.
pub mod virtengine {
    /// `virtengine.hpc.*`
    pub mod hpc {
        /// `virtengine.hpc.v1`: x/hpc state, params, genesis, `Msg` and `Query` services.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/virtengine.hpc.v1.rs"));
            include!(concat!(env!("OUT_DIR"), "/virtengine.hpc.v1.serde.rs"));
        }
    }
}

/// Encoded `google.protobuf.FileDescriptorSet` of every service hpcd serves over gRPC —
/// `virtengine.hpc.v1` (with source comments) and the Cosmos services of
/// `third_party/` — and all their imports, with custom options such as
/// `cosmos.msg.v1.signer`, for
/// `tonic_reflection::server::Builder::register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hpc_descriptor.bin"));

/// Protobuf package name of the generated types.
pub const PACKAGE: &str = "virtengine.hpc.v1";

/// Full gRPC service name of the transaction service.
pub const MSG_SERVICE_NAME: &str = "virtengine.hpc.v1.Msg";

/// Full gRPC service name of the query service.
pub const QUERY_SERVICE_NAME: &str = "virtengine.hpc.v1.Query";

/// Type URL of a message for packing into `Any`, e.g. `/virtengine.hpc.v1.MsgSubmitJob`.
pub fn type_url<T: prost::Name>() -> String {
    T::type_url()
}

/// Packs a message into a [`cosmos_sdk_proto::Any`] with its `/virtengine.hpc.v1.*` type URL.
pub fn to_any<T: prost::Name>(msg: &T) -> cosmos_sdk_proto::Any {
    cosmos_sdk_proto::Any {
        type_url: T::type_url(),
        value: prost::Message::encode_to_vec(msg),
    }
}

/// Unpacks a [`cosmos_sdk_proto::Any`] into `T`, failing if the type URL is not `T`'s.
pub fn from_any<T: prost::Name + Default>(
    any: &cosmos_sdk_proto::Any,
) -> Result<T, prost::DecodeError> {
    if any.type_url != T::type_url() {
        return Err(prost::DecodeError::new(format!(
            "expected type URL {}, got {}",
            T::type_url(),
            any.type_url
        )));
    }
    T::decode(any.value.as_slice())
}

use virtengine::hpc::v1::{AuditStatus, ViolationType};

impl ViolationType {
    /// The routing policy's severity of each violation type (0 for unspecified).
    pub fn default_severity(self) -> u32 {
        match self {
            ViolationType::MissingDecision => 4,
            ViolationType::StaleDecision => 2,
            ViolationType::ClusterMismatch => 5,
            ViolationType::ClusterUnavailable => 3,
            ViolationType::CapacityExceeded => 3,
            ViolationType::UnauthorizedFallback => 4,
            ViolationType::Unspecified => 0,
        }
    }

    /// The routing policy's name of the type (`cluster_mismatch`), used in events.
    pub fn snake_name(self) -> &'static str {
        match self {
            ViolationType::MissingDecision => "missing_decision",
            ViolationType::StaleDecision => "stale_decision",
            ViolationType::ClusterMismatch => "cluster_mismatch",
            ViolationType::ClusterUnavailable => "cluster_unavailable",
            ViolationType::CapacityExceeded => "capacity_exceeded",
            ViolationType::UnauthorizedFallback => "unauthorized_fallback",
            ViolationType::Unspecified => "unspecified",
        }
    }
}

impl AuditStatus {
    /// The routing policy's name of the status (`approved`), used in events.
    pub fn snake_name(self) -> &'static str {
        match self {
            AuditStatus::Approved => "approved",
            AuditStatus::Fallback => "fallback",
            AuditStatus::Rejected => "rejected",
            AuditStatus::Rescheduled => "rescheduled",
            AuditStatus::Unspecified => "unspecified",
        }
    }
}
