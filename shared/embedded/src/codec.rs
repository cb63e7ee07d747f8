//! Encryption at rest of stored payloads (VAULT_TRANSPORT_KEY_BASE64): AES-256-GCM with a fresh 96-bit
//! nonce per record, the table name as associated data. Stored form: `enc1:` + base64(nonce ‖ ciphertext).
//! Rows written before a key was configured stay readable as plaintext JSON.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ledgix_core::error::StoreError;
use rand::RngCore;

const PREFIX: &str = "enc1:";

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
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: json.as_bytes(),
                    aad: table.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Corrupt("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
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
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| StoreError::Corrupt("encrypted record is not base64".into()))?;
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
}
