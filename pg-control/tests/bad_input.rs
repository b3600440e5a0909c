//! Each kind of bad input gets its typed error that says what to fix, and nothing is deleted.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{sql, upstream, World};
use ha_core::pg::{PgControl, PgError};
use pg_control::{Credentials, Error, PgCtl};

#[tokio::test]
async fn root_without_an_os_user_is_refused() {
    let Some(bin) = common::pg_bin() else { return };
    if !common::is_root() {
        eprintln!("SKIPPED: only meaningful when the tests run as root");
        return;
    }
    let mut w = World::new(bin);
    let mut s = w.settings("n1");
    s.os_user = None;
    let err = PgCtl::new(s).await.unwrap_err();
    assert_eq!(err, Error::RunningAsRoot);
    assert!(err.to_string().contains("os_user"), "{err}");

    let mut s = w.settings("n2");
    s.os_user = Some("no-such-user-hactl".into());
    assert!(matches!(
        PgCtl::new(s).await.unwrap_err(),
        Error::OsUser { .. }
    ));
}

#[tokio::test]
async fn wrong_bin_dir_and_wrong_version_are_named() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);

    let mut s = w.settings("n1");
    s.bin_dir = w.path().join("nowhere");
    let err = PgCtl::new(s).await.unwrap_err();
    assert!(matches!(err, Error::BinDir { .. }), "{err:?}");
    assert!(err.to_string().contains("bin_dir"));

    // A bin_dir whose postgres says it is version 12.
    let fake = w.path().join("fake-bin");
    std::fs::create_dir(&fake).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    for b in [
        "initdb",
        "pg_ctl",
        "postgres",
        "pg_basebackup",
        "pg_rewind",
        "pg_controldata",
    ] {
        let p = fake.join(b);
        std::fs::write(&p, "#!/bin/sh\necho 'postgres (PostgreSQL) 12.4'\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut s = w.settings("n2");
    s.bin_dir = fake;
    let err = PgCtl::new(s).await.unwrap_err();
    assert!(matches!(err, Error::WrongVersion { .. }), "{err:?}");
    assert!(err.to_string().contains("PostgreSQL 12"), "{err}");

    // A data directory of another major version.
    let s = w.settings("n3");
    std::fs::create_dir(&s.data_dir).unwrap();
    std::fs::write(s.data_dir.join("PG_VERSION"), "14\n").unwrap();
    if common::is_root() {
        let (uid, gid) = common::postgres_ids();
        std::os::unix::fs::chown(&s.data_dir, Some(uid), Some(gid)).unwrap();
    }
    let err = PgCtl::new(s.clone()).await.unwrap_err();
    assert!(matches!(err, Error::WrongVersion { .. }), "{err:?}");
    assert!(s.data_dir.join("PG_VERSION").exists(), "nothing deleted");
}

#[tokio::test]
async fn data_dir_of_another_user_is_refused_untouched() {
    let Some(bin) = common::pg_bin() else { return };
    if !common::is_root() {
        eprintln!("SKIPPED: needs root to create a directory owned by another user");
        return;
    }
    let mut w = World::new(bin);
    let s = w.settings("n1");
    std::fs::create_dir(&s.data_dir).unwrap(); // owned by root
    std::fs::write(s.data_dir.join("precious"), "data").unwrap();
    let err = PgCtl::new(s.clone()).await.unwrap_err();
    assert!(
        matches!(err, Error::DataDirOwner { owner_uid: 0, .. }),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read_to_string(s.data_dir.join("precious")).unwrap(),
        "data"
    );
}

#[tokio::test]
async fn port_in_use_fails_before_initdb() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let s = w.settings("n1");
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", s.port)).unwrap();
    let n1 = PgCtl::new(s.clone()).await.unwrap();
    let err = n1.bootstrap().await.unwrap_err();
    assert_eq!(
        err,
        Error::PortInUse {
            host: "127.0.0.1".into(),
            port: s.port
        }
    );
    assert!(
        !s.data_dir.join("PG_VERSION").exists(),
        "initdb did not run"
    );
    // Through the trait it is a setup error.
    assert!(matches!(
        PgControl::bootstrap(&n1).await.unwrap_err(),
        PgError::Setup(m) if m.contains("already in use")
    ));
}

#[tokio::test]
async fn missing_credentials_are_named() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let mut s = w.settings("n1");
    s.replication = Credentials::new("replicator", None);
    let err = PgCtl::new(s).await.unwrap_err();
    assert!(
        matches!(&err, Error::MissingCredentials(m) if m.contains("replication")),
        "{err:?}"
    );
    let mut s = w.settings("n2");
    s.replication = Credentials::new("", Some("x"));
    assert!(matches!(
        PgCtl::new(s).await.unwrap_err(),
        Error::MissingCredentials(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_another_cluster_is_never_wiped() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let a = w.node("a").await;
    let b = w.node("b").await;
    a.bootstrap().await.expect("bootstrap a");
    let b_sysid = b.bootstrap().await.expect("bootstrap b");
    sql(
        &b,
        "CREATE TABLE precious(v int); INSERT INTO precious VALUES (42)",
    )
    .await;

    // Cloning into a directory that holds data.
    b.stop(ha_core::pg::StopMode::Fast).await.unwrap();
    let err = b.clone_from(&upstream(&a)).await.unwrap_err();
    assert!(matches!(err, Error::DataDirNotEmpty { .. }), "{err:?}");

    // Reinitializing or rewinding from another cluster.
    let err = b.reinitialize(&upstream(&a)).await.unwrap_err();
    assert!(matches!(err, Error::ForeignCluster { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing was deleted"), "{err}");
    let err = b.rewind(&upstream(&a)).await.unwrap_err();
    assert!(matches!(err, Error::ForeignCluster { .. }), "{err:?}");
    assert!(matches!(
        PgControl::reinitialize(&b, &upstream(&a))
            .await
            .unwrap_err(),
        PgError::Refused { .. }
    ));

    // b is intact.
    assert_eq!(
        b.observe().await.system_id.as_deref(),
        Some(b_sysid.as_str())
    );
    b.start_primary().await.unwrap();
    assert_eq!(sql(&b, "SELECT v FROM precious").await, ["42"]);

    // Reinitializing a running server is refused too.
    let err = b.reinitialize(&upstream(&a)).await.unwrap_err();
    assert!(matches!(err, Error::WrongState { .. }), "{err:?}");
    b.stop(ha_core::pg::StopMode::Fast).await.unwrap();
    a.stop(ha_core::pg::StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_whose_server_cannot_start_says_why_and_can_be_retried() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let mut s = w.settings("n1");
    s.parameters
        .insert("shared_buffers".into(), "not-a-size".into());
    let n1 = PgCtl::new(s.clone()).await.unwrap();
    let err = n1.bootstrap().await.unwrap_err();
    assert!(matches!(err, Error::Command { .. }), "{err:?}");
    assert!(
        err.to_string().contains("shared_buffers"),
        "the server log's reason is in the error: {err}"
    );
    assert!(
        !s.data_dir.exists(),
        "the half-made directory was moved aside: {err}; {:?}",
        std::fs::read_dir(w.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    let aside: Vec<_> = std::fs::read_dir(w.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("n1.failed-"))
        .collect();
    assert_eq!(aside.len(), 1, "nothing deleted: kept as n1.failed-*");

    s.parameters.remove("shared_buffers");
    let n1 = PgCtl::new(s).await.unwrap();
    n1.bootstrap()
        .await
        .expect("the retry with a fixed setting");
    assert!(n1.observe().await.is_primary());
    n1.stop(ha_core::pg::StopMode::Fast).await.unwrap();
}
