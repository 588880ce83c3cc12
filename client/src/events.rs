//! Following the chain block by block. The source of truth is `/block_results` of every
//! height, read from a cursor the caller persists, so nothing is missed across restarts
//! or disconnections; a WebSocket `NewBlockHeader` subscription only wakes the follower
//! early (CometBFT drops events for slow subscribers, so it is never trusted for content).
//! Not `NewBlock`: CometBFT encodes that event with every tx result of the block, as much
//! JSON as `/block_results` again, for every subscriber — under load, a third of its CPU.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tendermint_rpc::client::CompatMode;
use tendermint_rpc::{Client, HttpClient};
use tokio::sync::Notify;

use crate::error::{rpc_error_text, ClientError, Result};

/// The latest block the application has committed, by the chain's own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub height: u64,
    /// Block time (from the header), seconds since the Unix epoch.
    pub time_seconds: i64,
}

/// One event of a successful tx.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxEventRecord {
    pub tx_index: usize,
    pub kind: String,
    pub attributes: BTreeMap<String, String>,
}

/// The events of the successful txs of one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEvents {
    pub head: ChainHead,
    pub events: Vec<TxEventRecord>,
}

impl BlockEvents {
    /// The events of a block's successful txs, from its `/block_results` answer.
    pub fn from_block_results(
        head: ChainHead,
        results: tendermint_rpc::endpoint::block_results::Response,
    ) -> Self {
        let mut events = Vec::new();
        let txs = results.txs_results.unwrap_or_default();
        for (tx_index, tx) in txs.into_iter().enumerate() {
            if tx.code.is_err() {
                continue;
            }
            for e in tx.events {
                let attributes = e
                    .attributes
                    .iter()
                    .map(|a| {
                        (
                            a.key_str().unwrap_or_default().to_string(),
                            a.value_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                events.push(TxEventRecord {
                    tx_index,
                    kind: e.kind,
                    attributes,
                });
            }
        }
        Self { head, events }
    }

    /// Events of `kind` whose `attribute` equals `value`.
    pub fn matching<'a>(
        &'a self,
        kind: &'a str,
        attribute: &'a str,
        value: &'a str,
    ) -> impl Iterator<Item = &'a TxEventRecord> + 'a {
        self.events.iter().filter(move |e| {
            e.kind == kind && e.attributes.get(attribute).map(String::as_str) == Some(value)
        })
    }
}

fn rpc_err(url: &str) -> impl Fn(tendermint_rpc::Error) -> ClientError + '_ {
    move |e| ClientError::rpc(url, e)
}

/// Runs one RPC call in a task of its own, so an answer that panics the RPC library's
/// decoder (tendermint's base64 app-hash parser does on some malformed hashes, see
/// fuzz/regressions/block_events) is an error of this call, not the end of the caller:
/// the node the enforcer follows is not trusted to answer well.
async fn isolated<T, F>(url: &str, call: &'static str, request: F) -> Result<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = std::result::Result<T, tendermint_rpc::Error>> + Send + 'static,
{
    match tokio::spawn(request).await {
        Ok(answer) => answer.map_err(rpc_err(url)),
        Err(_) => Err(ClientError::MalformedRpcAnswer {
            url: url.to_string(),
            call,
        }),
    }
}

/// Reads blocks in order from `next_height`, waiting for new ones.
pub struct BlockFollower {
    rpc: HttpClient,
    url: String,
    next_height: u64,
    wake: Arc<Notify>,
    /// Block events the subscription delivered.
    wake_ups: Arc<AtomicU64>,
    poll_interval: Duration,
    _ws_task: Option<tokio::task::JoinHandle<()>>,
}

impl BlockFollower {
    /// `rpc_url` is CometBFT's http RPC; with `websocket_url` a block-header subscription
    /// (reconnecting with backoff) wakes the follower as soon as a block is committed.
    pub fn new(rpc_url: &str, websocket_url: Option<&str>, next_height: u64) -> Result<Self> {
        let url = rpc_url.replacen("tcp://", "http://", 1);
        let parsed = url.parse().map_err(|e| {
            ClientError::invalid("rpc url", format!("{url:?}: {}", rpc_error_text(&e)))
        })?;
        let rpc = HttpClient::builder(parsed)
            .compat_mode(CompatMode::V0_38)
            .build()
            .map_err(rpc_err(&url))?;
        let wake = Arc::new(Notify::new());
        let wake_ups = Arc::new(AtomicU64::new(0));
        let ws_task = websocket_url.map(|ws| {
            tokio::spawn(wake_on_new_blocks(
                ws.to_string(),
                wake.clone(),
                wake_ups.clone(),
            ))
        });
        Ok(Self {
            rpc,
            url,
            next_height: next_height.max(1),
            wake,
            wake_ups,
            poll_interval: Duration::from_secs(1),
            _ws_task: ws_task,
        })
    }

    /// How many block events the WebSocket subscription has delivered (0 without one).
    pub fn wake_ups(&self) -> u64 {
        self.wake_ups.load(Ordering::Relaxed)
    }

    /// The next height [`Self::next`] will return.
    pub fn next_height(&self) -> u64 {
        self.next_height
    }

    /// Moves the cursor: [`Self::next`] returns block `height` next.
    pub fn seek(&mut self, height: u64) {
        self.next_height = height.max(1);
    }

    /// The first block the node still serves (later than 1 on a pruned node or one
    /// restored from a snapshot).
    pub async fn earliest_height(&self) -> Result<u64> {
        let rpc = self.rpc.clone();
        let status = isolated(&self.url, "status", async move { rpc.status().await }).await?;
        Ok(status.sync_info.earliest_block_height.value().max(1))
    }

    /// The latest height the application committed, and that block's time.
    pub async fn head(&self) -> Result<ChainHead> {
        let rpc = self.rpc.clone();
        let info = isolated(&self.url, "abci_info", async move { rpc.abci_info().await }).await?;
        let height = info.last_block_height.value();
        if height == 0 {
            return Ok(ChainHead {
                height: 0,
                time_seconds: 0,
            });
        }
        self.block_head(height).await
    }

    async fn header(&self, height: u64) -> Result<tendermint::block::Header> {
        let h = tendermint::block::Height::try_from(height)
            .map_err(|e| ClientError::invalid("height", e))?;
        let rpc = self.rpc.clone();
        let answer = isolated(&self.url, "header", async move { rpc.header(h).await }).await?;
        Ok(answer.header)
    }

    async fn block_head(&self, height: u64) -> Result<ChainHead> {
        let header = self.header(height).await?;
        Ok(ChainHead {
            height,
            time_seconds: header.time.unix_timestamp(),
        })
    }

    /// The events of block `next_height`, waiting until it is committed; advances the
    /// cursor only on success.
    pub async fn next(&mut self) -> Result<BlockEvents> {
        loop {
            if let Some(block) = self.next_within(Duration::from_secs(3600)).await? {
                return Ok(block);
            }
        }
    }

    /// Like [`Self::next`], but gives up waiting for the block to be committed after `wait`
    /// (`Ok(None)`: a halted or idle chain). Once the block is committed it is read in
    /// full, however long that takes; the cursor advances only when it was read.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<BlockEvents>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let committed = self
                .rpc
                .abci_info()
                .await
                .map_err(rpc_err(&self.url))?
                .last_block_height
                .value();
            if committed >= self.next_height {
                let block = self.read(self.next_height).await?;
                self.next_height += 1;
                return Ok(Some(block));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            // Woken by the subscription, or poll.
            let pause = self.poll_interval.min(deadline - now);
            let _ = tokio::time::timeout(pause, self.wake.notified()).await;
        }
    }

    /// The hash of block `height`'s header (hex), to recognise the chain later.
    pub async fn block_hash(&self, height: u64) -> Result<String> {
        Ok(self.header(height).await?.hash().to_string())
    }

    async fn read(&self, height: u64) -> Result<BlockEvents> {
        let h = tendermint::block::Height::try_from(height)
            .map_err(|e| ClientError::invalid("height", e))?;
        let rpc = self.rpc.clone();
        let results = isolated(&self.url, "block_results", async move {
            rpc.block_results(h).await
        })
        .await?;
        let head = self.block_head(height).await?;
        Ok(BlockEvents::from_block_results(head, results))
    }
}

/// The subscription that wakes a follower: one small event per committed block.
const NEW_BLOCK_HEADER: &str = "tm.event = 'NewBlockHeader'";

/// First pause before a new subscription; it doubles up to 30 s while they fail.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// Largest WebSocket message accepted from the node.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// A subscription silent this long is reconnected (a half-open connection never ends).
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// Keeps a block-header subscription alive (reconnecting with backoff) and pokes `wake`
/// for every block; all content is read from block results, so lost events do not matter.
async fn wake_on_new_blocks(url: String, wake: Arc<Notify>, wake_ups: Arc<AtomicU64>) {
    let mut backoff = FIRST_RETRY;
    loop {
        match follow_headers(&url, &wake, &wake_ups, &mut backoff).await {
            Ok(()) => tracing::debug!(%url, "block-header subscription closed"),
            // Said once per outage, not at every retry; the follower polls meanwhile.
            Err(error) if backoff == FIRST_RETRY => {
                tracing::warn!(%url, %error, "block-header subscription failed; polling until it is back")
            }
            Err(error) => tracing::debug!(%url, %error, "block-header subscription failed"),
        }
        // Any wake-up is harmless: the follower re-reads the committed height.
        wake.notify_one();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// One subscription, until the node closes it. tendermint-rpc's client cannot decode
/// `NewBlockHeader` events (it drops them), so this speaks CometBFT's JSON-RPC itself.
async fn follow_headers(
    url: &str,
    wake: &Notify,
    wake_ups: &AtomicU64,
    backoff: &mut Duration,
) -> std::result::Result<(), String> {
    use async_tungstenite::tungstenite::protocol::WebSocketConfig;
    use async_tungstenite::tungstenite::Message;
    use futures::SinkExt;
    // A header event is a few KiB: a node sending more is not followed further.
    let config = WebSocketConfig {
        max_message_size: Some(MAX_EVENT_BYTES),
        max_frame_size: Some(MAX_EVENT_BYTES),
        ..WebSocketConfig::default()
    };
    let (mut ws, _) = async_tungstenite::tokio::connect_async_with_config(url, Some(config))
        .await
        .map_err(|e| e.to_string())?;
    let subscribe = serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "subscribe",
        "params": {"query": NEW_BLOCK_HEADER},
    });
    ws.send(Message::Text(subscribe.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    // Blocks come every few seconds at most: silence this long is a dead connection.
    while let Some(message) = tokio::time::timeout(SILENCE_LIMIT, ws.next())
        .await
        .map_err(|_| format!("no event for {SILENCE_LIMIT:?}"))?
    {
        let Message::Text(text) = message.map_err(|e| e.to_string())? else {
            continue; // pings are answered by the reads themselves
        };
        let reply: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if let Some(error) = reply.get("error") {
            return Err(format!("the node refused the subscription: {error}"));
        }
        // The confirmation has an empty result; events carry their data.
        if reply["result"]["data"].is_object() {
            *backoff = FIRST_RETRY;
            wake_ups.fetch_add(1, Ordering::Relaxed);
            wake.notify_one();
        }
    }
    Ok(())
}
