//! Tenant databases on a real PostgreSQL server (scripts/test.sh runs these with `--include-ignored`; they need
//! DATABASE_URL of a superuser on 127.0.0.1, AWS_ENDPOINT_URL for Secrets Manager): a tenant's database admits
//! only its own role, the role's password is stored as a SCRAM-SHA-256 verifier computed by the vault, and
//! `verify-full` connects only to a server whose certificate chains to the bundle and names the host.

use std::time::Duration;

use ledgix_aws::pg::{self, PgTls, TlsMode};
use ledgix_aws::tenants::{TenantDbSecret, TenantDirectory};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres::error::SqlState;

fn admin() -> tokio_postgres::Config {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must be set (scripts/test.sh sets it)")
        .parse()
        .expect("DATABASE_URL")
}

/// `admin`'s credentials and database at `host` (reached at `hostaddr` when given, named `host` for TLS).
fn at(
    admin: &tokio_postgres::Config,
    host: &str,
    hostaddr: Option<std::net::IpAddr>,
) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(admin.get_ports().first().copied().unwrap_or(5432))
        .user(admin.get_user().expect("DATABASE_URL names a user"))
        .password(admin.get_password().expect("DATABASE_URL has a password"))
        .dbname(admin.get_dbname().unwrap_or("postgres"))
        .connect_timeout(Duration::from_secs(5));
    if let Some(addr) = hostaddr {
        config.hostaddr(addr);
    }
    config
}

fn unique() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    )
}

async fn secret(
    secrets: &aws_sdk_secretsmanager::Client,
    directory: &TenantDirectory,
    tenant: &str,
) -> TenantDbSecret {
    let out = secrets
        .get_secret_value()
        .secret_id(directory.secret_name(tenant))
        .send()
        .await
        .expect("tenant secret");
    serde_json::from_str(out.secret_string().expect("string")).expect("bundle")
}

async fn connect_as(
    secret: &TenantDbSecret,
    dbname: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&secret.host)
        .port(secret.port)
        .dbname(dbname)
        .user(&secret.username)
        .password(password)
        .connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::test]
#[ignore = "needs PostgreSQL and the AWS emulator (scripts/test.sh)"]
async fn a_tenant_database_admits_only_its_own_role_whose_password_is_a_scram_verifier() {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let admin = admin();
    let directory = TenantDirectory::new(
        secrets.clone(),
        &format!("ledgix/tenants/isolation-{}", unique()),
        Duration::from_secs(300),
        TlsMode::Disable,
        2,
        admin.clone(),
        TlsMode::Disable,
    );
    let (a, b) = (format!("tn_a{}", unique()), format!("tn_b{}", unique()));
    directory.provision(&a).await.expect("provision a");
    directory.provision(&b).await.expect("provision b");
    let (secret_a, secret_b) = (
        secret(&secrets, &directory, &a).await,
        secret(&secrets, &directory, &b).await,
    );

    // Its own role connects (pg_hba asks for SCRAM on 127.0.0.1, so the stored verifier matches the password).
    let own = connect_as(&secret_a, &secret_a.dbname, &secret_a.password)
        .await
        .expect("a's role connects to a's database");
    own.simple_query("SELECT 1").await.expect("query");
    let wrong = connect_as(&secret_a, &secret_a.dbname, "not-the-password")
        .await
        .expect_err("a wrong password is refused");
    assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD), "{wrong}");

    // Another tenant's role, with its own valid password, is refused a's database.
    let refused = connect_as(&secret_b, &secret_a.dbname, &secret_b.password)
        .await
        .expect_err("b's role may not connect to a's database");
    assert_eq!(
        refused.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{refused}"
    );
    connect_as(&secret_b, &secret_b.dbname, &secret_b.password)
        .await
        .expect("b's role connects to its own database");

    // pg_authid holds a verifier, not the password; PUBLIC holds no CONNECT on the database.
    let client = pg::connect(&admin, &PgTls::from(TlsMode::Disable))
        .await
        .expect("admin");
    let stored: String = client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&secret_a.username],
        )
        .await
        .expect("pg_authid")
        .get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    assert!(!stored.contains(&secret_a.password));
    let public_connect: bool = client
        .query_one(
            "SELECT has_database_privilege('public', $1, 'CONNECT')",
            &[&secret_a.dbname],
        )
        .await
        .expect("privilege")
        .get(0);
    assert!(!public_connect);

    // Re-provisioning (idempotent) keeps the database closed and rotates the verifier.
    directory.provision(&a).await.expect("provision again");
    let again = secret(&secrets, &directory, &a).await;
    connect_as(&again, &again.dbname, &again.password)
        .await
        .expect("the new password works");
    assert!(connect_as(&secret_b, &again.dbname, &secret_b.password)
        .await
        .is_err());
}

/// Our verifier for a password equals the one PostgreSQL computes from the same salt and iteration count.
#[tokio::test]
#[ignore = "needs PostgreSQL (scripts/test.sh)"]
async fn our_scram_verifier_matches_the_servers() {
    let client = pg::connect(&admin(), &PgTls::from(TlsMode::Disable))
        .await
        .expect("admin");
    let role = format!("ledgix_scram_{}", unique());
    client
        .batch_execute(&format!(
            "SET password_encryption = 'scram-sha-256'; CREATE ROLE \"{role}\" PASSWORD 'c0ffee-Pass word'"
        ))
        .await
        .expect("create role");
    let stored: String = client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&role],
        )
        .await
        .expect("pg_authid")
        .get(0);
    client
        .batch_execute(&format!("DROP ROLE \"{role}\""))
        .await
        .expect("drop role");
    let params = stored
        .strip_prefix("SCRAM-SHA-256$")
        .and_then(|rest| rest.split_once('$'))
        .map(|(params, _)| params)
        .expect("a SCRAM verifier");
    let (iterations, salt) = params.split_once(':').expect("iterations:salt");
    use base64::Engine;
    let salt = base64::engine::general_purpose::STANDARD
        .decode(salt)
        .expect("salt");
    let ours = ledgix_aws::scram::verifier_with_salt(
        "c0ffee-Pass word",
        &salt,
        iterations.parse().expect("iterations"),
    )
    .expect("verifier");
    assert_eq!(ours, stored);
}

/// The test cluster's own certificate (pg_createcluster enables TLS with the host's snakeoil certificate):
/// with it as the bundle, verify-full connects under the name it carries and refuses any other name; without
/// it (web PKI roots) the server is refused; `require` encrypts without checking.
#[tokio::test]
#[ignore = "needs PostgreSQL with ssl = on (scripts/test.sh)"]
async fn verify_full_checks_the_servers_chain_and_name() {
    let admin = admin();
    let client = pg::connect(&admin, &PgTls::from(TlsMode::Disable))
        .await
        .expect("admin");
    let ssl: String = client.query_one("SHOW ssl", &[]).await.expect("ssl").get(0);
    assert_eq!(
        ssl, "on",
        "the test cluster must have ssl = on (pg_createcluster's default)"
    );
    let pem: String = client
        .query_one("SELECT pg_read_file(current_setting('ssl_cert_file'))", &[])
        .await
        .expect("the server certificate")
        .get(0);
    let bundle = std::env::temp_dir().join(format!("ledgix-test-ca-{}.pem", unique()));
    std::fs::write(&bundle, &pem).expect("write bundle");
    let tls = PgTls::new(TlsMode::VerifyFull, Some(&bundle)).expect("bundle");
    let _ = std::fs::remove_file(&bundle);

    // The name the certificate carries: localhost, or the host name it was made for.
    let cert = CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM");
    let verifier = tls.verifier().expect("verifier");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = ["localhost", hostname.trim()]
        .into_iter()
        .find(|n| {
            ServerName::try_from(n.to_string()).is_ok_and(|sn| {
                verifier
                    .verify_server_cert(&cert, &[], &sn, &[], UnixTime::now())
                    .is_ok()
            })
        })
        .expect("the server certificate names localhost or this host");

    let loopback: std::net::IpAddr = [127, 0, 0, 1].into();
    let by_name = at(&admin, name, Some(loopback));
    let verified = pg::connect(&by_name, &tls)
        .await
        .expect("verify-full by name");
    let encrypted: bool = verified
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(encrypted);

    let by_address = at(&admin, "127.0.0.1", None);
    assert!(
        pg::connect(&by_address, &tls).await.is_err(),
        "the certificate does not name 127.0.0.1"
    );
    assert!(
        pg::connect(&by_name, &PgTls::from(TlsMode::VerifyFull))
            .await
            .is_err(),
        "the web PKI roots do not vouch for the test cluster"
    );
    let require = pg::connect(&by_address, &PgTls::from(TlsMode::Require))
        .await
        .expect("require encrypts without verifying");
    let encrypted: bool = require
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(encrypted);
}
