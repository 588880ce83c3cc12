//! Key management for `hpcd keys …`: BIP39 mnemonics and Cosmos HD derivation
//! ([`derive`]), bech32 account addresses ([`address`]), a keyring with an encrypted `file`
//! backend and an INSECURE plain-text `test` backend ([`keyring`]), where the file backend
//! gets its passphrase ([`passphrase`]), and the `keys` subcommands ([`cli`]).
//!
//! Signing with a stored key:
//! ```no_run
//! use std::sync::Arc;
//! use hpc_client::keys::{Backend, EnvOrPrompt, Keyring};
//! let keyring = Keyring::new("/home/me/.hpcd", Backend::File, Arc::new(EnvOrPrompt::default()));
//! let address = keyring.address("alice")?;          // no passphrase needed
//! let signing_key = keyring.signing_key("alice")?;  // decrypts the key file
//! # Ok::<(), hpc_client::keys::KeysError>(())
//! ```

pub mod address;
pub mod cli;
pub mod derive;
pub mod error;
pub mod keyring;
pub mod passphrase;

pub use address::{address_from_pubkey, parse_address, AccountAddress, BECH32_PREFIX};
pub use cli::{run, KeysArgs, KeysCommand, KeysCommonArgs, KeysContext, OutputFormat};
pub use derive::{
    address_from_mnemonic, derive_from_phrase, derive_key, generate_mnemonic, parse_mnemonic,
    DerivedKey, HdPath, Mnemonic, DEFAULT_HD_PATH,
};
pub use error::KeysError;
pub use keyring::{validate_key_name, AddOptions, Backend, KeyInfo, Keyring, ScryptParams};
pub use passphrase::{
    EnvOrPrompt, FixedPassphrase, NoPassphrase, PassphraseProvider, PassphrasePurpose,
    PASSPHRASE_ENV,
};
