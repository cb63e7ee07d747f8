//! Signing with AWS KMS: key spec ECC_NIST_EDWARDS25519, algorithm ED25519_SHA_512, MessageType RAW.
//! The public key is read once per cold start from GetPublicKey's DER SubjectPublicKeyInfo. Throttling is
//! retried a bounded number of times with exponential backoff and jitter; then the signer reports
//! unavailable (503) rather than wait forever.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::error::DisplayErrorContext;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;
use ledgix_core::at_rest::{DataKey, DataKeySource};
use ledgix_core::error::{SignerError, StoreError};
use ledgix_core::ports::SigningKey;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE, AlgorithmIdentifier 1.3.101.112,
/// BIT STRING of 32 bytes. The whole structure is 44 bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// KMS accepts at most 4096 bytes of RAW message.
const MAX_MESSAGE: usize = 4096;

pub struct KmsSigner {
    client: Client,
    kms_key_id: String,
    kid: String,
    public: [u8; 32],
    max_attempts: u32,
    base_delay: Duration,
}

/// The raw Ed25519 key inside a 44-byte SubjectPublicKeyInfo.
pub fn ed25519_from_spki(der: &[u8]) -> Result<[u8; 32], SignerError> {
    if der.len() != 44 || der[..12] != ED25519_SPKI_PREFIX {
        return Err(SignerError::Misconfigured(format!(
            "KMS public key is not an Ed25519 SubjectPublicKeyInfo ({} bytes)",
            der.len()
        )));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&der[12..]);
    Ok(key)
}

impl KmsSigner {
    /// Fetch the public key and check the key is an Ed25519 signing key.
    pub async fn connect(client: Client, key_id: &str, kid: &str) -> Result<Self, SignerError> {
        let out = client
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| {
                SignerError::Misconfigured(format!(
                    "KMS GetPublicKey {key_id}: {}",
                    DisplayErrorContext(&e)
                ))
            })?;
        if out.key_spec().map(|s| s.as_str()) != Some("ECC_NIST_EDWARDS25519") {
            return Err(SignerError::Misconfigured(format!(
                "KMS key {key_id} is not ECC_NIST_EDWARDS25519"
            )));
        }
        let der = out
            .public_key()
            .ok_or_else(|| SignerError::Misconfigured("KMS returned no public key".into()))?;
        let public = ed25519_from_spki(der.as_ref())?;
        Ok(KmsSigner {
            client,
            kms_key_id: key_id.to_string(),
            kid: kid.to_string(),
            public,
            max_attempts: 4,
            base_delay: Duration::from_millis(50),
        })
    }

    async fn sign_with_retries(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        if message.len() > MAX_MESSAGE {
            return Err(SignerError::Misconfigured(format!(
                "message of {} bytes exceeds KMS's 4096-byte limit",
                message.len()
            )));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .sign()
                .key_id(&self.kms_key_id)
                .message(Blob::new(message))
                .message_type(MessageType::Raw)
                .signing_algorithm(SigningAlgorithmSpec::from("ED25519_SHA_512"))
                .send()
                .await;
            match result {
                Ok(out) => {
                    let signature = out.signature().ok_or_else(|| {
                        SignerError::Unavailable("KMS returned no signature".into())
                    })?;
                    if signature.as_ref().len() != 64 {
                        return Err(SignerError::Unavailable(format!(
                            "KMS signature is {} bytes, not 64",
                            signature.as_ref().len()
                        )));
                    }
                    return Ok(signature.as_ref().to_vec());
                }
                Err(e) => {
                    let throttled = e.as_service_error().and_then(|s| {
                        use aws_sdk_kms::error::ProvideErrorMetadata;
                        s.code()
                            .map(|c| c == "ThrottlingException" || c == "KMSInternalException")
                    }) == Some(true)
                        || matches!(
                            e,
                            aws_sdk_kms::error::SdkError::TimeoutError(_)
                                | aws_sdk_kms::error::SdkError::DispatchFailure(_)
                        );
                    if !throttled || attempt >= self.max_attempts {
                        tracing::warn!(attempt, "KMS sign failed: {}", e.into_service_error());
                        return Err(SignerError::Unavailable("KMS signing failed".into()));
                    }
                    // Full jitter on an exponential backoff.
                    let cap = self.base_delay * 2u32.pow(attempt - 1);
                    let jitter = (chrono::Utc::now().timestamp_subsec_nanos() as u64)
                        % (cap.as_millis() as u64 + 1);
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
            }
        }
    }

    pub fn with_retry(mut self, max_attempts: u32, base_delay: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.base_delay = base_delay;
        self
    }
}

#[async_trait]
impl SigningKey for KmsSigner {
    fn kid(&self) -> &str {
        &self.kid
    }

    fn ed25519(&self) -> [u8; 32] {
        self.public
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        self.sign_with_retries(message).await
    }
}

/// Envelope encryption of stored payloads: KMS `GenerateDataKey` (AES-256) wraps each batch's data key,
/// KMS `Decrypt` unwraps it for reads. The plaintext data key never leaves the process.
pub struct KmsDataKeys {
    client: Client,
    key_id: String,
}

impl KmsDataKeys {
    pub fn new(client: Client, key_id: &str) -> Self {
        KmsDataKeys {
            client,
            key_id: key_id.to_string(),
        }
    }
}

fn kms_unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    tracing::warn!("KMS {what} failed: {e}");
    StoreError::Unavailable(format!("KMS {what} failed"))
}

#[async_trait]
impl DataKeySource for KmsDataKeys {
    async fn generate(&self) -> Result<DataKey, StoreError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await
            .map_err(|e| kms_unavailable("GenerateDataKey", DisplayErrorContext(&e)))?;
        let plaintext: [u8; 32] = out
            .plaintext()
            .map(|b| b.as_ref())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| StoreError::Unavailable("KMS returned no 32-byte data key".into()))?;
        let wrapped = out
            .ciphertext_blob()
            .ok_or_else(|| StoreError::Unavailable("KMS returned no wrapped data key".into()))?
            .as_ref()
            .to_vec();
        Ok(DataKey { plaintext, wrapped })
    }

    async fn unwrap(&self, wrapped: &[u8]) -> Result<[u8; 32], StoreError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .send()
            .await
            .map_err(|e| kms_unavailable("Decrypt", DisplayErrorContext(&e)))?;
        out.plaintext()
            .map(|b| b.as_ref())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                StoreError::Corrupt("KMS unwrapped a data key that is not 32 bytes".into())
            })
    }
}
