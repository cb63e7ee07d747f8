//! The local Ed25519 signer (`Signer`): one active key, from VAULT_PRIVATE_KEY_BASE64, a PKCS#8 PEM file, or
//! the data directory's key ring (created on first start, rotated with `ledgix keys rotate`). It signs tokens,
//! receipts and checkpoints, and publishes its own public key and those of the keys it replaced.

use std::path::Path;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use ledgix_core::error::SignerError;
use ledgix_core::key_registry::LocalKey;
use ledgix_core::keys::{rfc3339, KeyRole, PublishedKey};
use ledgix_core::ports::{Signer, SigningKey as SigningKeyPort};
use ledgix_core::token::PublicKey;

/// A local Ed25519 key (VAULT_SIGNER_BACKEND=local): the root key, which signs tokens, receipts and
/// checkpoints, and the keys it replaced (public halves only), still published for verification.
pub struct LocalSigner {
    key: SigningKey,
    kid: String,
    active: Arc<LocalKey>,
    published: Vec<PublishedKey>,
}

impl LocalSigner {
    /// A key with no history: active from now.
    pub fn new(key: SigningKey, kid: impl Into<String>) -> Self {
        LocalSigner::with_history(key, kid, rfc3339(chrono::Utc::now()), vec![])
    }

    /// A key active since `active_from`, and the retired keys it replaced.
    pub fn with_history(
        key: SigningKey,
        kid: impl Into<String>,
        active_from: String,
        retired: Vec<PublishedKey>,
    ) -> Self {
        let kid = kid.into();
        let active = Arc::new(LocalKey::new(kid.clone(), key.clone()));
        let mut published = vec![PublishedKey {
            kid: kid.clone(),
            ed25519: key.verifying_key().to_bytes(),
            role: KeyRole::Root,
            active_from,
            retired_at: None,
            certificate: None,
        }];
        published.extend(retired.into_iter().filter(|k| k.kid != kid));
        LocalSigner {
            key,
            kid,
            active,
            published,
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

    /// The data directory's key ring (`keyring`): its active key, or a new one created on first start.
    pub fn load_or_create(data_dir: &Path, kid: &str) -> Result<Self, SignerError> {
        crate::keyring::Keyring::load_or_create(data_dir, kid)?.signer()
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
    async fn approval_key(&self) -> Result<Arc<dyn SigningKeyPort>, SignerError> {
        Ok(self.active.clone())
    }

    async fn root_key(&self) -> Result<Arc<dyn SigningKeyPort>, SignerError> {
        Ok(self.active.clone())
    }

    async fn published_keys(&self) -> Result<Vec<PublishedKey>, SignerError> {
        Ok(self.published.clone())
    }
}
