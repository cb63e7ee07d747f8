//! The port contract suite against the embedded SQLite adapter.

use std::sync::Arc;

use ledgix_core::contract::Ports;
use ledgix_core::port_contract_tests;
use ledgix_embedded::{MemoryRateLimiter, SqliteStore};

async fn sqlite() -> (Ports, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("vault.db")).expect("open"));
    (
        Ports {
            store: store.clone(),
            control: store.clone(),
            usage: store,
            limiter: Arc::new(MemoryRateLimiter::default()),
        },
        dir,
    )
}

port_contract_tests!(sqlite());

/// The same contract with payloads encrypted at rest.
mod encrypted {
    use super::*;
    use base64::Engine as _;

    async fn sqlite_encrypted() -> (Ports, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
        let codec = ledgix_embedded::Codec::from_base64_key(&key).expect("key");
        let store =
            Arc::new(SqliteStore::open_with(&dir.path().join("vault.db"), codec).expect("open"));
        (
            Ports {
                store: store.clone(),
                control: store.clone(),
                usage: store,
                limiter: Arc::new(MemoryRateLimiter::default()),
            },
            dir,
        )
    }

    port_contract_tests!(sqlite_encrypted());

    #[tokio::test]
    async fn payloads_are_not_stored_in_plaintext() {
        use ledgix_core::ports::Write;
        let (ports, dir) = sqlite_encrypted().await;
        let mut event = ledgix_core::contract::event("r1");
        event.tool_args = serde_json::json!({"secret_marker": "do-not-store-in-clear"});
        ports
            .store
            .commit("t", vec![Write::AppendEvent(event)])
            .await
            .expect("commit");
        assert_eq!(
            ports.store.ledger_tail("t", 1).await.expect("read")[0].tool_args["secret_marker"],
            "do-not-store-in-clear"
        );
        drop(ports);
        let mut raw = Vec::new();
        for entry in std::fs::read_dir(dir.path()).expect("dir").flatten() {
            raw.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
        let needle = b"do-not-store-in-clear";
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle),
            "the database and WAL never hold the plaintext"
        );
    }
}

#[tokio::test]
async fn state_survives_reopening_the_file() {
    use ledgix_core::ports::{TenantStore, Write};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("vault.db");
    {
        let store = SqliteStore::open(&path).expect("open");
        store
            .commit(
                "t",
                vec![Write::AppendEvent(ledgix_core::contract::event("r1"))],
            )
            .await
            .expect("commit");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    let events = store.ledger_tail("t", 10).await.expect("read");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, 1);
}
