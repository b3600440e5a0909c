//! Test support: a throw-away ZooKeeper 3.8 server on a free loopback port, its config and data in a directory you
//! give. The process is killed by PID on drop; [`ZkServer::stop`] then [`ZkServer::start_again`] keep the data (and
//! so the sessions), as an outage would.
//!
//! ```no_run
//! let dir = tempfile::tempdir().unwrap();
//! if let Some(server) = dcs_zk::testing::ZkServer::start_or_skip(dir.path()) {
//!     println!("ZooKeeper at {}", server.hosts());
//! }
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ha_core::testing::{NotReady, ServerProcess};

/// The Debian `zookeeper` package's jar (its manifest pulls in jute, netty...).
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// Without an slf4j binding the server logs nothing at all.
pub const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";

/// ZooKeeper's tick: session expiry is checked once per tick, so a short one makes expiry tests precise.
const TICK_MS: u64 = 500;
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a test server could not run.
#[derive(Debug, thiserror::Error)]
pub enum TestServerError {
    /// The ZooKeeper jar or `java` is not installed.
    #[error("ZooKeeper is not installed ({ZOOKEEPER_JAR} or `java` missing; scripts/install.sh installs it)")]
    BinaryMissing,
    /// The server's files could not be written or `java` could not be started.
    #[error("could not spawn java: {0}")]
    Spawn(#[from] std::io::Error),
    /// The server did not serve in time, or exited first.
    #[error("ZooKeeper was not serving: {0}")]
    NotReady(NotReady),
}

/// A free loopback port for a test server (one helper for every backend and test: see [`ha_core::testing`]).
pub use ha_core::testing::free_port;
/// Stopping and starting a test server again (in scope for the tests that do).
pub use ha_core::testing::Restartable;

/// Are java and the ZooKeeper jar there?
pub fn binary_available() -> bool {
    Path::new(ZOOKEEPER_JAR).exists()
        && Command::new("java")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

/// A ZooKeeper server process owned by a test.
#[derive(Debug)]
pub struct ZkServer {
    dir: PathBuf,
    port: u16,
    process: Option<ServerProcess>,
    /// In an ensemble: (myid, the `server.N=` lines).
    quorum: Option<(u32, String)>,
    /// `maxSessionTimeout` in ms.
    max_session_ms: u64,
}

impl ZkServer {
    /// Starts a standalone server with its `zoo.cfg`, data and log in `dir`, and waits until it serves.
    pub fn start(dir: &Path) -> Result<ZkServer, TestServerError> {
        ZkServer::start_with_max_session(dir, 60_000)
    }

    /// [`ZkServer::start`] with `maxSessionTimeout` set to `max_session_ms` (the default kit allows 60 s).
    pub fn start_with_max_session(
        dir: &Path,
        max_session_ms: u64,
    ) -> Result<ZkServer, TestServerError> {
        if !binary_available() {
            return Err(TestServerError::BinaryMissing);
        }
        let mut s = ZkServer {
            dir: dir.to_path_buf(),
            port: free_port(),
            process: None,
            quorum: None,
            max_session_ms,
        };
        s.write_config()?;
        s.spawn()?;
        s.wait_ready()?;
        Ok(s)
    }

    /// [`ZkServer::start`], or `None` with a message when ZooKeeper is not installed. With `CI=true` that panics: CI
    /// must not silently skip the ZooKeeper tests.
    pub fn start_or_skip(dir: &Path) -> Option<ZkServer> {
        ha_core::testing::or_skip(
            ZkServer::start(dir),
            |e| matches!(e, TestServerError::BinaryMissing),
            "ZooKeeper",
        )
    }

    fn write_config(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.dir.join("data"))?;
        std::fs::create_dir_all(self.dir.join("conf"))?;
        let mut cfg = format!(
            "tickTime={TICK_MS}\n\
             dataDir={data}\n\
             clientPort={port}\n\
             clientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=ruok,stat,srvr,mntr\n\
             minSessionTimeout=1000\n\
             maxSessionTimeout={max}\n",
            data = self.dir.join("data").display(),
            port = self.port,
            max = self.max_session_ms,
        );
        if let Some((myid, servers)) = &self.quorum {
            cfg.push_str("initLimit=10\nsyncLimit=4\n");
            cfg.push_str(servers);
            std::fs::write(self.dir.join("data/myid"), format!("{myid}\n"))?;
        }
        std::fs::write(self.dir.join("conf/zoo.cfg"), cfg)
    }

    fn spawn(&mut self) -> Result<(), TestServerError> {
        let cp = format!(
            "{}:{ZOOKEEPER_JAR}:{SLF4J_SIMPLE_JAR}",
            self.dir.join("conf").display()
        );
        let mut cmd = Command::new("java");
        cmd.args(["-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"])
            .arg("-Dzookeeper.admin.enableServer=false")
            .arg("-cp")
            .arg(cp)
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(self.dir.join("conf/zoo.cfg"));
        self.process = Some(ServerProcess::spawn(
            &mut cmd,
            &self.dir.join("zookeeper.log"),
        )?);
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), TestServerError> {
        let port = self.port;
        let Some(process) = self.process.as_mut() else {
            return Err(TestServerError::NotReady(NotReady::Exited {
                status: "never started".into(),
                log_tail: String::new(),
            }));
        };
        // `ruok` says imok before the server serves; `srvr` shows `Mode:` only once it does.
        process
            .wait_ready(READY_TIMEOUT, || {
                four_letter(port, "srvr").is_some_and(|s| s.contains("Mode:"))
            })
            .map_err(TestServerError::NotReady)
    }

    /// `127.0.0.1:<port>`, the connect string.
    pub fn hosts(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Started again, a member of an ensemble serves once it has rejoined a quorum.
impl Restartable for ZkServer {
    type Error = TestServerError;

    fn process(&self) -> Option<&ServerProcess> {
        self.process.as_ref()
    }

    fn take_process(&mut self) -> Option<ServerProcess> {
        self.process.take()
    }

    fn respawn(&mut self) -> Result<(), TestServerError> {
        self.spawn()?;
        self.wait_ready()
    }
}

/// A ZooKeeper ensemble (quorum) of `n` members on loopback, each with its own directory under the one given.
#[derive(Debug)]
pub struct ZkEnsemble {
    /// The members, in `server.<i>` order.
    pub members: Vec<ZkServer>,
}

impl ZkEnsemble {
    /// Starts `n` members (3 for a quorum that survives one loss) and waits until every one serves.
    pub fn start(dir: &Path, n: u32) -> Result<ZkEnsemble, TestServerError> {
        if !binary_available() {
            return Err(TestServerError::BinaryMissing);
        }
        let peers: Vec<(u32, u16, u16)> = (1..=n).map(|i| (i, free_port(), free_port())).collect();
        let servers: String = peers
            .iter()
            .map(|(i, peer, election)| format!("server.{i}=127.0.0.1:{peer}:{election}\n"))
            .collect();
        let mut members = Vec::new();
        for (i, _, _) in &peers {
            let mut s = ZkServer {
                dir: dir.join(format!("zk{i}")),
                port: free_port(),
                process: None,
                quorum: Some((*i, servers.clone())),
                max_session_ms: 60_000,
            };
            s.write_config()?;
            s.spawn()?;
            members.push(s);
        }
        // A member serves only once a quorum formed: start them all, then wait.
        for m in &mut members {
            m.wait_ready()?;
        }
        Ok(ZkEnsemble { members })
    }

    /// [`ZkEnsemble::start`], or `None` with a message when ZooKeeper is not installed (a panic with `CI=true`).
    pub fn start_or_skip(dir: &Path, n: u32) -> Option<ZkEnsemble> {
        ha_core::testing::or_skip(
            ZkEnsemble::start(dir, n),
            |e| matches!(e, TestServerError::BinaryMissing),
            "ZooKeeper",
        )
    }

    /// `127.0.0.1:p1,127.0.0.1:p2,...`
    pub fn hosts(&self) -> String {
        self.members
            .iter()
            .map(|m| m.hosts())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The index of the member that is the quorum leader right now (`srvr` says `Mode: leader`).
    pub fn leader_index(&self) -> Option<usize> {
        self.members.iter().position(|m| {
            m.process.is_some()
                && four_letter(m.port, "srvr").is_some_and(|s| s.contains("Mode: leader"))
        })
    }
}

/// Sends a four-letter command and returns the answer.
pub fn four_letter(port: u16, cmd: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(cmd.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}
