//! The one place errors become Terraform diagnostics: summary, detail and attribute path.
//!
//! Client and wait errors already name the operation, the deployment, the HTTP status and the
//! server's message (and never the API key); this module adds what the user should do next.

use tf_provider::{AttributePath, Diagnostics};

use crate::client::ClientError;
use crate::wait::WaitError;

/// Adds an error for a failed API call, at `path` (root when `None`).
pub fn api_error(
    diags: &mut Diagnostics,
    summary: &str,
    err: &ClientError,
    path: Option<AttributePath>,
) {
    let mut detail = err.to_string();
    if err.is_unauthorized() {
        detail.push_str(
            "\n\nBentoCloud rejected the API key: check `api_key` in the provider block or BENTO_CLOUD_API_KEY, or run `bentoml cloud login` again.",
        );
    } else if err.is_retryable() {
        detail.push_str("\n\nThis looks transient (the request was retried with back-off): run the command again.");
    }
    diags.error(summary.to_string(), detail, path.unwrap_or_default());
}

/// Adds an error for a rollout wait that did not end in success.
pub fn wait_error(diags: &mut Diagnostics, what: &str, id: &str, err: &WaitError) {
    let summary = match err {
        WaitError::Failed { .. } => format!("Rollout of {id} failed"),
        WaitError::TimedOut { .. } => format!("Timed out waiting for {what} of {id}"),
        WaitError::Cancelled { .. } => format!("Interrupted while waiting for {what} of {id}"),
        WaitError::Api(_) => format!("Lost track of {what} of {id}"),
    };
    diags.root_error(summary, err.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_the_path_and_add_the_next_step() {
        let mut diags = Diagnostics::default();
        let unauthorized = ClientError::from_response(
            "get deployment \"a\"",
            401,
            br#"{"error":"invalid api token"}"#,
        );
        api_error(
            &mut diags,
            "Cannot read",
            &unauthorized,
            Some(AttributePath::new("bento")),
        );
        let transient = ClientError::from_response("list deployments", 503, b"");
        api_error(&mut diags, "Cannot list", &transient, None);
        assert_eq!(diags.errors[0].attribute, AttributePath::new("bento"));
        assert!(diags.errors[0].detail.contains("invalid api token"));
        assert!(diags.errors[0].detail.contains("bentoml cloud login"));
        assert!(diags.errors[1].detail.contains("transient"));
        assert!(!diags.errors[1].detail.contains("bentoml cloud login"));
    }

    #[test]
    fn certificate_and_unreachable_errors_get_no_retry_advice() {
        use crate::client::ErrorKind;
        for kind in [ErrorKind::Certificate, ErrorKind::Unreachable] {
            let mut diags = Diagnostics::default();
            let e = ClientError::new("get the current user", kind, None, "set SSL_CERT_FILE");
            api_error(&mut diags, "Cannot read", &e, None);
            let detail = &diags.errors[0].detail;
            assert!(detail.contains("SSL_CERT_FILE"), "{detail}");
            assert!(
                !detail.contains("This looks transient") && !detail.contains("run the command"),
                "{detail}"
            );
        }
    }
}
