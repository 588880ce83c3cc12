/// Key-value pairs in ascending key order, as range reads return them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Read access to a key-value state.
///
/// Reads are infallible by design: the persistent implementation treats an I/O failure
/// while executing a block as fatal (it panics), because continuing would risk a
/// divergent app hash. Callers therefore never see a partially read state.
pub trait StateRead {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;

    /// Entries with `start <= key < end` (unbounded above when `end` is `None`) in
    /// ascending key order, at most `limit` of them.
    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Entries;

    /// All entries whose key starts with `prefix`, at most `limit`.
    fn prefix(&self, prefix: &[u8], limit: usize) -> Entries {
        let end = prefix_end(prefix);
        self.range(prefix, end.as_deref(), limit)
    }

    /// [`Self::range`] that examines at most `max_examined` stored keys, counting the
    /// deleted ones a store still keeps for older versions (which `range` skips unseen):
    /// a bound on the work of a read whatever the store holds. This default is for states
    /// that keep no deleted keys, where every key examined is returned.
    fn range_bounded(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        max_examined: u64,
    ) -> BoundedRange {
        let cap = limit.min(usize::try_from(max_examined).unwrap_or(usize::MAX));
        let entries = self.range(start, end, cap);
        let spent = cap < limit && entries.len() == cap;
        let resume = spent.then(|| match entries.last() {
            Some((last, _)) => key_after(last),
            None => start.to_vec(),
        });
        BoundedRange {
            examined: entries.len() as u64,
            entries,
            resume,
        }
    }
}

/// What [`StateRead::range_bounded`] read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoundedRange {
    pub entries: Entries,
    /// Stored keys examined, live or deleted.
    pub examined: u64,
    /// `Some(key)` when `max_examined` ran out before the range did: the key to go on from.
    pub resume: Option<Vec<u8>>,
}

/// The smallest key greater than `key`.
pub fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// Write access; writes become visible to reads through the same handle at once.
pub trait StateWrite: StateRead {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, key: &[u8]);
}

/// The smallest key greater than every key starting with `prefix`, or `None` when no such
/// key exists (the prefix is empty or all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Reads through a reference read the referent, every method included (a default method
/// left unforwarded would hide the referent's own).
macro_rules! forward_state_read {
    ($($reference:ty),*) => {$(
        impl<T: StateRead + ?Sized> StateRead for $reference {
            fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
                (**self).get(key)
            }
            fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Entries {
                (**self).range(start, end, limit)
            }
            fn range_bounded(
                &self,
                start: &[u8],
                end: Option<&[u8]>,
                limit: usize,
                max_examined: u64,
            ) -> BoundedRange {
                (**self).range_bounded(start, end, limit, max_examined)
            }
        }
    )*};
}

forward_state_read!(&T, &mut T);

impl<T: StateWrite + ?Sized> StateWrite for &mut T {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        (**self).put(key, value)
    }
    fn delete(&mut self, key: &[u8]) {
        (**self).delete(key)
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_last_byte_and_carries_over_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
