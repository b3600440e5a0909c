//! vip-manager (Debian's package, unchanged) in front of a test cluster: one network namespace per node, as three
//! hosts on one bridge, each running vip-manager for its member; the virtual IP must sit on the primary's host.
//!
//! Debian's vip-manager 1.0.2 reads etcd through its v2 API only (and has Consul compiled out), so the cluster
//! runs with Patroni's `etcd:` section ([`Spec::etcd_v2`]). The hosts reach etcd through a forwarder on the
//! bridge's address (etcd itself listens on the root namespace's loopback).

use std::net::Ipv4Addr;

use super::*;

pub struct VipSite {
    /// The prefix of every namespace and link name (`hvNNNNN`).
    tag: String,
    hosts: Vec<(String, String)>,
    managers: Vec<Child>,
    _forwarder: forward::Forwarder,
    /// The virtual IP.
    pub vip: Ipv4Addr,
    dir: PathBuf,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl VipSite {
    /// Three hosts (`node1`..`node3`'s), a vip-manager on each watching the cluster's leader key in etcd's v2 store.
    /// `None` (a SKIPPED line, or a panic under CI) without vip-manager.
    pub fn start(c: &Cluster) -> Option<VipSite> {
        let binary = Path::new("/usr/bin/vip-manager");
        if !binary.exists() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but vip-manager is not installed (scripts/install.sh)");
            }
            eprintln!("SKIPPED: vip-manager is not installed (run scripts/install.sh)");
            return None;
        }
        assert!(
            c.etcd_v2,
            "vip-manager 1.0 reads etcd's v2 store: start the cluster with Spec::etcd_v2"
        );
        let etcd = match &c.dcs {
            DcsServer::Etcd(Etcd::Single(s)) => s.addr().port(),
            _ => panic!("the VIP site needs a single etcd server"),
        };
        // Names fit IFNAMSIZ (15): `hv` + 5 digits + role + index.
        let tag = format!("hv{:05}", std::process::id() % 100_000);
        let net = (std::process::id() % 200 + 20) as u8;
        let gateway = Ipv4Addr::new(10, 231, net, 1);
        let vip = Ipv4Addr::new(10, 231, net, 100);
        let bridge = format!("{tag}b");
        // Leftovers of an earlier run with the same PID.
        remove_links(&tag);
        ip(&["link", "add", &bridge, "type", "bridge"]);
        // A bridge takes the lowest MAC of its ports unless given one: adding node2's and node3's links could change
        // the gateway's MAC under node1's ARP entry, and node1's vip-manager then timed out on every request to
        // the forwarder (seen once in CI). A MAC set here stays.
        ip(&[
            "link",
            "set",
            &bridge,
            "address",
            &format!("02:00:0a:e7:{net:02x}:01"),
        ]);
        ip(&["addr", "add", &format!("{gateway}/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        let mut site = VipSite {
            tag: tag.clone(),
            hosts: Vec::new(),
            managers: Vec::new(),
            _forwarder: forward::Forwarder::start_on(&gateway.to_string(), etcd),
            vip,
            dir: c.dir.clone(),
        };
        let endpoint = format!("http://{gateway}:{}", site._forwarder.port);
        for (k, node) in c.nodes.iter().enumerate() {
            let ns = format!("{tag}n{}", k + 1);
            let (outer, inner) = (format!("{tag}h{}", k + 1), format!("{tag}p{}", k + 1));
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]);
            ip(&["link", "set", &inner, "netns", &ns]);
            ip(&["link", "set", &outer, "master", &bridge, "up"]);
            let host = Ipv4Addr::new(10, 231, net, 11 + k as u8);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{host}/24"),
                "dev",
                &inner,
            ]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let log = fs::File::create(c.dir.join(format!("vip-manager-{}.log", node.name)))
                .expect("vip-manager log");
            // `ip netns exec` execs vip-manager: the child's PID is vip-manager's.
            let manager = Command::new("ip")
                .args(["netns", "exec", &ns])
                .arg(binary)
                .args([
                    "--ip",
                    &vip.to_string(),
                    "--netmask",
                    "24",
                    "--interface",
                    &inner,
                ])
                .args(["--trigger-key", &format!("/service/{}/leader", c.scope)])
                .args(["--trigger-value", &node.name])
                .args(["--dcs-type", "etcd", "--dcs-endpoints", &endpoint])
                .args(["--interval", "100"])
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("vip-manager");
            site.managers.push(manager);
            site.hosts.push((ns, inner));
        }
        Some(site)
    }

    /// The node whose host holds the virtual IP now (`None`: nobody; panics if two do).
    pub fn holder(&self) -> Option<usize> {
        let holders: Vec<usize> = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, (ns, dev))| {
                let out = Command::new("ip")
                    .args(["-n", ns, "-4", "-o", "addr", "show", "dev", dev])
                    .output()
                    .expect("ip addr");
                String::from_utf8_lossy(&out.stdout).contains(&format!(" {}/", self.vip))
            })
            .map(|(k, _)| k)
            .collect();
        assert!(
            holders.len() <= 1,
            "the virtual IP is on two hosts: {holders:?}"
        );
        holders.first().copied()
    }

    /// Waits until node `i`'s host holds the virtual IP and answers a ping on it; how long that took.
    pub async fn wait_holder(&self, i: usize, within: Duration) -> Duration {
        let t0 = Instant::now();
        loop {
            if self.holder() == Some(i) {
                let ping = Command::new("ping")
                    .args(["-c", "1", "-W", "1", &self.vip.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if ping.is_ok_and(|s| s.success()) {
                    return t0.elapsed();
                }
            }
            if t0.elapsed() > within {
                let logs: Vec<String> = (1..=self.hosts.len())
                    .map(|k| {
                        let p = self.dir.join(format!("vip-manager-node{k}.log"));
                        let text = fs::read_to_string(&p).unwrap_or_default();
                        let tail: Vec<&str> = text.lines().rev().take(8).collect();
                        format!(
                            "--- {}:\n{}",
                            p.display(),
                            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                        )
                    })
                    .collect();
                panic!(
                    "the virtual IP is on {:?}, not on node{} after {within:?}\n{}",
                    self.holder().map(|k| k + 1),
                    i + 1,
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for VipSite {
    fn drop(&mut self) {
        for m in &mut self.managers {
            let _ = m.kill();
            let _ = m.wait();
        }
        remove_links(&self.tag);
    }
}

/// Deletes the namespaces (and with each its veth end, which takes the peer on the bridge along) and the bridge.
fn remove_links(tag: &str) {
    for k in 1..=3 {
        let _ = Command::new("ip")
            .args(["netns", "del", &format!("{tag}n{k}")])
            .output();
    }
    let _ = Command::new("ip")
        .args(["link", "del", &format!("{tag}b")])
        .output();
}
