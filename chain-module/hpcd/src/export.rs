//! `hpcd export`: the state at a height as a genesis file that re-imports to the same
//! app hash.

use anyhow::Context;
use hpc_state::App;
use hpc_store::Storage;
use serde_json::{json, Value};

use crate::config::Home;
use crate::genesis::GenesisFile;

pub struct Exported {
    pub genesis: Value,
    pub height: u64,
    pub app_hash: [u8; 32],
}

pub fn export(home: &Home, height: Option<u64>) -> anyhow::Result<Exported> {
    let storage = Storage::open(&home.state_db()).with_context(|| {
        format!(
            "opening {} (stop the node first: the state database is locked while hpcd runs)",
            home.state_db().display()
        )
    })?;
    let snapshot = storage.snapshot(height).with_context(|| match height {
        Some(h) => format!("--height {h}: no committed state at that height"),
        None => "nothing to export: the chain has not committed a block yet".to_string(),
    })?;
    let height = snapshot
        .version()
        .expect("committed snapshots have a version");
    let app_hash = storage.root_hash(height)?;
    let app_state = App::default().export(&snapshot);

    let mut genesis = GenesisFile::load(&home.genesis())?;
    genesis.set_app_state(&app_state)?;
    // The exported chain continues after the exported height.
    genesis.doc["initial_height"] = json!((height + 1).to_string());
    Ok(Exported {
        genesis: genesis.doc,
        height,
        app_hash,
    })
}
