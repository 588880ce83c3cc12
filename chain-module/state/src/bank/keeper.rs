use hpc_primitives::contract::sdk_events::{self, attrs as sdk_attrs};
use hpc_store::{StateRead, StateWrite};

use crate::address::Address;
use crate::auth::AuthKeeper;
use crate::coins::Coins;
use crate::context::ExecCtx;
use crate::errors::TxError;
use crate::events::Event;

const BALANCE_PREFIX: &[u8] = b"bank/b/";
const SUPPLY_PREFIX: &[u8] = b"bank/s/";

/// `bank/b/<20-byte address><denom>` → amount (decimal string, as Cosmos stores `Int`).
pub(super) fn balance_prefix(address: &Address) -> Vec<u8> {
    [BALANCE_PREFIX, address.as_bytes()].concat()
}

fn balance_key(address: &Address, denom: &str) -> Vec<u8> {
    [&balance_prefix(address), denom.as_bytes()].concat()
}

pub(super) fn supply_prefix() -> &'static [u8] {
    SUPPLY_PREFIX
}

fn supply_key(denom: &str) -> Vec<u8> {
    [SUPPLY_PREFIX, denom.as_bytes()].concat()
}

pub(super) fn parse_amount(bytes: &[u8]) -> u128 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("corrupt amount in bank state")
}

/// Typed access to balances and supply.
pub struct BankKeeper;

impl BankKeeper {
    pub fn balance(state: &impl StateRead, address: &Address, denom: &str) -> u128 {
        state
            .get(&balance_key(address, denom))
            .map_or(0, |b| parse_amount(&b))
    }

    pub fn all_balances(state: &impl StateRead, address: &Address) -> Coins {
        let prefix = balance_prefix(address);
        let mut out = Coins::new();
        for (k, v) in state.prefix(&prefix, usize::MAX) {
            let denom = std::str::from_utf8(&k[prefix.len()..]).expect("corrupt denom");
            out = out.plus(&Coins::single(denom, parse_amount(&v)));
        }
        out
    }

    fn set_balance(state: &mut impl StateWrite, address: &Address, denom: &str, amount: u128) {
        let key = balance_key(address, denom);
        if amount == 0 {
            state.delete(&key);
        } else {
            state.put(key, amount.to_string().into_bytes());
        }
    }

    pub fn supply(state: &impl StateRead, denom: &str) -> u128 {
        state
            .get(&supply_key(denom))
            .map_or(0, |b| parse_amount(&b))
    }

    /// Moves coins, creating the recipient's account on first receipt, and emits the
    /// Cosmos `coin_spent` / `coin_received` / `transfer` events.
    pub fn send(
        state: &mut impl StateWrite,
        ctx: &mut ExecCtx,
        from: &Address,
        to: &Address,
        amount: &Coins,
    ) -> Result<(), TxError> {
        for (denom, value) in amount.iter() {
            let have = Self::balance(state, from, denom);
            if have < value {
                return Err(TxError::insufficient_funds(format!(
                    "spendable balance {have}{denom} is smaller than {value}{denom}: insufficient funds"
                )));
            }
            Self::set_balance(state, from, denom, have - value);
            let to_have = Self::balance(state, to, denom);
            let to_new = to_have.checked_add(value).ok_or_else(|| {
                TxError::invalid_coins(format!("balance overflow for {denom} of {to}"))
            })?;
            Self::set_balance(state, to, denom, to_new);
        }
        AuthKeeper::get_or_create(state, to);
        ctx.emit(
            Event::new(sdk_events::COIN_SPENT)
                .attr(sdk_attrs::SPENDER, from)
                .attr(sdk_attrs::AMOUNT, amount),
        );
        ctx.emit(
            Event::new(sdk_events::COIN_RECEIVED)
                .attr(sdk_attrs::RECEIVER, to)
                .attr(sdk_attrs::AMOUNT, amount),
        );
        ctx.emit(
            Event::new(sdk_events::TRANSFER)
                .attr(sdk_attrs::RECIPIENT, to)
                .attr(sdk_attrs::SENDER, from)
                .attr(sdk_attrs::AMOUNT, amount),
        );
        Ok(())
    }

    /// Creates coins (genesis only).
    pub(super) fn mint(state: &mut impl StateWrite, address: &Address, amount: &Coins) {
        for (denom, value) in amount.iter() {
            let have = Self::balance(state, address, denom);
            Self::set_balance(state, address, denom, have + value);
            let supply = Self::supply(state, denom);
            state.put(supply_key(denom), (supply + value).to_string().into_bytes());
        }
    }
}
