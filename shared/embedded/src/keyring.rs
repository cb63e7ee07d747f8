//! The data directory's signing keys: `signing-keys.json` names the active key and every key it replaced
//! (kid, public key, active_from, retired_at); the active key's private half is a PKCS#8 PEM beside it
//! (owner-only). `ledgix keys rotate --data-dir DIR` makes a new key the signer from the next start and keeps
//! the old one published (public half only: a retired key never signs again), so tokens it signed verify
//! until they expire and receipts and checkpoints verify for ever.
//!
//! A data directory from before the key ring has only `signing-key.pem`: it becomes the ring's first key,
//! active since the file's modification time.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use ledgix_core::error::SignerError;
use ledgix_core::keys::{rfc3339, KeyRole, PublishedKey};
use serde::{Deserialize, Serialize};

use crate::signer::{write_private, LocalSigner};

const RING_FILE: &str = "signing-keys.json";
/// The first key's file, as data directories have always had it.
const FIRST_KEY_FILE: &str = "signing-key.pem";
const KEYS_DIR: &str = "signing-keys";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RingEntry {
    kid: String,
    /// base64url of the raw Ed25519 public key.
    public_key: String,
    active_from: String,
    retired_at: Option<String>,
    /// The private key's file, relative to the data directory; only the active key has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_key_file: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RingFile {
    active: String,
    keys: Vec<RingEntry>,
}

pub struct Keyring {
    dir: PathBuf,
    ring: RingFile,
}

fn misconfigured(what: impl std::fmt::Display) -> SignerError {
    SignerError::Misconfigured(what.to_string())
}

impl Keyring {
    /// The ring in `data_dir`; created with a new key named `kid` (or adopting `signing-key.pem`) when absent.
    pub fn load_or_create(data_dir: &Path, kid: &str) -> Result<Self, SignerError> {
        let path = data_dir.join(RING_FILE);
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| misconfigured(format!("cannot read {}: {e}", path.display())))?;
            let ring: RingFile = serde_json::from_str(&text)
                .map_err(|e| misconfigured(format!("{} is not a key ring: {e}", path.display())))?;
            return Ok(Keyring {
                dir: data_dir.to_path_buf(),
                ring,
            });
        }
        let first = data_dir.join(FIRST_KEY_FILE);
        let (key, active_from) = if first.exists() {
            let key = read_key(&first)?;
            let modified = std::fs::metadata(&first)
                .and_then(|m| m.modified())
                .map(DateTime::<Utc>::from)
                .unwrap_or_else(|_| Utc::now());
            (key, modified)
        } else {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            write_key(&first, &key)?;
            (key, Utc::now())
        };
        let ring = Keyring {
            dir: data_dir.to_path_buf(),
            ring: RingFile {
                active: kid.into(),
                keys: vec![RingEntry {
                    kid: kid.into(),
                    public_key: URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
                    active_from: rfc3339(active_from),
                    retired_at: None,
                    private_key_file: Some(FIRST_KEY_FILE.into()),
                }],
            },
        };
        ring.save()?;
        Ok(ring)
    }

    /// The signer for the active key, publishing every key of the ring.
    pub fn signer(&self) -> Result<LocalSigner, SignerError> {
        let active = self.active()?;
        let file = active.private_key_file.as_deref().ok_or_else(|| {
            misconfigured(format!(
                "the active key {} has no private key file",
                active.kid
            ))
        })?;
        let key = read_key(&self.dir.join(file))?;
        if URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()) != active.public_key {
            return Err(misconfigured(format!(
                "{file} does not hold the public key {RING_FILE} names for {}",
                active.kid
            )));
        }
        let retired = self
            .ring
            .keys
            .iter()
            .filter(|k| k.kid != active.kid)
            .map(published)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LocalSigner::with_history(
            key,
            active.kid.clone(),
            active.active_from.clone(),
            retired,
        ))
    }

    fn active(&self) -> Result<&RingEntry, SignerError> {
        self.ring
            .keys
            .iter()
            .find(|k| k.kid == self.ring.active)
            .ok_or_else(|| misconfigured(format!("{RING_FILE} names no active key")))
    }

    pub fn active_kid(&self) -> &str {
        &self.ring.active
    }

    /// Make a new key `kid` the active one; the old one is retired now and its private key file removed.
    pub fn rotate(&mut self, kid: &str) -> Result<PublishedKey, SignerError> {
        if self.ring.keys.iter().any(|k| k.kid == kid) {
            return Err(misconfigured(format!(
                "the key ring already has a key {kid}"
            )));
        }
        let now = Utc::now();
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let file = format!("{KEYS_DIR}/{kid}.pem");
        std::fs::create_dir_all(self.dir.join(KEYS_DIR))
            .map_err(|e| misconfigured(format!("cannot create {KEYS_DIR}: {e}")))?;
        write_key(&self.dir.join(&file), &key)?;
        let previous = self.ring.active.clone();
        let mut retired_file = None;
        for entry in self.ring.keys.iter_mut().filter(|k| k.kid == previous) {
            entry.retired_at = Some(rfc3339(now));
            retired_file = entry.private_key_file.take();
        }
        self.ring.keys.push(RingEntry {
            kid: kid.into(),
            public_key: URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
            active_from: rfc3339(now),
            retired_at: None,
            private_key_file: Some(file),
        });
        self.ring.active = kid.into();
        self.save()?;
        // Only after the ring names the new key: a crash before this leaves a spare file, never a ring
        // without its active key.
        if let Some(file) = retired_file {
            std::fs::remove_file(self.dir.join(&file))
                .map_err(|e| misconfigured(format!("cannot remove the retired key {file}: {e}")))?;
        }
        published(self.active()?)
    }

    /// Every key of the ring, as verifiers see it.
    pub fn published(&self) -> Result<Vec<PublishedKey>, SignerError> {
        self.ring.keys.iter().map(published).collect()
    }

    /// Write the ring atomically (a temporary file renamed over it).
    fn save(&self) -> Result<(), SignerError> {
        let path = self.dir.join(RING_FILE);
        let tmp = self.dir.join(format!("{RING_FILE}.tmp"));
        let text = serde_json::to_string_pretty(&self.ring).map_err(misconfigured)?;
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, text.as_bytes())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| misconfigured(format!("cannot write {}: {e}", path.display())))
    }
}

fn published(entry: &RingEntry) -> Result<PublishedKey, SignerError> {
    let ed25519: [u8; 32] = URL_SAFE_NO_PAD
        .decode(&entry.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| misconfigured(format!("key {} has no 32-byte public key", entry.kid)))?;
    Ok(PublishedKey {
        kid: entry.kid.clone(),
        ed25519,
        role: KeyRole::Root,
        active_from: entry.active_from.clone(),
        retired_at: entry.retired_at.clone(),
        certificate: None,
    })
}

fn read_key(path: &Path) -> Result<SigningKey, SignerError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| misconfigured(format!("cannot read {}: {e}", path.display())))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|_| {
        misconfigured(format!(
            "{} is not a PKCS#8 Ed25519 PEM key",
            path.display()
        ))
    })
}

fn write_key(path: &Path, key: &SigningKey) -> Result<(), SignerError> {
    let pem = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| misconfigured(e.to_string()))?;
    write_private(path, pem.as_bytes())
        .map_err(|e| misconfigured(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgix_core::ports::Signer;

    #[tokio::test]
    async fn rotation_makes_a_new_signer_and_keeps_the_old_key_published() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keyring::load_or_create(dir.path(), "k1")
            .unwrap()
            .signer()
            .unwrap();
        let first_public = first.public_key();
        let mut ring = Keyring::load_or_create(dir.path(), "ignored").unwrap();
        assert_eq!(ring.active_kid(), "k1");
        ring.rotate("k2").unwrap();
        assert!(ring.rotate("k2").is_err(), "a kid is never reused");

        let second = Keyring::load_or_create(dir.path(), "ignored")
            .unwrap()
            .signer()
            .unwrap();
        assert_eq!(second.approval_key().await.unwrap().kid(), "k2");
        assert_eq!(second.root_key().await.unwrap().kid(), "k2");
        let keys = second.published_keys().await.unwrap();
        let old = keys.iter().find(|k| k.kid == "k1").unwrap();
        assert_eq!(old.ed25519, first_public.ed25519);
        assert!(old.retired_at.is_some());
        let new = keys.iter().find(|k| k.kid == "k2").unwrap();
        assert!(new.retired_at.is_none());
        assert_ne!(new.active_from, "1970-01-01T00:00:00Z");
        assert!(
            !dir.path().join(FIRST_KEY_FILE).exists(),
            "the retired private key is gone"
        );
    }

    #[tokio::test]
    async fn a_data_directory_from_before_the_ring_keeps_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = SigningKey::from_bytes(&[7; 32]);
        write_key(&dir.path().join(FIRST_KEY_FILE), &legacy).unwrap();
        let signer = Keyring::load_or_create(dir.path(), "ledgix")
            .unwrap()
            .signer()
            .unwrap();
        assert_eq!(
            signer.public_key().ed25519,
            legacy.verifying_key().to_bytes()
        );
        assert!(dir.path().join(RING_FILE).exists());
    }

    #[test]
    fn a_ring_whose_key_file_was_swapped_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Keyring::load_or_create(dir.path(), "k1").unwrap();
        std::fs::remove_file(dir.path().join(FIRST_KEY_FILE)).unwrap();
        write_key(
            &dir.path().join(FIRST_KEY_FILE),
            &SigningKey::from_bytes(&[9; 32]),
        )
        .unwrap();
        let ring = Keyring::load_or_create(dir.path(), "k1").unwrap();
        assert!(ring.signer().is_err());
    }
}
