//! The key-registry contract suite (`ledgix_core::contract`, key_registry.rs) against the in-memory registry,
//! the reference behaviour the DynamoDB adapter (ledgix-aws's tests/contract.rs) is held to.

use std::sync::Arc;

use ledgix_core::key_registry::MemoryKeyRegistry;
use ledgix_core::key_registry_contract_tests;
use ledgix_core::ports::KeyRegistry;

async fn memory() -> Arc<dyn KeyRegistry> {
    Arc::new(MemoryKeyRegistry::default())
}

key_registry_contract_tests!(memory());
