//! The `hactl` command line: `hactl run CONFIG.yml`, `hactl validate CONFIG.yml`, and patronictl's commands
//! (`hactl -c CONFIG.yml list`, `switchover`, `edit-config`...). Parsing lives here, the commands in [`ctl`], so an
//! embedding product can run a command against its own DCS and writer.

pub mod ctl;
pub mod setup;
pub mod table;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// patronictl's tables.
    #[default]
    Pretty,
    /// Tab-separated values (or `--delimiter`), a header row first: for `cut` and `awk`.
    Tsv,
    /// One JSON document, for scripts.
    Json,
    #[value(alias = "yml")]
    Yaml,
}

/// A command's own `-f/--format` (patronictl puts it after the command: `list -f json`); it wins over the one
/// given before the command.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct FormatArg {
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum)]
    pub format: Option<OutputFormat>,
}

/// patronictl's `-W` and `-w/--watch SECONDS`: print again every 2 (or SECONDS) seconds until interrupted.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct WatchArg {
    /// Auto update the screen every 2 seconds.
    #[arg(short = 'W')]
    pub every_two: bool,
    /// Auto update the screen every X seconds.
    #[arg(short = 'w', long = "watch")]
    pub watch: Option<f64>,
}

impl WatchArg {
    /// The interval, if watching.
    pub fn interval(&self) -> Option<std::time::Duration> {
        match (self.watch, self.every_two) {
            (Some(s), _) if s > 0.0 && s.is_finite() => Some(std::time::Duration::from_secs_f64(s)),
            (_, true) => Some(std::time::Duration::from_secs(2)),
            _ => None,
        }
    }
}

/// `hactl`: PostgreSQL high availability, Patroni-compatible.
#[derive(Debug, Parser)]
#[command(name = "hactl", version = crate::LONG_VERSION, about, propagate_version = true)]
pub struct Cli {
    /// The Patroni-format config file (patronictl's `-c`); the PATRONI_* environment applies on top. Without it,
    /// `~/.config/patroni/patronictl.yaml` when that exists, as patronictl.
    #[arg(short = 'c', long = "config-file", env = "PATRONICTL_CONFIG_FILE")]
    pub config: Option<PathBuf>,
    /// The DCS to use instead of the config's: `DCS://HOST:PORT/NAMESPACE` (`etcd3`, `etcd`, `consul`,
    /// `zookeeper`), as patronictl's `--dcs-url`.
    #[arg(short = 'd', long = "dcs-url", visible_alias = "dcs", env = "DCS_URL")]
    pub dcs_url: Option<String>,
    /// Accept any certificate from members' REST APIs (`ctl.insecure`).
    #[arg(short = 'k', long = "insecure")]
    pub insecure: bool,
    /// A Citus group of the cluster: its keys under `<scope>/<group>/`, as patronictl's `--group`.
    #[arg(long = "group", global = true)]
    pub group: Option<u32>,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = OutputFormat::Pretty)]
    pub format: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Members named on the command line; a first word equal to the cluster name is the cluster, as in patronictl's
/// `restart <cluster> [members]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Targets {
    /// `[CLUSTER] [MEMBER]...`
    pub names: Vec<String>,
}

/// patronictl's role choices (`standby-leader` and `standby` included).
const ROLES: [&str; 6] = [
    "leader",
    "primary",
    "standby-leader",
    "replica",
    "standby",
    "any",
];

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon for the node described by CONFIG.
    Run {
        /// The config file (or `-c`).
        config: Option<PathBuf>,
    },
    /// Check a config file without starting anything.
    Validate { config: Option<PathBuf> },
    /// The members and their state.
    List {
        /// Clusters to list (the configured one by default).
        clusters: Vec<String>,
        /// Show pending restarts, scheduled restarts and tags.
        #[arg(short = 'e', long)]
        extended: bool,
        /// Print a timestamp first.
        #[arg(short = 't', long)]
        timestamp: bool,
        #[command(flatten)]
        format: FormatArg,
        #[command(flatten)]
        watch: WatchArg,
    },
    /// `list`, indented by replication topology.
    Topology {
        clusters: Vec<String>,
        #[command(flatten)]
        watch: WatchArg,
    },
    /// Run SQL on a member (the leader by default) and print the rows, as patronictl's `query`.
    Query {
        cluster: Option<String>,
        /// The SQL to run.
        #[arg(short = 'c', long = "command")]
        command: Option<String>,
        /// Run the SQL in this file.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// The member's role: leader, primary, standby-leader, replica, standby, any.
        #[arg(short = 'r', long, value_parser = ROLES)]
        role: Option<String>,
        /// Query this member.
        #[arg(short = 'm', long)]
        member: Option<String>,
        #[arg(short = 'U', long)]
        username: Option<String>,
        /// Ask for the password.
        #[arg(long)]
        password: bool,
        #[arg(short = 'd', long)]
        dbname: Option<String>,
        /// The column delimiter (tsv).
        #[arg(long, default_value = "\t")]
        delimiter: String,
        #[arg(long = "format", value_enum, default_value_t = OutputFormat::Tsv)]
        format: OutputFormat,
        #[command(flatten)]
        watch: WatchArg,
    },
    /// Move the leader role to a replica, now or at a given time.
    Switchover {
        cluster: Option<String>,
        #[arg(long, alias = "master", visible_alias = "primary")]
        leader: Option<String>,
        #[arg(long)]
        candidate: Option<String>,
        /// `now` or an ISO 8601 time with a zone.
        #[arg(long)]
        scheduled: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
    },
    /// Promote a given replica, with or without a healthy leader.
    Failover {
        cluster: Option<String>,
        #[arg(long)]
        candidate: Option<String>,
        #[arg(long)]
        force: bool,
    },
    /// Change the cluster-wide configuration (the DCS `config` key).
    EditConfig {
        cluster: Option<String>,
        /// `key=value` (dotted keys, YAML values; `null` removes the key).
        #[arg(short = 's', long = "set")]
        set: Vec<String>,
        /// A PostgreSQL parameter: `name=value`.
        #[arg(short = 'p', long = "pg")]
        pg: Vec<String>,
        /// Merge a YAML file (`-` for stdin) into the config.
        #[arg(long)]
        apply: Option<PathBuf>,
        /// Replace the config with a YAML file.
        #[arg(long)]
        replace: Option<PathBuf>,
        /// Do not show the diff.
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long)]
        force: bool,
    },
    /// Print the cluster-wide configuration.
    ShowConfig { cluster: Option<String> },
    /// Restart PostgreSQL on members (all by default).
    Restart {
        #[command(flatten)]
        targets: Targets,
        #[arg(short = 'r', long, value_parser = ROLES)]
        role: Option<String>,
        /// Restart one member only.
        #[arg(long)]
        any: bool,
        /// `now` or an ISO 8601 time with a zone.
        #[arg(long)]
        scheduled: Option<String>,
        /// Only members running a PostgreSQL version older than this.
        #[arg(long = "pg-version")]
        pg_version: Option<String>,
        /// Only members with a pending restart.
        #[arg(long)]
        pending: bool,
        /// Seconds to wait for the restart.
        #[arg(long)]
        timeout: Option<String>,
        #[arg(long)]
        force: bool,
    },
    /// Reload the configuration of members (all by default).
    Reload {
        #[command(flatten)]
        targets: Targets,
        #[arg(short = 'r', long, value_parser = ROLES)]
        role: Option<String>,
        #[arg(long)]
        force: bool,
    },
    /// Wipe and re-clone replicas.
    Reinit {
        #[command(flatten)]
        targets: Targets,
        #[arg(long)]
        force: bool,
        /// Wait until the members run again.
        #[arg(long)]
        wait: bool,
        /// Clone from the leader (hactl always does; the flag is sent as patronictl sends it).
        #[arg(long = "from-leader")]
        from_leader: bool,
    },
    /// Maintenance mode: no automatic failover, PostgreSQL left alone.
    Pause {
        cluster: Option<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Leave maintenance mode.
    Resume {
        cluster: Option<String>,
        #[arg(long)]
        wait: bool,
    },
    /// The timeline history (failovers and switchovers).
    History {
        cluster: Option<String>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Delete every key of the cluster from the DCS (asks for the cluster and leader names).
    Remove {
        cluster: Option<String>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Cancel a scheduled restart or switchover.
    Flush {
        /// `[CLUSTER] [MEMBER]... restart|switchover`
        #[command(flatten)]
        targets: Targets,
        /// Flush only members with this role.
        #[arg(short = 'r', long, value_parser = ROLES)]
        role: Option<String>,
        #[arg(long)]
        force: bool,
    },
    /// The watchdog process the daemon starts (internal).
    #[command(hide = true)]
    Fencer { data_dir: PathBuf },
    /// confd built in: render the confd template resources in CONFDIR from the cluster's keys and, when a file
    /// changes, check it, replace it and reload (e.g. HAProxy's config as members come and go).
    Template {
        /// confd's `-confdir`: holds `conf.d/*.toml` and `templates/`.
        #[arg(long, default_value = "/etc/confd")]
        confdir: PathBuf,
        /// Render once and exit (non-zero when a resource failed), as confd's `-onetime`.
        #[arg(long)]
        onetime: bool,
        /// Seconds between two reads of the DCS (default: the cluster's loop_wait).
        #[arg(long)]
        interval: Option<f64>,
    },
    /// The connection string of the leader (or of a member with `--role`, or `--member`), as patronictl's `dsn`.
    Dsn {
        cluster: Option<String>,
        #[arg(short = 'r', long, value_parser = ROLES)]
        role: Option<String>,
        #[arg(short = 'm', long)]
        member: Option<String>,
    },
    /// Demote the cluster to a standby cluster of another (Patroni 4's `demote-cluster`).
    DemoteCluster {
        cluster: Option<String>,
        /// Address of the source cluster's primary.
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        port: Option<u16>,
        /// Command to restore WAL from the source's archive.
        #[arg(long)]
        restore_command: Option<String>,
        /// The slot on the source to stream from.
        #[arg(long)]
        primary_slot_name: Option<String>,
        #[arg(long)]
        force: bool,
    },
    /// Promote a standby cluster: it runs standalone (Patroni 4's `promote-cluster`).
    PromoteCluster {
        cluster: Option<String>,
        #[arg(long)]
        force: bool,
    },
    /// hactl's version, and with a cluster each member's.
    Version {
        #[command(flatten)]
        targets: Targets,
    },
}

/// What the binary does with parsed arguments: `validate`, `run`, or a ctl command. Returns the error to print.
pub fn main_with(cli: Cli) -> Result<(), ctl::CliError> {
    if let Command::Fencer { data_dir } = &cli.command {
        crate::daemon::fencer::run(data_dir);
        return Ok(());
    }
    let env = crate::config::process_env();
    let config = match &cli.command {
        Command::Run { config } | Command::Validate { config } => {
            let path = config.clone().or(cli.config.clone());
            crate::config::Config::load(path.as_deref(), &env).map(|c| (c, path))?
        }
        _ => (setup::ctl_config(&cli, &env)?, None),
    };
    let (config, config_path) = config;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match &cli.command {
        Command::Validate { .. } => {
            config.validate_for_daemon()?;
            for w in &config.warnings {
                eprintln!("Warning: {w}");
            }
            println!(
                "{}: valid",
                config_path
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "configuration".into())
            );
            Ok(())
        }
        Command::Run { .. } => runtime
            .block_on(crate::daemon::run(config, config_path))
            .map_err(|e| ctl::CliError::Failed(e.to_string())),
        Command::Template {
            confdir,
            onetime,
            interval,
        } => {
            crate::logging::init(&config.log);
            let opts = crate::template::Options {
                confdir: confdir.clone(),
                onetime: *onetime,
                interval: interval
                    .filter(|s| *s > 0.0 && s.is_finite())
                    .map(std::time::Duration::from_secs_f64),
                bootstrap_interval: std::time::Duration::from_millis(
                    config.bootstrap.dcs.timing().loop_wait_ms,
                ),
            };
            let dcs = crate::dcs::connect_ctl(&config)?;
            let cluster = ha_core::model::KeyPath::new(&config.namespace, &config.scope);
            runtime
                .block_on(crate::template::run(dcs, cluster, opts))
                .map_err(|e| ctl::CliError::Failed(e.to_string()))
        }
        cmd => runtime.block_on(ctl::run_ctl(&config, cli.format, cli.group, cmd)),
    }
}
