//! `hpcd verify`: checks where a job ran (or that a record does not exist) without trusting
//! the node, from a block the user trusts.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::output::{print, OutputFormat};
use super::ConnectionArgs;
use crate::error::{ClientError, Result};
use crate::proof::{self, RecordKind, RecordProof, TrustAnchor};

#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    /// What to verify.
    #[arg(value_enum)]
    kind: RecordKind,
    /// Its id.
    id: String,
    /// The height of a block you trust (your own node, a checkpoint you were given).
    #[arg(long)]
    trust_height: u64,
    /// That block's hash, 64 hex digits (CometBFT `/commit?height=H`:
    /// `signed_header.commit.block_id.hash`).
    #[arg(long, value_parser = parse_hash)]
    trust_hash: tendermint::Hash,
    /// A proof printed by `hpcd query hpc … --prove`; without it, the node is asked for a
    /// proof at the newest provable height.
    #[arg(long)]
    proof: Option<PathBuf>,
    /// How long the trusted block's validators stay trusted, e.g. 336h or 14d.
    #[arg(long, default_value = "14d", value_parser = parse_duration)]
    trusting_period: Duration,
}

fn parse_hash(s: &str) -> std::result::Result<tendermint::Hash, String> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected a block hash of 64 hex digits".into());
    }
    tendermint::Hash::from_hex_upper(tendermint::hash::Algorithm::Sha256, &s.to_uppercase())
        .map_err(|e| e.to_string())
}

/// A whole number with a unit: `s`, `m`, `h` or `d`.
fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let unit_at = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(unit_at);
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with a unit, e.g. 336h or 14d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    count
        .checked_mul(seconds)
        .filter(|&secs| secs > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?}: out of range"))
}

pub async fn run_verify(
    args: VerifyArgs,
    conn: &ConnectionArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let transport = conn.transport()?;
    let (rpc, url) = transport.cometbft("--node")?;
    let record_proof = match &args.proof {
        Some(path) => read_proof(path, args.kind, &args.id)?,
        None => proof::fetch_proof(rpc, url, args.kind, &args.id, None).await?,
    };
    let anchor = TrustAnchor {
        height: args.trust_height,
        hash: args.trust_hash,
    };
    let trusted = proof::fetch_trusted_block(rpc, url, &anchor).await?;
    let options = proof::light_client_options(args.trusting_period);
    let verified = proof::verify(&record_proof, &anchor, &trusted, &options, proof::now()?)?;
    match conn.output {
        OutputFormat::Json => print(out, conn.output, &verified),
        // The verdict first, then what was proven.
        OutputFormat::Text => {
            writeln!(out, "verified: {}", verified.summary).and_then(|()| match &verified.record {
                Some(record) => print(out, conn.output, record),
                None => Ok(()),
            })
        }
    }
    .map_err(ClientError::Output)
}

/// Reads a saved proof, which must be of the record named on the command line.
fn read_proof(path: &PathBuf, kind: RecordKind, id: &str) -> Result<RecordProof> {
    let field = "--proof";
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::invalid(field, format!("{}: {e}", path.display())))?;
    let proof: RecordProof = serde_json::from_str(&text)
        .map_err(|e| ClientError::invalid(field, format!("{}: {e}", path.display())))?;
    if proof.kind != kind || proof.id != id {
        return Err(ClientError::invalid(
            field,
            format!(
                "{} is a proof of {} {:?}, not of {} {id:?}",
                path.display(),
                proof.kind.name(),
                proof.id,
                kind.name()
            ),
        ));
    }
    Ok(proof)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_a_positive_count() {
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86400)));
        assert_eq!(parse_duration("336h"), Ok(Duration::from_secs(336 * 3600)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        for bad in ["", "14", "d", "0h", "1w", "-1d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn block_hashes_are_64_hex_digits() {
        let hash = "AB".repeat(32);
        assert_eq!(parse_hash(&hash.to_lowercase()).unwrap().to_string(), hash);
        for bad in ["", "AB", &"ZZ".repeat(32), &"AB".repeat(33)] {
            assert!(parse_hash(bad).is_err(), "{bad:?}");
        }
    }
}
