//! Query routing by gRPC method path (`/<package.Service>/<Method>`), shared by
//! `abci_query` and the gRPC server so both answer identically.

use cosmos_sdk_proto::cosmos::base::query::v1beta1::{PageRequest, PageResponse};
use hpc_store::{prefix_end, StateRead};
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

/// Page size when the request gives none, and the largest one served.
pub const DEFAULT_PAGE_LIMIT: u64 = 100;
pub const MAX_PAGE_LIMIT: u64 = 1_000;

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
/// `count_total` counts all entries (a full scan of the prefix, so only when asked).
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

/// One page of records found through `prefix` (a primary prefix or a secondary index),
/// keeping only those `filter` accepts, as cosmos `FilteredPaginate`: the page holds up
/// to `limit` matches; `next_key` is where the next page starts. `load` turns an entry
/// (key suffix after `prefix`, value) into a record.
pub fn paginate_filtered<T>(
    state: &dyn StateRead,
    prefix: &[u8],
    page: Option<&PageRequest>,
    load: impl Fn(&[u8], &[u8]) -> Option<T>,
    filter: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, PageResponse), QueryError> {
    let default = PageRequest::default();
    let page = page.unwrap_or(&default);
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
    let limit = match page.limit {
        0 => DEFAULT_PAGE_LIMIT,
        l if l > MAX_PAGE_LIMIT => {
            return Err(QueryError::InvalidArgument(format!(
                "pagination.limit {l} exceeds the maximum of {MAX_PAGE_LIMIT}"
            )))
        }
        l => l,
    } as usize;
    let end = prefix_end(prefix);
    let mut cursor = [prefix, page.key.as_slice()].concat();
    let mut skipped = 0u64;
    let mut out = Vec::new();
    let mut next_key = Vec::new();
    let chunk = limit + 1;
    'scan: loop {
        let entries = state.range(&cursor, end.as_deref(), chunk);
        let exhausted = entries.len() < chunk;
        for (key, value) in &entries {
            if out.len() == limit {
                next_key = key[prefix.len()..].to_vec();
                break 'scan;
            }
            let Some(item) = load(&key[prefix.len()..], value) else {
                continue;
            };
            if !filter(&item) {
                continue;
            }
            if skipped < page.offset {
                skipped += 1;
                continue;
            }
            out.push(item);
        }
        match entries.last() {
            Some((last, _)) if !exhausted => {
                cursor = last.clone();
                cursor.push(0); // the smallest key after `last`
            }
            _ => break,
        }
    }
    let total = if page.count_total {
        state
            .prefix(prefix, usize::MAX)
            .iter()
            .filter_map(|(k, v)| load(&k[prefix.len()..], v))
            .filter(|item| filter(item))
            .count() as u64
    } else {
        0
    };
    Ok((out, PageResponse { next_key, total }))
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
            assert_eq!(resp.total, 10);
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
}
