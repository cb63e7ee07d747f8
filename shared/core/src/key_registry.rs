//! A `Signer` over a key registry: the root key (KMS on AWS) and, with delegation, one Ed25519 key per key
//! period that signs tokens and receipts locally.
//!
//! The scheduled key step (`rotate_ahead`, run by the anchor round) records the root, retires roots that were
//! rotated out, and issues each period's key `publish_ahead_seconds` before the period starts: a fresh key,
//! its certificate signed by the root, its private half sealed under the envelope key. Instances list the
//! registry, open the current key once per period (one envelope `Decrypt`) and sign with it in memory; no
//! KMS call is on the approval path. Checkpoints stay signed by the root.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::Signer as _;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::at_rest::{DataKeySource, Envelope};
use crate::error::{SignerError, StoreError};
use crate::keys::{
    delegated_kid, is_root_kid, parse_delegated_kid, parse_time, rfc3339, KeyCertificate,
    KeyRecord, KeyRole, KeySchedule, PublishedKey, SignedCertificate,
};
use crate::ports::{KeyRegistry, Signer, SigningKey};
use crate::token::PublicKey;

/// An Ed25519 key held in memory.
pub struct LocalKey {
    kid: String,
    key: ed25519_dalek::SigningKey,
}

impl LocalKey {
    pub fn new(kid: impl Into<String>, key: ed25519_dalek::SigningKey) -> Self {
        LocalKey {
            kid: kid.into(),
            key,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            ed25519: self.key.verifying_key().to_bytes(),
        }
    }
}

#[async_trait]
impl SigningKey for LocalKey {
    fn kid(&self) -> &str {
        &self.kid
    }

    fn ed25519(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.key.sign(message).to_bytes().to_vec())
    }
}

/// Issuing and opening delegated keys.
pub struct Delegation {
    pub schedule: KeySchedule,
    /// Seals private halves (KMS envelope key on AWS).
    pub envelope: Envelope,
}

impl Delegation {
    pub fn new(schedule: KeySchedule, keys: Arc<dyn DataKeySource>) -> Self {
        Delegation {
            schedule,
            envelope: Envelope::new(keys),
        }
    }
}

/// How often an instance re-reads the published keys. Keys are published `publish_ahead_seconds` before they
/// sign, so a listing this old still knows every key that can have signed.
const LISTING_MAX_AGE: Duration = Duration::from_secs(30);
/// Never look a missing key up more often than this (a missing key is answered 503 until issued).
const MISSING_KEY_RETRY: Duration = Duration::from_secs(2);
/// The longest token lifetime the vault allows (VAULT_JWT_TTL ≤ 86400): a listing reaches back far enough that
/// every key a live token can name is in it, whatever the TTL.
const LONGEST_TOKEN_TTL_SECONDS: i64 = 86_400;
const ENVELOPE_PREFIX: &str = "enc2:";

struct Listing {
    keys: Vec<PublishedKey>,
    at: Instant,
}

struct Current {
    period_start: i64,
    key: Arc<LocalKey>,
}

pub struct RegistrySigner {
    root: Arc<dyn SigningKey>,
    root_public: [u8; 32],
    registry: Arc<dyn KeyRegistry>,
    delegation: Option<Delegation>,
    /// When this instance first saw the root; reported only until the key step has recorded it.
    root_seen_at: String,
    listing: Mutex<Option<Listing>>,
    current: Mutex<Option<Current>>,
    last_miss: Mutex<Option<(String, Instant)>>,
}

impl RegistrySigner {
    pub fn new(
        root: Arc<dyn SigningKey>,
        registry: Arc<dyn KeyRegistry>,
        delegation: Option<Delegation>,
    ) -> Self {
        RegistrySigner {
            root_public: root.ed25519(),
            root,
            registry,
            delegation,
            root_seen_at: rfc3339(Utc::now()),
            listing: Mutex::new(None),
            current: Mutex::new(None),
            last_miss: Mutex::new(None),
        }
    }

    /// The kid of the delegated key for the period starting at `start` under the current root.
    pub fn delegated_kid(&self, start: i64) -> String {
        delegated_kid(self.root.kid(), start)
    }

    /// Every root, and each root's delegated keys from periods recent enough at `now` that a token they signed
    /// may still be live: a bounded read however long the vault has run (cached for 30 s).
    pub async fn published_keys_at(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<PublishedKey>, SignerError> {
        let mut listing = self.listing.lock().await;
        if let Some(l) = listing
            .as_ref()
            .filter(|l| l.at.elapsed() < LISTING_MAX_AGE)
        {
            return Ok(l.keys.clone());
        }
        let roots = self.registry.roots().await.map_err(unavailable)?;
        let mut keys: Vec<PublishedKey> = roots.iter().map(|r| r.published.clone()).collect();
        if !keys.iter().any(|k| k.kid == self.root.kid()) {
            keys.push(self.unrecorded_root());
        }
        let reach = self.delegation.as_ref().map_or(3600, |d| {
            d.schedule.period_seconds + d.schedule.overlap_seconds
        }) + LONGEST_TOKEN_TTL_SECONDS;
        let from = now.timestamp() - reach;
        let root_kids: Vec<String> = keys.iter().map(|k| k.kid.clone()).collect();
        for root_kid in root_kids {
            let delegated = self
                .registry
                .delegated(&root_kid, from)
                .await
                .map_err(unavailable)?;
            keys.extend(delegated.into_iter().map(|r| r.published));
        }
        // Newest first: what a JWKS reader meets first is the key most likely to be asked for.
        keys.sort_by(|a, b| {
            parse_time(&b.active_from)
                .cmp(&parse_time(&a.active_from))
                .then_with(|| a.kid.cmp(&b.kid))
        });
        *listing = Some(Listing {
            keys: keys.clone(),
            at: Instant::now(),
        });
        Ok(keys)
    }

    fn unrecorded_root(&self) -> PublishedKey {
        PublishedKey {
            kid: self.root.kid().into(),
            ed25519: self.root_public,
            role: KeyRole::Root,
            active_from: self.root_seen_at.clone(),
            retired_at: None,
            certificate: None,
        }
    }

    /// The delegated key that signs at `now`, opened from the registry on first use in its period.
    pub async fn approval_key_at(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Arc<dyn SigningKey>, SignerError> {
        let Some(delegation) = &self.delegation else {
            return Ok(self.root.clone());
        };
        let start = delegation.schedule.period_start(now);
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref().filter(|c| c.period_start == start) {
            return Ok(c.key.clone());
        }
        let kid = self.delegated_kid(start);
        let missing = || {
            SignerError::Unavailable(format!(
                "no delegated signing key {kid} has been issued for the current period yet"
            ))
        };
        let mut last_miss = self.last_miss.lock().await;
        if last_miss
            .as_ref()
            .is_some_and(|(k, at)| *k == kid && at.elapsed() < MISSING_KEY_RETRY)
        {
            return Err(missing());
        }
        let Some(record) = self.registry.get(&kid).await.map_err(unavailable)? else {
            *last_miss = Some((kid.clone(), Instant::now()));
            return Err(missing());
        };
        drop(last_miss);
        let key = Arc::new(self.open(delegation, &record).await?);
        *current = Some(Current {
            period_start: start,
            key: key.clone(),
        });
        Ok(key)
    }

    /// Unseal a delegated key and check it is the key its certificate names, certified by this root.
    async fn open(
        &self,
        delegation: &Delegation,
        record: &KeyRecord,
    ) -> Result<LocalKey, SignerError> {
        let published = &record.published;
        let sealed = record
            .sealed_private
            .as_deref()
            .and_then(|s| s.strip_prefix(ENVELOPE_PREFIX))
            .ok_or_else(|| corrupt(&published.kid, "has no sealed private key"))?;
        let seed = Zeroizing::new(
            delegation
                .envelope
                .open(&seal_context(&published.kid), sealed)
                .await
                .map_err(|e| match e {
                    // Sealed for another record, or altered: the record is refused, not retried.
                    StoreError::Corrupt(what) => corrupt(
                        &published.kid,
                        &format!("private key does not open: {what}"),
                    ),
                    e => unavailable(e),
                })?,
        );
        let bytes = Zeroizing::new(
            STANDARD
                .decode(seed.as_bytes())
                .map_err(|_| corrupt(&published.kid, "private key is not base64"))?,
        );
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| corrupt(&published.kid, "private key is not 32 bytes"))?;
        let key = LocalKey::new(
            published.kid.clone(),
            ed25519_dalek::SigningKey::from_bytes(&seed),
        );
        let certificate = published
            .certificate
            .as_ref()
            .ok_or_else(|| corrupt(&published.kid, "has no certificate"))?;
        certificate
            .verify(&key.public_key(), &self.root_public)
            .map_err(|e| corrupt(&published.kid, &e.to_string()))?;
        if key.public_key().ed25519 != published.ed25519 {
            return Err(corrupt(
                &published.kid,
                "private half does not match its public key",
            ));
        }
        Ok(key)
    }

    /// The key step at `now` (see the module doc). Idempotent; concurrent runs issue each key once.
    pub async fn rotate_ahead_at(&self, now: DateTime<Utc>) -> Result<Vec<String>, SignerError> {
        if !is_root_kid(self.root.kid()) {
            return Err(SignerError::Misconfigured(format!(
                "root kid {} has the form of a delegated key's kid (<root>.d<digits>): choose another VAULT_KEY_ID",
                self.root.kid()
            )));
        }
        let records = self.registry.roots().await.map_err(unavailable)?;
        // Microseconds: two roots recorded in the same second must still be ordered.
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let root_kid = self.root.kid().to_string();
        let root_active_from = match records.iter().find(|r| r.published.kid == root_kid) {
            Some(recorded) if recorded.published.ed25519 != self.root_public => {
                return Err(SignerError::Misconfigured(format!(
                    "kid {root_kid} is on record for another public key: give a new root key a new kid \
                     (VAULT_KEY_ID), or verifiers could not tell the two apart"
                )));
            }
            Some(recorded) => recorded.published.active_from.clone(),
            None => {
                let root = KeyRecord {
                    published: PublishedKey {
                        kid: root_kid.clone(),
                        ed25519: self.root_public,
                        role: KeyRole::Root,
                        active_from: at.clone(),
                        retired_at: None,
                        certificate: None,
                    },
                    sealed_private: None,
                };
                self.registry.insert(&root).await.map_err(unavailable)?;
                at.clone()
            }
        };
        // Only roots that came before this one are retired: during a rolling deploy an instance still on the
        // old root must not retire the new one.
        let ours = parse_time(&root_active_from);
        for old in records.iter().filter(|r| {
            r.published.role == KeyRole::Root
                && r.published.kid != root_kid
                && r.published.retired_at.is_none()
                && parse_time(&r.published.active_from) < ours
        }) {
            self.registry
                .retire(&old.published.kid, &at)
                .await
                .map_err(unavailable)?;
            tracing::info!(kid = %old.published.kid, "root signing key retired");
        }
        let mut issued = Vec::new();
        if let Some(delegation) = &self.delegation {
            for start in delegation.schedule.due(now) {
                let kid = self.delegated_kid(start);
                if self
                    .registry
                    .get(&kid)
                    .await
                    .map_err(unavailable)?
                    .is_some()
                {
                    continue;
                }
                let record = self.issue(delegation, &kid, start).await?;
                if self.registry.insert(&record).await.map_err(unavailable)? {
                    tracing::info!(kid, not_before = %record.published.active_from, "delegated signing key issued");
                    issued.push(kid);
                }
            }
        }
        *self.listing.lock().await = None;
        *self.last_miss.lock().await = None;
        Ok(issued)
    }

    async fn issue(
        &self,
        delegation: &Delegation,
        kid: &str,
        start: i64,
    ) -> Result<KeyRecord, SignerError> {
        let key = LocalKey::new(
            kid,
            ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        );
        let public = key.public_key();
        let (not_before, not_after) = delegation.schedule.window(start);
        let payload =
            KeyCertificate::for_key(&public, not_before, not_after, self.root.kid()).payload();
        let signature = self.root.sign(&payload).await?;
        let seed = Zeroizing::new(STANDARD.encode(key.key.to_bytes()));
        let sealed = delegation
            .envelope
            .seal(&seal_context(kid), &seed)
            .await
            .map_err(unavailable)?;
        let certificate = SignedCertificate {
            payload,
            signature,
            issuer: self.root.kid().into(),
        };
        Ok(KeyRecord::delegated(
            &public,
            (not_before, not_after),
            certificate,
            sealed,
        ))
    }
}

/// Associated data of a sealed private key: it cannot be moved to another record.
fn seal_context(kid: &str) -> String {
    format!("signing-key:{kid}")
}

fn unavailable(e: StoreError) -> SignerError {
    SignerError::Unavailable(e.to_string())
}

fn corrupt(kid: &str, what: &str) -> SignerError {
    SignerError::Misconfigured(format!("signing key {kid} {what}"))
}

#[async_trait]
impl Signer for RegistrySigner {
    async fn approval_key(&self) -> Result<Arc<dyn SigningKey>, SignerError> {
        self.approval_key_at(Utc::now()).await
    }

    async fn root_key(&self) -> Result<Arc<dyn SigningKey>, SignerError> {
        Ok(self.root.clone())
    }

    async fn published_keys(&self) -> Result<Vec<PublishedKey>, SignerError> {
        self.published_keys_at(Utc::now()).await
    }

    async fn published_key(&self, kid: &str) -> Result<Option<PublishedKey>, SignerError> {
        if let Some(key) = self
            .published_keys_at(Utc::now())
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
        {
            return Ok(Some(key));
        }
        Ok(self
            .registry
            .get(kid)
            .await
            .map_err(unavailable)?
            .map(|r| r.published))
    }

    async fn rotate_ahead(&self) -> Result<Vec<String>, SignerError> {
        self.rotate_ahead_at(Utc::now()).await
    }
}

/// A registry in memory: for tests and for the contract suite's reference behaviour.
#[derive(Default)]
pub struct MemoryKeyRegistry {
    records: std::sync::Mutex<Vec<KeyRecord>>,
}

impl MemoryKeyRegistry {
    fn all(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self
            .records
            .lock()
            .map_err(|_| StoreError::Unavailable("registry lock poisoned".into()))?
            .clone())
    }
}

#[async_trait]
impl KeyRegistry for MemoryKeyRegistry {
    async fn roots(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self
            .all()?
            .into_iter()
            .filter(|r| r.published.role == KeyRole::Root)
            .collect())
    }

    async fn delegated(
        &self,
        root_kid: &str,
        from_start: i64,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self
            .all()?
            .into_iter()
            .filter(|r| {
                r.published.role == KeyRole::Delegated
                    && parse_delegated_kid(&r.published.kid)
                        .is_some_and(|(root, start)| root == root_kid && start >= from_start)
            })
            .collect())
    }

    async fn get(&self, kid: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.all()?.into_iter().find(|r| r.published.kid == kid))
    }

    async fn insert(&self, record: &KeyRecord) -> Result<bool, StoreError> {
        let mut records = self
            .records
            .lock()
            .map_err(|_| StoreError::Unavailable("registry lock poisoned".into()))?;
        if records
            .iter()
            .any(|r| r.published.kid == record.published.kid)
        {
            return Ok(false);
        }
        records.push(record.clone());
        Ok(true)
    }

    async fn retire(&self, kid: &str, at: &str) -> Result<(), StoreError> {
        let mut records = self
            .records
            .lock()
            .map_err(|_| StoreError::Unavailable("registry lock poisoned".into()))?;
        // As DynamoDB's conditional update: retiring a kid the registry does not hold is an error.
        let record = records
            .iter_mut()
            .find(|r| r.published.kid == kid)
            .ok_or_else(|| StoreError::Unavailable(format!("no signing key {kid} to retire")))?;
        record
            .published
            .retired_at
            .get_or_insert_with(|| at.to_string());
        Ok(())
    }
}
