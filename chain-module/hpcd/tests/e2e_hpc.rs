//! x/hpc end to end against a real CometBFT node, driven through the `hpcd` CLI:
//! clusters from two providers, a job scheduled in its submit tx, audit records checked
//! by the chain (right provider accepted → hpc_job_routed, wrong provider refused), a
//! violation reported and resolved, params guarded by the authority, and an export that
//! re-imports to the same app hash.

use hpc_testkit::{self as support, TestNode};
use serde_json::Value;
use tendermint_rpc::Client;

/// Runs an hpc tx through the CLI; returns the JSON result and whether the command
/// succeeded. `--gas` is fixed so refused txs reach a block instead of failing in
/// simulation.
fn hpc_tx(node: &TestNode, from: &str, args: &[&str]) -> (Value, bool) {
    let out = node.hpc_tx_output(from, args, &["--gas", "2000000"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "hpcd tx hpc {args:?}: {e}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, out.status.success())
}

fn query(node: &TestNode, args: &[&str]) -> Value {
    node.hpc_query(args)
}

fn attr<'a>(result: &'a Value, kind: &str, key: &str) -> Option<&'a str> {
    support::event_attr(result, kind, key)
}

fn write_json(node: &TestNode, name: &str, value: Value) -> String {
    let path = node.dir.path().join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpc_routing_end_to_end_through_the_cli() {
    let mut node = TestNode::init("e2e-hpc-1");
    node.start(2).await;
    let (p1, p2) = (node.key_address("provider1"), node.key_address("provider2"));

    let (r, ok) = hpc_tx(
        &node,
        "provider1",
        &[
            "register-cluster",
            "cluster-a",
            "--region",
            "eu-west",
            "--total-nodes",
            "8",
            "--gpus-per-node",
            "4",
            "--gpu-type",
            "a100",
            "--price-per-node-hour",
            "1000000",
            "--latency-ms",
            "10",
        ],
    );
    assert!(ok, "{r}");
    assert_eq!(
        attr(&r, "hpc_cluster_registered", "provider"),
        Some(p1.as_str())
    );
    let (r, ok) = hpc_tx(
        &node,
        "provider2",
        &[
            "register-cluster",
            "cluster-b",
            "--region",
            "eu-west",
            "--total-nodes",
            "8",
            "--gpus-per-node",
            "4",
            "--gpu-type",
            "a100",
            "--price-per-node-hour",
            "1000000",
            "--latency-ms",
            "150",
        ],
    );
    assert!(ok, "{r}");

    // alice's job is scheduled in the submit tx, onto the lower-latency cluster.
    let policy = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/policies/balanced.json"
    );
    let (r, ok) = hpc_tx(
        &node,
        "alice",
        &[
            "submit-job",
            "--nodes",
            "2",
            "--gpus-per-node",
            "1",
            "--gpu-type",
            "a100",
            "--policy",
            policy,
            "--correlation-id",
            "order-42",
            "--script",
            &node.write_script("job.sh", "#!/bin/sh\necho hello\n"),
        ],
    );
    assert!(ok, "{r}");
    let job = attr(&r, "hpc_job_scheduled", "job_id").unwrap().to_string();
    let decision = attr(&r, "hpc_job_scheduled", "decision_id")
        .unwrap()
        .to_string();
    assert_eq!(
        attr(&r, "hpc_job_scheduled", "cluster_id"),
        Some("cluster-a")
    );
    assert_eq!(
        attr(&r, "hpc_job_scheduled", "correlation_id"),
        Some("order-42")
    );
    // The block follower (the enforcer's source of truth) finds the event from height 1,
    // and the typed queries return the job and decision.
    let mut follower = hpc_client::events::BlockFollower::new(
        &node.rpc_url(),
        Some(&format!("ws://127.0.0.1:{}/websocket", node.base_port + 1)),
        1,
    )
    .unwrap();
    let scheduled = loop {
        let block = follower.next().await.unwrap();
        let found = block
            .matching("hpc_job_scheduled", "provider", &p1)
            .next()
            .map(|e| e.attributes["job_id"].clone());
        if let Some(job_id) = found {
            break (block.head.height, job_id);
        }
    };
    assert_eq!(scheduled.1, job);
    assert_eq!(r["height"].as_i64().unwrap() as u64, scheduled.0);
    // The subscription that wakes it delivers (block-header) events: two more blocks.
    for _ in 0..2 {
        follower.next().await.unwrap();
    }
    assert!(follower.wake_ups() > 0, "no block event arrived");
    let chain = hpc_client::ChainClient::new(
        hpc_client::Transport::grpc(&node.grpc_addr()).unwrap(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        chain
            .hpc_job(&job)
            .await
            .unwrap()
            .unwrap()
            .current_decision_id,
        decision
    );
    assert!(chain.hpc_job("hpc-job-999").await.unwrap().is_none());
    assert!(!chain.hpc_audit_exists("routing-audit-1").await.unwrap());
    let by_job = query(&node, &["decision-by-job", &job]);
    assert_eq!(by_job["current"]["decision_id"], decision);
    assert_eq!(by_job["current"]["selected_provider"], p1);
    let explain = query(&node, &["explain", "--job", &job]);
    assert_eq!(
        explain["decision"]["candidates"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        explain["effective_weights"]["latency_bps"], 2500,
        "the policy file's weights"
    );

    // provider2 cannot record a placement on provider1's cluster.
    let record = |record_id: &str, cluster: &str| {
        serde_json::json!([{
            "record_id": record_id, "job_id": job, "scheduling_decision_id": decision,
            "actual_cluster_id": cluster, "status": "AUDIT_STATUS_APPROVED",
            "reason": "Job routed to scheduled cluster", "is_fallback": false,
            "enforcement_mode": "ENFORCEMENT_MODE_STRICT"
        }])
    };
    let wrong = write_json(&node, "wrong.json", record("routing-audit-1", "cluster-a"));
    let (r, ok) = hpc_tx(&node, "provider2", &["record-audit", &wrong]);
    assert!(!ok);
    assert_eq!(
        (r["codespace"].as_str(), r["code"].as_u64()),
        (Some("hpc"), Some(4)),
        "{r}"
    );
    assert!(
        r["height"].as_i64().unwrap() > 0,
        "refused in a block, not just by the CLI"
    );

    // provider1's approved record routes the job.
    let right = write_json(&node, "right.json", record("routing-audit-1", "cluster-a"));
    let (r, ok) = hpc_tx(&node, "provider1", &["record-audit", &right]);
    assert!(ok, "{r}");
    assert!(chain.hpc_audit_exists("routing-audit-1").await.unwrap());
    assert_eq!(
        attr(&r, "hpc_job_routed", "record_id"),
        Some("routing-audit-1")
    );
    assert_eq!(attr(&r, "hpc_job_routed", "status"), Some("approved"));
    assert_eq!(
        attr(&r, "hpc_job_routed", "correlation_id"),
        Some("order-42")
    );
    let found = node
        .rpc()
        .tx_search(
            tendermint_rpc::query::Query::eq("hpc_job_routed.job_id", job.as_str()),
            false,
            1,
            10,
            tendermint_rpc::Order::Ascending,
        )
        .await
        .unwrap();
    assert_eq!(
        found.total_count, 1,
        "hpc_job_routed is indexed for tx_search"
    );
    assert_eq!(
        query(&node, &["job", &job])["job"]["state"],
        "JOB_STATE_ROUTED"
    );
    let (r, ok) = hpc_tx(&node, "provider1", &["record-audit", &right]);
    assert!(!ok && r["code"] == 9, "a record id is accepted once: {r}");

    // A self-reported violation, then resolved by the authority.
    let v = write_json(
        &node,
        "violation.json",
        serde_json::json!([{
            "job_id": job, "decision_id": decision, "violation_type": "VIOLATION_TYPE_STALE_DECISION",
            "provider_address": p1, "expected_cluster_id": "cluster-a", "details": "decision 120 blocks old"
        }]),
    );
    let (r, ok) = hpc_tx(&node, "provider1", &["report-violation", &v]);
    assert!(ok, "{r}");
    assert_eq!(
        attr(&r, "hpc_routing_violation", "violation_type"),
        Some("stale_decision")
    );
    assert_eq!(attr(&r, "hpc_routing_violation", "severity"), Some("2"));
    let violation_id = attr(&r, "hpc_routing_violation", "violation_id")
        .unwrap()
        .to_string();
    let (r, ok) = hpc_tx(&node, "provider2", &["report-violation", &v]);
    assert!(
        !ok && r["code"] == 4,
        "providers cannot report each other: {r}"
    );
    assert_eq!(
        query(&node, &["violation-count", &p1])["unresolved_count"],
        "1"
    );
    let (r, ok) = hpc_tx(
        &node,
        "alice",
        &[
            "resolve-violation",
            &violation_id,
            "--resolution",
            "refreshed",
        ],
    );
    assert!(!ok && r["code"] == 4, "only the authority resolves: {r}");
    let (r, ok) = hpc_tx(
        &node,
        "authority",
        &[
            "resolve-violation",
            &violation_id,
            "--resolution",
            "refreshed",
        ],
    );
    assert!(ok, "{r}");
    assert!(attr(&r, "hpc_routing_violation_resolved", "violation_id").is_some());
    assert_eq!(
        query(&node, &["violation-count", &p1])["unresolved_count"],
        "0"
    );
    let violations = query(&node, &["violations", "--provider", &p1]);
    assert_eq!(violations["violations"][0]["resolved"], true);

    // Params: refused for alice, accepted for the authority.
    let mut params = query(&node, &["params"])["params"].clone();
    params["max_decision_age_blocks"] = Value::String("42".into());
    let file = write_json(&node, "params.json", params);
    let (r, ok) = hpc_tx(&node, "alice", &["update-params", &file]);
    assert!(!ok && r["code"] == 4, "{r}");
    let (r, ok) = hpc_tx(&node, "authority", &["update-params", &file]);
    assert!(ok, "{r}");
    assert_eq!(
        query(&node, &["params"])["params"]["max_decision_age_blocks"],
        "42"
    );
    // A partial file changes only what it names.
    let before = query(&node, &["params"])["params"].clone();
    let file = write_json(
        &node,
        "params-partial.json",
        serde_json::json!({"max_batch_size": 25}),
    );
    let (r, ok) = hpc_tx(&node, "authority", &["update-params", &file]);
    assert!(ok, "{r}");
    let mut expected = before;
    expected["max_batch_size"] = serde_json::json!(25);
    assert_eq!(query(&node, &["params"])["params"], expected);
    assert_eq!(
        query(&node, &["audit-records", "--provider", &p1])["records"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        query(&node, &["clusters", "--provider", &p2])["clusters"][0]["cluster_id"] == "cluster-b"
    );

    proofs_verify_from_a_trusted_block(&node, &job, &decision, &violation_id).await;

    // The whole module state survives export → import with the same app hash.
    let imported = support::export_and_reimport(&mut node).await;
    let grpc = imported.grpc_addr();
    let job_again: Value = serde_json::from_str(&imported.cli_ok(&[
        "query",
        "hpc",
        "job",
        &job,
        "--grpc-addr",
        &grpc,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(job_again["job"]["state"], "JOB_STATE_ROUTED");
}

/// `hpcd query hpc … --prove` and `hpcd verify`: a customer checks where the job ran
/// from a block they trust; every tampering of the proof, the header or the trusted block
/// is refused for its own reason.
async fn proofs_verify_from_a_trusted_block(
    node: &TestNode,
    job: &str,
    decision: &str,
    violation_id: &str,
) {
    use hpc_client::proof::{self, ProofError, RecordKind, RecordProof, TrustAnchor};

    let rpc_url = node.rpc_url();
    let anchor_height = 2u64;
    let anchor_commit = node
        .rpc()
        .commit(tendermint::block::Height::from(2u32))
        .await
        .unwrap();
    let anchor = TrustAnchor {
        height: anchor_height,
        hash: anchor_commit.signed_header.header.hash(),
    };
    let trust = anchor.hash.to_string();
    let trust_args = ["--trust-height", "2", "--trust-hash", &trust];

    // The CLI: a saved proof, then verified.
    let saved = node.cli_ok(&[
        "query",
        "hpc",
        "audit-record",
        "routing-audit-1",
        "--prove",
        "--node",
        &rpc_url,
    ]);
    let saved_proof: RecordProof = serde_json::from_str(&saved).unwrap();
    assert_eq!(
        saved_proof.record.as_ref().unwrap()["actual_cluster_id"],
        "cluster-a"
    );
    let path = write_json(node, "proof.json", serde_json::from_str(&saved).unwrap());
    let verify = |kind: &str, id: &str, extra: &[&str]| -> Value {
        let mut args = vec!["verify", kind, id, "--node", &rpc_url, "-o", "json"];
        args.extend_from_slice(&trust_args);
        args.extend_from_slice(extra);
        serde_json::from_str(&node.cli_ok(&args)).unwrap()
    };
    let verified = verify("audit-record", "routing-audit-1", &["--proof", &path]);
    assert_eq!(verified["record"]["actual_cluster_id"], "cluster-a");
    assert_eq!(verified["record"]["job_id"], job);
    assert_eq!(verified["trusted_height"], 2);
    assert!(verified["summary"]
        .as_str()
        .unwrap()
        .starts_with("audit record \"routing-audit-1\" exists at height"));
    assert_eq!(verified["header_height"], saved_proof.height + 1);
    // Live proofs of the job, its decision and its violation; and of a record that is not.
    assert_eq!(
        verify("job", job, &[])["record"]["state"],
        "JOB_STATE_ROUTED"
    );
    assert_eq!(
        verify("decision", decision, &[])["record"]["selected_cluster_id"],
        "cluster-a"
    );
    assert_eq!(
        verify("violation", violation_id, &[])["record"]["resolved"],
        true
    );
    let absent = verify("audit-record", "routing-audit-999", &[]);
    assert_eq!(absent["record"], Value::Null);
    assert!(absent["summary"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    let refused = node.cli(&[
        "verify",
        "audit-record",
        "routing-audit-2",
        "--proof",
        &path,
        "--node",
        &rpc_url,
        "--trust-height",
        "2",
        "--trust-hash",
        &trust,
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--proof") && stderr.lines().count() == 1,
        "{stderr}"
    );

    // The library, with each tampering.
    let rpc = node.rpc();
    let trusted = proof::fetch_trusted_block(&rpc, &rpc_url, &anchor)
        .await
        .unwrap();
    let options = proof::light_client_options(proof::DEFAULT_TRUSTING_PERIOD);
    let now = proof::now().unwrap();
    let check = |p: &RecordProof| proof::verify(p, &anchor, &trusted, &options, now);
    check(&saved_proof).expect("the untouched proof verifies");

    type Tamper = Box<dyn Fn(&mut RecordProof)>;
    type Expected = fn(&ProofError) -> bool;
    let value_with_cluster = |p: &RecordProof, cluster: &str| {
        use base64::Engine;
        use prost::Message;
        let b64 = base64::engine::general_purpose::STANDARD;
        let bytes = b64.decode(p.value.as_ref().unwrap()).unwrap();
        let mut record =
            hpc_proto::virtengine::hpc::v1::RoutingAuditRecord::decode(bytes.as_slice()).unwrap();
        record.actual_cluster_id = cluster.into();
        (
            b64.encode(record.encode_to_vec()),
            serde_json::to_value(&record).unwrap(),
        )
    };
    let created = saved_proof.record.as_ref().unwrap()["created_height"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let before_record = proof::fetch_proof(
        &rpc,
        &rpc_url,
        RecordKind::AuditRecord,
        "x",
        Some(created - 1),
    )
    .await
    .unwrap();
    let forged_app_hash = tendermint::AppHash::try_from(vec![0xAB; 32]).unwrap();
    let (forged_header, forged_validators) =
        forge(&saved_proof.signed_header, forged_app_hash.clone());
    let cases: Vec<(&str, Tamper, Expected)> = vec![
        (
            "record moved to another cluster",
            Box::new(move |p| {
                let (value, record) = value_with_cluster(p, "cluster-b");
                p.value = Some(value);
                p.record = Some(record);
            }),
            |e| matches!(e, ProofError::Merkle { .. }),
        ),
        (
            "readable record edited",
            Box::new(move |p| {
                p.record = Some(value_with_cluster(p, "cluster-b").1);
            }),
            |e| matches!(e, ProofError::RecordMismatch),
        ),
        (
            "presented as another record",
            Box::new(|p| p.id = "routing-audit-2".into()),
            |e| matches!(e, ProofError::Merkle { .. }),
        ),
        (
            "presented as a violation",
            Box::new(|p| p.kind = RecordKind::Violation),
            |e| matches!(e, ProofError::Merkle { .. }),
        ),
        (
            "claimed absent",
            Box::new(|p| {
                p.value = None;
                p.record = None;
            }),
            |e| matches!(e, ProofError::Merkle { .. }),
        ),
        ("height off by one", Box::new(|p| p.height -= 1), |e| {
            matches!(e, ProofError::WrongHeader { .. })
        }),
        (
            "header of a height before the record",
            Box::new(move |p| {
                p.height = before_record.height;
                p.signed_header = before_record.signed_header.clone();
                p.validators = before_record.validators.clone();
            }),
            |e| matches!(e, ProofError::Merkle { .. }),
        ),
        (
            "header with a forged app hash",
            Box::new({
                let forged = forged_app_hash.clone();
                move |p| p.signed_header.header.app_hash = forged.clone()
            }),
            |e| matches!(e, ProofError::LightClient { .. }),
        ),
        (
            "header re-signed by a forged validator set",
            Box::new(move |p| {
                p.signed_header = forged_header.clone();
                p.validators = forged_validators.clone();
            }),
            |e| matches!(e, ProofError::LightClient { .. }),
        ),
        (
            "validators swapped",
            Box::new({
                let (_, forged) = forge(&saved_proof.signed_header, forged_app_hash.clone());
                move |p| p.validators = forged.clone()
            }),
            |e| matches!(e, ProofError::LightClient { .. }),
        ),
        (
            "merkle proof garbage",
            Box::new(|p| p.merkle_proof = "AAEC".into()),
            |e| {
                matches!(
                    e,
                    ProofError::Malformed {
                        field: "merkle_proof",
                        ..
                    }
                )
            },
        ),
    ];
    for (name, tamper, expected) in cases {
        let mut tampered = saved_proof.clone();
        tamper(&mut tampered);
        let err = check(&tampered).expect_err(name);
        assert!(expected(&err), "{name}: {err}");
    }

    // A wrong anchor, a forged trusted block, an anchor older than the trusting period.
    let wrong_anchor = TrustAnchor {
        hash: tendermint::Hash::Sha256([1; 32]),
        ..anchor
    };
    let err = proof::verify(&saved_proof, &wrong_anchor, &trusted, &options, now).unwrap_err();
    assert!(matches!(err, ProofError::AnchorMismatch { .. }), "{err}");
    let mut forged_trust = trusted.clone();
    forged_trust.next_validators = forge(&trusted.signed_header, forged_app_hash).1;
    let err = proof::verify(&saved_proof, &anchor, &forged_trust, &options, now).unwrap_err();
    assert!(matches!(err, ProofError::AnchorValidators), "{err}");
    let expired =
        (trusted.signed_header.header.time + std::time::Duration::from_secs(15 * 86400)).unwrap();
    let err = proof::verify(&saved_proof, &anchor, &trusted, &options, expired).unwrap_err();
    assert!(matches!(err, ProofError::LightClient { .. }), "{err}");

    // Store paths work with or without the leading slash, as in the Cosmos SDK.
    let key = RecordKind::AuditRecord.key("routing-audit-1");
    let bare = rpc
        .abci_query(Some("store/main/key".into()), key, None, false)
        .await
        .unwrap();
    assert!(bare.code.is_ok(), "{}", bare.log);
    assert!(!bare.value.is_empty());
}

/// `real` re-made with `app_hash` and signed by a one-validator set the forger holds the
/// key of: self-consistent, so only trust from the anchor can expose it.
fn forge(
    real: &tendermint::block::signed_header::SignedHeader,
    app_hash: tendermint::AppHash,
) -> (
    tendermint::block::signed_header::SignedHeader,
    tendermint::validator::Set,
) {
    use tendermint::block::CommitSig;
    use tendermint::vote::{Type, ValidatorIndex, Vote};
    let key = ed25519_consensus::SigningKey::from([7u8; 32]);
    let public =
        tendermint::PublicKey::from_raw_ed25519(key.verification_key().as_bytes()).unwrap();
    let validator = tendermint::validator::Info::new(public, 10u32.into());
    let set = tendermint::validator::Set::without_proposer(vec![validator.clone()]);
    let mut header = real.header.clone();
    header.app_hash = app_hash;
    header.validators_hash = set.hash();
    header.next_validators_hash = set.hash();
    let mut commit = real.commit.clone();
    commit.block_id.hash = header.hash();
    let vote = Vote {
        vote_type: Type::Precommit,
        height: commit.height,
        round: commit.round,
        block_id: Some(commit.block_id),
        timestamp: Some(header.time),
        validator_address: validator.address,
        validator_index: ValidatorIndex::try_from(0u32).unwrap(),
        signature: None,
        extension: Vec::new(),
        extension_signature: None,
    };
    let sign_bytes = vote.into_signable_vec(header.chain_id.clone());
    let signature = key.sign(&sign_bytes);
    commit.signatures = vec![CommitSig::BlockIdFlagCommit {
        validator_address: validator.address,
        timestamp: header.time,
        signature: Some(tendermint::Signature::try_from(signature.to_bytes().as_slice()).unwrap()),
    }];
    (
        tendermint::block::signed_header::SignedHeader::new(header, commit).unwrap(),
        set,
    )
}
