//! The reference daemon: composes the DCS named in the config, pg-control, ha-core's driver, the REST API, the
//! callbacks and the fencer, and maps signals onto the driver: SIGTERM/SIGINT stop PostgreSQL cleanly and release
//! the leader lock (a replica takes over at once instead of after the ttl), SIGHUP reloads the config file.
//!
//! Every piece is library code so a product can build its own daemon from them: [`pg_settings`] turns the
//! `postgresql:` section into pg-control's settings, [`callbacks::CallbackHooks`] runs Patroni's callbacks,
//! [`failsafe::HttpFailsafeProbe`] and [`peers::HttpPeerProbe`] ask members over REST. The driver and the API
//! share the DCS and PostgreSQL control through `Arc`s (ha-core implements `Dcs` and `PgControl` for them).

pub mod callbacks;
pub mod failsafe;
pub mod haproxy;
pub mod heartbeat;
pub mod peers;
mod pg_settings;
pub mod reload;
pub mod watchdog;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ha_core::driver::{Driver, DriverSettings};
use ha_core::model::Role;
use ha_core::sync::lock;
use ha_core::time::{Clock, SystemClock};
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::api::ApiContext;
use crate::config::{Config, DaemonRequired};
use crate::dcs::{connect_ctl, connect_node};
use callbacks::{Callback, CallbackHooks};
use heartbeat::HeartbeatLog;
pub use pg_control::fencer;
pub use pg_settings::pg_settings;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Dcs(#[from] crate::dcs::DcsBuildError),
    #[error("PostgreSQL: {0}")]
    Pg(#[from] pg_control::Error),
    #[error("`postgresql.bin_dir` is not set and no /usr/lib/postgresql/*/bin was found")]
    NoBinDir,
    #[error("cannot listen on `restapi.listen` {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Can't start; there is already a node named '{0}' running")]
    DuplicateName(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Allowlist(#[from] crate::api::access::AllowlistError),
    #[error(transparent)]
    Watchdog(#[from] watchdog::WatchdogError),
    #[error("cannot start the fencer process ({0}) and no watchdog device is configured: refusing to run unfenced")]
    Fencer(std::io::Error),
}

/// Sets up logging from the config's `log` section ([`crate::logging`]) unless a subscriber is already installed
/// (`RUST_LOG` replaces the levels).
pub fn init_logging(config: &Config) {
    crate::logging::init(&config.log);
}

/// SIGTERM or SIGINT. The handlers are installed when this is called, not when the future is first polled: the
/// driver polls it only after its first loop, and a SIGTERM during that loop (a bootstrap) took the default action,
/// killing the daemon without stopping PostgreSQL or releasing the lock.
fn terminate_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match handlers {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => info!("SIGTERM: stopping PostgreSQL and releasing the leader lock"),
                    _ = i.recv() => info!("SIGINT: stopping PostgreSQL and releasing the leader lock"),
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
}

/// Patroni's `ensure_unique_name`: a member key with our name whose REST API answers `/liveness` belongs to another
/// running node (a copied config, a second daemon on the same host); two daemons with one name would fight over one
/// member key and one lock. A member key left by our own previous run does not answer, so a restart is not blocked.
pub async fn ensure_unique_name(
    dcs: &Arc<dyn ha_core::dcs::DcsClient>,
    name: &str,
) -> Result<(), DaemonError> {
    ensure_unique_name_with(dcs, name, &crate::client::http_client()).await
}

/// [`ensure_unique_name`] with this node's own REST client (its CA and client certificate, for members serving
/// HTTPS with `verify_client`).
pub async fn ensure_unique_name_with(
    dcs: &Arc<dyn ha_core::dcs::DcsClient>,
    name: &str,
    http: &reqwest::Client,
) -> Result<(), DaemonError> {
    let Ok(cluster) = dcs.load().await else {
        return Ok(());
    };
    let Some(api) = cluster.member(name).and_then(|m| m.data.api_url.clone()) else {
        return Ok(());
    };
    let url = format!(
        "{}/liveness",
        api.trim_end_matches('/').trim_end_matches("/patroni")
    );
    let alive = http
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_or(false, |r| r.status().is_success());
    if alive {
        error!(
            critical = true,
            "Can't start; there is already a node named '{name}' running"
        );
        return Err(DaemonError::DuplicateName(name.to_string()));
    }
    Ok(())
}

/// Runs a node until SIGTERM/SIGINT. `config_path` is re-read on SIGHUP.
/// Loops after which start-up is over: by then the configuration was parsed, the REST API and the fencer started,
/// PostgreSQL observed and renewed or followed twice; the code only they used is unmapped (see
/// [`pg_control::working_set`]).
const STARTUP_LOOPS: u32 = 2;

/// Unmaps the start-up pages: an idle node then keeps the ~6 MiB of code its loop touches resident instead of its
/// whole 10 MiB binary.
fn release_startup_pages() {
    match pg_control::working_set::release_startup_pages() {
        Ok(r) => debug!(
            mappings = r.mappings,
            kb = r.kb,
            "released the start-up pages"
        ),
        Err(e) => debug!(error = %e, "could not release the start-up pages"),
    }
}

pub async fn run(config: Config, config_path: Option<PathBuf>) -> Result<(), DaemonError> {
    let required = config.validate_for_daemon()?;
    init_logging(&config);
    let span = info_span!("hactl", node = %required.name, cluster = %config.scope);
    run_inner(config, required, config_path)
        .instrument(span)
        .await
}

async fn run_inner(
    config: Config,
    required: DaemonRequired,
    config_path: Option<PathBuf>,
) -> Result<(), DaemonError> {
    for w in &config.warnings {
        warn!(warning = %w, "config");
    }
    let timing = config.bootstrap.dcs.timing();
    let identity = config.node_identity(crate::VERSION);
    let settings = pg_settings(&config)?;
    let dynamic_cache = settings.data_dir.join("patroni.dynamic.json");
    let cached_config = std::fs::read(&dynamic_cache)
        .ok()
        .and_then(|b| serde_json::from_slice::<ha_core::model::GlobalConfig>(&b).ok());
    let promise = Arc::new(crate::api::failsafe_promise::PromiseFile::new(
        settings.state_file.with_extension("failsafe.json"),
    ));
    let pg = Arc::new(pg_control::PgCtl::new(settings).await?);
    let node_dcs = connect_node(&config)?;
    let api_dcs = connect_ctl(&config)?;
    // A DCS that refuses our certificate, CA or credentials refuses the start, naming the key; an unreachable one
    // does not (the node waits for it, as always).
    crate::dcs::check_credentials(&config, &*api_dcs).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    // Every TLS and access setting is read and checked before anything starts: one that cannot be honoured
    // refuses the start, naming its key.
    let server_tls = match &config.restapi.tls {
        Some(t) => Some(Arc::new(crate::tls::server::ServerTls::new(t.clone())?)),
        None => None,
    };
    let access = crate::api::access::AccessPolicy {
        allowlist: crate::api::access::AccessPolicy::resolve_allowlist(&config.restapi.allowlist)?,
        include_members: config.restapi.allowlist_include_members,
        client_cert_required: server_tls
            .as_ref()
            .is_some_and(|t| t.verify_client() != crate::tls::VerifyClient::None),
    };
    let http = crate::client::http_client_with(&config.client_tls())?;
    if config.restapi.authentication.is_none() {
        warn!(
            "the REST API accepts changes (switchover, restart, PATCH /config, POST /failsafe) WITHOUT \
             AUTHENTICATION: set `restapi.authentication` (PATRONI_RESTAPI_USERNAME/PASSWORD){}",
            if access.client_cert_required { "; client certificates are required" } else { "" }
        );
    }
    ensure_unique_name_with(&api_dcs, &identity.name, &http).await?;

    let hooks = Arc::new(CallbackHooks::new(
        config.postgresql.callbacks.clone(),
        config.postgresql.pre_promote.clone(),
        config.scope.clone(),
        // pre_promote runs while we hold a fresh lease: it must end well before the lease could.
        Duration::from_millis(timing.lease_valid_ms() / 2),
    ));
    let mut driver = Driver::new(
        node_dcs,
        pg.clone(),
        clock.clone(),
        DriverSettings {
            identity: identity.clone(),
            bootstrap_config: config.bootstrap.dcs.clone(),
            replica_without_leader: pg.can_create_replica_without_leader(),
            failsafe_promises_kept: true,
            cached_config,
            use_pg_rewind: config.postgresql.use_pg_rewind,
            remove_data: ha_core::decision::RemoveData {
                on_rewind_failure: config.postgresql.remove_data_directory_on_rewind_failure,
                on_diverged_timelines: config
                    .postgresql
                    .remove_data_directory_on_diverged_timelines,
            },
            ..Default::default()
        },
    )
    .with_hooks(Box::new((
        hooks.clone(),
        haproxy::HaproxyHooks::new(&config.haproxy, &identity.name),
    )))
    .with_failsafe_probe(Box::new(failsafe::HttpFailsafeProbe {
        http: http.clone(),
        auth: config.restapi.authentication.clone(),
        conn_url: identity.conn_url.clone(),
        api_url: identity.api_url.clone(),
    }))
    .with_peer_probe(Box::new(peers::HttpPeerProbe {
        http: http.clone(),
        auth: config.restapi.authentication.clone(),
    }));
    // Patroni's `proxy_url` in the member key (`postgresql.proxy_address`): what pooler-aware tools route to.
    if let Some(url) = config.proxy_url() {
        driver
            .requests()
            .set_member_extra("proxy_url", Some(serde_json::Value::String(url)));
    }
    // A `/dev/watchdog` device when configured (`required`: it must open now); the process fencer whenever no
    // device works (see `watchdog::DeviceOrFencer`).
    let device =
        watchdog::DeviceWatchdog::from_config(&config.watchdog, timing.ttl_ms as f64 / 1000.0)?;
    if device.is_some() {
        info!(device = %config.watchdog.device.display(), "watchdog device configured: the process fencer arms only while it fails");
    }
    let data_dir = required.data_dir.clone();
    let fencer: Option<Box<dyn ha_core::watchdog::Watchdog>> = match std::env::current_exe()
        .and_then(|exe| {
            // The small `hactl-fencer` beside this binary (a package installs both); else this binary's own mode.
            let small = exe.with_file_name("hactl-fencer");
            let command = move || {
                if small.is_file() {
                    let mut cmd = std::process::Command::new(&small);
                    cmd.arg(&data_dir);
                    cmd
                } else {
                    let mut cmd = std::process::Command::new(&exe);
                    cmd.arg("fencer").arg(&data_dir);
                    cmd
                }
            };
            ha_core::watchdog::process::ProcessWatchdog::spawn(Box::new(command), clock.clone())
        }) {
        Ok(w) => {
            info!(pid = w.pid(), "fencer started");
            Some(Box::new(w))
        }
        // Fail closed: without a fence a frozen or killed daemon's primary keeps taking writes after its lease ends
        // and another node promotes. A working watchdog device is a fence of its own.
        Err(e) if device.is_none() => return Err(DaemonError::Fencer(e)),
        Err(e) => {
            error!(error = %e, "cannot start the fencer: the watchdog device is the only fence");
            None
        }
    };
    driver = driver.with_watchdog(Box::new(watchdog::DeviceOrFencer::new(device, fencer)));

    // The REST API.
    let listen = &required.restapi_listen;
    let addr = format!("{}:{}", listen.bind_host(), listen.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let requests = driver.requests();
    // A promise made before this restart still binds (see `api::failsafe_promise::PromiseFile`).
    if let Some(p) = promise.load(&*clock) {
        info!(leader = %p.0, "keeping the failsafe promise made before the restart");
        *lock(&driver.failsafe_inbox()) = Some(p);
    }
    let reload_requests = Arc::new(tokio::sync::Notify::new());
    let notify = reload_requests.clone();
    let ctx = ApiContext::new(
        identity.clone(),
        config.scope.clone(),
        Arc::new(driver.subscribe()),
        api_dcs,
        clock.clone(),
    )
    .with_auth(config.restapi.authentication.clone())
    .with_access(access)
    .with_driver_channels(driver.requests(), driver.failsafe_inbox())
    .with_failsafe_promise_file(promise)
    .with_reload(Arc::new(move || notify.notify_one()))
    .with_pg(pg.clone());
    let (api_stop_tx, api_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let options = crate::api::server::ServeOptions {
        tls: server_tls.clone(),
        extra_headers: config
            .restapi
            .extra_headers
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.parse().ok()?)))
            .collect(),
    };
    let api = tokio::spawn(crate::api::serve_with(
        listener,
        Arc::new(ctx),
        options,
        async move {
            let _ = api_stop_rx.await;
        },
    ));
    info!(%addr, https = server_tls.is_some(), "REST API listening");

    // One line per loop: the driver logs loops that change something; this logs the heartbeats (renew, publish).
    let mut reports = driver.subscribe();
    let role = Arc::new(std::sync::Mutex::new(Role::Replica));
    let role_w = role.clone();
    let mut heartbeats = HeartbeatLog::new(config.log.deduplicate_heartbeat_logs);
    let mut cached: Option<ha_core::model::GlobalConfig> = None;
    let watcher = tokio::spawn(async move {
        let mut loops = 0u32;
        while reports.changed().await.is_ok() {
            let Some(r) = reports.borrow_and_update().clone() else {
                continue;
            };
            loops += 1;
            if loops == STARTUP_LOOPS {
                release_startup_pages();
            }
            // The cluster's configuration as last read, in the data directory as Patroni keeps it
            // (`patroni.dynamic.json`): the next start uses it until the DCS answers.
            if let Ok(c) = &r.cluster {
                let cfg = c.config.as_ref().map(|v| &v.value);
                if cfg.is_some() && cfg != cached.as_ref() && r.pg.system_id.is_some() {
                    let body = serde_json::to_vec(&cfg).unwrap_or_default();
                    match crate::files::write_atomically(&dynamic_cache, &body) {
                        Ok(()) => cached = cfg.cloned(),
                        Err(e) => {
                            warn!(file = ?dynamic_cache, error = %e, "could not cache the dynamic configuration")
                        }
                    }
                }
            }
            if heartbeats.should_log(&r.decision) {
                info!("{}", r.decision.reason);
            }
            *lock(&role_w) = if r.pg.is_primary() {
                Role::Primary
            } else {
                Role::Replica
            };
        }
    });

    // SIGHUP and POST /reload.
    let reloader = reload::Reloader::new(
        config_path,
        config.clone(),
        pg.clone(),
        hooks.clone(),
        requests,
        server_tls.clone(),
    );
    let reload_role = role.clone();
    let reloader = tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).ok();
        loop {
            tokio::select! {
                _ = reload_requests.notified() => info!("reload requested over REST"),
                Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => info!("SIGHUP: reloading"),
            }
            let r = *lock(&reload_role);
            reloader.reload(r).await;
        }
    });

    let stop = terminate_signal();
    info!(version = crate::VERSION, "hactl started");
    let driver = driver.run(stop).await;
    // The driver stopped PostgreSQL and released the lock; tell the scripts, then stop serving.
    if !driver.local_state().last_config.is_paused() {
        if let Some(cmd) = &config.postgresql.callbacks.on_stop {
            let r = *lock(&role);
            let _ = callbacks::run_with_timeout(
                cmd,
                &[Callback::OnStop.as_str(), r.as_str(), &config.scope],
                callbacks::CALLBACK_TIMEOUT,
            )
            .await;
        }
    }
    reloader.abort();
    watcher.abort();
    let _ = api_stop_tx.send(());
    let _ = api.await;
    drop(driver);
    info!("hactl stopped");
    Ok(())
}
