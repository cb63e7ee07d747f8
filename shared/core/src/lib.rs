//! Ledgix Vault domain. No I/O, no HTTP, no cloud SDK types: the clearance lifecycle, decisions, approval
//! tokens, ledger events and their hashing, policies, and the port traits that adapters implement.

pub mod apikey;
pub mod at_rest;
pub mod audit;
pub mod cache;
pub mod cbor;
pub mod checkpoint;
pub mod config;
#[cfg(feature = "contract")]
pub mod contract;
pub mod error;
pub mod hashing;
pub mod judge;
pub mod key_registry;
pub mod keys;
pub mod ledger;
pub mod merkle;
pub mod model;
pub mod note;
pub mod notify;
pub mod policy;
pub mod ports;
pub mod ratelimit;
pub mod rego_guard;
pub mod roles;
pub mod sealing;
pub mod service;
pub mod tiles;
pub mod token;
pub mod tool_args;

pub use error::{VaultError, VaultResult};
pub use service::Vault;
