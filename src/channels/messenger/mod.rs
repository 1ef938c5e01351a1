//! The Facebook Messenger channel (../shared/API.md "Messenger webhook").
//!
//! - [`webhook`]: `GET`/`POST /webhooks/messenger`: verification, signature, events in.
//! - [`payload`]: Meta's webhook payload and what each event becomes.
//! - [`outbox`]: the Send API sender, in order per conversation, with retries.
//! - [`graph`]: the Graph API calls and the meaning of their answers.
//! - [`metrics`]: webhook, Send API and outbox metrics.
//! - [`fake_graph`]: a fake Graph API for tests and for trying the channel locally.
//!
//! Customer names come from the User Profile API, looked up once per customer and kept
//! in the store (a failed look-up is tried again on a later message, after a backoff;
//! at most `messenger.profile_concurrency` run at once); an offer waits for the look-up at
//! most `messenger.profile_timeout_ms`,
//! after which the customer has a placeholder name and the real one follows when it
//! arrives ([`crate::core::Command::SetCustomerName`]).

pub mod fake_graph;
pub mod graph;
pub mod metrics;
pub mod outbox;
pub mod payload;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::MessengerConfig;
use crate::core::messenger::ProfileLookups;
use crate::core::{Command, EntryPoint};
use crate::engine::{Engine, Query, QueryReply};

pub use crate::core::messenger::placeholder_name as placeholder;
pub use outbox::Outbox;

/// What the webhook handlers reach (actix app data).
pub struct Messenger {
    pub config: MessengerConfig,
    pub engine: Engine,
    /// The outbox's figures for `/healthz`, when the engine sends through one.
    pub outbox: Option<Arc<Outbox>>,
    /// Which customers to look up (under way, failed and when to try again), bounded.
    lookups: Arc<Mutex<ProfileLookups>>,
    /// At most `messenger.profile_concurrency` look-ups run at once; the rest wait here.
    lookup_slots: Arc<tokio::sync::Semaphore>,
    /// The deployment's other tenants: an event for a page no entry point of `engine`
    /// (tenant `default`) has goes to the tenant whose entry point has it.
    pub tenants: Option<Arc<crate::tenants::Tenants>>,
}

/// The longest wait before a failed profile look-up is tried again.
const PROFILE_RETRY_MAX_MS: u64 = 3_600_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Messenger {
    pub fn new(config: MessengerConfig, engine: Engine, outbox: Option<Arc<Outbox>>) -> Messenger {
        let lookups = ProfileLookups::new(config.profile_cache, config.profile_retry_ms, PROFILE_RETRY_MAX_MS);
        let slots = config.profile_concurrency.max(1);
        Messenger {
            config,
            engine,
            outbox,
            lookups: Arc::new(Mutex::new(lookups)),
            lookup_slots: Arc::new(tokio::sync::Semaphore::new(slots)),
            tenants: None,
        }
    }

    /// Gives each customer message of a batch the customer's name: the stored one, else
    /// the User Profile API's if it answers within `profile_timeout_ms` (one bound for the
    /// whole batch: the look-ups run at once), else the placeholder it already has (the
    /// look-up goes on, and its name follows). Names are stored, read and looked up with
    /// the page's token in the tenant whose entry point has the page.
    pub async fn name_customers(&self, commands: &mut [Command]) {
        let mut names: HashMap<(String, String), Option<String>> = HashMap::new();
        for cmd in commands.iter() {
            if let Command::MessengerMessage { page_id, customer, .. } = cmd {
                names.entry((page_id.clone(), customer.id.clone())).or_default();
            }
        }
        if names.is_empty() {
            return;
        }
        let mut lookups = Vec::new();
        let mut pages = PageOwners::default();
        for ((page_id, psid), name) in names.iter_mut() {
            let q = || Query::CustomerName {
                page_id: page_id.clone(),
                customer: psid.clone(),
            };
            match self.engine.ask(q()).await {
                Ok(QueryReply::CustomerName(Some(stored))) => {
                    *name = Some(stored);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "customer name not read; using the placeholder");
                    continue;
                }
            }
            let Some((engine, token)) = pages.owner(self, page_id).await else {
                // No tenant has the page: the event is refused as it is run.
                continue;
            };
            if !engine.is(&self.engine) {
                // The page is another tenant's: its name is stored there.
                if let Ok(QueryReply::CustomerName(Some(stored))) = engine.ask(q()).await {
                    *name = Some(stored);
                    continue;
                }
            }
            let key = (page_id.clone(), psid.clone());
            if !self
                .lookups
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .start(&key, now_ms())
            {
                continue;
            }
            let Some(token) = token else {
                self.lookups
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .ended(&key, false, now_ms());
                continue;
            };
            let config = self.config.clone();
            let (page, customer) = (page_id.clone(), psid.clone());
            let (cache, slots) = (self.lookups.clone(), self.lookup_slots.clone());
            let lookup = actix_rt::spawn(async move {
                // Bounded concurrency: a batch of hundreds of new customers does not open
                // hundreds of requests at once. The semaphore is never closed.
                let _slot = slots.acquire_owned().await.ok();
                let client = awc::Client::default();
                let name = graph::profile_name(&client, &config, &customer, &token).await;
                cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .ended(&key, name.is_some(), now_ms());
                if let Some(name) = &name {
                    let cmd = Command::SetCustomerName {
                        page_id: page,
                        customer,
                        name: name.clone(),
                    };
                    if let Err(e) = engine.exec(cmd).await {
                        tracing::warn!(error = %e, "customer name not recorded");
                    }
                }
                name
            });
            lookups.push(((page_id.clone(), psid.clone()), lookup));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.config.profile_timeout_ms);
        for (key, lookup) in lookups {
            // A look-up still running at the deadline goes on; its name follows.
            if let Ok(Ok(Some(found))) = tokio::time::timeout_at(deadline, lookup).await {
                names.insert(key, Some(found));
            }
        }
        for cmd in commands.iter_mut() {
            if let Command::MessengerMessage { page_id, customer, .. } = cmd {
                if let Some(Some(name)) = names.get(&(page_id.clone(), customer.id.clone())) {
                    customer.name = name.clone();
                }
            }
        }
    }
}

/// Which tenant's engine has each page of a batch, with the page's token, asked of each
/// engine at most once per batch (`default`'s first, then the others only for a page
/// `default` does not have).
#[derive(Default)]
struct PageOwners {
    /// The entry points of each engine asked so far, in the order asked.
    asked: Vec<(Engine, Vec<EntryPoint>)>,
    /// Whether the other tenants' engines were asked too.
    all: bool,
}

impl PageOwners {
    async fn owner(&mut self, messenger: &Messenger, page_id: &str) -> Option<(Engine, Option<String>)> {
        if self.asked.is_empty() {
            self.asked
                .push((messenger.engine.clone(), entry_points(&messenger.engine).await));
        }
        if let Some(found) = self.find(page_id) {
            return Some(found);
        }
        if !self.all {
            self.all = true;
            let others = messenger.tenants.as_ref().map(|t| t.others()).unwrap_or_default();
            for engine in others {
                let eps = entry_points(&engine).await;
                self.asked.push((engine, eps));
            }
        }
        self.find(page_id)
    }

    fn find(&self, page_id: &str) -> Option<(Engine, Option<String>)> {
        self.asked.iter().find_map(|(engine, eps)| {
            eps.iter()
                .find(|e| e.page_id.as_deref() == Some(page_id))
                .map(|e| (engine.clone(), e.page_access_token.clone()))
        })
    }
}

async fn entry_points(engine: &Engine) -> Vec<EntryPoint> {
    match engine.ask(Query::EntryPoints).await {
        Ok(QueryReply::EntryPoints(v)) => v,
        _ => Vec::new(),
    }
}

/// Starts an engine over `store` whose Messenger conversations send through a new
/// [`Outbox`] (resuming what the store's outbox holds), and returns both.
pub fn start_engine(
    config: &crate::config::Config,
    store: Arc<dyn crate::store::Store>,
) -> Result<(Engine, Arc<Outbox>), crate::store::StoreError> {
    start_engine_with(config, store, None, config.rules(), Default::default(), None, None)
}

/// The threads an engine and its outbox run on, when not threads of their own.
#[derive(Clone)]
pub struct Threads {
    pub router: actix::ArbiterHandle,
    pub outbox: actix::ArbiterHandle,
}

/// [`start_engine`] for tenant `tenant` (`None`: `default`) with its `rules` (the
/// config's, with the tenant's wrap-up reasons and idle codes) and `limits`
/// (../shared/API.md "Tenants"), on `threads` (`None`: a router thread and an outbox
/// thread of its own), its agents' files kept in `files` (`None`: the config's directory;
/// a cluster's [`crate::channels::files::FileStore::replicated`]).
pub fn start_engine_with(
    config: &crate::config::Config,
    store: Arc<dyn crate::store::Store>,
    tenant: Option<&str>,
    rules: crate::core::Rules,
    limits: crate::core::tenant::TenantLimits,
    threads: Option<Threads>,
    files: Option<crate::channels::files::FileStore>,
) -> Result<(Engine, Arc<Outbox>), crate::store::StoreError> {
    let files = match files {
        Some(f) => f,
        None => crate::channels::files::FileStore::for_config(config)
            .map_err(|e| crate::store::StoreError::Write(format!("the attachments directory cannot be opened: {e}")))?,
    };
    let clock: Arc<dyn crate::actors::Clock> = Arc::new(crate::actors::SystemClock);
    let outbox = Outbox::start_on(
        config.messenger.clone(),
        clock.clone(),
        Arc::new(files),
        threads.as_ref().map(|t| t.outbox.clone()),
    );
    let mut options = crate::engine::EngineOptions::new(rules, store);
    options.arbiter = threads.map(|t| t.router);
    options.clock = clock;
    options.channel = outbox.clone();
    options.admission = config.server.admission();
    options.limits = limits;
    options.tenant = tenant.map(str::to_string);
    options.webhooks = config.webhooks.settings();
    // Webhook events go out from the outbox's thread: both are senders to the outside.
    options.webhook_arbiter = Some(outbox.arbiter());
    let engine = Engine::start(options)?;
    outbox.attach(engine.clone());
    Ok((engine, outbox))
}
