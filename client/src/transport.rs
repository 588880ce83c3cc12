//! One way to reach a node for everything the client does: queries by gRPC method path
//! (over gRPC, or over CometBFT's `abci_query` with the same path and bytes), tx
//! broadcast and tx lookup.

use std::str::FromStr;
use std::time::Duration;

use cosmos_sdk_proto::cosmos::base::abci::v1beta1::TxResponse;
use cosmos_sdk_proto::cosmos::tx::v1beta1::{
    BroadcastMode, BroadcastTxRequest, BroadcastTxResponse, GetTxRequest, GetTxResponse,
};
use prost::Message;
use tendermint_rpc::{Client, HttpClient};
use tonic::codec::ProstCodec;
use tonic::transport::{Channel, Endpoint};

use crate::error::{error_chain_text, rpc_error_text, ClientError, Result};

/// The request header selecting a query height (Cosmos SDK convention).
pub const HEIGHT_HEADER: &str = "x-cosmos-block-height";

#[derive(Clone)]
pub enum Transport {
    Grpc { channel: Channel, addr: String },
    Rpc { client: HttpClient, url: String },
}

/// The outcome of a tx: as broadcast (height 0) or as included in a block.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct TxResult {
    pub txhash: String,
    pub height: i64,
    pub code: u32,
    pub codespace: String,
    pub raw_log: String,
    pub gas_wanted: i64,
    pub gas_used: i64,
    pub timestamp: String,
    pub events: Vec<TxEvent>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct TxEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(serialize_with = "attributes_as_objects")]
    pub attributes: Vec<(String, String)>,
}

/// Attributes as `[{"key": .., "value": ..}]`, the shape Cosmos clients print.
fn attributes_as_objects<S: serde::Serializer>(
    attrs: &[(String, String)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(attrs.len()))?;
    for (key, value) in attrs {
        seq.serialize_element(&serde_json::json!({"key": key, "value": value}))?;
    }
    seq.end()
}

impl TxResult {
    pub fn is_ok(&self) -> bool {
        self.code == 0
    }

    /// The first value of `attribute` on an event of type `kind`.
    pub fn event_attr(&self, kind: &str, attribute: &str) -> Option<&str> {
        self.events
            .iter()
            .filter(|e| e.kind == kind)
            .flat_map(|e| e.attributes.iter())
            .find(|(k, _)| k == attribute)
            .map(|(_, v)| v.as_str())
    }

    pub fn into_error(self) -> ClientError {
        ClientError::TxFailed {
            txhash: self.txhash,
            code: self.code,
            codespace: self.codespace,
            log: self.raw_log,
        }
    }
}

impl From<TxResponse> for TxResult {
    fn from(r: TxResponse) -> Self {
        Self {
            txhash: r.txhash,
            height: r.height,
            code: r.code,
            codespace: r.codespace,
            raw_log: r.raw_log,
            gas_wanted: r.gas_wanted,
            gas_used: r.gas_used,
            timestamp: r.timestamp,
            events: r
                .events
                .into_iter()
                .map(|e| TxEvent {
                    kind: e.r#type,
                    attributes: e.attributes.into_iter().map(|a| (a.key, a.value)).collect(),
                })
                .collect(),
        }
    }
}

fn normalize_grpc_addr(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// Why the channel could not connect, as one line (e.g. `tcp connect error: Connection
/// refused (os error 111)`, `dns error: …`), when `status` is the client's own report of a
/// failed connection rather than an answer of the node.
fn connect_failure(status: &tonic::Status) -> Option<String> {
    use std::error::Error;
    if status.code() != tonic::Code::Unavailable {
        return None;
    }
    let source: &(dyn Error + 'static) = status.source()?;
    let connect = std::iter::successors(Some(source), |e| (*e).source())
        .any(|e| e.is::<tonic::ConnectError>());
    connect.then(|| error_chain_text(source))
}

impl Transport {
    /// A gRPC transport (`host:port` or `http://host:port`); connects lazily.
    pub fn grpc(addr: &str) -> Result<Self> {
        let url = normalize_grpc_addr(addr);
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| ClientError::invalid("--grpc-addr", format!("{addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        Ok(Transport::Grpc {
            channel: endpoint.connect_lazy(),
            addr: url,
        })
    }

    /// A CometBFT RPC transport (`http://host:port` or `tcp://host:port`).
    pub fn rpc(url: &str) -> Result<Self> {
        let url = url.replacen("tcp://", "http://", 1);
        let client = HttpClient::new(url.as_str()).map_err(|e| {
            ClientError::invalid("--node", format!("{url:?}: {}", rpc_error_text(&e)))
        })?;
        Ok(Transport::Rpc { client, url })
    }

    /// The CometBFT RPC client and its URL, for what only CometBFT serves (signed headers,
    /// Merkle proofs); `field` is the option that needs it, named in the error.
    pub fn cometbft(&self, field: &str) -> Result<(&HttpClient, &str)> {
        match self {
            Transport::Rpc { client, url } => Ok((client, url)),
            Transport::Grpc { .. } => Err(ClientError::invalid(
                field,
                "needs --node: signed headers and proofs come from CometBFT's RPC",
            )),
        }
    }

    /// Calls a query method by its gRPC path at `height` (0 = latest).
    pub async fn query<Req, Resp>(&self, path: &str, req: &Req, height: u64) -> Result<Resp>
    where
        Req: Message + Clone + 'static,
        Resp: Message + Default + 'static,
    {
        match self {
            Transport::Grpc { channel, addr } => {
                let mut grpc = tonic::client::Grpc::new(channel.clone());
                grpc.ready().await.map_err(|e| ClientError::Connect {
                    addr: addr.clone(),
                    reason: error_chain_text(&e),
                })?;
                let mut request = tonic::Request::new(req.clone());
                if height > 0 {
                    request.metadata_mut().insert(
                        HEIGHT_HEADER,
                        height
                            .to_string()
                            .parse()
                            .expect("digits are valid metadata"),
                    );
                }
                let path_and_query = tonic::codegen::http::uri::PathAndQuery::from_str(path)
                    .map_err(|e| ClientError::invalid("query path", e))?;
                let response = grpc
                    .unary(request, path_and_query, ProstCodec::<Req, Resp>::default())
                    .await
                    .map_err(|status| {
                        if let Some(reason) = connect_failure(&status) {
                            ClientError::Connect {
                                addr: addr.clone(),
                                reason,
                            }
                        } else {
                            ClientError::Grpc {
                                path: path.to_string(),
                                status: Box::new(status),
                            }
                        }
                    })?;
                Ok(response.into_inner())
            }
            Transport::Rpc { client, url } => {
                let height = if height == 0 {
                    None
                } else {
                    Some(
                        tendermint::block::Height::try_from(height)
                            .map_err(|e| ClientError::invalid("--height", e))?,
                    )
                };
                let result = client
                    .abci_query(Some(path.to_string()), req.encode_to_vec(), height, false)
                    .await
                    .map_err(|e| ClientError::rpc(url, e))?;
                if result.code.is_err() {
                    return Err(ClientError::AbciQuery {
                        path: path.to_string(),
                        code: result.code.value(),
                        log: result.log,
                    });
                }
                Resp::decode(result.value.as_slice()).map_err(|source| ClientError::Decode {
                    what: format!("{path} response"),
                    source,
                })
            }
        }
    }

    /// Submits a tx and returns the mempool's (CheckTx) verdict.
    pub async fn broadcast(&self, tx_bytes: Vec<u8>) -> Result<TxResult> {
        match self {
            Transport::Grpc { .. } => {
                let resp: BroadcastTxResponse = self
                    .query(
                        "/cosmos.tx.v1beta1.Service/BroadcastTx",
                        &BroadcastTxRequest {
                            tx_bytes,
                            mode: BroadcastMode::Sync as i32,
                        },
                        0,
                    )
                    .await?;
                Ok(resp.tx_response.unwrap_or_default().into())
            }
            Transport::Rpc { client, url } => {
                let r = client
                    .broadcast_tx_sync(tx_bytes)
                    .await
                    .map_err(|e| ClientError::rpc(url, e))?;
                Ok(TxResult {
                    txhash: r.hash.to_string(),
                    code: r.code.value(),
                    codespace: r.codespace,
                    raw_log: r.log,
                    ..Default::default()
                })
            }
        }
    }

    /// The included tx with this hash, `None` if it is not (yet) in a block.
    pub async fn get_tx(&self, hash: &str) -> Result<Option<TxResult>> {
        match self {
            Transport::Grpc { .. } => {
                let req = GetTxRequest {
                    hash: hash.to_string(),
                };
                match self
                    .query::<_, GetTxResponse>("/cosmos.tx.v1beta1.Service/GetTx", &req, 0)
                    .await
                {
                    Ok(resp) => Ok(resp.tx_response.map(Into::into)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Transport::Rpc { client, url } => {
                let parsed = tendermint::Hash::from_str(&hash.to_uppercase())
                    .map_err(|e| ClientError::invalid("tx hash", e))?;
                match client.tx(parsed, false).await {
                    Ok(found) => {
                        let r = found.tx_result;
                        Ok(Some(TxResult {
                            txhash: found.hash.to_string(),
                            height: found.height.value() as i64,
                            code: r.code.value(),
                            codespace: r.codespace,
                            raw_log: r.log,
                            gas_wanted: r.gas_wanted,
                            gas_used: r.gas_used,
                            timestamp: String::new(),
                            events: r
                                .events
                                .into_iter()
                                .map(|e| TxEvent {
                                    kind: e.kind,
                                    attributes: e
                                        .attributes
                                        .iter()
                                        .map(|a| {
                                            (
                                                a.key_str().unwrap_or_default().to_string(),
                                                a.value_str().unwrap_or_default().to_string(),
                                            )
                                        })
                                        .collect(),
                                })
                                .collect(),
                        }))
                    }
                    // Not `e.to_string()`: that formats the eyre report (and resolves its
                    // backtrace under RUST_BACKTRACE) for every lookup of a pending tx.
                    Err(e) if rpc_error_text(&e).contains("not found") => Ok(None),
                    Err(e) => Err(ClientError::rpc(url, e)),
                }
            }
        }
    }
}
