use std::io::Write;

use clap::Subcommand;
use hpc_primitives::Address;
use serde_json::json;

use super::output::{print, print_tx};
use super::ConnectionArgs;
use crate::error::{ClientError, Result};

#[derive(Subcommand, Clone, Debug)]
pub enum QueryCommand {
    /// Accounts.
    #[command(subcommand)]
    Auth(AuthQuery),
    /// Balances.
    #[command(subcommand)]
    Bank(BankQuery),
    /// x/hpc state: clusters, jobs, decisions, audit records, violations.
    #[command(subcommand)]
    Hpc(super::hpc::HpcQuery),
    /// A tx by its hash, once included in a block.
    Tx {
        /// The tx hash: 64 hex digits.
        #[arg(value_parser = parse_tx_hash)]
        hash: String,
    },
}

#[derive(Subcommand, Clone, Debug)]
pub enum AuthQuery {
    /// An account's number, sequence and public key.
    Account { address: String },
}

#[derive(Subcommand, Clone, Debug)]
pub enum BankQuery {
    /// All balances of an address, or one denom's.
    Balances {
        address: String,
        /// Only this denomination.
        #[arg(long)]
        denom: Option<String>,
    },
}

fn parse_address(field: &str, s: &str) -> Result<Address> {
    s.parse().map_err(|e| ClientError::invalid(field, e))
}

pub async fn run_query(
    cmd: QueryCommand,
    conn: &ConnectionArgs,
    height: u64,
    out: &mut dyn Write,
) -> Result<()> {
    let mut client = conn.query_client()?;
    client.query_height = height;
    let io = ClientError::Output;
    match cmd {
        QueryCommand::Auth(AuthQuery::Account { address }) => {
            let address = parse_address("ADDRESS", &address)?;
            let account = client
                .account(&address)
                .await?
                .ok_or_else(|| ClientError::AccountNotFound(address.to_string()))?;
            let pub_key = account.pub_key.map(|any| {
                use base64::Engine;
                let key = <cosmos_sdk_proto::cosmos::crypto::secp256k1::PubKey as prost::Message>::decode(any.value.as_slice())
                    .map(|k| base64::engine::general_purpose::STANDARD.encode(k.key))
                    .unwrap_or_default();
                json!({"@type": any.type_url, "key": key})
            });
            print(
                out,
                conn.output,
                &json!({
                    "@type": "/cosmos.auth.v1beta1.BaseAccount",
                    "address": account.address,
                    "pub_key": pub_key,
                    "account_number": account.account_number.to_string(),
                    "sequence": account.sequence.to_string(),
                }),
            )
            .map_err(io)
        }
        QueryCommand::Bank(BankQuery::Balances { address, denom }) => {
            let address = parse_address("ADDRESS", &address)?;
            let balances = client.all_balances(&address, client.query_height).await?;
            let balances: Vec<_> = balances
                .into_iter()
                .filter(|c| denom.as_deref().is_none_or(|d| d == c.denom))
                .map(|c| json!({"denom": c.denom, "amount": c.amount}))
                .collect();
            print(out, conn.output, &json!({ "balances": balances })).map_err(io)
        }
        QueryCommand::Hpc(cmd) => super::hpc::run_hpc_query(cmd, &client, conn, out).await,
        QueryCommand::Tx { hash } => {
            let result = client.transport.get_tx(&hash).await?.ok_or_else(|| {
                ClientError::invalid(
                    "HASH",
                    format!("tx {hash} not found (not yet included, or pruned)"),
                )
            })?;
            print_tx(out, conn.output, &result).map_err(io)
        }
    }
}

/// A tx hash as CometBFT prints it (SHA-256, 64 hex digits), upper-cased.
fn parse_tx_hash(hash: &str) -> std::result::Result<String, String> {
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hash.to_ascii_uppercase())
    } else {
        Err(format!(
            "a tx hash is 64 hex digits (SHA-256 of the tx bytes); got {} characters",
            hash.chars().count()
        ))
    }
}
