//! SCRAM-SHA-256 password verifiers (RFC 5802, RFC 7677) in PostgreSQL's stored form, computed here so a
//! role's password never travels in a statement (where `log_statement` or pg_stat_statements would keep it):
//! `CREATE ROLE … PASSWORD 'SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>'` is stored as is.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// PostgreSQL's default iteration count (`scram_iterations`).
pub const ITERATIONS: u32 = 4096;
/// PostgreSQL's salt length.
pub const SALT_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    /// SASLprep (RFC 4013) is the identity only on printable ASCII; other passwords are not supported here.
    #[error("the password must be printable ASCII")]
    NotPrintableAscii,
    #[error("the iteration count must be positive")]
    NoIterations,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA-256 accepts keys of every length"),
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 (RFC 8018) with a 32-byte output: one block, `Hi()` of RFC 5802.
pub fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = Vec::with_capacity(salt.len() + 4);
    first.extend_from_slice(salt);
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, b) in out.iter_mut().zip(u.iter()) {
            *o ^= b;
        }
    }
    out
}

/// The keys a server stores: StoredKey = H(HMAC(SaltedPassword, "Client Key")),
/// ServerKey = HMAC(SaltedPassword, "Server Key").
pub fn keys(salted: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let client_key = hmac(salted, b"Client Key");
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    (stored_key, hmac(salted, b"Server Key"))
}

/// PostgreSQL's verifier of `password` with this salt and iteration count.
pub fn verifier_with_salt(
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<String, ScramError> {
    if password.is_empty() || !password.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(ScramError::NotPrintableAscii);
    }
    if iterations == 0 {
        return Err(ScramError::NoIterations);
    }
    let salted = salted_password(password.as_bytes(), salt, iterations);
    let (stored_key, server_key) = keys(&salted);
    Ok(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    ))
}

/// PostgreSQL's verifier of `password` with a fresh random salt and PostgreSQL's default iteration count.
pub fn verifier(password: &str) -> Result<String, ScramError> {
    use rand::RngCore;
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    verifier_with_salt(password, &salt, ITERATIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PBKDF2-HMAC-SHA-256 vectors (RFC 7914 §11 gives the first; the others are the widely published
    /// ones for P = "password", S = "salt").
    #[test]
    fn pbkdf2_vectors() {
        let hex = |b: [u8; 32]| hex::encode(b);
        assert_eq!(
            hex(salted_password(b"password", b"salt", 1)),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
        assert_eq!(
            hex(salted_password(b"password", b"salt", 2)),
            "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"
        );
        assert_eq!(
            hex(salted_password(b"password", b"salt", 4096)),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"
        );
        // RFC 7914 §11: PBKDF2-HMAC-SHA256 (P="passwd", S="salt", c=1), first 32 of its 64 bytes.
        assert_eq!(
            hex(salted_password(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    /// RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations. The keys
    /// derived here must reproduce the exchange's client proof and server signature.
    #[test]
    fn rfc7677_exchange() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let salted = salted_password(b"pencil", &salt, 4096);
        let (stored_key, server_key) = keys(&salted);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let client_key = hmac(&salted, b"Client Key");
        let digest: [u8; 32] = Sha256::digest(client_key).into();
        assert_eq!(digest, stored_key);
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature.iter())
            .map(|(k, s)| k ^ s)
            .collect();
        assert_eq!(
            STANDARD.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            STANDARD.encode(hmac(&server_key, auth_message.as_bytes())),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    /// A verifier PostgreSQL 15 itself stored for `CREATE ROLE … PASSWORD 'pencil'`
    /// (password_encryption = scram-sha-256), read back from pg_authid.rolpassword.
    #[test]
    fn matches_a_verifier_made_by_postgresql() {
        let from_server = POSTGRES_PENCIL;
        let (head, _) = from_server.split_once('$').expect("scheme");
        assert_eq!(head, "SCRAM-SHA-256");
        let params = from_server["SCRAM-SHA-256$".len()..]
            .split_once('$')
            .expect("params")
            .0;
        let (iterations, salt) = params.split_once(':').expect("iterations:salt");
        let salt = STANDARD.decode(salt).expect("salt");
        let ours = verifier_with_salt("pencil", &salt, iterations.parse().expect("number"))
            .expect("verifier");
        assert_eq!(ours, from_server);
    }

    const POSTGRES_PENCIL: &str = "SCRAM-SHA-256$4096:9Cbt+3YigvYsiIIvhjQ4Lw==$qGId8sAKvVg/AHfVMzTmt/x7vO8Rm8RAiWCE7JZjlGs=:GhMOcXXRshIu9TBwmhiwa33HcH5EDdobGPDFDbRlPUU=";

    #[test]
    fn fresh_salts_and_refusals() {
        let a = verifier("0123abcd").expect("verifier");
        let b = verifier("0123abcd").expect("verifier");
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        assert_ne!(a, b, "each verifier has its own salt");
        assert_eq!(verifier("pass'word\n"), Err(ScramError::NotPrintableAscii));
        assert_eq!(verifier(""), Err(ScramError::NotPrintableAscii));
        assert_eq!(
            verifier_with_salt("x", b"salt", 0),
            Err(ScramError::NoIterations)
        );
    }
}
