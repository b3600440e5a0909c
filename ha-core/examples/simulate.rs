//! Runs (or replays) simulated seeds.
//!
//! `cargo run --release -p ha-core --example simulate -- --seed 42 --trace`
//! `cargo run --release -p ha-core --example simulate -- --seeds 0..100000`
//! Options: `--planted-bug promote-without-lock`, `--no-watchdog`, `--trace`.

use ha_core::decision::PlantedBug;
use ha_core::sim::{SimConfig, Simulation};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds = 0..1u64;
    let mut trace = false;
    let mut bug = None;
    let mut watchdog = true;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--seed" => {
                let s: u64 = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage("--seed N"));
                seeds = s..s + 1;
                i += 1;
            }
            "--seeds" => {
                let v = args.get(i + 1).cloned().unwrap_or_default();
                let (a, b) = v.split_once("..").unwrap_or_else(|| usage("--seeds A..B"));
                seeds = a.parse().unwrap_or_else(|_| usage("--seeds A..B"))
                    ..b.parse().unwrap_or_else(|_| usage("--seeds A..B"));
                i += 1;
            }
            "--trace" => trace = true,
            "--no-watchdog" => watchdog = false,
            "--planted-bug" => {
                bug = Some(match args.get(i + 1).map(String::as_str) {
                    Some("promote-without-lock") => PlantedBug::PromoteWithoutLock,
                    Some("sync-key-before-names") => PlantedBug::SyncKeyBeforeNames,
                    Some("stale-quorum-votes") => PlantedBug::StaleQuorumVotes,
                    Some("leave-diverged-standby-running") => {
                        PlantedBug::LeaveDivergedStandbyRunning
                    }
                    Some("append-only-history") => PlantedBug::AppendOnlyHistory,
                    _ => usage(
                        "--planted-bug promote-without-lock|sync-key-before-names|stale-quorum-votes|\
                         leave-diverged-standby-running|append-only-history",
                    ),
                });
                i += 1;
            }
            other => usage(&format!("unknown argument {other}")),
        }
        i += 1;
    }
    let (mut ran, mut failed) = (0u64, 0u64);
    let start = std::time::Instant::now();
    for seed in seeds {
        let mut cfg = SimConfig::for_seed(seed);
        cfg.trace = trace;
        cfg.planted_bug = bug;
        cfg.watchdog = watchdog;
        let out = Simulation::new(cfg).run();
        ran += 1;
        for line in &out.trace {
            println!("{line}");
        }
        if !out.violations.is_empty() {
            failed += 1;
            println!(
                "seed {seed}: VIOLATION {:?}\n  replay: {}",
                out.violations,
                out.replay_command()
            );
        } else if trace {
            println!("seed {seed}: ok {:?}", out.stats);
        }
    }
    println!(
        "{ran} seeds, {failed} with violations, {:.1} s",
        start.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("simulate: {msg}");
    std::process::exit(2);
}
