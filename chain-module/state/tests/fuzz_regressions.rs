//! Every crash the fuzzers found (fuzz/regressions/<target>/, see their READMEs) replayed
//! through the normal test suite: each input must now be refused with an error naming the
//! field, never panic.

use std::path::PathBuf;

use hpc_state::consensus::BlockLimits;
use hpc_state::App;

fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    inputs.sort();
    assert!(
        !inputs.is_empty(),
        "no regression inputs in {}",
        dir.display()
    );
    inputs
}

#[test]
fn genesis_inputs_that_panicked_are_refused_naming_the_field() {
    for (name, app_state) in regressions("genesis_import") {
        let mut state = std::collections::BTreeMap::new();
        let err = App::default()
            .init_chain(&mut state, "fuzz-1", &BlockLimits::default(), &app_state)
            .expect_err(&name);
        // Hand-made inputs name the field: audit-job_id-129.json → `job_id`; a fuzzer's
        // minimised input (tmin-…) may have several bad fields, any of which is named.
        let field = match name.strip_prefix("tmin-") {
            Some(_) => "",
            None => name.split('-').nth(1).unwrap_or_default(),
        };
        assert!(
            !err.field.is_empty() && err.field.ends_with(field),
            "{name}: error names {:?}: {}",
            err.field,
            err.reason
        );
    }
}
