//! Arbitrary bytes as a tx through decode + ante + messages (`App::execute_tx`) on the
//! seeded chain, in CheckTx, DeliverTx and Simulate modes, each on its own copy-on-write
//! overlay over the seeded state.
//!
//! Properties besides "never panics":
//! - a CheckTx that fails writes nothing; CheckTx never touches x/hpc state;
//! - a DeliverTx that fails leaves x/hpc state unchanged (only fee and sequence may move);
//! - a successful DeliverTx used no more gas than it asked for;
//! - DeliverTx is deterministic: the same bytes on the same state give the same outcome
//!   and the same writes;
//! - a tx that decodes re-decodes identically from its re-encoded `TxRaw`.
#![no_main]

use hpc_fuzz::hpc_state::tx::{decode_tx, Mode};
use hpc_fuzz::hpc_store::Delta;
use hpc_fuzz::{touches_hpc, world};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let w = world();

    if let Ok(tx) = decode_tx(data) {
        let again = decode_tx(&tx.raw.encode_to_vec()).expect("a re-encoded TxRaw decodes");
        assert_eq!(again.msgs, tx.msgs, "re-decoded messages differ");
        assert_eq!(again.body, tx.body);
        assert_eq!(again.auth_info, tx.auth_info);
    }

    let mut check = Delta::new(&w.state);
    let out = w.app.execute_tx(&mut check, &w.block, data, Mode::Check);
    if out.is_ok() {
        assert!(!touches_hpc(check.changes()), "CheckTx wrote x/hpc state");
    } else {
        assert!(
            check.changes().is_empty(),
            "a failed CheckTx (code {} {}) wrote {} keys",
            out.code,
            out.log,
            check.changes().len()
        );
    }

    let mut deliver = Delta::new(&w.state);
    let out = w.app.execute_tx(&mut deliver, &w.block, data, Mode::Deliver);
    if out.is_ok() {
        assert!(
            out.gas_used <= out.gas_wanted,
            "successful tx used {} gas of {}",
            out.gas_used,
            out.gas_wanted
        );
    } else {
        assert!(
            !touches_hpc(deliver.changes()),
            "a failed DeliverTx (code {} {}) changed x/hpc state",
            out.code,
            out.log
        );
    }
    let mut again = Delta::new(&w.state);
    let out2 = w.app.execute_tx(&mut again, &w.block, data, Mode::Deliver);
    assert_eq!(out, out2, "DeliverTx is not deterministic");
    assert_eq!(deliver.changes(), again.changes(), "DeliverTx writes differ");

    let mut sim = Delta::new(&w.state);
    let _ = w.app.execute_tx(&mut sim, &w.block, data, Mode::Simulate);
});
