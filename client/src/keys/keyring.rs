//! A keyring of named secp256k1 account keys, with two backends as in the Cosmos SDK:
//!
//! - [`Backend::File`]: `<home>/keyring-file/<name>.key`, a JSON file whose private key is
//!   encrypted with a passphrase: scrypt (random 32-byte salt, parameters recorded in the
//!   file) derives a key for XChaCha20-Poly1305 (random 24-byte nonce); the name, address
//!   and public key are authenticated as associated data. The passphrase comes from a
//!   [`PassphraseProvider`].
//! - [`Backend::Test`]: `<home>/keyring-test/<name>.json` with the private key in **plain
//!   text** (hex). INSECURE: anyone who can read the file controls the account. For local
//!   development and CI only, never for keys that hold value.
//!
//! Both store public information (name, address, public key, HD path, creation time) in
//! clear, so listing and showing keys needs no passphrase. Files are written atomically
//! (a temporary file in the same directory, fsynced, then renamed) with mode 0600 on unix;
//! the keyring directory is created with mode 0700. The mnemonic is never stored: `add`
//! returns it once so that the user can write it down.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::address::{parse_address, AccountAddress, BECH32_PREFIX};
use super::derive::{derive_key, DerivedKey, HdPath, Mnemonic};
use super::error::{KeysError, Result};
use super::passphrase::{NoPassphrase, PassphraseProvider, PassphrasePurpose, MIN_PASSPHRASE_LEN};

/// The `type` of keys whose private key is in the keyring.
pub const KEY_TYPE_LOCAL: &str = "local";
/// Version of the key file format.
pub const KEY_FILE_VERSION: u32 = 1;
const CIPHER: &str = "xchacha20-poly1305";
const KDF: &str = "scrypt";
const TEST_WARNING: &str =
    "INSECURE: test keyring, the private key is stored in plain text. For development and CI only.";

/// Where and how keys are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Backend {
    /// Encrypted with a passphrase (`<home>/keyring-file/<name>.key`).
    File,
    /// INSECURE plain-text keys for dev and CI (`<home>/keyring-test/<name>.json`).
    Test,
}

impl Backend {
    pub fn as_str(&self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Test => "test",
        }
    }

    /// The directory under the home directory.
    pub fn dir_name(&self) -> &'static str {
        match self {
            Backend::File => "keyring-file",
            Backend::Test => "keyring-test",
        }
    }

    /// The extension of key files.
    pub fn extension(&self) -> &'static str {
        match self {
            Backend::File => "key",
            Backend::Test => "json",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Backend {
    type Err = KeysError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "file" => Ok(Backend::File),
            "test" => Ok(Backend::Test),
            other => Err(KeysError::invalid_arg(
                "--keyring-backend",
                format!("{other:?} is not a keyring backend; use \"file\" (encrypted) or \"test\" (plain text, dev only)"),
            )),
        }
    }
}

/// The public record of a key, as stored in clear and as shown by `keys list`/`keys show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub name: String,
    /// Always `"local"` (the private key is in this keyring).
    #[serde(rename = "type")]
    pub key_type: String,
    /// The bech32 account address (`virtengine1…`).
    pub address: String,
    /// The 33-byte compressed secp256k1 public key, lowercase hex.
    pub pubkey: String,
    /// The HD path of a key derived from a mnemonic; none for an imported private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hd_path: Option<String>,
    /// How the key came in: `"generated"`, `"mnemonic"` or `"private_key"`.
    pub origin: String,
    /// When the key was added, RFC 3339 UTC.
    pub created_at: String,
}

impl KeyInfo {
    fn new(name: &str, key: &DerivedKey, origin: &str) -> Self {
        Self {
            name: name.to_string(),
            key_type: KEY_TYPE_LOCAL.to_string(),
            address: key.address().to_string(),
            pubkey: key.public_key_hex(),
            hd_path: key.hd_path().map(|p| p.to_string()),
            origin: origin.to_string(),
            created_at: rfc3339_utc(SystemTime::now()),
        }
    }

    /// The parsed account address.
    pub fn account_address(&self) -> Result<AccountAddress> {
        parse_address(&self.address)
    }

    /// The compressed public key bytes.
    pub fn pubkey_bytes(&self) -> Result<[u8; 33]> {
        hex::decode(&self.pubkey)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeysError::InvalidPublicKey {
                reason: format!(
                    "key {:?}: pubkey {:?} is not 33 bytes of hex",
                    self.name, self.pubkey
                ),
            })
    }
}

/// scrypt cost parameters (`N = 2^log_n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScryptParams {
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
}

impl Default for ScryptParams {
    /// `N = 2^15, r = 8, p = 1`: 32 MiB and a fraction of a second per key operation.
    fn default() -> Self {
        Self {
            log_n: 15,
            r: 8,
            p: 1,
        }
    }
}

impl ScryptParams {
    fn check(&self) -> std::result::Result<scrypt::Params, String> {
        // Bounds keep a tampered file from asking for unbounded memory or time.
        if !(1..=22).contains(&self.log_n)
            || !(1..=32).contains(&self.r)
            || !(1..=16).contains(&self.p)
        {
            return Err(format!(
                "scrypt parameters log_n={} r={} p={} are out of range (log_n 1..=22, r 1..=32, p 1..=16)",
                self.log_n, self.r, self.p
            ));
        }
        scrypt::Params::new(self.log_n, self.r, self.p, 32)
            .map_err(|e| format!("scrypt parameters: {e}"))
    }
}

/// Options for adding a key from a mnemonic.
#[derive(Clone, Debug, Default)]
pub struct AddOptions {
    /// The HD path (default `m/44'/118'/0'/0/0`).
    pub hd_path: HdPath,
    /// An optional BIP39 passphrase (the "25th word"); empty for none.
    pub bip39_passphrase: String,
    /// Replace a key of the same name instead of failing with `KeyExists`.
    pub overwrite: bool,
}

#[derive(Serialize, Deserialize)]
struct KdfParams {
    log_n: u8,
    r: u32,
    p: u32,
    dklen: usize,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct CryptoSection {
    cipher: String,
    nonce: String,
    ciphertext: String,
    kdf: String,
    kdfparams: KdfParams,
}

/// `<name>.key` of the file backend.
#[derive(Serialize, Deserialize)]
struct EncryptedKeyFile {
    version: u32,
    #[serde(flatten)]
    info: KeyInfo,
    crypto: CryptoSection,
}

/// `<name>.json` of the test backend.
#[derive(Serialize, Deserialize)]
struct PlainKeyFile {
    version: u32,
    warning: String,
    #[serde(flatten)]
    info: KeyInfo,
    private_key: String,
}

/// Checks a key name: 1 to 64 characters of `[A-Za-z0-9_.-]`.
pub fn validate_key_name(name: &str) -> Result<()> {
    let invalid = |reason: String| KeysError::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("the name is empty".into()));
    }
    if name.chars().count() > 64 {
        return Err(invalid(format!(
            "it is {} characters long, the limit is 64",
            name.chars().count()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(invalid(format!("character {c:?} is not allowed")));
    }
    Ok(())
}

/// A keyring in a home directory with one backend.
pub struct Keyring {
    backend: Backend,
    dir: PathBuf,
    passphrase: Arc<dyn PassphraseProvider>,
    kdf: ScryptParams,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("backend", &self.backend)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// The keyring of `backend` under `home` (`<home>/keyring-file` or `<home>/keyring-test`).
    /// Nothing is created until a key is written. `passphrase` is used by the file backend.
    pub fn new(
        home: impl AsRef<Path>,
        backend: Backend,
        passphrase: Arc<dyn PassphraseProvider>,
    ) -> Self {
        Self {
            backend,
            dir: home.as_ref().join(backend.dir_name()),
            passphrase,
            kdf: ScryptParams::default(),
        }
    }

    /// The INSECURE test keyring under `home` (no passphrase).
    pub fn test(home: impl AsRef<Path>) -> Self {
        Self::new(home, Backend::Test, Arc::new(NoPassphrase))
    }

    /// The encrypted file keyring under `home`.
    pub fn file(home: impl AsRef<Path>, passphrase: Arc<dyn PassphraseProvider>) -> Self {
        Self::new(home, Backend::File, passphrase)
    }

    /// The scrypt cost for new key files (reading uses the parameters recorded in each file).
    pub fn with_kdf_params(mut self, params: ScryptParams) -> Self {
        self.kdf = params;
        self
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The directory holding the key files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of key `name` (whether or not it exists).
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!("{name}.{}", self.backend.extension()))
    }

    /// True when a key of that name is stored.
    pub fn contains(&self, name: &str) -> Result<bool> {
        validate_key_name(name)?;
        Ok(self.key_path(name).is_file())
    }

    /// Generates a new 24-word mnemonic, stores the key derived from it and returns the
    /// key's record with the mnemonic, which is not stored: show it to the user once.
    pub fn add(&self, name: &str, opts: &AddOptions) -> Result<(KeyInfo, Mnemonic)> {
        self.check_new_name(name, opts.overwrite)?;
        let mnemonic = Mnemonic::generate()?;
        let key = derive_key(&mnemonic, &opts.bip39_passphrase, opts.hd_path)?;
        let info = self.store(name, &key, "generated", opts.overwrite)?;
        Ok((info, mnemonic))
    }

    /// Recovers a key from a mnemonic phrase (validated: words and checksum) and stores it.
    pub fn recover(&self, name: &str, phrase: &str, opts: &AddOptions) -> Result<KeyInfo> {
        self.check_new_name(name, opts.overwrite)?;
        let mnemonic = Mnemonic::parse(phrase)?;
        let key = derive_key(&mnemonic, &opts.bip39_passphrase, opts.hd_path)?;
        self.store(name, &key, "mnemonic", opts.overwrite)
    }

    /// Imports a raw private key given as 64 hex digits (as `export_private_key_hex` gives).
    pub fn import_private_key_hex(
        &self,
        name: &str,
        private_key_hex: &str,
        overwrite: bool,
    ) -> Result<KeyInfo> {
        self.check_new_name(name, overwrite)?;
        let key = DerivedKey::from_private_key_hex(private_key_hex)?;
        self.store(name, &key, "private_key", overwrite)
    }

    /// All keys, sorted by name. Needs no passphrase.
    pub fn list(&self) -> Result<Vec<KeyInfo>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KeysError::io("reading keyring directory", &self.dir, e)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| KeysError::io("reading keyring directory", &self.dir, e))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(self.backend.extension()) {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if validate_key_name(name).is_err() || !path.is_file() {
                continue;
            }
            keys.push(self.read_info(name)?);
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(keys)
    }

    /// The record of a key, by name or by bech32 address. Needs no passphrase.
    pub fn show(&self, name_or_address: &str) -> Result<KeyInfo> {
        if validate_key_name(name_or_address).is_ok() && self.key_path(name_or_address).is_file() {
            return self.read_info(name_or_address);
        }
        let looks_like_address = name_or_address.starts_with(&format!("{BECH32_PREFIX}1"));
        if looks_like_address {
            let address = parse_address(name_or_address)?.to_string();
            if let Some(info) = self.list()?.into_iter().find(|k| k.address == address) {
                return Ok(info);
            }
        } else {
            validate_key_name(name_or_address)?;
        }
        Err(self.not_found(name_or_address))
    }

    /// The account address of a key, by name or address. Needs no passphrase.
    pub fn address(&self, name_or_address: &str) -> Result<AccountAddress> {
        self.show(name_or_address)?.account_address()
    }

    /// Deletes a key and returns its record. The confirmation is the caller's business.
    pub fn delete(&self, name: &str) -> Result<KeyInfo> {
        let info = self.show_by_name(name)?;
        let path = self.key_path(name);
        fs::remove_file(&path).map_err(|e| KeysError::io("deleting key file", &path, e))?;
        sync_dir(&self.dir);
        Ok(info)
    }

    /// The private key (decrypted with the passphrase for the file backend).
    pub fn key(&self, name: &str) -> Result<DerivedKey> {
        validate_key_name(name)?;
        match self.backend {
            Backend::Test => {
                let (file, path): (PlainKeyFile, _) = self.read_file(name)?;
                let key = DerivedKey::from_private_key_hex(&file.private_key).map_err(|e| {
                    KeysError::InvalidKeyFile {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                check_matches(&file.info, &key, &path)?;
                Ok(with_path(key, &file.info))
            }
            Backend::File => {
                let (file, path): (EncryptedKeyFile, _) = self.read_file(name)?;
                let passphrase = self
                    .passphrase
                    .passphrase(name, PassphrasePurpose::Unlock)?;
                let secret = decrypt(&file, &passphrase, &path)?;
                let key = DerivedKey::from_private_key_bytes(secret.as_ref()).map_err(|e| {
                    KeysError::InvalidKeyFile {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                check_matches(&file.info, &key, &path)?;
                Ok(with_path(key, &file.info))
            }
        }
    }

    /// The key of `name` for signing txs.
    pub fn signing_key(&self, name: &str) -> Result<cosmrs::crypto::secp256k1::SigningKey> {
        Ok(self.key(name)?.signing_key())
    }

    /// The private key as 64 hex digits. The CLI asks for explicit confirmation first.
    pub fn export_private_key_hex(&self, name: &str) -> Result<Zeroizing<String>> {
        Ok(self.key(name)?.private_key_hex())
    }

    fn not_found(&self, name: &str) -> KeysError {
        KeysError::KeyNotFound {
            name: name.to_string(),
            backend: self.backend.to_string(),
            dir: self.dir.clone(),
        }
    }

    fn show_by_name(&self, name: &str) -> Result<KeyInfo> {
        validate_key_name(name)?;
        if !self.key_path(name).is_file() {
            return Err(self.not_found(name));
        }
        self.read_info(name)
    }

    fn check_new_name(&self, name: &str, overwrite: bool) -> Result<()> {
        validate_key_name(name)?;
        if !overwrite && self.key_path(name).exists() {
            return Err(self.exists(name));
        }
        Ok(())
    }

    fn exists(&self, name: &str) -> KeysError {
        KeysError::KeyExists {
            name: name.to_string(),
            backend: self.backend.to_string(),
        }
    }

    fn read_file<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<(T, PathBuf)> {
        let path = self.key_path(name);
        let bytes = match fs::read(&path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(self.not_found(name)),
            Err(e) => return Err(KeysError::io("reading key file", &path, e)),
        };
        let value: T = serde_json::from_slice(&bytes).map_err(|e| KeysError::InvalidKeyFile {
            path: path.clone(),
            reason: format!("not a {} keyring key file: {e}", self.backend),
        })?;
        Ok((value, path))
    }

    fn read_info(&self, name: &str) -> Result<KeyInfo> {
        let (info, version, path) = match self.backend {
            Backend::Test => {
                let (f, path): (PlainKeyFile, _) = self.read_file(name)?;
                (f.info, f.version, path)
            }
            Backend::File => {
                let (f, path): (EncryptedKeyFile, _) = self.read_file(name)?;
                (f.info, f.version, path)
            }
        };
        if version != KEY_FILE_VERSION {
            return Err(KeysError::InvalidKeyFile {
                path,
                reason: format!(
                    "format version {version} is not supported (expected {KEY_FILE_VERSION})"
                ),
            });
        }
        if info.name != name {
            return Err(KeysError::InvalidKeyFile {
                path,
                reason: format!(
                    "it holds key {:?}, not {name:?} (was the file renamed?)",
                    info.name
                ),
            });
        }
        Ok(info)
    }

    fn store(
        &self,
        name: &str,
        key: &DerivedKey,
        origin: &str,
        overwrite: bool,
    ) -> Result<KeyInfo> {
        let info = KeyInfo::new(name, key, origin);
        let json = match self.backend {
            Backend::Test => Zeroizing::new(serde_json::to_vec_pretty(&PlainKeyFile {
                version: KEY_FILE_VERSION,
                warning: TEST_WARNING.to_string(),
                info: info.clone(),
                private_key: key.private_key_hex().to_string(),
            })?),
            Backend::File => {
                let passphrase = self
                    .passphrase
                    .passphrase(name, PassphrasePurpose::Create)?;
                if passphrase.chars().count() < MIN_PASSPHRASE_LEN {
                    return Err(KeysError::Passphrase {
                        reason: format!(
                            "the passphrase for a new key must have at least {MIN_PASSPHRASE_LEN} characters"
                        ),
                    });
                }
                let crypto = encrypt(&info, key, &passphrase, self.kdf)?;
                Zeroizing::new(serde_json::to_vec_pretty(&EncryptedKeyFile {
                    version: KEY_FILE_VERSION,
                    info: info.clone(),
                    crypto,
                })?)
            }
        };
        self.ensure_dir()?;
        let path = self.key_path(name);
        write_atomic(&self.dir, &path, &json, overwrite).map_err(|e| match e {
            WriteError::Exists => self.exists(name),
            WriteError::Io(action, e) => KeysError::io(action, &path, e),
        })?;
        Ok(info)
    }

    fn ensure_dir(&self) -> Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = self.dir.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| KeysError::io("creating home directory", parent, e))?;
        }
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        match builder.create(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && self.dir.is_dir() => {
                return Ok(())
            }
            Err(e) => return Err(KeysError::io("creating keyring directory", &self.dir, e)),
        }
        // The umask may have removed bits only; make the mode exact.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| KeysError::io("setting permissions of", &self.dir, e))?;
        }
        Ok(())
    }
}

/// A key read back carries the HD path recorded when it was created.
fn with_path(key: DerivedKey, info: &KeyInfo) -> DerivedKey {
    let path = info
        .hd_path
        .as_deref()
        .and_then(|p| p.parse::<HdPath>().ok());
    key.with_hd_path(path)
}

fn check_matches(info: &KeyInfo, key: &DerivedKey, path: &Path) -> Result<()> {
    if key.public_key_hex() != info.pubkey.to_lowercase()
        || key.address().to_string() != info.address
    {
        return Err(KeysError::InvalidKeyFile {
            path: path.to_path_buf(),
            reason: "the private key does not match the recorded public key/address (file corrupted or edited)".into(),
        });
    }
    Ok(())
}

/// The associated data authenticated with the ciphertext: the key's public record.
fn associated_data(info: &KeyInfo) -> Vec<u8> {
    format!(
        "hpc-keyring-v{KEY_FILE_VERSION}\n{}\n{}\n{}",
        info.name, info.address, info.pubkey
    )
    .into_bytes()
}

fn derive_cipher_key(
    passphrase: &str,
    salt: &[u8],
    params: ScryptParams,
) -> Result<Zeroizing<[u8; 32]>> {
    let p = params
        .check()
        .map_err(|reason| KeysError::Crypto { reason })?;
    let mut out = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(passphrase.as_bytes(), salt, &p, out.as_mut()).map_err(|e| {
        KeysError::Crypto {
            reason: format!("scrypt: {e}"),
        }
    })?;
    Ok(out)
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    OsRng
        .try_fill_bytes(&mut b)
        .map_err(|e| KeysError::Crypto {
            reason: format!("reading OS randomness: {e}"),
        })?;
    Ok(b)
}

fn encrypt(
    info: &KeyInfo,
    key: &DerivedKey,
    passphrase: &str,
    params: ScryptParams,
) -> Result<CryptoSection> {
    let salt: [u8; 32] = random_bytes()?;
    let nonce: [u8; 24] = random_bytes()?;
    let cipher_key = derive_cipher_key(passphrase, &salt, params)?;
    let cipher = XChaCha20Poly1305::new(cipher_key.as_ref().into());
    let secret = key.private_key_bytes();
    let aad = associated_data(info);
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: secret.as_ref(),
                aad: &aad,
            },
        )
        .map_err(|_| KeysError::Crypto {
            reason: "XChaCha20-Poly1305 encryption failed".into(),
        })?;
    Ok(CryptoSection {
        cipher: CIPHER.to_string(),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ciphertext),
        kdf: KDF.to_string(),
        kdfparams: KdfParams {
            log_n: params.log_n,
            r: params.r,
            p: params.p,
            dklen: 32,
            salt: hex::encode(salt),
        },
    })
}

fn decrypt(file: &EncryptedKeyFile, passphrase: &str, path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let bad = |reason: String| KeysError::InvalidKeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let c = &file.crypto;
    if c.cipher != CIPHER {
        return Err(bad(format!(
            "cipher {:?} is not supported (expected {CIPHER:?})",
            c.cipher
        )));
    }
    if c.kdf != KDF {
        return Err(bad(format!(
            "kdf {:?} is not supported (expected {KDF:?})",
            c.kdf
        )));
    }
    if c.kdfparams.dklen != 32 {
        return Err(bad(format!(
            "kdfparams.dklen must be 32, is {}",
            c.kdfparams.dklen
        )));
    }
    let params = ScryptParams {
        log_n: c.kdfparams.log_n,
        r: c.kdfparams.r,
        p: c.kdfparams.p,
    };
    params.check().map_err(bad)?;
    let salt = hex::decode(&c.kdfparams.salt).map_err(|e| bad(format!("kdfparams.salt: {e}")))?;
    let nonce = hex::decode(&c.nonce).map_err(|e| bad(format!("nonce: {e}")))?;
    let nonce: [u8; 24] = nonce
        .as_slice()
        .try_into()
        .map_err(|_| bad(format!("nonce must be 24 bytes, is {}", nonce.len())))?;
    let ciphertext = hex::decode(&c.ciphertext).map_err(|e| bad(format!("ciphertext: {e}")))?;
    let cipher_key = derive_cipher_key(passphrase, &salt, params)?;
    let cipher = XChaCha20Poly1305::new(cipher_key.as_ref().into());
    let aad = associated_data(&file.info);
    cipher
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| KeysError::WrongPassphrase {
            name: file.info.name.clone(),
        })
}

enum WriteError {
    Exists,
    Io(&'static str, std::io::Error),
}

/// Writes `bytes` to `path` atomically: a temporary file in `dir` (mode 0600), fsynced,
/// renamed over `path` (or, without `overwrite`, linked only if `path` does not exist).
fn write_atomic(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    overwrite: bool,
) -> std::result::Result<(), WriteError> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| WriteError::Io("creating a temporary file for", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| WriteError::Io("setting permissions of", e))?;
    }
    tmp.write_all(bytes)
        .map_err(|e| WriteError::Io("writing", e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| WriteError::Io("syncing", e))?;
    let persisted = if overwrite {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    match persisted {
        Ok(_) => {}
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(WriteError::Exists)
        }
        Err(e) => return Err(WriteError::Io("renaming the temporary file to", e.error)),
    }
    sync_dir(dir);
    Ok(())
}

/// Makes a rename or removal in `dir` durable (best effort; not possible on all platforms).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661)),
            "2000-02-29T01:01:01Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn names() {
        for ok in ["a", "alice", "Val-1", "key_2.bak", &"x".repeat(64)] {
            validate_key_name(ok).unwrap();
        }
        let err = validate_key_name("").unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        let err = validate_key_name(&"x".repeat(65)).unwrap_err().to_string();
        assert!(err.contains("65 characters"), "{err}");
        let err = validate_key_name("a/b").unwrap_err().to_string();
        assert!(err.contains("'/'"), "{err}");
        assert!(validate_key_name("ünï").is_err());
        assert!(validate_key_name("with space").is_err());
    }

    #[test]
    fn scrypt_params_bounds() {
        assert!(ScryptParams::default().check().is_ok());
        assert!(ScryptParams {
            log_n: 40,
            r: 8,
            p: 1
        }
        .check()
        .is_err());
        assert!(ScryptParams {
            log_n: 10,
            r: 0,
            p: 1
        }
        .check()
        .is_err());
    }
}
