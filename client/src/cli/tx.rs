use std::io::{BufRead, Write};
use std::time::Duration;

use base64::Engine;
use clap::{Args, Subcommand};
use cosmos_sdk_proto::cosmos::bank::v1beta1::MsgSend;
use cosmos_sdk_proto::cosmos::base::v1beta1::Coin;
use cosmrs::crypto::secp256k1::SigningKey;
use hpc_primitives::{Address, Coins, Dec, GasPrices};

use super::output::print_tx;
use super::ConnectionArgs;
use super::KeySource;
use crate::chain::ChainClient;
use crate::error::{ClientError, Result};
use crate::transport::TxResult;
use crate::tx::{address_of, to_any, GasSetting, TxOptions};

/// Flags every tx command takes (Cosmos CLI names).
#[derive(Args, Clone, Debug)]
pub struct TxArgs {
    /// Chain id to sign for; asked from the node when omitted.
    #[arg(long, global = true, env = "HPCD_CHAIN_ID")]
    pub chain_id: Option<String>,
    /// Gas limit: "auto" (simulate × --gas-adjustment) or a number.
    #[arg(long, global = true, default_value = "auto")]
    pub gas: String,
    /// Multiplier applied to simulated gas.
    #[arg(long, global = true, default_value = "1.3")]
    pub gas_adjustment: String,
    /// Gas prices used to compute the fee, e.g. 0.025uvirt.
    #[arg(long, global = true, default_value = "0.025uvirt")]
    pub gas_prices: String,
    /// An explicit fee, e.g. 5000uvirt (overrides --gas-prices).
    #[arg(long, global = true)]
    pub fees: Option<String>,
    /// A note stored with the tx.
    #[arg(long, global = true, default_value = "")]
    pub note: String,
    /// Sign and broadcast without asking for confirmation.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Return after the mempool accepts the tx instead of waiting for its block.
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// Sign at the account's current sequence and print the tx bytes (base64) instead of
    /// broadcasting them; send them later with CometBFT's `broadcast_tx_sync`.
    #[arg(long, global = true, conflicts_with = "no_wait")]
    pub sign_only: bool,
    /// Reject the tx if it is not included by this block height (0 = no timeout).
    #[arg(long, global = true, default_value_t = 0)]
    pub timeout_height: u64,
    /// The signing key (name or address) for commands without a FROM argument.
    #[arg(long, global = true)]
    pub from: Option<String>,
}

impl TxArgs {
    pub fn options(&self) -> Result<TxOptions> {
        let gas: GasSetting = self.gas.parse()?;
        let gas_adjustment: Dec = self
            .gas_adjustment
            .parse()
            .map_err(|e| ClientError::invalid("--gas-adjustment", e))?;
        if gas_adjustment < "1".parse::<Dec>().expect("valid") {
            return Err(ClientError::invalid(
                "--gas-adjustment",
                "must be at least 1",
            ));
        }
        let gas_prices: GasPrices = self
            .gas_prices
            .parse()
            .map_err(|e| ClientError::invalid("--gas-prices", e))?;
        let fees = match &self.fees {
            Some(f) => Some(
                f.parse::<Coins>()
                    .map_err(|e| ClientError::invalid("--fees", e))?,
            ),
            None => None,
        };
        Ok(TxOptions {
            gas,
            gas_adjustment,
            gas_prices,
            fees,
            memo: self.note.clone(),
            timeout_height: self.timeout_height,
        })
    }
}

#[derive(Subcommand, Clone, Debug)]
pub enum TxCommand {
    /// Bank transfers.
    #[command(subcommand)]
    Bank(BankTx),
    /// x/hpc: clusters, jobs, routing audit and violations (sign with --from).
    #[command(subcommand)]
    Hpc(super::hpc::HpcTx),
}

#[derive(Subcommand, Clone, Debug)]
pub enum BankTx {
    /// Send coins: FROM is a key name (or its address), TO an address, AMOUNT e.g. 100uvirt.
    Send {
        from: String,
        to: String,
        amount: String,
    },
}

/// Signs with `key`, broadcasts and (unless --no-wait) waits for the block, printing
/// the result. Fails when the tx fails.
pub async fn sign_broadcast_print(
    client: &ChainClient,
    key: &SigningKey,
    msgs: Vec<cosmos_sdk_proto::Any>,
    args: &TxArgs,
    conn: &ConnectionArgs,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> Result<()> {
    let opts = args.options()?;
    if !args.yes {
        writeln!(
            out,
            "signer: {}\nmessages: {}\nconfirm transaction before signing and broadcasting [y/N]: ",
            address_of(key),
            msgs.iter()
                .map(|m| m.type_url.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
        .map_err(ClientError::Output)?;
        let mut answer = String::new();
        input
            .read_line(&mut answer)
            .map_err(|e| ClientError::invalid("stdin", e))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(ClientError::invalid(
                "confirmation",
                "transaction cancelled (pass --yes to skip the prompt)",
            ));
        }
    }
    if args.sign_only {
        let account = client.signer_account(&address_of(key)).await?;
        let tx = client.sign(key, &account, msgs, &opts).await?;
        return writeln!(
            out,
            "{}",
            base64::engine::general_purpose::STANDARD.encode(tx)
        )
        .map_err(ClientError::Output);
    }
    let submitted = client.sign_and_broadcast(key, msgs, &opts).await?;
    let result = if args.no_wait {
        submitted
    } else {
        let waited = client
            .wait_for_tx(&submitted.txhash, Duration::from_secs(60))
            .await;
        match confirmed(&submitted, waited) {
            Ok(result) => result,
            Err(e) => {
                // The hash first, where scripts read results: the tx may be committed.
                print_tx(out, conn.output, &submitted).map_err(ClientError::Output)?;
                return Err(e);
            }
        }
    };
    print_tx(out, conn.output, &result).map_err(ClientError::Output)?;
    if !result.is_ok() {
        return Err(result.into_error());
    }
    Ok(())
}

/// The block result of a broadcast tx, or — when waiting for it failed (the node went away,
/// the wait timed out) — an error that names the tx and does not call it failed.
fn confirmed(submitted: &TxResult, waited: Result<TxResult>) -> Result<TxResult> {
    waited.map_err(|e| ClientError::Unconfirmed {
        txhash: submitted.txhash.clone(),
        reason: e.to_string(),
    })
}

pub async fn run_tx(
    cmd: TxCommand,
    args: &TxArgs,
    conn: &ConnectionArgs,
    keys: &dyn KeySource,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> Result<()> {
    match cmd {
        TxCommand::Bank(BankTx::Send { from, to, amount }) => {
            let key = keys.signing_key(&from)?;
            let to: Address = to.parse().map_err(|e| ClientError::invalid("TO", e))?;
            let amount: Coins = amount
                .parse()
                .map_err(|e| ClientError::invalid("AMOUNT", e))?;
            let msg = MsgSend {
                from_address: address_of(&key).to_string(),
                to_address: to.to_string(),
                amount: amount
                    .iter()
                    .map(|(denom, amount)| Coin {
                        denom: denom.to_string(),
                        amount: amount.to_string(),
                    })
                    .collect(),
            };
            let client = ChainClient::new(conn.transport()?, args.chain_id.clone()).await?;
            sign_broadcast_print(&client, &key, vec![to_any(&msg)], args, conn, out, input).await
        }
        TxCommand::Hpc(cmd) => {
            let from = args.from.as_deref().ok_or_else(|| {
                ClientError::invalid("--from", "required: the key that signs (name or address)")
            })?;
            super::hpc::run_hpc_tx(cmd, from, args, conn, keys, out, input).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted() -> TxResult {
        TxResult {
            txhash: "AB".repeat(32),
            ..Default::default()
        }
    }

    #[test]
    fn a_tx_whose_wait_failed_is_unconfirmed_with_its_hash_not_failed() {
        let lost = ClientError::Connect {
            addr: "http://127.0.0.1:9090".into(),
            reason: "connection refused".into(),
        };
        let err = confirmed(&accepted(), Err(lost)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ClientError::Unconfirmed { .. }), "{err:?}");
        assert!(
            text.contains(&"AB".repeat(32)) && text.contains("hpcd query tx"),
            "{text}"
        );
        assert!(!text.contains("failed ("), "{text}");
        let included = TxResult {
            height: 7,
            ..accepted()
        };
        assert_eq!(
            confirmed(&accepted(), Ok(included.clone())).unwrap(),
            included
        );
    }
}
