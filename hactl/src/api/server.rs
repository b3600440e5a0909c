//! The REST API's accept loop: plain HTTP or HTTPS on one listener, each connection served by hyper with the
//! router, and what the handlers need to know about the connection ([`ConnInfo`]: the peer's address for
//! `restapi.allowlist`, whether it showed a client certificate for `verify_client: optional`).
//!
//! axum's own `serve` has no TLS and hides the peer; this loop is the small part of it we need, plus a bound on
//! the TLS handshake (a client that connects and says nothing holds no task for long).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tower_service::Service;
use tracing::debug;

use crate::tls::server::ServerTls;

/// What the handlers know about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The connection is TLS.
    pub https: bool,
    /// The client showed a certificate the server verified.
    pub client_cert: bool,
}

/// How the API is served: TLS (or plain HTTP) and the headers added to every response.
#[derive(Default, Clone)]
pub struct ServeOptions {
    pub tls: Option<Arc<ServerTls>>,
    /// `restapi.http_extra_headers`, plus `https_extra_headers` when serving HTTPS.
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
}

/// A TLS handshake not finished within this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// On shutdown, open requests get this long to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let headers = Arc::new(options.extra_headers);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let headers = headers.clone();
        let tls = options.tls.as_ref().map(|t| t.acceptor());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            match tls {
                None => {
                    let info = ConnInfo {
                        peer,
                        https: false,
                        client_cert: false,
                    };
                    serve_conn(TokioIo::new(tcp), router, info, headers, watcher).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let client_cert = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .is_some_and(|c| !c.is_empty());
                            let info = ConnInfo {
                                peer,
                                https: true,
                                client_cert,
                            };
                            serve_conn(TokioIo::new(stream), router, info, headers, watcher).await
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    Ok(())
}

async fn serve_conn<IO>(
    io: IO,
    router: Router,
    info: ConnInfo,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(info);
        let mut router = router.clone();
        let headers = headers.clone();
        async move {
            let mut resp = router.call(req.map(Body::new)).await?;
            for (k, v) in headers.iter() {
                resp.headers_mut().insert(k.clone(), v.clone());
            }
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .serve_connection(io, service);
    if let Err(e) = watcher.watch(conn).await {
        debug!(peer = %info.peer, error = %e, "connection ended with an error");
    }
}
