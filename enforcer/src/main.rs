//! `hpc-enforcer` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hpc_client::cli::OutputFormat;
use hpc_enforcer::admin::{AdminToken, DeadLetterList, Requeued};
use hpc_enforcer::Config;

/// Where `status` and `dead-letters` find the admin API unless told (admin.listen's
/// default).
const DEFAULT_ADMIN: &str = "127.0.0.1:8081";

/// Which admin API a command talks to.
#[derive(clap::Args)]
struct AdminArgs {
    /// The admin API address [default: admin.listen of --config, else 127.0.0.1:8081].
    #[arg(long)]
    admin: Option<String>,
    /// The enforcer's configuration file (for its admin.listen and admin.token_file).
    #[arg(long)]
    config: Option<PathBuf>,
}

impl AdminArgs {
    fn config(&self) -> anyhow::Result<Option<Config>> {
        let Some(file) = &self.config else {
            return Ok(None);
        };
        let config = Config::load(file).with_context(|| format!("--config {}", file.display()))?;
        Ok(Some(config))
    }

    /// The address, and the configuration when one was given.
    fn resolve(&self) -> anyhow::Result<(String, Option<Config>)> {
        let config = self.config()?;
        let admin = match (&self.admin, &config) {
            (Some(admin), _) => admin.clone(),
            (None, Some(c)) => c.admin.listen.clone(),
            (None, None) => DEFAULT_ADMIN.to_string(),
        };
        Ok((admin, config))
    }
}

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
        #[command(flatten)]
        target: AdminArgs,
    },
    /// List or requeue the outbox's dead letters (records and violations the chain
    /// refused for good) through a running enforcer's admin API.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLettersAction,
    },
}

#[derive(Subcommand)]
enum DeadLettersAction {
    /// One line per dead letter: kind, id, job, refusal code, attempts, log.
    List {
        #[command(flatten)]
        target: AdminArgs,
        /// `json` prints the admin API's answer as is.
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Put every dead letter back in the queue (once the cause is fixed on chain); the
    /// enforcer sends them again at once. Needs the admin token: --token-file, or the
    /// admin.token_file of --config.
    Requeue {
        #[command(flatten)]
        target: AdminArgs,
        /// The admin API token file [default: admin.token_file of --config].
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Errors are one-line messages for operators. A backtrace captured in every library
    // error (anyhow; tendermint-rpc's eyre, whose Display prints it) filled /status and,
    // once printed, held ~200 MB of symbol tables. RUST_BACKTRACE keeps panic backtraces;
    // RUST_LIB_BACKTRACE=1 brings error backtraces back. Set before any thread starts.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
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
            hpc_client::cli::init_logging(
                config.log.format == hpc_enforcer::config::LogFormat::Json,
                &config.log.level,
            );
            // Before anything starts: a token file open to others stops the daemon here
            // (a disabled enforcer serves nothing and creates nothing).
            if config.hpc.enabled {
                if let Err(e) = AdminToken::load_or_create(&config.admin_token_file()) {
                    eprintln!("Error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(hpc_enforcer::daemon::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status { target } => report(
            admin_get(&target, "/status").and_then(|v| Ok(serde_json::to_string_pretty(&v)?)),
        ),
        Command::DeadLetters {
            action: DeadLettersAction::List { target, output },
        } => report(
            admin_get(&target, "/outbox/dead-letters").and_then(|v| match output {
                OutputFormat::Json => Ok(serde_json::to_string_pretty(&v)?),
                OutputFormat::Text => render_dead_letters(v),
            }),
        ),
        Command::DeadLetters {
            action: DeadLettersAction::Requeue { target, token_file },
        } => report(requeue(&target, token_file)),
    }
}

fn admin_get(target: &AdminArgs, path: &str) -> anyhow::Result<serde_json::Value> {
    let (admin, _) = target.resolve()?;
    admin_request(&admin, "GET", path, None)
}

/// `dead-letters requeue`: POST with the token of `--token-file` or the config's.
fn requeue(target: &AdminArgs, token_file: Option<PathBuf>) -> anyhow::Result<String> {
    let (admin, config) = target.resolve()?;
    let token_file = token_file
        .or_else(|| config.map(|c| c.admin_token_file()))
        .context("the admin token is needed: pass --config FILE (its admin.token_file) or --token-file FILE")?;
    let token = AdminToken::read(&token_file)?;
    let v = admin_request(&admin, "POST", "/outbox/dead-letters/requeue", Some(&token))?;
    let r: Requeued = serde_json::from_value(v).context("unexpected answer")?;
    Ok(format!("requeued {} dead letter(s)", r.requeued))
}

/// Prints a command's output, or its error chain (exit code 1).
fn report(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `dead-letters list` text output: one line per dead letter, oldest first.
fn render_dead_letters(body: serde_json::Value) -> anyhow::Result<String> {
    let list: DeadLetterList = serde_json::from_value(body).context("unexpected answer")?;
    if list.dead_letters.is_empty() {
        return Ok("no dead letters".to_string());
    }
    let lines: Vec<String> = list
        .dead_letters
        .iter()
        .map(|d| {
            format!(
                "{} {} job={} code={}/{} attempts={} log={}",
                d.kind,
                d.id,
                d.job_id,
                d.codespace,
                d.code,
                d.attempts,
                // Chain logs may span lines; keep one line per dead letter.
                d.log.replace(['\r', '\n'], " "),
            )
        })
        .collect();
    Ok(lines.join("\n"))
}

/// How long the CLI waits for the admin API (connect, request and answer).
const ADMIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `method path` on the admin API (a blocking call for the CLI's one request).
fn admin_request(
    admin: &str,
    method: &str,
    path: &str,
    token: Option<&AdminToken>,
) -> anyhow::Result<serde_json::Value> {
    let request = request_text(admin, method, path, token);
    let runtime = tokio::runtime::Runtime::new().context("tokio runtime")?;
    let raw = runtime
        .block_on(async {
            tokio::time::timeout(ADMIN_TIMEOUT, http_exchange(admin, &request))
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {} s", ADMIN_TIMEOUT.as_secs()),
                    ))
                })
        })
        .with_context(|| {
            format!(
                "cannot reach the admin API at {admin} (is the enforcer running? see admin.listen)"
            )
        })?;
    parse_response(&raw).with_context(|| format!("{method} {path} on {admin}"))
}

/// An HTTP/1.1 request: a POST carries the token and an empty JSON object.
fn request_text(admin: &str, method: &str, path: &str, token: Option<&AdminToken>) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {}\r\n", token.as_str()));
    }
    let body = if method == "GET" { "" } else { "{}" };
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    format!("{head}Content-Length: {}\r\n\r\n{body}", body.len())
}

/// One request over a plain HTTP/1.1 connection (no client library needed); the raw
/// response, read until the server closes.
async fn http_exchange(admin: &str, request: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(admin).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// The JSON body of a 2xx response; otherwise an error carrying the status and the
/// body's `error` (or the body itself when it has none).
fn parse_response(raw: &str) -> anyhow::Result<serde_json::Value> {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .context("malformed HTTP response (no header end)")?;
    let status_line = head.lines().next().unwrap_or_default();
    // "HTTP/1.1 404 Not Found": version, code, reason.
    let mut parts = status_line.splitn(3, ' ');
    let status: u16 = parts
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("malformed HTTP status line: {status_line:?}"))?;
    let value = serde_json::from_str::<serde_json::Value>(body);
    if !(200..300).contains(&status) {
        let error = match &value {
            Ok(v) => v["error"].as_str().map(str::to_string),
            Err(_) => None,
        };
        let detail = error
            .or_else(|| Some(body.trim().to_string()).filter(|b| !b.is_empty()))
            .unwrap_or_else(|| parts.next().unwrap_or_default().to_string());
        anyhow::bail!("HTTP {status}: {detail}");
    }
    value.context("the response body is not JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn admin_cli_parses_dead_letters_commands() {
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["hpc-enforcer", "dead-letters", "list", "-o", "json"]).unwrap();
        let Command::DeadLetters {
            action: DeadLettersAction::List { target, output },
        } = cli.command
        else {
            panic!("not dead-letters list");
        };
        assert_eq!(
            (target.resolve().unwrap().0.as_str(), output),
            (DEFAULT_ADMIN, OutputFormat::Json)
        );
        let cli = Cli::try_parse_from([
            "hpc-enforcer",
            "dead-letters",
            "requeue",
            "--admin",
            "127.0.0.1:9",
            "--token-file",
            "/run/token",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::DeadLetters { action: DeadLettersAction::Requeue { target, token_file } }
                if target.admin.as_deref() == Some("127.0.0.1:9")
                    && token_file == Some(PathBuf::from("/run/token"))
        ));
        assert!(
            Cli::try_parse_from(["hpc-enforcer", "dead-letters", "list", "-o", "yaml"]).is_err()
        );
    }

    #[test]
    fn admin_cli_posts_carry_the_token_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let token = AdminToken::load_or_create(&dir.path().join("admin.token")).unwrap();
        let post = request_text("127.0.0.1:8081", "POST", "/x", Some(&token));
        assert!(post.starts_with("POST /x HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n"));
        let bearer = format!("\r\nAuthorization: Bearer {}\r\n", token.as_str());
        assert!(post.contains(&bearer), "{post}");
        assert!(post.contains("\r\nContent-Type: application/json\r\n"));
        assert!(post.ends_with("\r\nContent-Length: 2\r\n\r\n{}"), "{post}");

        let get = request_text("127.0.0.1:8081", "GET", "/status", None);
        assert!(!get.contains("Authorization") && !get.contains("Content-Type"));
        assert!(get.ends_with("\r\nContent-Length: 0\r\n\r\n"), "{get}");
    }

    #[test]
    fn admin_dead_letters_text_rendering() {
        let empty = serde_json::json!({"count": 0, "dead_letters": []});
        assert_eq!(render_dead_letters(empty).unwrap(), "no dead letters");

        let body = serde_json::json!({"count": 2, "dead_letters": [
            {"seq": 3, "kind": "audit", "id": "rec-1", "job_id": "job-7", "attempts": 2,
             "code": 5, "codespace": "hpc", "log": "job not found:\nrec-1",
             "enqueued_at": 100, "dead_at": 160},
            {"seq": 4, "kind": "violation", "id": "vio-1", "job_id": "job-8", "attempts": 1,
             "code": 7, "codespace": "hpc", "log": "bad", "enqueued_at": 101, "dead_at": 161},
        ]});
        let text = render_dead_letters(body).unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "audit rec-1 job=job-7 code=hpc/5 attempts=2 log=job not found: rec-1",
                "violation vio-1 job=job-8 code=hpc/7 attempts=1 log=bad",
            ]
        );
        // Not the dead-letter schema: an error, not an empty list.
        assert!(render_dead_letters(serde_json::json!({"requeued": 1})).is_err());
    }

    #[test]
    fn admin_response_parsing() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"requeued\":2}";
        assert_eq!(parse_response(ok).unwrap()["requeued"], 2);

        let failed =
            "HTTP/1.1 500 Internal Server Error\r\n\r\n{\"error\":\"outbox storage: disk full\"}";
        let e = parse_response(failed).unwrap_err().to_string();
        assert_eq!(e, "HTTP 500: outbox storage: disk full");

        // Non-JSON error bodies (axum's own 404/405) are shown as they are.
        let e = parse_response("HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "HTTP 405: Method Not Allowed");
        let e = parse_response("HTTP/1.1 404 Not Found\r\n\r\nno route")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "HTTP 404: no route");

        assert!(parse_response("HTTP/1.1 200 OK\r\n\r\nnot json").is_err());
        assert!(parse_response("garbage").is_err());
    }
}
