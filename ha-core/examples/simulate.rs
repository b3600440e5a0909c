//! Runs (or replays) simulated seeds.
//!
//! `cargo run --release -p ha-core --example simulate -- --seed 42 --trace`
//! `cargo run --release -p ha-core --example simulate -- --seeds 0..100000`
//! `cargo run --release -p ha-core --example simulate -- --mutants --seeds 0..1000` (the mutation score)
//! `cargo run --release -p ha-core --example simulate -- --stability 100 --seeds 0..300` (DCS latency up to the bound
//! the timing allows, nothing else: no failover, no fencing)
//! Options: `--planted-bug NAME` (see `PlantedBug::name`), `--no-watchdog`, `--trace`.

use ha_core::decision::PlantedBug;
use ha_core::sim::{SimConfig, Simulation};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds = 0..1u64;
    let mut trace = false;
    let mut bug = None;
    let mut watchdog = true;
    let mut mutants = false;
    let mut stability: Option<u64> = None;
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
                let name = args.get(i + 1).map(String::as_str).unwrap_or("");
                bug = Some(PlantedBug::from_name(name).unwrap_or_else(|| {
                    let names: Vec<&str> = PlantedBug::ALL.iter().map(|b| b.name()).collect();
                    usage(&format!("--planted-bug {}", names.join("|")))
                }));
                i += 1;
            }
            "--mutants" => mutants = true,
            "--stability" => {
                stability = Some(
                    args.get(i + 1)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| usage("--stability PERCENT_OF_THE_ROUND_TRIP_BOUND")),
                );
                i += 1;
            }
            other => usage(&format!("unknown argument {other}")),
        }
        i += 1;
    }
    if mutants {
        return mutation_score(seeds);
    }
    let (mut ran, mut failed) = (0u64, 0u64);
    let start = std::time::Instant::now();
    for seed in seeds {
        let mut cfg = match stability {
            Some(ms) => SimConfig::stability(seed, ms),
            None => SimConfig::for_seed(seed),
        };
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

/// Plants each bug in turn and runs its pinned seeds, then the given ones, until one breaks an invariant: prints,
/// per bug, the seed that caught it (or that none did) and the score. Exits 1 below 100 %.
fn mutation_score(seeds: std::ops::Range<u64>) {
    let start = std::time::Instant::now();
    let table = ha_core::sim::mutation::score(seeds.clone());
    for c in &table {
        match c.caught {
            Some((seed, invariant)) => {
                println!("{:<32} caught at seed {seed} by {invariant}", c.bug.name())
            }
            None => println!("{:<32} NOT caught in seeds {seeds:?}", c.bug.name()),
        }
    }
    let caught = table.iter().filter(|c| c.caught.is_some()).count();
    println!(
        "mutation score: {caught}/{} caught ({:.0} %), {:.1} s",
        table.len(),
        100.0 * caught as f64 / table.len() as f64,
        start.elapsed().as_secs_f64()
    );
    if caught < table.len() {
        std::process::exit(1);
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("simulate: {msg}");
    std::process::exit(2);
}
