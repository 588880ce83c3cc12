use hpc_proto::virtengine::hpc::v1::{EnforcementMode, Params, ScoringWeights};
use hpc_store::{StateRead, StateWrite};

use crate::codec::{get_proto, put_proto};
use crate::serde_util::GenesisError;

const PARAMS: &[u8] = b"hpc/params";
const AUTHORITY: &[u8] = b"hpc/authority";

/// Upper bound of `params.max_clusters_evaluated`: the gas of one decision stays within
/// what a block can hold.
pub const MAX_CLUSTERS_EVALUATED: u32 = 10_000;

/// Basis points in one whole.
pub const BPS: u32 = 10_000;

/// The defaults of SPEC section 3 (and the seed's module parameters).
pub fn default_params() -> Params {
    Params {
        routing_enforcement_enabled: true,
        routing_enforcement_mode: EnforcementMode::Strict as i32,
        max_decision_age_blocks: 100,
        max_decision_age_seconds: 600,
        allow_provider_fallback: true,
        violation_alert_threshold: 5,
        cluster_heartbeat_timeout_seconds: 300,
        default_weights: Some(ScoringWeights {
            latency_bps: 3_000,
            price_bps: 2_500,
            reputation_bps: 3_000,
            queue_bps: 1_500,
        }),
        reference_price_per_node_hour: 10_000_000,
        audit_retention_blocks: 0,
        decision_retention_blocks: 0,
        max_candidates_per_decision: 64,
        max_batch_size: 50,
        reputation_prior_bps: 7_000,
        reputation_window_blocks: 100_000,
        max_clusters_evaluated: 256,
        max_inline_script_bytes: 16_384,
        max_workload_env_vars: 32,
        max_workload_env_bytes: 8_192,
        max_workload_args: 64,
    }
}

/// Every rule a params value must satisfy; the error names the field.
pub fn validate_params(p: &Params) -> Result<(), GenesisError> {
    let field = |name: &str| format!("params.{name}");
    match EnforcementMode::try_from(p.routing_enforcement_mode) {
        Ok(EnforcementMode::Strict | EnforcementMode::Permissive | EnforcementMode::AuditOnly) => {}
        _ => {
            return Err(GenesisError::new(
                field("routing_enforcement_mode"),
                "must be ENFORCEMENT_MODE_STRICT, ENFORCEMENT_MODE_PERMISSIVE or ENFORCEMENT_MODE_AUDIT_ONLY",
            ))
        }
    }
    if p.max_decision_age_blocks == 0 {
        return Err(GenesisError::new(
            field("max_decision_age_blocks"),
            "must be > 0",
        ));
    }
    if p.max_decision_age_seconds == 0 {
        return Err(GenesisError::new(
            field("max_decision_age_seconds"),
            "must be > 0",
        ));
    }
    if p.violation_alert_threshold == 0 {
        return Err(GenesisError::new(
            field("violation_alert_threshold"),
            "must be >= 1",
        ));
    }
    if p.cluster_heartbeat_timeout_seconds == 0 {
        return Err(GenesisError::new(
            field("cluster_heartbeat_timeout_seconds"),
            "must be > 0",
        ));
    }
    let w = p
        .default_weights
        .as_ref()
        .ok_or_else(|| GenesisError::new(field("default_weights"), "must be set"))?;
    let sum =
        w.latency_bps as u64 + w.price_bps as u64 + w.reputation_bps as u64 + w.queue_bps as u64;
    if sum != BPS as u64 {
        return Err(GenesisError::new(
            field("default_weights"),
            format!("weights must sum to {BPS} bps (1.0), got {sum}"),
        ));
    }
    if p.reference_price_per_node_hour == 0 {
        return Err(GenesisError::new(
            field("reference_price_per_node_hour"),
            "must be > 0",
        ));
    }
    if p.max_candidates_per_decision == 0 {
        return Err(GenesisError::new(
            field("max_candidates_per_decision"),
            "must be >= 1",
        ));
    }
    if !(1..=MAX_CLUSTERS_EVALUATED).contains(&p.max_clusters_evaluated) {
        return Err(GenesisError::new(
            field("max_clusters_evaluated"),
            format!("must be 1-{MAX_CLUSTERS_EVALUATED}"),
        ));
    }
    validate_workload_limits(p)?;
    if p.max_batch_size == 0 {
        return Err(GenesisError::new(field("max_batch_size"), "must be >= 1"));
    }
    if p.reputation_prior_bps > BPS {
        return Err(GenesisError::new(
            field("reputation_prior_bps"),
            format!("must be <= {BPS}"),
        ));
    }
    if p.reputation_window_blocks == 0 {
        return Err(GenesisError::new(
            field("reputation_window_blocks"),
            "must be > 0",
        ));
    }
    Ok(())
}

/// The workload size params: each at least 1 and at most what one tx may carry.
fn validate_workload_limits(p: &Params) -> Result<(), GenesisError> {
    use hpc_primitives::contract::workload as w;
    for (name, value, cap) in [
        (
            "max_inline_script_bytes",
            p.max_inline_script_bytes,
            w::MAX_INLINE_SCRIPT_BYTES_CAP,
        ),
        (
            "max_workload_env_vars",
            p.max_workload_env_vars,
            w::MAX_ENV_VARS_CAP,
        ),
        (
            "max_workload_env_bytes",
            p.max_workload_env_bytes,
            w::MAX_ENV_BYTES_CAP,
        ),
        ("max_workload_args", p.max_workload_args, w::MAX_ARGS_CAP),
    ] {
        if !(1..=cap).contains(&value) {
            return Err(GenesisError::new(
                format!("params.{name}"),
                format!("must be 1-{cap}"),
            ));
        }
    }
    Ok(())
}

/// The workload limits the params set.
pub fn workload_limits(p: &Params) -> hpc_primitives::contract::workload::Limits {
    hpc_primitives::contract::workload::Limits {
        max_inline_script_bytes: p.max_inline_script_bytes,
        max_env_vars: p.max_workload_env_vars,
        max_env_bytes: p.max_workload_env_bytes,
        max_args: p.max_workload_args,
    }
}

/// Typed access to x/hpc's params and authority.
pub struct HpcKeeper;

impl HpcKeeper {
    pub fn params(state: &impl StateRead) -> Params {
        get_proto(state, PARAMS).unwrap_or_else(default_params)
    }

    pub fn set_params(state: &mut impl StateWrite, params: &Params) {
        put_proto(state, PARAMS.to_vec(), params);
    }

    pub fn authority(state: &impl StateRead) -> String {
        state
            .get(AUTHORITY)
            .map(|b| String::from_utf8(b).expect("corrupt authority"))
            .unwrap_or_default()
    }

    pub fn set_authority(state: &mut impl StateWrite, authority: &str) {
        state.put(AUTHORITY.to_vec(), authority.as_bytes().to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_rule_names_its_field() {
        validate_params(&default_params()).unwrap();
        // (how to break the params, the field the error must name)
        type Case = (fn(&mut Params), &'static str);
        let cases: Vec<Case> = vec![
            (
                |p| p.routing_enforcement_mode = 0,
                "params.routing_enforcement_mode",
            ),
            (
                |p| p.max_decision_age_blocks = 0,
                "params.max_decision_age_blocks",
            ),
            (
                |p| p.max_decision_age_seconds = 0,
                "params.max_decision_age_seconds",
            ),
            (
                |p| p.violation_alert_threshold = 0,
                "params.violation_alert_threshold",
            ),
            (
                |p| p.cluster_heartbeat_timeout_seconds = 0,
                "params.cluster_heartbeat_timeout_seconds",
            ),
            (
                |p| p.default_weights.as_mut().unwrap().queue_bps += 1,
                "params.default_weights",
            ),
            (|p| p.default_weights = None, "params.default_weights"),
            (
                |p| p.reference_price_per_node_hour = 0,
                "params.reference_price_per_node_hour",
            ),
            (
                |p| p.max_candidates_per_decision = 0,
                "params.max_candidates_per_decision",
            ),
            (|p| p.max_batch_size = 0, "params.max_batch_size"),
            (
                |p| p.reputation_prior_bps = 10_001,
                "params.reputation_prior_bps",
            ),
            (
                |p| p.reputation_window_blocks = 0,
                "params.reputation_window_blocks",
            ),
            (
                |p| p.max_clusters_evaluated = 0,
                "params.max_clusters_evaluated",
            ),
            (
                |p| p.max_clusters_evaluated = MAX_CLUSTERS_EVALUATED + 1,
                "params.max_clusters_evaluated",
            ),
        ];
        for (mutate, field) in cases {
            let mut p = default_params();
            mutate(&mut p);
            assert_eq!(validate_params(&p).unwrap_err().field, field);
        }
    }
}
