//! The ante handler: every check a tx passes before its messages run, in the order the
//! specification gives. A failure here changes no state; on success the fee is deducted
//! and every signer's sequence is bumped (kept even if a message then fails).

use base64::Engine;
use cosmos_sdk_proto::cosmos::tx::signing::v1beta1::SignMode;
use cosmos_sdk_proto::cosmos::tx::v1beta1::{mode_info, SignDoc};
use hpc_store::StateWrite;
use k256::ecdsa::signature::Verifier;
use k256::ecdsa::{Signature, VerifyingKey};
use prost::Message;

use super::{DecodedTx, Mode};
use crate::address::Address;
use crate::auth::AuthKeeper;
use crate::auth::{pack_pubkey, unpack_pubkey};
use crate::bank::{BankKeeper, FEE_COLLECTOR};
use crate::coins::{Coins, GasPrices, FEE_DENOM};
use crate::consensus::{ConsensusKeeper, MAX_TX_BYTES};
use crate::context::ExecCtx;
use crate::errors::TxError;
use crate::events::Event;

/// What the ante handler established about a tx.
#[derive(Debug)]
pub struct AnteOutcome {
    pub signers: Vec<Address>,
    pub fee_payer: Address,
    pub fee: Coins,
}

/// Runs the ante checks against `state`, charging gas to `ctx.meter`.
pub fn run_ante(
    state: &mut impl StateWrite,
    ctx: &mut ExecCtx,
    tx: &DecodedTx,
    mode: Mode,
    min_gas_prices: &GasPrices,
) -> Result<AnteOutcome, TxError> {
    let params = AuthKeeper::params(state);

    // Size limit, then the size gas every tx pays.
    let limits = ConsensusKeeper::limits(state);
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
    ctx.meter
        .consume(params.tx_size_cost_per_byte.saturating_mul(tx.size as u64));

    // ValidateBasic of the tx and of every message.
    if tx.body.memo.chars().count() as u64 > params.max_memo_characters {
        return Err(TxError::memo_too_large(format!(
            "memo: {} characters exceeds the maximum of {}",
            tx.body.memo.chars().count(),
            params.max_memo_characters
        )));
    }
    if tx.body.timeout_height != 0 && ctx.block.height > tx.body.timeout_height {
        return Err(TxError::tx_timeout_height(format!(
            "timeout_height: block height {} is past the tx's timeout height {}",
            ctx.block.height, tx.body.timeout_height
        )));
    }
    let fee = tx
        .auth_info
        .fee
        .as_ref()
        .ok_or_else(|| TxError::invalid_request("auth_info.fee: missing"))?;
    let fee_coins = Coins::from_proto(&fee.amount, "auth_info.fee.amount")?;
    if let Some((denom, _)) = fee_coins.iter().find(|(denom, _)| *denom != FEE_DENOM) {
        return Err(TxError::insufficient_fee(format!(
            "auth_info.fee.amount: fees are paid in {FEE_DENOM}, not {denom}"
        )));
    }
    if fee.gas_limit == 0 && mode != Mode::Simulate {
        return Err(TxError::invalid_request(
            "auth_info.fee.gas_limit: must be positive (use --gas auto to estimate)",
        ));
    }
    for (i, msg) in tx.msgs.iter().enumerate() {
        msg.validate_basic().map_err(|e| TxError {
            log: format!("messages[{i}]: {}", e.log),
            ..e
        })?;
    }

    // Signers: one per distinct message signer, in message order.
    let mut signers: Vec<Address> = Vec::new();
    for msg in &tx.msgs {
        let signer = msg.signer()?;
        if !signers.contains(&signer) {
            signers.push(signer);
        }
    }
    let signer_infos = &tx.auth_info.signer_infos;
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
    let fee_payer = if fee.payer.is_empty() {
        signers[0]
    } else {
        let payer: Address = fee
            .payer
            .parse()
            .map_err(|e| TxError::invalid_address(format!("auth_info.fee.payer: {e}")))?;
        if !signers.contains(&payer) {
            return Err(TxError::unauthorized(format!(
                "auth_info.fee.payer {payer} is not a signer of this tx"
            )));
        }
        payer
    };
    // Per signer: account, sequence, public key, signature.
    let mut events = vec![Event::new("tx")
        .attr("fee", &fee_coins)
        .attr("fee_payer", fee_payer)];
    for (i, (signer, info)) in signers.iter().zip(signer_infos).enumerate() {
        let mut account = AuthKeeper::account(state, signer).ok_or_else(|| {
            TxError::unknown_address(format!(
                "account {signer} does not exist; it is created when it first receives funds"
            ))
        })?;
        let pubkey = match (&info.public_key, &account.pub_key) {
            (Some(any), _) => {
                let key = unpack_pubkey(any).map_err(|e| {
                    TxError::invalid_pubkey(format!("signer_infos[{i}].public_key: {e}"))
                })?;
                if Address::from_secp256k1_pubkey(&key) != *signer {
                    return Err(TxError::invalid_pubkey(format!(
                        "signer_infos[{i}].public_key does not match signer address {signer}"
                    )));
                }
                key
            }
            (None, Some(stored)) => unpack_pubkey(stored).map_err(TxError::invalid_pubkey)?,
            (None, None) => {
                return Err(TxError::invalid_pubkey(format!(
                    "signer_infos[{i}].public_key: required for the first tx of {signer}"
                )))
            }
        };
        // Checked after the key: a key that is not the message signer's is reported as
        // such, not as a sequence problem of someone else's account.
        if info.sequence != account.sequence {
            return Err(TxError::wrong_sequence(format!(
                "account sequence mismatch, expected {}, got {}: incorrect account sequence",
                account.sequence, info.sequence
            )));
        }
        ctx.meter.consume(params.sig_verify_cost_secp256k1);
        match info.mode_info.as_ref().and_then(|m| m.sum.as_ref()) {
            Some(mode_info::Sum::Single(single)) if single.mode == SignMode::Direct as i32 => {}
            _ => {
                return Err(TxError::not_supported(format!(
                    "signer_infos[{i}].mode_info: only single-signer SIGN_MODE_DIRECT is supported"
                )))
            }
        }
        // Simulations carry no signature; a recheck re-runs a tx whose signature CheckTx
        // already verified (as the Cosmos SDK does on ReCheckTx).
        if !matches!(mode, Mode::Simulate | Mode::Recheck) {
            let chain_id = ctx.block.chain_id.clone();
            let sign_doc = SignDoc {
                body_bytes: tx.raw.body_bytes.clone(),
                auth_info_bytes: tx.raw.auth_info_bytes.clone(),
                chain_id: chain_id.clone(),
                account_number: account.account_number,
            };
            if !verify_secp256k1(&pubkey, &sign_doc.encode_to_vec(), &tx.raw.signatures[i]) {
                return Err(TxError::unauthorized(format!(
                    "signature verification failed; please verify account number ({}), sequence ({}) and chain-id ({chain_id})",
                    account.account_number, account.sequence
                )));
            }
        }
        events.push(Event::new("tx").attr("acc_seq", format!("{signer}/{}", account.sequence)));
        if let Some(sig) = tx.raw.signatures.get(i) {
            events.push(Event::new("tx").attr(
                "signature",
                base64::engine::general_purpose::STANDARD.encode(sig),
            ));
        }
        account.sequence += 1;
        if account.pub_key.is_none() {
            account.pub_key = Some(pack_pubkey(&pubkey));
        }
        AuthKeeper::set_account(state, signer, &account);
    }

    // The block gas limit.
    if let Some(max_gas) = limits.max_gas() {
        if fee.gas_limit > max_gas {
            return Err(TxError::invalid_gas_limit(format!(
                "auth_info.fee.gas_limit {} exceeds the block max gas {max_gas}",
                fee.gas_limit
            )));
        }
    }
    // Node-local minimum gas prices (mempool admission only).
    if matches!(mode, Mode::Check | Mode::Recheck) {
        let required = min_gas_prices.required_fees(fee.gas_limit);
        if !required.is_empty()
            && !required
                .iter()
                .any(|(denom, amount)| fee_coins.amount_of(denom) >= amount)
        {
            return Err(TxError::insufficient_fee(format!(
                "insufficient fees; got: {} required: {} (gas {} × minimum gas price)",
                if fee_coins.is_empty() {
                    "0".to_string()
                } else {
                    fee_coins.to_string()
                },
                required,
                fee.gas_limit
            )));
        }
    }

    // Fee deduction.
    if !fee_coins.is_empty() {
        let collector = Address::module(FEE_COLLECTOR);
        BankKeeper::send(state, ctx, &fee_payer, &collector, &fee_coins).map_err(|e| {
            TxError::insufficient_funds(format!("insufficient funds to pay fees: {}", e.log))
        })?;
    }
    ctx.events.splice(0..0, events);
    Ok(AnteOutcome {
        signers,
        fee_payer,
        fee: fee_coins,
    })
}

/// Verifies a 64-byte `r‖s` secp256k1 signature over SHA-256(`message`), rejecting
/// high-S (malleable) signatures as Cosmos does.
pub fn verify_secp256k1(compressed_pubkey: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_sec1_bytes(compressed_pubkey) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(signature) else {
        return false;
    };
    if sig.normalize_s().is_some() {
        return false;
    }
    key.verify(message, &sig).is_ok()
}
