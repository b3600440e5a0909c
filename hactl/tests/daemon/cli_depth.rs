//! patronictl's ways in against a running cluster: the default config file, `--dcs-url`, `tsv`, `-w`, `query`,
//! `--group`.

use super::*;

/// Runs the hactl binary with `args`, no config file (`HOME` at `home`, `PATRONICTL_CONFIG_FILE` unset), `env`
/// added and `input` typed; returns (success, stdout, stderr).
fn hactl_cmd(
    home: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: &str,
) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hactl"));
    cmd.args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("PATRONICTL_CONFIG_FILE")
        .env_remove("DCS_URL")
        .env_remove("PGPASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// patronictl's ways in, against the running two-node cluster: the default config file, `--dcs-url` with no file,
/// `tsv`, `-w` watching, `query` by role with a typed password and `PGPASSWORD`, an SQL error printed as a row,
/// and `--group` reading a Citus group's keys as Patroni lays them out.
pub(crate) async fn cli_depth_against_a_running_cluster(dir: &Path, etcd: &str, scope: &str) {
    let home = dir.join("home");
    let url = format!("etcd3://{etcd}");

    // No -c: ~/.config/patroni/patronictl.yaml, as patronictl.
    std::fs::create_dir_all(home.join(".config/patroni")).unwrap();
    std::fs::write(
        home.join(".config/patroni/patronictl.yaml"),
        format!("scope: {scope}\netcd3: {{hosts: [{etcd}]}}\n"),
    )
    .unwrap();
    let (ok, out, err) = hactl_cmd(&home, &["list", "-f", "tsv"], &[], "");
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "Cluster\tMember\tHost\tRole\tState\tTL\tReceive LSN\tReceive Lag\tReplay LSN\tReplay Lag",
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!("{scope}\tnode1\t127.0.0.1:"))
            && lines[1].contains("\tLeader\trunning\t"),
        "{out}"
    );
    assert!(lines[2].starts_with(&format!("{scope}\tnode2\t")), "{out}");
    std::fs::remove_file(home.join(".config/patroni/patronictl.yaml")).unwrap();

    // --dcs-url and no file at all: the cluster named is the scope.
    let (ok, out, err) = hactl_cmd(
        &home,
        &["--dcs-url", &url, "-f", "json", "list", scope],
        &[],
        "",
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Cluster"], scope, "{out}");
    assert_eq!(v[0]["Role"], "Leader", "{out}");
    assert!(
        v[0].get("Receive LSN").is_none(),
        "empty values left out: {out}"
    );

    // -w: the listing again every 0.3 s until interrupted.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .args(["--dcs-url", &url, "list", scope, "-w", "0.3"])
        .env("HOME", &home)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let tables = String::from_utf8_lossy(&out.stdout)
        .matches(&format!("Cluster: {scope} ("))
        .count();
    assert!(
        (3..=7).contains(&tables),
        "{tables} listings in 1.5 s at -w 0.3"
    );

    // query: the leader by default, with the password typed; a replica by role with PGPASSWORD; an error is a row.
    let query = |extra: &[&str], env: &[(&str, &str)], input: &str| {
        let base = [
            "--dcs-url",
            &url,
            "query",
            scope,
            "-U",
            "postgres",
            "-d",
            "postgres",
        ];
        hactl_cmd(&home, &[&base[..], extra].concat(), env, input)
    };
    let (ok, out, err) = query(
        &[
            "--password",
            "-c",
            "SELECT pg_is_in_recovery() AS rec, NULL AS nothing",
        ],
        &[],
        "su-pass\n",
    );
    assert!(ok, "{err}");
    assert!(out.ends_with("rec\tnothing\nf\tNone\n"), "{out}");
    let pw = [("PGPASSWORD", "su-pass")];
    let (ok, out, err) = query(
        &[
            "-r",
            "replica",
            "--format",
            "json",
            "-c",
            "SELECT pg_is_in_recovery() AS rec",
        ],
        &pw,
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), r#"[{"rec":"t"}]"#);
    let (ok, out, err) = query(&["-c", "SELECT * FROM nowhere"], &pw, "");
    assert!(ok, "an SQL error is printed, not fatal: {err}");
    assert!(
        out.trim_end().ends_with("\tERROR, SQLSTATE: 42P01"),
        "{out}"
    );
    let (ok, _, err) = hactl_cmd(&home, &["--dcs-url", &url, "query", scope], &pw, "");
    assert!(!ok && err.contains("--command or --file"), "{err}");

    // --group: a Citus worker group's keys under <scope>/<group>/, written as Patroni writes them.
    let put = |key: &str, value: &str| {
        let st = Command::new("etcdctl")
            .args([
                "--endpoints",
                etcd,
                "put",
                &format!("/service/{scope}/1/{key}"),
                value,
            ])
            .env("ETCDCTL_API", "3")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "etcdctl put {key}");
    };
    put("initialize", "7300000000000000001");
    put("leader", "worker1");
    put(
        "members/worker1",
        r#"{"conn_url":"postgres://10.0.0.7:5432/postgres","api_url":"http://10.0.0.7:8008/patroni","state":"running","role":"primary","version":"4.1.0","timeline":1}"#,
    );
    let (ok, out, err) = hactl_cmd(
        &home,
        &["--dcs-url", &url, "--group", "1", "list", scope],
        &[],
        "",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "Citus cluster: {scope} (group: 1, 7300000000000000001)"
        )),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("| worker1 ") && l.contains("Leader")),
        "{out}"
    );
    assert!(!out.contains("node1"), "{out}");
}
