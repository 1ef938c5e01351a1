//! The customer types (issue 26 item 8): the agents in the conversation are told, within
//! a bound on how often, and nothing is made durable (typing is of the moment).
//!
//! An `on` is told when the customer starts, and again at most every
//! [`CUSTOMER_TYPING_REPEAT_MS`] while it goes on; each tells the desktops until when to
//! show it ([`CUSTOMER_TYPING_SHOWN_MS`] later), so a customer whose page went away
//! without a word stops showing as typing. An `off` is told only after an `on`, and a
//! customer's message ends the typing it was (the desktop shows the message instead).

use super::*;

/// An `on` is told again at most this often while the customer keeps typing.
pub const CUSTOMER_TYPING_REPEAT_MS: Millis = 3_000;
/// How long a desktop shows "typing" after an `on`, without news.
pub const CUSTOMER_TYPING_SHOWN_MS: Millis = 6_000;

impl Floor {
    /// The customer of `conversation` types (`on`) or stopped.
    pub(crate) fn customer_typing(&mut self, conversation: &str, on: bool, now: Millis) -> Result<(), CoreError> {
        let c = self.open(conversation)?;
        let participants: Vec<AgentId> = c.participants().cloned().collect();
        if participants.is_empty() {
            // Nobody to tell (still waiting): nothing to remember either.
            self.customer_typing.remove(conversation);
            return Ok(());
        }
        let told = self.customer_typing.get(conversation).copied();
        let tell = match (on, told) {
            (true, Some(at)) => now >= at.saturating_add(CUSTOMER_TYPING_REPEAT_MS),
            (true, None) => true,
            (false, told) => told.is_some(),
        };
        if !tell {
            return Ok(());
        }
        if on {
            self.customer_typing.insert(conversation.into(), now);
        } else {
            self.customer_typing.remove(conversation);
        }
        let until = on.then(|| now.saturating_add(CUSTOMER_TYPING_SHOWN_MS));
        for agent in participants {
            self.journal.effect(Effect::Notify {
                agent,
                event: AgentEvent::CustomerTyping {
                    conversation: conversation.into(),
                    on,
                    until,
                },
            });
        }
        Ok(())
    }

    /// The customer's message (or the conversation's end) ends its typing.
    pub(super) fn customer_stopped_typing(&mut self, conversation: &str) {
        self.customer_typing.remove(conversation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Account, Reply};

    const T0: Millis = 1_000_000;

    fn floor() -> (Floor, String) {
        let mut f = Floor::new(Rules::default());
        f.create_queue("q", "Q", Vec::new(), None, None, None).expect("queue");
        f.create_entry_point(EntryPoint {
            id: "e".into(),
            name: "Page".into(),
            queue: "q".into(),
            ..Default::default()
        })
        .expect("entry point");
        f.create_agent("a1", "Ann", vec!["q".into()], 1, Account::default(), Skills::new(), T0)
            .expect("agent");
        let c = f
            .customer_message(
                "e",
                Customer {
                    id: "u".into(),
                    name: "U".into(),
                },
                "hello",
                Channel::Rest,
                T0,
            )
            .expect("opened")
            .conversation;
        (f, c)
    }

    /// What the agents were told: `(agent, on, until)`.
    fn told(f: &mut Floor) -> Vec<(String, bool, Option<Millis>)> {
        f.take_effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Notify {
                    agent,
                    event: AgentEvent::CustomerTyping { on, until, .. },
                } => Some((agent, on, until)),
                _ => None,
            })
            .collect()
    }

    fn typing(c: &str, on: bool) -> Command {
        Command::CustomerTyping {
            conversation: c.into(),
            on,
        }
    }

    #[test]
    fn typing_is_told_to_the_agents_bounded_in_rate_and_never_stored() {
        let (mut f, c) = floor();
        // Queued: nobody to tell, and nothing to remember.
        assert!(matches!(f.execute(typing(&c, true), T0), Ok(Reply::Done)));
        assert!(told(&mut f).is_empty());
        f.set_state("a1", Presence::Available, None, T0).expect("available");
        f.accept("a1", &c, T0).expect("accept");
        f.take_effects();
        f.take_changes();
        let a1 = |on, until| vec![("a1".to_string(), on, until)];
        // Table: (time after T0, on, what a1 is told).
        for (dt, on, want) in [
            (0, false, vec![]), // off before any on: nothing
            (10, true, a1(true, Some(T0 + 10 + CUSTOMER_TYPING_SHOWN_MS))),
            (500, true, vec![]), // within the repeat bound
            (
                10 + CUSTOMER_TYPING_REPEAT_MS,
                true,
                a1(
                    true,
                    Some(T0 + 10 + CUSTOMER_TYPING_REPEAT_MS + CUSTOMER_TYPING_SHOWN_MS),
                ),
            ),
            (4_000, false, a1(false, None)),
            (4_100, false, vec![]), // already off
            (4_200, true, a1(true, Some(T0 + 4_200 + CUSTOMER_TYPING_SHOWN_MS))),
        ] {
            f.execute(typing(&c, on), T0 + dt).expect("typing");
            assert_eq!(told(&mut f), want, "at +{dt} on={on}");
        }
        assert!(f.take_changes().is_empty(), "typing is not durable");
        // A customer message ends the typing: the next `on` is told at once.
        f.execute(
            Command::CustomerReply {
                conversation: c.clone(),
                text: "here".into(),
            },
            T0 + 4_300,
        )
        .expect("reply");
        f.take_effects();
        f.execute(typing(&c, true), T0 + 4_400).expect("typing");
        assert_eq!(told(&mut f).len(), 1);
        // Ended: refused like a message would be.
        f.execute(
            Command::CustomerEnd {
                conversation: c.clone(),
            },
            T0 + 5_000,
        )
        .expect("end");
        assert_eq!(
            f.execute(typing(&c, true), T0 + 5_001).unwrap_err().code(),
            "conversation_ended"
        );
        assert_eq!(
            f.execute(typing("c-404", true), T0).unwrap_err().code(),
            "unknown_conversation"
        );
    }
}
