//! What goes through the outbox: audit records and violations, and batches of one kind.

use std::fmt;

use hpc_primitives::contract::submission;
use hpc_proto::virtengine::hpc::v1::{RoutingAuditRecord, RoutingViolation};

/// The two kinds of items, each sent with its own message type
/// (`MsgRecordRoutingAudit` / `MsgReportRoutingViolation`). Their ids live in separate
/// namespaces on chain, and so they do in the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    /// A [`RoutingAuditRecord`], identified by `record_id`.
    Audit,
    /// A [`RoutingViolation`], identified by `violation_id`.
    Violation,
}

impl ItemKind {
    /// Both kinds, in the order a delivery pass starts with.
    pub const ALL: [ItemKind; 2] = [ItemKind::Audit, ItemKind::Violation];

    /// `"audit"` or `"violation"` (metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Audit => "audit",
            ItemKind::Violation => "violation",
        }
    }

    pub(crate) fn tag(self) -> u32 {
        match self {
            ItemKind::Audit => 1,
            ItemKind::Violation => 2,
        }
    }

    pub(crate) fn from_tag(tag: u32) -> Option<Self> {
        match tag {
            1 => Some(ItemKind::Audit),
            2 => Some(ItemKind::Violation),
            _ => None,
        }
    }
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One item to deliver on chain, carrying its client-chosen deterministic id.
#[derive(Clone, Debug, PartialEq)]
pub enum OutboxItem {
    /// An audit record (`record_id` must be set).
    Audit(RoutingAuditRecord),
    /// A violation (`violation_id` must be set).
    Violation(RoutingViolation),
}

impl OutboxItem {
    /// The item's id: `record_id` or `violation_id`.
    pub fn id(&self) -> &str {
        match self {
            OutboxItem::Audit(r) => &r.record_id,
            OutboxItem::Violation(v) => &v.violation_id,
        }
    }

    /// The item's kind.
    pub fn kind(&self) -> ItemKind {
        match self {
            OutboxItem::Audit(_) => ItemKind::Audit,
            OutboxItem::Violation(_) => ItemKind::Violation,
        }
    }

    /// Whether `stored` (what the chain holds under this item's id) is this item as
    /// `signer` submitted it: the only proof of delivery. Another signer's item, or other
    /// content, under the same id is not (x/hpc answers such a submission with 18 / 19,
    /// not 9 / 13).
    pub fn is_delivered_as(&self, stored: &OutboxItem, signer: &str) -> bool {
        match (self, stored) {
            (OutboxItem::Audit(mine), OutboxItem::Audit(stored)) => {
                submission::same_audit(stored, mine, signer)
            }
            (OutboxItem::Violation(mine), OutboxItem::Violation(stored)) => {
                submission::same_violation(stored, mine, signer)
            }
            _ => false,
        }
    }

    /// Kind and id, what [`ChainSink::stored`](crate::ChainSink::stored) looks up.
    pub fn item_ref(&self) -> ItemRef {
        ItemRef {
            kind: self.kind(),
            id: self.id().to_string(),
        }
    }

    pub(crate) fn encode_payload(&self) -> Vec<u8> {
        use prost::Message;
        match self {
            OutboxItem::Audit(r) => r.encode_to_vec(),
            OutboxItem::Violation(v) => v.encode_to_vec(),
        }
    }

    pub(crate) fn decode_payload(kind: ItemKind, bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        use prost::Message;
        Ok(match kind {
            ItemKind::Audit => OutboxItem::Audit(RoutingAuditRecord::decode(bytes)?),
            ItemKind::Violation => OutboxItem::Violation(RoutingViolation::decode(bytes)?),
        })
    }
}

impl From<RoutingAuditRecord> for OutboxItem {
    fn from(r: RoutingAuditRecord) -> Self {
        OutboxItem::Audit(r)
    }
}

impl From<RoutingViolation> for OutboxItem {
    fn from(v: RoutingViolation) -> Self {
        OutboxItem::Violation(v)
    }
}

/// A reference to an item on chain: its kind and id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ItemRef {
    /// Which query to use (`RoutingAuditRecord` or `RoutingViolation`).
    pub kind: ItemKind,
    /// `record_id` or `violation_id`.
    pub id: String,
}

impl fmt::Display for ItemRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.id)
    }
}

/// One tx worth of items, all of one kind, in FIFO order; at most
/// [`ChainSink::max_batch_size`](crate::ChainSink::max_batch_size) of them.
#[derive(Clone, Debug, PartialEq)]
pub enum Batch {
    /// The `records` of one `MsgRecordRoutingAudit`.
    Audits(Vec<RoutingAuditRecord>),
    /// The `violations` of one `MsgReportRoutingViolation`.
    Violations(Vec<RoutingViolation>),
}

impl Batch {
    /// Builds a batch from items that must all be of `kind`.
    pub(crate) fn of(kind: ItemKind, items: Vec<OutboxItem>) -> Self {
        match kind {
            ItemKind::Audit => Batch::Audits(
                items
                    .into_iter()
                    .map(|i| match i {
                        OutboxItem::Audit(r) => r,
                        OutboxItem::Violation(_) => unreachable!("batch of one kind"),
                    })
                    .collect(),
            ),
            ItemKind::Violation => Batch::Violations(
                items
                    .into_iter()
                    .map(|i| match i {
                        OutboxItem::Violation(v) => v,
                        OutboxItem::Audit(_) => unreachable!("batch of one kind"),
                    })
                    .collect(),
            ),
        }
    }

    /// The kind of every item of the batch.
    pub fn kind(&self) -> ItemKind {
        match self {
            Batch::Audits(_) => ItemKind::Audit,
            Batch::Violations(_) => ItemKind::Violation,
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            Batch::Audits(r) => r.len(),
            Batch::Violations(v) => v.len(),
        }
    }

    /// Whether the batch holds no item (the deliverer never submits one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items' ids, in order.
    pub fn ids(&self) -> Vec<&str> {
        match self {
            Batch::Audits(r) => r.iter().map(|r| r.record_id.as_str()).collect(),
            Batch::Violations(v) => v.iter().map(|v| v.violation_id.as_str()).collect(),
        }
    }
}
