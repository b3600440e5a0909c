//! A Patroni config file in the style of Patroni's own documentation is accepted unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use hactl::config::{Config, DcsConfig, InitdbOption};

#[test]
fn patroni_documentation_style_three_node_etcd3_config_loads_unchanged() {
    for i in 1..=3 {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/patroni-node{i}.yml"));
        let c = Config::load(Some(&path), &BTreeMap::new()).unwrap();
        c.validate_for_daemon().unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.scope, "batman");
        assert_eq!(c.name.as_deref(), Some(format!("node{i}").as_str()));
        assert_eq!(c.key_path().prefix(), "/service/batman/");
        match &c.dcs {
            Some(DcsConfig::Etcd3(e)) => assert_eq!(
                e.endpoints(),
                vec![
                    "http://10.0.0.1:2379",
                    "http://10.0.0.2:2379",
                    "http://10.0.0.3:2379"
                ]
            ),
            other => panic!("expected etcd3, got {other:?}"),
        }
        let t = c.bootstrap.dcs.timing();
        assert_eq!(
            (t.ttl_ms, t.loop_wait_ms, t.retry_timeout_ms),
            (30_000, 10_000, 10_000)
        );
        assert!(c.bootstrap.dcs.use_pg_rewind());
        assert_eq!(
            c.bootstrap
                .dcs
                .parameters()
                .get("hot_standby")
                .map(String::as_str),
            Some("on")
        );
        assert_eq!(
            c.bootstrap
                .dcs
                .parameters()
                .get("max_connections")
                .map(String::as_str),
            Some("100")
        );
        assert_eq!(
            c.bootstrap.initdb,
            vec![
                InitdbOption::Value("encoding".into(), "UTF8".into()),
                InitdbOption::Flag("data-checksums".into())
            ]
        );
        let id = c.node_identity("0.1.0");
        assert_eq!(id.api_url, format!("http://10.0.0.{i}:8008/patroni"));
        assert_eq!(id.conn_url, format!("postgres://10.0.0.{i}:5432/postgres"));
        assert!(!id.tags.nofailover());
        assert_eq!(c.postgresql.pg_hba.len(), 2);
        assert_eq!(
            c.postgresql
                .authentication
                .rewind
                .as_ref()
                .unwrap()
                .username,
            "rewind_user"
        );
    }
}

#[test]
fn a_missing_file_is_one_clear_error() {
    let err =
        Config::load(Some(Path::new("/nonexistent/hactl.yml")), &BTreeMap::new()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read /nonexistent/hactl.yml:"),
        "{err}"
    );
}

#[test]
fn yaml_syntax_errors_say_where() {
    let err = Config::from_yaml_str("scope: batman\nname: [unclosed\n").unwrap_err();
    assert!(
        err.to_string().contains("not valid YAML") && err.to_string().contains("line"),
        "{err}"
    );
}

#[test]
fn the_demo_node_configs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut seen = 0;
    for e in entries.flatten() {
        if e.path().extension().and_then(|x| x.to_str()) != Some("yml") {
            continue;
        }
        let c = Config::load(Some(&e.path()), &BTreeMap::new())
            .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
        c.validate_for_daemon().unwrap();
        assert!(
            c.warnings.is_empty(),
            "{}: {:?}",
            e.path().display(),
            c.warnings
        );
        seen += 1;
    }
    assert!(seen >= 3, "the demo has three node configs");
}
