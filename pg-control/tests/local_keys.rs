//! Patroni's per-node `postgresql` keys that change how PostgreSQL is run, on real servers: `bin_name` (a binary
//! under another name), `pg_ident`, `before_stop` (run before a fast stop, not before an immediate one),
//! `basebackup` (pg_basebackup's options, here its label, seen in the copy's `backup_label`), `custom_conf` (the
//! base configuration included instead of postgresql.base.conf) and `database` (the database hactl's own
//! connections use and `conn_url` names).

mod common;

use std::path::Path;

use common::{upstream, World};
use ha_core::pg::StopMode;
use pg_control::PgCtl;

/// A bin directory like a custom distribution's: every binary linked under its usual name, except `pg_ctl`, which
/// is `pg_ctl-custom` there.
fn custom_bin_dir(w: &World) -> std::path::PathBuf {
    let dir = w.path().join("custom-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&w.bin).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let link = if name == "pg_ctl" {
            "pg_ctl-custom".to_string()
        } else {
            name
        };
        std::os::unix::fs::symlink(entry.path(), dir.join(link)).unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_binaries_pg_ident_before_stop_and_basebackup_options_are_used() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let marker = w.path().join("before-stop-ran");

    let mut s1 = w.settings("n1");
    s1.bin_dir = custom_bin_dir(&w);
    s1.bin_name.insert("pg_ctl".into(), "pg_ctl-custom".into());
    s1.pg_ident = vec![
        "# MAPNAME SYSTEM-USERNAME PG-USERNAME".into(),
        "ops  root  postgres".into(),
    ];
    s1.before_stop = Some(vec![
        "sh".into(),
        "-c".into(),
        format!("date > {}", marker.display()),
    ]);
    s1.pg_hba.push("local replication all trust".into());
    s1.database = "template1".into();
    let n1 = PgCtl::new(s1)
        .await
        .expect("settings: pg_ctl is found under its bin_name");
    assert!(
        !n1.settings().bin_dir.join("pg_ctl").exists(),
        "no pg_ctl under its usual name"
    );
    n1.bootstrap()
        .await
        .expect("bootstrap through pg_ctl-custom");
    assert!(n1.observe().await.is_primary());
    let ident = std::fs::read_to_string(n1.settings().data_dir.join("pg_ident.conf")).unwrap();
    assert!(ident.contains("ops  root  postgres"), "{ident}");
    assert_eq!(
        common::sql(
            &n1,
            "SELECT count(*) FROM pg_ident_file_mappings WHERE map_name = 'ops'"
        )
        .await,
        ["1"],
        "the server read the mapping"
    );

    // basebackup options go to pg_basebackup after hactl's own.
    let mut s2 = w.settings("n2");
    s2.basebackup_options = vec!["--label=hactl-basebackup-options".into()];
    let custom = w.path().join("n2-custom.conf");
    std::fs::write(&custom, "work_mem = '7MB'\n").unwrap();
    s2.custom_conf = Some(custom.clone());
    let n2 = PgCtl::new(s2).await.expect("settings");
    n2.clone_from(&upstream(&n1)).await.expect("clone");
    let label = std::fs::read_to_string(n2.settings().data_dir.join("backup_label")).unwrap();
    assert!(label.contains("LABEL: hactl-basebackup-options"), "{label}");
    // custom_conf: the managed postgresql.conf includes the user's file instead of postgresql.base.conf.
    n2.start_replica(Some(&upstream(&n1)))
        .await
        .expect("start the copy");
    let conf = std::fs::read_to_string(n2.settings().data_dir.join("postgresql.conf")).unwrap();
    assert!(
        conf.contains(&format!("include '{}'", custom.display()))
            && !conf.contains("include 'postgresql.base.conf'"),
        "{conf}"
    );
    assert_eq!(common::sql(&n2, "SHOW work_mem").await, ["7MB"]);
    n2.stop(StopMode::Fast).await.unwrap();

    // `database`: the conn_url names it, and hactl's own connections go there: with connections to `postgres`
    // refused, the node still observes itself (and stops, below, with its checkpoint).
    assert_eq!(
        n1.settings().conn_url(),
        format!("postgres://127.0.0.1:{}/template1", n1.settings().port)
    );
    let (admin, conn) = n1
        .local_config("template1")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to template1");
    let task = tokio::spawn(conn);
    admin
        .simple_query("ALTER DATABASE postgres WITH ALLOW_CONNECTIONS false")
        .await
        .expect("refuse connections to postgres");
    task.abort();
    assert!(
        n1.local_config("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .is_err(),
        "postgres still takes connections"
    );
    assert!(
        n1.observe().await.is_primary(),
        "hactl's own connection did not use postgresql.database"
    );

    // before_stop runs before a fast stop, and not before an immediate one.
    assert!(!Path::new(&marker).exists());
    n1.stop(StopMode::Fast).await.unwrap();
    assert!(marker.exists(), "before_stop ran before the fast stop");
    std::fs::remove_file(&marker).unwrap();
    n1.start_primary().await.unwrap();
    n1.stop(StopMode::Immediate).await.unwrap();
    assert!(
        !marker.exists(),
        "an immediate stop does not wait for before_stop"
    );
}

/// `config_dir` (a Debian-style `/etc/postgresql/15/main`): postgresql.conf, the base configuration and pg_hba.conf
/// live there, the server is started with `--config-file` and reads its pg_hba.conf from there; a copy made with
/// its own config_dir streams from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_lives_in_config_dir_outside_the_data_directory() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let etc1 = w.path().join("etc-c1");
    let mut s1 = w.settings("c1");
    s1.config_dir = Some(etc1.clone());
    let c1 = PgCtl::new(s1).await.expect("settings");
    c1.bootstrap().await.expect("bootstrap with a config_dir");
    assert!(c1.observe().await.is_primary());
    let managed = std::fs::read_to_string(etc1.join("postgresql.conf")).unwrap();
    assert!(managed.starts_with("# Managed by hactl"), "{managed}");
    let base = std::fs::read_to_string(etc1.join("postgresql.base.conf")).unwrap();
    assert!(
        base.contains("max_connections"),
        "initdb's configuration became the base: {base}"
    );
    assert!(
        !c1.settings().data_dir.join("postgresql.conf").exists(),
        "a postgresql.conf left in the data directory"
    );
    let shown = common::sql(
        &c1,
        "SELECT current_setting('config_file') || ' ' || current_setting('hba_file')",
    )
    .await;
    assert_eq!(
        shown,
        [format!(
            "{} {}",
            etc1.join("postgresql.conf").display(),
            etc1.join("pg_hba.conf").display()
        )]
    );
    assert!(
        std::fs::read_to_string(etc1.join("pg_hba.conf"))
            .unwrap()
            .contains("host replication replicator"),
        "the node's pg_hba went to config_dir"
    );

    let mut s2 = w.settings("c2");
    s2.config_dir = Some(w.path().join("etc-c2"));
    let c2 = PgCtl::new(s2).await.expect("settings");
    c2.clone_from(&upstream(&c1)).await.expect("clone");
    c2.start_replica(Some(&upstream(&c1)))
        .await
        .expect("start the copy");
    common::sql(&c1, "CREATE TABLE t AS SELECT generate_series(1, 5) AS i").await;
    common::wait_rows(&c2, 5).await;
    assert!(w.path().join("etc-c2/postgresql.conf").exists());
    c2.stop(StopMode::Fast).await.unwrap();
    c1.stop(StopMode::Fast).await.unwrap();
}
