//! Satisfaction (issue 26 item 7) on the floor: a queue's [`Survey`] asked at the end of
//! a served conversation, the pending survey of each customer and entry point (durable,
//! with a deadline of its own), and the customer's answer, which the rules of
//! `core/survey.rs` tell from any other message.
//!
//! A pending survey outlives the conversation on the floor: the conversation is complete
//! (and leaves) once its wrap-ups are in, usually before the customer answers. The answer
//! then goes into its stored transcript at the seq the pending survey noted when the
//! conversation left ([`PendingSurvey::next_seq`]), and the rating into the store beside
//! the conversation's record, whichever of the two is written first.

use super::*;
use crate::core::survey::{self, PendingSurvey, Satisfaction, Survey};

/// A customer on an entry point: who a pending survey waits for.
type SurveyKey = (EntryPointId, String);

impl Floor {
    /// Sets (or with `None` removes) queue `id`'s survey; checked first. Questions asked
    /// already stay pending.
    pub(crate) fn set_survey(&mut self, id: &str, s: Option<Arc<Survey>>) -> Result<(), CoreError> {
        if let Some(s) = &s {
            s.check()?;
        }
        let q = self
            .queues
            .get_mut(id)
            .ok_or_else(|| CoreError::UnknownQueue(id.into()))?;
        q.survey = s;
        let record = q.record();
        self.journal.change(Change::Queue(record));
        Ok(())
    }

    /// The survey pending for `customer` on `entry_point`, if any.
    pub fn pending_survey(&self, entry_point: &str, customer: &str) -> Option<&PendingSurvey> {
        self.surveys.get(&(entry_point.to_string(), customer.to_string()))
    }

    /// Every pending survey (for the simulation's checks and tests).
    pub fn pending_surveys(&self) -> impl Iterator<Item = &PendingSurvey> {
        self.surveys.values()
    }

    /// Conversation `id` is about to end for `reason`: its customer is asked for a rating
    /// if the rule says so ([`survey::asked`]) and its queue has a survey. The question is
    /// the conversation's last message, written before the end so that it reaches the
    /// customer's channel with the rest of the chat. A question that cannot reach the
    /// customer (a Messenger window closed, a page without a token) leaves no survey
    /// pending: an answer could not come.
    pub(super) fn ask_survey(&mut self, id: &str, reason: &str, now: Millis) {
        let Some(c) = self.conversations.get(id) else { return };
        if !survey::asked(c.state == ConversationState::Active, reason) {
            return;
        }
        let Some(s) = self.queues.get(&c.queue).and_then(|q| q.survey.clone()) else {
            return;
        };
        let (Some(entry_point), Some(texts)) = (c.entry_point.clone(), s.texts(c.channel)) else {
            return;
        };
        let mut pending = PendingSurvey {
            conversation: id.into(),
            entry_point,
            customer: c.customer.id.clone(),
            channel: c.channel,
            queue: c.queue.clone(),
            agent: c.owner.clone(),
            arrived_at: c.history.arrived_at,
            asked_at: now,
            expires_at: now.saturating_add(s.window_ms),
            next_seq: 0,
            thanks: texts.thanks.clone(),
        };
        let question = texts.question.clone();
        let message = self.append_message(
            id,
            AuthorKind::System,
            None,
            "system".into(),
            &question,
            Vec::new(),
            survey::rating_replies(),
            now,
        );
        if matches!(message.delivery, Some(Delivery::NotSent | Delivery::Failed)) {
            return;
        }
        pending.next_seq = message.seq + 1;
        self.keep_survey(pending);
    }

    /// Keeps `p` pending (replacing what was pending for its customer) until its window ends.
    fn keep_survey(&mut self, p: PendingSurvey) {
        self.deadlines.arm(
            Timer::Survey {
                entry_point: p.entry_point.clone(),
                customer: p.customer.clone(),
            },
            p.expires_at,
        );
        self.journal.change(Change::Survey {
            entry_point: p.entry_point.clone(),
            customer: p.customer.clone(),
            pending: Some(Box::new(p.clone())),
        });
        self.surveys.insert((p.entry_point.clone(), p.customer.clone()), p);
    }

    /// The survey pending for `key` is gone (answered, dropped or expired).
    fn forget_survey(&mut self, key: &SurveyKey) -> Option<PendingSurvey> {
        let p = self.surveys.remove(key)?;
        self.deadlines.cancel(&Timer::Survey {
            entry_point: key.0.clone(),
            customer: key.1.clone(),
        });
        self.journal.change(Change::Survey {
            entry_point: key.0.clone(),
            customer: key.1.clone(),
            pending: None,
        });
        Some(p)
    }

    /// The end of a survey's window: it is dropped (a stale deadline changes nothing).
    pub fn survey_timer(&mut self, entry_point: &str, customer: &str, now: Millis) {
        let key = (entry_point.to_string(), customer.to_string());
        if self.surveys.get(&key).is_some_and(|p| now >= p.expires_at) {
            self.forget_survey(&key);
        }
    }

    /// A message from a customer with no open conversation on the entry point (`key`):
    /// if a survey is pending for them and the message is its answer, the answer is kept
    /// and thanked, and this is what the message was (`Some`: no conversation opens).
    /// Anything else drops the survey (`None`: the message is handled as any other).
    pub(super) fn survey_answer(
        &mut self,
        key: &SurveyKey,
        customer: &Customer,
        text: &str,
        has_attachments: bool,
        now: Millis,
    ) -> Option<Arrival> {
        let p = self.surveys.get(key)?;
        let rating = if has_attachments { None } else { p.answer(text, now) };
        let p = self.forget_survey(key)?;
        let rating = rating?;
        let satisfaction = Satisfaction { rating, at: now };
        self.journal.change(Change::Satisfaction {
            arrived_at: p.arrived_at,
            conversation: p.conversation.clone(),
            satisfaction,
        });
        self.journal.effect(Effect::Observe(Observation::Rated {
            conversation: p.conversation.clone(),
            queue: p.queue.clone(),
            agent: p.agent.clone(),
            rating,
            at: now,
        }));
        let id = p.conversation.clone();
        let author = (AuthorKind::Customer, Some(customer.id.clone()), customer.name.clone());
        let message = if self.conversations.contains_key(&id) {
            // Still on the floor (a wrap-up owed): the answer and the thanks join its
            // transcript like any message.
            let m = self.append_with(&id, author.0, author.1, author.2, text, Vec::new(), now);
            self.append(&id, AuthorKind::System, None, "system".into(), &p.thanks, now);
            m
        } else {
            self.answer_after_complete(&p, author, text, now)
        };
        Some(Arrival {
            conversation: id,
            opened: false,
            message,
        })
    }

    /// The answer to a survey of a conversation the floor no longer holds (complete): the
    /// answer and the thanks go to its stored transcript at the seqs after its last
    /// message, and the thanks to the customer's channel (on Messenger through the
    /// outbox; a REST customer reads the transcript).
    fn answer_after_complete(
        &mut self,
        p: &PendingSurvey,
        (kind, id, name): (AuthorKind, Option<String>, String),
        text: &str,
        now: Millis,
    ) -> Message {
        let answer = Message::text(p.next_seq, Author { kind, id, name }, text, now);
        let mut thanks = Message::text(
            p.next_seq + 1,
            Author {
                kind: AuthorKind::System,
                id: None,
                name: "system".into(),
            },
            &p.thanks,
            now,
        );
        let outbound = if p.channel == Channel::Messenger {
            // The customer just wrote: the messaging window is open.
            self.outbound_to(&p.conversation, &p.entry_point, &p.customer, &mut thanks, now)
        } else {
            None
        };
        self.publish_message(&p.conversation, &answer, Vec::new());
        self.publish_message(&p.conversation, &thanks, Vec::new());
        if let Some(o) = outbound {
            self.journal.change(Change::Outbox(o.clone()));
            self.journal.effect(Effect::Send(o));
        }
        answer
    }

    /// Conversation `c` leaves the floor (complete): a survey pending for it notes the
    /// seq its answer will take in the stored transcript (messages may have followed the
    /// question: an agent's notes while it owed its wrap-up).
    pub(super) fn survey_outlives(&mut self, c: &Conversation) {
        let Some(ep) = &c.entry_point else { return };
        let key = (ep.clone(), c.customer.id.clone());
        let next_seq = c.transcript.len() as u64 + 1;
        let Some(p) = self.surveys.get_mut(&key) else { return };
        if p.conversation != c.id || p.next_seq == next_seq {
            return;
        }
        p.next_seq = next_seq;
        let p = p.clone();
        self.journal.change(Change::Survey {
            entry_point: p.entry_point.clone(),
            customer: p.customer.clone(),
            pending: Some(Box::new(p)),
        });
    }

    /// Rebuilds the pending surveys from the store (after [`Floor::restore`]); one whose
    /// window ended meanwhile goes at the first [`Floor::fire_due`].
    pub fn restore_surveys(&mut self, pending: Vec<PendingSurvey>) {
        for p in pending {
            self.deadlines.arm(
                Timer::Survey {
                    entry_point: p.entry_point.clone(),
                    customer: p.customer.clone(),
                },
                p.expires_at,
            );
            self.surveys.insert((p.entry_point.clone(), p.customer.clone()), p);
        }
    }
}

#[cfg(test)]
#[path = "survey_tests.rs"]
mod tests;
