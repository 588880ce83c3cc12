//! BIP39 mnemonics and BIP32/BIP44 derivation of Cosmos secp256k1 keys.
//!
//! A key is derived as in the Cosmos SDK: seed = BIP39(mnemonic, optional passphrase),
//! then BIP32 along `m/44'/118'/{account}'/0/{index}` (coin type 118), and the account
//! address is `bech32("virtengine", ripemd160(sha256(compressed_pubkey)))`. The same
//! mnemonic therefore gives the same 20 address bytes here as in `gaiad`/Keplr, only the
//! bech32 prefix differs.
//!
//! One call from a mnemonic to an address (for `hpcd genesis add-account` and scripts):
//! ```
//! use hpc_client::keys::derive::{address_from_mnemonic, HdPath};
//! let phrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
//! let addr = address_from_mnemonic(phrase, "", HdPath::default()).unwrap();
//! assert!(addr.to_string().starts_with("virtengine1"));
//! ```

use std::fmt;
use std::str::FromStr;

use bip39::Language;
use k256::ecdsa::SigningKey as K256SigningKey;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use super::address::{address_from_pubkey, AccountAddress};
use super::error::{KeysError, Result};

/// SLIP-44 coin type of the Cosmos Hub, used by Cosmos SDK chains for account keys.
pub const COSMOS_COIN_TYPE: u32 = 118;
/// The default HD path, `m/44'/118'/0'/0/0`.
pub const DEFAULT_HD_PATH: &str = "m/44'/118'/0'/0/0";
/// The number of words of a newly generated mnemonic (256 bits of entropy).
pub const MNEMONIC_WORDS: usize = 24;

const HARDENED: u32 = 1 << 31;

/// A BIP44 path `m/44'/118'/{account}'/0/{index}`; only the account and the address index
/// can be chosen (as with `--account` and `--index` of the Cosmos SDK's `keys add`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HdPath {
    pub account: u32,
    pub index: u32,
}

impl HdPath {
    /// The path for `account` and `index`; both must be below 2^31.
    pub fn new(account: u32, index: u32) -> Result<Self> {
        let path = Self { account, index };
        path.validate()?;
        Ok(path)
    }

    fn validate(&self) -> Result<()> {
        for (what, value) in [("account", self.account), ("index", self.index)] {
            if value >= HARDENED {
                return Err(KeysError::InvalidHdPath {
                    path: self.to_string(),
                    reason: format!(
                        "{what} {value} is too large, it must be below 2147483648 (2^31)"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The path as a BIP32 derivation path.
    pub fn to_derivation_path(&self) -> Result<bip32::DerivationPath> {
        self.validate()?;
        self.to_string()
            .parse()
            .map_err(|e| KeysError::InvalidHdPath {
                path: self.to_string(),
                reason: format!("{e}"),
            })
    }
}

impl fmt::Display for HdPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "m/44'/{COSMOS_COIN_TYPE}'/{}'/0/{}",
            self.account, self.index
        )
    }
}

impl FromStr for HdPath {
    type Err = KeysError;

    /// Parses `m/44'/118'/A'/0/I` (the only shape this keyring derives).
    fn from_str(s: &str) -> Result<Self> {
        let invalid = |reason: &str| KeysError::InvalidHdPath {
            path: s.to_string(),
            reason: format!("{reason}; expected the form m/44'/118'/ACCOUNT'/0/INDEX"),
        };
        let parts: Vec<&str> = s.trim().split('/').collect();
        if parts.len() != 6 || parts[0] != "m" {
            return Err(invalid("wrong number of components"));
        }
        if parts[1] != "44'" {
            return Err(invalid("purpose must be 44'"));
        }
        if parts[2] != "118'" {
            return Err(invalid("coin type must be 118' (Cosmos)"));
        }
        if parts[4] != "0" {
            return Err(invalid("change must be 0"));
        }
        let account = parts[3]
            .strip_suffix('\'')
            .and_then(|a| a.parse::<u32>().ok())
            .ok_or_else(|| invalid("account must be a hardened number such as 0'"))?;
        let index = parts[5]
            .parse::<u32>()
            .map_err(|_| invalid("index must be a non-hardened number such as 0"))?;
        HdPath::new(account, index)
    }
}

/// A BIP39 English mnemonic. Its `Debug` form does not show the words.
#[derive(Clone)]
pub struct Mnemonic(bip39::Mnemonic);

impl Mnemonic {
    /// A new 24-word mnemonic from 256 bits of OS randomness.
    pub fn generate() -> Result<Self> {
        let mut entropy = Zeroizing::new([0u8; 32]);
        OsRng
            .try_fill_bytes(entropy.as_mut())
            .map_err(|e| KeysError::Crypto {
                reason: format!("reading OS randomness: {e}"),
            })?;
        let m =
            bip39::Mnemonic::from_entropy_in(Language::English, entropy.as_ref()).map_err(|e| {
                KeysError::Crypto {
                    reason: format!("BIP39 from entropy: {e}"),
                }
            })?;
        Ok(Self(m))
    }

    /// Parses and validates a mnemonic: 12, 15, 18, 21 or 24 words of the BIP39 English
    /// list (any case, any whitespace between words) with a correct checksum. The error
    /// names the problem: word count, the position of an unknown word, or the checksum.
    /// It never repeats the words themselves.
    pub fn parse(phrase: &str) -> Result<Self> {
        let words: Vec<String> = phrase.split_whitespace().map(str::to_lowercase).collect();
        let invalid = |reason: String| KeysError::InvalidMnemonic { reason };
        if words.is_empty() {
            return Err(invalid("the mnemonic is empty".into()));
        }
        if !matches!(words.len(), 12 | 15 | 18 | 21 | 24) {
            return Err(invalid(format!(
                "it has {} words, a BIP39 mnemonic has 12, 15, 18, 21 or 24",
                words.len()
            )));
        }
        for (i, word) in words.iter().enumerate() {
            if Language::English.find_word(word).is_none() {
                let hint = if word.len() >= 4 {
                    match Language::English.words_by_prefix(&word[..4]) {
                        [only] => format!("; did you mean {only:?}?"),
                        _ => String::new(),
                    }
                } else {
                    String::new()
                };
                return Err(invalid(format!(
                    "word {} of {} is not in the BIP39 English word list{hint}",
                    i + 1,
                    words.len()
                )));
            }
        }
        let normalized = Zeroizing::new(words.join(" "));
        bip39::Mnemonic::parse_in_normalized(Language::English, &normalized)
            .map(Self)
            .map_err(|e| match e {
                bip39::Error::InvalidChecksum => invalid(
                    "checksum mismatch: every word is in the word list, but they do not form a valid \
                     mnemonic (a word is mistyped as another valid word, or words are swapped or missing)"
                        .into(),
                ),
                other => invalid(other.to_string()),
            })
    }

    /// The words, separated by single spaces.
    pub fn phrase(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.words().collect::<Vec<_>>().join(" "))
    }

    pub fn word_count(&self) -> usize {
        self.0.word_count()
    }

    /// The 64-byte BIP39 seed, with an optional passphrase (`""` for none).
    pub fn to_seed(&self, bip39_passphrase: &str) -> Zeroizing<[u8; 64]> {
        Zeroizing::new(self.0.to_seed(bip39_passphrase))
    }
}

impl fmt::Debug for Mnemonic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mnemonic({} words, redacted)", self.word_count())
    }
}

impl FromStr for Mnemonic {
    type Err = KeysError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// A new 24-word mnemonic from OS randomness.
pub fn generate_mnemonic() -> Result<Mnemonic> {
    Mnemonic::generate()
}

/// Parses and validates a mnemonic (see [`Mnemonic::parse`]).
pub fn parse_mnemonic(phrase: &str) -> Result<Mnemonic> {
    Mnemonic::parse(phrase)
}

/// A secp256k1 private key with its compressed public key and account address. Its
/// `Debug` form does not show the private key; the secret is wiped when dropped.
#[derive(Clone)]
pub struct DerivedKey {
    secret: K256SigningKey,
    public_key: [u8; 33],
    address: AccountAddress,
    hd_path: Option<HdPath>,
}

impl DerivedKey {
    fn from_k256(secret: K256SigningKey, hd_path: Option<HdPath>) -> Result<Self> {
        let point = secret.verifying_key().to_encoded_point(true);
        let public_key: [u8; 33] = point.as_bytes().try_into().map_err(|_| KeysError::Crypto {
            reason: "compressed public key is not 33 bytes".into(),
        })?;
        let address = address_from_pubkey(&public_key)?;
        Ok(Self {
            secret,
            public_key,
            address,
            hd_path,
        })
    }

    /// A key from 32 raw private key bytes (no HD path is known).
    pub fn from_private_key_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != 32 {
            return Err(KeysError::InvalidPrivateKey {
                reason: format!("a secp256k1 private key is 32 bytes, got {}", bytes.len()),
            });
        }
        let secret =
            K256SigningKey::from_slice(bytes).map_err(|_| KeysError::InvalidPrivateKey {
                reason: "not a valid secp256k1 scalar (zero or not below the curve order)".into(),
            })?;
        Self::from_k256(secret, None)
    }

    /// A key from 64 hex digits (as printed by `keys export --unsafe`; an optional `0x`
    /// prefix and surrounding whitespace are accepted).
    pub fn from_private_key_hex(hex_key: &str) -> Result<Self> {
        let trimmed = hex_key.trim();
        let trimmed = trimmed.strip_prefix("0x").unwrap_or(trimmed);
        let bytes =
            Zeroizing::new(
                hex::decode(trimmed).map_err(|e| KeysError::InvalidPrivateKey {
                    reason: format!("not hex: {e} (expected 64 hex digits)"),
                })?,
            );
        Self::from_private_key_bytes(&bytes)
    }

    pub(crate) fn with_hd_path(mut self, hd_path: Option<HdPath>) -> Self {
        self.hd_path = hd_path;
        self
    }

    /// The key for signing txs with cosmrs (and `crate::tx::sign_tx`).
    pub fn signing_key(&self) -> cosmrs::crypto::secp256k1::SigningKey {
        cosmrs::crypto::secp256k1::SigningKey::new(Box::new(self.secret.clone()))
    }

    /// The underlying k256 key.
    pub fn k256_signing_key(&self) -> &K256SigningKey {
        &self.secret
    }

    /// The 33-byte compressed public key.
    pub fn public_key(&self) -> [u8; 33] {
        self.public_key
    }

    /// The compressed public key as lowercase hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key)
    }

    /// The public key as cosmrs's type (for `SignerInfo`s and `Any` encoding).
    pub fn cosmrs_public_key(&self) -> cosmrs::crypto::PublicKey {
        cosmrs::crypto::PublicKey::from(*self.secret.verifying_key())
    }

    pub fn address(&self) -> AccountAddress {
        self.address
    }

    /// The HD path the key was derived along, if it came from a mnemonic.
    pub fn hd_path(&self) -> Option<HdPath> {
        self.hd_path
    }

    /// The 32 private key bytes.
    pub fn private_key_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes().into())
    }

    /// The private key as 64 lowercase hex digits.
    pub fn private_key_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.private_key_bytes().as_ref()))
    }
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedKey")
            .field("address", &self.address)
            .field("public_key", &self.public_key_hex())
            .field("hd_path", &self.hd_path)
            .finish_non_exhaustive()
    }
}

/// Derives the key at `path` from a mnemonic and an optional BIP39 passphrase (`""`).
pub fn derive_key(mnemonic: &Mnemonic, bip39_passphrase: &str, path: HdPath) -> Result<DerivedKey> {
    let seed = mnemonic.to_seed(bip39_passphrase);
    let xprv =
        bip32::XPrv::derive_from_path(seed.as_ref(), &path.to_derivation_path()?).map_err(|e| {
            KeysError::Crypto {
                reason: format!("BIP32 derivation along {path}: {e}"),
            }
        })?;
    DerivedKey::from_k256(xprv.private_key().clone(), Some(path))
}

/// Parses a mnemonic phrase and derives the key at `path` in one call.
pub fn derive_from_phrase(
    phrase: &str,
    bip39_passphrase: &str,
    path: HdPath,
) -> Result<DerivedKey> {
    derive_key(&Mnemonic::parse(phrase)?, bip39_passphrase, path)
}

/// The account address of a mnemonic at `path`, in one call (for `hpcd genesis
/// add-account` and devnet scripts). Use `HdPath::default()` for `m/44'/118'/0'/0/0`.
pub fn address_from_mnemonic(
    phrase: &str,
    bip39_passphrase: &str,
    path: HdPath,
) -> Result<AccountAddress> {
    Ok(derive_from_phrase(phrase, bip39_passphrase, path)?.address())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABANDON: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    #[test]
    fn hd_path_display_and_parse() {
        assert_eq!(HdPath::default().to_string(), DEFAULT_HD_PATH);
        assert_eq!(
            DEFAULT_HD_PATH.parse::<HdPath>().unwrap(),
            HdPath::default()
        );
        let p: HdPath = "m/44'/118'/3'/0/7".parse().unwrap();
        assert_eq!(
            p,
            HdPath {
                account: 3,
                index: 7
            }
        );
        let err = "m/44'/60'/0'/0/0"
            .parse::<HdPath>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("coin type must be 118'"), "{err}");
        let err = HdPath::new(1 << 31, 0).unwrap_err().to_string();
        assert!(err.contains("account 2147483648 is too large"), "{err}");
    }

    #[test]
    fn generated_mnemonic_has_24_words_and_round_trips() {
        let a = Mnemonic::generate().unwrap();
        let b = Mnemonic::generate().unwrap();
        assert_eq!(a.word_count(), MNEMONIC_WORDS);
        assert_eq!(a.phrase().split(' ').count(), 24);
        assert_ne!(
            *a.phrase(),
            *b.phrase(),
            "two mnemonics from OS randomness must differ"
        );
        let again = Mnemonic::parse(&a.phrase()).unwrap();
        assert_eq!(*again.phrase(), *a.phrase());
        assert_eq!(format!("{a:?}"), "Mnemonic(24 words, redacted)");
    }

    #[test]
    fn parse_is_case_and_whitespace_tolerant() {
        let messy = format!("  {}\n", ABANDON.to_uppercase().replace(' ', "  \t"));
        assert_eq!(*Mnemonic::parse(&messy).unwrap().phrase(), ABANDON);
    }

    #[test]
    fn private_key_hex_round_trip() {
        let k = derive_from_phrase(ABANDON, "", HdPath::default()).unwrap();
        let again = DerivedKey::from_private_key_hex(&k.private_key_hex()).unwrap();
        assert_eq!(again.address(), k.address());
        assert_eq!(again.public_key(), k.public_key());
        assert_eq!(again.hd_path(), None);
        assert_eq!(
            k.signing_key().public_key().to_bytes(),
            k.public_key().to_vec()
        );
        assert!(DerivedKey::from_private_key_hex("00").is_err());
        assert!(DerivedKey::from_private_key_bytes(&[0u8; 32]).is_err());
        assert!(!format!("{k:?}").contains(k.private_key_hex().as_str()));
    }
}
