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
    fn entry_point_of_page(&self, page_id: &str) -> Result<String, CoreError> {
        self.entry_points
            .values()
            .find(|e| e.page_id.as_deref() == Some(page_id))
            .map(|e| e.id.clone())
            .ok_or_else(|| CoreError::UnknownPage(page_id.into()))
    }

    /// A customer's message (or postback) on a Facebook Page: opens or joins the
    /// customer's conversation on the page's entry point. `seen` says the message id was
    /// taken in before (the shell looks it up in the store); then nothing changes and the
    /// answer is `None`. A new `mid` is recorded with the message, in the same commit.
    pub(crate) fn messenger_message(
        &mut self,
        page_id: &str,
        customer: Customer,
        text: &str,
        attachments: Vec<Attachment>,
        mid: Option<String>,
        seen: bool,
        now: Millis,
    ) -> Result<Option<ConversationId>, CoreError> {
        let entry_point = self.entry_point_of_page(page_id)?;
        if seen {
            return Ok(None);
        }
        if text.is_empty() && attachments.is_empty() {
            return Err(CoreError::InvalidInput("a message needs text or attachments".into()));
        }
        let arrival = self.customer_message_with(&entry_point, customer, text, attachments, Channel::Messenger, now)?;
        if let Some(mid) = mid {
            self.changes.push(Change::Mid { mid, at: now });
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
        let Some(id) = self.open_by_customer.get(&(entry_point, customer.to_string())).cloned() else {
            return Ok(());
        };
        let to = if read { Delivery::Read } else { Delivery::Delivered };
        let seqs: Vec<u64> = self.conversations[&id]
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
                    self.changes.push(Change::Outbox(o));
                }
            }
            OutboxOutcome::Sent => {
                self.changes.push(Change::OutboxDone {
                    conversation: conversation.into(),
                    seq,
                });
                self.set_delivery(conversation, seq, Delivery::Sent, None);
            }
            OutboxOutcome::Failed { error } => {
                self.changes.push(Change::OutboxDone {
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
        self.changes.push(Change::CustomerName {
            page_id: page_id.into(),
            customer: customer.into(),
            name: name.clone(),
        });
        let Some(id) = self.open_by_customer.get(&(entry_point, customer.to_string())).cloned() else {
            return Ok(());
        };
        if let Some(c) = self.conversations.get_mut(&id) {
            c.customer.name = name;
        }
        self.conversation_changed(&id);
        Ok(())
    }

    /// The outbox entries found in the store at start: each is handed to its channel
    /// again ([`Effect::Send`]), in the order given (by conversation, then seq).
    pub fn resume_outbox(&mut self, entries: Vec<Outbound>) {
        self.effects.extend(entries.into_iter().map(Effect::Send));
    }

    /// Moves message `seq`'s delivery state forward to `to` (never back), makes it
    /// durable and tells the agents in the conversation.
    fn set_delivery(&mut self, conversation: &str, seq: u64, to: Delivery, error: Option<String>) {
        let Some(c) = self.conversations.get_mut(conversation) else {
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
        self.changes.push(Change::MessageUpdate {
            conversation: conversation.into(),
            message,
        });
        for agent in participants {
            self.effects.push(Effect::Notify {
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
        let ep = c.entry_point.as_ref().and_then(|e| self.entry_points.get(e));
        let page = ep.and_then(|e| Some((e.page_id.clone()?, e.page_access_token.clone()?)));
        let w = window(c.last_customer_message_at(), now, self.rules.human_agent_tag);
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
