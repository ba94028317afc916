//! HTTPS for `bentocloud-local` (`serve --tls-cert FILE --tls-key FILE`): loads the PEM
//! identity into a rustls server config, and serves the router over TLS.
//!
//! The accept loop mirrors `axum::serve` (which only takes plain TCP listeners): each
//! connection is a task running hyper-util's connection builder with upgrades (the pods
//! websockets), after a TLS handshake bounded by [`HANDSHAKE_TIMEOUT`]. Graceful shutdown is
//! the same too: stop accepting, let every connection finish its in-flight request, wait for
//! them. A failed handshake (e.g. a client that does not trust the certificate) is logged with
//! the peer and the cause, and never reaches the API.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::TlsFiles;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the certificate chain and key and builds the acceptor (TLS 1.2 and 1.3, HTTP/1.1).
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let cert_path = files.cert.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the TLS certificate {cert_path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "the TLS certificate file {cert_path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "cannot read the TLS private key {}: {e} (a PEM PKCS#8, PKCS#1 or SEC1 key is expected)",
            files.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "the TLS certificate {cert_path} and key {} are not a usable pair: {e}",
                files.key.display()
            )
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then shuts down
/// gracefully (returns once every connection has finished).
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let stop = CancellationToken::new();
    // Every connection task holds a receiver; `closed()` resolves when the last is dropped.
    let (close_tx, close_rx) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // E.g. EMFILE: wait for connections to close instead of spinning.
                    tracing::error!("accept error: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        let (acceptor, router, stop, close_rx) = (
            acceptor.clone(),
            router.clone(),
            stop.clone(),
            close_rx.clone(),
        );
        tokio::spawn(async move {
            let _running = close_rx;
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let stream = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "TLS handshake failed: no handshake within {HANDSHAKE_TIMEOUT:?}");
                        return;
                    }
                },
                _ = stop.cancelled() => return,
            };
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(router),
            );
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    return;
                }
                _ = stop.cancelled() => {}
            }
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended during shutdown: {e}");
            }
        });
    }
    drop(listener);
    stop.cancel();
    drop(close_rx);
    close_tx.closed().await;
}
