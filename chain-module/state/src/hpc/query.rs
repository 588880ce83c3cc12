use hpc_proto::virtengine::hpc::v1::{QueryParamsRequest, QueryParamsResponse};
use hpc_store::StateRead;

use super::params::HpcKeeper;
use crate::errors::QueryError;
use crate::query::handle;

/// `virtengine.hpc.v1.Query`.
pub fn route(
    method: &str,
    data: &[u8],
    state: &dyn StateRead,
) -> Option<Result<Vec<u8>, QueryError>> {
    Some(match method {
        "Params" => handle(data, |_: QueryParamsRequest| {
            Ok(QueryParamsResponse {
                params: Some(HpcKeeper::params(&state)),
                authority: HpcKeeper::authority(&state),
            })
        }),
        _ => return None,
    })
}
