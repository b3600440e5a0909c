//! The processes of a test cluster: each node's daemon (started as the postgres OS user, stopped, killed, its
//! machine crashed, signalled), HAProxy in front, and the cleanup that kills every one of them by its PID.

use super::*;

impl Cluster {
    /// Starts (or restarts) node `i`'s daemon as the postgres OS user.
    pub fn start_daemon(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log");
        let mut cmd = Command::new(&self.hactl);
        cmd.arg("run")
            .arg(&node.config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null());
        // E2E_RUST_LOG=debug,h2=info… gives the daemons' finer logs when looking into a scenario.
        cmd.env(
            "RUST_LOG",
            std::env::var("E2E_RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
        if let Some((u, g)) = uid_gid("postgres") {
            cmd.uid(u).gid(g);
        }
        node.child = Some(cmd.spawn().expect("spawn hactl"));
    }

    /// SIGTERM to the daemon and wait for it to exit (graceful stop).
    pub async fn stop_daemon(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            signal(child.id() as i32, "TERM");
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL the daemon (PostgreSQL keeps running).
    pub fn kill_daemon(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// hactl goes away from node `i` but PostgreSQL stays: the daemon and its fencer SIGKILLed together, so the
    /// fencer never fires (as when a node is handed to another HA manager, or comes from one).
    pub fn kill_daemon_and_fencer(&mut self, i: usize) {
        let data = self.nodes[i].data_dir.display().to_string();
        self.kill_daemon(i);
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &format!("hactl[- ]fencer {data}")])
            .status();
    }

    /// The machine dies: daemon, fencer, postmaster and backends SIGKILLed at once.
    pub fn crash_node(&mut self, i: usize) {
        let data = self.nodes[i].data_dir.display().to_string();
        let pm = self.nodes[i].postmaster_pid();
        self.kill_daemon(i);
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &format!("hactl[- ]fencer {data}")])
            .status();
        if let Some(pid) = pm {
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &pid.to_string()])
                .status();
            signal(pid, "KILL");
        }
    }

    pub fn signal_daemon(&self, i: usize, sig: &str) {
        if let Some(pid) = self.nodes[i].daemon_pid() {
            signal(pid as i32, sig);
        }
    }

    pub fn signal_postmaster(&self, i: usize, sig: &str) {
        if let Some(pid) = self.nodes[i].postmaster_pid() {
            signal(pid, sig);
        }
    }

    /// The options of a server's health check: over HTTPS HAProxy verifies the nodes against the test CA and shows
    /// the client certificate they require.
    fn haproxy_check_ssl(&self) -> String {
        match &self.tls {
            None => String::new(),
            Some(p) => {
                let pem = self.dir.join("haproxy-client.pem");
                let text = fs::read_to_string(&p.client_cert).expect("client cert")
                    + &fs::read_to_string(&p.client_key).expect("client key");
                fs::write(&pem, text).expect("haproxy client pem");
                format!(
                    " check-ssl verify required ca-file {} crt {}",
                    p.ca.display(),
                    pem.display()
                )
            }
        }
    }

    pub(super) fn start_haproxy(&mut self) {
        let ssl = self.haproxy_check_ssl();
        let servers = |check: &str| {
            self.nodes
                .iter()
                .map(|n| {
                    format!(
                        "    server {} 127.0.0.1:{} check port {}{ssl}\n",
                        n.name, n.pg_port, n.api_port
                    )
                })
                .collect::<String>()
                + &format!("    option httpchk GET {check}\n    http-check expect status 200\n")
        };
        // The global and defaults sections are the shipped example's, so the figures are those of the config users get.
        let shipped = shipped_haproxy_defaults().replace(
            SHIPPED_RUNTIME_API,
            &format!("ipv4@127.0.0.1:{}", self.haproxy_api_port),
        );
        let cfg = format!(
            "{shipped}listen primary\n    bind 127.0.0.1:{w}\n{p}listen replicas\n    bind 127.0.0.1:{r}\n    balance roundrobin\n{rp}",
            w = self.write_port,
            r = self.read_port,
            p = servers("/primary"),
            rp = servers("/replica"),
        );
        let path = self.dir.join("haproxy.cfg");
        fs::write(&path, cfg).expect("haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.dir.join("haproxy.log")).expect("haproxy log"))
            .spawn()
            .expect("haproxy");
        self.haproxy = Some(child);
    }
}

impl Cluster {
    /// HAProxy's config as `hactl template` renders it: Patroni-style confd resource over the shipped template,
    /// copied unchanged; the ports and the check options come from the environment the template reads.
    pub(super) async fn start_templated_haproxy(&mut self) {
        let confd = self.dir.join("confd");
        fs::create_dir_all(confd.join("conf.d")).expect("conf.d");
        fs::create_dir_all(confd.join("templates")).expect("templates");
        let shipped =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/confd/templates/haproxy.tmpl");
        fs::copy(&shipped, confd.join("templates/haproxy.tmpl"))
            .expect("copy the shipped template");
        let cfg = self.haproxy_cfg();
        let resource = |reload: &str| {
            format!(
                "[template]\nsrc = \"haproxy.tmpl\"\ndest = \"{}\"\nkeys = [\"/members/\", \"/leader\"]\n\
                 check_cmd = \"haproxy -c -q -f {{{{.src}}}}\"\n{reload}",
                cfg.display()
            )
        };
        let ssl = self.haproxy_check_ssl();
        let template = |extra: &[&str]| {
            let mut cmd = Command::new(&self.hactl);
            cmd.arg("-c")
                .arg(&self.nodes[0].config)
                .arg("template")
                .arg("--confdir")
                .arg(&confd)
                .args(extra)
                .env(
                    "HAPROXY_PRIMARY_BIND",
                    format!("127.0.0.1:{}", self.write_port),
                )
                .env(
                    "HAPROXY_REPLICAS_BIND",
                    format!("127.0.0.1:{}", self.read_port),
                )
                .env("HAPROXY_STATS_BIND", format!("127.0.0.1:{}", free_port()))
                .env("HAPROXY_CHECK_OPTIONS", &ssl)
                .env(
                    "HAPROXY_RUNTIME_API",
                    format!("ipv4@127.0.0.1:{}", self.haproxy_api_port),
                )
                .stdout(Stdio::null())
                .stderr(
                    fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(self.dir.join("template.log"))
                        .expect("template log"),
                );
            cmd
        };
        // A first render before HAProxy starts (confd's -onetime), then the watcher reloads the running HAProxy.
        fs::write(confd.join("conf.d/haproxy.toml"), resource("")).expect("resource");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !template(&["--onetime"])
            .status()
            .expect("hactl template")
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "hactl template --onetime never succeeded"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let haproxy = Command::new("haproxy")
            .args(["-W", "-db", "-f"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.dir.join("haproxy.log")).expect("haproxy log"))
            .spawn()
            .expect("haproxy");
        // Master-worker mode: SIGUSR2 to the master reloads the config, the PID stays the one the test kills.
        fs::write(
            confd.join("conf.d/haproxy.toml"),
            resource(&format!("reload_cmd = \"kill -USR2 {}\"\n", haproxy.id())),
        )
        .expect("resource");
        self.haproxy = Some(haproxy);
        self.template = Some(template(&[]).spawn().expect("hactl template"));
    }

    pub fn haproxy_cfg(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(pid) = n.daemon_pid() {
                signal(pid as i32, "CONT");
            }
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        for mut h in [self.template.take(), self.haproxy.take()]
            .into_iter()
            .flatten()
        {
            let _ = h.kill();
            let _ = h.wait();
        }
        // PostgreSQL outlives a SIGKILLed daemon: kill every postmaster (and its backends) by PID.
        for n in &self.nodes {
            if let Some(pid) = n.postmaster_pid() {
                signal(pid, "CONT");
                signal(pid, "QUIT");
                std::thread::sleep(Duration::from_millis(200));
                signal(pid, "KILL");
            }
        }
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.dir.display().to_string()])
            .status();
        // A failed scenario keeps its directory (logs, data) for a look; E2E_KEEP=1 keeps every one.
        if !std::thread::panicking() && std::env::var_os("E2E_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The runtime API address in the shipped config: each test cluster's HAProxy listens on a port of its own.
const SHIPPED_RUNTIME_API: &str = "ipv4@127.0.0.1:7001";

/// `examples/haproxy/haproxy.cfg` up to its first `listen` section: the `global` and `defaults` users deploy.
fn shipped_haproxy_defaults() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/haproxy/haproxy.cfg");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let end = text
        .find("\nlisten ")
        .expect("a listen section in the example");
    assert!(
        text.contains(SHIPPED_RUNTIME_API),
        "the shipped config's runtime API is not {SHIPPED_RUNTIME_API}"
    );
    text[..=end].to_string()
}
