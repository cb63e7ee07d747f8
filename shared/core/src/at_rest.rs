//! Encryption at rest of stored payloads. Two modes, both AES-256-GCM with a fresh 96-bit nonce per record
//! and the table name as associated data (a record cannot be moved to another table):
//! - a static key (VAULT_TRANSPORT_KEY_BASE64): `enc1:` + base64(nonce ‖ ciphertext);
//! - envelope encryption (VAULT_ENVELOPE_KMS_KEY_ID): a data key per batch of records, wrapped by a KMS key;
//!   `enc2:` + base64(u16 wrapped-key length ‖ wrapped key ‖ nonce ‖ ciphertext). Reading unwraps each
//!   distinct data key once and caches it.
//!
//! Rows written before a key was configured stay readable as plaintext JSON.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;

use crate::error::StoreError;

const PREFIX: &str = "enc1:";
const ENVELOPE_PREFIX: &str = "enc2:";

#[derive(Clone, Default)]
pub struct Codec {
    cipher: Option<Aes256Gcm>,
}

impl Codec {
    pub fn plaintext() -> Self {
        Codec { cipher: None }
    }

    /// From the 32-byte key, base64-encoded.
    pub fn from_base64_key(encoded: &str) -> Result<Self, String> {
        let key = STANDARD
            .decode(encoded.trim())
            .map_err(|_| "VAULT_TRANSPORT_KEY_BASE64 is not base64".to_string())?;
        if key.len() != 32 {
            return Err(format!(
                "VAULT_TRANSPORT_KEY_BASE64 must decode to 32 bytes, got {}",
                key.len()
            ));
        }
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|e| e.to_string())?;
        Ok(Codec {
            cipher: Some(cipher),
        })
    }

    pub fn encrypts(&self) -> bool {
        self.cipher.is_some()
    }

    pub fn seal(&self, table: &str, json: String) -> Result<String, StoreError> {
        let Some(cipher) = &self.cipher else {
            return Ok(json);
        };
        let out = encrypt(cipher, table, json.as_bytes(), Vec::new())?;
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    pub fn open(&self, table: &str, stored: String) -> Result<String, StoreError> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored);
        };
        let cipher = self.cipher.as_ref().ok_or_else(|| {
            StoreError::Corrupt(
                "record is encrypted but VAULT_TRANSPORT_KEY_BASE64 is not set".into(),
            )
        })?;
        decrypt(cipher, table, &decode(encoded)?)
    }
}

fn decode(encoded: &str) -> Result<Vec<u8>, StoreError> {
    STANDARD
        .decode(encoded)
        .map_err(|_| StoreError::Corrupt("encrypted record is not base64".into()))
}

/// `prefix ‖ nonce ‖ ciphertext`.
fn encrypt(
    cipher: &Aes256Gcm,
    table: &str,
    plain: &[u8],
    mut out: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plain,
                aad: table.as_bytes(),
            },
        )
        .map_err(|_| StoreError::Corrupt("encryption failed".into()))?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// `nonce ‖ ciphertext` back to the UTF-8 record.
fn decrypt(cipher: &Aes256Gcm, table: &str, bytes: &[u8]) -> Result<String, StoreError> {
    if bytes.len() < 12 + 16 {
        return Err(StoreError::Corrupt("encrypted record is truncated".into()));
    }
    let (nonce, ciphertext) = bytes.split_at(12);
    let nonce: [u8; 12] = nonce
        .try_into()
        .map_err(|_| StoreError::Corrupt("bad nonce".into()))?;
    let plain = cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: table.as_bytes(),
            },
        )
        .map_err(|_| {
            StoreError::Corrupt("encrypted record does not decrypt with this key".into())
        })?;
    String::from_utf8(plain)
        .map_err(|_| StoreError::Corrupt("decrypted record is not UTF-8".into()))
}

/// A fresh data key: its plaintext (used in memory only) and the same key wrapped by the master key.
pub struct DataKey {
    pub plaintext: [u8; 32],
    pub wrapped: Vec<u8>,
}

/// Port: the key service that wraps data keys (KMS `GenerateDataKey` / `Decrypt` on AWS).
#[async_trait]
pub trait DataKeySource: Send + Sync {
    async fn generate(&self) -> Result<DataKey, StoreError>;
    async fn unwrap(&self, wrapped: &[u8]) -> Result<[u8; 32], StoreError>;
}

/// How long one data key seals new records ("a data key per batch"), and how many records at most.
const DATA_KEY_LIFETIME: Duration = Duration::from_secs(300);
const DATA_KEY_MAX_RECORDS: u64 = 100_000;
/// Unwrapped data keys kept for reads.
const UNWRAPPED_CACHE_LIMIT: usize = 1_024;

struct CurrentKey {
    cipher: Aes256Gcm,
    wrapped: Vec<u8>,
    born: Instant,
    used: u64,
}

/// Envelope encryption: one data key seals records for a while, then a new one is generated.
pub struct Envelope {
    keys: Arc<dyn DataKeySource>,
    current: tokio::sync::Mutex<Option<CurrentKey>>,
    unwrapped: Mutex<HashMap<Vec<u8>, Aes256Gcm>>,
}

impl Envelope {
    pub fn new(keys: Arc<dyn DataKeySource>) -> Self {
        Envelope {
            keys,
            current: tokio::sync::Mutex::new(None),
            unwrapped: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) async fn seal(&self, table: &str, json: &str) -> Result<String, StoreError> {
        let mut current = self.current.lock().await;
        let stale = current.as_ref().is_none_or(|k| {
            k.born.elapsed() >= DATA_KEY_LIFETIME || k.used >= DATA_KEY_MAX_RECORDS
        });
        if stale {
            let key = self.keys.generate().await?;
            let cipher = Aes256Gcm::new_from_slice(&key.plaintext)
                .map_err(|_| StoreError::Corrupt("data key is not 32 bytes".into()))?;
            *current = Some(CurrentKey {
                cipher,
                wrapped: key.wrapped,
                born: Instant::now(),
                used: 0,
            });
        }
        let key = current
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("no data key".into()))?;
        key.used += 1;
        let length = u16::try_from(key.wrapped.len())
            .map_err(|_| StoreError::Corrupt("wrapped data key is too long".into()))?;
        let mut header = length.to_be_bytes().to_vec();
        header.extend_from_slice(&key.wrapped);
        let out = encrypt(&key.cipher, table, json.as_bytes(), header)?;
        Ok(format!("{ENVELOPE_PREFIX}{}", STANDARD.encode(out)))
    }

    pub(crate) async fn open(&self, table: &str, encoded: &str) -> Result<String, StoreError> {
        let bytes = decode(encoded)?;
        let truncated = || StoreError::Corrupt("envelope record is truncated".into());
        let length = bytes.get(..2).ok_or_else(truncated)?;
        let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
        let wrapped = bytes.get(2..2 + length).ok_or_else(truncated)?;
        let sealed = bytes.get(2 + length..).ok_or_else(truncated)?;
        let cached = self
            .unwrapped
            .lock()
            .ok()
            .and_then(|keys| keys.get(wrapped).cloned());
        let cipher = match cached {
            Some(cipher) => cipher,
            None => {
                let plaintext = self.keys.unwrap(wrapped).await?;
                let cipher = Aes256Gcm::new_from_slice(&plaintext)
                    .map_err(|_| StoreError::Corrupt("data key is not 32 bytes".into()))?;
                if let Ok(mut keys) = self.unwrapped.lock() {
                    if keys.len() >= UNWRAPPED_CACHE_LIMIT {
                        keys.clear();
                    }
                    keys.insert(wrapped.to_vec(), cipher.clone());
                }
                cipher
            }
        };
        decrypt(&cipher, table, sealed)
    }
}

/// What a store uses: seals with the envelope when configured, else the static key, else stores plaintext;
/// opens any of the three forms it has the key for.
#[derive(Clone, Default)]
pub struct PayloadCipher {
    codec: Codec,
    envelope: Option<Arc<Envelope>>,
}

impl PayloadCipher {
    pub fn new(codec: Codec, envelope: Option<Envelope>) -> Self {
        PayloadCipher {
            codec,
            envelope: envelope.map(Arc::new),
        }
    }

    pub fn encrypts(&self) -> bool {
        self.envelope.is_some() || self.codec.encrypts()
    }

    pub async fn seal(&self, table: &str, json: String) -> Result<String, StoreError> {
        match &self.envelope {
            Some(envelope) => envelope.seal(table, &json).await,
            None => self.codec.seal(table, json),
        }
    }

    pub async fn open(&self, table: &str, stored: String) -> Result<String, StoreError> {
        match stored.strip_prefix(ENVELOPE_PREFIX) {
            Some(encoded) => match &self.envelope {
                Some(envelope) => envelope.open(table, encoded).await,
                None => Err(StoreError::Corrupt(
                    "record is envelope-encrypted but VAULT_ENVELOPE_KMS_KEY_ID is not set".into(),
                )),
            },
            None => self.codec.open(table, stored),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_tampering() {
        let codec = Codec::from_base64_key(&STANDARD.encode([7u8; 32])).expect("key");
        let sealed = codec.seal("ledger", "{\"a\":1}".into()).expect("seal");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("\"a\""));
        assert_eq!(
            codec.open("ledger", sealed.clone()).expect("open"),
            "{\"a\":1}"
        );
        assert!(
            codec.open("clearances", sealed.clone()).is_err(),
            "bound to its table"
        );
        let other = Codec::from_base64_key(&STANDARD.encode([8u8; 32])).expect("key");
        assert!(
            other.open("ledger", sealed.clone()).is_err(),
            "another key cannot read it"
        );
        assert!(
            Codec::plaintext().open("ledger", sealed).is_err(),
            "no key: refuse rather than return ciphertext"
        );
        assert_eq!(
            codec
                .open("ledger", "{}".into())
                .expect("plaintext rows stay readable"),
            "{}"
        );
        assert!(Codec::from_base64_key(&STANDARD.encode([7u8; 16])).is_err());
    }

    /// A key service for tests: wraps data keys under its own master key and counts calls.
    struct WrappingKeys {
        master: Codec,
        generated: std::sync::atomic::AtomicUsize,
        unwrapped: std::sync::atomic::AtomicUsize,
    }

    impl WrappingKeys {
        fn new(byte: u8) -> Arc<Self> {
            Arc::new(WrappingKeys {
                master: Codec::from_base64_key(&STANDARD.encode([byte; 32])).expect("key"),
                generated: Default::default(),
                unwrapped: Default::default(),
            })
        }
    }

    #[async_trait]
    impl DataKeySource for WrappingKeys {
        async fn generate(&self) -> Result<DataKey, StoreError> {
            self.generated
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut plaintext = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut plaintext);
            let wrapped = self.master.seal("data-key", STANDARD.encode(plaintext))?;
            Ok(DataKey {
                plaintext,
                wrapped: wrapped.into_bytes(),
            })
        }

        async fn unwrap(&self, wrapped: &[u8]) -> Result<[u8; 32], StoreError> {
            self.unwrapped
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let text = String::from_utf8(wrapped.to_vec())
                .map_err(|_| StoreError::Corrupt("wrapped key".into()))?;
            let key = STANDARD
                .decode(self.master.open("data-key", text)?)
                .map_err(|_| StoreError::Corrupt("wrapped key".into()))?;
            key.try_into()
                .map_err(|_| StoreError::Corrupt("wrapped key".into()))
        }
    }

    #[tokio::test]
    async fn envelope_uses_one_data_key_per_batch_and_caches_unwrapping() {
        let keys = WrappingKeys::new(1);
        let writer = PayloadCipher::new(Codec::plaintext(), Some(Envelope::new(keys.clone())));
        let mut sealed = Vec::new();
        for i in 0..50 {
            sealed.push(
                writer
                    .seal("ledger", format!("{{\"n\":{i}}}"))
                    .await
                    .expect("seal"),
            );
        }
        assert_eq!(keys.generated.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(sealed
            .iter()
            .all(|s| s.starts_with(ENVELOPE_PREFIX) && !s.contains("\"n\"")));

        // Another process (its own cache) reads everything with one unwrap.
        let reader = PayloadCipher::new(Codec::plaintext(), Some(Envelope::new(keys.clone())));
        for (i, record) in sealed.iter().enumerate() {
            assert_eq!(
                reader.open("ledger", record.clone()).await.expect("open"),
                format!("{{\"n\":{i}}}")
            );
        }
        assert_eq!(keys.unwrapped.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(
            reader.open("clearances", sealed[0].clone()).await.is_err(),
            "bound to its table"
        );
    }

    #[tokio::test]
    async fn envelope_records_fail_closed_without_the_right_key() {
        let writer = PayloadCipher::new(
            Codec::plaintext(),
            Some(Envelope::new(WrappingKeys::new(1))),
        );
        let record = writer.seal("ledger", "{}".into()).await.expect("seal");
        let other = PayloadCipher::new(
            Codec::plaintext(),
            Some(Envelope::new(WrappingKeys::new(2))),
        );
        assert!(
            other.open("ledger", record.clone()).await.is_err(),
            "another master key"
        );
        assert!(
            PayloadCipher::default()
                .open("ledger", record.clone())
                .await
                .is_err(),
            "no envelope key"
        );
        let mut tampered = record.into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("utf8");
        assert!(
            writer.open("ledger", tampered).await.is_err(),
            "ciphertext is authenticated"
        );
        assert!(
            writer.open("ledger", "enc2:AA".into()).await.is_err(),
            "truncated"
        );

        // A static-key record stays readable after switching to envelope encryption.
        let codec = Codec::from_base64_key(&STANDARD.encode([7u8; 32])).expect("key");
        let old = codec.seal("ledger", "{\"old\":1}".into()).expect("seal");
        let both = PayloadCipher::new(codec, Some(Envelope::new(WrappingKeys::new(1))));
        assert_eq!(both.open("ledger", old).await.expect("open"), "{\"old\":1}");
    }
}
