//! The genesis file (CometBFT's `genesis.json` with our `app_state`) and the commands that
//! edit or produce it.

use std::path::Path;

use anyhow::{anyhow, Context};
use hpc_state::address::Address;
use hpc_state::auth::GenesisAccount;
use hpc_state::bank::{GenesisBalance, JsonCoin};
use hpc_state::coins::Coins;
use hpc_state::AppState;
use serde_json::Value;

pub struct GenesisFile {
    pub doc: Value,
}

impl GenesisFile {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {} (run `hpcd init` first)", path.display()))?;
        let doc = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{}: invalid JSON: {e}", path.display()))?;
        Ok(Self { doc })
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(&self.doc)? + "\n";
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
    }

    pub fn app_state(&self) -> anyhow::Result<AppState> {
        match self.doc.get("app_state") {
            None | Some(Value::Null) => Ok(AppState::default()),
            Some(v) => {
                serde_json::from_value(v.clone()).map_err(|e| anyhow!("genesis app_state: {e}"))
            }
        }
    }

    pub fn set_app_state(&mut self, state: &AppState) -> anyhow::Result<()> {
        self.doc["app_state"] = serde_json::to_value(state)?;
        Ok(())
    }
}

/// Adds an account with coins (merging into an existing balance).
pub fn add_account(state: &mut AppState, address: Address, coins: &Coins) -> anyhow::Result<()> {
    let addr = address.to_string();
    if !state.auth.accounts.iter().any(|a| a.address == addr) {
        let next = state
            .auth
            .accounts
            .iter()
            .map(|a| a.account_number + 1)
            .max()
            .unwrap_or(0);
        state.auth.accounts.push(GenesisAccount {
            type_url: "/cosmos.auth.v1beta1.BaseAccount".into(),
            address: addr.clone(),
            pub_key: None,
            account_number: next,
            sequence: 0,
        });
    }
    let to_json = |c: &Coins| -> Vec<JsonCoin> {
        c.to_proto()
            .into_iter()
            .map(|c| JsonCoin {
                denom: c.denom,
                amount: c.amount,
            })
            .collect()
    };
    match state.bank.balances.iter_mut().find(|b| b.address == addr) {
        Some(existing) => {
            let proto: Vec<_> = existing
                .coins
                .iter()
                .map(|c| cosmos_sdk_proto::cosmos::base::v1beta1::Coin {
                    denom: c.denom.clone(),
                    amount: c.amount.clone(),
                })
                .collect();
            let current = Coins::from_proto(&proto, "coins").map_err(|e| anyhow!(e))?;
            existing.coins = to_json(&current.plus(coins));
        }
        None => state.bank.balances.push(GenesisBalance {
            address: addr,
            coins: to_json(coins),
        }),
    }
    // The declared supply is optional; drop a stale one rather than contradict balances.
    state.bank.supply.clear();
    Ok(())
}
