//! The enforcer's side of the chain: one signer whose account sequence is managed for
//! every tx this provider sends (audit batches, violation batches, reschedule requests,
//! heartbeats, job status), and the outbox's [`ChainSink`] on top of it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cosmos_sdk_proto::Any;
use cosmrs::crypto::secp256k1::SigningKey;
use hpc_client::tx::{address_of, SignerAccount, TxOptions};
use hpc_client::{ChainClient, ClientError, TxResult};
use hpc_outbox::{Batch, ChainSink, ItemKind, ItemRef, OutboxItem, SubmitError, TxStatus};
use hpc_primitives::contract::sdk_codes;
use hpc_primitives::Address;
use hpc_proto::to_any;
use hpc_proto::virtengine::hpc::v1::{MsgRecordRoutingAudit, MsgReportRoutingViolation};
use tokio::sync::Mutex;

/// The sequence in "account sequence mismatch, expected N, got M".
fn expected_sequence(log: &str) -> Option<u64> {
    let rest = &log[log.find("expected ")? + "expected ".len()..];
    rest.chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// Whether the chain refused a tx with x/hpc (or sdk) code `(codespace, code)`, in a block
/// or in simulation: by code, never by the error's text.
pub fn refused_with(e: &ClientError, codespace: &str, code: u32) -> bool {
    e.tx_code()
        .is_some_and(|(cs, c)| cs == codespace && c == code)
}

/// Whether the chain refused a tx with any code of `codespace`, in a block or in simulation.
pub fn refused_by(e: &ClientError, codespace: &str) -> bool {
    e.tx_code().is_some_and(|(cs, _)| cs == codespace)
}

/// Maps a client error to what the outbox should do about it.
pub fn classify(e: &ClientError) -> SubmitError {
    let log = match e {
        ClientError::TxFailed { log, .. } => log.clone(),
        ClientError::Grpc { status, .. } => status.message().to_string(),
        other => other.to_string(),
    };
    match e.tx_code() {
        Some((codespace, code))
            if codespace == sdk_codes::CODESPACE && code == sdk_codes::WRONG_SEQUENCE =>
        {
            SubmitError::SequenceMismatch(log)
        }
        Some((codespace, code)) => SubmitError::Rejected {
            code,
            codespace,
            log,
        },
        None => SubmitError::Unavailable(e.to_string()),
    }
}

pub struct ChainGateway {
    pub client: ChainClient,
    key: SigningKey,
    pub provider: Address,
    opts: TxOptions,
    /// The account as this process last left it; `None` = re-read from the chain.
    account: Mutex<Option<SignerAccount>>,
    max_batch_size: AtomicUsize,
}

impl ChainGateway {
    pub fn new(
        client: ChainClient,
        key: SigningKey,
        opts: TxOptions,
        max_batch_size: usize,
    ) -> Self {
        let provider = address_of(&key);
        Self {
            client,
            key,
            provider,
            opts,
            account: Mutex::new(None),
            max_batch_size: AtomicUsize::new(max_batch_size.max(1)),
        }
    }

    pub fn set_max_batch_size(&self, n: usize) {
        self.max_batch_size.store(n.max(1), Ordering::Relaxed);
    }

    /// Signs and broadcasts `msgs` with the managed sequence; returns once the mempool
    /// accepted the tx. A sequence mismatch re-reads the account and retries once.
    pub async fn send(&self, msgs: Vec<Any>) -> Result<TxResult, ClientError> {
        let mut guard = self.account.lock().await;
        for attempt in 0..3 {
            let account = match *guard {
                Some(a) => a,
                None => self.client.signer_account(&self.provider).await?,
            };
            match self
                .client
                .sign_and_broadcast_with(&self.key, &account, msgs.clone(), &self.opts)
                .await
            {
                Ok(result) => {
                    *guard = Some(SignerAccount {
                        sequence: account.sequence + 1,
                        ..account
                    });
                    return Ok(result);
                }
                Err(e) => {
                    let SubmitError::SequenceMismatch(log) = classify(&e) else {
                        // Refused before inclusion: the sequence was not used.
                        *guard = Some(account);
                        return Err(e);
                    };
                    // The committed account lags the mempool while our earlier txs wait
                    // for a block; the node says which sequence it expects.
                    *guard = expected_sequence(&log).map(|sequence| SignerAccount {
                        sequence,
                        ..account
                    });
                    if attempt < 2 {
                        tracing::info!(expected = ?guard.map(|a| a.sequence), "account sequence mismatch; retrying");
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Sends and waits for the block; fails if the tx failed.
    pub async fn send_and_wait(
        &self,
        msgs: Vec<Any>,
        timeout: Duration,
    ) -> Result<TxResult, ClientError> {
        let submitted = self.send(msgs).await?;
        let result = self.client.wait_for_tx(&submitted.txhash, timeout).await?;
        if !result.is_ok() {
            return Err(result.into_error());
        }
        Ok(result)
    }
}

impl ChainSink for ChainGateway {
    async fn submit(&self, batch: &Batch) -> Result<String, SubmitError> {
        let msg = match batch {
            Batch::Audits(records) => to_any(&MsgRecordRoutingAudit {
                provider: self.provider.to_string(),
                records: records.clone(),
            }),
            Batch::Violations(violations) => to_any(&MsgReportRoutingViolation {
                reporter: self.provider.to_string(),
                violations: violations.clone(),
            }),
        };
        self.send(vec![msg])
            .await
            .map(|r| r.txhash)
            .map_err(|e| classify(&e))
    }

    async fn tx_result(&self, txhash: &str) -> Result<TxStatus, SubmitError> {
        match self.client.transport.get_tx(txhash).await {
            Ok(Some(r)) => Ok(TxStatus::Included {
                code: r.code,
                codespace: r.codespace,
                log: r.raw_log,
            }),
            Ok(None) => Ok(TxStatus::NotFound),
            Err(e) => Err(SubmitError::Unavailable(e.to_string())),
        }
    }

    async fn stored(&self, item: &ItemRef) -> Result<Option<OutboxItem>, SubmitError> {
        let found = match item.kind {
            ItemKind::Audit => self
                .client
                .hpc_audit_record(&item.id)
                .await
                .map(|r| r.map(OutboxItem::Audit)),
            ItemKind::Violation => self
                .client
                .hpc_violation(&item.id)
                .await
                .map(|v| v.map(OutboxItem::Violation)),
        };
        found.map_err(|e| SubmitError::Unavailable(e.to_string()))
    }

    fn signer(&self) -> String {
        self.provider.to_string()
    }

    fn max_batch_size(&self) -> usize {
        self.max_batch_size.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_in_simulation_errors() {
        let msg = "invalid argument: simulation failed (codespace hpc, code 9): records[0]: record_id x is already recorded";
        assert_eq!(
            expected_sequence(
                "account sequence mismatch, expected 7, got 5: incorrect account sequence"
            ),
            Some(7)
        );
        assert_eq!(expected_sequence("garbled"), None);
        let e = ClientError::TxFailed {
            txhash: "H".into(),
            code: 32,
            codespace: "sdk".into(),
            log: "account sequence mismatch".into(),
        };
        assert!(matches!(classify(&e), SubmitError::SequenceMismatch(_)));
        let e = ClientError::Grpc {
            path: "/x".into(),
            status: Box::new(tonic::Status::invalid_argument(msg)),
        };
        assert!(matches!(
            classify(&e),
            SubmitError::Rejected { code: 9, .. }
        ));
        assert!(refused_with(&e, "hpc", 9));
        assert!(!refused_with(&e, "hpc", 7));
        let e = ClientError::Grpc {
            path: "/x".into(),
            status: Box::new(tonic::Status::unavailable("down")),
        };
        assert!(matches!(classify(&e), SubmitError::Unavailable(_)));
    }
}
