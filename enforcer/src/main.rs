//! `hpc-enforcer` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hpc_enforcer::Config;

/// Provider routing enforcer for x/hpc.
#[derive(Parser)]
#[command(name = "hpc-enforcer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and validate a configuration file; print a summary, or the offending field
    /// (exit code 2).
    ValidateConfig {
        /// The YAML configuration file.
        file: PathBuf,
    },
    /// Run the enforcer daemon (refuses to start on an invalid config, naming the field).
    Start {
        /// The YAML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Show a running enforcer's status (head height seen, outbox depth, last errors)
    /// from its admin API.
    Status {
        /// The admin API address (admin.listen of its config).
        #[arg(long, default_value = "127.0.0.1:8081")]
        admin: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::ValidateConfig { file } => match Config::load(&file) {
            Ok(config) => {
                println!("config OK: {}", file.display());
                println!("{}", config.summary());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("invalid config {}: {e}", file.display());
                ExitCode::from(2)
            }
        },
        Command::Start { config } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("invalid config {}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            init_logging(&config);
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(hpc_enforcer::daemon::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status { admin } => {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(fetch_status(&admin)) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("Error: cannot read the status from {admin}: {e} (is the enforcer running? see admin.listen)");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        hpc_enforcer::config::LogFormat::Json => builder.json().init(),
        hpc_enforcer::config::LogFormat::Text => builder.init(),
    }
}

/// `GET /status` over a plain HTTP/1.1 connection (no client library needed).
async fn fetch_status(admin: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(admin).await?;
    stream
        .write_all(
            format!("GET /status HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(body).map_err(std::io::Error::other)?;
    serde_json::to_string_pretty(&value).map_err(std::io::Error::other)
}
