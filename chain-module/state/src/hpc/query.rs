//! `virtengine.hpc.v1.Query`. List queries walk the narrowest secondary index the filters
//! allow and apply the remaining filters on the page; unknown ids answer NotFound, bad
//! arguments InvalidArgument.

use hpc_proto::virtengine::hpc::v1::{
    Cluster, ClusterState, Job, JobState, QueryClusterRequest, QueryClusterResponse,
    QueryClustersRequest, QueryClustersResponse, QueryExplainDecisionRequest,
    QueryExplainDecisionResponse, QueryJobRequest, QueryJobResponse, QueryJobsRequest,
    QueryJobsResponse, QueryParamsRequest, QueryParamsResponse, QueryRoutingAuditRecordRequest,
    QueryRoutingAuditRecordResponse, QueryRoutingAuditRecordsRequest,
    QueryRoutingAuditRecordsResponse, QueryRoutingViolationRequest, QueryRoutingViolationResponse,
    QueryRoutingViolationsRequest, QueryRoutingViolationsResponse,
    QuerySchedulingDecisionByJobRequest, QuerySchedulingDecisionByJobResponse,
    QuerySchedulingDecisionRequest, QuerySchedulingDecisionResponse, QuerySimulateScheduleRequest,
    QuerySimulateScheduleResponse, QueryViolationCountRequest, QueryViolationCountResponse,
    RoutingAuditRecord, RoutingViolation, SchedulingDecision, ViolationType,
};
use hpc_store::StateRead;
use prost::Message;

use super::keeper::{self as keys, lp, Keeper};
use super::params::HpcKeeper;
use super::{msgs, scheduler};
use crate::address::Address;
use crate::errors::QueryError;
use crate::gas::GasMeter;
use crate::query::{handle, paginate_filtered};

fn not_found(what: &str, id: &str) -> QueryError {
    QueryError::NotFound(format!("{what} {id} not found"))
}

/// A required id, checked by the rule messages use: a lookup never reaches the store with
/// an id no record can have.
fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, QueryError> {
    let valid = if field == "cluster_id" {
        msgs::validate_cluster_id(field, value)
    } else {
        msgs::validate_id(field, value)
    };
    valid.map_err(|e| QueryError::InvalidArgument(e.log))?;
    Ok(value)
}

/// An optional id filter: empty means no filter.
fn optional(field: &str, value: &str) -> Result<(), QueryError> {
    if value.is_empty() {
        return Ok(());
    }
    required(field, value).map(|_| ())
}

/// An enum filter: 0 (unspecified) means no filter; a value the API does not define is
/// refused, naming the field, in every query alike.
fn enum_filter<E: TryFrom<i32>>(field: &str, value: i32) -> Result<i32, QueryError> {
    E::try_from(value)
        .map(|_| value)
        .map_err(|_| QueryError::InvalidArgument(format!("{field}: unknown value {value}")))
}

fn address(field: &str, value: &str) -> Result<Address, QueryError> {
    value
        .parse()
        .map_err(|e| QueryError::InvalidArgument(format!("{field}: {e}")))
}

fn decode<M: Message + Default>(value: &[u8]) -> Option<M> {
    M::decode(value).ok()
}

/// One page of records: through `index` when a filter selects one (its entries end with
/// the record id), else through the `primary` prefix of the records themselves.
fn page_via<T: Message + Default>(
    state: &dyn StateRead,
    index: Option<Vec<u8>>,
    primary: &[u8],
    page: Option<&cosmos_sdk_proto::cosmos::base::query::v1beta1::PageRequest>,
    load: impl Fn(&str) -> Option<T>,
    filter: impl Fn(&T) -> bool,
) -> Result<
    (
        Vec<T>,
        cosmos_sdk_proto::cosmos::base::query::v1beta1::PageResponse,
    ),
    QueryError,
> {
    match index {
        Some(prefix) => paginate_filtered(state, &prefix, page, by_id(load), filter),
        None => paginate_filtered(state, primary, page, |_, v| decode::<T>(v), filter),
    }
}

/// Loads the record whose id is the whole key suffix of an index entry.
fn by_id<T>(load: impl Fn(&str) -> Option<T>) -> impl Fn(&[u8], &[u8]) -> Option<T> {
    move |suffix, _| std::str::from_utf8(suffix).ok().and_then(&load)
}

/// What a query may use besides state: the latest block's time (heartbeat staleness in
/// SimulateSchedule) and height (reputation windows).
#[derive(Clone, Copy, Debug, Default)]
pub struct QueryClock {
    pub height: u64,
    pub block_time_seconds: i64,
}

fn explain(d: &SchedulingDecision) -> Vec<String> {
    d.candidates
        .iter()
        .map(|c| {
            if c.eligible {
                let b = c.breakdown.unwrap_or_default();
                format!(
                    "{}: eligible, score {} bps (latency {}, price {}, reputation {}, queue {}; health ×{}/10000){}",
                    c.cluster_id,
                    c.score_bps,
                    b.latency_bps,
                    b.price_bps,
                    b.reputation_bps,
                    b.queue_bps,
                    b.health_multiplier_bps,
                    if c.cluster_id == d.selected_cluster_id { " — selected" } else { "" }
                )
            } else {
                format!(
                    "{}: ineligible, {} (observed {}, threshold {})",
                    c.cluster_id,
                    c.reason().as_str_name(),
                    c.observed_value,
                    c.threshold
                )
            }
        })
        .collect()
}

pub fn route(
    method: &str,
    data: &[u8],
    state: &dyn StateRead,
    clock: QueryClock,
) -> Option<Result<Vec<u8>, QueryError>> {
    Some(match method {
        "Params" => handle(data, |_: QueryParamsRequest| {
            Ok(QueryParamsResponse {
                params: Some(HpcKeeper::params(&state)),
                authority: HpcKeeper::authority(&state),
            })
        }),
        "Cluster" => handle(data, |req: QueryClusterRequest| {
            let id = required("cluster_id", &req.cluster_id)?;
            let cluster = Keeper::cluster(&state, id).ok_or_else(|| not_found("cluster", id))?;
            Ok(QueryClusterResponse {
                cluster: Some(cluster),
            })
        }),
        "Clusters" => handle(data, |req: QueryClustersRequest| {
            let wanted_state = enum_filter::<ClusterState>("state", req.state)?;
            let state_filter = move |c: &Cluster| {
                wanted_state == ClusterState::Unspecified as i32 || c.state == wanted_state
            };
            let (clusters, page) = if req.provider_address.is_empty() {
                if wanted_state == ClusterState::Unspecified as i32 {
                    paginate_filtered(
                        state,
                        keys::CLUSTER,
                        req.pagination.as_ref(),
                        |_, v| decode::<Cluster>(v),
                        state_filter,
                    )?
                } else {
                    paginate_filtered(
                        state,
                        &[keys::CLUSTERS_BY_STATE, &[keys::state_byte(wanted_state)]].concat(),
                        req.pagination.as_ref(),
                        by_id(|id| Keeper::cluster(&state, id)),
                        state_filter,
                    )?
                }
            } else {
                let provider = address("provider_address", &req.provider_address)?;
                let prefix = [keys::CLUSTERS_BY_PROVIDER, provider.as_bytes()].concat();
                paginate_filtered(
                    state,
                    &prefix,
                    req.pagination.as_ref(),
                    by_id(|id| Keeper::cluster(&state, id)),
                    state_filter,
                )?
            };
            Ok(QueryClustersResponse {
                clusters,
                pagination: Some(page),
            })
        }),
        "Job" => handle(data, |req: QueryJobRequest| {
            let id = required("job_id", &req.job_id)?;
            Ok(QueryJobResponse {
                job: Some(
                    Keeper::job_with_workload(&state, id).ok_or_else(|| not_found("job", id))?,
                ),
            })
        }),
        "Jobs" => handle(data, |req: QueryJobsRequest| {
            let wanted_state = enum_filter::<JobState>("state", req.state)?;
            let owner = if req.owner.is_empty() {
                None
            } else {
                Some(address("owner", &req.owner)?)
            };
            let filter = move |j: &Job| {
                (wanted_state == JobState::Unspecified as i32 || j.state == wanted_state)
                    && owner.is_none_or(|o| j.owner == o.to_string())
            };
            let (jobs, page) = if !req.provider_address.is_empty() {
                let provider = address("provider_address", &req.provider_address)?;
                let mut prefix = [keys::JOBS_BY_PROVIDER_STATE, provider.as_bytes()].concat();
                if wanted_state != JobState::Unspecified as i32 {
                    prefix.push(keys::state_byte(wanted_state));
                    paginate_filtered(
                        state,
                        &prefix,
                        req.pagination.as_ref(),
                        by_id(|id| Keeper::job(&state, id)),
                        filter,
                    )?
                } else {
                    // Entries are <state byte><job_id>.
                    paginate_filtered(
                        state,
                        &prefix,
                        req.pagination.as_ref(),
                        |s, _| {
                            std::str::from_utf8(&s[1..])
                                .ok()
                                .and_then(|id| Keeper::job(&state, id))
                        },
                        filter,
                    )?
                }
            } else if let Some(owner) = owner {
                let prefix = [keys::JOBS_BY_OWNER, owner.as_bytes()].concat();
                paginate_filtered(
                    state,
                    &prefix,
                    req.pagination.as_ref(),
                    by_id(|id| Keeper::job(&state, id)),
                    filter,
                )?
            } else if wanted_state != JobState::Unspecified as i32 {
                paginate_filtered(
                    state,
                    &[keys::JOBS_BY_STATE, &[keys::state_byte(wanted_state)]].concat(),
                    req.pagination.as_ref(),
                    by_id(|id| Keeper::job(&state, id)),
                    filter,
                )?
            } else {
                paginate_filtered(
                    state,
                    keys::JOB,
                    req.pagination.as_ref(),
                    |_, v| decode::<Job>(v),
                    filter,
                )?
            };
            Ok(QueryJobsResponse {
                jobs,
                pagination: Some(page),
            })
        }),
        "SchedulingDecision" => handle(data, |req: QuerySchedulingDecisionRequest| {
            let id = required("decision_id", &req.decision_id)?;
            Ok(QuerySchedulingDecisionResponse {
                decision: Some(
                    Keeper::decision(&state, id).ok_or_else(|| not_found("decision", id))?,
                ),
            })
        }),
        "SchedulingDecisionByJob" => handle(data, |req: QuerySchedulingDecisionByJobRequest| {
            let id = required("job_id", &req.job_id)?;
            let job = Keeper::job(&state, id).ok_or_else(|| not_found("job", id))?;
            let mut history: Vec<SchedulingDecision> = Keeper::decision_ids_of_job(&state, id)
                .iter()
                .filter_map(|d| Keeper::decision(&state, d))
                .collect();
            history.sort_by_key(|d| (d.created_height, d.decision_id.clone()));
            let current = Keeper::decision(&state, &job.current_decision_id);
            Ok(QuerySchedulingDecisionByJobResponse { current, history })
        }),
        "ExplainDecision" => handle(data, |req: QueryExplainDecisionRequest| {
            optional("decision_id", &req.decision_id)?;
            optional("job_id", &req.job_id)?;
            let decision_id = match (req.decision_id.is_empty(), req.job_id.is_empty()) {
                (false, _) => req.decision_id.clone(),
                (true, false) => {
                    Keeper::job(&state, &req.job_id)
                        .ok_or_else(|| not_found("job", &req.job_id))?
                        .current_decision_id
                }
                (true, true) => {
                    return Err(QueryError::InvalidArgument(
                        "set decision_id or job_id".into(),
                    ))
                }
            };
            let decision = Keeper::decision(&state, &decision_id)
                .ok_or_else(|| not_found("decision", &decision_id))?;
            let job = Keeper::job(&state, &decision.job_id);
            let policy = job.as_ref().and_then(|j| j.policy);
            // The weights recorded with the decision; decisions from before they were
            // recorded fall back to today's.
            let weights = decision.weights.unwrap_or_else(|| {
                scheduler::effective_weights(policy.as_ref(), &HpcKeeper::params(&state))
            });
            Ok(QueryExplainDecisionResponse {
                effective_weights: Some(weights),
                explanations: explain(&decision),
                effective_policy: policy,
                decision: Some(decision),
            })
        }),
        "SimulateSchedule" => handle(data, |req: QuerySimulateScheduleRequest| {
            let invalid = |e: crate::errors::TxError| QueryError::InvalidArgument(e.log);
            msgs::validate_requirements(req.requirements.as_ref()).map_err(invalid)?;
            if let Some(policy) = &req.policy {
                msgs::validate_policy(policy).map_err(invalid)?;
            }
            msgs::validate_excluded_clusters(&req.excluded_cluster_ids).map_err(invalid)?;
            let params = HpcKeeper::params(&state);
            let requirements = req.requirements.clone().unwrap_or_default();
            // The same candidates SubmitJob would evaluate; the number of clusters bounds
            // the work, so no gas limit is needed.
            let clusters = Keeper::candidate_clusters(
                &state,
                &requirements,
                params.max_clusters_evaluated as usize,
                &GasMeter::infinite(),
            )
            .map_err(|e| QueryError::InvalidArgument(e.to_string()))?;
            let outcome = scheduler::schedule(&scheduler::ScheduleRequest {
                requirements: &requirements,
                policy: req.policy.as_ref(),
                params: &params,
                clusters: &clusters,
                excluded_cluster_ids: &req.excluded_cluster_ids,
                block_time_seconds: clock.block_time_seconds,
            });
            let failure_reason = if outcome.selected.is_none() {
                scheduler::no_eligible_summary(&outcome)
            } else {
                String::new()
            };
            let decision = SchedulingDecision {
                selected_cluster_id: outcome
                    .selected
                    .as_ref()
                    .map(|s| s.cluster_id.clone())
                    .unwrap_or_default(),
                selected_provider: outcome
                    .selected
                    .as_ref()
                    .map(|s| s.provider_address.clone())
                    .unwrap_or_default(),
                score_bps: outcome.selected.as_ref().map_or(0, |s| s.score_bps),
                is_fallback: outcome.selected.as_ref().is_some_and(|s| s.is_fallback),
                fallback_reason: outcome
                    .selected
                    .as_ref()
                    .map(|s| s.fallback_reason.clone())
                    .unwrap_or_default(),
                relaxed_constraints: outcome
                    .selected
                    .as_ref()
                    .map(|s| s.relaxed_constraints.clone())
                    .unwrap_or_default(),
                excluded_cluster_ids: req.excluded_cluster_ids.clone(),
                total_candidates: outcome.total_candidates,
                candidates: outcome.candidates,
                created_height: clock.height,
                weights: Some(scheduler::effective_weights(req.policy.as_ref(), &params)),
                ..Default::default()
            };
            Ok(QuerySimulateScheduleResponse {
                schedulable: failure_reason.is_empty(),
                decision: Some(decision),
                failure_reason,
            })
        }),
        "RoutingAuditRecord" => handle(data, |req: QueryRoutingAuditRecordRequest| {
            let id = required("record_id", &req.record_id)?;
            Ok(QueryRoutingAuditRecordResponse {
                record: Some(
                    Keeper::audit(&state, id).ok_or_else(|| not_found("audit record", id))?,
                ),
            })
        }),
        "RoutingAuditRecords" => handle(data, |req: QueryRoutingAuditRecordsRequest| {
            optional("job_id", &req.job_id)?;
            optional("decision_id", &req.decision_id)?;
            let provider = if req.provider_address.is_empty() {
                None
            } else {
                Some(address("provider_address", &req.provider_address)?)
            };
            let (job, decision) = (req.job_id.clone(), req.decision_id.clone());
            let filter = |r: &RoutingAuditRecord| {
                (job.is_empty() || r.job_id == job)
                    && (decision.is_empty() || r.scheduling_decision_id == decision)
                    && provider.is_none_or(|p| r.provider_address == p.to_string())
            };
            let index = if !req.decision_id.is_empty() {
                Some([keys::AUDIT_BY_DECISION, &lp(&req.decision_id)].concat())
            } else if !req.job_id.is_empty() {
                Some([keys::AUDIT_BY_JOB, &lp(&req.job_id)].concat())
            } else {
                provider.map(|p| [keys::AUDIT_BY_PROVIDER, p.as_bytes()].concat())
            };
            let (records, page) = page_via(
                state,
                index,
                keys::AUDIT,
                req.pagination.as_ref(),
                |id| Keeper::audit(&state, id),
                filter,
            )?;
            Ok(QueryRoutingAuditRecordsResponse {
                records,
                pagination: Some(page),
            })
        }),
        "RoutingViolation" => handle(data, |req: QueryRoutingViolationRequest| {
            let id = required("violation_id", &req.violation_id)?;
            Ok(QueryRoutingViolationResponse {
                violation: Some(
                    Keeper::violation(&state, id).ok_or_else(|| not_found("violation", id))?,
                ),
            })
        }),
        "RoutingViolations" => handle(data, |req: QueryRoutingViolationsRequest| {
            let provider = if req.provider_address.is_empty() {
                None
            } else {
                Some(address("provider_address", &req.provider_address)?)
            };
            enum_filter::<ViolationType>("violation_type", req.violation_type)?;
            optional("job_id", &req.job_id)?;
            optional("decision_id", &req.decision_id)?;
            let (job, decision, vtype, unresolved) = (
                req.job_id.clone(),
                req.decision_id.clone(),
                req.violation_type,
                req.unresolved_only,
            );
            let filter = |v: &RoutingViolation| {
                (job.is_empty() || v.job_id == job)
                    && (decision.is_empty() || v.decision_id == decision)
                    && (vtype == 0 || v.violation_type == vtype)
                    && (!unresolved || !v.resolved)
                    && provider.is_none_or(|p| v.provider_address == p.to_string())
            };
            let index = match (provider, unresolved) {
                _ if !req.decision_id.is_empty() => {
                    Some([keys::VIOLATIONS_BY_DECISION, &lp(&req.decision_id)].concat())
                }
                _ if !req.job_id.is_empty() => {
                    Some([keys::VIOLATIONS_BY_JOB, &lp(&req.job_id)].concat())
                }
                (Some(p), true) => Some([keys::VIOLATIONS_UNRESOLVED, p.as_bytes()].concat()),
                (Some(p), false) => Some([keys::VIOLATIONS_BY_PROVIDER, p.as_bytes()].concat()),
                (None, _) if vtype != 0 => {
                    Some([keys::VIOLATIONS_BY_TYPE, &[vtype as u8][..]].concat())
                }
                (None, _) => None,
            };
            let (violations, page) = page_via(
                state,
                index,
                keys::VIOLATION,
                req.pagination.as_ref(),
                |id| Keeper::violation(&state, id),
                filter,
            )?;
            Ok(QueryRoutingViolationsResponse {
                violations,
                pagination: Some(page),
            })
        }),
        "ViolationCount" => handle(data, |req: QueryViolationCountRequest| {
            let provider = address("provider_address", &req.provider_address)?;
            let count = Keeper::violation_count(&state, &provider);
            let threshold = HpcKeeper::params(&state).violation_alert_threshold;
            Ok(QueryViolationCountResponse {
                provider_address: provider.to_string(),
                unresolved_count: count.unresolved_count,
                total_count: count.total_count,
                alert_threshold: threshold,
                threshold_exceeded: count.unresolved_count >= threshold as u64,
            })
        }),
        _ => return None,
    })
}
