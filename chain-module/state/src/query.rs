//! Query routing by gRPC method path (`/<package.Service>/<Method>`), shared by
//! `abci_query` and the gRPC server so both answer identically.

use cosmos_sdk_proto::cosmos::base::query::v1beta1::{PageRequest, PageResponse};
use hpc_store::{key_after, prefix_end, StateRead};
use prost::Message;

use crate::errors::QueryError;

/// Queries that read a bounded number of keys (one record, an account, params) and no
/// range: cheap enough for a node to answer on the thread that received them instead of
/// handing them to a pool (two thread wake-ups fewer, which on a busy machine is most of
/// a point query's latency). Everything else may scan up to a page.
pub const POINT_QUERIES: [&str; 10] = [
    "/virtengine.hpc.v1.Query/Params",
    "/virtengine.hpc.v1.Query/Cluster",
    "/virtengine.hpc.v1.Query/Job",
    "/virtengine.hpc.v1.Query/SchedulingDecision",
    "/virtengine.hpc.v1.Query/RoutingAuditRecord",
    "/virtengine.hpc.v1.Query/RoutingViolation",
    "/virtengine.hpc.v1.Query/ViolationCount",
    "/cosmos.auth.v1beta1.Query/Account",
    "/cosmos.bank.v1beta1.Query/Balance",
    "/cosmos.consensus.v1.Query/Params",
];

/// Whether `path` is one of the [`POINT_QUERIES`].
pub fn is_point_query(path: &str) -> bool {
    POINT_QUERIES.contains(&path)
}

pub use hpc_primitives::contract::limits::{
    DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, MAX_SCANNED_ENTRIES,
};

/// Decodes the request, runs the handler and encodes the response.
pub fn handle<Req, Resp>(
    data: &[u8],
    handler: impl FnOnce(Req) -> Result<Resp, QueryError>,
) -> Result<Vec<u8>, QueryError>
where
    Req: Message + Default,
    Resp: Message,
{
    let req = Req::decode(data)
        .map_err(|e| QueryError::InvalidArgument(format!("malformed request: {e}")))?;
    handler(req).map(|resp| resp.encode_to_vec())
}

/// One page of the entries under `prefix` (keys relative to the prefix), as Cosmos
/// `query.Paginate`: by `key` (the `next_key` of the previous page) or by `offset`;
/// `count_total` counts all entries on a walk's first page (within the read budget).
pub fn paginate(
    state: &dyn StateRead,
    prefix: &[u8],
    page: Option<&PageRequest>,
) -> Result<(hpc_store::Entries, PageResponse), QueryError> {
    paginate_filtered(
        state,
        prefix,
        page,
        |k, v| Some((k.to_vec(), v.to_vec())),
        |_| true,
    )
}

/// Entries read per store call while counting past the page for `count_total`.
const COUNT_CHUNK: usize = 1_024;

/// Entries read from a range in chunks, so that a scan holds one chunk in memory whatever
/// the range's size, examining at most `budget` stored keys in all.
struct ChunkedScan<'a> {
    state: &'a dyn StateRead,
    cursor: Vec<u8>,
    end: Option<Vec<u8>>,
    chunk: usize,
    budget: u64,
    buffered: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    exhausted: bool,
    /// Set when the budget ran out before the range did: where the range goes on.
    resume: Option<Vec<u8>>,
}

impl<'a> ChunkedScan<'a> {
    fn new(
        state: &'a dyn StateRead,
        from: Vec<u8>,
        end: Option<Vec<u8>>,
        chunk: usize,
        budget: u64,
    ) -> Self {
        Self {
            state,
            cursor: from,
            end,
            chunk: chunk.max(1),
            budget,
            buffered: Vec::new().into_iter(),
            exhausted: false,
            resume: None,
        }
    }
}

impl Iterator for ChunkedScan<'_> {
    type Item = (Vec<u8>, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(entry) = self.buffered.next() {
            return Some(entry);
        }
        if self.exhausted {
            return None;
        }
        let read =
            self.state
                .range_bounded(&self.cursor, self.end.as_deref(), self.chunk, self.budget);
        self.budget = self.budget.saturating_sub(read.examined);
        match read.resume {
            Some(resume) => {
                self.exhausted = true;
                self.resume = Some(resume);
            }
            None => self.exhausted = read.entries.len() < self.chunk,
        }
        if let Some((last, _)) = read.entries.last() {
            self.cursor = key_after(last);
        }
        self.buffered = read.entries.into_iter();
        self.buffered.next()
    }
}

/// One page of records found through `prefix` (a primary prefix or a secondary index),
/// keeping only those `filter` accepts, as cosmos `FilteredPaginate`: the page holds up
/// to `limit` matches; `next_key` is where the next page starts. `load` turns an entry
/// (key suffix after `prefix`, value) into a record. Examines at most
/// [`MAX_SCANNED_ENTRIES`] stored keys.
pub fn paginate_filtered<T>(
    state: &dyn StateRead,
    prefix: &[u8],
    page: Option<&PageRequest>,
    load: impl Fn(&[u8], &[u8]) -> Option<T>,
    filter: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, PageResponse), QueryError> {
    paginate_within(state, prefix, page, MAX_SCANNED_ENTRIES, load, filter)
}

fn paginate_within<T>(
    state: &dyn StateRead,
    prefix: &[u8],
    page: Option<&PageRequest>,
    budget: u64,
    load: impl Fn(&[u8], &[u8]) -> Option<T>,
    filter: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, PageResponse), QueryError> {
    let default = PageRequest::default();
    let page = page.unwrap_or(&default);
    let limit = checked_limit(page)?;
    // As the Cosmos SDK: a total only for the first page of a walk (no `key`).
    let counting = page.count_total && page.key.is_empty();
    let matching = |(key, value): &(Vec<u8>, Vec<u8>)| {
        load(&key[prefix.len()..], value).filter(|item| filter(item))
    };
    let from = [prefix, page.key.as_slice()].concat();
    let chunk = if counting {
        COUNT_CHUNK.max(limit + 1)
    } else {
        limit + 1
    };
    let mut scan = ChunkedScan::new(state, from, prefix_end(prefix), chunk, budget);
    let (mut skipped, mut total) = (0u64, 0u64);
    let mut out = Vec::new();
    let mut next_key = Vec::new();
    for entry in scan.by_ref() {
        if out.len() == limit {
            if next_key.is_empty() {
                next_key = entry.0[prefix.len()..].to_vec();
            }
            if !counting {
                break;
            }
            total += u64::from(matching(&entry).is_some());
            continue;
        }
        let Some(item) = matching(&entry) else {
            continue;
        };
        total += 1;
        if skipped < page.offset {
            skipped += 1;
            continue;
        }
        out.push(item);
    }
    if let Some(resume) = scan.resume {
        if counting {
            return Err(QueryError::InvalidArgument(format!(
                "pagination.count_total: more than {budget} entries to count; leave count_total unset and page with pagination.key"
            )));
        }
        if skipped < page.offset {
            return Err(QueryError::InvalidArgument(format!(
                "pagination.offset: skipping {} matches reads more than {budget} entries; page with pagination.key (the previous page's next_key)",
                page.offset
            )));
        }
        if next_key.is_empty() {
            // The budget is spent: a short page, resumed where the next page starts.
            next_key = resume[prefix.len()..].to_vec();
        }
    }
    let total = if counting { total } else { 0 };
    Ok((out, PageResponse { next_key, total }))
}

/// The page size a request asks for, after the checks no entry needs to be read for.
fn checked_limit(page: &PageRequest) -> Result<usize, QueryError> {
    if page.reverse {
        return Err(QueryError::InvalidArgument(
            "pagination.reverse is not supported".into(),
        ));
    }
    if !page.key.is_empty() && page.offset > 0 {
        return Err(QueryError::InvalidArgument(
            "pagination: set either key or offset, not both".into(),
        ));
    }
    match page.limit {
        0 => Ok(DEFAULT_PAGE_LIMIT as usize),
        l if l > MAX_PAGE_LIMIT => Err(QueryError::InvalidArgument(format!(
            "pagination.limit {l} exceeds the maximum of {MAX_PAGE_LIMIT}"
        ))),
        l => Ok(l as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A misspelt entry would silently send that query to the pool: each one is routed,
    /// and answers an empty request with a field error or a value, never "unknown path".
    #[test]
    fn every_point_query_is_a_routed_method() {
        let app = crate::App::new("0.025uvirt".parse().unwrap());
        let state: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let clock = crate::hpc::QueryClock {
            height: 1,
            block_time_seconds: 0,
        };
        for path in POINT_QUERIES {
            assert!(is_point_query(path));
            if let Err(QueryError::UnknownPath(p)) = app.query(path, &[], &state, clock) {
                panic!("{p} is not routed");
            }
        }
        assert!(!is_point_query("/virtengine.hpc.v1.Query/Jobs"));
    }

    #[test]
    fn pages_by_key_and_offset_cover_everything_once() {
        let state: BTreeMap<Vec<u8>, Vec<u8>> = (0u8..10)
            .map(|i| (vec![b'p', i], vec![i]))
            .chain([(b"q".to_vec(), vec![])])
            .collect();
        let mut seen = Vec::new();
        let mut req = PageRequest {
            limit: 3,
            count_total: true,
            ..Default::default()
        };
        loop {
            let (entries, resp) = paginate(&state, b"p", Some(&req)).unwrap();
            // As the Cosmos SDK: the total on the first page only.
            assert_eq!(resp.total, if req.key.is_empty() { 10 } else { 0 });
            seen.extend(entries.into_iter().map(|(_, v)| v[0]));
            if resp.next_key.is_empty() {
                break;
            }
            req.key = resp.next_key;
        }
        assert_eq!(seen, (0..10).collect::<Vec<u8>>());
        let (entries, _) = paginate(
            &state,
            b"p",
            Some(&PageRequest {
                offset: 8,
                limit: 5,
                ..Default::default()
            }),
        )
        .unwrap();
        assert_eq!(
            entries.iter().map(|(_, v)| v[0]).collect::<Vec<_>>(),
            vec![8, 9]
        );
        let too_big = PageRequest {
            limit: MAX_PAGE_LIMIT + 1,
            ..Default::default()
        };
        assert!(
            matches!(paginate(&state, b"p", Some(&too_big)), Err(QueryError::InvalidArgument(m)) if m.contains("pagination.limit"))
        );
    }

    fn ten_entries() -> BTreeMap<Vec<u8>, Vec<u8>> {
        (0u8..10)
            .map(|i| (vec![b'p', i], vec![i]))
            .chain([(b"q".to_vec(), vec![])])
            .collect()
    }

    /// Pages of the even values, reading at most `budget` entries per page.
    fn even_pages(
        state: &BTreeMap<Vec<u8>, Vec<u8>>,
        req: &PageRequest,
        budget: u64,
    ) -> Result<(Vec<u8>, PageResponse), QueryError> {
        paginate_within(
            state,
            b"p",
            Some(req),
            budget,
            |_, v| Some(v[0]),
            |v| v % 2 == 0,
        )
    }

    #[test]
    fn a_page_that_spends_the_read_budget_ends_short_and_the_next_pages_resume_it() {
        let state = ten_entries();
        let mut req = PageRequest {
            limit: 4,
            ..Default::default()
        };
        let (mut seen, mut sizes) = (Vec::new(), Vec::new());
        loop {
            let (items, resp) = even_pages(&state, &req, 3).unwrap();
            sizes.push(items.len());
            seen.extend(items);
            if resp.next_key.is_empty() {
                break;
            }
            req.key = resp.next_key;
        }
        assert_eq!(seen, vec![0, 2, 4, 6, 8]);
        // 3 entries read per page: [0,1,2] [3,4,5] [6,7,8] [9].
        assert_eq!(sizes, vec![2, 1, 2, 0]);
    }

    #[test]
    fn offsets_and_counts_past_the_read_budget_are_refused_naming_the_field() {
        let state = ten_entries();
        let refused =
            |req: PageRequest, budget: u64, field: &str| match even_pages(&state, &req, budget) {
                Err(QueryError::InvalidArgument(m)) => assert!(m.starts_with(field), "{m}"),
                other => panic!("{field}: {other:?}"),
            };
        let offset = |offset| PageRequest {
            offset,
            ..Default::default()
        };
        // An offset past the end of a small prefix is an empty page, as in the SDK.
        assert!(even_pages(&state, &offset(1_000), 100)
            .unwrap()
            .0
            .is_empty());
        // Skipping 3 even values reads 5 entries (0 to 4).
        refused(offset(3), 4, "pagination.offset: skipping 3 matches");
        let (items, resp) = even_pages(&state, &offset(3), 5).unwrap();
        assert!(items.is_empty());
        assert_eq!(resp.next_key, vec![4, 0]); // the smallest key after the last one read
        assert_eq!(even_pages(&state, &offset(3), 10).unwrap().0, vec![6, 8]);
        let count = PageRequest {
            count_total: true,
            limit: 1,
            ..Default::default()
        };
        // Counting reads all 10 entries: refused once the budget cannot tell there are no
        // more.
        refused(count.clone(), 10, "pagination.count_total");
        let (items, resp) = even_pages(&state, &count, 11).unwrap();
        assert_eq!((items, resp.total, resp.next_key), (vec![0], 5, vec![1]));
    }

    /// On the real store, the keys deleted at a height it still keeps count against the
    /// budget: pages over them stay bounded and, walked to the end, return every live entry
    /// once; a count that would examine too many of them is refused.
    #[test]
    fn deleted_keys_the_store_keeps_count_against_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let storage = hpc_store::Storage::open(&dir.path().join("state.redb")).unwrap();
        let key = |i: u8| vec![b'p', i];
        let all: hpc_store::Changes = (0u8..50).map(|i| (key(i), Some(vec![i]))).collect();
        storage.commit(storage.prepare(all, 1).unwrap()).unwrap();
        // Keep every fifth entry.
        let deleted: hpc_store::Changes = (0u8..50)
            .filter(|i| i % 5 != 0)
            .map(|i| (key(i), None))
            .collect();
        storage
            .commit(storage.prepare(deleted, 2).unwrap())
            .unwrap();
        let snapshot = storage.snapshot(None).unwrap();
        let pages = |req: &PageRequest, budget| {
            paginate_within(
                &snapshot,
                b"p",
                Some(req),
                budget,
                |_, v| Some(v[0]),
                |_| true,
            )
        };
        let mut req = PageRequest {
            limit: 3,
            ..Default::default()
        };
        let mut seen = Vec::new();
        for _ in 0..100 {
            let (items, resp) = pages(&req, 7).unwrap();
            assert!(
                items.len() <= 2,
                "7 keys examined hold at most 2 live ones: {items:?}"
            );
            seen.extend(items);
            if resp.next_key.is_empty() {
                break;
            }
            req.key = resp.next_key;
        }
        assert_eq!(seen, (0u8..50).step_by(5).collect::<Vec<_>>());
        let count = PageRequest {
            count_total: true,
            ..Default::default()
        };
        match pages(&count, 30) {
            Err(QueryError::InvalidArgument(m)) => {
                assert!(m.starts_with("pagination.count_total"), "{m}")
            }
            other => panic!("10 live entries among 50 keys, budget 30: {other:?}"),
        }
        assert_eq!(pages(&count, 51).unwrap().1.total, 10);
    }
}
