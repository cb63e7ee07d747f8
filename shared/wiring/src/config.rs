//! Configuration from the environment, with the seed's variable names and defaults. A bad value stops
//! start-up with one clear line naming the variable.

use std::path::PathBuf;
use std::time::Duration;

use ledgix_core::config::{
    VaultSettings, DEFAULT_ANCHOR_PREFIX, DEFAULT_JWT_AUDIENCE, DEFAULT_JWT_ISSUER, DEFAULT_KEY_ID,
    DEFAULT_LOG_ORIGIN, DEFAULT_MAX_POLICIES_PER_TENANT, DEFAULT_MINT_MAX_AGE_SECONDS,
};
use ledgix_core::judge;
use ledgix_core::ratelimit::RateLimit;
use ledgix_core::rego_guard::{self, RegoLimits};

use crate::judge::{JudgeConfig, JudgeVariables, DEFAULT_JUDGE_TIMEOUT_SECONDS};

/// The shortest administration key the vault starts with (LEDGIX_ADMIN_API_KEY).
pub const MIN_ADMIN_API_KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Where state lives: one local process, or AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Aws,
}

/// VAULT_ADMIN_AUTH: how administration routes are admitted (ledgix_api::admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAuth {
    /// The operator's key in `X-Admin-API-Key` (LEDGIX_ADMIN_API_KEY).
    Header,
    /// Only requests API Gateway authorised with IAM (SigV4); the admin key is not consulted.
    Iam,
    /// Administration routes are not served.
    Off,
}

/// Default of VAULT_CLIENT_RATE_LIMIT_RPS / _BURST: generous for one host running many agents (the per-key
/// limit is 20/40), small enough that wrong keys from one address cannot keep key lookup busy.
pub const DEFAULT_CLIENT_RATE_LIMIT: RateLimit = RateLimit {
    rps: 100,
    burst: 200,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerBackend {
    Local,
    /// The KMS root key signs everything.
    AwsKms,
    /// The KMS root key signs checkpoints and certifies per-period keys that sign tokens and receipts.
    AwsKmsDelegated,
}

impl SignerBackend {
    pub fn uses_kms(&self) -> bool {
        matches!(self, SignerBackend::AwsKms | SignerBackend::AwsKmsDelegated)
    }
}

/// Values from the AWS_SECRET_NAME bootstrap secret, merged over the environment. Debug shows names only.
#[derive(Clone, Default)]
pub struct Overlay(pub std::collections::HashMap<String, String>);

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Overlay {
    /// The merged value of a variable: the bootstrap secret wins over the environment.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub overlay: Overlay,
    pub backend: Backend,
    pub signer_backend: SignerBackend,
    pub private_key_file: Option<PathBuf>,
    pub private_key_base64: Option<String>,
    pub kms_key_id: Option<String>,
    pub key_id: String,
    pub jwt_ttl_seconds: i64,
    /// VAULT_MINT_MAX_AGE_SECONDS.
    pub mint_max_age_seconds: i64,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub cors_allowed_origin: Option<String>,
    /// VAULT_PUBLIC_URL: the vault's public base URL, for links to the reviewer page (`ledgix dev`: its own
    /// address when unset).
    pub public_url: Option<String>,
    pub rate_limit: RateLimit,
    /// VAULT_CLIENT_RATE_LIMIT_RPS / _BURST: per client address, before key lookup (0 RPS: off).
    pub client_rate_limit: RateLimit,
    /// VAULT_ADMIN_AUTH.
    pub admin_auth: AdminAuth,
    pub async_workers: usize,
    pub async_queue_size: usize,
    pub allow_stub_judge: bool,
    /// VAULT_JUDGE_*: the policy judge (`judge.rs`).
    pub judge: JudgeConfig,
    pub admin_api_key: Option<String>,
    pub data_dir: PathBuf,
    pub policy_cache_ttl: Duration,
    pub auth_cache_ttl: Duration,
    /// VAULT_REGO_TIME_LIMIT_MS, VAULT_REGO_MEMORY_LIMIT_BYTES.
    pub rego_limits: RegoLimits,
    /// VAULT_MAX_POLICIES_PER_TENANT.
    pub max_policies_per_tenant: usize,
    pub emf_metrics: bool,
    /// How notifications go out: webhook address policy, email transport and senders.
    pub notify: NotifyConfig,
    pub anchor_interval: Duration,
    /// 32-byte AES-256-GCM key (base64) for payloads at rest.
    pub transport_key_base64: Option<String>,
    pub anchor_batch_size: usize,
    /// VAULT_LEDGER_ANCHOR_CONCURRENCY: tenants sealed at once in a round.
    pub anchor_concurrency: usize,
    /// VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS: how often anchor-export is invoked (EventBridge Scheduler's
    /// minimum is a minute); each invocation runs one round per anchor interval in that period.
    pub anchor_schedule: Duration,
    pub anchor_prefix: String,
    pub log_origin_prefix: String,
    /// `ledgix dev`: generate a signing key under the data directory when none is configured.
    pub dev_mode: bool,
    /// Whether this process exports checkpoints (and so needs the anchor bucket). The request-serving
    /// functions turn it off: only anchor-export and `ledgix dev` touch the bucket.
    pub exports_anchors: bool,
}

/// How notifications go out (the notifier function reads only this).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// VAULT_ALLOW_PRIVATE_WEBHOOK_URLS (development only, off by default): webhooks may reach loopback
    /// addresses, over http too. Link-local, metadata and private addresses stay refused.
    pub allow_loopback_webhooks: bool,
    /// VAULT_EMAIL_SMTP_URL: send email by plain SMTP to this catcher instead of SES (or the log).
    pub email_smtp_url: Option<String>,
    /// VAULT_EMAIL_FROM_IDENTITIES: the addresses and domains emails may be sent from.
    pub email_from_identities: Vec<String>,
}

impl NotifyConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let email_smtp_url = env.get("VAULT_EMAIL_SMTP_URL");
        if let Some(url) = &email_smtp_url {
            ledgix_notify::email::SmtpEmailSender::new(url).map_err(ConfigError)?;
        }
        let email_from_identities: Vec<String> = env
            .get("VAULT_EMAIL_FROM_IDENTITIES")
            .unwrap_or_default()
            .split(',')
            .map(|entry| entry.trim().to_ascii_lowercase())
            .filter(|entry| !entry.is_empty())
            .collect();
        for identity in &email_from_identities {
            // An address, or a domain: checked as the address of a made-up local part.
            let as_address = match identity.contains('@') {
                true => identity.clone(),
                false => format!("sender@{identity}"),
            };
            ledgix_core::notify::email::check_address(&as_address).map_err(|why| {
                ConfigError(format!(
                    "VAULT_EMAIL_FROM_IDENTITIES: {identity:?} is neither an address nor a domain ({why})"
                ))
            })?;
        }
        Ok(NotifyConfig {
            allow_loopback_webhooks: env.boolean("VAULT_ALLOW_PRIVATE_WEBHOOK_URLS", false)?,
            email_smtp_url,
            email_from_identities,
        })
    }
}

/// Reads variables from a lookup function, so tests need not touch the process environment.
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_string())
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError(format!("{name}={v:?} is not a valid number"))),
        }
    }

    pub(crate) fn boolean(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self
            .get(name)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(v) => Err(ConfigError(format!("{name}={v:?} must be true or false"))),
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok(), false)
    }

    /// `dev_defaults`: `ledgix dev` allows the stub judge unless told otherwise.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        dev_defaults: bool,
    ) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let signer_backend = match env.string("VAULT_SIGNER_BACKEND", "local").as_str() {
            "local" => SignerBackend::Local,
            "aws_kms" => SignerBackend::AwsKms,
            "aws_kms_delegated" => SignerBackend::AwsKmsDelegated,
            other => {
                return Err(ConfigError(format!(
                    "VAULT_SIGNER_BACKEND={other:?} must be local, aws_kms or aws_kms_delegated"
                )))
            }
        };
        let allow_stub_judge = env.boolean("VAULT_ALLOW_STUB_JUDGE", dev_defaults)?;
        let jwt_ttl_seconds: i64 = env.number("VAULT_JWT_TTL", 300)?;
        if !(1..=86_400).contains(&jwt_ttl_seconds) {
            return Err(ConfigError(format!(
                "VAULT_JWT_TTL={jwt_ttl_seconds} must be between 1 and 86400 seconds"
            )));
        }
        let mint_max_age_seconds: i64 =
            env.number("VAULT_MINT_MAX_AGE_SECONDS", DEFAULT_MINT_MAX_AGE_SECONDS)?;
        if !(1..=31_536_000).contains(&mint_max_age_seconds) {
            return Err(ConfigError(format!(
                "VAULT_MINT_MAX_AGE_SECONDS={mint_max_age_seconds} must be between 1 and 31536000 seconds"
            )));
        }
        let rps: u32 = env.number("VAULT_RATE_LIMIT_RPS", 20)?;
        let burst: u32 = env.number("VAULT_RATE_LIMIT_BURST", 40)?;
        let client_rps: u32 =
            env.number("VAULT_CLIENT_RATE_LIMIT_RPS", DEFAULT_CLIENT_RATE_LIMIT.rps)?;
        let client_burst: u32 = env.number(
            "VAULT_CLIENT_RATE_LIMIT_BURST",
            DEFAULT_CLIENT_RATE_LIMIT.burst,
        )?;
        let admin_auth = match env.string("VAULT_ADMIN_AUTH", "header").as_str() {
            "header" => AdminAuth::Header,
            "iam" => AdminAuth::Iam,
            "off" => AdminAuth::Off,
            other => {
                return Err(ConfigError(format!(
                    "VAULT_ADMIN_AUTH={other:?} must be header, iam or off"
                )))
            }
        };
        let backend = match env.get("VAULT_BACKEND").as_deref() {
            Some("aws") => Backend::Aws,
            Some("embedded") => Backend::Embedded,
            // Inside Lambda the default is AWS: a function's local disk does not outlive it.
            None if env.get("AWS_LAMBDA_FUNCTION_NAME").is_some() => Backend::Aws,
            None => Backend::Embedded,
            Some(other) => {
                return Err(ConfigError(format!(
                    "VAULT_BACKEND={other:?} must be embedded or aws"
                )))
            }
        };
        let config = Config {
            overlay: Overlay::default(),
            backend,
            signer_backend,
            private_key_file: env.get("VAULT_PRIVATE_KEY_FILE").map(PathBuf::from),
            private_key_base64: env.get("VAULT_PRIVATE_KEY_BASE64"),
            kms_key_id: env.get("VAULT_KMS_KEY_ID"),
            key_id: env.string("VAULT_KEY_ID", DEFAULT_KEY_ID),
            jwt_ttl_seconds,
            mint_max_age_seconds,
            jwt_issuer: env.string("VAULT_JWT_ISSUER", DEFAULT_JWT_ISSUER),
            jwt_audience: env.string("VAULT_JWT_AUDIENCE", DEFAULT_JWT_AUDIENCE),
            cors_allowed_origin: env.get("VAULT_CORS_ALLOWED_ORIGIN"),
            public_url: match env.get("VAULT_PUBLIC_URL") {
                None => None,
                Some(raw) => Some(public_url(&raw)?),
            },
            rate_limit: RateLimit {
                rps,
                burst: burst.max(1),
            },
            client_rate_limit: RateLimit {
                rps: client_rps,
                burst: client_burst.max(1),
            },
            admin_auth,
            async_workers: env.number("VAULT_CLEARANCE_ASYNC_WORKERS", 16)?,
            async_queue_size: env.number("VAULT_CLEARANCE_ASYNC_QUEUE_SIZE", 2048)?,
            allow_stub_judge,
            judge: JudgeConfig::from_variables(JudgeVariables {
                backend: env.get("VAULT_JUDGE_BACKEND"),
                allow_stub: allow_stub_judge,
                model: env.get("VAULT_JUDGE_MODEL"),
                embedding_model: env.get("VAULT_EMBEDDING_MODEL"),
                url: env.get("VAULT_JUDGE_URL"),
                api_key: env.get("VAULT_JUDGE_API_KEY"),
                timeout_seconds: env
                    .number("VAULT_JUDGE_TIMEOUT_SECONDS", DEFAULT_JUDGE_TIMEOUT_SECONDS)?,
                retry_budget_seconds: env.number(
                    "VAULT_JUDGE_RETRY_BUDGET_SECONDS",
                    judge::DEFAULT_JUDGE_RETRY_BUDGET_SECONDS,
                )?,
                tenant_concurrency: env.number(
                    "VAULT_JUDGE_TENANT_CONCURRENCY",
                    judge::DEFAULT_JUDGE_TENANT_CONCURRENCY,
                )?,
                policy_budget_chars: env.number(
                    "VAULT_JUDGE_POLICY_BUDGET_CHARS",
                    judge::DEFAULT_JUDGE_POLICY_BUDGET_CHARS,
                )?,
                top_k: env.number("VAULT_JUDGE_TOP_K", judge::DEFAULT_JUDGE_TOP_K)?,
            })?,
            admin_api_key: env.get("LEDGIX_ADMIN_API_KEY"),
            data_dir: PathBuf::from(env.string("VAULT_DATA_DIR", ".ledgix")),
            policy_cache_ttl: Duration::from_secs(env.number("VAULT_POLICY_CACHE_TTL_SECONDS", 5)?),
            auth_cache_ttl: Duration::from_secs(env.number("VAULT_AUTH_CACHE_TTL_SECONDS", 5)?),
            rego_limits: RegoLimits {
                time: Duration::from_millis(env.number(
                    "VAULT_REGO_TIME_LIMIT_MS",
                    rego_guard::DEFAULT_TIME_LIMIT.as_millis() as u64,
                )?),
                memory_bytes: env.number(
                    "VAULT_REGO_MEMORY_LIMIT_BYTES",
                    rego_guard::DEFAULT_MEMORY_LIMIT_BYTES,
                )?,
            },
            max_policies_per_tenant: env.number(
                "VAULT_MAX_POLICIES_PER_TENANT",
                DEFAULT_MAX_POLICIES_PER_TENANT,
            )?,
            notify: NotifyConfig::from_env(&env)?,
            emf_metrics: match env.get("VAULT_METRICS").as_deref() {
                // On by default inside Lambda, where CloudWatch reads EMF from the log stream.
                None => env.get("AWS_LAMBDA_FUNCTION_NAME").is_some(),
                Some("emf") => true,
                Some("off") => false,
                Some(other) => {
                    return Err(ConfigError(format!(
                        "VAULT_METRICS={other:?} must be emf or off"
                    )))
                }
            },
            transport_key_base64: env.get("VAULT_TRANSPORT_KEY_BASE64"),
            exports_anchors: true,
            anchor_interval: Duration::from_secs(
                env.number("VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS", 30)?,
            ),
            anchor_batch_size: env.number("VAULT_LEDGER_ANCHOR_BACKFILL_BATCH_SIZE", 500)?,
            anchor_concurrency: env.number(
                "VAULT_LEDGER_ANCHOR_CONCURRENCY",
                ledgix_core::config::DEFAULT_ANCHOR_CONCURRENCY,
            )?,
            anchor_schedule: Duration::from_secs(
                env.number("VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS", 60)?,
            ),
            anchor_prefix: env.string("VAULT_LEDGER_ANCHOR_PREFIX", DEFAULT_ANCHOR_PREFIX),
            log_origin_prefix: env.string("VAULT_LEDGER_LOG_ORIGIN", DEFAULT_LOG_ORIGIN),
            dev_mode: dev_defaults,
        };
        if config.anchor_interval.is_zero()
            || config.anchor_batch_size == 0
            || config.anchor_concurrency == 0
            || config.anchor_schedule.is_zero()
        {
            return Err(ConfigError(
                "VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS, _BACKFILL_BATCH_SIZE, _CONCURRENCY and _SCHEDULE_SECONDS must be positive".into(),
            ));
        }
        if config.rego_limits.time.is_zero()
            || config.rego_limits.memory_bytes == 0
            || config.max_policies_per_tenant == 0
        {
            return Err(ConfigError(
                "VAULT_REGO_TIME_LIMIT_MS, VAULT_REGO_MEMORY_LIMIT_BYTES and VAULT_MAX_POLICIES_PER_TENANT must be positive".into(),
            ));
        }
        if config.signer_backend.uses_kms() && config.kms_key_id.is_none() {
            return Err(ConfigError(
                "VAULT_SIGNER_BACKEND=aws_kms and aws_kms_delegated need VAULT_KMS_KEY_ID".into(),
            ));
        }

        if let Some(key) = &config.admin_api_key {
            // The length only, never the key: an operator key must not be guessable.
            if key.len() < MIN_ADMIN_API_KEY_BYTES {
                return Err(ConfigError(format!(
                    "LEDGIX_ADMIN_API_KEY is {} bytes; it must be at least {MIN_ADMIN_API_KEY_BYTES} (e.g. `openssl rand -base64 32`)",
                    key.len()
                )));
            }
        }
        if config.private_key_file.is_some() && config.private_key_base64.is_some() {
            return Err(ConfigError(
                "set only one of VAULT_PRIVATE_KEY_FILE and VAULT_PRIVATE_KEY_BASE64".into(),
            ));
        }
        Ok(config)
    }

    pub fn vault_settings(&self, admin_key_hash: Option<String>) -> VaultSettings {
        VaultSettings {
            jwt_issuer: self.jwt_issuer.clone(),
            jwt_audience: self.jwt_audience.clone(),
            jwt_ttl_seconds: self.jwt_ttl_seconds,
            mint_max_age_seconds: self.mint_max_age_seconds,
            rate_limit: self.rate_limit,
            admin_key_hash,
            policy_cache_ttl: self.policy_cache_ttl,
            auth_cache_ttl: self.auth_cache_ttl,
            ledger_mmd_seconds: self.anchor_interval.as_secs() as i64,
            anchor_batch_size: self.anchor_batch_size,
            anchor_concurrency: self.anchor_concurrency,
            log_origin_prefix: self.log_origin_prefix.clone(),
            rego_limits: self.rego_limits,
            max_policies_per_tenant: self.max_policies_per_tenant,
            judge: self.judge.settings,
            public_url: self.public_url.clone(),
        }
    }
}

/// An http(s) base URL without query, fragment or trailing slash.
fn public_url(raw: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError(format!("VAULT_PUBLIC_URL={raw:?} {why}"));
    let url = url::Url::parse(raw.trim()).map_err(|_| bad("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("must be an http or https URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("must have no query, fragment or credentials"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(
            move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            false,
        )
    }

    #[test]
    fn email_settings_name_an_smtp_catcher_and_sender_identities() {
        let c = config(&[
            ("VAULT_EMAIL_SMTP_URL", "smtp://127.0.0.1:1025"),
            (
                "VAULT_EMAIL_FROM_IDENTITIES",
                " Alerts.Example.com, ops@example.org ,",
            ),
        ])
        .expect("valid");
        assert_eq!(
            c.notify.email_smtp_url.as_deref(),
            Some("smtp://127.0.0.1:1025")
        );
        assert_eq!(
            c.notify.email_from_identities,
            ["alerts.example.com", "ops@example.org"]
        );
        for (name, bad) in [
            ("VAULT_EMAIL_SMTP_URL", "smtps://mail.example.com"),
            ("VAULT_EMAIL_SMTP_URL", "smtp://user:pw@127.0.0.1"),
            ("VAULT_EMAIL_FROM_IDENTITIES", "not a domain"),
            ("VAULT_EMAIL_FROM_IDENTITIES", "Ops <ops@example.org>"),
        ] {
            let e = config(&[(name, bad)]).expect_err(bad);
            assert!(e.0.contains(name), "{e:?}");
        }
    }

    #[test]
    fn the_public_url_is_a_plain_http_base() {
        assert_eq!(config(&[]).expect("valid").public_url, None);
        let c = config(&[("VAULT_PUBLIC_URL", "https://vault.example.com/")]).expect("valid");
        assert_eq!(c.public_url.as_deref(), Some("https://vault.example.com"));
        assert_eq!(
            c.vault_settings(None).public_url.as_deref(),
            Some("https://vault.example.com")
        );
        for bad in [
            "vault.example.com",
            "ftp://x.example",
            "https://x.example/?a=1",
            "https://u:p@x.example",
        ] {
            let e = config(&[("VAULT_PUBLIC_URL", bad)]).expect_err(bad);
            assert!(e.0.contains("VAULT_PUBLIC_URL"), "{e:?}");
        }
    }

    #[test]
    fn defaults_follow_the_seed() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.key_id, "vault-key-001");
        assert_eq!(c.jwt_ttl_seconds, 300);
        assert_eq!(c.mint_max_age_seconds, 3600);
        assert_eq!(c.rate_limit, RateLimit { rps: 20, burst: 40 });
        assert!(!c.allow_stub_judge);
        assert_eq!(c.client_rate_limit, DEFAULT_CLIENT_RATE_LIMIT);
        assert_eq!(c.admin_auth, AdminAuth::Header);
    }

    #[test]
    fn client_limit_and_admin_auth_settings() {
        let c = config(&[
            ("VAULT_CLIENT_RATE_LIMIT_RPS", "0"),
            ("VAULT_ADMIN_AUTH", "iam"),
        ])
        .expect("valid");
        assert!(!c.client_rate_limit.enabled(), "0 turns the limit off");
        assert_eq!(c.admin_auth, AdminAuth::Iam);
        let c = config(&[
            ("VAULT_CLIENT_RATE_LIMIT_RPS", "5"),
            ("VAULT_CLIENT_RATE_LIMIT_BURST", "7"),
            ("VAULT_ADMIN_AUTH", "off"),
        ])
        .expect("valid");
        assert_eq!(c.client_rate_limit, RateLimit { rps: 5, burst: 7 });
        assert_eq!(c.admin_auth, AdminAuth::Off);
        for (name, bad) in [
            ("VAULT_ADMIN_AUTH", "sigv4"),
            ("VAULT_CLIENT_RATE_LIMIT_RPS", "-1"),
            ("VAULT_CLIENT_RATE_LIMIT_BURST", "many"),
        ] {
            let err = config(&[(name, bad)]).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("VAULT_RATE_LIMIT_RPS", "lots")]).unwrap_err();
        assert!(err.to_string().contains("VAULT_RATE_LIMIT_RPS"));
        let err = config(&[("VAULT_SIGNER_BACKEND", "hsm")]).unwrap_err();
        assert!(err.to_string().contains("VAULT_SIGNER_BACKEND"));
        for bad in ["0", "-5", "soon"] {
            let err = config(&[("VAULT_MINT_MAX_AGE_SECONDS", bad)]).unwrap_err();
            assert!(
                err.to_string().contains("VAULT_MINT_MAX_AGE_SECONDS"),
                "{err}"
            );
        }
        let c = config(&[("VAULT_MINT_MAX_AGE_SECONDS", "2")]).expect("valid");
        assert_eq!(c.vault_settings(None).mint_max_age_seconds, 2);
    }

    #[test]
    fn short_admin_keys_are_refused_without_showing_them() {
        let short = "lva_too_short_0123456789abcdefg"; // 31 bytes
        assert_eq!(short.len(), MIN_ADMIN_API_KEY_BYTES - 1);
        let err = config(&[("LEDGIX_ADMIN_API_KEY", short)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("LEDGIX_ADMIN_API_KEY"), "{err}");
        assert!(err.contains("31 bytes"), "{err}");
        assert!(!err.contains(short), "the key is never shown: {err}");
        let long = "lva_long_enough_0123456789abcdefg"; // 33 bytes
        let c = config(&[("LEDGIX_ADMIN_API_KEY", long)]).expect("long enough");
        assert_eq!(c.admin_api_key.as_deref(), Some(long));
        // Blank is unset (no admin routes), not a short key.
        assert!(config(&[("LEDGIX_ADMIN_API_KEY", "  ")]).is_ok());
    }
}
