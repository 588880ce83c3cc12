//! The x/hpc contract between the chain and its clients, in the one place both import:
//! the chain (`hpc-state`) raises these codes, emits these events and applies these id
//! rules; the client library, the enforcer and its outbox branch on them (never on the
//! text of an error or a hand-written copy of a name).
//!
//! - [`codes`] / [`sdk_codes`]: the `(codespace, code)` pairs of failed txs, and
//!   [`code_in`] to read one from a text that carries it only in words (simulation
//!   failures);
//! - [`events`] / [`attrs`]: event types and attribute keys;
//! - [`ids`]: the id rules and limits, including the signer namespaces of client-chosen
//!   record and violation ids;
//! - [`submission`]: when a stored audit record or violation *is* a given submission (what
//!   "already recorded" means);
//! - [`reschedule`]: the kinds of a reschedule and who may ask for which;
//! - [`store`]: the store keys of records and the ICS-23 spec that proves them.

use hpc_proto::virtengine::hpc::v1::{
    RequesterRole, RescheduleKind, RoutingAuditRecord, RoutingViolation, SchedulingDecision,
};

/// x/hpc's codespace and codes (stateful failures; stateless ones use [`sdk_codes`]).
pub mod codes {
    /// The codespace of every x/hpc code.
    pub const CODESPACE: &str = "hpc";
    pub const CLUSTER_EXISTS: u32 = 2;
    pub const CLUSTER_NOT_FOUND: u32 = 3;
    pub const NOT_RESOURCE_OWNER: u32 = 4;
    pub const JOB_NOT_FOUND: u32 = 5;
    pub const NO_ELIGIBLE_CLUSTER: u32 = 6;
    pub const INVALID_JOB_STATE: u32 = 7;
    pub const DECISION_NOT_FOUND: u32 = 8;
    /// The signer already recorded this very audit record (same id, same content): a
    /// resubmission, safe to treat as delivered.
    pub const DUPLICATE_RECORD: u32 = 9;
    pub const DECISION_MISMATCH: u32 = 10;
    pub const CLUSTER_MISMATCH_REFUSED: u32 = 11;
    pub const VIOLATION_NOT_FOUND: u32 = 12;
    /// The signer already reported this very violation (same id, same content).
    pub const DUPLICATE_VIOLATION: u32 = 13;
    pub const BATCH_TOO_LARGE: u32 = 14;
    pub const INVALID_PARAMS: u32 = 15;
    pub const ALREADY_RESOLVED: u32 = 16;
    pub const CLUSTER_DEREGISTERED: u32 = 17;
    /// Another audit record (other content, or another signer's) is stored under this
    /// `record_id`: the submission was **not** recorded.
    pub const RECORD_ID_CONFLICT: u32 = 18;
    /// Another violation is stored under this `violation_id`: not recorded.
    pub const VIOLATION_ID_CONFLICT: u32 = 19;
}

/// The Cosmos SDK codes x/hpc clients branch on.
pub mod sdk_codes {
    /// The codespace of the Cosmos SDK's own codes.
    pub const CODESPACE: &str = "sdk";
    /// A field of the request is invalid (every x/hpc stateless check).
    pub const INVALID_REQUEST: u32 = 18;
    /// The requested item does not exist (queries over `abci_query`).
    pub const NOT_FOUND: u32 = 22;
    /// Account sequence mismatch.
    pub const WRONG_SEQUENCE: u32 = 32;
}

/// How the chain writes a code into a text: `(codespace hpc, code 9)` (tx errors and
/// simulation failures).
pub fn code_text(codespace: &str, code: u32) -> String {
    format!("(codespace {codespace}, code {code})")
}

/// The `(codespace, code)` written into `text` by [`code_text`], if any.
pub fn code_in(text: &str) -> Option<(&str, u32)> {
    const START: &str = "(codespace ";
    let rest = &text[text.find(START)? + START.len()..];
    let (codespace, rest) = rest.split_once(", code ")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((codespace, rest[..digits].parse().ok()?))
}

/// Event types emitted by x/hpc.
pub mod events {
    pub const CLUSTER_REGISTERED: &str = "hpc_cluster_registered";
    pub const CLUSTER_UPDATED: &str = "hpc_cluster_updated";
    pub const JOB_SCHEDULED: &str = "hpc_job_scheduled";
    pub const JOB_RESCHEDULED: &str = "hpc_job_rescheduled";
    pub const JOB_ROUTED: &str = "hpc_job_routed";
    pub const ROUTING_AUDIT_RECORDED: &str = "hpc_routing_audit_recorded";
    pub const ROUTING_VIOLATION: &str = "hpc_routing_violation";
    pub const ROUTING_VIOLATION_THRESHOLD_EXCEEDED: &str =
        "hpc_routing_violation_threshold_exceeded";
    pub const ROUTING_VIOLATION_RESOLVED: &str = "hpc_routing_violation_resolved";
    pub const JOB_STATUS: &str = "hpc_job_status";
    pub const JOB_CANCELLED: &str = "hpc_job_cancelled";
    pub const PARAMS_UPDATED: &str = "hpc_params_updated";

    /// Every event type above (a node indexes them whole by default).
    pub const ALL: &[&str] = &[
        CLUSTER_REGISTERED,
        CLUSTER_UPDATED,
        JOB_SCHEDULED,
        JOB_RESCHEDULED,
        JOB_ROUTED,
        ROUTING_AUDIT_RECORDED,
        ROUTING_VIOLATION,
        ROUTING_VIOLATION_THRESHOLD_EXCEEDED,
        ROUTING_VIOLATION_RESOLVED,
        JOB_STATUS,
        JOB_CANCELLED,
        PARAMS_UPDATED,
    ];
}

/// The Cosmos SDK's events as the chain emits them (ante handler, message router, bank):
/// types and attribute keys, written by the state machine and named by a node's
/// `index-events`.
pub mod sdk_events {
    pub const TX: &str = "tx";
    pub const MESSAGE: &str = "message";
    pub const COIN_SPENT: &str = "coin_spent";
    pub const COIN_RECEIVED: &str = "coin_received";
    pub const TRANSFER: &str = "transfer";

    /// Attribute keys.
    pub mod attrs {
        pub const FEE: &str = "fee";
        pub const FEE_PAYER: &str = "fee_payer";
        pub const ACC_SEQ: &str = "acc_seq";
        pub const SIGNATURE: &str = "signature";
        pub const ACTION: &str = "action";
        pub const SENDER: &str = "sender";
        pub const MODULE: &str = "module";
        pub const MSG_INDEX: &str = "msg_index";
        pub const SPENDER: &str = "spender";
        pub const RECEIVER: &str = "receiver";
        pub const RECIPIENT: &str = "recipient";
        pub const AMOUNT: &str = "amount";
    }
}

/// Attribute keys of x/hpc events.
pub mod attrs {
    pub const JOB_ID: &str = "job_id";
    pub const DECISION_ID: &str = "decision_id";
    pub const OLD_DECISION_ID: &str = "old_decision_id";
    pub const NEW_DECISION_ID: &str = "new_decision_id";
    pub const CLUSTER_ID: &str = "cluster_id";
    /// The provider of the decision's / record's cluster (job and routing events).
    pub const PROVIDER: &str = "provider";
    /// The provider held responsible (violation events).
    pub const PROVIDER_ADDRESS: &str = "provider_address";
    pub const STATUS: &str = "status";
    pub const IS_FALLBACK: &str = "is_fallback";
    pub const RECORD_ID: &str = "record_id";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const REASON: &str = "reason";
    /// The reschedule kind ([`super::reschedule::kind_name`]).
    pub const KIND: &str = "kind";
    pub const REQUESTED_BY: &str = "requested_by";
    /// The requester's role ([`super::reschedule::role_name`]).
    pub const REQUESTER_ROLE: &str = "requester_role";
    pub const VIOLATION_ID: &str = "violation_id";
    pub const VIOLATION_TYPE: &str = "violation_type";
    pub const SEVERITY: &str = "severity";
    pub const REPORTER: &str = "reporter";
    pub const UNRESOLVED_COUNT: &str = "unresolved_count";
    pub const THRESHOLD: &str = "threshold";
    pub const RESOLUTION: &str = "resolution";
    /// `hpc_job_status`: the workload's exit code (empty when none was reported).
    pub const EXIT_CODE: &str = "exit_code";
    /// `hpc_job_status`: the provider's local scheduler id of the job.
    pub const LOCAL_JOB_ID: &str = "local_job_id";
    /// `hpc_routing_audit_recorded` / `hpc_job_routed`: the record's reason code.
    pub const REASON_CODE: &str = "reason_code";
    /// `hpc_job_scheduled`: the decision's score in basis points.
    pub const SCORE: &str = "score";
    /// Cluster events: the cluster's region, nodes, state and health.
    pub const REGION: &str = "region";
    pub const TOTAL_NODES: &str = "total_nodes";
    pub const AVAILABLE_NODES: &str = "available_nodes";
    pub const STATE: &str = "state";
    pub const HEALTH: &str = "health";
    /// `hpc_params_updated`: who changed the params.
    pub const AUTHORITY: &str = "authority";
}

/// Where x/hpc records live in the chain's authenticated store and what proves them, so a
/// client can prove a record from its id alone (the keeper writes records under these keys).
pub mod store {
    /// The `abci_query` path of raw-key reads (data = key); with `prove`, the answer carries
    /// one [`PROOF_OP_TYPE`] proof op.
    pub const QUERY_PATH: &str = "/store/main/key";
    /// The proof op of a raw-key read: an ICS-23 `CommitmentProof` (existence or
    /// non-existence) against the app hash, checked with [`proof_spec`].
    pub const PROOF_OP_TYPE: &str = "ics23:jmt";

    pub const JOB: &[u8] = b"hpc/j/";
    pub const DECISION: &[u8] = b"hpc/d/";
    pub const AUDIT_RECORD: &[u8] = b"hpc/a/";
    pub const VIOLATION: &[u8] = b"hpc/v/";

    /// The store key of the record `id` under `prefix` (one of the constants above).
    pub fn key(prefix: &[u8], id: &str) -> Vec<u8> {
        [prefix, id.as_bytes()].concat()
    }

    /// The ICS-23 spec of the chain's store, a sha256 Jellyfish Merkle tree whose root is
    /// the app hash. Keys are compared by their sha256 (`prehash_key_before_comparison`),
    /// which is how the tree orders its leaves; non-existence proofs depend on it.
    pub fn proof_spec() -> ics23::ProofSpec {
        use ics23::{HashOp, InnerSpec, LeafOp, LengthOp, ProofSpec};
        ProofSpec {
            leaf_spec: Some(LeafOp {
                hash: HashOp::Sha256.into(),
                prehash_key: HashOp::Sha256.into(),
                prehash_value: HashOp::Sha256.into(),
                length: LengthOp::NoPrefix.into(),
                prefix: b"JMT::LeafNode".to_vec(),
            }),
            inner_spec: Some(InnerSpec {
                hash: HashOp::Sha256.into(),
                child_order: vec![0, 1],
                min_prefix_length: 16,
                max_prefix_length: 16,
                child_size: 32,
                empty_child: b"SPARSE_MERKLE_PLACEHOLDER_HASH__".to_vec(),
            }),
            min_depth: 0,
            max_depth: 64,
            prehash_key_before_comparison: true,
        }
    }
}

/// Limits of the free-text fields and of txs.
pub mod limits {
    /// Longest free-text field (reasons, details, resolutions, status messages), in bytes.
    pub const MAX_TEXT_LEN: usize = 1_024;
    /// Most messages one tx may carry (audit and violation batches go inside one message;
    /// job status reports go one message each, several per tx).
    pub const MAX_MSGS_PER_TX: usize = 64;
    /// Page size of a list query that gives none, and the largest one served.
    pub const DEFAULT_PAGE_LIMIT: u64 = 100;
    pub const MAX_PAGE_LIMIT: u64 = 1_000;
    /// Most stored keys one list query examines: those skipped by `offset`, refused by a
    /// filter, counted for `count_total` or returned, and the deleted keys a store still
    /// keeps for older heights, so a query's work is bounded as a tx's is by gas. A page
    /// that reaches it early ends with fewer items and a `next_key`; an `offset` or a
    /// `count_total` that would pass it is refused, naming the field.
    pub const MAX_SCANNED_ENTRIES: u64 = 100_000;
}

/// Id rules and limits.
pub mod ids {
    use crate::address::BECH32_PREFIX;

    /// Longest id accepted anywhere (ids are length-prefixed with one byte in keys).
    pub const MAX_ID_LEN: usize = 128;

    /// Prefix of every id the chain assigns (`hpc-job-N`, `hpc-decision-N`,
    /// `hpc-violation-N`); client-chosen ids may not use it.
    pub const CHAIN_ID_PREFIX: &str = "hpc-";

    /// Separates a namespace (a bech32 address) from the local part of an id.
    pub const NAMESPACE_SEPARATOR: char = ':';

    /// Client-chosen ids: 1-[`MAX_ID_LEN`] bytes of `A-Z a-z 0-9 . _ : -`.
    pub fn is_valid(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    }

    /// `<owner>:<local>`: an id in `owner`'s namespace, which only `owner` may use.
    pub fn scoped(owner: &str, local: &str) -> String {
        format!("{owner}{NAMESPACE_SEPARATOR}{local}")
    }

    /// The namespace an id is in: the part before the first `:` when it starts like an
    /// account address (`virtengine1…`). Ids without one are not namespaced (first come,
    /// first served).
    pub fn namespace(id: &str) -> Option<&str> {
        let (ns, _) = id.split_once(NAMESPACE_SEPARATOR)?;
        let hrp = ns.strip_prefix(BECH32_PREFIX)?;
        hrp.starts_with('1').then_some(ns)
    }

    /// Whether `signer` may record under `id`: ids in a namespace belong to its address.
    pub fn usable_by(id: &str, signer: &str) -> bool {
        namespace(id).is_none_or(|ns| ns == signer)
    }
}

/// When a stored item is a given submission. Only the fields the submitter controls are
/// compared; what the chain sets itself (heights, times, decision ages, chain-detected
/// violation ids, resolution) is not. The signer is part of the identity: another signer's
/// item under the same id is never "the same".
pub mod submission {
    use super::*;

    /// Whether `stored` is `submitted` as recorded by `signer` (x/hpc code 9 on chain; the
    /// only "already delivered" an outbox may accept).
    pub fn same_audit(
        stored: &RoutingAuditRecord,
        submitted: &RoutingAuditRecord,
        signer: &str,
    ) -> bool {
        // With a decision the chain fills expected_cluster_id from it (a given one must
        // match); without, it stores what was sent.
        let expected = if submitted.expected_cluster_id.is_empty()
            && !submitted.scheduling_decision_id.is_empty()
        {
            true
        } else {
            stored.expected_cluster_id == submitted.expected_cluster_id
        };
        stored.provider_address == signer
            && (submitted.provider_address.is_empty() || submitted.provider_address == signer)
            && stored.record_id == submitted.record_id
            && stored.job_id == submitted.job_id
            && stored.scheduling_decision_id == submitted.scheduling_decision_id
            && expected
            && stored.actual_cluster_id == submitted.actual_cluster_id
            && stored.status == submitted.status
            && stored.reason == submitted.reason
            && stored.is_fallback == submitted.is_fallback
            && stored.enforcement_mode == submitted.enforcement_mode
            && stored.fallback_reason == submitted.fallback_reason
            && stored.reason_code == submitted.reason_code
    }

    /// Whether `stored` is `submitted` as reported by `signer` (x/hpc code 13 on chain).
    pub fn same_violation(
        stored: &RoutingViolation,
        submitted: &RoutingViolation,
        signer: &str,
    ) -> bool {
        let severity = if submitted.severity == 0 {
            submitted.violation_type().default_severity()
        } else {
            submitted.severity
        };
        stored.reporter == signer
            && stored.violation_id == submitted.violation_id
            && stored.job_id == submitted.job_id
            && stored.decision_id == submitted.decision_id
            && stored.violation_type == submitted.violation_type
            && stored.severity == severity
            && stored.expected_cluster_id == submitted.expected_cluster_id
            && stored.actual_cluster_id == submitted.actual_cluster_id
            && stored.provider_address == submitted.provider_address
            && stored.details == submitted.details
            && (submitted.correlation_id.is_empty()
                || stored.correlation_id == submitted.correlation_id)
    }
}

/// Reschedule kinds and who may ask for which.
pub mod reschedule {
    use super::*;

    /// Whether `kind` is one only the provider of the job's current cluster may state.
    pub fn is_provider_kind(kind: RescheduleKind) -> bool {
        matches!(
            kind,
            RescheduleKind::Refresh
                | RescheduleKind::ProviderFallback
                | RescheduleKind::MissingDecision
        )
    }

    /// The kind and role the chain records for a request stating `requested`, from a
    /// signer who is the job's owner and/or the provider of its current decision's cluster.
    /// `Err` says why the signer may not state that kind.
    pub fn resolve(
        requested: RescheduleKind,
        is_owner: bool,
        is_provider: bool,
    ) -> Result<(RescheduleKind, RequesterRole), String> {
        match requested {
            RescheduleKind::Unspecified | RescheduleKind::OwnerRequest if is_owner => {
                Ok((RescheduleKind::OwnerRequest, RequesterRole::Owner))
            }
            RescheduleKind::Unspecified if is_provider => {
                Ok((RescheduleKind::Unspecified, RequesterRole::Provider))
            }
            k if is_provider_kind(k) && is_provider => Ok((k, RequesterRole::Provider)),
            RescheduleKind::OwnerRequest => {
                Err("only the job's owner may request an owner_request reschedule".into())
            }
            k => Err(format!(
                "only the provider of the job's current cluster may request a {} reschedule",
                kind_name(k)
            )),
        }
    }

    /// The provider kind of a replacement decision, when the chain recorded one from the
    /// provider of the job's previous decision; `None` for a first decision, an owner's
    /// request or a provider request without a kind. The only input an enforcer may trust
    /// to audit a decision as a replacement (never `reschedule_reason`).
    pub fn provider_kind(d: &SchedulingDecision) -> Option<RescheduleKind> {
        let kind = d.reschedule_kind();
        (!d.previous_decision_id.is_empty()
            && d.requester_role() == RequesterRole::Provider
            && is_provider_kind(kind))
        .then_some(kind)
    }

    /// The name in events (`provider_fallback`).
    pub fn kind_name(kind: RescheduleKind) -> &'static str {
        match kind {
            RescheduleKind::Unspecified => "unspecified",
            RescheduleKind::Refresh => "refresh",
            RescheduleKind::ProviderFallback => "provider_fallback",
            RescheduleKind::MissingDecision => "missing_decision",
            RescheduleKind::OwnerRequest => "owner_request",
        }
    }

    /// The name in events (`owner`, `provider`).
    pub fn role_name(role: RequesterRole) -> &'static str {
        match role {
            RequesterRole::Unspecified => "unspecified",
            RequesterRole::Owner => "owner",
            RequesterRole::Provider => "provider",
        }
    }
}

/// Machine-readable reasons of audit records (`RoutingAuditRecord.reason_code`): the
/// enforcer writes them, clients filter on them.
pub mod reason_codes {
    /// Longest reason code the chain accepts.
    pub const MAX_LEN: usize = 64;
    pub const CLUSTER_UNAVAILABLE: &str = "cluster_unavailable";
    pub const CAPACITY_EXCEEDED: &str = "capacity_exceeded";
    pub const STALE_DECISION: &str = "stale_decision";
    pub const CLUSTER_MISMATCH: &str = "cluster_mismatch";
    pub const MISSING_DECISION: &str = "missing_decision";
    pub const UNAUTHORIZED_FALLBACK: &str = "unauthorized_fallback";
    /// The fetched script's size or sha256 differs from the job's content address.
    pub const WORKLOAD_DIGEST_MISMATCH: &str = "workload_digest_mismatch";
    /// The script's URI could not be fetched.
    pub const WORKLOAD_FETCH_FAILED: &str = "workload_fetch_failed";
    /// The provider's policy refuses the workload (partition, runtime, size, image, scheme).
    pub const WORKLOAD_POLICY_REFUSED: &str = "workload_policy_refused";
    /// Local audit log only: a job running here was moved to another decision (owner
    /// reschedule or fallback) and stopped here.
    pub const MOVED_ELSEWHERE: &str = "moved_elsewhere";
    /// Local audit log only: a job running here was cancelled on chain and stopped here.
    pub const CANCELLED_ON_CHAIN: &str = "cancelled_on_chain";

    /// `[a-z0-9_]{0,64}`: codes are free to extend, but stay short identifiers.
    pub fn is_valid(code: &str) -> bool {
        code.len() <= MAX_LEN
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }
}

/// What a job runs ([`JobWorkload`]): the rules every field must satisfy. The chain checks
/// them in a tx (with the params' limits) and the enforcer again before it runs anything.
pub mod workload {
    use hpc_proto::virtengine::hpc::v1::{job_workload::Source, JobWorkload};

    /// Longest `ContentAddress.uri`.
    pub const MAX_URI_LEN: usize = 2_048;
    /// Longest container image reference.
    pub const MAX_IMAGE_LEN: usize = 256;
    /// Longest env var name, partition and output name.
    pub const MAX_NAME_LEN: usize = 64;
    /// Longest single container argument.
    pub const MAX_ARG_LEN: usize = 4_096;
    /// Upper bounds of the params that size a workload (what one tx may carry).
    pub const MAX_INLINE_SCRIPT_BYTES_CAP: u32 = 262_144;
    pub const MAX_ENV_VARS_CAP: u32 = 256;
    pub const MAX_ENV_BYTES_CAP: u32 = 65_536;
    pub const MAX_ARGS_CAP: u32 = 256;
    /// Env names a job may not set: the enforcer and Slurm own them.
    pub const RESERVED_ENV_PREFIXES: &[&str] = &["HPC_", "SLURM_"];
    /// Output base name when `output_name` is empty.
    pub const DEFAULT_OUTPUT_NAME: &str = "job";

    /// The largest workload any params allow (what ValidateBasic checks without state).
    pub const HARD_CAPS: Limits = Limits {
        max_inline_script_bytes: MAX_INLINE_SCRIPT_BYTES_CAP,
        max_env_vars: MAX_ENV_VARS_CAP,
        max_env_bytes: MAX_ENV_BYTES_CAP,
        max_args: MAX_ARGS_CAP,
    };

    /// Sizes a workload may have (from the module params).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Limits {
        pub max_inline_script_bytes: u32,
        pub max_env_vars: u32,
        pub max_env_bytes: u32,
        pub max_args: u32,
    }

    /// A broken rule: the field (`workload.env[2].name`) and why.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("{field}: {reason}")]
    pub struct WorkloadError {
        pub field: String,
        pub reason: String,
    }

    fn err(field: impl Into<String>, reason: impl Into<String>) -> WorkloadError {
        WorkloadError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// `[A-Za-z0-9._-]{1,64}`, not `.` or `..` (partition and output names).
    pub fn is_plain_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    }

    /// `[A-Za-z_][A-Za-z0-9_]{0,63}`.
    pub fn is_env_name(name: &str) -> bool {
        let mut bytes = name.bytes();
        name.len() <= MAX_NAME_LEN
            && bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    /// The SHA-256 of `bytes` as `ContentAddress.sha256` writes it (lowercase hex).
    pub fn sha256_hex(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// 64 lowercase hex characters.
    pub fn is_sha256_hex(digest: &str) -> bool {
        digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// Every rule of a workload; the error names the first field that breaks one.
    pub fn validate(w: &JobWorkload, limits: &Limits) -> Result<(), WorkloadError> {
        match &w.source {
            None => {
                return Err(err(
                    "workload.source",
                    "set inline_script, script_ref or container",
                ))
            }
            Some(Source::InlineScript(script)) => validate_script(script, limits)?,
            Some(Source::ScriptRef(r)) => {
                if r.uri.is_empty()
                    || r.uri.len() > MAX_URI_LEN
                    || r.uri.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    return Err(err(
                        "workload.script_ref.uri",
                        format!(
                            "must be 1-{MAX_URI_LEN} bytes without spaces or control characters"
                        ),
                    ));
                }
                if !r.uri.contains("://") {
                    return Err(err(
                        "workload.script_ref.uri",
                        "must be an absolute URI (scheme://...)",
                    ));
                }
                if !is_sha256_hex(&r.sha256) {
                    return Err(err(
                        "workload.script_ref.sha256",
                        "must be 64 lowercase hex characters",
                    ));
                }
                if r.size_bytes == 0 {
                    return Err(err("workload.script_ref.size_bytes", "must be at least 1"));
                }
            }
            Some(Source::Container(c)) => {
                if c.image.is_empty()
                    || c.image.len() > MAX_IMAGE_LEN
                    || c.image
                        .chars()
                        .any(|ch| ch.is_control() || ch.is_whitespace())
                {
                    return Err(err(
                        "workload.container.image",
                        format!(
                            "must be 1-{MAX_IMAGE_LEN} bytes without spaces or control characters"
                        ),
                    ));
                }
                if c.command.len() > limits.max_args as usize {
                    return Err(err(
                        "workload.container.command",
                        format!(
                            "{} arguments exceed max_workload_args {}",
                            c.command.len(),
                            limits.max_args
                        ),
                    ));
                }
                for (i, arg) in c.command.iter().enumerate() {
                    if arg.len() > MAX_ARG_LEN || arg.contains('\0') {
                        return Err(err(
                            format!("workload.container.command[{i}]"),
                            format!("must be at most {MAX_ARG_LEN} bytes without NUL"),
                        ));
                    }
                }
            }
        }
        validate_env(w, limits)?;
        if !w.partition.is_empty() && !is_plain_name(&w.partition) {
            return Err(err(
                "workload.partition",
                "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
            ));
        }
        if !w.output_name.is_empty() && !is_plain_name(&w.output_name) {
            return Err(err(
                "workload.output_name",
                "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-', not '.' or '..'",
            ));
        }
        Ok(())
    }

    /// An inline or fetched batch script: `#!` first, within the size limit, no NUL.
    pub fn validate_script(script: &[u8], limits: &Limits) -> Result<(), WorkloadError> {
        const FIELD: &str = "workload.inline_script";
        if script.len() > limits.max_inline_script_bytes as usize {
            return Err(err(
                FIELD,
                format!(
                    "{} bytes exceed max_inline_script_bytes {}",
                    script.len(),
                    limits.max_inline_script_bytes
                ),
            ));
        }
        if !script.starts_with(b"#!") {
            return Err(err(FIELD, "must start with \"#!\" (an interpreter line)"));
        }
        if script.contains(&0) {
            return Err(err(FIELD, "must not contain NUL bytes"));
        }
        Ok(())
    }

    fn validate_env(w: &JobWorkload, limits: &Limits) -> Result<(), WorkloadError> {
        if w.env.len() > limits.max_env_vars as usize {
            return Err(err(
                "workload.env",
                format!(
                    "{} variables exceed max_workload_env_vars {}",
                    w.env.len(),
                    limits.max_env_vars
                ),
            ));
        }
        let mut total = 0usize;
        for (i, var) in w.env.iter().enumerate() {
            if !is_env_name(&var.name) {
                return Err(err(
                    format!("workload.env[{i}].name"),
                    "must match [A-Za-z_][A-Za-z0-9_]* and be at most 64 characters",
                ));
            }
            if RESERVED_ENV_PREFIXES
                .iter()
                .any(|p| var.name.starts_with(p))
            {
                return Err(err(
                    format!("workload.env[{i}].name"),
                    format!(
                        "{} uses a reserved prefix ({})",
                        var.name,
                        RESERVED_ENV_PREFIXES.join(", ")
                    ),
                ));
            }
            if w.env[..i].iter().any(|other| other.name == var.name) {
                return Err(err(
                    format!("workload.env[{i}].name"),
                    format!("{} is set twice", var.name),
                ));
            }
            if var.value.contains('\0') {
                return Err(err(
                    format!("workload.env[{i}].value"),
                    "must not contain NUL",
                ));
            }
            total += var.name.len() + var.value.len();
        }
        if total > limits.max_env_bytes as usize {
            return Err(err(
                "workload.env",
                format!(
                    "{total} bytes exceed max_workload_env_bytes {}",
                    limits.max_env_bytes
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "virtengine1ldl9qrqrzexzp29udzx9h437zx9g2zy9caleyg";
    const Q: &str = "virtengine1mvdkzsx8x95x3939fvxgvhw0mreqv6k753s752";

    /// `events::ALL` lists every event type of the module (nodes index them whole by
    /// default): read from this file's source, so a new constant cannot be left out.
    #[test]
    fn every_event_type_is_in_all() {
        let source = include_str!("contract.rs");
        let module = &source[source.find("pub mod events {").unwrap()..];
        let module = &module[..module.find("\n}\n").unwrap()];
        let declared: Vec<&str> = module
            .split("&str =")
            .skip(1)
            .map(|rest| rest.split('"').nth(1).unwrap())
            .collect();
        assert_eq!(declared.len(), events::ALL.len(), "{declared:?}");
        for event in declared {
            assert!(
                events::ALL.contains(&event),
                "{event} is not in events::ALL"
            );
        }
    }

    #[test]
    fn codes_round_trip_through_text() {
        let log = format!("simulation failed {}: records[0]: …", code_text("hpc", 9));
        assert_eq!(code_in(&log), Some(("hpc", codes::DUPLICATE_RECORD)));
        assert_eq!(code_in("x (codespace sdk, code 32)"), Some(("sdk", 32)));
        assert_eq!(code_in("no code here"), None);
        assert_eq!(code_in("(codespace hpc, code x)"), None);
    }

    #[test]
    fn namespaced_ids_belong_to_their_address() {
        let id = ids::scoped(P, "ra-0123456789abcdef");
        assert!(ids::is_valid(&id), "{id}");
        assert_eq!(ids::namespace(&id), Some(P));
        assert!(ids::usable_by(&id, P));
        assert!(!ids::usable_by(&id, Q));
        // Anything that looks like an address namespace is one, valid or not.
        assert!(!ids::usable_by("virtengine1nonsense:x", P));
        // Plain ids are nobody's.
        for plain in ["routing-audit-1", "ra-1:x", "virtengine:x", "virtengine1x"] {
            assert_eq!(ids::namespace(plain), None, "{plain}");
            assert!(ids::usable_by(plain, Q));
        }
    }

    #[test]
    fn the_same_submission_needs_the_same_signer_and_content() {
        let submitted = RoutingAuditRecord {
            record_id: ids::scoped(P, "ra-1"),
            job_id: "hpc-job-1".into(),
            scheduling_decision_id: "hpc-decision-1".into(),
            actual_cluster_id: "cluster-a".into(),
            status: 1,
            reason: "job routed".into(),
            provider_address: P.into(),
            decision_age_blocks: 3,
            ..Default::default()
        };
        // As stored: chain-set fields differ.
        let stored = RoutingAuditRecord {
            expected_cluster_id: "cluster-a".into(),
            decision_age_blocks: 7,
            created_height: 9,
            ..submitted.clone()
        };
        assert!(submission::same_audit(&stored, &submitted, P));
        assert!(!submission::same_audit(&stored, &submitted, Q));
        let forged = RoutingAuditRecord {
            status: 3,
            provider_address: Q.into(),
            ..stored.clone()
        };
        assert!(!submission::same_audit(&forged, &submitted, P));
        let other = RoutingAuditRecord {
            reason: "other".into(),
            ..stored
        };
        assert!(!submission::same_audit(&other, &submitted, P));

        let v = RoutingViolation {
            violation_id: ids::scoped(P, "rv-1"),
            job_id: "hpc-job-1".into(),
            violation_type: 2,
            provider_address: P.into(),
            reporter: P.into(),
            ..Default::default()
        };
        let stored = RoutingViolation {
            severity: 2,
            correlation_id: "corr".into(),
            resolved: true,
            ..v.clone()
        };
        assert!(submission::same_violation(&stored, &v, P));
        assert!(!submission::same_violation(&stored, &v, Q));
        let moved = RoutingViolation {
            actual_cluster_id: "cluster-b".into(),
            ..stored
        };
        assert!(!submission::same_violation(&moved, &v, P));
    }

    #[test]
    fn only_providers_state_provider_kinds() {
        use reschedule::resolve;
        use RequesterRole as R;
        use RescheduleKind as K;
        assert_eq!(
            resolve(K::Unspecified, true, false),
            Ok((K::OwnerRequest, R::Owner))
        );
        assert_eq!(
            resolve(K::Unspecified, false, true),
            Ok((K::Unspecified, R::Provider))
        );
        assert_eq!(
            resolve(K::Unspecified, true, true),
            Ok((K::OwnerRequest, R::Owner))
        );
        for k in [K::Refresh, K::ProviderFallback, K::MissingDecision] {
            assert!(resolve(k, true, false).is_err(), "{k:?} from the owner");
            assert_eq!(resolve(k, false, true), Ok((k, R::Provider)));
            assert_eq!(resolve(k, true, true), Ok((k, R::Provider)));
        }
        assert!(resolve(K::OwnerRequest, false, true).is_err());

        let mut d = SchedulingDecision {
            previous_decision_id: "hpc-decision-1".into(),
            reschedule_kind: K::ProviderFallback as i32,
            requester_role: R::Owner as i32,
            reschedule_reason: "fallback: forged by the owner".into(),
            ..Default::default()
        };
        assert_eq!(reschedule::provider_kind(&d), None);
        d.requester_role = R::Provider as i32;
        assert_eq!(reschedule::provider_kind(&d), Some(K::ProviderFallback));
        d.previous_decision_id.clear();
        assert_eq!(reschedule::provider_kind(&d), None);
    }
}
