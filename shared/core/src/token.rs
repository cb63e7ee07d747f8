//! The approval token (A-JWT): JWS compact, EdDSA over Ed25519, bound to one tool call.
//!
//! Verification and JWK handling use `jsonwebtoken`. Signing assembles the JWS signing input here because the
//! signature comes from the `Signer` port (a local key or AWS KMS), which no JWT crate can call.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{VaultError, VaultResult};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApprovalClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub tool: String,
    pub agent_id: String,
    pub session_id: String,
    pub policy_id: String,
    pub decision: String,
    pub tool_args_hash: String,
    pub tenant_id: String,
    pub request_id: String,
}

pub const TOKEN_SUBJECT: &str = "clearance";

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// `base64url(header) . base64url(claims)`: the bytes the signer signs.
pub fn signing_input(kid: &str, claims: &ApprovalClaims) -> VaultResult<String> {
    let header = serde_json::to_vec(&Header {
        alg: "EdDSA",
        typ: "JWT",
        kid,
    })
    .map_err(|e| VaultError::Internal(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| VaultError::Internal(e.to_string()))?;
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    ))
}

pub fn assemble(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A published verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    /// Raw 32-byte Ed25519 public key.
    pub ed25519: [u8; 32],
}

impl PublicKey {
    pub fn to_jwk(&self) -> Jwk {
        Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                key_id: Some(self.kid.clone()),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(self.ed25519),
            }),
        }
    }
}

pub fn jwks(keys: &[PublicKey]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(PublicKey::to_jwk).collect(),
    }
}

/// Verify signature, issuer, audience, subject and expiry; any failure is `InvalidToken`.
pub fn verify(
    token: &str,
    keys: &[PublicKey],
    issuer: &str,
    audience: &str,
) -> VaultResult<ApprovalClaims> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VaultError::InvalidToken)?;
    if header.alg != Algorithm::EdDSA {
        return Err(VaultError::InvalidToken);
    }
    let kid = header.kid.ok_or(VaultError::InvalidToken)?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(VaultError::InvalidToken)?;
    let decoding_key = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(key.ed25519))
        .map_err(|_| VaultError::InvalidToken)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = 0;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<ApprovalClaims>(token, &decoding_key, &validation)
        .map_err(|_| VaultError::InvalidToken)?;
    if data.claims.sub != TOKEN_SUBJECT {
        return Err(VaultError::InvalidToken);
    }
    Ok(data.claims)
}
