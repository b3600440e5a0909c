//! A real multi-member etcd cluster for tests: members stopped and started one by one (quorum loss, leader
//! changes).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ha_core::testing::ServerProcess;

use super::{binary, free_port, Member, TestingError, HEALTHY_WITHIN, START_ATTEMPTS};

/// A cluster of `n` etcd members on loopback, data in `<dir>/etcd<i>-<client port>`; each member can be stopped and
/// started.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
}

impl EtcdCluster {
    /// Starts `n` members (3 for the usual test) and waits until all are healthy (they have elected a leader).
    pub fn start(dir: &Path, n: usize) -> Result<EtcdCluster, TestingError> {
        assert!(n >= 1, "a cluster has at least one member");
        let bin = binary()?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
            let initial = ports
                .iter()
                .enumerate()
                .map(|(i, (_, p))| format!("etcd{}=http://127.0.0.1:{p}", i + 1))
                .collect::<Vec<_>>()
                .join(",");
            let mut cluster = EtcdCluster {
                members: ports
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let name = format!("etcd{}", i + 1);
                        Member::new(&bin, dir, &name, *p, initial.clone(), "hactl-cluster")
                    })
                    .collect(),
            };
            match cluster.start_all() {
                Ok(()) => return Ok(cluster),
                // Dropping the half-started cluster kills its members.
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// How many members the cluster has, running or stopped.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: [`EtcdCluster::start`] panics when asked for no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Client URLs of all members, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// Client URL of member `i` (0-based).
    pub fn endpoint(&self, i: usize) -> String {
        self.members[i].client_url()
    }

    /// Client address of member `i`, e.g. for a `ha_core::testing::TcpProxy` (feature `testing`) in front of it (a partition of that member).
    pub fn addr(&self, i: usize) -> SocketAddr {
        ([127, 0, 0, 1], self.members[i].client_port).into()
    }

    /// The process id of member `i` while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].process.as_ref().map(ServerProcess::pid)
    }

    /// Kills member `i` (SIGKILL); its data stays.
    pub fn stop(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again with its data and waits until it is healthy (it has rejoined and sees a leader).
    pub fn start_member(&mut self, i: usize) -> Result<(), TestingError> {
        self.members[i].spawn()?;
        self.members[i].wait_healthy()
    }

    /// Kills every member.
    pub fn stop_all(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }

    /// Starts every stopped member and waits until all are healthy. A member that exits (a port taken, say) fails
    /// this at once rather than after [`HEALTHY_WITHIN`].
    pub fn start_all(&mut self) -> Result<(), TestingError> {
        for m in &mut self.members {
            m.spawn()?;
        }
        let start = Instant::now();
        loop {
            for m in &mut self.members {
                if let Some(exit) = m.exited() {
                    return Err(exit);
                }
            }
            if self.members.iter().all(Member::healthy) {
                return Ok(());
            }
            if start.elapsed() > HEALTHY_WITHIN {
                let sick = self.members.iter().find(|m| !m.healthy());
                let m = sick.unwrap_or(&self.members[0]);
                return Err(TestingError::NotHealthy {
                    name: m.name.clone(),
                    log_tail: m.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
