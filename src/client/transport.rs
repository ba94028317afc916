//! What a transport failure (no HTTP status) means, read from the reqwest → hyper-util →
//! rustls / `std::io` error chain, and the message that names its fix.
//!
//! Three causes are configuration problems that repeating the request cannot fix, so the
//! client fails at once instead of retrying them and calling them "transient":
//!
//! - a rejected server certificate (`rustls::Error::InvalidCertificate`, e.g. `UnknownIssuer`
//!   behind a TLS-inspecting proxy whose CA is not trusted): the fix is `SSL_CERT_FILE` /
//!   `SSL_CERT_DIR`, or the endpoint's host name;
//! - a host name that does not resolve (hyper-util's `ConnectError` "dns error", wrapping the
//!   resolver's `io::Error`);
//! - connection refused (`io::ErrorKind::ConnectionRefused`).
//!
//! The last two are only final while the endpoint has never answered this client: once it
//! has, they mean the server or a load balancer is restarting, and the request is retried with
//! back-off like any other transport failure (see `Client::transport_failure`).
//!
//! No side effects: the environment is passed in (the messages say whether `SSL_CERT_FILE`,
//! `SSL_CERT_DIR` and proxy variables are set, never a proxy's value, which may hold
//! credentials); the only I/O is reading the `SSL_CERT_FILE` a message reports on.

use std::error::Error as StdError;
use std::io;

/// The cause of a transport failure, as far as the client acts on it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cause {
    /// The server's certificate was rejected.
    Certificate(rustls::CertificateError),
    /// The host name did not resolve.
    Dns,
    /// Nothing accepted the TCP connection.
    Refused,
    /// Anything else (timeout, reset, TLS protocol error, ...): transient.
    Other,
}

/// Bounds the walk: error chains are short, a cycle must not hang the client.
const MAX_DEPTH: usize = 32;

/// Calls `visit` on `err`, every error of its `source()` chain, and the error *inside* each
/// `io::Error` (whose own `source()` skips it: tokio-rustls wraps the `rustls::Error` that
/// way). Stops when `visit` returns `Some`.
fn find<T>(
    err: &(dyn StdError + 'static),
    depth: usize,
    visit: &mut dyn FnMut(&(dyn StdError + 'static)) -> Option<T>,
) -> Option<T> {
    let mut current = Some(err);
    let mut depth = depth;
    while let Some(e) = current {
        if depth >= MAX_DEPTH {
            return None;
        }
        depth += 1;
        if let Some(found) = visit(e) {
            return Some(found);
        }
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            let inner: &(dyn StdError + 'static) = inner;
            if let Some(found) = find(inner, depth, visit) {
                return Some(found);
            }
        }
        current = e.source();
    }
    None
}

/// Classifies a transport error by its chain. A certificate error wins over the rest (it is
/// the root cause wherever it appears).
pub(crate) fn cause_of(err: &(dyn StdError + 'static)) -> Cause {
    let cert = find(err, 0, &mut |e| match e.downcast_ref::<rustls::Error>() {
        Some(rustls::Error::InvalidCertificate(c)) => Some(c.clone()),
        _ => None,
    });
    if let Some(c) = cert {
        return Cause::Certificate(c);
    }
    let other = find(err, 0, &mut |e| {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::ConnectionRefused {
                return Some(Cause::Refused);
            }
            if io
                .to_string()
                .starts_with("failed to lookup address information")
            {
                return Some(Cause::Dns);
            }
        }
        // hyper-util's `ConnectError` is private; its Display is the phase that failed.
        if e.to_string() == "dns error" {
            return Some(Cause::Dns);
        }
        None
    });
    other.unwrap_or(Cause::Other)
}

/// Where the endpoint can be set, for "check the endpoint" advice.
const ENDPOINT_SETTINGS: &str = "`endpoint` in the provider \"bentocloud\" block, or the \
    BENTO_CLOUD_API_ENDPOINT environment variable, or the endpoint of the `bentoml cloud login` \
    context";

/// The proxy variables that apply to `scheme`, among those set.
fn proxy_vars_set(scheme: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<&'static str> {
    let names: &[&'static str] = if scheme == "https" {
        &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
    } else {
        &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
    };
    names
        .iter()
        .copied()
        .filter(|n| env(n).is_some_and(|v| !v.trim().is_empty()))
        .collect()
}

/// A sentence naming the proxy variables in use (never their values: they may hold
/// credentials), or nothing.
fn proxy_note(scheme: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let vars = proxy_vars_set(scheme, env);
    if vars.is_empty() {
        return String::new();
    }
    format!(
        " Requests go through the proxy set in {} unless NO_PROXY lists the host: check that proxy too.",
        vars.join(" / ")
    )
}

/// What `SSL_CERT_FILE` / `SSL_CERT_DIR` currently say, for an untrusted-issuer message.
fn trust_settings(env: &dyn Fn(&str) -> Option<String>) -> String {
    const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let file = env("SSL_CERT_FILE").filter(|v| !v.is_empty());
    let dir = env("SSL_CERT_DIR").filter(|v| !v.is_empty());
    let mut parts = Vec::new();
    if let Some(f) = &file {
        parts.push(match std::fs::read(f) {
            Ok(bytes) if !String::from_utf8_lossy(&bytes).contains(PEM_BEGIN) => format!(
                "SSL_CERT_FILE is set to {f:?}, but that file holds no PEM certificate ({PEM_BEGIN})."
            ),
            Ok(_) => format!(
                "SSL_CERT_FILE is set to {f:?}, but no certificate in it is the CA that signed \
                 the server's certificate (or a CA above it)."
            ),
            Err(e) => format!("SSL_CERT_FILE is set to {f:?}, which cannot be read: {e}."),
        });
    }
    if let Some(d) = &dir {
        parts.push(format!(
            "SSL_CERT_DIR is set to {d:?}, but none of its files holds the CA that signed the \
             server's certificate."
        ));
    }
    if parts.is_empty() {
        return "Neither SSL_CERT_FILE nor SSL_CERT_DIR is set, so only the operating system's \
                certificate store and the public (webpki) roots are trusted."
            .into();
    }
    parts.join(" ")
}

/// The message of a final certificate failure: cause first, then the fix.
pub(crate) fn certificate_message(
    cert: &rustls::CertificateError,
    endpoint: &url::Url,
    cause: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    use rustls::CertificateError as C;
    let host = endpoint.host_str().unwrap_or_default();
    let head = format!(
        "cannot connect to {endpoint}: the server's TLS certificate was rejected ({cause})."
    );
    let fix = match cert {
        C::UnknownIssuer => format!(
            " It is signed by a certificate authority (CA) this machine does not trust, e.g. the \
             private CA of a company's TLS-inspecting proxy, or of a self-hosted server. Save \
             that CA's certificate (PEM) to a file and set the SSL_CERT_FILE environment \
             variable to its path (or SSL_CERT_DIR to a directory of such files) for Terraform. \
             {}",
            trust_settings(env)
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => format!(
            " The certificate is not valid for the host name {host:?}: check the endpoint \
             ({ENDPOINT_SETTINGS}); it must use a name the certificate was issued for."
        ),
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            " The certificate is outside its validity period: the server must renew it, or \
             this machine's clock is wrong."
                .to_string()
        }
        _ => format!(
            " If the server uses a private certificate authority (CA), set the SSL_CERT_FILE \
             environment variable to a PEM file holding that CA (or SSL_CERT_DIR to a \
             directory of such files). {}",
            trust_settings(env)
        ),
    };
    format!(
        "{head}{fix}{} Not retried: repeating the request cannot fix a certificate.",
        proxy_note(endpoint.scheme(), env)
    )
}

/// The message of a final DNS or connection-refused failure.
pub(crate) fn unreachable_message(
    cause_kind: &Cause,
    endpoint: &url::Url,
    cause: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    let host = endpoint.host_str().unwrap_or_default();
    let what = match cause_kind {
        Cause::Dns => format!("the host name {host:?} does not resolve ({cause})."),
        _ => format!(
            "the connection to {host}:{} was refused ({cause}): nothing listens there.",
            endpoint.port_or_known_default().unwrap_or_default()
        ),
    };
    format!(
        "cannot connect to {endpoint}: {what} Check the endpoint ({ENDPOINT_SETTINGS}) and that \
         the server runs at that address.{} Not retried: the endpoint has not answered yet, so \
         this is a configuration problem, not a transient one.",
        proxy_note(endpoint.scheme(), env)
    )
}

#[cfg(test)]
mod tests;
