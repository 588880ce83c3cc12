use cosmos_sdk_proto::cosmos::auth::v1beta1::BaseAccount;
use hpc_store::{StateRead, StateWrite};
use serde::{Deserialize, Serialize};

use super::keeper::{default_params, pack_pubkey, unpack_pubkey, AuthKeeper, AuthParams};
use crate::address::Address;
use crate::serde_util::{u64_string, GenesisError};

/// `app_state.auth` in the Cosmos SDK's JSON shape.
/// Account numbers genesis may assign: below 2^63, so numbering new accounts upwards
/// from the largest can never overflow.
pub const MAX_GENESIS_ACCOUNT_NUMBER: u64 = 1 << 63;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthGenesis {
    #[serde(default)]
    pub params: Option<AuthParamsJson>,
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthParamsJson {
    #[serde(with = "u64_string")]
    pub max_memo_characters: u64,
    #[serde(with = "u64_string")]
    pub tx_sig_limit: u64,
    #[serde(with = "u64_string")]
    pub tx_size_cost_per_byte: u64,
    #[serde(with = "u64_string")]
    pub sig_verify_cost_ed25519: u64,
    #[serde(with = "u64_string")]
    pub sig_verify_cost_secp256k1: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    #[serde(rename = "@type", default = "base_account_type")]
    pub type_url: String,
    pub address: String,
    /// `{"@type": "/cosmos.crypto.secp256k1.PubKey", "key": "<base64>"}` or null.
    #[serde(default)]
    pub pub_key: Option<GenesisPubKey>,
    #[serde(with = "u64_string", default)]
    pub account_number: u64,
    #[serde(with = "u64_string", default)]
    pub sequence: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisPubKey {
    #[serde(rename = "@type")]
    pub type_url: String,
    pub key: String,
}

fn base_account_type() -> String {
    "/cosmos.auth.v1beta1.BaseAccount".to_string()
}

impl From<&AuthParams> for AuthParamsJson {
    fn from(p: &AuthParams) -> Self {
        Self {
            max_memo_characters: p.max_memo_characters,
            tx_sig_limit: p.tx_sig_limit,
            tx_size_cost_per_byte: p.tx_size_cost_per_byte,
            sig_verify_cost_ed25519: p.sig_verify_cost_ed25519,
            sig_verify_cost_secp256k1: p.sig_verify_cost_secp256k1,
        }
    }
}

impl AuthGenesis {
    pub fn validate_and_apply(&self, state: &mut impl StateWrite) -> Result<(), GenesisError> {
        use base64::Engine;
        let params = match &self.params {
            Some(p) => AuthParams {
                max_memo_characters: p.max_memo_characters,
                tx_sig_limit: p.tx_sig_limit,
                tx_size_cost_per_byte: p.tx_size_cost_per_byte,
                sig_verify_cost_ed25519: p.sig_verify_cost_ed25519,
                sig_verify_cost_secp256k1: p.sig_verify_cost_secp256k1,
            },
            None => default_params(),
        };
        if params.tx_sig_limit == 0 {
            return Err(GenesisError::new(
                "auth.params.tx_sig_limit",
                "must be at least 1",
            ));
        }
        AuthKeeper::set_params(state, &params);
        let mut numbers = std::collections::BTreeSet::new();
        for (i, acct) in self.accounts.iter().enumerate() {
            let field = format!("auth.accounts[{i}]");
            if acct.type_url != base_account_type() {
                return Err(GenesisError::new(
                    format!("{field}.@type"),
                    format!("unsupported account type {:?}", acct.type_url),
                ));
            }
            let address: Address = acct
                .address
                .parse()
                .map_err(|e| GenesisError::new(format!("{field}.address"), e))?;
            if AuthKeeper::account(state, &address).is_some() {
                return Err(GenesisError::new(
                    format!("{field}.address"),
                    format!("duplicate account {address}"),
                ));
            }
            // New accounts are numbered upwards from the largest: leave them room.
            if acct.account_number >= MAX_GENESIS_ACCOUNT_NUMBER {
                return Err(GenesisError::new(
                    format!("{field}.account_number"),
                    format!("must be below {MAX_GENESIS_ACCOUNT_NUMBER}"),
                ));
            }
            if !numbers.insert(acct.account_number) {
                return Err(GenesisError::new(
                    format!("{field}.account_number"),
                    format!("duplicate account number {}", acct.account_number),
                ));
            }
            let pub_key = match &acct.pub_key {
                None => None,
                Some(pk) => {
                    let key = base64::engine::general_purpose::STANDARD
                        .decode(&pk.key)
                        .map_err(|e| GenesisError::new(format!("{field}.pub_key.key"), e))?;
                    let any = pack_pubkey(&key);
                    if pk.type_url != any.type_url {
                        return Err(GenesisError::new(
                            format!("{field}.pub_key.@type"),
                            format!("unsupported key type {:?}", pk.type_url),
                        ));
                    }
                    unpack_pubkey(&any)
                        .map_err(|e| GenesisError::new(format!("{field}.pub_key"), e))?;
                    Some(any)
                }
            };
            AuthKeeper::import_account(
                state,
                &address,
                &BaseAccount {
                    address: address.to_string(),
                    pub_key,
                    account_number: acct.account_number,
                    sequence: acct.sequence,
                },
            );
        }
        Ok(())
    }

    pub fn export(state: &impl StateRead) -> Self {
        use base64::Engine;
        let accounts = AuthKeeper::all_accounts(state)
            .into_iter()
            .map(|a| GenesisAccount {
                type_url: base_account_type(),
                pub_key: a.pub_key.as_ref().map(|any| GenesisPubKey {
                    type_url: any.type_url.clone(),
                    key: base64::engine::general_purpose::STANDARD
                        .encode(unpack_pubkey(any).expect("stored keys are valid")),
                }),
                address: a.address,
                account_number: a.account_number,
                sequence: a.sequence,
            })
            .collect();
        Self {
            params: Some((&AuthKeeper::params(state)).into()),
            accounts,
        }
    }
}
