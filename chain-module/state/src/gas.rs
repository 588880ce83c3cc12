//! Deterministic gas metering with the Cosmos SDK's default KV costs.

use std::cell::Cell;

use hpc_store::{StateRead, StateWrite};

/// Gas costs, identical to cosmos-sdk `storetypes.KVGasConfig()` and auth's defaults.
pub mod cost {
    pub const READ_FLAT: u64 = 1_000;
    pub const READ_PER_BYTE: u64 = 3;
    pub const WRITE_FLAT: u64 = 2_000;
    pub const WRITE_PER_BYTE: u64 = 30;
    pub const DELETE: u64 = 1_000;
    pub const ITER_NEXT_FLAT: u64 = 30;
    pub const TX_SIZE_PER_BYTE: u64 = 10;
    pub const SIG_VERIFY_SECP256K1: u64 = 1_000;
    /// x/hpc: one cluster filtered and scored by the scheduler.
    pub const SCHEDULE_PER_CANDIDATE: u64 = 500;
    /// x/hpc: one violation weighed into a cluster's reputation.
    pub const REPUTATION_PER_VIOLATION: u64 = 100;
}

/// The gas limit was passed; the tx fails with the SDK's out-of-gas code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("out of gas: used {used} of the limit {limit}")]
pub struct OutOfGas {
    pub used: u64,
    pub limit: u64,
}

impl From<OutOfGas> for crate::errors::TxError {
    fn from(e: OutOfGas) -> Self {
        crate::errors::TxError::out_of_gas(e.to_string())
    }
}

/// Counts gas up to a limit. Store reads and writes are charged as they happen (each is
/// bounded work); every loop whose length depends on state calls [`GasMeter::charge`] or
/// [`GasMeter::check`] per step, so a message stops with out-of-gas as soon as it passes
/// its limit, not after the work. Consumption past the limit is still counted so the tx
/// result reports what was used; it is deterministic because every node meters the same
/// operations.
#[derive(Debug)]
pub struct GasMeter {
    limit: u64,
    consumed: Cell<u64>,
}

impl GasMeter {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            consumed: Cell::new(0),
        }
    }

    /// A meter without a limit (genesis, queries).
    pub fn infinite() -> Self {
        Self::new(u64::MAX)
    }

    pub fn consume(&self, amount: u64) {
        self.consumed
            .set(self.consumed.get().saturating_add(amount));
    }

    /// Consumes `amount` and fails once the limit is passed.
    pub fn charge(&self, amount: u64) -> Result<(), OutOfGas> {
        self.consume(amount);
        self.check()
    }

    /// Fails if the limit has been passed.
    pub fn check(&self) -> Result<(), OutOfGas> {
        if self.out_of_gas() {
            return Err(OutOfGas {
                used: self.consumed(),
                limit: self.limit,
            });
        }
        Ok(())
    }

    pub fn consumed(&self) -> u64 {
        self.consumed.get()
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn out_of_gas(&self) -> bool {
        self.consumed.get() > self.limit
    }
}

/// A state handle that charges every read and write to a gas meter.
pub struct Metered<'m, S> {
    inner: S,
    meter: &'m GasMeter,
}

impl<'m, S> Metered<'m, S> {
    pub fn new(inner: S, meter: &'m GasMeter) -> Self {
        Self { inner, meter }
    }

    pub fn meter(&self) -> &'m GasMeter {
        self.meter
    }

    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: StateRead> StateRead for Metered<'_, S> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let value = self.inner.get(key);
        let len = value.as_ref().map_or(0, Vec::len) + key.len();
        self.meter
            .consume(cost::READ_FLAT + cost::READ_PER_BYTE * len as u64);
        value
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let entries = self.inner.range(start, end, limit);
        self.meter.consume(cost::READ_FLAT);
        for (k, v) in &entries {
            self.meter
                .consume(cost::ITER_NEXT_FLAT + cost::READ_PER_BYTE * (k.len() + v.len()) as u64);
        }
        entries
    }
}

impl<S: StateWrite> StateWrite for Metered<'_, S> {
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.meter
            .consume(cost::WRITE_FLAT + cost::WRITE_PER_BYTE * (key.len() + value.len()) as u64);
        self.inner.put(key, value)
    }

    fn delete(&mut self, key: &[u8]) {
        self.meter.consume(cost::DELETE);
        self.inner.delete(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn reads_and_writes_are_charged_with_cosmos_costs() {
        let meter = GasMeter::new(5_000);
        let mut state = Metered::new(BTreeMap::new(), &meter);
        state.put(b"ab".to_vec(), b"xyz".to_vec());
        assert_eq!(meter.consumed(), 2_000 + 30 * 5);
        assert_eq!(state.get(b"ab"), Some(b"xyz".to_vec()));
        assert_eq!(meter.consumed(), 2_150 + 1_000 + 3 * 5);
        assert!(!meter.out_of_gas());
        state.put(b"c".to_vec(), vec![]);
        assert!(meter.out_of_gas());
    }

    #[test]
    fn charge_fails_as_soon_as_the_limit_is_passed() {
        let meter = GasMeter::new(1_000);
        assert_eq!(meter.charge(1_000), Ok(()));
        assert_eq!(
            meter.charge(1),
            Err(OutOfGas {
                used: 1_001,
                limit: 1_000
            })
        );
        assert!(meter.check().is_err());
        assert!(GasMeter::infinite().charge(u64::MAX).is_ok());
    }
}
