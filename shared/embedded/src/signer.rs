//! The local Ed25519 signer (`Signer`): one key, from VAULT_PRIVATE_KEY_BASE64, a PKCS#8 PEM file, or
//! generated on first start and written beside the database (owner-only). It signs tokens, receipts and
//! checkpoints, and publishes only its own public key.

use std::path::Path;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer as _, SigningKey};
use ledgix_core::error::SignerError;
use ledgix_core::ports::Signer;
use ledgix_core::token::PublicKey;

/// A local Ed25519 key (VAULT_SIGNER_BACKEND=local).
pub struct LocalSigner {
    key: SigningKey,
    kid: String,
}

impl LocalSigner {
    pub fn new(key: SigningKey, kid: impl Into<String>) -> Self {
        LocalSigner {
            key,
            kid: kid.into(),
        }
    }

    pub fn generate(kid: impl Into<String>) -> Self {
        LocalSigner::new(SigningKey::generate(&mut rand::rngs::OsRng), kid)
    }

    /// VAULT_PRIVATE_KEY_BASE64: a 32-byte seed, a 64-byte seed‖public keypair, or PKCS#8 DER, base64.
    pub fn from_base64(encoded: &str, kid: impl Into<String>) -> Result<Self, SignerError> {
        let bytes = STANDARD.decode(encoded.trim()).map_err(|_| {
            SignerError::Misconfigured("VAULT_PRIVATE_KEY_BASE64 is not base64".into())
        })?;
        let key = match bytes.len() {
            32 => SigningKey::from_bytes(&bytes[..32].try_into().map_err(|_| bad_len())?),
            64 => SigningKey::from_keypair_bytes(&bytes[..].try_into().map_err(|_| bad_len())?)
                .map_err(|_| {
                    SignerError::Misconfigured(
                        "VAULT_PRIVATE_KEY_BASE64 keypair is inconsistent".into(),
                    )
                })?,
            _ => SigningKey::from_pkcs8_der(&bytes).map_err(|_| bad_len())?,
        };
        Ok(LocalSigner::new(key, kid))
    }

    /// VAULT_PRIVATE_KEY_FILE: a PKCS#8 PEM file (as written by `ledgix keygen`).
    pub fn from_pem_file(path: &Path, kid: impl Into<String>) -> Result<Self, SignerError> {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            SignerError::Misconfigured(format!("cannot read {}: {e}", path.display()))
        })?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|_| {
            SignerError::Misconfigured(format!(
                "{} is not a PKCS#8 Ed25519 PEM key",
                path.display()
            ))
        })?;
        Ok(LocalSigner::new(key, kid))
    }

    /// Load the key at `path`, or create it (mode 0600) on first start.
    pub fn load_or_create(path: &Path, kid: impl Into<String>) -> Result<Self, SignerError> {
        if path.exists() {
            return LocalSigner::from_pem_file(path, kid);
        }
        let signer = LocalSigner::generate(kid);
        write_private(path, signer.to_pem()?.as_bytes()).map_err(|e| {
            SignerError::Misconfigured(format!("cannot write {}: {e}", path.display()))
        })?;
        Ok(signer)
    }

    pub fn to_pem(&self) -> Result<String, SignerError> {
        self.key
            .to_pkcs8_pem(Default::default())
            .map(|pem| pem.to_string())
            .map_err(|e| SignerError::Misconfigured(e.to_string()))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            ed25519: self.key.verifying_key().to_bytes(),
        }
    }
}

fn bad_len() -> SignerError {
    SignerError::Misconfigured(
        "VAULT_PRIVATE_KEY_BASE64 must hold a 32-byte seed, a 64-byte keypair or PKCS#8 DER".into(),
    )
}

/// Write a secret file readable only by its owner.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[async_trait]
impl Signer for LocalSigner {
    fn key_id(&self) -> &str {
        &self.kid
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.key.sign(message).to_bytes().to_vec())
    }

    async fn public_keys(&self) -> Result<Vec<PublicKey>, SignerError> {
        Ok(vec![self.public_key()])
    }
}
