//! The `hpc-enforcer` binary's command line: exit codes and messages an operator sees
//! before any chain is involved.

use std::path::Path;
use std::process::{Command, Output};

fn enforcer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hpc-enforcer"))
        .args(args)
        .output()
        .expect("running hpc-enforcer")
}

fn example_config() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/enforcer.yaml");
    std::fs::read_to_string(path).unwrap()
}

/// Writes `yaml` to a temp file and returns (dir guard, path).
fn config_file(yaml: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enforcer.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path.to_str().unwrap().to_string())
}

#[test]
fn validate_config_accepts_the_example_and_prints_a_summary() {
    let (_dir, path) = config_file(&example_config());
    let out = enforcer(&["validate-config", &path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("config OK"), "{stdout}");
    assert!(stdout.contains("start height earliest"), "{stdout}");
}

#[test]
fn invalid_config_exits_2_naming_the_field_for_validate_and_start() {
    let yaml = example_config().replace("start_height: earliest", "start_height: -5");
    assert_ne!(yaml, example_config());
    let (_dir, path) = config_file(&yaml);
    for args in [
        vec!["validate-config", &path],
        vec!["start", "--config", &path],
    ] {
        let out = enforcer(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("chain.start_height"), "{args:?}: {stderr}");
    }
}

#[test]
fn start_with_hpc_disabled_exits_cleanly_without_touching_the_chain() {
    let yaml = example_config().replacen("  enabled: true", "  enabled: false", 1);
    assert_ne!(yaml, example_config());
    let (dir, path) = config_file(&yaml);
    // A state_dir that must stay untouched: a disabled enforcer creates nothing.
    let state_dir = dir.path().join("state");
    let yaml = yaml.replace(
        "state_dir: \"/var/lib/hpc-enforcer\"",
        &format!("state_dir: {:?}", state_dir.to_str().unwrap()),
    );
    std::fs::write(&path, &yaml).unwrap();
    let out = enforcer(&["start", "--config", &path]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("hpc.enabled is false"), "{stderr}");
    assert!(!state_dir.exists());
}

#[test]
fn unknown_flags_are_refused_by_name() {
    let out = enforcer(&["start", "--confg", "x.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--confg"));
}
