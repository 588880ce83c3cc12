//! x/hpc: routing of HPC jobs. This part holds the module params and the authority that
//! may change them; clusters, jobs and the scheduler build on it.

mod genesis;
mod params;
mod query;

pub use genesis::{default_genesis, export_genesis, import_genesis};
pub use hpc_proto::virtengine::hpc::v1 as types;
pub use params::{default_params, validate_params, HpcKeeper};
pub use query::route as route_query;
