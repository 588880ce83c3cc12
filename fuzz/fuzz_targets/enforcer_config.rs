//! Arbitrary bytes through the enforcer's configuration parser: `Config::from_yaml` (what
//! `Config::load` runs on the file's text), then everything the daemon and
//! `validate-config` call on a parsed config: `validate`, `summary`, `state_dir`,
//! `embedded_workdir`, `chain.websocket_url`, `gas.prices`, the routing mode's proto.
//!
//! Properties besides "never panics": parsing is deterministic (same outcome and same
//! validation verdict twice); a config that validates has a usable WebSocket URL and gas
//! price (the daemon calls both after validation and expects them to succeed).
#![no_main]

use hpc_enforcer::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Config::load reads the file with read_to_string: non-UTF-8 is an I/O error there.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Config::from_yaml(text);
    let again = Config::from_yaml(text);
    match (&parsed, &again) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "parse differs"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "parse error differs"),
        _ => panic!("parsing the same text succeeded once and failed once"),
    }
    let Ok(config) = parsed else {
        return;
    };
    let verdict = config.validate();
    let _ = config.summary();
    let _ = config.state_dir();
    let _ = config.jobs_dir();
    let ws = config.chain.websocket_url();
    let prices = config.gas.prices();
    let _ = config.hpc.routing.enforcement_mode.to_proto();
    match &verdict {
        Ok(()) => {
            if let Err(e) = &ws {
                panic!("a valid config has no WebSocket URL: {e}");
            }
            if let Err(e) = &prices {
                panic!("a valid config has an unparsable gas price: {e}");
            }
        }
        Err(e) => {
            let _ = e.field();
            let _ = e.to_string();
        }
    }
    assert_eq!(
        config.validate().map_err(|e| e.to_string()),
        verdict.map_err(|e| e.to_string()),
        "validation is not deterministic"
    );
});
