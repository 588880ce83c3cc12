//! Which event attributes CometBFT's tx indexer keeps for `tx_search` (app.toml
//! `index-events`, as in the Cosmos SDK). Every indexed attribute is a key CometBFT writes
//! per tx, so indexing only what searches use cuts CometBFT's work per tx
//! (docs/benchmarks.md). Node-local: the `index` flag is not part of the block results hash,
//! so nodes with different lists agree on every block.

use std::collections::BTreeSet;

use hpc_primitives::contract::events;
use hpc_primitives::contract::sdk_events::{self, attrs as sdk_attrs};

/// Longest entry accepted (event types and keys are short; this only bounds the input).
const MAX_ENTRY_LEN: usize = 256;
/// Most entries accepted.
const MAX_ENTRIES: usize = 1_024;

/// The Cosmos SDK events searches use, as (type, key): by signer and sequence, by message
/// type, by sender or recipient of funds. Left out (still in every tx's result, just not
/// searchable): amounts, fees, `msg_index` and `tx.signature` (a tx is found by its hash).
const SDK_ENTRIES: [(&str, &str); 9] = [
    (sdk_events::TX, sdk_attrs::ACC_SEQ),
    (sdk_events::TX, sdk_attrs::FEE_PAYER),
    (sdk_events::MESSAGE, sdk_attrs::ACTION),
    (sdk_events::MESSAGE, sdk_attrs::SENDER),
    (sdk_events::MESSAGE, sdk_attrs::MODULE),
    (sdk_events::TRANSFER, sdk_attrs::SENDER),
    (sdk_events::TRANSFER, sdk_attrs::RECIPIENT),
    (sdk_events::COIN_SPENT, sdk_attrs::SPENDER),
    (sdk_events::COIN_RECEIVED, sdk_attrs::RECEIVER),
];

/// What `hpcd init` writes: the SDK entries above and every x/hpc event whole.
pub fn default_entries() -> Vec<String> {
    SDK_ENTRIES
        .iter()
        .map(|(kind, key)| format!("{kind}.{key}"))
        .chain(events::ALL.iter().map(|kind| kind.to_string()))
        .collect()
}

/// A validated `index-events` list. The default indexes every attribute.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventIndex {
    /// `None` (an empty list): index every attribute, the SDK's rule.
    entries: Option<BTreeSet<String>>,
}

impl EventIndex {
    /// Entries are `type.key` (one attribute, the SDK's form) or `type` (every attribute of
    /// that event type). An empty list indexes everything.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        if entries.len() > MAX_ENTRIES {
            return Err(format!(
                "index-events: {} entries, at most {MAX_ENTRIES}",
                entries.len()
            ));
        }
        for (i, entry) in entries.iter().enumerate() {
            let well_formed = !entry.is_empty()
                && entry.len() <= MAX_ENTRY_LEN
                && !entry.starts_with('.')
                && !entry.ends_with('.')
                && entry.chars().all(|c| c.is_ascii_graphic());
            if !well_formed {
                return Err(format!(
                    "index-events[{i}]: {entry:?} is not an event type or type.key (printable ASCII, 1 to {MAX_ENTRY_LEN} characters)"
                ));
            }
        }
        Ok(Self {
            entries: (!entries.is_empty()).then(|| entries.iter().cloned().collect()),
        })
    }

    /// Whether CometBFT should index attribute `key` of events of type `kind`. `scratch`
    /// is reused across calls so that a lookup allocates nothing.
    pub fn indexes(&self, kind: &str, key: &str, scratch: &mut String) -> bool {
        let Some(entries) = &self.entries else {
            return true;
        };
        if entries.contains(kind) {
            return true;
        }
        scratch.clear();
        scratch.push_str(kind);
        scratch.push('.');
        scratch.push_str(key);
        entries.contains(scratch.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[&str]) -> EventIndex {
        EventIndex::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
            .expect("valid")
    }

    #[test]
    fn entries_select_one_attribute_or_a_whole_type_and_an_empty_list_selects_all() {
        let mut scratch = String::new();
        let some = index(&["message.sender", events::JOB_ROUTED]);
        assert!(some.indexes("message", "sender", &mut scratch));
        assert!(!some.indexes("message", "action", &mut scratch));
        assert!(!some.indexes("messages", "ender", &mut scratch));
        assert!(some.indexes(events::JOB_ROUTED, "job_id", &mut scratch));
        assert!(some.indexes(events::JOB_ROUTED, "anything", &mut scratch));
        assert!(!some.indexes(events::JOB_STATUS, "job_id", &mut scratch));
        let all = index(&[]);
        assert_eq!(all, EventIndex::default());
        assert!(all.indexes("tx", "signature", &mut scratch));
    }

    #[test]
    fn malformed_entries_are_refused_naming_their_position() {
        for bad in [
            "",
            ".sender",
            "message.",
            "message sender",
            "mess\u{e9}age",
            &"x".repeat(257),
        ] {
            let err = EventIndex::parse(&["tx.acc_seq".into(), bad.to_string()]).unwrap_err();
            assert!(err.starts_with("index-events[1]: "), "{err}");
        }
        let too_many = vec!["tx.acc_seq".to_string(); MAX_ENTRIES + 1];
        assert!(EventIndex::parse(&too_many)
            .unwrap_err()
            .contains("at most"));
    }

    #[test]
    fn the_default_list_is_valid_and_leaves_out_signatures_and_amounts() {
        let default = EventIndex::parse(&default_entries()).expect("valid");
        let mut scratch = String::new();
        assert!(!default.indexes(sdk_events::TX, sdk_attrs::SIGNATURE, &mut scratch));
        assert!(!default.indexes(sdk_events::TRANSFER, sdk_attrs::AMOUNT, &mut scratch));
        assert!(default.indexes(sdk_events::TX, sdk_attrs::ACC_SEQ, &mut scratch));
    }
}
