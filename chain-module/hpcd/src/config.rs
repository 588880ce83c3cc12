//! The node's home directory: `config/app.toml` (hpcd) beside CometBFT's
//! `config/config.toml`, `config/genesis.json` and keys, as a Cosmos SDK node lays it out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use hpc_state::coins::GasPrices;
use serde::{Deserialize, Serialize};

use crate::event_index::EventIndex;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AppConfig {
    /// Node-local minimum gas prices for mempool admission, e.g. "0.025uvirt"; "" = none.
    pub minimum_gas_prices: String,
    /// Event attributes CometBFT indexes for `tx_search`: `type.key` or a whole `type`;
    /// empty (or absent) = every attribute, the Cosmos SDK's rule.
    #[serde(default)]
    pub index_events: Vec<String>,
    #[serde(default)]
    pub grpc: GrpcConfig,
    #[serde(default)]
    pub cometbft: CometConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub pruning: PruningConfig,
    #[serde(default)]
    pub store: StoreConfig,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StoreConfig {
    /// MiB of memory the state store may use to cache its pages.
    pub cache_mib: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            cache_mib: (hpc_store::DEFAULT_CACHE_BYTES >> 20) as u64,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PruningConfig {
    /// How many recent heights stay queryable (and provable); older state is deleted at
    /// each commit. 0 keeps every height (an archive node).
    pub keep_recent: u64,
}

/// About 28 hours of 1-second blocks.
pub const DEFAULT_KEEP_RECENT: u64 = 100_000;

impl Default for PruningConfig {
    fn default() -> Self {
        Self {
            keep_recent: DEFAULT_KEEP_RECENT,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GrpcConfig {
    pub enable: bool,
    pub address: String,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            enable: true,
            address: "127.0.0.1:9090".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CometConfig {
    /// The `cometbft` binary `hpcd start` runs: a path, or a name looked up on PATH.
    pub binary: String,
}

impl Default for CometConfig {
    fn default() -> Self {
        Self {
            binary: "cometbft".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `hpcd=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            minimum_gas_prices: "0.025uvirt".into(),
            index_events: crate::event_index::default_entries(),
            grpc: GrpcConfig::default(),
            cometbft: CometConfig::default(),
            log: LogConfig::default(),
            pruning: PruningConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

/// The validated form of [`AppConfig`].
#[derive(Clone, Debug)]
pub struct Settings {
    pub min_gas_prices: GasPrices,
    pub grpc: Option<SocketAddr>,
    pub cometbft_binary: String,
    pub log_json: bool,
    pub log_level: String,
    /// 0 = keep every height.
    pub keep_recent: u64,
    pub store_cache_bytes: usize,
    pub event_index: EventIndex,
}

impl AppConfig {
    pub fn validate(&self) -> anyhow::Result<Settings> {
        let min_gas_prices = self
            .minimum_gas_prices
            .parse::<GasPrices>()
            .map_err(|e| anyhow!("minimum-gas-prices: {e}"))?;
        let grpc = if self.grpc.enable {
            Some(self.grpc.address.parse::<SocketAddr>().map_err(|e| {
                anyhow!(
                    "grpc.address: {:?} is not a host:port socket address ({e})",
                    self.grpc.address
                )
            })?)
        } else {
            None
        };
        if self.cometbft.binary.trim().is_empty() {
            bail!("cometbft.binary: must name the cometbft executable");
        }
        let log_json = match self.log.format.as_str() {
            "text" => false,
            "json" => true,
            other => bail!("log.format: {other:?} is not one of \"text\", \"json\""),
        };
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            anyhow!(
                "log.level: {:?} is not a valid filter ({e})",
                self.log.level
            )
        })?;
        if self.pruning.keep_recent == 1 {
            bail!("pruning.keep-recent: must be 0 (keep every height) or at least 2 (the latest height and the one before, which a restarting node may replay)");
        }
        let store_cache_bytes = match self.store.cache_mib {
            16..=65_536 => (self.store.cache_mib as usize) << 20,
            other => bail!("store.cache-mib: {other} is outside 16..=65536 (MiB)"),
        };
        let event_index = EventIndex::parse(&self.index_events).map_err(|e| anyhow!(e))?;
        Ok(Settings {
            event_index,
            keep_recent: self.pruning.keep_recent,
            store_cache_bytes,
            min_gas_prices,
            grpc,
            cometbft_binary: self.cometbft.binary.clone(),
            log_json,
            log_level: self.log.level.clone(),
        })
    }
}

/// Paths inside a node home.
#[derive(Clone, Debug)]
pub struct Home(pub PathBuf);

impl Home {
    pub fn config_dir(&self) -> PathBuf {
        self.0.join("config")
    }
    pub fn app_toml(&self) -> PathBuf {
        self.config_dir().join("app.toml")
    }
    pub fn comet_toml(&self) -> PathBuf {
        self.config_dir().join("config.toml")
    }
    pub fn genesis(&self) -> PathBuf {
        self.config_dir().join("genesis.json")
    }
    pub fn state_db(&self) -> PathBuf {
        self.0.join("data").join("application.redb")
    }

    pub fn load_app_config(&self) -> anyhow::Result<(AppConfig, Settings)> {
        let path = self.app_toml();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {} (run `hpcd init` first)", path.display()))?;
        let config: AppConfig =
            toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let settings = config
            .validate()
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        Ok((config, settings))
    }

    /// CometBFT's `proxy_app` and `rpc.laddr` from `config/config.toml`, the single source
    /// of both addresses.
    pub fn comet_addresses(&self) -> anyhow::Result<CometAddresses> {
        let path = self.comet_toml();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let doc: toml::Value =
            toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let proxy_app = doc
            .get("proxy_app")
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow!("{}: proxy_app is missing", path.display()))?;
        let rpc = doc
            .get("rpc")
            .and_then(|r| r.get("laddr"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| anyhow!("{}: rpc.laddr is missing", path.display()))?;
        let abci_listen = match proxy_app.strip_prefix("unix://") {
            Some(socket) if !socket.is_empty() => {
                AbciListen::Unix(unix_socket_path(socket, proxy_app, &path)?)
            }
            _ => AbciListen::Tcp(strip_tcp(proxy_app, "proxy_app", &path)?),
        };
        Ok(CometAddresses {
            abci_listen,
            // A wildcard listen address is not a dialable one: talk to ourselves on loopback.
            rpc_url: format!(
                "http://{}",
                strip_tcp(rpc, "rpc.laddr", &path)?.replace("0.0.0.0", "127.0.0.1")
            ),
        })
    }
}

/// Where hpcd listens for CometBFT's ABCI connections (`proxy_app`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbciListen {
    /// `tcp://host:port`: for a CometBFT on another host or container.
    Tcp(String),
    /// `unix:///path`: the default for a local CometBFT: no TCP stack between two
    /// processes on one host (docs/benchmarks.md).
    Unix(PathBuf),
}

impl std::fmt::Display for AbciListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AbciListen::Tcp(addr) => write!(f, "tcp://{addr}"),
            AbciListen::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

pub struct CometAddresses {
    /// Where hpcd listens for CometBFT's ABCI connections.
    pub abci_listen: AbciListen,
    /// CometBFT's RPC as an http:// URL.
    pub rpc_url: String,
}

/// The longest unix socket path the kernel accepts: `sockaddr_un.sun_path` is 108 bytes on
/// Linux, including the terminating NUL.
pub const MAX_UNIX_SOCKET_PATH: usize = 107;

/// The socket path of a `proxy_app = "unix://<socket>"`: absolute (a relative one would
/// resolve against hpcd's working directory, which a separately started CometBFT need not
/// share) and short enough to bind.
fn unix_socket_path(socket: &str, proxy_app: &str, path: &Path) -> anyhow::Result<PathBuf> {
    let socket = PathBuf::from(socket);
    if !socket.is_absolute() {
        bail!(
            "{}: proxy_app must be a unix:///absolute/path (or tcp://host:port) address, got {proxy_app:?}; \
             a relative path would resolve against hpcd's working directory, not the home",
            path.display()
        );
    }
    let len = socket.as_os_str().len();
    if len > MAX_UNIX_SOCKET_PATH {
        bail!(
            "{}: proxy_app {proxy_app:?} is too long for a unix socket: its path is {len} bytes, \
             the limit is {MAX_UNIX_SOCKET_PATH}; use a shorter path or a tcp://host:port address",
            path.display()
        );
    }
    Ok(socket)
}

fn strip_tcp(addr: &str, field: &str, path: &Path) -> anyhow::Result<String> {
    addr.strip_prefix("tcp://")
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow!(
                "{}: {field} must be a tcp://host:port{} address, got {addr:?}",
                path.display(),
                if field == "proxy_app" {
                    " or unix:///path"
                } else {
                    ""
                }
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A home whose config.toml has `proxy_app` and an rpc.laddr.
    fn home_with_proxy_app(proxy_app: &str) -> (tempfile::TempDir, Home) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home(dir.path().to_path_buf());
        std::fs::create_dir_all(home.config_dir()).unwrap();
        std::fs::write(
            home.comet_toml(),
            format!("proxy_app = \"{proxy_app}\"\n[rpc]\nladdr = \"tcp://0.0.0.0:26657\"\n"),
        )
        .unwrap();
        (dir, home)
    }

    #[test]
    fn proxy_app_is_a_unix_socket_or_a_tcp_address() {
        let (_d, home) = home_with_proxy_app("unix:///var/lib/hpcd/data/abci.sock");
        let comet = home.comet_addresses().unwrap();
        assert_eq!(
            comet.abci_listen,
            AbciListen::Unix(PathBuf::from("/var/lib/hpcd/data/abci.sock"))
        );
        assert_eq!(comet.rpc_url, "http://127.0.0.1:26657");
        let (_d, home) = home_with_proxy_app("tcp://127.0.0.1:26658");
        assert_eq!(
            home.comet_addresses().unwrap().abci_listen,
            AbciListen::Tcp("127.0.0.1:26658".into())
        );
        for bad in ["127.0.0.1:26658", "unix://", "grpc://x:1"] {
            let (_d, home) = home_with_proxy_app(bad);
            let err = home.comet_addresses().err().expect(bad).to_string();
            assert!(
                err.contains("proxy_app must be a tcp://host:port or unix:///path address"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn proxy_app_unix_path_must_be_absolute_and_short_enough() {
        let (_d, home) = home_with_proxy_app("unix://data/abci.sock");
        let err = home.comet_addresses().err().unwrap().to_string();
        assert!(
            err.contains("proxy_app must be a unix:///absolute/path")
                && err.contains("\"unix://data/abci.sock\""),
            "{err}"
        );
        assert!(
            err.starts_with(&home.comet_toml().display().to_string()),
            "{err}"
        );

        // 107 bytes is the most a socket path may have; one more is refused.
        let longest = format!("/{}", "s".repeat(MAX_UNIX_SOCKET_PATH - 1));
        let (_d, home) = home_with_proxy_app(&format!("unix://{longest}"));
        assert_eq!(
            home.comet_addresses().unwrap().abci_listen,
            AbciListen::Unix(PathBuf::from(&longest))
        );
        let (_d, home) = home_with_proxy_app(&format!("unix://{longest}s"));
        let err = home.comet_addresses().err().unwrap().to_string();
        assert!(
            err.contains("proxy_app \"unix:///")
                && err.contains(
                    "is too long for a unix socket: its path is 108 bytes, the limit is 107"
                )
                && err.contains("tcp://host:port"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_name_their_field() {
        let cases = [
            (
                AppConfig {
                    minimum_gas_prices: "cheap".into(),
                    ..Default::default()
                },
                "minimum-gas-prices",
            ),
            (
                AppConfig {
                    grpc: GrpcConfig {
                        enable: true,
                        address: "nowhere".into(),
                    },
                    ..Default::default()
                },
                "grpc.address",
            ),
            (
                AppConfig {
                    log: LogConfig {
                        format: "xml".into(),
                        level: "info".into(),
                    },
                    ..Default::default()
                },
                "log.format",
            ),
            (
                AppConfig {
                    cometbft: CometConfig { binary: " ".into() },
                    ..Default::default()
                },
                "cometbft.binary",
            ),
            (
                AppConfig {
                    pruning: PruningConfig { keep_recent: 1 },
                    ..Default::default()
                },
                "pruning.keep-recent",
            ),
            (
                AppConfig {
                    store: StoreConfig { cache_mib: 1 },
                    ..Default::default()
                },
                "store.cache-mib",
            ),
            (
                AppConfig {
                    index_events: vec!["message.sender".into(), "message sender".into()],
                    ..Default::default()
                },
                "index-events[1]",
            ),
        ];
        for (config, field) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.starts_with(field), "{err}");
        }
        assert!(AppConfig::default().validate().is_ok());
        // A home written before pruning existed keeps working, with the default.
        let older: AppConfig = toml::from_str("minimum-gas-prices = \"\"\n").unwrap();
        let settings = older.validate().unwrap();
        assert_eq!(settings.keep_recent, DEFAULT_KEEP_RECENT);
        assert_eq!(settings.store_cache_bytes, hpc_store::DEFAULT_CACHE_BYTES);
        // ... and indexes every event attribute, as before index-events existed.
        assert_eq!(settings.event_index, EventIndex::default());
        let unknown =
            toml::from_str::<AppConfig>("minimum-gas-prices = \"\"\nmin-gas = 1\n").unwrap_err();
        assert!(unknown.to_string().contains("min-gas"), "{unknown}");
    }
}
