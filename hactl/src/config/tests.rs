use std::collections::BTreeMap;

use super::*;

#[path = "restapi_tests.rs"]
mod restapi;

pub(crate) const MINIMAL: &str = r#"
scope: batman
name: node1
restapi: {listen: 0.0.0.0:8008, connect_address: 10.0.0.1:8008}
etcd3: {hosts: [10.0.0.1:2379]}
postgresql:
  listen: 0.0.0.0:5432
  connect_address: 10.0.0.1:5432
  data_dir: /data
  authentication:
    replication: {username: replicator, password: rep-pass}
    superuser: {username: postgres, password: patroni}
"#;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn load_with_env(yaml: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut tree = value::yaml_to_json(serde_norway::from_str(yaml).unwrap());
    value::deep_merge(&mut tree, env::environment_configuration(&env(pairs))?);
    Config::from_tree(tree)
}

#[test]
fn minimal_config_is_valid_for_the_daemon() {
    let c = Config::from_yaml_str(MINIMAL).unwrap();
    let required = c.validate_for_daemon().unwrap();
    assert_eq!(required.name, "node1");
    assert_eq!(required.restapi_listen.to_string(), "0.0.0.0:8008");
    assert_eq!(
        required.postgresql_connect_address.to_string(),
        "10.0.0.1:5432"
    );
    assert_eq!(required.data_dir, PathBuf::from("/data"));
    assert_eq!(c.namespace, "/service/");
    assert_eq!(c.api_url().as_deref(), Some("http://10.0.0.1:8008/patroni"));
    assert_eq!(
        c.conn_url().as_deref(),
        Some("postgres://10.0.0.1:5432/postgres")
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn unknown_keys_warn_with_their_path() {
    let yaml = format!("{MINIMAL}\nfoo: 1\nrestapi_typo: 2\n");
    let mut c = Config::from_yaml_str(&yaml).unwrap();
    c.warnings.sort();
    assert_eq!(
        c.warnings,
        vec![
            "unknown key `foo` ignored".to_string(),
            "unknown key `restapi_typo` ignored".to_string()
        ]
    );
    let c = Config::from_yaml_str(
        &MINIMAL.replace("data_dir: /data", "data_dir: /data\n  data_dri: /x"),
    )
    .unwrap();
    assert_eq!(
        c.warnings,
        vec!["unknown key `postgresql.data_dri` ignored"]
    );
}

#[test]
fn invalid_values_name_the_key_and_what_is_expected() {
    let err = Config::from_yaml_str(&MINIMAL.replace("0.0.0.0:5432", "0.0.0.0:port"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "`postgresql.listen`: expected host:port, got \"0.0.0.0:port\""
    );
    let err = Config::from_yaml_str(&format!("{MINIMAL}tags: {{nofailover: maybe}}\n"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("`tags`: expected tags"), "{err}");
    let err = Config::from_yaml_str(&format!("{MINIMAL}bootstrap: {{initdb: [[1]]}}\n"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("`bootstrap.initdb[0]`"), "{err}");
    let err = Config::from_yaml_str(&format!("{MINIMAL}log: {{level: LOUD}}\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`log.level`") && err.contains("DEBUG"),
        "{err}"
    );
    let err = Config::from_yaml_str("scope: [1]").unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid { ref key, .. } if key == "scope"),
        "{err}"
    );
}

#[test]
fn broken_timing_in_bootstrap_dcs_is_adjusted_as_patroni_does_with_a_warning_naming_the_keys() {
    let yaml =
        format!("{MINIMAL}bootstrap: {{dcs: {{ttl: 10, loop_wait: 5, retry_timeout: 5}}}}\n");
    let c = Config::from_yaml_str(&yaml).unwrap();
    let t = c.bootstrap.dcs.timing();
    assert_eq!(
        (t.ttl_ms, t.loop_wait_ms, t.retry_timeout_ms),
        (10_000, 1_000, 4_000)
    );
    let w = c.warnings.join("\n");
    assert!(
        w.contains("`bootstrap.dcs`:") && w.contains("loop_wait") && w.contains("ttl=10"),
        "{w}"
    );
    let yaml = format!("{MINIMAL}bootstrap: {{dcs: {{ttl: soon}}}}\n");
    let msg = Config::from_yaml_str(&yaml).unwrap_err().to_string();
    assert!(
        msg.starts_with("`bootstrap.dcs`: expected Patroni's dynamic configuration"),
        "{msg}"
    );
}

#[test]
fn missing_required_keys_are_reported_one_by_one() {
    let c = Config::from_yaml_str(&MINIMAL.replace("  data_dir: /data\n", "")).unwrap();
    assert_eq!(
        c.validate_for_daemon().unwrap_err().to_string(),
        "`postgresql.data_dir` is required"
    );
    let c =
        Config::from_yaml_str(&MINIMAL.replace("etcd3: {hosts: [10.0.0.1:2379]}\n", "")).unwrap();
    assert!(matches!(c.validate_for_daemon(), Err(ConfigError::NoDcs)));
    let err = Config::from_yaml_str("name: x").unwrap_err();
    assert_eq!(err.to_string(), "`scope` is required");
}

#[test]
fn env_overrides_beat_the_file() {
    let c = load_with_env(
        MINIMAL,
        &[
            ("PATRONI_NAME", "node9"),
            ("PATRONI_RESTAPI_CONNECT_ADDRESS", "10.9.9.9:8009"),
            ("PATRONI_RESTAPI_USERNAME", "admin"),
            ("PATRONI_RESTAPI_PASSWORD", "secret"),
            ("PATRONI_ETCD3_HOSTS", "'h1:2379','h2:2379'"),
            ("PATRONI_SUPERUSER_PASSWORD", "s3cret"),
            ("PATRONI_POSTGRESQL_DATA_DIR", "/pgdata"),
            ("PATRONI_LOG_LEVEL", "DEBUG"),
        ],
    )
    .unwrap();
    assert_eq!(c.name.as_deref(), Some("node9"));
    assert_eq!(c.api_url().as_deref(), Some("http://10.9.9.9:8009/patroni"));
    assert_eq!(
        c.restapi.authentication,
        Some(BasicAuth {
            username: "admin".into(),
            password: "secret".into()
        })
    );
    match &c.dcs {
        Some(DcsConfig::Etcd3(e)) => assert_eq!(e.hosts, vec!["h1:2379", "h2:2379"]),
        other => panic!("{other:?}"),
    }
    let su = c.postgresql.authentication.superuser.as_ref().unwrap();
    assert_eq!(
        (su.username.as_str(), su.password.as_deref()),
        ("postgres", Some("s3cret"))
    );
    assert_eq!(c.postgresql.data_dir.as_deref(), Some(Path::new("/pgdata")));
    assert_eq!(c.log.tracing_filter(), "debug");
}

#[test]
fn dcs_from_the_environment_alone() {
    let yaml = MINIMAL.replace("etcd3: {hosts: [10.0.0.1:2379]}\n", "");
    let c = load_with_env(
        &yaml,
        &[
            ("PATRONI_ETCD3_HOSTS", "[a:2379, b:2379]"),
            ("PATRONI_ETCD3_PROTOCOL", "https"),
            ("PATRONI_ETCD3_USERNAME", "root"),
        ],
    )
    .unwrap();
    match &c.dcs {
        Some(DcsConfig::Etcd3(e)) => {
            assert_eq!(e.endpoints(), vec!["https://a:2379", "https://b:2379"]);
            assert_eq!(e.username.as_deref(), Some("root"));
        }
        other => panic!("{other:?}"),
    }
    let c = load_with_env(
        &yaml,
        &[
            ("PATRONI_CONSUL_HOST", "127.0.0.1:8500"),
            ("PATRONI_CONSUL_REGISTER_SERVICE", "true"),
        ],
    )
    .unwrap();
    match &c.dcs {
        Some(DcsConfig::Consul(k)) => assert!(k.register_service && k.host == "127.0.0.1:8500"),
        other => panic!("{other:?}"),
    }
    let err = load_with_env(&yaml, &[("PATRONI_ZOOKEEPER_PORT", "x")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable PATRONI_ZOOKEEPER_PORT: expected an integer, got \"x\""
    );
}

#[test]
fn patroni_configuration_variable_replaces_everything_without_a_file() {
    let e = env(&[
        ("PATRONI_CONFIGURATION", MINIMAL),
        ("PATRONI_NAME", "ignored"),
    ]);
    let c = Config::load(None, &e).unwrap();
    assert_eq!(c.name.as_deref(), Some("node1"));
}

#[test]
fn initdb_options_become_arguments() {
    let yaml = format!(
        "{MINIMAL}bootstrap: {{initdb: [{{encoding: UTF8}}, data-checksums, {{locale: C}}]}}\n"
    );
    let c = Config::from_yaml_str(&yaml).unwrap();
    let args: Vec<String> = c
        .bootstrap
        .initdb
        .iter()
        .map(InitdbOption::to_arg)
        .collect();
    assert_eq!(
        args,
        vec!["--encoding=UTF8", "--data-checksums", "--locale=C"]
    );
}

#[test]
fn unsupported_sections_warn_and_etcd_url_form_is_read() {
    let yaml = MINIMAL.replace(
        "etcd3: {hosts: [10.0.0.1:2379]}",
        "etcd3: {url: 'https://e1:2379'}\nwatchdog: {mode: automatic}\nkubernetes: {}",
    );
    let c = Config::from_yaml_str(&yaml).unwrap();
    match &c.dcs {
        Some(DcsConfig::Etcd3(e)) => assert_eq!(e.endpoints(), vec!["https://e1:2379"]),
        other => panic!("{other:?}"),
    }
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("`kubernetes` is not supported")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn host_port_forms() {
    assert_eq!(
        HostPort::parse("k", "[::1]:5432").unwrap(),
        HostPort {
            host: "::1".into(),
            port: 5432
        }
    );
    assert_eq!(
        HostPort::parse("k", ":8008").unwrap().bind_host(),
        "0.0.0.0"
    );
    assert_eq!(
        HostPort::parse("k", "127.0.0.1,10.0.0.1:5432")
            .unwrap()
            .bind_host(),
        "127.0.0.1"
    );
    assert!(HostPort::parse("k", "8008").is_err());
}

#[test]
fn watchdog_section_is_read_as_patroni_reads_it() {
    use crate::config::watchdog::{WatchdogDriver, WatchdogMode};
    let c = Config::from_yaml_str(&format!(
        "{MINIMAL}watchdog: {{mode: required, device: /dev/watchdog1, safety_margin: -1, driver: testing}}\n"
    ))
    .unwrap();
    assert_eq!(c.watchdog.mode, WatchdogMode::Required);
    assert_eq!(
        c.watchdog.device,
        std::path::PathBuf::from("/dev/watchdog1")
    );
    assert_eq!(c.watchdog.driver, WatchdogDriver::Testing);
    assert_eq!(
        c.watchdog.timeout_s(30.0),
        15,
        "safety_margin -1: half the ttl"
    );
    let c = Config::from_yaml_str(&format!("{MINIMAL}watchdog: {{mode: automatic}}\n")).unwrap();
    assert_eq!(
        (c.watchdog.mode, c.watchdog.timeout_s(20.0)),
        (WatchdogMode::Automatic, 15)
    );
    let c = Config::from_yaml_str(&format!("{MINIMAL}watchdog: {{mode: off}}\n")).unwrap();
    assert_eq!(c.watchdog.mode, WatchdogMode::Off);
    assert!(
        c.warnings.iter().all(|w| !w.contains("watchdog")),
        "{:?}",
        c.warnings
    );
    let err =
        Config::from_yaml_str(&format!("{MINIMAL}watchdog: {{mode: sometimes}}\n")).unwrap_err();
    assert!(
        matches!(err, ConfigError::Invalid { ref key, .. } if key == "watchdog.mode"),
        "{err}"
    );
}

#[test]
fn database_names_the_conn_url_and_proxy_address_is_published_as_proxy_url() {
    let c = Config::from_yaml_str(&MINIMAL.replace(
        "postgresql:\n",
        "postgresql:\n  database: appdb\n  proxy_address: 10.0.0.9:6432\n",
    ))
    .unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        c.conn_url().as_deref(),
        Some("postgres://10.0.0.1:5432/appdb")
    );
    assert_eq!(
        c.proxy_url().as_deref(),
        Some("postgres://10.0.0.9:6432/appdb")
    );
    let defaults = Config::from_yaml_str(MINIMAL).unwrap();
    assert_eq!(defaults.proxy_url(), None);
    assert_eq!(defaults.database(), "postgres");
}
