//! Okta's error object (`errorCode`, `errorSummary`, `errorLink`, `errorId`, `errorCauses`) and the
//! HTTP status each code comes with.

use axum::http::StatusCode;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaError {
    #[serde(skip)]
    pub status: u16,
    pub error_code: &'static str,
    pub error_summary: String,
    pub error_link: &'static str,
    pub error_id: String,
    pub error_causes: Vec<ErrorCause>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCause {
    pub error_summary: String,
}

impl OktaError {
    fn new(status: u16, code: &'static str, summary: impl Into<String>) -> Self {
        OktaError {
            status,
            error_code: code,
            error_summary: summary.into(),
            // Okta currently sets errorLink to the code itself.
            error_link: code,
            error_id: format!("oae{:020x}", next_error_id()),
            error_causes: Vec::new(),
        }
    }

    pub fn validation(summary: impl Into<String>, cause: impl Into<String>) -> Self {
        let mut e = OktaError::new(400, "E0000001", summary);
        e.error_causes.push(ErrorCause {
            error_summary: cause.into(),
        });
        e
    }
    pub fn invalid_parameter(summary: impl Into<String>) -> Self {
        OktaError::new(400, "E0000053", summary)
    }
    pub fn unsupported_operator(summary: impl Into<String>) -> Self {
        OktaError::new(400, "E0000031", summary)
    }
    pub fn invalid_token() -> Self {
        OktaError::new(401, "E0000011", "Invalid token provided")
    }
    pub fn forbidden() -> Self {
        OktaError::new(
            403,
            "E0000006",
            "You do not have permission to perform the requested action",
        )
    }
    /// A feature the org does not have (Identity Threat Protection's User Risk API elsewhere).
    pub fn feature_not_enabled() -> Self {
        OktaError::new(
            401,
            "E0000015",
            "You do not have permission to access the feature you are requesting",
        )
    }
    pub fn malformed_body(detail: impl Into<String>) -> Self {
        let mut e = OktaError::new(400, "E0000003", "The request body was not well-formed.");
        e.error_causes.push(ErrorCause {
            error_summary: detail.into(),
        });
        e
    }
    pub fn not_found(what: &str) -> Self {
        OktaError::new(404, "E0000007", format!("Not found: {what}"))
    }
    pub fn rate_limited() -> Self {
        OktaError::new(
            429,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
        )
    }
    pub fn timeout() -> Self {
        OktaError::new(
            500,
            "E0000009",
            "Your last request took too long to complete. This is likely due to a load issue on our side.",
        )
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

fn next_error_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
