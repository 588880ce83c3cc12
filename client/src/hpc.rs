//! Typed x/hpc queries for programs (the enforcer); the CLI uses the same paths.

use hpc_proto::virtengine::hpc::v1::{
    Job, Params, QueryJobRequest, QueryJobResponse, QueryParamsRequest, QueryParamsResponse,
    QueryRoutingAuditRecordRequest, QueryRoutingAuditRecordResponse, QueryRoutingViolationRequest,
    QueryRoutingViolationResponse, QuerySchedulingDecisionRequest, QuerySchedulingDecisionResponse,
    SchedulingDecision,
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
        match self.transport.query::<Req, Resp>(&path, &req, 0).await {
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

    pub async fn hpc_decision(&self, decision_id: &str) -> Result<Option<SchedulingDecision>> {
        let req = QuerySchedulingDecisionRequest {
            decision_id: decision_id.into(),
        };
        let resp: Option<QuerySchedulingDecisionResponse> =
            self.hpc_lookup("SchedulingDecision", req).await?;
        Ok(resp.and_then(|r| r.decision))
    }

    pub async fn hpc_audit_exists(&self, record_id: &str) -> Result<bool> {
        let req = QueryRoutingAuditRecordRequest {
            record_id: record_id.into(),
        };
        let resp: Option<QueryRoutingAuditRecordResponse> =
            self.hpc_lookup("RoutingAuditRecord", req).await?;
        Ok(resp.is_some())
    }

    pub async fn hpc_violation_exists(&self, violation_id: &str) -> Result<bool> {
        let req = QueryRoutingViolationRequest {
            violation_id: violation_id.into(),
        };
        let resp: Option<QueryRoutingViolationResponse> =
            self.hpc_lookup("RoutingViolation", req).await?;
        Ok(resp.is_some())
    }
}
