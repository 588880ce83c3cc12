use cosmos_sdk_proto::cosmos::auth::v1beta1::{BaseAccount, Params};
use cosmos_sdk_proto::cosmos::crypto::secp256k1::PubKey;
use cosmos_sdk_proto::Any;
use hpc_store::{StateRead, StateWrite};
use prost::{Message, Name};

use crate::address::Address;
use crate::codec::{get_proto, get_u64, put_proto, put_u64};

const ACCOUNT_PREFIX: &[u8] = b"auth/a/";
const NEXT_NUMBER: &[u8] = b"auth/next_number";
const PARAMS: &[u8] = b"auth/params";

pub type AuthParams = Params;

/// Cosmos SDK defaults for `x/auth` params.
pub fn default_params() -> AuthParams {
    Params {
        max_memo_characters: 256,
        tx_sig_limit: 7,
        tx_size_cost_per_byte: 10,
        sig_verify_cost_ed25519: 590,
        sig_verify_cost_secp256k1: 1000,
    }
}

fn account_key(address: &Address) -> Vec<u8> {
    [ACCOUNT_PREFIX, address.as_bytes()].concat()
}

/// Typed access to accounts; every read and write of `auth/` goes through here.
pub struct AuthKeeper;

impl AuthKeeper {
    pub fn params(state: &impl StateRead) -> AuthParams {
        get_proto(state, PARAMS).unwrap_or_else(default_params)
    }

    pub fn set_params(state: &mut impl StateWrite, params: &AuthParams) {
        put_proto(state, PARAMS.to_vec(), params);
    }

    pub fn account(state: &impl StateRead, address: &Address) -> Option<BaseAccount> {
        get_proto(state, &account_key(address))
    }

    pub fn set_account(state: &mut impl StateWrite, address: &Address, account: &BaseAccount) {
        put_proto(state, account_key(address), account);
    }

    /// Creates an account with the next account number (on genesis or on first receipt
    /// of funds), returning it; an existing account is returned unchanged.
    pub fn get_or_create(state: &mut impl StateWrite, address: &Address) -> BaseAccount {
        if let Some(existing) = Self::account(state, address) {
            return existing;
        }
        let number = get_u64(state, NEXT_NUMBER).unwrap_or(0);
        put_u64(state, NEXT_NUMBER.to_vec(), number + 1);
        let account = BaseAccount {
            address: address.to_string(),
            pub_key: None,
            account_number: number,
            sequence: 0,
        };
        Self::set_account(state, address, &account);
        account
    }

    /// Inserts an account with a given number (genesis import), keeping the next number
    /// above every number in use.
    pub fn import_account(state: &mut impl StateWrite, address: &Address, account: &BaseAccount) {
        let next = get_u64(state, NEXT_NUMBER).unwrap_or(0);
        if account.account_number >= next {
            put_u64(
                state,
                NEXT_NUMBER.to_vec(),
                account.account_number.saturating_add(1),
            );
        }
        Self::set_account(state, address, account);
    }

    /// All accounts in address order (genesis export).
    pub fn all_accounts(state: &impl StateRead) -> Vec<BaseAccount> {
        state
            .prefix(ACCOUNT_PREFIX, usize::MAX)
            .into_iter()
            .map(|(_, v)| BaseAccount::decode(v.as_slice()).expect("corrupt account in state"))
            .collect()
    }
}

/// Packs a compressed secp256k1 key as `Any(/cosmos.crypto.secp256k1.PubKey)`.
pub fn pack_pubkey(compressed: &[u8]) -> Any {
    Any {
        type_url: format!("/{}", PubKey::full_name()),
        value: PubKey {
            key: compressed.to_vec(),
        }
        .encode_to_vec(),
    }
}

/// Unpacks `Any(/cosmos.crypto.secp256k1.PubKey)` to compressed key bytes.
pub fn unpack_pubkey(any: &Any) -> Result<Vec<u8>, String> {
    let expected = format!("/{}", PubKey::full_name());
    if any.type_url != expected {
        return Err(format!(
            "unsupported public key type {:?}; only {expected} is accepted",
            any.type_url
        ));
    }
    let key = PubKey::decode(any.value.as_slice())
        .map_err(|e| format!("malformed secp256k1 public key: {e}"))?
        .key;
    if key.len() != 33 {
        return Err(format!(
            "secp256k1 public key must be 33 bytes (compressed), got {}",
            key.len()
        ));
    }
    Ok(key)
}

pub fn pack_account(account: &BaseAccount) -> Any {
    Any {
        type_url: format!("/{}", BaseAccount::full_name()),
        value: account.encode_to_vec(),
    }
}
