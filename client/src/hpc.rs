//! Typed x/hpc queries for programs (the enforcer); the CLI uses the same paths.

use cosmos_sdk_proto::cosmos::base::query::v1beta1::PageRequest;
use hpc_proto::virtengine::hpc::v1::{
    Job, JobState, Params, QueryJobRequest, QueryJobResponse, QueryJobsRequest, QueryJobsResponse,
    QueryParamsRequest, QueryParamsResponse, QueryRoutingAuditRecordRequest,
    QueryRoutingAuditRecordResponse, QueryRoutingViolationRequest, QueryRoutingViolationResponse,
    QuerySchedulingDecisionRequest, QuerySchedulingDecisionResponse, RoutingAuditRecord,
    RoutingViolation, SchedulingDecision,
};

use crate::chain::ChainClient;
use crate::error::Result;

impl ChainClient {
    /// Calls an x/hpc query; NotFound becomes `None`.
    async fn hpc_lookup<Req, Resp>(&self, method: &str, req: Req) -> Result<Option<Resp>>
    where
        Req: prost::Message + Clone + 'static,
        Resp: prost::Message + Default + 'static,
    {
        let path = format!("/virtengine.hpc.v1.Query/{method}");
        match self
            .transport
            .query::<Req, Resp>(&path, &req, self.query_height)
            .await
        {
            Ok(resp) => Ok(Some(resp)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn hpc_params(&self) -> Result<(Params, String)> {
        let resp: Option<QueryParamsResponse> =
            self.hpc_lookup("Params", QueryParamsRequest {}).await?;
        let resp = resp.unwrap_or_default();
        Ok((resp.params.unwrap_or_default(), resp.authority))
    }

    pub async fn hpc_job(&self, job_id: &str) -> Result<Option<Job>> {
        let resp: Option<QueryJobResponse> = self
            .hpc_lookup(
                "Job",
                QueryJobRequest {
                    job_id: job_id.into(),
                },
            )
            .await?;
        Ok(resp.and_then(|r| r.job))
    }

    /// Every job in `state` placed on a cluster of `provider`, all pages, in id order.
    pub async fn hpc_jobs_of_provider(&self, provider: &str, state: JobState) -> Result<Vec<Job>> {
        let mut jobs = Vec::new();
        let mut next_key = Vec::new();
        loop {
            let req = QueryJobsRequest {
                provider_address: provider.into(),
                state: state as i32,
                pagination: Some(PageRequest {
                    key: std::mem::take(&mut next_key),
                    limit: hpc_primitives::contract::limits::DEFAULT_PAGE_LIMIT,
                    ..PageRequest::default()
                }),
                ..QueryJobsRequest::default()
            };
            let resp: QueryJobsResponse = self
                .transport
                .query("/virtengine.hpc.v1.Query/Jobs", &req, self.query_height)
                .await?;
            jobs.extend(resp.jobs);
            match resp.pagination {
                Some(page) if !page.next_key.is_empty() => next_key = page.next_key,
                _ => return Ok(jobs),
            }
        }
    }

    pub async fn hpc_decision(&self, decision_id: &str) -> Result<Option<SchedulingDecision>> {
        let req = QuerySchedulingDecisionRequest {
            decision_id: decision_id.into(),
        };
        let resp: Option<QuerySchedulingDecisionResponse> =
            self.hpc_lookup("SchedulingDecision", req).await?;
        Ok(resp.and_then(|r| r.decision))
    }

    /// The audit record stored under `record_id`, if any. Whether it is the record a
    /// caller submitted is `hpc_primitives::contract::submission::same_audit`'s question:
    /// an id can hold another signer's record.
    pub async fn hpc_audit_record(&self, record_id: &str) -> Result<Option<RoutingAuditRecord>> {
        let req = QueryRoutingAuditRecordRequest {
            record_id: record_id.into(),
        };
        let resp: Option<QueryRoutingAuditRecordResponse> =
            self.hpc_lookup("RoutingAuditRecord", req).await?;
        Ok(resp.and_then(|r| r.record))
    }

    /// Whether some audit record is stored under `record_id` (anyone's).
    pub async fn hpc_audit_exists(&self, record_id: &str) -> Result<bool> {
        Ok(self.hpc_audit_record(record_id).await?.is_some())
    }

    /// The violation stored under `violation_id`, if any (see [`Self::hpc_audit_record`]).
    pub async fn hpc_violation(&self, violation_id: &str) -> Result<Option<RoutingViolation>> {
        let req = QueryRoutingViolationRequest {
            violation_id: violation_id.into(),
        };
        let resp: Option<QueryRoutingViolationResponse> =
            self.hpc_lookup("RoutingViolation", req).await?;
        Ok(resp.and_then(|r| r.violation))
    }

    /// Whether some violation is stored under `violation_id` (anyone's).
    pub async fn hpc_violation_exists(&self, violation_id: &str) -> Result<bool> {
        Ok(self.hpc_violation(violation_id).await?.is_some())
    }
}
