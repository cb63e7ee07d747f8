//! EmailSender adapters for running without a mail service account: plain SMTP to a catcher the operator
//! runs (`VAULT_EMAIL_SMTP_URL`, e.g. Mailpit on `smtp://127.0.0.1:1025`), or the vault's own log. The SMTP
//! server is the operator's, never a tenant's, so it needs no address checks; it gets no TLS and no
//! authentication because it is meant for loopback catchers, not for relaying mail.

use std::time::Duration;

use async_trait::async_trait;
use ledgix_core::notify::{EmailSender, OutboundEmail, SendError};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// One SMTP conversation's deadline.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SmtpEmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for SmtpEmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpEmailSender").finish_non_exhaustive()
    }
}

impl SmtpEmailSender {
    /// `smtp://host[:port]` (port 25 when left out).
    pub fn new(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("VAULT_EMAIL_SMTP_URL: {e}"))?;
        if parsed.scheme() != "smtp" || !parsed.username().is_empty() || parsed.password().is_some()
        {
            return Err(
                "VAULT_EMAIL_SMTP_URL must be smtp://host[:port] (plain SMTP to a local catcher, no credentials)"
                    .into(),
            );
        }
        let host = parsed
            .host_str()
            .ok_or("VAULT_EMAIL_SMTP_URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(parsed.port().unwrap_or(25))
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(SmtpEmailSender { transport })
    }
}

fn mailbox(address: &str) -> Result<Mailbox, SendError> {
    address
        .parse()
        .map_err(|e| SendError::Rejected(format!("{address}: {e}")))
}

#[async_trait]
impl EmailSender for SmtpEmailSender {
    async fn send(&self, email: &OutboundEmail) -> Result<(), SendError> {
        let mut builder = lettre::Message::builder()
            .from(mailbox(&email.from)?)
            .subject(email.subject.as_str())
            .header(ContentType::TEXT_PLAIN);
        for to in &email.to {
            builder = builder.to(mailbox(to)?);
        }
        let message = builder
            .body(email.text.clone())
            .map_err(|e| SendError::Rejected(e.to_string()))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // The server answered with a refusal (4xx or 5xx): its code and text.
            Err(e) if e.status().is_some() => Err(SendError::Rejected(e.to_string())),
            Err(e) => Err(SendError::Transport(e.to_string())),
        }
    }
}

/// `ledgix dev` without a catcher: the email is written to the log (the "printed" transport), and counts as
/// delivered.
#[derive(Debug, Default)]
pub struct LogEmailSender;

#[async_trait]
impl EmailSender for LogEmailSender {
    async fn send(&self, email: &OutboundEmail) -> Result<(), SendError> {
        tracing::info!(
            email_from = %email.from,
            email_to = %email.to.join(", "),
            email_subject = %email.subject,
            email_text = %email.text,
            "email printed, not sent (set VAULT_EMAIL_SMTP_URL to send it to an SMTP catcher)"
        );
        Ok(())
    }
}
