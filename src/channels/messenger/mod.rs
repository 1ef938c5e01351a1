//! The Facebook Messenger channel (API.md "Messenger webhook").
//!
//! - [`webhook`]: `GET`/`POST /webhooks/messenger`: verification, signature, events in.
//! - [`payload`]: Meta's webhook payload and what each event becomes.
//! - [`outbox`]: the Send API sender, in order per conversation, with retries.
//! - [`graph`]: the Graph API calls and the meaning of their answers.
//! - [`metrics`]: webhook, Send API and outbox metrics.
//! - [`fake_graph`]: a fake Graph API for tests and for trying the channel locally.
//!
//! Customer names come from the User Profile API, looked up once per customer and kept
//! in the store; an offer waits for the look-up at most `messenger.profile_timeout_ms`,
//! after which the customer has a placeholder name and the real one follows when it
//! arrives ([`crate::core::Command::SetCustomerName`]).

pub mod fake_graph;
pub mod graph;
pub mod metrics;
pub mod outbox;
pub mod payload;
pub mod webhook;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::MessengerConfig;
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
    /// Customers whose look-up is under way or failed in this process: looked up once.
    looked_up: Mutex<HashSet<(String, String)>>,
}

impl Messenger {
    pub fn new(config: MessengerConfig, engine: Engine, outbox: Option<Arc<Outbox>>) -> Messenger {
        Messenger {
            config,
            engine,
            outbox,
            looked_up: Mutex::new(HashSet::new()),
        }
    }

    /// Gives each customer message of a batch the customer's name: the stored one, else
    /// the User Profile API's if it answers within `profile_timeout_ms` (one bound for the
    /// whole batch: the look-ups run at once), else the placeholder it already has (the
    /// look-up goes on, and its name follows).
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
        let mut entry_points: Option<Vec<EntryPoint>> = None;
        for ((page_id, psid), name) in names.iter_mut() {
            let q = Query::CustomerName {
                page_id: page_id.clone(),
                customer: psid.clone(),
            };
            match self.engine.ask(q).await {
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
            let first_time = self
                .looked_up
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((page_id.clone(), psid.clone()));
            if !first_time {
                continue;
            }
            if entry_points.is_none() {
                entry_points = match self.engine.ask(Query::EntryPoints).await {
                    Ok(QueryReply::EntryPoints(v)) => Some(v),
                    _ => Some(Vec::new()),
                };
            }
            let token = entry_points
                .iter()
                .flatten()
                .find(|e| e.page_id.as_deref() == Some(page_id.as_str()))
                .and_then(|e| e.page_access_token.clone());
            let Some(token) = token else { continue };
            let (config, engine) = (self.config.clone(), self.engine.clone());
            let (page, customer) = (page_id.clone(), psid.clone());
            let lookup = actix_rt::spawn(async move {
                let client = awc::Client::default();
                let name = graph::profile_name(&client, &config, &customer, &token).await;
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

/// Starts an engine over `store` whose Messenger conversations send through a new
/// [`Outbox`] (resuming what the store's outbox holds), and returns both.
pub fn start_engine(
    config: &crate::config::Config,
    store: Arc<dyn crate::store::Store>,
) -> Result<(Engine, Arc<Outbox>), crate::store::StoreError> {
    let clock: Arc<dyn crate::actors::Clock> = Arc::new(crate::actors::SystemClock);
    let outbox = Outbox::start(config.messenger.clone(), clock.clone());
    let mut options = crate::engine::EngineOptions::new(config.rules(), store);
    options.clock = clock;
    options.channel = outbox.clone();
    options.admission = config.server.admission();
    let engine = Engine::start(options)?;
    outbox.attach(engine.clone());
    Ok((engine, outbox))
}
