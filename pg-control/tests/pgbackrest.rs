//! Replicas made from a pgBackRest backup (Patroni's documented `create_replica_methods` example, with Debian's
//! `pgbackrest`): a real repository in the test's directory, the primary archiving into it, a full backup, then
//! - a member whose own `create_replica_methods` is `[pgbackrest]` (`no_params`, `keep_data`, as Patroni's docs
//!   write it) is restored from the backup and streams from the primary;
//! - a standby cluster's leader whose own list is the default (pg_basebackup) but whose
//!   `standby_cluster.create_replica_methods` names `pgbackrest` is restored from the backup too.
//!
//! pgBackRest leaves its `restore_command` (`archive-get`) in `postgresql.auto.conf`: that is how the test knows
//! the restore, not pg_basebackup, made the data directory.
//!
//! The same servers check `postgresql.recovery_conf`: the cluster-wide one reaches a member's standby
//! configuration (not the primary's), and a node's own replaces it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{sql, upstream, wait_for, World};
use ha_core::pg::{RemoteSource, Upstream};
use pg_control::{PgCtl, ReplicaMethod};

const PGBACKREST: &str = "/usr/bin/pgbackrest";
const STANZA: &str = "demo";

/// pgBackRest, or `None` (skip) when it is missing; under CI=true a missing pgBackRest fails.
fn pgbackrest() -> Option<PathBuf> {
    let r = if Path::new(PGBACKREST).is_file() {
        Ok(PathBuf::from(PGBACKREST))
    } else {
        Err(format!("{PGBACKREST} is missing"))
    };
    ha_core::testing::or_skip(r, |_| true, "pgBackRest")
}

/// Runs pgBackRest as the PostgreSQL user (as root: through runuser), failing the test on a non-zero exit.
fn run_pgbackrest(conf: &Path, args: &[&str]) {
    let config = format!("--config={}", conf.display());
    let stanza = format!("--stanza={STANZA}");
    let mut cmd = if common::is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", PGBACKREST]);
        c
    } else {
        Command::new(PGBACKREST)
    };
    let out = cmd.arg(&config).arg(&stanza).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "pgbackrest {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository and a config file (readable by the PostgreSQL user) for a stanza on `primary`.
fn repository(w: &World, primary_data: &Path, primary_port: u16) -> PathBuf {
    let dir = w.path().join("pgbackrest");
    for sub in ["repo", "log", "lock"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let conf = dir.join("pgbackrest.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nrepo1-path={}\nlog-path={}\nlock-path={}\nlog-level-console=warn\nlog-level-file=off\n\
             start-fast=y\ncompress-type=none\n\n[{STANZA}]\npg1-path={}\npg1-port={primary_port}\n\
             pg1-socket-path={}\npg1-user=postgres\n",
            dir.join("repo").display(),
            dir.join("log").display(),
            dir.join("lock").display(),
            primary_data.display(),
            w.path().display(),
        ),
    )
    .unwrap();
    if common::is_root() {
        let (uid, gid) = common::postgres_ids();
        for p in [
            &dir,
            &dir.join("repo"),
            &dir.join("log"),
            &dir.join("lock"),
            &conf,
        ] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
        }
    }
    conf
}

/// Patroni's documented pgBackRest method: `pgbackrest --stanza=<scope> --delta restore`, `keep_data`,
/// `no_params`; the restore goes into this node's data directory (`--pg1-path`).
fn pgbackrest_method(conf: &Path, data_dir: &Path) -> ReplicaMethod {
    ReplicaMethod {
        name: "pgbackrest".into(),
        argv: vec![
            PGBACKREST.into(),
            format!("--config={}", conf.display()),
            format!("--stanza={STANZA}"),
            format!("--pg1-path={}", data_dir.display()),
            "--delta".into(),
            "restore".into(),
        ],
        keep_data: true,
        no_params: true,
        ..Default::default()
    }
}

/// The replica was restored by pgBackRest (its restore_command is there), streams from the primary, and has the
/// rows written before the backup and after it.
async fn assert_restored_and_streaming(replica: &PgCtl, rows: u64) {
    let auto =
        std::fs::read_to_string(replica.settings().data_dir.join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains("archive-get"),
        "pgBackRest's restore_command is in postgresql.auto.conf, so pgBackRest made the replica: {auto}"
    );
    assert!(replica.observe().await.is_replica());
    let want = [rows.to_string()];
    wait_for(
        std::time::Duration::from_secs(30),
        "the restored replica to stream the rows written after the backup",
        || async {
            sql(replica, "SELECT count(*) FROM t").await == want
                && sql(replica, "SELECT status FROM pg_stat_wal_receiver").await == ["streaming"]
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_restored_from_a_pgbackrest_backup_and_stream() {
    let Some(bin) = common::pg_bin() else { return };
    let Some(_) = pgbackrest() else { return };
    let mut w = World::new(bin);

    let mut s1 = w.settings("n1");
    let conf = repository(&w, &s1.data_dir, s1.port);
    s1.parameters.insert("archive_mode".into(), "on".into());
    s1.parameters.insert(
        "archive_command".into(),
        format!(
            "{PGBACKREST} --config={} --stanza={STANZA} archive-push %p",
            conf.display()
        ),
    );
    let n1 = PgCtl::new(s1).await.expect("settings");
    n1.bootstrap().await.expect("bootstrap n1");
    n1.execute_local("CREATE TABLE t(v int); INSERT INTO t SELECT generate_series(1, 100)")
        .await
        .unwrap();
    run_pgbackrest(&conf, &["stanza-create"]);
    run_pgbackrest(&conf, &["--type=full", "backup"]);
    n1.execute_local("INSERT INTO t SELECT generate_series(101, 150)")
        .await
        .unwrap();

    // A member whose create_replica_methods is [pgbackrest]: restored, then streams from the primary.
    let mut s2 = w.settings("n2");
    s2.replica_methods = vec![pgbackrest_method(&conf, &s2.data_dir)];
    let n2 = PgCtl::new(s2).await.expect("settings");
    let cluster_recovery_conf =
        BTreeMap::from([("recovery_min_apply_delay".to_string(), "50ms".to_string())]);
    for n in [&n1, &n2] {
        n.apply_cluster_config(&BTreeMap::new(), &cluster_recovery_conf)
            .await
            .unwrap();
    }
    n2.clone_from(&upstream(&n1))
        .await
        .expect("restored by pgbackrest");
    n2.start_replica(Some(&upstream(&n1)))
        .await
        .expect("start n2");
    assert_restored_and_streaming(&n2, 150).await;
    assert_eq!(
        sql(&n2, "SHOW recovery_min_apply_delay").await,
        ["50ms"],
        "the cluster's recovery_conf"
    );
    assert_eq!(
        sql(&n1, "SHOW recovery_min_apply_delay").await,
        ["0"],
        "a primary has no recovery settings"
    );

    // A standby cluster's leader: its own list is pg_basebackup, the standby cluster's names pgbackrest.
    let mut s3 = w.settings("n3");
    s3.other_replica_methods = vec![pgbackrest_method(&conf, &s3.data_dir)];
    s3.recovery_conf =
        BTreeMap::from([("recovery_min_apply_delay".to_string(), "20ms".to_string())]);
    let n3 = PgCtl::new(s3).await.expect("settings");
    n3.apply_cluster_config(&BTreeMap::new(), &cluster_recovery_conf)
        .await
        .unwrap();
    let source = Upstream {
        remote: Some(RemoteSource {
            create_replica_methods: vec!["pgbackrest".into()],
            ..Default::default()
        }),
        ..upstream(&n1)
    };
    n3.clone_from(&source)
        .await
        .expect("restored by pgbackrest");
    n3.start_replica(Some(&source)).await.expect("start n3");
    n1.execute_local("INSERT INTO t SELECT generate_series(151, 160)")
        .await
        .unwrap();
    assert_restored_and_streaming(&n3, 160).await;
    assert_eq!(
        sql(&n3, "SHOW recovery_min_apply_delay").await,
        ["20ms"],
        "the node's own recovery_conf replaces the cluster's"
    );
    assert_restored_and_streaming(&n2, 160).await;
}
