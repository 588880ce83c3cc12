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

impl<T: StateRead + ?Sized> StateRead for &T {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        (**self).get(key)
    }
    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Entries {
        (**self).range(start, end, limit)
    }
}

impl<T: StateRead + ?Sized> StateRead for &mut T {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        (**self).get(key)
    }
    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Entries {
        (**self).range(start, end, limit)
    }
}

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
