//! Typed errors: [`ApiError`] (an HTTP answer `{"error": {"code", "message"}}`) and
//! [`SetupError`] (the agent cannot start).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to an HTTP caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No or wrong pairing token.
    #[error("missing or wrong pairing token (send Authorization: Bearer <token>)")]
    Unauthorized,
    /// The request's `Origin` is not in the allow-list.
    #[error("origin {0} is not allowed")]
    OriginNotAllowed(String),
    /// No such route.
    #[error("no such endpoint")]
    NotFound,
    /// Wrong method for the route.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is not `application/json`.
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    /// The body is larger than the limit.
    #[error("the body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// The body is not JSON.
    #[error("malformed JSON: {0}")]
    InvalidJson(String),
    /// The JSON does not describe a valid request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The agent already holds (or is creating) this wallet.
    #[error("wallet {0} already exists on this agent (or is being created)")]
    WalletExists(String),
    /// Too many jobs are running.
    #[error("too many wallet creations are running (at most {0}); retry later")]
    TooManyJobs(usize),
    /// The agent holds no enrollment of this id (never made here, or used).
    #[error("unknown enrollment {0} (enroll again)")]
    UnknownEnrollment(String),
    /// The enrollment was made with other device or cosigner identities.
    #[error("enrollment {0} was made for another device or cosigner")]
    EnrollmentMismatch(String),
    /// The agent already holds (or is making) this enrollment.
    #[error("enrollment {0} already exists on this agent (or is being made)")]
    EnrollmentExists(String),
    /// Unknown (or expired) job id.
    #[error("unknown job {0} (finished jobs expire)")]
    UnknownJob(String),
    /// Unknown (or expired) request id.
    #[error("unknown request {0} (finished requests expire)")]
    UnknownRequest(String),
    /// The request was already confirmed, rejected or expired.
    #[error("request {id} is not awaiting confirmation (it is {state:?})")]
    RequestNotAwaiting {
        /// The request.
        id: String,
        /// Where it is.
        state: crate::requests::RequestState,
    },
    /// Too many requests await the user's confirmation.
    #[error("{0} requests already await confirmation on the agent; confirm or reject them first")]
    TooManyRequests(usize),
    /// The agent holds no share of this wallet.
    #[error("this agent holds no share of wallet {0}")]
    UnknownWallet(String),
    /// An admin endpoint without the admin token (or from a browser).
    #[error("admin endpoints need the admin token from the agent's data directory, and no browser Origin")]
    AdminUnauthorized,
    /// A well-formed request with a value that is wrong (a proof of possession that
    /// does not verify, a malformed signature).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A bug or an OS failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::OriginNotAllowed(_) => "origin_not_allowed",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::BodyTooLarge(_) => "body_too_large",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::WalletExists(_) => "wallet_exists",
            ApiError::TooManyJobs(_) => "too_many_jobs",
            ApiError::UnknownJob(_) => "unknown_job",
            ApiError::UnknownEnrollment(_) => "unknown_enrollment",
            ApiError::EnrollmentMismatch(_) => "enrollment_mismatch",
            ApiError::EnrollmentExists(_) => "enrollment_exists",
            ApiError::UnknownRequest(_) => "unknown_request",
            ApiError::RequestNotAwaiting { .. } => "request_not_awaiting",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::UnknownWallet(_) => "unknown_wallet",
            ApiError::AdminUnauthorized => "admin_unauthorized",
            ApiError::InvalidInput(_) => "invalid_input",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound
            | ApiError::UnknownJob(_)
            | ApiError::UnknownEnrollment(_)
            | ApiError::UnknownRequest(_)
            | ApiError::UnknownWallet(_) => StatusCode::NOT_FOUND,
            ApiError::RequestNotAwaiting { .. } => StatusCode::CONFLICT,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::AdminUnauthorized => StatusCode::UNAUTHORIZED,
            ApiError::EnrollmentMismatch(_) => StatusCode::FORBIDDEN,
            ApiError::EnrollmentExists(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidJson(_) | ApiError::InvalidRequest(_) | ApiError::InvalidInput(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::WalletExists(_) => StatusCode::CONFLICT,
            ApiError::TooManyJobs(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON error object.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code().to_string(),
            message: self.to_string(),
        }
    }
}

/// `{"code", "message"}` of an error (HTTP errors and failed jobs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: &'a ErrorBody,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let text = serde_json::to_string(&Envelope { error: &body })
            .unwrap_or_else(|_| "{\"error\":{\"code\":\"internal\",\"message\":\"\"}}".into());
        let mut resp = (self.status(), text).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(self, ApiError::Unauthorized | ApiError::AdminUnauthorized) {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Why the agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A setting is invalid.
    #[error("configuration error: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The identity file does not open with the passphrase, or is damaged.
    #[error("identity file {path}: {reason}")]
    Identity {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl SetupError {
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        SetupError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}
