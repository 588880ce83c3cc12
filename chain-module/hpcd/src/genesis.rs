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

/// Runs the genesis through InitChain on scratch state, so a bad file is reported (with the
/// field) before any node starts on it.
pub fn check(path: &Path, app: &hpc_state::App) -> anyhow::Result<()> {
    let file = GenesisFile::load(path)?;
    let chain_id = file.doc["chain_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let block = &file.doc["consensus_params"]["block"];
    let number = |v: &Value| {
        v.as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .or_else(|| v.as_i64())
    };
    let limits = hpc_state::consensus::BlockLimits {
        max_bytes: number(&block["max_bytes"]).unwrap_or(-1),
        max_gas: number(&block["max_gas"]).unwrap_or(-1),
    };
    let app_state = match file.doc.get("app_state") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::to_vec(v)?,
    };
    let mut scratch = std::collections::BTreeMap::new();
    app.init_chain(&mut scratch, &chain_id, &limits, &app_state)
        .map_err(|e| anyhow!("{}: {e}", path.display()))
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
