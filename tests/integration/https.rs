//! The provider against an HTTPS endpoint signed by a private CA: `bentocloud-local
//! serve --tls-cert/--tls-key` with a certificate from a test CA made by rcgen. With
//! `SSL_CERT_FILE` naming that CA, apply / plan / destroy work; without it, the apply fails at
//! once, naming the certificate problem and the variable, and the request is not retried.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::*;

const CLUSTER: &str = "local-east";
const BENTO: &str = "tls:v1";
const HANDSHAKE_FAILED: &str = "TLS handshake failed";

/// A test CA and a server certificate it signed, for 127.0.0.1 and localhost, as PEM files.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki() -> Pki {
    let dir = temp_dir("pki-");
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bentocloud acceptance test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("server key");
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("server params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bentocloud-local");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    let pki = Pki {
        ca: dir.path().join("ca.pem"),
        cert: dir.path().join("server.pem"),
        key: dir.path().join("server-key.pem"),
        _dir: dir,
    };
    std::fs::write(&pki.ca, ca.pem()).expect("write CA");
    std::fs::write(&pki.cert, cert.pem()).expect("write certificate");
    std::fs::write(&pki.key, key.serialize_pem()).expect("write key");
    pki
}

fn start(pki: &Pki) -> Server {
    let server = Server::start_tls(&pki.cert, &pki.key, &pki.ca);
    assert!(
        server.endpoint.starts_with("https://127.0.0.1:"),
        "DIR/endpoint is https: {}",
        server.endpoint
    );
    // `bentos add` trusts the CA through SSL_CERT_FILE, like the provider.
    server.bentos_add(BENTO, &BentoBehaviour::default());
    server
}

fn handshake_failures(server: &Server) -> usize {
    server.log().matches(HANDSHAKE_FAILED).count()
}

/// With SSL_CERT_FILE naming the CA: apply, an empty plan, destroy; the deployment URL is
/// https and serves the bento over TLS.
pub fn private_ca_trusted_through_ssl_cert_file(v: TfVersion) {
    let pki = make_pki();
    let server = start(&pki);
    let mut tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    tf.env
        .push(("SSL_CERT_FILE".into(), pki.ca.to_string_lossy().to_string()));
    let dep = Dep::new("tls", &dep_name("tls", v), BENTO);
    tf.write(&dep.hcl());
    tf.init();
    tf.apply();

    let sv = view(&server.must_get(CLUSTER, &dep.name));
    dep.assert_server_has(&sv, "after apply over https");
    assert_eq!(sv.status, "running");
    let st = tf.resource(&dep.addr());
    assert_state_matches_server(&st, &sv, "after apply over https");
    let url = st["url"].as_str().unwrap_or_default().to_string();
    let prefix = format!("{}/endpoints/", server.endpoint);
    assert!(
        url.starts_with(&prefix),
        "the deployment URL is https on the server: {url}"
    );
    let path = format!(
        "{}/predict",
        url[server.endpoint.len()..].trim_end_matches('/')
    );
    let (status, body) = server.request(reqwest::Method::GET, &path, None);
    assert_eq!(status, 200, "{path}: {body}");
    assert!(body.contains(BENTO), "the endpoint serves {BENTO}: {body}");

    tf.assert_no_changes("plan after apply over https");
    tf.destroy();
    assert!(
        server.all_deployment_ids().is_empty(),
        "destroy over https left {:?}",
        server.all_deployment_ids()
    );
    assert_eq!(
        handshake_failures(&server),
        0,
        "every handshake succeeded:\n{}",
        server.log()
    );
}

/// Without SSL_CERT_FILE the CA is unknown: the apply fails at once with the certificate
/// problem and the variable to set, the emulator saw exactly one (failed) TLS handshake, so the
/// request was not retried, and nothing reached the API.
pub fn untrusted_ca_fails_at_once_naming_ssl_cert_file(v: TfVersion) {
    let pki = make_pki();
    let server = start(&pki);
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let dep = Dep::new("tls", &dep_name("tls-untrusted", v), BENTO);
    tf.write(&dep.hcl());
    tf.init();
    let out = tf.apply_err();
    let text = format!("{}\n{}", out.stdout, out.stderr);
    // Terraform wraps long lines: compare with whitespace collapsed.
    let flat = flat(&text);
    for want in [
        "Cannot verify the BentoCloud server's certificate",
        "UnknownIssuer",
        "certificate authority (CA)",
        "SSL_CERT_FILE",
        "Not retried",
    ] {
        assert!(
            flat.contains(want),
            "the error names {want:?}:\n{}",
            out.describe()
        );
    }
    for unwanted in ["transient", "run the command again"] {
        assert!(
            !flat.contains(unwanted),
            "the error says {unwanted:?}:\n{}",
            out.describe()
        );
    }

    // The server logs each failed handshake once it reads the client's alert.
    poll_until(
        "the server to log the failed TLS handshake",
        Duration::from_secs(10),
        || (handshake_failures(&server) > 0).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    assert_eq!(
        handshake_failures(&server),
        1,
        "one TLS handshake, not retried (the client allows 8 retries):\n{log}"
    );
    assert!(
        log.contains("UnknownCA"),
        "the client rejected the server's CA:\n{log}"
    );
    assert!(
        server.all_deployment_ids().is_empty(),
        "nothing reached the API"
    );
}
