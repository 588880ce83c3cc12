//! An `hpc-enforcer start` process with its YAML config, log and admin API, for the
//! end-to-end tests and the routing load benchmark.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{free_base_port, run_ok, workspace_bin, TestNode};

/// The `scheduler:` section for the embedded scheduler with `nodes` nodes.
pub fn embedded(nodes: u32) -> String {
    format!("scheduler:\n  adapter: embedded\n  embedded:\n    nodes: {nodes}")
}

/// What an enforcer's config says. `keys` holds the keyring (and the chain id); `chain`
/// is the node whose CometBFT RPC and gRPC the enforcer uses — the same node, or a full
/// node of the chain.
pub struct EnforcerSpec<'a> {
    pub keys: &'a TestNode,
    pub chain: &'a TestNode,
    pub provider_key: &'a str,
    pub cluster: &'a str,
    pub scheduler: String,
    pub mode: &'a str,
    pub max_age_blocks: u64,
    /// `log.level` (tests log debug; a load benchmark logs less).
    pub log_level: &'a str,
}

/// The log level of the tests' enforcers: every decision and outbox step.
pub const DEBUG_LOG: &str = "info,hpc_enforcer=debug,hpc_outbox=debug";

/// An `hpc-enforcer start` process (started and killed by the test).
pub struct Enforcer {
    child: Option<Child>,
    pub config: PathBuf,
    pub log: PathBuf,
    pub metrics: String,
    pub admin: String,
}

impl Enforcer {
    pub fn write_config(
        node: &TestNode,
        dir: &Path,
        provider_key: &str,
        cluster: &str,
        nodes: u32,
    ) -> Self {
        Self::write_config_with(
            node,
            dir,
            provider_key,
            cluster,
            &embedded(nodes),
            "strict",
            100,
        )
    }

    pub fn write_config_with(
        node: &TestNode,
        dir: &Path,
        provider_key: &str,
        cluster: &str,
        scheduler: &str,
        mode: &str,
        max_age_blocks: u64,
    ) -> Self {
        Self::write(
            &EnforcerSpec {
                keys: node,
                chain: node,
                provider_key,
                cluster,
                scheduler: scheduler.to_string(),
                mode,
                max_age_blocks,
                log_level: DEBUG_LOG,
            },
            dir,
        )
    }

    /// Writes `dir/enforcer.yaml` (state in `dir/state`, log in `dir/enforcer.log`) and
    /// checks it with `hpc-enforcer validate-config`.
    pub fn write(spec: &EnforcerSpec, dir: &Path) -> Self {
        let base = free_base_port();
        let (metrics, admin) = (
            format!("127.0.0.1:{base}"),
            format!("127.0.0.1:{}", base + 1),
        );
        let yaml = format!(
            r#"hpc:
  enabled: true
  cluster_id: "{cluster}"
  provider_address: "{provider}"
  routing:
    enforcement_mode: "{mode}"
    max_decision_age_blocks: {max_age_blocks}
    max_decision_age_seconds: 600
chain:
  rpc_url: "{rpc}"
  grpc_addr: "http://{grpc}"
  chain_id: "{chain_id}"
key:
  keyring_backend: test
  keyring_dir: "{home}"
  name: {provider_key}
{scheduler}
health:
  probe_interval_seconds: 1
  failure_threshold: 3
  heartbeat_interval_seconds: 2
metrics:
  listen: "{metrics}"
admin:
  listen: "{admin}"
state_dir: "{state}"
log:
  level: "{log_level}"
"#,
            cluster = spec.cluster,
            mode = spec.mode,
            max_age_blocks = spec.max_age_blocks,
            provider = spec.keys.key_address(spec.provider_key),
            rpc = spec.chain.rpc_url(),
            grpc = spec.chain.grpc_addr(),
            chain_id = spec.keys.chain_id,
            home = spec.keys.home.display(),
            provider_key = spec.provider_key,
            scheduler = spec.scheduler,
            state = dir.join("state").display(),
            log_level = spec.log_level,
        );
        let config = dir.join("enforcer.yaml");
        std::fs::write(&config, yaml).unwrap();
        run_ok(
            Command::new(workspace_bin("hpc-enforcer"))
                .arg("validate-config")
                .arg(&config),
        );
        Self {
            child: None,
            config,
            log: dir.join("enforcer.log"),
            metrics,
            admin,
        }
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the enforcer is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(
            Command::new(workspace_bin("hpc-enforcer"))
                .args(["start", "--config"])
                .arg(&self.config)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }

    /// A crash: SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// The process id while started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Started by [`Self::start`] and not exited since.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `GET path` on `addr` (the whole HTTP response); panics if nothing listens.
    pub fn http_get(&self, addr: &str, path: &str) -> String {
        self.try_http_get(addr, path)
            .unwrap_or_else(|| panic!("GET http://{addr}{path}: nothing answers"))
    }

    /// `GET path` on `addr`, or None when the connection fails (not listening yet).
    pub fn try_http_get(&self, addr: &str, path: &str) -> Option<String> {
        try_http_get(addr, path)
    }

    /// `GET path` on the admin API: the status code and the JSON body, or None when the
    /// admin API does not answer.
    pub fn admin_json(&self, path: &str) -> Option<(u16, Value)> {
        let response = self.try_http_get(&self.admin, path)?;
        let code = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n")?.1;
        Some((code, serde_json::from_str(body).ok()?))
    }

    /// `GET /status` on the admin API.
    pub fn status(&self) -> Option<Value> {
        self.admin_json("/status").map(|(_, v)| v)
    }
}

/// `GET path` on `addr` (`host:port`): the whole HTTP/1.1 response, or None when the
/// connection fails.
pub fn try_http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

impl Drop for Enforcer {
    fn drop(&mut self) {
        self.kill();
    }
}
