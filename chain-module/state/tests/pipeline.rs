//! The tx pipeline driven in-process with cosmrs-signed txs: ante checks, bank, fees,
//! events, CheckTx state accumulation, simulation, genesis.

use std::collections::BTreeMap;

use cosmos_sdk_proto::cosmos::auth::v1beta1::{
    BaseAccount, QueryAccountRequest, QueryAccountResponse,
};
use cosmos_sdk_proto::cosmos::bank::v1beta1::{QueryBalanceRequest, QueryBalanceResponse};
use cosmos_sdk_proto::cosmos::tx::v1beta1::{SimulateRequest, SimulateResponse};
use cosmrs::bank::MsgSend;
use cosmrs::crypto::secp256k1::SigningKey;
use cosmrs::tx::{Body, Fee, Msg as _, SignDoc, SignerInfo};
use cosmrs::{AccountId, Coin};
use hpc_state::address::Address;
use hpc_state::bank::{BankKeeper, FEE_COLLECTOR};
use hpc_state::consensus::BlockLimits;
use hpc_state::errors::QueryError;
use hpc_state::hpc::QueryClock;
use hpc_state::tx::Mode;
use hpc_state::{App, BlockInfo};

fn clock() -> QueryClock {
    QueryClock {
        height: 1,
        block_time_seconds: 1_700_000_000,
    }
}
use hpc_store::{Delta, StateRead};
use prost::Message;

const CHAIN: &str = "hpc-test-1";

struct Key {
    sk: SigningKey,
    id: AccountId,
}

fn key(seed: u8) -> Key {
    let sk = SigningKey::from_slice(&[seed; 32]).unwrap();
    let id = sk.public_key().account_id("virtengine").unwrap();
    Key { sk, id }
}

fn addr(k: &Key) -> Address {
    k.id.as_ref().parse().unwrap()
}

fn block(height: u64) -> BlockInfo {
    BlockInfo {
        chain_id: CHAIN.into(),
        height,
        time_seconds: 1_700_000_000,
        time_nanos: 0,
    }
}

fn genesis(app: &App, funded: &[(&Key, u128)]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let balances: Vec<serde_json::Value> = funded
        .iter()
        .map(|(k, amt)| serde_json::json!({"address": k.id.to_string(), "coins": [{"denom": "uvirt", "amount": amt.to_string()}]}))
        .collect();
    let app_state = serde_json::json!({"bank": {"balances": balances}});
    let mut state = BTreeMap::new();
    app.init_chain(
        &mut state,
        CHAIN,
        &BlockLimits::default(),
        app_state.to_string().as_bytes(),
    )
    .unwrap();
    state
}

struct TxSpec<'a> {
    from: &'a Key,
    to: &'a Key,
    amount: u128,
    fee: u128,
    gas: u64,
    seq: u64,
    acct: u64,
    chain: &'a str,
    memo: String,
    fee_denom: &'a str,
}

impl<'a> TxSpec<'a> {
    fn new(from: &'a Key, to: &'a Key, amount: u128, seq: u64, acct: u64) -> Self {
        Self {
            from,
            to,
            amount,
            fee: 5_000,
            gas: 200_000,
            seq,
            acct,
            chain: CHAIN,
            memo: String::new(),
            fee_denom: "uvirt",
        }
    }

    fn sign(&self) -> Vec<u8> {
        let msg = MsgSend {
            from_address: self.from.id.clone(),
            to_address: self.to.id.clone(),
            amount: vec![Coin {
                denom: "uvirt".parse().unwrap(),
                amount: self.amount,
            }],
        }
        .to_any()
        .unwrap();
        let body = Body::new(vec![msg], self.memo.clone(), 0u32);
        let fee = Fee::from_amount_and_gas(
            Coin {
                denom: self.fee_denom.parse().unwrap(),
                amount: self.fee,
            },
            self.gas,
        );
        let auth_info =
            SignerInfo::single_direct(Some(self.from.sk.public_key()), self.seq).auth_info(fee);
        let doc = SignDoc::new(&body, &auth_info, &self.chain.parse().unwrap(), self.acct).unwrap();
        doc.sign(&self.from.sk).unwrap().to_bytes().unwrap()
    }
}

fn balance(state: &impl StateRead, k: &Address) -> u128 {
    BankKeeper::balance(state, k, "uvirt")
}

fn sequence(app: &App, state: &BTreeMap<Vec<u8>, Vec<u8>>, k: &Key) -> u64 {
    let req = QueryAccountRequest {
        address: k.id.to_string(),
    }
    .encode_to_vec();
    let resp = QueryAccountResponse::decode(
        app.query("/cosmos.auth.v1beta1.Query/Account", &req, state, clock())
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    BaseAccount::decode(resp.account.unwrap().value.as_slice())
        .unwrap()
        .sequence
}

#[test]
fn send_moves_funds_pays_fee_bumps_sequence_and_emits_cosmos_events() {
    let app = App::default();
    let (alice, bob) = (key(1), key(2));
    let mut state = genesis(&app, &[(&alice, 1_000_000)]);
    let out = app.execute_tx(
        &mut state,
        &block(1),
        &TxSpec::new(&alice, &bob, 1_234, 0, 0).sign(),
        Mode::Deliver,
    );
    assert_eq!(out.code, 0, "{}", out.log);
    assert!(out.gas_used > 0 && out.gas_used <= 200_000);
    assert_eq!(balance(&state, &addr(&alice)), 1_000_000 - 1_234 - 5_000);
    assert_eq!(balance(&state, &addr(&bob)), 1_234);
    assert_eq!(balance(&state, &Address::module(FEE_COLLECTOR)), 5_000);
    assert_eq!(sequence(&app, &state, &alice), 1);
    // bob's account was created on first receipt of funds
    assert_eq!(sequence(&app, &state, &bob), 0);
    let message = out.events.iter().find(|e| e.kind == "message").unwrap();
    assert_eq!(message.get("sender"), Some(alice.id.as_ref()));
    assert_eq!(message.get("action"), Some("/cosmos.bank.v1beta1.MsgSend"));
    assert_eq!(message.get("module"), Some("bank"));
    let fee = out
        .events
        .iter()
        .find(|e| e.kind == "tx" && e.get("fee").is_some())
        .unwrap();
    assert_eq!(fee.get("fee"), Some("5000uvirt"));
    assert!(out
        .events
        .iter()
        .any(|e| e.kind == "transfer" && e.get("amount") == Some("1234uvirt")));
    // query the balance by gRPC path
    let req = QueryBalanceRequest {
        address: bob.id.to_string(),
        denom: "uvirt".into(),
    }
    .encode_to_vec();
    let resp = QueryBalanceResponse::decode(
        app.query("/cosmos.bank.v1beta1.Query/Balance", &req, &state, clock())
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    assert_eq!(resp.balance.unwrap().amount, "1234");
}

#[test]
fn rejected_txs_change_no_state_and_carry_cosmos_codes() {
    let app = App::default();
    let (alice, bob) = (key(1), key(2));
    let mut state = genesis(&app, &[(&alice, 1_000_000)]);
    let first = TxSpec::new(&alice, &bob, 10, 0, 0).sign();
    assert_eq!(
        app.execute_tx(&mut state, &block(1), &first, Mode::Deliver)
            .code,
        0
    );
    let snapshot = state.clone();

    let cases: Vec<(&str, Vec<u8>, u32, &str)> = vec![
        (
            "replay",
            first.clone(),
            32,
            "account sequence mismatch, expected 1, got 0",
        ),
        (
            "wrong chain id",
            TxSpec {
                chain: "other-chain",
                ..TxSpec::new(&alice, &bob, 10, 1, 0)
            }
            .sign(),
            4,
            "chain-id (hpc-test-1)",
        ),
        (
            "wrong account number",
            TxSpec::new(&alice, &bob, 10, 1, 7).sign(),
            4,
            "signature verification failed",
        ),
        ("garbage", b"not a tx".to_vec(), 2, "parse error"),
        (
            "memo too long",
            TxSpec {
                memo: "x".repeat(300),
                ..TxSpec::new(&alice, &bob, 10, 1, 0)
            }
            .sign(),
            12,
            "memo",
        ),
        (
            "zero gas",
            TxSpec {
                gas: 0,
                ..TxSpec::new(&alice, &bob, 10, 1, 0)
            }
            .sign(),
            18,
            "gas_limit",
        ),
        (
            "fee in another denom",
            TxSpec {
                fee_denom: "ufoo",
                ..TxSpec::new(&alice, &bob, 10, 1, 0)
            }
            .sign(),
            13,
            "fees are paid in uvirt",
        ),
        (
            "fee above balance",
            TxSpec {
                fee: 10_000_000,
                ..TxSpec::new(&alice, &bob, 10, 1, 0)
            }
            .sign(),
            5,
            "fees",
        ),
        (
            "unknown signer account",
            TxSpec::new(&key(9), &bob, 10, 0, 0).sign(),
            9,
            "does not exist",
        ),
    ];
    for (name, tx, code, log) in cases {
        let out = app.execute_tx(&mut state, &block(2), &tx, Mode::Deliver);
        assert_eq!(out.code, code, "{name}: {}", out.log);
        assert!(
            out.log.contains(log),
            "{name}: {:?} should mention {log:?}",
            out.log
        );
        assert_eq!(state, snapshot, "{name} changed state");
    }

    // A tampered signature.
    let mut raw = cosmos_sdk_proto::cosmos::tx::v1beta1::TxRaw::decode(
        TxSpec::new(&alice, &bob, 10, 1, 0).sign().as_slice(),
    )
    .unwrap();
    raw.signatures[0][5] ^= 0xff;
    let out = app.execute_tx(&mut state, &block(2), &raw.encode_to_vec(), Mode::Deliver);
    assert_eq!(out.code, 4, "{}", out.log);
    assert_eq!(state, snapshot);
}

#[test]
fn failing_message_keeps_fee_and_sequence_but_not_the_transfer() {
    let app = App::default();
    let (alice, bob) = (key(1), key(2));
    let mut state = genesis(&app, &[(&alice, 100_000)]);
    let out = app.execute_tx(
        &mut state,
        &block(1),
        &TxSpec::new(&alice, &bob, 999_999, 0, 0).sign(),
        Mode::Deliver,
    );
    assert_eq!(out.code, 5, "{}", out.log);
    assert!(out.log.contains("message index: 0"));
    assert_eq!(balance(&state, &addr(&alice)), 95_000);
    assert_eq!(balance(&state, &addr(&bob)), 0);
    assert_eq!(sequence(&app, &state, &alice), 1);
    assert!(out.events.iter().any(|e| e.get("fee") == Some("5000uvirt")));
    assert!(!out.events.iter().any(|e| e.kind == "message"));
}

#[test]
fn out_of_gas_is_code_11_and_keeps_only_the_fee() {
    let app = App::default();
    let (alice, bob) = (key(1), key(2));
    let mut state = genesis(&app, &[(&alice, 100_000)]);
    // Measure what the ante handler alone costs (CheckTx runs only the ante handler),
    // then give exactly that much: the transfer itself runs out of gas.
    let probe = TxSpec::new(&alice, &bob, 10, 0, 0);
    let ante_gas = app
        .execute_tx(
            &mut Delta::new(&state),
            &block(1),
            &probe.sign(),
            Mode::Check,
        )
        .gas_used;
    let tight = TxSpec {
        gas: ante_gas,
        ..TxSpec::new(&alice, &bob, 10, 0, 0)
    };
    let tight_ante = app
        .execute_tx(
            &mut Delta::new(&state),
            &block(1),
            &tight.sign(),
            Mode::Check,
        )
        .gas_used;
    let out = app.execute_tx(
        &mut state,
        &block(1),
        &TxSpec {
            gas: tight_ante,
            ..tight
        }
        .sign(),
        Mode::Deliver,
    );
    assert_eq!(out.code, 11, "{}", out.log);
    assert!(out.gas_used > tight_ante);
    assert!(out.log.contains("messages[0]"), "{}", out.log);
    assert_eq!(balance(&state, &addr(&bob)), 0);
    assert_eq!(balance(&state, &addr(&alice)), 95_000);
    // Too little even for the ante handler: nothing at all.
    let before = state.clone();
    let out = app.execute_tx(
        &mut state,
        &block(1),
        &TxSpec {
            gas: 1_000,
            ..TxSpec::new(&alice, &bob, 10, 1, 0)
        }
        .sign(),
        Mode::Deliver,
    );
    assert_eq!(out.code, 11);
    assert_eq!(state, before);
}

#[test]
fn check_state_accumulates_sequences_and_enforces_min_gas_price() {
    let app = App::new("0.025uvirt".parse().unwrap());
    let (alice, bob) = (key(1), key(2));
    let committed = genesis(&app, &[(&alice, 1_000_000)]);
    let mut check = Delta::new(&committed);
    for seq in 0..3 {
        let out = app.execute_tx(
            &mut check,
            &block(1),
            &TxSpec::new(&alice, &bob, 1, seq, 0).sign(),
            Mode::Check,
        );
        assert_eq!(out.code, 0, "seq {seq}: {}", out.log);
    }
    // 200_000 gas × 0.025 = 5_000uvirt required
    let cheap = TxSpec {
        fee: 4_999,
        ..TxSpec::new(&alice, &bob, 1, 3, 0)
    }
    .sign();
    let out = app.execute_tx(&mut check, &block(1), &cheap, Mode::Check);
    assert_eq!(out.code, 13);
    assert!(out.log.contains("required: 5000uvirt"), "{}", out.log);
    // CheckTx runs no messages: bob got nothing
    assert_eq!(balance(&check, &addr(&bob)), 0);
    // ...and min gas prices do not apply in blocks
    let mut block_state = committed.clone();
    let out = app.execute_tx(
        &mut block_state,
        &block(1),
        &TxSpec {
            fee: 1,
            ..TxSpec::new(&alice, &bob, 1, 0, 0)
        }
        .sign(),
        Mode::Deliver,
    );
    assert_eq!(out.code, 0, "{}", out.log);
}

#[test]
fn simulate_estimates_gas_without_changing_state() {
    let app = App::default();
    let (alice, bob) = (key(1), key(2));
    let state = genesis(&app, &[(&alice, 1_000_000)]);
    let tx = TxSpec::new(&alice, &bob, 10, 0, 0).sign();
    let req = SimulateRequest {
        tx_bytes: tx.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    let resp = SimulateResponse::decode(
        app.query("/cosmos.tx.v1beta1.Service/Simulate", &req, &state, clock())
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let simulated = resp.gas_info.unwrap().gas_used;
    let mut exec = state.clone();
    let real = app.execute_tx(&mut exec, &block(2), &tx, Mode::Deliver);
    assert_eq!(real.code, 0);
    assert_eq!(simulated, real.gas_used);
    assert_eq!(balance(&state, &addr(&bob)), 0);
    let bad = SimulateRequest {
        tx_bytes: TxSpec::new(&alice, &bob, 10_000_000, 0, 0).sign(),
        ..Default::default()
    }
    .encode_to_vec();
    assert!(
        matches!(app.query("/cosmos.tx.v1beta1.Service/Simulate", &bad, &state, clock()), Err(QueryError::InvalidArgument(m)) if m.contains("insufficient funds"))
    );
    assert!(matches!(
        app.query("/nope.Service/X", &[], &state, clock()),
        Err(QueryError::UnknownPath(_))
    ));
}

/// The tx CosmJS's `simulate` sends: sign mode unspecified, one empty signature, no fee.
fn cosmjs_simulation_tx(from: &Key, to: &Key, amount: u128, seq: u64) -> Vec<u8> {
    use cosmos_sdk_proto::cosmos::tx::v1beta1 as txpb;
    let signed = TxSpec::new(from, to, amount, seq, 0).sign();
    let raw = txpb::TxRaw::decode(signed.as_slice()).unwrap();
    let mut auth_info = txpb::AuthInfo::decode(raw.auth_info_bytes.as_slice()).unwrap();
    auth_info.fee = Some(txpb::Fee::default());
    auth_info.signer_infos[0].mode_info = Some(txpb::ModeInfo {
        sum: Some(txpb::mode_info::Sum::Single(txpb::mode_info::Single {
            mode: 0,
        })),
    });
    txpb::TxRaw {
        body_bytes: raw.body_bytes,
        auth_info_bytes: auth_info.encode_to_vec(),
        signatures: vec![Vec::new()],
    }
    .encode_to_vec()
}

/// What the Cosmos SDK's Go client (v0.50 `tx.CalculateGas`) simulates: SIGN_MODE_DIRECT
/// with an empty signature, and the fee its gas prices give for a zero gas limit, `0uvirt`.
fn go_sdk_simulation_tx(from: &Key, to: &Key, amount: u128, seq: u64) -> Vec<u8> {
    use cosmos_sdk_proto::cosmos::base::v1beta1::Coin as ProtoCoin;
    use cosmos_sdk_proto::cosmos::tx::v1beta1 as txpb;
    let signed = TxSpec::new(from, to, amount, seq, 0).sign();
    let raw = txpb::TxRaw::decode(signed.as_slice()).unwrap();
    let mut auth_info = txpb::AuthInfo::decode(raw.auth_info_bytes.as_slice()).unwrap();
    auth_info.fee = Some(txpb::Fee {
        amount: vec![ProtoCoin {
            denom: "uvirt".into(),
            amount: "0".into(),
        }],
        ..Default::default()
    });
    txpb::TxRaw {
        body_bytes: raw.body_bytes,
        auth_info_bytes: auth_info.encode_to_vec(),
        signatures: vec![Vec::new()],
    }
    .encode_to_vec()
}

fn simulated_gas(
    app: &App,
    state: &BTreeMap<Vec<u8>, Vec<u8>>,
    tx: Vec<u8>,
) -> Result<u64, QueryError> {
    let req = SimulateRequest {
        tx_bytes: tx,
        ..Default::default()
    }
    .encode_to_vec();
    let resp = app.query("/cosmos.tx.v1beta1.Service/Simulate", &req, state, clock())?;
    Ok(SimulateResponse::decode(resp.as_slice())
        .unwrap()
        .gas_info
        .unwrap()
        .gas_used)
}

#[test]
fn cosmjs_and_go_sdk_style_simulations_estimate_the_signed_txs_gas_from_above() {
    let app = App::default();
    let (alice, bob, carol) = (key(1), key(2), key(3));
    // bob already has an account, carol gets hers with the transfer (more gas).
    let state = genesis(&app, &[(&alice, 1_000_000), (&bob, 5)]);
    let cases = [
        (&bob, cosmjs_simulation_tx(&alice, &bob, 10, 0)),
        (&carol, cosmjs_simulation_tx(&alice, &carol, 10, 0)),
        (&bob, go_sdk_simulation_tx(&alice, &bob, 10, 0)),
        (&carol, go_sdk_simulation_tx(&alice, &carol, 10, 0)),
    ];
    for (to, simulation) in cases {
        let simulated = simulated_gas(&app, &state, simulation).expect(
            "an unspecified sign mode, an empty signature and no fee or a zero fee simulate",
        );
        let mut exec = state.clone();
        let real = app.execute_tx(
            &mut exec,
            &block(2),
            &TxSpec::new(&alice, to, 10, 0, 0).sign(),
            Mode::Deliver,
        );
        assert_eq!(real.code, 0, "{}", real.log);
        assert!(
            real.gas_used <= simulated && simulated - real.gas_used <= real.gas_used / 20,
            "simulated {simulated}, used {}: the estimate must cover the signed tx, within 5%",
            real.gas_used
        );
    }
    // Outside simulation the unspecified sign mode is refused, before any state change.
    let mut exec = state.clone();
    let mut unsigned = cosmjs_simulation_tx(&alice, &bob, 10, 0);
    let out = app.execute_tx(&mut exec, &block(2), &unsigned, Mode::Check);
    assert_ne!(out.code, 0);
    assert_eq!(exec, state);
    // Nor does a simulation skip what a fee-less tx cannot pay for.
    unsigned = cosmjs_simulation_tx(&alice, &bob, 10_000_000, 0);
    assert!(simulated_gas(&app, &state, unsigned).is_err());
}

#[test]
fn genesis_export_reimports_to_identical_state_and_bad_genesis_names_the_field() {
    let app = App::default();
    let (alice, bob) = (key(1), key(2));
    let mut state = genesis(&app, &[(&alice, 1_000_000), (&bob, 5)]);
    assert_eq!(
        app.execute_tx(
            &mut state,
            &block(1),
            &TxSpec::new(&alice, &bob, 10, 0, 0).sign(),
            Mode::Deliver
        )
        .code,
        0
    );
    let exported = serde_json::to_vec(&app.export(&state)).unwrap();
    let mut reimported = BTreeMap::new();
    app.init_chain(&mut reimported, CHAIN, &BlockLimits::default(), &exported)
        .unwrap();
    assert_eq!(reimported, state);

    let bad = [
        (
            r#"{"bank":{"balances":[{"address":"cosmos1xyz","coins":[]}]}}"#,
            "bank.balances[0].address",
        ),
        (
            r#"{"bank":{"balances":[{"address":"ADDR","coins":[{"denom":"uvirt","amount":"-5"}]}]}}"#,
            "bank.balances[0].coins",
        ),
        (
            r#"{"bank":{"balances":[{"address":"ADDR","coins":[{"denom":"uvirt","amount":"5"}]}],"supply":[{"denom":"uvirt","amount":"6"}]}}"#,
            "bank.supply",
        ),
        (
            r#"{"auth":{"accounts":[{"address":"ADDR","account_number":"1"},{"address":"ADDR","account_number":"2"}]}}"#,
            "auth.accounts[1].address",
        ),
        (r#"{"bogus":{}}"#, "app_state"),
    ];
    for (json, field) in bad {
        let json = json.replace("ADDR", alice.id.as_ref());
        let err = app
            .init_chain(
                &mut BTreeMap::new(),
                CHAIN,
                &BlockLimits::default(),
                json.as_bytes(),
            )
            .unwrap_err();
        assert_eq!(err.field, field, "{json}: {err}");
    }
}

#[test]
fn consensus_params_are_served_as_the_cosmos_sdk_does() {
    use hpc_state::consensus::{QueryParamsRequest, QueryParamsResponse};
    let app = App::default();
    let state = genesis(&app, &[]);
    let resp = QueryParamsResponse::decode(
        app.query(
            "/cosmos.consensus.v1.Query/Params",
            &QueryParamsRequest {}.encode_to_vec(),
            &state,
            clock(),
        )
        .unwrap()
        .as_slice(),
    )
    .unwrap();
    let block = resp.params.unwrap().block.unwrap();
    let limits = BlockLimits::default();
    assert_eq!(
        (block.max_bytes, block.max_gas),
        (limits.max_bytes, limits.max_gas)
    );
    assert!(matches!(
        app.query("/cosmos.consensus.v1.Query/Nope", &[], &state, clock()),
        Err(QueryError::UnknownPath(_))
    ));
}

/// A node that verified a block's signatures in CheckTx (its cache warm) and one that sees
/// the txs first in the block (cold) execute it identically, bad signatures included.
#[test]
fn the_verified_signature_cache_changes_no_outcome() {
    use cosmos_sdk_proto::cosmos::tx::v1beta1::TxRaw;
    let (alice, bob, carol) = (key(1), key(2), key(3));
    let warm = App::default();
    let cold = App::default();
    let genesis_state = genesis(&warm, &[(&alice, 1_000_000), (&bob, 1_000_000)]);
    let mut txs: Vec<Vec<u8>> = (0..4)
        .map(|seq| TxSpec::new(&alice, &carol, 10, seq, 0).sign())
        .collect();
    // bob's tx twice: once with a corrupted signature (refused), then valid.
    let valid = TxSpec::new(&bob, &carol, 7, 0, 1).sign();
    let mut corrupted = TxRaw::decode(valid.as_slice()).unwrap();
    corrupted.signatures[0][10] ^= 1;
    txs.push(corrupted.encode_to_vec());
    txs.push(valid);
    // The warm node checked every tx as it entered its mempool.
    let mut check_state = genesis_state.clone();
    for tx in &txs {
        warm.execute_tx(&mut check_state, &block(2), tx, Mode::Check);
    }
    let (mut warm_state, mut cold_state) = (genesis_state.clone(), genesis_state);
    for tx in &txs {
        let w = warm.execute_tx(&mut warm_state, &block(2), tx, Mode::Deliver);
        let c = cold.execute_tx(&mut cold_state, &block(2), tx, Mode::Deliver);
        assert_eq!(
            (w.code, w.gas_used, &w.events, &w.log),
            (c.code, c.gas_used, &c.events, &c.log)
        );
    }
    assert_eq!(warm_state, cold_state);
    assert_eq!(
        sequence(&warm, &warm_state, &bob),
        1,
        "only the valid tx counted"
    );
    assert_eq!(balance(&warm_state, &addr(&carol)), 4 * 10 + 7);
}

/// Verifying signatures ahead of CheckTx (the ABCI server does it on other cores) changes
/// no CheckTx outcome: valid, corrupted, wrong-signer, unknown-account and malformed txs
/// are answered exactly as without it.
#[test]
fn preverified_signatures_change_no_check_tx_outcome() {
    use cosmos_sdk_proto::cosmos::tx::v1beta1::{AuthInfo, TxRaw};
    let (alice, bob, carol, stranger) = (key(1), key(2), key(3), key(9));
    let ahead = App::default();
    let plain = App::default();
    let state = genesis(&ahead, &[(&alice, 1_000_000), (&bob, 1_000_000)]);
    let valid = TxSpec::new(&alice, &carol, 10, 0, 0).sign();
    let mut corrupted = TxRaw::decode(valid.as_slice()).unwrap();
    corrupted.signatures[0][5] ^= 1;
    // bob's key and signature (bob's account number) over alice's transfer.
    let bobs = TxRaw::decode(TxSpec::new(&bob, &carol, 10, 0, 1).sign().as_slice()).unwrap();
    let mut wrong_signer = TxRaw::decode(valid.as_slice()).unwrap();
    let mut auth = AuthInfo::decode(wrong_signer.auth_info_bytes.as_slice()).unwrap();
    auth.signer_infos = AuthInfo::decode(bobs.auth_info_bytes.as_slice())
        .unwrap()
        .signer_infos;
    wrong_signer.auth_info_bytes = auth.encode_to_vec();
    let txs = [
        valid.clone(),
        corrupted.encode_to_vec(),
        wrong_signer.encode_to_vec(),
        TxSpec::new(&stranger, &carol, 10, 0, 7).sign(),
        b"not a tx".to_vec(),
        TxSpec::new(&alice, &carol, 10, 0, 0).sign(),
    ];
    let (mut a, mut b) = (state.clone(), state.clone());
    for tx in &txs {
        ahead.preverify_signatures(&state, CHAIN, tx);
        let x = ahead.execute_tx(&mut a, &block(2), tx, Mode::Check);
        let y = plain.execute_tx(&mut b, &block(2), tx, Mode::Check);
        assert_eq!((x.code, &x.log, x.gas_used), (y.code, &y.log, y.gas_used));
    }
    assert_eq!(a, b);
}
