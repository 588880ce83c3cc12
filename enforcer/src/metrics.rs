//! Prometheus metrics with the names of the specification, served on `metrics.listen`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// run, reject, request_new_decision, not_for_us
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// The violation type, e.g. cluster_unavailable.
    pub r#type: String,
}

/// Every metric the enforcer exports.
pub struct Metrics {
    registry: Registry,
    /// `routing_enforcement_total{outcome}`: decisions evaluated.
    pub enforcement_total: Family<OutcomeLabel, Counter>,
    /// `routing_violations_total{type}`: violations recorded by this enforcer.
    pub violations_total: Family<TypeLabel, Counter>,
    /// `routing_fallbacks_total`: jobs placed through a fallback decision.
    pub fallbacks_total: Counter,
    /// `routing_decision_age_seconds`: age of evaluated decisions by chain time.
    pub decision_age_seconds: Histogram,
    /// `routing_enforcement_latency_ms`: from seeing a job to its outcome.
    pub enforcement_latency_ms: Histogram,
    /// `routing_outbox_depth`: audit records and violations not yet on chain.
    pub outbox_depth: Gauge,
    /// `routing_event_lag_blocks`: committed blocks not yet processed.
    pub event_lag_blocks: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let enforcement_total = Family::<OutcomeLabel, Counter>::default();
        let violations_total = Family::<TypeLabel, Counter>::default();
        let fallbacks_total = Counter::default();
        let decision_age_seconds =
            Histogram::new([1.0, 5.0, 15.0, 60.0, 300.0, 600.0, 1800.0, 3600.0].into_iter());
        let enforcement_latency_ms =
            Histogram::new([5.0, 25.0, 100.0, 250.0, 1000.0, 5000.0, 30000.0].into_iter());
        let outbox_depth = Gauge::default();
        let event_lag_blocks = Gauge::default();
        registry.register(
            "routing_enforcement",
            "Routing decisions evaluated, by outcome",
            enforcement_total.clone(),
        );
        registry.register(
            "routing_violations",
            "Routing violations recorded, by type",
            violations_total.clone(),
        );
        registry.register(
            "routing_fallbacks",
            "Jobs placed through a fallback decision",
            fallbacks_total.clone(),
        );
        registry.register(
            "routing_decision_age_seconds",
            "Age of evaluated decisions in chain time",
            decision_age_seconds.clone(),
        );
        registry.register(
            "routing_enforcement_latency_ms",
            "Milliseconds from seeing a job to its outcome",
            enforcement_latency_ms.clone(),
        );
        registry.register(
            "routing_outbox_depth",
            "Audit records and violations waiting to reach the chain",
            outbox_depth.clone(),
        );
        registry.register(
            "routing_event_lag_blocks",
            "Committed blocks not yet processed by the enforcer",
            event_lag_blocks.clone(),
        );
        Self {
            registry,
            enforcement_total,
            violations_total,
            fallbacks_total,
            decision_age_seconds,
            enforcement_latency_ms,
            outbox_depth,
            event_lag_blocks,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_specified_metric_names() {
        let m = Metrics::new();
        m.enforcement_total
            .get_or_create(&OutcomeLabel {
                outcome: "run".into(),
            })
            .inc();
        m.violations_total
            .get_or_create(&TypeLabel {
                r#type: "cluster_unavailable".into(),
            })
            .inc();
        m.fallbacks_total.inc();
        m.decision_age_seconds.observe(12.0);
        m.enforcement_latency_ms.observe(40.0);
        m.outbox_depth.set(3);
        let text = m.render();
        for name in [
            "routing_enforcement_total{outcome=\"run\"} 1",
            "routing_violations_total{type=\"cluster_unavailable\"} 1",
            "routing_fallbacks_total 1",
            "routing_decision_age_seconds_count 1",
            "routing_enforcement_latency_ms_count 1",
            "routing_outbox_depth 3",
            "routing_event_lag_blocks 0",
        ] {
            assert!(text.contains(name), "missing {name:?} in\n{text}");
        }
    }
}
