//! `App::query` (the gRPC-method-path router behind gRPC and `abci_query`) with an
//! arbitrary path and arbitrary request bytes, against the seeded chain.
//!
//! Input: `[selector][...]`. A selector below the number of routed paths picks that path
//! from `hpc_fuzz::QUERY_PATHS` and the rest is the request; otherwise the path is the
//! (lossy UTF-8) bytes up to the first NUL and the request is what follows it. A
//! libFuzzer dictionary with the real paths is in fuzz/dicts/query_router.dict.
//!
//! Property besides "never panics": a query is deterministic (same answer twice). The state
//! is only borrowed immutably, so a query cannot change it.
#![no_main]

use hpc_fuzz::{world, QUERY_PATHS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let w = world();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (path, request): (String, &[u8]) = if (selector as usize) < QUERY_PATHS.len() {
        (QUERY_PATHS[selector as usize].to_string(), rest)
    } else {
        match rest.iter().position(|&b| b == 0) {
            Some(i) => (
                String::from_utf8_lossy(&rest[..i]).into_owned(),
                &rest[i + 1..],
            ),
            None => (String::from_utf8_lossy(rest).into_owned(), &[][..]),
        }
    };
    let first = w.app.query(&path, request, &w.state, w.clock);
    let second = w.app.query(&path, request, &w.state, w.clock);
    assert_eq!(first, second, "query {path} is not deterministic");
});
