//! Test support: a throw-away single-server Consul on free loopback ports, its data in a directory you give.
//!
//! Every port is chosen free on 127.0.0.1 (HTTP, serf LAN/WAN, server RPC; DNS and gRPC are off), so tests never
//! touch a Consul on the default ports. It runs as a real server (`-server -bootstrap-expect 1`), not `-dev`, so that
//! [`ConsulServer::stop`] then [`ConsulServer::start_again`] keep the KV data and sessions, as an outage would.
//! The process is killed by PID on drop.
//!
//! ```no_run
//! let dir = tempfile::tempdir().unwrap();
//! if let Some(server) = dcs_consul::testing::ConsulServer::start_or_skip(dir.path()) {
//!     println!("Consul at {}", server.url());
//! }
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ha_core::testing::{NotReady, ServerProcess};

/// Why a test server could not run.
#[derive(Debug, thiserror::Error)]
pub enum TestServerError {
    /// `consul version` does not run: no `consul` on the PATH.
    #[error(
        "the `consul` binary was not found on PATH (scripts/install.sh installs Consul 1.8.7)"
    )]
    BinaryMissing,
    /// Making the data directory, opening the log or spawning the process failed.
    #[error("could not spawn consul: {0}")]
    Spawn(#[from] std::io::Error),
    /// The server did not elect itself leader in time, or exited first.
    #[error("consul did not elect itself leader: {0}")]
    NotReady(NotReady),
}

/// How long a fresh server may take to elect itself (measured: ~2 s with raft_multiplier 1).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A Consul server process owned by a test.
#[derive(Debug)]
pub struct ConsulServer {
    dir: PathBuf,
    http_port: u16,
    serf_lan_port: u16,
    serf_wan_port: u16,
    server_port: u16,
    /// HTTPS for the HTTP API besides plain HTTP (which the readiness check keeps using).
    tls: Option<ConsulTlsFiles>,
    https_port: u16,
    process: Option<ServerProcess>,
}

/// The PEM files of a TLS test server ([`ConsulServer::start_tls`]).
#[derive(Debug, Clone)]
pub struct ConsulTlsFiles {
    /// The server's certificate (valid for `127.0.0.1`) and its key.
    pub cert: PathBuf,
    /// The private key of `cert` (`key_file`).
    pub key: PathBuf,
    /// The CA that signs the clients' certificates; an HTTPS client without one is refused
    /// (`verify_incoming_https`).
    pub ca: PathBuf,
}

/// Four different free ports ([`free_port`] hands each port out once; consul refuses to start when two of its
/// ports are equal).
fn distinct_free_ports() -> [u16; 4] {
    [free_port(), free_port(), free_port(), free_port()]
}

/// How many port sets [`ConsulServer::start`] tries.
const START_ATTEMPTS: usize = 3;

/// A free loopback port for a test server (one helper for every backend and test: see [`ha_core::testing`]).
pub use ha_core::testing::free_port;
/// Stopping and starting a test server again (in scope for the tests that do).
pub use ha_core::testing::Restartable;

/// Is `consul` on PATH?
pub fn binary_available() -> bool {
    Command::new("consul")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl ConsulServer {
    /// Starts a server whose data and log live in `dir`, and waits until it has a leader.
    pub fn start(dir: &Path) -> Result<ConsulServer, TestServerError> {
        ConsulServer::start_with(dir, None)
    }

    /// Like [`ConsulServer::start`], with the HTTP API also on HTTPS ([`ConsulServer::https_port`]) requiring a
    /// client certificate signed by `tls.ca`.
    pub fn start_tls(dir: &Path, tls: ConsulTlsFiles) -> Result<ConsulServer, TestServerError> {
        ConsulServer::start_with(dir, Some(tls))
    }

    fn start_with(
        dir: &Path,
        tls: Option<ConsulTlsFiles>,
    ) -> Result<ConsulServer, TestServerError> {
        if !binary_available() {
            return Err(TestServerError::BinaryMissing);
        }
        // A port taken by someone else between choosing it and consul's bind makes consul exit: try a few sets.
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let [http_port, serf_lan_port, serf_wan_port, server_port] = distinct_free_ports();
            let mut s = ConsulServer {
                dir: dir.to_path_buf(),
                http_port,
                serf_lan_port,
                serf_wan_port,
                server_port,
                https_port: if tls.is_some() { free_port() } else { 0 },
                tls: tls.clone(),
                process: None,
            };
            match s.spawn() {
                Ok(()) => return Ok(s),
                Err(e) => {
                    // The next attempt starts from an empty data dir, with none of this one's ports in it.
                    drop(s);
                    let _ = std::fs::remove_dir_all(dir.join("data"));
                    last = Some(e)
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// [`ConsulServer::start`], or `None` with a message when the binary is missing. With `CI=true` a missing
    /// binary panics: CI must not silently skip the Consul tests.
    pub fn start_or_skip(dir: &Path) -> Option<ConsulServer> {
        ha_core::testing::or_skip(
            ConsulServer::start(dir),
            |e| matches!(e, TestServerError::BinaryMissing),
            "consul",
        )
    }

    fn spawn(&mut self) -> Result<(), TestServerError> {
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data)?;
        let mut cmd = Command::new("consul");
        cmd.args([
            "agent",
            "-server",
            "-bootstrap-expect",
            "1",
            "-node",
            "hactl-test",
        ])
        .arg("-data-dir")
        .arg(&data)
        .args([
            "-bind",
            "127.0.0.1",
            "-advertise",
            "127.0.0.1",
            "-client",
            "127.0.0.1",
        ])
        .args(["-http-port", &self.http_port.to_string()])
        .args(["-serf-lan-port", &self.serf_lan_port.to_string()])
        .args(["-serf-wan-port", &self.serf_wan_port.to_string()])
        .args(["-server-port", &self.server_port.to_string()])
        .args(["-dns-port", "-1", "-grpc-port", "-1", "-log-level", "warn"])
        // Faster elections than the production default (5): a restarted test server is back in ~1 s.
        .args(["-hcl", "performance { raft_multiplier = 1 }"]);
        if let Some(t) = &self.tls {
            cmd.args(["-hcl", &format!("ports {{ https = {} }}", self.https_port)])
                .args(["-hcl", &format!("cert_file = \"{}\"", t.cert.display())])
                .args(["-hcl", &format!("key_file = \"{}\"", t.key.display())])
                .args(["-hcl", &format!("ca_file = \"{}\"", t.ca.display())])
                .args(["-hcl", "verify_incoming_https = true"]);
        }
        let process = self.process.insert(ServerProcess::spawn(
            &mut cmd,
            &self.dir.join("consul.log"),
        )?);
        let port = self.http_port;
        process
            .wait_ready(READY_TIMEOUT, || {
                // `"127.0.0.1:8300"` once elected, `""` before; then the node registered in the catalog with its
                // serfHealth check passing, which every session is created against: a session asked for in
                // between got "Missing node registration" (once in CI).
                http_get(port, "/v1/status/leader").is_some_and(|body| body.contains(':'))
                    && http_get(port, "/v1/health/node/hactl-test").is_some_and(|body| {
                        body.contains("\"CheckID\":\"serfHealth\"")
                            && body.contains("\"Status\":\"passing\"")
                    })
            })
            .map_err(TestServerError::NotReady)
    }

    /// The HTTPS port of a [`ConsulServer::start_tls`] server (0 otherwise).
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The HTTP API port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }
}

impl Restartable for ConsulServer {
    type Error = TestServerError;

    fn process(&self) -> Option<&ServerProcess> {
        self.process.as_ref()
    }

    fn take_process(&mut self) -> Option<ServerProcess> {
        self.process.take()
    }

    fn respawn(&mut self) -> Result<(), TestServerError> {
        self.spawn()
    }
}

/// A minimal blocking HTTP GET (readiness only; keeps test support free of an HTTP client feature).
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    if !out.starts_with("HTTP/1.0 200") && !out.starts_with("HTTP/1.1 200") {
        return None;
    }
    out.split("\r\n\r\n").nth(1).map(str::to_string)
}
