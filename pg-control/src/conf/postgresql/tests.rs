//! The managed postgresql.conf rendered from its layers: the pure functions of the parent module.

use super::*;

fn pg15() -> ServerParameters {
    ServerParameters {
        version_num: 150_000,
        names: [
            "wal_keep_size",
            "max_connections",
            "archive_mode",
            "work_mem",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    }
}

#[test]
fn patronis_wal_keep_segments_becomes_wal_keep_size_on_13_and_unknown_names_are_left_out() {
    let mut p = BTreeMap::from([
        ("wal_keep_segments".to_string(), "100".to_string()),
        ("wal_keep_size".to_string(), "128MB".to_string()),
        ("max_connections".to_string(), "101".to_string()),
        ("checkpoint_segments".to_string(), "8".to_string()),
        ("pg_stat_statements.track".to_string(), "all".to_string()),
    ]);
    let notes = adapt_to_server(&mut p, &pg15());
    assert_eq!(p["wal_keep_size"], "1600MB");
    assert!(!p.contains_key("wal_keep_segments") && !p.contains_key("checkpoint_segments"));
    assert_eq!(
        p["pg_stat_statements.track"], "all",
        "extensions' parameters are kept"
    );
    assert_eq!(p["max_connections"], "101");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("wal_keep_segments=100 written as wal_keep_size=1600MB")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("`checkpoint_segments`")),
        "{notes:?}"
    );
    // An explicit wal_keep_size wins over the old name.
    let mut p = BTreeMap::from([
        ("wal_keep_segments".to_string(), "100".to_string()),
        ("wal_keep_size".to_string(), "1GB".to_string()),
    ]);
    adapt_to_server(&mut p, &pg15());
    assert_eq!(p["wal_keep_size"], "1GB");
    assert!(!p.contains_key("wal_keep_segments"));
}

#[test]
fn local_settings_win_and_recovery_is_only_on_standbys() {
    let cluster = BTreeMap::from([
        ("max_connections".to_string(), "200".to_string()),
        ("port".to_string(), "1".to_string()),
        ("work_mem".to_string(), "8MB".to_string()),
    ]);
    let local = BTreeMap::from([("work_mem".to_string(), "16MB".to_string())]);
    let rec = Recovery {
        primary_conninfo: Some("host=a port=1".into()),
        primary_slot_name: Some("n2".into()),
        overrides: Vec::new(),
    };
    let mut conf = ManagedConf {
        cluster: &cluster,
        local: &local,
        port: 5433,
        listen_host: "127.0.0.1",
        socket_dir: Path::new("/tmp/s"),
        cluster_name: None,
        recovery: Some(&rec),
        recovery_minimums: &BTreeMap::new(),
        base: &BTreeMap::new(),
        include: "postgresql.base.conf",
        server: None,
        synchronous_standby_names: None,
    };
    let p = conf.parameters();
    assert_eq!(p["port"], "5433", "the DCS never moves a node's port");
    assert_eq!(p["work_mem"], "16MB");
    assert_eq!(p["max_connections"], "200");
    assert_eq!(p["primary_slot_name"], "n2");
    assert_eq!(p["recovery_target_timeline"], "latest");
    let text = conf.render();
    assert!(text.starts_with(MANAGED_MARKER));
    assert!(text.contains("include 'postgresql.base.conf'"));
    conf.recovery = None;
    assert!(!conf.parameters().contains_key("primary_conninfo"));
}

#[test]
fn a_standby_runs_with_at_least_the_control_file_settings() {
    let cluster = BTreeMap::from([
        ("max_connections".to_string(), "50".to_string()),
        ("max_wal_senders".to_string(), "20".to_string()),
    ]);
    let local = BTreeMap::new();
    let minimums = BTreeMap::from([
        ("max_connections".to_string(), 100),
        ("max_wal_senders".to_string(), 10),
        ("max_worker_processes".to_string(), 16),
        ("max_prepared_transactions".to_string(), 0),
        ("max_locks_per_transaction".to_string(), 64),
    ]);
    let base = parse_simple_conf(
        "# initdb\nmax_worker_processes = 12 # comment\nmax_locks_per_transaction 128\n",
    );
    assert_eq!(base["max_worker_processes"], "12");
    let rec = Recovery {
        primary_conninfo: None,
        primary_slot_name: None,
        overrides: Vec::new(),
    };
    let mut conf = ManagedConf {
        cluster: &cluster,
        local: &local,
        port: 5433,
        listen_host: "127.0.0.1",
        socket_dir: Path::new("/tmp/s"),
        cluster_name: None,
        recovery: Some(&rec),
        recovery_minimums: &minimums,
        base: &base,
        include: "postgresql.base.conf",
        server: None,
        synchronous_standby_names: None,
    };
    let p = conf.parameters();
    assert_eq!(p["max_connections"], "100", "raised to the control file's");
    assert_eq!(p["max_wal_senders"], "20", "configured higher: kept");
    assert_eq!(p["max_worker_processes"], "16", "base.conf's 12 raised");
    assert!(
        !p.contains_key("max_locks_per_transaction"),
        "base.conf's 128 is enough: left to it"
    );
    assert!(!p.contains_key("max_prepared_transactions"));
    let wanted = conf.configured_recovery_values();
    assert_eq!(wanted["max_connections"], "50");
    assert_eq!(wanted["max_locks_per_transaction"], "128");
    assert_eq!(wanted["max_prepared_transactions"], "0");
    conf.recovery = None;
    assert_eq!(
        conf.parameters()["max_connections"],
        "100",
        "a primary restored from a backup recovers first: raised as well"
    );
    let none = BTreeMap::new();
    conf.recovery_minimums = &none;
    assert_eq!(
        conf.parameters()["max_connections"],
        "50",
        "a primary runs as configured"
    );
}

#[test]
fn quoting() {
    assert_eq!(quote_conf("it's"), "'it''s'");
}

#[test]
fn recovery_conf_reaches_a_standby_less_what_hactl_decides_and_under_a_sources_settings() {
    let conf: BTreeMap<String, String> = [
        ("restore_command", "cp /archive/%f %p"),
        ("recovery_min_apply_delay", "5min"),
        ("primary_conninfo", "host=elsewhere"),
        ("primary_slot_name", "other"),
        ("recovery_target_timeline", "1"),
        ("recovery_target_lsn", "0/3000000"),
        ("standby_mode", "on"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let member = recovery_overrides(&conf, std::iter::empty());
    assert_eq!(
        member,
        [
            ("recovery_min_apply_delay".to_string(), "5min".to_string()),
            (
                "restore_command".to_string(),
                "cp /archive/%f %p".to_string()
            ),
        ]
    );
    let standby_leader = recovery_overrides(
        &conf,
        [(
            "restore_command".to_string(),
            "cp /source/%f %p".to_string(),
        )]
        .into_iter(),
    );
    assert!(
        standby_leader.contains(&(
            "restore_command".to_string(),
            "cp /source/%f %p".to_string()
        )),
        "the source's archive wins: {standby_leader:?}"
    );
    assert!(standby_leader.contains(&("recovery_min_apply_delay".to_string(), "5min".to_string())));
}
