//! AWS adapters for every Ledgix port, on the customer's crates: PostgreSQL (control plane and one database
//! per tenant, credentials from Secrets Manager), DynamoDB (token burns, rate limits, notification settings and
//! deliveries), SQS (FIFO judge queue, standard notification queue), KMS (Ed25519 signing), S3 (anchors). Clients are built once, by `AwsBackend::connect`, per cold start.

pub mod bootstrap;
pub mod control;
pub mod dynamo;
pub mod email;
pub mod key_registry;
pub mod kms;
pub mod notifications;
pub mod notify_queue;
pub mod pg;
pub mod s3;
pub mod scram;
pub mod sqs;
mod sqs_poll;
pub mod tenant_store;
pub mod tenants;

pub use bootstrap::{
    bootstrap_environment, registry_signer, sdk_config, AwsBackend, AwsSettings, NotifierBackend,
};
