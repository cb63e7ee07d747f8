//! `verify-full` checks the server's chain against the configured trust anchors (VAULT_DB_CA_BUNDLE, else the
//! web PKI roots) and its name against the host connected to. Offline: test certificates in fixtures/tls.

use std::path::PathBuf;

use ledgix_aws::pg::{PgTls, TlsMode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn server_cert() -> CertificateDer<'static> {
    CertificateDer::from_pem_file(fixture("server.pem")).expect("server.pem")
}

fn verify(tls: &PgTls, host: &str) -> Result<(), rustls::Error> {
    let name = ServerName::try_from(host.to_string()).expect("server name");
    tls.verifier()
        .expect("verifier")
        .verify_server_cert(&server_cert(), &[], &name, &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn the_ca_bundle_admits_its_servers_under_their_own_name() {
    let tls = PgTls::new(TlsMode::VerifyFull, Some(&fixture("ca.pem"))).expect("bundle");
    assert_eq!(tls.mode(), TlsMode::VerifyFull);
    verify(&tls, "db.ledgix.test").expect("chain and name verify");
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let tls = PgTls::new(TlsMode::VerifyFull, Some(&fixture("ca.pem"))).expect("bundle");
    let err = verify(&tls, "other.ledgix.test").expect_err("wrong host name");
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                | rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. }
                )
        ),
        "{err:?}"
    );
    assert!(
        verify(&tls, "127.0.0.1").is_err(),
        "nor an address it does not name"
    );
}

#[test]
fn a_chain_to_another_ca_is_refused() {
    let other = PgTls::new(TlsMode::VerifyFull, Some(&fixture("other-ca.pem"))).expect("bundle");
    let err = verify(&other, "db.ledgix.test").expect_err("unknown issuer");
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ),
        "{err:?}"
    );
    // Without a bundle, verify-full trusts the web PKI roots only: a private CA's server is refused.
    let web = PgTls::from(TlsMode::VerifyFull);
    assert!(verify(&web, "db.ledgix.test").is_err());
}

#[test]
fn an_unusable_bundle_is_an_error_naming_the_file() {
    let missing = fixture("no-such-bundle.pem");
    let err = PgTls::new(TlsMode::VerifyFull, Some(&missing)).expect_err("missing file");
    assert!(err.contains("no-such-bundle.pem"), "{err}");
    let err = PgTls::new(TlsMode::VerifyFull, Some(&fixture("README.md"))).expect_err("no PEM");
    assert!(err.contains("README.md"), "{err}");
}
