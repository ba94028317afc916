//! Tests of the error type: kinds from statuses, messages from bodies, and how an error reads.

use super::*;

#[test]
fn statuses_map_to_kinds() {
    assert_eq!(ErrorKind::from_status(404, ""), ErrorKind::NotFound);
    assert_eq!(
        ErrorKind::from_status(400, r#"{"error":"Record Not Found"}"#),
        ErrorKind::NotFound
    );
    assert_eq!(ErrorKind::from_status(400, "bad"), ErrorKind::BadRequest);
    assert_eq!(ErrorKind::from_status(422, ""), ErrorKind::BadRequest);
    assert_eq!(ErrorKind::from_status(401, ""), ErrorKind::Unauthorized);
    assert_eq!(ErrorKind::from_status(403, ""), ErrorKind::Unauthorized);
    assert_eq!(ErrorKind::from_status(409, ""), ErrorKind::Conflict);
    assert_eq!(ErrorKind::from_status(413, ""), ErrorKind::TooLarge);
    assert_eq!(ErrorKind::from_status(429, ""), ErrorKind::RateLimited);
    assert_eq!(ErrorKind::from_status(503, ""), ErrorKind::Server);
    assert_eq!(ErrorKind::from_status(201, ""), ErrorKind::Unexpected);
}

#[test]
fn message_prefers_error_then_message_then_raw_text() {
    assert_eq!(
        message_from_body(400, r#"{"error":"bad name"}"#),
        "bad name"
    );
    assert_eq!(
        message_from_body(403, r#"{"message":"no token"}"#),
        "no token"
    );
    assert_eq!(message_from_body(500, "boom"), "boom");
    assert!(message_from_body(502, "").contains("Bad Gateway"));
    let long = "x".repeat(2000);
    let m = message_from_body(500, &long);
    assert!(m.chars().count() < 520 && m.ends_with("(truncated)"), "{m}");
    let multibyte = "é".repeat(600);
    assert!(message_from_body(500, &multibyte).starts_with("éé"));
}

#[test]
fn display_has_operation_status_and_message() {
    let e = ClientError::from_response(
        "update deployment \"iris\" in cluster \"local-east\"",
        409,
        br#"{"error":"revision conflict"}"#,
    );
    assert_eq!(
        e.to_string(),
        "update deployment \"iris\" in cluster \"local-east\": HTTP 409: revision conflict"
    );
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(!e.is_retryable());
    let t = ClientError::new("get cluster \"x\"", ErrorKind::Transport, None, "timed out");
    assert_eq!(t.to_string(), "get cluster \"x\": timed out");
    assert!(t.is_retryable());
    assert!(ClientError::from_response("op", 503, b"").is_retryable());
    assert!(ClientError::from_response("op", 500, b"").is_retryable());
    assert!(!ClientError::from_response("op", 501, b"").is_retryable());
    for kind in [ErrorKind::Certificate, ErrorKind::Unreachable] {
        assert!(
            !ClientError::new("op", kind, None, "x").is_retryable(),
            "{kind}"
        );
    }
    assert!(ClientError::from_response(
        "op",
        400,
        br#"{"error":"deployment iris already exists"}"#
    )
    .is_already_exists());
}
