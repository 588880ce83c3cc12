//! Cosmos account addresses: `bech32(prefix, ripemd160(sha256(compressed_pubkey)))`.
//!
//! [`AccountAddress`] is the chain's own address type ([`hpc_primitives::Address`]), so an
//! address from the keyring can be handed to the tx builder and the chain as it is. The
//! functions here add parsing with errors that name the problem (prefix, checksum, character,
//! length) and encoding under any prefix (for comparing with other Cosmos chains).

use bech32::primitives::decode::{
    CharError, CheckedHrpstring, CheckedHrpstringError, ChecksumError, UncheckedHrpstringError,
};
use bech32::{Bech32, Hrp};

use super::error::{KeysError, Result};

/// A 20-byte account address, shown as bech32 with the chain's prefix.
pub use hpc_primitives::Address as AccountAddress;
/// The chain's bech32 account prefix, `virtengine`.
pub use hpc_primitives::BECH32_PREFIX;

/// The account address of a compressed (33-byte) secp256k1 public key.
pub fn address_from_pubkey(compressed_pubkey: &[u8]) -> Result<AccountAddress> {
    if compressed_pubkey.len() != 33 || !matches!(compressed_pubkey[0], 0x02 | 0x03) {
        return Err(KeysError::InvalidPublicKey {
            reason: format!(
                "expected a 33-byte compressed secp256k1 public key (starting 02 or 03), got {} bytes",
                compressed_pubkey.len()
            ),
        });
    }
    Ok(AccountAddress::from_secp256k1_pubkey(compressed_pubkey))
}

/// Decodes a bech32 (not bech32m) string under any prefix into its prefix and bytes.
pub fn decode_bech32(s: &str) -> Result<(String, Vec<u8>)> {
    let invalid = |reason: String| KeysError::InvalidAddress {
        address: s.to_string(),
        reason,
    };
    if s.is_empty() {
        return Err(invalid("the address is empty".into()));
    }
    let checked =
        CheckedHrpstring::new::<Bech32>(s).map_err(|e| invalid(describe_bech32_error(&e)))?;
    Ok((checked.hrp().to_string(), checked.byte_iter().collect()))
}

/// Parses and validates an account address of this chain: bech32 with the `virtengine`
/// prefix, a valid checksum and 20 bytes.
pub fn parse_address(s: &str) -> Result<AccountAddress> {
    parse_address_with_prefix(s, BECH32_PREFIX)
}

/// Like [`parse_address`], for another expected prefix (the bytes are returned as an
/// [`AccountAddress`], which displays with the chain's own prefix).
pub fn parse_address_with_prefix(s: &str, expected_prefix: &str) -> Result<AccountAddress> {
    let trimmed = s.trim();
    let (hrp, bytes) = decode_bech32(trimmed)?;
    if hrp != expected_prefix {
        return Err(KeysError::InvalidAddress {
            address: s.to_string(),
            reason: format!("wrong prefix {hrp:?}, expected {expected_prefix:?} (an address of this chain starts with \"{expected_prefix}1\")"),
        });
    }
    let bytes: [u8; 20] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeysError::InvalidAddress {
            address: s.to_string(),
            reason: format!(
                "an account address holds 20 bytes, this one {}",
                bytes.len()
            ),
        })?;
    Ok(AccountAddress(bytes))
}

/// Encodes bytes as bech32 under `prefix` (e.g. to show the `cosmos` form of an address).
pub fn encode_bech32(prefix: &str, bytes: &[u8]) -> Result<String> {
    let hrp = Hrp::parse(prefix)
        .map_err(|e| KeysError::invalid_arg("bech32 prefix", format!("{prefix:?}: {e}")))?;
    bech32::encode::<Bech32>(hrp, bytes).map_err(|e| KeysError::invalid_arg("bech32 data", e))
}

fn describe_bech32_error(e: &CheckedHrpstringError) -> String {
    match e {
        CheckedHrpstringError::Checksum(ChecksumError::InvalidResidue) => {
            "checksum mismatch: a character is mistyped or missing (copy the address again)".into()
        }
        CheckedHrpstringError::Checksum(ChecksumError::InvalidLength) => {
            "the data part is too short to hold a bech32 checksum".into()
        }
        CheckedHrpstringError::Checksum(ChecksumError::CodeLength(_)) => {
            "the address is too long".into()
        }
        CheckedHrpstringError::Parse(UncheckedHrpstringError::Char(c)) => match c {
            CharError::MissingSeparator => "missing the '1' separator after the prefix".into(),
            CharError::NothingAfterSeparator => "nothing after the '1' separator".into(),
            CharError::InvalidChar(ch) => {
                format!("character {ch:?} is not in the bech32 alphabet (no 'b', 'i', 'o' or '1' after the separator)")
            }
            CharError::MixedCase => "mixes upper and lower case".into(),
            other => format!("{other}"),
        },
        CheckedHrpstringError::Parse(UncheckedHrpstringError::Hrp(h)) => {
            format!("invalid prefix: {h}")
        }
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_the_problem() {
        let addr = AccountAddress([9u8; 20]);
        let s = addr.to_string();
        assert_eq!(parse_address(&s).unwrap(), addr);

        let cosmos = encode_bech32("cosmos", &[9u8; 20]).unwrap();
        let err = parse_address(&cosmos).unwrap_err().to_string();
        assert!(err.contains("wrong prefix \"cosmos\""), "{err}");
        assert!(err.contains("virtengine"), "{err}");

        let mut typo = s.clone();
        let last = typo.pop().unwrap();
        typo.push(if last == 'q' { 'p' } else { 'q' });
        let err = parse_address(&typo).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");

        let err = parse_address("virtengine").unwrap_err().to_string();
        assert!(err.contains("separator"), "{err}");

        let short = encode_bech32(BECH32_PREFIX, &[1u8; 32]).unwrap();
        let err = parse_address(&short).unwrap_err().to_string();
        assert!(err.contains("20 bytes") && err.contains("32"), "{err}");

        assert!(parse_address("").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn pubkey_must_be_compressed() {
        assert!(address_from_pubkey(&[4u8; 65]).is_err());
        assert!(address_from_pubkey(&[2u8; 33]).is_ok());
    }
}
