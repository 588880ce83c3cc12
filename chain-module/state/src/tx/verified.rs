//! Signatures this node has already verified, so a tx checked when it entered the mempool
//! is not verified again when its block executes (secp256k1 is most of a MsgSend's cost).
//!
//! Verification is a pure function of (public key, signed bytes, signature), and only
//! successes are remembered, under a digest of all three: a hit can never change a result,
//! only skip repeated work, and the cache never decides anything about state (account
//! numbers, sequences and chain id are inside the signed bytes). It is node-local and
//! bounded; a miss (after a restart, for a tx first seen in a proposal, or once evicted)
//! just verifies. Nothing iterates it, so its order cannot leak into consensus.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Entries kept (32 bytes each, twice): several blocks' worth of txs at full speed.
const CAPACITY: usize = 65_536;

type Key = [u8; 32];

#[derive(Debug, Default)]
pub struct VerifiedSignatures {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    known: HashSet<Key>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<Key>,
}

impl VerifiedSignatures {
    /// `verify()`'s answer for this (key, message, signature): remembered if it was yes.
    pub fn check(
        &self,
        pubkey: &[u8],
        message: &[u8],
        signature: &[u8],
        verify: impl FnOnce() -> bool,
    ) -> bool {
        let key = digest(pubkey, message, signature);
        if self.lock().known.contains(&key) {
            return true;
        }
        if !verify() {
            return false;
        }
        let mut entries = self.lock();
        if entries.known.insert(key) {
            entries.order.push_back(key);
            while entries.order.len() > CAPACITY {
                if let Some(oldest) = entries.order.pop_front() {
                    entries.known.remove(&oldest);
                }
            }
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic elsewhere while holding the lock leaves valid entries (only successes).
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().known.len()
    }
}

/// Length-prefixed, so no two different triples share a digest input.
fn digest(pubkey: &[u8], message: &[u8], signature: &[u8]) -> Key {
    let mut hasher = Sha256::new();
    for part in [pubkey, message, signature] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_success_is_verified_once_a_failure_every_time() {
        let cache = VerifiedSignatures::default();
        let calls = Cell::new(0);
        let verify = |answer: bool| {
            calls.set(calls.get() + 1);
            answer
        };
        assert!(cache.check(b"pk", b"msg", b"sig", || verify(true)));
        assert!(cache.check(b"pk", b"msg", b"sig", || verify(true)));
        assert_eq!(calls.get(), 1, "the second check is a hit");
        // Any other part is another triple, verified on its own.
        for (pk, msg, sig) in [
            (&b"pk2"[..], &b"msg"[..], &b"sig"[..]),
            (b"pk", b"msg2", b"sig"),
            (b"pk", b"msg", b"sig2"),
        ] {
            assert!(!cache.check(pk, msg, sig, || verify(false)));
            assert!(
                !cache.check(pk, msg, sig, || verify(false)),
                "failures are not kept"
            );
        }
        assert_eq!(calls.get(), 7);
        // Boundaries between the parts count.
        assert!(!cache.check(b"pkm", b"sg", b"sig", || verify(false)));
    }

    #[test]
    fn the_cache_is_bounded_oldest_out_first() {
        let cache = VerifiedSignatures::default();
        for i in 0..CAPACITY + 10 {
            assert!(cache.check(b"pk", &i.to_be_bytes(), b"sig", || true));
        }
        assert_eq!(cache.len(), CAPACITY);
        let verified_again = Cell::new(false);
        cache.check(b"pk", &0usize.to_be_bytes(), b"sig", || {
            verified_again.set(true);
            true
        });
        assert!(verified_again.get(), "the oldest entry was evicted");
    }
}
