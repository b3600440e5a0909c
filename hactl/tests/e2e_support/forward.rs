//! A TCP forwarder per node in front of a DCS server that has one client port (Consul, ZooKeeper), so one node's
//! link to the DCS can be cut alone by dropping its forwarder's port (etcd gets a client port per node instead).

use std::io::{copy, ErrorKind};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Forwarder {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Forwarder {
    /// Listens on a free loopback port and forwards each connection to `127.0.0.1:target`.
    pub fn start(target: u16) -> Forwarder {
        Forwarder::start_on("127.0.0.1", target)
    }

    /// Listens on a free port of `address` (a bridge's, for hosts in network namespaces) and forwards each
    /// connection to `127.0.0.1:target`.
    pub fn start_on(address: &str, target: u16) -> Forwarder {
        let listener = TcpListener::bind((address, 0)).expect("forwarder bind");
        let port = listener.local_addr().expect("forwarder address").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        // A DCS that is down refuses the forwarded connection: the client's is closed at once.
                        if let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) {
                            if let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) {
                                pipe(client, u2);
                                pipe(upstream, c2);
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Forwarder { port, stop }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
