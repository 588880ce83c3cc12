//! Building and signing Cosmos txs (SIGN_MODE_DIRECT, secp256k1), byte-compatible with
//! what cosmrs, CosmJS and cosmpy produce.

use cosmos_sdk_proto::cosmos::base::v1beta1::Coin;
use cosmos_sdk_proto::cosmos::crypto::secp256k1::PubKey;
use cosmos_sdk_proto::cosmos::tx::signing::v1beta1::SignMode;
use cosmos_sdk_proto::cosmos::tx::v1beta1::{
    mode_info, AuthInfo, Fee, ModeInfo, SignDoc, SignerInfo, TxBody, TxRaw,
};
use cosmos_sdk_proto::Any;
use cosmrs::crypto::secp256k1::SigningKey;
use hpc_primitives::{Address, Coins, Dec, GasPrices};
use prost::{Message, Name};

use crate::error::{ClientError, Result};

/// Packs a message as `Any` with its `/package.Type` URL.
pub fn to_any<M: Message + Name>(msg: &M) -> Any {
    Any {
        type_url: format!("/{}", M::full_name()),
        value: msg.encode_to_vec(),
    }
}

/// How much gas to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GasSetting {
    /// Simulate, then multiply by the gas adjustment.
    Auto,
    Fixed(u64),
}

impl std::str::FromStr for GasSetting {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self> {
        if s == "auto" {
            return Ok(GasSetting::Auto);
        }
        s.parse::<u64>()
            .ok()
            .filter(|g| *g > 0)
            .map(GasSetting::Fixed)
            .ok_or_else(|| {
                ClientError::invalid(
                    "--gas",
                    format!("{s:?} is neither \"auto\" nor a positive integer"),
                )
            })
    }
}

/// Fee and gas options, with the Cosmos CLI's meanings.
#[derive(Clone, Debug)]
pub struct TxOptions {
    pub gas: GasSetting,
    /// Multiplier on simulated gas (`--gas-adjustment`).
    pub gas_adjustment: Dec,
    /// Used to compute the fee when `fees` is not given (`--gas-prices`).
    pub gas_prices: GasPrices,
    /// An explicit fee (`--fees`), overriding gas prices.
    pub fees: Option<Coins>,
    pub memo: String,
    pub timeout_height: u64,
}

impl Default for TxOptions {
    fn default() -> Self {
        Self {
            gas: GasSetting::Auto,
            gas_adjustment: "1.3".parse().expect("valid decimal"),
            gas_prices: "0.025uvirt".parse().expect("valid gas price"),
            fees: None,
            memo: String::new(),
            timeout_height: 0,
        }
    }
}

impl TxOptions {
    /// The gas limit for a simulated consumption.
    pub fn adjusted_gas(&self, simulated: u64) -> u64 {
        u64::try_from(self.gas_adjustment.mul_ceil(simulated)).unwrap_or(u64::MAX)
    }

    /// The fee for a gas limit: `--fees`, or gas × the first non-zero gas price.
    pub fn fee_for(&self, gas_limit: u64) -> Coins {
        match &self.fees {
            Some(fees) => fees.clone(),
            None => {
                let required = self.gas_prices.required_fees(gas_limit);
                let first = required.iter().next().map(|(d, a)| (d.to_string(), a));
                match first {
                    Some((denom, amount)) => Coins::single(&denom, amount),
                    None => Coins::new(),
                }
            }
        }
    }
}

/// The on-chain facts a signature commits to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignerAccount {
    pub address: Address,
    pub account_number: u64,
    pub sequence: u64,
}

fn pubkey_any(key: &SigningKey) -> Any {
    to_any(&PubKey {
        key: key.public_key().to_bytes(),
    })
}

/// The account address of a signing key.
pub fn address_of(key: &SigningKey) -> Address {
    Address::from_secp256k1_pubkey(&key.public_key().to_bytes())
}

/// Builds and signs a tx, returning the `TxRaw` bytes to broadcast. With `simulate`, the
/// signature is a 64-byte placeholder (the node does not verify signatures when simulating).
#[allow(clippy::too_many_arguments)]
pub fn sign_tx(
    key: &SigningKey,
    chain_id: &str,
    account: &SignerAccount,
    msgs: Vec<Any>,
    memo: &str,
    timeout_height: u64,
    fee: &Coins,
    gas_limit: u64,
    simulate: bool,
) -> Result<Vec<u8>> {
    let body = TxBody {
        messages: msgs,
        memo: memo.to_string(),
        timeout_height,
        extension_options: Vec::new(),
        non_critical_extension_options: Vec::new(),
    };
    #[allow(deprecated)]
    let auth_info = AuthInfo {
        signer_infos: vec![SignerInfo {
            public_key: Some(pubkey_any(key)),
            mode_info: Some(ModeInfo {
                sum: Some(mode_info::Sum::Single(mode_info::Single {
                    mode: SignMode::Direct as i32,
                })),
            }),
            sequence: account.sequence,
        }],
        fee: Some(Fee {
            amount: fee
                .iter()
                .map(|(denom, amount)| Coin {
                    denom: denom.to_string(),
                    amount: amount.to_string(),
                })
                .collect(),
            gas_limit,
            payer: String::new(),
            granter: String::new(),
        }),
        tip: None,
    };
    let body_bytes = body.encode_to_vec();
    let auth_info_bytes = auth_info.encode_to_vec();
    let signature = if simulate {
        vec![0u8; 64]
    } else {
        let doc = SignDoc {
            body_bytes: body_bytes.clone(),
            auth_info_bytes: auth_info_bytes.clone(),
            chain_id: chain_id.to_string(),
            account_number: account.account_number,
        };
        key.sign(&doc.encode_to_vec())
            .map_err(|e| ClientError::invalid("signing key", e))?
            .to_bytes()
            .to_vec()
    };
    Ok(TxRaw {
        body_bytes,
        auth_info_bytes,
        signatures: vec![signature],
    }
    .encode_to_vec())
}
