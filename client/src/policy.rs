//! Placement policy files in the shape of the policy engine's examples:
//!
//! ```json
//! { "name": "low-latency", "mode": "enforce",
//!   "max_latency_ms": 100, "max_jitter_ms": 20,
//!   "scoring": { "latency_weight": 0.6, "price_weight": 0.1,
//!                "reputation_weight": 0.2, "queue_weight": 0.1 } }
//! ```
//!
//! Limits may also sit under `"rules"`. Weights and `min_reputation` are decimals in
//! [0, 1], converted exactly (no floating point) to basis points; weights must sum to 1.

use hpc_primitives::Dec;
use hpc_proto::virtengine::hpc::v1::{PlacementPolicy, PolicyMode, ScoringWeights};
use serde::Deserialize;
use serde_json::Number;

use crate::error::{ClientError, Result};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    max_latency_ms: Option<u32>,
    max_jitter_ms: Option<u32>,
    max_price_per_node_hour: Option<u64>,
    /// 0..1
    min_reputation: Option<Number>,
    min_reputation_bps: Option<u32>,
    max_queue_depth: Option<u32>,
    max_packet_loss_bps: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scoring {
    latency_weight: Number,
    price_weight: Number,
    reputation_weight: Number,
    queue_weight: Number,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    rules: Option<Limits>,
    #[serde(flatten)]
    limits: Limits,
    #[serde(default)]
    scoring: Option<Scoring>,
}

/// A decimal in [0, 1] as basis points, exactly.
fn to_bps(field: &str, n: &Number) -> Result<u32> {
    let d: Dec = n
        .to_string()
        .parse()
        .map_err(|e| ClientError::invalid(field, e))?;
    let bps = d.mul_ceil(10_000);
    if d.mul_ceil(10_000) != d.mul_floor(10_000) {
        return Err(ClientError::invalid(
            field,
            format!("{n} has more precision than a basis point (0.0001)"),
        ));
    }
    if bps > 10_000 {
        return Err(ClientError::invalid(
            field,
            format!("{n} must be between 0 and 1"),
        ));
    }
    Ok(bps as u32)
}

/// Parses a policy file's text into the on-chain `PlacementPolicy`.
pub fn parse_policy(text: &str) -> Result<PlacementPolicy> {
    let file: PolicyFile =
        serde_json::from_str(text).map_err(|e| ClientError::invalid("policy file", e))?;
    let _ = (&file.name, &file.description);
    let mode = match file.mode.as_deref() {
        None | Some("enforce") => PolicyMode::Enforce,
        Some("permissive") => PolicyMode::Permissive,
        Some(other) => {
            return Err(ClientError::invalid(
                "policy file: mode",
                format!("{other:?} is not \"enforce\" or \"permissive\""),
            ))
        }
    };
    let nested = file.rules.unwrap_or_default();
    let top = file.limits;
    macro_rules! pick {
        ($f:ident) => {
            match (top.$f.clone(), nested.$f.clone()) {
                (Some(_), Some(_)) => {
                    return Err(ClientError::invalid(
                        concat!("policy file: ", stringify!($f)),
                        "given both at the top level and under \"rules\"",
                    ))
                }
                (a, b) => a.or(b),
            }
        };
    }
    let min_reputation_bps = match (pick!(min_reputation), pick!(min_reputation_bps)) {
        (Some(_), Some(_)) => {
            return Err(ClientError::invalid(
                "policy file: min_reputation",
                "give min_reputation or min_reputation_bps, not both",
            ))
        }
        (Some(dec), None) => Some(to_bps("policy file: min_reputation", &dec)?),
        (None, bps) => bps,
    };
    let weights = match file.scoring {
        None => None,
        Some(s) => {
            let w = ScoringWeights {
                latency_bps: to_bps("policy file: scoring.latency_weight", &s.latency_weight)?,
                price_bps: to_bps("policy file: scoring.price_weight", &s.price_weight)?,
                reputation_bps: to_bps(
                    "policy file: scoring.reputation_weight",
                    &s.reputation_weight,
                )?,
                queue_bps: to_bps("policy file: scoring.queue_weight", &s.queue_weight)?,
            };
            let sum = w.latency_bps + w.price_bps + w.reputation_bps + w.queue_bps;
            if sum != 10_000 {
                return Err(ClientError::invalid(
                    "policy file: scoring",
                    format!("weights must sum to 1 (10000 bps), they sum to {sum} bps"),
                ));
            }
            Some(w)
        }
    };
    Ok(PlacementPolicy {
        mode: mode as i32,
        max_latency_ms: pick!(max_latency_ms),
        max_jitter_ms: pick!(max_jitter_ms),
        max_price_per_node_hour: pick!(max_price_per_node_hour),
        min_reputation_bps,
        max_queue_depth: pick!(max_queue_depth),
        max_packet_loss_bps: pick!(max_packet_loss_bps),
        weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_shaped_policy_converts_exactly() {
        let p = parse_policy(r#"{"name":"low-latency","max_latency_ms":100,"max_jitter_ms":20,
            "scoring":{"latency_weight":0.6,"price_weight":0.1,"reputation_weight":0.2,"queue_weight":0.1}}"#).unwrap();
        assert_eq!(p.mode, PolicyMode::Enforce as i32);
        assert_eq!(p.max_latency_ms, Some(100));
        assert_eq!(p.max_price_per_node_hour, None);
        assert_eq!(
            p.weights.unwrap(),
            ScoringWeights {
                latency_bps: 6000,
                price_bps: 1000,
                reputation_bps: 2000,
                queue_bps: 1000
            }
        );
        let p = parse_policy(r#"{"mode":"permissive","rules":{"min_reputation":0.9}}"#).unwrap();
        assert_eq!(p.mode, PolicyMode::Permissive as i32);
        assert_eq!(p.min_reputation_bps, Some(9000));
    }

    #[test]
    fn bad_policies_name_the_field() {
        let cases = [
            (
                r#"{"scoring":{"latency_weight":0.6,"price_weight":0.6,"reputation_weight":0,"queue_weight":0}}"#,
                "scoring",
            ),
            (r#"{"mode":"strict"}"#, "mode"),
            (
                r#"{"max_latency_ms":100,"rules":{"max_latency_ms":50}}"#,
                "max_latency_ms",
            ),
            (r#"{"min_reputation":1.5}"#, "min_reputation"),
            (r#"{"min_reputation":0.00001}"#, "min_reputation"),
            (r#"{"max_price_per_gb":0.05}"#, "max_price_per_gb"),
        ];
        for (text, field) in cases {
            let err = parse_policy(text).unwrap_err().to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
    }

    #[test]
    fn shipped_example_policies_parse() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/policies");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let policy = parse_policy(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            names.push((
                path.file_stem().unwrap().to_string_lossy().to_string(),
                policy,
            ));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let find = |n: &str| {
            names
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, p)| *p)
                .unwrap()
        };
        assert_eq!(names.len(), 5);
        assert_eq!(find("permissive").mode, PolicyMode::Permissive as i32);
        assert_eq!(find("high-trust").min_reputation_bps, Some(9000));
        assert_eq!(find("cost-optimized").weights.unwrap().price_bps, 7000);
    }
}
