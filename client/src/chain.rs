//! A typed client for the chain: accounts, balances, simulation, signing and broadcasting.

use std::time::Duration;

use cosmos_sdk_proto::cosmos::auth::v1beta1::{
    BaseAccount, QueryAccountRequest, QueryAccountResponse,
};
use cosmos_sdk_proto::cosmos::bank::v1beta1::{
    QueryAllBalancesRequest, QueryAllBalancesResponse, QueryBalanceRequest, QueryBalanceResponse,
};
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::{
    GetNodeInfoRequest, GetNodeInfoResponse,
};
use cosmos_sdk_proto::cosmos::base::v1beta1::Coin;
use cosmos_sdk_proto::cosmos::tx::v1beta1::{SimulateRequest, SimulateResponse};
use cosmos_sdk_proto::Any;
use cosmrs::crypto::secp256k1::SigningKey;
use hpc_primitives::{Address, Coins};
use prost::Message;
use tendermint_rpc::Client;

use crate::error::{ClientError, Result};
use crate::transport::{Transport, TxResult};
use crate::tx::{address_of, sign_tx, GasSetting, SignerAccount, TxOptions};

/// The gas limit written into simulated txs: as many varint bytes as typical real limits.
const SIMULATION_GAS_LIMIT: u64 = 1_000_000;

#[derive(Clone)]
pub struct ChainClient {
    pub transport: Transport,
    pub chain_id: String,
    /// Height the state queries read (0 = the latest), as the SDK's `--height`.
    pub query_height: u64,
}

impl ChainClient {
    /// A client for `transport`; the chain id is asked from the node when not given.
    pub async fn new(transport: Transport, chain_id: Option<String>) -> Result<Self> {
        let chain_id = match chain_id {
            Some(id) if !id.is_empty() => id,
            _ => match &transport {
                Transport::Grpc { .. } => {
                    let info: GetNodeInfoResponse = transport
                        .query(
                            "/cosmos.base.tendermint.v1beta1.Service/GetNodeInfo",
                            &GetNodeInfoRequest {},
                            0,
                        )
                        .await?;
                    info.default_node_info
                        .map(|i| i.network)
                        .unwrap_or_default()
                }
                Transport::Rpc { client, url } => client
                    .status()
                    .await
                    .map_err(|e| ClientError::rpc(url, e))?
                    .node_info
                    .network
                    .to_string(),
            },
        };
        Ok(Self {
            transport,
            chain_id,
            query_height: 0,
        })
    }

    pub async fn account(&self, address: &Address) -> Result<Option<BaseAccount>> {
        let req = QueryAccountRequest {
            address: address.to_string(),
        };
        match self
            .transport
            .query::<_, QueryAccountResponse>(
                "/cosmos.auth.v1beta1.Query/Account",
                &req,
                self.query_height,
            )
            .await
        {
            Ok(resp) => {
                let any = resp.account.unwrap_or_default();
                BaseAccount::decode(any.value.as_slice())
                    .map(Some)
                    .map_err(|source| ClientError::Decode {
                        what: format!("account {address}"),
                        source,
                    })
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn balance(&self, address: &Address, denom: &str) -> Result<u128> {
        let req = QueryBalanceRequest {
            address: address.to_string(),
            denom: denom.to_string(),
        };
        let resp: QueryBalanceResponse = self
            .transport
            .query(
                "/cosmos.bank.v1beta1.Query/Balance",
                &req,
                self.query_height,
            )
            .await?;
        Ok(resp
            .balance
            .and_then(|c| c.amount.parse().ok())
            .unwrap_or(0))
    }

    pub async fn all_balances(&self, address: &Address, height: u64) -> Result<Vec<Coin>> {
        let req = QueryAllBalancesRequest {
            address: address.to_string(),
            pagination: None,
            resolve_denom: false,
        };
        let resp: QueryAllBalancesResponse = self
            .transport
            .query("/cosmos.bank.v1beta1.Query/AllBalances", &req, height)
            .await?;
        Ok(resp.balances)
    }

    /// Gas a tx would use, from a dry run on the node.
    pub async fn simulate(&self, tx_bytes: Vec<u8>) -> Result<u64> {
        #[allow(deprecated)]
        let req = SimulateRequest { tx: None, tx_bytes };
        let resp: SimulateResponse = self
            .transport
            .query("/cosmos.tx.v1beta1.Service/Simulate", &req, 0)
            .await?;
        Ok(resp.gas_info.map_or(0, |g| g.gas_used))
    }

    /// The signer's account number and current sequence.
    pub async fn signer_account(&self, address: &Address) -> Result<SignerAccount> {
        let account = self
            .account(address)
            .await?
            .ok_or_else(|| ClientError::AccountNotFound(address.to_string()))?;
        Ok(SignerAccount {
            address: *address,
            account_number: account.account_number,
            sequence: account.sequence,
        })
    }

    /// Signs `msgs` with `key` (gas simulated when `--gas auto`) at the given account
    /// state and broadcasts; fails if the mempool rejects the tx.
    pub async fn sign_and_broadcast_with(
        &self,
        key: &SigningKey,
        account: &SignerAccount,
        msgs: Vec<Any>,
        opts: &TxOptions,
    ) -> Result<TxResult> {
        let tx = self.sign(key, account, msgs, opts).await?;
        let result = self.transport.broadcast(tx).await?;
        if !result.is_ok() {
            return Err(result.into_error());
        }
        Ok(result)
    }

    /// The signed `TxRaw` bytes of `msgs` at the given account state (gas simulated when
    /// `--gas auto`), not broadcast.
    pub async fn sign(
        &self,
        key: &SigningKey,
        account: &SignerAccount,
        msgs: Vec<Any>,
        opts: &TxOptions,
    ) -> Result<Vec<u8>> {
        let gas_limit = match opts.gas {
            GasSetting::Fixed(gas) => gas,
            GasSetting::Auto => {
                // Simulate the tx as it will be sent: with a fee in the same denoms (its
                // deduction costs gas; 1 unit each, so a small balance still simulates) and
                // a signature-sized placeholder (size costs gas too).
                let fee = match &opts.fees {
                    Some(fees) => fees.clone(),
                    None => opts
                        .fee_for(SIMULATION_GAS_LIMIT)
                        .iter()
                        .fold(Coins::new(), |acc, (denom, _)| {
                            acc.plus(&Coins::single(denom, 1))
                        }),
                };
                let dry = sign_tx(
                    key,
                    &self.chain_id,
                    account,
                    msgs.clone(),
                    &opts.memo,
                    opts.timeout_height,
                    &fee,
                    SIMULATION_GAS_LIMIT,
                    true,
                )?;
                opts.adjusted_gas(self.simulate(dry).await?)
            }
        };
        let fee = opts.fee_for(gas_limit);
        sign_tx(
            key,
            &self.chain_id,
            account,
            msgs,
            &opts.memo,
            opts.timeout_height,
            &fee,
            gas_limit,
            false,
        )
    }

    /// As [`Self::sign_and_broadcast_with`], reading the account from the chain first.
    pub async fn sign_and_broadcast(
        &self,
        key: &SigningKey,
        msgs: Vec<Any>,
        opts: &TxOptions,
    ) -> Result<TxResult> {
        let account = self.signer_account(&address_of(key)).await?;
        self.sign_and_broadcast_with(key, &account, msgs, opts)
            .await
    }

    /// Polls until the tx is in a block, returning its result (which may be a failure).
    pub async fn wait_for_tx(&self, hash: &str, timeout: Duration) -> Result<TxResult> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(result) = self.transport.get_tx(hash).await? {
                return Ok(result);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    hash: hash.to_string(),
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
