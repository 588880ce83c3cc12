//! The ABCI socket server: CometBFT's four connections (consensus, mempool, info,
//! snapshot) over a unix or TCP socket, as varint-length-delimited protobuf.
//!
//! Owned here rather than taken from tower-abci because the bytes of an `abci_query` and
//! of a `broadcast_tx` come from whoever calls the node's RPC: tower-abci ends the
//! connection — and with it the node — when a request does not convert to its domain
//! type (a negative query height) or when a handler panics. Here such a request gets an
//! error response of its own type, logged loudly, and the connection keeps serving. Only
//! consensus requests, which come from CometBFT itself, end the connection on failure:
//! a node that cannot execute a block must stop rather than fork.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use tendermint::abci::Code;
use tendermint::v0_38::abci::{request, response, Request, Response};
use tendermint_proto::v0_38::abci as pb;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

use crate::abci::Node;

/// Largest request read from CometBFT: above its 100 MiB maximum block size.
const MAX_REQUEST_BYTES: u64 = 128 << 20;
/// Cosmos SDK codes of the error responses built here.
const CODE_INTERNAL: u32 = 1;
const CODE_INVALID_REQUEST: u32 = 18;
const CODE_INVALID_HEIGHT: u32 = 26;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("reading from CometBFT: {0}")]
    Io(#[from] std::io::Error),
    #[error("request of {0} bytes exceeds the {MAX_REQUEST_BYTES}-byte limit")]
    TooLarge(u64),
    #[error("undecodable request: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("invalid {kind} request: {detail}")]
    Invalid { kind: &'static str, detail: String },
    #[error("the {0} handler failed; stopping so the node does not fork")]
    ConsensusFailed(&'static str),
}

pub async fn listen_unix(path: &Path, node: Arc<Node>) -> std::io::Result<()> {
    let listener = tokio::net::UnixListener::bind(path)?;
    loop {
        let (socket, _) = listener.accept().await?;
        spawn_connection(socket, node.clone());
    }
}

pub async fn listen_tcp(addr: &str, node: Arc<Node>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (socket, _) = listener.accept().await?;
        // Responses are small and latency-bound: never wait for Nagle.
        socket.set_nodelay(true)?;
        spawn_connection(socket, node.clone());
    }
}

fn spawn_connection<S>(socket: S, node: Arc<Node>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = serve_connection(socket, node).await {
            tracing::error!(error = %e, "ABCI connection closed");
        }
    });
}

/// Requests read ahead of their answers on one connection. Also bounds the signature
/// checks in flight for the mempool connection, and so the blocking threads they occupy
/// (a bound on threads per core measured slower: docs/benchmarks.md section G).
const READ_AHEAD: usize = 256;

/// A request read, with the signature verification started for it (new CheckTx only).
type Pending = (pb::Request, Option<tokio::task::JoinHandle<()>>);

/// Serves one connection until CometBFT closes it. Requests are answered in order, as the
/// socket protocol requires, but read ahead: the signatures of new mempool txs are
/// verified on other cores while earlier requests are answered, so CheckTx, which must
/// run in arrival order, finds that work done.
pub async fn serve_connection<S>(socket: S, node: Arc<Node>) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite,
{
    let (read, write) = tokio::io::split(socket);
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write);
    let (queue, mut pending) = tokio::sync::mpsc::channel::<Pending>(READ_AHEAD);
    let reading = {
        let node = node.clone();
        async move {
            while let Some(request) = read_request(&mut reader).await? {
                let verifying = preverify(&node, &request);
                if queue.send((request, verifying)).await.is_err() {
                    break;
                }
            }
            Ok::<(), ConnectionError>(())
        }
    };
    let answering = async {
        while let Some((request, verifying)) = pending.recv().await {
            if let Some(verifying) = verifying {
                // Its outcome is in the node's verified-signature cache (or not): CheckTx
                // decides either way.
                let _ = verifying.await;
            }
            let response = respond(&node, request).await?;
            write_response(&mut writer, response).await?;
            // More requests already read are answered before one flush.
            if pending.is_empty() {
                writer.flush().await?;
            }
        }
        writer.flush().await?;
        Ok(())
    };
    tokio::try_join!(reading, answering)?;
    Ok(())
}

/// Starts verifying the signatures of a new mempool tx on the blocking pool.
fn preverify(node: &Arc<Node>, request: &pb::Request) -> Option<tokio::task::JoinHandle<()>> {
    let Some(pb::request::Value::CheckTx(check)) = &request.value else {
        return None;
    };
    if check.r#type != pb::CheckTxType::New as i32 {
        return None;
    }
    let (node, tx) = (node.clone(), check.tx.clone());
    Some(tokio::task::spawn_blocking(move || {
        node.preverify_signatures(&tx)
    }))
}

async fn read_request<R>(reader: &mut R) -> Result<Option<pb::Request>, ConnectionError>
where
    R: AsyncRead + Unpin,
{
    let Some(len) = read_varint(reader).await? else {
        return Ok(None);
    };
    if len > MAX_REQUEST_BYTES {
        return Err(ConnectionError::TooLarge(len));
    }
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).await?;
    Ok(Some(pb::Request::decode(body.as_slice())?))
}

/// A protobuf varint; `None` at a clean end of stream.
async fn read_varint<R>(reader: &mut R) -> Result<Option<u64>, ConnectionError>
where
    R: AsyncRead + Unpin,
{
    let mut value = 0u64;
    for index in 0..10u32 {
        let byte = match reader.read_u8().await {
            Ok(b) => b,
            Err(e) if index == 0 && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        };
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(ConnectionError::Decode(prost::DecodeError::new(
        "invalid length prefix",
    )))
}

async fn write_response<W>(writer: &mut W, response: Response) -> Result<(), ConnectionError>
where
    W: AsyncWrite + Unpin,
{
    let bytes = pb::Response::from(response).encode_length_delimited_to_vec();
    writer.write_all(&bytes).await?;
    Ok(())
}

/// The response to one request. Requests from the RPC (Query, CheckTx) always get a
/// response; a consensus failure ends the connection.
async fn respond(node: &Arc<Node>, request: pb::Request) -> Result<Response, ConnectionError> {
    use pb::request::Value;
    match request.value {
        Some(Value::Query(query)) => Ok(Response::Query(answer_query(node, query).await)),
        Some(Value::CheckTx(check)) => Ok(Response::CheckTx(answer_check_tx(node, check))),
        other => {
            let request = Request::try_from(pb::Request { value: other }).map_err(|e| {
                ConnectionError::Invalid {
                    kind: "ABCI",
                    detail: e.to_string(),
                }
            })?;
            respond_trusted(node, request).await
        }
    }
}

/// Requests only CometBFT itself makes.
async fn respond_trusted(node: &Arc<Node>, request: Request) -> Result<Response, ConnectionError> {
    Ok(match request {
        Request::Flush => Response::Flush,
        Request::Echo(e) => Response::Echo(response::Echo { message: e.message }),
        Request::Info(_) => Response::Info(node.info()),
        Request::ListSnapshots
        | Request::OfferSnapshot(_)
        | Request::LoadSnapshotChunk(_)
        | Request::ApplySnapshotChunk(_) => snapshot_response(request),
        consensus => {
            let kind = consensus_kind(&consensus);
            let request = consensus
                .try_into()
                .map_err(|_| ConnectionError::ConsensusFailed(kind))?;
            let node = node.clone();
            let response = tokio::task::spawn_blocking(move || node.consensus(request))
                .await
                .map_err(|_| ConnectionError::ConsensusFailed(kind))?;
            response.into()
        }
    })
}

fn consensus_kind(request: &Request) -> &'static str {
    match request {
        Request::InitChain(_) => "InitChain",
        Request::PrepareProposal(_) => "PrepareProposal",
        Request::ProcessProposal(_) => "ProcessProposal",
        Request::FinalizeBlock(_) => "FinalizeBlock",
        Request::Commit => "Commit",
        Request::ExtendVote(_) => "ExtendVote",
        Request::VerifyVoteExtension(_) => "VerifyVoteExtension",
        _ => "consensus",
    }
}

/// State sync is not offered: no snapshots, and offered ones are refused.
fn snapshot_response(request: Request) -> Response {
    match request {
        Request::OfferSnapshot(_) => Response::OfferSnapshot(response::OfferSnapshot::Reject),
        Request::LoadSnapshotChunk(_) => Response::LoadSnapshotChunk(Default::default()),
        Request::ApplySnapshotChunk(_) => Response::ApplySnapshotChunk(Default::default()),
        _ => Response::ListSnapshots(Default::default()),
    }
}

async fn answer_query(node: &Arc<Node>, query: pb::RequestQuery) -> response::Query {
    if query.height < 0 {
        return query_error(
            CODE_INVALID_HEIGHT,
            format!("height: must not be negative, got {}", query.height),
        );
    }
    let query = match request::Query::try_from(query) {
        Ok(q) => q,
        Err(e) => return query_error(CODE_INVALID_REQUEST, format!("query: {e}")),
    };
    let node = node.clone();
    let answered = tokio::task::spawn_blocking(move || {
        let path = query.path.clone();
        catch_unwind(AssertUnwindSafe(|| node.query(query))).map_err(|_| path)
    })
    .await;
    match answered {
        Ok(Ok(response)) => response,
        Ok(Err(path)) => {
            tracing::error!(%path, "BUG: a query handler panicked; answered with an error");
            query_error(
                CODE_INTERNAL,
                "internal error while answering the query".into(),
            )
        }
        Err(e) => query_error(CODE_INTERNAL, format!("query task failed: {e}")),
    }
}

fn query_error(code: u32, log: String) -> response::Query {
    response::Query {
        code: Code::from(code),
        codespace: "sdk".into(),
        log,
        ..Default::default()
    }
}

fn answer_check_tx(node: &Node, check: pb::RequestCheckTx) -> response::CheckTx {
    let check = match request::CheckTx::try_from(check) {
        Ok(c) => c,
        Err(e) => return check_tx_error(CODE_INVALID_REQUEST, format!("check_tx: {e}")),
    };
    let tx_len = check.tx.len();
    match catch_unwind(AssertUnwindSafe(|| node.check_tx(check))) {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(tx_len, "BUG: CheckTx panicked; the tx is refused");
            check_tx_error(CODE_INTERNAL, "internal error while checking the tx".into())
        }
    }
}

fn check_tx_error(code: u32, log: String) -> response::CheckTx {
    response::CheckTx {
        code: Code::from(code),
        codespace: "sdk".into(),
        log,
        data: Bytes::new(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpc_state::App;
    use hpc_store::Storage;
    use tokio::io::DuplexStream;

    async fn send(client: &mut DuplexStream, value: pb::request::Value) {
        let bytes = pb::Request { value: Some(value) }.encode_length_delimited_to_vec();
        client.write_all(&bytes).await.unwrap();
    }

    async fn receive(client: &mut DuplexStream) -> pb::response::Value {
        let len = read_varint(client).await.unwrap().unwrap();
        let mut body = vec![0u8; len as usize];
        client.read_exact(&mut body).await.unwrap();
        pb::Response::decode(body.as_slice())
            .unwrap()
            .value
            .unwrap()
    }

    #[tokio::test]
    async fn a_negative_query_height_is_answered_with_an_error_and_the_connection_serves_on() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::new(
            Storage::open(&dir.path().join("state.redb")).unwrap(),
            App::default(),
            crate::event_index::EventIndex::default(),
        );
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let served = tokio::spawn(serve_connection(server, node));

        use pb::request::Value;
        send(
            &mut client,
            Value::Query(pb::RequestQuery {
                path: "/virtengine.hpc.v1.Query/Params".into(),
                height: -1,
                ..Default::default()
            }),
        )
        .await;
        send(
            &mut client,
            Value::Echo(pb::RequestEcho {
                message: "still here".into(),
            }),
        )
        .await;
        send(&mut client, Value::Flush(pb::RequestFlush {})).await;

        match receive(&mut client).await {
            pb::response::Value::Query(q) => {
                assert_eq!(q.code, CODE_INVALID_HEIGHT);
                assert!(q.log.contains("height: must not be negative"), "{}", q.log);
            }
            other => panic!("expected a query response, got {other:?}"),
        }
        match receive(&mut client).await {
            pb::response::Value::Echo(e) => assert_eq!(e.message, "still here"),
            other => panic!("expected an echo, got {other:?}"),
        }
        assert!(matches!(
            receive(&mut client).await,
            pb::response::Value::Flush(_)
        ));
        drop(client);
        served.await.unwrap().unwrap();
    }
}
