//! Recovery: a floor rebuilt from what the store holds.

use super::*;

impl Floor {
    /// Rebuilds a floor from stored records. Pending offers are made again to the same
    /// agent with a fresh deadline (../shared/SPEC.md), or kept with their own deadline
    /// under [`Rules::offers_keep_deadlines`] (a cluster's new owner); automatic wrap-up
    /// timers keep their stored deadlines. Routing then runs, so recovered state at rest keeps invariant 4.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        rules: Rules,
        queues: Vec<Queue>,
        entry_points: Vec<EntryPoint>,
        agents: Vec<Agent>,
        conversations: Vec<Conversation>,
        counters: (u64, u64, u64),
        now: Millis,
    ) -> Floor {
        let mut f = Floor::new(rules);
        f.next_conversation = counters.0.max(1);
        f.next_offer = counters.1.max(1);
        f.next_arrival = counters.2.max(1);
        for q in &queues {
            f.index.add_queue(&q.id);
        }
        for q in queues {
            f.queues.insert(q.id.clone(), q);
        }
        for ep in entry_points {
            f.entry_points.insert(ep.id.clone(), ep);
        }
        for a in agents {
            for c in a.wrapups.keys() {
                *f.owed.entry(c.clone()).or_default() += 1;
            }
            f.journal.effect(Effect::Observe(Observation::AgentAdded {
                agent: a.id.clone(),
                presence: a.presence,
            }));
            f.agents.insert(a.id.clone(), a);
        }
        let mut ids: Vec<_> = Vec::with_capacity(conversations.len());
        for c in conversations {
            // Counters are written in the same batch as the conversation, but be safe.
            if let Some(n) = c.id.strip_prefix("c-").and_then(|n| n.parse::<u64>().ok()) {
                f.next_conversation = f.next_conversation.max(n + 1);
            }
            f.next_arrival = f.next_arrival.max(c.arrival + 1);
            if let Some(o) = &c.offer {
                f.next_offer = f.next_offer.max(o.id + 1);
            }
            // A finished conversation stays in the store only (the stores skip them when
            // they can; this catches the rest).
            if f.is_finished(&c) {
                continue;
            }
            ids.push(c.id.clone());
            if c.is_open() {
                if let Some(ep) = &c.entry_point {
                    f.open_by_customer
                        .insert((ep.clone(), c.customer.id.clone()), c.id.clone());
                }
            }
            f.conversations.insert(c.id.clone(), Box::new(c));
        }
        ids.sort();
        // Agents are indexed before the queued conversations, so that the groups those
        // make find the eligible agents; configured steps are pinned first.
        let agent_ids: Vec<_> = {
            let mut v: Vec<_> = f.agents.keys().cloned().collect();
            v.sort();
            v
        };
        for id in &agent_ids {
            f.reindex(id);
        }
        let pins: Vec<(QueueId, Vec<Step>)> = f
            .queues
            .values()
            .map(|q| (q.id.clone(), q.routing_steps.clone()))
            .chain(
                f.entry_points
                    .values()
                    .map(|e| (e.queue.clone(), e.routing_steps.clone())),
            )
            .collect();
        for (q, steps) in pins {
            f.pin_steps(&q, &steps);
        }
        for id in &ids {
            let c = &f.conversations[id];
            match c.state {
                // A conversation that should have moved on while the engine was down
                // moves on now (enqueue files it under its step at `now`).
                ConversationState::Queued => f.enqueue(id, now),
                ConversationState::Offered if steps_apply(c) => {
                    f.update_step(id, now);
                    f.arm_routing_deadline(id);
                }
                ConversationState::Offered => {}
                ConversationState::Active => f.arm_inactivity(id),
                ConversationState::Ended => {}
            }
        }
        // Re-offer pending offers with a fresh deadline, in a stable order (or keep them,
        // re-armed at their own deadline).
        for id in &ids {
            let Some(o) = f.conversations[id].offer.clone() else {
                continue;
            };
            if f.rules.offers_keep_deadlines {
                f.notify_offer(id, &o);
                continue;
            }
            let timeout = f.timeout(o.kind);
            let offer_id = f.next_offer;
            f.next_offer += 1;
            f.journal.counters_changed();
            let fresh = Offer {
                id: offer_id,
                offered_at: now,
                expires_at: now.saturating_add(timeout),
                ..o
            };
            if let Some(c) = f.conversations.get_mut(id) {
                c.offer = Some(fresh.clone());
            }
            f.journal.conversation_changed(id);
            f.notify_offer(id, &fresh);
        }
        for id in &agent_ids {
            f.touched_agents.push(id.clone());
            let owed: Vec<ConversationId> = f.agents[id].wrapups.keys().cloned().collect();
            for conversation in owed {
                f.arm_wrapup(id, &conversation);
            }
        }
        f.touched_conversations.extend(ids);
        f.route(now);
        // Place-in-line sweeps start again (what each customer was told is not stored).
        let queue_ids: Vec<QueueId> = f.queues.keys().cloned().collect();
        for q in queue_ids {
            f.arm_place_sweep(&q, now);
        }
        f
    }
}
