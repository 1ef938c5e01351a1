//! Test harness: a JetStream cluster of three NATS servers on free loopback ports, each
//! with its own temporary store directory, started from Debian's `nats-server` (or one on
//! `PATH`). Without it the cluster tests are skipped with a loud message, unless `CI` is
//! set: then they fail (`.ci/run` installs it).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One NATS server of the cluster.
pub struct NatsServer {
    /// `nats://127.0.0.1:PORT`
    pub url: String,
    child: Option<Child>,
    config: PathBuf,
    binary: PathBuf,
}

impl NatsServer {
    /// SIGKILL: the server stops at once; the other two go on.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same config and store directory.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(spawn(&self.binary, &self.config));
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three NATS servers forming one JetStream cluster.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Every server's URL, comma-separated (a client's seed list).
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts three servers and waits until JetStream answers with a leader (meta
    /// leader elected, three replicas placeable). `None` (after a loud message) when `nats-server` is missing and
    /// `CI` is not set.
    pub async fn start() -> Option<NatsCluster> {
        let binary = find_binary()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let mut servers = Vec::new();
        for (i, (client, route)) in ports.iter().enumerate() {
            let store = dir.path().join(format!("n{i}"));
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, r))| format!("nats://127.0.0.1:{r}"))
                .collect();
            let config = dir.path().join(format!("n{i}.conf"));
            let text = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{client}\n\
                 jetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{ name: switchboard-test\n listen: 127.0.0.1:{route}\n routes: [{}] }}\n",
                store.display(),
                routes.join(", ")
            );
            std::fs::write(&config, text).expect("write the NATS config");
            servers.push(NatsServer {
                url: format!("nats://127.0.0.1:{client}"),
                child: Some(spawn(&binary, &config)),
                config,
                binary: binary.clone(),
            });
        }
        let cluster = NatsCluster { servers, _dir: dir };
        cluster.wait_ready(Duration::from_secs(30)).await;
        Some(cluster)
    }

    /// Waits until JetStream answers through the cluster (a meta leader is elected).
    async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        while Instant::now() < deadline {
            let servers: Vec<async_nats::ServerAddr> = self.servers.iter().filter_map(|s| s.url.parse().ok()).collect();
            match async_nats::connect(servers).await {
                Ok(client) => {
                    let js = async_nats::jetstream::new(client);
                    // A stream with three replicas can be made once every server takes part.
                    let probe = async_nats::jetstream::stream::Config {
                        name: "READY_PROBE".into(),
                        subjects: vec!["ready.probe".into()],
                        storage: async_nats::jetstream::stream::StorageType::Memory,
                        num_replicas: 3,
                        ..Default::default()
                    };
                    match js.create_stream(probe).await {
                        Ok(_) => {
                            let _ = js.delete_stream("READY_PROBE").await;
                            return;
                        }
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the NATS cluster did not become ready within {within:?}: {last}");
    }
}

fn spawn(binary: &Path, config: &Path) -> Child {
    Command::new(binary)
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server")
}

/// A port that was free a moment ago (bound and released).
/// A port free now, below Linux's ephemeral range (32768 and up): a node's tenant servers
/// take ephemeral ports, and one of them must not take a port picked here before the
/// process it is meant for binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread over the range by the test process's id, then in turn.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 12_000) as u16;
    for _ in 0..12_000 {
        let port = 20_000 + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000")
}

/// `nats-server` from `PATH` or Debian's `/usr/sbin`; `None` after a loud skip message
/// when missing, a panic when `CI` is set.
fn find_binary() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nats-server")).collect())
        .unwrap_or_default();
    candidates.push(PathBuf::from("/usr/sbin/nats-server"));
    if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
        return Some(found);
    }
    let what = "nats-server is not installed";
    if std::env::var_os("CI").is_some() {
        panic!("cluster test: {what} (CI is set, so this is a failure; .ci/run installs it)");
    }
    eprintln!("\n=====================================================================");
    eprintln!("SKIPPED: the cluster test did not run: {what}.");
    eprintln!("Install it (apt-get install -y nats-server) to run it.");
    eprintln!("=====================================================================\n");
    None
}
