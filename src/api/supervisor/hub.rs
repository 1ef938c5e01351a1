//! The supervisor hub: one actor, on its own thread, that keeps a mirror of the floor as
//! supervisors see it and publishes what changed to every supervisor socket once per tick.
//!
//! # Why it is cheap
//! - **Routing only marks ids.** While someone watches, the router adds the id of each
//!   agent and conversation record it changes to a set ([`Query::WatchDelta`]); the hub
//!   asks for the changed records once per tick, one message, so routing never waits for a
//!   supervisor, and ten changes of one agent in a tick cost one event.
//! - **Queue figures come from the queue actors** (the queue board), not from the router.
//! - **Each object is serialised once** per change, and each tick's events are one shared
//!   batch (`Arc<[ByteString]>`) handed to every socket: hundreds of supervisors cost a
//!   pointer copy each, not a serialisation each. An object whose JSON did not change is not
//!   sent at all.
//! - **One frame per tick**, not one per event: a tick's events go out as
//!   `{"type":"batch","events":[...]}` (API.md allows both forms), at most
//!   [`EVENTS_PER_FRAME`] events a frame, so a socket's cost is a frame per tick and not a
//!   frame per changed object. A tick with one event sends it bare.
//! - **Bounded per socket.** A socket's channel holds [`crate::config::SupervisorConfig`]
//!   `socket_buffer` batches; a socket that lets it fill is dropped (its stream ends, it
//!   closes with 1013 and the page reconnects and resumes from `snapshot`).
//! - **A snapshot is built from the mirror** (and cached until the next change), never by
//!   asking the router: a reconnect storm costs the hub, not routing.
//!
//! When nobody is connected the hub tells the router to stop marking and drops its mirror.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;
use tokio::sync::mpsc;

use super::SupervisedAgentDto;
use crate::api::dto::{ConversationDto, ConversationStateDto, EntryPointDto, QueueDto};
use crate::config::SupervisorConfig;
use crate::core::{Agent, Conversation, Millis};
use crate::engine::{Engine, Query};
use crate::protocol::{FloorDelta, QueueFigures};

/// One tick's frames (or the snapshot), shared by every socket.
pub type Batch = Arc<[ByteString]>;

/// The most events one `batch` frame carries (a busy tick of a large floor becomes a few
/// frames of a few hundred KB, not one of many MB).
pub const EVENTS_PER_FRAME: usize = 512;

/// What the hub knows of one queue.
struct QueueEntry {
    figures: QueueFigures,
    /// When it was last sent (ms): a waiting queue is re-sent every `queue_refresh_ms`.
    sent_at: Millis,
}

/// The floor as supervisors see it: each object's JSON.
#[derive(Default)]
struct Mirror {
    agents: BTreeMap<String, ByteString>,
    /// Open conversations only (an ended one is sent once, then forgotten).
    conversations: BTreeMap<String, ByteString>,
    queues: BTreeMap<String, QueueEntry>,
    /// Entry points (with their Messenger `channel_state`).
    entry_points: BTreeMap<String, ByteString>,
    /// The last snapshot frame, until something changes.
    snapshot: Option<ByteString>,
}

/// The hub. See the module docs.
pub struct Hub {
    engine: Engine,
    config: SupervisorConfig,
    sockets: HashMap<u64, mpsc::Sender<Batch>>,
    next_socket: u64,
    mirror: Option<Mirror>,
}

impl Hub {
    pub fn new(engine: Engine, config: SupervisorConfig) -> Self {
        Hub {
            engine,
            config,
            sockets: HashMap::new(),
            next_socket: 1,
            mirror: None,
        }
    }

    /// Starts the hub on a thread of its own.
    pub fn start_on_own_thread(engine: Engine, config: SupervisorConfig) -> Addr<Hub> {
        let arbiter = Arbiter::new();
        Hub::start_in_arbiter(&arbiter.handle(), move |_| Hub::new(engine, config))
    }
}

fn now_ms() -> Millis {
    crate::api::auth::now_ms()
}

fn json<T: serde::Serialize>(v: &T) -> Option<String> {
    match serde_json::to_string(v) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a supervisor event");
            None
        }
    }
}

fn agent_json(a: &Agent) -> Option<ByteString> {
    json(&SupervisedAgentDto::from(a)).map(ByteString::from)
}

/// A conversation's JSON without the transcript, and whether it has ended.
fn conversation_json(c: &Conversation) -> Option<(ByteString, bool)> {
    let dto = ConversationDto::from(c);
    let ended = matches!(dto.state, ConversationStateDto::Ended);
    let mut v = serde_json::to_value(&dto).ok()?;
    if let Some(o) = v.as_object_mut() {
        o.remove("transcript");
    }
    json(&v).map(|s| (ByteString::from(s), ended))
}

fn queue_json(f: &QueueFigures, now: Millis) -> Option<String> {
    json(&QueueDto::from(&f.stats(now)))
}

/// `{"type":KIND,KIND:OBJECT}`
fn frame(kind: &str, object: &str) -> ByteString {
    ByteString::from(format!(r#"{{"type":"{kind}","{kind}":{object}}}"#))
}

/// A tick's events as frames: a lone event as it is, more as `batch` frames of at most
/// `per_frame` events, in order.
fn batched(events: Vec<ByteString>, per_frame: usize) -> Vec<ByteString> {
    if events.len() <= 1 {
        return events;
    }
    events
        .chunks(per_frame.max(1))
        .map(|chunk| {
            let len = chunk.iter().map(|e| e.len() + 1).sum::<usize>();
            let mut s = String::with_capacity(len + 32);
            s.push_str(r#"{"type":"batch","events":["#);
            for (i, e) in chunk.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(e);
            }
            s.push_str("]}");
            ByteString::from(s)
        })
        .collect()
}

impl Mirror {
    fn from_view(view: FloorDelta, queues: Vec<QueueFigures>, now: Millis) -> Mirror {
        let mut m = Mirror::default();
        for a in &view.agents {
            if let Some(j) = agent_json(a) {
                m.agents.insert(a.id.clone(), j);
            }
        }
        for c in &view.conversations {
            if let Some((j, false)) = conversation_json(c) {
                m.conversations.insert(c.id.clone(), j);
            }
        }
        for e in &view.entry_points {
            if let Some(j) = json(&EntryPointDto::from(e)) {
                m.entry_points.insert(e.id.clone(), j.into());
            }
        }
        for f in queues {
            m.queues.insert(
                f.id.clone(),
                QueueEntry {
                    figures: f,
                    sent_at: now,
                },
            );
        }
        m
    }

    fn snapshot(&mut self, now: Millis) -> ByteString {
        if let Some(s) = &self.snapshot {
            return s.clone();
        }
        let join = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(",");
        let queues = join(&mut self.queues.values().filter_map(|q| queue_json(&q.figures, now)));
        let agents = join(&mut self.agents.values().map(|s| s.to_string()));
        let conversations = join(&mut self.conversations.values().map(|s| s.to_string()));
        let entry_points = join(&mut self.entry_points.values().map(|s| s.to_string()));
        let s = ByteString::from(format!(
            r#"{{"type":"snapshot","queues":[{queues}],"agents":[{agents}],"conversations":[{conversations}],"entry_points":[{entry_points}]}}"#
        ));
        self.snapshot = Some(s.clone());
        s
    }

    /// Applies a delta and the queues that changed; returns the frames to publish.
    fn apply(&mut self, delta: FloorDelta, queues: Vec<QueueFigures>, now: Millis, refresh_ms: u64) -> Vec<ByteString> {
        let mut frames = Vec::new();
        for a in &delta.agents {
            let Some(j) = agent_json(a) else { continue };
            if self.agents.get(&a.id) != Some(&j) {
                frames.push(frame("agent", &j));
                self.agents.insert(a.id.clone(), j);
            }
        }
        for c in &delta.conversations {
            let Some((j, ended)) = conversation_json(c) else {
                continue;
            };
            if ended {
                // Sent once, as the conversation's last event, unless it was sent already.
                let known = self.conversations.remove(&c.id);
                if known.as_ref() != Some(&j) {
                    frames.push(frame("conversation", &j));
                }
            } else if self.conversations.get(&c.id) != Some(&j) {
                frames.push(frame("conversation", &j));
                self.conversations.insert(c.id.clone(), j);
            }
        }
        for e in &delta.entry_points {
            let Some(j) = json(&EntryPointDto::from(e)).map(ByteString::from) else {
                continue;
            };
            if self.entry_points.get(&e.id) != Some(&j) {
                frames.push(frame("entry_point", &j));
                self.entry_points.insert(e.id.clone(), j);
            }
        }
        for f in queues {
            let changed = self.queues.get(&f.id).map(|q| &q.figures) != Some(&f);
            let entry = self.queues.entry(f.id.clone()).or_insert(QueueEntry {
                figures: f.clone(),
                sent_at: 0,
            });
            entry.figures = f;
            if changed {
                entry.sent_at = 0;
            }
        }
        for q in self.queues.values_mut() {
            // Changed (sent_at reset), or waiting and due for a fresh `longest_wait_ms`.
            let due = q.sent_at == 0 || (q.figures.waiting > 0 && now.saturating_sub(q.sent_at) >= refresh_ms);
            if due {
                if let Some(j) = queue_json(&q.figures, now) {
                    frames.push(frame("queue", &j));
                }
                q.sent_at = now.max(1);
            }
        }
        if !frames.is_empty() {
            self.snapshot = None;
        }
        frames
    }
}

impl Actor for Hub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        ctx.run_interval(Duration::from_millis(self.config.tick_ms), |act, ctx| act.tick(ctx));
    }
}

impl Hub {
    /// Hands `batch` to every socket; drops those that are full (too slow) or gone.
    fn publish(&mut self, batch: Batch) {
        self.sockets.retain(|id, tx| match tx.try_send(batch.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(socket = id, "supervisor socket too slow, dropping it");
                crate::metrics::SUPERVISOR_SOCKETS_DROPPED.with_label_values(&[]).inc();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.sockets.retain(|_, tx| !tx.is_closed());
        if self.sockets.is_empty() {
            if self.mirror.take().is_some() {
                let engine = self.engine.clone();
                ctx.spawn(
                    async move {
                        let _ = engine.watch(Query::WatchStop).await;
                    }
                    .into_actor(self),
                );
            }
            return;
        }
        if self.mirror.is_none() {
            return;
        }
        let engine = self.engine.clone();
        let span = tracing::debug_span!("supervisor_tick", sockets = self.sockets.len());
        // `wait`: no join and no other tick is handled until this one is applied, so every
        // socket sees the snapshot and the deltas in order.
        ctx.wait(
            async move { engine.watch(Query::WatchDelta).await }
                .into_actor(self)
                .map(move |delta, act, _ctx| {
                    let _enter = span.enter();
                    let delta = match delta {
                        Ok(d) if d.watching => d,
                        Ok(_) | Err(_) => {
                            // A new router (the engine rebuilt itself), or none: every
                            // socket starts again from a snapshot.
                            tracing::info!("supervisor hub: the engine changed; sockets resume from snapshot");
                            act.mirror = None;
                            act.sockets.clear();
                            return;
                        }
                    };
                    let queues = act.engine.queue_figures(false);
                    let now = now_ms();
                    let refresh = act.config.queue_refresh_ms;
                    let Some(m) = act.mirror.as_mut() else { return };
                    let events = m.apply(delta, queues, now, refresh);
                    if !events.is_empty() {
                        crate::metrics::SUPERVISOR_TICKS.with_label_values(&[]).inc();
                        act.publish(batched(events, EVENTS_PER_FRAME).into());
                    }
                }),
        );
    }

    fn add_socket(&mut self, tx: mpsc::Sender<Batch>) {
        let Some(m) = self.mirror.as_mut() else { return };
        let snapshot: Batch = vec![m.snapshot(now_ms())].into();
        if tx.try_send(snapshot).is_ok() {
            let id = self.next_socket;
            self.next_socket += 1;
            self.sockets.insert(id, tx);
        }
    }
}

/// Stops the hub and its thread (a deleted tenant's): its sockets see their stream end.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for Hub {
    type Result = ();

    fn handle(&mut self, _msg: Stop, ctx: &mut Self::Context) {
        self.sockets.clear();
        ctx.stop();
        Arbiter::current().stop();
    }
}

/// A new supervisor socket: it gets the snapshot first, then every tick's events, through
/// `tx` (bounded: see the module docs).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub tx: mpsc::Sender<Batch>,
}

impl Handler<Join> for Hub {
    type Result = ();

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) {
        let _span = tracing::debug_span!("supervisor_join").entered();
        if self.mirror.is_some() {
            self.add_socket(msg.tx);
            return;
        }
        // The first watcher: the whole floor once, and from then on the router marks.
        let engine = self.engine.clone();
        ctx.wait(
            async move { engine.watch(Query::WatchStart).await }
                .into_actor(self)
                .map(move |view, act, _ctx| match view {
                    Ok(view) => {
                        // Anything the queue board marked changed is in the view already.
                        let queues = act.engine.queue_figures(true);
                        act.mirror = Some(Mirror::from_view(view, queues, now_ms()));
                        act.add_socket(msg.tx);
                    }
                    Err(e) => {
                        // Dropping `tx` closes the socket (1013); the page retries.
                        tracing::warn!(error = %e, "supervisor hub: the engine did not answer the snapshot");
                    }
                }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(waiting: usize, oldest: Option<Millis>) -> QueueFigures {
        QueueFigures {
            id: "q".into(),
            name: "Q".into(),
            waiting,
            oldest_received_at: oldest,
            agents_available: 0,
            routing_steps: Vec::new(),
            hours: None,
            wait_limit: None,
            service_level_ms: 60_000,
        }
    }

    fn kinds(frames: &[ByteString]) -> Vec<String> {
        frames
            .iter()
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(f).unwrap();
                v["type"].as_str().unwrap().to_string()
            })
            .collect()
    }

    /// One tick at a time: what the mirror publishes. An agent is sent when its JSON
    /// changes, once however often it changed; a waiting queue is re-sent every
    /// `refresh` ms with a fresh `longest_wait_ms`; an idle queue only when it changes.
    #[test]
    fn what_each_tick_publishes() {
        let agent = |presence| {
            let mut a = Agent::new("a1".into(), "Ann".into(), vec!["q".into()], 1, 10);
            a.presence = presence;
            a
        };
        let mut m = Mirror::from_view(
            FloorDelta {
                watching: true,
                agents: vec![agent(crate::core::Presence::LoggedOut)],
                ..Default::default()
            },
            vec![figures(0, None)],
            1_000,
        );
        let delta = |agents: Vec<Agent>| FloorDelta {
            watching: true,
            agents,
            ..Default::default()
        };
        // (delta's agents, changed queues, now, kinds published)
        #[allow(clippy::type_complexity)]
        let rows: Vec<(Vec<Agent>, Vec<QueueFigures>, Millis, Vec<&str>)> = vec![
            (vec![agent(crate::core::Presence::LoggedOut)], vec![], 1_100, vec![]),
            (
                vec![agent(crate::core::Presence::Available)],
                vec![],
                1_200,
                vec!["agent"],
            ),
            (vec![], vec![figures(1, Some(1_200))], 1_300, vec!["queue"]),
            (vec![], vec![], 1_400, vec![]),
            (vec![], vec![], 2_300, vec!["queue"]),
            (vec![], vec![figures(0, None)], 2_400, vec!["queue"]),
            (vec![], vec![], 4_000, vec![]),
        ];
        for (i, (agents, queues, now, want)) in rows.into_iter().enumerate() {
            let frames = m.apply(delta(agents), queues, now, 900);
            assert_eq!(kinds(&frames), want, "row {i}");
        }
        let snap: serde_json::Value = serde_json::from_str(&m.snapshot(5_000)).unwrap();
        assert_eq!(snap["type"], "snapshot");
        assert_eq!(snap["agents"][0]["state"], "available");
        assert_eq!(snap["queues"][0]["waiting"], 0);
        assert!(snap["conversations"].as_array().unwrap().is_empty());
    }

    /// A tick's events: one goes bare, more go in `batch` frames of at most `per_frame`,
    /// in the order they happened.
    #[test]
    fn a_ticks_events_go_in_batch_frames() {
        let ev = |i: usize| frame("queue", &format!(r#"{{"id":"q{i}"}}"#));
        // (events, per frame, frames' kinds, events per frame)
        #[allow(clippy::type_complexity)]
        let rows: Vec<(usize, usize, Vec<&str>, Vec<usize>)> = vec![
            (0, 3, vec![], vec![]),
            (1, 3, vec!["queue"], vec![1]),
            (2, 3, vec!["batch"], vec![2]),
            (3, 3, vec!["batch"], vec![3]),
            (7, 3, vec!["batch", "batch", "batch"], vec![3, 3, 1]),
        ];
        for (n, per, want_kinds, want_sizes) in rows {
            let frames = batched((0..n).map(ev).collect(), per);
            assert_eq!(kinds(&frames), want_kinds, "{n} events, {per} a frame");
            let mut ids = Vec::new();
            for (f, size) in frames.iter().zip(&want_sizes) {
                let v: serde_json::Value = serde_json::from_str(f).unwrap();
                let events = match v["type"].as_str() {
                    Some("batch") => v["events"].as_array().unwrap().clone(),
                    _ => vec![v],
                };
                assert_eq!(events.len(), *size, "{n} events, {per} a frame");
                ids.extend(events.iter().map(|e| e["queue"]["id"].as_str().unwrap().to_string()));
            }
            let want_ids: Vec<String> = (0..n).map(|i| format!("q{i}")).collect();
            assert_eq!(ids, want_ids, "order kept");
        }
    }

    /// An entry point is in the snapshot, and sent again (`entry_point`) only when its
    /// JSON changes: its Messenger page's token is refused, then replaced.
    #[test]
    fn entry_points_reach_supervisors_when_they_change() {
        let ep = |state| crate::core::EntryPoint {
            id: "ep".into(),
            name: "Acme".into(),
            queue: "q".into(),
            page_id: Some("123".into()),
            page_access_token: Some("secret".into()),
            priority: 0,
            routing_steps: Vec::new(),
            messenger: crate::core::messenger::PageSettings {
                channel_state: state,
                ..Default::default()
            },
        };
        use crate::core::messenger::ChannelState::{Ok as Fine, Unauthorized};
        let view = FloorDelta {
            watching: true,
            entry_points: vec![ep(Fine)],
            ..Default::default()
        };
        let mut m = Mirror::from_view(view, vec![], 1_000);
        let snap: serde_json::Value = serde_json::from_str(&m.snapshot(1_000)).unwrap();
        assert_eq!(snap["entry_points"][0]["channel_state"], "ok");
        assert!(!snap.to_string().contains("secret"), "the token is never shown");
        let delta = |state| FloorDelta {
            watching: true,
            entry_points: vec![ep(state)],
            ..Default::default()
        };
        assert_eq!(kinds(&m.apply(delta(Fine), vec![], 1_100, 900)), Vec::<String>::new());
        let frames = m.apply(delta(Unauthorized), vec![], 1_200, 900);
        assert_eq!(kinds(&frames), ["entry_point"]);
        let v: serde_json::Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(v["entry_point"]["channel_state"], "unauthorized");
        let snap: serde_json::Value = serde_json::from_str(&m.snapshot(1_300)).unwrap();
        assert_eq!(snap["entry_points"][0]["channel_state"], "unauthorized");
    }

    #[test]
    fn a_frame_wraps_the_object_under_its_kind() {
        let f = frame("queue", r#"{"id":"q"}"#);
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["type"], "queue");
        assert_eq!(v["queue"]["id"], "q");
    }
}
