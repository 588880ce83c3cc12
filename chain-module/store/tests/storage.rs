use hpc_primitives::contract::store::proof_spec;
use hpc_store::{Changes, Delta, StateRead, StateWrite, Storage, StoreError};

fn changes(entries: &[(&str, Option<&str>)]) -> Changes {
    entries
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
        .collect()
}

fn commit(storage: &Storage, version: u64, entries: &[(&str, Option<&str>)]) -> [u8; 32] {
    let prepared = storage.prepare(changes(entries), version).unwrap();
    let root = prepared.root;
    storage.commit(prepared).unwrap();
    root
}

#[test]
fn versions_are_readable_and_roots_are_content_addressed() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&dir.path().join("state.redb")).unwrap();
    assert_eq!(storage.latest_version().unwrap(), None);

    let r1 = commit(
        &storage,
        1,
        &[
            ("acct/a", Some("1")),
            ("acct/b", Some("2")),
            ("zeta", Some("z")),
        ],
    );
    let r2 = commit(
        &storage,
        2,
        &[
            ("acct/a", Some("10")),
            ("acct/b", None),
            ("acct/c", Some("3")),
        ],
    );
    assert_ne!(r1, r2);
    assert_eq!(storage.latest_version().unwrap(), Some(2));
    assert_eq!(storage.root_hash(1).unwrap(), r1);

    let v1 = storage.snapshot(Some(1)).unwrap();
    let v2 = storage.snapshot(None).unwrap();
    assert_eq!(v1.get(b"acct/a"), Some(b"1".to_vec()));
    assert_eq!(v2.get(b"acct/a"), Some(b"10".to_vec()));
    assert_eq!(v2.get(b"acct/b"), None);
    let keys = |s: &hpc_store::Snapshot| -> Vec<Vec<u8>> {
        s.prefix(b"acct/", 10).into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(keys(&v1), vec![b"acct/a".to_vec(), b"acct/b".to_vec()]);
    assert_eq!(keys(&v2), vec![b"acct/a".to_vec(), b"acct/c".to_vec()]);
    assert_eq!(v2.prefix(b"acct/", 1).len(), 1);

    // The same content committed in a different history has the same root.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Storage::open(&other_dir.path().join("state.redb")).unwrap();
    let same = commit(
        &other,
        1,
        &[
            ("acct/a", Some("10")),
            ("acct/c", Some("3")),
            ("zeta", Some("z")),
        ],
    );
    assert_eq!(same, r2);
}

#[test]
fn state_survives_reopen_and_versions_must_be_contiguous() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let root = {
        let storage = Storage::open(&path).unwrap();
        commit(&storage, 5, &[("k", Some("v"))])
    };
    let storage = Storage::open(&path).unwrap();
    assert_eq!(storage.latest_version().unwrap(), Some(5));
    assert_eq!(storage.root_hash(5).unwrap(), root);
    assert!(matches!(
        storage.prepare(changes(&[("k", Some("w"))]), 7),
        Err(StoreError::OutOfOrder {
            attempted: 7,
            expected: 6
        })
    ));
    assert!(matches!(
        storage.snapshot(Some(9)),
        Err(StoreError::VersionUnavailable { .. })
    ));
}

#[test]
fn deleting_a_missing_key_and_empty_blocks_are_fine() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&dir.path().join("s.redb")).unwrap();
    let r1 = commit(&storage, 1, &[("a", Some("1"))]);
    let r2 = commit(&storage, 2, &[("missing", None)]);
    assert_eq!(r1, r2);
    let r3 = commit(&storage, 3, &[]);
    assert_eq!(r1, r3);
}

#[test]
fn proofs_verify_existence_and_absence_against_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&dir.path().join("s.redb")).unwrap();
    let root = commit(
        &storage,
        1,
        &[
            ("bank/balance/alice", Some("100")),
            ("bank/balance/bob", Some("7")),
        ],
    );
    let spec = proof_spec();

    let (value, proof) = storage.get_with_proof(b"bank/balance/alice", 1).unwrap();
    assert_eq!(value.as_deref(), Some(&b"100"[..]));
    assert!(ics23::verify_membership::<ics23::HostFunctionsManager>(
        &proof,
        &spec,
        &root.to_vec(),
        b"bank/balance/alice",
        b"100"
    ));
    assert!(!ics23::verify_membership::<ics23::HostFunctionsManager>(
        &proof,
        &spec,
        &root.to_vec(),
        b"bank/balance/alice",
        b"101"
    ));

    let (value, proof) = storage.get_with_proof(b"bank/balance/carol", 1).unwrap();
    assert_eq!(value, None);
    assert!(ics23::verify_non_membership::<ics23::HostFunctionsManager>(
        &proof,
        &spec,
        &root.to_vec(),
        b"bank/balance/carol"
    ));
}

#[test]
fn the_contract_proof_spec_is_the_trees_own() {
    assert_eq!(proof_spec(), jmt::ics23_spec());
}

/// With many keys, absent keys fall between neighbours on both sides (and beyond the
/// first and last leaf): every non-existence proof verifies, and none proves a present key.
#[test]
fn non_existence_proofs_verify_between_any_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&dir.path().join("s.redb")).unwrap();
    let present: Vec<String> = (0..64).map(|i| format!("hpc/a/record-{i}")).collect();
    let entries: Vec<(&str, Option<&str>)> =
        present.iter().map(|k| (k.as_str(), Some("v"))).collect();
    let root = commit(&storage, 1, &entries).to_vec();
    let spec = proof_spec();
    for i in 64..128 {
        let absent = format!("hpc/a/record-{i}");
        let (value, proof) = storage.get_with_proof(absent.as_bytes(), 1).unwrap();
        assert_eq!(value, None);
        assert!(
            ics23::verify_non_membership::<ics23::HostFunctionsManager>(
                &proof,
                &spec,
                &root,
                absent.as_bytes()
            ),
            "{absent}"
        );
        let present_key = present[i - 64].as_bytes();
        assert!(
            !ics23::verify_non_membership::<ics23::HostFunctionsManager>(
                &proof,
                &spec,
                &root,
                present_key
            )
        );
    }
}

#[test]
fn delta_over_snapshot_merges_pending_writes() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&dir.path().join("s.redb")).unwrap();
    commit(
        &storage,
        1,
        &[("p/1", Some("a")), ("p/2", Some("b")), ("p/3", Some("c"))],
    );
    let snapshot = storage.snapshot(None).unwrap();
    let mut delta = Delta::new(&snapshot);
    delta.delete(b"p/2");
    delta.put(b"p/4".to_vec(), b"d".to_vec());
    let got: Vec<Vec<u8>> = delta
        .prefix(b"p/", 10)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(got, vec![b"p/1".to_vec(), b"p/3".to_vec(), b"p/4".to_vec()]);
    let pending = delta.into_changes();
    let prepared = storage.prepare(pending, 2).unwrap();
    storage.commit(prepared).unwrap();
    assert_eq!(storage.snapshot(None).unwrap().get(b"p/2"), None);
    assert_eq!(
        storage.snapshot(Some(1)).unwrap().get(b"p/2"),
        Some(b"b".to_vec())
    );
}

#[test]
fn block_times_are_kept_per_version_outside_the_merkle_state_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let storage = Storage::open(&path).unwrap();
    assert_eq!(storage.block_time(1).unwrap(), None);
    // Genesis without a time, then blocks with times.
    let genesis = commit(&storage, 1, &[("a", Some("1"))]);
    let mut prepared = storage.prepare(changes(&[("a", Some("2"))]), 2).unwrap();
    prepared.set_block_time(1_700_000_000);
    let timed_root = prepared.root;
    storage.commit(prepared).unwrap();
    commit(&storage, 3, &[("a", Some("3"))]);
    let mut prepared = storage.prepare(changes(&[("a", Some("4"))]), 4).unwrap();
    prepared.set_block_time(1_700_000_005);
    storage.commit(prepared).unwrap();

    // The time does not enter the app hash.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Storage::open(&other_dir.path().join("state.redb")).unwrap();
    assert_eq!(commit(&other, 1, &[("a", Some("1"))]), genesis);
    assert_eq!(commit(&other, 2, &[("a", Some("2"))]), timed_root);

    drop(storage);
    let storage = Storage::open(&path).unwrap();
    assert_eq!(storage.block_time(1).unwrap(), None);
    assert_eq!(storage.block_time(2).unwrap(), Some(1_700_000_000));
    assert_eq!(storage.block_time(3).unwrap(), Some(1_700_000_000));
    assert_eq!(storage.block_time(4).unwrap(), Some(1_700_000_005));
    assert_eq!(storage.block_time(99).unwrap(), Some(1_700_000_005));
}

/// Versions 1..=30, each overwriting 20 live keys, deleting one and adding one: history
/// grows, live state does not.
fn history(version: u64) -> Changes {
    let mut c = Changes::new();
    for i in 0..20 {
        c.insert(
            format!("live/{i}").into_bytes(),
            Some(format!("{version}").into_bytes()),
        );
    }
    c.insert(format!("born/{version}").into_bytes(), Some(b"x".to_vec()));
    if version > 1 {
        c.insert(format!("born/{}", version - 1).into_bytes(), None);
    }
    c
}

#[test]
fn a_pruned_store_reads_and_proves_kept_versions_like_a_full_one_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let full = Storage::open(&dir.path().join("full.redb")).unwrap();
    let pruned = Storage::open(&dir.path().join("pruned.redb"))
        .unwrap()
        .with_keep_recent(3);
    let spec = proof_spec();
    let mut pruned_entries = Vec::new();
    for version in 1..=30u64 {
        let roots: Vec<[u8; 32]> = [&full, &pruned]
            .iter()
            .map(|store| {
                let prepared = store.prepare(history(version), version).unwrap();
                let root = prepared.root;
                store.commit(prepared).unwrap();
                root
            })
            .collect();
        assert_eq!(
            roots[0], roots[1],
            "pruning never changes a root (version {version})"
        );
        pruned_entries.push((
            pruned.value_entries().unwrap(),
            pruned.node_entries().unwrap(),
        ));
        let earliest = version.saturating_sub(2).max(1);
        assert!(pruned.earliest_version().unwrap() <= earliest);
        for kept in earliest..=version {
            let (a, b) = (
                full.snapshot(Some(kept)).unwrap(),
                pruned.snapshot(Some(kept)).unwrap(),
            );
            assert_eq!(
                a.range(b"", None, 1000),
                b.range(b"", None, 1000),
                "version {kept}"
            );
            let root = pruned.root_hash(kept).unwrap().to_vec();
            for key in [
                "live/7".to_string(),
                format!("born/{kept}"),
                format!("born/{}", kept.saturating_sub(1)),
            ] {
                let (value, proof) = pruned.get_with_proof(key.as_bytes(), kept).unwrap();
                let ok = match &value {
                    Some(v) => ics23::verify_membership::<ics23::HostFunctionsManager>(
                        &proof,
                        &spec,
                        &root,
                        key.as_bytes(),
                        v,
                    ),
                    None => ics23::verify_non_membership::<ics23::HostFunctionsManager>(
                        &proof,
                        &spec,
                        &root,
                        key.as_bytes(),
                    ),
                };
                assert!(ok, "{key} at {kept}");
                assert_eq!(value, a.get(key.as_bytes()));
            }
        }
    }
    assert_eq!(pruned.earliest_version().unwrap(), 28);
    for old in [1, 10, 27] {
        assert!(
            matches!(pruned.snapshot(Some(old)), Err(StoreError::Pruned { requested, earliest: 28 }) if requested == old)
        );
        assert!(matches!(
            pruned.root_hash(old),
            Err(StoreError::Pruned { .. })
        ));
        assert!(matches!(
            pruned.get_with_proof(b"live/1", old),
            Err(StoreError::Pruned { .. })
        ));
    }
    // Entries stay flat once pruning runs; the full store's grow with every version.
    let steady = &pruned_entries[2..];
    let nodes = steady.iter().map(|(_, n)| *n);
    assert!(
        steady.iter().all(|(v, _)| *v == steady[0].0)
            && nodes.clone().max().unwrap() - nodes.min().unwrap() <= 5,
        "{pruned_entries:?}"
    );
    assert!(full.value_entries().unwrap() > 3 * pruned_entries[29].0);
    assert!(full.node_entries().unwrap() > 3 * pruned_entries[29].1);
    // Reopened, it remembers what it pruned.
    drop(pruned);
    let reopened = Storage::open(&dir.path().join("pruned.redb")).unwrap();
    assert_eq!(reopened.earliest_version().unwrap(), 28);
    assert!(reopened.snapshot(Some(27)).is_err());
    assert_eq!(
        reopened.snapshot(Some(30)).unwrap().get(b"live/3"),
        Some(b"30".to_vec())
    );
}

/// A bounded range counts the deleted keys a snapshot skips (kept for older versions), so
/// a reader's work is bounded by what it examines, not only by what it gets back.
#[test]
fn a_bounded_range_counts_deleted_keys_and_says_where_to_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&dir.path().join("state.redb")).unwrap();
    let keys: Vec<String> = (0..10).map(|i| format!("k/{i}")).collect();
    let written: Vec<(&str, Option<&str>)> = keys.iter().map(|k| (k.as_str(), Some("v"))).collect();
    commit(&storage, 1, &written);
    // Keep k/2 and k/7 only.
    let deleted: Vec<(&str, Option<&str>)> = keys
        .iter()
        .filter(|k| !["k/2", "k/7"].contains(&k.as_str()))
        .map(|k| (k.as_str(), None))
        .collect();
    commit(&storage, 2, &deleted);
    let snapshot = storage.snapshot(None).unwrap();
    let live = |r: &hpc_store::BoundedRange| -> Vec<String> {
        r.entries
            .iter()
            .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
            .collect()
    };

    let first = snapshot.range_bounded(b"k/", Some(b"k0"), 100, 4);
    assert_eq!((live(&first), first.examined), (vec!["k/2".to_string()], 4));
    assert_eq!(first.resume, Some(hpc_store::key_after(b"k/3")));
    let rest = snapshot.range_bounded(first.resume.as_deref().unwrap(), Some(b"k0"), 100, 100);
    assert_eq!(
        (live(&rest), rest.examined, rest.resume),
        (vec!["k/7".to_string()], 6, None)
    );
    // Unbounded, it is `range`: the deleted keys are skipped unseen.
    assert_eq!(snapshot.range(b"k/", Some(b"k0"), 100).len(), 2);
    // No budget at all: nothing read, go on from the start.
    let none = snapshot.range_bounded(b"k/", None, 100, 0);
    assert_eq!((none.examined, none.resume), (0, Some(b"k/".to_vec())));
}
