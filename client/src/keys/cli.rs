//! The `keys` subcommands (clap derive), run against a [`KeysContext`] with injectable
//! output and input so that `hpcd keys …` and tests share one code path.
//!
//! Wiring into a binary:
//! ```no_run
//! use clap::Parser;
//! use hpc_client::keys::cli::{run, KeysArgs};
//! let args = KeysArgs::parse_from(["keys", "--keyring-backend", "test", "list"]);
//! let ctx = args.common.context();
//! let stdin = std::io::stdin();
//! run(args.command, &ctx, &mut std::io::stdout(), &mut stdin.lock())?;
//! # Ok::<(), hpc_client::keys::KeysError>(())
//! ```

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use zeroize::Zeroizing;

use super::derive::HdPath;
use super::error::{KeysError, Result};
use super::keyring::{AddOptions, Backend, KeyInfo, Keyring, ScryptParams};
use super::passphrase::{EnvOrPrompt, PassphraseProvider, PASSPHRASE_ENV};

/// The home directory when `--home` is not given: `$HOME/.hpcd`.
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".hpcd")
}

/// Output format of the `keys` commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Flags common to all `keys` subcommands.
#[derive(Args, Clone, Debug)]
pub struct KeysCommonArgs {
    /// Keyring backend: "file" (encrypted with a passphrase from $HPCD_KEYRING_PASSPHRASE or
    /// a prompt) or "test" (INSECURE plain-text keys, for dev and CI only).
    #[arg(long, value_enum, default_value_t = Backend::File, env = "HPCD_KEYRING_BACKEND", global = true)]
    pub keyring_backend: Backend,
    /// Node home directory holding keyring-file/ and keyring-test/ [default: $HOME/.hpcd].
    #[arg(long, value_name = "DIR", global = true, env = "HPCD_HOME")]
    pub home: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text, global = true)]
    pub output: OutputFormat,
}

impl KeysCommonArgs {
    /// The context for [`run`]: passphrases from `HPCD_KEYRING_PASSPHRASE` or a prompt.
    pub fn context(&self) -> KeysContext {
        KeysContext::new(
            self.home.clone().unwrap_or_else(default_home),
            self.keyring_backend,
            self.output,
        )
    }
}

/// `keys [common flags] <subcommand>`: usable as a top-level parser or as the payload of a
/// subcommand of another binary.
#[derive(Parser, Debug)]
#[command(name = "keys", about = "Manage the account keys of the keyring")]
pub struct KeysArgs {
    #[command(flatten)]
    pub common: KeysCommonArgs,
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The `keys` subcommands.
#[derive(Subcommand, Clone, Debug, PartialEq, Eq)]
pub enum KeysCommand {
    /// Add a key: generate a new 24-word mnemonic, or with --recover read one from stdin.
    Add {
        /// Key name: 1-64 characters of A-Z a-z 0-9 _ . -
        name: String,
        /// Recover the key from a mnemonic read from standard input (one line).
        #[arg(long)]
        recover: bool,
        /// Account number of the HD path m/44'/118'/ACCOUNT'/0/INDEX.
        #[arg(long, default_value_t = 0)]
        account: u32,
        /// Address index of the HD path m/44'/118'/ACCOUNT'/0/INDEX.
        #[arg(long, default_value_t = 0)]
        index: u32,
        /// Do not print the new mnemonic.
        #[arg(long)]
        no_backup: bool,
        /// Replace an existing key of the same name.
        #[arg(long)]
        overwrite: bool,
        /// Read a BIP39 passphrase (the "25th word") from the next line of standard input.
        #[arg(long)]
        bip39_passphrase: bool,
    },
    /// List all keys, sorted by name.
    List,
    /// Show a key by name or address.
    Show {
        /// Key name or virtengine1... address.
        name_or_address: String,
        /// Print only the address.
        #[arg(long, short = 'a', conflicts_with = "pubkey")]
        address: bool,
        /// Print only the public key (compressed, hex).
        #[arg(long, short = 'p')]
        pubkey: bool,
    },
    /// Delete a key (asks for confirmation on standard input unless --yes).
    Delete {
        name: String,
        /// Delete without asking.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Print a private key in plain hex. Refused without --unsafe.
    Export {
        name: String,
        /// Acknowledge that the private key will be printed in plain text.
        #[arg(long = "unsafe")]
        unsafe_export: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Import a key from a file holding a mnemonic (or, with --private-key, 64 hex digits).
    Import {
        name: String,
        /// File with the mnemonic on its first line (or the hex private key).
        file: PathBuf,
        /// The file holds a hex private key as printed by `keys export --unsafe`.
        #[arg(long)]
        private_key: bool,
        /// Account number of the HD path (mnemonic only).
        #[arg(long, default_value_t = 0)]
        account: u32,
        /// Address index of the HD path (mnemonic only).
        #[arg(long, default_value_t = 0)]
        index: u32,
        /// Replace an existing key of the same name.
        #[arg(long)]
        overwrite: bool,
        /// Read a BIP39 passphrase from the first line of standard input (mnemonic only).
        #[arg(long)]
        bip39_passphrase: bool,
    },
}

/// What the `keys` commands run against.
#[derive(Clone)]
pub struct KeysContext {
    pub home: PathBuf,
    pub backend: Backend,
    pub output: OutputFormat,
    /// Passphrases of the file backend.
    pub passphrase: Arc<dyn PassphraseProvider>,
    /// scrypt cost for new key files (`None`: the default).
    pub kdf: Option<ScryptParams>,
    /// Print prompts ("Enter your mnemonic…") to standard error.
    pub prompts: bool,
}

impl std::fmt::Debug for KeysContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeysContext")
            .field("home", &self.home)
            .field("backend", &self.backend)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl KeysContext {
    /// A context whose passphrases come from `HPCD_KEYRING_PASSPHRASE` or a prompt, and
    /// which prints prompts when standard input is a terminal.
    pub fn new(home: impl Into<PathBuf>, backend: Backend, output: OutputFormat) -> Self {
        Self {
            home: home.into(),
            backend,
            output,
            passphrase: Arc::new(EnvOrPrompt::default()),
            kdf: None,
            prompts: std::io::stdin().is_terminal(),
        }
    }

    pub fn with_passphrase(mut self, provider: Arc<dyn PassphraseProvider>) -> Self {
        self.passphrase = provider;
        self
    }

    /// The keyring this context designates.
    pub fn keyring(&self) -> Keyring {
        let k = Keyring::new(&self.home, self.backend, self.passphrase.clone());
        match self.kdf {
            Some(p) => k.with_kdf_params(p),
            None => k,
        }
    }

    fn prompt(&self, text: &str) {
        if self.prompts {
            eprintln!("{text}");
        }
    }
}

const BACKUP_WARNING: &str = "**Important** write this mnemonic phrase in a safe place.\n\
It is the only way to recover your account if you ever forget your password.";

#[derive(Serialize)]
struct AddOutput<'a> {
    #[serde(flatten)]
    info: &'a KeyInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    mnemonic: Option<&'a str>,
}

/// Runs one `keys` subcommand. Results go to `out`; mnemonics, BIP39 passphrases and
/// confirmations are read from `input` (one line each).
pub fn run(
    cmd: KeysCommand,
    ctx: &KeysContext,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
) -> Result<()> {
    let keyring = ctx.keyring();
    match cmd {
        KeysCommand::Add {
            name,
            recover,
            account,
            index,
            no_backup,
            overwrite,
            bip39_passphrase,
        } => {
            let hd_path = hd_path(account, index)?;
            let mut opts = AddOptions {
                hd_path,
                bip39_passphrase: String::new(),
                overwrite,
            };
            // Fail on a bad name or an existing key before reading anything.
            if !overwrite && keyring.contains(&name)? {
                return Err(KeysError::KeyExists {
                    name,
                    backend: keyring.backend().to_string(),
                });
            }
            if recover {
                ctx.prompt("> Enter your bip39 mnemonic");
                let phrase = read_line(input)?.ok_or_else(|| {
                    KeysError::invalid_arg(
                        "--recover",
                        "no mnemonic on standard input; pipe the mnemonic as one line, e.g. `echo \"$MNEMONIC\" | hpcd keys add NAME --recover`",
                    )
                })?;
                if bip39_passphrase {
                    opts.bip39_passphrase = read_bip39_passphrase(ctx, input)?;
                }
                let info = keyring.recover(&name, &phrase, &opts)?;
                write_key_added(ctx, out, &info, None)
            } else {
                if bip39_passphrase {
                    opts.bip39_passphrase = read_bip39_passphrase(ctx, input)?;
                }
                let (info, mnemonic) = keyring.add(&name, &opts)?;
                let phrase = mnemonic.phrase();
                write_key_added(ctx, out, &info, (!no_backup).then_some(phrase.as_str()))
            }
        }
        KeysCommand::List => {
            let keys = keyring.list()?;
            match ctx.output {
                OutputFormat::Json => write_json(out, &keys),
                OutputFormat::Text if keys.is_empty() => writeln!(
                    out,
                    "No keys in the {} keyring at {}",
                    keyring.backend(),
                    keyring.dir().display()
                )
                .map_err(KeysError::Terminal),
                OutputFormat::Text => keys.iter().try_for_each(|k| write_info_text(out, k)),
            }
        }
        KeysCommand::Show {
            name_or_address,
            address,
            pubkey,
        } => {
            let info = keyring.show(&name_or_address)?;
            if address {
                writeln!(out, "{}", info.address).map_err(KeysError::Terminal)
            } else if pubkey {
                writeln!(out, "{}", info.pubkey).map_err(KeysError::Terminal)
            } else {
                match ctx.output {
                    OutputFormat::Json => write_json(out, &info),
                    OutputFormat::Text => write_info_text(out, &info),
                }
            }
        }
        KeysCommand::Delete { name, yes } => {
            let info = keyring.show(&name)?;
            if info.name != name {
                return Err(KeysError::invalid_arg(
                    "NAME",
                    format!(
                        "delete takes a key name; {name:?} is the address of key {:?}",
                        info.name
                    ),
                ));
            }
            if !yes {
                confirm(
                    ctx,
                    input,
                    &format!(
                        "Key {name:?} ({}) will be deleted. Continue? [y/N]",
                        info.address
                    ),
                    "pass --yes to delete without confirmation",
                )?;
            }
            let info = keyring.delete(&name)?;
            match ctx.output {
                OutputFormat::Json => write_json(
                    out,
                    &serde_json::json!({"name": info.name, "address": info.address, "deleted": true}),
                ),
                OutputFormat::Text => {
                    writeln!(out, "Key {:?} ({}) deleted", info.name, info.address)
                        .map_err(KeysError::Terminal)
                }
            }
        }
        KeysCommand::Export {
            name,
            unsafe_export,
            yes,
        } => {
            if !unsafe_export {
                return Err(KeysError::invalid_arg(
                    "--unsafe",
                    "export prints the private key in plain text, and anyone who sees it controls the \
                     account; refusing without --unsafe (re-run as `keys export NAME --unsafe --yes` if you mean it)",
                ));
            }
            let info = keyring.show(&name)?;
            if !yes {
                confirm(
                    ctx,
                    input,
                    &format!("WARNING: the private key of {name:?} will be printed in plain text. Continue? [y/N]"),
                    "pass --yes together with --unsafe to export without confirmation",
                )?;
            }
            let key = keyring.export_private_key_hex(&info.name)?;
            match ctx.output {
                OutputFormat::Json => write_json(
                    out,
                    &serde_json::json!({"name": info.name, "address": info.address, "private_key": key.as_str()}),
                ),
                OutputFormat::Text => {
                    writeln!(out, "{}", key.as_str()).map_err(KeysError::Terminal)
                }
            }
        }
        KeysCommand::Import {
            name,
            file,
            private_key,
            account,
            index,
            overwrite,
            bip39_passphrase,
        } => {
            if !overwrite && keyring.contains(&name)? {
                return Err(KeysError::KeyExists {
                    name,
                    backend: keyring.backend().to_string(),
                });
            }
            let contents =
                Zeroizing::new(std::fs::read_to_string(&file).map_err(|e| {
                    KeysError::io("reading the import file (FILE argument)", &file, e)
                })?);
            let first = contents
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            if first.is_empty() {
                return Err(KeysError::invalid_arg(
                    "FILE",
                    format!("{} is empty; it must hold the mnemonic (or, with --private-key, the hex key)", file.display()),
                ));
            }
            let info = if private_key {
                if bip39_passphrase || account != 0 || index != 0 {
                    return Err(KeysError::invalid_arg(
                        "--private-key",
                        "--account, --index and --bip39-passphrase apply to mnemonics only",
                    ));
                }
                keyring.import_private_key_hex(&name, first, overwrite)?
            } else {
                let mut opts = AddOptions {
                    hd_path: hd_path(account, index)?,
                    bip39_passphrase: String::new(),
                    overwrite,
                };
                if bip39_passphrase {
                    opts.bip39_passphrase = read_bip39_passphrase(ctx, input)?;
                }
                keyring.recover(&name, first, &opts)?
            };
            write_key_added(ctx, out, &info, None)
        }
    }
}

fn hd_path(account: u32, index: u32) -> Result<HdPath> {
    HdPath::new(account, index).map_err(|e| KeysError::invalid_arg("--account/--index", e))
}

/// One line of input without its line ending; `None` at end of input.
fn read_line(input: &mut dyn BufRead) -> Result<Option<Zeroizing<String>>> {
    let mut line = Zeroizing::new(String::new());
    let n = input.read_line(&mut line).map_err(KeysError::Terminal)?;
    if n == 0 {
        return Ok(None);
    }
    let trimmed = line.trim_end_matches(['\r', '\n']);
    Ok(Some(Zeroizing::new(trimmed.to_string())))
}

fn read_bip39_passphrase(ctx: &KeysContext, input: &mut dyn BufRead) -> Result<String> {
    ctx.prompt("> Enter your bip39 passphrase (the line may be empty)");
    let line = read_line(input)?.ok_or_else(|| {
        KeysError::invalid_arg(
            "--bip39-passphrase",
            "no BIP39 passphrase line on standard input; give it as the next line, or drop the flag",
        )
    })?;
    Ok(line.to_string())
}

fn confirm(
    ctx: &KeysContext,
    input: &mut dyn BufRead,
    question: &str,
    how_to_skip: &str,
) -> Result<()> {
    ctx.prompt(question);
    match read_line(input)? {
        Some(answer) if matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") => Ok(()),
        Some(_) => Err(KeysError::Aborted {
            reason: "not confirmed".into(),
        }),
        None => Err(KeysError::Aborted {
            reason: format!("no confirmation on standard input; {how_to_skip}"),
        }),
    }
}

fn write_json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out).map_err(KeysError::Terminal)
}

fn write_info_text(out: &mut dyn Write, info: &KeyInfo) -> Result<()> {
    let mut s = format!(
        "- name: {}\n  type: {}\n  address: {}\n  pubkey: {}\n",
        info.name, info.key_type, info.address, info.pubkey
    );
    if let Some(p) = &info.hd_path {
        s.push_str(&format!("  hd_path: {p}\n"));
    }
    s.push_str(&format!(
        "  origin: {}\n  created_at: {}\n",
        info.origin, info.created_at
    ));
    out.write_all(s.as_bytes()).map_err(KeysError::Terminal)
}

fn write_key_added(
    ctx: &KeysContext,
    out: &mut dyn Write,
    info: &KeyInfo,
    mnemonic: Option<&str>,
) -> Result<()> {
    match ctx.output {
        OutputFormat::Json => write_json(out, &AddOutput { info, mnemonic }),
        OutputFormat::Text => {
            write_info_text(out, info)?;
            if let Some(m) = mnemonic {
                writeln!(out, "\n{BACKUP_WARNING}\n\n{m}").map_err(KeysError::Terminal)?;
            }
            if ctx.backend == Backend::Test {
                writeln!(
                    out,
                    "\nWARNING: the test keyring stores this private key UNENCRYPTED; use it for development only \
                     (--keyring-backend file encrypts it; passphrase from {PASSPHRASE_ENV} or a prompt)."
                )
                .map_err(KeysError::Terminal)?;
            }
            Ok(())
        }
    }
}
