use hpc_proto::virtengine::hpc::v1::GenesisState;
use hpc_store::{StateRead, StateWrite};

use super::params::{default_params, validate_params, HpcKeeper};
use crate::address::Address;
use crate::serde_util::GenesisError;

/// Default `app_state.hpc`: default params, no authority (set one with
/// `hpcd genesis set-hpc-authority` before starting a chain that needs param changes).
pub fn default_genesis() -> GenesisState {
    GenesisState {
        params: Some(default_params()),
        ..Default::default()
    }
}

/// Validates and writes `app_state.hpc`.
pub fn import_genesis(
    state: &mut impl StateWrite,
    genesis: &GenesisState,
) -> Result<(), GenesisError> {
    let params = genesis.params.clone().unwrap_or_else(default_params);
    validate_params(&params)
        .map_err(|e| GenesisError::new(format!("hpc.{}", e.field), e.reason))?;
    if !genesis.authority.is_empty() {
        genesis
            .authority
            .parse::<Address>()
            .map_err(|e| GenesisError::new("hpc.authority", e))?;
    }
    // Clusters, jobs, decisions, audit records and violations are imported by the
    // x/hpc state layer; until it exists, refuse them instead of dropping them.
    let unsupported = [
        ("hpc.clusters", genesis.clusters.is_empty()),
        ("hpc.jobs", genesis.jobs.is_empty()),
        ("hpc.decisions", genesis.decisions.is_empty()),
        ("hpc.audit_records", genesis.audit_records.is_empty()),
        ("hpc.violations", genesis.violations.is_empty()),
        (
            "hpc.provider_violation_counts",
            genesis.provider_violation_counts.is_empty(),
        ),
    ];
    if let Some((field, _)) = unsupported.iter().find(|(_, empty)| !empty) {
        return Err(GenesisError::new(
            *field,
            "importing entries is not supported by this version",
        ));
    }
    HpcKeeper::set_params(state, &params);
    HpcKeeper::set_authority(state, &genesis.authority);
    Ok(())
}

pub fn export_genesis(state: &impl StateRead) -> GenesisState {
    GenesisState {
        params: Some(HpcKeeper::params(state)),
        authority: HpcKeeper::authority(state),
        ..Default::default()
    }
}
