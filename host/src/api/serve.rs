//! Serving the admin API: plaintext or TLS (mutual with `grpc.tlsClientCA`) on our rustls with
//! the same certificate renewal as `web.https` (`web::tls`), HTTP/2 only, reflection optional.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::Service;
use super::proto::dex_server::DexServer;
use crate::config::GrpcConfig;

/// A TLS handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// One call may take this long (a connector's trial load included).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Handshakes in progress at once; more connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;

/// The rustls config of `grpc`, or `None` for plaintext; errors name the key and the file.
pub fn tls_config(grpc: &GrpcConfig) -> Result<Option<Arc<rustls::ServerConfig>>, crate::web::tls::TlsError> {
    let (Some(cert), Some(key)) = (&grpc.tls_cert, &grpc.tls_key) else { return Ok(None) };
    let settings = crate::web::tls::Settings {
        section: "grpc",
        cert: std::path::Path::new(cert),
        key: std::path::Path::new(key),
        client_ca: grpc.tls_client_ca.as_deref().map(std::path::Path::new),
        min: grpc.tls_min_version.as_deref(),
        max: grpc.tls_max_version.as_deref(),
    };
    let mut config = settings.server_config()?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// A TLS connection, as tonic takes it.
struct TlsConnection(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for TlsConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Serves `service` on `listener` until `shutdown` resolves; `tls` from [`tls_config`].
pub async fn serve(
    listener: TcpListener,
    service: Service,
    tls: Option<Arc<rustls::ServerConfig>>,
    reflection: bool,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    // Both versions of the reflection service: grpcurl and older tools ask for v1alpha.
    let builder = || {
        tonic_reflection::server::Builder::configure().register_encoded_file_descriptor_set(super::proto::DESCRIPTOR)
    };
    let (v1, v1alpha) = match reflection {
        false => (None, None),
        true => (Some(builder().build_v1()?), Some(builder().build_v1alpha()?)),
    };
    let router = tonic::transport::Server::builder()
        .timeout(CALL_TIMEOUT)
        .add_service(DexServer::new(service))
        .add_optional_service(v1)
        .add_optional_service(v1alpha);
    match tls {
        None => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            router.serve_with_incoming_shutdown(incoming, shutdown).await?;
        }
        Some(tls) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<TlsConnection>>(16);
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
            let accept = tokio::spawn(async move {
                loop {
                    let Ok(permit) = handshakes.clone().acquire_owned().await else { return };
                    let stream = match listener.accept().await {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            tracing::warn!("grpc: accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let (acceptor, tx) = (acceptor.clone(), tx.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => {
                                let _ = tx.send(Ok(TlsConnection(tls))).await;
                            }
                            Ok(Err(e)) => tracing::debug!("grpc: TLS handshake failed: {e}"),
                            Err(_) => tracing::debug!("grpc: TLS handshake timed out"),
                        }
                    });
                }
            });
            let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
            let served = router.serve_with_incoming_shutdown(incoming, shutdown).await;
            accept.abort();
            served?;
        }
    }
    Ok(())
}
