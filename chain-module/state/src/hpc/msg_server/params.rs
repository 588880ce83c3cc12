//! Governance of the module's parameters.

use hpc_primitives::contract::{attrs, events};
use hpc_proto::virtengine::hpc::v1::{MsgUpdateParams, MsgUpdateParamsResponse};
use hpc_store::StateWrite;

use super::require_authority;
use crate::context::ExecCtx;
use crate::errors::{hpc_codes as code, TxError};
use crate::events::Event;
use crate::hpc::params::{validate_params, HpcKeeper};

pub(super) fn update_params(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    m: &MsgUpdateParams,
) -> Result<MsgUpdateParamsResponse, TxError> {
    require_authority(state, &m.authority)?;
    let params = m
        .params
        .ok_or_else(|| TxError::logic("params: not set (it passed ValidateBasic)"))?;
    validate_params(&params).map_err(|e| TxError::hpc(code::INVALID_PARAMS, e.to_string()))?;
    HpcKeeper::set_params(state, &params);
    ctx.emit(Event::new(events::PARAMS_UPDATED).attr(attrs::AUTHORITY, &m.authority));
    Ok(MsgUpdateParamsResponse {})
}
