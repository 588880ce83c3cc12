//! Where the `file` keyring gets its passphrase: a caller-supplied [`PassphraseProvider`].
//! The CLI uses [`EnvOrPrompt`]: `HPCD_KEYRING_PASSPHRASE` if set, else an interactive
//! prompt on the terminal (asking twice when a new key file is written).

use std::sync::Arc;

use zeroize::Zeroizing;

use super::error::{KeysError, Result};

/// The environment variable the CLI reads the `file` keyring's passphrase from.
pub const PASSPHRASE_ENV: &str = "HPCD_KEYRING_PASSPHRASE";
/// The shortest passphrase accepted when a key file is written.
pub const MIN_PASSPHRASE_LEN: usize = 8;

/// Why a passphrase is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassphrasePurpose {
    /// To decrypt an existing key file.
    Unlock,
    /// To encrypt a new key file (an interactive provider should ask twice).
    Create,
}

/// Supplies the passphrase of the `file` keyring for key `name`.
pub trait PassphraseProvider: Send + Sync {
    fn passphrase(&self, name: &str, purpose: PassphrasePurpose) -> Result<Zeroizing<String>>;
}

/// Any `Fn(name, purpose) -> Result<passphrase>` is a provider.
impl<F> PassphraseProvider for F
where
    F: Fn(&str, PassphrasePurpose) -> Result<Zeroizing<String>> + Send + Sync,
{
    fn passphrase(&self, name: &str, purpose: PassphrasePurpose) -> Result<Zeroizing<String>> {
        self(name, purpose)
    }
}

/// Always the same passphrase (for tests and tools that got it elsewhere).
pub struct FixedPassphrase(Zeroizing<String>);

impl FixedPassphrase {
    pub fn new(passphrase: impl Into<String>) -> Self {
        Self(Zeroizing::new(passphrase.into()))
    }

    pub fn shared(passphrase: impl Into<String>) -> Arc<dyn PassphraseProvider> {
        Arc::new(Self::new(passphrase))
    }
}

impl PassphraseProvider for FixedPassphrase {
    fn passphrase(&self, _name: &str, _purpose: PassphrasePurpose) -> Result<Zeroizing<String>> {
        Ok(self.0.clone())
    }
}

/// No passphrase available: every request fails (enough for the `test` backend).
pub struct NoPassphrase;

impl PassphraseProvider for NoPassphrase {
    fn passphrase(&self, name: &str, _purpose: PassphrasePurpose) -> Result<Zeroizing<String>> {
        Err(KeysError::Passphrase {
            reason: format!(
                "no passphrase provider is configured for key {name:?} (set {PASSPHRASE_ENV})"
            ),
        })
    }
}

/// The CLI's provider: the environment variable (default `HPCD_KEYRING_PASSPHRASE`) when
/// set and not empty, else a prompt on the controlling terminal via `rpassword`.
pub struct EnvOrPrompt {
    pub env_var: String,
}

impl Default for EnvOrPrompt {
    fn default() -> Self {
        Self {
            env_var: PASSPHRASE_ENV.to_string(),
        }
    }
}

impl EnvOrPrompt {
    fn prompt(&self, prompt: &str, name: &str) -> Result<Zeroizing<String>> {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| KeysError::Passphrase {
                reason: format!(
                    "cannot prompt for the passphrase of key {name:?} ({e}); set {} in the environment, \
                     or use --keyring-backend test for throwaway dev keys",
                    self.env_var
                ),
            })
    }
}

impl PassphraseProvider for EnvOrPrompt {
    fn passphrase(&self, name: &str, purpose: PassphrasePurpose) -> Result<Zeroizing<String>> {
        if let Ok(value) = std::env::var(&self.env_var) {
            if !value.is_empty() {
                return Ok(Zeroizing::new(value));
            }
        }
        match purpose {
            PassphrasePurpose::Unlock => {
                self.prompt(&format!("Enter keyring passphrase for {name}: "), name)
            }
            PassphrasePurpose::Create => {
                let first = self.prompt(
                    &format!("Enter a passphrase to encrypt key {name} (at least {MIN_PASSPHRASE_LEN} characters): "),
                    name,
                )?;
                let second = self.prompt("Re-enter the passphrase: ", name)?;
                if *first != *second {
                    return Err(KeysError::Passphrase {
                        reason: "the two passphrases differ; run the command again".into(),
                    });
                }
                Ok(first)
            }
        }
    }
}
