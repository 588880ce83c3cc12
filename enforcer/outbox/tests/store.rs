//! The outbox store on its own: idempotent enqueue, FIFO, depth, persistence.

mod common;

use common::{audit, violation};
use hpc_outbox::{Depth, ItemKind, ItemState, KindDepth, Outbox, OutboxError, OutboxItem};

#[test]
fn enqueue_is_idempotent_fifo_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.redb");
    {
        let outbox = Outbox::open(&path).unwrap();
        assert!(outbox.is_empty().unwrap());
        assert_eq!(outbox.oldest_pending_age(100).unwrap(), None);
        let n = outbox
            .enqueue(
                vec![audit("a1"), violation("v1"), audit("a2"), audit("a1")],
                100,
            )
            .unwrap();
        assert_eq!(n, 3, "the repeated a1 within the call is skipped");
        assert_eq!(
            outbox.enqueue(vec![audit("a2"), audit("a3")], 105).unwrap(),
            1
        );
        // The same id in the other kind's namespace is a different item.
        assert_eq!(outbox.enqueue(vec![violation("a1")], 110).unwrap(), 1);
    }
    let outbox = Outbox::open(&path).unwrap();
    let ids: Vec<(ItemKind, String)> = outbox
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| {
            assert_eq!(e.state, ItemState::Pending);
            (e.item.kind(), e.item.id().to_string())
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            (ItemKind::Audit, "a1".into()),
            (ItemKind::Violation, "v1".into()),
            (ItemKind::Audit, "a2".into()),
            (ItemKind::Audit, "a3".into()),
            (ItemKind::Violation, "a1".into()),
        ]
    );
    let seqs: Vec<u64> = outbox.entries().unwrap().iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        outbox.depth().unwrap(),
        Depth {
            audits: KindDepth {
                pending: 3,
                in_flight: 0
            },
            violations: KindDepth {
                pending: 2,
                in_flight: 0
            },
            dead: 0,
        }
    );
    assert_eq!(outbox.depth().unwrap().total(), 5);
    assert_eq!(outbox.oldest_pending_age(130).unwrap(), Some(30));
    // Reopened: still idempotent.
    assert_eq!(
        outbox
            .enqueue(vec![audit("a1"), violation("v1")], 140)
            .unwrap(),
        0
    );
}

#[test]
fn payload_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().join("o.redb")).unwrap();
    let mut item = audit("a1");
    if let OutboxItem::Audit(r) = &mut item {
        r.reason = "capacity exceeded".into();
        r.is_fallback = true;
        r.decision_age_blocks = 7;
    }
    outbox.enqueue(vec![item.clone()], 0).unwrap();
    assert_eq!(outbox.entries().unwrap()[0].item, item);
}

#[test]
fn empty_ids_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().join("o.redb")).unwrap();
    let err = outbox
        .enqueue(vec![audit("a1"), violation("")], 0)
        .unwrap_err();
    assert!(matches!(
        err,
        OutboxError::MissingId {
            kind: ItemKind::Violation,
            index: 1
        }
    ));
    assert!(outbox.is_empty().unwrap());
}

#[tokio::test]
async fn enqueue_wakes_the_deliverer() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().join("o.redb")).unwrap();
    // A permit is stored when nobody waits yet.
    outbox.enqueue(vec![audit("a1")], 0).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(1), outbox.notified())
        .await
        .expect("woken");
    // A no-op enqueue does not wake.
    outbox.enqueue(vec![audit("a1")], 0).unwrap();
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), outbox.notified())
            .await
            .is_err()
    );
}
