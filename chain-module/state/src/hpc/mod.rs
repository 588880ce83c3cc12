//! x/hpc: where HPC jobs must run. Providers register clusters and heartbeat their
//! status; a job submission is scheduled deterministically onto one cluster; providers'
//! enforcers report routing audit records and violations, which the chain cross-checks.
//!
//! - [`keeper`]: state layout and secondary indexes;
//! - [`msgs`]: messages, signer rules and stateless checks;
//! - [`msg_server`]: stateful checks, state changes and events;
//! - [`scheduler`] / [`reputation`]: the deterministic placement functions;
//! - [`query`]: the `virtengine.hpc.v1.Query` service;
//! - [`genesis`]: import/export of the whole module.

mod genesis;
pub mod keeper;
pub mod msg_server;
pub mod msgs;
mod params;
mod query;
pub mod reputation;
pub mod retention;
pub mod scheduler;

pub use genesis::{default_genesis, export_genesis, import_genesis};
pub use hpc_proto::virtengine::hpc::v1 as types;
pub use msg_server::execute;
pub use msgs::HpcMsg;
pub use params::{default_params, validate_params, HpcKeeper, BPS};
pub use query::{route as route_query, QueryClock};
pub use retention::end_block;
