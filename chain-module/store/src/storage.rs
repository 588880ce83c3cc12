use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use borsh::BorshDeserialize;
use jmt::storage::{HasPreimage, LeafNode, Node, NodeBatch, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue, Sha256Jmt, Version};
use redb::{Database, ReadOnlyTable, ReadableTableMetadata, TableDefinition};
use sha2::Sha256;

use crate::delta::Changes;
use crate::kv::{Entries, StateRead};

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
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// The persistent store: one redb file, committed atomically once per block.
#[derive(Clone)]
pub struct Storage {
    db: Arc<Database>,
}

/// The result of [`Storage::prepare`]: the new root and everything [`Storage::commit`]
/// writes. Computing it does not touch the disk, so `FinalizeBlock` can return the app hash
/// and `Commit` can persist it later.
pub struct PreparedCommit {
    pub version: u64,
    pub root: [u8; 32],
    node_batch: NodeBatch,
    changes: Changes,
    block_time_seconds: Option<i64>,
}

impl PreparedCommit {
    /// Records the time of the block this version belongs to (see [`Storage::block_time`]).
    pub fn set_block_time(&mut self, seconds: i64) {
        self.block_time_seconds = Some(seconds);
    }
}

impl Storage {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(db_err)?;
        }
        let db = Database::create(path).map_err(db_err)?;
        // Create the tables once so read transactions never see them missing.
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(NODES).map_err(db_err)?;
        tx.open_table(VALUES).map_err(db_err)?;
        tx.open_table(PREIMAGES).map_err(db_err)?;
        tx.open_table(META).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// The last committed version, `None` for a fresh store.
    pub fn latest_version(&self) -> Result<Option<u64>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let meta = tx.open_table(META).map_err(db_err)?;
        Ok(meta.get(LATEST_VERSION).map_err(db_err)?.map(|v| v.value()))
    }

    /// The Merkle root at a committed version.
    pub fn root_hash(&self, version: u64) -> Result<[u8; 32], StoreError> {
        let reader = self.tree_reader()?;
        let root = Sha256Jmt::new(&reader)
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
        let tx = self.db.begin_read().map_err(db_err)?;
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
        let reader = self.tree_reader()?;
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
            let mut values = tx.open_table(VALUES).map_err(db_err)?;
            let mut preimages = tx.open_table(PREIMAGES).map_err(db_err)?;
            for (key, value) in &prepared.changes {
                values
                    .insert((key.as_slice(), prepared.version), value.as_deref())
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
        tx.commit().map_err(db_err)
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
        self.root_hash(version)?;
        let reader = self.tree_reader()?;
        Sha256Jmt::new(&reader)
            .get_with_ics23_proof(key.to_vec(), version)
            .map_err(|e| StoreError::Tree(e.to_string()))
    }

    fn tree_reader(&self) -> Result<TreeStoreReader, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
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
    ) -> Result<Entries, redb::StorageError> {
        let (Some(values), Some(version)) = (&self.values, self.version) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        // The last key emitted or skipped; the next search starts after all its versions.
        let mut after: Option<Vec<u8>> = None;
        while out.len() < limit {
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
            if let Some(value) = latest_at(values, &key, version)? {
                out.push((key.clone(), value));
            }
            after = Some(key);
        }
        Ok(out)
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
        self.try_range(start, end, limit)
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
