//! The daemon's idle footprint, per node: resident memory, CPU per idle minute and DCS requests per idle minute, for
//! one `hactl run` leading a single-node cluster on a real etcd and PostgreSQL 15.
//!
//! Targets (issue 5): RSS ≤ 12 MB (Patroni 4.1.5 here: 46 MB), CPU ≤ 0.05 s per idle minute (Patroni: 0.14–0.25 s),
//! DCS requests per idle minute no more than Patroni's (7–10 at loop_wait 10, about 31 at loop_wait 2).
//!
//! `cargo bench -p hactl --bench idle_footprint` (HACTL_IDLE_SECS sets the measured window, 60 by default;
//! HACTL_LOOP_WAIT the loop_wait, 10 by default).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn shared_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        std::os::unix::fs::chown(path, Some(id("-u")), Some(id("-g"))).unwrap();
    }
}

/// A `/proc/PID/status` field's number (kB for sizes).
fn status_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    status_field(pid, "VmRSS")
}

/// Proportional set size (kB): shared pages (libc, the binary when several nodes run it) divided among their users.
fn pss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime in seconds.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

/// gRPC messages etcd received (unary requests and stream messages such as lease keepalives), by method.
fn etcd_messages(endpoint: &str) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(o) = Command::new("curl")
        .args(["-s", &format!("{endpoint}/metrics")])
        .output()
    else {
        return out;
    };
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        if !l.starts_with("grpc_server_msg_received_total") {
            continue;
        }
        let method = l
            .split("grpc_method=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?")
            .to_string();
        let v = l
            .rsplit(' ')
            .next()
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        *out.entry(method).or_insert(0) += v;
    }
    out
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn main() {
    if !Path::new(PG_BIN).join("initdb").is_file() || dcs_etcd::testing::etcd_binary().is_none() {
        println!("idle_footprint: SKIPPED (PostgreSQL 15 or etcd missing)");
        return;
    }
    let window_s: u64 = std::env::var("HACTL_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let loop_wait: u64 = std::env::var("HACTL_LOOP_WAIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::Builder::new()
        .prefix("hactl-idle-")
        .tempdir_in("/tmp")
        .unwrap();
    shared_dir(dir.path());
    let etcd = dcs_etcd::testing::EtcdServer::start(dir.path()).unwrap();
    let (api, pg) = (
        dcs_etcd::testing::free_port(),
        dcs_etcd::testing::free_port(),
    );
    let node = dir.path().join("node1");
    shared_dir(&node);
    let ttl = (loop_wait * 3).max(loop_wait + 2 * 3);
    let retry = ((ttl - loop_wait) / 2).min(10);
    let yaml = format!(
        "scope: idle\nname: node1\nrestapi: {{listen: 127.0.0.1:{api}, connect_address: 127.0.0.1:{api}}}\n\
         etcd3: {{hosts: ['{etcd_hp}']}}\n\
         bootstrap:\n  dcs: {{ttl: {ttl}, loop_wait: {loop_wait}, retry_timeout: {retry}}}\n\
         postgresql:\n  listen: 127.0.0.1:{pg}\n  connect_address: 127.0.0.1:{pg}\n  data_dir: {data}\n  bin_dir: {PG_BIN}\n\
         \x20 pgpass: {n}/pgpass\n  parameters: {{unix_socket_directories: '{n}'}}\n\
         \x20 authentication:\n    replication: {{username: replicator, password: r}}\n    superuser: {{username: postgres, password: s}}\n\
         \x20 pg_hba: [local all all trust, host all all 127.0.0.1/32 scram-sha-256]\n",
        etcd_hp = etcd.endpoint().trim_start_matches("http://"),
        data = node.join("data").display(),
        n = node.display(),
    );
    let cfg = dir.path().join("node1.yml");
    std::fs::write(&cfg, yaml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .arg("run")
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let t = Instant::now();
    let url = format!("http://127.0.0.1:{api}/primary");
    loop {
        let ok = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url])
            .output();
        if ok.map(|o| o.stdout == b"200").unwrap_or(false) {
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the node did not become primary");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the bootstrap's burst pass before measuring.
    std::thread::sleep(Duration::from_secs(2 * loop_wait + 2));
    let (cpu0, msgs0) = (cpu_s(pid), etcd_messages(&etcd.endpoint()));
    std::thread::sleep(Duration::from_secs(window_s));
    let (cpu1, msgs1) = (cpu_s(pid), etcd_messages(&etcd.endpoint()));
    let rss = rss_kb(pid);
    let fencers = children_of(pid);
    let fencer_rss: u64 = fencers.iter().map(|c| rss_kb(*c)).sum();
    let fencer_pss: u64 = fencers.iter().map(|c| pss_kb(*c)).sum();
    let per_min = 60.0 / window_s as f64;
    let total = |m: &std::collections::BTreeMap<String, u64>| m.values().sum::<u64>();
    let by_method: Vec<String> = msgs1
        .iter()
        .map(|(k, v)| (k, v - msgs0.get(k).copied().unwrap_or(0)))
        .filter(|(_, d)| *d > 0)
        .map(|(k, d)| format!("{k} {:.0}", d as f64 * per_min))
        .collect();
    println!("hactl idle footprint, one node leading, loop_wait {loop_wait} s, measured over {window_s} s:");
    println!(
        "  resident memory (daemon):     {:.1} MB   (target <= 12 MB; Patroni 4.1.5: 46 MB)",
        rss as f64 / 1024.0
    );
    println!(
        "    of which anonymous {:.1} MB, file-backed {:.1} MB (the binary's code pages, libc); PSS {:.1} MB; {} threads",
        status_field(pid, "RssAnon") as f64 / 1024.0,
        status_field(pid, "RssFile") as f64 / 1024.0,
        pss_kb(pid) as f64 / 1024.0,
        status_field(pid, "Threads")
    );
    println!(
        "  resident memory (fencer):     {:.1} MB (PSS {:.1} MB)",
        fencer_rss as f64 / 1024.0,
        fencer_pss as f64 / 1024.0
    );
    println!(
        "  daemon + fencer:              {:.1} MB RSS, {:.1} MB PSS (target <= 12 MB RSS)",
        (rss + fencer_rss) as f64 / 1024.0,
        (pss_kb(pid) + fencer_pss) as f64 / 1024.0
    );
    println!(
        "  CPU per idle minute:          {:.3} s    (target <= 0.05 s; Patroni: 0.14-0.25 s)",
        (cpu1 - cpu0) * per_min
    );
    println!("  DCS requests per idle minute: {:.0}      (Patroni: 7-10 at loop_wait 10, ~31 at loop_wait 2)", (total(&msgs1) - total(&msgs0)) as f64 * per_min);
    println!("    by etcd method per minute: {}", by_method.join(", "));
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    hactl::daemon::fencer::fence_data_dir(&node.join("data"));
    drop(etcd);
}
