//! The application: genesis, tx execution, proposals and queries, as pure functions of
//! state and block facts. The node (`hpcd`) owns storage and calls these.

use std::sync::Arc;

use cosmos_sdk_proto::cosmos::base::abci::v1beta1::{GasInfo, Result as AbciResult, TxMsgData};
use cosmos_sdk_proto::cosmos::tx::v1beta1::{SimulateRequest, SimulateResponse};
use hpc_primitives::contract::sdk_events::{self, attrs as sdk_attrs};
use hpc_store::{Changes, Delta, StateRead, StateWrite};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::auth::{self, AuthGenesis};
use crate::bank::{self, BankGenesis};
use crate::coins::GasPrices;
use crate::consensus::{BlockLimits, ConsensusKeeper};
use crate::context::{BlockInfo, ExecCtx};
use crate::errors::{QueryError, TxError};
use crate::events::Event;
use crate::gas::{GasMeter, Metered};
use crate::hpc;
use crate::query::handle;
use crate::serde_util::GenesisError;
use crate::tx::{decode_tx, gas_limit_of, run_ante, Mode, NodeLocal};

/// `app_state` of the genesis file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppState {
    #[serde(default)]
    pub auth: AuthGenesis,
    #[serde(default)]
    pub bank: BankGenesis,
    #[serde(default = "hpc::default_genesis")]
    pub hpc: hpc::types::GenesisState,
}

impl Default for AppState {
    fn default() -> Self {
        Self {
            auth: AuthGenesis::default(),
            bank: BankGenesis::default(),
            hpc: hpc::default_genesis(),
        }
    }
}

/// The result of one tx, in the shape of an ABCI `ExecTxResult`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxOutcome {
    pub code: u32,
    pub codespace: String,
    pub log: String,
    /// `TxMsgData` with every message's response, on success.
    pub data: Vec<u8>,
    pub gas_wanted: u64,
    pub gas_used: u64,
    pub events: Vec<Event>,
}

impl TxOutcome {
    fn failed(err: TxError, gas_wanted: u64, gas_used: u64, events: Vec<Event>) -> Self {
        Self {
            code: err.code,
            codespace: err.codespace.to_string(),
            log: err.log,
            data: Vec::new(),
            gas_wanted,
            gas_used,
            events,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.code == 0
    }
}

/// Runs one stage of a tx, turning a panic into a failed tx as the Cosmos SDK's `runTx`
/// recovers one (`ErrPanic`): every node panics at the same point of the same tx, so the
/// result is deterministic, the stage's overlay is dropped, and the node keeps running.
fn guarded<T>(stage: &str, run: impl FnOnce() -> Result<T, TxError>) -> Result<T, TxError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
        tracing::error!(stage, "BUG: a panic while executing a tx; the tx fails");
        Err(TxError {
            codespace: "undefined",
            code: 111_222,
            log: format!("panic in {stage}"),
        })
    })
}

fn apply(state: &mut impl StateWrite, changes: Changes) {
    for (k, v) in changes {
        match v {
            Some(v) => state.put(k, v),
            None => state.delete(&k),
        }
    }
}

/// Node-local settings that do not affect consensus.
#[derive(Clone, Debug, Default)]
pub struct App {
    node: Arc<NodeLocal>,
}

impl App {
    pub fn new(min_gas_prices: GasPrices) -> Self {
        Self {
            node: Arc::new(NodeLocal {
                min_gas_prices,
                verified: Default::default(),
            }),
        }
    }

    pub fn min_gas_prices(&self) -> &GasPrices {
        &self.node.min_gas_prices
    }

    /// Verifies a mempool tx's signatures ahead of its CheckTx, on any thread (see
    /// [`crate::tx::preverify_signatures`]): CheckTx, which runs in arrival order, then
    /// finds them verified. Changes nothing else.
    pub fn preverify_signatures(&self, state: &impl StateRead, chain_id: &str, tx_bytes: &[u8]) {
        crate::tx::preverify_signatures(state, chain_id, tx_bytes, &self.node.verified);
    }

    /// Writes the genesis state. Fails (naming the field) on any invalid entry.
    pub fn init_chain(
        &self,
        state: &mut impl StateWrite,
        chain_id: &str,
        limits: &BlockLimits,
        app_state: &[u8],
    ) -> Result<(), GenesisError> {
        if chain_id.is_empty() {
            return Err(GenesisError::new("chain_id", "must not be empty"));
        }
        let app_state: AppState = if app_state.iter().all(u8::is_ascii_whitespace) {
            AppState::default()
        } else {
            serde_json::from_slice(app_state).map_err(|e| GenesisError::new("app_state", e))?
        };
        ConsensusKeeper::set_chain_id(state, chain_id);
        ConsensusKeeper::set_limits(state, limits);
        app_state.auth.validate_and_apply(state)?;
        app_state.bank.validate_and_apply(state)?;
        hpc::import_genesis(state, &app_state.hpc)?;
        Ok(())
    }

    /// The genesis `app_state` that re-creates `state` exactly.
    pub fn export(&self, state: &impl StateRead) -> AppState {
        AppState {
            auth: AuthGenesis::export(state),
            bank: BankGenesis::export(state),
            hpc: hpc::export_genesis(state),
        }
    }

    /// Executes one tx. State changes are applied to `state` only as far as the tx got:
    /// nothing if the ante checks fail, fee and sequence if a message fails, all of it on
    /// success.
    pub fn execute_tx(
        &self,
        state: &mut impl StateWrite,
        block: &BlockInfo,
        tx_bytes: &[u8],
        mode: Mode,
    ) -> TxOutcome {
        let tx = match decode_tx(tx_bytes) {
            Ok(tx) => tx,
            Err(e) => return TxOutcome::failed(e, 0, 0, Vec::new()),
        };
        let gas_wanted = tx.gas_limit();
        let meter = if mode == Mode::Simulate {
            GasMeter::infinite()
        } else {
            GasMeter::new(gas_wanted)
        };
        let out_of_gas = |meter: &GasMeter, location: &str| {
            TxError::out_of_gas(format!(
                "out of gas in location: {location}; gasWanted: {gas_wanted}, gasUsed: {}: out of gas",
                meter.consumed()
            ))
        };

        // Ante checks in an overlay: kept only if they all pass within the gas limit.
        let mut ctx = ExecCtx::new(block, &meter);
        let (ante, ante_changes) = {
            let mut ante_state = Metered::new(Delta::new(&*state), &meter);
            let ante = guarded("ante", || {
                run_ante(&mut ante_state, &mut ctx, &tx, mode, &self.node)
            });
            let ante = match ante {
                Ok(ante) => ante,
                Err(e) => return TxOutcome::failed(e, gas_wanted, meter.consumed(), Vec::new()),
            };
            if meter.out_of_gas() {
                return TxOutcome::failed(
                    out_of_gas(&meter, "ante"),
                    gas_wanted,
                    meter.consumed(),
                    Vec::new(),
                );
            }
            (ante, ante_state.into_inner().into_changes())
        };
        apply(state, ante_changes);
        let ante_events = std::mem::take(&mut ctx.events);
        if matches!(mode, Mode::Check | Mode::Recheck) {
            return TxOutcome {
                code: 0,
                codespace: String::new(),
                log: String::new(),
                data: Vec::new(),
                gas_wanted,
                gas_used: meter.consumed(),
                events: ante_events,
            };
        }

        // Messages in a second overlay: all or nothing.
        let mut msg_state = Metered::new(Delta::new(&*state), &meter);
        let mut responses = Vec::with_capacity(ante.msgs.len());
        let mut msg_events = Vec::new();
        for (index, msg) in ante.msgs.iter().enumerate() {
            msg_events.push(
                Event::new(sdk_events::MESSAGE)
                    .attr(sdk_attrs::ACTION, msg.msg().type_url())
                    .attr(sdk_attrs::SENDER, msg.signer())
                    .attr(sdk_attrs::MODULE, msg.msg().module())
                    .attr(sdk_attrs::MSG_INDEX, index),
            );
            let result = guarded(&format!("messages[{index}]"), || {
                msg.execute(&mut msg_state, &mut ctx)
            });
            if meter.out_of_gas() {
                let err = out_of_gas(&meter, &format!("messages[{index}]"));
                return TxOutcome::failed(err, gas_wanted, meter.consumed(), ante_events);
            }
            match result {
                Ok(response) => {
                    responses.push(response);
                    msg_events.extend(
                        std::mem::take(&mut ctx.events)
                            .into_iter()
                            .map(|e| e.attr(sdk_attrs::MSG_INDEX, index)),
                    );
                }
                Err(e) => {
                    let err = TxError {
                        log: format!(
                            "failed to execute message; message index: {index}: {}",
                            e.log
                        ),
                        ..e
                    };
                    return TxOutcome::failed(err, gas_wanted, meter.consumed(), ante_events);
                }
            }
        }
        let changes = msg_state.into_inner().into_changes();
        apply(state, changes);
        let mut events = ante_events;
        events.extend(msg_events);
        TxOutcome {
            code: 0,
            codespace: String::new(),
            log: String::new(),
            #[allow(deprecated)]
            data: TxMsgData {
                data: Vec::new(),
                msg_responses: responses,
            }
            .encode_to_vec(),
            gas_wanted,
            gas_used: meter.consumed(),
            events,
        }
    }

    /// Module work at the end of every block (x/hpc retention pruning).
    pub fn end_block(&self, state: &mut impl StateWrite, block: &BlockInfo) {
        hpc::end_block(state, block.height);
    }

    /// The txs of a proposal, in mempool order, that fit the block's byte and gas limits;
    /// txs that do not decode are left out.
    pub fn prepare_proposal(
        &self,
        txs: Vec<Vec<u8>>,
        max_tx_bytes: i64,
        limits: &BlockLimits,
    ) -> Vec<Vec<u8>> {
        let mut bytes = 0i64;
        let mut gas = 0u64;
        let mut out = Vec::new();
        for tx in txs {
            let Some(tx_gas) = gas_limit_of(&tx) else {
                continue;
            };
            if bytes + tx.len() as i64 > max_tx_bytes {
                continue;
            }
            if let Some(max_gas) = limits.max_gas() {
                if gas.saturating_add(tx_gas) > max_gas {
                    continue;
                }
            }
            bytes += tx.len() as i64;
            gas = gas.saturating_add(tx_gas);
            out.push(tx);
        }
        out
    }

    /// Whether a proposal respects the block gas limit (CometBFT checks the byte limit).
    pub fn process_proposal(&self, txs: &[Vec<u8>], limits: &BlockLimits) -> bool {
        let Some(max_gas) = limits.max_gas() else {
            return true;
        };
        let mut gas = 0u64;
        for tx in txs {
            // Undecodable txs are allowed in; they fail with a decode error in the block.
            gas = gas.saturating_add(gas_limit_of(tx).unwrap_or(0));
        }
        gas <= max_gas
    }

    /// Answers a query by gRPC method path against `state` (committed at `clock.height`).
    pub fn query(
        &self,
        path: &str,
        data: &[u8],
        state: &dyn StateRead,
        clock: hpc::QueryClock,
    ) -> Result<Vec<u8>, QueryError> {
        let (service, method) = path
            .strip_prefix('/')
            .and_then(|p| p.rsplit_once('/'))
            .ok_or_else(|| QueryError::UnknownPath(path.to_string()))?;
        let routed = match service {
            "cosmos.auth.v1beta1.Query" => auth::route_query(method, data, state),
            "cosmos.bank.v1beta1.Query" => bank::route_query(method, data, state),
            "cosmos.consensus.v1.Query" => crate::consensus::route_query(method, data, state),
            "virtengine.hpc.v1.Query" => hpc::route_query(method, data, state, clock),
            "cosmos.tx.v1beta1.Service" if method == "Simulate" => {
                Some(self.simulate(data, state, clock))
            }
            _ => None,
        };
        routed.unwrap_or_else(|| Err(QueryError::UnknownPath(path.to_string())))
    }

    fn simulate(
        &self,
        data: &[u8],
        state: &dyn StateRead,
        clock: hpc::QueryClock,
    ) -> Result<Vec<u8>, QueryError> {
        handle(data, |req: SimulateRequest| {
            #[allow(deprecated)]
            let tx_bytes = if !req.tx_bytes.is_empty() {
                req.tx_bytes
            } else if let Some(tx) = req.tx {
                // Deprecated form: re-encode the Tx as TxRaw.
                cosmos_sdk_proto::cosmos::tx::v1beta1::TxRaw {
                    body_bytes: tx.body.map(|b| b.encode_to_vec()).unwrap_or_default(),
                    auth_info_bytes: tx.auth_info.map(|a| a.encode_to_vec()).unwrap_or_default(),
                    signatures: tx.signatures,
                }
                .encode_to_vec()
            } else {
                return Err(QueryError::InvalidArgument("tx_bytes: empty tx".into()));
            };
            let block = BlockInfo {
                chain_id: ConsensusKeeper::chain_id(&state).unwrap_or_default(),
                height: clock.height + 1,
                time_seconds: clock.block_time_seconds,
                time_nanos: 0,
            };
            let mut scratch = Delta::new(state);
            let outcome = self.execute_tx(&mut scratch, &block, &tx_bytes, Mode::Simulate);
            if !outcome.is_ok() {
                return Err(QueryError::InvalidArgument(format!(
                    "simulation failed (codespace {}, code {}): {}",
                    outcome.codespace, outcome.code, outcome.log
                )));
            }
            #[allow(deprecated)]
            Ok(SimulateResponse {
                gas_info: Some(GasInfo {
                    gas_wanted: outcome.gas_wanted,
                    gas_used: outcome.gas_used,
                }),
                result: Some(AbciResult {
                    data: Vec::new(),
                    log: outcome.log,
                    events: outcome
                        .events
                        .iter()
                        .map(|e| cosmos_sdk_proto::tendermint::abci::Event {
                            r#type: e.kind.clone(),
                            attributes: e
                                .attributes
                                .iter()
                                .map(
                                    |(k, v)| cosmos_sdk_proto::tendermint::abci::EventAttribute {
                                        key: k.clone(),
                                        value: v.clone(),
                                        index: true,
                                    },
                                )
                                .collect(),
                        })
                        .collect(),
                    msg_responses: TxMsgData::decode(outcome.data.as_slice())
                        .map(|d| d.msg_responses)
                        .unwrap_or_default(),
                }),
            })
        })
    }
}
