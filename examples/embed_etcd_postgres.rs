//! A product's own HA node, as a product team writes it: ha-core + a real DCS + pg-control, the product's own
//! configuration (not Patroni's YAML), its own reaction to role changes, its own logging, a graceful stop on Ctrl-C.
//! The binary is also its own fencer: re-run by `spawn_self`, it SIGKILLs PostgreSQL if this process freezes or
//! dies while primary, before another node can promote.
//!
//! Run two or three of them on one etcd (or Consul with `consul://host:port`):
//! `embed_etcd_postgres NODE DATA_DIR PG_PORT 127.0.0.1:2379` (env `PG_BIN`, and `PG_USER` when run as root).

use std::{path::PathBuf, sync::Arc, time::Duration};

use ha_core::{dcs::Dcs, node::NodeBuilder, time::SystemClock};

/// The product's own configuration (its installer writes it; here it comes from the command line).
struct ProductConfig {
    node: String,
    data_dir: PathBuf,
    pg_port: u16,
    store: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    pg_control::fencer::run_if_requested(); // this binary, re-run as its own fencer
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("info")
        .init();
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [node, data_dir, port, store] =
        <[String; 4]>::try_from(a).map_err(|_| "usage: NODE DATA_DIR PG_PORT STORE")?;
    let cfg = ProductConfig {
        node,
        data_dir: data_dir.into(),
        pg_port: port.parse()?,
        store,
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(cfg))
}

async fn run(cfg: ProductConfig) -> Result<(), Box<dyn std::error::Error>> {
    let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let mut pg = pg_control::PgSettings::new(&cfg.node, bin, &cfg.data_dir, cfg.pg_port);
    pg.os_user = std::env::var("PG_USER").ok();
    let pg = pg_control::PgCtl::new(pg).await?;
    // The one line that picks the DCS: the rest of the node is the same on etcd and on Consul.
    let dcs: Arc<dyn Dcs> = match cfg.store.strip_prefix("consul://") {
        Some(agent) => Arc::new(dcs_consul::ConsulDcs::new(
            dcs_consul::ConsulSettings::new(format!("http://{agent}"), "shop", &cfg.node),
        )?),
        None => Arc::new(dcs_etcd::EtcdDcs::new(dcs_etcd::EtcdSettings::new(
            cfg.store.split(','),
            "shop",
            &cfg.node,
        ))?),
    };
    let fencer = pg_control::fencer::spawn_self(&cfg.data_dir, Arc::new(SystemClock::new()))?;
    let node = NodeBuilder::new(&cfg.node, dcs, pg)
        .timing(
            Duration::from_secs(10),
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .watchdog(fencer)
        .on_role_change(|old, new| {
            println!("shop: this node was {}, now {}", old.as_str(), new.as_str())
        })
        .build()?;
    node.run(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await; // stops PostgreSQL, hands the lock over
    Ok(())
}
