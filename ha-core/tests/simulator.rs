//! The deterministic simulator as a test: many seeds, zero violations; a planted bug is caught; a seed replays.
//!
//! Replay one seed: `HACTL_SIM_SEED=1234 cargo test -p ha-core --test simulator replay_seed_from_env -- --nocapture`
//! (or `cargo run --release -p ha-core --example simulate -- --seed 1234 --trace`).

use ha_core::decision::PlantedBug;
use ha_core::sim::{Fault, SimConfig, Simulation};

/// Seeds run by `cargo test` (CI); the soak runs millions with the `simulate` example.
const CI_SEEDS: u64 = 1_000;

#[test]
fn a_thousand_seeds_hold_every_invariant() {
    let mut ttl5_runs = 0;
    let mut freezes_longer_than_ttl = 0;
    let mut failsafe_runs = 0;
    let mut promotions = 0;
    for seed in 0..CI_SEEDS {
        let cfg = SimConfig::for_seed(seed);
        let ttl_ms = (cfg.ttl_s * 1000.0) as u64;
        let out = Simulation::new(cfg.clone()).run();
        assert!(
            out.violations.is_empty(),
            "seed {seed} broke {:?}\nreplay: {}",
            out.violations,
            out.replay_command()
        );
        promotions += out.stats.promotions;
        if cfg.ttl_s == 5.0 {
            ttl5_runs += 1;
            freezes_longer_than_ttl += out
                .stats
                .faults
                .iter()
                .filter(|(_, f)| matches!(f, Fault::DaemonFreeze { ms, .. } if *ms > ttl_ms))
                .count();
        }
        if cfg.failsafe_mode {
            failsafe_runs += 1;
        }
    }
    // The runs covered what they claim to cover.
    assert!(ttl5_runs >= 300, "only {ttl5_runs} runs with ttl 5 s");
    assert!(
        freezes_longer_than_ttl >= 100,
        "only {freezes_longer_than_ttl} daemon freezes longer than the ttl"
    );
    assert!(
        failsafe_runs >= 200,
        "only {failsafe_runs} runs in failsafe mode"
    );
    assert!(
        promotions >= CI_SEEDS,
        "faults caused only {promotions} promotions"
    );
}

#[test]
fn simulator_catches_a_planted_promotion_without_the_lock() {
    let caught = (0..50u64).find_map(|seed| {
        let mut cfg = SimConfig::for_seed(seed);
        cfg.planted_bug = Some(PlantedBug::PromoteWithoutLock);
        let out = Simulation::new(cfg).run();
        out.violations
            .first()
            .cloned()
            .map(|v| (seed, v, out.replay_command()))
    });
    let (seed, violation, replay) =
        caught.expect("50 seeds with a promotion without the lock and no violation found");
    assert_eq!(
        violation.invariant, "single_writer",
        "seed {seed}: {violation:?}"
    );
    assert!(
        replay.contains("--planted-bug promote-without-lock")
            && replay.contains(&format!("--seed {seed}")),
        "{replay}"
    );
}

#[test]
fn without_a_watchdog_a_frozen_daemon_leads_to_two_writers() {
    // Why the watchdog is part of the design: Patroni's behaviour without /dev/watchdog.
    let caught = (0..50u64).any(|seed| {
        let mut cfg = SimConfig::for_seed(seed);
        cfg.watchdog = false;
        Simulation::new(cfg)
            .run()
            .violations
            .iter()
            .any(|v| v.invariant == "single_writer")
    });
    assert!(caught);
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [7, 8, 9] {
        let mut cfg = SimConfig::for_seed(seed);
        cfg.trace = true;
        let a = Simulation::new(cfg.clone()).run();
        let b = Simulation::new(cfg).run();
        assert_eq!(a.stats, b.stats);
        assert_eq!(a.trace, b.trace);
        assert!(
            a.trace.len() > 50,
            "a trace of {} lines says too little",
            a.trace.len()
        );
    }
}

#[test]
fn replay_seed_from_env() {
    let seed = std::env::var("HACTL_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    let mut cfg = SimConfig::for_seed(seed);
    cfg.trace = std::env::var("HACTL_SIM_SEED").is_ok();
    let out = Simulation::new(cfg).run();
    for line in &out.trace {
        println!("{line}");
    }
    assert!(
        out.violations.is_empty(),
        "{:?}\nreplay: {}",
        out.violations,
        out.replay_command()
    );
}
