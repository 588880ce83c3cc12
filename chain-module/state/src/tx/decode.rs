use cosmos_sdk_proto::cosmos::tx::v1beta1::{AuthInfo, TxBody, TxRaw};
use prost::Message;

use super::msg::Msg;
use super::unknown_fields;
use crate::errors::TxError;

/// A tx decoded from its raw bytes. `raw` keeps the exact `body_bytes` and
/// `auth_info_bytes` that were signed; they are never re-encoded.
#[derive(Clone, Debug)]
pub struct DecodedTx {
    pub raw: TxRaw,
    pub body: TxBody,
    pub auth_info: AuthInfo,
    pub msgs: Vec<Msg>,
    pub size: usize,
}

impl DecodedTx {
    pub fn gas_limit(&self) -> u64 {
        self.auth_info.fee.as_ref().map_or(0, |f| f.gas_limit)
    }
}

/// Decodes a tx as the Cosmos SDK's default tx decoder does: unknown protobuf fields are
/// rejected (see [`unknown_fields`]) before each part is decoded. Every path (CheckTx,
/// FinalizeBlock, Simulate) goes through here.
pub fn decode_tx(bytes: &[u8]) -> Result<DecodedTx, TxError> {
    let raw = decode_tx_raw(bytes)?;
    unknown_fields::check_tx_body(&raw.body_bytes)?;
    let body = TxBody::decode(raw.body_bytes.as_slice())
        .map_err(|e| TxError::tx_decode(format!("tx body parse error: {e}")))?;
    let auth_info = decode_auth_info(&raw)?;
    if !body.extension_options.is_empty() || !body.non_critical_extension_options.is_empty() {
        return Err(TxError {
            codespace: crate::errors::SDK,
            code: 31,
            log: "extension options are not supported".into(),
        });
    }
    let msgs = body
        .messages
        .iter()
        .enumerate()
        .map(|(i, any)| {
            Msg::decode(any).map_err(|e| TxError {
                log: format!("messages[{i}]: {}", e.log),
                ..e
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if msgs.is_empty() {
        return Err(TxError::invalid_request(
            "tx must contain at least one message",
        ));
    }
    Ok(DecodedTx {
        raw,
        body,
        auth_info,
        msgs,
        size: bytes.len(),
    })
}

/// The gas limit a tx declares, for proposal building; `None` if its envelope does not
/// decode (including unknown fields anywhere in it, as in [`decode_tx`]).
pub fn gas_limit_of(bytes: &[u8]) -> Option<u64> {
    let raw = decode_tx_raw(bytes).ok()?;
    unknown_fields::check_tx_body(&raw.body_bytes).ok()?;
    let auth_info = decode_auth_info(&raw).ok()?;
    Some(auth_info.fee.map_or(0, |f| f.gas_limit))
}

fn decode_tx_raw(bytes: &[u8]) -> Result<TxRaw, TxError> {
    unknown_fields::check_tx_raw(bytes)?;
    TxRaw::decode(bytes).map_err(|e| TxError::tx_decode(format!("tx parse error: {e}")))
}

fn decode_auth_info(raw: &TxRaw) -> Result<AuthInfo, TxError> {
    unknown_fields::check_auth_info(&raw.auth_info_bytes)?;
    AuthInfo::decode(raw.auth_info_bytes.as_slice())
        .map_err(|e| TxError::tx_decode(format!("tx auth_info parse error: {e}")))
}
