//! The one error type of the HTTP API and its mapping to `{"error": "..."}` responses with the
//! status codes BentoCloud uses (404 carries "record not found"; 5xx carries `x-trace-id`).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::store::StoreError;
use crate::api::ErrorBody;

/// What handlers and the domain modules return.
pub type Result<T> = std::result::Result<T, ApiError>;

/// An API failure. Each variant fixes the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 401: missing or wrong token.
    Unauthorized,
    /// 404: the message must say what was not found; ": record not found" is appended.
    NotFound(String),
    /// 400: validation failures and conflicts.
    BadRequest(String),
    /// 413: body over the limit.
    TooLarge(String),
    /// 503: nothing can serve the request right now (endpoint with no ready replica).
    Unavailable(String),
    /// 500: a bug or a storage failure; never caused by user input.
    Internal(String),
}

impl ApiError {
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }
    pub fn bad(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        Self::Internal(msg.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Unauthorized => "invalid api token".into(),
            Self::NotFound(m) => format!("{m}: record not found"),
            Self::BadRequest(m) | Self::TooLarge(m) | Self::Unavailable(m) => m.clone(),
            Self::Internal(m) => format!("internal error: {m}"),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// The store's failures keep the responses they had: a missing record is a 404, anything else
/// a 500 naming the storage problem.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Inconsistent(m) => Self::Internal(m),
            e @ (StoreError::Sqlite(_) | StoreError::Json(_)) => Self::Internal(e.to_string()),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Internal(format!("storage: {e}"))
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("stored json: {e}"))
    }
}

/// A random id for `x-trace-id`.
pub fn trace_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// `{"error": msg}` with the given status; 5xx responses get an `x-trace-id` header.
pub fn json_error(status: StatusCode, msg: String) -> Response {
    let body = serde_json::to_string(&ErrorBody { error: msg })
        .unwrap_or_else(|_| "{\"error\":\"error\"}".into());
    let mut resp = (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if status.is_server_error() {
        if let Ok(v) = HeaderValue::from_str(&trace_id()) {
            resp.headers_mut().insert("x-trace-id", v);
        }
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(m) = &self {
            tracing::error!(error = %m, "internal error");
        }
        json_error(self.status(), self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages() {
        let e = ApiError::not_found("deployment \"x\"");
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert!(e.message().contains("record not found"));
        let r = ApiError::internal("boom").into_response();
        assert!(r.headers().contains_key("x-trace-id"));
        let r = ApiError::bad("nope").into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(!r.headers().contains_key("x-trace-id"));
    }
}
