//! `ClientError`: what went wrong with one BentoCloud API operation, typed by [`ErrorKind`].
//!
//! This module classifies HTTP outcomes (status code, error body) into kinds and renders them as
//! `{operation}: HTTP {status}: {message}`. It never sends requests and never decides retries
//! (that is `client::retry`); turning errors into Terraform diagnostics is `crate::diag`'s job.
//! The API token never appears here: messages come from the server's body or the transport.

use std::fmt;

use super::retry::{self, StatusRetry};

/// The broad class of a failure, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 404, or 400 whose body contains "record not found".
    NotFound,
    /// 401 or 403: the API token is missing, wrong, or lacks permission.
    Unauthorized,
    /// 400 or 422: the server rejected the request as invalid.
    BadRequest,
    /// 409.
    Conflict,
    /// 413.
    TooLarge,
    /// 429.
    RateLimited,
    /// 5xx.
    Server,
    /// Any other non-200 status (including other 2xx: only 200 is success).
    Unexpected,
    /// Connect error, timeout, connection reset: no HTTP status was received. Retryable.
    Transport,
    /// The server's TLS certificate was rejected (unknown issuer, wrong host name, expired):
    /// repeating the request cannot help; the message names the fix (`SSL_CERT_FILE`, ...).
    Certificate,
    /// The endpoint cannot be reached: its host name does not resolve, or nothing listens
    /// there (connection refused) while it has never answered this client. Not retryable; the
    /// message says to check the endpoint setting.
    Unreachable,
    /// A 200 whose body is not the expected JSON.
    Decode,
    /// The client configuration is invalid (endpoint, token, limits).
    Config,
}

impl ErrorKind {
    /// The kind an HTTP status maps to. `body` is needed for the "400 record not found" case.
    pub fn from_status(status: u16, body: &str) -> ErrorKind {
        match status {
            404 => ErrorKind::NotFound,
            400 if body.to_ascii_lowercase().contains("record not found") => ErrorKind::NotFound,
            400 | 422 => ErrorKind::BadRequest,
            401 | 403 => ErrorKind::Unauthorized,
            409 => ErrorKind::Conflict,
            413 => ErrorKind::TooLarge,
            429 => ErrorKind::RateLimited,
            500..=599 => ErrorKind::Server,
            _ => ErrorKind::Unexpected,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::BadRequest => "bad request",
            ErrorKind::Conflict => "conflict",
            ErrorKind::TooLarge => "too large",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::Server => "server error",
            ErrorKind::Unexpected => "unexpected response",
            ErrorKind::Transport => "transport error",
            ErrorKind::Certificate => "certificate error",
            ErrorKind::Unreachable => "endpoint unreachable",
            ErrorKind::Decode => "decode error",
            ErrorKind::Config => "configuration error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed API operation.
///
/// `Display` is `{operation}: HTTP {status}: {message}`, or `{operation}: {message}` when no
/// status was received (transport, decode and configuration errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ClientError {
    /// The operation and its object, e.g. `update deployment "iris" in cluster "local-east"`.
    pub operation: String,
    pub kind: ErrorKind,
    /// The HTTP status, when one was received.
    pub status: Option<u16>,
    /// The server's `{"error": ...}` / `{"message": ...}` text, else its raw body (truncated);
    /// for transport errors, the cause.
    pub message: String,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{}: HTTP {status}: {}", self.operation, self.message),
            None => write!(f, "{}: {}", self.operation, self.message),
        }
    }
}

impl ClientError {
    pub fn new(
        operation: impl Into<String>,
        kind: ErrorKind,
        status: Option<u16>,
        message: impl Into<String>,
    ) -> ClientError {
        ClientError {
            operation: operation.into(),
            kind,
            status,
            message: message.into(),
        }
    }

    /// A non-200 response: the kind from the status, the message from the body.
    pub fn from_response(operation: impl Into<String>, status: u16, body: &[u8]) -> ClientError {
        let text = String::from_utf8_lossy(body);
        ClientError::new(
            operation,
            ErrorKind::from_status(status, &text),
            Some(status),
            message_from_body(status, &text),
        )
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The server's message (or the transport cause), without the operation.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn operation(&self) -> &str {
        &self.operation
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// 401 or 403.
    pub fn is_unauthorized(&self) -> bool {
        self.kind == ErrorKind::Unauthorized
    }

    /// 409.
    pub fn is_conflict(&self) -> bool {
        self.kind == ErrorKind::Conflict
    }

    /// Whether trying the same request again later may succeed: transport failures, and the
    /// statuses the retry policy repeats (`retry::classify_status`: 429, 500, 502, 503, 504).
    /// A rejected certificate or an unreachable endpoint ([`ErrorKind::Certificate`],
    /// [`ErrorKind::Unreachable`]) is a configuration problem, not transient.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            ErrorKind::Transport => true,
            ErrorKind::RateLimited | ErrorKind::Server => self
                .status
                .is_some_and(|s| retry::classify_status(s) != StatusRetry::Final),
            _ => false,
        }
    }

    /// A 400/409 saying the object already exists (e.g. a create that had in fact succeeded).
    pub fn is_already_exists(&self) -> bool {
        matches!(self.kind, ErrorKind::BadRequest | ErrorKind::Conflict)
            && self.message.to_ascii_lowercase().contains("already exist")
    }
}

/// Longest body excerpt kept in a message.
pub(crate) const MAX_MESSAGE_CHARS: usize = 500;

/// The human part of an error body: `error` or `message` of a JSON object, else the raw text,
/// truncated to [`MAX_MESSAGE_CHARS`]; an empty body gives the status' reason phrase.
pub(crate) fn message_from_body(status: u16, text: &str) -> String {
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(text) {
        for key in ["error", "message"] {
            if let Some(serde_json::Value::String(s)) = obj.get(key) {
                if !s.trim().is_empty() {
                    return truncate(s.trim());
                }
            }
        }
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no reason given");
        return format!("{reason} (empty response body)");
    }
    truncate(trimmed)
}

pub(crate) fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}… (truncated)", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests;
