//! Internal notes (issue 26 item 5): what agents write for each other in a conversation.
//!
//! A note is a transcript entry of its own kind: an agent's message with `internal`
//! set. It is kept, numbered and delivered to the agents in the conversation like any
//! message, and never reaches the customer: [`Floor::append_note`] makes no outbox
//! entry and no [`Effect::Deliver`], and the customer's own view leaves it out
//! ([`Message::for_customer`]). A transfer or a conference request may carry a note
//! too ([`handoff_note`]): it joins the transcript as a note and shows in the offers of
//! the conversation until an agent accepts one ([`Conversation::handoff_note`]).

use super::*;

/// Longest note a transfer or a conference request may carry, in characters: it shows
/// in the receiving agent's offer popover, which is no place for a transcript.
pub const MAX_HANDOFF_NOTE_CHARS: usize = 1_000;

/// The note a transfer or a conference request carries: `None` or an empty (or
/// all-whitespace) one is no note; one over [`MAX_HANDOFF_NOTE_CHARS`] characters is
/// refused (`note_too_long`), counted as given. The note is kept without its outer
/// whitespace.
pub fn handoff_note(note: Option<String>) -> Result<Option<String>, CoreError> {
    let Some(note) = note else { return Ok(None) };
    // The bound is on the note as given (as the OpenAPI description's `maxLength` says).
    if note.chars().count() > MAX_HANDOFF_NOTE_CHARS {
        return Err(CoreError::NoteTooLong {
            max: MAX_HANDOFF_NOTE_CHARS,
        });
    }
    let trimmed = note.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

impl Floor {
    /// `agent` adds an internal note to `conversation`: allowed to the agents in it while
    /// it is active (owner and guest) and to an agent that owes its wrap-up (a note on
    /// how it ended). No Messenger window applies: nothing is sent.
    pub(crate) fn add_note(
        &mut self,
        agent: &str,
        conversation: &str,
        text: &str,
        now: Millis,
    ) -> Result<Message, CoreError> {
        check_text(text)?;
        let a = self.agent_ref(agent)?;
        let (name, owes) = (a.name.clone(), a.wrapups.contains_key(conversation));
        let c = self
            .conversations
            .get(conversation)
            .ok_or_else(|| CoreError::UnknownConversation(conversation.into()))?;
        let in_it = c.state == ConversationState::Active && c.participants().any(|p| p == agent);
        if !in_it && !owes {
            return Err(if c.is_open() {
                CoreError::NotInConversation {
                    conversation: conversation.into(),
                    agent: agent.into(),
                }
            } else {
                CoreError::ConversationEnded(conversation.into())
            });
        }
        Ok(self.append_note(conversation, agent, name, text, now))
    }

    /// Appends an internal note by `agent` (named `name`): durable with the transcript,
    /// told to the agents in the conversation and to its author, sent to no customer.
    pub(super) fn append_note(
        &mut self,
        conversation: &str,
        agent: &str,
        name: String,
        text: &str,
        now: Millis,
    ) -> Message {
        let author = Author {
            kind: AuthorKind::Agent,
            id: Some(agent.into()),
            name,
        };
        let Some(c) = self.conversations.get_mut(conversation) else {
            // Callers check the conversation first; an empty message is never stored.
            return Message::text(0, author, text, now);
        };
        let mut message = Message::text(c.transcript.len() as u64 + 1, author, text, now);
        message.internal = true;
        c.transcript.push(message.clone());
        let mut told: Vec<AgentId> = c.participants().cloned().collect();
        if !told.iter().any(|p| p == agent) {
            told.push(agent.into());
        }
        self.publish_message(conversation, &message, told);
        message
    }

    /// A transfer or conference request's note (already checked by [`handoff_note`]):
    /// a note in the transcript by the requesting agent, and the conversation's
    /// [`Conversation::handoff_note`], which its offers show until one is accepted. A
    /// request without a note clears an older one.
    pub(super) fn hand_off_note(&mut self, agent: &str, conversation: &str, note: Option<String>, now: Millis) {
        if let Some(text) = &note {
            let name = self.agents.get(agent).map(|a| a.name.clone()).unwrap_or_default();
            self.append_note(conversation, agent, name, text, now);
        }
        if let Some(c) = self.conversations.get_mut(conversation) {
            if c.handoff_note != note {
                c.handoff_note = note;
                self.journal.conversation_changed(conversation);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Account, Reply};

    const T0: Millis = 1_000_000;

    /// Queue q with agents a1, a2 (capacity 1) and a Messenger-less entry point e;
    /// conversation c-1 active with a1.
    fn active() -> (Floor, String) {
        let mut f = Floor::new(Rules::default());
        f.create_queue("q", "Q", Vec::new(), None, None, None).expect("queue");
        f.create_queue("q2", "Q2", Vec::new(), None, None, None).expect("queue");
        f.create_entry_point(EntryPoint {
            id: "e".into(),
            name: "Page".into(),
            queue: "q".into(),
            ..Default::default()
        })
        .expect("entry point");
        for a in ["a1", "a2", "a3"] {
            let qs = vec!["q".to_string(), "q2".to_string()];
            f.create_agent(a, &format!("Agent {a}"), qs, 1, Account::default(), Skills::new(), T0)
                .expect("agent");
        }
        f.set_state("a1", Presence::Available, None, T0).expect("available");
        let c = f
            .customer_message(
                "e",
                Customer {
                    id: "u".into(),
                    name: "Ursula".into(),
                },
                "hello",
                Channel::Rest,
                T0,
            )
            .expect("opened")
            .conversation;
        f.accept("a1", &c, T0).expect("accept");
        for a in ["a2", "a3"] {
            f.set_state(a, Presence::Available, None, T0).expect("available");
        }
        f.take_effects();
        f.take_changes();
        (f, c)
    }

    fn note(agent: &str, c: &str, text: &str) -> Command {
        Command::AddNote {
            agent: agent.into(),
            conversation: c.into(),
            text: text.into(),
        }
    }

    /// What reached a customer's channel (the REST channel's deliveries; Messenger's
    /// outbox entries) since the last take.
    fn to_customer(effects: &[Effect]) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Deliver { .. } | Effect::Send(_)))
            .count()
    }

    #[test]
    fn a_note_is_kept_and_told_to_the_agents_and_never_to_the_customer() {
        let (mut f, c) = active();
        let m = match f.execute(note("a1", &c, "VIP, be nice"), T0 + 1) {
            Ok(Reply::Message(m)) => m,
            other => panic!("unexpected {other:?}"),
        };
        assert!(m.internal && !m.for_customer());
        assert_eq!(
            (m.seq, m.author.kind, m.author.id.as_deref()),
            (2, AuthorKind::Agent, Some("a1"))
        );
        let effects = f.take_effects();
        assert_eq!(to_customer(&effects), 0, "{effects:?}");
        assert!(
            effects.iter().any(|e| matches!(e,
            Effect::Notify { agent, event: AgentEvent::Message { message, .. } } if agent == "a1" && message.internal))
        );
        let changes = f.take_changes();
        assert!(
            changes.iter().any(
                |ch| matches!(ch, Change::Message { message, .. } if message.internal && message.text == "VIP, be nice")
            ),
            "the note is durable like any message: {changes:?}"
        );
        // An ordinary message after it still goes to the customer.
        f.execute(
            Command::Send {
                agent: "a1".into(),
                conversation: c.clone(),
                text: "hi".into(),
            },
            T0 + 2,
        )
        .expect("send");
        assert_eq!(to_customer(&f.take_effects()), 1);
        // A note is not the first agent reply of the record.
        assert_eq!(
            f.conversation(&c).and_then(|c| c.history.first_agent_reply_at),
            Some(T0 + 2)
        );
    }

    #[test]
    fn who_may_add_a_note_and_what_is_refused() {
        let (mut f, c) = active();
        let code = |f: &mut Floor, cmd: Command| f.execute(cmd, T0 + 5).map(|_| "ok").unwrap_or_else(|e| e.code());
        // Table: who, text, outcome, on an active conversation owned by a1.
        for (who, text, expect) in [
            ("a2", "not mine", "not_in_conversation"),
            ("zz", "who?", "unknown_agent"),
            ("a1", "  ", "invalid_input"),
            ("a1", &"n".repeat(crate::core::MAX_TEXT_CHARS + 1), "invalid_input"),
            ("a1", "fine", "ok"),
        ] {
            assert_eq!(code(&mut f, note(who, &c, text)), expect, "{who} {text:.10}");
        }
        assert_eq!(code(&mut f, note("a1", "c-404", "x")), "unknown_conversation");
        // The agent that owes the wrap-up may still note how it ended; no other may.
        f.execute(
            Command::End {
                agent: "a1".into(),
                conversation: c.clone(),
            },
            T0 + 6,
        )
        .expect("end");
        assert_eq!(code(&mut f, note("a1", &c, "refund promised")), "ok");
        assert_eq!(code(&mut f, note("a2", &c, "me too")), "conversation_ended");
        let texts: Vec<(bool, &str)> = f
            .conversation(&c)
            .unwrap()
            .transcript
            .iter()
            .map(|m| (m.internal, m.text.as_str()))
            .collect();
        assert_eq!(texts, [(false, "hello"), (true, "fine"), (true, "refund promised")]);
    }

    #[test]
    fn a_handoff_note_is_bounded_trimmed_and_optional() {
        assert_eq!(handoff_note(None), Ok(None));
        assert_eq!(handoff_note(Some(" \n ".into())), Ok(None));
        assert_eq!(handoff_note(Some("  billing  ".into())), Ok(Some("billing".into())));
        let longest = "é".repeat(MAX_HANDOFF_NOTE_CHARS);
        assert_eq!(
            handoff_note(Some(longest.clone())),
            Ok(Some(longest)),
            "characters, not bytes"
        );
        let err = handoff_note(Some("x".repeat(MAX_HANDOFF_NOTE_CHARS + 1))).unwrap_err();
        assert_eq!(
            (err.code(), err.kind()),
            ("note_too_long", crate::core::ErrorKind::BadRequest)
        );
    }

    #[test]
    fn a_transfer_note_shows_in_the_offer_until_accepted_and_stays_in_the_transcript() {
        let (mut f, c) = active();
        let too_long = Some("x".repeat(MAX_HANDOFF_NOTE_CHARS + 1));
        let refused = f
            .execute(
                Command::transfer("a1".into(), c.clone(), Some("a2".into()), None, too_long).unwrap(),
                T0 + 1,
            )
            .unwrap_err();
        assert_eq!(refused.code(), "note_too_long");
        assert_eq!(
            f.conversation(&c).unwrap().owner.as_deref(),
            Some("a1"),
            "refused: nothing changed"
        );
        assert!(f.take_changes().is_empty());
        f.execute(
            Command::transfer(
                "a1".into(),
                c.clone(),
                Some("a2".into()),
                None,
                Some("wants a refund".into()),
            )
            .unwrap(),
            T0 + 2,
        )
        .expect("transfer");
        let conv = f.conversation(&c).unwrap();
        assert_eq!(conv.handoff_note.as_deref(), Some("wants a refund"));
        let last = conv.transcript.last().unwrap();
        assert!(last.internal && last.author.id.as_deref() == Some("a1") && last.text == "wants a refund");
        let effects = f.take_effects();
        assert_eq!(to_customer(&effects), 0);
        assert!(effects.iter().any(|e| matches!(e,
            Effect::Notify { agent, event: AgentEvent::Offer { conversation, .. } }
                if agent == "a2" && conversation.handoff_note.as_deref() == Some("wants a refund"))));
        f.accept("a2", &c, T0 + 3).expect("accept");
        assert_eq!(
            f.conversation(&c).unwrap().handoff_note,
            None,
            "gone from offers once accepted"
        );
        // A conference request carries its own; one without a note shows none.
        f.execute(
            Command::Conference {
                agent: "a2".into(),
                conversation: c.clone(),
                target: "a3".into(),
                note: Some("second opinion".into()),
            },
            T0 + 4,
        )
        .expect("conference");
        assert_eq!(
            f.conversation(&c).unwrap().handoff_note.as_deref(),
            Some("second opinion")
        );
        assert_eq!(
            f.conversation(&c).unwrap().owner.as_deref(),
            Some("a2"),
            "the owner stays"
        );
    }

    #[test]
    fn a_queue_transfer_note_shows_in_the_next_offer_of_the_queue() {
        let (mut f, c) = active();
        f.set_state("a2", Presence::Idle, None, T0).expect("idle");
        f.execute(
            Command::transfer(
                "a1".into(),
                c.clone(),
                None,
                Some("q2".into()),
                Some("speaks French".into()),
            )
            .unwrap(),
            T0 + 1,
        )
        .expect("transfer");
        let conv = f.conversation(&c).unwrap();
        assert_eq!(conv.offer.as_ref().map(|o| o.agent.as_str()), Some("a3"));
        assert_eq!(conv.handoff_note.as_deref(), Some("speaks French"));
    }
}
