//! Unknown protobuf fields in txs are rejected as the Cosmos SDK's tx decoder rejects them
//! (`codec/unknownproto`): strictly in `TxRaw` and `AuthInfo`, with non-critical fields
//! (bit 11 of the field number set) allowed only in `TxBody`, recursively through messages
//! packed in `Any`. `TxRaw` must also be canonically encoded (ADR-027).
//!
//! Every rejected tx below is otherwise valid and properly signed over the bytes it carries,
//! and each test first shows that the same tx without the extra field is accepted, so the
//! only reason for the rejection is the unknown-field check.

use std::collections::BTreeMap;

use cosmos_sdk_proto::cosmos::bank::v1beta1::MsgSend;
use cosmos_sdk_proto::cosmos::base::v1beta1::Coin;
use cosmos_sdk_proto::cosmos::crypto::secp256k1::PubKey;
use cosmos_sdk_proto::cosmos::tx::signing::v1beta1::SignMode;
use cosmos_sdk_proto::cosmos::tx::v1beta1::{
    mode_info, Fee, ModeInfo, SignDoc, SimulateRequest, TxRaw,
};
use cosmos_sdk_proto::{Any, Timestamp};
use cosmrs::crypto::secp256k1::SigningKey;
use hpc_proto::virtengine::hpc::v1::{
    JobRequirements, MsgRecordRoutingAudit, MsgSubmitJob, PlacementPolicy, RoutingAuditRecord,
    ScoringWeights,
};
use hpc_state::address::Address;
use hpc_state::auth::AuthKeeper;
use hpc_state::consensus::BlockLimits;
use hpc_state::errors::QueryError;
use hpc_state::hpc::QueryClock;
use hpc_state::tx::{decode_tx, Mode};
use hpc_state::{App, BlockInfo, TxOutcome};
use prost::{Message, Name};
use sha2::{Digest, Sha256};

const CHAIN: &str = "hpc-unknown-fields";

// ---------------------------------------------------------------------------------------------
// Wire-format helpers
// ---------------------------------------------------------------------------------------------

fn varint(value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(value, &mut out);
    out
}

fn tag(number: u32, wire_type: u8) -> Vec<u8> {
    varint(u64::from(number) << 3 | u64::from(wire_type))
}

/// A length-delimited field.
fn ld(number: u32, payload: &[u8]) -> Vec<u8> {
    [
        tag(number, 2),
        varint(payload.len() as u64),
        payload.to_vec(),
    ]
    .concat()
}

/// A varint field.
fn vf(number: u32, value: u64) -> Vec<u8> {
    [tag(number, 0), varint(value)].concat()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn any(type_url: &str, value: Vec<u8>) -> Vec<u8> {
    Any {
        type_url: type_url.into(),
        value,
    }
    .encode_to_vec()
}

fn coin(amount: u64) -> Coin {
    Coin {
        denom: "uvirt".into(),
        amount: amount.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// A chain with one funded account and txs signed over arbitrary body / auth info bytes
// ---------------------------------------------------------------------------------------------

struct Chain {
    app: App,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    sk: SigningKey,
    alice: Address,
    bob: Address,
}

impl Chain {
    fn new() -> Self {
        let app = App::default();
        let sk = SigningKey::from_slice(&[7; 32]).unwrap();
        let alice = Address::from_secp256k1_pubkey(&sk.public_key().to_bytes());
        let bob = Address::from_secp256k1_pubkey(
            &SigningKey::from_slice(&[8; 32])
                .unwrap()
                .public_key()
                .to_bytes(),
        );
        let genesis = serde_json::json!({"bank": {"balances": [
            {"address": alice.to_string(), "coins": [{"denom": "uvirt", "amount": "1000000000"}]}
        ]}});
        let mut state = BTreeMap::new();
        app.init_chain(
            &mut state,
            CHAIN,
            &BlockLimits::default(),
            genesis.to_string().as_bytes(),
        )
        .unwrap();
        Self {
            app,
            state,
            sk,
            alice,
            bob,
        }
    }

    fn block() -> BlockInfo {
        BlockInfo {
            chain_id: CHAIN.into(),
            height: 2,
            time_seconds: 1_700_000_000,
            time_nanos: 0,
        }
    }

    /// Runs a tx against a copy of the state.
    fn run(&self, tx: &[u8], mode: Mode) -> TxOutcome {
        let mut state = self.state.clone();
        self.app.execute_tx(&mut state, &Self::block(), tx, mode)
    }

    /// CheckTx (mempool admission: decoding, then the ante checks incl. the signature).
    fn check(&self, tx: &[u8]) -> TxOutcome {
        self.run(tx, Mode::Check)
    }

    // --- building blocks, encoded -------------------------------------------------------------

    fn msg_send(&self) -> MsgSend {
        MsgSend {
            from_address: self.alice.to_string(),
            to_address: self.bob.to_string(),
            amount: vec![coin(1)],
        }
    }

    fn msg_send_any(&self) -> Vec<u8> {
        any(&MsgSend::type_url(), self.msg_send().encode_to_vec())
    }

    fn submit_job(&self) -> MsgSubmitJob {
        MsgSubmitJob {
            owner: self.alice.to_string(),
            requirements: Some(JobRequirements {
                nodes: 1,
                max_runtime_seconds: 3_600,
                ..Default::default()
            }),
            workload: Some(hpc_proto::virtengine::hpc::v1::JobWorkload {
                source: Some(
                    hpc_proto::virtengine::hpc::v1::job_workload::Source::InlineScript(
                        b"#!/bin/sh\ntrue\n".to_vec(),
                    ),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pub_key(&self) -> Vec<u8> {
        PubKey {
            key: self.sk.public_key().to_bytes(),
        }
        .encode_to_vec()
    }

    fn mode_info_direct() -> Vec<u8> {
        ModeInfo {
            sum: Some(mode_info::Sum::Single(mode_info::Single {
                mode: SignMode::Direct as i32,
            })),
        }
        .encode_to_vec()
    }

    /// `SignerInfo` from its parts (the public key `Any`, the mode info), sequence 0.
    fn signer_info_with(public_key_any: &[u8], mode_info: &[u8]) -> Vec<u8> {
        cat(&[&ld(1, public_key_any), &ld(2, mode_info), &vf(3, 0)])
    }

    fn signer_info(&self) -> Vec<u8> {
        Self::signer_info_with(
            &any(&PubKey::type_url(), self.pub_key()),
            &Self::mode_info_direct(),
        )
    }

    fn fee() -> Vec<u8> {
        Fee {
            amount: vec![coin(5_000)],
            gas_limit: 5_000_000,
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// `TxBody` with the given message `Any`s, then `extra` bytes.
    fn body(msgs: &[Vec<u8>], extra: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = msgs.iter().flat_map(|m| ld(1, m)).collect();
        out.extend_from_slice(extra);
        out
    }

    /// `AuthInfo` with one signer info and a fee, then `extra` bytes.
    fn auth_info_with(signer_info: &[u8], fee: &[u8], extra: &[u8]) -> Vec<u8> {
        cat(&[&ld(1, signer_info), &ld(2, fee), extra])
    }

    fn auth_info(&self) -> Vec<u8> {
        Self::auth_info_with(&self.signer_info(), &Self::fee(), &[])
    }

    /// A `TxRaw` signed by alice (account 0, sequence 0) over exactly these bytes.
    fn sign(&self, body_bytes: Vec<u8>, auth_info_bytes: Vec<u8>) -> Vec<u8> {
        let account = AuthKeeper::account(&self.state, &self.alice).unwrap();
        let doc = SignDoc {
            body_bytes: body_bytes.clone(),
            auth_info_bytes: auth_info_bytes.clone(),
            chain_id: CHAIN.into(),
            account_number: account.account_number,
        };
        let signature = self.sk.sign(&doc.encode_to_vec()).unwrap();
        TxRaw {
            body_bytes,
            auth_info_bytes,
            signatures: vec![signature.to_bytes().to_vec()],
        }
        .encode_to_vec()
    }

    /// A signed tx with these message `Any`s and `extra` bytes at the end of the body.
    fn tx_with_body(&self, msgs: &[Vec<u8>], extra: &[u8]) -> Vec<u8> {
        self.sign(Self::body(msgs, extra), self.auth_info())
    }

    /// A signed bank send tx with this auth info.
    fn tx_with_auth_info(&self, auth_info: Vec<u8>) -> Vec<u8> {
        self.sign(Self::body(&[self.msg_send_any()], &[]), auth_info)
    }

    fn good_tx(&self) -> Vec<u8> {
        self.tx_with_body(&[self.msg_send_any()], &[])
    }
}

#[track_caller]
fn assert_ok(out: &TxOutcome) {
    assert_eq!(out.code, 0, "{} ({})", out.log, out.codespace);
}

/// ErrTxDecode (codespace `sdk`, code 2) with exactly this log (plus the SDK's suffix).
#[track_caller]
fn assert_decode_error(out: &TxOutcome, log: &str) {
    assert_eq!(
        (out.codespace.as_str(), out.code, out.log.as_str()),
        ("sdk", 2, format!("{log}: tx parse error").as_str())
    );
}

/// ErrTxDecode whose log contains `part`.
#[track_caller]
fn assert_decode_error_containing(out: &TxOutcome, part: &str) {
    assert_eq!(
        (out.codespace.as_str(), out.code),
        ("sdk", 2),
        "{}",
        out.log
    );
    assert!(out.log.contains(part), "{:?} lacks {part:?}", out.log);
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn normal_signed_txs_are_accepted() {
    let chain = Chain::new();
    let tx = chain.good_tx();
    assert_ok(&chain.check(&tx));
    assert_ok(&chain.run(&tx, Mode::Deliver));
    assert_ok(&chain.run(&tx, Mode::Simulate));
    // An hpc message with nested messages (requirements, policy with weights) too.
    let job = MsgSubmitJob {
        policy: Some(PlacementPolicy {
            max_latency_ms: Some(50),
            weights: Some(ScoringWeights {
                latency_bps: 2_500,
                price_bps: 2_500,
                reputation_bps: 2_500,
                queue_bps: 2_500,
            }),
            ..Default::default()
        }),
        ..chain.submit_job()
    };
    let tx = chain.tx_with_body(&[any(&MsgSubmitJob::type_url(), job.encode_to_vec())], &[]);
    assert_ok(&chain.check(&tx));
    // A tx as cosmrs (a real client) encodes it.
    let body = cosmrs::tx::Body::new(
        vec![cosmrs::Any {
            type_url: MsgSend::type_url(),
            value: chain.msg_send().encode_to_vec(),
        }],
        "memo",
        0u32,
    );
    let auth_info = cosmrs::tx::SignerInfo::single_direct(Some(chain.sk.public_key()), 0)
        .auth_info(cosmrs::tx::Fee::from_amount_and_gas(
            cosmrs::Coin {
                denom: "uvirt".parse().unwrap(),
                amount: 5_000,
            },
            200_000u64,
        ));
    let account_number = AuthKeeper::account(&chain.state, &chain.alice)
        .unwrap()
        .account_number;
    let doc = cosmrs::tx::SignDoc::new(&body, &auth_info, &CHAIN.parse().unwrap(), account_number)
        .unwrap();
    let tx = doc.sign(&chain.sk).unwrap().to_bytes().unwrap();
    assert_ok(&chain.check(&tx));
}

#[test]
fn unknown_field_in_tx_raw_is_rejected_so_a_tx_cannot_be_rewrapped_under_a_new_hash() {
    let chain = Chain::new();
    let tx = chain.good_tx();
    assert_ok(&chain.check(&tx));
    for extra in [ld(4, b"rewrapped"), vf(99, 1), ld(1025, b"non-critical")] {
        let rewrapped = cat(&[&tx, &extra]);
        // prost alone sees the very same tx (same signed bytes, same signature) ...
        assert_eq!(
            TxRaw::decode(rewrapped.as_slice()).unwrap(),
            TxRaw::decode(tx.as_slice()).unwrap()
        );
        // ... under another hash (CometBFT's tx hash is the SHA-256 of the tx bytes).
        assert_ne!(sha256(&rewrapped), sha256(&tx));
        let number = field_number(&extra);
        let log = if number == 1025 {
            "tx_raw (cosmos.tx.v1beta1.TxRaw): unknown field 1025 (non-critical fields are only allowed in the tx body)".to_string()
        } else {
            format!("tx_raw (cosmos.tx.v1beta1.TxRaw): unknown field {number}")
        };
        for mode in [Mode::Check, Mode::Deliver, Mode::Simulate] {
            assert_decode_error(&chain.run(&rewrapped, mode), &log);
        }
    }
    // Simulation by gRPC and proposal building refuse it as well.
    let rewrapped = cat(&[&tx, &ld(4, b"x")]);
    let req = SimulateRequest {
        tx_bytes: rewrapped.clone(),
        ..Default::default()
    }
    .encode_to_vec();
    let clock = QueryClock {
        height: 1,
        block_time_seconds: 1_700_000_000,
    };
    assert!(matches!(
        chain.app.query("/cosmos.tx.v1beta1.Service/Simulate", &req, &chain.state, clock),
        Err(QueryError::InvalidArgument(m)) if m.contains("code 2") && m.contains("unknown field 4")
    ));
    let proposal = chain.app.prepare_proposal(
        vec![rewrapped, tx.clone()],
        1 << 20,
        &BlockLimits::default(),
    );
    assert_eq!(proposal, vec![tx]);
}

/// The number of an encoded field.
fn field_number(field: &[u8]) -> u64 {
    prost::encoding::decode_varint(&mut &field[..]).unwrap() >> 3
}

#[test]
fn tx_raw_must_be_canonical_adr_027() {
    let chain = Chain::new();
    let tx = chain.good_tx();
    let raw = TxRaw::decode(tx.as_slice()).unwrap();
    let body = ld(1, &raw.body_bytes);
    let auth = ld(2, &raw.auth_info_bytes);
    let sig = ld(3, &raw.signatures[0]);
    assert_eq!(cat(&[&body, &auth, &sig]), tx);
    // A length prefix and a tag padded with a redundant continuation byte.
    let mut padded_len = body.clone();
    let len = varint(raw.body_bytes.len() as u64);
    assert_eq!(len.len(), 2); // the body is 128-16383 bytes: 2-byte length
    padded_len.splice(1..3, [len[0], len[1] | 0x80, 0x00]);
    let mut padded_tag = body.clone();
    padded_tag.splice(0..1, [0x8a, 0x00]);
    let cases: [(Vec<u8>, &str); 5] = [
        (cat(&[&auth, &body, &sig]), "field 1 after field 2"),
        (
            cat(&[&ld(1, b"decoy"), &body, &auth, &sig]),
            "field 1 appears more than once",
        ),
        (
            cat(&[&body, &ld(2, b"decoy"), &auth, &sig]),
            "field 2 appears more than once",
        ),
        (
            cat(&[&padded_len, &auth, &sig]),
            "field 1 has a varint longer than necessary",
        ),
        (
            cat(&[&padded_tag, &auth, &sig]),
            "field 1 has a varint longer than necessary",
        ),
    ];
    for (variant, reason) in cases {
        // The same tx for prost, under another hash.
        assert_eq!(TxRaw::decode(variant.as_slice()).unwrap(), raw, "{reason}");
        assert_ne!(sha256(&variant), sha256(&tx));
        assert_decode_error(
            &chain.check(&variant),
            &format!(
                "tx_raw (cosmos.tx.v1beta1.TxRaw): not canonically encoded (ADR-027): {reason}"
            ),
        );
    }
    // Several signatures (the repeated field 3) may follow each other (the ante handler
    // then refuses the second one: alice is the only signer).
    let two_sigs = cat(&[&body, &auth, &sig, &sig]);
    let out = chain.check(&two_sigs);
    assert_ne!(
        (out.codespace.as_str(), out.code),
        ("sdk", 2),
        "{}",
        out.log
    );
    assert_ne!(out.code, 0);
}

#[test]
fn unknown_field_15_in_tx_body_is_rejected() {
    let chain = Chain::new();
    let msgs = [chain.msg_send_any()];
    assert_ok(&chain.check(&chain.tx_with_body(&msgs, &[])));
    for extra in [vf(15, 1), ld(15, b"x")] {
        let tx = chain.tx_with_body(&msgs, &extra);
        for mode in [Mode::Check, Mode::Deliver, Mode::Simulate] {
            assert_decode_error(
                &chain.run(&tx, mode),
                "tx_body (cosmos.tx.v1beta1.TxBody): unknown field 15",
            );
        }
    }
}

#[test]
fn non_critical_fields_are_accepted_in_the_tx_body_only() {
    let chain = Chain::new();
    let msgs = [chain.msg_send_any()];
    // Bit 11 (value 1024) set: non-critical, ignored in the body and in its messages.
    for number in [1024, 1025, 2000, 3072] {
        assert_ok(&chain.check(&chain.tx_with_body(&msgs, &ld(number, b"ext"))));
    }
    let send = cat(&[&chain.msg_send().encode_to_vec(), &vf(1025, 1)]);
    assert_ok(&chain.check(&chain.tx_with_body(&[any(&MsgSend::type_url(), send)], &[])));
    // Bit 11 clear (2048 = bit 12 only, 1023 = bits 1-10): critical, rejected.
    for number in [2048, 4096, 1000] {
        assert_decode_error(
            &chain.check(&chain.tx_with_body(&msgs, &ld(number, b"ext"))),
            &format!("tx_body (cosmos.tx.v1beta1.TxBody): unknown field {number}"),
        );
    }
    // Non-critical fields are not allowed in the auth info (nor in TxRaw, see above).
    let auth = Chain::auth_info_with(&chain.signer_info(), &Chain::fee(), &ld(1025, b"ext"));
    assert_decode_error(
        &chain.check(&chain.tx_with_auth_info(auth)),
        "auth_info (cosmos.tx.v1beta1.AuthInfo): unknown field 1025 (non-critical fields are only allowed in the tx body)",
    );
}

#[test]
fn unknown_field_in_auth_info_is_rejected() {
    let chain = Chain::new();
    assert_ok(&chain.check(&chain.tx_with_auth_info(chain.auth_info())));
    let auth = Chain::auth_info_with(&chain.signer_info(), &Chain::fee(), &vf(4, 1));
    assert_decode_error(
        &chain.check(&chain.tx_with_auth_info(auth)),
        "auth_info (cosmos.tx.v1beta1.AuthInfo): unknown field 4",
    );
}

#[test]
fn unknown_field_in_signer_info_mode_info_and_public_key_is_rejected() {
    let chain = Chain::new();
    let key_any = any(&PubKey::type_url(), chain.pub_key());
    let mode = Chain::mode_info_direct();
    let fee = Chain::fee();
    let single = mode_info::Single {
        mode: SignMode::Direct as i32,
    }
    .encode_to_vec();
    let cases = [
        (
            cat(&[&Chain::signer_info_with(&key_any, &mode), &vf(9, 1)]),
            "auth_info.signer_infos[0] (cosmos.tx.v1beta1.SignerInfo): unknown field 9",
        ),
        (
            Chain::signer_info_with(&key_any, &cat(&[&mode, &vf(3, 1)])),
            "auth_info.signer_infos[0].mode_info (cosmos.tx.v1beta1.ModeInfo): unknown field 3",
        ),
        (
            Chain::signer_info_with(&key_any, &ld(1, &cat(&[&single, &vf(2, 1)]))),
            "auth_info.signer_infos[0].mode_info.single (cosmos.tx.v1beta1.ModeInfo.Single): unknown field 2",
        ),
        (
            // In the Any around the public key ...
            Chain::signer_info_with(&cat(&[&key_any, &vf(3, 1)]), &mode),
            "auth_info.signer_infos[0].public_key (google.protobuf.Any): unknown field 3",
        ),
        (
            // ... and in the key inside it.
            Chain::signer_info_with(
                &any(&PubKey::type_url(), cat(&[&chain.pub_key(), &vf(2, 1)])),
                &mode,
            ),
            "auth_info.signer_infos[0].public_key (cosmos.crypto.secp256k1.PubKey): unknown field 2",
        ),
    ];
    for (signer_info, log) in cases {
        let tx = chain.tx_with_auth_info(Chain::auth_info_with(&signer_info, &fee, &[]));
        assert_decode_error(&chain.check(&tx), log);
    }
}

#[test]
fn unknown_field_in_fee_and_its_coins_is_rejected() {
    let chain = Chain::new();
    let si = chain.signer_info();
    let cases = [
        (
            cat(&[&Chain::fee(), &vf(5, 1)]),
            "auth_info.fee (cosmos.tx.v1beta1.Fee): unknown field 5",
        ),
        (
            cat(&[
                &vf(2, 5_000_000),
                &ld(1, &cat(&[&coin(5_000).encode_to_vec(), &vf(3, 1)])),
            ]),
            "auth_info.fee.amount[0] (cosmos.base.v1beta1.Coin): unknown field 3",
        ),
    ];
    for (fee, log) in cases {
        let tx = chain.tx_with_auth_info(Chain::auth_info_with(&si, &fee, &[]));
        assert_decode_error(&chain.check(&tx), log);
    }
    // A tip (field 3 of AuthInfo) is checked the same way.
    let tip = cat(&[&ld(1, &coin(1).encode_to_vec()), &vf(7, 1)]);
    let auth = Chain::auth_info_with(&si, &Chain::fee(), &ld(3, &tip));
    assert_decode_error(
        &chain.check(&chain.tx_with_auth_info(auth)),
        "auth_info.tip (cosmos.tx.v1beta1.Tip): unknown field 7",
    );
}

#[test]
fn unknown_field_in_bank_msg_send_is_rejected() {
    let chain = Chain::new();
    let send = chain.msg_send().encode_to_vec();
    let url = MsgSend::type_url();
    let good = any(&url, send.clone());
    assert_ok(&chain.check(&chain.tx_with_body(&[good.clone(), good.clone()], &[])));
    let cases = [
        (
            vec![any(&url, cat(&[&send, &vf(4, 1)]))],
            "tx_body.messages[0] (cosmos.bank.v1beta1.MsgSend): unknown field 4",
        ),
        (
            // The second message, in a coin.
            vec![
                good.clone(),
                any(
                    &url,
                    cat(&[&send, &ld(3, &cat(&[&coin(1).encode_to_vec(), &vf(3, 1)]))]),
                ),
            ],
            "tx_body.messages[1].amount[1] (cosmos.base.v1beta1.Coin): unknown field 3",
        ),
        (
            // In the Any wrapper itself.
            vec![cat(&[&good, &vf(3, 1)])],
            "tx_body.messages[0] (google.protobuf.Any): unknown field 3",
        ),
    ];
    for (msgs, log) in cases {
        assert_decode_error(&chain.check(&chain.tx_with_body(&msgs, &[])), log);
    }
}

#[test]
fn unknown_field_in_hpc_msg_submit_job_is_rejected() {
    let chain = Chain::new();
    let url = MsgSubmitJob::type_url();
    let job = chain.submit_job().encode_to_vec();
    assert_ok(&chain.check(&chain.tx_with_body(&[any(&url, job.clone())], &[])));
    let tx = chain.tx_with_body(&[any(&url, cat(&[&job, &vf(99, 1)]))], &[]);
    for mode in [Mode::Check, Mode::Deliver, Mode::Simulate] {
        assert_decode_error(
            &chain.run(&tx, mode),
            "tx_body.messages[0] (virtengine.hpc.v1.MsgSubmitJob): unknown field 99",
        );
    }
}

#[test]
fn unknown_field_in_nested_hpc_messages_is_rejected() {
    let chain = Chain::new();
    let url = MsgSubmitJob::type_url();
    let bare = MsgSubmitJob {
        requirements: None,
        ..chain.submit_job()
    }
    .encode_to_vec();
    let requirements = chain.submit_job().requirements.unwrap().encode_to_vec();
    let weights = ScoringWeights {
        latency_bps: 2_500,
        price_bps: 2_500,
        reputation_bps: 2_500,
        queue_bps: 2_500,
    }
    .encode_to_vec();
    // Control: the same message assembled by hand is valid.
    let valid = cat(&[&bare, &ld(2, &requirements), &ld(3, &ld(8, &weights))]);
    assert_ok(&chain.check(&chain.tx_with_body(&[any(&url, valid)], &[])));
    let cases = [
        (
            cat(&[&bare, &ld(2, &cat(&[&requirements, &vf(99, 1)]))]),
            "tx_body.messages[0].requirements (virtengine.hpc.v1.JobRequirements): unknown field 99",
        ),
        (
            cat(&[
                &bare,
                &ld(2, &requirements),
                &ld(3, &ld(8, &cat(&[&weights, &vf(9, 1)]))),
            ]),
            "tx_body.messages[0].policy.weights (virtengine.hpc.v1.ScoringWeights): unknown field 9",
        ),
    ];
    for (job, log) in cases {
        assert_decode_error(
            &chain.check(&chain.tx_with_body(&[any(&url, job)], &[])),
            log,
        );
    }
    // A google.protobuf.Timestamp inside a repeated hpc message.
    let record = cat(&[
        &RoutingAuditRecord::default().encode_to_vec(),
        &ld(
            12,
            &cat(&[
                &Timestamp {
                    seconds: 1,
                    nanos: 0,
                }
                .encode_to_vec(),
                &vf(3, 1),
            ]),
        ),
    ]);
    let audit = cat(&[
        &MsgRecordRoutingAudit {
            provider: chain.alice.to_string(),
            ..Default::default()
        }
        .encode_to_vec(),
        &ld(2, &RoutingAuditRecord::default().encode_to_vec()),
        &ld(2, &record),
    ]);
    assert_decode_error(
        &chain.check(&chain.tx_with_body(&[any(&MsgRecordRoutingAudit::type_url(), audit)], &[])),
        "tx_body.messages[0].records[1].created_at (google.protobuf.Timestamp): unknown field 3",
    );
}

#[test]
fn malformed_bytes_are_rejected_without_panic() {
    let chain = Chain::new();
    let send = chain.msg_send().encode_to_vec();
    let url = MsgSend::type_url();
    // Properly signed txs whose body is malformed in the message, or in the body itself.
    let body_cases: [(Vec<u8>, &str); 8] = [
        (
            // timeout_height (a varint) sent length-delimited
            Chain::body(&[any(&url, send.clone())], &ld(3, &[1])),
            "tx_body (cosmos.tx.v1beta1.TxBody): field 3 (timeout_height) has wire type length-delimited, which does not fit its type",
        ),
        (
            // memo (a string) sent as a varint
            Chain::body(&[any(&url, send.clone())], &vf(2, 1)),
            "tx_body (cosmos.tx.v1beta1.TxBody): field 2 (memo) has wire type varint, which does not fit its type",
        ),
        (
            // a message field sent as fixed32, in MsgSend
            Chain::body(&[any(&url, cat(&[&send, &tag(3, 5), &[0; 4]]))], &[]),
            "tx_body.messages[0] (cosmos.bank.v1beta1.MsgSend): field 3 (amount) has wire type fixed32, which does not fit its type",
        ),
        (
            // a tag cut short
            Chain::body(&[any(&url, send.clone())], &[0x98]),
            "tx_body (cosmos.tx.v1beta1.TxBody): malformed: truncated varint",
        ),
        (
            // a length beyond the end, in the message
            Chain::body(&[any(&url, cat(&[&send, &[0x1a, 0x05, 0x0a]]))], &[]),
            "tx_body.messages[0] (cosmos.bank.v1beta1.MsgSend): malformed: field 3 needs 5 bytes, only 1 remain",
        ),
        (
            Chain::body(&[any(&url, send.clone())], &[0x00, 0x00]),
            "tx_body (cosmos.tx.v1beta1.TxBody): malformed: invalid field number 0",
        ),
        (
            Chain::body(&[any(&url, send.clone())], &[0x1f]),
            "tx_body (cosmos.tx.v1beta1.TxBody): malformed: invalid wire type 7",
        ),
        (
            Chain::body(&[any(&url, send.clone())], &[0x7b, 0x7c]),
            "tx_body (cosmos.tx.v1beta1.TxBody): malformed: field 15 uses group encoding, which is not supported",
        ),
    ];
    for (body, log) in body_cases {
        assert_decode_error(&chain.check(&chain.sign(body, chain.auth_info())), log);
    }
    // A varint of 11 bytes, in the auth info.
    let auth = Chain::auth_info_with(
        &chain.signer_info(),
        &Chain::fee(),
        &cat(&[&tag(4, 0), &[0xff; 10], &[0x01]]),
    );
    assert_decode_error_containing(
        &chain.check(&chain.tx_with_auth_info(auth)),
        "auth_info (cosmos.tx.v1beta1.AuthInfo): malformed: varint overflows 64 bits",
    );

    // Every truncation and many single-byte corruptions of a valid tx: an error or (for a
    // harmless change) a valid decoding, never a panic; truncations never pass CheckTx.
    let tx = chain.good_tx();
    for len in 0..tx.len() {
        let out = chain.check(&tx[..len]);
        assert_ne!(out.code, 0, "truncated to {len}");
    }
    let mut decoded = 0;
    for at in 0..tx.len() {
        for value in [0x00, 0x01, 0x07, 0x7f, 0x80, 0xff, tx[at] ^ 0x08] {
            let mut corrupt = tx.clone();
            corrupt[at] = value;
            if decode_tx(&corrupt).is_ok() {
                decoded += 1;
            }
        }
    }
    assert!(
        decoded > 0,
        "some corruptions (e.g. in the signature) still decode"
    );
}

#[test]
fn nesting_depth_is_bounded() {
    let chain = Chain::new();
    let key_any = any(&PubKey::type_url(), chain.pub_key());
    // ModeInfo { multi: Multi { mode_infos: [ModeInfo { multi: ... }] } }, `levels` deep.
    let nested = |levels: usize| {
        let mut mode = Chain::mode_info_direct();
        for _ in 0..levels {
            mode = ld(2, &ld(2, &mode));
        }
        mode
    };
    // Shallow multisig mode infos decode (and are then refused by the ante handler).
    let tx = chain.tx_with_auth_info(Chain::auth_info_with(
        &Chain::signer_info_with(&key_any, &nested(2)),
        &Chain::fee(),
        &[],
    ));
    let out = chain.check(&tx);
    assert_ne!(
        (out.codespace.as_str(), out.code),
        ("sdk", 2),
        "{}",
        out.log
    );
    assert_ne!(out.code, 0);
    // Deep ones are a decode error, including far beyond prost's own limit, without
    // exhausting the stack.
    for levels in [20, 2_000] {
        let tx = chain.tx_with_auth_info(Chain::auth_info_with(
            &Chain::signer_info_with(&key_any, &nested(levels)),
            &Chain::fee(),
            &[],
        ));
        assert_decode_error_containing(&chain.check(&tx), "messages nested deeper than 32 levels");
    }
}
