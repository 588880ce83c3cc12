//! Rejection of unknown protobuf fields in txs, as the Cosmos SDK's `codec/unknownproto`
//! does in its default tx decoder.
//!
//! prost silently skips fields it does not know, so without this check anyone could add
//! bytes to a tx (in `TxRaw`, outside what is signed, they change the tx hash without
//! invalidating the signature) or smuggle data into messages that the chain ignores.
//!
//! The check walks the wire format against a schema of every message type a tx can
//! contain, before prost decodes it:
//! - `TxRaw` and `AuthInfo` are strict: any field the schema does not list is rejected;
//! - `TxBody` (and everything nested in it) may carry unknown *non-critical* fields, whose
//!   number has bit 11 set (`number & 1024 != 0`, e.g. 1024-2047; ADR-020), exactly as the
//!   SDK allows with `RejectUnknownFields(.., allowUnknownNonCriticals = true, ..)`; the
//!   body is signed (only `SIGN_MODE_DIRECT` is accepted), so they cannot be added by a
//!   third party;
//! - known fields must use a wire type that fits their type (varint, fixed, length-
//!   delimited; packed encoding for repeated scalars);
//! - message fields are checked recursively; `google.protobuf.Any` is checked itself and
//!   then, if its type URL is `/<full name>` of a known type, its `value` is checked as
//!   that type. Any of another type is left to the later decoding steps, which reject
//!   every type the chain does not handle (unknown message type, unsupported key type,
//!   extension options);
//! - malformed data (bad varints, truncation, field number 0, wire types 6/7, groups) and
//!   nesting deeper than [`MAX_DEPTH`] messages are errors.
//!
//! In addition `TxRaw` must be in canonical form (ADR-027, as the SDK's
//! `rejectNonADR027TxRaw`, plus minimal tags): fields in ascending order, `body_bytes`
//! and `auth_info_bytes` at most once, every varint as short as possible, so that a tx
//! cannot be re-wrapped under another hash by reordering or padding its envelope either.
//!
//! Every failure is `ErrTxDecode` (codespace `sdk`, code 2), like the SDK's decoder, with a
//! log naming the field path and the type, e.g.
//! `tx_body.messages[0] (virtengine.hpc.v1.MsgSubmitJob): unknown field 99: tx parse error`.
//!
//! Schemas: the `virtengine.hpc.v1` types (and their imports such as
//! `google.protobuf.Timestamp`) come from `hpc_proto::FILE_DESCRIPTOR_SET`, the same
//! descriptors the generated code is built from; the Cosmos envelope types are listed in
//! [`COSMOS`] (checked against the `cosmos-sdk-proto` types in the unit tests). The
//! registry is built once; the walk is linear in the tx size and allocates only on error.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use prost::Message;

use crate::errors::TxError;

/// Field numbers with this bit set are non-critical (ADR-020 "bit 11"; the SDK's
/// `bit11NonCritical = 1 << 10`).
pub const NON_CRITICAL_BIT: u32 = 1 << 10;

/// The deepest nesting of messages accepted (a tx needs about 6).
pub const MAX_DEPTH: usize = 32;

const ANY: &str = "google.protobuf.Any";
const TX_RAW: &str = "cosmos.tx.v1beta1.TxRaw";
const TX_BODY: &str = "cosmos.tx.v1beta1.TxBody";
const AUTH_INFO: &str = "cosmos.tx.v1beta1.AuthInfo";

/// Checks the bytes of a `TxRaw`: no unknown fields at all, canonical encoding (ADR-027).
/// `body_bytes` and `auth_info_bytes` are checked separately.
pub fn check_tx_raw(bytes: &[u8]) -> Result<(), TxError> {
    Walker::new(false).check(bytes, TX_RAW, "tx_raw")?;
    reject_non_canonical_tx_raw(bytes)
        .map_err(|reason| reject("tx_raw", TX_RAW, format_args!("{reason}")))
}

/// Checks `TxRaw.body_bytes` as a `TxBody`; unknown non-critical fields are allowed.
pub fn check_tx_body(bytes: &[u8]) -> Result<(), TxError> {
    Walker::new(true).check(bytes, TX_BODY, "tx_body")
}

/// Checks `TxRaw.auth_info_bytes` as an `AuthInfo`; no unknown fields at all.
pub fn check_auth_info(bytes: &[u8]) -> Result<(), TxError> {
    Walker::new(false).check(bytes, AUTH_INFO, "auth_info")
}

/// ErrTxDecode, worded as the SDK wraps it: `<what>: tx parse error`.
fn reject(path: &str, type_name: &str, reason: fmt::Arguments<'_>) -> TxError {
    TxError::tx_decode(format!("{path} ({type_name}): {reason}: tx parse error"))
}

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

/// How a field is encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// int32/64, uint32/64, sint32/64, bool, enum.
    Varint,
    /// fixed64, sfixed64, double.
    Fixed64,
    /// fixed32, sfixed32, float.
    Fixed32,
    /// string, bytes.
    Bytes,
    /// A message of the given full name (no leading dot).
    Message(Cow<'static, str>),
    /// A proto2 group: never used by our types, always rejected.
    Group,
}

#[derive(Clone, Debug)]
struct Field {
    number: u32,
    name: Cow<'static, str>,
    kind: Kind,
    repeated: bool,
}

/// Field schemas by message full name; each list sorted by field number.
struct Registry {
    messages: HashMap<String, Vec<Field>>,
}

impl Registry {
    fn get(&self, name: &str) -> Option<&[Field]> {
        self.messages.get(name).map(Vec::as_slice)
    }
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(build_registry)
}

fn build_registry() -> Registry {
    let mut messages = HashMap::new();
    // The descriptor set is embedded at build time by hpc-proto from the same .proto files
    // its Rust types are generated from; the unit tests decode it.
    let fds = descriptor::FileDescriptorSet::decode(hpc_proto::FILE_DESCRIPTOR_SET)
        .expect("hpc_proto::FILE_DESCRIPTOR_SET is a valid FileDescriptorSet");
    for file in &fds.file {
        let package = file.package.as_deref().unwrap_or_default();
        for message in &file.message_type {
            add_descriptor(&mut messages, package, message);
        }
    }
    for (name, fields) in COSMOS {
        let mut fields = fields.to_vec();
        fields.sort_by_key(|f| f.number);
        messages.insert((*name).to_string(), fields);
    }
    Registry { messages }
}

fn add_descriptor(
    messages: &mut HashMap<String, Vec<Field>>,
    scope: &str,
    message: &descriptor::DescriptorProto,
) {
    let name = message.name.as_deref().unwrap_or_default();
    let full_name = if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    };
    let mut fields: Vec<Field> = message
        .field
        .iter()
        .map(|f| Field {
            number: f.number.unwrap_or_default() as u32,
            name: Cow::Owned(f.name.clone().unwrap_or_default()),
            kind: descriptor::kind(
                f.r#type.unwrap_or_default(),
                f.type_name.as_deref().unwrap_or_default(),
            ),
            repeated: f.label == Some(descriptor::LABEL_REPEATED),
        })
        .collect();
    fields.sort_by_key(|f| f.number);
    for nested in &message.nested_type {
        add_descriptor(messages, &full_name, nested);
    }
    messages.insert(full_name, fields);
}

const fn field(number: u32, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name: Cow::Borrowed(name),
        kind,
        repeated: false,
    }
}

const fn repeated(number: u32, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name: Cow::Borrowed(name),
        kind,
        repeated: true,
    }
}

const fn msg(name: &'static str) -> Kind {
    Kind::Message(Cow::Borrowed(name))
}

const COIN: &str = "cosmos.base.v1beta1.Coin";
const MODE_INFO: &str = "cosmos.tx.v1beta1.ModeInfo";

/// The Cosmos types a tx is made of, as `cosmos-sdk-proto` 0.27 (Cosmos SDK v0.50) defines
/// them: the envelope, its fee and signer info, the secp256k1 key and bank `MsgSend`.
const COSMOS: &[(&str, &[Field])] = &[
    (
        ANY,
        &[
            field(1, "type_url", Kind::Bytes),
            field(2, "value", Kind::Bytes),
        ],
    ),
    (
        TX_RAW,
        &[
            field(1, "body_bytes", Kind::Bytes),
            field(2, "auth_info_bytes", Kind::Bytes),
            repeated(3, "signatures", Kind::Bytes),
        ],
    ),
    (
        TX_BODY,
        &[
            repeated(1, "messages", msg(ANY)),
            field(2, "memo", Kind::Bytes),
            field(3, "timeout_height", Kind::Varint),
            repeated(1023, "extension_options", msg(ANY)),
            repeated(2047, "non_critical_extension_options", msg(ANY)),
        ],
    ),
    (
        AUTH_INFO,
        &[
            repeated(1, "signer_infos", msg("cosmos.tx.v1beta1.SignerInfo")),
            field(2, "fee", msg("cosmos.tx.v1beta1.Fee")),
            field(3, "tip", msg("cosmos.tx.v1beta1.Tip")),
        ],
    ),
    (
        "cosmos.tx.v1beta1.SignerInfo",
        &[
            field(1, "public_key", msg(ANY)),
            field(2, "mode_info", msg(MODE_INFO)),
            field(3, "sequence", Kind::Varint),
        ],
    ),
    (
        MODE_INFO,
        &[
            field(1, "single", msg("cosmos.tx.v1beta1.ModeInfo.Single")),
            field(2, "multi", msg("cosmos.tx.v1beta1.ModeInfo.Multi")),
        ],
    ),
    (
        "cosmos.tx.v1beta1.ModeInfo.Single",
        &[field(1, "mode", Kind::Varint)],
    ),
    (
        "cosmos.tx.v1beta1.ModeInfo.Multi",
        &[
            field(
                1,
                "bitarray",
                msg("cosmos.crypto.multisig.v1beta1.CompactBitArray"),
            ),
            repeated(2, "mode_infos", msg(MODE_INFO)),
        ],
    ),
    (
        "cosmos.crypto.multisig.v1beta1.CompactBitArray",
        &[
            field(1, "extra_bits_stored", Kind::Varint),
            field(2, "elems", Kind::Bytes),
        ],
    ),
    (
        "cosmos.tx.v1beta1.Fee",
        &[
            repeated(1, "amount", msg(COIN)),
            field(2, "gas_limit", Kind::Varint),
            field(3, "payer", Kind::Bytes),
            field(4, "granter", Kind::Bytes),
        ],
    ),
    (
        "cosmos.tx.v1beta1.Tip",
        &[
            repeated(1, "amount", msg(COIN)),
            field(2, "tipper", Kind::Bytes),
        ],
    ),
    (
        COIN,
        &[
            field(1, "denom", Kind::Bytes),
            field(2, "amount", Kind::Bytes),
        ],
    ),
    (
        "cosmos.crypto.secp256k1.PubKey",
        &[field(1, "key", Kind::Bytes)],
    ),
    (
        "cosmos.bank.v1beta1.MsgSend",
        &[
            field(1, "from_address", Kind::Bytes),
            field(2, "to_address", Kind::Bytes),
            repeated(3, "amount", msg(COIN)),
        ],
    ),
];

/// Just enough of `google/protobuf/descriptor.proto` to read field numbers and types
/// (prost skips everything else, e.g. options and source info).
mod descriptor {
    use std::borrow::Cow;

    use super::Kind;

    pub const LABEL_REPEATED: i32 = 3;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        pub file: Vec<FileDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileDescriptorProto {
        #[prost(string, optional, tag = "2")]
        pub package: Option<String>,
        #[prost(message, repeated, tag = "4")]
        pub message_type: Vec<DescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(message, repeated, tag = "2")]
        pub field: Vec<FieldDescriptorProto>,
        #[prost(message, repeated, tag = "3")]
        pub nested_type: Vec<DescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FieldDescriptorProto {
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        #[prost(int32, optional, tag = "3")]
        pub number: Option<i32>,
        #[prost(int32, optional, tag = "4")]
        pub label: Option<i32>,
        #[prost(int32, optional, tag = "5")]
        pub r#type: Option<i32>,
        #[prost(string, optional, tag = "6")]
        pub type_name: Option<String>,
    }

    /// The encoding of a `FieldDescriptorProto.Type`.
    pub fn kind(r#type: i32, type_name: &str) -> Kind {
        match r#type {
            // int64, uint64, int32, bool, uint32, enum, sint32, sint64
            3 | 4 | 5 | 8 | 13 | 14 | 17 | 18 => Kind::Varint,
            // double, fixed64, sfixed64
            1 | 6 | 16 => Kind::Fixed64,
            // float, fixed32, sfixed32
            2 | 7 | 15 => Kind::Fixed32,
            // string, bytes
            9 | 12 => Kind::Bytes,
            11 => Kind::Message(Cow::Owned(
                type_name.strip_prefix('.').unwrap_or(type_name).to_string(),
            )),
            // group, or a type this code does not know: never matches any wire type
            _ => Kind::Group,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------------

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// One field as read from the wire.
struct RawField<'a> {
    number: u32,
    wire_type: u8,
    /// The payload of a length-delimited field (empty for other wire types).
    payload: &'a [u8],
    /// Whether the tag and the length prefix used the fewest possible bytes.
    minimal: bool,
}

/// A cursor over protobuf wire data that never reads out of bounds.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// A varint and whether it was minimally encoded.
    fn varint(&mut self) -> Result<(u64, bool), String> {
        let mut value = 0u64;
        for (i, &byte) in self.bytes.iter().enumerate().take(10) {
            if i == 9 && byte > 1 {
                return Err("malformed: varint overflows 64 bits".into());
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.bytes = &self.bytes[i + 1..];
                return Ok((value, i + 1 == varint_len(value)));
            }
        }
        Err("malformed: truncated varint".into())
    }

    fn take(&mut self, len: u64, number: u32) -> Result<&'a [u8], String> {
        match usize::try_from(len) {
            Ok(len) if len <= self.bytes.len() => {
                let (head, tail) = self.bytes.split_at(len);
                self.bytes = tail;
                Ok(head)
            }
            _ => Err(format!(
                "malformed: field {number} needs {len} bytes, only {} remain",
                self.bytes.len()
            )),
        }
    }

    /// The next field, with its value consumed.
    fn field(&mut self) -> Result<RawField<'a>, String> {
        let (key, tag_minimal) = self.varint()?;
        let number = key >> 3;
        let wire_type = (key & 7) as u8;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(format!("malformed: invalid field number {number}"));
        }
        let number = number as u32;
        let mut payload: &[u8] = &[];
        let mut len_minimal = true;
        match wire_type {
            WIRE_VARINT => {
                self.varint()
                    .map_err(|e| format!("{e} (value of field {number})"))?;
            }
            WIRE_FIXED64 => {
                self.take(8, number)?;
            }
            WIRE_LEN => {
                let (len, minimal) = self
                    .varint()
                    .map_err(|e| format!("{e} (length of field {number})"))?;
                len_minimal = minimal;
                payload = self.take(len, number)?;
            }
            WIRE_FIXED32 => {
                self.take(4, number)?;
            }
            3 | 4 => {
                return Err(format!(
                    "malformed: field {number} uses group encoding, which is not supported"
                ))
            }
            other => return Err(format!("malformed: invalid wire type {other}")),
        }
        Ok(RawField {
            number,
            wire_type,
            payload,
            minimal: tag_minimal && len_minimal,
        })
    }
}

/// Bytes needed to encode `value` as a varint.
fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn wire_type_name(wire_type: u8) -> &'static str {
    match wire_type {
        WIRE_VARINT => "varint",
        WIRE_FIXED64 => "fixed64",
        WIRE_LEN => "length-delimited",
        WIRE_FIXED32 => "fixed32",
        _ => "group",
    }
}

/// Whether a known field may be sent with `wire_type` (packed for repeated scalars).
fn wire_type_fits(field: &Field, wire_type: u8) -> bool {
    let scalar = match field.kind {
        Kind::Varint => WIRE_VARINT,
        Kind::Fixed64 => WIRE_FIXED64,
        Kind::Fixed32 => WIRE_FIXED32,
        Kind::Bytes | Kind::Message(_) => return wire_type == WIRE_LEN,
        Kind::Group => return false,
    };
    wire_type == scalar || (field.repeated && wire_type == WIRE_LEN)
}

/// ADR-027 for `TxRaw`: ascending field numbers, `body_bytes` / `auth_info_bytes` at most
/// once, minimal varints. Runs after the unknown-field walk, so the data is well formed.
fn reject_non_canonical_tx_raw(bytes: &[u8]) -> Result<(), String> {
    let mut reader = Reader::new(bytes);
    let mut previous = 0u32;
    while !reader.is_empty() {
        let field = reader.field()?;
        if field.number < previous {
            return Err(format!(
                "not canonically encoded (ADR-027): field {} after field {previous}",
                field.number
            ));
        }
        if field.number == previous && field.number != 3 {
            return Err(format!(
                "not canonically encoded (ADR-027): field {} appears more than once",
                field.number
            ));
        }
        if !field.minimal {
            return Err(format!(
                "not canonically encoded (ADR-027): field {} has a varint longer than necessary",
                field.number
            ));
        }
        previous = field.number;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The walk
// ---------------------------------------------------------------------------------------------

/// A field path, rendered only for errors: `tx_body.messages[0].requirements`.
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    name: &'a str,
    index: Option<u32>,
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            write!(f, "{parent}.")?;
        }
        f.write_str(self.name)?;
        if let Some(index) = self.index {
            write!(f, "[{index}]")?;
        }
        Ok(())
    }
}

struct Walker {
    registry: &'static Registry,
    allow_non_critical: bool,
}

impl Walker {
    fn new(allow_non_critical: bool) -> Self {
        Self {
            registry: registry(),
            allow_non_critical,
        }
    }

    fn check(&self, bytes: &[u8], type_name: &str, root: &str) -> Result<(), TxError> {
        let path = Path {
            parent: None,
            name: root,
            index: None,
        };
        self.message(bytes, type_name, &path, 0)
    }

    fn message(
        &self,
        bytes: &[u8],
        type_name: &str,
        path: &Path<'_>,
        depth: usize,
    ) -> Result<(), TxError> {
        let fail = |reason: fmt::Arguments<'_>| reject(&path.to_string(), type_name, reason);
        if depth > MAX_DEPTH {
            return Err(fail(format_args!(
                "messages nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let Some(schema) = self.registry.get(type_name) else {
            // Only reachable if a schema refers to a type missing from the registry.
            return Err(fail(format_args!("no schema for this type")));
        };
        // Occurrences so far of each repeated message field, for the path of nested errors.
        let mut counts: Vec<(u32, u32)> = Vec::new();
        let mut reader = Reader::new(bytes);
        while !reader.is_empty() {
            let raw = reader.field().map_err(|e| fail(format_args!("{e}")))?;
            let Ok(at) = schema.binary_search_by_key(&raw.number, |f| f.number) else {
                if raw.number & NON_CRITICAL_BIT != 0 {
                    if self.allow_non_critical {
                        continue;
                    }
                    return Err(fail(format_args!(
                        "unknown field {} (non-critical fields are only allowed in the tx body)",
                        raw.number
                    )));
                }
                return Err(fail(format_args!("unknown field {}", raw.number)));
            };
            let field = &schema[at];
            if !wire_type_fits(field, raw.wire_type) {
                return Err(fail(format_args!(
                    "field {} ({}) has wire type {}, which does not fit its type",
                    raw.number,
                    field.name,
                    wire_type_name(raw.wire_type)
                )));
            }
            let Kind::Message(child_type) = &field.kind else {
                continue;
            };
            let index = field.repeated.then(|| {
                match counts.iter_mut().find(|(number, _)| *number == raw.number) {
                    Some((_, count)) => {
                        *count += 1;
                        *count
                    }
                    None => {
                        counts.push((raw.number, 0));
                        0
                    }
                }
            });
            let child = Path {
                parent: Some(path),
                name: &field.name,
                index,
            };
            if &**child_type == ANY {
                self.any(raw.payload, &child, depth + 1)?;
            } else {
                self.message(raw.payload, child_type, &child, depth + 1)?;
            }
        }
        Ok(())
    }

    /// An `Any`: its own fields, then its value as the type its URL names, if known.
    fn any(&self, bytes: &[u8], path: &Path<'_>, depth: usize) -> Result<(), TxError> {
        self.message(bytes, ANY, path, depth)?;
        // As prost decodes it: the last occurrence of each field wins.
        let (mut type_url, mut value): (&[u8], &[u8]) = (&[], &[]);
        let mut reader = Reader::new(bytes);
        while !reader.is_empty() {
            let raw = reader
                .field()
                .map_err(|e| reject(&path.to_string(), ANY, format_args!("{e}")))?;
            match raw.number {
                1 => type_url = raw.payload,
                2 => value = raw.payload,
                _ => {}
            }
        }
        let Some(name) = std::str::from_utf8(type_url)
            .ok()
            .and_then(|url| url.strip_prefix('/'))
        else {
            return Ok(());
        };
        if self.registry.get(name).is_none() {
            // Not a type of this chain: rejected when the Any is unpacked.
            return Ok(());
        }
        self.message(value, name, path, depth + 1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use cosmos_sdk_proto::cosmos::bank::v1beta1::MsgSend;
    use cosmos_sdk_proto::cosmos::base::v1beta1::Coin;
    use cosmos_sdk_proto::cosmos::crypto::multisig::v1beta1::CompactBitArray;
    use cosmos_sdk_proto::cosmos::crypto::secp256k1::PubKey;
    use cosmos_sdk_proto::cosmos::tx::v1beta1::{
        mode_info, AuthInfo, Fee, ModeInfo, SignerInfo, Tip, TxBody, TxRaw,
    };
    use cosmos_sdk_proto::Any;
    use hpc_proto::virtengine::hpc::v1 as hpc;
    use prost::Name;

    use super::*;

    fn coin() -> Coin {
        Coin {
            denom: "uvirt".into(),
            amount: "1".into(),
        }
    }

    fn any() -> Any {
        Any {
            type_url: "/x".into(),
            value: vec![1],
        }
    }

    /// The field numbers at the top level of an encoded message.
    fn numbers(bytes: &[u8]) -> BTreeSet<u32> {
        let mut reader = Reader::new(bytes);
        let mut out = BTreeSet::new();
        while !reader.is_empty() {
            out.insert(reader.field().unwrap().number);
        }
        out
    }

    fn schema_numbers(name: &str) -> BTreeSet<u32> {
        registry()
            .get(name)
            .unwrap()
            .iter()
            .map(|f| f.number)
            .collect()
    }

    /// Each hand-written schema lists exactly the fields of the prost type: a value with
    /// every field set (both oneof arms for ModeInfo) encodes exactly those numbers, and
    /// the walk accepts it.
    #[test]
    #[allow(deprecated)] // AuthInfo.tip is deprecated in the SDK, but still a field
    fn cosmos_schemas_match_the_prost_types() {
        let single = ModeInfo {
            sum: Some(mode_info::Sum::Single(mode_info::Single { mode: 1 })),
        };
        let multi = ModeInfo {
            sum: Some(mode_info::Sum::Multi(mode_info::Multi {
                bitarray: Some(CompactBitArray {
                    extra_bits_stored: 1,
                    elems: vec![1],
                }),
                mode_infos: vec![single.clone()],
            })),
        };
        let signer_info = SignerInfo {
            public_key: Some(any()),
            mode_info: Some(single.clone()),
            sequence: 1,
        };
        let fee = Fee {
            amount: vec![coin()],
            gas_limit: 1,
            payer: "p".into(),
            granter: "g".into(),
        };
        let tip = Tip {
            amount: vec![coin()],
            tipper: "t".into(),
        };
        let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
            (ANY, vec![any().encode_to_vec()]),
            (
                TX_RAW,
                vec![TxRaw {
                    body_bytes: vec![1],
                    auth_info_bytes: vec![1],
                    signatures: vec![vec![1]],
                }
                .encode_to_vec()],
            ),
            (
                TX_BODY,
                vec![TxBody {
                    messages: vec![any()],
                    memo: "m".into(),
                    timeout_height: 1,
                    extension_options: vec![any()],
                    non_critical_extension_options: vec![any()],
                }
                .encode_to_vec()],
            ),
            (
                AUTH_INFO,
                vec![AuthInfo {
                    signer_infos: vec![signer_info.clone()],
                    fee: Some(fee.clone()),
                    tip: Some(tip.clone()),
                }
                .encode_to_vec()],
            ),
            (
                "cosmos.tx.v1beta1.SignerInfo",
                vec![signer_info.encode_to_vec()],
            ),
            (
                MODE_INFO,
                vec![single.encode_to_vec(), multi.encode_to_vec()],
            ),
            (
                "cosmos.tx.v1beta1.ModeInfo.Single",
                vec![mode_info::Single { mode: 1 }.encode_to_vec()],
            ),
            (
                "cosmos.tx.v1beta1.ModeInfo.Multi",
                vec![match &multi.sum {
                    Some(mode_info::Sum::Multi(m)) => m.encode_to_vec(),
                    _ => unreachable!(),
                }],
            ),
            (
                "cosmos.crypto.multisig.v1beta1.CompactBitArray",
                vec![CompactBitArray {
                    extra_bits_stored: 1,
                    elems: vec![1],
                }
                .encode_to_vec()],
            ),
            ("cosmos.tx.v1beta1.Fee", vec![fee.encode_to_vec()]),
            ("cosmos.tx.v1beta1.Tip", vec![tip.encode_to_vec()]),
            (COIN, vec![coin().encode_to_vec()]),
            (
                "cosmos.crypto.secp256k1.PubKey",
                vec![PubKey { key: vec![1] }.encode_to_vec()],
            ),
            (
                "cosmos.bank.v1beta1.MsgSend",
                vec![MsgSend {
                    from_address: "a".into(),
                    to_address: "b".into(),
                    amount: vec![coin()],
                }
                .encode_to_vec()],
            ),
        ];
        assert_eq!(cases.len(), COSMOS.len());
        for (name, encodings) in cases {
            let mut seen = BTreeSet::new();
            for bytes in &encodings {
                seen.extend(numbers(bytes));
                Walker::new(false)
                    .check(bytes, name, "x")
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            assert_eq!(seen, schema_numbers(name), "{name}");
        }
    }

    /// Every message type the chain unpacks from an `Any` has a schema, and every message
    /// type a schema refers to has one too.
    #[test]
    fn registry_covers_every_tx_type() {
        let names = [
            hpc::MsgRegisterCluster::full_name(),
            hpc::MsgUpdateClusterStatus::full_name(),
            hpc::MsgDeregisterCluster::full_name(),
            hpc::MsgSubmitJob::full_name(),
            hpc::MsgCancelJob::full_name(),
            hpc::MsgRequestReschedule::full_name(),
            hpc::MsgRecordRoutingAudit::full_name(),
            hpc::MsgReportRoutingViolation::full_name(),
            hpc::MsgResolveRoutingViolation::full_name(),
            hpc::MsgReportJobStatus::full_name(),
            hpc::MsgUpdateParams::full_name(),
            MsgSend::full_name(),
            PubKey::full_name(),
            "google.protobuf.Timestamp".to_string(),
        ];
        for name in names {
            assert!(registry().get(&name).is_some(), "{name}");
        }
        for (name, fields) in &registry().messages {
            for f in fields {
                if let Kind::Message(child) = &f.kind {
                    assert!(
                        registry().get(child).is_some(),
                        "{name}.{}: {child}",
                        f.name
                    );
                }
            }
        }
        // Descriptor-derived schemas carry names, numbers and nested types.
        let job = registry().get(&hpc::MsgSubmitJob::full_name()).unwrap();
        let requirements = job.iter().find(|f| f.number == 2).unwrap();
        assert_eq!(requirements.name, "requirements");
        assert_eq!(
            requirements.kind,
            Kind::Message(Cow::Owned(hpc::JobRequirements::full_name()))
        );
        assert!(!requirements.repeated);
        let audit = registry()
            .get(&hpc::MsgRecordRoutingAudit::full_name())
            .unwrap();
        assert!(audit.iter().any(|f| f.name == "records" && f.repeated));
    }

    #[test]
    fn non_critical_bit_is_bit_11() {
        assert_eq!(NON_CRITICAL_BIT, 1024);
        for (number, non_critical) in [
            (15, false),
            (1023, false),
            (1024, true),
            (1025, true),
            (2047, true),
            (2048, false),
            (3072, true),
        ] {
            assert_eq!(number & NON_CRITICAL_BIT != 0, non_critical, "{number}");
        }
    }

    #[test]
    fn varints() {
        for (bytes, value, minimal) in [
            (&[0x00][..], 0u64, true),
            (&[0x7f][..], 127, true),
            (&[0x80, 0x01][..], 128, true),
            (&[0x81, 0x00][..], 1, false),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..],
                u64::MAX,
                true,
            ),
        ] {
            assert_eq!(Reader::new(bytes).varint().unwrap(), (value, minimal));
        }
        for bad in [
            &[][..],
            &[0x80][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02][..],
            &[0xff; 11][..],
        ] {
            assert!(Reader::new(bad).varint().is_err(), "{bad:?}");
        }
        for value in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut buf = Vec::new();
            prost::encoding::encode_varint(value, &mut buf);
            assert_eq!(varint_len(value), buf.len(), "{value}");
        }
    }

    #[test]
    fn wire_types_must_fit_the_field() {
        // TxBody.timeout_height (varint) sent as fixed64, memo (string) as varint.
        for bytes in [&[0x19, 0, 0, 0, 0, 0, 0, 0, 0][..], &[0x10, 0x01][..]] {
            let err = check_tx_body(bytes).unwrap_err();
            assert_eq!(err.code, 2);
            assert!(err.log.contains("does not fit its type"), "{}", err.log);
        }
        // Packed encoding is fine for a repeated scalar but not for a singular one.
        let packed_singular = [0x1a, 0x01, 0x05]; // timeout_height as length-delimited
        assert!(check_tx_body(&packed_singular).is_err());
    }
}
