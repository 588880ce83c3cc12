use cosmos_sdk_proto::cosmos::auth::v1beta1::{
    QueryAccountRequest, QueryAccountResponse, QueryParamsRequest, QueryParamsResponse,
};
use hpc_store::StateRead;

use super::keeper::{pack_account, AuthKeeper};
use crate::address::Address;
use crate::errors::QueryError;
use crate::query::handle;

/// `cosmos.auth.v1beta1.Query`.
pub fn route(
    method: &str,
    data: &[u8],
    state: &dyn StateRead,
) -> Option<Result<Vec<u8>, QueryError>> {
    Some(match method {
        "Account" => handle(data, |req: QueryAccountRequest| {
            let address: Address = req
                .address
                .parse()
                .map_err(|e| QueryError::InvalidArgument(format!("address: {e}")))?;
            let account = AuthKeeper::account(&state, &address)
                .ok_or_else(|| QueryError::NotFound(format!("account {address} not found")))?;
            Ok(QueryAccountResponse {
                account: Some(pack_account(&account)),
            })
        }),
        "Params" => handle(data, |_: QueryParamsRequest| {
            Ok(QueryParamsResponse {
                params: Some(AuthKeeper::params(&state)),
            })
        }),
        _ => return None,
    })
}
