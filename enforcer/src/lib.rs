//! `hpc-enforcer`: the routing enforcer each provider runs next to its cluster (SPEC §5).
//!
//! - [`config`]: the YAML configuration (the seed's `hpc:` block plus chain, key, gas,
//!   scheduler, health, metrics, admin, state dir and log), with validation errors that
//!   name the field;
//! - [`decision`]: the enforcement decision as a pure function of what the chain and the
//!   local scheduler report ([`decision::evaluate`]), covering SPEC §5's mode table;
//! - [`daemon`]: the I/O around it — block follower with a persisted cursor, the durable
//!   outbox (`hpc-outbox`), local scheduler adapters (`hpc-local-scheduler`), job status
//!   reporting, health monitor and heartbeats;
//! - [`workload`]: the provider's workload policy and the fetch + sha256 check of
//!   content-addressed scripts, before anything runs;
//! - [`chain`], [`store`], [`audit_log`], [`metrics`], [`admin`]: its parts.

pub mod admin;
pub mod audit_log;
pub mod chain;
pub mod config;
pub mod daemon;
pub mod decision;
pub mod metrics;
pub mod store;
pub mod workload;

pub use config::{Config, ConfigError};
pub use decision::{evaluate, Evaluation, EvaluationInput, Outcome};
