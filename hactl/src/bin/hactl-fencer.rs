//! `hactl-fencer DATA_DIR`: the fencer as a binary of its own. It is what stays alive beside every node, so it
//! carries nothing but the fencer: no async runtime, no network or TLS stack, no DCS client; it waits on its pipe
//! and its deadline (std threads) and SIGKILLs the postmaster when the deadline passes
//! ([`hactl::daemon::fencer`]). The daemon starts it when it sits beside the `hactl` binary, else runs
//! `hactl fencer` (the same code inside the full binary).

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: hactl-fencer DATA_DIR (started by `hactl run`, not by hand)");
        std::process::exit(2);
    };
    hactl::daemon::fencer::run(std::path::Path::new(&dir));
}
