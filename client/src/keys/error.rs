//! The errors of key management. Each message says what is wrong and, where there is one,
//! how to fix it (which flag, file or environment variable to look at).

use std::path::PathBuf;

/// Errors of `keys::derive`, `keys::keyring` and `keys::cli`.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// A key name that does not match `[A-Za-z0-9_.-]{1,64}`.
    #[error("invalid key name {name:?}: {reason} (names are 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-')")]
    InvalidName { name: String, reason: String },

    /// A key of that name is already stored.
    #[error("key {name:?} already exists in the {backend} keyring; choose another name, delete it first with `keys delete {name}`, or pass --overwrite")]
    KeyExists { name: String, backend: String },

    /// No key of that name (or address) is stored.
    #[error("key {name:?} not found in the {backend} keyring at {dir} (see `keys list`; check --home and --keyring-backend)")]
    KeyNotFound {
        name: String,
        backend: String,
        dir: PathBuf,
    },

    /// A BIP39 mnemonic that cannot be used; `reason` names the word or the checksum.
    #[error("invalid mnemonic: {reason}")]
    InvalidMnemonic { reason: String },

    /// An HD derivation path this keyring does not support.
    #[error("invalid HD path {path:?}: {reason}")]
    InvalidHdPath { path: String, reason: String },

    /// A bech32 account address that cannot be parsed; `reason` names the prefix, checksum,
    /// character or length problem.
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },

    /// A raw secp256k1 private key that cannot be used.
    #[error("invalid private key: {reason}")]
    InvalidPrivateKey { reason: String },

    /// A secp256k1 public key that cannot be used.
    #[error("invalid public key: {reason}")]
    InvalidPublicKey { reason: String },

    /// The passphrase does not decrypt the key file.
    #[error("wrong passphrase for key {name:?}: the key file could not be decrypted (check HPCD_KEYRING_PASSPHRASE or the passphrase you typed; if it is right, the file was modified)")]
    WrongPassphrase { name: String },

    /// No passphrase could be had, or the one given is not acceptable.
    #[error("keyring passphrase: {reason}")]
    Passphrase { reason: String },

    /// A key file that exists but cannot be understood.
    #[error("key file {path}: {reason}")]
    InvalidKeyFile { path: PathBuf, reason: String },

    /// Reading or writing a file of the keyring.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An unexpected failure of a cryptographic primitive.
    #[error("crypto: {reason}")]
    Crypto { reason: String },

    /// A command-line argument or flag with a bad value.
    #[error("invalid {flag}: {reason}")]
    InvalidArgument { flag: String, reason: String },

    /// The user declined (or could not be asked) a confirmation.
    #[error("aborted: {reason}")]
    Aborted { reason: String },

    /// Writing the command output, or reading standard input, failed.
    #[error("terminal I/O: {0}")]
    Terminal(#[source] std::io::Error),

    /// Encoding output as JSON failed.
    #[error("encoding JSON output: {0}")]
    Json(#[from] serde_json::Error),
}

impl KeysError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid_arg(flag: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidArgument {
            flag: flag.into(),
            reason: reason.to_string(),
        }
    }
}

pub type Result<T, E = KeysError> = std::result::Result<T, E>;
