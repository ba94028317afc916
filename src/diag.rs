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
    fn diagnostics_keep_the_attribute_path() {
        let mut diags = Diagnostics::default();
        diags.error("x", "y", AttributePath::new("bento"));
        assert_eq!(diags.errors[0].attribute, AttributePath::new("bento"));
    }
}
