//! A network partition of one node, with iptables.

use super::*;

/// A network partition of one node, made with iptables: every packet to or from its DCS port (its own etcd client
/// port), its PostgreSQL port and its REST port is dropped, so its links hang as a cut cable makes them hang (no
/// reset). Its unix socket still works: a client on the node itself stays on its side of the cut. Healed on drop.
pub struct Partition {
    chain: String,
}

impl Partition {
    /// True when iptables can be used here (root, and the binary installed); under CI its absence is a failure.
    pub fn available(test: &str) -> bool {
        let ok = Command::new("iptables")
            .args(["-w", "-L", "INPUT", "-n"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_or(false, |s| s.success());
        if !ok {
            if std::env::var("CI").map_or(false, |v| v == "true") {
                panic!("{test}: iptables is not usable under CI (run scripts/install.sh as root)");
            }
            eprintln!("{test}: skipped, iptables is not usable here");
        }
        ok
    }

    pub fn cut(c: &Cluster, i: usize) -> Partition {
        let chain = format!("HACTL-E2E-{}", std::process::id());
        let ipt = |args: &[&str]| {
            let st = Command::new("iptables")
                .arg("-w")
                .args(args)
                .status()
                .expect("iptables");
            assert!(st.success(), "iptables {args:?} failed");
        };
        ipt(&["-N", &chain]);
        let n = &c.nodes[i];
        let ports = [
            c.dcs_forwarders
                .get(i)
                .map(|f| f.port)
                .or_else(|| c.dcs.own_port_of(i))
                .expect("the node has a DCS port of its own (Spec::partitionable on Consul and ZooKeeper)"),
            n.pg_port,
            n.api_port,
        ];
        for port in ports {
            for dir in ["--dport", "--sport"] {
                ipt(&[
                    "-A",
                    &chain,
                    "-p",
                    "tcp",
                    dir,
                    &port.to_string(),
                    "-j",
                    "DROP",
                ]);
            }
        }
        ipt(&["-I", "INPUT", "-j", &chain]);
        Partition { chain }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        for args in [
            vec!["-D", "INPUT", "-j", &self.chain],
            vec!["-F", &self.chain],
            vec!["-X", &self.chain],
        ] {
            let _ = Command::new("iptables").arg("-w").args(&args).status();
        }
    }
}
