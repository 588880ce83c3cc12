//! Verifiable x/hpc records: a job, decision, audit record or violation — or its absence —
//! proven at a height without trusting the node that answers.
//!
//! A [`RecordProof`] carries the stored bytes, an `ibc.core.commitment.v1.MerkleProof`
//! against the app hash, and the signed header that commits that app hash (state after
//! block `H` is in the header of block `H + 1`) with its validator set. [`verify`] checks
//! the header with CometBFT's light client from a block the user trusts ([`TrustAnchor`]),
//! then the Merkle proof against that header's app hash with the chain's ICS-23 spec
//! ([`store::proof_spec`]), then that the proven bytes are the record asked for. Every
//! field of a proof and of the trusted block may come from an attacker.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hpc_primitives::contract::store;
use hpc_proto::virtengine::hpc::v1::{
    Job, RoutingAuditRecord, RoutingViolation, SchedulingDecision,
};
use ibc_proto::ibc::core::commitment::v1::MerkleProof;
use prost::Message;
use serde::{Deserialize, Serialize};
use tendermint::block::signed_header::SignedHeader;
use tendermint::{validator, Hash, Time};
use tendermint_light_client_verifier::options::Options;
use tendermint_light_client_verifier::types::{
    TrustThreshold, TrustedBlockState, UntrustedBlockState,
};
use tendermint_light_client_verifier::{ProdVerifier, Verdict, Verifier};
use tendermint_rpc::{Client, HttpClient, Paging};

use crate::error::{ClientError, Result};

/// The records a proof can be asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Job,
    Decision,
    AuditRecord,
    Violation,
}

impl RecordKind {
    /// The record's key in the chain's store.
    pub fn key(self, id: &str) -> Vec<u8> {
        let prefix = match self {
            RecordKind::Job => store::JOB,
            RecordKind::Decision => store::DECISION,
            RecordKind::AuditRecord => store::AUDIT_RECORD,
            RecordKind::Violation => store::VIOLATION,
        };
        store::key(prefix, id)
    }

    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Job => "job",
            RecordKind::Decision => "scheduling decision",
            RecordKind::AuditRecord => "audit record",
            RecordKind::Violation => "violation",
        }
    }

    /// Decodes stored bytes: the id they carry and the record as JSON.
    fn decode(self, bytes: &[u8]) -> Result<(String, serde_json::Value), ProofError> {
        fn json<M: Message + Default + Serialize>(
            bytes: &[u8],
            id: impl Fn(&M) -> &str,
        ) -> Result<(String, serde_json::Value), ProofError> {
            let record = M::decode(bytes).map_err(|e| ProofError::malformed("value", e))?;
            let value =
                serde_json::to_value(&record).map_err(|e| ProofError::malformed("value", e))?;
            Ok((id(&record).to_string(), value))
        }
        match self {
            RecordKind::Job => json(bytes, |r: &Job| &r.job_id),
            RecordKind::Decision => json(bytes, |r: &SchedulingDecision| &r.decision_id),
            RecordKind::AuditRecord => json(bytes, |r: &RoutingAuditRecord| &r.record_id),
            RecordKind::Violation => json(bytes, |r: &RoutingViolation| &r.violation_id),
        }
    }
}

/// A record's proof, as `hpcd query hpc … --prove` prints it: everything [`verify`] needs
/// except the trust anchor. Byte fields are base64.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordProof {
    pub kind: RecordKind,
    pub id: String,
    /// The height of the state the proof is about.
    pub height: u64,
    /// The stored record (protobuf); `None` when the proof shows there is none.
    pub value: Option<String>,
    /// `value` decoded, for people; [`verify`] refuses a proof where it differs.
    pub record: Option<serde_json::Value>,
    /// An `ibc.core.commitment.v1.MerkleProof` (protobuf) against the app hash in
    /// `signed_header`, one ICS-23 proof checked with [`store::proof_spec`].
    pub merkle_proof: String,
    /// The header of block `height + 1`, which carries the app hash of `height`, and the
    /// commit that signs it.
    pub signed_header: SignedHeader,
    /// The validators of block `height + 1`.
    pub validators: validator::Set,
}

/// A block the user trusts, learnt out of band (their own node, a published checkpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustAnchor {
    pub height: u64,
    pub hash: Hash,
}

/// The trusted block's header and the validators of the block after it: what the light
/// client needs of the anchor. Fetched from an untrusted node, so [`verify`] checks it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrustedBlock {
    pub signed_header: SignedHeader,
    pub next_validators: validator::Set,
}

/// How long a validator set stays trusted (CometBFT light clients default to two weeks),
/// and how far ahead of the local clock a header may be.
pub const DEFAULT_TRUSTING_PERIOD: Duration = Duration::from_secs(14 * 24 * 3600);
pub const CLOCK_DRIFT: Duration = Duration::from_secs(10);

/// Light-client options: a third of the trusted voting power must sign a header that is
/// not adjacent to the trusted one (CometBFT's default).
pub fn light_client_options(trusting_period: Duration) -> Options {
    Options {
        trust_threshold: TrustThreshold::ONE_THIRD,
        trusting_period,
        clock_drift: CLOCK_DRIFT,
    }
}

/// What a verified proof established.
#[derive(Clone, Debug, Serialize)]
pub struct Verified {
    /// One line for people, e.g. `audit record "routing-audit-1" exists at height 41
    /// (header 42 verified from trusted block 1)`.
    pub summary: String,
    pub kind: RecordKind,
    pub id: String,
    pub height: u64,
    /// The verified header that commits the state (`height + 1`) and its time.
    pub header_height: u64,
    pub header_time: String,
    pub trusted_height: u64,
    /// The record, or `None`: proven not to exist at `height`.
    pub record: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("invalid {field} in the proof: {reason}")]
    Malformed { field: &'static str, reason: String },
    #[error(
        "the trusted block at height {height} has hash {actual}, not the trusted hash {expected}"
    )]
    AnchorMismatch {
        height: u64,
        expected: Hash,
        actual: Hash,
    },
    #[error(
        "the trusted block's next validator set does not match its header's next_validators_hash"
    )]
    AnchorValidators,
    #[error("the proof is of height {height}, so its header must be of height {}, not {header}", height + 1)]
    WrongHeader { height: u64, header: u64 },
    #[error("the proof's header (height {header}) is older than the trusted height {trusted}; trust an earlier block")]
    BelowTrust { header: u64, trusted: u64 },
    #[error("light client: the header at height {height} is not trusted: {reason}")]
    LightClient { height: u64, reason: String },
    #[error("the Merkle proof does not prove that {what} against the app hash of block {header}")]
    Merkle { what: String, header: u64 },
    #[error("the proven {kind} has id {actual:?}, not {expected:?}")]
    IdMismatch {
        kind: &'static str,
        expected: String,
        actual: String,
    },
    #[error("the proof's readable `record` differs from its proven `value`")]
    RecordMismatch,
}

impl ProofError {
    fn malformed(field: &'static str, reason: impl std::fmt::Display) -> Self {
        ProofError::Malformed {
            field,
            reason: reason.to_string(),
        }
    }
}

/// Verifies `proof` from `anchor` at time `now`: the header by the light client, then the
/// record (or its absence) by the Merkle proof against the header's app hash.
pub fn verify(
    proof: &RecordProof,
    anchor: &TrustAnchor,
    trusted: &TrustedBlock,
    options: &Options,
    now: Time,
) -> Result<Verified, ProofError> {
    verify_header(proof, anchor, trusted, options, now)?;
    let record = verify_record(proof)?;
    let header_height = proof.signed_header.header.height.value();
    let summary = format!(
        "{} {:?} {} at height {} (header {header_height} verified from trusted block {})",
        proof.kind.name(),
        proof.id,
        if record.is_some() {
            "exists"
        } else {
            "does not exist"
        },
        proof.height,
        anchor.height
    );
    Ok(Verified {
        summary,
        kind: proof.kind,
        id: proof.id.clone(),
        height: proof.height,
        header_height,
        header_time: proof.signed_header.header.time.to_rfc3339(),
        trusted_height: anchor.height,
        record,
    })
}

/// The light-client half: `proof.signed_header` is a header of the trusted chain.
fn verify_header(
    proof: &RecordProof,
    anchor: &TrustAnchor,
    trusted: &TrustedBlock,
    options: &Options,
    now: Time,
) -> Result<(), ProofError> {
    let trusted_header = &trusted.signed_header.header;
    let trusted_hash = trusted_header.hash();
    if trusted_header.height.value() != anchor.height || trusted_hash != anchor.hash {
        return Err(ProofError::AnchorMismatch {
            height: anchor.height,
            expected: anchor.hash,
            actual: trusted_hash,
        });
    }
    if trusted.next_validators.hash() != trusted_header.next_validators_hash {
        return Err(ProofError::AnchorValidators);
    }
    let header = &proof.signed_header.header;
    let header_height = header.height.value();
    if Some(header_height) != proof.height.checked_add(1) {
        return Err(ProofError::WrongHeader {
            height: proof.height,
            header: header_height,
        });
    }
    if header_height < anchor.height {
        return Err(ProofError::BelowTrust {
            header: header_height,
            trusted: anchor.height,
        });
    }
    let light_client = |reason: String| ProofError::LightClient {
        height: header_height,
        reason,
    };
    if header_height == anchor.height {
        // The header is the trusted block itself: its hash is the whole check.
        return match header.hash() == anchor.hash {
            true => Ok(()),
            false => Err(light_client("it is not the trusted block".into())),
        };
    }
    let untrusted = UntrustedBlockState {
        signed_header: &proof.signed_header,
        validators: &proof.validators,
        next_validators: None,
    };
    let trusted_state = TrustedBlockState {
        chain_id: &trusted_header.chain_id,
        header_time: trusted_header.time,
        height: trusted_header.height,
        next_validators: &trusted.next_validators,
        next_validators_hash: trusted_header.next_validators_hash,
    };
    match ProdVerifier::default().verify_update_header(untrusted, trusted_state, options, now) {
        Verdict::Success => Ok(()),
        Verdict::NotEnoughTrust(tally) => Err(light_client(format!(
            "not enough trusted voting power signed it ({tally})"
        ))),
        Verdict::Invalid(detail) => Err(light_client(detail.to_string())),
    }
}

/// The Merkle half: the proof's value (or absence) under the record's key, against the
/// verified header's app hash; returns the record as JSON.
fn verify_record(proof: &RecordProof) -> Result<Option<serde_json::Value>, ProofError> {
    let bytes = B64
        .decode(&proof.merkle_proof)
        .map_err(|e| ProofError::malformed("merkle_proof", e))?;
    let merkle = MerkleProof::decode(bytes.as_slice())
        .map_err(|e| ProofError::malformed("merkle_proof", e))?;
    // One proof per spec: the chain has one store, so its MerkleProof has one layer.
    let [commitment] = merkle.proofs.as_slice() else {
        return Err(ProofError::malformed(
            "merkle_proof",
            format!(
                "{} proofs where the chain's one store needs 1",
                merkle.proofs.len()
            ),
        ));
    };
    let spec = store::proof_spec();
    let root = proof.signed_header.header.app_hash.as_bytes();
    let key = proof.kind.key(&proof.id);
    let header = proof.signed_header.header.height.value();
    let Some(value) = &proof.value else {
        let absent = ics23::verify_non_membership::<ics23::HostFunctionsManager>(
            commitment,
            &spec,
            &root.to_vec(),
            &key,
        );
        return match (absent, &proof.record) {
            (true, None) => Ok(None),
            (true, Some(_)) => Err(ProofError::RecordMismatch),
            (false, _) => Err(ProofError::Merkle {
                what: format!("{} {:?} does not exist", proof.kind.name(), proof.id),
                header,
            }),
        };
    };
    let value = B64
        .decode(value)
        .map_err(|e| ProofError::malformed("value", e))?;
    if !ics23::verify_membership::<ics23::HostFunctionsManager>(
        commitment,
        &spec,
        &root.to_vec(),
        &key,
        &value,
    ) {
        return Err(ProofError::Merkle {
            what: format!("{} {:?} has this value", proof.kind.name(), proof.id),
            header,
        });
    }
    let (id, record) = proof.kind.decode(&value)?;
    if id != proof.id {
        return Err(ProofError::IdMismatch {
            kind: proof.kind.name(),
            expected: proof.id.clone(),
            actual: id,
        });
    }
    if proof.record.as_ref().is_some_and(|shown| *shown != record) {
        return Err(ProofError::RecordMismatch);
    }
    Ok(Some(record))
}

/// Asks a node for the proof of a record at `height` (default: the newest height whose
/// next header exists). The answer is not trusted: [`verify`] checks it.
pub async fn fetch_proof(
    rpc: &HttpClient,
    url: &str,
    kind: RecordKind,
    id: &str,
    height: Option<u64>,
) -> Result<RecordProof> {
    let latest = rpc
        .status()
        .await
        .map_err(|e| ClientError::rpc(url, e))?
        .sync_info
        .latest_block_height
        .value();
    let height = match height {
        Some(h) if h > 0 => h,
        _ => latest.saturating_sub(1),
    };
    if height == 0 || height >= latest {
        return Err(ClientError::invalid(
            "--height",
            format!(
                "a proof at height {height} needs the header of block {}, and the latest block is {latest}",
                height.saturating_add(1)
            ),
        ));
    }
    let key = kind.key(id);
    let answer = rpc
        .abci_query(
            Some(store::QUERY_PATH.into()),
            key,
            Some(to_height(height)?),
            true,
        )
        .await
        .map_err(|e| ClientError::rpc(url, e))?;
    if answer.code.is_err() {
        return Err(ClientError::AbciQuery {
            path: store::QUERY_PATH.into(),
            code: answer.code.value(),
            log: answer.log,
        });
    }
    let malformed = || ClientError::MalformedRpcAnswer {
        url: url.to_string(),
        call: "abci_query with prove",
    };
    let ops = answer.proof.ok_or_else(malformed)?.ops;
    let [op] = ops.as_slice() else {
        return Err(malformed());
    };
    if op.field_type != store::PROOF_OP_TYPE || answer.height.value() != height {
        return Err(malformed());
    }
    let commitment = ics23::CommitmentProof::decode(op.data.as_slice()).map_err(|_| malformed())?;
    let merkle = MerkleProof {
        proofs: vec![commitment],
    };
    let (value, record) = match answer.value.is_empty() {
        true => (None, None),
        false => (
            Some(B64.encode(&answer.value)),
            kind.decode(&answer.value).ok().map(|(_, json)| json),
        ),
    };
    let header_height = height + 1;
    Ok(RecordProof {
        kind,
        id: id.to_string(),
        height,
        value,
        record,
        merkle_proof: B64.encode(merkle.encode_to_vec()),
        signed_header: fetch_signed_header(rpc, url, header_height).await?,
        validators: fetch_validators(rpc, url, header_height).await?,
    })
}

/// Fetches the anchor's block and the validators of the block after it.
pub async fn fetch_trusted_block(
    rpc: &HttpClient,
    url: &str,
    anchor: &TrustAnchor,
) -> Result<TrustedBlock> {
    Ok(TrustedBlock {
        signed_header: fetch_signed_header(rpc, url, anchor.height).await?,
        next_validators: fetch_validators(rpc, url, anchor.height.saturating_add(1)).await?,
    })
}

async fn fetch_signed_header(rpc: &HttpClient, url: &str, height: u64) -> Result<SignedHeader> {
    let commit = rpc
        .commit(to_height(height)?)
        .await
        .map_err(|e| ClientError::rpc(url, e))?;
    Ok(commit.signed_header)
}

/// The validators of block `height`, all pages.
async fn fetch_validators(rpc: &HttpClient, url: &str, height: u64) -> Result<validator::Set> {
    let answer = rpc
        .validators(to_height(height)?, Paging::All)
        .await
        .map_err(|e| ClientError::rpc(url, e))?;
    Ok(validator::Set::without_proposer(answer.validators))
}

fn to_height(height: u64) -> Result<tendermint::block::Height> {
    tendermint::block::Height::try_from(height).map_err(|e| ClientError::invalid("height", e))
}

/// The local clock as a CometBFT time (the light client's "now").
pub fn now() -> Result<Time> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| ClientError::invalid("system clock", e))?;
    let secs = i64::try_from(since_epoch.as_secs())
        .map_err(|e| ClientError::invalid("system clock", e))?;
    Time::from_unix_timestamp(secs, since_epoch.subsec_nanos())
        .map_err(|e| ClientError::invalid("system clock", e))
}
