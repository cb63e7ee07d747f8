//! Bedrock Runtime failures as `ModelError`s, by the service's error code (the same codes for Converse and
//! InvokeModel), so the core retries what may pass (throttling, timeouts, unavailability) and sends to review
//! what cannot (a refused request).

use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use ledgix_core::ports::ModelError;

/// An SDK failure of any Bedrock Runtime operation.
pub(crate) fn model_error<E>(err: SdkError<E, HttpResponse>) -> ModelError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => by_code(
            service.err().code(),
            service.raw().status().as_u16(),
            detail,
        ),
        SdkError::TimeoutError(_) => ModelError::Timeout(detail),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => ModelError::Timeout(detail),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ModelError::Unavailable(detail)
        }
        // The request could not even be built (a missing field, a bad endpoint): resending cannot help.
        SdkError::ConstructionFailure(_) => ModelError::Rejected(detail),
        _ => ModelError::Unavailable(detail),
    }
}

/// A service error by its code; a code this list does not know is judged by its HTTP status.
fn by_code(code: Option<&str>, status: u16, detail: String) -> ModelError {
    match code {
        Some("ThrottlingException" | "ServiceQuotaExceededException") => {
            ModelError::Throttled(detail)
        }
        Some("ModelTimeoutException") => ModelError::Timeout(detail),
        Some(
            "ServiceUnavailableException" | "InternalServerException" | "ModelNotReadyException",
        ) => ModelError::Unavailable(detail),
        Some(
            "ValidationException"
            | "AccessDeniedException"
            | "ResourceNotFoundException"
            | "ModelErrorException",
        ) => ModelError::Rejected(detail),
        _ => match status {
            429 => ModelError::Throttled(detail),
            408 | 504 => ModelError::Timeout(detail),
            500..=599 => ModelError::Unavailable(detail),
            _ => ModelError::Rejected(detail),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: Option<&str>, status: u16) -> &'static str {
        match by_code(code, status, String::new()) {
            ModelError::Throttled(_) => "throttled",
            ModelError::Timeout(_) => "timeout",
            ModelError::Unavailable(_) => "unavailable",
            ModelError::Rejected(_) => "rejected",
            ModelError::InvalidOutput(_) => "invalid",
        }
    }

    #[test]
    fn service_errors_map_by_code() {
        for (code, status, expected) in [
            ("ThrottlingException", 429, "throttled"),
            ("ServiceQuotaExceededException", 400, "throttled"),
            ("ModelTimeoutException", 408, "timeout"),
            ("ServiceUnavailableException", 503, "unavailable"),
            ("InternalServerException", 500, "unavailable"),
            ("ModelNotReadyException", 429, "unavailable"),
            ("ValidationException", 400, "rejected"),
            ("AccessDeniedException", 403, "rejected"),
            ("ResourceNotFoundException", 404, "rejected"),
            ("ModelErrorException", 424, "rejected"),
        ] {
            assert_eq!(kind(Some(code), status), expected, "{code}");
        }
    }

    #[test]
    fn unknown_codes_map_by_status() {
        assert_eq!(kind(Some("SomethingNewException"), 429), "throttled");
        assert_eq!(kind(None, 504), "timeout");
        assert_eq!(kind(None, 502), "unavailable");
        assert_eq!(kind(Some("UnrecognizedClientException"), 403), "rejected");
        assert_eq!(kind(None, 400), "rejected");
    }

    #[test]
    fn service_errors_are_read_from_the_sdk_error() {
        use aws_sdk_bedrockruntime::error::ErrorMetadata;
        use aws_sdk_bedrockruntime::operation::invoke_model::InvokeModelError;
        use aws_smithy_types::body::SdkBody;
        let raw = |status: u16| {
            HttpResponse::try_from(
                http::Response::builder()
                    .status(status)
                    .body(SdkBody::empty())
                    .unwrap(),
            )
            .unwrap()
        };
        let service = |code: &str| {
            InvokeModelError::generic(
                ErrorMetadata::builder()
                    .code(code)
                    .message("details")
                    .build(),
            )
        };
        let err = SdkError::service_error(service("ThrottlingException"), raw(429));
        assert!(matches!(model_error(err), ModelError::Throttled(m) if m.contains("details")));
        let err = SdkError::service_error(service("ValidationException"), raw(400));
        assert!(matches!(model_error(err), ModelError::Rejected(_)));
        let err = SdkError::service_error(service("NewException"), raw(503));
        assert!(matches!(model_error(err), ModelError::Unavailable(_)));
    }

    #[test]
    fn transport_failures_are_transient() {
        use aws_sdk_bedrockruntime::error::ConnectorError;
        use aws_sdk_bedrockruntime::operation::converse::ConverseError;
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err: SdkError<ConverseError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
        assert!(matches!(model_error(err), ModelError::Unavailable(_)));
        let slow = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        let err: SdkError<ConverseError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::timeout(Box::new(slow)));
        assert!(matches!(model_error(err), ModelError::Timeout(_)));
        let err: SdkError<ConverseError, HttpResponse> =
            SdkError::timeout_error("operation timed out");
        assert!(matches!(model_error(err), ModelError::Timeout(_)));
        let err: SdkError<ConverseError, HttpResponse> =
            SdkError::construction_failure("no model id");
        assert!(matches!(model_error(err), ModelError::Rejected(_)));
    }
}
