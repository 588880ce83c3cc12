//! Cluster reputation (SPEC section 4.3; the seed `004_*` reliability idea, made deterministic).
//!
//! A pure integer function: no floats, no clock, no randomness, no panics on any input.
//! Every division floors (rounds towards zero on non-negative integers).
//!
//! # Formula
//!
//! All quantities are basis points (`BPS` = 10 000 = 100 %).
//!
//! 1. **Prior.** `p = min(prior_bps, 10 000)` (`params.reputation_prior_bps`, default 7 000):
//!    a newcomer starts below a long clean record.
//! 2. **Clean completions** raise it towards 10 000, halfway after [`COMPLETION_HALF_WAY`] jobs:
//!    `base = p + floor((10 000 − p) × c / (c + K))` with `c = completed_jobs`,
//!    `K = COMPLETION_HALF_WAY = 20` (computed in `u128`, so no overflow for any `u64` count).
//! 3. **Violations** within the window lower it. A violation counts iff
//!    `current_height − created_height < window_blocks` (saturating subtraction, so a
//!    violation "from the future" has age 0 and counts; `window_blocks = 0` counts nothing):
//!    it stops counting exactly `window_blocks` blocks after it was recorded. Each counting
//!    violation costs
//!    `penalty = floor(s × PENALTY_PER_SEVERITY_BPS / (1 + floor(total_nodes / SIZE_DIVISOR_NODES)))`
//!    with `s = clamp(severity, 1, 5)`, `PENALTY_PER_SEVERITY_BPS = 400`,
//!    `SIZE_DIVISOR_NODES = 16` — it grows with severity and shrinks with cluster size (one
//!    incident weighs less on a big cluster, as the seed normalises by executor count).
//!    A resolved violation costs `floor(penalty / RESOLVED_DIVISOR)` with `RESOLVED_DIVISOR = 4`.
//! 4. **Result** `= clamp(base − Σ penalties, 0, 10 000)` (saturating).
//!
//! Monotonic in each input (tested over ranges): more completions never lower it; more
//! violations, higher severity or a smaller cluster never raise it; resolving never lowers it.
//!
//! # Worked example (asserted by `worked_example_from_the_docs`)
//!
//! prior 7 000, 7 clean completions, 40 nodes, height 1 000, window 500, violations:
//! severity 5 unresolved at height 950, severity 2 resolved at height 900, severity 4 at
//! height 400 (age 600 ≥ 500: outside the window).
//!
//! - base = 7 000 + floor(3 000 × 7 / 27) = 7 000 + floor(777.7…) = **7 777**
//! - size divisor = 1 + floor(40 / 16) = 3
//! - severity 5: floor(5 × 400 / 3) = floor(666.6…) = 666
//! - severity 2 resolved: floor(floor(2 × 400 / 3) / 4) = floor(266 / 4) = 66
//! - severity 4: 0 (expired)
//! - reputation = 7 777 − 732 = **7 045** bps

use hpc_proto::virtengine::hpc::v1::{Cluster, Params, RoutingViolation};

use super::params::BPS;

/// Clean completions after which a cluster is halfway from the prior to 10 000 bps.
pub const COMPLETION_HALF_WAY: u64 = 20;
/// Penalty per severity point of one unresolved violation on a cluster of < 16 nodes.
pub const PENALTY_PER_SEVERITY_BPS: u64 = 400;
/// Nodes per step of the size divisor `1 + total_nodes / SIZE_DIVISOR_NODES`.
pub const SIZE_DIVISOR_NODES: u64 = 16;
/// A resolved violation costs `1 / RESOLVED_DIVISOR` of its penalty.
pub const RESOLVED_DIVISOR: u64 = 4;
/// Lowest severity counted (smaller values are raised to it).
pub const MIN_SEVERITY: u32 = 1;
/// Highest severity counted (larger values are lowered to it).
pub const MAX_SEVERITY: u32 = 5;

/// What reputation needs to know about one violation of the cluster's provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViolationInput {
    /// Severity, 1 (lowest) to 5 (highest); clamped into that range.
    pub severity: u32,
    /// Block height at which the violation was stored.
    pub created_height: u64,
    /// Whether the authority resolved it.
    pub resolved: bool,
}

impl From<&RoutingViolation> for ViolationInput {
    fn from(v: &RoutingViolation) -> Self {
        ViolationInput {
            severity: v.severity,
            created_height: v.created_height,
            resolved: v.resolved,
        }
    }
}

/// Inputs of [`reputation_bps`]; everything comes from chain state.
#[derive(Clone, Copy, Debug)]
pub struct ReputationInput<'a> {
    /// `params.reputation_prior_bps` (clamped to 10 000).
    pub prior_bps: u32,
    /// Jobs the cluster completed cleanly.
    pub completed_jobs: u64,
    /// Cluster size in nodes.
    pub total_nodes: u32,
    /// Height of the block being executed.
    pub current_height: u64,
    /// `params.reputation_window_blocks`.
    pub window_blocks: u64,
    /// The violations to weigh (any order; the result does not depend on it).
    pub violations: &'a [ViolationInput],
}

/// Most violations weighed for one cluster: a cluster with more recorded against it (and
/// not yet pruned) has reputation 0, so the work of a refresh stays bounded.
pub const MAX_VIOLATIONS_WEIGHED: usize = 1_000;

/// Penalty in bps of one violation that is inside the window (see the module docs).
pub fn penalty_bps(severity: u32, total_nodes: u32, resolved: bool) -> u64 {
    let s = u64::from(severity.clamp(MIN_SEVERITY, MAX_SEVERITY));
    let divisor = 1 + u64::from(total_nodes) / SIZE_DIVISOR_NODES;
    let full = s * PENALTY_PER_SEVERITY_BPS / divisor;
    if resolved {
        full / RESOLVED_DIVISOR
    } else {
        full
    }
}

/// Whether a violation recorded at `created_height` still counts at `current_height`.
pub fn in_window(created_height: u64, current_height: u64, window_blocks: u64) -> bool {
    current_height.saturating_sub(created_height) < window_blocks
}

/// Reputation before violations: the prior raised towards 10 000 by clean completions.
pub fn completion_base_bps(prior_bps: u32, completed_jobs: u64) -> u32 {
    let bps = u128::from(BPS);
    let p = u128::from(prior_bps.min(BPS));
    let c = u128::from(completed_jobs);
    // c + K ≥ K > 0, and (10 000 − p) × c < 2^14 × 2^64: no overflow in u128.
    let raise = (bps - p) * c / (c + u128::from(COMPLETION_HALF_WAY));
    // raise ≤ 10 000 − p, so the sum is ≤ 10 000 and fits in u32.
    u32::try_from(p + raise).unwrap_or(BPS).min(BPS)
}

/// The cluster's reputation in bps, `0..=10 000` (see the module docs for the formula).
pub fn reputation_bps(input: &ReputationInput) -> u32 {
    let base = u64::from(completion_base_bps(input.prior_bps, input.completed_jobs));
    let penalty = input
        .violations
        .iter()
        .filter(|v| in_window(v.created_height, input.current_height, input.window_blocks))
        .fold(0u64, |acc, v| {
            acc.saturating_add(penalty_bps(v.severity, input.total_nodes, v.resolved))
        });
    // base ≤ 10 000, so the difference fits in u32.
    u32::try_from(base.saturating_sub(penalty))
        .unwrap_or(0)
        .min(BPS)
}

/// Reputation of `cluster` at `current_height` from chain state: the prior and window from
/// `params`, the cluster's `completed_jobs` and `total_nodes`, and `violations` (the
/// violations recorded against this cluster, any order).
pub fn of_cluster(
    cluster: &Cluster,
    violations: &[RoutingViolation],
    params: &Params,
    current_height: u64,
) -> u32 {
    let violations: Vec<ViolationInput> = violations.iter().map(ViolationInput::from).collect();
    reputation_bps(&ReputationInput {
        prior_bps: params.reputation_prior_bps,
        completed_jobs: cluster.completed_jobs,
        total_nodes: cluster.total_nodes,
        current_height,
        window_blocks: params.reputation_window_blocks,
        violations: &violations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(severity: u32, created_height: u64, resolved: bool) -> ViolationInput {
        ViolationInput {
            severity,
            created_height,
            resolved,
        }
    }

    fn rep(prior: u32, completed: u64, nodes: u32, violations: &[ViolationInput]) -> u32 {
        reputation_bps(&ReputationInput {
            prior_bps: prior,
            completed_jobs: completed,
            total_nodes: nodes,
            current_height: 1_000,
            window_blocks: 500,
            violations,
        })
    }

    #[test]
    fn worked_example_from_the_docs() {
        let violations = [v(5, 950, false), v(2, 900, true), v(4, 400, false)];
        assert_eq!(completion_base_bps(7_000, 7), 7_777);
        assert_eq!(penalty_bps(5, 40, false), 666);
        assert_eq!(penalty_bps(2, 40, true), 66);
        assert!(!in_window(400, 1_000, 500));
        assert_eq!(rep(7_000, 7, 40, &violations), 7_045);
    }

    #[test]
    fn newcomer_starts_at_the_prior_below_a_long_clean_record() {
        assert_eq!(rep(7_000, 0, 8, &[]), 7_000);
        // Halfway after K completions.
        assert_eq!(rep(7_000, COMPLETION_HALF_WAY, 8, &[]), 8_500);
        let long = rep(7_000, 1_000, 8, &[]);
        assert!(long > 7_000, "{long}");
        assert_eq!(long, 7_000 + 3_000 * 1_000 / 1_020);
        // Approaches but a finite record below ~2^63 jobs never needs more than 10 000.
        assert_eq!(rep(7_000, u64::MAX, 8, &[]), 9_999);
        assert_eq!(rep(10_000, 0, 8, &[]), 10_000);
        // A prior above 10 000 (invalid params) is clamped.
        assert_eq!(rep(u32::MAX, 0, 8, &[]), 10_000);
    }

    #[test]
    fn window_edges_and_future_heights() {
        // Age 499 counts, age 500 does not (window 500).
        assert_eq!(rep(7_000, 0, 0, &[v(1, 501, false)]), 6_600);
        assert_eq!(rep(7_000, 0, 0, &[v(1, 500, false)]), 7_000);
        // Created "after" the current height: age 0, counts.
        assert_eq!(rep(7_000, 0, 0, &[v(1, 5_000, false)]), 6_600);
        // Window 0 counts nothing.
        let input = ReputationInput {
            prior_bps: 7_000,
            completed_jobs: 0,
            total_nodes: 0,
            current_height: 10,
            window_blocks: 0,
            violations: &[v(5, 10, false)],
        };
        assert_eq!(reputation_bps(&input), 7_000);
    }

    #[test]
    fn penalties_grow_with_severity_shrink_with_size_and_clamp() {
        let cases: &[(u32, u32, bool, u64)] = &[
            (1, 0, false, 400),
            (5, 0, false, 2_000),
            (5, 15, false, 2_000),
            (5, 16, false, 1_000),
            (5, 64, false, 400),
            (5, 64, true, 100),
            (0, 0, false, 400),            // severity 0 is raised to 1
            (9, 0, false, 2_000),          // severity 9 is lowered to 5
            (u32::MAX, u32::MAX, true, 0), // huge cluster: divisor ~2^28
        ];
        for &(sev, nodes, resolved, want) in cases {
            assert_eq!(
                penalty_bps(sev, nodes, resolved),
                want,
                "sev {sev} nodes {nodes} resolved {resolved}"
            );
        }
        // Floors at zero, never wraps.
        let many = vec![v(5, 999, false); 10];
        assert_eq!(rep(7_000, 0, 0, &many), 0);
        let lots = vec![v(5, 999, false); 10_000];
        assert_eq!(rep(10_000, u64::MAX, 0, &lots), 0);
    }

    #[test]
    fn order_of_violations_does_not_matter() {
        let mut vs = vec![
            v(5, 950, false),
            v(2, 900, true),
            v(4, 400, false),
            v(3, 999, false),
        ];
        let a = rep(7_000, 7, 40, &vs);
        vs.reverse();
        assert_eq!(rep(7_000, 7, 40, &vs), a);
    }

    /// Deterministic LCG (Knuth MMIX constants) for property loops.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_violations(g: &mut Lcg, n: usize) -> Vec<ViolationInput> {
        (0..n)
            .map(|_| v(g.below(7) as u32, g.below(1_200), g.below(2) == 1))
            .collect()
    }

    #[test]
    fn property_bounded_and_monotonic_in_completions() {
        let priors = [0, 1, 5_000, 7_000, 9_999, 10_000, 20_000];
        let mut g = Lcg(1);
        for &prior in &priors {
            for nodes in [0u32, 1, 15, 16, 40, 1_000] {
                let n = g.below(4) as usize;
                let vs = random_violations(&mut g, n);
                let mut last = 0;
                for c in 0..300u64 {
                    let r = rep(prior, c, nodes, &vs);
                    assert!(r <= BPS);
                    assert!(r >= last, "completions lowered it: prior {prior} c {c}");
                    last = r;
                }
                for c in [u64::MAX - 1, u64::MAX] {
                    let r = rep(prior, c, nodes, &vs);
                    assert!(r <= BPS && r >= last);
                    last = r;
                }
            }
        }
    }

    #[test]
    fn property_violations_never_raise_it() {
        let mut g = Lcg(42);
        for round in 0..2_000u64 {
            let prior = g.below(10_001) as u32;
            let completed = g.below(500);
            let nodes = g.below(200) as u32;
            let n = g.below(6) as usize;
            let vs = random_violations(&mut g, n);
            let r = rep(prior, completed, nodes, &vs);
            assert!(r <= BPS);
            assert!(r <= rep(prior, completed, nodes, &[]) || vs.is_empty());

            // Adding one more violation never raises it.
            let mut more = vs.clone();
            more.push(random_violations(&mut g, 1)[0]);
            assert!(rep(prior, completed, nodes, &more) <= r, "round {round}");

            if let Some(i) = (!vs.is_empty()).then(|| g.below(n as u64) as usize) {
                // Worse severity never raises it.
                let mut worse = vs.clone();
                worse[i].severity = worse[i].severity.saturating_add(1);
                assert!(rep(prior, completed, nodes, &worse) <= r, "round {round}");
                // Resolving never lowers it.
                let mut resolved = vs.clone();
                resolved[i].resolved = true;
                assert!(
                    rep(prior, completed, nodes, &resolved) >= r,
                    "round {round}"
                );
                // Un-resolving never raises it.
                let mut reopened = vs.clone();
                reopened[i].resolved = false;
                assert!(
                    rep(prior, completed, nodes, &reopened) <= r,
                    "round {round}"
                );
            }

            // A bigger cluster never lowers it.
            assert!(rep(prior, completed, nodes + 1, &vs) >= r, "round {round}");
            assert!(rep(prior, completed, nodes.saturating_mul(4), &vs) >= r);
            // A higher prior never lowers it.
            assert!(rep(prior.saturating_add(1), completed, nodes, &vs) >= r);
        }
    }

    #[test]
    fn property_each_severity_and_size_step() {
        for nodes in 0..300u32 {
            for resolved in [false, true] {
                let mut last = u64::MAX;
                for sev in 0..=7u32 {
                    let p = penalty_bps(sev, nodes, resolved);
                    let next_size = penalty_bps(sev, nodes + 1, resolved);
                    assert!(next_size <= p);
                    assert!(penalty_bps(sev, nodes, true) <= penalty_bps(sev, nodes, false));
                    if last != u64::MAX {
                        assert!(p >= last);
                    }
                    last = p;
                }
            }
        }
    }

    #[test]
    fn of_cluster_reads_params_and_cluster() {
        let params = crate::hpc::default_params();
        let cluster = Cluster {
            completed_jobs: 7,
            total_nodes: 40,
            ..Default::default()
        };
        let rv = |severity, created_height, resolved| RoutingViolation {
            severity,
            created_height,
            resolved,
            ..Default::default()
        };
        // Default window 100 000: only the violation at height 0 is outside at 100 000.
        let vs = [rv(5, 99_950, false), rv(2, 99_900, true), rv(4, 0, false)];
        assert_eq!(of_cluster(&cluster, &vs, &params, 100_000), 7_045);
        assert_eq!(of_cluster(&Cluster::default(), &[], &params, 0), 7_000);
    }

    #[test]
    fn from_routing_violation() {
        let rv = RoutingViolation {
            severity: 4,
            created_height: 77,
            resolved: true,
            ..Default::default()
        };
        assert_eq!(ViolationInput::from(&rv), v(4, 77, true));
    }
}
