//! Real nodes for end-to-end tests, shared by hpcd's and the enforcer's tests: `hpcd init`
//! in a temp home, keys in the test keyring, `hpcd start` supervising the real `cometbft`
//! binary, all on free loopback ports.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tendermint_rpc::{Client, HttpClient};

pub mod enforcer;

/// The standard Cosmos test mnemonic (public, test only).
pub const ALICE_MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
/// Fast blocks for tests.
const TEST_TIMEOUT_COMMIT: &str = "300ms";

pub const ALICE_ADDRESS: &str = "virtengine19rl4cm2hmr8afy4kldpxz3fka4jguq0a6mvv5p";

/// A workspace binary, built by `cargo test --workspace` next to the test executables
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`), or beside the running
/// binary (a bench binary in `target/<profile>/`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let exe_dir = exe.parent().expect("executable directory");
    let profile_dir = if exe_dir.ends_with("deps") {
        exe_dir.parent().expect("target/<profile>/deps")
    } else {
        exe_dir
    };
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo test --workspace builds every binary)",
        path.display()
    );
    path
}

pub fn hpcd_bin() -> PathBuf {
    workspace_bin("hpcd")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The pinned cometbft, installed by scripts/install-cometbft.sh (run by the test command).
pub fn cometbft_bin() -> PathBuf {
    if let Ok(path) = std::env::var("COMETBFT_BIN") {
        return PathBuf::from(path);
    }
    let path = repo_root().join(".bin/cometbft");
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-cometbft.sh (scripts/test.sh does) or set COMETBFT_BIN",
        path.display()
    );
    path
}

/// Runs `cmd` to completion and returns its stdout; panics naming the command, with its
/// stdout and stderr, when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A base port with base..base+5 all free on 127.0.0.1.
pub fn free_base_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..200 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(Instant::now().elapsed().as_nanos());
        let base = 20_000 + (h.finish() % 40_000) as u16 / 10 * 10;
        if (base..base + 6).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range found");
}

pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub base_port: u16,
    pub chain_id: String,
    child: Option<Child>,
}

impl TestNode {
    /// `hpcd init` with fast blocks and, in the test keyring: alice (known mnemonic), bob
    /// (unfunded), provider1, provider2 and authority (the x/hpc authority), all but bob
    /// funded at genesis.
    pub fn init(chain_id: &str) -> Self {
        Self::init_with_timeout_commit(chain_id, TEST_TIMEOUT_COMMIT)
    }

    /// [`Self::init`] with another `consensus.timeout_commit` (benchmarks use the one
    /// `hpcd init` writes by default).
    pub fn init_with_timeout_commit(chain_id: &str, timeout_commit: &str) -> Self {
        let node = Self::init_home(chain_id, "e2e", timeout_commit);
        node.cli_stdin_ok(
            &[
                "keys",
                "add",
                "alice",
                "--recover",
                "--keyring-backend",
                "test",
            ],
            ALICE_MNEMONIC,
        );
        node.cli_ok(&[
            "genesis",
            "add-account",
            "alice",
            "1000000000uvirt",
            "--keyring-backend",
            "test",
        ]);
        node.cli_ok(&["keys", "add", "bob", "--keyring-backend", "test"]);
        for name in ["provider1", "provider2", "authority"] {
            node.cli_ok(&["keys", "add", name, "--keyring-backend", "test"]);
            node.cli_ok(&[
                "genesis",
                "add-account",
                name,
                "1000000000uvirt",
                "--keyring-backend",
                "test",
            ]);
        }
        node.cli_ok(&[
            "genesis",
            "set-hpc-authority",
            "authority",
            "--keyring-backend",
            "test",
        ]);
        node
    }

    /// `hpcd init` only (fast blocks, free base port): a home with no keys and the
    /// default genesis.
    fn init_home(chain_id: &str, moniker: &str, timeout_commit: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("node");
        let node = Self {
            base_port: free_base_port(),
            home,
            dir,
            chain_id: chain_id.to_string(),
            child: None,
        };
        node.cli_ok(&[
            "init",
            moniker,
            "--chain-id",
            chain_id,
            "--base-port",
            &node.base_port.to_string(),
            "--timeout-commit",
            timeout_commit,
            "--cometbft-bin",
            cometbft_bin().to_str().unwrap(),
        ]);
        node
    }

    /// A full node (not a validator) of this node's chain: `hpcd init` in its own temp
    /// home on its own free base port, this node's `config/genesis.json` copied in (its own
    /// validator key is not in it, so it only follows), and each node listed in the
    /// other's `p2p.persistent_peers`, so whichever of the two restarts re-dials the other
    /// at once (CometBFT keeps re-dialing a lost persistent peer every ~5 s for a while).
    /// The change to this node's config takes effect at its next start; the full node
    /// dials this one when it starts. It has no keys: sign with this node's keyring.
    pub fn init_full_node(&self) -> TestNode {
        let full = Self::init_home(&self.chain_id, "e2e-full", TEST_TIMEOUT_COMMIT);
        std::fs::copy(
            self.home.join("config/genesis.json"),
            full.home.join("config/genesis.json"),
        )
        .unwrap();
        full.add_persistent_peer(self);
        self.add_persistent_peer(&full);
        full
    }

    /// CometBFT's node id (`cometbft show-node-id`, derived from `config/node_key.json`).
    pub fn node_id(&self) -> String {
        let id = run_ok(
            Command::new(cometbft_bin())
                .args(["show-node-id", "--home"])
                .arg(&self.home),
        )
        .trim()
        .to_string();
        assert_eq!(id.len(), 40, "unexpected node id {id:?}");
        id
    }

    /// This node's address for other nodes' `p2p.persistent_peers`: `<id>@127.0.0.1:<p2p>`.
    pub fn p2p_address(&self) -> String {
        format!("{}@127.0.0.1:{}", self.node_id(), self.base_port)
    }

    /// Adds `peer` to `p2p.persistent_peers` in this node's `config/config.toml` (read at
    /// the next start).
    pub fn add_persistent_peer(&self, peer: &TestNode) {
        let path = self.home.join("config/config.toml");
        let mut doc: toml_edit::DocumentMut =
            std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let current = doc["p2p"]["persistent_peers"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let address = peer.p2p_address();
        let mut peers: Vec<&str> = current.split(',').filter(|p| !p.is_empty()).collect();
        if !peers.contains(&address.as_str()) {
            peers.push(&address);
        }
        doc["p2p"]["persistent_peers"] = toml_edit::value(peers.join(","));
        std::fs::write(&path, doc.to_string()).unwrap();
    }

    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.base_port + 1)
    }

    pub fn grpc_addr(&self) -> String {
        format!("127.0.0.1:{}", self.base_port + 3)
    }

    /// A raw HTTP GET to the CometBFT RPC (no client library validates what is sent).
    pub fn rpc_get(&self, path_and_query: &str) -> String {
        use std::io::{Read, Write};
        let address = self.rpc_url().trim_start_matches("http://").to_string();
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path_and_query} HTTP/1.0\r\nHost: {address}\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    pub fn rpc(&self) -> HttpClient {
        HttpClient::new(self.rpc_url().as_str()).unwrap()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("hpcd.log")
    }

    /// Runs `hpcd ARGS --home HOME`.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_stdin(args, "")
    }

    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> Output {
        // `query` and `verify` reach the node over the network and have no home.
        let home: &[&std::ffi::OsStr] = if matches!(args.first(), Some(&"query" | &"verify")) {
            &[]
        } else {
            &["--home".as_ref(), self.home.as_os_str()]
        };
        let mut child = Command::new(hpcd_bin())
            .args(args)
            .args(home)
            .env("HPCD_COMETBFT_BIN", cometbft_bin())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        self.cli_stdin_ok(args, "")
    }

    pub fn cli_stdin_ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.cli_stdin(args, stdin);
        assert!(
            out.status.success(),
            "hpcd {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `hpcd tx hpc ARGS --from FROM [EXTRA] --yes -o json` through this node's gRPC, signed
    /// with its test keyring; the raw output (callers decide what a failure means).
    pub fn hpc_tx_output(&self, from: &str, args: &[&str], extra: &[&str]) -> Output {
        let grpc = self.grpc_addr();
        let mut full = vec!["tx", "hpc"];
        full.extend_from_slice(args);
        full.extend_from_slice(&[
            "--from",
            from,
            "--keyring-backend",
            "test",
            "--grpc-addr",
            &grpc,
        ]);
        full.extend_from_slice(extra);
        full.extend_from_slice(&["--yes", "-o", "json"]);
        self.cli(&full)
    }

    /// Writes a job script `name` with `body` into this node's home; returns its path
    /// (for `submit-job --script`).
    pub fn write_script(&self, name: &str, body: &str) -> String {
        let path = self.home.join(name);
        std::fs::write(&path, body).unwrap();
        path.display().to_string()
    }

    /// `hpcd query hpc ARGS -o json` through this node's gRPC.
    pub fn hpc_query(&self, args: &[&str]) -> serde_json::Value {
        let grpc = self.grpc_addr();
        let mut full = vec!["query", "hpc"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--grpc-addr", &grpc, "-o", "json"]);
        serde_json::from_str(&self.cli_ok(&full)).unwrap()
    }

    pub fn key_address(&self, name: &str) -> String {
        let out = self.cli_ok(&[
            "keys",
            "show",
            name,
            "--keyring-backend",
            "test",
            "-o",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["address"].as_str().unwrap().to_string()
    }

    /// Starts `hpcd start` (which starts cometbft) and waits for block `min_height`.
    pub async fn start(&mut self, min_height: u64) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(hpcd_bin())
            .args(["start", "--home"])
            .arg(&self.home)
            .arg("--cometbft-bin")
            .arg(cometbft_bin())
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_for_height(min_height, Duration::from_secs(60))
            .await;
    }

    /// The process id of `hpcd start` while it runs (its child is cometbft).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The height the application has committed (CometBFT's block store can be one
    /// block ahead while the app is still committing).
    pub async fn height(&self) -> Option<u64> {
        let info = self.rpc().abci_info().await.ok()?;
        Some(info.last_block_height.value())
    }

    pub async fn wait_for_height(&self, height: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(h) = self.height().await {
                if h >= height {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "node did not reach height {height} within {timeout:?}\n--- log tail ---\n{}",
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until this node has committed at least the height `other` has committed
    /// now (a full node catching up with its validator).
    pub async fn wait_synced_with(&self, other: &TestNode, timeout: Duration) -> u64 {
        let target = other
            .height()
            .await
            .expect("the node to sync with answers abci_info");
        self.wait_for_height(target, timeout).await;
        target
    }

    /// Whether `hpcd start` was started by this handle and is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Graceful stop: SIGTERM to hpcd, which stops cometbft.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            #[allow(unsafe_code)] // signals a child process through libc
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "hpcd did not stop on SIGTERM\n{}",
                    self.log_tail(30)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// A crash: SIGKILL to hpcd (cometbft follows via its parent-death signal).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first `key` attribute of a `kind` event in a tx result printed with `-o json`.
pub fn event_attr<'a>(result: &'a serde_json::Value, kind: &str, key: &str) -> Option<&'a str> {
    result["events"]
        .as_array()?
        .iter()
        .filter(|e| e["type"] == kind)
        .flat_map(|e| e["attributes"].as_array().into_iter().flatten())
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"].as_str())
}

/// Block `height`'s header app hash (the state after block `height - 1`).
pub async fn header_app_hash(node: &TestNode, height: u64) -> tendermint::AppHash {
    node.rpc()
        .block(tendermint::block::Height::try_from(height).unwrap())
        .await
        .unwrap()
        .block
        .header
        .app_hash
}

/// Stops `node`, exports its state with `hpcd export`, and starts a fresh node (same
/// validator key, new data) from the exported genesis. Asserts that the new chain's first
/// block commits to exactly the exported app hash; returns the running new node.
pub async fn export_and_reimport(node: &mut TestNode) -> TestNode {
    node.stop();
    let exported_path = node.dir.path().join("exported.json");
    node.cli_ok(&[
        "export",
        "--output-document",
        exported_path.to_str().unwrap(),
    ]);
    let exported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&exported_path).unwrap()).unwrap();
    let exported_height: u64 = exported["initial_height"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap()
        - 1;
    node.start(exported_height + 1).await;
    let expected = header_app_hash(node, exported_height + 1).await;
    node.stop();

    let mut imported = TestNode::init(&node.chain_id);
    std::fs::copy(
        node.home.join("config/priv_validator_key.json"),
        imported.home.join("config/priv_validator_key.json"),
    )
    .unwrap();
    std::fs::copy(&exported_path, imported.home.join("config/genesis.json")).unwrap();
    imported.start(exported_height + 1).await;
    assert_eq!(
        header_app_hash(&imported, exported_height + 1).await,
        expected,
        "re-imported genesis has a different app hash"
    );
    imported
}
