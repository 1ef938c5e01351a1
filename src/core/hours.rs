//! Business hours of a queue (docs/API-NOTES.md "Business hours"): weekly opening times
//! in a time zone, dated exceptions (holidays, special openings), and what a customer who
//! writes while the queue is closed gets: a reply, then either a wait in the queue for an
//! agent (`wait`, the default: agents who are available may still serve it), a wait for
//! the opening (`hold`: the queue offers nothing while it is closed) or the end of the
//! conversation (`close`).
//!
//! Times are the queue's wall clock: "09:00" in `Europe/Paris` is 09:00 in Paris on both
//! sides of a daylight-saving change. An instant always has one wall-clock time, so the
//! hour skipped in spring simply never comes, and the hour repeated in autumn is open or
//! closed the same way both times.

use chrono::{Datelike, NaiveDate, TimeZone, Timelike, Weekday};
use serde::{Deserialize, Serialize};

use super::{CoreError, Millis};

/// Most weekly ranges and dated exceptions a queue may have.
pub const MAX_WEEKLY: usize = 50;
/// See [`MAX_WEEKLY`]: a year of holidays and special openings, and then some.
pub const MAX_EXCEPTIONS: usize = 400;

/// A queue's business hours, as given (and stored); [`check`] accepts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hours {
    /// An IANA time zone name, e.g. `Europe/Paris`.
    pub time_zone: String,
    /// When the queue opens each week (no range: closed but on dated openings).
    #[serde(default)]
    pub weekly: Vec<WeeklyHours>,
    /// Dates whose opening differs from the week's: on such a date only its exceptions
    /// count (one without times closes the whole day).
    #[serde(default)]
    pub exceptions: Vec<DatedHours>,
    /// What a customer who writes while the queue is closed is told, at once.
    pub closed_reply: String,
    #[serde(default)]
    pub outside_hours: OutsideHours,
}

/// Open from `open` to `close` (`HH:MM`, wall clock; `close` may be `24:00`) on each of
/// `days` (`mon` ... `sun`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyHours {
    pub days: Vec<String>,
    pub open: String,
    pub close: String,
}

/// A date (`YYYY-MM-DD`, in the queue's time zone) with its own opening, or closed all
/// day without `open` and `close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatedHours {
    pub date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<String>,
}

/// What happens to a conversation opened while its queue is closed, after the reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OutsideHours {
    /// It waits in the queue as any other (an available agent may still take it).
    #[default]
    Wait,
    /// It ends at once, with reason `outside_hours`.
    Close,
    /// It waits for the opening: while the queue is closed nothing waiting in it is
    /// offered (whenever it arrived), and at the opening the line is served in its order.
    Hold,
}

/// The reason a conversation closed by [`OutsideHours::Close`] ends with.
pub const OUTSIDE_HOURS_REASON: &str = "outside_hours";

/// Accepts `hours` or says what is wrong with it.
pub fn check(hours: &Hours) -> Result<(), CoreError> {
    zone(&hours.time_zone)?;
    if hours.weekly.len() > MAX_WEEKLY {
        return Err(invalid(format!("hours.weekly holds at most {MAX_WEEKLY} ranges")));
    }
    if hours.exceptions.len() > MAX_EXCEPTIONS {
        return Err(invalid(format!(
            "hours.exceptions holds at most {MAX_EXCEPTIONS} dates"
        )));
    }
    for w in &hours.weekly {
        if w.days.is_empty() {
            return Err(invalid("hours.weekly: each range names at least one day".into()));
        }
        for d in &w.days {
            day(d)?;
        }
        range(&w.open, &w.close)?;
    }
    for e in &hours.exceptions {
        date(&e.date)?;
        match (&e.open, &e.close) {
            (Some(open), Some(close)) => {
                range(open, close)?;
            }
            (None, None) => {}
            _ => {
                return Err(invalid(format!(
                    "hours.exceptions: {} gives both open and close, or neither (closed all day)",
                    e.date
                )))
            }
        }
    }
    check_reply("hours.closed_reply", &hours.closed_reply)
}

/// Accepts a text the engine sends a customer on a queue's behalf (field `what`).
pub(crate) fn check_reply(what: &str, reply: &str) -> Result<(), CoreError> {
    if reply.trim().is_empty() || reply.chars().count() > super::MAX_TEXT_CHARS {
        return Err(invalid(format!(
            "{what} must be 1 to {} characters",
            super::MAX_TEXT_CHARS
        )));
    }
    Ok(())
}

impl Hours {
    /// Whether the queue is open at `at`. Hours that [`check`] refuses are never closed
    /// (they cannot be set; this keeps a stored record that a later build reads
    /// differently from turning customers away).
    /// Whether a queue with these hours offers nothing at `at`: `hold`, and closed.
    pub fn holds_at(&self, at: Millis) -> bool {
        self.outside_hours == OutsideHours::Hold && !self.is_open(at)
    }

    pub fn is_open(&self, at: Millis) -> bool {
        let Ok(tz) = zone(&self.time_zone) else {
            return true;
        };
        let Some(utc) = i64::try_from(at)
            .ok()
            .and_then(|ms| chrono::Utc.timestamp_millis_opt(ms).single())
        else {
            return true;
        };
        let local = utc.with_timezone(&tz);
        let today = local.date_naive();
        let minute = local.hour() * 60 + local.minute();
        let within = |open: &str, close: &str| range(open, close).is_ok_and(|(o, c)| (o..c).contains(&minute));
        let mut dated = self
            .exceptions
            .iter()
            .filter(|e| date(&e.date).is_ok_and(|d| d == today))
            .peekable();
        if dated.peek().is_some() {
            return dated.any(|e| matches!((&e.open, &e.close), (Some(o), Some(c)) if within(o, c)));
        }
        let weekday = local.weekday();
        self.weekly
            .iter()
            .any(|w| w.days.iter().any(|d| day(d).is_ok_and(|d| d == weekday)) && within(&w.open, &w.close))
    }
}

fn invalid(message: String) -> CoreError {
    CoreError::InvalidInput(message)
}

fn zone(name: &str) -> Result<chrono_tz::Tz, CoreError> {
    name.parse::<chrono_tz::Tz>()
        .map_err(|_| invalid(format!("hours.time_zone: `{name}` is not an IANA time zone name")))
}

fn day(name: &str) -> Result<Weekday, CoreError> {
    Ok(match name {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return Err(invalid(format!("hours: `{name}` is not a day (mon, tue, ... sun)"))),
    })
}

fn date(text: &str) -> Result<NaiveDate, CoreError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| invalid(format!("hours.exceptions: `{text}` is not a date (YYYY-MM-DD)")))
}

/// Minutes since midnight of `HH:MM` (`24:00` is 1440).
fn clock(text: &str) -> Result<u32, CoreError> {
    let bad = || invalid(format!("hours: `{text}` is not a time of day (HH:MM, 00:00 to 24:00)"));
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) => Ok(1440),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

/// `[open, close)` in minutes; `open` before `close` (a range past midnight is two).
fn range(open: &str, close: &str) -> Result<(u32, u32), CoreError> {
    let (o, c) = (clock(open)?, clock(close)?);
    if o >= c {
        return Err(invalid(format!(
            "hours: {open}-{close} does not open before it closes (a range past midnight is two ranges)"
        )));
    }
    Ok((o, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Millis {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .expect("a test instant")
            .timestamp_millis() as Millis
    }

    fn weekdays(tz: &str, open: &str, close: &str) -> Hours {
        Hours {
            time_zone: tz.into(),
            weekly: vec![WeeklyHours {
                days: ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec(),
                open: open.into(),
                close: close.into(),
            }],
            exceptions: Vec::new(),
            closed_reply: "We are closed; we answer from 09:00.".into(),
            outside_hours: OutsideHours::Wait,
        }
    }

    #[test]
    fn open_by_the_week_in_the_queue_s_time_zone() {
        let h = weekdays("Europe/Paris", "09:00", "17:00");
        check(&h).expect("valid hours");
        // Wednesday 2026-12-02 (CET, UTC+1): 08:59 and 17:00 closed, 09:00 and 16:59 open.
        assert!(!h.is_open(at("2026-12-02T07:59:59Z")));
        assert!(h.is_open(at("2026-12-02T08:00:00Z")));
        assert!(h.is_open(at("2026-12-02T15:59:59Z")));
        assert!(!h.is_open(at("2026-12-02T16:00:00Z")));
        // Saturday.
        assert!(!h.is_open(at("2026-12-05T10:00:00Z")));
        // Another zone, the same instant: 10:00 in Paris is 04:00 in New York.
        assert!(!weekdays("America/New_York", "09:00", "17:00").is_open(at("2026-12-02T09:00:00Z")));
    }

    /// The wall clock holds across both daylight-saving changes; a fixed offset would be
    /// an hour off after either.
    #[test]
    fn daylight_saving_changes_keep_the_wall_clock() {
        let h = weekdays("Europe/Paris", "09:00", "17:00");
        // Spring: on Sunday 2026-03-29 Paris goes from UTC+1 to UTC+2. Monday 07:30 UTC is
        // 09:30 in Paris (open); at the winter offset it would be 08:30 (closed).
        assert!(h.is_open(at("2026-03-30T07:30:00Z")));
        assert!(!h.is_open(at("2026-03-30T06:59:00Z")));
        assert!(!h.is_open(at("2026-03-30T15:00:00Z")), "17:00 in Paris: closed");
        // Autumn: on Sunday 2026-10-25 back to UTC+1. Monday 07:30 UTC is 08:30 in Paris
        // (closed); at the summer offset it would be 09:30 (open).
        assert!(!h.is_open(at("2026-10-26T07:30:00Z")));
        assert!(h.is_open(at("2026-10-26T08:00:00Z")));
        assert!(h.is_open(at("2026-10-26T15:59:00Z")), "16:59 in Paris: open");
        // The repeated hour of the autumn night is one wall-clock hour, open both times.
        let night = Hours {
            weekly: vec![WeeklyHours {
                days: vec!["sun".into()],
                open: "02:00".into(),
                close: "03:00".into(),
            }],
            ..weekdays("Europe/Paris", "09:00", "17:00")
        };
        assert!(night.is_open(at("2026-10-25T00:30:00Z")), "02:30 CEST");
        assert!(night.is_open(at("2026-10-25T01:30:00Z")), "02:30 CET");
        assert!(!night.is_open(at("2026-10-25T02:00:00Z")), "03:00 CET");
        // The skipped hour of the spring night never comes: 01:59 CET, then 03:00 CEST.
        let spring = at("2026-03-29T00:59:00Z");
        assert!(!night.is_open(spring - 60_000 * 60));
        assert!(!night.is_open(spring + 60_000), "03:00 CEST: the range never opened");
    }

    #[test]
    fn a_dated_exception_replaces_the_week_on_its_date() {
        let mut h = weekdays("Europe/Paris", "09:00", "17:00");
        h.exceptions = vec![
            // A holiday on a Friday.
            DatedHours {
                date: "2026-12-25".into(),
                open: None,
                close: None,
            },
            // Christmas Eve: mornings only, in two ranges.
            DatedHours {
                date: "2026-12-24".into(),
                open: Some("09:00".into()),
                close: Some("10:00".into()),
            },
            DatedHours {
                date: "2026-12-24".into(),
                open: Some("11:00".into()),
                close: Some("12:00".into()),
            },
            // A Saturday opening.
            DatedHours {
                date: "2026-12-19".into(),
                open: Some("10:00".into()),
                close: Some("14:00".into()),
            },
        ];
        check(&h).expect("valid hours");
        assert!(!h.is_open(at("2026-12-25T10:00:00Z")));
        assert!(h.is_open(at("2026-12-24T08:30:00Z")));
        assert!(!h.is_open(at("2026-12-24T09:30:00Z")), "10:30: between the two ranges");
        assert!(h.is_open(at("2026-12-24T10:30:00Z")));
        assert!(
            !h.is_open(at("2026-12-24T13:00:00Z")),
            "14:00: the week's hours do not count"
        );
        assert!(h.is_open(at("2026-12-19T10:00:00Z")));
        assert!(h.is_open(at("2026-12-23T13:00:00Z")), "an ordinary Wednesday");
        // The date is the queue's: 2026-12-24 23:30 UTC is already the 25th in Paris.
        let mut late = weekdays("Europe/Paris", "00:00", "24:00");
        late.exceptions = vec![DatedHours {
            date: "2026-12-25".into(),
            open: None,
            close: None,
        }];
        assert!(late.is_open(at("2026-12-24T22:59:00Z")));
        assert!(!late.is_open(at("2026-12-24T23:30:00Z")));
    }

    #[test]
    fn bad_hours_are_refused_with_what_is_wrong() {
        let ok = weekdays("Europe/Paris", "09:00", "17:00");
        let refused = |h: Hours, needle: &str| match check(&h) {
            Err(CoreError::InvalidInput(m)) => assert!(m.contains(needle), "{m} should name {needle}"),
            other => panic!("{h:?} gave {other:?}"),
        };
        refused(
            Hours {
                time_zone: "Mars/Olympus".into(),
                ..ok.clone()
            },
            "Mars/Olympus",
        );
        refused(weekdays("Europe/Paris", "17:00", "09:00"), "17:00-09:00");
        refused(weekdays("Europe/Paris", "9:00", "17:00"), "9:00");
        refused(weekdays("Europe/Paris", "09:00", "24:01"), "24:01");
        refused(weekdays("Europe/Paris", "09:60", "17:00"), "09:60");
        let mut h = ok.clone();
        h.weekly[0].days.push("someday".into());
        refused(h, "someday");
        let mut h = ok.clone();
        h.weekly[0].days.clear();
        refused(h, "at least one day");
        let mut h = ok.clone();
        h.exceptions.push(DatedHours {
            date: "2026-02-30".into(),
            open: None,
            close: None,
        });
        refused(h, "2026-02-30");
        let mut h = ok.clone();
        h.exceptions.push(DatedHours {
            date: "2026-12-24".into(),
            open: Some("09:00".into()),
            close: None,
        });
        refused(h, "both open and close");
        refused(
            Hours {
                closed_reply: " ".into(),
                ..ok.clone()
            },
            "closed_reply",
        );
        let mut h = ok;
        h.weekly = vec![h.weekly[0].clone(); MAX_WEEKLY + 1];
        refused(h, "at most");
        // `24:00` closes at midnight; a queue with no range at all is always closed.
        check(&weekdays("UTC", "00:00", "24:00")).expect("a whole day");
        let never = Hours {
            weekly: Vec::new(),
            ..weekdays("UTC", "00:00", "24:00")
        };
        check(&never).expect("closed until a dated opening");
        assert!(!never.is_open(at("2026-12-02T12:00:00Z")));
    }

    /// The rule at arrival, on a floor: a customer who writes while the queue is closed
    /// gets the reply at once; `wait` leaves the conversation to be routed as any other
    /// (an available agent may still take it), `close` ends it unoffered. Open, nothing
    /// is said. A change of hours is in force for the next customer.
    mod at_arrival {
        use super::*;
        use crate::core::{
            AuthorKind, Channel, Command, Conversation, ConversationState, Customer, EntryPoint, Floor, Presence,
            Reply, Rules,
        };

        /// Wednesday 2026-12-02, 20:00 in Paris: closed by [`weekdays`] 09:00-17:00.
        const EVENING: &str = "2026-12-02T19:00:00Z";
        /// The same day at 10:00 in Paris.
        const MORNING: &str = "2026-12-02T09:00:00Z";

        fn floor(hours: Option<Hours>) -> Floor {
            let mut f = Floor::new(Rules::default());
            let t0 = at(MORNING) - 3_600_000;
            f.execute(
                Command::CreateQueue {
                    id: "q".into(),
                    name: "Q".into(),
                    routing_steps: Vec::new(),
                    hours: hours.map(std::sync::Arc::new),
                    survey: None,
                    wait_limit: None,
                    service_level_ms: None,
                    place_updates: None,
                    overflow: None,
                },
                t0,
            )
            .expect("queue");
            f.execute(
                Command::CreateEntryPoint(EntryPoint {
                    id: "ep".into(),
                    name: "Page".into(),
                    queue: "q".into(),
                    ..Default::default()
                }),
                t0,
            )
            .expect("entry point");
            f.execute(
                Command::CreateAgent {
                    id: "a1".into(),
                    name: "A1".into(),
                    queues: vec!["q".into()],
                    capacity: None,
                    credential: None,
                    password_hash: None,
                    skills: Default::default(),
                },
                t0,
            )
            .expect("agent");
            f
        }

        fn write(f: &mut Floor, customer: &str, when: Millis) -> Conversation {
            match f.execute(
                Command::CustomerMessage {
                    entry_point: "ep".into(),
                    customer: Customer {
                        id: customer.into(),
                        name: customer.into(),
                    },
                    text: "hello".into(),
                    channel: Channel::Rest,
                    open: Default::default(),
                },
                when,
            ) {
                Ok(Reply::Conversation(c)) => *c,
                other => panic!("unexpected {other:?}"),
            }
        }

        fn said(c: &Conversation) -> Vec<(AuthorKind, &str)> {
            c.transcript.iter().map(|m| (m.author.kind, m.text.as_str())).collect()
        }

        fn available(f: &mut Floor, when: Millis) {
            f.execute(
                Command::SetState {
                    agent: "a1".into(),
                    state: Presence::Available,
                    idle_code: None,
                },
                when,
            )
            .expect("available");
        }

        #[test]
        fn closed_and_waiting_the_customer_is_told_and_an_available_agent_may_still_serve() {
            let hours = weekdays("Europe/Paris", "09:00", "17:00");
            let reply = hours.closed_reply.clone();
            let mut f = floor(Some(hours));
            let c = write(&mut f, "u1", at(EVENING));
            assert_eq!(
                said(&c),
                [(AuthorKind::Customer, "hello"), (AuthorKind::System, reply.as_str())]
            );
            assert_eq!(c.state, ConversationState::Queued);
            available(&mut f, at(EVENING) + 1);
            let c = f.conversation(&c.id).expect("held");
            assert_eq!(
                c.state,
                ConversationState::Offered,
                "an available agent still serves it"
            );
            // Open: nothing is said.
            let c = write(&mut f, "u2", at(MORNING) + 86_400_000);
            assert_eq!(said(&c), [(AuthorKind::Customer, "hello")]);
        }

        #[test]
        fn closed_and_closing_the_conversation_ends_unoffered() {
            let hours = Hours {
                outside_hours: OutsideHours::Close,
                ..weekdays("Europe/Paris", "09:00", "17:00")
            };
            let reply = hours.closed_reply.clone();
            let mut f = floor(Some(hours));
            available(&mut f, at(EVENING) - 1);
            let c = write(&mut f, "u1", at(EVENING));
            assert_eq!(c.state, ConversationState::Ended);
            assert_eq!(c.ended_reason.as_deref(), Some(OUTSIDE_HOURS_REASON));
            assert_eq!(
                said(&c),
                [(AuthorKind::Customer, "hello"), (AuthorKind::System, reply.as_str())]
            );
            assert!(c.offer.is_none() && c.owner.is_none());
            // The customer's next message opens a new conversation (the closed one is over).
            let again = write(&mut f, "u1", at(EVENING) + 1_000);
            assert_ne!(again.id, c.id);
        }

        #[test]
        fn a_change_of_hours_is_in_force_for_the_next_customer() {
            let mut f = floor(None);
            assert_eq!(
                said(&write(&mut f, "u1", at(EVENING))).len(),
                1,
                "no hours: always open"
            );
            let closing = Hours {
                outside_hours: OutsideHours::Close,
                ..weekdays("Europe/Paris", "09:00", "17:00")
            };
            match f.execute(
                Command::UpdateQueue {
                    queue: "q".into(),
                    hours: Some(Some(std::sync::Arc::new(closing))),
                    survey: None,
                    wait_limit: None,
                    service_level_ms: None,
                    place_updates: None,
                    overflow: None,
                },
                at(EVENING),
            ) {
                Ok(Reply::Queue(q)) => assert!(q.hours.is_some()),
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(write(&mut f, "u2", at(EVENING)).state, ConversationState::Ended);
            // Bad hours change nothing; unknown queues are named.
            let bad = f.execute(
                Command::UpdateQueue {
                    queue: "q".into(),
                    hours: Some(Some(std::sync::Arc::new(weekdays(
                        "Nowhere/Atlantis",
                        "09:00",
                        "17:00",
                    )))),
                    survey: None,
                    wait_limit: None,
                    service_level_ms: None,
                    place_updates: None,
                    overflow: None,
                },
                at(EVENING),
            );
            assert!(matches!(bad, Err(CoreError::InvalidInput(_))), "{bad:?}");
            let unknown = f.execute(
                Command::UpdateQueue {
                    queue: "nope".into(),
                    hours: Some(None),
                    survey: None,
                    wait_limit: None,
                    service_level_ms: None,
                    place_updates: None,
                    overflow: None,
                },
                at(EVENING),
            );
            assert!(matches!(unknown, Err(CoreError::UnknownQueue(_))), "{unknown:?}");
            assert_eq!(
                write(&mut f, "u3", at(EVENING)).state,
                ConversationState::Ended,
                "still closing"
            );
            f.execute(
                Command::UpdateQueue {
                    queue: "q".into(),
                    hours: Some(None),
                    survey: None,
                    wait_limit: None,
                    service_level_ms: None,
                    place_updates: None,
                    overflow: None,
                },
                at(EVENING),
            )
            .expect("hours removed");
            assert_eq!(write(&mut f, "u4", at(EVENING)).state, ConversationState::Queued);
        }

        /// A queue bounded to two waiting refuses a third customer with its reply
        /// (`queue_full`); one offered no longer waits, so the next customer waits again.
        /// A closing for the hours wins over a full queue.
        #[test]
        fn a_full_queue_refuses_one_more_with_its_reply() {
            let mut f = floor(None);
            let limit = crate::core::queue::WaitLimit {
                max_waiting: 2,
                reply: "Too many waiting; please try later.".into(),
            };
            f.execute(
                Command::UpdateQueue {
                    queue: "q".into(),
                    hours: None,
                    survey: None,
                    wait_limit: Some(Some(limit.clone())),
                    service_level_ms: None,
                    place_updates: None,
                    overflow: None,
                },
                at(MORNING),
            )
            .expect("limit set");
            let bad = f.execute(
                Command::UpdateQueue {
                    queue: "q".into(),
                    hours: None,
                    survey: None,
                    wait_limit: Some(Some(crate::core::queue::WaitLimit {
                        max_waiting: 0,
                        reply: "x".into(),
                    })),
                    service_level_ms: None,
                    place_updates: None,
                    overflow: None,
                },
                at(MORNING),
            );
            assert!(matches!(bad, Err(CoreError::InvalidInput(_))), "{bad:?}");
            assert_eq!(write(&mut f, "u1", at(MORNING)).state, ConversationState::Queued);
            assert_eq!(write(&mut f, "u2", at(MORNING)).state, ConversationState::Queued);
            let refused = write(&mut f, "u3", at(MORNING));
            assert_eq!(refused.state, ConversationState::Ended);
            assert_eq!(
                refused.ended_reason.as_deref(),
                Some(crate::core::queue::QUEUE_FULL_REASON)
            );
            assert_eq!(
                said(&refused),
                [
                    (AuthorKind::Customer, "hello"),
                    (AuthorKind::System, limit.reply.as_str())
                ]
            );
            // A customer already waiting writes again: joins, never refused.
            assert_eq!(write(&mut f, "u1", at(MORNING) + 1).state, ConversationState::Queued);
            available(&mut f, at(MORNING) + 2);
            assert_eq!(write(&mut f, "u4", at(MORNING) + 3).state, ConversationState::Queued);
            // Closed with `close` and full: the hours' reply and reason.
            f.execute(
                Command::UpdateQueue {
                    queue: "q".into(),
                    hours: Some(Some(std::sync::Arc::new(Hours {
                        outside_hours: OutsideHours::Close,
                        ..weekdays("Europe/Paris", "09:00", "17:00")
                    }))),
                    survey: None,
                    wait_limit: None,
                    service_level_ms: None,
                    place_updates: None,
                    overflow: None,
                },
                at(EVENING),
            )
            .expect("hours set");
            let c = write(&mut f, "u5", at(EVENING));
            assert_eq!(c.ended_reason.as_deref(), Some(OUTSIDE_HOURS_REASON));
            assert_eq!(said(&c).len(), 2, "one reply only");
        }
    }
}
