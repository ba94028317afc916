//! Tests of the transport failures: the cause read through the error chain, and the messages
//! for an unknown certificate issuer and an unreachable endpoint.

use super::*;

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn the_chain_is_read_through_io_errors() {
    let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
    let io = io::Error::new(io::ErrorKind::InvalidData, tls);
    assert_eq!(
        cause_of(&io),
        Cause::Certificate(rustls::CertificateError::UnknownIssuer)
    );
    let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
    assert_eq!(cause_of(&refused), Cause::Refused);
    let gai = io::Error::other("failed to lookup address information: Name or service not known");
    assert_eq!(cause_of(&gai), Cause::Dns);
    assert_eq!(
        cause_of(&io::Error::from(io::ErrorKind::TimedOut)),
        Cause::Other
    );
}

#[test]
fn unknown_issuer_names_the_ca_and_the_variables() {
    let ep = url::Url::parse("https://corp.example").expect("url");
    let m = certificate_message(
        &rustls::CertificateError::UnknownIssuer,
        &ep,
        "invalid peer certificate: UnknownIssuer",
        &env_of(&[("HTTPS_PROXY", "http://user:pw@proxy:3128")]),
    );
    assert!(m.contains("UnknownIssuer"), "{m}");
    assert!(m.contains("certificate authority (CA)"), "{m}");
    assert!(
        m.contains("SSL_CERT_FILE") && m.contains("SSL_CERT_DIR"),
        "{m}"
    );
    assert!(
        m.contains("Neither SSL_CERT_FILE nor SSL_CERT_DIR is set"),
        "{m}"
    );
    assert!(m.contains("HTTPS_PROXY") && !m.contains("pw@proxy"), "{m}");
    assert!(m.contains("Not retried"), "{m}");
    assert!(!m.contains("again"), "{m}");
    let m = certificate_message(
        &rustls::CertificateError::UnknownIssuer,
        &ep,
        "x",
        &env_of(&[("SSL_CERT_FILE", "/nonexistent/ca.pem")]),
    );
    assert!(
        m.contains("\"/nonexistent/ca.pem\", which cannot be read"),
        "{m}"
    );
    let m = certificate_message(
        &rustls::CertificateError::NotValidForName,
        &ep,
        "x",
        &env_of(&[]),
    );
    assert!(
        m.contains("\"corp.example\"") && m.contains("BENTO_CLOUD_API_ENDPOINT"),
        "{m}"
    );
}

#[test]
fn unreachable_names_the_endpoint_settings() {
    let ep = url::Url::parse("http://127.0.0.1:9").expect("url");
    let m = unreachable_message(&Cause::Refused, &ep, "Connection refused", &env_of(&[]));
    assert!(m.contains("127.0.0.1:9 was refused"), "{m}");
    assert!(
        m.contains("BENTO_CLOUD_API_ENDPOINT") && m.contains("`endpoint`"),
        "{m}"
    );
    assert!(!m.contains("again") && !m.contains("PROXY"), "{m}");
    let ep = url::Url::parse("https://nope.invalid").expect("url");
    let m = unreachable_message(&Cause::Dns, &ep, "dns error", &env_of(&[]));
    assert!(m.contains("\"nope.invalid\" does not resolve"), "{m}");
}
