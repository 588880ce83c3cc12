//! `hpcd tx hpc …` and `hpcd query hpc …`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use cosmos_sdk_proto::cosmos::base::query::v1beta1::PageRequest;
use hpc_primitives::Address;
use hpc_proto::virtengine::hpc::v1 as hpc;
use serde::Serialize;

use super::output::{print, OutputFormat};
use super::tx::{sign_broadcast_print, TxArgs};
use super::{ConnectionArgs, KeySource};
use crate::chain::ChainClient;
use crate::error::{ClientError, Result};
use crate::policy::parse_policy;
use crate::proof::RecordKind;
use crate::tx::{address_of, to_any};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ClusterStateArg {
    Active,
    Draining,
    Offline,
    Deregistered,
}

impl From<ClusterStateArg> for hpc::ClusterState {
    fn from(s: ClusterStateArg) -> Self {
        match s {
            ClusterStateArg::Active => hpc::ClusterState::Active,
            ClusterStateArg::Draining => hpc::ClusterState::Draining,
            ClusterStateArg::Offline => hpc::ClusterState::Offline,
            ClusterStateArg::Deregistered => hpc::ClusterState::Deregistered,
        }
    }
}

/// The kind a reschedule request states (checked by the chain against the signer's role).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RescheduleKindArg {
    /// The provider's decision is stale (provider only).
    Refresh,
    /// The provider's cluster cannot take the job (provider only).
    ProviderFallback,
    /// The provider has no usable decision (provider only).
    MissingDecision,
    /// The owner asks (owner only).
    OwnerRequest,
}

impl From<RescheduleKindArg> for hpc::RescheduleKind {
    fn from(k: RescheduleKindArg) -> Self {
        match k {
            RescheduleKindArg::Refresh => hpc::RescheduleKind::Refresh,
            RescheduleKindArg::ProviderFallback => hpc::RescheduleKind::ProviderFallback,
            RescheduleKindArg::MissingDecision => hpc::RescheduleKind::MissingDecision,
            RescheduleKindArg::OwnerRequest => hpc::RescheduleKind::OwnerRequest,
        }
    }
}

/// The states a heartbeat may report (retiring a cluster is `deregister-cluster`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum HeartbeatStateArg {
    Active,
    Draining,
    Offline,
}

impl From<HeartbeatStateArg> for hpc::ClusterState {
    fn from(s: HeartbeatStateArg) -> Self {
        match s {
            HeartbeatStateArg::Active => hpc::ClusterState::Active,
            HeartbeatStateArg::Draining => hpc::ClusterState::Draining,
            HeartbeatStateArg::Offline => hpc::ClusterState::Offline,
        }
    }
}

/// The statuses a provider reports for a job.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReportedStatusArg {
    Running,
    Completed,
    Failed,
}

impl From<ReportedStatusArg> for hpc::JobState {
    fn from(s: ReportedStatusArg) -> Self {
        match s {
            ReportedStatusArg::Running => hpc::JobState::Running,
            ReportedStatusArg::Completed => hpc::JobState::Completed,
            ReportedStatusArg::Failed => hpc::JobState::Failed,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum HealthArg {
    Healthy,
    Degraded,
    Unhealthy,
}

impl From<HealthArg> for hpc::ClusterHealth {
    fn from(h: HealthArg) -> Self {
        match h {
            HealthArg::Healthy => hpc::ClusterHealth::Healthy,
            HealthArg::Degraded => hpc::ClusterHealth::Degraded,
            HealthArg::Unhealthy => hpc::ClusterHealth::Unhealthy,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum JobStateArg {
    Scheduled,
    Routed,
    Running,
    Completed,
    Failed,
    Rejected,
    Cancelled,
}

impl From<JobStateArg> for hpc::JobState {
    fn from(s: JobStateArg) -> Self {
        match s {
            JobStateArg::Scheduled => hpc::JobState::Scheduled,
            JobStateArg::Routed => hpc::JobState::Routed,
            JobStateArg::Running => hpc::JobState::Running,
            JobStateArg::Completed => hpc::JobState::Completed,
            JobStateArg::Failed => hpc::JobState::Failed,
            JobStateArg::Rejected => hpc::JobState::Rejected,
            JobStateArg::Cancelled => hpc::JobState::Cancelled,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ViolationTypeArg {
    MissingDecision,
    StaleDecision,
    ClusterMismatch,
    ClusterUnavailable,
    CapacityExceeded,
    UnauthorizedFallback,
}

impl From<ViolationTypeArg> for hpc::ViolationType {
    fn from(t: ViolationTypeArg) -> Self {
        match t {
            ViolationTypeArg::MissingDecision => hpc::ViolationType::MissingDecision,
            ViolationTypeArg::StaleDecision => hpc::ViolationType::StaleDecision,
            ViolationTypeArg::ClusterMismatch => hpc::ViolationType::ClusterMismatch,
            ViolationTypeArg::ClusterUnavailable => hpc::ViolationType::ClusterUnavailable,
            ViolationTypeArg::CapacityExceeded => hpc::ViolationType::CapacityExceeded,
            ViolationTypeArg::UnauthorizedFallback => hpc::ViolationType::UnauthorizedFallback,
        }
    }
}

/// Cluster metrics reported at registration and in heartbeats.
#[derive(Args, Clone, Debug)]
pub struct ClusterMetrics {
    #[arg(long, default_value_t = 0)]
    pub queue_depth: u32,
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u32,
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u32,
    /// Packet loss in basis points (100 = 1%).
    #[arg(long, default_value_t = 0)]
    pub packet_loss_bps: u32,
}

/// The job specification of submit-job and simulate-schedule.
#[derive(Args, Clone, Debug)]
pub struct JobSpec {
    #[arg(long)]
    pub nodes: u32,
    #[arg(long, default_value_t = 0)]
    pub gpus_per_node: u32,
    #[arg(long, default_value = "")]
    pub gpu_type: String,
    #[arg(long, default_value_t = 3600)]
    pub max_runtime_seconds: u64,
    /// An allowed region (repeat for several; none = any region).
    #[arg(long = "region")]
    pub regions: Vec<String>,
    /// A placement policy JSON file (see docs/examples/policies/).
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

impl JobSpec {
    fn requirements(&self) -> hpc::JobRequirements {
        hpc::JobRequirements {
            nodes: self.nodes,
            gpus_per_node: self.gpus_per_node,
            gpu_type: self.gpu_type.clone(),
            max_runtime_seconds: self.max_runtime_seconds,
            allowed_regions: self.regions.clone(),
        }
    }

    fn policy(&self) -> Result<Option<hpc::PlacementPolicy>> {
        match &self.policy {
            None => Ok(None),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ClientError::invalid("--policy", format!("{}: {e}", path.display()))
                })?;
                parse_policy(&text).map(Some)
            }
        }
    }
}

/// What a submitted job runs: an inline script, a content-addressed script, or a
/// container image (exactly one).
#[derive(Args, Clone, Debug)]
#[group(id = "workload_source", required = true, multiple = true, args = ["script", "script_uri", "image"])]
pub struct WorkloadArgs {
    /// A batch script file (starting with "#!"). Alone: stored on chain (paid per byte).
    /// With --script-uri: only its sha256 and size go on chain.
    #[arg(long)]
    pub script: Option<PathBuf>,
    /// Where the provider fetches the script (http, https or file URI).
    #[arg(long)]
    pub script_uri: Option<String>,
    /// SHA-256 of the script at --script-uri (computed from --script when given).
    #[arg(long, requires = "script_uri", conflicts_with = "script")]
    pub script_sha256: Option<String>,
    /// Size in bytes of the script at --script-uri (computed from --script when given).
    #[arg(long, requires = "script_sha256")]
    pub script_size: Option<u64>,
    /// A container image to run (providers must enable containers).
    #[arg(long, conflicts_with_all = ["script", "script_uri"])]
    pub image: Option<String>,
    /// The container's command and arguments (repeat, in order).
    #[arg(long = "arg", requires = "image", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// An environment variable NAME=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_env_var)]
    pub env: Vec<(String, String)>,
    /// Partition / queue hint for the provider's scheduler.
    #[arg(long, default_value = "")]
    pub partition: String,
    /// Base name of the job's output files (<name>.out, <name>.err).
    #[arg(long, default_value = "")]
    pub output_name: String,
}

fn parse_env_var(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

impl WorkloadArgs {
    fn workload(&self) -> Result<hpc::JobWorkload> {
        use hpc::job_workload::Source;
        let script = self
            .script
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|e| {
                    ClientError::invalid("--script", format!("{}: {e}", path.display()))
                })
            })
            .transpose()?;
        let source = match (script, &self.script_uri, &self.image) {
            (Some(bytes), None, _) => Source::InlineScript(bytes),
            (Some(bytes), Some(uri), _) => Source::ScriptRef(hpc::ContentAddress {
                uri: uri.clone(),
                sha256: hpc_primitives::contract::workload::sha256_hex(&bytes),
                size_bytes: bytes.len() as u64,
            }),
            (None, Some(uri), _) => Source::ScriptRef(hpc::ContentAddress {
                uri: uri.clone(),
                sha256: self.script_sha256.clone().ok_or_else(|| {
                    ClientError::invalid(
                        "--script-sha256",
                        "required with --script-uri unless --script is given",
                    )
                })?,
                size_bytes: self.script_size.ok_or_else(|| {
                    ClientError::invalid("--script-size", "required with --script-sha256")
                })?,
            }),
            (None, None, Some(image)) => Source::Container(hpc::ContainerWorkload {
                image: image.clone(),
                command: self.args.clone(),
            }),
            (None, None, None) => {
                return Err(ClientError::invalid(
                    "--script",
                    "give --script, --script-uri or --image",
                ))
            }
        };
        Ok(hpc::JobWorkload {
            source: Some(source),
            env: self
                .env
                .iter()
                .map(|(name, value)| hpc::EnvVar {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            partition: self.partition.clone(),
            output_name: self.output_name.clone(),
        })
    }
}

#[derive(Subcommand, Clone, Debug)]
pub enum HpcTx {
    /// Register a cluster operated by the signing provider.
    RegisterCluster {
        cluster_id: String,
        #[arg(long)]
        region: String,
        #[arg(long)]
        total_nodes: u32,
        /// Defaults to total_nodes.
        #[arg(long)]
        available_nodes: Option<u32>,
        #[arg(long, default_value_t = 0)]
        gpus_per_node: u32,
        #[arg(long, default_value = "")]
        gpu_type: String,
        /// uvirt per node and hour.
        #[arg(long)]
        price_per_node_hour: u64,
        #[command(flatten)]
        metrics: ClusterMetrics,
    },
    /// Heartbeat: the cluster's state, free nodes, metrics and health.
    UpdateCluster {
        cluster_id: String,
        #[arg(long, value_enum, default_value = "active")]
        state: HeartbeatStateArg,
        #[arg(long, value_enum, default_value = "healthy")]
        health: HealthArg,
        #[arg(long)]
        available_nodes: u32,
        #[arg(long)]
        total_nodes: Option<u32>,
        #[arg(long)]
        price_per_node_hour: Option<u64>,
        #[command(flatten)]
        metrics: ClusterMetrics,
    },
    /// Retire a cluster.
    DeregisterCluster { cluster_id: String },
    /// Submit a job; the chain schedules it in the same tx.
    SubmitJob {
        #[command(flatten)]
        spec: JobSpec,
        #[command(flatten)]
        workload: Box<WorkloadArgs>,
        /// Client-chosen id that follows the job through every event.
        #[arg(long, default_value = "")]
        correlation_id: String,
    },
    /// Cancel a job you own.
    CancelJob { job_id: String },
    /// Ask for a new decision (owner, or provider of the current cluster).
    RequestReschedule {
        job_id: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// A cluster the new decision must avoid (repeatable).
        #[arg(long = "exclude")]
        excluded: Vec<String>,
        /// Why (recorded on the new decision; the reason is only text). Without it the
        /// chain records owner-request for the owner and no kind for the provider.
        #[arg(long, value_enum)]
        kind: Option<RescheduleKindArg>,
    },
    /// Record routing audit records from a JSON file: an array of records with the
    /// routing policy's field names; enum values may be written as in the routing
    /// document ("approved", "strict") or in full ("AUDIT_STATUS_APPROVED").
    RecordAudit { file: PathBuf },
    /// Report routing violations from a JSON file: an array of violations; types may be
    /// written "cluster_mismatch" or "VIOLATION_TYPE_CLUSTER_MISMATCH".
    ReportViolation { file: PathBuf },
    /// Resolve a violation (authority only).
    ResolveViolation {
        violation_id: String,
        #[arg(long)]
        resolution: String,
    },
    /// Report a job's status (its provider): running, completed or failed.
    ReportJobStatus {
        job_id: String,
        #[arg(value_enum)]
        status: ReportedStatusArg,
        #[arg(long, default_value = "")]
        message: String,
        /// The workload's exit code (with completed or failed).
        #[arg(long, allow_hyphen_values = true)]
        exit_code: Option<i32>,
        /// The local scheduler's id of the job (e.g. the Slurm job id).
        #[arg(long, default_value = "")]
        local_job_id: String,
    },
    /// Change module params (authority only): FILE is a JSON object of `Params` fields;
    /// fields it leaves out keep their current values.
    UpdateParams { file: PathBuf },
}

/// The error for a problem with the file of argument `field`, naming both.
fn file_error<'a>(
    field: &'a str,
    path: &'a std::path::Path,
) -> impl Fn(&dyn std::fmt::Display) -> ClientError + 'a {
    move |e| ClientError::invalid(field, format!("{}: {e}", path.display()))
}

/// The JSON in the file of argument `field`.
fn read_json_value(field: &str, path: &std::path::Path) -> Result<serde_json::Value> {
    let bad = file_error(field, path);
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
    serde_json::from_str(&text).map_err(|e| bad(&e))
}

fn read_json<T: serde::de::DeserializeOwned>(field: &str, path: &std::path::Path) -> Result<T> {
    let mut value = read_json_value(field, path)?;
    expand_enum_names(&mut value);
    serde_json::from_value(value).map_err(|e| file_error(field, path)(&e))
}

/// The JSON object of a params file, keys in snake_case (lowerCamelCase accepted).
fn read_params_overrides(field: &str, path: &std::path::Path) -> Result<serde_json::Value> {
    let mut value = read_json_value(field, path)?;
    if !value.is_object() {
        return Err(file_error(field, path)(
            &"expected a JSON object of Params fields",
        ));
    }
    snake_case_keys(&mut value);
    Ok(value)
}

/// `current` with the fields of `overrides` replaced (nested objects field by field);
/// unknown fields and wrong types are refused by name.
fn params_with_overrides(
    current: &hpc::Params,
    overrides: serde_json::Value,
    field: &str,
    path: &std::path::Path,
) -> Result<hpc::Params> {
    let bad = file_error(field, path);
    let mut merged = serde_json::to_value(current).map_err(|e| bad(&e))?;
    snake_case_keys(&mut merged);
    overlay(&mut merged, overrides);
    expand_enum_names(&mut merged);
    serde_json::from_value(merged).map_err(|e| bad(&e))
}

fn snake_case_keys(value: &mut serde_json::Value) {
    if let serde_json::Value::Object(map) = value {
        let renamed = std::mem::take(map)
            .into_iter()
            .map(|(k, mut v)| {
                snake_case_keys(&mut v);
                (crate::cli::output::snake_case(&k), v)
            })
            .collect();
        *map = renamed;
    }
}

fn overlay(base: &mut serde_json::Value, top: serde_json::Value) {
    match (base, top) {
        (serde_json::Value::Object(base), serde_json::Value::Object(top)) => {
            for (k, v) in top {
                match base.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => overlay(slot, v),
                    _ => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (base, top) => *base = top,
    }
}

/// Accepts the routing document's short enum spellings (`"status": "approved"`) by
/// expanding them to the protobuf names (`"AUDIT_STATUS_APPROVED"`).
fn expand_enum_names(value: &mut serde_json::Value) {
    const PREFIXES: [(&str, &str); 4] = [
        ("status", "AUDIT_STATUS_"),
        ("enforcement_mode", "ENFORCEMENT_MODE_"),
        ("routing_enforcement_mode", "ENFORCEMENT_MODE_"),
        ("violation_type", "VIOLATION_TYPE_"),
    ];
    match value {
        serde_json::Value::Array(items) => items.iter_mut().for_each(expand_enum_names),
        serde_json::Value::Object(map) => {
            for (field, prefix) in PREFIXES {
                if let Some(serde_json::Value::String(s)) = map.get_mut(field) {
                    if !s.starts_with(prefix)
                        && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    {
                        *s = format!("{prefix}{}", s.to_ascii_uppercase());
                    }
                }
            }
        }
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn run_hpc_tx(
    cmd: HpcTx,
    from: &str,
    args: &TxArgs,
    conn: &ConnectionArgs,
    keys: &dyn KeySource,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> Result<()> {
    let key = keys.signing_key(from)?;
    let me = address_of(&key).to_string();
    let msg = match cmd {
        HpcTx::RegisterCluster {
            cluster_id,
            region,
            total_nodes,
            available_nodes,
            gpus_per_node,
            gpu_type,
            price_per_node_hour,
            metrics,
        } => to_any(&hpc::MsgRegisterCluster {
            provider: me,
            cluster_id,
            region,
            total_nodes,
            available_nodes: available_nodes.unwrap_or(total_nodes),
            gpus_per_node,
            gpu_type,
            price_per_node_hour,
            queue_depth: metrics.queue_depth,
            latency_ms: metrics.latency_ms,
            jitter_ms: metrics.jitter_ms,
            packet_loss_bps: metrics.packet_loss_bps,
        }),
        HpcTx::UpdateCluster {
            cluster_id,
            state,
            health,
            available_nodes,
            total_nodes,
            price_per_node_hour,
            metrics,
        } => to_any(&hpc::MsgUpdateClusterStatus {
            provider: me,
            cluster_id,
            state: hpc::ClusterState::from(state) as i32,
            available_nodes,
            queue_depth: metrics.queue_depth,
            latency_ms: metrics.latency_ms,
            jitter_ms: metrics.jitter_ms,
            packet_loss_bps: metrics.packet_loss_bps,
            health: hpc::ClusterHealth::from(health) as i32,
            price_per_node_hour,
            total_nodes,
        }),
        HpcTx::DeregisterCluster { cluster_id } => to_any(&hpc::MsgDeregisterCluster {
            provider: me,
            cluster_id,
        }),
        HpcTx::SubmitJob {
            spec,
            workload,
            correlation_id,
        } => to_any(&hpc::MsgSubmitJob {
            owner: me,
            requirements: Some(spec.requirements()),
            policy: spec.policy()?,
            correlation_id,
            workload: Some(workload.workload()?),
        }),
        HpcTx::CancelJob { job_id } => to_any(&hpc::MsgCancelJob { owner: me, job_id }),
        HpcTx::RequestReschedule {
            job_id,
            reason,
            excluded,
            kind,
        } => to_any(&hpc::MsgRequestReschedule {
            requester: me,
            job_id,
            reason,
            excluded_cluster_ids: excluded,
            kind: kind.map_or(hpc::RescheduleKind::Unspecified, Into::into) as i32,
        }),
        HpcTx::RecordAudit { file } => to_any(&hpc::MsgRecordRoutingAudit {
            provider: me,
            records: read_json("FILE", &file)?,
        }),
        HpcTx::ReportViolation { file } => to_any(&hpc::MsgReportRoutingViolation {
            reporter: me,
            violations: read_json("FILE", &file)?,
        }),
        HpcTx::ResolveViolation {
            violation_id,
            resolution,
        } => to_any(&hpc::MsgResolveRoutingViolation {
            authority: me,
            violation_id,
            resolution,
        }),
        HpcTx::ReportJobStatus {
            job_id,
            status,
            message,
            exit_code,
            local_job_id,
        } => to_any(&hpc::MsgReportJobStatus {
            provider: me,
            job_id,
            status: hpc::JobState::from(status) as i32,
            message,
            exit_code,
            local_job_id,
        }),
        HpcTx::UpdateParams { file } => {
            // UpdateParams replaces every field: lay the file over the params in force.
            let overrides = read_params_overrides("FILE", &file)?;
            let client = ChainClient::new(conn.transport()?, args.chain_id.clone()).await?;
            let (current, _) = client.hpc_params().await?;
            let msg = to_any(&hpc::MsgUpdateParams {
                authority: me,
                params: Some(params_with_overrides(&current, overrides, "FILE", &file)?),
            });
            return sign_broadcast_print(&client, &key, vec![msg], args, conn, out, input).await;
        }
    };
    let client = ChainClient::new(conn.transport()?, args.chain_id.clone()).await?;
    sign_broadcast_print(&client, &key, vec![msg], args, conn, out, input).await
}

// Pagination flags (Cosmos names).
#[derive(Args, Clone, Debug, Default)]
pub struct PageArgs {
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    /// The next_key of the previous page (base64).
    #[arg(long)]
    pub page_key: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    #[arg(long)]
    pub count_total: bool,
}

impl PageArgs {
    fn request(&self) -> Result<Option<PageRequest>> {
        use base64::Engine;
        let key = match &self.page_key {
            Some(k) => base64::engine::general_purpose::STANDARD
                .decode(k)
                .map_err(|e| ClientError::invalid("--page-key", e))?,
            None => Vec::new(),
        };
        Ok(Some(PageRequest {
            key,
            offset: self.offset,
            limit: self.limit,
            count_total: self.count_total,
            reverse: false,
        }))
    }
}

#[derive(Subcommand, Clone, Debug)]
pub enum HpcQuery {
    /// Module params and authority.
    Params,
    /// One cluster: provider, region, capacity, state, price, reputation.
    Cluster { cluster_id: String },
    /// Registered clusters, by cluster id (filter by provider and state).
    Clusters {
        /// Only this provider's clusters.
        #[arg(long)]
        provider: Option<String>,
        /// Only clusters in this state.
        #[arg(long, value_enum)]
        state: Option<ClusterStateArg>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One job: owner, requirements, workload, state, routed cluster, exit code.
    Job {
        job_id: String,
        #[command(flatten)]
        prove: ProveArg,
    },
    /// Jobs, by job id (filter by owner, provider and state).
    Jobs {
        /// Only this owner's jobs.
        #[arg(long)]
        owner: Option<String>,
        /// Only jobs scheduled to this provider's clusters.
        #[arg(long)]
        provider: Option<String>,
        /// Only jobs in this state.
        #[arg(long, value_enum)]
        state: Option<JobStateArg>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One scheduling decision: job, cluster, score, fallback, block of the decision.
    Decision {
        decision_id: String,
        #[command(flatten)]
        prove: ProveArg,
    },
    /// The current decision of a job and its history.
    DecisionByJob { job_id: String },
    /// The candidate table of a decision: why each cluster won or lost.
    Explain {
        decision_id: Option<String>,
        #[arg(long)]
        job: Option<String>,
    },
    /// Dry-run the scheduler for a job spec against current state (no tx).
    SimulateSchedule {
        #[command(flatten)]
        spec: JobSpec,
        #[arg(long = "exclude")]
        excluded: Vec<String>,
    },
    /// One routing audit record: where a provider ran (or refused) a job, and why.
    AuditRecord {
        record_id: String,
        #[command(flatten)]
        prove: ProveArg,
    },
    /// Routing audit records (filter by job, provider or decision).
    AuditRecords {
        /// Only this job's records.
        #[arg(long)]
        job: Option<String>,
        /// Only this provider's records.
        #[arg(long)]
        provider: Option<String>,
        /// Only this decision's records.
        #[arg(long)]
        decision: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One routing violation: type, severity, job, cluster, reporter, resolution.
    Violation {
        violation_id: String,
        #[command(flatten)]
        prove: ProveArg,
    },
    /// Routing violations (filter by provider, type, job, decision or unresolved).
    Violations {
        /// Only violations against this provider.
        #[arg(long)]
        provider: Option<String>,
        /// Only violations of this type.
        #[arg(long = "type", value_enum)]
        violation_type: Option<ViolationTypeArg>,
        /// Only violations not resolved yet.
        #[arg(long)]
        unresolved: bool,
        /// Only this job's violations.
        #[arg(long)]
        job: Option<String>,
        /// Only this decision's violations.
        #[arg(long)]
        decision: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// A provider's unresolved and total violation counts.
    ViolationCount { provider: String },
}

fn check_address(field: &str, value: &Option<String>) -> Result<String> {
    match value {
        None => Ok(String::new()),
        Some(v) => v
            .parse::<Address>()
            .map(|a| a.to_string())
            .map_err(|e| ClientError::invalid(field, e)),
    }
}

/// `--prove` on the queries of single records.
#[derive(Args, Clone, Debug)]
pub struct ProveArg {
    /// Print the record (or its absence) with its Merkle proof and the signed header that
    /// commits it, as JSON, to check with `hpcd verify` (needs --node).
    #[arg(long)]
    prove: bool,
}

/// Prints the proof of a record at the query height (default: the newest provable one).
async fn print_proof(
    kind: RecordKind,
    id: &str,
    client: &ChainClient,
    out: &mut dyn Write,
) -> Result<()> {
    let (rpc, url) = client.transport.cometbft("--prove")?;
    let height = (client.query_height > 0).then_some(client.query_height);
    let proof = crate::proof::fetch_proof(rpc, url, kind, id, height).await?;
    // Always JSON: a proof is meant to be saved and verified.
    print(out, OutputFormat::Json, &proof).map_err(ClientError::Output)
}

async fn ask<Req, Resp>(
    client: &ChainClient,
    method: &str,
    req: Req,
    conn: &ConnectionArgs,
    out: &mut dyn Write,
) -> Result<()>
where
    Req: prost::Message + Clone + 'static,
    Resp: prost::Message + Default + Serialize + 'static,
{
    let path = format!("/virtengine.hpc.v1.Query/{method}");
    let resp: Resp = client
        .transport
        .query(&path, &req, client.query_height)
        .await?;
    print(out, conn.output, &resp).map_err(ClientError::Output)
}

pub async fn run_hpc_query(
    cmd: HpcQuery,
    client: &ChainClient,
    conn: &ConnectionArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let c = client;
    match cmd {
        HpcQuery::Params => {
            ask::<_, hpc::QueryParamsResponse>(c, "Params", hpc::QueryParamsRequest {}, conn, out)
                .await
        }
        HpcQuery::Cluster { cluster_id } => {
            ask::<_, hpc::QueryClusterResponse>(
                c,
                "Cluster",
                hpc::QueryClusterRequest { cluster_id },
                conn,
                out,
            )
            .await
        }
        HpcQuery::Clusters {
            provider,
            state,
            page,
        } => {
            let req = hpc::QueryClustersRequest {
                provider_address: check_address("--provider", &provider)?,
                state: state.map_or(0, |s| hpc::ClusterState::from(s) as i32),
                pagination: page.request()?,
            };
            ask::<_, hpc::QueryClustersResponse>(c, "Clusters", req, conn, out).await
        }
        HpcQuery::Job { job_id, prove } if prove.prove => {
            print_proof(RecordKind::Job, &job_id, c, out).await
        }
        HpcQuery::Job { job_id, .. } => {
            ask::<_, hpc::QueryJobResponse>(c, "Job", hpc::QueryJobRequest { job_id }, conn, out)
                .await
        }
        HpcQuery::Jobs {
            owner,
            provider,
            state,
            page,
        } => {
            let req = hpc::QueryJobsRequest {
                owner: check_address("--owner", &owner)?,
                provider_address: check_address("--provider", &provider)?,
                state: state.map_or(0, |s| hpc::JobState::from(s) as i32),
                pagination: page.request()?,
            };
            ask::<_, hpc::QueryJobsResponse>(c, "Jobs", req, conn, out).await
        }
        HpcQuery::Decision { decision_id, prove } if prove.prove => {
            print_proof(RecordKind::Decision, &decision_id, c, out).await
        }
        HpcQuery::Decision { decision_id, .. } => {
            ask::<_, hpc::QuerySchedulingDecisionResponse>(
                c,
                "SchedulingDecision",
                hpc::QuerySchedulingDecisionRequest { decision_id },
                conn,
                out,
            )
            .await
        }
        HpcQuery::DecisionByJob { job_id } => {
            ask::<_, hpc::QuerySchedulingDecisionByJobResponse>(
                c,
                "SchedulingDecisionByJob",
                hpc::QuerySchedulingDecisionByJobRequest { job_id },
                conn,
                out,
            )
            .await
        }
        HpcQuery::Explain { decision_id, job } => {
            if decision_id.is_none() && job.is_none() {
                return Err(ClientError::invalid(
                    "DECISION_ID",
                    "give a decision id or --job JOB_ID",
                ));
            }
            let req = hpc::QueryExplainDecisionRequest {
                decision_id: decision_id.unwrap_or_default(),
                job_id: job.unwrap_or_default(),
            };
            ask::<_, hpc::QueryExplainDecisionResponse>(c, "ExplainDecision", req, conn, out).await
        }
        HpcQuery::SimulateSchedule { spec, excluded } => {
            let req = hpc::QuerySimulateScheduleRequest {
                requirements: Some(spec.requirements()),
                policy: spec.policy()?,
                excluded_cluster_ids: excluded,
            };
            ask::<_, hpc::QuerySimulateScheduleResponse>(c, "SimulateSchedule", req, conn, out)
                .await
        }
        HpcQuery::AuditRecord { record_id, prove } if prove.prove => {
            print_proof(RecordKind::AuditRecord, &record_id, c, out).await
        }
        HpcQuery::AuditRecord { record_id, .. } => {
            ask::<_, hpc::QueryRoutingAuditRecordResponse>(
                c,
                "RoutingAuditRecord",
                hpc::QueryRoutingAuditRecordRequest { record_id },
                conn,
                out,
            )
            .await
        }
        HpcQuery::AuditRecords {
            job,
            provider,
            decision,
            page,
        } => {
            let req = hpc::QueryRoutingAuditRecordsRequest {
                job_id: job.unwrap_or_default(),
                provider_address: check_address("--provider", &provider)?,
                decision_id: decision.unwrap_or_default(),
                pagination: page.request()?,
            };
            ask::<_, hpc::QueryRoutingAuditRecordsResponse>(
                c,
                "RoutingAuditRecords",
                req,
                conn,
                out,
            )
            .await
        }
        HpcQuery::Violation {
            violation_id,
            prove,
        } if prove.prove => print_proof(RecordKind::Violation, &violation_id, c, out).await,
        HpcQuery::Violation { violation_id, .. } => {
            ask::<_, hpc::QueryRoutingViolationResponse>(
                c,
                "RoutingViolation",
                hpc::QueryRoutingViolationRequest { violation_id },
                conn,
                out,
            )
            .await
        }
        HpcQuery::Violations {
            provider,
            violation_type,
            unresolved,
            job,
            decision,
            page,
        } => {
            let req = hpc::QueryRoutingViolationsRequest {
                provider_address: check_address("--provider", &provider)?,
                violation_type: violation_type.map_or(0, |t| hpc::ViolationType::from(t) as i32),
                unresolved_only: unresolved,
                job_id: job.unwrap_or_default(),
                decision_id: decision.unwrap_or_default(),
                pagination: page.request()?,
            };
            ask::<_, hpc::QueryRoutingViolationsResponse>(c, "RoutingViolations", req, conn, out)
                .await
        }
        HpcQuery::ViolationCount { provider } => {
            let req = hpc::QueryViolationCountRequest {
                provider_address: check_address("PROVIDER", &Some(provider))?,
            };
            ask::<_, hpc::QueryViolationCountResponse>(c, "ViolationCount", req, conn, out).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_reschedule_states_a_typed_kind() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            tx: HpcTx,
        }
        let parse = |args: &[&str]| {
            let mut argv = vec!["hpcd", "request-reschedule", "hpc-job-1"];
            argv.extend_from_slice(args);
            <Cli as clap::Parser>::try_parse_from(argv).map(|c| match c.tx {
                HpcTx::RequestReschedule { kind, .. } => kind.map(hpc::RescheduleKind::from),
                other => panic!("{other:?}"),
            })
        };
        assert_eq!(
            parse(&["--kind", "provider-fallback", "--reason", "x"]).unwrap(),
            Some(hpc::RescheduleKind::ProviderFallback)
        );
        assert_eq!(
            parse(&["--kind", "owner-request"]).unwrap(),
            Some(hpc::RescheduleKind::OwnerRequest)
        );
        assert_eq!(parse(&["--reason", "fallback: x"]).unwrap(), None);
        assert!(parse(&["--kind", "fallback"]).is_err());
    }

    #[test]
    fn seed_shaped_records_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, r#"[{"record_id":"routing-audit-123","job_id":"hpc-job-456","scheduling_decision_id":"hpc-decision-789",
            "expected_cluster_id":"cluster-1","actual_cluster_id":"cluster-1","status":"approved","reason":"Job routed to scheduled cluster",
            "is_fallback":false,"decision_age_blocks":5,"decision_age_seconds":30,"provider_address":"virtengine1...",
            "created_at":"2024-01-15T10:30:00Z","enforcement_mode":"strict"}]"#).unwrap();
        let records: Vec<hpc::RoutingAuditRecord> = read_json("FILE", &path).unwrap();
        assert_eq!(records[0].status(), hpc::AuditStatus::Approved);
        assert_eq!(records[0].enforcement_mode(), hpc::EnforcementMode::Strict);
        std::fs::write(&path, r#"[{"status":"aproved"}]"#).unwrap();
        assert!(read_json::<Vec<hpc::RoutingAuditRecord>>("FILE", &path)
            .unwrap_err()
            .to_string()
            .contains("FILE"));
    }

    #[test]
    fn update_params_file_changes_only_the_fields_it_names() {
        let current = hpc::Params {
            routing_enforcement_enabled: true,
            routing_enforcement_mode: hpc::EnforcementMode::Strict as i32,
            max_decision_age_blocks: 100,
            allow_provider_fallback: true,
            max_batch_size: 50,
            default_weights: Some(hpc::ScoringWeights {
                latency_bps: 4000,
                price_bps: 3000,
                reputation_bps: 2000,
                queue_bps: 1000,
            }),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(
            &path,
            r#"{"max_batch_size": "20", "routingEnforcementMode": "permissive", "default_weights": {"queue_bps": 1500}}"#,
        )
        .unwrap();
        let overrides = read_params_overrides("FILE", &path).unwrap();
        let merged = params_with_overrides(&current, overrides, "FILE", &path).unwrap();
        assert_eq!(merged.max_batch_size, 20);
        assert_eq!(
            merged.routing_enforcement_mode(),
            hpc::EnforcementMode::Permissive
        );
        let weights = merged.default_weights.unwrap();
        assert_eq!((weights.latency_bps, weights.queue_bps), (4000, 1500));
        // Untouched: booleans stay true, numbers keep their values.
        assert!(merged.routing_enforcement_enabled && merged.allow_provider_fallback);
        assert_eq!(merged.max_decision_age_blocks, 100);

        for (text, expected) in [
            (r#"{"max_batch_sise": 1}"#, "unknown field"),
            (r#"[1]"#, "expected a JSON object"),
            (r#"{"max_batch_size": "many"}"#, "FILE"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = read_params_overrides("FILE", &path)
                .and_then(|o| params_with_overrides(&current, o, "FILE", &path))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expected) && err.contains("FILE"),
                "{text}: {err}"
            );
        }
    }
}
