//! The ABCI 2.0 shell: turns CometBFT's requests into calls on the state machine and the
//! store. Consensus requests run one at a time; CheckTx runs on a separate check state;
//! queries read committed snapshots concurrently.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hpc_primitives::contract::store::{PROOF_OP_TYPE, QUERY_PATH as STORE_QUERY_PATH};
use hpc_state::consensus::{BlockLimits, ConsensusKeeper};
use hpc_state::hpc::QueryClock;
use hpc_state::tx::Mode;
use hpc_state::{App, BlockInfo, Event, TxOutcome};
use hpc_store::{Changes, Delta, Snapshot, StateRead, Storage};
use tendermint::abci::types::ExecTxResult;
use tendermint::abci::{request, response, Code, EventAttributeIndexExt};
use tendermint::merkle::proof::{ProofOp, ProofOps};
use tendermint::v0_38::abci::{ConsensusRequest, ConsensusResponse};

use crate::event_index::EventIndex;

/// Tx simulation, which runs on the CheckTx state at the latest height.
pub const SIMULATE_PATH: &str = "/cosmos.tx.v1beta1.Service/Simulate";

/// A block executed by FinalizeBlock and waiting for Commit.
struct PendingBlock {
    prepared: hpc_store::PreparedCommit,
    block: BlockInfo,
}

struct ConsensusState {
    /// Genesis writes from InitChain, persisted together with the first block.
    genesis: Option<Changes>,
    pending: Option<PendingBlock>,
}

/// Everything the ABCI connections and the gRPC server share.
pub struct Node {
    pub storage: Storage,
    pub app: App,
    /// Which event attributes CometBFT indexes (app.toml `index-events`).
    event_index: EventIndex,
    consensus: Mutex<ConsensusState>,
    check: Mutex<Delta<Snapshot>>,
    /// The last block committed by this process (CheckTx and query block facts); `None`
    /// after a restart until the next commit.
    last_block: Mutex<Option<BlockInfo>>,
}

/// Locks a mutex even if a request that panicked poisoned it: the check state is written
/// only after a tx passed, and the other values are replaced whole, so none is left
/// half-updated.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn base_snapshot(storage: &Storage) -> Snapshot {
    match storage.latest_version().expect("storage is readable") {
        Some(_) => storage.snapshot(None).expect("latest snapshot is readable"),
        None => Storage::empty_snapshot(),
    }
}

fn to_abci_events(events: Vec<Event>, index: &EventIndex) -> Vec<tendermint::abci::Event> {
    let mut scratch = String::new();
    events
        .into_iter()
        .map(|e| {
            let attributes: Vec<_> = e
                .attributes
                .into_iter()
                .map(|(k, v)| {
                    if index.indexes(&e.kind, &k, &mut scratch) {
                        (k, v).index()
                    } else {
                        (k, v).no_index()
                    }
                })
                .collect();
            tendermint::abci::Event::new(e.kind, attributes)
        })
        .collect()
}

fn exec_result(outcome: TxOutcome, index: &EventIndex) -> ExecTxResult {
    ExecTxResult {
        code: Code::from(outcome.code),
        data: outcome.data.into(),
        log: outcome.log,
        info: String::new(),
        // The ante handler refuses gas limits above i64::MAX; saturate all the same.
        gas_wanted: i64::try_from(outcome.gas_wanted).unwrap_or(i64::MAX),
        gas_used: i64::try_from(outcome.gas_used).unwrap_or(i64::MAX),
        events: to_abci_events(outcome.events, index),
        codespace: outcome.codespace,
    }
}

fn block_info(chain_id: String, height: u64, time: tendermint::Time) -> BlockInfo {
    let nanos = time.unix_timestamp_nanos();
    BlockInfo {
        chain_id,
        height,
        time_seconds: nanos.div_euclid(1_000_000_000) as i64,
        time_nanos: nanos.rem_euclid(1_000_000_000) as i32,
    }
}

impl Node {
    pub fn new(storage: Storage, app: App, event_index: EventIndex) -> Arc<Self> {
        let check = Delta::new(base_snapshot(&storage));
        Arc::new(Self {
            storage,
            app,
            event_index,
            consensus: Mutex::new(ConsensusState {
                genesis: None,
                pending: None,
            }),
            check: Mutex::new(check),
            last_block: Mutex::new(None),
        })
    }

    /// Last committed height and app hash (0 and empty before the first block).
    pub fn last_commit(&self) -> (u64, Vec<u8>) {
        match self.storage.latest_version().expect("storage is readable") {
            Some(v) => (
                v,
                self.storage
                    .root_hash(v)
                    .expect("root of latest version")
                    .to_vec(),
            ),
            None => (0, Vec::new()),
        }
    }

    pub fn consensus(&self, req: ConsensusRequest) -> ConsensusResponse {
        let mut cs = lock(&self.consensus);
        match req {
            ConsensusRequest::InitChain(req) => {
                ConsensusResponse::InitChain(self.init_chain(&mut cs, req))
            }
            ConsensusRequest::PrepareProposal(req) => {
                let limits = self.limits(&cs);
                let txs = req.txs.into_iter().map(|t| t.to_vec()).collect();
                let txs = self.app.prepare_proposal(txs, req.max_tx_bytes, &limits);
                ConsensusResponse::PrepareProposal(response::PrepareProposal {
                    txs: txs.into_iter().map(Bytes::from).collect(),
                })
            }
            ConsensusRequest::ProcessProposal(req) => {
                let limits = self.limits(&cs);
                let txs: Vec<Vec<u8>> = req.txs.iter().map(|t| t.to_vec()).collect();
                ConsensusResponse::ProcessProposal(if self.app.process_proposal(&txs, &limits) {
                    response::ProcessProposal::Accept
                } else {
                    tracing::warn!(height = %req.height, "rejecting proposal over the block gas limit");
                    response::ProcessProposal::Reject
                })
            }
            ConsensusRequest::FinalizeBlock(req) => {
                ConsensusResponse::FinalizeBlock(self.finalize_block(&mut cs, req))
            }
            ConsensusRequest::Commit => ConsensusResponse::Commit(self.commit(&mut cs)),
            ConsensusRequest::ExtendVote(_) => {
                ConsensusResponse::ExtendVote(response::ExtendVote {
                    vote_extension: Bytes::new(),
                })
            }
            ConsensusRequest::VerifyVoteExtension(_) => {
                ConsensusResponse::VerifyVoteExtension(response::VerifyVoteExtension::Accept)
            }
        }
    }

    /// The block limits in effect: from the pending genesis or the committed state.
    fn limits(&self, cs: &ConsensusState) -> BlockLimits {
        let base = base_snapshot(&self.storage);
        let mut view = Delta::new(&base);
        if let Some(genesis) = &cs.genesis {
            view.apply(genesis.clone());
        }
        ConsensusKeeper::limits(&view)
    }

    fn init_chain(&self, cs: &mut ConsensusState, req: request::InitChain) -> response::InitChain {
        let limits = BlockLimits {
            max_bytes: req.consensus_params.block.max_bytes as i64,
            max_gas: req.consensus_params.block.max_gas,
        };
        let mut genesis = Delta::new(Storage::empty_snapshot());
        if let Err(e) =
            self.app
                .init_chain(&mut genesis, &req.chain_id, &limits, &req.app_state_bytes)
        {
            // An invalid genesis cannot start a chain; stop with the reason.
            panic!("genesis rejected: {e}");
        }
        let changes = genesis.into_changes();
        let root = self
            .storage
            .prepare(changes.clone(), req.initial_height.value())
            .expect("genesis root computes")
            .root;
        tracing::info!(chain_id = %req.chain_id, app_hash = %hex::encode_upper(root), "initialized chain from genesis");
        cs.genesis = Some(changes);
        response::InitChain {
            consensus_params: None,
            validators: Vec::new(),
            app_hash: root.to_vec().try_into().expect("32-byte app hash"),
        }
    }

    fn finalize_block(
        &self,
        cs: &mut ConsensusState,
        req: request::FinalizeBlock,
    ) -> response::FinalizeBlock {
        let height = req.height.value();
        let base = base_snapshot(&self.storage);
        let mut state = Delta::new(base);
        if let Some(genesis) = &cs.genesis {
            state.apply(genesis.clone());
        }
        let chain_id = ConsensusKeeper::chain_id(&state).expect("chain id is set at genesis");
        let block = block_info(chain_id, height, req.time);
        let tx_results = req
            .txs
            .iter()
            .map(|tx| {
                let outcome = self.app.execute_tx(&mut state, &block, tx, Mode::Deliver);
                exec_result(outcome, &self.event_index)
            })
            .collect();
        self.app.end_block(&mut state, &block);
        let (_, changes) = state.into_parts();
        let mut prepared = self
            .storage
            .prepare(changes, height)
            .unwrap_or_else(|e| panic!("cannot compute the app hash of block {height}: {e}"));
        prepared.set_block_time(block.time_seconds);
        let app_hash = prepared.root.to_vec().try_into().expect("32-byte app hash");
        cs.pending = Some(PendingBlock { prepared, block });
        response::FinalizeBlock {
            events: Vec::new(),
            tx_results,
            validator_updates: Vec::new(),
            consensus_param_updates: None,
            app_hash,
        }
    }

    fn commit(&self, cs: &mut ConsensusState) -> response::Commit {
        let pending = cs.pending.take().expect("Commit without FinalizeBlock");
        let height = pending.prepared.version;
        // A failed commit must stop the node: continuing would fork from the network.
        self.storage
            .commit(pending.prepared)
            .unwrap_or_else(|e| panic!("failed to persist block {height}: {e}"));
        cs.genesis = None;
        *lock(&self.last_block) = Some(pending.block);
        *lock(&self.check) = Delta::new(base_snapshot(&self.storage));
        tracing::debug!(height, "committed");
        response::Commit {
            data: Bytes::new(),
            retain_height: 0u32.into(),
        }
    }

    /// Verifies a new mempool tx's signatures against the latest committed state, on the
    /// caller's thread, ahead of its CheckTx (which then finds them verified). A hint only.
    pub fn preverify_signatures(&self, tx: &[u8]) {
        let Some(chain_id) = lock(&self.last_block).as_ref().map(|b| b.chain_id.clone()) else {
            return;
        };
        if let Ok(snapshot) = self.storage.snapshot(None) {
            self.app.preverify_signatures(&snapshot, &chain_id, tx);
        }
    }

    pub fn check_tx(&self, req: request::CheckTx) -> response::CheckTx {
        let mode = match req.kind {
            request::CheckTxKind::New => Mode::Check,
            request::CheckTxKind::Recheck => Mode::Recheck,
        };
        let block = lock(&self.last_block).clone();
        let mut check = lock(&self.check);
        let block = match block {
            Some(b) => BlockInfo {
                height: b.height + 1,
                ..b
            },
            None => {
                let Some(chain_id) = ConsensusKeeper::chain_id(&*check) else {
                    return response::CheckTx {
                        code: Code::from(18),
                        codespace: "sdk".into(),
                        log: "the chain has not started yet".into(),
                        ..Default::default()
                    };
                };
                // After a restart, before the first new block: the last block's time.
                let (height, _) = self.last_commit();
                BlockInfo {
                    chain_id,
                    height: height + 1,
                    time_seconds: self.storage.block_time(height).ok().flatten().unwrap_or(0),
                    time_nanos: 0,
                }
            }
        };
        let outcome = self.app.execute_tx(&mut *check, &block, &req.tx, mode);
        let result = exec_result(outcome, &self.event_index);
        response::CheckTx {
            code: result.code,
            data: result.data,
            log: result.log,
            info: String::new(),
            gas_wanted: result.gas_wanted,
            gas_used: result.gas_used,
            events: result.events,
            codespace: result.codespace,
            ..Default::default()
        }
    }

    pub fn info(&self) -> response::Info {
        let (height, app_hash) = self.last_commit();
        response::Info {
            data: "hpcd".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            app_version: 1,
            last_block_height: height.try_into().expect("height fits"),
            last_block_app_hash: app_hash.try_into().expect("app hash"),
        }
    }

    /// A read view at `height` (0 = latest) and the clock queries see there.
    pub fn snapshot_at(
        &self,
        height: u64,
    ) -> Result<(Snapshot, QueryClock), hpc_store::StoreError> {
        let snapshot = self
            .storage
            .snapshot(if height == 0 { None } else { Some(height) })?;
        let version = snapshot.version().unwrap_or(0);
        // The time of the block that made this version, as recorded at its commit: right
        // for past heights and after a restart.
        let clock = QueryClock {
            height: version,
            block_time_seconds: self.storage.block_time(version)?.unwrap_or(0),
        };
        Ok((snapshot, clock))
    }

    /// Answers a query by gRPC method path. A simulation at the latest height runs on the
    /// CheckTx state, as in the Cosmos SDK, so it sees the sequences of txs still waiting
    /// in the mempool; everything else reads the committed snapshot.
    pub fn app_query(
        &self,
        path: &str,
        data: &[u8],
        snapshot: &Snapshot,
        clock: QueryClock,
        latest: bool,
    ) -> Result<Vec<u8>, hpc_state::errors::QueryError> {
        if latest && path == SIMULATE_PATH {
            let check = lock(&self.check);
            return self.app.query(path, data, &*check, clock);
        }
        self.app.query(path, data, snapshot, clock)
    }

    /// Answers an `abci_query`; every field comes from the RPC caller.
    pub fn query(&self, q: request::Query) -> response::Query {
        let fail = |code: u32, log: String, height: u64| response::Query {
            code: Code::from(code),
            log,
            codespace: "sdk".into(),
            height: height.try_into().unwrap_or_default(),
            ..Default::default()
        };
        let (snapshot, clock) = match self.snapshot_at(q.height.value()) {
            Ok(s) => s,
            Err(e) => return fail(26, format!("height: {e}"), q.height.value()),
        };
        let height = clock.height;
        // Like the Cosmos SDK, store paths are accepted with or without the leading slash.
        if q.path.trim_start_matches('/') == STORE_QUERY_PATH.trim_start_matches('/') {
            let key = q.data.to_vec();
            if !q.prove {
                return response::Query {
                    key: key.clone().into(),
                    value: snapshot.get(&key).unwrap_or_default().into(),
                    height: height.try_into().expect("height fits"),
                    ..Default::default()
                };
            }
            return match self.storage.get_with_proof(&key, height) {
                Ok((value, proof)) => response::Query {
                    key: key.clone().into(),
                    value: value.unwrap_or_default().into(),
                    proof: Some(ProofOps {
                        ops: vec![ProofOp {
                            field_type: PROOF_OP_TYPE.into(),
                            key,
                            data: prost::Message::encode_to_vec(&proof),
                        }],
                    }),
                    height: height.try_into().expect("height fits"),
                    ..Default::default()
                },
                Err(e) => fail(1, e.to_string(), height),
            };
        }
        if q.prove {
            return fail(
                18,
                format!("prove=true is only supported for {STORE_QUERY_PATH}"),
                height,
            );
        }
        match self.app_query(&q.path, &q.data, &snapshot, clock, q.height.value() == 0) {
            Ok(value) => response::Query {
                value: value.into(),
                height: height.try_into().expect("height fits"),
                ..Default::default()
            },
            Err(e) => fail(e.abci_code(), e.to_string(), height),
        }
    }
}
