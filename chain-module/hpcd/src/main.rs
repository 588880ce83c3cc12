//! `hpcd`: the node daemon and operator CLI of the VirtEngine HPC routing chain.

mod abci;
mod abci_server;
mod config;
mod event_index;
mod export;
mod genesis;
mod grpc;
mod init;
mod start;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand};
use hpc_client::cli::{ConnectionArgs, KeySource, QueryCommand, TxArgs, TxCommand, VerifyArgs};
use hpc_client::keys::{self, Backend, KeysCommand, KeysCommonArgs, KeysContext};
use hpc_primitives::{Address, Coins};

use crate::config::Home;

#[derive(Parser)]
#[command(
    name = "hpcd",
    version,
    about = "VirtEngine HPC routing chain: node daemon and CLI",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Debug)]
struct HomeArg {
    /// Node home directory (config/, data/, keyring-*/).
    #[arg(long, global = true, env = "HPCD_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
}

impl HomeArg {
    fn home(&self) -> Home {
        Home(self.home.clone().unwrap_or_else(keys::cli::default_home))
    }
}

#[derive(Args, Clone, Debug)]
struct KeyringArgs {
    /// Keyring backend: file (encrypted) or test (INSECURE, dev only).
    #[arg(long, value_enum, default_value_t = Backend::File, env = "HPCD_KEYRING_BACKEND", global = true)]
    keyring_backend: Backend,
}

// Parsed once per process: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Create a node home: CometBFT config, genesis and keys, and app.toml.
    Init {
        /// The node's name on the network.
        moniker: String,
        /// The chain id, e.g. virtengine-1.
        #[arg(long)]
        chain_id: String,
        /// Replace an existing genesis and configs (validator and node keys are kept).
        #[arg(long)]
        overwrite: bool,
        /// Derive all listen ports from this one (p2p +0, rpc +1, abci +2, grpc +3), on 127.0.0.1.
        #[arg(long)]
        base_port: Option<u16>,
        /// CometBFT timeout_commit: the pause after each block.
        #[arg(long, default_value = "1s")]
        timeout_commit: String,
        /// The cometbft binary used to create keys and config.
        #[arg(long, env = "HPCD_COMETBFT_BIN", default_value = "cometbft")]
        cometbft_bin: String,
        #[command(flatten)]
        home: HomeArg,
    },
    /// Run the node: ABCI and gRPC servers, supervising cometbft.
    Start {
        /// Serve ABCI only; CometBFT is run separately (pointing proxy_app at us).
        #[arg(long)]
        abci_only: bool,
        /// Override app.toml's cometbft.binary.
        #[arg(long, env = "HPCD_COMETBFT_BIN")]
        cometbft_bin: Option<String>,
        #[command(flatten)]
        home: HomeArg,
    },
    /// Edit the genesis file before the chain starts.
    #[command(subcommand)]
    Genesis(GenesisCommand),
    /// Write the state at a height as a genesis file that re-imports to the same app hash.
    Export {
        /// Height to export (default: the latest committed).
        #[arg(long)]
        height: Option<u64>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output_document: Option<PathBuf>,
        #[command(flatten)]
        home: HomeArg,
    },
    /// Manage keys.
    Keys {
        #[command(flatten)]
        common: KeysCommonArgs,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Sign and broadcast transactions.
    Tx {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        tx: TxArgs,
        #[command(flatten)]
        keyring: KeyringArgs,
        #[command(flatten)]
        home: HomeArg,
        #[command(subcommand)]
        command: TxCommand,
    },
    /// Check a job, decision, audit record or violation (or its absence) against a block
    /// you trust: a light client verifies the header, a Merkle proof the record.
    Verify {
        #[command(flatten)]
        conn: ConnectionArgs,
        #[command(flatten)]
        args: VerifyArgs,
    },
    /// Query the chain.
    #[command(alias = "q")]
    Query {
        #[command(flatten)]
        conn: ConnectionArgs,
        /// Read the state at this height (0 = the latest); nodes keep recent heights only.
        #[arg(long, global = true, default_value_t = 0)]
        height: u64,
        #[command(subcommand)]
        command: QueryCommand,
    },
}

#[derive(Subcommand)]
enum GenesisCommand {
    /// Fund an account at genesis: ADDR_OR_KEY is an address or a key name in the keyring.
    AddAccount {
        address_or_key: String,
        /// Coins, e.g. 1000000uvirt.
        amount: String,
        #[command(flatten)]
        keyring: KeyringArgs,
        #[command(flatten)]
        home: HomeArg,
    },
    /// Set the x/hpc authority (the only account that may update x/hpc params).
    SetHpcAuthority {
        address_or_key: String,
        #[command(flatten)]
        keyring: KeyringArgs,
        #[command(flatten)]
        home: HomeArg,
    },
}

fn keys_context(home: &Home, keyring: &KeyringArgs) -> KeysContext {
    KeysContext::new(&home.0, keyring.keyring_backend, keys::OutputFormat::Text)
}

fn resolve_address(
    home: &Home,
    keyring: &KeyringArgs,
    address_or_key: &str,
) -> anyhow::Result<Address> {
    if let Ok(address) = address_or_key.parse::<Address>() {
        return Ok(address);
    }
    let ring = keys_context(home, keyring).keyring();
    ring.address(address_or_key).map_err(|e| {
        anyhow!("ADDR_OR_KEY: {address_or_key:?} is neither a virtengine1... address nor a key in the {} keyring: {e}", keyring.keyring_backend.as_str())
    })
}

/// At most 2 glibc malloc arenas unless `MALLOC_ARENA_MAX` says otherwise. The default
/// (8 per core) let a node's RSS keep growing with freed memory held in per-thread
/// arenas: 408 MiB vs 251 MiB with 2 in the same 60-second routing load.
fn bound_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        const ARENAS: libc::c_int = 2;
        // SAFETY: mallopt(3) only sets an allocator tunable; called first thing in main,
        // before any thread exists.
        #[allow(unsafe_code)] // a libc call, see SAFETY
        let set = unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENAS) };
        if set != 1 {
            eprintln!("warning: could not limit malloc arenas to {ARENAS}");
        }
    }
}

fn main() -> std::process::ExitCode {
    bound_malloc_arenas();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `hpcd … | head`: the reader has what it wanted; end quietly, as Unix tools do.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    match cli.command {
        Command::Init {
            moniker,
            chain_id,
            overwrite,
            base_port,
            timeout_commit,
            cometbft_bin,
            home,
        } => {
            let home = home.home();
            init::init(
                &home,
                &init::InitOptions {
                    moniker: &moniker,
                    chain_id: &chain_id,
                    overwrite,
                    base_port,
                    timeout_commit: &timeout_commit,
                    cometbft_binary: &cometbft_bin,
                },
            )?;
            writeln!(
                out,
                "initialized node {moniker:?} for chain {chain_id} in {}",
                home.0.display()
            )?;
            writeln!(out, "next: hpcd keys add <name> --home {0}; hpcd genesis add-account <name> 1000000000uvirt --home {0}; hpcd start --home {0}", home.0.display())?;
        }
        Command::Start {
            abci_only,
            cometbft_bin,
            home,
        } => {
            let home = home.home();
            let (_, settings) = home.load_app_config()?;
            hpc_client::cli::init_logging(settings.log_json, &settings.log_level);
            runtime.block_on(start::start(
                &home,
                &settings,
                start::StartOptions {
                    abci_only,
                    cometbft_binary: cometbft_bin,
                },
            ))?;
        }
        Command::Genesis(GenesisCommand::AddAccount {
            address_or_key,
            amount,
            keyring,
            home,
        }) => {
            let home = home.home();
            let address = resolve_address(&home, &keyring, &address_or_key)?;
            let coins: Coins = amount.parse().map_err(|e| anyhow!("AMOUNT: {e}"))?;
            let mut file = genesis::GenesisFile::load(&home.genesis())?;
            let mut state = file.app_state()?;
            genesis::add_account(&mut state, address, &coins)?;
            file.set_app_state(&state)?;
            file.save(&home.genesis())?;
            writeln!(
                out,
                "added {coins} to {address} in {}",
                home.genesis().display()
            )?;
        }
        Command::Genesis(GenesisCommand::SetHpcAuthority {
            address_or_key,
            keyring,
            home,
        }) => {
            let home = home.home();
            let address = resolve_address(&home, &keyring, &address_or_key)?;
            let mut file = genesis::GenesisFile::load(&home.genesis())?;
            let mut state = file.app_state()?;
            state.hpc.authority = address.to_string();
            file.set_app_state(&state)?;
            file.save(&home.genesis())?;
            writeln!(out, "x/hpc authority set to {address}")?;
        }
        Command::Export {
            height,
            output_document,
            home,
        } => {
            let exported = export::export(&home.home(), height)?;
            let text = serde_json::to_string_pretty(&exported.genesis)? + "\n";
            match output_document {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "exported height {} (app hash {}) to {}",
                        exported.height,
                        hex::encode_upper(exported.app_hash),
                        path.display()
                    );
                }
                None => out.write_all(text.as_bytes())?,
            }
        }
        Command::Keys { common, command } => {
            keys::run(command, &common.context(), &mut out, &mut input)?;
        }
        Command::Tx {
            conn,
            tx,
            keyring,
            home,
            command,
        } => {
            let ring = keys_context(&home.home(), &keyring).keyring();
            runtime.block_on(hpc_client::cli::run_tx(
                command,
                &tx,
                &conn,
                &ring as &dyn KeySource,
                &mut out,
                &mut input,
            ))?;
        }
        Command::Query {
            conn,
            height,
            command,
        } => {
            runtime.block_on(hpc_client::cli::run_query(command, &conn, height, &mut out))?;
        }
        Command::Verify { conn, args } => {
            runtime.block_on(hpc_client::cli::run_verify(args, &conn, &mut out))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand, at every depth, says what it does in `--help`.
    #[test]
    fn every_subcommand_has_help_text() {
        fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    out.push(path.clone());
                }
                undocumented(sub, &path, out);
            }
        }
        let mut missing = Vec::new();
        undocumented(&super::Cli::command(), "hpcd", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
