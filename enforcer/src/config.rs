//! The enforcer's YAML configuration.
//!
//! The `hpc:` block is the seed's "Provider Daemon Configuration" exactly as written
//! (`hpc.enabled`, `hpc.cluster_id`, `hpc.provider_address`, `hpc.routing.*`); the other
//! top-level sections add what a running daemon needs: chain endpoints, signing key, gas,
//! the local scheduler adapter, health probing, metrics and admin listeners, state dir and
//! logging. `enforcer/examples/enforcer.yaml` is an annotated example.
//!
//! Loading is two steps, both of which name the offending field by its YAML path:
//! 1. parsing ([`Config::from_yaml`]): unknown fields and unknown enum values are refused
//!    (`hpc.routing: unknown field `foo``, `hpc.routing.enforcement_mode: "strikt" is not
//!    one of strict, permissive, audit_only`);
//! 2. [`Config::validate`]: value rules (`hpc.provider_address: invalid bech32 address …`,
//!    `hpc.routing.max_decision_age_blocks: must be greater than 0`, …).
//!
//! [`Config::load`] does both. Defaults (used when a field is absent):
//!
//! | field | default |
//! |---|---|
//! | `hpc.enabled` | `true` |
//! | `hpc.routing.enabled` | `true` |
//! | `hpc.routing.enforcement_mode` | `strict` |
//! | `hpc.routing.max_decision_age_blocks` | `100` |
//! | `hpc.routing.max_decision_age_seconds` | `600` |
//! | `hpc.routing.allow_automatic_fallback` | `true` (seed daemon config; strict never falls back) |
//! | `hpc.routing.require_decision_for_submission` | `true` |
//! | `hpc.routing.auto_refresh_stale_decisions` | `true` |
//! | `hpc.routing.violation_alert_threshold` | `5` |
//! | `chain.rpc_url` | `http://127.0.0.1:26657` |
//! | `chain.websocket_url` | `rpc_url` with `ws`/`wss` scheme and path `/websocket` |
//! | `chain.grpc_addr` | `http://127.0.0.1:9090` |
//! | `chain.start_height` | `earliest` (first start only; else the persisted cursor) |
//! | `key.keyring_backend` | `file` |
//! | `gas.price` | `0.025uvirt` |
//! | `gas.adjustment` | `1.3` |
//! | `scheduler` (whole section) | `adapter: embedded` with the embedded defaults |
//! | `scheduler.embedded.nodes` | `1` |
//! | `scheduler.embedded.workdir` | `<state_dir>/jobs` |
//! | `scheduler.embedded.job_nice` | `10` (added to the enforcer's niceness, 0–19) |
//! | `scheduler.slurm.{sbatch,squeue,sinfo}_path` | `sbatch`, `squeue`, `sinfo` (from `PATH`) |
//! | `scheduler.slurm.{sacct,scontrol}_path` | absent (no accounting, no `scontrol ping`) |
//! | `scheduler.slurm.scancel_path` | `scancel` (from `PATH`) |
//! | `scheduler.slurm.slurm_conf` | absent (Slurm's default configuration) |
//! | `scheduler.slurm.jobs_dir` | `<state_dir>/jobs` |
//! | `scheduler.slurm.command_timeout_seconds` | `30` |
//! | `workload.allowed_partitions` | `[]` (any) |
//! | `workload.max_runtime_seconds` | `86400` |
//! | `workload.max_script_bytes` | `1048576` |
//! | `workload.allowed_uri_schemes` | `[https]` |
//! | `workload.allowed_images` / `container_runtime` | `[]` (container workloads refused) |
//! | `workload.fetch_timeout_seconds` | `30` |
//! | `health.probe_interval_seconds` | `30` (seed 002) |
//! | `health.failure_threshold` | `3` (seed 002) |
//! | `health.heartbeat_interval_seconds` | `60` (chain default heartbeat timeout is 300 s) |
//! | `metrics.listen` | `127.0.0.1:9464` |
//! | `admin.listen` | `127.0.0.1:8081` (loopback only) |
//! | `admin.token_file` | `<state_dir>/admin.token` |
//! | `log.format` | `text` |
//! | `log.level` | `info` |
//!
//! Required (no default): `hpc.cluster_id`, `hpc.provider_address`, `chain.chain_id`, a key
//! (`key.name` with `key.keyring_dir`, or `key.mnemonic_file`) and `state_dir`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hpc_primitives::{Address, GasPrices, FEE_DENOM};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use url::Url;

/// Why a configuration could not be loaded. Every variant names the file or the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The YAML did not parse into the configuration (unknown field, wrong type, unknown
    /// enum value). The message starts with the YAML path, e.g.
    /// `hpc.routing.enforcement_mode: "strikt" is not one of strict, permissive, audit_only`.
    #[error("{0}")]
    Parse(String),
    /// A value broke a rule; `field` is its YAML path.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl ConfigError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The YAML path of the offending field when known (`Invalid`), else `None`.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Defines a string enum whose parse error lists the accepted values, so a wrong value in
/// the YAML reads `<path>: "x" is not one of a, b, c`.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every accepted spelling, in declaration order.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            /// The spelling used in the YAML.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!("{:?} is not one of {}", s, Self::ALL.join(", "))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(de::Error::custom)
            }
        }
    };
}

string_enum! {
    /// `hpc.routing.enforcement_mode` (SPEC §5 mode table).
    EnforcementMode {
        /// Violations reject the job (fail closed).
        Strict => "strict",
        /// Refreshes and authorised fallbacks; violations recorded, jobs not rejected
        /// unless a fallback would be needed but is not authorised.
        Permissive => "permissive",
        /// Nothing enforced; everything recorded.
        AuditOnly => "audit_only",
    }
}

impl EnforcementMode {
    /// The protobuf enum recorded in audit records.
    pub fn to_proto(self) -> hpc_proto::virtengine::hpc::v1::EnforcementMode {
        use hpc_proto::virtengine::hpc::v1::EnforcementMode as P;
        match self {
            EnforcementMode::Strict => P::Strict,
            EnforcementMode::Permissive => P::Permissive,
            EnforcementMode::AuditOnly => P::AuditOnly,
        }
    }
}

string_enum! {
    /// `key.keyring_backend`: the `hpcd keys` keyring layout under `key.keyring_dir`.
    KeyringBackend {
        /// Encrypted key files (`keyring-file/`); passphrase from the environment.
        File => "file",
        /// INSECURE plain-text keys (`keyring-test/`), for devnets only.
        Test => "test",
    }
}

string_enum! {
    /// `scheduler.adapter`: which local scheduler runs the jobs.
    SchedulerAdapter {
        /// Jobs run as local processes (the default).
        Embedded => "embedded",
        /// Jobs submitted to Slurm with sbatch / squeue / sinfo.
        Slurm => "slurm",
    }
}

string_enum! {
    /// `log.format`.
    LogFormat {
        /// Human-readable lines.
        Text => "text",
        /// One JSON object per line (the audit log format).
        Json => "json",
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The seed's `hpc:` block.
    pub hpc: HpcConfig,
    /// Chain endpoints and chain id.
    #[serde(default)]
    pub chain: ChainConfig,
    /// The provider's signing key.
    #[serde(default)]
    pub key: KeyConfig,
    /// Gas price and adjustment for the enforcer's transactions.
    #[serde(default)]
    pub gas: GasConfig,
    /// The local scheduler adapter.
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    /// What this provider agrees to run (its workload policy).
    #[serde(default)]
    pub workload: WorkloadPolicy,
    /// Health probing of the local cluster and heartbeats to the chain.
    #[serde(default)]
    pub health: HealthConfig,
    /// Prometheus metrics listener.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Local admin API listener.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Directory of the block cursor, outbox and violation counts (required).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// `hpc:` — the seed's provider daemon configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HpcConfig {
    /// Whether the HPC integration runs at all (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The cluster this enforcer runs (registered on chain by this provider).
    pub cluster_id: String,
    /// Bech32 address (`virtengine1…`) of the provider that owns the cluster and signs.
    pub provider_address: String,
    /// Routing enforcement settings.
    #[serde(default)]
    pub routing: RoutingConfig,
}

/// `hpc.routing:` — how the enforcer treats scheduling decisions (SPEC §5).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Whether routing is enforced at all. `false`: every job this provider is scheduled
    /// for runs, with an audit record noting that enforcement is disabled.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// strict | permissive | audit_only (default strict).
    #[serde(default = "default_mode")]
    pub enforcement_mode: EnforcementMode,
    /// A decision older than this many blocks (chain head height − decision height) is stale.
    #[serde(default = "default_max_age_blocks")]
    pub max_decision_age_blocks: u64,
    /// A decision older than this many seconds of block time is stale.
    #[serde(default = "default_max_age_seconds")]
    pub max_decision_age_seconds: u64,
    /// Whether permissive mode may fall back to another cluster (together with the chain
    /// param `allow_provider_fallback`).
    #[serde(default = "yes")]
    pub allow_automatic_fallback: bool,
    /// Permissive mode: whether a job that arrives without a decision is a violation
    /// (`missing_decision`) even though a new decision is requested for it. Strict mode
    /// always rejects a missing decision; audit_only always records it.
    #[serde(default = "yes")]
    pub require_decision_for_submission: bool,
    /// Whether a stale decision is refreshed with RequestReschedule (strict and permissive).
    #[serde(default = "yes")]
    pub auto_refresh_stale_decisions: bool,
    /// Violations of this provider at which the enforcer logs
    /// `routing_violation_threshold_exceeded` (at least 1).
    #[serde(default = "default_threshold")]
    pub violation_alert_threshold: u32,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            enforcement_mode: default_mode(),
            max_decision_age_blocks: default_max_age_blocks(),
            max_decision_age_seconds: default_max_age_seconds(),
            allow_automatic_fallback: true,
            require_decision_for_submission: true,
            auto_refresh_stale_decisions: true,
            violation_alert_threshold: default_threshold(),
        }
    }
}

/// `chain:` — where the chain is.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// CometBFT RPC (http or https); `/block_results` is the source of truth for events.
    #[serde(default = "default_rpc_url")]
    pub rpc_url: String,
    /// CometBFT WebSocket (ws or wss), a wake-up hint only. Default: derived from `rpc_url`.
    #[serde(default)]
    pub websocket_url: Option<String>,
    /// hpcd gRPC endpoint (http or https) for queries and broadcasts.
    #[serde(default = "default_grpc_addr")]
    pub grpc_addr: String,
    /// Chain id signed into every transaction (required), e.g. `virtengine-devnet-1`.
    #[serde(default)]
    pub chain_id: String,
    /// Where a first start (no cursor in `state_dir` yet) begins reading blocks.
    #[serde(default)]
    pub start_height: StartHeight,
}

/// `chain.start_height`: `earliest` (default: the first block the node still has),
/// `latest`, or a height. Used only when `state_dir` holds no cursor; jobs already waiting
/// for this provider are found by a query at every start, whatever the start height.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartHeight {
    #[default]
    Earliest,
    Latest,
    Height(u64),
}

impl fmt::Display for StartHeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartHeight::Earliest => f.write_str("earliest"),
            StartHeight::Latest => f.write_str("latest"),
            StartHeight::Height(h) => write!(f, "{h}"),
        }
    }
}

impl FromStr for StartHeight {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "earliest" => Ok(StartHeight::Earliest),
            "latest" => Ok(StartHeight::Latest),
            _ => match s.parse::<u64>() {
                Ok(0) => Err("must be at least 1".into()),
                Ok(h) => Ok(StartHeight::Height(h)),
                Err(_) => Err(format!("{s:?} is not earliest, latest or a block height")),
            },
        }
    }
}

impl<'de> Deserialize<'de> for StartHeight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A YAML number or string through the one parser; null (`~`) is the default.
        let text = match yaml_serde::Value::deserialize(d)? {
            yaml_serde::Value::Null => return Ok(StartHeight::default()),
            yaml_serde::Value::String(t) => t,
            yaml_serde::Value::Number(n) => n.to_string(),
            other => {
                return Err(de::Error::custom(format!(
                    "{other:?} is not earliest, latest or a block height"
                )))
            }
        };
        text.parse().map_err(de::Error::custom)
    }
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            rpc_url: default_rpc_url(),
            websocket_url: None,
            grpc_addr: default_grpc_addr(),
            chain_id: String::new(),
            start_height: StartHeight::default(),
        }
    }
}

impl ChainConfig {
    /// The WebSocket endpoint: `websocket_url` if set, else `rpc_url` with scheme
    /// `ws`/`wss` and path `/websocket` (CometBFT's default). Call after [`Config::validate`].
    pub fn websocket_url(&self) -> Result<Url, String> {
        if let Some(ws) = &self.websocket_url {
            return Url::parse(ws).map_err(|e| e.to_string());
        }
        let mut url = Url::parse(&self.rpc_url).map_err(|e| e.to_string())?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| format!("cannot derive a {scheme} URL from {}", self.rpc_url))?;
        let path = format!("{}/websocket", url.path().trim_end_matches('/'));
        url.set_path(&path);
        Ok(url)
    }
}

/// `key:` — the provider's signing key: a named key of an `hpcd keys` keyring, or a file
/// holding a BIP39 mnemonic (HD path m/44'/118'/0'/0/0).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// file | test (default file).
    #[serde(default = "default_backend")]
    pub keyring_backend: KeyringBackend,
    /// The hpcd home directory holding `keyring-file/` or `keyring-test/` (with `name`).
    #[serde(default)]
    pub keyring_dir: Option<PathBuf>,
    /// Key name in the keyring.
    #[serde(default)]
    pub name: Option<String>,
    /// Alternative to a keyring: a file with the mnemonic (keep it mode 0600).
    #[serde(default)]
    pub mnemonic_file: Option<PathBuf>,
}

impl Default for KeyringBackend {
    fn default() -> Self {
        default_backend()
    }
}

/// `gas:` — fees of the enforcer's transactions.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GasConfig {
    /// Gas price, e.g. `0.025uvirt` (fees are paid in uvirt).
    #[serde(default = "default_gas_price")]
    pub price: String,
    /// Multiplier applied to simulated gas (at least 1.0).
    #[serde(default = "default_gas_adjustment")]
    pub adjustment: f64,
}

impl Default for GasConfig {
    fn default() -> Self {
        Self {
            price: default_gas_price(),
            adjustment: default_gas_adjustment(),
        }
    }
}

impl GasConfig {
    /// The parsed gas price. Call after [`Config::validate`].
    pub fn prices(&self) -> Result<GasPrices, String> {
        self.price.parse()
    }
}

/// `scheduler:` — the local scheduler adapter and its section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// embedded | slurm. The section of the chosen adapter is required.
    pub adapter: SchedulerAdapter,
    /// Settings of the embedded adapter.
    #[serde(default)]
    pub embedded: Option<EmbeddedConfig>,
    /// Settings of the Slurm adapter.
    #[serde(default)]
    pub slurm: Option<SlurmConfig>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            adapter: SchedulerAdapter::Embedded,
            embedded: Some(EmbeddedConfig::default()),
            slurm: None,
        }
    }
}

/// `scheduler.embedded:` — jobs run as local processes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Nodes this machine offers (at least 1).
    #[serde(default = "default_nodes")]
    pub nodes: u32,
    /// Working directory of the jobs (default `<state_dir>/jobs`).
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// Niceness added to the enforcer's own for every job (0–19).
    #[serde(default = "default_job_nice")]
    pub job_nice: u8,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            nodes: default_nodes(),
            workdir: None,
            job_nice: default_job_nice(),
        }
    }
}

/// `scheduler.slurm:` — jobs submitted to Slurm.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// Partition for sbatch/sinfo (absent = the Slurm default partition).
    #[serde(default)]
    pub partition: Option<String>,
    /// sbatch executable (default `sbatch` from PATH).
    #[serde(default = "default_sbatch")]
    pub sbatch_path: PathBuf,
    /// squeue executable (default `squeue` from PATH).
    #[serde(default = "default_squeue")]
    pub squeue_path: PathBuf,
    /// sinfo executable (default `sinfo` from PATH).
    #[serde(default = "default_sinfo")]
    pub sinfo_path: PathBuf,
    /// sacct executable (absent = no accounting). Optional: a finished job's outcome comes
    /// from the `exit_code` its wrapper wrote in the job directory; sacct adds Slurm's own
    /// final state (e.g. CANCELLED) for jobs slurmctld has already purged.
    #[serde(default)]
    pub sacct_path: Option<PathBuf>,
    /// scontrol executable (absent = no `scontrol ping` before each status probe).
    #[serde(default)]
    pub scontrol_path: Option<PathBuf>,
    /// scancel executable (default `scancel` from PATH).
    #[serde(default = "default_scancel")]
    pub scancel_path: PathBuf,
    /// The cluster's slurm.conf, given to every Slurm command as `SLURM_CONF` (absent =
    /// Slurm's default, `/etc/slurm/slurm.conf`). Lets two providers on one host each
    /// drive their own cluster.
    #[serde(default)]
    pub slurm_conf: Option<PathBuf>,
    /// Where job directories (script, wrapper, outputs, exit code) are created (default
    /// `<state_dir>/jobs`). Must be visible at the same path on the compute nodes.
    #[serde(default)]
    pub jobs_dir: Option<PathBuf>,
    /// Seconds after which a Slurm command is killed and counts as failed (default 30).
    #[serde(default = "default_slurm_command_timeout")]
    pub command_timeout_seconds: u64,
}

/// `workload:` — the provider's policy on what jobs may run here. A job outside it is
/// refused with a REJECTED audit record (`workload_policy_refused`) before anything runs.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadPolicy {
    /// Partitions a job may name (empty = any). A job without a partition hint goes to
    /// the adapter's partition.
    #[serde(default)]
    pub allowed_partitions: Vec<String>,
    /// Longest `requirements.max_runtime_seconds` accepted (default 86400).
    #[serde(default = "default_max_runtime")]
    pub max_runtime_seconds: u64,
    /// Largest script, inline or fetched, in bytes (default 1 MiB).
    #[serde(default = "default_max_script_bytes")]
    pub max_script_bytes: u64,
    /// Schemes of content-addressed script URIs this provider fetches: http, https, file
    /// (default [https]).
    #[serde(default = "default_uri_schemes")]
    pub allowed_uri_schemes: Vec<String>,
    /// Image prefixes accepted for container workloads, e.g. `registry.example/` (empty =
    /// container workloads refused).
    #[serde(default)]
    pub allowed_images: Vec<String>,
    /// The command that runs an image, e.g. [docker, run, --rm] (required with
    /// allowed_images); the image and its command are appended.
    #[serde(default)]
    pub container_runtime: Vec<String>,
    /// Seconds a script fetch may take (default 30).
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout_seconds: u64,
}

impl Default for WorkloadPolicy {
    fn default() -> Self {
        Self {
            allowed_partitions: Vec::new(),
            max_runtime_seconds: default_max_runtime(),
            max_script_bytes: default_max_script_bytes(),
            allowed_uri_schemes: default_uri_schemes(),
            allowed_images: Vec::new(),
            container_runtime: Vec::new(),
            fetch_timeout_seconds: default_fetch_timeout(),
        }
    }
}

fn default_max_runtime() -> u64 {
    86_400
}

fn default_max_script_bytes() -> u64 {
    1 << 20
}

fn default_uri_schemes() -> Vec<String> {
    vec!["https".into()]
}

fn default_fetch_timeout() -> u64 {
    30
}

/// Largest `workload.max_script_bytes` (a fetched script is held in memory).
const MAX_SCRIPT_BYTES_LIMIT: u64 = 16 << 20;

impl WorkloadPolicy {
    fn validate(&self) -> Result<(), ConfigError> {
        for (i, p) in self.allowed_partitions.iter().enumerate() {
            if !hpc_primitives::contract::workload::is_plain_name(p) {
                return Err(ConfigError::invalid(
                    &format!("workload.allowed_partitions[{i}]"),
                    format!("{p:?} must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"),
                ));
            }
        }
        positive("workload.max_runtime_seconds", self.max_runtime_seconds)?;
        if !(1..=MAX_SCRIPT_BYTES_LIMIT).contains(&self.max_script_bytes) {
            return Err(ConfigError::invalid(
                "workload.max_script_bytes",
                format!("must be 1-{MAX_SCRIPT_BYTES_LIMIT}"),
            ));
        }
        for (i, scheme) in self.allowed_uri_schemes.iter().enumerate() {
            if !["http", "https", "file"].contains(&scheme.as_str()) {
                return Err(ConfigError::invalid(
                    &format!("workload.allowed_uri_schemes[{i}]"),
                    format!("{scheme:?} is not one of http, https, file"),
                ));
            }
        }
        if let Some(i) = self.allowed_images.iter().position(|p| p.trim().is_empty()) {
            return Err(ConfigError::invalid(
                &format!("workload.allowed_images[{i}]"),
                "must not be empty (an empty prefix would allow every image)",
            ));
        }
        if self.allowed_images.is_empty() != self.container_runtime.is_empty() {
            return Err(ConfigError::invalid(
                "workload.container_runtime",
                "set it together with workload.allowed_images (both or neither)",
            ));
        }
        if !(1..=600).contains(&self.fetch_timeout_seconds) {
            return Err(ConfigError::invalid(
                "workload.fetch_timeout_seconds",
                "must be 1-600",
            ));
        }
        Ok(())
    }

    /// The container runtime command, when container workloads are enabled.
    pub fn container_runtime(&self) -> Option<Vec<String>> {
        (!self.container_runtime.is_empty()).then(|| self.container_runtime.clone())
    }
}

/// `health:` — seed 002's periodic probe and the chain heartbeat.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Seconds between probes of the local scheduler (default 30).
    #[serde(default = "default_probe_interval")]
    pub probe_interval_seconds: u64,
    /// Consecutive failed probes after which the cluster is unhealthy (default 3).
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// Seconds between UpdateClusterStatus heartbeats (default 60; keep it well below the
    /// chain's `cluster_heartbeat_timeout_seconds`).
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval_seconds: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            probe_interval_seconds: default_probe_interval(),
            failure_threshold: default_failure_threshold(),
            heartbeat_interval_seconds: default_heartbeat_interval(),
        }
    }
}

/// `metrics:` — Prometheus endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Listen address (default `127.0.0.1:9464`).
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: default_metrics_listen(),
        }
    }
}

/// `admin:` — local admin API (ValidateJobPlacement, GetViolationCount, health).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen address (default `127.0.0.1:8081`); a loopback address only.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// The bearer token of the admin API's POST routes (default
    /// `<state_dir>/admin.token`, created by `start` when missing).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token_file: None,
        }
    }
}

/// `log:`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// text | json (default text).
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// A tracing filter: a level (`info`) or `target=level` directives separated by commas.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_mode() -> EnforcementMode {
    EnforcementMode::Strict
}
fn default_max_age_blocks() -> u64 {
    100
}
fn default_max_age_seconds() -> u64 {
    600
}
fn default_threshold() -> u32 {
    5
}
fn default_rpc_url() -> String {
    "http://127.0.0.1:26657".into()
}
fn default_grpc_addr() -> String {
    "http://127.0.0.1:9090".into()
}
fn default_backend() -> KeyringBackend {
    KeyringBackend::File
}
fn default_gas_price() -> String {
    "0.025uvirt".into()
}
fn default_gas_adjustment() -> f64 {
    1.3
}
fn default_job_nice() -> u8 {
    hpc_local_scheduler::DEFAULT_JOB_NICE
}

fn default_nodes() -> u32 {
    1
}
fn default_sbatch() -> PathBuf {
    "sbatch".into()
}
fn default_squeue() -> PathBuf {
    "squeue".into()
}
fn default_sinfo() -> PathBuf {
    "sinfo".into()
}
fn default_scancel() -> PathBuf {
    PathBuf::from("scancel")
}

fn default_slurm_command_timeout() -> u64 {
    30
}
fn default_probe_interval() -> u64 {
    30
}
fn default_failure_threshold() -> u32 {
    3
}
fn default_heartbeat_interval() -> u64 {
    60
}
fn default_metrics_listen() -> String {
    "127.0.0.1:9464".into()
}
fn default_admin_listen() -> String {
    "127.0.0.1:8081".into()
}
fn default_log_format() -> LogFormat {
    LogFormat::Text
}
fn default_log_level() -> String {
    "info".into()
}

/// Cluster ids as the chain accepts them: `[a-z0-9-]{3,64}`.
fn valid_cluster_id(id: &str) -> bool {
    (3..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_url(field: &str, value: &str, schemes: &[&str]) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|e| ConfigError::invalid(field, format!("{value:?} is not a URL: {e}")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError::invalid(
            field,
            format!(
                "{value:?} has scheme {:?}; expected {}",
                url.scheme(),
                schemes.join(" or ")
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(
            field,
            format!("{value:?} has no host"),
        ));
    }
    Ok(url)
}

fn check_listen(field: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::invalid(
            field,
            format!("{value:?} is not an address:port such as 127.0.0.1:8081"),
        )
    })
}

fn positive(field: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(field, "must be greater than 0"));
    }
    Ok(())
}

fn non_empty_path(field: &str, path: &Path) -> Result<(), ConfigError> {
    if path.as_os_str().is_empty() {
        return Err(ConfigError::invalid(field, "must not be empty"));
    }
    Ok(())
}

/// Removes yaml_serde's own `<enclosing path>: ` prefix from its message, which is some
/// dotted prefix of the full field path.
fn strip_yaml_path<'a>(full: &str, message: &'a str) -> &'a str {
    let ends = full
        .match_indices('.')
        .map(|(i, _)| i)
        .chain(std::iter::once(full.len()));
    let mut best = message;
    for end in ends {
        if let Some(rest) = message
            .strip_prefix(&full[..end])
            .and_then(|r| r.strip_prefix(": "))
        {
            best = rest;
        }
    }
    best
}

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

impl Config {
    /// Reads, parses and validates the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Self::from_yaml(&text)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses YAML without validating values.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let de = yaml_serde::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            // yaml_serde names only the enclosing map (`hpc.routing: …`); the tracked path
            // names the field itself (`hpc.routing.enforcement_mode`).
            let path = e.path().to_string();
            let inner = e.inner().to_string();
            ConfigError::Parse(if path == "." {
                inner
            } else {
                format!("{path}: {}", strip_yaml_path(&path, &inner))
            })
        })
    }

    /// Checks every value; the error names the first offending field by its YAML path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let hpc = &self.hpc;
        if !valid_cluster_id(&hpc.cluster_id) {
            return Err(ConfigError::invalid(
                "hpc.cluster_id",
                format!(
                    "{:?} must be 3-64 characters of a-z, 0-9 and '-'",
                    hpc.cluster_id
                ),
            ));
        }
        Address::from_str(&hpc.provider_address)
            .map_err(|e| ConfigError::invalid("hpc.provider_address", e.to_string()))?;
        let r = &hpc.routing;
        positive(
            "hpc.routing.max_decision_age_blocks",
            r.max_decision_age_blocks,
        )?;
        positive(
            "hpc.routing.max_decision_age_seconds",
            r.max_decision_age_seconds,
        )?;
        if r.violation_alert_threshold < 1 {
            return Err(ConfigError::invalid(
                "hpc.routing.violation_alert_threshold",
                "must be at least 1",
            ));
        }

        let c = &self.chain;
        check_url("chain.rpc_url", &c.rpc_url, &["http", "https"])?;
        if let Some(ws) = &c.websocket_url {
            check_url("chain.websocket_url", ws, &["ws", "wss"])?;
        }
        check_url("chain.grpc_addr", &c.grpc_addr, &["http", "https"])?;
        if c.chain_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                "chain.chain_id",
                "required (the chain id signed into transactions, e.g. virtengine-devnet-1)",
            ));
        }
        if c.chain_id.len() > 50 || c.chain_id.chars().any(char::is_whitespace) {
            return Err(ConfigError::invalid(
                "chain.chain_id",
                format!(
                    "{:?} must be at most 50 characters without spaces",
                    c.chain_id
                ),
            ));
        }

        let k = &self.key;
        match (&k.name, &k.mnemonic_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    "key",
                    "set either key.name (a keyring key) or key.mnemonic_file, not both",
                ))
            }
            (None, None) => {
                return Err(ConfigError::invalid(
                    "key",
                    "required: key.name with key.keyring_dir, or key.mnemonic_file",
                ))
            }
            (Some(name), None) => {
                if name.trim().is_empty() {
                    return Err(ConfigError::invalid("key.name", "must not be empty"));
                }
                match &k.keyring_dir {
                    None => {
                        return Err(ConfigError::invalid(
                            "key.keyring_dir",
                            "required with key.name (the hpcd home holding keyring-file/ or keyring-test/)",
                        ))
                    }
                    Some(dir) => non_empty_path("key.keyring_dir", dir)?,
                }
            }
            (None, Some(file)) => non_empty_path("key.mnemonic_file", file)?,
        }

        let prices: GasPrices = self
            .gas
            .price
            .parse()
            .map_err(|e: String| ConfigError::invalid("gas.price", e))?;
        if !prices.0.contains_key(FEE_DENOM) {
            return Err(ConfigError::invalid(
                "gas.price",
                format!(
                    "{:?} has no {FEE_DENOM} price (fees are paid in {FEE_DENOM}, e.g. 0.025{FEE_DENOM})",
                    self.gas.price
                ),
            ));
        }
        if !self.gas.adjustment.is_finite() || self.gas.adjustment < 1.0 {
            return Err(ConfigError::invalid(
                "gas.adjustment",
                format!("{} must be a number of at least 1.0", self.gas.adjustment),
            ));
        }

        let s = &self.scheduler;
        match s.adapter {
            SchedulerAdapter::Embedded => {
                let e = s.embedded.as_ref().ok_or_else(|| {
                    ConfigError::invalid(
                        "scheduler.embedded",
                        "required when scheduler.adapter is embedded",
                    )
                })?;
                if s.slurm.is_some() {
                    return Err(ConfigError::invalid(
                        "scheduler.slurm",
                        "set, but scheduler.adapter is embedded (remove it or set adapter: slurm)",
                    ));
                }
                if e.nodes == 0 {
                    return Err(ConfigError::invalid(
                        "scheduler.embedded.nodes",
                        "must be at least 1",
                    ));
                }
                if let Some(dir) = &e.workdir {
                    non_empty_path("scheduler.embedded.workdir", dir)?;
                }
                if e.job_nice > hpc_local_scheduler::MAX_JOB_NICE {
                    return Err(ConfigError::invalid(
                        "scheduler.embedded.job_nice",
                        format!("must be at most {}", hpc_local_scheduler::MAX_JOB_NICE),
                    ));
                }
            }
            SchedulerAdapter::Slurm => {
                let sl = s.slurm.as_ref().ok_or_else(|| {
                    ConfigError::invalid(
                        "scheduler.slurm",
                        "required when scheduler.adapter is slurm",
                    )
                })?;
                if s.embedded.is_some() {
                    return Err(ConfigError::invalid(
                        "scheduler.embedded",
                        "set, but scheduler.adapter is slurm (remove it or set adapter: embedded)",
                    ));
                }
                if let Some(p) = &sl.partition {
                    if p.trim().is_empty() || p.chars().any(char::is_whitespace) {
                        return Err(ConfigError::invalid(
                            "scheduler.slurm.partition",
                            format!("{p:?} must be a partition name without spaces (or leave it out for the default partition)"),
                        ));
                    }
                }
                non_empty_path("scheduler.slurm.sbatch_path", &sl.sbatch_path)?;
                non_empty_path("scheduler.slurm.squeue_path", &sl.squeue_path)?;
                non_empty_path("scheduler.slurm.sinfo_path", &sl.sinfo_path)?;
                if let Some(p) = &sl.sacct_path {
                    non_empty_path("scheduler.slurm.sacct_path", p)?;
                }
                if let Some(p) = &sl.scontrol_path {
                    non_empty_path("scheduler.slurm.scontrol_path", p)?;
                }
                non_empty_path("scheduler.slurm.scancel_path", &sl.scancel_path)?;
                if let Some(p) = &sl.slurm_conf {
                    non_empty_path("scheduler.slurm.slurm_conf", p)?;
                }
                if let Some(p) = &sl.jobs_dir {
                    non_empty_path("scheduler.slurm.jobs_dir", p)?;
                }
                positive(
                    "scheduler.slurm.command_timeout_seconds",
                    sl.command_timeout_seconds,
                )?;
            }
        }

        self.workload.validate()?;
        positive(
            "health.probe_interval_seconds",
            self.health.probe_interval_seconds,
        )?;
        if self.health.failure_threshold < 1 {
            return Err(ConfigError::invalid(
                "health.failure_threshold",
                "must be at least 1",
            ));
        }
        positive(
            "health.heartbeat_interval_seconds",
            self.health.heartbeat_interval_seconds,
        )?;

        let metrics = check_listen("metrics.listen", &self.metrics.listen)?;
        let admin = check_listen("admin.listen", &self.admin.listen)?;
        if !admin.ip().is_loopback() {
            return Err(ConfigError::invalid(
                "admin.listen",
                format!("{admin} is not a loopback address; the admin API listens on 127.0.0.1 or [::1] only"),
            ));
        }
        if metrics == admin {
            return Err(ConfigError::invalid(
                "admin.listen",
                format!("{admin} is also metrics.listen; use different ports"),
            ));
        }

        match &self.state_dir {
            None => {
                return Err(ConfigError::invalid(
                    "state_dir",
                    "required (directory of the block cursor, outbox and violation counts)",
                ))
            }
            Some(dir) => non_empty_path("state_dir", dir)?,
        }
        if let Some(file) = &self.admin.token_file {
            non_empty_path("admin.token_file", file)?;
        }

        for directive in self.log.level.split(',').map(str::trim) {
            let level = directive.rsplit('=').next().unwrap_or(directive);
            if directive.is_empty() || !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                return Err(ConfigError::invalid(
                    "log.level",
                    format!(
                        "{:?} is not a level ({}) or target=level list",
                        self.log.level,
                        LOG_LEVELS.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The state directory. Call after [`Config::validate`] (which requires it).
    pub fn state_dir(&self) -> &Path {
        self.state_dir.as_deref().unwrap_or(Path::new("."))
    }

    /// The admin API's token file: `admin.token_file` or `<state_dir>/admin.token`.
    pub fn admin_token_file(&self) -> PathBuf {
        self.admin
            .token_file
            .clone()
            .unwrap_or_else(|| self.state_dir().join("admin.token"))
    }

    /// Where the adapter keeps job directories: `scheduler.embedded.workdir` /
    /// `scheduler.slurm.jobs_dir`, or `<state_dir>/jobs`.
    pub fn jobs_dir(&self) -> PathBuf {
        let configured = match self.scheduler.adapter {
            SchedulerAdapter::Embedded => self
                .scheduler
                .embedded
                .as_ref()
                .and_then(|e| e.workdir.clone()),
            SchedulerAdapter::Slurm => self
                .scheduler
                .slurm
                .as_ref()
                .and_then(|s| s.jobs_dir.clone()),
        };
        configured.unwrap_or_else(|| self.state_dir().join("jobs"))
    }

    /// A short multi-line summary for `hpc-enforcer validate-config`.
    pub fn summary(&self) -> String {
        let r = &self.hpc.routing;
        let ws = self
            .chain
            .websocket_url()
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("<{e}>"));
        let key = match (&self.key.name, &self.key.mnemonic_file) {
            (Some(name), _) => format!(
                "keyring {} key {name:?} in {}",
                self.key.keyring_backend,
                self.key
                    .keyring_dir
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display()
            ),
            (None, Some(file)) => format!("mnemonic file {}", file.display()),
            (None, None) => "none".into(),
        };
        let scheduler = match self.scheduler.adapter {
            SchedulerAdapter::Embedded => format!(
                "embedded, {} node(s), workdir {}",
                self.scheduler.embedded.as_ref().map_or(0, |e| e.nodes),
                self.jobs_dir().display()
            ),
            SchedulerAdapter::Slurm => {
                let partition = self
                    .scheduler
                    .slurm
                    .as_ref()
                    .and_then(|s| s.partition.clone())
                    .unwrap_or_else(|| "<default>".into());
                format!("slurm, partition {partition}")
            }
        };
        format!(
            "hpc:       enabled={} cluster {} provider {}\n\
             routing:   enabled={} mode={} max age {} blocks / {} s, fallback={}, \
             require_decision={}, auto_refresh={}, alert threshold {}\n\
             chain:     {} rpc {} websocket {} grpc {} start height {}\n\
             key:       {key}\n\
             gas:       {} x{}\n\
             scheduler: {scheduler}\n\
             health:    probe every {} s, unhealthy after {} failures, heartbeat every {} s\n\
             listen:    metrics {} admin {} (token file {})\n\
             state_dir: {}\n\
             log:       {} {}",
            self.hpc.enabled,
            self.hpc.cluster_id,
            self.hpc.provider_address,
            r.enabled,
            r.enforcement_mode,
            r.max_decision_age_blocks,
            r.max_decision_age_seconds,
            r.allow_automatic_fallback,
            r.require_decision_for_submission,
            r.auto_refresh_stale_decisions,
            r.violation_alert_threshold,
            self.chain.chain_id,
            self.chain.rpc_url,
            ws,
            self.chain.grpc_addr,
            self.chain.start_height,
            self.gas.price,
            self.gas.adjustment,
            self.health.probe_interval_seconds,
            self.health.failure_threshold,
            self.health.heartbeat_interval_seconds,
            self.metrics.listen,
            self.admin.listen,
            self.admin_token_file().display(),
            self.state_dir().display(),
            self.log.format,
            self.log.level,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's "Provider Daemon Configuration" block, verbatim.
    const SEED_BLOCK: &str = r#"
hpc:
  enabled: true
  cluster_id: "hpc-cluster-1"
  provider_address: "virtengine1provider..."
  
  routing:
    enabled: true
    enforcement_mode: "strict"
    max_decision_age_blocks: 100
    max_decision_age_seconds: 600
    allow_automatic_fallback: true
    require_decision_for_submission: true
    auto_refresh_stale_decisions: true
    violation_alert_threshold: 5
"#;

    const PROVIDER: &str = "virtengine1ldl9qrqrzexzp29udzx9h437zx9g2zy9caleyg";

    /// A minimal valid config: the seed block with a real address plus the required
    /// deployment fields.
    fn minimal() -> String {
        format!(
            "{}\nchain:\n  chain_id: virtengine-devnet-1\nkey:\n  keyring_backend: test\n  keyring_dir: /var/lib/hpcd\n  name: provider1\nstate_dir: /var/lib/hpc-enforcer\n",
            SEED_BLOCK.replace("virtengine1provider...", PROVIDER)
        )
    }

    fn parse(yaml: &str) -> Config {
        Config::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    /// Validates `yaml` after `edit` and returns the error's text.
    fn error_of(yaml: &str) -> String {
        match Config::from_yaml(yaml) {
            Err(e) => e.to_string(),
            Ok(c) => c
                .validate()
                .expect_err("expected a validation error")
                .to_string(),
        }
    }

    /// Replaces `from` (which must occur) in the minimal config.
    fn with(from: &str, to: &str) -> String {
        let base = minimal();
        assert!(base.contains(from), "{from:?} not in the minimal config");
        base.replacen(from, to, 1)
    }

    #[test]
    fn seed_block_parses_as_written() {
        let c = parse(SEED_BLOCK);
        assert!(c.hpc.enabled);
        assert_eq!(c.hpc.cluster_id, "hpc-cluster-1");
        assert_eq!(c.hpc.provider_address, "virtengine1provider...");
        assert_eq!(
            c.hpc.routing,
            RoutingConfig {
                enabled: true,
                enforcement_mode: EnforcementMode::Strict,
                max_decision_age_blocks: 100,
                max_decision_age_seconds: 600,
                allow_automatic_fallback: true,
                require_decision_for_submission: true,
                auto_refresh_stale_decisions: true,
                violation_alert_threshold: 5,
            }
        );
        // The seed's values are its defaults too.
        assert_eq!(c.hpc.routing, RoutingConfig::default());
        // The seed's placeholder address is not a real one; validation says so by name.
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("hpc.provider_address: invalid bech32"),
            "{err}"
        );
    }

    #[test]
    fn seed_block_with_deployment_fields_validates_with_documented_defaults() {
        let c = parse(&minimal());
        c.validate().unwrap();
        assert_eq!(c.chain.rpc_url, "http://127.0.0.1:26657");
        assert_eq!(
            c.chain.websocket_url().unwrap().as_str(),
            "ws://127.0.0.1:26657/websocket"
        );
        assert_eq!(c.chain.grpc_addr, "http://127.0.0.1:9090");
        assert_eq!(c.gas.price, "0.025uvirt");
        assert_eq!(c.gas.adjustment, 1.3);
        assert_eq!(c.scheduler.adapter, SchedulerAdapter::Embedded);
        assert_eq!(c.scheduler.embedded.as_ref().unwrap().nodes, 1);
        assert_eq!(c.jobs_dir(), PathBuf::from("/var/lib/hpc-enforcer/jobs"));
        assert_eq!(c.health.probe_interval_seconds, 30);
        assert_eq!(c.health.failure_threshold, 3);
        assert_eq!(c.health.heartbeat_interval_seconds, 60);
        assert_eq!(c.metrics.listen, "127.0.0.1:9464");
        assert_eq!(c.admin.listen, "127.0.0.1:8081");
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.log.level, "info");
        assert_eq!(c.key.keyring_backend, KeyringBackend::Test);
        assert!(c.summary().contains("mode=strict"));
    }

    #[test]
    fn websocket_url_is_derived_from_https_and_paths() {
        let mut c = ChainConfig {
            rpc_url: "https://rpc.example.org/cometbft/".into(),
            ..ChainConfig::default()
        };
        assert_eq!(
            c.websocket_url().unwrap().as_str(),
            "wss://rpc.example.org/cometbft/websocket"
        );
        c.websocket_url = Some("ws://10.0.0.1:26657/websocket".into());
        assert_eq!(
            c.websocket_url().unwrap().as_str(),
            "ws://10.0.0.1:26657/websocket"
        );
    }

    #[test]
    fn example_config_validates() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/enforcer.yaml");
        let c = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.hpc.cluster_id, "hpc-cluster-1");
        assert_eq!(c.hpc.routing.enforcement_mode, EnforcementMode::Strict);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        for (yaml, path, field) in [
            (
                with(
                    "    violation_alert_threshold: 5",
                    "    violation_alert_threshold: 5\n    max_decision_age: 3",
                ),
                "hpc.routing",
                "max_decision_age",
            ),
            (with("hpc:\n", "hpc:\n  clusterid: x\n"), "hpc", "clusterid"),
            (
                format!("{}\nmetrix:\n  listen: 1.2.3.4:1\n", minimal()),
                "",
                "metrix",
            ),
            (
                with(
                    "  chain_id: virtengine-devnet-1",
                    "  chain_id: virtengine-devnet-1\n  rpc: http://x",
                ),
                "chain",
                "rpc",
            ),
        ] {
            let err = error_of(&yaml);
            assert!(err.contains(&format!("unknown field `{field}`")), "{err}");
            let full = if path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
            assert!(err.starts_with(&format!("{full}: unknown field")), "{err}");
        }
    }

    #[test]
    fn start_height_is_earliest_latest_or_a_height() {
        assert_eq!(parse(&minimal()).chain.start_height, StartHeight::Earliest);
        for (text, expected) in [
            ("latest", StartHeight::Latest),
            ("earliest", StartHeight::Earliest),
            ("1200", StartHeight::Height(1200)),
            ("\"1200\"", StartHeight::Height(1200)),
            ("~", StartHeight::Earliest),
        ] {
            let yaml = with("chain:\n", &format!("chain:\n  start_height: {text}\n"));
            assert_eq!(parse(&yaml).chain.start_height, expected, "{text}");
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(String, &str, &str)> = vec![
            (
                with("\"strict\"", "\"strikt\""),
                "hpc.routing.enforcement_mode",
                "\"strikt\" is not one of strict, permissive, audit_only",
            ),
            (
                with(PROVIDER, "virtengine1provider..."),
                "hpc.provider_address",
                "invalid bech32",
            ),
            (
                with(PROVIDER, "cosmos1ldl9qrqrzexzp29udzx9h437zx9g2zy9zp5sfw"),
                "hpc.provider_address",
                "",
            ),
            (
                with("\"hpc-cluster-1\"", "\"HPC_1\""),
                "hpc.cluster_id",
                "3-64 characters",
            ),
            (
                with("max_decision_age_blocks: 100", "max_decision_age_blocks: 0"),
                "hpc.routing.max_decision_age_blocks",
                "greater than 0",
            ),
            (
                with(
                    "max_decision_age_seconds: 600",
                    "max_decision_age_seconds: 0",
                ),
                "hpc.routing.max_decision_age_seconds",
                "greater than 0",
            ),
            (
                with(
                    "violation_alert_threshold: 5",
                    "violation_alert_threshold: 0",
                ),
                "hpc.routing.violation_alert_threshold",
                "at least 1",
            ),
            (
                with(
                    "max_decision_age_blocks: 100",
                    "max_decision_age_blocks: -1",
                ),
                "hpc.routing.max_decision_age_blocks",
                "",
            ),
            (
                with(
                    "enabled: true\n  cluster_id",
                    "enabled: maybe\n  cluster_id",
                ),
                "hpc.enabled",
                "",
            ),
            (
                with("chain:\n", "chain:\n  rpc_url: \"not a url\"\n"),
                "chain.rpc_url",
                "not a URL",
            ),
            (
                with("chain:\n", "chain:\n  rpc_url: \"ftp://x:1\"\n"),
                "chain.rpc_url",
                "expected http or https",
            ),
            (
                with(
                    "chain:\n",
                    "chain:\n  websocket_url: \"http://x:1/websocket\"\n",
                ),
                "chain.websocket_url",
                "expected ws or wss",
            ),
            (
                with("chain:\n", "chain:\n  start_height: 0\n"),
                "chain.start_height",
                "at least 1",
            ),
            (
                with("chain:\n", "chain:\n  start_height: 1.5\n"),
                "chain.start_height",
                "\"1.5\" is not earliest, latest or a block height",
            ),
            (
                with(
                    "chain:\n",
                    "chain:\n  start_height: 99999999999999999999999\n",
                ),
                "chain.start_height",
                "integer `99999999999999999999999`",
            ),
            (
                with("chain:\n", "chain:\n  start_height: first\n"),
                "chain.start_height",
                "\"first\" is not earliest, latest or a block height",
            ),
            (
                with("chain:\n", "chain:\n  grpc_addr: \"127.0.0.1:9090\"\n"),
                "chain.grpc_addr",
                "",
            ),
            (
                with("  chain_id: virtengine-devnet-1\n", ""),
                "chain.chain_id",
                "required",
            ),
            (
                with("virtengine-devnet-1", "\"virtengine devnet\""),
                "chain.chain_id",
                "without spaces",
            ),
            (with("  name: provider1\n", ""), "key", "required"),
            (
                with(
                    "  name: provider1\n",
                    "  name: provider1\n  mnemonic_file: /k\n",
                ),
                "key",
                "not both",
            ),
            (
                with("  keyring_dir: /var/lib/hpcd\n", ""),
                "key.keyring_dir",
                "required with key.name",
            ),
            (
                with("keyring_backend: test", "keyring_backend: os"),
                "key.keyring_backend",
                "\"os\" is not one of file, test",
            ),
            (
                format!("{}gas:\n  price: \"0.025\"\n", minimal()),
                "gas.price",
                "no denomination",
            ),
            (
                format!("{}gas:\n  price: \"0.025stake\"\n", minimal()),
                "gas.price",
                "no uvirt price",
            ),
            (
                format!("{}gas:\n  adjustment: 0.5\n", minimal()),
                "gas.adjustment",
                "at least 1.0",
            ),
            (
                format!("{}scheduler:\n  adapter: pbs\n", minimal()),
                "scheduler.adapter",
                "\"pbs\" is not one of embedded, slurm",
            ),
            (
                format!("{}scheduler:\n  adapter: slurm\n", minimal()),
                "scheduler.slurm",
                "required when scheduler.adapter is slurm",
            ),
            (
                format!("{}scheduler:\n  adapter: embedded\n", minimal()),
                "scheduler.embedded",
                "required when scheduler.adapter is embedded",
            ),
            (
                format!(
                    "{}scheduler:\n  adapter: embedded\n  embedded: {{}}\n  slurm: {{}}\n",
                    minimal()
                ),
                "scheduler.slurm",
                "adapter is embedded",
            ),
            (
                format!(
                    "{}scheduler:\n  adapter: embedded\n  embedded:\n    nodes: 0\n",
                    minimal()
                ),
                "scheduler.embedded.nodes",
                "at least 1",
            ),
            (
                format!(
                    "{}scheduler:\n  adapter: embedded\n  embedded:\n    job_nice: 20\n",
                    minimal()
                ),
                "scheduler.embedded.job_nice",
                "at most 19",
            ),
            (
                format!(
                    "{}scheduler:\n  adapter: slurm\n  slurm:\n    partition: \"a b\"\n",
                    minimal()
                ),
                "scheduler.slurm.partition",
                "without spaces",
            ),
            (
                format!(
                    "{}scheduler:\n  adapter: slurm\n  slurm:\n    sbatch_path: \"\"\n",
                    minimal()
                ),
                "scheduler.slurm.sbatch_path",
                "must not be empty",
            ),
            (
                format!(
                    "{}scheduler:\n  adapter: slurm\n  slurm:\n    sacct_path: \"\"\n",
                    minimal()
                ),
                "scheduler.slurm.sacct_path",
                "must not be empty",
            ),
            (
                format!(
                    "{}scheduler:\n  adapter: slurm\n  slurm:\n    command_timeout_seconds: 0\n",
                    minimal()
                ),
                "scheduler.slurm.command_timeout_seconds",
                "greater than 0",
            ),
            (
                format!("{}health:\n  probe_interval_seconds: 0\n", minimal()),
                "health.probe_interval_seconds",
                "greater than 0",
            ),
            (
                format!("{}health:\n  failure_threshold: 0\n", minimal()),
                "health.failure_threshold",
                "at least 1",
            ),
            (
                format!("{}health:\n  heartbeat_interval_seconds: 0\n", minimal()),
                "health.heartbeat_interval_seconds",
                "greater than 0",
            ),
            (
                format!("{}metrics:\n  listen: localhost\n", minimal()),
                "metrics.listen",
                "address:port",
            ),
            (
                format!("{}admin:\n  listen: \"127.0.0.1:9464\"\n", minimal()),
                "admin.listen",
                "also metrics.listen",
            ),
            (
                format!("{}admin:\n  token_file: \"\"\n", minimal()),
                "admin.token_file",
                "must not be empty",
            ),
            (
                with("state_dir: /var/lib/hpc-enforcer\n", ""),
                "state_dir",
                "required",
            ),
            (
                format!("{}log:\n  level: loud\n", minimal()),
                "log.level",
                "is not a level",
            ),
            (
                format!("{}log:\n  format: xml\n", minimal()),
                "log.format",
                "\"xml\" is not one of text, json",
            ),
        ];
        for (yaml, field, needle) in cases {
            let err = error_of(&yaml);
            assert!(
                err.starts_with(&format!("{field}: ")),
                "expected an error naming {field}, got: {err}"
            );
            assert!(err.contains(needle), "{field}: {needle:?} not in {err}");
        }
    }

    #[test]
    fn log_directives_and_slurm_defaults_are_accepted() {
        let yaml = format!(
            "{}log:\n  format: json\n  level: \"warn,hpc_enforcer=debug\"\nscheduler:\n  adapter: slurm\n  slurm:\n    partition: gpu\n",
            minimal()
        );
        let c = parse(&yaml);
        c.validate().unwrap();
        let slurm = c.scheduler.slurm.unwrap();
        assert_eq!(slurm.sbatch_path, PathBuf::from("sbatch"));
        assert_eq!(slurm.squeue_path, PathBuf::from("squeue"));
        assert_eq!(slurm.sinfo_path, PathBuf::from("sinfo"));
    }

    #[test]
    fn admin_listen_must_be_loopback() {
        for listen in [
            "0.0.0.0:8081",
            "[::]:8081",
            "10.0.0.5:8081",
            "192.168.1.1:8081",
        ] {
            let err = error_of(&format!("{}admin:\n  listen: \"{listen}\"\n", minimal()));
            assert!(err.starts_with("admin.listen: "), "{listen}: {err}");
            assert!(err.contains("not a loopback address"), "{listen}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
        for listen in ["127.0.0.1:8081", "127.0.0.2:8081", "[::1]:8081"] {
            parse(&format!("{}admin:\n  listen: \"{listen}\"\n", minimal()))
                .validate()
                .unwrap_or_else(|e| panic!("{listen}: {e}"));
        }
    }

    #[test]
    fn admin_token_file_defaults_to_the_state_dir() {
        let c = parse(&minimal());
        assert_eq!(
            c.admin_token_file(),
            PathBuf::from("/var/lib/hpc-enforcer/admin.token")
        );
        let c = parse(&format!(
            "{}admin:\n  token_file: /etc/hpc-enforcer/admin.token\n",
            minimal()
        ));
        c.validate().unwrap();
        assert_eq!(
            c.admin_token_file(),
            PathBuf::from("/etc/hpc-enforcer/admin.token")
        );
    }

    #[test]
    fn mnemonic_file_alone_is_a_key() {
        let yaml = with(
            "  keyring_backend: test\n  keyring_dir: /var/lib/hpcd\n  name: provider1\n",
            "  mnemonic_file: /etc/hpc-enforcer/mnemonic\n",
        );
        parse(&yaml).validate().unwrap();
    }
}
