//! A loopback TCP proxy that counts the bytes it forwards and can fail the network in the two ways a partition
//! shows itself.
//!
//! ```no_run
//! # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
//! use ha_core::testing::TcpProxy;
//! let proxy = TcpProxy::start(server).await?;   // clients connect to proxy.addr() instead of server
//! proxy.set_blackhole(true);                     // silence: connections stay open, nothing arrives
//! proxy.set_blackhole(false);
//! proxy.set_cut(true);                           // refusal: every connection closed, new ones closed at once
//! proxy.set_cut(false);
//! let (sent, received) = proxy.bytes();          // payload bytes client → server, server → client
//! # let _ = (sent, received); Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// Size of the buffer each direction of a connection is forwarded through.
const BUFFER_BYTES: usize = 16 * 1024;

/// A TCP proxy on a free loopback port. It counts the payload bytes it forwards each way (benchmarks: bytes per HA
/// loop) and can cut every connection ([`TcpProxy::set_cut`]: the client sees the connection closed and refused) or
/// black-hole the traffic ([`TcpProxy::set_blackhole`]: connections stay open and packets vanish, so the client
/// sees silence). Runs on the current tokio runtime; a clone shares the same proxy, which stops, closing its
/// connections, when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

#[derive(Debug)]
struct Shared {
    to_server: AtomicU64,
    to_client: AtomicU64,
    blackhole: AtomicBool,
    /// `true` while cut; its sender dropped (the proxy stopped) ends every connection too.
    cut: tokio::sync::watch::Sender<bool>,
}

/// Stops the proxy when the last clone goes.
#[derive(Debug)]
struct Owner {
    accept: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<()>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = self.stop.send(());
    }
}

impl TcpProxy {
    /// Listens on `127.0.0.1:<free port>` and forwards each connection to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            to_server: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            blackhole: AtomicBool::new(false),
            cut: tokio::sync::watch::channel(false).0,
        });
        let (stop, stopped) = tokio::sync::watch::channel(());
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *s.cut.borrow() {
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(client, target, s.clone(), stopped.clone()));
            }
        });
        Ok(TcpProxy {
            addr,
            shared,
            _owner: Arc::new(Owner { accept, stop }),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Payload bytes forwarded (client → server, server → client) so far; black-holed bytes are not counted.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.shared.to_server.load(Ordering::Relaxed),
            self.shared.to_client.load(Ordering::Relaxed),
        )
    }

    /// `true`: closes every connection and closes new ones as soon as they are accepted; `false`: forwards again.
    pub fn set_cut(&self, cut: bool) {
        self.shared.cut.send_replace(cut);
    }

    /// `true`: everything read from either side is dropped, connections stay open; `false`: forwards again.
    pub fn set_blackhole(&self, on: bool) {
        self.shared.blackhole.store(on, Ordering::SeqCst);
    }
}

/// One connection: both directions until both end, or until the proxy is cut or stopped.
async fn forward(
    client: TcpStream,
    target: SocketAddr,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::watch::Receiver<()>,
) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let mut cut = shared.cut.subscribe();
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let both = async { tokio::join!(pump(cr, sw, &shared, true), pump(sr, cw, &shared, false)) };
    tokio::select! {
        _ = both => {}
        _ = cut.wait_for(|c| *c) => {}
        _ = stopped.changed() => {}
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, shared: &Shared, upstream: bool) {
    let mut buf = vec![0u8; BUFFER_BYTES];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shared.blackhole.load(Ordering::SeqCst) {
            continue;
        }
        let counter = if upstream {
            &shared.to_server
        } else {
            &shared.to_client
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
