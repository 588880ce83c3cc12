//! Arbitrary bytes as the genesis `app_state` JSON through `App::init_chain`, and a valid
//! genesis mutated structurally.
//!
//! Input: if the first byte is 0x00, the rest drives up to 8 JSON-aware edits (replace a
//! value with a boundary value, an over-long id, a wrong type, …; delete a key; duplicate
//! an array entry) of the exported genesis of the seeded chain (accounts, balances,
//! clusters, jobs, decisions, audit records, violations, sequences); otherwise the whole
//! input is the `app_state` bytes.
//!
//! Properties besides "never panics": an accepted genesis exports and re-imports to the
//! same state, key for key (InitChain ∘ export ∘ InitChain = InitChain).
//!
//! Structured inputs depend on the seeded chain's export, so they are not stable
//! regression inputs: to see (and keep) the JSON one produced, run the input with
//! `HPC_FUZZ_DUMP=<file>`, which writes the `app_state` bytes there before importing.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Unstructured;
use hpc_fuzz::hpc_state::consensus::BlockLimits;
use hpc_fuzz::{world, State, CHAIN};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn template() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| {
        let w = world();
        serde_json::to_value(w.app.export(&w.state)).expect("export serializes")
    })
}

/// JSON pointers of every node of `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

fn boundary_value(u: &mut Unstructured, w: &hpc_fuzz::World) -> arbitrary::Result<Value> {
    Ok(match u.int_in_range(0u8..=17)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(0),
        3 => Value::from(-1),
        4 => Value::from(u64::MAX),
        5 => Value::String("18446744073709551616".into()),
        6 => Value::String("-1".into()),
        7 => Value::String(String::new()),
        8 => Value::String("a".repeat(129)),
        9 => Value::String("hpc-job-1".into()),
        10 => Value::String(w.alice.address()),
        11 => Value::Object(Default::default()),
        12 => Value::Array(vec![]),
        13 => Value::from(u.arbitrary::<u32>()?),
        14 => Value::from(u.arbitrary::<i64>()?),
        15 => Value::String(u.arbitrary::<String>()?),
        16 => Value::String(u.arbitrary::<u64>()?.to_string()),
        _ => Value::String("0".into()),
    })
}

fn mutate(u: &mut Unstructured) -> arbitrary::Result<Value> {
    let w = world();
    let mut g = template().clone();
    for _ in 0..u.int_in_range(1u8..=8)? {
        let mut ps = Vec::new();
        pointers(&g, String::new(), &mut ps);
        if ps.is_empty() {
            break;
        }
        let p = ps[u.choose_index(ps.len())?].clone();
        let (parent, last) = p.rsplit_once('/').expect("pointer has a slash");
        match u.int_in_range(0u8..=3)? {
            0 => {
                // Delete the node.
                match g.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&last.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(i) = last.parse::<usize>() {
                            if i < a.len() {
                                a.remove(i);
                            }
                        }
                    }
                    _ => {}
                }
            }
            1 => {
                // Duplicate an array entry (duplicate ids, duplicate accounts).
                if let Some(Value::Array(a)) = g.pointer_mut(parent) {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < a.len() {
                            let dup = a[i].clone();
                            a.push(dup);
                        }
                    }
                }
            }
            _ => {
                let v = boundary_value(u, w)?;
                if let Some(node) = g.pointer_mut(&p) {
                    *node = v;
                }
            }
        }
    }
    Ok(g)
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let bytes = match data.split_first() {
        Some((0, rest)) => {
            let mut u = Unstructured::new(rest);
            match mutate(&mut u) {
                Ok(v) => serde_json::to_vec(&v).expect("serialize"),
                Err(_) => return,
            }
        }
        _ => data.to_vec(),
    };
    if let Some(path) = std::env::var_os("HPC_FUZZ_DUMP") {
        std::fs::write(path, &bytes).expect("HPC_FUZZ_DUMP: cannot write");
    }
    let mut state = State::new();
    if w
        .app
        .init_chain(&mut state, CHAIN, &BlockLimits::default(), &bytes)
        .is_err()
    {
        return;
    }
    let exported = w.app.export(&state);
    let json = serde_json::to_vec(&exported).expect("exported genesis serializes");
    let mut again = State::new();
    if let Err(e) = w
        .app
        .init_chain(&mut again, CHAIN, &BlockLimits::default(), &json)
    {
        panic!("an accepted genesis exports to one InitChain rejects: {e}");
    }
    if again != state {
        let differ: Vec<_> = state
            .keys()
            .chain(again.keys())
            .filter(|k| state.get(*k) != again.get(*k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        panic!("InitChain(export(InitChain(g))) != InitChain(g); differing keys: {differ:?}");
    }
});
