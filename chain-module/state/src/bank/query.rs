use cosmos_sdk_proto::cosmos::bank::v1beta1::{
    QueryAllBalancesRequest, QueryAllBalancesResponse, QueryBalanceRequest, QueryBalanceResponse,
    QueryTotalSupplyRequest, QueryTotalSupplyResponse,
};
use cosmos_sdk_proto::cosmos::base::v1beta1::Coin;
use hpc_store::StateRead;

use super::keeper::{balance_prefix, parse_amount, supply_prefix, BankKeeper};
use crate::address::Address;
use crate::errors::QueryError;
use crate::query::{handle, paginate};

fn parse_address(address: &str) -> Result<Address, QueryError> {
    address
        .parse()
        .map_err(|e| QueryError::InvalidArgument(format!("address: {e}")))
}

fn coins(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<Coin> {
    entries
        .into_iter()
        .map(|(denom, amount)| Coin {
            denom: String::from_utf8(denom).expect("corrupt denom"),
            amount: parse_amount(&amount).to_string(),
        })
        .collect()
}

/// `cosmos.bank.v1beta1.Query`.
pub fn route(
    method: &str,
    data: &[u8],
    state: &dyn StateRead,
) -> Option<Result<Vec<u8>, QueryError>> {
    Some(match method {
        "Balance" => handle(data, |req: QueryBalanceRequest| {
            let address = parse_address(&req.address)?;
            if req.denom.is_empty() {
                return Err(QueryError::InvalidArgument(
                    "denom: must not be empty".into(),
                ));
            }
            Ok(QueryBalanceResponse {
                balance: Some(Coin {
                    amount: BankKeeper::balance(&state, &address, &req.denom).to_string(),
                    denom: req.denom,
                }),
            })
        }),
        "AllBalances" => handle(data, |req: QueryAllBalancesRequest| {
            let address = parse_address(&req.address)?;
            let (entries, page) =
                paginate(state, &balance_prefix(&address), req.pagination.as_ref())?;
            Ok(QueryAllBalancesResponse {
                balances: coins(entries),
                pagination: Some(page),
            })
        }),
        "TotalSupply" => handle(data, |req: QueryTotalSupplyRequest| {
            let (entries, page) = paginate(state, supply_prefix(), req.pagination.as_ref())?;
            Ok(QueryTotalSupplyResponse {
                supply: coins(entries),
                pagination: Some(page),
            })
        }),
        _ => return None,
    })
}
