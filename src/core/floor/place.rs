//! The customer's place in line (issue 26 item 2), on the floor: a queue's
//! [`PlaceUpdates`] carried out at arrival and by a sweep of the queue every
//! `min_interval_ms` while anything waits in it (one deadline per queue, so the cost is
//! one pass over the queue per interval, never per operation). What each customer was
//! last told and the queues' recent waits are the engine's memory of the moment, not
//! stored: after a restart each waiting customer is told again at the first sweep.

use super::*;
use crate::core::place::{PlaceUpdates, Told};

impl Floor {
    /// Sets (or with `None` removes) queue `id`'s place updates; checked first.
    pub(crate) fn set_place_updates(
        &mut self,
        id: &str,
        updates: Option<PlaceUpdates>,
        now: Millis,
    ) -> Result<(), CoreError> {
        if let Some(u) = &updates {
            u.check()?;
        }
        let q = self
            .queues
            .get_mut(id)
            .ok_or_else(|| CoreError::UnknownQueue(id.into()))?;
        q.place_updates = updates.map(std::sync::Arc::new);
        let record = q.record();
        self.journal.change(Change::Queue(record));
        self.arm_place_sweep(id, now);
        Ok(())
    }

    /// Conversation `id` (of queue `queue`) was accepted after waiting `waited`: a
    /// recent wait of the queue (new offers only: a transfer to a named agent is no
    /// wait in line).
    pub(super) fn waited_in_line(&mut self, queue: &str, id: &str, waited: Millis, now: Millis) {
        self.place_told.remove(id);
        self.recent_waits.entry(queue.into()).or_default().push(now, waited);
    }

    /// The customer of `id` is no longer in line.
    pub(super) fn left_the_line(&mut self, id: &str) {
        self.place_told.remove(id);
    }

    /// Arms queue `id`'s sweep, if it has place updates, something waits, and none is
    /// armed.
    pub(super) fn arm_place_sweep(&mut self, id: &str, now: Millis) {
        let Some(q) = self.queues.get(id) else { return };
        let Some(u) = &q.place_updates else { return };
        let timer = Timer::Places { queue: id.into() };
        if q.waiting.is_empty() || self.deadlines.is_armed(&timer) {
            return;
        }
        let at = now.saturating_add(u.min_interval_ms);
        self.deadlines.arm(timer, at);
    }

    /// A customer whose message just opened `id` is told its place at once, if it waits
    /// in a queue with place updates.
    pub(super) fn place_at_arrival(&mut self, id: &str, now: Millis) {
        let Some(c) = self.conversations.get(id) else { return };
        if c.state != ConversationState::Queued {
            return;
        }
        let queue = c.queue.clone();
        let Some(q) = self.queues.get(&queue) else { return };
        if q.place_updates.is_none() {
            return;
        }
        let Some(position) = q.waiting.values().position(|w| w == id).map(|p| p + 1) else {
            return;
        };
        self.tell_place(&queue, id, position, now);
        self.arm_place_sweep(&queue, now);
    }

    /// The sweep of queue `id`: every waiting customer whose place or expected wait
    /// moved by a step since it was last told (and not within the interval) is told.
    pub fn place_timer(&mut self, id: &str, now: Millis) {
        let Some(q) = self.queues.get(id) else { return };
        let Some(u) = q.place_updates.clone() else { return };
        let median = self.recent_waits.get(id).and_then(|r| r.median(now));
        let mut due = Vec::new();
        for (position, (key, cid)) in q.waiting.iter().enumerate() {
            let waited = now.saturating_sub(key.1);
            let wait = median.map(|m| crate::core::place::expected(m, waited));
            if u.due(self.place_told.get(cid), position + 1, wait, now) {
                due.push((cid.clone(), position + 1));
            }
        }
        for (cid, position) in due {
            self.tell_place(id, &cid, position, now);
        }
        let timer = Timer::Places { queue: id.into() };
        if self.queues.get(id).is_some_and(|q| !q.waiting.is_empty()) {
            self.deadlines.arm(timer, now.saturating_add(u.min_interval_ms));
        }
    }

    /// Tells the customer of `cid` its `position` in `queue` and its expected wait: a
    /// system message in the transcript, to the customer's channel like every system text.
    fn tell_place(&mut self, queue: &str, cid: &str, position: usize, now: Millis) {
        let Some(u) = self.queues.get(queue).and_then(|q| q.place_updates.clone()) else {
            return;
        };
        let Some(c) = self.conversations.get(cid) else { return };
        let waited = now.saturating_sub(c.received_at);
        let wait = self.recent_waits.get(queue).and_then(|r| r.estimate(now, waited));
        let text = u.text(c.channel.as_str(), position, wait);
        self.append(cid, AuthorKind::System, None, "system".into(), &text, now);
        self.place_told.insert(
            cid.into(),
            Told {
                at: now,
                position,
                wait_ms: wait,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::place::{PlaceTexts, MIN_WAITS};
    use crate::core::{Account, Reply};

    const T0: Millis = 1_000_000;

    fn settings() -> PlaceUpdates {
        PlaceUpdates {
            templates: [(
                "default".to_string(),
                PlaceTexts {
                    text: "#{{position}}, ~{{wait_minutes}} min".into(),
                    text_without_wait: "#{{position}}".into(),
                },
            )]
            .into_iter()
            .collect(),
            position_step: 1,
            wait_step_ms: 60_000,
            min_interval_ms: 10_000,
        }
    }

    fn floor() -> Floor {
        let mut f = Floor::new(Rules {
            offer_timeout_ms: 3_600_000,
            ..Rules::default()
        });
        f.execute(
            Command::CreateQueue {
                id: "q".into(),
                name: "Q".into(),
                routing_steps: Vec::new(),
                hours: None,
                survey: None,
                wait_limit: None,
                service_level_ms: None,
                place_updates: Some(Box::new(settings())),
                overflow: None,
            },
            T0,
        )
        .expect("queue");
        f.create_entry_point(EntryPoint {
            id: "e".into(),
            name: "Page".into(),
            queue: "q".into(),
            ..Default::default()
        })
        .expect("entry point");
        f.create_agent("a1", "Ann", vec!["q".into()], 1, Account::default(), Skills::new(), T0)
            .expect("agent");
        f
    }

    /// The texts each conversation's customer was delivered since the last take.
    fn told(f: &mut Floor) -> Vec<(String, String)> {
        f.take_effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Deliver { conversation, message } if message.author.kind == AuthorKind::System => {
                    Some((conversation, message.text))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn waiting_customers_are_told_their_place_at_arrival_and_as_the_line_moves() {
        let mut f = floor();
        let c1 = f.customer_writes("u1", T0);
        let c2 = f.customer_writes("u2", T0 + 1);
        let c3 = f.customer_writes("u3", T0 + 2);
        assert_eq!(
            told(&mut f),
            [
                (c1.clone(), "#1".into()),
                (c2.clone(), "#2".into()),
                (c3.clone(), "#3".into())
            ],
            "at arrival, without an estimate (no recent waits yet)"
        );
        // Nothing moved: the sweep tells nobody.
        f.fire_until(T0 + 10_000);
        assert!(told(&mut f).is_empty());
        // Ann serves c1: c2 and c3 move up, and are told at the next sweep, not before.
        f.set_state("a1", Presence::Available, None, T0 + 12_000)
            .expect("available");
        f.accept("a1", &c1, T0 + 12_000).expect("accept");
        assert!(told(&mut f).is_empty());
        f.fire_until(T0 + 20_000);
        assert_eq!(told(&mut f), [(c2.clone(), "#1".into()), (c3.clone(), "#2".into())]);
        assert!(
            f.take_changes()
                .iter()
                .any(|c| matches!(c, Change::Message { message, .. } if message.text == "#1")),
            "in the transcript"
        );
        // Told messages never change routing: c2 still waits (Ann is busy).
        assert_eq!(f.conversation(&c2).map(|c| c.state), Some(ConversationState::Queued));
    }

    #[test]
    fn an_estimate_comes_from_the_queues_recent_waits() {
        let mut f = floor();
        f.set_state("a1", Presence::Available, None, T0).expect("available");
        // MIN_WAITS conversations served after waiting 4 minutes each.
        let mut now = T0;
        for i in 0..MIN_WAITS {
            let c = f.customer_writes(&format!("old{i}"), now);
            let at = now + 240_000;
            f.accept("a1", &c, at).expect("accept");
            f.end("a1", &c, at).expect("end");
            f.execute(
                Command::Wrapup {
                    agent: "a1".into(),
                    conversation: c,
                    reason: "resolved".into(),
                },
                at,
            )
            .expect("wrapup");
            f.set_state("a1", Presence::Idle, None, at).expect("idle");
            now = at + 1;
            f.set_state("a1", Presence::Available, None, now).expect("available");
        }
        f.set_state("a1", Presence::Idle, None, now).expect("idle");
        told(&mut f);
        let c = f.customer_writes("new", now);
        assert_eq!(told(&mut f), [(c.clone(), "#1, ~4 min".into())]);
        // The estimate falls as the customer waits: told again each time it moved by
        // the step (a minute), at the sweeps (every 10 s) at 60 s and 120 s.
        f.fire_until(now + 130_000);
        assert_eq!(
            told(&mut f),
            [(c.clone(), "#1, ~3 min".into()), (c, "#1, ~2 min".into())]
        );
    }

    #[test]
    fn bad_settings_change_nothing_and_none_can_be_removed() {
        let mut f = floor();
        let mut bad = settings();
        bad.min_interval_ms = 1;
        let r = f.execute(
            Command::UpdateQueue {
                queue: "q".into(),
                hours: None,
                survey: None,
                wait_limit: None,
                service_level_ms: None,
                place_updates: Some(Some(bad)),
                overflow: None,
            },
            T0,
        );
        assert_eq!(r.map(|_| ()).unwrap_err().code(), "invalid_input");
        assert_eq!(f.queue("q").and_then(|q| q.place_updates.as_deref()), Some(&settings()));
        match f.execute(
            Command::UpdateQueue {
                queue: "q".into(),
                hours: None,
                survey: None,
                wait_limit: None,
                service_level_ms: None,
                place_updates: Some(None),
                overflow: None,
            },
            T0,
        ) {
            Ok(Reply::Queue(q)) => assert!(q.place_updates.is_none()),
            other => panic!("{other:?}"),
        }
        f.customer_writes("u1", T0);
        assert!(told(&mut f).is_empty(), "removed: nobody is told");
    }
}
