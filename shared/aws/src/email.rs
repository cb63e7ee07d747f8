//! The EmailSender port over SES v2 `SendEmail`: one plain-text message per delivery, to every recipient.
//! SES checks the sender against the account's verified identities (and, in the sandbox, the recipients too);
//! the IAM role allows `ses:SendEmail` on the configured identities only.

use async_trait::async_trait;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use ledgix_core::notify::{EmailSender, OutboundEmail, SendError};

pub struct SesEmailSender {
    client: aws_sdk_sesv2::Client,
}

impl SesEmailSender {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SesEmailSender {
            client: aws_sdk_sesv2::Client::new(sdk),
        }
    }
}

fn utf8(data: &str) -> Result<Content, SendError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| SendError::Rejected(e.to_string()))
}

#[async_trait]
impl EmailSender for SesEmailSender {
    async fn send(&self, email: &OutboundEmail) -> Result<(), SendError> {
        let message = Message::builder()
            .subject(utf8(&email.subject)?)
            .body(Body::builder().text(utf8(&email.text)?).build())
            .build();
        let result = self
            .client
            .send_email()
            .from_email_address(&email.from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(email.to.clone()))
                    .build(),
            )
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // SES answered: its error code and message (they name no secret).
            Err(SdkError::ServiceError(e)) => Err(SendError::Rejected(format!(
                "{}: {}",
                e.err().code().unwrap_or("SES error"),
                e.err().message().unwrap_or("")
            ))),
            Err(e) => Err(SendError::Transport(DisplayErrorContext(&e).to_string())),
        }
    }
}
