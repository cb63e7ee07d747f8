//! C2SP signed-note: the published example key and note (golang.org/x/mod/sumdb/note), reproduced
//! byte for byte, and tlog checkpoints that verify.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use ledgix_core::note;

const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const SIGNED: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

fn example_key() -> SigningKey {
    let encoded = SKEY.splitn(5, '+').nth(4).expect("key part");
    let bytes = STANDARD.decode(encoded).expect("base64");
    assert_eq!(bytes[0], 0x01, "Ed25519 algorithm byte");
    SigningKey::from_bytes(&bytes[1..33].try_into().expect("32-byte seed"))
}

#[test]
fn reproduces_the_published_example() {
    let key = example_key();
    let public = key.verifying_key().to_bytes();
    assert_eq!(note::verifier_key("PeterNeumann", &public), VKEY);
    let signature = key.sign(TEXT.as_bytes()).to_bytes();
    assert_eq!(
        note::signed(TEXT, "PeterNeumann", &public, &signature),
        SIGNED
    );
    assert_eq!(note::verify(SIGNED, "PeterNeumann", &public), Ok(TEXT));
}

#[test]
fn checkpoints_verify_and_tampering_is_caught() {
    let key = SigningKey::from_bytes(&[3u8; 32]);
    let public = key.verifying_key().to_bytes();
    let body = note::checkpoint_body("ledgix-vault/tn_1", 42, &[9u8; 32]);
    let signed = note::signed(
        &body,
        "ledgix-vault/tn_1",
        &public,
        &key.sign(body.as_bytes()).to_bytes(),
    );
    assert_eq!(
        note::verify(&signed, "ledgix-vault/tn_1", &public),
        Ok(body.as_str())
    );
    assert_eq!(
        note::parse_checkpoint_body(&body),
        Some(("ledgix-vault/tn_1".to_string(), 42, [9u8; 32]))
    );
    let tampered = signed.replace("\n42\n", "\n43\n");
    assert!(note::verify(&tampered, "ledgix-vault/tn_1", &public).is_err());
    let other = SigningKey::from_bytes(&[4u8; 32])
        .verifying_key()
        .to_bytes();
    assert!(note::verify(&signed, "ledgix-vault/tn_1", &other).is_err());
}
