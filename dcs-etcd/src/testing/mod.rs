//! Test support (not for production): real etcd servers on free loopback ports in a directory you own. This
//! crate's tests and benchmark use it, and so do the hactl crate's end-to-end tests; the byte-counting TCP proxy
//! that can black-hole traffic is ha-core's (`ha_core::testing::TcpProxy`, feature `testing`).
//!
//! Every server is started from Debian's `etcd-server` binary (`/usr/bin/etcd`, or `$HACTL_ETCD_BIN`), logs to a
//! file next to its data dir (`<dir>/<name>.log`) and is killed by its PID when dropped, so a failing test leaves no
//! server behind. A stopped server can be started again on the same ports with the same data.
//!
//! [`EtcdServer::start_tls`] starts one that speaks only HTTPS to clients and requires a client certificate signed
//! by a CA the test chose (`--client-cert-auth`); its health is then read on a plain-HTTP metrics port.
//!
//! ```no_run
//! use dcs_etcd::testing::{etcd_or_skip, EtcdServer, Restartable};
//! let dir = tempfile::tempdir().unwrap();
//! if etcd_or_skip("my_test").is_none() { return; }      // with CI=true a missing etcd panics instead
//! let mut server = EtcdServer::start(dir.path()).unwrap();
//! let endpoint = server.endpoint();                     // "http://127.0.0.1:<port>"
//! server.stop();                                        // SIGKILL, data kept
//! server.start_again().unwrap();                        // same ports, same data, healthy again
//! # let _ = endpoint;
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ha_core::testing::{NotReady, ServerProcess};

mod cluster;
pub use cluster::EtcdCluster;

/// How long a server (or a cluster member) may take to report healthy. A single member is healthy in ~0.15 s and
/// three members in ~3 s on this project's machines; the margin covers a loaded 2-core CI.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

/// Fresh port choices tried when etcd cannot bind the ports picked (another process took one in between).
const START_ATTEMPTS: usize = 3;

/// Failures of the test support itself.
#[derive(Debug, thiserror::Error)]
pub enum TestingError {
    /// No etcd binary: `$HACTL_ETCD_BIN` is set and names no file, or it is unset and there is neither
    /// `/usr/bin/etcd` nor an `etcd` on the PATH.
    #[error("etcd binary not found (install Debian's etcd-server, or set HACTL_ETCD_BIN)")]
    NoBinary,
    /// Opening a member's log or starting its process failed.
    #[error("could not {what}: {source}")]
    Io {
        /// What was being done, e.g. `open <dir>/etcd1-<port>.log`.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A member ran but did not report healthy within [`HEALTHY_WITHIN`].
    #[error("etcd member {name} was not healthy within {HEALTHY_WITHIN:?}; its log ends with:\n{log_tail}")]
    NotHealthy {
        /// The member, e.g. `etcd1`.
        name: String,
        /// The last 15 lines of its log.
        log_tail: String,
    },
    /// A member's process exited before it was healthy (a port taken in the meantime, a bad flag).
    #[error("etcd member {name} exited at start ({status}); its log ends with:\n{log_tail}")]
    Exited {
        /// The member, e.g. `etcd1`.
        name: String,
        /// Its exit status.
        status: String,
        /// The last 15 lines of its log.
        log_tail: String,
    },
    /// An `etcdctl` command a test ran against the server failed.
    #[error("etcdctl {args}: {stderr}")]
    Etcdctl {
        /// Its arguments after the connection flags.
        args: String,
        /// What it printed on stderr (or why it could not run).
        stderr: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestingError {
    let what = what.into();
    move |source| TestingError::Io { what, source }
}

/// The etcd binary: `$HACTL_ETCD_BIN`, `/usr/bin/etcd`, or `etcd` on the PATH.
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HACTL_ETCD_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let debian = PathBuf::from("/usr/bin/etcd");
    if debian.is_file() {
        return Some(debian);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("etcd"))
            .find(|p| p.is_file())
    })
}

/// The etcd binary, or `None` after printing why `test` is skipped. With `CI=true` a missing etcd is a failure
/// (panic), so CI cannot pass by skipping.
pub fn etcd_or_skip(test: &str) -> Option<PathBuf> {
    ha_core::testing::or_skip(binary(), |_| true, &format!("etcd (for {test})"))
}

/// A free loopback port for a test server (one helper for every backend and test: see [`ha_core::testing`]).
pub use ha_core::testing::free_port;
/// Stopping and starting a test server again (in scope for the tests that do).
pub use ha_core::testing::Restartable;

/// The PEM files of a TLS test server ([`EtcdServer::start_tls`]).
#[derive(Debug, Clone)]
pub struct ServerTlsFiles {
    /// The server's certificate (valid for `127.0.0.1`) and its key.
    pub cert: PathBuf,
    /// The private key of `cert` (`--key-file`).
    pub key: PathBuf,
    /// The CA that signs the clients' certificates; a client without one is refused at the handshake.
    pub client_ca: PathBuf,
}

/// A client's PEM files, for `etcdctl` against a TLS server ([`EtcdServer::enable_root_auth`]).
#[derive(Debug, Clone)]
pub struct ClientTlsFiles {
    /// The CA the server's certificate is checked against (`--cacert`).
    pub ca: PathBuf,
    /// The client's certificate (`--cert`), signed by the server's client CA.
    pub cert: PathBuf,
    /// Its key (`--key`).
    pub key: PathBuf,
}

/// One etcd member: how to start it, and its process while it runs.
#[derive(Debug)]
struct Member {
    binary: PathBuf,
    name: String,
    data_dir: PathBuf,
    log: PathBuf,
    client_port: u16,
    /// More client ports the member also listens on, so a test can cut one client's link to etcd (iptables on
    /// that port) while the others keep theirs.
    extra_client_ports: Vec<u16>,
    peer_port: u16,
    initial_cluster: String,
    token: String,
    /// HTTPS only, client certificates required; health is then read on `metrics_port` (plain HTTP).
    tls: Option<ServerTlsFiles>,
    metrics_port: u16,
    process: Option<ServerProcess>,
}

impl Member {
    /// The data dir and log are named after the member and its client port, so several servers and clusters can
    /// share one directory.
    fn new(
        binary: &Path,
        dir: &Path,
        name: &str,
        (client_port, peer_port): (u16, u16),
        initial_cluster: String,
        token: &str,
    ) -> Member {
        Member {
            binary: binary.to_path_buf(),
            name: name.to_string(),
            data_dir: dir.join(format!("{name}-{client_port}")),
            log: dir.join(format!("{name}-{client_port}.log")),
            client_port,
            extra_client_ports: Vec::new(),
            peer_port,
            initial_cluster,
            token: token.to_string(),
            tls: None,
            metrics_port: 0,
            process: None,
        }
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn client_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.client_port)
    }

    fn listen_client_urls(&self) -> String {
        std::iter::once(self.client_port)
            .chain(self.extra_client_ports.iter().copied())
            .map(|p| format!("{}://127.0.0.1:{p}", self.scheme()))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn spawn(&mut self) -> Result<(), TestingError> {
        if self.process.is_some() {
            return Ok(());
        }
        let mut cmd = Command::new(&self.binary);
        if let Some(tls) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&tls.cert)
                .arg("--key-file")
                .arg(&tls.key)
                .arg("--trusted-ca-file")
                .arg(&tls.client_ca)
                .arg("--client-cert-auth")
                .arg("--listen-metrics-urls")
                .arg(format!("http://127.0.0.1:{}", self.metrics_port));
        }
        // The v2 API too, so a test can write the keys a Patroni `etcd:` (v2) cluster leaves there.
        cmd.args(["--logger=zap", "--log-level=warn", "--enable-v2=true"])
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &self.listen_client_urls()])
            .args(["--advertise-client-urls", &self.client_url()])
            .args(["--listen-peer-urls", &self.peer_url()])
            .args(["--initial-advertise-peer-urls", &self.peer_url()])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            // Fast elections: a killed leader is replaced in ~1-2 s; the minimum lease ttl becomes 2 s.
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"]);
        let process = ServerProcess::spawn(&mut cmd, &self.log).map_err(io(format!(
            "start {} (log {})",
            self.binary.display(),
            self.log.display()
        )))?;
        self.process = Some(process);
        Ok(())
    }

    /// SIGKILL and reap. The data dir stays.
    fn kill(&mut self) {
        self.process = None;
    }

    fn log_tail(&self) -> String {
        self.process
            .as_ref()
            .map(ServerProcess::log_tail)
            .unwrap_or_default()
    }

    /// The member's exit, as [`TestingError::Exited`], if its process has exited (it is then forgotten).
    fn exited(&mut self) -> Option<TestingError> {
        let status = self.process.as_mut()?.exited()?;
        let log_tail = self.log_tail();
        self.process = None;
        Some(TestingError::Exited {
            name: self.name.clone(),
            status,
            log_tail,
        })
    }

    /// `GET /health` says `"health":"true"` (3.4: only when the member sees a leader).
    fn healthy(&self) -> bool {
        healthy(self.health_port())
    }

    /// Where `/health` is read: the client port, or the plain-HTTP metrics port of a TLS member.
    fn health_port(&self) -> u16 {
        if self.tls.is_some() {
            self.metrics_port
        } else {
            self.client_port
        }
    }

    fn wait_healthy(&mut self) -> Result<(), TestingError> {
        let port = self.health_port();
        let name = self.name.clone();
        let Some(process) = self.process.as_mut() else {
            return Err(TestingError::NotHealthy {
                name,
                log_tail: "never started".into(),
            });
        };
        match process.wait_ready(HEALTHY_WITHIN, || healthy(port)) {
            Ok(()) => Ok(()),
            Err(NotReady::Exited { status, log_tail }) => {
                self.process = None;
                Err(TestingError::Exited {
                    name,
                    status,
                    log_tail,
                })
            }
            Err(NotReady::TimedOut { log_tail, .. }) => {
                Err(TestingError::NotHealthy { name, log_tail })
            }
        }
    }
}

/// `GET /health` on `port` says `"health":"true"` (3.4: only when the member sees a leader).
fn healthy(port: u16) -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    let req = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

fn binary() -> Result<PathBuf, TestingError> {
    etcd_binary().ok_or(TestingError::NoBinary)
}

/// A single-member etcd on free loopback ports, data in `<dir>/etcd1-<client port>`.
#[derive(Debug)]
pub struct EtcdServer {
    member: Member,
}

impl EtcdServer {
    /// Starts etcd with its data under `dir` (in `etcd1-<client port>/`) and waits until it is healthy.
    pub fn start(dir: &Path) -> Result<EtcdServer, TestingError> {
        EtcdServer::start_with_client_ports(dir, 0)
    }

    /// Like [`EtcdServer::start`], also listening on `extra` more client ports ([`EtcdServer::extra_endpoint`]):
    /// one per client whose link a test wants to cut alone.
    pub fn start_with_client_ports(dir: &Path, extra: usize) -> Result<EtcdServer, TestingError> {
        EtcdServer::start_member(dir, extra, None)
    }

    /// Like [`EtcdServer::start`], speaking only HTTPS (`--cert-file`, `--key-file`) and requiring a client
    /// certificate signed by `tls.client_ca` (`--trusted-ca-file`, `--client-cert-auth`).
    /// [`EtcdServer::endpoint`] is then `https://127.0.0.1:<port>`.
    pub fn start_tls(dir: &Path, tls: ServerTlsFiles) -> Result<EtcdServer, TestingError> {
        EtcdServer::start_member(dir, 0, Some(tls))
    }

    fn start_member(
        dir: &Path,
        extra: usize,
        tls: Option<ServerTlsFiles>,
    ) -> Result<EtcdServer, TestingError> {
        let bin = binary()?;
        // A port taken between free_port() and etcd's bind makes etcd exit: try a few port pairs.
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let ports = (free_port(), free_port());
            let cluster = format!("etcd1=http://127.0.0.1:{}", ports.1);
            let mut m = Member::new(&bin, dir, "etcd1", ports, cluster, "hactl-test");
            m.extra_client_ports = (0..extra).map(|_| free_port()).collect();
            if tls.is_some() {
                m.metrics_port = free_port();
                m.tls = tls.clone();
            }
            m.spawn()?;
            match m.wait_healthy() {
                Ok(()) => return Ok(EtcdServer { member: m }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// `http://127.0.0.1:<client port>` (`https://` for [`EtcdServer::start_tls`]).
    pub fn endpoint(&self) -> String {
        self.member.client_url()
    }

    /// The client address, e.g. for a `ha_core::testing::TcpProxy` (feature `testing`) in front of it.
    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.member.client_port).into()
    }

    /// `http://127.0.0.1:<port>` of the `i`th extra client port (see [`EtcdServer::start_with_client_ports`]).
    pub fn extra_endpoint(&self, i: usize) -> Option<String> {
        self.member
            .extra_client_ports
            .get(i)
            .map(|p| format!("http://127.0.0.1:{p}"))
    }
}

impl EtcdServer {
    /// Turns on etcd's user authentication with a `root` user whose password is `root_password`, as an operator
    /// does it with `etcdctl` (`user add`, `user grant-role root root`, `auth enable`), over TLS with `client`'s
    /// files when given.
    pub fn enable_root_auth(
        &self,
        client: Option<&ClientTlsFiles>,
        root_password: &str,
    ) -> Result<(), TestingError> {
        let etcdctl = |args: &[&str]| {
            let mut cmd = Command::new("etcdctl");
            cmd.env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", self.endpoint()));
            if let Some(c) = client {
                cmd.arg(format!("--cacert={}", c.ca.display()))
                    .arg(format!("--cert={}", c.cert.display()))
                    .arg(format!("--key={}", c.key.display()));
            }
            let failed = |stderr: String| TestingError::Etcdctl {
                args: args.join(" "),
                stderr,
            };
            let out = cmd.args(args).output().map_err(|e| failed(e.to_string()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(failed(String::from_utf8_lossy(&out.stderr).into_owned()))
            }
        };
        etcdctl(&["user", "add", &format!("root:{root_password}")])?;
        etcdctl(&["user", "grant-role", "root", "root"])?;
        etcdctl(&["auth", "enable"])
    }
}

impl Restartable for EtcdServer {
    type Error = TestingError;

    fn process(&self) -> Option<&ServerProcess> {
        self.member.process.as_ref()
    }

    fn take_process(&mut self) -> Option<ServerProcess> {
        self.member.process.take()
    }

    fn respawn(&mut self) -> Result<(), TestingError> {
        self.member.spawn()?;
        self.member.wait_healthy()
    }
}
