//! Prints how many simulated seeds per second one core runs (target: 10,000 per minute).
//! `cargo bench -p ha-core --bench sim_seeds [-- SEEDS]`

use std::time::Instant;

use ha_core::sim::{SimConfig, Simulation};

fn main() {
    let seeds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2_000);
    let start = Instant::now();
    let mut steps = 0;
    let mut cycles = 0;
    let mut violations = 0;
    for seed in 0..seeds {
        let out = Simulation::new(SimConfig::for_seed(seed)).run();
        steps += out.stats.steps;
        cycles += out.stats.cycles;
        if !out.violations.is_empty() {
            violations += 1;
            eprintln!(
                "seed {seed}: {:?}\n  replay: {}",
                out.violations[0],
                out.replay_command()
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "simulator: {seeds} seeds in {secs:.2} s = {:.0} seeds/s = {:.0} seeds/min on one core ({} virtual steps, {} HA loops, {violations} seeds with violations)",
        seeds as f64 / secs,
        seeds as f64 * 60.0 / secs,
        steps,
        cycles
    );
}
