//! The `hactl` binary: `validate` accepts Patroni's documentation-style config and refuses a broken one with one line
//! and a non-zero exit.

use std::process::Command;

fn hactl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .args(args)
        .env_remove("PATRONICTL_CONFIG_FILE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_accepts_the_patroni_documentation_config() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/patroni-node1.yml");
    let (code, out, err) = hactl(&["validate", path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with(": valid\n"), "{out}");
}

#[test]
fn invalid_config_is_one_line_and_exit_1() {
    let dir = std::env::temp_dir().join(format!("hactl-bin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yml");
    std::fs::write(
        &bad,
        "scope: batman\nname: n1\nrestapi: {listen: 'x', connect_address: 'y:1'}\n",
    )
    .unwrap();
    let (code, out, err) = hactl(&["validate", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(
        err,
        "Error: `restapi.listen`: expected host:port, got \"x\"\n"
    );
    let (code, _, err) = hactl(&["-c", "/nonexistent.yml", "list"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_names_the_commit_and_the_small_fencer_sits_beside_the_binary() {
    let (code, out, _) = hactl(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("hactl {}", hactl::LONG_VERSION));
    let commit = hactl::COMMIT;
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    // The fencer binary: no argument is a usage error, never a fencer that watches nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_hactl-fencer"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: hactl-fencer DATA_DIR"));
}
