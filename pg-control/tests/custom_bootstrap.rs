//! A new cluster made by a command instead of initdb (Patroni's `bootstrap.method`), here a clone of another
//! cluster with pg_basebackup, then `post_bootstrap`; a failing `post_bootstrap` fails the bootstrap and moves the
//! new data directory aside.

mod common;

use common::{sql, World};
use pg_control::{Credentials, CustomBootstrap, PgCtl, ReplicaMethod};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_cloned_by_a_command_starts_as_a_primary_and_runs_post_bootstrap() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin.clone());
    let mut s1 = w.settings("n1");
    s1.pg_hba.push("local replication all trust".into());
    let n1 = PgCtl::new(s1).await.expect("settings");
    let sysid = n1.bootstrap().await.expect("bootstrap n1");
    n1.execute_local("CREATE TABLE cloned(v text); INSERT INTO cloned VALUES ('from n1')")
        .await
        .unwrap();
    let clone_cmd = |dd: &std::path::Path| -> Vec<String> {
        vec![
            bin.join("pg_basebackup").display().to_string(),
            "-D".into(),
            dd.display().to_string(),
            "-X".into(),
            "stream".into(),
            "-h".into(),
            n1.settings().socket_dir.display().to_string(),
            "-p".into(),
            n1.settings().port.to_string(),
            "-U".into(),
            "postgres".into(),
        ]
    };

    let mut s = w.settings("n2");
    s.replication = Credentials::new("replicator", Some("another-secret"));
    s.custom_bootstrap = Some(CustomBootstrap {
        argv: clone_cmd(&s.data_dir),
        ..Default::default()
    });
    // post_bootstrap gets a connection string as its last argument.
    s.post_bootstrap = Some(vec![
        "sh".into(),
        "-c".into(),
        format!(
            "{} -X -w -Atc 'CREATE TABLE made_by_post_bootstrap()' \"$1\"",
            bin.join("psql").display()
        ),
        "sh".into(),
    ]);
    let n2 = PgCtl::new(s).await.expect("settings");
    let sysid2 = n2.bootstrap().await.expect("custom bootstrap");
    assert_eq!(
        sysid2, sysid,
        "a clone keeps the source's system identifier"
    );
    let o = n2.observe().await;
    assert!(o.is_primary(), "{o:?}");
    assert_eq!(sql(&n2, "SELECT v FROM cloned").await, ["from n1"]);
    assert_eq!(
        sql(
            &n2,
            "SELECT count(*) FROM pg_class WHERE relname = 'made_by_post_bootstrap'"
        )
        .await,
        ["1"]
    );
    assert_eq!(
        sql(
            &n2,
            "SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'"
        )
        .await,
        ["t"]
    );

    // A replica made by a method that needs no running leader (a restore; here a copy of n1 again): it is left
    // configured as a standby and starts in recovery.
    let mut s = w.settings("n4");
    s.replica_methods = vec![
        ReplicaMethod {
            name: "basebackup".into(),
            ..Default::default()
        },
        ReplicaMethod {
            name: "restore".into(),
            argv: clone_cmd(&s.data_dir),
            no_leader: true,
            ..Default::default()
        },
    ];
    let n4 = PgCtl::new(s).await.expect("settings");
    assert!(n4.can_create_replica_without_leader());
    n4.restore_replica()
        .await
        .expect("replica made without a leader");
    n4.start_replica(None).await.expect("start as a standby");
    assert!(n4.observe().await.is_replica());
    assert_eq!(sql(&n4, "SELECT v FROM cloned").await, ["from n1"]);

    let mut s = w.settings("n3");
    s.custom_bootstrap = Some(CustomBootstrap {
        argv: clone_cmd(&s.data_dir),
        ..Default::default()
    });
    s.post_bootstrap = Some(vec!["false".into()]);
    let dd3 = s.data_dir.clone();
    let n3 = PgCtl::new(s).await.expect("settings");
    assert!(
        n3.bootstrap().await.is_err(),
        "a failing post_bootstrap fails the bootstrap"
    );
    assert!(!dd3.exists(), "the half-made data directory is moved aside");
    let aside = std::fs::read_dir(w.path())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("n3.failed-"));
    assert!(aside, "no n3.failed-* directory");
}
