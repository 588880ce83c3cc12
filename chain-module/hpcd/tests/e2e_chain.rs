//! End to end against a real CometBFT node: signed transfers, rejected txs that change
//! nothing, queries over gRPC and abci_query (with a Merkle proof), a crash and restart
//! that keeps the app hash history, and export → import to the same app hash.

use std::time::Duration;

use base64::Engine;
use cosmos_sdk_proto::cosmos::bank::v1beta1::MsgSend;
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::{
    GetBlockByHeightRequest, GetBlockByHeightResponse, GetLatestBlockRequest,
    GetLatestBlockResponse, GetSyncingRequest, GetSyncingResponse,
};
use cosmos_sdk_proto::cosmos::base::v1beta1::Coin;
use cosmos_sdk_proto::cosmos::tx::v1beta1::TxRaw;
use hpc_client::keys::Keyring;
use hpc_client::tx::{address_of, sign_tx, to_any, SignerAccount};
use hpc_client::{ChainClient, Transport};
use hpc_primitives::{Address, Coins};
use hpc_proto::virtengine::hpc::v1::{QueryParamsRequest, QueryParamsResponse};
use hpc_testkit::{self as support, TestNode, ALICE_ADDRESS};
use prost::Message;
use tendermint_rpc::Client;

const FEE: u128 = 5_000;
const GAS: u64 = 200_000;

fn send_msg(from: &Address, to: &Address, amount: u128) -> cosmos_sdk_proto::Any {
    to_any(&MsgSend {
        from_address: from.to_string(),
        to_address: to.to_string(),
        amount: vec![Coin {
            denom: "uvirt".into(),
            amount: amount.to_string(),
        }],
    })
}

/// Everything a test may compare to prove "no state change".
async fn account_state(c: &ChainClient, a: &Address) -> (u128, u64) {
    let seq = c.account(a).await.unwrap().map_or(0, |acct| acct.sequence);
    (c.balance(a, "uvirt").await.unwrap(), seq)
}

async fn app_hashes(node: &TestNode, up_to: u64) -> Vec<Vec<u8>> {
    let rpc = node.rpc();
    let mut out = Vec::new();
    for h in 1..=up_to {
        let block = rpc
            .block(tendermint::block::Height::try_from(h).unwrap())
            .await
            .unwrap();
        out.push(block.block.header.app_hash.as_bytes().to_vec());
    }
    out
}

/// The services one version of gRPC reflection lists (what `grpcurl list` prints); the two
/// versions have the same shape in different generated modules.
macro_rules! reflected_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version as pb;
        let mut client = pb::server_reflection_client::ServerReflectionClient::new($channel);
        let request = pb::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(pb::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let mut answers = client
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let Some(pb::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            answers.message().await.unwrap().unwrap().message_response
        else {
            panic!("reflection answered something else than a service list")
        };
        let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        names
    }};
}

/// The services gRPC reflection lists, over v1 and v1alpha.
async fn reflected_services(grpc_addr: &str) -> (Vec<String>, Vec<String>) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (
        reflected_services!(v1, channel.clone()),
        reflected_services!(v1alpha, channel),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_end_to_end_against_real_cometbft() {
    let mut node = TestNode::init("e2e-chain-1");
    node.start(2).await;

    let keyring = Keyring::test(&node.home);
    let alice = keyring.signing_key("alice").unwrap();
    let alice_addr = address_of(&alice);
    assert_eq!(alice_addr.to_string(), ALICE_ADDRESS);
    let bob_addr: Address = node.key_address("bob").parse().unwrap();

    // Reflection lists every served service (grpcurl needs no -protoset), and no other.
    let (v1_names, v1alpha_names) = reflected_services(&node.grpc_addr()).await;
    assert_eq!(
        v1_names,
        [
            "cosmos.auth.v1beta1.Query",
            "cosmos.bank.v1beta1.Query",
            "cosmos.base.tendermint.v1beta1.Service",
            "cosmos.consensus.v1.Query",
            "cosmos.tx.v1beta1.Service",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "virtengine.hpc.v1.Msg",
            "virtengine.hpc.v1.Query",
        ]
    );
    assert_eq!(v1alpha_names, v1_names);

    let grpc = ChainClient::new(Transport::grpc(&node.grpc_addr()).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(grpc.chain_id, "e2e-chain-1", "chain id from GetNodeInfo");
    let abci = ChainClient::new(Transport::rpc(&node.rpc_url()).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(abci.chain_id, "e2e-chain-1");

    // --- A signed MsgSend, included in a block.
    let account = grpc.signer_account(&alice_addr).await.unwrap();
    assert_eq!((account.account_number, account.sequence), (0, 0));
    let fee = Coins::single("uvirt", FEE);
    let first_tx = sign_tx(
        &alice,
        "e2e-chain-1",
        &account,
        vec![send_msg(&alice_addr, &bob_addr, 1_234)],
        "",
        0,
        &fee,
        GAS,
        false,
    )
    .unwrap();
    let submitted = grpc.transport.broadcast(first_tx.clone()).await.unwrap();
    assert_eq!(submitted.code, 0, "CheckTx: {}", submitted.raw_log);
    let included = grpc
        .wait_for_tx(&submitted.txhash, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(included.code, 0, "{}", included.raw_log);
    assert!(included.height > 0);
    assert_eq!(
        included.event_attr("message", "sender"),
        Some(ALICE_ADDRESS)
    );
    assert_eq!(
        included.event_attr("message", "action"),
        Some("/cosmos.bank.v1beta1.MsgSend")
    );
    // tx_search by message.sender works (standard Cosmos events are indexed).
    let found = node
        .rpc()
        .tx_search(
            tendermint_rpc::query::Query::eq("message.sender", ALICE_ADDRESS),
            false,
            1,
            10,
            tendermint_rpc::Order::Ascending,
        )
        .await
        .unwrap();
    assert_eq!(found.total_count, 1);
    every_indexed_attribute_and_no_other_is_searchable(&node, &submitted.txhash).await;

    // Balances and sequence agree over gRPC and abci_query.
    let expected_alice = 1_000_000_000 - 1_234 - FEE;
    for client in [&grpc, &abci] {
        assert_eq!(account_state(client, &bob_addr).await, (1_234, 0));
        assert_eq!(
            account_state(client, &alice_addr).await,
            (expected_alice, 1)
        );
    }

    // --- The CLI: bob pays alice back, waiting for the block, JSON output.
    let out = node.cli_ok(&[
        "tx",
        "bank",
        "send",
        "bob",
        ALICE_ADDRESS,
        "100uvirt",
        "--keyring-backend",
        "test",
        "--grpc-addr",
        &node.grpc_addr(),
        "--gas-prices",
        "0.025uvirt",
        "--yes",
        "-o",
        "json",
    ]);
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["code"], 0, "{out}");
    let bob_after_cli = grpc.balance(&bob_addr, "uvirt").await.unwrap();
    assert!(
        bob_after_cli < 1_234 - 100,
        "bob paid 100 plus a fee: {bob_after_cli}"
    );
    let out = node.cli_ok(&[
        "query",
        "bank",
        "balances",
        &bob_addr.to_string(),
        "--node",
        &node.rpc_url(),
        "-o",
        "json",
    ]);
    let balances: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(balances["balances"][0]["amount"], bob_after_cli.to_string());

    // --- `--sign-only`: the CLI prints the signed tx instead of broadcasting it; nothing
    // changes until those bytes are broadcast, and then they commit as signed.
    let before = account_state(&grpc, &alice_addr).await;
    let out = node.cli_ok(&[
        "tx",
        "bank",
        "send",
        "alice",
        &bob_addr.to_string(),
        "7uvirt",
        "--keyring-backend",
        "test",
        "--grpc-addr",
        &node.grpc_addr(),
        "--gas",
        "200000",
        "--yes",
        "--sign-only",
    ]);
    let signed = base64::engine::general_purpose::STANDARD
        .decode(out.trim())
        .unwrap_or_else(|e| panic!("--sign-only printed {out:?}: {e}"));
    TxRaw::decode(signed.as_slice()).expect("--sign-only prints TxRaw bytes");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        account_state(&grpc, &alice_addr).await,
        before,
        "--sign-only broadcast nothing"
    );
    let r = grpc.transport.broadcast(signed).await.unwrap();
    assert_eq!(r.code, 0, "{}", r.raw_log);
    let included = grpc
        .wait_for_tx(&r.txhash, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(included.code, 0, "{}", included.raw_log);
    assert_eq!(account_state(&grpc, &alice_addr).await.1, before.1 + 1);

    // --- `--height` on any query: the state before that tx, over gRPC and abci_query.
    let balance_at = |height: i64, transport: &str, endpoint: &str| {
        let out = node.cli_ok(&[
            "query",
            "bank",
            "balances",
            &alice_addr.to_string(),
            "--height",
            &height.to_string(),
            transport,
            endpoint,
            "-o",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["balances"][0]["amount"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
    };
    for (transport, endpoint) in [
        ("--grpc-addr", node.grpc_addr()),
        ("--node", node.rpc_url()),
    ] {
        assert_eq!(
            balance_at(included.height - 1, transport, &endpoint),
            before.0
        );
        assert!(balance_at(included.height, transport, &endpoint) < before.0);
    }
    let params = node.cli_ok(&[
        "query",
        "hpc",
        "params",
        "--height",
        &(included.height - 1).to_string(),
        "--grpc-addr",
        &node.grpc_addr(),
    ]);
    assert!(params.contains("authority"), "{params}");

    // --- Back-to-back txs from one account (sequences s..s+9, no waiting): the CheckTx
    // state accumulates sequences and rechecks keep them in order, so all ten commit.
    let account = grpc.signer_account(&alice_addr).await.unwrap();
    let mut hashes = Vec::new();
    for i in 0..10u64 {
        let acct = SignerAccount {
            sequence: account.sequence + i,
            ..account
        };
        let tx = sign_tx(
            &alice,
            "e2e-chain-1",
            &acct,
            vec![send_msg(&alice_addr, &bob_addr, 1)],
            "",
            0,
            &fee,
            GAS,
            false,
        )
        .unwrap();
        let r = grpc.transport.broadcast(tx).await.unwrap();
        assert_eq!(r.code, 0, "tx {i}: {}", r.raw_log);
        hashes.push(r.txhash);
    }
    for hash in &hashes {
        let included = grpc
            .wait_for_tx(hash, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(included.code, 0, "{}", included.raw_log);
    }
    assert_eq!(
        grpc.signer_account(&alice_addr).await.unwrap().sequence,
        account.sequence + 10
    );

    // --- Rejected txs change nothing.
    let before = account_state(&grpc, &alice_addr).await;
    let account = grpc.signer_account(&alice_addr).await.unwrap();
    let good = |chain: &str, acct: &SignerAccount, fee: &Coins| {
        sign_tx(
            &alice,
            chain,
            acct,
            vec![send_msg(&alice_addr, &bob_addr, 1)],
            "",
            0,
            fee,
            GAS,
            false,
        )
        .unwrap()
    };
    let mut tampered = TxRaw::decode(good("e2e-chain-1", &account, &fee).as_slice()).unwrap();
    tampered.signatures[0][10] ^= 0x01;
    let stale_log = format!(
        "account sequence mismatch, expected {}, got 0",
        account.sequence
    );
    let rejections = [
        (
            "bad signature",
            tampered.encode_to_vec(),
            4,
            "signature verification failed",
        ),
        (
            "wrong chain id",
            good("other-chain", &account, &fee),
            4,
            "chain-id (e2e-chain-1)",
        ),
        (
            "stale sequence",
            good(
                "e2e-chain-1",
                &SignerAccount {
                    sequence: 0,
                    ..account
                },
                &fee,
            ),
            32,
            &stale_log,
        ),
        (
            "fee below min gas price",
            good("e2e-chain-1", &account, &Coins::single("uvirt", 1)),
            13,
            "insufficient fees",
        ),
        (
            "garbage bytes",
            b"definitely not a tx".to_vec(),
            2,
            "parse error",
        ),
    ];
    for (name, tx, code, log) in rejections {
        let r = grpc.transport.broadcast(tx).await.unwrap();
        assert_eq!(r.code, code, "{name}: {}", r.raw_log);
        assert!(
            r.raw_log.contains(log),
            "{name}: {:?} should contain {log:?}",
            r.raw_log
        );
    }
    let h = node.height().await.unwrap();
    node.wait_for_height(h + 2, Duration::from_secs(20)).await;
    assert_eq!(
        account_state(&grpc, &alice_addr).await,
        before,
        "rejected txs changed state"
    );

    // --- Queries: hpc params, node info, latest block, syncing, and a Merkle proof.
    let params: QueryParamsResponse = grpc
        .transport
        .query("/virtengine.hpc.v1.Query/Params", &QueryParamsRequest {}, 0)
        .await
        .unwrap();
    assert_eq!(params.authority, node.key_address("authority"));
    assert_eq!(params.params.unwrap().max_decision_age_blocks, 100);
    let latest: GetLatestBlockResponse = grpc
        .transport
        .query(
            "/cosmos.base.tendermint.v1beta1.Service/GetLatestBlock",
            &GetLatestBlockRequest {},
            0,
        )
        .await
        .unwrap();
    #[allow(deprecated)]
    let latest_height = latest.block.unwrap().header.unwrap().height;
    assert!(latest_height >= h as i64);
    let sdk_header = latest.sdk_block.unwrap().header.unwrap();
    assert_eq!(sdk_header.height, latest_height);
    assert!(sdk_header
        .proposer_address
        .starts_with("virtenginevalcons1"));
    // GetBlockByHeight: the block CometBFT has at that height, with its sdk_block.
    let by_height: GetBlockByHeightResponse = grpc
        .transport
        .query(
            "/cosmos.base.tendermint.v1beta1.Service/GetBlockByHeight",
            &GetBlockByHeightRequest { height: h as i64 },
            0,
        )
        .await
        .unwrap();
    #[allow(deprecated)]
    let header = by_height.block.unwrap().header.unwrap();
    let cometbft_block = node
        .rpc()
        .block(tendermint::block::Height::try_from(h).unwrap())
        .await
        .unwrap();
    assert_eq!(header.height, h as i64);
    assert_eq!(
        header.app_hash,
        cometbft_block.block.header.app_hash.as_bytes()
    );
    let sdk_header = by_height.sdk_block.unwrap().header.unwrap();
    assert_eq!(sdk_header.app_hash, header.app_hash);
    assert!(sdk_header
        .proposer_address
        .starts_with("virtenginevalcons1"));
    for bad in [0, -1, i64::MAX] {
        let refused = grpc
            .transport
            .query::<_, GetBlockByHeightResponse>(
                "/cosmos.base.tendermint.v1beta1.Service/GetBlockByHeight",
                &GetBlockByHeightRequest { height: bad },
                0,
            )
            .await;
        let err = refused.expect_err("no block at that height").to_string();
        assert!(err.contains("height"), "height {bad}: {err}");
    }
    let syncing: GetSyncingResponse = grpc
        .transport
        .query(
            "/cosmos.base.tendermint.v1beta1.Service/GetSyncing",
            &GetSyncingRequest {},
            0,
        )
        .await
        .unwrap();
    assert!(!syncing.syncing);
    // A service this node does not serve: UNIMPLEMENTED, naming the method and what is.
    let unknown = grpc
        .transport
        .query::<_, GetSyncingResponse>(
            "/cosmos.staking.v1beta1.Query/Params",
            &GetSyncingRequest {},
            0,
        )
        .await
        .expect_err("staking is not served");
    match unknown {
        hpc_client::ClientError::Grpc { status, .. } => {
            assert_eq!(status.code(), tonic::Code::Unimplemented);
            assert!(
                status
                    .message()
                    .starts_with("unknown gRPC method /cosmos.staking.v1beta1.Query/Params")
                    && status.message().contains("cosmos.bank.v1beta1.Query"),
                "{}",
                status.message()
            );
        }
        other => panic!("{other}"),
    }

    let key = [b"bank/b/".as_slice(), bob_addr.as_bytes(), b"uvirt"].concat();
    let proof_height = node.height().await.unwrap() - 1;
    let res = node
        .rpc()
        .abci_query(
            Some("/store/main/key".into()),
            key.clone(),
            Some(proof_height.try_into().unwrap()),
            true,
        )
        .await
        .unwrap();
    assert!(res.code.is_ok(), "{}", res.log);
    // bob got 7uvirt from the --sign-only tx and 1uvirt from each of the ten back-to-back
    // txs after the CLI send.
    assert_eq!(res.value, (bob_after_cli + 7 + 10).to_string().into_bytes());
    let op = &res.proof.expect("proof requested").ops[0];
    assert_eq!(op.field_type, "ics23:jmt");
    let proof = ics23::CommitmentProof::decode(op.data.as_slice()).unwrap();
    // State after block H is committed in the header of block H+1.
    let next = node
        .rpc()
        .block(tendermint::block::Height::try_from(proof_height + 1).unwrap())
        .await
        .unwrap();
    let root = next.block.header.app_hash.as_bytes().to_vec();
    assert!(ics23::verify_membership::<ics23::HostFunctionsManager>(
        &proof,
        &hpc_primitives::contract::store::proof_spec(),
        &root,
        &key,
        &res.value
    ));
    assert!(!ics23::verify_membership::<ics23::HostFunctionsManager>(
        &proof,
        &hpc_primitives::contract::store::proof_spec(),
        &root,
        &key,
        b"999"
    ));

    // --- Crash (SIGKILL) and restart: same app hash history, chain continues.
    let crash_height = node.height().await.unwrap();
    let history = app_hashes(&node, crash_height).await;
    node.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        node.height().await.is_none(),
        "cometbft must stop with hpcd"
    );
    node.start(crash_height + 3).await;
    assert_eq!(
        app_hashes(&node, crash_height).await,
        history,
        "app hash history changed across restart"
    );
    let info = node.rpc().abci_info().await.unwrap();
    assert!(info.last_block_height.value() > crash_height);
    // The first tx replayed after the restart (mempool cache gone): sequence protection.
    let replay = grpc.transport.broadcast(first_tx).await.unwrap();
    assert_eq!(replay.code, 32, "{}", replay.raw_log);
    assert_eq!(account_state(&grpc, &alice_addr).await, before);

    // --- Export and re-import: the new chain starts from the same app hash.
    let imported = support::export_and_reimport(&mut node).await;
    let imported_grpc = ChainClient::new(Transport::grpc(&imported.grpc_addr()).unwrap(), None)
        .await
        .unwrap();
    assert_eq!(account_state(&imported_grpc, &alice_addr).await, before);
}

/// CometBFT indexes exactly the attributes hpcd marks (app.toml `index-events`; here `hpcd
/// init`'s list): each marked one finds the tx with `tx_search`, no other does. The only tx
/// on the chain so far is `txhash`.
async fn every_indexed_attribute_and_no_other_is_searchable(node: &TestNode, txhash: &str) {
    let hash: tendermint::Hash = txhash.parse().unwrap();
    let committed = node.rpc().tx(hash, false).await.unwrap();
    let mut indexed = Vec::new();
    for event in &committed.tx_result.events {
        for attribute in &event.attributes {
            let key = format!("{}.{}", event.kind, attribute.key_str().unwrap());
            let query = tendermint_rpc::query::Query::eq(&key, attribute.value_str().unwrap());
            let found = node
                .rpc()
                .tx_search(query, false, 1, 10, tendermint_rpc::Order::Ascending)
                .await
                .unwrap();
            assert_eq!(found.total_count > 0, attribute.index(), "{key}");
            if attribute.index() {
                indexed.push(key);
            }
        }
    }
    // Every `type.key` entry `hpcd init` wrote names an attribute of this MsgSend (the
    // whole-type entries are x/hpc's), so a misspelt entry fails here.
    let app_toml = std::fs::read_to_string(node.home.join("config/app.toml")).unwrap();
    let config: toml::Value = toml::from_str(&app_toml).unwrap();
    let entries = config["index-events"].as_array().unwrap();
    let attribute_entries: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.as_str().filter(|e| e.contains('.')))
        .collect();
    assert!(attribute_entries.len() >= 5, "{attribute_entries:?}");
    for searchable in attribute_entries {
        assert!(
            indexed.iter().any(|k| k == searchable),
            "{searchable}: {indexed:?}"
        );
    }
    for left_out in ["tx.signature", "transfer.amount"] {
        assert!(!indexed.iter().any(|k| k == left_out), "{left_out}");
    }
}
