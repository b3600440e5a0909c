//! hactl: the reference daemon (not yet implemented: see issue 5).
fn main() {
    eprintln!(
        "hactl {}: the daemon is not implemented yet",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
