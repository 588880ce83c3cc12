use cosmos_sdk_proto::cosmos::bank::v1beta1::MsgSend;
use cosmos_sdk_proto::Any;
use hpc_store::StateWrite;
use prost::{Message, Name};

use crate::address::Address;
use crate::bank;
use crate::context::ExecCtx;
use crate::errors::TxError;
use crate::hpc::HpcMsg;

/// Every message type the chain executes.
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    BankSend(MsgSend),
    /// Boxed: x/hpc messages (a job with its workload) are far larger than a send.
    Hpc(Box<HpcMsg>),
}

/// Packs a message (or a message response) as `Any`.
pub fn to_any<M: Message + Name>(msg: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: msg.encode_to_vec(),
    }
}

impl Msg {
    pub fn decode(any: &Any) -> Result<Self, TxError> {
        if any.type_url == MsgSend::type_url() {
            return MsgSend::decode(any.value.as_slice())
                .map(Msg::BankSend)
                .map_err(|e| TxError::tx_decode(format!("cannot decode {}: {e}", any.type_url)));
        }
        if let Some(hpc) = HpcMsg::decode(any) {
            return hpc.map(|m| Msg::Hpc(Box::new(m)));
        }
        Err(TxError::unknown_request(format!(
            "unrecognized message type: {}",
            any.type_url
        )))
    }

    pub fn type_url(&self) -> String {
        match self {
            Msg::BankSend(_) => MsgSend::type_url(),
            Msg::Hpc(m) => m.type_url(),
        }
    }

    /// The module that handles the message (the `message.module` event attribute).
    pub fn module(&self) -> &'static str {
        match self {
            Msg::BankSend(_) => "bank",
            Msg::Hpc(_) => "hpc",
        }
    }

    /// Stateless checks (`ValidateBasic`); errors name the field.
    pub fn validate_basic(&self) -> Result<(), TxError> {
        match self {
            Msg::BankSend(m) => bank::validate_send(m).map(|_| ()),
            Msg::Hpc(m) => m.validate_basic(),
        }
    }

    /// The address that must sign (the `cosmos.msg.v1.signer` field).
    pub fn signer(&self) -> Result<Address, TxError> {
        match self {
            Msg::BankSend(m) => m
                .from_address
                .parse()
                .map_err(|e| TxError::invalid_address(format!("from_address: {e}"))),
            Msg::Hpc(m) => m.signer(),
        }
    }

    /// Runs the stateless checks and the signer rule: the only way to a [`ValidatedMsg`].
    pub fn validate(self) -> Result<ValidatedMsg, TxError> {
        Validated::check(self, Msg::validate_basic, Msg::signer)
    }
}

impl HpcMsg {
    /// Runs the stateless checks and the signer rule: the only way to a validated x/hpc
    /// message, which is all [`crate::hpc::execute`] accepts.
    pub fn validate(self) -> Result<Validated<HpcMsg>, TxError> {
        Validated::check(self, HpcMsg::validate_basic, HpcMsg::signer)
    }
}

/// A message whose stateless checks (`ValidateBasic`) passed, with the address that must
/// sign it. The field is private and only [`Msg::validate`] and [`HpcMsg::validate`] make
/// one, so execution can rely on what the checks established (known enum values, set
/// fields, parseable addresses) whatever path the message took to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Validated<M> {
    msg: M,
    signer: Address,
}

/// A validated message of any module, as the ante handler hands them to execution.
pub type ValidatedMsg = Validated<Msg>;

impl<M> Validated<M> {
    fn check(
        msg: M,
        validate_basic: impl FnOnce(&M) -> Result<(), TxError>,
        signer: impl FnOnce(&M) -> Result<Address, TxError>,
    ) -> Result<Self, TxError> {
        validate_basic(&msg)?;
        let signer = signer(&msg)?;
        Ok(Self { msg, signer })
    }

    pub fn msg(&self) -> &M {
        &self.msg
    }

    /// The address that must sign the message (the `cosmos.msg.v1.signer` field).
    pub fn signer(&self) -> Address {
        self.signer
    }

    /// The same validated message, borrowed.
    pub fn borrowed(&self) -> Validated<&M> {
        Validated {
            msg: &self.msg,
            signer: self.signer,
        }
    }
}

impl ValidatedMsg {
    /// Executes the message, returning its packed response.
    pub fn execute(&self, state: &mut impl StateWrite, ctx: &mut ExecCtx) -> Result<Any, TxError> {
        match &self.msg {
            Msg::BankSend(m) => bank::handle_send(state, ctx, m).map(|r| to_any(&r)),
            // `Msg::validate_basic` of an x/hpc message is the message's own.
            Msg::Hpc(m) => crate::hpc::execute(
                state,
                ctx,
                Validated {
                    msg: m,
                    signer: self.signer,
                },
            ),
        }
    }
}
