//! Signing keys as verifiers see them. A root key (KMS on AWS, a local key in embedded mode) signs
//! checkpoints and certifies delegated keys; a delegated key signs approval tokens and ledger receipts for one
//! key period. A key certificate is the root's signature over the delegated key's identity and validity
//! window, so an auditor who pins only the root can check every receipt (docs/ledger.md).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::token::PublicKey;

/// What a delegated key may sign (the certificate's `purpose`).
pub const DELEGATED_PURPOSE: &str = "approval-tokens-and-receipts";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// Signs checkpoints and key certificates (and, without delegation, tokens and receipts).
    Root,
    /// Signs tokens and receipts within its certificate's window.
    Delegated,
}

/// What a root key certifies about a delegated key. Signed as its RFC 8785 (JCS) serialisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCertificate {
    pub kid: String,
    /// base64url of the raw 32-byte Ed25519 public key.
    pub public_key: String,
    pub purpose: String,
    /// RFC 3339 UTC; the key may sign from this instant ...
    pub not_before: String,
    /// ... until this one (exclusive).
    pub not_after: String,
    /// kid of the root key that signs this certificate.
    pub issuer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("key certificate is malformed: {0}")]
    Malformed(String),
    #[error("key certificate signature does not verify against root key {0}")]
    BadSignature(String),
    #[error("key certificate is for {certified}, not for key {key}")]
    WrongKey { certified: String, key: String },
    #[error("key {kid} signed at {at}, outside its certified window {not_before} .. {not_after}")]
    OutsideWindow {
        kid: String,
        at: String,
        not_before: String,
        not_after: String,
    },
}

impl KeyCertificate {
    pub fn for_key(
        key: &PublicKey,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
        issuer: &str,
    ) -> Self {
        KeyCertificate {
            kid: key.kid.clone(),
            public_key: URL_SAFE_NO_PAD.encode(key.ed25519),
            purpose: DELEGATED_PURPOSE.into(),
            not_before: rfc3339(not_before),
            not_after: rfc3339(not_after),
            issuer: issuer.into(),
        }
    }

    /// The bytes the root signs.
    pub fn payload(&self) -> Vec<u8> {
        // A struct of strings always serialises.
        serde_jcs::to_vec(self).unwrap_or_default()
    }

    pub fn parse(payload: &[u8]) -> Result<Self, CertificateError> {
        let certificate: KeyCertificate = serde_json::from_slice(payload)
            .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        // Only the canonical form is accepted, so one certificate has one byte string.
        if certificate.payload() != payload {
            return Err(CertificateError::Malformed(
                "payload is not in JCS form".into(),
            ));
        }
        if certificate.purpose != DELEGATED_PURPOSE {
            return Err(CertificateError::Malformed(format!(
                "purpose {:?} is not {DELEGATED_PURPOSE}",
                certificate.purpose
            )));
        }
        certificate.window()?;
        certificate.public_key()?;
        Ok(certificate)
    }

    pub fn public_key(&self) -> Result<[u8; 32], CertificateError> {
        URL_SAFE_NO_PAD
            .decode(&self.public_key)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                CertificateError::Malformed("public_key is not 32 base64url bytes".into())
            })
    }

    pub fn window(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), CertificateError> {
        let parse = |value: &str| {
            parse_time(value).ok_or_else(|| {
                CertificateError::Malformed(format!("{value:?} is not an RFC 3339 time"))
            })
        };
        let window = (parse(&self.not_before)?, parse(&self.not_after)?);
        if window.0 >= window.1 {
            return Err(CertificateError::Malformed(
                "not_before is not before not_after".into(),
            ));
        }
        Ok(window)
    }

    /// Fails unless `at` (RFC 3339) lies in `[not_before, not_after)`.
    pub fn covers(&self, at: &str) -> Result<(), CertificateError> {
        let (not_before, not_after) = self.window()?;
        let outside = || CertificateError::OutsideWindow {
            kid: self.kid.clone(),
            at: at.into(),
            not_before: self.not_before.clone(),
            not_after: self.not_after.clone(),
        };
        let at = parse_time(at).ok_or_else(outside)?;
        if at < not_before || at >= not_after {
            return Err(outside());
        }
        Ok(())
    }
}

/// A certificate and the root's signature over its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCertificate {
    /// The JCS payload (`KeyCertificate::payload`).
    #[serde(with = "base64url")]
    pub payload: Vec<u8>,
    #[serde(with = "base64url")]
    pub signature: Vec<u8>,
    pub issuer: String,
}

impl SignedCertificate {
    /// Check the signature with the issuing root's public key and that the certificate names `key`.
    pub fn verify(
        &self,
        key: &PublicKey,
        root: &[u8; 32],
    ) -> Result<KeyCertificate, CertificateError> {
        let certificate = KeyCertificate::parse(&self.payload)?;
        if certificate.issuer != self.issuer {
            return Err(CertificateError::Malformed(
                "issuer differs from the signing root".into(),
            ));
        }
        let bad = || CertificateError::BadSignature(self.issuer.clone());
        let root = VerifyingKey::from_bytes(root).map_err(|_| bad())?;
        let signature = Signature::from_slice(&self.signature).map_err(|_| bad())?;
        root.verify(&self.payload, &signature).map_err(|_| bad())?;
        if certificate.kid != key.kid || certificate.public_key()? != key.ed25519 {
            return Err(CertificateError::WrongKey {
                certified: certificate.kid,
                key: key.kid.clone(),
            });
        }
        Ok(certificate)
    }
}

/// A key a verifier may need, live or retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKey {
    pub kid: String,
    #[serde(with = "base64url_32")]
    pub ed25519: [u8; 32],
    pub role: KeyRole,
    /// When the key began to sign (a delegated key: its certificate's not_before).
    pub active_from: String,
    /// When it stopped (a delegated key: its not_after; a root key: when it was rotated out).
    pub retired_at: Option<String>,
    /// Delegated keys only.
    pub certificate: Option<SignedCertificate>,
}

impl PublishedKey {
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            ed25519: self.ed25519,
        }
    }

    /// Whether the JWKS lists it at `now`: root keys always (few, and they verify checkpoints forever); a
    /// delegated key from its issue until every token it can have signed has expired.
    pub fn in_jwks(&self, now: DateTime<Utc>, token_ttl_seconds: i64) -> bool {
        match (self.role, &self.retired_at) {
            (KeyRole::Root, _) | (KeyRole::Delegated, None) => true,
            (KeyRole::Delegated, Some(end)) => parse_time(end)
                .is_none_or(|end| now < end + chrono::Duration::seconds(token_ttl_seconds.max(0))),
        }
    }
}

/// The delegated keys' calendar: periods of `period_seconds` aligned to the Unix epoch; a key is issued
/// `publish_ahead_seconds` before its period starts and is certified `overlap_seconds` either side of it, so a
/// record timestamped just before a boundary and signed just after verifies with either key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySchedule {
    pub period_seconds: i64,
    pub publish_ahead_seconds: i64,
    pub overlap_seconds: i64,
}

impl Default for KeySchedule {
    fn default() -> Self {
        KeySchedule {
            period_seconds: 3600,
            publish_ahead_seconds: 600,
            overlap_seconds: 60,
        }
    }
}

impl KeySchedule {
    /// Start (Unix seconds) of the period containing `at`.
    pub fn period_start(&self, at: DateTime<Utc>) -> i64 {
        at.timestamp().div_euclid(self.period_seconds) * self.period_seconds
    }

    /// The certified window of the key for the period starting at `start`.
    pub fn window(&self, start: i64) -> (DateTime<Utc>, DateTime<Utc>) {
        let at = |seconds: i64| DateTime::from_timestamp(seconds, 0).unwrap_or_default();
        (
            at(start - self.overlap_seconds),
            at(start + self.period_seconds + self.overlap_seconds),
        )
    }

    /// Period starts whose keys must exist at `now`: the current one, and the next once it is within
    /// `publish_ahead_seconds`.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<i64> {
        let current = self.period_start(now);
        let next = current + self.period_seconds;
        if now.timestamp() >= next - self.publish_ahead_seconds {
            vec![current, next]
        } else {
            vec![current]
        }
    }

    /// Valid values: a period of at least 10 s, an overlap below half a period, publication ahead
    /// shorter than a period.
    pub fn check(&self) -> Result<(), String> {
        if self.period_seconds < 10 {
            return Err("VAULT_SIGNING_KEY_PERIOD_SECONDS must be at least 10".into());
        }
        if self.overlap_seconds < 0 || self.overlap_seconds * 2 >= self.period_seconds {
            return Err(
                "VAULT_SIGNING_KEY_OVERLAP_SECONDS must be below half the key period".into(),
            );
        }
        if self.publish_ahead_seconds < 0 || self.publish_ahead_seconds >= self.period_seconds {
            return Err(
                "VAULT_SIGNING_KEY_PUBLISH_AHEAD_SECONDS must be shorter than the key period"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A key as the registry stores it: its public record, and for a delegated key the private half sealed
/// under the envelope key (`None` once the key has been retired and its private half erased).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub published: PublishedKey,
    pub sealed_private: Option<String>,
}

/// The kid of the delegated key `root_kid` certifies for the period starting at `start` (Unix seconds).
pub fn delegated_kid(root_kid: &str, start: i64) -> String {
    format!("{root_kid}.d{start}")
}

/// `(root kid, period start)` of a kid in the delegated form; `None` for any other kid. Root kids of this
/// form are refused (`is_root_kid`), so the two never collide.
pub fn parse_delegated_kid(kid: &str) -> Option<(&str, i64)> {
    let (root, start) = kid.rsplit_once(".d")?;
    if root.is_empty() || start.is_empty() || !start.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((root, start.parse().ok()?))
}

/// Whether `kid` may name a root key: anything not in the delegated form.
pub fn is_root_kid(kid: &str) -> bool {
    !kid.is_empty() && parse_delegated_kid(kid).is_none()
}

impl KeyRecord {
    /// A delegated key's record: its public half published for the certificate's window, its private half
    /// sealed (`sealed_private`).
    pub fn delegated(
        key: &PublicKey,
        window: (DateTime<Utc>, DateTime<Utc>),
        certificate: SignedCertificate,
        sealed_private: String,
    ) -> Self {
        KeyRecord {
            published: PublishedKey {
                kid: key.kid.clone(),
                ed25519: key.ed25519,
                role: KeyRole::Delegated,
                active_from: rfc3339(window.0),
                retired_at: Some(rfc3339(window.1)),
                certificate: Some(certificate),
            },
            sealed_private: Some(sealed_private),
        }
    }
}

pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

mod base64url {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(serde::de::Error::custom)
    }
}

mod base64url_32 {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        super::base64url::serialize(bytes, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        super::base64url::deserialize(d)?
            .try_into()
            .map_err(|_| serde::de::Error::custom("not 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    fn key(seed: u8, kid: &str) -> (SigningKey, PublicKey) {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        let public = PublicKey {
            kid: kid.into(),
            ed25519: signing.verifying_key().to_bytes(),
        };
        (signing, public)
    }

    fn certify(root: &SigningKey, key: &PublicKey) -> SignedCertificate {
        let schedule = KeySchedule::default();
        let (not_before, not_after) = schedule.window(1_800_000_000);
        let payload = KeyCertificate::for_key(key, not_before, not_after, "root").payload();
        SignedCertificate {
            signature: root.sign(&payload).to_bytes().to_vec(),
            payload,
            issuer: "root".into(),
        }
    }

    #[test]
    fn a_certificate_verifies_against_its_root_only() {
        let (root, root_public) = key(1, "root");
        let (_, delegated) = key(2, "d1");
        let (_, impostor) = key(3, "impostor-root");
        let certificate = certify(&root, &delegated);
        let parsed = certificate
            .verify(&delegated, &root_public.ed25519)
            .unwrap();
        assert_eq!(parsed.kid, "d1");
        assert!(matches!(
            certificate.verify(&delegated, &impostor.ed25519),
            Err(CertificateError::BadSignature(_))
        ));
    }

    #[test]
    fn a_certificate_names_exactly_one_key() {
        let (root, root_public) = key(1, "root");
        let (_, delegated) = key(2, "d1");
        let (_, other) = key(4, "d1");
        let certificate = certify(&root, &delegated);
        assert!(matches!(
            certificate.verify(&other, &root_public.ed25519),
            Err(CertificateError::WrongKey { .. })
        ));
    }

    #[test]
    fn an_edited_certificate_is_rejected() {
        let (root, root_public) = key(1, "root");
        let (_, delegated) = key(2, "d1");
        let mut certificate = certify(&root, &delegated);
        let mut fields = KeyCertificate::parse(&certificate.payload).unwrap();
        fields.not_after = "2099-01-01T00:00:00Z".into();
        certificate.payload = fields.payload();
        assert!(matches!(
            certificate.verify(&delegated, &root_public.ed25519),
            Err(CertificateError::BadSignature(_))
        ));
        let mut spaced = certify(&root, &delegated);
        spaced.payload.insert(1, b' ');
        assert!(matches!(
            spaced.verify(&delegated, &root_public.ed25519),
            Err(CertificateError::Malformed(_))
        ));
    }

    #[test]
    fn the_window_is_the_period_widened_by_the_overlap() {
        let schedule = KeySchedule {
            period_seconds: 3600,
            publish_ahead_seconds: 600,
            overlap_seconds: 60,
        };
        let (root, _) = key(1, "root");
        let (_, delegated) = key(2, "d1");
        let certificate = KeyCertificate::parse(&certify(&root, &delegated).payload).unwrap();
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(certificate
            .covers(&rfc3339(start - chrono::Duration::seconds(60)))
            .is_ok());
        assert!(certificate
            .covers(&rfc3339(start + chrono::Duration::seconds(3659)))
            .is_ok());
        assert!(certificate
            .covers(&rfc3339(start + chrono::Duration::seconds(3660)))
            .is_err());
        assert!(certificate
            .covers(&rfc3339(start - chrono::Duration::seconds(61)))
            .is_err());
        assert!(certificate.covers("yesterday").is_err());
        assert_eq!(
            schedule.period_start(start + chrono::Duration::seconds(10)),
            1_800_000_000
        );
    }

    #[test]
    fn the_next_key_is_due_only_within_the_publication_lead() {
        let schedule = KeySchedule::default();
        let start = 1_800_000_000 / 3600 * 3600;
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(schedule.due(at(start + 10)), vec![start]);
        assert_eq!(schedule.due(at(start + 3000)), vec![start, start + 3600]);
        assert_eq!(schedule.due(at(start + 2999)), vec![start]);
    }

    #[test]
    fn delegated_kids_parse_back_and_are_never_root_kids() {
        let kid = delegated_kid("vault-key-001", 1_800_000_000);
        assert_eq!(kid, "vault-key-001.d1800000000");
        assert_eq!(
            parse_delegated_kid(&kid),
            Some(("vault-key-001", 1_800_000_000))
        );
        assert!(!is_root_kid(&kid));
        for root in ["vault-key-001", "a.dx1", "a.d", ".d12", "key.d1-2"] {
            assert!(is_root_kid(root), "{root}");
        }
    }

    #[test]
    fn schedules_are_checked() {
        assert!(KeySchedule::default().check().is_ok());
        for bad in [
            KeySchedule {
                period_seconds: 5,
                ..KeySchedule::default()
            },
            KeySchedule {
                overlap_seconds: 1800,
                ..KeySchedule::default()
            },
            KeySchedule {
                publish_ahead_seconds: 3600,
                ..KeySchedule::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn delegated_keys_leave_the_jwks_once_their_tokens_have_expired() {
        let end = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut published = PublishedKey {
            kid: "d1".into(),
            ed25519: [0; 32],
            role: KeyRole::Delegated,
            active_from: rfc3339(end - chrono::Duration::seconds(3600)),
            retired_at: Some(rfc3339(end)),
            certificate: None,
        };
        assert!(published.in_jwks(end + chrono::Duration::seconds(299), 300));
        assert!(!published.in_jwks(end + chrono::Duration::seconds(300), 300));
        published.role = KeyRole::Root;
        assert!(published.in_jwks(end + chrono::Duration::days(3650), 300));
    }
}
