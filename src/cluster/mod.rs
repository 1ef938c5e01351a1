//! Several nodes sharing tenants through a NATS JetStream cluster (docs/CLUSTER.md).
//!
//! JetStream is the distributed engine; Switchboard writes no consensus of its own:
//! - **Ownership**: a lease per tenant, one key in the KV bucket [`LEASES`] whose entries
//!   live `cluster.lease_ms` ([`Lease`]). It is taken with `create` (refused while another
//!   node's lease lives) and renewed with `update` at the revision this node holds,
//!   every third of its life. An owner that could not renew before its end stops routing
//!   the tenant at once (fail closed): the [`log::Fence`] refuses every later commit and
//!   the engine is stopped.
//! - **The log**: every group commit of a tenant is an entry of the stream [`LOG_STREAM`]
//!   on the tenant's subject, appended with the expected-last-subject-sequence check
//!   ([`log::LogStore`]); a new owner appends a takeover mark before it routes, so an
//!   earlier owner's next append is refused (fenced).
//! - **Nodes**: each node keeps an entry in the KV bucket [`NODES`] (its address, when it
//!   was last seen, what it owns) for `GET /api/v1/cluster`.
//!
//! - **Tenants**: the registry (every tenant but `default`) is one key of the KV bucket
//!   [`TENANTS`], written at the revision it was read at. Every tenant is owned, logged
//!   and moved on its own; who tries first to take a free one is
//!   [`crate::core::placement`]'s rule, so tenants spread over the nodes.
//!
//! [`serve`] is a node's life: its front server on `server.listen` (forwarding each
//! tenant's requests to the server of the tenant's owner), and per tenant a task that
//! stands by until it takes the tenant's lease, then runs the tenant's own server over the
//! tenant rebuilt from its snapshot and log, on a port of its own, until it loses the lease
//! (back to standby), hands it over, the tenant is deleted, or the node is stopped
//! (SIGTERM: the node leaves the node list and releases each lease, so that other nodes
//! take its tenants at once).
//!
//! # Architecture invariant
//! A node routes a tenant only while it holds the tenant's lease and its appends are
//! accepted; every acknowledged change is in the tenant's log on a majority of the
//! stream's replicas before its acknowledgement.

pub mod log;

use std::io;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde::{Deserialize, Serialize};

use crate::config::{ClusterConfig, Config};
use crate::core::tenant::{Tenant, DEFAULT_TENANT};
use crate::engine::Engine;

/// The KV bucket of the tenants' leases (key: the tenant's id).
pub const LEASES: &str = "switchboard_leases";
/// The KV bucket of the nodes (key: the node's id).
pub const NODES: &str = "switchboard_nodes";
/// The stream of every tenant's log; a tenant's subject is [`log_subject`].
pub const LOG_STREAM: &str = "SWITCHBOARD_LOG";
/// The object store of the tenants' snapshots (object: the tenant's id).
pub const SNAPSHOTS: &str = "switchboard_snapshots";
/// The object store of the files agents send, every tenant's (object: the file's id).
pub const FILES: &str = "switchboard_files";
/// The KV bucket of the pages' tenants (key: a Facebook Page's id; value: the tenant
/// whose entry point has it), so that a page belongs to one tenant across the cluster.
pub const PAGES: &str = "switchboard_pages";
/// The KV bucket of the cluster's tenant registry: one key, [`REGISTRY_KEY`], holding
/// every tenant but `default` (docs/CLUSTER.md "Tenants").
pub const TENANTS: &str = "switchboard_tenants";
/// The registry's key in [`TENANTS`].
pub const REGISTRY_KEY: &str = "registry";

/// The cluster's own thread: the NATS connection, the lease keeper, the node's heartbeat
/// and the log's appender run here, never on the thread that starts a tenant's engine
/// (which reads the whole tenant from its store before it answers: seconds for a large
/// one). A renewal held up that long would let the lease lapse under a healthy owner.
/// One thread, as when they shared the server's: the appender and the connection hand
/// every group to each other, and on a runtime of two threads that crossed threads
/// (BENCHMARKS.md "Cluster").
pub fn runtime() -> &'static tokio::runtime::Handle {
    static HANDLE: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("the cluster's thread cannot start: {e}"));
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("switchboard-cluster".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .unwrap_or_else(|e| panic!("the cluster's thread cannot start: {e}"));
        handle
    })
}

/// The subject of tenant `tenant`'s log.
pub fn log_subject(tenant: &str) -> String {
    format!("switchboard.log.{tenant}")
}

/// What a lease says: who holds it and where that node is reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseValue {
    pub node: String,
    pub url: String,
    /// Set by an owner handing the tenant over on purpose (`POST /api/v1/tenants/{id}/move`):
    /// the node that may take the lease at once. Any other node waits a whole lease, as
    /// for a held one, so a target that never comes costs one lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover_to: Option<String>,
}

/// What a node says about itself in [`NODES`].
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeValue {
    pub id: String,
    pub url: String,
    /// Unix milliseconds.
    pub last_seen: u64,
    pub tenants: Vec<String>,
}

/// A node's connection to the cluster: NATS, its buckets and stream.
#[derive(Clone)]
pub struct Node {
    pub config: ClusterConfig,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub leases: jetstream::kv::Store,
    pub nodes: jetstream::kv::Store,
    pub snapshots: jetstream::object_store::ObjectStore,
    pub files: jetstream::object_store::ObjectStore,
    pub tenants: jetstream::kv::Store,
    pub pages: jetstream::kv::Store,
    /// Tenants this node owns now.
    owned: Arc<Mutex<Vec<String>>>,
    /// Per tenant owned here: the node it is to be handed over to (`POST .../move`),
    /// until the hand-over happens.
    handovers: Arc<Mutex<std::collections::HashMap<String, Handover>>>,
    /// What this node last read of the registry and the node list ([`Node::refresh`]).
    view: Arc<std::sync::RwLock<View>>,
    /// The engine of each tenant routed here now (for `/metrics`).
    running: Arc<Mutex<std::collections::BTreeMap<String, Engine>>>,
}

/// Where a tenant owned here is to be handed over (`None`: nowhere), as a watch.
type Handover = Arc<tokio::sync::watch::Sender<Option<String>>>;

/// The registry and the node list as a node last read them.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Every tenant but `default`, in id order.
    pub tenants: Vec<Tenant>,
    /// The registry's KV revision (0: never written).
    pub revision: u64,
    /// When the registry was read last (`None`: never yet).
    pub read_at: Option<Instant>,
    pub nodes: Vec<NodeValue>,
}

fn nats_error(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

/// KV bucket `bucket` (history 1, entries living `max_age`), created when missing. Its
/// stream is made here as the client library's own bucket creation makes it: that
/// creation first asks the server for the account's figures in a shape NATS 2.9 servers
/// (Debian's) do not send, and fails on them.
async fn kv_bucket(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> io::Result<jetstream::kv::Store> {
    if let Ok(kv) = js.get_key_value(bucket).await {
        return Ok(kv);
    }
    js.get_or_create_stream(jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| nats_error(&format!("cannot create the bucket {bucket}"), e))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| nats_error(&format!("cannot open the bucket {bucket}"), e))
}

/// Object store `bucket` (file storage, `replicas` copies), created when missing.
async fn object_store(
    js: &jetstream::Context,
    bucket: &str,
    replicas: usize,
) -> io::Result<jetstream::object_store::ObjectStore> {
    if let Ok(s) = js.get_object_store(bucket).await {
        return Ok(s);
    }
    js.create_object_store(jetstream::object_store::Config {
        bucket: bucket.into(),
        num_replicas: replicas,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| nats_error(&format!("cannot create the object store {bucket}"), e))
}

impl Node {
    /// Connects to NATS and makes sure the buckets and the log stream exist (created with
    /// `cluster.replicas` copies, file storage, the first time).
    pub async fn connect(config: &ClusterConfig) -> io::Result<Node> {
        let mut servers = Vec::new();
        for url in config.nats_url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let addr: async_nats::ServerAddr = url
                .parse()
                .map_err(|e| nats_error(&format!("cluster.nats_url: {url} is not a NATS server address"), e))?;
            servers.push(addr);
        }
        let client = async_nats::ConnectOptions::new()
            .name(format!("switchboard {}", config.node_id))
            .connect(servers)
            .await
            .map_err(|e| {
                nats_error(
                    &format!("cannot reach NATS at {} (cluster.nats_url)", config.nats_url),
                    e,
                )
            })?;
        // Short request timeouts: every caller tries again (renewals, appends with their
        // message id, a rebuild), and a request stuck on a stream whose leader is being
        // elected again should not hold a takeover for the library's default 5 s.
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(1500))
            .build(client.clone());
        let lease = Duration::from_millis(config.lease_ms);
        let leases = kv_bucket(&js, LEASES, lease, config.replicas).await?;
        let nodes = kv_bucket(&js, NODES, lease * 3, config.replicas).await?;
        js.get_or_create_stream(jetstream::stream::Config {
            name: LOG_STREAM.into(),
            subjects: vec![log_subject("*")],
            storage: jetstream::stream::StorageType::File,
            num_replicas: config.replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error("cannot create the log stream", e))?;
        let snapshots = object_store(&js, SNAPSHOTS, config.replicas).await?;
        let tenants = kv_bucket(&js, TENANTS, Duration::ZERO, config.replicas).await?;
        let files = object_store(&js, FILES, config.replicas).await?;
        let pages = kv_bucket(&js, PAGES, Duration::ZERO, config.replicas).await?;
        Ok(Node {
            config: config.clone(),
            client,
            js,
            leases,
            nodes,
            snapshots,
            files,
            tenants,
            pages,
            owned: Arc::default(),
            handovers: Arc::default(),
            view: Arc::default(),
            running: Arc::default(),
        })
    }

    /// True while the connection to NATS is up.
    pub fn reaches_nats(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn lease_value(&self, url: &str) -> LeaseValue {
        LeaseValue {
            node: self.config.node_id.clone(),
            url: url.to_string(),
            handover_to: None,
        }
    }

    fn handover(&self, tenant: &str) -> Handover {
        let mut all = self.handovers.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(tenant.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::watch::channel(None).0))
            .clone()
    }

    /// Asks this node, the owner of `tenant`, to hand it over to node `to`: the tenant's
    /// server stops as for SIGTERM, then the lease is written naming `to`
    /// ([`Node::hand_over`]).
    pub fn request_handover(&self, tenant: &str, to: &str) {
        self.handover(tenant).send_replace(Some(to.to_string()));
    }

    /// A receiver that sees [`Node::request_handover`] for `tenant`.
    pub fn handover_requests(&self, tenant: &str) -> tokio::sync::watch::Receiver<Option<String>> {
        self.handover(tenant).subscribe()
    }

    /// The registry and node list as last read.
    pub fn view(&self) -> View {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Tenant `id`'s record as last read (not `default`).
    pub fn tenant_record(&self, id: &str) -> Option<Tenant> {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        view.tenants.iter().find(|t| t.id == id).cloned()
    }

    /// Reads the registry and the node list again; what NATS did not answer stays as it was.
    pub async fn refresh(&self) {
        let (registry, nodes) = tokio::join!(
            tokio::time::timeout(STATUS_WAIT, self.read_registry()),
            tokio::time::timeout(STATUS_WAIT, self.node_entries()),
        );
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        match registry {
            Ok(Ok((tenants, revision))) => {
                view.tenants = tenants;
                view.revision = revision;
                view.read_at = Some(Instant::now());
            }
            Ok(Err(e)) => tracing::warn!(node = %self.config.node_id, error = %e, "the tenant registry cannot be read"),
            Err(_) => tracing::warn!(node = %self.config.node_id, "the tenant registry did not answer in time"),
        }
        if let Ok(Ok(nodes)) = nodes {
            view.nodes = nodes;
        }
    }

    /// [`Node::refresh`], unless the registry was read within `age`.
    pub async fn refresh_if_older(&self, age: Duration) {
        let fresh = {
            let view = self.view.read().unwrap_or_else(|p| p.into_inner());
            view.read_at.is_some_and(|at| at.elapsed() < age)
        };
        if !fresh {
            self.refresh().await;
        }
    }

    /// The registry as JetStream holds it: every tenant but `default`, and its revision
    /// (0: never written).
    pub async fn read_registry(&self) -> Result<(Vec<Tenant>, u64), String> {
        match self.tenants.entry(REGISTRY_KEY).await {
            Ok(Some(e)) if e.operation == jetstream::kv::Operation::Put => {
                let list: Vec<Tenant> = serde_json::from_slice(&e.value).map_err(|e| format!("the registry: {e}"))?;
                Ok((list, e.revision))
            }
            Ok(_) => Ok((Vec::new(), 0)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Writes `list` as the registry, only if it is still at `revision` (what it was read
    /// at): `Err(None)` when another change came first (read it again and decide again),
    /// `Err(Some(why))` when NATS refused otherwise.
    pub async fn write_registry(&self, list: &[Tenant], revision: u64) -> Result<u64, Option<String>> {
        let value = serde_json::to_vec(list).map_err(|e| Some(e.to_string()))?;
        let written = if revision == 0 {
            self.tenants
                .create(REGISTRY_KEY, value.into())
                .await
                .map_err(|e| e.to_string())
        } else {
            self.tenants
                .update(REGISTRY_KEY, value.into(), revision)
                .await
                .map_err(|e| e.to_string())
        };
        match written {
            Ok(r) => {
                let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
                view.tenants = list.to_vec();
                view.revision = r;
                view.read_at = Some(Instant::now());
                Ok(r)
            }
            Err(e) => match self.read_registry().await {
                Ok((_, now)) if now != revision => Err(None),
                _ => Err(Some(e)),
            },
        }
    }

    /// Claims Facebook Page `page` for `tenant` in [`PAGES`] (JetStream's `create` decides
    /// between two tenants claiming one page at once): `None` when it is `tenant`'s now (or
    /// was already), the other tenant's id when it has it.
    pub async fn claim_page(&self, page: &str, tenant: &str) -> Result<Option<String>, String> {
        // A page id is digits (Meta's); anything else is not a key NATS takes.
        if page.is_empty()
            || !page
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("{page:?} is not a page id"));
        }
        if self.pages.create(page, tenant.as_bytes().to_vec().into()).await.is_ok() {
            return Ok(None);
        }
        match self.pages.get(page).await {
            Ok(Some(holder)) if holder.as_ref() == tenant.as_bytes() => Ok(None),
            Ok(Some(holder)) => Ok(Some(String::from_utf8_lossy(&holder).into_owned())),
            Ok(None) => Err("the page's claim was neither made nor found; try again".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Gives up every page `tenant` claimed (its deletion).
    async fn release_pages(&self, tenant: &str) -> Result<(), String> {
        use futures_util::StreamExt;
        let mut keys = self.pages.keys().await.map_err(|e| e.to_string())?;
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| e.to_string())?;
            if let Ok(Some(holder)) = self.pages.get(&key).await {
                if holder.as_ref() == tenant.as_bytes() {
                    self.pages.purge(&key).await.map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Notes that `engine` routes `tenant` here now (`None`: no longer).
    pub fn set_running(&self, tenant: &str, engine: Option<Engine>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match engine {
            Some(e) => running.insert(tenant.to_string(), e),
            None => running.remove(tenant),
        };
    }

    /// The engines routing tenants here now, by tenant.
    pub fn running(&self) -> Vec<(String, Engine)> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.iter().map(|(t, e)| (t.clone(), e.clone())).collect()
    }

    /// Writes `lease` (at the revision held) as handed over to node `to`: that node takes
    /// it at its next look, without waiting for it to lapse. `false` when refused.
    pub async fn hand_over(&self, lease: &Lease, to: &str) -> bool {
        let value = LeaseValue {
            handover_to: Some(to.to_string()),
            ..self.lease_value(&lease.url)
        };
        let Ok(value) = serde_json::to_vec(&value) else {
            return false;
        };
        match self.leases.update(&lease.tenant, value.into(), lease.revision).await {
            Ok(_) => {
                tracing::info!(tenant = %lease.tenant, node = %self.config.node_id, to, "lease handed over");
                true
            }
            Err(e) => {
                tracing::warn!(tenant = %lease.tenant, node = %self.config.node_id, to, error = %e, "lease not handed over");
                false
            }
        }
    }

    /// Where tenant `tenant`'s log and snapshots are.
    pub fn place(&self, tenant: &str) -> log::LogPlace {
        log::LogPlace {
            js: self.js.clone(),
            stream: LOG_STREAM.into(),
            subject: log_subject(tenant),
            snapshots: self.snapshots.clone(),
            snapshot_name: tenant.into(),
            snapshot_bucket: SNAPSHOTS.into(),
            node: self.config.node_id.clone(),
            tenant: tenant.into(),
        }
    }

    /// The holder of tenant `tenant`'s lease, if it is held.
    pub async fn owner(&self, tenant: &str) -> Option<LeaseValue> {
        match self.leases.entry(tenant).await {
            Ok(Some(e)) if e.operation == jetstream::kv::Operation::Put => serde_json::from_slice(&e.value).ok(),
            _ => None,
        }
    }

    /// Tries once to take tenant `tenant`'s lease: `Some` when this node holds it now.
    ///
    /// A lease is free when its key is absent (never taken, released, or expired by the
    /// bucket's `max_age`), or when its revision has not changed for a whole lease as this
    /// node has watched it (`seen`: the revision and when this node first saw it). JetStream
    /// expires entries some seconds late, so the second case is what makes a takeover
    /// prompt. Either way the lease is taken with JetStream's own checks: `create` (refused
    /// if the key exists) or `update` at the revision watched (refused if the owner renewed
    /// since). The owner counts its lease from before its renewal was sent, this node from
    /// after it saw it, so the owner's end always comes first.
    ///
    /// Beside the lease's rule, the placement rule ([`crate::core::placement`]) decides
    /// who tries first: a node that is not the preferred one for the tenant waits one more
    /// lease, so that tenants spread over the nodes. `url` is where this node serves the
    /// tenant (its tenant server), written into the lease for the other nodes to forward to.
    pub async fn try_acquire(&self, tenant: &str, url: &str, seen: &mut Option<(u64, Instant)>) -> Option<Lease> {
        let value = serde_json::to_vec(&self.lease_value(url)).ok()?;
        let lease = Duration::from_millis(self.config.lease_ms);
        let current = match self.leases.entry(tenant).await {
            Ok(Some(e)) if e.operation == jetstream::kv::Operation::Put => {
                let v = serde_json::from_slice::<LeaseValue>(&e.value).ok();
                let to_me = v
                    .as_ref()
                    .is_some_and(|v| v.handover_to.as_deref() == Some(self.config.node_id.as_str()));
                Some((e.revision, to_me, v.map(|v| v.node)))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(tenant, node = %self.config.node_id, error = %e, "lease not readable");
                return None;
            }
        };
        let holder = current.as_ref().and_then(|c| c.2.clone());
        let extra = Duration::from_millis(self.placement_wait(tenant, holder.as_deref()));
        // Revision 0 stands for "absent" in `seen`: how long the key has been free.
        let revision = current.as_ref().map_or(0, |c| c.0);
        let waited = match seen {
            Some((r, at)) if *r == revision => at.elapsed(),
            _ => {
                *seen = Some((revision, Instant::now()));
                Duration::ZERO
            }
        };
        let sent = Instant::now();
        let taken = match current {
            None if waited >= extra => self.leases.create(tenant, value.into()).await.ok(),
            None => None,
            // Handed over to this node: taken at once (refused if anything wrote since).
            Some((revision, true, _)) => self.leases.update(tenant, value.into(), revision).await.ok(),
            Some((revision, false, _)) if waited >= lease + extra => {
                self.leases.update(tenant, value.into(), revision).await.ok()
            }
            Some(_) => None,
        };
        taken.map(|revision| Lease {
            tenant: tenant.into(),
            revision,
            valid_until: sent + lease,
            url: url.to_string(),
        })
    }

    /// How long this node waits, beyond the lease's rule, before it tries to take `tenant`
    /// whose lease `holder` held (if any): [`crate::core::placement::wait_before_taking`]
    /// over the nodes seen within the last lease.
    fn placement_wait(&self, tenant: &str, holder: Option<&str>) -> u64 {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        let live: Vec<crate::core::placement::Candidate<'_>> = view
            .nodes
            .iter()
            .filter(|n| now.saturating_sub(n.last_seen) <= self.config.lease_ms)
            .map(|n| crate::core::placement::Candidate {
                id: &n.id,
                owns: n.tenants.len(),
            })
            .collect();
        crate::core::placement::wait_before_taking(tenant, &self.config.node_id, holder, &live, self.config.lease_ms)
    }

    /// Renews `lease` (at the revision held); `false` when it was refused, or not
    /// acknowledged before the lease's end.
    ///
    /// The renewal is the KV update itself (a message on the key's subject with the
    /// expected last sequence = the revision held), sent with a message id: a renewal
    /// whose answer was lost (a NATS server going away) is sent again as it was, and
    /// JetStream acknowledges the copy with the first one's revision instead of refusing it.
    pub async fn renew(&self, lease: &mut Lease) -> bool {
        let Ok(value) = serde_json::to_vec(&self.lease_value(&lease.url)) else {
            return false;
        };
        let sent = Instant::now();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            lease.revision.to_string().as_str(),
        );
        let id = format!("lease.{}.{}.{}", lease.tenant, self.config.node_id, lease.revision);
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let subject = format!("$KV.{LEASES}.{}", lease.tenant);
        let value = bytes::Bytes::from(value);
        loop {
            let left = lease.valid_until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(tenant = %lease.tenant, node = %self.config.node_id, "lease renewal not acknowledged before the lease's end");
                return false;
            }
            let attempt = async {
                self.js
                    .publish_with_headers(subject.clone(), headers.clone(), value.clone())
                    .await?
                    .await
            };
            match tokio::time::timeout(left, attempt).await {
                Ok(Ok(ack)) => {
                    lease.revision = ack.sequence;
                    lease.valid_until = sent + Duration::from_millis(self.config.lease_ms);
                    return true;
                }
                Ok(Err(e)) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                    tracing::warn!(tenant = %lease.tenant, node = %self.config.node_id, "lease renewal refused: another node holds the lease");
                    return false;
                }
                Ok(Err(e)) => {
                    tracing::warn!(tenant = %lease.tenant, node = %self.config.node_id, error = %e, "lease renewal not acknowledged; sending it again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => {}
            }
        }
    }

    /// Gives `lease` up at once (only if still at the revision held), so that another node
    /// takes the tenant without waiting for it to lapse.
    pub async fn release(&self, lease: &Lease) {
        match self
            .leases
            .delete_expect_revision(&lease.tenant, Some(lease.revision))
            .await
        {
            Ok(()) => tracing::info!(tenant = %lease.tenant, node = %self.config.node_id, "lease released"),
            Err(e) => {
                tracing::warn!(tenant = %lease.tenant, node = %self.config.node_id, error = %e, "lease not released")
            }
        }
    }

    /// Writes this node's entry in [`NODES`].
    pub async fn heartbeat(&self) {
        let tenants = self.owned.lock().map(|o| o.clone()).unwrap_or_default();
        let value = NodeValue {
            id: self.config.node_id.clone(),
            url: self.config.advertise_url.clone(),
            last_seen: now_ms(),
            tenants,
        };
        if let Ok(bytes) = serde_json::to_vec(&value) {
            if let Err(e) = self.nodes.put(&self.config.node_id, bytes.into()).await {
                tracing::debug!(node = %self.config.node_id, error = %e, "node entry not written");
            }
        }
    }

    fn own(&self, tenant: &str) {
        if let Ok(mut o) = self.owned.lock() {
            o.retain(|t| t != tenant);
            o.push(tenant.into());
        }
    }

    fn disown(&self, tenant: &str) {
        if let Ok(mut o) = self.owned.lock() {
            o.retain(|t| t != tenant);
        }
    }

    /// What `GET /api/v1/cluster` shows: every node seen lately, and each tenant's owner and
    /// log position.
    pub async fn status(&self) -> ClusterStatus {
        // Every read at once, each bounded: the answer comes within STATUS_WAIT.
        let mut ids = vec![DEFAULT_TENANT.to_string()];
        ids.extend(self.view().tenants.into_iter().map(|t| t.id));
        let places = futures_util::future::join_all(ids.iter().map(|id| async move {
            let place = self.place(id);
            let (owner, position) = tokio::join!(
                tokio::time::timeout(STATUS_WAIT, self.owner(id)),
                tokio::time::timeout(STATUS_WAIT, log::last_sequence(&place)),
            );
            let owner = owner.ok().flatten();
            TenantPlace {
                id: id.clone(),
                owner: owner.as_ref().map(|o| o.node.clone()),
                owner_url: owner.map(|o| o.url),
                log_position: position.ok().and_then(Result::ok),
            }
        }));
        let (nodes, tenants) = tokio::join!(tokio::time::timeout(STATUS_WAIT, self.node_entries()), places);
        let mut nodes = match nodes {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!(node = %self.config.node_id, error = %e, "the node list cannot be read");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        ClusterStatus {
            node: self.config.node_id.clone(),
            reaches_nats: self.reaches_nats(),
            nodes,
            tenants,
        }
    }
}

impl Node {
    /// Every entry of [`NODES`], read message by message from the bucket's stream leader
    /// (the bucket keeps one message per key; the client library's key listing goes
    /// through a consumer, which NATS 2.9 may not place while a server is down).
    pub(crate) async fn node_entries(&self) -> Result<Vec<NodeValue>, String> {
        let stream = self
            .js
            .get_stream_no_info(format!("KV_{NODES}"))
            .await
            .map_err(|e| e.to_string())?;
        let subject = format!("$KV.{NODES}.>");
        let mut nodes = Vec::new();
        let mut next = 1;
        for _ in 0..MAX_NODES_LISTED {
            let got = stream
                .raw_message_builder()
                .sequence(next)
                .next_by_subject(subject.clone())
                .send()
                .await;
            match got {
                Ok(m) => {
                    next = m.sequence + 1;
                    if let Ok(n) = serde_json::from_slice::<NodeValue>(&m.payload) {
                        nodes.push(n);
                    }
                }
                // No message after `next`: the end of the list.
                Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(nodes)
    }
}

/// How long `GET /api/v1/cluster` waits for each of its reads.
pub(crate) const STATUS_WAIT: Duration = Duration::from_secs(2);
/// The most nodes `GET /api/v1/cluster` lists.
const MAX_NODES_LISTED: usize = 256;

/// `GET /api/v1/cluster`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterStatus {
    /// The node that answered.
    pub node: String,
    pub reaches_nats: bool,
    pub nodes: Vec<NodeValue>,
    pub tenants: Vec<TenantPlace>,
}

/// A tenant's owner and log position.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantPlace {
    pub id: String,
    /// The node holding the tenant's lease; `null` while nobody does.
    pub owner: Option<String>,
    pub owner_url: Option<String>,
    /// The sequence of the tenant's last log entry (`null` when NATS did not answer).
    pub log_position: Option<u64>,
}

/// A lease this node holds.
#[derive(Debug, Clone)]
pub struct Lease {
    pub tenant: String,
    /// The KV revision this node wrote last: the next renewal expects it.
    pub revision: u64,
    /// By this node's clock, measured from before the request that took or renewed it.
    pub valid_until: Instant,
    /// Where this node serves the tenant (its tenant server).
    pub url: String,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why a term as a tenant's owner ended.
enum Ended {
    /// SIGTERM or Ctrl-C: the node exits.
    Shutdown,
    /// Handed over to another node on purpose: standby at once.
    HandedOver,
    /// The lease was lost or an append was refused: back to standby.
    SteppedDown,
    /// The tenant was deleted: its log, snapshot and local copy are gone.
    Deleted,
}

/// Where this node keeps its local copy of tenant `tenant` (rebuilt from the log whenever
/// it takes the tenant): `store.path` for `default`, `<store.path>-cluster/<tenant>` for
/// any other.
pub fn tenant_dir(config: &Config, tenant: &str) -> std::path::PathBuf {
    if tenant == DEFAULT_TENANT {
        return config.store.path.clone();
    }
    let mut p = config.store.path.clone().into_os_string();
    p.push("-cluster");
    std::path::PathBuf::from(p).join(tenant)
}

/// `advertise` (`cluster.advertise_url`) with port `port`: where the other nodes reach a
/// tenant server of this node. Without an advertised address, loopback.
pub fn url_with_port(advertise: &str, port: u16) -> String {
    let base = advertise.trim().trim_end_matches('/');
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let host = rest.split('/').next().unwrap_or_default();
    let host = match host.rfind(':') {
        // `[::1]:8080`, `10.0.0.1:8080`, `name:8080`; never the colons inside `[...]`.
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    format!("{scheme}://{host}:{port}")
}

/// A node's life in a cluster: see the module docs. Must run inside an actix system.
///
/// The node's front server (`server.listen`) runs for the node's whole life and forwards
/// every tenant's requests to the server of the node that routes the tenant. Beside it,
/// one task per tenant of the registry (and `default`) stands by for the tenant's lease,
/// and while it holds it runs the tenant's own server on a port of its own.
pub async fn serve(config: Config) -> io::Result<()> {
    let Some(cluster) = config.cluster.clone() else {
        return Err(io::Error::other("serve_cluster needs a [cluster] section"));
    };
    let node = {
        let cluster = cluster.clone();
        runtime()
            .spawn(async move { Node::connect(&cluster).await })
            .await
            .map_err(io::Error::other)??
    };
    let listen = config.server.listen;
    let listener = TcpListener::bind(listen)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen} (server.listen): {e}")))?;
    let addr = listener.local_addr()?;
    tracing::info!(node = %cluster.node_id, nats = %cluster.nats_url, "cluster node connected to NATS");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    actix_rt::spawn(async move {
        crate::api::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let every = Duration::from_millis(cluster.lease_ms / 3);
    let poll = Duration::from_millis((cluster.lease_ms / 10).clamp(50, 500));
    {
        let (beat, stop) = (node.clone(), stop_rx.clone());
        runtime().spawn(async move {
            // Until the node stops: a stopping node leaves the list, so that no node
            // prefers it for a tenant.
            while !*stop.borrow() {
                beat.heartbeat().await;
                tokio::time::sleep(every).await;
            }
        });
        let (view, stop) = (node.clone(), stop_rx.clone());
        runtime().spawn(async move {
            while !*stop.borrow() {
                view.refresh().await;
                tokio::time::sleep(poll).await;
            }
        });
    }
    node.refresh().await;
    let front = crate::api::cluster::front_server(&config, node.clone(), listener)?;
    let front_handle = front.handle();
    actix_rt::spawn(front);
    crate::api::banner(&config, addr);
    // Told to the tenants' terms once this node has left the node list.
    let (terms_stop, terms_stop_rx) = tokio::sync::watch::channel(false);
    let mut terms: std::collections::HashMap<
        String,
        (tokio::sync::watch::Sender<bool>, actix_rt::task::JoinHandle<()>),
    > = Default::default();
    loop {
        let view = node.view();
        let mut wanted = vec![DEFAULT_TENANT.to_string()];
        wanted.extend(view.tenants.iter().map(|t| t.id.clone()));
        terms.retain(|_, (_, term)| !term.is_finished());
        for id in &wanted {
            if !terms.contains_key(id) {
                let (gone_tx, gone_rx) = tokio::sync::watch::channel(false);
                let term = actix_rt::spawn(tenant_terms(
                    config.clone(),
                    node.clone(),
                    id.clone(),
                    terms_stop_rx.clone(),
                    gone_rx,
                ));
                terms.insert(id.clone(), (gone_tx, term));
            }
        }
        if view.read_at.is_some() {
            for (id, (gone, _)) in &terms {
                if !wanted.contains(id) {
                    let _ = gone.send(true);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop_rx.changed() => {}
        }
        if *stop_rx.borrow() {
            break;
        }
    }
    // Leave the node list first: the other nodes then take this node's tenants at once.
    if let Err(e) = node.nodes.delete(&cluster.node_id).await {
        tracing::warn!(node = %cluster.node_id, error = %e, "node entry not removed");
    }
    let _ = terms_stop.send(true);
    for (_, (_, term)) in terms {
        let _ = term.await;
    }
    front_handle.stop(true).await;
    Ok(())
}

/// One tenant's life on this node: stand by for its lease, own it, stand by again; until
/// the node stops (`stop`) or the tenant is deleted (`gone`).
async fn tenant_terms(
    config: Config,
    node: Node,
    tenant: String,
    stop: tokio::sync::watch::Receiver<bool>,
    gone: tokio::sync::watch::Receiver<bool>,
) {
    let lease_ms = node.config.lease_ms;
    loop {
        // A port of its own for each term: a forwarder that read an older lease is refused
        // at once rather than left waiting on a port nobody serves.
        let listener = match TcpListener::bind((config.server.listen.ip(), 0)) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(tenant, node = %node.config.node_id, error = %e, "cannot listen for the tenant's server");
                tokio::time::sleep(Duration::from_millis(lease_ms)).await;
                continue;
            }
        };
        let port = match listener.local_addr() {
            Ok(a) => a.port(),
            Err(_) => continue,
        };
        let url = url_with_port(&node.config.advertise_url, port);
        let Some(lease) = wait_for_lease(&node, &tenant, &url, stop.clone(), gone.clone()).await else {
            return;
        };
        match own(&config, &node, &tenant, lease, listener, stop.clone(), gone.clone()).await {
            Ok(Ended::Shutdown) | Ok(Ended::Deleted) => return,
            Ok(Ended::HandedOver) => {}
            Ok(Ended::SteppedDown) => {
                // Give another node the chance to take the tenant before trying again.
                tokio::time::sleep(Duration::from_millis(lease_ms)).await;
            }
            Err(e) => {
                tracing::error!(tenant, node = %node.config.node_id, error = %e, "the tenant's term failed; standing by");
                tokio::time::sleep(Duration::from_millis(lease_ms)).await;
            }
        }
    }
}

/// Polls tenant `tenant`'s lease until this node takes it (`None`: the node is stopping,
/// or the tenant was deleted, first).
async fn wait_for_lease(
    node: &Node,
    tenant: &str,
    url: &str,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut gone: tokio::sync::watch::Receiver<bool>,
) -> Option<Lease> {
    // A fraction of the lease: a lapsed lease is taken well within a second of its end.
    let every = Duration::from_millis((node.config.lease_ms / 10).clamp(50, 500));
    let mut seen = None;
    loop {
        if *stop.borrow() || *gone.borrow() {
            return None;
        }
        if let Some(lease) = node.try_acquire(tenant, url, &mut seen).await {
            tracing::info!(tenant, node = %node.config.node_id, revision = lease.revision, url, "lease taken");
            return Some(lease);
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
            _ = gone.changed() => {}
        }
    }
}

/// The config of `tenant`'s server on this node: its local copy in `dir`; for a tenant
/// other than `default`, none of the config's queues, entry points or demo page (those
/// are `default`'s), and an admin token nobody knows (the tenant's admin is the one whose
/// credential the registry holds).
fn tenant_config(config: &Config, tenant: Option<&Tenant>, dir: &std::path::Path) -> Config {
    let mut c = config.clone();
    c.store.path = dir.to_path_buf();
    if tenant.is_some() {
        c.queues.clear();
        c.entry_points.clear();
        c.demo.customer_page = false;
        c.api.admin_token = crate::api::auth::new_token();
    }
    c
}

/// Removes a deleted tenant's log and snapshot (before its lease is given up, so that a
/// tenant created again with the same id never reads them), then its local copy.
async fn remove_tenant(node: &Node, tenant: &str, dir: &std::path::Path) {
    remove_leftovers(node, tenant).await;
    if dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            tracing::warn!(tenant, dir = %dir.display(), error = %e, "a deleted tenant's local copy was not removed");
        }
    }
}

/// Purges tenant `tenant`'s log subject and removes its snapshot: a deleted tenant's, or
/// what one left when its owner died while deleting it (before a tenant of the same id is
/// created again).
pub async fn remove_leftovers(node: &Node, tenant: &str) {
    if let Err(e) = log::purge(&node.place(tenant), None).await {
        tracing::warn!(tenant, node = %node.config.node_id, error = %e, "a deleted tenant's log was not purged");
    }
    if let Err(e) = node.snapshots.delete(tenant).await {
        tracing::debug!(tenant, node = %node.config.node_id, error = %e, "a deleted tenant's snapshot was not removed");
    }
    if let Err(e) = node.release_pages(tenant).await {
        tracing::warn!(tenant, node = %node.config.node_id, error = %e, "a deleted tenant's pages were not released");
    }
}

/// A term as the tenant's owner: rebuild, serve, keep the lease; until it ends.
async fn own(
    config: &Config,
    node: &Node,
    tenant: &str,
    mut lease: Lease,
    listener: TcpListener,
    stop: tokio::sync::watch::Receiver<bool>,
    gone: tokio::sync::watch::Receiver<bool>,
) -> io::Result<Ended> {
    let record = if tenant == DEFAULT_TENANT {
        None
    } else {
        match node.tenant_record(tenant) {
            Some(t) => Some(t),
            None => {
                node.release(&lease).await;
                return Ok(Ended::Deleted);
            }
        }
    };
    let fence = log::Fence::new(lease.valid_until);
    // The lease is kept while the tenant is rebuilt (that may take longer than a lease).
    let keeper = {
        let (node, fence) = (node.clone(), fence.clone());
        let mut lease = lease.clone();
        let every = Duration::from_millis(node.config.lease_ms / 3);
        runtime().spawn(async move {
            loop {
                // Woken by the fence too: a node handing over releases its lease at once.
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = fence.fenced() => {}
                }
                if fence.is_fenced() {
                    break;
                }
                if node.renew(&mut lease).await {
                    fence.extend(lease.valid_until);
                } else {
                    tracing::error!(tenant = %lease.tenant, node = %node.config.node_id,
                        "lease lost: this node stops routing the tenant");
                    fence.fence("the lease could not be renewed in time");
                    break;
                }
            }
            lease
        })
    };
    let options = crate::store::SledOptions::from_config(&config.store).with_reports(&config.reports);
    let place = node.place(tenant);
    let dir = tenant_dir(config, tenant);
    // JetStream may be electing a stream's leader just now (a NATS server lost with the
    // last owner): a rebuild that fails is tried again while the lease is kept, until the
    // takeover mark is refused (another node appended) or the lease is lost.
    let mut attempt = 0;
    let rebuilt = loop {
        attempt += 1;
        let r = log::rebuild(
            &place,
            node.client.clone(),
            &dir,
            options.clone(),
            fence.clone(),
            node.config.snapshot_every,
        )
        .await;
        match r {
            Err(e) if attempt < 20 && fence.lease_valid() && !fence.is_fenced() && !e.contains("another node owns") => {
                tracing::warn!(tenant, node = %node.config.node_id, attempt, error = %e, "tenant not rebuilt yet; trying again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r => break r,
        }
    };
    let (store, position) = match rebuilt {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(tenant, node = %node.config.node_id, error = %e, "cannot take the tenant; giving its lease up");
            fence.fence(&e);
            if let Ok(l) = keeper.await {
                lease = l;
            }
            node.release(&lease).await;
            return Ok(Ended::SteppedDown);
        }
    };
    node.own(tenant);
    // Said at once: the other nodes' placement counts what each node owns.
    node.heartbeat().await;
    tracing::info!(tenant, node = %node.config.node_id, position, url = %lease.url, "routing the tenant");
    let store: Arc<dyn crate::store::Store> = Arc::new(store);
    // The term ends gracefully when the node stops or the tenant is deleted.
    let (end_tx, mut end) = tokio::sync::watch::channel(false);
    let ender = {
        let (mut stop, mut gone) = (stop.clone(), gone.clone());
        actix_rt::spawn(async move {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                _ = gone.wait_for(|g| *g) => {}
            }
            let _ = end_tx.send(true);
        })
    };
    let tenant_config = tenant_config(config, record.as_ref(), &dir);
    let ended = crate::api::serve_owner(
        &tenant_config,
        store.clone(),
        node.clone(),
        record,
        fence.clone(),
        listener,
        &mut end,
    )
    .await;
    ender.abort();
    node.disown(tenant);
    let shutdown = *stop.borrow();
    let deleted = *gone.borrow();
    let handover = node
        .handover(tenant)
        .send_replace(None)
        .filter(|_| !shutdown && !deleted);
    fence.fence(if shutdown {
        "the node is stopping"
    } else if deleted {
        "the tenant was deleted"
    } else if handover.is_some() {
        "handing the tenant over"
    } else {
        "stepped down"
    });
    store.close();
    if let Ok(l) = keeper.await {
        lease = l;
    }
    ended?;
    if let Some(to) = handover {
        if node.hand_over(&lease, &to).await {
            node.heartbeat().await;
            return Ok(Ended::HandedOver);
        }
        // Refused: the lease was lost meanwhile; stand by as after any step-down.
        return Ok(Ended::SteppedDown);
    }
    if deleted {
        remove_tenant(node, tenant, &dir).await;
        node.release(&lease).await;
        tracing::info!(tenant, node = %node.config.node_id, "tenant deleted: its log, snapshot and local copy removed");
        return Ok(Ended::Deleted);
    }
    if shutdown {
        // Hand over at once: the next node need not wait for the lease to lapse.
        node.release(&lease).await;
        Ok(Ended::Shutdown)
    } else {
        tracing::warn!(tenant, node = %node.config.node_id, why = %fence.why(), "stepped down; standing by");
        Ok(Ended::SteppedDown)
    }
}

#[cfg(test)]
mod tests {
    use super::url_with_port;

    #[test]
    fn a_tenant_server_is_advertised_on_the_node_s_host_with_its_own_port() {
        assert_eq!(url_with_port("http://10.0.0.5:8080", 41000), "http://10.0.0.5:41000");
        assert_eq!(url_with_port("http://10.0.0.5:8080/", 41000), "http://10.0.0.5:41000");
        assert_eq!(
            url_with_port("https://node-a.internal", 41000),
            "https://node-a.internal:41000"
        );
        assert_eq!(url_with_port("http://[::1]:8080", 41000), "http://[::1]:41000");
        assert_eq!(url_with_port("http://[fe80::1]", 41000), "http://[fe80::1]:41000");
        assert_eq!(url_with_port("", 41000), "http://127.0.0.1:41000");
    }
}
