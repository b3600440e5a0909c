//! confd's template language over a cluster's keys: the functions, the shipped HAProxy template, and the
//! render → check → replace → reload flow of a resource.

use std::path::Path;
use std::rc::Rc;

use ha_core::model::{Cluster, KeyPath, RawEntry};

use super::*;

fn member(name: &str, pg: u16, api: u16, role: &str) -> RawEntry {
    RawEntry::new(
        format!("members/{name}"),
        format!(
            r#"{{"conn_url":"postgres://127.0.0.1:{pg}/postgres","api_url":"http://127.0.0.1:{api}/patroni","state":"running","role":"{role}","version":"4.0.4"}}"#
        ),
        1,
    )
}

/// The demo's three nodes (`scripts/demo.sh`), node1 leading.
fn demo_cluster() -> Cluster {
    Cluster::from_entries([
        RawEntry::new("leader", "node1", 1),
        member("node1", 5432, 8008, "primary"),
        member("node3", 5434, 8010, "replica"),
        member("node2", 5433, 8009, "replica"),
        RawEntry::new("config", r#"{"ttl":30,"loop_wait":10}"#, 1),
    ])
}

fn all_keys(c: &Cluster) -> Rc<Store> {
    Rc::new(Store::from_cluster(c, &["/".to_string()]))
}

fn render(text: &str, c: &Cluster) -> Result<String, TemplateError> {
    render_text("test", text, all_keys(c))
}

#[test]
fn gets_lists_the_member_keys_sorted_and_json_reads_their_fields() {
    let out = render(
        r#"{{range gets "/members/*"}}{{base .Key}}={{$d := json .Value}}{{$d.role}};{{end}}"#,
        &demo_cluster(),
    )
    .unwrap();
    assert_eq!(out, "node1=primary;node2=replica;node3=replica;");
}

#[test]
fn the_host_and_ports_come_out_of_conn_url_and_api_url_with_split_index_replace_and_base() {
    // The expressions confd templates use to take `host:port` out of a URL.
    let out = render(
        r#"{{with get "/members/node2"}}{{$d := json .Value}}{{base (replace (index (split $d.conn_url "/") 2) "@" "/" -1)}} {{index (split (index (split $d.api_url "/") 2) ":") 1}}{{end}}"#,
        &demo_cluster(),
    )
    .unwrap();
    assert_eq!(out, "127.0.0.1:5433 8009");
}

#[test]
fn the_leader_key_names_the_member_key_to_read() {
    // A pgbouncer-style template: nested `with`, variables and printf.
    let text = r#"{{with get "/leader"}}{{$leader := .Value}}{{with get (printf "/members/%s" $leader)}}{{$d := json .Value}}{{$hp := base (replace (index (split $d.conn_url "/") 2) "@" "/" -1)}}* = host={{index (split $hp ":") 0}} port={{index (split $hp ":") 1}}{{end}}{{end}}"#;
    assert_eq!(
        render(text, &demo_cluster()).unwrap(),
        "* = host=127.0.0.1 port=5432"
    );
}

#[test]
fn a_missing_key_fails_the_render_and_getv_takes_its_default() {
    let c = Cluster::from_entries([member("node1", 5432, 8008, "replica")]);
    let err = render(r#"{{get "/leader"}}"#, &c).unwrap_err();
    assert!(
        err.to_string().contains("key does not exist: /leader"),
        "{err}"
    );
    assert_eq!(
        render(
            r#"{{getv "/leader" "none"}} {{exists "/leader"}} {{exists "/members/node1"}}"#,
            &c
        )
        .unwrap(),
        "none false true"
    );
}

#[test]
fn ls_and_lsdir_list_the_names_under_a_directory() {
    let c = demo_cluster();
    assert_eq!(
        render(
            r#"{{range ls "/members"}}{{.}} {{end}}|{{range lsdir "/"}}{{.}}{{end}}"#,
            &c
        )
        .unwrap(),
        "node1 node2 node3 |members"
    );
}

#[test]
fn go_string_and_path_semantics() {
    let c = Cluster::default();
    let cases = [
        (r#"{{base "/a/b/"}}"#, "b"),
        (r#"{{base ""}}"#, "."),
        (r#"{{dir "/a/b"}}"#, "/a"),
        (r#"{{dir "b"}}"#, "."),
        (r#"{{replace "a-b-c" "-" "+" 1}}"#, "a+b-c"),
        (r#"{{replace "a-b-c" "-" "+" -1}}"#, "a+b+c"),
        (r#"{{join (split "a,b,c" ",") "|"}}"#, "a|b|c"),
        (r#"{{len (split "abc" "")}}"#, "3"),
        (
            r#"{{toUpper "ab"}}{{toLower "CD"}}{{trimSuffix "x.cfg" ".cfg"}}"#,
            "ABcdx",
        ),
        (
            r#"{{add 2 3}} {{sub 2 3}} {{mul (atoi "4") 2}} {{div 7 2}} {{mod 7 2}}"#,
            "5 -1 8 3 1",
        ),
        (r#"{{if contains "primary" "pri"}}yes{{end}}"#, "yes"),
        (
            r#"{{getenv "HACTL_TEMPLATE_TEST_UNSET" "fallback"}}"#,
            "fallback",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(render(text, &c).unwrap(), want, "{text}");
    }
    assert!(render(r#"{{div 1 0}}"#, &c).is_err());
}

#[test]
fn keys_limit_what_the_template_sees() {
    let store = Store::from_cluster(&demo_cluster(), &["/leader".to_string()]);
    assert_eq!(store.len(), 1);
    assert_eq!(store.get("leader"), Some("node1"));
    assert!(store.get("/members/node1").is_none());
}

/// `examples/haproxy/haproxy.cfg` is what `examples/confd/templates/haproxy.tmpl` renders for the demo's three nodes:
/// the static example and the template cannot drift apart.
#[test]
fn the_shipped_template_renders_the_shipped_static_haproxy_config_for_the_demo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("examples/confd/templates/haproxy.tmpl")).unwrap();
    let out = render(&text, &demo_cluster()).unwrap();
    let shipped = std::fs::read_to_string(root.join("examples/haproxy/haproxy.cfg")).unwrap();
    assert_eq!(
        out, shipped,
        "examples/haproxy/haproxy.cfg differs from the template's render for the demo: regenerate it"
    );
    assert!(out.contains("    server node2 127.0.0.1:5433 check port 8009\n"));
}

fn resource_in(dir: &Path, check: &str, reload: &str) -> Resource {
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("templates/members.tmpl"),
        r#"{{range gets "/members/*"}}{{base .Key}}
{{end}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("conf.d/members.toml"),
        format!(
            "[template]\nsrc = \"members.tmpl\"\ndest = \"{}\"\nmode = \"0640\"\nkeys = [\"/members/\"]\ncheck_cmd = \"{check}\"\nreload_cmd = \"{reload}\"\nflavour = \"x\"\n",
            dir.join("out/members.txt").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let (mut rs, warnings) = load_resources(dir).unwrap();
    assert_eq!(
        warnings.len(),
        1,
        "an unknown key is warned about by name: {warnings:?}"
    );
    assert!(warnings[0].contains("`flavour`"), "{warnings:?}");
    rs.remove(0)
}

#[test]
fn a_resource_is_written_and_reloaded_only_when_its_render_changes_and_a_failed_check_keeps_the_old_file(
) {
    let dir = std::env::temp_dir().join(format!("hactl-template-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let reloads = dir.join("reloads");
    let r = resource_in(
        &dir,
        "grep -q node {{.src}}",
        &format!("echo x >> {}", reloads.display()),
    );
    let dest = dir.join("out/members.txt");
    let c = demo_cluster();
    let keys = |c: &Cluster| Rc::new(Store::from_cluster(c, &r.keys));

    assert_eq!(r.apply(keys(&c)).unwrap(), Outcome::Written);
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "node1\nnode2\nnode3\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(r.apply(keys(&c)).unwrap(), Outcome::Unchanged);
    assert_eq!(
        std::fs::read_to_string(&reloads).unwrap().lines().count(),
        1
    );

    // A node joins: rewritten, reloaded again.
    let mut entries: Vec<RawEntry> = vec![
        member("node1", 5432, 8008, "primary"),
        member("node2", 5433, 8009, "replica"),
        member("node3", 5434, 8010, "replica"),
        member("node4", 5435, 8011, "replica"),
    ];
    assert_eq!(
        r.apply(keys(&Cluster::from_entries(entries.clone())))
            .unwrap(),
        Outcome::Written
    );
    assert!(std::fs::read_to_string(&dest).unwrap().contains("node4"));
    assert_eq!(
        std::fs::read_to_string(&reloads).unwrap().lines().count(),
        2
    );

    // No member left: the render has no "node", the check refuses it, the file and HAProxy keep the last good one.
    entries.clear();
    let err = r.apply(keys(&Cluster::from_entries(entries))).unwrap_err();
    assert!(matches!(err, TemplateError::Check { .. }), "{err}");
    assert!(std::fs::read_to_string(&dest).unwrap().contains("node4"));
    assert_eq!(
        std::fs::read_to_string(&reloads).unwrap().lines().count(),
        2
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "the staged file was not removed: {leftovers:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_prefix_naming_another_cluster_is_refused() {
    let dir = std::env::temp_dir().join(format!("hactl-template-prefix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = resource_in(&dir, "true", "true");
    let ours = KeyPath::new("/service/", "batman");
    r.prefix = Some("/service/batman".into());
    assert!(check_prefix(&r, &ours).is_ok());
    r.prefix = Some("/service/robin".into());
    let err = check_prefix(&r, &ours).unwrap_err().to_string();
    assert!(err.contains("/service/robin"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
