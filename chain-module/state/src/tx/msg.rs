use cosmos_sdk_proto::cosmos::bank::v1beta1::MsgSend;
use cosmos_sdk_proto::Any;
use hpc_store::StateWrite;
use prost::{Message, Name};

use crate::address::Address;
use crate::bank;
use crate::context::ExecCtx;
use crate::errors::TxError;

/// Every message type the chain executes.
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    BankSend(MsgSend),
}

fn unpack<M: Message + Name + Default>(any: &Any) -> Result<M, TxError> {
    M::decode(any.value.as_slice())
        .map_err(|e| TxError::tx_decode(format!("cannot decode {}: {e}", any.type_url)))
}

fn pack<M: Message + Name>(msg: &M) -> Any {
    Any {
        type_url: format!("/{}", M::full_name()),
        value: msg.encode_to_vec(),
    }
}

impl Msg {
    pub fn decode(any: &Any) -> Result<Self, TxError> {
        let url = any.type_url.as_str();
        if url == format!("/{}", MsgSend::full_name()) {
            return Ok(Msg::BankSend(unpack(any)?));
        }
        Err(TxError::unknown_request(format!(
            "unrecognized message type: {url}"
        )))
    }

    pub fn type_url(&self) -> String {
        match self {
            Msg::BankSend(_) => format!("/{}", MsgSend::full_name()),
        }
    }

    /// The module that handles the message (the `message.module` event attribute).
    pub fn module(&self) -> &'static str {
        match self {
            Msg::BankSend(_) => "bank",
        }
    }

    /// Stateless checks (`ValidateBasic`); errors name the field.
    pub fn validate_basic(&self) -> Result<(), TxError> {
        match self {
            Msg::BankSend(m) => bank::validate_send(m).map(|_| ()),
        }
    }

    /// The address that must sign (the `cosmos.msg.v1.signer` field).
    pub fn signer(&self) -> Result<Address, TxError> {
        let (field, value) = match self {
            Msg::BankSend(m) => ("from_address", &m.from_address),
        };
        value
            .parse()
            .map_err(|e| TxError::invalid_address(format!("{field}: {e}")))
    }

    /// Executes the message, returning its packed response.
    pub fn execute(&self, state: &mut impl StateWrite, ctx: &mut ExecCtx) -> Result<Any, TxError> {
        match self {
            Msg::BankSend(m) => bank::handle_send(state, ctx, m).map(|r| pack(&r)),
        }
    }
}
