//! The gRPC server. Every query method is served by one path router that hands the raw
//! request bytes to the same code as `abci_query`, so both interfaces answer identically;
//! the few methods that need the consensus engine (broadcast, tx lookup, node and block
//! info) go to CometBFT's RPC.

// tonic handlers and their helpers return tonic::Status by design (as tonic's own API).
#![allow(clippy::result_large_err)]

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use cosmos_sdk_proto::cosmos::base::abci::v1beta1::TxResponse;
use cosmos_sdk_proto::cosmos::base::tendermint::v1beta1::{
    Block as SdkBlock, GetBlockByHeightRequest, GetBlockByHeightResponse, GetLatestBlockResponse,
    GetNodeInfoResponse, GetSyncingResponse, Header as SdkHeader, VersionInfo,
};
use cosmos_sdk_proto::cosmos::tx::v1beta1::{
    BroadcastTxRequest, BroadcastTxResponse, GetTxRequest, GetTxResponse, GetTxsEventRequest,
    GetTxsEventResponse, OrderBy, Tx, TxRaw,
};
use cosmos_sdk_proto::Any;
use prost::{Message, Name};
use tendermint_rpc::{Client, HttpClient};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, Body, BoxFuture, StdError};
use tonic::{Code, Status};

use crate::abci::Node;
use hpc_state::errors::QueryError;
use hpc_state::query::is_point_query;

/// The request header that selects the height of a query, as in the Cosmos SDK.
pub const HEIGHT_HEADER: &str = "x-cosmos-block-height";
/// Largest gRPC request: a BroadcastTx of the largest tx, with room for its envelope.
pub const MAX_REQUEST_BYTES: usize = 2 << 20;
/// Largest gRPC response: a page of at most `MAX_PAGE_LIMIT` records; larger answers are
/// refused (tonic answers OutOfRange) rather than sent without bound.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Largest page of `GetTxsEvent` (CometBFT's `tx_search` limit, and the SDK's default).
const MAX_TXS_PER_PAGE: u8 = 100;

/// Passes message bytes through unchanged; the router decodes per method.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        use bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// What the routers share.
pub struct Handler {
    node: Arc<Node>,
    rpc: HttpClient,
    /// Point queries answered on a runtime thread at the same time: the runtime's threads
    /// also carry the ABCI connections, so a flood of queries must not hold them all; the
    /// rest go to the blocking pool like every other query.
    inline_queries: tokio::sync::Semaphore,
}

/// At most this many point queries run on runtime threads at once.
const INLINE_QUERIES: usize = 1;

impl From<QueryError> for StatusError {
    fn from(e: QueryError) -> Self {
        let code = match e {
            QueryError::NotFound(_) => Code::NotFound,
            QueryError::InvalidArgument(_) => Code::InvalidArgument,
            QueryError::UnknownPath(_) => Code::Unimplemented,
            QueryError::Internal(_) => Code::Internal,
        };
        StatusError(Status::new(code, e.to_string()))
    }
}

struct StatusError(Status);

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, Status> {
    M::decode(bytes).map_err(|e| Status::invalid_argument(format!("malformed request: {e}")))
}

fn rpc_error(e: tendermint_rpc::Error) -> Status {
    // The detail only: the full error may carry a backtrace.
    let detail = e.detail().to_string();
    if detail.contains("tx already exists in cache") {
        return Status::already_exists(
            "tx already exists in the mempool cache (it was already submitted)",
        );
    }
    let first_line = detail.lines().next().unwrap_or_default().to_string();
    Status::unavailable(format!("CometBFT RPC: {first_line}"))
}

fn pack<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: format!("/{}", M::full_name()),
        value: m.encode_to_vec(),
    }
}

/// A found tx as the Cosmos SDK answers it: the decoded `Tx` and its `TxResponse`.
fn tx_and_response(
    found: tendermint_rpc::endpoint::tx::Response,
    timestamp: String,
) -> Result<(Tx, TxResponse), Status> {
    let raw = TxRaw::decode(found.tx.as_slice())
        .map_err(|e| Status::internal(format!("stored tx does not decode: {e}")))?;
    let tx = Tx {
        body: Some(decode(&raw.body_bytes)?),
        auth_info: Some(decode(&raw.auth_info_bytes)?),
        signatures: raw.signatures,
    };
    let result = found.tx_result;
    #[allow(deprecated)]
    let tx_response = TxResponse {
        height: found.height.value() as i64,
        txhash: found.hash.to_string(),
        codespace: result.codespace,
        code: result.code.value(),
        data: hex::encode_upper(&result.data),
        raw_log: result.log,
        logs: Vec::new(),
        info: result.info,
        gas_wanted: result.gas_wanted,
        gas_used: result.gas_used,
        tx: Some(pack(&tx)),
        timestamp,
        events: result
            .events
            .into_iter()
            .map(|e| cosmos_sdk_proto::tendermint::abci::Event {
                r#type: e.kind,
                attributes: e
                    .attributes
                    .into_iter()
                    .map(|a| cosmos_sdk_proto::tendermint::abci::EventAttribute {
                        key: a.key_str().unwrap_or_default().to_string(),
                        value: a.value_str().unwrap_or_default().to_string(),
                        index: a.index(),
                    })
                    .collect(),
            })
            .collect(),
    };
    Ok((tx, tx_response))
}

/// The block as Cosmos SDK v0.47+ also returns it (`sdk_block`): the same block with the
/// proposer's consensus address in bech32 (`virtenginevalcons1…`).
fn sdk_block(block: &cosmos_sdk_proto::tendermint::types::Block) -> SdkBlock {
    let header = block.header.clone().unwrap_or_default();
    SdkBlock {
        header: Some(SdkHeader {
            version: header.version,
            chain_id: header.chain_id,
            height: header.height,
            time: header.time,
            last_block_id: header.last_block_id,
            last_commit_hash: header.last_commit_hash,
            data_hash: header.data_hash,
            validators_hash: header.validators_hash,
            next_validators_hash: header.next_validators_hash,
            consensus_hash: header.consensus_hash,
            app_hash: header.app_hash,
            last_results_hash: header.last_results_hash,
            evidence_hash: header.evidence_hash,
            proposer_address: hpc_primitives::consensus_address(&header.proposer_address),
        }),
        data: block.data.clone(),
        evidence: block.evidence.clone(),
        last_commit: block.last_commit.clone(),
    }
}

/// A state query answered from the committed state at `height` (0 = latest), with the
/// height it was answered at.
fn answer_from_state(
    node: &Node,
    path: &str,
    body: &[u8],
    height: u64,
) -> Result<(Vec<u8>, u64), Status> {
    let (snapshot, clock) = node.snapshot_at(height).map_err(|e| {
        if height == 0 {
            Status::unavailable(format!("no state to query yet: {e}"))
        } else {
            Status::invalid_argument(format!("{HEIGHT_HEADER}: {e}"))
        }
    })?;
    node.app_query(path, body, &snapshot, clock, height == 0)
        .map(|bytes| (bytes, clock.height))
        .map_err(|e| StatusError::from(e).0)
}

/// A query handler that failed: a bug, not the caller's fault. Said loudly here, and
/// nothing of it to the caller.
fn query_bug(path: &str, error: &dyn std::fmt::Display) -> Status {
    tracing::error!(path, error = %error, "BUG: a query handler failed");
    Status::internal("internal error while answering the query")
}

impl Handler {
    pub fn new(node: Arc<Node>, rpc: HttpClient) -> Arc<Self> {
        Arc::new(Self {
            node,
            rpc,
            inline_queries: tokio::sync::Semaphore::new(INLINE_QUERIES),
        })
    }

    async fn handle(
        &self,
        path: &str,
        body: Vec<u8>,
        height: u64,
    ) -> Result<(Vec<u8>, u64), Status> {
        let consensus_engine = match path {
            "/cosmos.tx.v1beta1.Service/BroadcastTx" => Some(self.broadcast(&body).await),
            "/cosmos.tx.v1beta1.Service/GetTx" => Some(self.get_tx(&body).await),
            "/cosmos.tx.v1beta1.Service/GetTxsEvent" => Some(self.txs_event(&body).await),
            "/cosmos.base.tendermint.v1beta1.Service/GetNodeInfo" => Some(self.node_info().await),
            "/cosmos.base.tendermint.v1beta1.Service/GetLatestBlock" => {
                Some(self.latest_block().await)
            }
            "/cosmos.base.tendermint.v1beta1.Service/GetSyncing" => Some(self.syncing().await),
            "/cosmos.base.tendermint.v1beta1.Service/GetBlockByHeight" => {
                Some(self.block_by_height(&body).await)
            }
            _ => None,
        };
        if let Some(result) = consensus_engine {
            return result.map(|bytes| (bytes, 0));
        }
        let inline = is_point_query(path)
            .then(|| self.inline_queries.try_acquire().ok())
            .flatten();
        // The permit is held until the answer is ready.
        if let Some(_permit) = inline {
            let answer = || answer_from_state(&self.node, path, &body, height);
            return std::panic::catch_unwind(std::panic::AssertUnwindSafe(answer))
                .unwrap_or_else(|_| Err(query_bug(path, &"panicked")));
        }
        let node = self.node.clone();
        let path = path.to_string();
        let logged_path = path.clone();
        tokio::task::spawn_blocking(move || answer_from_state(&node, &path, &body, height))
            .await
            .map_err(|e| query_bug(&logged_path, &e))?
    }

    async fn broadcast(&self, body: &[u8]) -> Result<Vec<u8>, Status> {
        let req: BroadcastTxRequest = decode(body)?;
        if req.tx_bytes.is_empty() {
            return Err(Status::invalid_argument("tx_bytes: empty tx"));
        }
        // BROADCAST_MODE_ASYNC = 3; BLOCK (1, removed in Cosmos 0.47) and SYNC wait for CheckTx.
        let (hash, code, codespace, log, data) = if req.mode == 3 {
            let r = self
                .rpc
                .broadcast_tx_async(req.tx_bytes)
                .await
                .map_err(rpc_error)?;
            (r.hash, r.code, r.codespace, r.log, r.data)
        } else {
            let r = self
                .rpc
                .broadcast_tx_sync(req.tx_bytes)
                .await
                .map_err(rpc_error)?;
            (r.hash, r.code, r.codespace, r.log, r.data)
        };
        #[allow(deprecated)]
        let tx_response = TxResponse {
            txhash: hash.to_string(),
            code: code.value(),
            codespace,
            raw_log: log,
            data: hex::encode_upper(data),
            ..Default::default()
        };
        Ok(BroadcastTxResponse {
            tx_response: Some(tx_response),
        }
        .encode_to_vec())
    }

    async fn get_tx(&self, body: &[u8]) -> Result<Vec<u8>, Status> {
        let req: GetTxRequest = decode(body)?;
        let hash = tendermint::Hash::from_str(&req.hash.to_uppercase())
            .map_err(|e| Status::invalid_argument(format!("hash: {e}")))?;
        let found = match self.rpc.tx(hash, false).await {
            Ok(found) => found,
            Err(e) if e.to_string().contains("not found") => {
                return Err(Status::not_found(format!("tx {} not found", req.hash)))
            }
            Err(e) => return Err(rpc_error(e)),
        };
        let timestamp = self.block_time(found.height).await?;
        let (tx, tx_response) = tx_and_response(found, timestamp)?;
        Ok(GetTxResponse {
            tx: Some(tx),
            tx_response: Some(tx_response),
        }
        .encode_to_vec())
    }

    /// `GetTxsEvent` in the Cosmos SDK v0.50 form: a CometBFT query in `query` (or, as
    /// before v0.50, conditions in `events`, joined with AND), `page` from 1, `limit` at
    /// most 100, served by CometBFT's tx index.
    async fn txs_event(&self, body: &[u8]) -> Result<Vec<u8>, Status> {
        let req: GetTxsEventRequest = decode(body)?;
        #[allow(deprecated)]
        let text = if req.query.is_empty() {
            req.events.join(" AND ")
        } else {
            req.query.clone()
        };
        if text.trim().is_empty() {
            return Err(Status::invalid_argument(
                "query: empty; give a CometBFT query such as \"message.sender='virtengine1…'\"",
            ));
        }
        let query = tendermint_rpc::query::Query::from_str(&text)
            .map_err(|e| Status::invalid_argument(format!("query: {}", e.detail())))?;
        let page = u32::try_from(req.page.max(1))
            .map_err(|_| Status::invalid_argument("page: too large"))?;
        let limit = match req.limit {
            0 => MAX_TXS_PER_PAGE,
            l => u8::try_from(l.min(u64::from(MAX_TXS_PER_PAGE))).unwrap_or(MAX_TXS_PER_PAGE),
        };
        let order = if req.order_by == OrderBy::Desc as i32 {
            tendermint_rpc::Order::Descending
        } else {
            tendermint_rpc::Order::Ascending
        };
        let found = self
            .rpc
            .tx_search(query, false, page, limit, order)
            .await
            .map_err(|e| {
                if e.detail().to_string().contains("page should be within") {
                    Status::invalid_argument(format!("page: {}", e.detail()))
                } else {
                    rpc_error(e)
                }
            })?;
        let mut response = GetTxsEventResponse {
            total: u64::from(found.total_count),
            ..Default::default()
        };
        for found in found.txs {
            let timestamp = self.block_time(found.height).await?;
            let (tx, tx_response) = tx_and_response(found, timestamp)?;
            response.txs.push(tx);
            response.tx_responses.push(tx_response);
        }
        Ok(response.encode_to_vec())
    }

    /// The time of the block at `height`, as the SDK writes it into a `TxResponse`.
    async fn block_time(&self, height: tendermint::block::Height) -> Result<String, Status> {
        let header = self.rpc.header(height).await.map_err(rpc_error)?.header;
        Ok(header.time.to_rfc3339())
    }

    async fn node_info(&self) -> Result<Vec<u8>, Status> {
        let status = self.rpc.status().await.map_err(rpc_error)?;
        let info = status.node_info;
        let default_node_info = cosmos_sdk_proto::tendermint::p2p::DefaultNodeInfo {
            protocol_version: Some(cosmos_sdk_proto::tendermint::p2p::ProtocolVersion {
                p2p: info.protocol_version.p2p,
                block: info.protocol_version.block,
                app: info.protocol_version.app,
            }),
            default_node_id: info.id.to_string(),
            listen_addr: info.listen_addr.to_string(),
            network: info.network.to_string(),
            version: info.version.to_string(),
            channels: info.channels.to_string().into_bytes(),
            moniker: info.moniker.to_string(),
            other: Some(cosmos_sdk_proto::tendermint::p2p::DefaultNodeInfoOther {
                tx_index: match info.other.tx_index {
                    tendermint::node::info::TxIndexStatus::On => "on".into(),
                    tendermint::node::info::TxIndexStatus::Off => "off".into(),
                },
                rpc_address: info.other.rpc_address.clone(),
            }),
        };
        Ok(GetNodeInfoResponse {
            default_node_info: Some(default_node_info),
            application_version: Some(VersionInfo {
                name: "hpcd".into(),
                app_name: "hpcd".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                git_commit: String::new(),
                build_tags: String::new(),
                go_version: String::new(),
                build_deps: Vec::new(),
                cosmos_sdk_version: String::new(),
            }),
        }
        .encode_to_vec())
    }

    async fn latest_block(&self) -> Result<Vec<u8>, Status> {
        let latest = self.rpc.latest_block().await.map_err(rpc_error)?;
        let block: cosmos_sdk_proto::tendermint::types::Block = latest.block.into();
        #[allow(deprecated)]
        let response = GetLatestBlockResponse {
            block_id: Some(latest.block_id.into()),
            sdk_block: Some(sdk_block(&block)),
            block: Some(block),
        };
        Ok(response.encode_to_vec())
    }

    async fn block_by_height(&self, body: &[u8]) -> Result<Vec<u8>, Status> {
        let req: GetBlockByHeightRequest = decode(body)?;
        let height = u64::try_from(req.height)
            .ok()
            .filter(|h| *h > 0)
            .and_then(|h| tendermint::block::Height::try_from(h).ok())
            .ok_or_else(|| {
                Status::invalid_argument(format!("height: {} must be positive", req.height))
            })?;
        let latest = self.rpc.status().await.map_err(rpc_error)?;
        if height > latest.sync_info.latest_block_height {
            return Err(Status::invalid_argument(format!(
                "height: {} is above the latest block {}",
                req.height, latest.sync_info.latest_block_height
            )));
        }
        let found = self.rpc.block(height).await.map_err(rpc_error)?;
        let block: cosmos_sdk_proto::tendermint::types::Block = found.block.into();
        #[allow(deprecated)]
        let response = GetBlockByHeightResponse {
            block_id: Some(found.block_id.into()),
            sdk_block: Some(sdk_block(&block)),
            block: Some(block),
        };
        Ok(response.encode_to_vec())
    }

    async fn syncing(&self) -> Result<Vec<u8>, Status> {
        let status = self.rpc.status().await.map_err(rpc_error)?;
        Ok(GetSyncingResponse {
            syncing: status.sync_info.catching_up,
        }
        .encode_to_vec())
    }
}

/// Names one gRPC service the router is mounted as.
pub trait ServiceName: Send + Sync + 'static {
    const NAME: &'static str;
}

macro_rules! services {
    ($($ty:ident => $name:literal),* $(,)?) => {
        $(
            pub struct $ty;
            impl ServiceName for $ty {
                const NAME: &'static str = $name;
            }
        )*
        /// Every service `serve` mounts (reflection must list each of them).
        pub const SERVED: &[&str] = &[$($name),*];
    };
}

services! {
    AuthQuery => "cosmos.auth.v1beta1.Query",
    BankQuery => "cosmos.bank.v1beta1.Query",
    TxService => "cosmos.tx.v1beta1.Service",
    TendermintService => "cosmos.base.tendermint.v1beta1.Service",
    ConsensusQuery => "cosmos.consensus.v1.Query",
    HpcQuery => "virtengine.hpc.v1.Query",
}

/// A tonic service for one gRPC service name that routes by method path.
pub struct PathRouter<N> {
    handler: Arc<Handler>,
    _name: PhantomData<N>,
}

impl<N> Clone for PathRouter<N> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            _name: PhantomData,
        }
    }
}

impl<N: ServiceName> PathRouter<N> {
    pub fn new(handler: Arc<Handler>) -> Self {
        Self {
            handler,
            _name: PhantomData,
        }
    }
}

impl<N: ServiceName> tonic::server::NamedService for PathRouter<N> {
    const NAME: &'static str = N::NAME;
}

struct Unary {
    handler: Arc<Handler>,
    path: String,
}

impl tonic::server::UnaryService<Vec<u8>> for Unary {
    type Response = Vec<u8>;
    type Future = BoxFuture<tonic::Response<Vec<u8>>, Status>;

    fn call(&mut self, request: tonic::Request<Vec<u8>>) -> Self::Future {
        let handler = self.handler.clone();
        let path = std::mem::take(&mut self.path);
        Box::pin(async move {
            let height = match request.metadata().get(HEIGHT_HEADER) {
                None => 0,
                Some(v) => v
                    .to_str()
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| {
                        Status::invalid_argument(format!(
                            "{HEIGHT_HEADER}: must be a non-negative integer"
                        ))
                    })?,
            };
            let (bytes, height) = handler.handle(&path, request.into_inner(), height).await?;
            let mut response = tonic::Response::new(bytes);
            if height > 0 {
                response.metadata_mut().insert(
                    HEIGHT_HEADER,
                    height
                        .to_string()
                        .parse()
                        .expect("digits are valid metadata"),
                );
            }
            Ok(response)
        })
    }
}

impl<N, B> tonic::codegen::Service<http::Request<B>> for PathRouter<N>
where
    N: ServiceName,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let unary = Unary {
            handler: self.handler.clone(),
            path: req.uri().path().to_string(),
        };
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .max_decoding_message_size(MAX_REQUEST_BYTES)
                .max_encoding_message_size(MAX_RESPONSE_BYTES);
            Ok(grpc.unary(unary, req).await)
        })
    }
}

/// What reflection lists: the served services, x/hpc's `Msg` and reflection itself.
fn listed_services() -> impl Iterator<Item = &'static str> {
    const REFLECTION: [&str; 2] = [
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];
    SERVED
        .iter()
        .copied()
        .chain([hpc_proto::MSG_SERVICE_NAME])
        .chain(REFLECTION)
}

/// Serves every query service, with server reflection (v1 and v1alpha) listing all of
/// them, until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    handler: Arc<Handler>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Both reflection versions: grpcurl and current clients ask v1, older tools v1alpha.
    // They list what is served (and x/hpc's Msg service, sent inside txs, as Cosmos SDK
    // nodes list theirs), not every service the imported files define (tendermint's ABCI).
    let reflection = || {
        listed_services().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(hpc_proto::FILE_DESCRIPTOR_SET),
            |builder, name| builder.with_service_name(name),
        )
    };
    let mut routes = tonic::service::Routes::new(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(PathRouter::<AuthQuery>::new(handler.clone()))
        .add_service(PathRouter::<BankQuery>::new(handler.clone()))
        .add_service(PathRouter::<TxService>::new(handler.clone()))
        .add_service(PathRouter::<TendermintService>::new(handler.clone()))
        .add_service(PathRouter::<ConsensusQuery>::new(handler.clone()))
        .add_service(PathRouter::<HpcQuery>::new(handler));
    let router = routes.axum_router_mut();
    *router = std::mem::take(router).fallback(unknown_service);
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_shutdown(addr, shutdown)
        .await?;
    Ok(())
}

/// A call to a service this node does not serve: UNIMPLEMENTED naming the method and what
/// is served (tonic's own answer has no message).
async fn unknown_service(uri: axum::http::Uri) -> axum::response::Response {
    let served: Vec<&str> = listed_services().collect();
    Status::unimplemented(unknown_service_message(uri.path(), &served)).into_http()
}

fn unknown_service_message(path: &str, served: &[&str]) -> String {
    // The path is the caller's: bounded, so the answer stays small.
    let path: String = path.chars().take(200).collect();
    format!(
        "unknown gRPC method {path}: this node serves {}",
        served.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use prost::Message;

    /// Every service reflection lists (the served ones and x/hpc's `Msg`) is described in
    /// the descriptor set, so `grpcurl describe` and dynamic clients can call it.
    #[test]
    fn every_listed_service_is_described() {
        let fds = prost_types::FileDescriptorSet::decode(hpc_proto::FILE_DESCRIPTOR_SET).unwrap();
        let described: Vec<String> = fds
            .file
            .iter()
            .flat_map(|f| {
                f.service
                    .iter()
                    .map(move |s| format!("{}.{}", f.package(), s.name()))
            })
            .collect();
        for name in super::listed_services().filter(|n| !n.starts_with("grpc.reflection.")) {
            assert!(
                described.iter().any(|d| d == name),
                "{name} is not described"
            );
        }
    }
}
