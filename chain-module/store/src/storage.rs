use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use borsh::BorshDeserialize;
use jmt::storage::{
    HasPreimage, LeafNode, Node, NodeBatch, NodeKey, StaleNodeIndexBatch, TreeReader,
};
use jmt::{KeyHash, OwnedValue, Sha256Jmt, Version};
use redb::{Database, ReadOnlyTable, ReadableTable, ReadableTableMetadata, TableDefinition};
use sha2::Sha256;

use crate::delta::Changes;
use crate::kv::{key_after, BoundedRange, Entries, StateRead};

/// Tree nodes: borsh(NodeKey) → borsh(Node).
const NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("jmt_nodes");
/// Ordered, versioned values: (key, version) → value, `None` for a deletion at that version.
/// The read side of [`VALUES`].
type ValuesTable = ReadOnlyTable<(&'static [u8], u64), Option<&'static [u8]>>;

const VALUES: TableDefinition<(&[u8], u64), Option<&[u8]>> = TableDefinition::new("values");
/// sha256(key) → key, so the tree (which only knows key hashes) can find values and build
/// non-existence proofs.
const PREIMAGES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("preimages");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// version → block time (seconds since the Unix epoch) of the block that made it. Not part
/// of the Merkle state: it is what queries at a height use as "now" (the header time every
/// node agreed on), kept so they answer the same after a restart.
const BLOCK_TIMES: TableDefinition<u64, i64> = TableDefinition::new("block_times");
const LATEST_VERSION: &str = "latest_version";
/// The oldest version still readable (absent: every version is).
const EARLIEST_VERSION: &str = "earliest_version";
/// Tree nodes replaced from a version on: (stale_since_version, borsh(NodeKey)). Such a node
/// belongs only to versions before that one, so pruning those versions deletes it.
const STALE_NODES: TableDefinition<(u64, &[u8]), ()> = TableDefinition::new("stale_nodes");
/// The keys written at each version: (version, key). Once that version is the oldest kept,
/// the key's older entries in [`VALUES`] (and its entry at that version, if a deletion) can
/// no longer be read.
const WRITTEN: TableDefinition<(u64, &[u8]), ()> = TableDefinition::new("written_keys");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage database error: {0}")]
    Db(String),
    #[error("merkle tree error: {0}")]
    Tree(String),
    #[error("height {requested} is not available ({})", match latest {
        Some(latest) => format!("the latest committed height is {latest}"),
        None => "nothing is committed yet".to_string(),
    })]
    VersionUnavailable { requested: u64, latest: Option<u64> },
    #[error("cannot commit version {attempted}: the next version must be {expected}")]
    OutOfOrder { attempted: u64, expected: u64 },
    #[error("height {requested} is pruned: this node keeps heights {earliest} and later (app.toml pruning.keep-recent)")]
    Pruned { requested: u64, earliest: u64 },
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// The persistent store: one redb file, committed atomically once per block.
#[derive(Clone)]
pub struct Storage {
    db: Arc<Database>,
    /// How many of the latest versions stay readable; 0 keeps every version.
    keep_recent: u64,
}

/// The result of [`Storage::prepare`]: the new root and everything [`Storage::commit`]
/// writes. Computing it does not touch the disk, so `FinalizeBlock` can return the app hash
/// and `Commit` can persist it later.
pub struct PreparedCommit {
    pub version: u64,
    pub root: [u8; 32],
    node_batch: NodeBatch,
    stale_nodes: StaleNodeIndexBatch,
    changes: Changes,
    block_time_seconds: Option<i64>,
}

impl PreparedCommit {
    /// Records the time of the block this version belongs to (see [`Storage::block_time`]).
    pub fn set_block_time(&mut self, seconds: i64) {
        self.block_time_seconds = Some(seconds);
    }
}

/// Memory the store's page cache may use by default (redb's own default, 1 GiB, let a
/// busy node's RSS climb past what a validator host expects).
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

impl Storage {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store with a page cache of at most `cache_bytes`.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(db_err)?;
        }
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(db_err)?;
        // Create the tables once so read transactions never see them missing.
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(NODES).map_err(db_err)?;
        tx.open_table(VALUES).map_err(db_err)?;
        tx.open_table(PREIMAGES).map_err(db_err)?;
        tx.open_table(META).map_err(db_err)?;
        tx.open_table(STALE_NODES).map_err(db_err)?;
        tx.open_table(WRITTEN).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(Self {
            db: Arc::new(db),
            keep_recent: 0,
        })
    }

    /// Keep only the latest `keep_recent` versions readable (0 keeps all): each commit then
    /// deletes what only older versions used, so the store grows with live state, not with
    /// history. Roots and proofs of kept versions are unchanged.
    pub fn with_keep_recent(mut self, keep_recent: u64) -> Self {
        self.keep_recent = keep_recent;
        self
    }

    /// The oldest readable version (0 when nothing was ever pruned).
    pub fn earliest_version(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        earliest_in(&tx.open_table(META).map_err(db_err)?)
    }

    /// A read transaction in which `version` is not pruned. The check and the reads share
    /// it, so a commit that prunes in between cannot take the version away from them.
    fn read_at(&self, version: u64) -> Result<redb::ReadTransaction, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let earliest = earliest_in(&tx.open_table(META).map_err(db_err)?)?;
        if version < earliest {
            return Err(StoreError::Pruned {
                requested: version,
                earliest,
            });
        }
        Ok(tx)
    }

    /// The last committed version, `None` for a fresh store.
    pub fn latest_version(&self) -> Result<Option<u64>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let meta = tx.open_table(META).map_err(db_err)?;
        Ok(meta.get(LATEST_VERSION).map_err(db_err)?.map(|v| v.value()))
    }

    /// The Merkle root at a committed version.
    pub fn root_hash(&self, version: u64) -> Result<[u8; 32], StoreError> {
        self.root_in(&self.tree_reader(version)?, version)
    }

    /// The root of `version` as `reader` sees it; a version never committed is unavailable.
    fn root_in(&self, reader: &TreeStoreReader, version: u64) -> Result<[u8; 32], StoreError> {
        let root = Sha256Jmt::new(reader)
            .get_root_hash_option(version)
            .map_err(|e| StoreError::Tree(e.to_string()))?;
        root.map(|r| r.0).ok_or(StoreError::VersionUnavailable {
            requested: version,
            latest: self.latest_version()?,
        })
    }

    /// A consistent read view at `version` (the latest committed one when `None`).
    pub fn snapshot(&self, version: Option<u64>) -> Result<Snapshot, StoreError> {
        let latest = self.latest_version()?;
        let version = match (version, latest) {
            (None, Some(latest)) => latest,
            (Some(v), Some(latest)) if v <= latest => v,
            (requested, latest) => {
                return Err(StoreError::VersionUnavailable {
                    requested: requested.unwrap_or(0),
                    latest,
                })
            }
        };
        let tx = self.read_at(version)?;
        Ok(Snapshot {
            version: Some(version),
            values: Some(tx.open_table(VALUES).map_err(db_err)?),
        })
    }

    /// An empty view for a store that has nothing committed yet (genesis).
    pub fn empty_snapshot() -> Snapshot {
        Snapshot {
            version: None,
            values: None,
        }
    }

    /// Computes the root of the latest committed tree with `changes` applied as `version`.
    pub fn prepare(&self, changes: Changes, version: u64) -> Result<PreparedCommit, StoreError> {
        let expected = self.latest_version()?.map_or(version, |v| v + 1);
        if version != expected {
            return Err(StoreError::OutOfOrder {
                attempted: version,
                expected,
            });
        }
        // The new version builds on the latest, which pruning always keeps.
        let reader = self.tree_reader(version.saturating_sub(1))?;
        let value_set: Vec<(KeyHash, Option<OwnedValue>)> = changes
            .iter()
            .map(|(k, v)| (KeyHash::with::<Sha256>(k), v.clone()))
            .collect();
        let (root, batch) = Sha256Jmt::new(&reader)
            .put_value_set(value_set, version)
            .map_err(|e| StoreError::Tree(e.to_string()))?;
        Ok(PreparedCommit {
            version,
            root: root.0,
            node_batch: batch.node_batch,
            stale_nodes: batch.stale_node_index_batch,
            changes,
            block_time_seconds: None,
        })
    }

    /// Persists a prepared version in one atomic, durable write.
    pub fn commit(&self, prepared: PreparedCommit) -> Result<(), StoreError> {
        let expected = self.latest_version()?.map_or(prepared.version, |v| v + 1);
        if prepared.version != expected {
            return Err(StoreError::OutOfOrder {
                attempted: prepared.version,
                expected,
            });
        }
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut nodes = tx.open_table(NODES).map_err(db_err)?;
            for (key, node) in prepared.node_batch.nodes() {
                let key = borsh::to_vec(key).map_err(db_err)?;
                let node = borsh::to_vec(node).map_err(db_err)?;
                nodes
                    .insert(key.as_slice(), node.as_slice())
                    .map_err(db_err)?;
            }
            // Recorded with pruning off too, so that turning it on later reclaims history.
            let mut stale = tx.open_table(STALE_NODES).map_err(db_err)?;
            for index in &prepared.stale_nodes {
                let key = borsh::to_vec(&index.node_key).map_err(db_err)?;
                stale
                    .insert((index.stale_since_version, key.as_slice()), ())
                    .map_err(db_err)?;
            }
            let mut values = tx.open_table(VALUES).map_err(db_err)?;
            let mut preimages = tx.open_table(PREIMAGES).map_err(db_err)?;
            let mut written = tx.open_table(WRITTEN).map_err(db_err)?;
            for (key, value) in &prepared.changes {
                values
                    .insert((key.as_slice(), prepared.version), value.as_deref())
                    .map_err(db_err)?;
                written
                    .insert((prepared.version, key.as_slice()), ())
                    .map_err(db_err)?;
                let hash = KeyHash::with::<Sha256>(key).0;
                preimages.insert(&hash, key.as_slice()).map_err(db_err)?;
            }
            let mut meta = tx.open_table(META).map_err(db_err)?;
            meta.insert(LATEST_VERSION, prepared.version)
                .map_err(db_err)?;
            if let Some(seconds) = prepared.block_time_seconds {
                let mut times = tx.open_table(BLOCK_TIMES).map_err(db_err)?;
                times.insert(prepared.version, seconds).map_err(db_err)?;
            }
        }
        if let Some(oldest_kept) = self.oldest_kept(prepared.version) {
            prune(&tx, oldest_kept)?;
        }
        tx.commit().map_err(db_err)
    }

    /// The oldest version to keep once `latest` is committed, if pruning is on.
    fn oldest_kept(&self, latest: u64) -> Option<u64> {
        match self.keep_recent {
            0 => None,
            keep => Some(latest.saturating_add(1).saturating_sub(keep)),
        }
    }

    /// The block time recorded with `version`, or with the latest version before it that has
    /// one (a version committed without a block time, e.g. genesis, inherits it).
    pub fn block_time(&self, version: u64) -> Result<Option<i64>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let times = match tx.open_table(BLOCK_TIMES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db_err(e)),
        };
        let last = times.range(..=version).map_err(db_err)?.next_back();
        Ok(match last {
            Some(entry) => Some(entry.map_err(db_err)?.1.value()),
            None => None,
        })
    }

    /// The value at `key` and version with an ICS-23 existence or non-existence proof
    /// against that version's root (verified with `hpc_primitives::contract::store::proof_spec`).
    pub fn get_with_proof(
        &self,
        key: &[u8],
        version: u64,
    ) -> Result<(Option<Vec<u8>>, ics23::CommitmentProof), StoreError> {
        let reader = self.tree_reader(version)?;
        self.root_in(&reader, version)?;
        Sha256Jmt::new(&reader)
            .get_with_ics23_proof(key.to_vec(), version)
            .map_err(|e| StoreError::Tree(e.to_string()))
    }

    /// The tree as of one read transaction in which `version` is not pruned.
    fn tree_reader(&self, version: u64) -> Result<TreeStoreReader, StoreError> {
        let tx = self.read_at(version)?;
        Ok(TreeStoreReader {
            nodes: tx.open_table(NODES).map_err(db_err)?,
            values: tx.open_table(VALUES).map_err(db_err)?,
            preimages: tx.open_table(PREIMAGES).map_err(db_err)?,
        })
    }

    /// Number of distinct versioned value entries (for diagnostics and tests).
    pub fn value_entries(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        tx.open_table(VALUES).map_err(db_err)?.len().map_err(db_err)
    }

    /// Bytes of the database's allocated pages: what the state occupies, free pages (which
    /// later writes reuse) excluded (for diagnostics and benchmarks).
    pub fn allocated_bytes(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        let stats = tx.stats().map_err(db_err)?;
        let bytes = stats.allocated_pages() * stats.page_size() as u64;
        tx.abort().map_err(db_err)?;
        Ok(bytes)
    }

    /// Number of stored tree nodes (for diagnostics and tests).
    pub fn node_entries(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        tx.open_table(NODES).map_err(db_err)?.len().map_err(db_err)
    }
}

/// Deletes, inside the commit's write transaction, everything that only versions before
/// `oldest_kept` could read; those versions become unreadable (readers holding an older
/// snapshot keep their view: redb transactions are isolated).
fn prune(tx: &redb::WriteTransaction, oldest_kept: u64) -> Result<(), StoreError> {
    let mut meta = tx.open_table(META).map_err(db_err)?;
    if oldest_kept <= earliest_in(&meta)? {
        return Ok(());
    }
    // (v, []) sorts before every (v, key): this bound takes every version ≤ oldest_kept.
    let up_to = ..(oldest_kept.saturating_add(1), &[][..]);

    let mut stale = tx.open_table(STALE_NODES).map_err(db_err)?;
    let mut nodes = tx.open_table(NODES).map_err(db_err)?;
    let dead: Vec<(u64, Vec<u8>)> = collect_keys(&stale, up_to)?;
    for (since, node) in &dead {
        nodes.remove(node.as_slice()).map_err(db_err)?;
        stale.remove((*since, node.as_slice())).map_err(db_err)?;
    }

    let mut written = tx.open_table(WRITTEN).map_err(db_err)?;
    let mut values = tx.open_table(VALUES).map_err(db_err)?;
    for (version, key) in collect_keys(&written, up_to)? {
        // Entries before `version` are shadowed by it for every kept version.
        let older: Vec<u64> = values
            .range((key.as_slice(), 0)..(key.as_slice(), version))
            .map_err(db_err)?
            .map(|entry| entry.map(|(k, _)| k.value().1))
            .collect::<Result<_, _>>()
            .map_err(db_err)?;
        for old in older {
            values.remove((key.as_slice(), old)).map_err(db_err)?;
        }
        // A deletion with nothing before it reads the same as no entry at all.
        let is_deletion = values
            .get((key.as_slice(), version))
            .map_err(db_err)?
            .is_some_and(|v| v.value().is_none());
        if is_deletion {
            values.remove((key.as_slice(), version)).map_err(db_err)?;
        }
        written.remove((version, key.as_slice())).map_err(db_err)?;
    }
    meta.insert(EARLIEST_VERSION, oldest_kept).map_err(db_err)?;
    Ok(())
}

/// The oldest readable version recorded in `meta` (0 when nothing was ever pruned).
fn earliest_in(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64, StoreError> {
    Ok(meta
        .get(EARLIEST_VERSION)
        .map_err(db_err)?
        .map_or(0, |v| v.value()))
}

/// The `(version, bytes)` keys of `table` in `range`, copied out so the table can change.
fn collect_keys(
    table: &redb::Table<(u64, &[u8]), ()>,
    range: std::ops::RangeTo<(u64, &[u8])>,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    table
        .range(range)
        .map_err(db_err)?
        .map(|entry| {
            entry
                .map(|(k, _)| {
                    let (version, bytes) = k.value();
                    (version, bytes.to_vec())
                })
                .map_err(db_err)
        })
        .collect()
}

fn latest_at(
    values: &ValuesTable,
    key: &[u8],
    version: u64,
) -> Result<Option<Vec<u8>>, redb::StorageError> {
    let mut range = values.range((key, 0u64)..=(key, version))?;
    Ok(match range.next_back() {
        Some(entry) => entry?.1.value().map(<[u8]>::to_vec),
        None => None,
    })
}

/// A read-only view of one committed version.
pub struct Snapshot {
    version: Option<u64>,
    values: Option<ValuesTable>,
}

impl Snapshot {
    /// The version this view reads, `None` for the empty pre-genesis view.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    fn try_range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        max_examined: u64,
    ) -> Result<BoundedRange, redb::StorageError> {
        let (Some(values), Some(version)) = (&self.values, self.version) else {
            return Ok(BoundedRange::default());
        };
        let mut out = Vec::new();
        let mut examined = 0u64;
        // The last key emitted or skipped; the next search starts after all its versions.
        let mut after: Option<Vec<u8>> = None;
        while out.len() < limit {
            if examined == max_examined {
                return Ok(BoundedRange {
                    entries: out,
                    examined,
                    resume: Some(after.as_deref().map_or_else(|| start.to_vec(), key_after)),
                });
            }
            let lower: Bound<(&[u8], u64)> = match &after {
                Some(key) => Bound::Excluded((key.as_slice(), u64::MAX)),
                None => Bound::Included((start, 0)),
            };
            let upper: Bound<(&[u8], u64)> = match end {
                Some(end) => Bound::Excluded((end, 0)),
                None => Bound::Unbounded,
            };
            let Some(entry) = values.range::<(&[u8], u64)>((lower, upper))?.next() else {
                break;
            };
            let key = entry?.0.value().0.to_vec();
            examined += 1;
            if let Some(value) = latest_at(values, &key, version)? {
                out.push((key.clone(), value));
            }
            after = Some(key);
        }
        Ok(BoundedRange {
            entries: out,
            examined,
            resume: None,
        })
    }
}

fn fatal(e: impl std::fmt::Display) -> ! {
    panic!("storage read failed, stopping rather than risking a divergent state: {e}")
}

impl StateRead for Snapshot {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let (Some(values), Some(version)) = (&self.values, self.version) else {
            return None;
        };
        latest_at(values, key, version).unwrap_or_else(|e| fatal(e))
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Entries {
        self.range_bounded(start, end, limit, u64::MAX).entries
    }

    fn range_bounded(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        max_examined: u64,
    ) -> BoundedRange {
        self.try_range(start, end, limit, max_examined)
            .unwrap_or_else(|e| fatal(e))
    }
}

struct TreeStoreReader {
    nodes: ReadOnlyTable<&'static [u8], &'static [u8]>,
    values: ValuesTable,
    preimages: ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
}

impl TreeReader for TreeStoreReader {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let key = borsh::to_vec(node_key)?;
        match self.nodes.get(key.as_slice())? {
            Some(bytes) => Ok(Some(Node::try_from_slice(bytes.value())?)),
            None => Ok(None),
        }
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let Some(key) = self.preimages.get(&key_hash.0)? else {
            return Ok(None);
        };
        Ok(latest_at(&self.values, key.value(), max_version)?)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only used by JMT state-sync restore, which hpcd does not offer.
        anyhow::bail!("tree restore (get_rightmost_leaf) is not supported by this store")
    }
}

impl HasPreimage for TreeStoreReader {
    fn preimage(&self, key_hash: KeyHash) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.preimages.get(&key_hash.0)?.map(|k| k.value().to_vec()))
    }
}
