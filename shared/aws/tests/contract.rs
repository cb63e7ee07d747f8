//! The port contract suite against the AWS adapters: PostgreSQL (a fresh control-plane database per test,
//! tenant databases provisioned through Secrets Manager) and DynamoDB, on a real PostgreSQL server and the
//! AWS emulator. scripts/test.sh provides both and runs these with `--include-ignored`; they need
//! DATABASE_URL (a role that may create databases), AWS_ENDPOINT_URL and VAULT_DYNAMODB_TABLE.

use std::sync::Arc;
use std::time::Duration;

use ledgix_aws::control::PgControlPlane;
use ledgix_aws::dynamo::HotTable;
use ledgix_aws::pg::{self, TlsMode};
use ledgix_aws::tenant_store::PgTenantStore;
use ledgix_aws::tenants::TenantDirectory;
use ledgix_core::at_rest::PayloadCipher;
use ledgix_core::contract::Ports;
use ledgix_core::port_contract_tests;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set (scripts/test.sh sets it)"))
}

/// Drops the per-test control-plane database name with the test (the cluster is discarded by test.sh).
struct Guard;

async fn aws() -> (Ports, Guard) {
    let (ports, _, guard) = aws_with(PayloadCipher::default()).await;
    (ports, guard)
}

async fn aws_with(cipher: PayloadCipher) -> (Ports, Arc<TenantDirectory>, Guard) {
    let admin: tokio_postgres::Config = env("DATABASE_URL").parse().expect("DATABASE_URL");
    let name = format!("ledgix_cp_{}", uuid_like());
    let (client, connection) = admin
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create database");
    drop(client);
    driver.abort();
    let mut control_config = admin.clone();
    control_config.dbname(&name);
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let prefix = format!("ledgix/tenants/contract-{}", uuid_like());
    let directory = Arc::new(
        TenantDirectory::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            &prefix,
            Duration::from_secs(300),
            TlsMode::Disable,
            4,
            admin.clone(),
        )
        .with_auto_provision(),
    );
    let pool = pg::pool(control_config, TlsMode::Disable, 4).expect("pool");
    let control = Arc::new(
        PgControlPlane::connect(pool, directory.clone())
            .await
            .expect("control plane"),
    );
    let hot = HotTable::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env("VAULT_DYNAMODB_TABLE"),
        180,
    );
    let store = Arc::new(PgTenantStore::new(directory.clone(), hot.clone(), cipher));
    (
        Ports {
            store,
            control,
            usage: Arc::new(hot),
        },
        directory,
        Guard,
    )
}

fn uuid_like() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

port_contract_tests!(aws(), #[ignore = "needs PostgreSQL and the AWS emulator; scripts/test.sh runs it"]);

/// The same contract with payloads under KMS envelope encryption (VAULT_ENVELOPE_KMS_KEY_ID on the emulator).
mod envelope {
    use super::*;
    use ledgix_aws::kms::KmsDataKeys;
    use ledgix_core::at_rest::{Codec, Envelope};
    use ledgix_core::ports::Write;

    async fn cipher() -> PayloadCipher {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let keys = KmsDataKeys::new(
            aws_sdk_kms::Client::new(&sdk),
            &env("VAULT_ENVELOPE_KMS_KEY_ID"),
        );
        PayloadCipher::new(Codec::plaintext(), Some(Envelope::new(Arc::new(keys))))
    }

    async fn aws_envelope() -> (Ports, Guard) {
        let (ports, _, guard) = aws_with(cipher().await).await;
        (ports, guard)
    }

    port_contract_tests!(aws_envelope(), #[ignore = "needs PostgreSQL and the AWS emulator; scripts/test.sh runs it"]);

    #[tokio::test]
    #[ignore = "needs PostgreSQL and the AWS emulator; scripts/test.sh runs it"]
    async fn rows_hold_ciphertext_and_a_new_process_reads_them() {
        let (ports, directory, _guard) = aws_with(cipher().await).await;
        let tenant = format!("envelope{}", uuid_like());
        let mut event = ledgix_core::contract::event("r-envelope");
        event.tool_args = serde_json::json!({"secret_marker": "do-not-store-in-clear"});
        ports
            .store
            .commit(&tenant, vec![Write::AppendEvent(event)])
            .await
            .expect("commit");

        let client = directory
            .pool(&tenant)
            .await
            .expect("pool")
            .get()
            .await
            .expect("client");
        let body: String = client
            .query_one(
                "SELECT body FROM ledger WHERE request_id = 'r-envelope'",
                &[],
            )
            .await
            .expect("row")
            .get(0);
        assert!(body.starts_with("enc2:"), "stored as an envelope record");
        assert!(!body.contains("do-not-store-in-clear"));

        // Another process (a fresh cipher, no cached data key) reads the plaintext back through KMS.
        let fresh = PgTenantStore::new(
            directory.clone(),
            HotTable::new(
                aws_sdk_dynamodb::Client::new(
                    &aws_config::defaults(aws_config::BehaviorVersion::latest())
                        .load()
                        .await,
                ),
                env("VAULT_DYNAMODB_TABLE"),
                180,
            ),
            cipher().await,
        );
        use ledgix_core::ports::TenantStore;
        let events = fresh.ledger_tail(&tenant, 1).await.expect("read");
        assert_eq!(
            events[0].tool_args["secret_marker"],
            "do-not-store-in-clear"
        );

        // Without the envelope key the row is refused, not returned as ciphertext.
        let keyless = PgTenantStore::new(
            directory,
            HotTable::new(
                aws_sdk_dynamodb::Client::new(
                    &aws_config::defaults(aws_config::BehaviorVersion::latest())
                        .load()
                        .await,
                ),
                env("VAULT_DYNAMODB_TABLE"),
                180,
            ),
            PayloadCipher::default(),
        );
        assert!(keyless.ledger_tail(&tenant, 1).await.is_err());
    }
}
