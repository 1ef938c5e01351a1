//! The tenants of a deployment, each routed by an engine of its own
//! (../shared/API.md "Tenants"; docs/TENANTS.md).
//!
//! Tenant `default` is the deployment as it always was: the engine over `store.path`,
//! the config's queues and entry points and `api.admin_token`. Every other tenant has a
//! store of its own inside that one ([`Store::tenant`]: its records under a scope of their
//! own, so every tenant's commits share one writer thread, one group commit and one flush),
//! and an engine of its own on a thread of its own, so tenants route in parallel and a
//! busy one never delays another's offers. The registry (id, name, limits, wrap-up reasons
//! and idle codes, the admin token's SHA-256) is kept in the same store
//! ([`Store::registry`]), so that the deployment's backup holds it with every tenant's
//! records.
//!
//! The rules are the core's ([`crate::core::tenant::Registry`]); this module makes each
//! decision durable before it takes effect, and starts or stops the tenant's engine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::config::Config;
use crate::core::tenant::{Registry, Tenant, TenantCodes, TenantPatch, DEFAULT_TENANT};
use crate::core::{CoreError, Millis, Rules};
use crate::engine::{Engine, EngineError};
use crate::store::{Store, StoreError};

/// One tenant's running engine and the store under it.
#[derive(Clone)]
struct Running {
    engine: Engine,
    store: Arc<dyn Store>,
}

/// The deployment's tenants: the registry and every tenant's engine.
pub struct Tenants {
    default: Engine,
    /// The id `default`'s engine answers to: `default`, but in a cluster the server of one
    /// tenant ([`Tenants::single`]) runs that tenant as its own.
    default_id: String,
    registry: RwLock<Registry>,
    engines: RwLock<BTreeMap<String, Running>>,
    /// One change of the registry at a time (it is durable in `default`'s store:
    /// [`Store::put_registry`]).
    changes: tokio::sync::Mutex<()>,
    config: Config,
    /// See [`Tenants::claiming_pages`].
    pages: tokio::sync::Mutex<()>,
    /// The threads the tenants' engines share (see [`TenantThreads`]), started with the
    /// first tenant.
    threads: std::sync::OnceLock<TenantThreads>,
    /// In a cluster: the node, whose index of pages keeps a page to one tenant across
    /// every node ([`crate::cluster::Node::claim_page`]).
    cluster: std::sync::OnceLock<crate::cluster::Node>,
}

/// The threads of every tenant's engine but `default`'s: one router thread per core,
/// each tenant's router on one of them (in turn, as tenants start), and one thread for
/// every tenant's Messenger outbox. A thread per tenant cost the server a third more CPU
/// at the same load, in thread switches (BENCHMARKS.md "Tenants").
struct TenantThreads {
    routers: Vec<actix::ArbiterHandle>,
    outbox: actix::ArbiterHandle,
    next: std::sync::atomic::AtomicUsize,
}

impl TenantThreads {
    fn new() -> TenantThreads {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        TenantThreads {
            routers: (0..n).map(|_| actix::Arbiter::new().handle()).collect(),
            outbox: actix::Arbiter::new().handle(),
            next: Default::default(),
        }
    }

    /// The threads of the next tenant to start.
    fn next(&self) -> crate::channels::messenger::Threads {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::channels::messenger::Threads {
            router: self.routers[i % self.routers.len()].clone(),
            outbox: self.outbox.clone(),
        }
    }
}

/// Where development builds kept the tenants' stores and the registry (refused at start).
pub fn tenants_dir(config: &Config) -> PathBuf {
    let mut p = config.store.path.clone().into_os_string();
    p.push("-tenants");
    PathBuf::from(p)
}

fn store_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Write(format!("tenant registry: {what}: {e}"))
}

impl Tenants {
    /// The tenants of the deployment whose tenant `default` runs `default`: the registry
    /// is read (if one was ever written) and every tenant's engine started.
    pub fn open(config: &Config, default: Engine) -> Result<Tenants, StoreError> {
        let base = tenants_dir(config);
        let old_registry = base.join("registry.db");
        if old_registry.exists() {
            return Err(StoreError::Corrupt {
                what: format!(
                    "{} is the tenant registry as development builds kept it, beside the store; \
                     the registry now lives inside {} (docs/TENANTS.md): with the build that \
                     wrote it, back up each tenant, then move {} away, start this build, create \
                     the tenants again and restore each with `switchboard restore --tenant`",
                    old_registry.display(),
                    config.store.path.display(),
                    base.display()
                ),
            });
        }
        let mut tenants = Vec::new();
        for (_, v) in default.store().registry()? {
            let t: Tenant = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                what: format!("{}: a tenant record: {e}", config.store.path.display()),
            })?;
            tenants.push(t);
        }
        let threads = std::sync::OnceLock::new();
        let mut engines = BTreeMap::new();
        let deployment = config.rules();
        for t in &tenants {
            let running = start(
                config,
                default.store(),
                t,
                &deployment,
                threads.get_or_init(TenantThreads::new).next(),
            )?;
            tracing::info!(tenant = %t.id, "tenant started");
            engines.insert(t.id.clone(), running);
        }
        Ok(Tenants {
            default,
            default_id: DEFAULT_TENANT.into(),
            registry: RwLock::new(Registry::new(config.server.max_tenants, deployment, tenants)),
            engines: RwLock::new(engines),
            changes: tokio::sync::Mutex::new(()),
            config: config.clone(),
            pages: tokio::sync::Mutex::new(()),
            threads,
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// The tenants of a cluster node's server for one tenant, `tenant` (not `default`),
    /// routed by `engine`: its record (admin credential, codes, limits) is the cluster's
    /// registry's (docs/CLUSTER.md "Tenants"), kept here in memory only; the server
    /// knows no other tenant.
    pub fn single(config: &Config, engine: Engine, tenant: Tenant) -> Tenants {
        Tenants {
            default: engine,
            default_id: tenant.id.clone(),
            registry: RwLock::new(Registry::new(config.server.max_tenants, config.rules(), [tenant])),
            engines: RwLock::default(),
            changes: tokio::sync::Mutex::new(()),
            config: config.clone(),
            pages: tokio::sync::Mutex::new(()),
            threads: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// In a cluster: pages are kept to one tenant by `node`'s index of pages.
    pub fn in_cluster(&self, node: crate::cluster::Node) {
        let _ = self.cluster.set(node);
    }

    /// The id of the tenant [`Tenants::default_engine`] routes.
    pub fn default_id(&self) -> &str {
        &self.default_id
    }

    /// Tenant `default`'s engine.
    pub fn default_engine(&self) -> &Engine {
        &self.default
    }

    /// The engine of tenant `id` (`default` included).
    pub fn engine(&self, id: &str) -> Option<Engine> {
        if id == self.default_id {
            return Some(self.default.clone());
        }
        read(&self.engines).get(id).map(|r| r.engine.clone())
    }

    /// The engines of every tenant but `default`, in id order.
    pub fn others(&self) -> Vec<Engine> {
        read(&self.engines).values().map(|r| r.engine.clone()).collect()
    }

    /// The tenant, other than `tenant`, with an entry point on Facebook Page `page_id`.
    /// Creating an entry point on a page holds [`Tenants::claiming_pages`] from this check
    /// to the creation, so two tenants cannot take one page at once.
    ///
    /// In a cluster a tenant's server knows its own tenant only: the page is claimed for
    /// `tenant` in the cluster's index of pages instead (kept if the creation then fails:
    /// the page stays this tenant's to use).
    pub async fn page_elsewhere(&self, page_id: &str, tenant: &str) -> Result<Option<String>, EngineError> {
        if let Some(node) = self.cluster.get() {
            return node
                .claim_page(page_id, tenant)
                .await
                .map_err(|e| EngineError::from(StoreError::Write(format!("the cluster's index of pages: {e}"))));
        }
        let mut all = vec![(self.default_id.clone(), self.default.clone())];
        all.extend(read(&self.engines).iter().map(|(id, r)| (id.clone(), r.engine.clone())));
        for (id, engine) in all {
            if id == tenant {
                continue;
            }
            if engine
                .entry_points()
                .await?
                .iter()
                .any(|ep| ep.page_id.as_deref() == Some(page_id))
            {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Held while an entry point takes a page (see [`Tenants::page_elsewhere`]).
    pub async fn claiming_pages(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.pages.lock().await
    }

    /// Every tenant but `default`, in id order.
    pub fn list(&self) -> Vec<Tenant> {
        read(&self.registry).tenants().cloned().collect()
    }

    /// Tenant `id` (not `default`; 404 `unknown_tenant`).
    pub fn get(&self, id: &str) -> Result<Tenant, CoreError> {
        read(&self.registry).get(id).cloned()
    }

    /// The rules `tenant`'s engine runs with: the config's, with the tenant's own wrap-up
    /// reasons and idle codes.
    pub fn rules(&self, tenant: &Tenant) -> Rules {
        tenant.rules(read(&self.registry).deployment())
    }

    /// The tenant whose admin token has SHA-256 `credential`.
    pub fn by_admin_credential(&self, credential: &str) -> Option<String> {
        read(&self.registry)
            .by_admin_credential(credential)
            .map(|t| t.id.clone())
    }

    /// Who holds the credential (a token's or a session's SHA-256) at `now`, and in which
    /// tenant: a tenant's admin, or an account of a tenant other than `default` (the
    /// caller looks in `default` first). Ids are unique within a tenant only, so the
    /// tenant is part of the answer.
    pub fn principal_for(
        &self,
        credential: &str,
        now: Millis,
    ) -> Result<Option<(String, crate::core::Principal)>, EngineError> {
        if let Some(id) = self.by_admin_credential(credential) {
            return Ok(Some((id, crate::core::Principal::Admin)));
        }
        // A look-up in each engine's credential index, under the read lock: nothing copied.
        for (id, r) in read(&self.engines).iter() {
            if let Some(p) = r.engine.principal_for(credential, now)? {
                return Ok(Some((id.clone(), p)));
            }
        }
        Ok(None)
    }

    /// How many tenants the deployment has, `default` included.
    pub fn count(&self) -> usize {
        read(&self.registry)
            .tenants()
            .filter(|t| t.id != self.default_id)
            .count()
            + 1
    }

    /// Creates tenant `id` with its own `codes` (if any) and an admin token whose SHA-256
    /// is `credential`: its store and engine first, then its record; answered once the
    /// record is durable.
    pub async fn create(
        &self,
        id: &str,
        name: &str,
        codes: TenantCodes,
        credential: String,
        now: Millis,
    ) -> Result<Tenant, EngineError> {
        let _one = self.changes.lock().await;
        let (tenant, deployment) = {
            let registry = read(&self.registry);
            (
                registry.create(id, name, codes, credential, now)?,
                registry.deployment().clone(),
            )
        };
        // A store without a record is what a crash between the two steps below left.
        let store = self.default.store();
        store.drop_tenant(id).await?;
        let running = start(
            &self.config,
            store,
            &tenant,
            &deployment,
            self.threads.get_or_init(TenantThreads::new).next(),
        )?;
        if let Err(e) = self.persist(&tenant).await {
            running.engine.stop().await;
            running.store.close();
            let _ = store.drop_tenant(id).await;
            return Err(e.into());
        }
        write(&self.engines).insert(id.to_string(), running);
        write(&self.registry).put(tenant.clone());
        tracing::info!(tenant = %id, "tenant created");
        Ok(tenant)
    }

    /// Puts `tenant`'s record, as the cluster's registry now has it, in force: its admin
    /// credential, limits and codes (docs/CLUSTER.md "Tenants").
    pub async fn adopt(&self, tenant: Tenant) -> Result<Tenant, EngineError> {
        let id = tenant.id.clone();
        self.change(&id, |_| Ok(tenant)).await
    }

    /// Changes tenant `id`'s name, limits, wrap-up reasons or idle codes.
    pub async fn patch(&self, id: &str, patch: TenantPatch) -> Result<Tenant, EngineError> {
        self.change(id, |r| r.patch(id, patch)).await
    }

    /// Gives tenant `id` a new admin token (SHA-256 `credential`); the old one stops working.
    pub async fn reissue(&self, id: &str, credential: String) -> Result<Tenant, EngineError> {
        self.change(id, |r| r.reissue(id, credential)).await
    }

    /// Changes tenant `id`'s record as `decide` (a rule of the core's registry) answers:
    /// durable first, then in force, its limits and codes in its engine too (codes only
    /// when they changed). One change at a time, so the engine's limits and codes are
    /// always the last stored.
    async fn change(
        &self,
        id: &str,
        decide: impl FnOnce(&Registry) -> Result<Tenant, CoreError>,
    ) -> Result<Tenant, EngineError> {
        let _one = self.changes.lock().await;
        let (tenant, before, deployment) = {
            let registry = read(&self.registry);
            let tenant = decide(&registry)?;
            let before = registry.get(id).map(|t| t.codes.clone()).ok();
            (tenant, before, registry.deployment().clone())
        };
        // The one tenant of a cluster's server for it: its record is the cluster's.
        if id != self.default_id {
            self.persist(&tenant).await?;
        }
        write(&self.registry).put(tenant.clone());
        if let Some(engine) = self.engine(id) {
            engine.set_limits(tenant.limits).await?;
            if before.as_ref() != Some(&tenant.codes) {
                engine.set_codes(tenant.codes.effective(&deployment)).await?;
            }
        }
        Ok(tenant)
    }

    /// Deletes tenant `id` with everything it holds, once it has no open conversation
    /// (409 `tenant_not_empty`). The tenant stops answering first, so nothing opens a
    /// conversation between the check and the deletion; refused, it answers again.
    pub async fn delete(&self, id: &str) -> Result<(), EngineError> {
        let _one = self.changes.lock().await;
        read(&self.registry).may_delete(id, 0)?;
        let Some(running) = write(&self.engines).remove(id) else {
            return Err(CoreError::UnknownTenant(id.to_string()).into());
        };
        let open = match running.engine.stats().await {
            Ok(s) => s.conversations_held,
            Err(e) => {
                write(&self.engines).insert(id.to_string(), running);
                return Err(e);
            }
        };
        if let Err(e) = read(&self.registry).may_delete(id, open) {
            write(&self.engines).insert(id.to_string(), running);
            return Err(e.into());
        }
        let removed = self.default.store().put_registry(id.as_bytes(), None).await;
        if let Err(e) = removed {
            write(&self.engines).insert(id.to_string(), running);
            return Err(e.into());
        }
        write(&self.registry).remove(id);
        running.engine.stop().await;
        running.store.close();
        if let Err(e) = self.default.store().drop_tenant(id).await {
            // The record is gone: the store is only disk space now, removed by the next
            // create of the same id.
            tracing::warn!(tenant = %id, error = %e, "a deleted tenant's store could not be removed");
        }
        tracing::info!(tenant = %id, "tenant deleted");
        Ok(())
    }

    /// Writes `tenant`'s record into the registry, durably.
    async fn persist(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let value = serde_json::to_vec(tenant).map_err(|e| store_error("encode", e))?;
        self.default
            .store()
            .put_registry(tenant.id.as_bytes(), Some(value))
            .await
    }

    /// Closes every tenant's store but `default`'s (its owner closes it).
    pub fn close(&self) {
        for r in std::mem::take(&mut *write(&self.engines)).into_values() {
            r.store.close();
        }
    }
}

/// Opens `tenant`'s store inside `default`'s store and starts its engine with its rules
/// (`deployment`'s with its own codes) and limits.
fn start(
    config: &Config,
    default: &Arc<dyn Store>,
    tenant: &Tenant,
    deployment: &Rules,
    threads: crate::channels::messenger::Threads,
) -> Result<Running, StoreError> {
    let store = default.tenant(&tenant.id)?;
    let (engine, _outbox) = crate::channels::messenger::start_engine_with(
        config,
        store.clone(),
        Some(&tenant.id),
        tenant.rules(deployment),
        tenant.limits,
        Some(threads),
        None,
    )?;
    Ok(Running { engine, store })
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}
