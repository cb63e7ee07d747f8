//! The port contract suite against the AWS adapters: PostgreSQL (a fresh control-plane database per test,
//! tenant databases provisioned through Secrets Manager) and DynamoDB, on a real PostgreSQL server and the
//! AWS emulator. scripts/test.sh provides both and runs these with `--include-ignored`; they need
//! DATABASE_URL (a role that may create databases), AWS_ENDPOINT_URL and VAULT_DYNAMODB_TABLE (and, for the
//! notification queue, VAULT_NOTIFY_SQS_QUEUE_URL).

use std::sync::Arc;
use std::time::Duration;

use ledgix_aws::control::PgControlPlane;
use ledgix_aws::dynamo::HotTable;
use ledgix_aws::notifications::DynamoNotificationStore;
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

async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// A client of the hot table, as another process would build it.
fn hot(sdk: &aws_config::SdkConfig) -> HotTable {
    HotTable::new(
        aws_sdk_dynamodb::Client::new(sdk),
        env("VAULT_DYNAMODB_TABLE"),
        180,
    )
}

/// The notification store in the hot table, as another process (the notifier) would build it.
fn notifications(sdk: &aws_config::SdkConfig, cipher: PayloadCipher) -> DynamoNotificationStore {
    DynamoNotificationStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        env("VAULT_DYNAMODB_TABLE"),
        cipher,
    )
}

/// A connection to the tenant's database, behind the store's back.
async fn tenant_client(directory: &TenantDirectory, tenant: &str) -> deadpool_postgres::Object {
    directory
        .pool(tenant)
        .await
        .expect("pool")
        .get()
        .await
        .expect("client")
}

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
    let sdk = sdk().await;
    let prefix = format!("ledgix/tenants/contract-{}", uuid_like());
    let directory = Arc::new(
        TenantDirectory::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            &prefix,
            Duration::from_secs(300),
            TlsMode::Disable,
            4,
            admin.clone(),
            TlsMode::Disable,
        )
        .with_auto_provision(),
    );
    let pool = pg::pool(control_config, TlsMode::Disable, 4).expect("pool");
    let control = Arc::new(
        PgControlPlane::connect(pool, directory.clone())
            .await
            .expect("control plane"),
    );
    let hot = hot(&sdk);
    let notifications = Arc::new(notifications(&sdk, cipher.clone()));
    let store = Arc::new(PgTenantStore::new(directory.clone(), hot.clone(), cipher));
    (
        Ports {
            store,
            control,
            usage: Arc::new(hot.clone()),
            limiter: Arc::new(hot),
            notifications,
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

/// A tenant database made before the outbox existed gets it when a process next opens its pool (the schema is
/// applied, idempotently, on every pool opening).
#[tokio::test]
#[ignore = "needs PostgreSQL and the AWS emulator; scripts/test.sh runs it"]
async fn an_older_tenant_database_gets_the_outbox() {
    use ledgix_core::ports::Write;
    let (ports, directory, _guard) = aws_with(PayloadCipher::default()).await;
    let tenant = format!("older{}", uuid_like());
    assert!(ports
        .store
        .outbox(&tenant, 10)
        .await
        .expect("read")
        .is_empty());
    tenant_client(&directory, &tenant)
        .await
        .batch_execute("DROP TABLE outbox")
        .await
        .expect("drop");
    assert!(ports.store.outbox(&tenant, 10).await.is_err(), "gone");
    // Re-provisioning drops the cached pool, as a new process would start without one.
    directory.provision(&tenant).await.expect("provision");
    let delivery = ledgix_core::notify::Delivery::queued(
        &tenant,
        "wh_1",
        ledgix_core::notify::NotificationEvent::ReviewPending,
        "r1",
        serde_json::json!({}),
    );
    ports
        .store
        .commit(
            &tenant,
            vec![Write::QueueNotifications(vec![delivery.clone()])],
        )
        .await
        .expect("commit");
    assert_eq!(
        ports.store.outbox(&tenant, 10).await.expect("read"),
        vec![delivery]
    );
}

/// The same contract with payloads under KMS envelope encryption (VAULT_ENVELOPE_KMS_KEY_ID on the emulator).
mod envelope {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use ledgix_aws::kms::KmsDataKeys;
    use ledgix_core::at_rest::{Codec, Envelope};
    use ledgix_core::notify::{
        Delivery, NotificationEvent, NotificationSettings, NotificationStore, WebhookTarget,
    };
    use ledgix_core::ports::Write;

    async fn cipher() -> PayloadCipher {
        let keys = KmsDataKeys::new(
            aws_sdk_kms::Client::new(&sdk().await),
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

        let body: String = tenant_client(&directory, &tenant)
            .await
            .query_one(
                "SELECT body FROM ledger WHERE request_id = 'r-envelope'",
                &[],
            )
            .await
            .expect("row")
            .get(0);
        assert!(body.starts_with("enc2:"), "stored as an envelope record");
        assert!(!body.contains("do-not-store-in-clear"));

        // The DynamoDB copy of a status carries the token: sealed the same way.
        let mut approved = ledgix_core::contract::clearance(
            &tenant,
            "r-token",
            ledgix_core::model::ClearanceStatus::Approved,
        );
        approved.token = Some("token-not-in-clear".into());
        ports
            .store
            .commit(&tenant, vec![Write::InsertClearance(approved)])
            .await
            .expect("commit");
        let ledgix_aws::dynamo::HotStatus::Current(copy) = hot(&sdk().await)
            .status(&tenant, "r-token")
            .await
            .expect("read copy")
        else {
            panic!("no status copy");
        };
        assert!(copy.starts_with("enc2:") && !copy.contains("token-not-in-clear"));
        let view = ports
            .store
            .clearance_status(&tenant, "r-token")
            .await
            .expect("read")
            .expect("view");
        assert_eq!(view.token.as_deref(), Some("token-not-in-clear"));

        // Another process (a fresh cipher, no cached data key) reads the plaintext back through KMS.
        let fresh = PgTenantStore::new(directory.clone(), hot(&sdk().await), cipher().await);
        use ledgix_core::ports::TenantStore;
        let events = fresh.ledger_tail(&tenant, 1).await.expect("read");
        assert_eq!(
            events[0].tool_args["secret_marker"],
            "do-not-store-in-clear"
        );

        // Without the envelope key the row is refused, not returned as ciphertext.
        let keyless = PgTenantStore::new(
            directory.clone(),
            hot(&sdk().await),
            PayloadCipher::default(),
        );
        assert!(keyless.ledger_tail(&tenant, 1).await.is_err());

        // The outbox row holds the notification's body (the tool call's arguments): sealed too.
        let delivery = Delivery::queued(
            &tenant,
            "wh_1",
            NotificationEvent::ReviewPending,
            "r-envelope",
            serde_json::json!({"tool_args": {"secret_marker": "args-not-in-clear"}}),
        );
        ports
            .store
            .commit(
                &tenant,
                vec![Write::QueueNotifications(vec![delivery.clone()])],
            )
            .await
            .expect("commit");
        let body: String = tenant_client(&directory, &tenant)
            .await
            .query_one(
                "SELECT body FROM outbox WHERE delivery_id = $1",
                &[&delivery.delivery_id],
            )
            .await
            .expect("outbox row")
            .get(0);
        assert!(body.starts_with("enc2:"), "outbox row sealed: {body}");
        assert!(!body.contains("args-not-in-clear"));
        assert_eq!(
            fresh.outbox(&tenant, 10).await.expect("read"),
            vec![delivery.clone()]
        );
        assert!(keyless.outbox(&tenant, 10).await.is_err());

        // The notifier's items in DynamoDB: the settings hold webhook secrets, a delivery the tool arguments.
        let settings = NotificationSettings {
            webhooks: vec![WebhookTarget {
                id: "wh_1".into(),
                url: "https://hooks.example.com/ledgix".into(),
                secret: "webhook-secret-not-in-clear".into(),
                events: vec![NotificationEvent::ReviewPending],
            }],
            slack: None,
            email: None,
        };
        ports
            .notifications
            .put_settings(&tenant, &settings)
            .await
            .expect("put settings");
        assert!(ports
            .notifications
            .create_delivery(&delivery)
            .await
            .expect("create delivery"));
        let item = |pk: String, sk: String| async move {
            aws_sdk_dynamodb::Client::new(&sdk().await)
                .get_item()
                .table_name(env("VAULT_DYNAMODB_TABLE"))
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk))
                .consistent_read(true)
                .send()
                .await
                .expect("get item")
                .item
                .expect("item")
        };
        let settings_item = item(format!("notify#{tenant}"), "settings".into()).await;
        let delivery_item =
            item(format!("deliveries#{tenant}"), delivery.delivery_id.clone()).await;
        for (item, marker) in [
            (&settings_item, "webhook-secret-not-in-clear"),
            (&delivery_item, "args-not-in-clear"),
        ] {
            let body = item["body"].as_s().expect("body");
            assert!(body.starts_with("enc2:"), "sealed: {body}");
            assert!(!format!("{item:?}").contains(marker), "{marker} in clear");
        }
        assert_eq!(delivery_item["attempts"], AttributeValue::N("0".into()));
        assert_eq!(delivery_item["status"], AttributeValue::S("queued".into()));
        let created = chrono::DateTime::parse_from_rfc3339(&delivery.created_at)
            .expect("created_at")
            .timestamp();
        assert_eq!(
            delivery_item["expires_at"],
            AttributeValue::N((created + 30 * 24 * 3600).to_string()),
            "kept 30 days"
        );
        // A notifier process with its own cipher reads them back; one without the key refuses them.
        let notifier_side = notifications(&sdk().await, cipher().await);
        assert_eq!(
            notifier_side.settings(&tenant).await.expect("read"),
            Some(settings)
        );
        assert_eq!(
            notifier_side
                .delivery(&tenant, &delivery.delivery_id)
                .await
                .expect("read"),
            Some(delivery.clone())
        );
        let keyless = notifications(&sdk().await, PayloadCipher::default());
        assert!(keyless.settings(&tenant).await.is_err());
        assert!(keyless.deliveries(&tenant, 10).await.is_err());
    }
}

/// The DynamoDB copies of clearance statuses and idempotent answers (tenant_store, dynamo.rs): served
/// without the tenant database, never while possibly stale, restored when lost.
mod hot_copies {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use ledgix_aws::dynamo::HotStatus;
    use ledgix_core::contract::clearance;
    use ledgix_core::error::{Conflict, StoreError};
    use ledgix_core::model::{ClearanceRecord, ClearanceStatus, IdempotencyRecord};
    use ledgix_core::ports::{TenantStore, Write};

    async fn tenant_sql(directory: &TenantDirectory, tenant: &str, sql: &str) {
        tenant_client(directory, tenant)
            .await
            .batch_execute(sql)
            .await
            .expect("sql");
    }

    /// Commit a new clearance through the store (which copies its status).
    async fn insert(ports: &Ports, tenant: &str, status: ClearanceStatus) -> ClearanceRecord {
        let record = clearance(tenant, "r1", status);
        ports
            .store
            .commit(tenant, vec![Write::InsertClearance(record.clone())])
            .await
            .expect("insert");
        record
    }

    async fn delete_item(pk: String, sk: &str) {
        aws_sdk_dynamodb::Client::new(&sdk().await)
            .delete_item()
            .table_name(env("VAULT_DYNAMODB_TABLE"))
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk.into()))
            .send()
            .await
            .expect("delete item");
    }

    async fn status(store: &dyn TenantStore, tenant: &str, request_id: &str) -> String {
        store
            .clearance_status(tenant, request_id)
            .await
            .expect("status")
            .expect("present")
            .status
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL and the AWS emulator; scripts/test.sh runs it"]
    async fn status_is_served_from_the_copy_and_from_the_database_while_marked() {
        let (ports, directory, _guard) = aws_with(PayloadCipher::default()).await;
        let tenant = format!("hot{}", uuid_like());
        insert(&ports, &tenant, ClearanceStatus::Processing).await;
        // Change the record behind the store's back: the unmarked copy is what is served.
        tenant_sql(
            &directory,
            &tenant,
            "UPDATE clearances SET status = 'denied', body = replace(body, '\"status\":\"processing\"', '\"status\":\"denied\"')",
        )
        .await;
        assert_eq!(
            ports
                .store
                .clearance(&tenant, "r1")
                .await
                .expect("read")
                .expect("row")
                .status,
            ClearanceStatus::Denied
        );
        assert_eq!(
            status(&*ports.store, &tenant, "r1").await,
            "processing",
            "served from DynamoDB"
        );

        // A process that marked the copy and died after committing: readers go to the database.
        let hot = hot(&sdk().await);
        hot.mark_status_changing(&tenant, "r1").await.expect("mark");
        assert_eq!(
            status(&*ports.store, &tenant, "r1").await,
            "denied",
            "a marked copy is not served"
        );
        hot.settle_mark(&tenant, "r1").await.expect("settle");
        assert_eq!(status(&*ports.store, &tenant, "r1").await, "processing");
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL and the AWS emulator; scripts/test.sh runs it"]
    async fn a_late_copy_never_replaces_a_newer_status() {
        let hot = hot(&sdk().await);
        let tenant = format!("hot{}", uuid_like());
        hot.put_status(&tenant, "r1", "decided".into(), 2, false)
            .await
            .expect("final");
        hot.put_status(&tenant, "r1", "processing".into(), 0, false)
            .await
            .expect("late copy is skipped, not an error");
        hot.restore_status(&tenant, "r1", "pending".into(), 1)
            .await
            .expect("restore is skipped");
        assert_eq!(
            hot.status(&tenant, "r1").await.expect("read"),
            HotStatus::Current("decided".into())
        );

        // A mark is settled even when its copy is skipped.
        hot.mark_status_changing(&tenant, "r1").await.expect("mark");
        assert_eq!(
            hot.status(&tenant, "r1").await.expect("read"),
            HotStatus::Changing
        );
        hot.put_status(&tenant, "r1", "processing".into(), 0, true)
            .await
            .expect("settle");
        assert_eq!(
            hot.status(&tenant, "r1").await.expect("read"),
            HotStatus::Current("decided".into())
        );
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL and the AWS emulator; scripts/test.sh runs it"]
    async fn a_lost_status_copy_is_restored_from_the_database() {
        let (ports, _directory, _guard) = aws_with(PayloadCipher::default()).await;
        let tenant = format!("hot{}", uuid_like());
        insert(&ports, &tenant, ClearanceStatus::PendingReview).await;
        delete_item(format!("status#{tenant}#r1"), "status").await;
        let hot = hot(&sdk().await);
        assert_eq!(
            hot.status(&tenant, "r1").await.expect("read"),
            HotStatus::Absent
        );
        assert_eq!(status(&*ports.store, &tenant, "r1").await, "pending_review");
        assert!(
            matches!(
                hot.status(&tenant, "r1").await.expect("read"),
                HotStatus::Current(_)
            ),
            "the read copied it back"
        );
    }

    fn answer(tenant: &str, key: &str) -> IdempotencyRecord {
        IdempotencyRecord {
            scope: tenant.into(),
            key: key.into(),
            request_hash: "h".into(),
            status_code: 200,
            response_body: "{\"ok\":true}".into(),
            created_at: ledgix_core::model::now_rfc3339(),
        }
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL and the AWS emulator; scripts/test.sh runs it"]
    async fn answers_replay_from_dynamodb_and_a_lost_copy_is_restored_by_the_refused_commit() {
        let (ports, directory, _guard) = aws_with(PayloadCipher::default()).await;
        let tenant = format!("hot{}", uuid_like());
        ports
            .store
            .commit(&tenant, vec![Write::PutIdempotency(answer(&tenant, "k1"))])
            .await
            .expect("commit");
        tenant_sql(&directory, &tenant, "DELETE FROM idempotency").await;
        assert!(
            ports
                .store
                .idempotency(&tenant, "k1")
                .await
                .expect("read")
                .is_some(),
            "served from DynamoDB"
        );

        ports
            .store
            .commit(&tenant, vec![Write::PutIdempotency(answer(&tenant, "k2"))])
            .await
            .expect("commit");
        delete_item(format!("answer#{tenant}#k2"), "answer").await;
        assert!(ports
            .store
            .idempotency(&tenant, "k2")
            .await
            .expect("read")
            .is_none());
        let again = ports
            .store
            .commit(&tenant, vec![Write::PutIdempotency(answer(&tenant, "k2"))])
            .await;
        assert!(
            matches!(again, Err(StoreError::Conflict(Conflict::IdempotencyKey))),
            "the database still holds the key: {again:?}"
        );
        let restored = ports
            .store
            .idempotency(&tenant, "k2")
            .await
            .expect("read")
            .expect("restored");
        assert_eq!(restored.response_body, "{\"ok\":true}");

        // A key shaped like a consume answer's stays the tenant's own.
        ports
            .store
            .commit(
                &tenant,
                vec![Write::PutIdempotency(answer(&tenant, "consume#k3"))],
            )
            .await
            .expect("commit");
        assert!(ports
            .store
            .consume_answer(&tenant, "k3")
            .await
            .expect("read")
            .is_none());
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL and the AWS emulator; scripts/test.sh runs it"]
    async fn without_dynamodb_an_update_writes_nothing_and_reads_use_the_database() {
        let (ports, directory, _guard) = aws_with(PayloadCipher::default()).await;
        let tenant = format!("hot{}", uuid_like());
        let blind = PgTenantStore::new(
            directory,
            HotTable::new(
                aws_sdk_dynamodb::Client::new(&sdk().await),
                "no-such-table",
                180,
            ),
            PayloadCipher::default(),
        );
        let record = clearance(&tenant, "r1", ClearanceStatus::Processing);
        blind
            .commit(&tenant, vec![Write::InsertClearance(record.clone())])
            .await
            .expect("an insert commits; its copy is only logged as missing");
        assert_eq!(
            status(&blind, &tenant, "r1").await,
            "processing",
            "read from the database"
        );

        let mut decided = record;
        decided.status = ClearanceStatus::Approved;
        let update = blind
            .commit(
                &tenant,
                vec![Write::UpdateClearance {
                    record: decided,
                    expected: ClearanceStatus::Processing,
                }],
            )
            .await;
        assert!(
            matches!(update, Err(StoreError::Unavailable(_))),
            "fail closed: {update:?}"
        );
        assert_eq!(
            ports
                .store
                .clearance(&tenant, "r1")
                .await
                .expect("read")
                .expect("row")
                .status,
            ClearanceStatus::Processing,
            "nothing committed"
        );
    }
}

/// The key-registry contract suite (ledgix_core::contract, key_registry.rs) on the signing-key items of the
/// DynamoDB hot table. Needs only the emulator (AWS_ENDPOINT_URL and VAULT_DYNAMODB_TABLE).
mod key_registry {
    use super::*;
    use ledgix_aws::key_registry::DynamoKeyRegistry;
    use ledgix_core::key_registry_contract_tests;
    use ledgix_core::ports::KeyRegistry;

    async fn dynamo() -> Arc<dyn KeyRegistry> {
        Arc::new(DynamoKeyRegistry::new(
            aws_sdk_dynamodb::Client::new(&sdk().await),
            env("VAULT_DYNAMODB_TABLE"),
        ))
    }

    key_registry_contract_tests!(dynamo(), #[ignore = "needs the AWS emulator; scripts/test.sh runs it"]);
}

/// The notifier's queue (notify_queue.rs) on the emulator's standard queue `ledgix-notify`
/// (VAULT_NOTIFY_SQS_QUEUE_URL, from tests/aws/resources.py), with the delivery log in the hot table. One test
/// drives the queue start to end: two tests receiving from one queue at once would take each other's messages.
mod notify_queue {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    use async_trait::async_trait;
    use aws_sdk_sqs::types::Message;
    use ledgix_aws::notify_queue::{deliver_messages, poll_notifications, SqsDeliveryQueue};
    use ledgix_core::notify::address::UrlPolicy;
    use ledgix_core::notify::{
        Delivery, DeliveryJob, DeliveryQueue, DeliveryStatus, NotificationEvent,
        NotificationSettings, NotificationStore, Notifier, NotifyPorts, OutboundPost, SendError,
        WebhookSender, WebhookTarget,
    };

    /// A webhook receiver that answers 200 to everything and remembers what it got.
    #[derive(Default)]
    struct Receiver(Mutex<Vec<OutboundPost>>);

    #[async_trait]
    impl WebhookSender for Receiver {
        async fn check(&self, _url: &str) -> Result<(), SendError> {
            Ok(())
        }

        async fn post(&self, request: &OutboundPost) -> Result<u16, SendError> {
            self.0.lock().expect("lock").push(request.clone());
            Ok(200)
        }
    }

    /// No email in these tests: an attempt fails loudly.
    #[async_trait]
    impl ledgix_core::notify::EmailSender for Receiver {
        async fn send(&self, _email: &ledgix_core::notify::OutboundEmail) -> Result<(), SendError> {
            Err(SendError::Rejected("no email expected here".into()))
        }
    }

    fn sqs(sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(sdk)
    }

    /// One receive of up to 10 messages, hiding what it got for 30 s (so repeated receives move past other
    /// tests' leftovers).
    async fn receive(client: &aws_sdk_sqs::Client, wait_seconds: i32) -> Vec<Message> {
        client
            .receive_message()
            .queue_url(env("VAULT_NOTIFY_SQS_QUEUE_URL"))
            .max_number_of_messages(10)
            .wait_time_seconds(wait_seconds)
            .visibility_timeout(30)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default()
    }

    fn has_body(messages: &[Message], body: &str) -> bool {
        messages.iter().any(|m| m.body() == Some(body))
    }

    fn notifier(
        store: Arc<dyn NotificationStore>,
        queue: Arc<SqsDeliveryQueue>,
        receiver: Arc<Receiver>,
    ) -> Arc<Notifier> {
        Arc::new(Notifier::new(NotifyPorts {
            store,
            queue,
            sender: receiver.clone(),
            url_policy: UrlPolicy::default(),
            email: receiver,
            email_policy: Default::default(),
        }))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs the AWS emulator and tests/aws/resources.py's queues; scripts/test.sh runs it"]
    async fn delayed_jobs_wait_and_the_poller_delivers_and_deletes() {
        let sdk = sdk().await;
        let client = sqs(&sdk);
        let queue = Arc::new(SqsDeliveryQueue::new(
            client.clone(),
            env("VAULT_NOTIFY_SQS_QUEUE_URL"),
        ));

        // A job sent with a 2 s delay is not receivable at once, and is after 2 s.
        let delayed = DeliveryJob {
            tenant_id: format!("nq{}", uuid_like()),
            delivery_id: "dl_delayed".into(),
        };
        let body = serde_json::to_string(&delayed).expect("json");
        let sent = Instant::now();
        queue
            .send(&delayed, Duration::from_secs(2))
            .await
            .expect("send");
        assert!(
            !has_body(&receive(&client, 0).await, &body),
            "a delayed job is not receivable at once"
        );
        let found = loop {
            let messages = receive(&client, 1).await;
            if let Some(m) = messages.iter().find(|m| m.body() == Some(body.as_str())) {
                break m.clone();
            }
            assert!(
                sent.elapsed() < Duration::from_secs(15),
                "the delayed job never became receivable"
            );
        };
        let waited = sent.elapsed();
        assert!(
            waited >= Duration::from_millis(1900),
            "received after {waited:?}, before its 2 s delay"
        );
        client
            .delete_message()
            .queue_url(queue.queue_url())
            .receipt_handle(found.receipt_handle().expect("handle"))
            .send()
            .await
            .expect("delete");

        // The poller: a dispatched delivery is attempted, recorded as delivered and its message deleted; a
        // message that is not a job is deleted too.
        let tenant = format!("nq{}", uuid_like());
        let store = Arc::new(notifications(&sdk, PayloadCipher::default()));
        let target = WebhookTarget {
            id: "wh_1".into(),
            url: "https://hooks.example.com/ledgix".into(),
            secret: "a-secret-of-some-length".into(),
            events: vec![NotificationEvent::ReviewPending],
        };
        store
            .put_settings(
                &tenant,
                &NotificationSettings {
                    webhooks: vec![target.clone()],
                    slack: None,
                    email: None,
                },
            )
            .await
            .expect("settings");
        let receiver = Arc::new(Receiver::default());
        let notifier = notifier(store.clone(), queue.clone(), receiver.clone());
        let delivery = Delivery::queued(
            &tenant,
            &target.id,
            NotificationEvent::ReviewPending,
            "r1",
            serde_json::json!({"event": "review.pending", "request_id": "r1"}),
        );
        notifier
            .dispatch(std::slice::from_ref(&delivery))
            .await
            .expect("dispatch");
        let garbage = format!("not-a-job-{}", uuid_like());
        client
            .send_message()
            .queue_url(queue.queue_url())
            .message_body(&garbage)
            .send()
            .await
            .expect("send garbage");

        let poller = tokio::spawn(poll_notifications(notifier.clone(), queue.clone(), 1, 2));
        let started = Instant::now();
        loop {
            let stored = store
                .delivery(&tenant, &delivery.delivery_id)
                .await
                .expect("read")
                .expect("recorded by dispatch");
            if stored.status == DeliveryStatus::Delivered {
                assert_eq!(stored.attempts, 1);
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "not delivered: {stored:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Let the poller delete what it received, then stop it and wait out the 2 s visibility timeout: an
        // undeleted message would be back.
        tokio::time::sleep(Duration::from_secs(2)).await;
        poller.abort();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let job_body = serde_json::to_string(&DeliveryJob::from(&delivery)).expect("json");
        let left = receive(&client, 1).await;
        assert!(!has_body(&left, &job_body), "the delivered job was deleted");
        assert!(
            !has_body(&left, &garbage),
            "the unparseable message was deleted"
        );
        let posts: Vec<OutboundPost> = receiver.0.lock().expect("lock").clone();
        let ours: Vec<&OutboundPost> = posts
            .iter()
            .filter(|p| {
                p.headers
                    .iter()
                    .any(|(_, value)| value == &delivery.delivery_id)
            })
            .collect();
        assert_eq!(ours.len(), 1, "delivered once: {posts:?}");
        assert_eq!(ours[0].url, target.url);
    }

    /// A job whose attempt fails (the store is unreachable) is returned for redelivery; a body that is not a
    /// job is not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs the AWS emulator; scripts/test.sh runs it"]
    async fn failed_attempts_are_kept_for_redelivery() {
        let sdk = sdk().await;
        let store = Arc::new(DynamoNotificationStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            "no-such-table",
            PayloadCipher::default(),
        ));
        // Never reached: the attempt fails reading the delivery.
        let queue = Arc::new(SqsDeliveryQueue::new(sqs(&sdk), "http://127.0.0.1:9/none"));
        let notifier = notifier(store, queue, Arc::new(Receiver::default()));
        let job = serde_json::to_string(&DeliveryJob {
            tenant_id: "t1".into(),
            delivery_id: "dl_1".into(),
        })
        .expect("json");
        let failed = deliver_messages(
            &notifier,
            vec![
                ("m1".into(), Some(job)),
                ("m2".into(), Some("{\"not\": \"a job\"}".into())),
                ("m3".into(), None),
            ],
        )
        .await;
        assert_eq!(failed, vec!["m1".to_string()]);
    }
}

/// The SES v2 email sender against the emulator's SES: a verified identity sends, an unverified one is refused
/// with SES's own error code (kept as the delivery's `last_error`).
mod ses {
    use super::*;
    use ledgix_aws::email::SesEmailSender;
    use ledgix_core::notify::{EmailSender, OutboundEmail, SendError};

    fn email(from: &str) -> OutboundEmail {
        OutboundEmail {
            from: from.into(),
            to: vec!["reviewers@example.com".into()],
            subject: "[Ledgix] Review needed: pay".into(),
            text: "Request: req-1\n".into(),
        }
    }

    #[tokio::test]
    #[ignore = "needs the AWS emulator; scripts/test.sh runs it"]
    async fn a_verified_identity_sends_and_an_unverified_sender_is_refused_by_ses() {
        let sdk = sdk().await;
        let domain = format!("ses-{:016x}.ledgix-test.example", rand::random::<u64>());
        aws_sdk_sesv2::Client::new(&sdk)
            .create_email_identity()
            .email_identity(&domain)
            .send()
            .await
            .expect("identity");
        let sender = SesEmailSender::new(&sdk);
        sender
            .send(&email(&format!("vault@{domain}")))
            .await
            .expect("sent as the verified domain");
        match sender
            .send(&email("vault@unverified.ledgix-test.example"))
            .await
        {
            Err(SendError::Rejected(why)) => assert!(why.starts_with("MessageRejected"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
