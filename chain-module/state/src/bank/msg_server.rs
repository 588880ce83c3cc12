use cosmos_sdk_proto::cosmos::bank::v1beta1::{MsgSend, MsgSendResponse};
use hpc_store::StateWrite;

use super::BankKeeper;
use crate::address::Address;
use crate::coins::Coins;
use crate::context::ExecCtx;
use crate::errors::TxError;

/// Stateless checks of `MsgSend` (`ValidateBasic`).
pub fn validate_send(msg: &MsgSend) -> Result<(Address, Address, Coins), TxError> {
    let from: Address = msg
        .from_address
        .parse()
        .map_err(|e| TxError::invalid_address(format!("from_address: {e}")))?;
    let to: Address = msg
        .to_address
        .parse()
        .map_err(|e| TxError::invalid_address(format!("to_address: {e}")))?;
    let amount = Coins::from_proto(&msg.amount, "amount")?;
    if amount.is_empty() {
        return Err(TxError::invalid_coins("amount: must not be empty"));
    }
    Ok((from, to, amount))
}

pub fn handle_send(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    msg: &MsgSend,
) -> Result<MsgSendResponse, TxError> {
    let (from, to, amount) = validate_send(msg)?;
    BankKeeper::send(state, ctx, &from, &to, &amount)?;
    Ok(MsgSendResponse {})
}
