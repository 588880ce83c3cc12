//! Helpers to keep protobuf values in the store.

use hpc_store::{StateRead, StateWrite};
use prost::Message;

/// Reads and decodes a protobuf value. A value that fails to decode means the store is
/// corrupt; that is fatal, as for any other storage failure.
pub fn get_proto<M: Message + Default>(state: &impl StateRead, key: &[u8]) -> Option<M> {
    state.get(key).map(|bytes| {
        M::decode(bytes.as_slice())
            .unwrap_or_else(|e| panic!("corrupt state at key {}: {e}", hex::encode(key)))
    })
}

pub fn put_proto<M: Message>(state: &mut impl StateWrite, key: Vec<u8>, value: &M) {
    state.put(key, value.encode_to_vec());
}

pub fn get_u64(state: &impl StateRead, key: &[u8]) -> Option<u64> {
    state.get(key).map(|b| {
        u64::from_be_bytes(
            b.as_slice()
                .try_into()
                .unwrap_or_else(|_| panic!("corrupt u64 at key {}", hex::encode(key))),
        )
    })
}

pub fn put_u64(state: &mut impl StateWrite, key: Vec<u8>, value: u64) {
    state.put(key, value.to_be_bytes().to_vec());
}
