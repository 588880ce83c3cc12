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
    /// Run the enforcer daemon. NOT IMPLEMENTED YET in this build (exits with code 2).
    Start,
    /// Show the status of a running enforcer. NOT IMPLEMENTED YET in this build (exits
    /// with code 2).
    Status,
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
        Command::Start => not_implemented("start"),
        Command::Status => not_implemented("status"),
    }
}

fn not_implemented(what: &str) -> ExitCode {
    eprintln!("hpc-enforcer {what}: not implemented yet (this build only has validate-config)");
    ExitCode::from(2)
}
