//! The ante handler: every check a tx passes before its messages run, in the Cosmos SDK's
//! decorator order. A failure here changes no state; on success the fee is deducted
//! and every signer's sequence is bumped (kept even if a message then fails).

use base64::Engine;
use cosmos_sdk_proto::cosmos::tx::signing::v1beta1::SignMode;
use cosmos_sdk_proto::cosmos::tx::v1beta1::{mode_info, Fee, SignDoc, SignerInfo};
use hpc_primitives::contract::sdk_events::{self, attrs as sdk_attrs};
use hpc_store::{StateRead, StateWrite};
use prost::Message;
use sha2::Digest;

use super::{DecodedTx, Mode, ValidatedMsg, VerifiedSignatures};
use crate::address::Address;
use crate::auth::{pack_pubkey, unpack_pubkey};
use crate::auth::{AuthKeeper, AuthParams};
use crate::bank::{BankKeeper, FEE_COLLECTOR};
use crate::coins::{Coins, GasPrices, FEE_DENOM};
use crate::consensus::{BlockLimits, ConsensusKeeper, MAX_TX_BYTES};
use crate::context::ExecCtx;
use crate::errors::TxError;
use crate::events::Event;

pub use hpc_primitives::contract::limits::MAX_MSGS_PER_TX;

/// Bytes a simulation adds per signer whose signature is missing or empty, as clients
/// (CosmJS, cosmpy, the Go SDK) simulate: a 64-byte secp256k1 signature and its field
/// header, the size gas the signed tx will pay.
const SIMULATED_SIGNATURE_BYTES: u64 = 66;
/// Bytes a simulation adds when the tx has no fee amount: one fee coin (denom and a
/// 20-digit amount) and the gas limit, as the signed tx will carry them.
const SIMULATED_FEE_BYTES: u64 = 48;

/// What the ante handler established about a tx.
#[derive(Debug)]
pub struct AnteOutcome {
    /// The tx's messages, in order, each having passed its stateless checks: what the
    /// message loop executes.
    pub msgs: Vec<ValidatedMsg>,
    pub signers: Vec<Address>,
    pub fee_payer: Address,
    pub fee: Coins,
}

/// What the ante handler takes from the node rather than from the chain: neither can make
/// two nodes disagree on a block (the minimum gas prices apply to the mempool only; the
/// verified-signature cache only skips repeated work).
#[derive(Debug, Default)]
pub struct NodeLocal {
    pub min_gas_prices: GasPrices,
    pub verified: VerifiedSignatures,
}

/// Signer `index` of `tx`, at address `signer`.
struct SignerOfTx<'a> {
    tx: &'a DecodedTx,
    index: usize,
    signer: &'a Address,
}

/// Runs the ante checks against `state`, charging gas to `ctx.meter`: small steps in the
/// Cosmos SDK's decorator order, so the cheap stateless checks and the fee come before
/// the costly signature verification.
pub fn run_ante(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    tx: &DecodedTx,
    mode: Mode,
    node: &NodeLocal,
) -> Result<AnteOutcome, TxError> {
    let params = AuthKeeper::params(state);
    let limits = ConsensusKeeper::limits(state);
    let fee = set_up_gas(tx, mode, &limits)?;
    let msgs = validate_basic(tx, mode, &params)?;
    check_timeout_height(tx, ctx)?;
    validate_memo(tx, &params)?;
    consume_gas_for_size(tx, ctx, mode, &params, &limits)?;
    let signers = signers_of(tx, &msgs, mode)?;
    let fee_payer = fee_payer_of(fee, &signers)?;
    let fee_coins = fee_coins(fee)?;
    if matches!(mode, Mode::Check | Mode::Recheck) {
        check_min_gas_prices(&fee_coins, fee.gas_limit, &node.min_gas_prices)?;
    }
    let deducted = fee_to_deduct(state, mode, &fee_payer, &fee_coins);
    deduct_fee(state, ctx, &fee_payer, &deducted)?;
    let mut events = vec![Event::new(sdk_events::TX)
        .attr(sdk_attrs::FEE, &fee_coins)
        .attr(sdk_attrs::FEE_PAYER, fee_payer)];
    for (i, signer) in signers.iter().enumerate() {
        let signer_tx = SignerOfTx {
            tx,
            index: i,
            signer,
        };
        events.extend(verify_signer(
            state,
            ctx,
            &signer_tx,
            mode,
            &params,
            &node.verified,
        )?);
    }
    ctx.events.splice(0..0, events);
    Ok(AnteOutcome {
        msgs,
        signers,
        fee_payer,
        fee: fee_coins,
    })
}

/// SetUpContext: the fee and its gas limit, which must fit the block and the ABCI
/// result's signed 64-bit field.
fn set_up_gas<'t>(tx: &'t DecodedTx, mode: Mode, limits: &BlockLimits) -> Result<&'t Fee, TxError> {
    let fee = tx
        .auth_info
        .fee
        .as_ref()
        .ok_or_else(|| TxError::invalid_request("auth_info.fee: missing"))?;
    if fee.gas_limit == 0 && mode != Mode::Simulate {
        return Err(TxError::invalid_request(
            "auth_info.fee.gas_limit: must be positive (use --gas auto to estimate)",
        ));
    }
    if i64::try_from(fee.gas_limit).is_err() {
        return Err(TxError::invalid_gas_limit(format!(
            "auth_info.fee.gas_limit {} exceeds {}",
            fee.gas_limit,
            i64::MAX
        )));
    }
    if let Some(max_gas) = limits.max_gas() {
        if fee.gas_limit > max_gas {
            return Err(TxError::invalid_gas_limit(format!(
                "auth_info.fee.gas_limit {} exceeds the block max gas {max_gas}",
                fee.gas_limit
            )));
        }
    }
    Ok(fee)
}

/// ValidateBasic of the tx and of every message (which yields the validated messages and
/// their signers); signature counts.
fn validate_basic(
    tx: &DecodedTx,
    mode: Mode,
    params: &AuthParams,
) -> Result<Vec<ValidatedMsg>, TxError> {
    if tx.msgs.len() > MAX_MSGS_PER_TX {
        return Err(TxError::invalid_request(format!(
            "messages: {} exceeds the limit of {MAX_MSGS_PER_TX} per tx",
            tx.msgs.len()
        )));
    }
    let msgs = tx
        .msgs
        .iter()
        .enumerate()
        .map(|(i, msg)| {
            msg.clone().validate().map_err(|e| TxError {
                log: format!("messages[{i}]: {}", e.log),
                ..e
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if mode != Mode::Simulate && tx.raw.signatures.is_empty() {
        return Err(TxError::no_signatures("no signatures supplied"));
    }
    if tx.raw.signatures.len() as u64 > params.tx_sig_limit {
        return Err(TxError::too_many_signatures(format!(
            "signatures: {} exceeds the limit of {}",
            tx.raw.signatures.len(),
            params.tx_sig_limit
        )));
    }
    Ok(msgs)
}

fn check_timeout_height(tx: &DecodedTx, ctx: &ExecCtx) -> Result<(), TxError> {
    if tx.body.timeout_height != 0 && ctx.block.height > tx.body.timeout_height {
        return Err(TxError::tx_timeout_height(format!(
            "timeout_height: block height {} is past the tx's timeout height {}",
            ctx.block.height, tx.body.timeout_height
        )));
    }
    Ok(())
}

fn validate_memo(tx: &DecodedTx, params: &AuthParams) -> Result<(), TxError> {
    let characters = tx.body.memo.chars().count() as u64;
    if characters > params.max_memo_characters {
        return Err(TxError::memo_too_large(format!(
            "memo: {characters} characters exceeds the maximum of {}",
            params.max_memo_characters
        )));
    }
    Ok(())
}

/// The size limit, then the size gas every tx pays (in simulation, of the tx as it will be
/// signed).
fn consume_gas_for_size(
    tx: &DecodedTx,
    ctx: &ExecCtx,
    mode: Mode,
    params: &AuthParams,
    limits: &BlockLimits,
) -> Result<(), TxError> {
    let max_size = match u64::try_from(limits.max_bytes) {
        Ok(block_max) => block_max.min(MAX_TX_BYTES),
        Err(_) => MAX_TX_BYTES,
    };
    if tx.size as u64 > max_size {
        return Err(TxError::tx_too_large(format!(
            "tx size {} bytes exceeds the limit of {max_size} bytes",
            tx.size
        )));
    }
    let size = if mode == Mode::Simulate {
        (tx.size as u64).saturating_add(simulated_missing_bytes(tx))
    } else {
        tx.size as u64
    };
    ctx.meter
        .consume(params.tx_size_cost_per_byte.saturating_mul(size));
    Ok(())
}

/// The bytes a simulated tx lacks compared with its signed form: signatures (clients send
/// none or empty ones) and a fee (CosmJS and cosmpy simulate without one).
fn simulated_missing_bytes(tx: &DecodedTx) -> u64 {
    let unsigned = (0..tx.auth_info.signer_infos.len())
        .filter(|&i| tx.raw.signatures.get(i).is_none_or(|s| s.is_empty()))
        .count() as u64;
    let no_fee = tx.auth_info.fee.as_ref().is_none_or(fee_is_zero);
    unsigned
        .saturating_mul(SIMULATED_SIGNATURE_BYTES)
        .saturating_add(if no_fee { SIMULATED_FEE_BYTES } else { 0 })
}

/// What the ante handler deducts: the tx's fee or, when a client simulates without one,
/// one unit of the fee denom (if the payer has it), so that the estimate includes the
/// gas of the deduction the signed tx will pay.
fn fee_to_deduct(state: &impl StateWrite, mode: Mode, payer: &Address, fee: &Coins) -> Coins {
    if mode == Mode::Simulate && fee.is_empty() && BankKeeper::balance(state, payer, FEE_DENOM) > 0
    {
        Coins::single(FEE_DENOM, 1)
    } else {
        fee.clone()
    }
}

/// One signer per distinct message signer, in message order, each with a signer info
/// (and, except in simulation, a signature).
fn signers_of(tx: &DecodedTx, msgs: &[ValidatedMsg], mode: Mode) -> Result<Vec<Address>, TxError> {
    let mut signers: Vec<Address> = Vec::new();
    for msg in msgs {
        let signer = msg.signer();
        if !signers.contains(&signer) {
            signers.push(signer);
        }
    }
    let signer_infos = &tx.auth_info.signer_infos;
    if signer_infos.len() != signers.len()
        || (mode != Mode::Simulate && tx.raw.signatures.len() != signers.len())
    {
        return Err(TxError::unauthorized(format!(
            "wrong number of signers; expected {}, got {} signer infos and {} signatures",
            signers.len(),
            signer_infos.len(),
            tx.raw.signatures.len()
        )));
    }
    Ok(signers)
}

fn fee_payer_of(fee: &Fee, signers: &[Address]) -> Result<Address, TxError> {
    if fee.payer.is_empty() {
        return signers
            .first()
            .copied()
            .ok_or_else(|| TxError::no_signatures("the tx has no signer"));
    }
    let payer: Address = fee
        .payer
        .parse()
        .map_err(|e| TxError::invalid_address(format!("auth_info.fee.payer: {e}")))?;
    if !signers.contains(&payer) {
        return Err(TxError::unauthorized(format!(
            "auth_info.fee.payer {payer} is not a signer of this tx"
        )));
    }
    Ok(payer)
}

/// No fee, or amounts that are all zero: the Cosmos SDK deducts nothing for such a fee and
/// accepts it (its Go client simulates with `0uvirt`, gas prices × a zero gas limit).
fn fee_is_zero(fee: &Fee) -> bool {
    fee.amount
        .iter()
        .all(|coin| coin.amount.parse::<u128>() == Ok(0))
}

fn fee_coins(fee: &Fee) -> Result<Coins, TxError> {
    let coins = if fee_is_zero(fee) {
        Coins::from_proto_zeros_allowed(&fee.amount, "auth_info.fee.amount")?
    } else {
        Coins::from_proto(&fee.amount, "auth_info.fee.amount")?
    };
    if let Some((denom, _)) = coins.iter().find(|(denom, _)| *denom != FEE_DENOM) {
        return Err(TxError::insufficient_fee(format!(
            "auth_info.fee.amount: fees are paid in {FEE_DENOM}, not {denom}"
        )));
    }
    Ok(coins)
}

/// Node-local minimum gas prices (mempool admission only).
fn check_min_gas_prices(
    fee_coins: &Coins,
    gas_limit: u64,
    min_gas_prices: &GasPrices,
) -> Result<(), TxError> {
    let required = min_gas_prices.required_fees(gas_limit);
    if required.is_empty()
        || required
            .iter()
            .any(|(denom, amount)| fee_coins.amount_of(denom) >= amount)
    {
        return Ok(());
    }
    Err(TxError::insufficient_fee(format!(
        "insufficient fees; got: {} required: {required} (gas {gas_limit} × minimum gas price)",
        if fee_coins.is_empty() {
            "0".to_string()
        } else {
            fee_coins.to_string()
        },
    )))
}

fn deduct_fee(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    fee_payer: &Address,
    fee_coins: &Coins,
) -> Result<(), TxError> {
    if fee_coins.is_empty() {
        return Ok(());
    }
    let collector = Address::module(FEE_COLLECTOR);
    BankKeeper::send(state, ctx, fee_payer, &collector, fee_coins).map_err(|e| {
        // The account is read only on this failure path, so a paying tx costs no more gas.
        if AuthKeeper::account(state, fee_payer).is_none() {
            return TxError::unknown_address(format!(
                "account {fee_payer} does not exist; it is created when it first receives funds"
            ));
        }
        TxError::insufficient_funds(format!("insufficient funds to pay fees: {}", e.log))
    })
}

/// SetPubKey, SigGasConsume, SigVerification and IncrementSequence for signer `i`;
/// returns its `tx` events.
fn verify_signer(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    of: &SignerOfTx,
    mode: Mode,
    params: &AuthParams,
    verified: &VerifiedSignatures,
) -> Result<Vec<Event>, TxError> {
    let SignerOfTx {
        tx,
        index: i,
        signer,
    } = *of;
    let info = &tx.auth_info.signer_infos[i];
    let mut account = AuthKeeper::account(state, signer).ok_or_else(|| {
        TxError::unknown_address(format!(
            "account {signer} does not exist; it is created when it first receives funds"
        ))
    })?;
    let pubkey = signer_pubkey(info, account.pub_key.as_ref(), signer, i)?;
    // Checked after the key: a key that is not the message signer's is reported as
    // such, not as a sequence problem of someone else's account.
    if info.sequence != account.sequence {
        return Err(TxError::wrong_sequence(format!(
            "account sequence mismatch, expected {}, got {}: incorrect account sequence",
            account.sequence, info.sequence
        )));
    }
    ctx.meter.consume(params.sig_verify_cost_secp256k1);
    // Simulations carry no signature, and clients leave the sign mode unspecified there
    // (CosmJS); the Cosmos SDK skips both checks when simulating, and so does this. A
    // recheck re-runs a tx whose signature CheckTx already verified (as the SDK does on
    // ReCheckTx).
    if mode != Mode::Simulate {
        check_sign_mode(info, i)?;
    }
    if !matches!(mode, Mode::Simulate | Mode::Recheck) {
        let signature = &tx.raw.signatures[i];
        let (chain_id, account_number) = (&ctx.block.chain_id, account.account_number);
        if !signature_verifies(tx, chain_id, account_number, &pubkey, signature, verified) {
            return Err(TxError::unauthorized(format!(
                "signature verification failed; please verify account number ({}), sequence ({}) and chain-id ({})",
                account.account_number, account.sequence, ctx.block.chain_id
            )));
        }
    }
    let mut events = vec![Event::new(sdk_events::TX)
        .attr(sdk_attrs::ACC_SEQ, format!("{signer}/{}", account.sequence))];
    if let Some(sig) = tx.raw.signatures.get(i) {
        events.push(Event::new(sdk_events::TX).attr(
            sdk_attrs::SIGNATURE,
            base64::engine::general_purpose::STANDARD.encode(sig),
        ));
    }
    account.sequence = account.sequence.saturating_add(1);
    if account.pub_key.is_none() {
        account.pub_key = Some(pack_pubkey(&pubkey));
    }
    AuthKeeper::set_account(state, signer, &account);
    Ok(events)
}

/// Verifies, ahead of the tx's CheckTx and on any thread, the signatures of `tx_bytes`
/// whose signer info carries its public key, with the account number of that key's
/// account in `state`, and remembers the successes in `verified`. A hint only: it answers
/// nothing and writes no state; CheckTx still runs every check in arrival order and just
/// finds the work done (or, for anything skipped here, does it).
pub fn preverify_signatures(
    state: &impl StateRead,
    chain_id: &str,
    tx_bytes: &[u8],
    verified: &VerifiedSignatures,
) {
    let Ok(tx) = super::decode_tx(tx_bytes) else {
        return;
    };
    for (info, signature) in tx.auth_info.signer_infos.iter().zip(&tx.raw.signatures) {
        let Some(pubkey) = info
            .public_key
            .as_ref()
            .and_then(|any| unpack_pubkey(any).ok())
        else {
            continue;
        };
        let address = Address::from_secp256k1_pubkey(&pubkey);
        let Some(account) = AuthKeeper::account(state, &address) else {
            continue;
        };
        signature_verifies(
            &tx,
            chain_id,
            account.account_number,
            &pubkey,
            signature,
            verified,
        );
    }
}

/// Whether `signature` by `pubkey` signs `tx` (SIGN_MODE_DIRECT: body, auth info, chain id
/// and account number), answered from `verified` when this node already checked it.
fn signature_verifies(
    tx: &DecodedTx,
    chain_id: &str,
    account_number: u64,
    pubkey: &[u8],
    signature: &[u8],
    verified: &VerifiedSignatures,
) -> bool {
    let message = SignDoc {
        body_bytes: tx.raw.body_bytes.clone(),
        auth_info_bytes: tx.raw.auth_info_bytes.clone(),
        chain_id: chain_id.to_string(),
        account_number,
    }
    .encode_to_vec();
    verified.check(pubkey, &message, signature, || {
        verify_secp256k1(pubkey, &message, signature)
    })
}

fn check_sign_mode(info: &SignerInfo, i: usize) -> Result<(), TxError> {
    match info.mode_info.as_ref().and_then(|m| m.sum.as_ref()) {
        Some(mode_info::Sum::Single(single)) if single.mode == SignMode::Direct as i32 => Ok(()),
        _ => Err(TxError::not_supported(format!(
            "signer_infos[{i}].mode_info: only single-signer SIGN_MODE_DIRECT is supported"
        ))),
    }
}

/// The signer's public key: the one in the tx (which must match the address) or the one
/// stored with the account.
fn signer_pubkey(
    info: &SignerInfo,
    stored: Option<&cosmos_sdk_proto::Any>,
    signer: &Address,
    i: usize,
) -> Result<Vec<u8>, TxError> {
    match (&info.public_key, stored) {
        (Some(any), _) => {
            let key = unpack_pubkey(any).map_err(|e| {
                TxError::invalid_pubkey(format!("signer_infos[{i}].public_key: {e}"))
            })?;
            if Address::from_secp256k1_pubkey(&key) != *signer {
                return Err(TxError::invalid_pubkey(format!(
                    "signer_infos[{i}].public_key does not match signer address {signer}"
                )));
            }
            Ok(key)
        }
        (None, Some(stored)) => unpack_pubkey(stored).map_err(TxError::invalid_pubkey),
        (None, None) => Err(TxError::invalid_pubkey(format!(
            "signer_infos[{i}].public_key: required for the first tx of {signer}"
        ))),
    }
}

/// Verifies a secp256k1 ECDSA signature as the Cosmos SDK does: a 33-byte compressed key
/// and a 64-byte `r ‖ s` signature in low-S form over sha256(message). libsecp256k1 (the
/// C library Bitcoin Core uses) does the curve arithmetic, about 2-3x faster than k256;
/// a test checks both agree on valid, mutated, high-S and malformed inputs.
pub fn verify_secp256k1(compressed_pubkey: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use secp256k1::{ecdsa, Message, PublicKey, Secp256k1, VerifyOnly};
    static CONTEXT: std::sync::OnceLock<Secp256k1<VerifyOnly>> = std::sync::OnceLock::new();
    if compressed_pubkey.len() != 33 {
        return false;
    }
    let (Ok(key), Ok(sig)) = (
        PublicKey::from_slice(compressed_pubkey),
        ecdsa::Signature::from_compact(signature),
    ) else {
        return false;
    };
    let digest: [u8; 32] = sha2::Sha256::digest(message).into();
    // verify_ecdsa refuses a high-S signature, as the SDK does (no malleable twins).
    CONTEXT
        .get_or_init(Secp256k1::verification_only)
        .verify_ecdsa(&Message::from_digest(digest), &sig, &key)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::verify_secp256k1;
    use k256::ecdsa::signature::{Signer, Verifier};
    use k256::ecdsa::{Signature, SigningKey, VerifyingKey};

    /// The reference: k256, with the SDK's low-S rule.
    fn k256_verifies(pubkey: &[u8], message: &[u8], signature: &[u8]) -> bool {
        let (Ok(key), Ok(sig)) = (
            VerifyingKey::from_sec1_bytes(pubkey),
            Signature::from_slice(signature),
        ) else {
            return false;
        };
        sig.normalize_s().is_none() && key.verify(message, &sig).is_ok()
    }

    /// libsecp256k1 and k256 agree on valid signatures and on every mutation: flipped
    /// bits in the signature, key and message, the high-S twin, zero and overflowing
    /// scalars, wrong lengths.
    #[test]
    fn libsecp256k1_agrees_with_k256_on_valid_and_mutated_inputs() {
        let mut checked = 0;
        for seed in 1u8..=40 {
            let key = SigningKey::from_slice(&[seed; 32]).unwrap();
            let pubkey = key
                .verifying_key()
                .to_encoded_point(true)
                .as_bytes()
                .to_vec();
            let message = format!("sign doc {seed}").into_bytes();
            let sig: Signature = key.sign(&message);
            let sig = sig.normalize_s().unwrap_or(sig).to_bytes().to_vec();
            let mut cases = vec![(pubkey.clone(), message.clone(), sig.clone(), true)];
            for bit in [0usize, 77, 255, 300, 511] {
                let mut s = sig.clone();
                s[bit / 8] ^= 1 << (bit % 8);
                cases.push((pubkey.clone(), message.clone(), s, false));
            }
            let mut k = pubkey.clone();
            k[seed as usize % 32 + 1] ^= 1;
            cases.push((k, message.clone(), sig.clone(), false));
            cases.push((pubkey.clone(), b"another doc".to_vec(), sig.clone(), false));
            // The high-S twin: s' = n - s verifies mathematically; both refuse it.
            let parsed = Signature::from_slice(&sig).unwrap();
            let high = Signature::from_scalars(parsed.r(), -*parsed.s()).unwrap();
            cases.push((
                pubkey.clone(),
                message.clone(),
                high.to_bytes().to_vec(),
                false,
            ));
            cases.push((pubkey.clone(), message.clone(), vec![0; 64], false));
            cases.push((pubkey.clone(), message.clone(), vec![0xff; 64], false));
            cases.push((pubkey.clone(), message.clone(), sig[..63].to_vec(), false));
            cases.push((pubkey[..32].to_vec(), message.clone(), sig.clone(), false));
            for (k, m, s, expected) in cases {
                assert_eq!(
                    k256_verifies(&k, &m, &s),
                    expected,
                    "reference, seed {seed}"
                );
                assert_eq!(verify_secp256k1(&k, &m, &s), expected, "seed {seed}");
                checked += 1;
            }
        }
        assert_eq!(checked, 40 * 13);
    }
}
