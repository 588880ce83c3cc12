use std::collections::BTreeMap;
use std::ops::Bound;

use crate::kv::{Entries, StateRead, StateWrite};

/// Pending writes: `Some(value)` sets, `None` deletes. A `BTreeMap` so that applying and
/// hashing them is in key order on every node.
pub type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A copy-on-write overlay over a parent state.
///
/// Nothing reaches the parent until [`Delta::into_changes`] is applied to it, so dropping a
/// delta discards every write made through it (a failed tx, a failed message).
pub struct Delta<P> {
    parent: P,
    changes: Changes,
}

impl<P: StateRead> Delta<P> {
    pub fn new(parent: P) -> Self {
        Self {
            parent,
            changes: Changes::new(),
        }
    }

    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    pub fn into_changes(self) -> Changes {
        self.changes
    }

    pub fn into_parts(self) -> (P, Changes) {
        (self.parent, self.changes)
    }

    /// Applies writes made in a child overlay.
    pub fn apply(&mut self, changes: Changes) {
        self.changes.extend(changes);
    }
}

impl<P: StateRead> StateRead for Delta<P> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.changes.get(key) {
            Some(change) => change.clone(),
            None => self.parent.get(key),
        }
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Entries {
        if limit == 0 {
            return Vec::new();
        }
        let upper = match end {
            Some(end) => Bound::Excluded(end.to_vec()),
            None => Bound::Unbounded,
        };
        let local: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = self
            .changes
            .range((Bound::Included(start.to_vec()), upper))
            .collect();
        // Each local entry can hide at most one parent entry, so this many parent entries
        // always suffice to fill `limit` results.
        let parent = self
            .parent
            .range(start, end, limit.saturating_add(local.len()));

        let mut out = Vec::with_capacity(limit.min(parent.len() + local.len()));
        let mut parent = parent.into_iter().peekable();
        let mut local = local.into_iter().peekable();
        while out.len() < limit {
            let take_local = match (parent.peek(), local.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((pk, _)), Some((lk, _))) => {
                    if pk == *lk {
                        parent.next(); // shadowed by the local change
                        true
                    } else {
                        *lk < pk
                    }
                }
            };
            if take_local {
                let (key, value) = local.next().expect("peeked");
                if let Some(value) = value {
                    out.push((key.clone(), value.clone()));
                }
            } else {
                out.push(parent.next().expect("peeked"));
            }
        }
        out
    }
}

impl<P: StateRead> StateWrite for Delta<P> {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changes.insert(key, Some(value));
    }

    fn delete(&mut self, key: &[u8]) {
        self.changes.insert(key.to_vec(), None);
    }
}

/// An in-memory state, for unit tests and for computing a genesis state.
impl StateRead for BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        BTreeMap::get(self, key).cloned()
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Entries {
        let upper = match end {
            Some(end) => Bound::Excluded(end.to_vec()),
            None => Bound::Unbounded,
        };
        BTreeMap::range(self, (Bound::Included(start.to_vec()), upper))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl StateWrite for BTreeMap<Vec<u8>, Vec<u8>> {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.insert(key, value);
    }
    fn delete(&mut self, key: &[u8]) {
        self.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BTreeMap<Vec<u8>, Vec<u8>> {
        [
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
            (b"c".to_vec(), b"3".to_vec()),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn overlay_reads_own_writes_and_hides_deletes_in_ranges() {
        let base = base();
        let mut delta = Delta::new(&base);
        delta.delete(b"b");
        delta.put(b"bb".to_vec(), b"x".to_vec());
        delta.put(b"a".to_vec(), b"9".to_vec());
        assert_eq!(delta.get(b"b"), None);
        assert_eq!(delta.get(b"a"), Some(b"9".to_vec()));
        let all = delta.range(b"", None, 10);
        let keys: Vec<&[u8]> = all.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, vec![&b"a"[..], b"bb", b"c"]);
        assert_eq!(all[0].1, b"9".to_vec());
        // limit respected even when local deletes hide parent entries
        let two = delta.range(b"", None, 2);
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].0, b"bb".to_vec());
        // base untouched
        assert_eq!(base.get(b"b".as_slice()), Some(&b"2".to_vec()));
    }

    #[test]
    fn nested_overlay_is_discarded_unless_applied() {
        let base = base();
        let mut block = Delta::new(&base);
        {
            let mut tx = Delta::new(&block);
            tx.put(b"z".to_vec(), b"26".to_vec());
            assert_eq!(tx.get(b"z"), Some(b"26".to_vec()));
        } // dropped: a failed tx
        assert_eq!(block.get(b"z"), None);
        let mut tx = Delta::new(&block);
        tx.put(b"z".to_vec(), b"26".to_vec());
        let changes = tx.into_changes();
        block.apply(changes);
        assert_eq!(block.get(b"z"), Some(b"26".to_vec()));
        assert_eq!(block.prefix(b"z", 5).len(), 1);
    }
}
