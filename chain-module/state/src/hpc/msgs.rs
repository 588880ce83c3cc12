//! x/hpc messages: decoding, the signer rule and the stateless checks (`ValidateBasic`).
//! Every error names the field.

use cosmos_sdk_proto::Any;
use hpc_primitives::contract::ids::{self, MAX_ID_LEN};
use hpc_primitives::contract::{reason_codes, workload};
use hpc_proto::virtengine::hpc::v1::{
    AuditStatus, ClusterHealth, ClusterState, EnforcementMode, JobState, MsgCancelJob,
    MsgDeregisterCluster, MsgRecordRoutingAudit, MsgRegisterCluster, MsgReportJobStatus,
    MsgReportRoutingViolation, MsgRequestReschedule, MsgResolveRoutingViolation, MsgSubmitJob,
    MsgUpdateClusterStatus, MsgUpdateParams, PlacementPolicy, PolicyMode, RescheduleKind,
    ViolationType,
};
use prost::{Message, Name};

use super::params::BPS;
use crate::address::Address;
use crate::errors::TxError;

/// Prefix of every id the chain assigns (`hpc-job-N`, `hpc-decision-N`,
/// `hpc-violation-N`); client-chosen ids may not use it.
pub use hpc_primitives::contract::ids::CHAIN_ID_PREFIX;

/// Hard cap on entries in one batch message, whatever `params.max_batch_size` says.
pub const MAX_BATCH_ENTRIES: usize = 1_000;
/// Longest free-text field (reasons, details, resolutions, status messages).
pub use hpc_primitives::contract::limits::MAX_TEXT_LEN;

#[derive(Clone, Debug, PartialEq)]
pub enum HpcMsg {
    RegisterCluster(MsgRegisterCluster),
    UpdateClusterStatus(MsgUpdateClusterStatus),
    DeregisterCluster(MsgDeregisterCluster),
    SubmitJob(MsgSubmitJob),
    CancelJob(MsgCancelJob),
    RequestReschedule(MsgRequestReschedule),
    RecordRoutingAudit(MsgRecordRoutingAudit),
    ReportRoutingViolation(MsgReportRoutingViolation),
    ResolveRoutingViolation(MsgResolveRoutingViolation),
    ReportJobStatus(MsgReportJobStatus),
    UpdateParams(MsgUpdateParams),
}

fn decode<M: Message + Default>(any: &Any) -> Result<M, TxError> {
    M::decode(any.value.as_slice())
        .map_err(|e| TxError::tx_decode(format!("cannot decode {}: {e}", any.type_url)))
}

fn is_url<M: Name>(url: &str) -> bool {
    url.strip_prefix('/') == Some(M::full_name().as_str())
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> TxError {
    TxError::invalid_request(format!("{field}: {reason}"))
}

fn address(field: &str, value: &str) -> Result<Address, TxError> {
    value
        .parse()
        .map_err(|e| TxError::invalid_address(format!("{field}: {e}")))
}

/// `[a-z0-9-]{3,64}`, the cluster id rule.
pub fn validate_cluster_id(field: &str, id: &str) -> Result<(), TxError> {
    if !(3..=64).contains(&id.len())
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            field,
            format!("{} must be 3-64 characters of a-z, 0-9 and '-'", quoted(id)),
        ));
    }
    Ok(())
}

/// Most clusters one reschedule (or simulation) may exclude.
pub const MAX_EXCLUDED_CLUSTERS: usize = 64;

pub fn validate_excluded_clusters(ids: &[String]) -> Result<(), TxError> {
    if ids.len() > MAX_EXCLUDED_CLUSTERS {
        return Err(invalid(
            "excluded_cluster_ids",
            format!("more than {MAX_EXCLUDED_CLUSTERS} entries"),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        validate_cluster_id(&format!("excluded_cluster_ids[{i}]"), id)?;
    }
    Ok(())
}

/// An id as quoted in an error: at most 40 characters, so an oversized one is not echoed.
pub fn quoted(id: &str) -> String {
    match id.char_indices().nth(40) {
        Some((end, _)) => format!("{:?}… ({} bytes)", &id[..end], id.len()),
        None => format!("{id:?}"),
    }
}

/// Ids chosen by clients (record and violation ids): 1-128 of `[A-Za-z0-9._:-]`.
pub fn validate_id(field: &str, id: &str) -> Result<(), TxError> {
    if !ids::is_valid(id) {
        return Err(invalid(
            field,
            format!(
                "{} must be 1-{MAX_ID_LEN} characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'",
                quoted(id)
            ),
        ));
    }
    Ok(())
}

/// A client-chosen record or violation id: valid, and not in another address's namespace
/// (`<address>:<local>` ids may only be used by that address, the message's signer).
pub fn validate_own_id(field: &str, id: &str, signer: &str) -> Result<(), TxError> {
    validate_id(field, id)?;
    if !ids::usable_by(id, signer) {
        return Err(invalid(
            field,
            format!(
                "{} is in the namespace of {}, not of the signer {signer}",
                quoted(id),
                ids::namespace(id).unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

fn text(field: &str, value: &str, required: bool) -> Result<(), TxError> {
    if required && value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.len() > MAX_TEXT_LEN {
        return Err(invalid(field, format!("longer than {MAX_TEXT_LEN} bytes")));
    }
    Ok(())
}

fn bps(field: &str, value: u32) -> Result<(), TxError> {
    if value > BPS {
        return Err(invalid(
            field,
            format!("{value} exceeds {BPS} basis points"),
        ));
    }
    Ok(())
}

fn batch(field: &str, len: usize) -> Result<(), TxError> {
    if len == 0 {
        return Err(invalid(field, "must contain at least one entry"));
    }
    if len > MAX_BATCH_ENTRIES {
        return Err(invalid(
            field,
            format!("{len} entries exceed the hard cap of {MAX_BATCH_ENTRIES}"),
        ));
    }
    Ok(())
}

/// A job's workload against `limits` (the hard caps in ValidateBasic, the params' limits
/// when the message executes).
pub fn validate_workload(
    w: Option<&hpc_proto::virtengine::hpc::v1::JobWorkload>,
    limits: &workload::Limits,
) -> Result<(), TxError> {
    let w = w.ok_or_else(|| invalid("workload", "must be set"))?;
    workload::validate(w, limits).map_err(|e| invalid(&e.field, e.reason))
}

/// Policy checks shared by SubmitJob and SimulateSchedule.
pub fn validate_policy(policy: &PlacementPolicy) -> Result<(), TxError> {
    if PolicyMode::try_from(policy.mode).is_err() {
        return Err(invalid(
            "policy.mode",
            format!("unknown mode {}", policy.mode),
        ));
    }
    if let Some(w) = &policy.weights {
        let sum = w.latency_bps as u64
            + w.price_bps as u64
            + w.reputation_bps as u64
            + w.queue_bps as u64;
        if sum != BPS as u64 {
            return Err(invalid(
                "policy.weights",
                format!("must sum to {BPS} bps (1.0), got {sum}"),
            ));
        }
    }
    if let Some(v) = policy.min_reputation_bps {
        bps("policy.min_reputation_bps", v)?;
    }
    if let Some(v) = policy.max_packet_loss_bps {
        bps("policy.max_packet_loss_bps", v)?;
    }
    Ok(())
}

pub fn validate_requirements(
    req: Option<&hpc_proto::virtengine::hpc::v1::JobRequirements>,
) -> Result<(), TxError> {
    let req = req.ok_or_else(|| invalid("requirements", "must be set"))?;
    if req.nodes == 0 {
        return Err(invalid("requirements.nodes", "must be at least 1"));
    }
    if req.max_runtime_seconds == 0 {
        return Err(invalid("requirements.max_runtime_seconds", "must be > 0"));
    }
    if req.gpu_type.len() > 64 {
        return Err(invalid(
            "requirements.gpu_type",
            "longer than 64 characters",
        ));
    }
    if req.allowed_regions.len() > 64 {
        return Err(invalid(
            "requirements.allowed_regions",
            "more than 64 regions",
        ));
    }
    for (i, region) in req.allowed_regions.iter().enumerate() {
        if region.is_empty() || region.len() > 64 {
            return Err(invalid(
                &format!("requirements.allowed_regions[{i}]"),
                "must be 1-64 characters",
            ));
        }
    }
    Ok(())
}

impl HpcMsg {
    /// Decodes an `Any` if it is an x/hpc message type.
    pub fn decode(any: &Any) -> Option<Result<Self, TxError>> {
        let url = any.type_url.as_str();
        macro_rules! try_type {
            ($($variant:ident($ty:ty)),*) => {
                $(if is_url::<$ty>(url) {
                    return Some(decode::<$ty>(any).map(HpcMsg::$variant));
                })*
            };
        }
        try_type!(
            RegisterCluster(MsgRegisterCluster),
            UpdateClusterStatus(MsgUpdateClusterStatus),
            DeregisterCluster(MsgDeregisterCluster),
            SubmitJob(MsgSubmitJob),
            CancelJob(MsgCancelJob),
            RequestReschedule(MsgRequestReschedule),
            RecordRoutingAudit(MsgRecordRoutingAudit),
            ReportRoutingViolation(MsgReportRoutingViolation),
            ResolveRoutingViolation(MsgResolveRoutingViolation),
            ReportJobStatus(MsgReportJobStatus),
            UpdateParams(MsgUpdateParams)
        );
        None
    }

    pub fn type_url(&self) -> String {
        match self {
            HpcMsg::RegisterCluster(_) => MsgRegisterCluster::type_url(),
            HpcMsg::UpdateClusterStatus(_) => MsgUpdateClusterStatus::type_url(),
            HpcMsg::DeregisterCluster(_) => MsgDeregisterCluster::type_url(),
            HpcMsg::SubmitJob(_) => MsgSubmitJob::type_url(),
            HpcMsg::CancelJob(_) => MsgCancelJob::type_url(),
            HpcMsg::RequestReschedule(_) => MsgRequestReschedule::type_url(),
            HpcMsg::RecordRoutingAudit(_) => MsgRecordRoutingAudit::type_url(),
            HpcMsg::ReportRoutingViolation(_) => MsgReportRoutingViolation::type_url(),
            HpcMsg::ResolveRoutingViolation(_) => MsgResolveRoutingViolation::type_url(),
            HpcMsg::ReportJobStatus(_) => MsgReportJobStatus::type_url(),
            HpcMsg::UpdateParams(_) => MsgUpdateParams::type_url(),
        }
    }

    /// The signer field (`cosmos.msg.v1.signer`) and its value.
    fn signer_field(&self) -> (&'static str, &str) {
        match self {
            HpcMsg::RegisterCluster(m) => ("provider", &m.provider),
            HpcMsg::UpdateClusterStatus(m) => ("provider", &m.provider),
            HpcMsg::DeregisterCluster(m) => ("provider", &m.provider),
            HpcMsg::SubmitJob(m) => ("owner", &m.owner),
            HpcMsg::CancelJob(m) => ("owner", &m.owner),
            HpcMsg::RequestReschedule(m) => ("requester", &m.requester),
            HpcMsg::RecordRoutingAudit(m) => ("provider", &m.provider),
            HpcMsg::ReportRoutingViolation(m) => ("reporter", &m.reporter),
            HpcMsg::ResolveRoutingViolation(m) => ("authority", &m.authority),
            HpcMsg::ReportJobStatus(m) => ("provider", &m.provider),
            HpcMsg::UpdateParams(m) => ("authority", &m.authority),
        }
    }

    pub fn signer(&self) -> Result<Address, TxError> {
        let (field, value) = self.signer_field();
        address(field, value)
    }

    pub fn validate_basic(&self) -> Result<(), TxError> {
        self.signer()?;
        match self {
            HpcMsg::RegisterCluster(m) => {
                validate_cluster_id("cluster_id", &m.cluster_id)?;
                if m.region.is_empty() || m.region.len() > 64 {
                    return Err(invalid("region", "must be 1-64 characters"));
                }
                if m.total_nodes == 0 {
                    return Err(invalid("total_nodes", "must be at least 1"));
                }
                if m.available_nodes > m.total_nodes {
                    return Err(invalid(
                        "available_nodes",
                        format!(
                            "{} exceeds total_nodes {}",
                            m.available_nodes, m.total_nodes
                        ),
                    ));
                }
                if m.gpu_type.len() > 64 {
                    return Err(invalid("gpu_type", "longer than 64 characters"));
                }
                bps("packet_loss_bps", m.packet_loss_bps)
            }
            HpcMsg::UpdateClusterStatus(m) => {
                validate_cluster_id("cluster_id", &m.cluster_id)?;
                match ClusterState::try_from(m.state) {
                    Ok(ClusterState::Active | ClusterState::Draining | ClusterState::Offline) => {}
                    _ => return Err(invalid("state", "must be ACTIVE, DRAINING or OFFLINE (use deregister-cluster to retire a cluster)")),
                }
                match ClusterHealth::try_from(m.health) {
                    Ok(
                        ClusterHealth::Healthy | ClusterHealth::Degraded | ClusterHealth::Unhealthy,
                    ) => {}
                    _ => return Err(invalid("health", "must be HEALTHY, DEGRADED or UNHEALTHY")),
                }
                if m.total_nodes == Some(0) {
                    return Err(invalid("total_nodes", "must be at least 1 when set"));
                }
                if let Some(total) = m.total_nodes {
                    if m.available_nodes > total {
                        return Err(invalid(
                            "available_nodes",
                            format!("{} exceeds total_nodes {total}", m.available_nodes),
                        ));
                    }
                }
                bps("packet_loss_bps", m.packet_loss_bps)
            }
            HpcMsg::DeregisterCluster(m) => validate_cluster_id("cluster_id", &m.cluster_id),
            HpcMsg::SubmitJob(m) => {
                validate_requirements(m.requirements.as_ref())?;
                if let Some(policy) = &m.policy {
                    validate_policy(policy)?;
                }
                if !m.correlation_id.is_empty() {
                    validate_id("correlation_id", &m.correlation_id)?;
                }
                validate_workload(m.workload.as_ref(), &workload::HARD_CAPS)
            }
            HpcMsg::CancelJob(m) => validate_id("job_id", &m.job_id),
            HpcMsg::RequestReschedule(m) => {
                validate_id("job_id", &m.job_id)?;
                text("reason", &m.reason, false)?;
                if RescheduleKind::try_from(m.kind).is_err() {
                    return Err(invalid("kind", format!("unknown kind {}", m.kind)));
                }
                validate_excluded_clusters(&m.excluded_cluster_ids)
            }
            HpcMsg::RecordRoutingAudit(m) => {
                batch("records", m.records.len())?;
                for (i, r) in m.records.iter().enumerate() {
                    let f = |name: &str| format!("records[{i}].{name}");
                    validate_own_id(&f("record_id"), &r.record_id, &m.provider)?;
                    validate_id(&f("job_id"), &r.job_id)?;
                    if !r.scheduling_decision_id.is_empty() {
                        validate_id(&f("scheduling_decision_id"), &r.scheduling_decision_id)?;
                    }
                    validate_cluster_id(&f("actual_cluster_id"), &r.actual_cluster_id)?;
                    if !r.expected_cluster_id.is_empty() {
                        validate_cluster_id(&f("expected_cluster_id"), &r.expected_cluster_id)?;
                    }
                    match AuditStatus::try_from(r.status) {
                        Ok(AuditStatus::Unspecified) | Err(_) => {
                            return Err(invalid(
                                &f("status"),
                                "must be APPROVED, FALLBACK, REJECTED or RESCHEDULED",
                            ))
                        }
                        Ok(_) => {}
                    }
                    if EnforcementMode::try_from(r.enforcement_mode).is_err() {
                        return Err(invalid(
                            &f("enforcement_mode"),
                            format!("unknown mode {}", r.enforcement_mode),
                        ));
                    }
                    if !r.provider_address.is_empty() && r.provider_address != m.provider {
                        return Err(invalid(
                            &f("provider_address"),
                            "must be empty or equal to the signing provider",
                        ));
                    }
                    text(&f("reason"), &r.reason, false)?;
                    text(&f("fallback_reason"), &r.fallback_reason, false)?;
                    if !reason_codes::is_valid(&r.reason_code) {
                        return Err(invalid(
                            &f("reason_code"),
                            format!(
                                "must be 0-{} characters of a-z, 0-9 and '_'",
                                reason_codes::MAX_LEN
                            ),
                        ));
                    }
                    if r.is_fallback != (r.status == AuditStatus::Fallback as i32)
                        && r.status != AuditStatus::Rescheduled as i32
                    {
                        return Err(invalid(
                            &f("is_fallback"),
                            "must be true exactly for FALLBACK records",
                        ));
                    }
                }
                let mut ids: Vec<&str> = m.records.iter().map(|r| r.record_id.as_str()).collect();
                ids.sort_unstable();
                if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
                    return Err(invalid(
                        "records",
                        format!("record_id {:?} appears twice in the batch", w[0]),
                    ));
                }
                Ok(())
            }
            HpcMsg::ReportRoutingViolation(m) => {
                batch("violations", m.violations.len())?;
                for (i, v) in m.violations.iter().enumerate() {
                    let f = |name: &str| format!("violations[{i}].{name}");
                    if !v.violation_id.is_empty() {
                        validate_id(&f("violation_id"), &v.violation_id)?;
                        if v.violation_id.starts_with(CHAIN_ID_PREFIX) {
                            return Err(invalid(&f("violation_id"), format!("ids starting with {CHAIN_ID_PREFIX:?} are assigned by the chain")));
                        }
                        validate_own_id(&f("violation_id"), &v.violation_id, &m.reporter)?;
                    }
                    validate_id(&f("job_id"), &v.job_id)?;
                    if !v.decision_id.is_empty() {
                        validate_id(&f("decision_id"), &v.decision_id)?;
                    }
                    match ViolationType::try_from(v.violation_type) {
                        Ok(ViolationType::Unspecified) | Err(_) => {
                            return Err(invalid(
                                &f("violation_type"),
                                "must be a known violation type",
                            ))
                        }
                        Ok(_) => {}
                    }
                    if v.severity > 5 {
                        return Err(invalid(
                            &f("severity"),
                            "must be 0 (the type's default) to 5",
                        ));
                    }
                    address(&f("provider_address"), &v.provider_address)?;
                    for (name, id) in [
                        ("expected_cluster_id", &v.expected_cluster_id),
                        ("actual_cluster_id", &v.actual_cluster_id),
                    ] {
                        if !id.is_empty() {
                            validate_cluster_id(&f(name), id)?;
                        }
                    }
                    text(&f("details"), &v.details, false)?;
                    if v.resolved {
                        return Err(invalid(
                            &f("resolved"),
                            "a new violation cannot be resolved",
                        ));
                    }
                }
                let mut ids: Vec<&str> = m
                    .violations
                    .iter()
                    .map(|v| v.violation_id.as_str())
                    .filter(|id| !id.is_empty())
                    .collect();
                ids.sort_unstable();
                if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
                    return Err(invalid(
                        "violations",
                        format!("violation_id {:?} appears twice in the batch", w[0]),
                    ));
                }
                Ok(())
            }
            HpcMsg::ResolveRoutingViolation(m) => {
                validate_id("violation_id", &m.violation_id)?;
                text("resolution", &m.resolution, true)
            }
            HpcMsg::ReportJobStatus(m) => {
                validate_id("job_id", &m.job_id)?;
                match JobState::try_from(m.status) {
                    Ok(JobState::Running | JobState::Completed | JobState::Failed) => {}
                    _ => return Err(invalid("status", "must be RUNNING, COMPLETED or FAILED")),
                }
                if m.exit_code.is_some() && m.status == JobState::Running as i32 {
                    return Err(invalid("exit_code", "only with COMPLETED or FAILED"));
                }
                if m.exit_code.is_some_and(|c| c != 0) && m.status == JobState::Completed as i32 {
                    return Err(invalid("exit_code", "a COMPLETED job exited with 0"));
                }
                if m.local_job_id.len() > MAX_ID_LEN || m.local_job_id.chars().any(char::is_control)
                {
                    return Err(invalid(
                        "local_job_id",
                        format!("must be at most {MAX_ID_LEN} bytes without control characters"),
                    ));
                }
                text("message", &m.message, false)
            }
            HpcMsg::UpdateParams(m) => {
                let params = m
                    .params
                    .as_ref()
                    .ok_or_else(|| invalid("params", "must be set"))?;
                super::params::validate_params(params).map_err(|e| invalid(&e.field, e.reason))
            }
        }
    }
}
