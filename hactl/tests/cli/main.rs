//! The patronictl-like commands against a running (simulated) cluster: real REST servers on local sockets, ha-core's
//! driver on the in-memory DCS and simulated PostgreSQL, loops running in the background.//!
//! Layout: here the harness (`hactl` runs a command line in-process); `views` (list, topology, tsv, several
//! clusters, watching, dsn, history); `changes` (switchover, failover, edit-config, pause, reload, reinit, restart,
//! remove, demote/promote-cluster).

#[path = "../common/mod.rs"]
mod common;

mod changes;
mod views;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use common::TestCluster;
use ha_core::mock_dcs::MemoryDcs;
use hactl::cli::ctl::{http_client, CliError, Connector, Ctl};
use hactl::cli::Cli;
use hactl::config::BasicAuth;

fn auth() -> Option<BasicAuth> {
    Some(BasicAuth {
        username: "admin".into(),
        password: "secret".into(),
    })
}

/// Runs `hactl <args>` with `input` as the answers typed; returns the result and what was printed.
async fn hactl(c: &TestCluster, args: &[&str], input: &str) -> (Result<(), CliError>, String) {
    hactl_for(c, args, input, None).await
}

/// `hactl`, interrupted after `limit` when one is given (`-w` watches until interrupted). Clusters other than
/// `batman` are reachable by name, with no keys in their DCS.
async fn hactl_for(
    c: &TestCluster,
    args: &[&str],
    input: &str,
    limit: Option<Duration>,
) -> (Result<(), CliError>, String) {
    let argv: Vec<&str> = std::iter::once("hactl")
        .chain(args.iter().copied())
        .collect();
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let mut out = Vec::new();
    let mut inp = std::io::Cursor::new(input.as_bytes().to_vec());
    let elsewhere = MemoryDcs::new(Arc::new(c.clock.clone()));
    let connect: Connector = Arc::new(move |_name: &str| {
        Ok(Arc::new(elsewhere.client("ctl")) as Arc<dyn ha_core::dcs::Dcs>)
    });
    let mut ctl = Ctl {
        scope: "batman".into(),
        dcs: Arc::new(c.dcs.client("ctl")),
        http: http_client(),
        auth: auth(),
        format: cli.format,
        out: &mut out,
        input: &mut inp,
        editor: None,
        poll_interval: Duration::from_millis(5),
        connect: Some(connect),
        group: None,
        terminal: false,
    };
    let r = match limit {
        None => ctl.execute(&cli.command).await,
        Some(l) => tokio::time::timeout(l, ctl.execute(&cli.command))
            .await
            .unwrap_or(Ok(())),
    };
    drop(ctl);
    (r, String::from_utf8(out).unwrap())
}

async fn running_cluster(n: usize) -> (TestCluster, tokio::task::JoinHandle<()>) {
    let c = TestCluster::served(n, auth()).await;
    c.settle();
    let pump = c.pump();
    (c, pump)
}

/// Lets the loops run `n` more times (the pump advances one virtual second per loop).
async fn loops(n: u64) {
    tokio::time::sleep(Duration::from_millis(3 * n)).await;
}
