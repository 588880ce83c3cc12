//! `hpc-enforcer`: the routing enforcer each provider runs next to its cluster (SPEC §5).
//!
//! This crate currently holds:
//! - [`config`]: the YAML configuration (the seed's `hpc:` block plus chain, key, gas,
//!   scheduler, health, metrics, admin, state dir and log), with validation errors that
//!   name the field;
//! - [`decision`]: the enforcement decision as a pure function of what the chain and the
//!   local scheduler report ([`decision::evaluate`]), covering SPEC §5's mode table.
//!
//! The daemon around them (block follower, outbox, local scheduler adapters, health
//! monitor, metrics and admin API) is not wired up yet: `hpc-enforcer start` says so.

pub mod config;
pub mod decision;

pub use config::{Config, ConfigError};
pub use decision::{evaluate, Evaluation, EvaluationInput, Outcome};
