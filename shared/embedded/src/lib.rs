//! Embedded adapters: the whole vault in one process with no cloud and no Docker.
//! SQLite file state (WAL, fsync on commit, group commit), in-process judge and notification queues, local
//! Ed25519 key, in-memory rate-limit buckets.

pub mod anchor;
pub mod keyring;
pub mod notify_queue;
pub mod queue;
pub mod ratelimit;
pub mod signer;
pub mod sqlite;

pub use anchor::FolderAnchor;
pub use keyring::Keyring;
pub use ledgix_core::at_rest::Codec;
pub use notify_queue::{spawn_notifier_workers, DeliveryReceiver, EmbeddedDeliveryQueue};
pub use queue::{spawn_judge_workers, EmbeddedQueue};
pub use ratelimit::MemoryRateLimiter;
pub use signer::LocalSigner;
pub use sqlite::SqliteStore;
