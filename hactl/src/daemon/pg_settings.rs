//! pg-control's settings from the `postgresql:` section of the configuration: data and binary directories,
//! addresses, credentials, TLS options, replica and bootstrap methods, timeouts derived from the timing.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tracing::warn;

use super::DaemonError;
use crate::config::Config;

/// The newest `/usr/lib/postgresql/<major>/bin` (Debian's layout), for configs without `bin_dir`.
fn find_bin_dir() -> Option<PathBuf> {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, p)| p)
}

fn param_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "on".into(),
        Value::Bool(false) => "off".into(),
        other => other.to_string(),
    }
}

/// pg-control's settings from the `postgresql:` section (and `bootstrap.initdb`/`pg_hba`).
pub fn pg_settings(config: &Config) -> Result<pg_control::PgSettings, DaemonError> {
    let pg = &config.postgresql;
    let name = config.name.clone().unwrap_or_default();
    let bin_dir = match &pg.bin_dir {
        Some(b) => b.clone(),
        None => find_bin_dir().ok_or(DaemonError::NoBinDir)?,
    };
    let listen = pg
        .listen
        .clone()
        .ok_or_else(|| crate::config::ConfigError::Missing {
            key: "postgresql.listen".into(),
        })?;
    let data_dir = pg
        .data_dir
        .clone()
        .ok_or_else(|| crate::config::ConfigError::Missing {
            key: "postgresql.data_dir".into(),
        })?;
    let mut s = pg_control::PgSettings::new(&name, bin_dir, data_dir, listen.port);
    s.listen_host = match listen.host.as_str() {
        "" | "*" => "*".into(),
        h => h.to_string(),
    };
    if let Some(c) = &pg.connect_address {
        s.connect_host = c.host.clone();
    }
    if !pg.database.is_empty() {
        s.database = pg.database.clone();
    }
    s.custom_conf = pg.custom_conf.clone();
    s.config_dir = pg.config_dir.clone();
    if let Some(dirs) = pg.parameters.get("unix_socket_directories") {
        if let Some(first) = param_text(dirs)
            .split(',')
            .map(str::trim)
            .find(|d| !d.is_empty())
        {
            s.socket_dir = PathBuf::from(first);
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        s.os_user = Some("postgres".into());
    }
    // Each role with its libpq options (sslmode & co.): pg-control carries them into every connection to another
    // member and refuses, naming the key, what it cannot honour.
    let creds = |u: &crate::config::PgUser| pg_control::Credentials {
        options: u.options.clone(),
        ..pg_control::Credentials::new(&u.username, u.password.as_deref())
    };
    if let Some(u) = &pg.authentication.superuser {
        s.superuser = creds(u);
    }
    if let Some(u) = &pg.authentication.replication {
        s.replication = creds(u);
    }
    s.rewind = pg.authentication.rewind.as_ref().map(creds);
    s.parameters = pg
        .parameters
        .iter()
        .filter(|(k, _)| k.as_str() != "unix_socket_directories")
        .map(|(k, v)| (k.clone(), param_text(v)))
        .collect();
    s.pg_hba = if pg.pg_hba.is_empty() {
        config.bootstrap.pg_hba.clone()
    } else {
        pg.pg_hba.clone()
    };
    // pg-control talks to its server over the unix socket; Patroni's documented pg_hba lists only `host` lines
    // (Patroni connects over TCP). Without a `local` line the bootstrap could not connect, so add one for the
    // superuser only, with its password (peer cannot work: the daemon may run as root).
    if !s.pg_hba.is_empty() && !s.pg_hba.iter().any(|l| l.trim_start().starts_with("local")) {
        let line = format!("local all {} scram-sha-256", s.superuser.username);
        warn!(%line, "pg_hba has no `local` line: adding one so hactl can reach its own server over the socket");
        s.pg_hba.insert(0, line);
    }
    s.initdb = config
        .bootstrap
        .initdb
        .iter()
        .map(|o| match o {
            crate::config::InitdbOption::Flag(f) => pg_control::InitdbOption::flag(f),
            crate::config::InitdbOption::Value(k, v) => pg_control::InitdbOption::value(k, v),
        })
        .collect();
    s.recovery_conf = pg.recovery_conf.clone();
    s.pg_ident = pg.pg_ident.clone();
    s.bin_name = pg.bin_name.clone();
    s.basebackup_options = pg.basebackup.clone();
    if let Some(p) = &pg.pgpass {
        s.pgpass = p.clone();
    }
    // A custom bootstrap method and post_bootstrap run as Patroni runs them: the command split like a shell
    // line (no shell), `--scope` and `--datadir` unless `no_params`, then the method's other keys.
    let split = |key: &str, cmd: &str| {
        shlex::split(cmd).filter(|v| !v.is_empty()).ok_or_else(|| {
            crate::config::ConfigError::Invalid {
                key: key.to_string(),
                expected: "a command line".into(),
                got: cmd.to_string(),
            }
        })
    };
    if let Some(m) = &config.bootstrap.method {
        let mut argv = split(&format!("bootstrap.{}.command", m.name), &m.command)?;
        if !m.no_params {
            argv.push(format!("--scope={}", config.scope));
            argv.push(format!("--datadir={}", s.data_dir.display()));
        }
        argv.extend(m.params.iter().map(|(k, v)| format!("--{k}={v}")));
        s.custom_bootstrap = Some(pg_control::CustomBootstrap {
            argv,
            keep_existing_recovery_conf: m.keep_existing_recovery_conf,
            recovery_conf: m.recovery_conf.clone(),
        });
    }
    let method = |m: &crate::config::ReplicaMethodConfig| -> Result<pg_control::ReplicaMethod, crate::config::ConfigError> {
        let argv = match &m.command {
            None => Vec::new(),
            Some(cmd) => {
                let mut argv = split(&format!("postgresql.{}.command", m.name), cmd)?;
                if !m.no_params {
                    argv.push(format!("--scope={}", config.scope));
                    argv.push("--role=replica".into());
                    argv.push(format!("--datadir={}", s.data_dir.display()));
                }
                argv.extend(m.params.iter().map(|(k, v)| format!("--{k}={v}")));
                argv
            }
        };
        Ok(pg_control::ReplicaMethod {
            name: m.name.clone(),
            argv,
            no_leader: m.no_leader,
            keep_data: m.keep_data,
            no_params: m.no_params,
        })
    };
    s.replica_methods = config
        .postgresql
        .replica_methods
        .iter()
        .map(method)
        .collect::<Result<_, _>>()?;
    s.other_replica_methods = config
        .postgresql
        .other_replica_methods
        .iter()
        .map(method)
        .collect::<Result<_, _>>()?;
    if let Some(cmd) = &pg.before_stop {
        s.before_stop = Some(split("postgresql.before_stop", cmd)?);
    }
    if let Some(cmd) = &config.bootstrap.post_bootstrap {
        s.post_bootstrap = Some(split("bootstrap.post_bootstrap", cmd)?);
    }
    // One query to a healthy server fits well within retry_timeout; a server slower than that is unresponsive.
    let t = config.bootstrap.dcs.timing();
    s.timeouts.query = Duration::from_millis(t.retry_timeout_ms.clamp(1000, 10_000));
    // A primary's start (crash recovery) is waited for in slices no longer than a DCS call may take, so the lock
    // is renewed meanwhile; primary_start_timeout bounds the whole start.
    s.timeouts.primary_start_wait = Duration::from_millis(t.retry_timeout_ms.clamp(1000, 10_000));
    // Patroni's pg_ctl_timeout bounds pg_ctl's start and stop (60 s by default, as here).
    if let Some(secs) = pg.pg_ctl_timeout {
        s.timeouts.start = Duration::from_secs_f64(secs);
        s.timeouts.stop = Duration::from_secs_f64(secs);
    }
    Ok(s)
}

/// The node's YAML as pg-control receives it: each Patroni key read by the config reaches the settings.
#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::pg_settings;
    use crate::config::test_support::{load, MINIMAL};
    use crate::config::Config;

    #[test]
    fn patronis_per_node_run_keys_reach_pg_control() {
        let yaml = format!(
            "{MINIMAL}  bin_name: {{pg_ctl: pg_ctl-custom, pg_isready: pg_isready-custom, pg_dump: x}}\n  \
             pg_ident: ['ops root postgres']\n  before_stop: /usr/local/bin/pause-pooler --wait 5\n  \
             pg_ctl_timeout: 90\n  basebackup: [verbose, {{max-rate: 100M}}, {{wal-method: fetch}}]\n  \
             config_dir: /etc/postgresql/15/main\n  custom_conf: /etc/postgresql/site.conf\n  database: appdb\n"
        );
        let c = Config::from_yaml_str(&yaml).unwrap();
        assert_eq!(
            c.warnings,
            [
                "`postgresql.bin_name.pg_dump` is not a PostgreSQL binary Patroni renames and is ignored",
                "`postgresql.basebackup.wal-method` is decided by hactl and is ignored",
            ]
        );
        let s = pg_settings(&c).unwrap();
        assert_eq!(
            s.binary("pg_ctl"),
            PathBuf::from("/usr/lib/postgresql/15/bin/pg_ctl-custom")
        );
        assert_eq!(
            s.binary("initdb"),
            PathBuf::from("/usr/lib/postgresql/15/bin/initdb")
        );
        assert_eq!(s.pg_ident, ["ops root postgres"]);
        assert_eq!(
            s.before_stop.as_deref().unwrap(),
            ["/usr/local/bin/pause-pooler", "--wait", "5"]
        );
        assert_eq!(s.timeouts.start, std::time::Duration::from_secs(90));
        assert_eq!(s.timeouts.stop, std::time::Duration::from_secs(90));
        assert_eq!(s.basebackup_options, ["--verbose", "--max-rate=100M"]);
        assert_eq!(
            s.config_dir.as_deref(),
            Some(std::path::Path::new("/etc/postgresql/15/main"))
        );
        assert_eq!(
            s.base_conf(),
            PathBuf::from("/etc/postgresql/site.conf"),
            "an absolute custom_conf stays where it is"
        );
        assert_eq!(s.database, "appdb");

        let map = format!("{MINIMAL}  basebackup: {{max-rate: 100M, checkpoint: spread}}\n");
        let s = pg_settings(&Config::from_yaml_str(&map).unwrap()).unwrap();
        assert_eq!(
            s.basebackup_options,
            ["--max-rate=100M", "--checkpoint=spread"],
            "in the order written"
        );
    }

    #[test]
    fn connection_options_reach_pg_control() {
        let c = load(
            "      sslmode: verify-ca\n      sslrootcert: /etc/pg/ca.crt\n      sslsni: 0\n      channel_binding: require\n",
            &[("PATRONI_SUPERUSER_SSLMODE", "verify-full"), ("PATRONI_SUPERUSER_SSLROOTCERT", "/etc/pg/ca.crt")],
        )
        .unwrap();
        let rep = c.postgresql.authentication.replication.as_ref().unwrap();
        assert_eq!(rep.options["sslmode"], "verify-ca");
        assert_eq!(rep.options["sslsni"], "0");
        let s = pg_settings(&c).unwrap();
        assert_eq!(s.replication.options, rep.options);
        assert_eq!(s.replication.options["channel_binding"], "require");
        assert_eq!(s.superuser.options["sslmode"], "verify-full");
        assert_eq!(s.superuser.options["sslrootcert"], "/etc/pg/ca.crt");
    }

    #[test]
    fn patronis_pgbackrest_example_and_its_recovery_conf_reach_pg_control() {
        let c = load(
            "  recovery_conf: {restore_command: 'pgbackrest --stanza=batman archive-get %f \"%p\"', recovery_min_apply_delay: 0}\n  create_replica_methods: [pgbackrest, basebackup]\n  pgbackrest:\n    command: /usr/bin/pgbackrest --stanza=batman --delta restore\n    keep_data: true\n    no_params: true\n  wal_g:\n    command: wal-g-restore\n    no_leader: 1\n    envdir: /etc/wal-g\n",
            &[],
        )
        .unwrap();
        assert!(
            c.warnings.is_empty(),
            "both sections are acted on: {:?}",
            c.warnings
        );
        let s = pg_settings(&c).unwrap();
        assert_eq!(
            s.recovery_conf["restore_command"],
            "pgbackrest --stanza=batman archive-get %f \"%p\""
        );
        assert_eq!(s.recovery_conf["recovery_min_apply_delay"], "0");
        let names: Vec<&str> = s.replica_methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["pgbackrest", "basebackup"]);
        let pgbr = &s.replica_methods[0];
        assert_eq!(
            pgbr.argv,
            [
                "/usr/bin/pgbackrest",
                "--stanza=batman",
                "--delta",
                "restore"
            ]
        );
        assert!(
            pgbr.keep_data && pgbr.no_params,
            "no --scope/--datadir here and no --connstring later"
        );
        assert_eq!(
            s.other_replica_methods.len(),
            1,
            "{:?}",
            s.other_replica_methods
        );
        let walg = &s.other_replica_methods[0];
        assert_eq!(walg.name, "wal_g");
        assert_eq!(
            walg.argv,
            [
                "wal-g-restore",
                "--scope=batman",
                "--role=replica",
                "--datadir=/data",
                "--envdir=/etc/wal-g"
            ]
        );
        assert!(walg.no_leader && !walg.no_params);
    }
}
