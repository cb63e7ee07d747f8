//! The port contract suite against the embedded SQLite adapter.

use std::sync::Arc;

use ledgix_core::contract::Ports;
use ledgix_core::port_contract_tests;
use ledgix_embedded::SqliteStore;

async fn sqlite() -> (Ports, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("vault.db")).expect("open"));
    (Ports { store: store.clone(), control: store }, dir)
}

port_contract_tests!(sqlite());

#[tokio::test]
async fn state_survives_reopening_the_file() {
    use ledgix_core::ports::{TenantStore, Write};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("vault.db");
    {
        let store = SqliteStore::open(&path).expect("open");
        store.commit("t", vec![Write::AppendEvent(ledgix_core::contract::event("r1"))]).await.expect("commit");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    let events = store.ledger_tail("t", 10).await.expect("read");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, 1);
}
