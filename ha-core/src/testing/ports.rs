//! Loopback ports for test servers.

use std::net::TcpListener;

/// A free loopback port for a test server. Ports come from 20000–31999, below the kernel's ephemeral range
/// (32768–60999): a port handed out here is never given meanwhile to some other test's outgoing connection, which
/// would make the server's later bind fail ("port in use"). Each process starts at its own offset and hands each
/// port out once.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let offset = (std::process::id() % 100) * (SPAN / 100);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (offset + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_below_the_ephemeral_range_and_never_handed_out_twice() {
        let a = super::free_port();
        let b = super::free_port();
        assert_ne!(a, b);
        assert!((20_000..32_000).contains(&a) && (20_000..32_000).contains(&b));
    }
}
