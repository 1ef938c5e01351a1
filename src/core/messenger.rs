//! The Messenger channel's rules: the 24-hour messaging window, the Send API's text
//! limit, message ids seen before, delivery and read marks, and the outbox's reports.
//!
//! Pure like the rest of the core: the webhook (`channels::messenger`) turns Meta's
//! payloads into [`Command`](super::Command)s, the outbox sender reports what the Send API
//! answered, and the rules here decide what changes.

use super::conversation::*;
use super::error::CoreError;
use super::event::*;
use super::floor::Floor;
use super::routing::{LastOwner, Opening};
use super::{ConversationId, Millis};

/// The Send API's longest text, in characters.
pub const SEND_TEXT_LIMIT: usize = 2_000;
/// `RESPONSE` is allowed this long after the customer's last message.
pub const WINDOW_MS: Millis = 24 * 60 * 60 * 1000;
/// The `HUMAN_AGENT` tag is allowed this long after the customer's last message.
pub const HUMAN_AGENT_MS: Millis = 7 * WINDOW_MS;

/// How a message may be sent to a Messenger customer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// `messaging_type: RESPONSE`.
    Response,
    /// `messaging_type: MESSAGE_TAG`, `tag: HUMAN_AGENT`.
    HumanAgentTag,
    /// Not at all: the Send API would refuse it.
    Closed,
}

/// The window at `now` for a customer who last wrote at `last_customer` (`None`: never,
/// which a Messenger conversation cannot be, so the window is open from its start).
pub fn window(last_customer: Option<Millis>, now: Millis, human_agent_tag: bool) -> Window {
    let Some(last) = last_customer else {
        return Window::Response;
    };
    let since = now.saturating_sub(last);
    if since <= WINDOW_MS {
        Window::Response
    } else if human_agent_tag && since <= HUMAN_AGENT_MS {
        Window::HumanAgentTag
    } else {
        Window::Closed
    }
}

/// `text` in parts of at most `limit` characters, cut at whitespace where there is some
/// (a word longer than `limit` is cut where it must be). The parts, joined, give back the
/// text less the whitespace at the cuts; no part is empty.
pub fn split_text(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if rest.chars().count() <= limit {
            parts.push(rest.to_string());
            break;
        }
        // Byte offset just past `limit` characters.
        let end = rest.char_indices().nth(limit).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..end];
        // The last whitespace within the limit (a cut right after `limit` characters at a
        // space is fine too: the space is dropped).
        let after_limit_is_space = rest[end..].starts_with(char::is_whitespace);
        let cut = if after_limit_is_space {
            end
        } else {
            match window.rfind(char::is_whitespace) {
                Some(i) if i > 0 => i,
                _ => end,
            }
        };
        parts.push(rest[..cut].trim_end().to_string());
        rest = rest[cut..].trim_start();
    }
    parts
}

/// The name a Messenger customer has until the User Profile API gives the real one:
/// stable for a PSID ("Messenger user 4321", from its last four characters).
pub fn placeholder_name(psid: &str) -> String {
    let tail: String = {
        let chars: Vec<char> = psid.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    };
    format!("Messenger user {tail}")
}

impl Floor {
    /// The entry point of Facebook Page `page_id`.
    pub(super) fn entry_point_of_page(&self, page_id: &str) -> Result<String, CoreError> {
        self.entry_points()
            .find(|e| e.page_id.as_deref() == Some(page_id))
            .map(|e| e.id.clone())
            .ok_or_else(|| CoreError::UnknownPage(page_id.into()))
    }

    /// A customer's message (or postback) on a Facebook Page: opens or joins the
    /// customer's conversation on the page's entry point. `seen` says the message id was
    /// taken in before (the shell looks it up in the store); then nothing changes and the
    /// answer is `None`. A new `mid` is recorded with the message, in the same commit.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn messenger_message(
        &mut self,
        page_id: &str,
        customer: Customer,
        text: &str,
        attachments: Vec<Attachment>,
        mid: Option<String>,
        seen: bool,
        last_owner: Option<LastOwner>,
        now: Millis,
    ) -> Result<Option<ConversationId>, CoreError> {
        let entry_point = self.entry_point_of_page(page_id)?;
        if seen {
            return Ok(None);
        }
        if text.is_empty() && attachments.is_empty() {
            return Err(CoreError::InvalidInput("a message needs text or attachments".into()));
        }
        let open = Opening {
            last_owner,
            ..Opening::default()
        };
        let arrival =
            self.customer_message_with(&entry_point, customer, text, attachments, Channel::Messenger, open, now)?;
        if let Some(mid) = mid {
            self.journal().change(Change::Mid { mid, at: now });
        }
        Ok(Some(arrival.conversation))
    }

    /// Messenger's delivery (`read: false`) or read mark for `customer` on `page_id`:
    /// every outbound message of the customer's open conversation sent at or before
    /// `watermark` is delivered (read). A mark for no open conversation changes nothing.
    pub(crate) fn messenger_mark(
        &mut self,
        page_id: &str,
        customer: &str,
        watermark: Millis,
        read: bool,
    ) -> Result<(), CoreError> {
        let entry_point = self.entry_point_of_page(page_id)?;
        let Some(id) = self.open_conversation_of(&entry_point, customer).cloned() else {
            return Ok(());
        };
        let to = if read { Delivery::Read } else { Delivery::Delivered };
        let Some(c) = self.conversation(&id) else {
            return Ok(());
        };
        let seqs: Vec<u64> = c
            .transcript
            .iter()
            .filter(|m| {
                m.at <= watermark
                    && m.delivery
                        .is_some_and(|d| d != Delivery::Failed && d.rank() < to.rank())
            })
            .map(|m| m.seq)
            .collect();
        for seq in seqs {
            self.set_delivery(&id, seq, to, None);
        }
        Ok(())
    }

    /// The outbox sender's report on message `seq` of `conversation`. The outbox entry is
    /// rewritten (progress) or removed (sent, failed); the message's delivery state moves
    /// forward, if the floor still holds the conversation (a finished one keeps the state
    /// it had, see docs/DECISIONS.md).
    pub(crate) fn outbox_report(
        &mut self,
        conversation: &str,
        seq: u64,
        outcome: OutboxOutcome,
        progress: Option<Outbound>,
    ) -> Result<(), CoreError> {
        match outcome {
            OutboxOutcome::Progress { parts_sent } => {
                if let Some(mut o) = progress {
                    o.parts_sent = parts_sent;
                    self.journal().change(Change::Outbox(o));
                }
            }
            OutboxOutcome::Sent => {
                self.journal().change(Change::OutboxDone {
                    conversation: conversation.into(),
                    seq,
                });
                self.set_delivery(conversation, seq, Delivery::Sent, None);
            }
            OutboxOutcome::Failed { error } => {
                self.journal().change(Change::OutboxDone {
                    conversation: conversation.into(),
                    seq,
                });
                self.set_delivery(conversation, seq, Delivery::Failed, Some(error));
            }
        }
        Ok(())
    }

    /// The User Profile API named the customer `customer` of `page_id`: the name is kept
    /// for the next conversations, and the open conversation takes it.
    pub(crate) fn set_customer_name(&mut self, page_id: &str, customer: &str, name: &str) -> Result<(), CoreError> {
        let entry_point = self.entry_point_of_page(page_id)?;
        let name: String = name.chars().take(super::MAX_NAME_CHARS).collect();
        if name.trim().is_empty() {
            return Err(CoreError::InvalidInput("customer name must not be empty".into()));
        }
        self.journal().change(Change::CustomerName {
            page_id: page_id.into(),
            customer: customer.into(),
            name: name.clone(),
        });
        let Some(id) = self.open_conversation_of(&entry_point, customer).cloned() else {
            return Ok(());
        };
        if let Some(c) = self.conversation_mut(&id) {
            c.customer.name = name;
        }
        self.conversation_changed(&id);
        Ok(())
    }

    /// The outbox entries found in the store at start: each is handed to its channel
    /// again ([`Effect::Send`]), in the order given (by conversation, then seq).
    pub fn resume_outbox(&mut self, entries: Vec<Outbound>) {
        self.journal().effects(entries.into_iter().map(Effect::Send));
    }

    /// Moves message `seq`'s delivery state forward to `to` (never back), makes it
    /// durable and tells the agents in the conversation.
    fn set_delivery(&mut self, conversation: &str, seq: u64, to: Delivery, error: Option<String>) {
        let Some(c) = self.conversation_mut(conversation) else {
            return;
        };
        let Some(m) = seq.checked_sub(1).and_then(|i| c.transcript.get_mut(i as usize)) else {
            return;
        };
        let Some(from) = m.delivery else {
            return;
        };
        if from == Delivery::Failed || to.rank() <= from.rank() {
            return;
        }
        m.delivery = Some(to);
        m.delivery_error = error.clone();
        let message = m.clone();
        let participants: Vec<_> = c.participants().cloned().collect();
        self.journal().change(Change::MessageUpdate {
            conversation: conversation.into(),
            message,
        });
        for agent in participants {
            self.journal().effect(Effect::Notify {
                agent,
                event: AgentEvent::MessageStatus {
                    conversation: conversation.into(),
                    seq,
                    delivery: to,
                    delivery_error: error.clone(),
                },
            });
        }
    }

    /// The outbox entry of an agent or system message to a Messenger customer, deciding
    /// the window now: `None` (and the message marked failed) when it cannot be sent.
    pub(super) fn outbound(&self, c: &Conversation, message: &mut Message, now: Millis) -> Option<Outbound> {
        let ep = c.entry_point.as_ref().and_then(|e| self.entry_point(e));
        let page = ep.and_then(|e| Some((e.page_id.clone()?, e.page_access_token.clone()?)));
        let w = window(c.last_customer_message_at(), now, self.rules().human_agent_tag);
        let refuse = |message: &mut Message, why: &str| {
            message.delivery = Some(Delivery::Failed);
            message.delivery_error = Some(why.into());
            None
        };
        let Some((page_id, token)) = page else {
            return refuse(message, "the entry point has no page id or page access token");
        };
        if w == Window::Closed {
            return refuse(message, "outside the messaging window");
        }
        message.delivery = Some(Delivery::Pending);
        Some(Outbound {
            conversation: c.id.clone(),
            seq: message.seq,
            recipient: c.customer.id.clone(),
            page_id,
            page_access_token: token,
            parts: split_text(&message.text, SEND_TEXT_LIMIT),
            parts_sent: 0,
            human_agent_tag: w == Window::HumanAgentTag,
            queued_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Command, EntryPoint, Presence, Reply, Rules};

    const T0: Millis = 1_700_000_000_000;
    const PAGE: &str = "page-1";
    const H: Millis = 60 * 60 * 1000;

    /// A floor with a Messenger entry point (page `PAGE`, with a token), a queue and an
    /// available agent `a1`.
    fn floor(human_agent_tag: bool) -> Floor {
        let mut f = Floor::new(Rules {
            human_agent_tag,
            ..Rules::default()
        });
        let run = |f: &mut Floor, c: Command| f.execute(c, T0).expect("setup");
        run(
            &mut f,
            Command::CreateQueue {
                id: "q".into(),
                name: "Q".into(),
                routing_steps: Vec::new(),
            },
        );
        run(
            &mut f,
            Command::CreateEntryPoint(EntryPoint {
                id: "ep".into(),
                name: "Acme Page".into(),
                queue: "q".into(),
                page_id: Some(PAGE.into()),
                page_access_token: Some("page-token".into()),

                ..Default::default()
            }),
        );
        run(
            &mut f,
            Command::CreateAgent {
                id: "a1".into(),
                name: "Ann".into(),
                queues: vec!["q".into()],
                capacity: None,
                credential: None,
                password_hash: None,

                skills: Default::default(),
            },
        );
        run(
            &mut f,
            Command::SetState {
                agent: "a1".into(),
                state: Presence::Available,
                idle_code: None,
            },
        );
        f.take_changes();
        f.take_effects();
        f
    }

    fn customer_writes(
        f: &mut Floor,
        text: &str,
        attachments: Vec<Attachment>,
        mid: &str,
        seen: bool,
        now: Millis,
    ) -> Result<Reply, CoreError> {
        f.execute(
            Command::MessengerMessage {
                page_id: PAGE.into(),
                customer: Customer {
                    id: "psid-1".into(),
                    name: placeholder_name("psid-1"),
                },
                text: text.into(),
                attachments,
                mid: Some(mid.into()),
                seen,
                last_owner: None,
            },
            now,
        )
    }

    /// The customer writes, `a1` accepts; returns the conversation id.
    fn active(f: &mut Floor) -> String {
        let c = match customer_writes(f, "hello", vec![], "m-1", false, T0) {
            Ok(Reply::Conversation(c)) => c.id,
            other => panic!("{other:?}"),
        };
        f.execute(
            Command::Accept {
                agent: "a1".into(),
                conversation: c.clone(),
            },
            T0,
        )
        .expect("accept");
        f.take_changes();
        f.take_effects();
        c
    }

    fn delivery(f: &Floor, c: &str, seq: u64) -> Option<Delivery> {
        f.conversation(c)
            .and_then(|c| c.transcript.get(seq as usize - 1))
            .and_then(|m| m.delivery)
    }

    #[test]
    fn a_message_id_seen_before_changes_nothing() {
        let mut f = floor(false);
        let r = customer_writes(&mut f, "hi", vec![], "m-1", false, T0).unwrap();
        assert!(
            matches!(r, Reply::Conversation(ref c) if c.channel == Channel::Messenger && c.source_page == "Acme Page")
        );
        assert!(f
            .take_changes()
            .iter()
            .any(|c| matches!(c, Change::Mid { mid, .. } if mid == "m-1")));
        f.take_effects();
        assert!(matches!(
            customer_writes(&mut f, "hi", vec![], "m-1", true, T0),
            Ok(Reply::Done)
        ));
        assert!(f.take_changes().is_empty());
        assert!(f.take_effects().is_empty());
    }

    #[test]
    fn customer_messages_table() {
        let image = || {
            vec![Attachment {
                kind: "image".into(),
                url: Some("https://cdn/x.png".into()),
            }]
        };
        // (text, attachments, expected error code or None)
        let cases: Vec<(&str, Vec<Attachment>, Option<&str>)> = vec![
            ("hi", vec![], None),
            ("", image(), None),
            ("look", image(), None),
            ("", vec![], Some("invalid_input")),
        ];
        for (text, attachments, want) in cases {
            let mut f = floor(false);
            let r = customer_writes(&mut f, text, attachments.clone(), "m", false, T0);
            match (r, want) {
                (Ok(Reply::Conversation(c)), None) => {
                    let m = &c.transcript[0];
                    assert_eq!((m.text.as_str(), &m.attachments), (text, &attachments));
                    assert_eq!(m.delivery, None, "customer messages have no delivery state");
                }
                (Err(e), Some(code)) => assert_eq!(e.code(), code),
                (other, _) => panic!("{text:?}: {other:?}"),
            }
        }
        let mut f = floor(false);
        let unknown = f.execute(
            Command::MessengerMark {
                page_id: "nope".into(),
                customer: "psid-1".into(),
                watermark: T0,
                read: false,
            },
            T0,
        );
        assert_eq!(unknown.unwrap_err().code(), "unknown_page");
    }

    #[test]
    fn an_agent_reply_goes_to_the_outbox_by_the_window_rule() {
        // (hours since the customer wrote, human_agent_tag, expected)
        let cases = [
            (1, false, Ok(false)),
            (25, false, Err("outside_messaging_window")),
            (25, true, Ok(true)),
            (24 * 8, true, Err("outside_messaging_window")),
        ];
        for (hours, tag, want) in cases {
            let mut f = floor(tag);
            let c = active(&mut f);
            let now = T0 + hours * H;
            let long = vec!["word"; 600].join(" "); // 2,999 characters: two parts
            let r = f.execute(
                Command::Send {
                    agent: "a1".into(),
                    conversation: c.clone(),
                    text: long.clone(),
                },
                now,
            );
            match want {
                Ok(tagged) => {
                    let m = match r {
                        Ok(Reply::Message(m)) => m,
                        other => panic!("{hours}h: {other:?}"),
                    };
                    assert_eq!(m.delivery, Some(Delivery::Pending));
                    let changes = f.take_changes();
                    let outbox: Vec<_> = changes
                        .iter()
                        .filter_map(|c| match c {
                            Change::Outbox(o) => Some(o),
                            _ => None,
                        })
                        .collect();
                    assert_eq!(outbox.len(), 1, "{hours}h");
                    let o = outbox[0];
                    assert_eq!(
                        (o.seq, o.recipient.as_str(), o.page_access_token.as_str()),
                        (m.seq, "psid-1", "page-token")
                    );
                    assert_eq!(o.human_agent_tag, tagged);
                    assert_eq!(o.parts.len(), 2);
                    assert!(f.take_effects().iter().any(|e| matches!(e, Effect::Send(s) if s == o)));
                }
                Err(code) => {
                    assert_eq!(r.unwrap_err().code(), code, "{hours}h");
                    assert!(f.take_changes().is_empty());
                }
            }
        }
    }

    #[test]
    fn delivery_moves_forward_only_and_tells_the_agents() {
        let mut f = floor(false);
        let c = active(&mut f);
        let send = |f: &mut Floor, text: &str, at: Millis| match f.execute(
            Command::Send {
                agent: "a1".into(),
                conversation: c.clone(),
                text: text.into(),
            },
            at,
        ) {
            Ok(Reply::Message(m)) => m,
            other => panic!("{other:?}"),
        };
        let first = send(&mut f, "one", T0 + 10);
        let second = send(&mut f, "two", T0 + 20);
        let entry = |m: &Message| Outbound {
            conversation: c.clone(),
            seq: m.seq,
            recipient: "psid-1".into(),
            page_id: PAGE.into(),
            page_access_token: "page-token".into(),
            parts: vec![m.text.clone()],
            parts_sent: 0,
            human_agent_tag: false,
            queued_at: m.at,
        };
        f.take_changes();
        f.take_effects();
        let report = |f: &mut Floor, m: &Message, outcome: OutboxOutcome| {
            f.execute(
                Command::OutboxReport {
                    entry: entry(m),
                    outcome,
                },
                T0 + 30,
            )
            .unwrap();
        };
        let mark = |f: &mut Floor, watermark: Millis, read: bool| {
            f.execute(
                Command::MessengerMark {
                    page_id: PAGE.into(),
                    customer: "psid-1".into(),
                    watermark,
                    read,
                },
                T0 + 40,
            )
            .unwrap();
        };
        report(&mut f, &first, OutboxOutcome::Sent);
        let changes = f.take_changes();
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::OutboxDone { seq, .. } if *seq == first.seq)));
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::MessageUpdate { message, .. } if message.delivery == Some(Delivery::Sent))));
        assert!(f.take_effects().iter().any(|e| matches!(e,
            Effect::Notify { agent, event: AgentEvent::MessageStatus { seq, delivery: Delivery::Sent, .. } } if agent == "a1" && *seq == first.seq)));
        // A watermark between the two messages marks only the first.
        mark(&mut f, T0 + 15, false);
        assert_eq!(delivery(&f, &c, first.seq), Some(Delivery::Delivered));
        assert_eq!(delivery(&f, &c, second.seq), Some(Delivery::Pending));
        mark(&mut f, T0 + 25, true);
        assert_eq!(delivery(&f, &c, first.seq), Some(Delivery::Read));
        assert_eq!(delivery(&f, &c, second.seq), Some(Delivery::Read));
        // A late `sent` does not take back `read`, and a read message cannot fail.
        f.take_changes();
        report(&mut f, &second, OutboxOutcome::Sent);
        assert_eq!(delivery(&f, &c, second.seq), Some(Delivery::Read));
        assert!(!f
            .take_changes()
            .iter()
            .any(|c| matches!(c, Change::MessageUpdate { .. })));
        // A final failure is kept with its error.
        let third = send(&mut f, "three", T0 + 50);
        report(
            &mut f,
            &third,
            OutboxOutcome::Failed {
                error: "bad token".into(),
            },
        );
        let m = &f.conversation(&c).unwrap().transcript[third.seq as usize - 1];
        assert_eq!(
            (m.delivery, m.delivery_error.as_deref()),
            (Some(Delivery::Failed), Some("bad token"))
        );
    }

    #[test]
    fn a_name_that_arrives_later_updates_the_open_conversation() {
        let mut f = floor(false);
        let c = active(&mut f);
        f.execute(
            Command::SetCustomerName {
                page_id: PAGE.into(),
                customer: "psid-1".into(),
                name: "Jane Doe".into(),
            },
            T0,
        )
        .unwrap();
        assert_eq!(f.conversation(&c).unwrap().customer.name, "Jane Doe");
        let changes = f.take_changes();
        assert!(changes
            .iter()
            .any(|ch| matches!(ch, Change::CustomerName { name, .. } if name == "Jane Doe")));
        assert!(changes
            .iter()
            .any(|ch| matches!(ch, Change::Conversation(conv) if conv.customer.name == "Jane Doe")));
    }

    #[test]
    fn the_window_decides_response_tag_or_refusal() {
        const H: Millis = 60 * 60 * 1000;
        let t0 = 1_000 * H;
        let cases = [
            // (last customer message, now, tag on, expected)
            (None, t0, false, Window::Response),
            (Some(t0), t0, false, Window::Response),
            (Some(t0), t0 + 24 * H, false, Window::Response),
            (Some(t0), t0 + 24 * H + 1, false, Window::Closed),
            (Some(t0), t0 + 24 * H + 1, true, Window::HumanAgentTag),
            (Some(t0), t0 + 7 * 24 * H, true, Window::HumanAgentTag),
            (Some(t0), t0 + 7 * 24 * H + 1, true, Window::Closed),
        ];
        for (last, now, tag, want) in cases {
            assert_eq!(window(last, now, tag), want, "{last:?} {now} {tag}");
        }
    }

    #[test]
    fn long_texts_split_at_whitespace_in_order() {
        let word = "abcd";
        let cases: Vec<(String, usize, Vec<String>)> = vec![
            ("hello".into(), 10, vec!["hello".into()]),
            ("".into(), 10, vec![]),
            ("aaa bbb ccc".into(), 7, vec!["aaa bbb".into(), "ccc".into()]),
            ("aaa bbb ccc".into(), 8, vec!["aaa bbb".into(), "ccc".into()]),
            ("aaaaaaaaaa".into(), 4, vec!["aaaa".into(), "aaaa".into(), "aa".into()]),
            ("é é é".into(), 3, vec!["é é".into(), "é".into()]),
        ];
        for (text, limit, want) in cases {
            assert_eq!(split_text(&text, limit), want, "{text:?} at {limit}");
        }
        let long = vec![word; 1_000].join(" "); // 4,999 characters
        let parts = split_text(&long, SEND_TEXT_LIMIT);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= SEND_TEXT_LIMIT));
        assert_eq!(parts.join(" "), long);
    }

    #[test]
    fn placeholders_are_stable_per_customer() {
        assert_eq!(placeholder_name("1254459154682919"), "Messenger user 2919");
        assert_eq!(placeholder_name("12"), "Messenger user 12");
    }
}
