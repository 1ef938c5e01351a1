//! Limits at the edge, decided here without I/O: the failed-authentication limit per
//! client address and the failed password sign-ins per agent id (both [`AuthFailures`]),
//! the admin token's strength ([`weak_token`]), and the demo customer page's new
//! conversations per client address ([`NewConversations`]), and admission control: when
//! the engine is overloaded ([`QueueWait`], [`Admission`]).
//!
//! Time comes in as `now` (ms since the epoch), like everywhere in the core.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use super::Millis;

/// Counts failed authentications per key (the client address) in fixed windows and says
/// when a key has had too many.
///
/// A key's window opens at its first failure and lasts `window_ms`; after `limit`
/// failures in it, [`AuthFailures::check`] refuses the key until the window closes.
/// Memory is bounded: at most `capacity` keys are tracked. When a new key arrives at a
/// full table, expired windows are dropped first, then the window that opened earliest
/// (so an attacker with many addresses can evict its own entries, never grow the table).
#[derive(Debug, Clone)]
pub struct AuthFailures<K> {
    limit: u32,
    window_ms: Millis,
    capacity: usize,
    windows: HashMap<K, Window>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    opened: Millis,
    failures: u32,
}

impl<K: Eq + Hash + Clone> AuthFailures<K> {
    /// `limit` failures per `window_ms` per key, at most `capacity` keys tracked.
    pub fn new(limit: u32, window_ms: Millis, capacity: usize) -> Self {
        AuthFailures {
            limit: limit.max(1),
            window_ms,
            capacity: capacity.max(1),
            windows: HashMap::new(),
        }
    }

    /// `Err(retry_after_ms)` while `key` has reached the limit in its current window.
    pub fn check(&self, key: &K, now: Millis) -> Result<(), Millis> {
        match self.windows.get(key) {
            Some(w) if w.failures >= self.limit && now < w.opened + self.window_ms => {
                Err(w.opened + self.window_ms - now)
            }
            _ => Ok(()),
        }
    }

    /// Records one failure of `key` at `now`.
    pub fn failed(&mut self, key: &K, now: Millis) {
        if let Some(w) = self.windows.get_mut(key) {
            if now >= w.opened + self.window_ms {
                *w = Window {
                    opened: now,
                    failures: 1,
                };
            } else {
                w.failures = w.failures.saturating_add(1);
            }
            return;
        }
        if self.windows.len() >= self.capacity {
            let window_ms = self.window_ms;
            self.windows.retain(|_, w| now < w.opened + window_ms);
        }
        if self.windows.len() >= self.capacity {
            if let Some(oldest) = self
                .windows
                .iter()
                .min_by_key(|(_, w)| w.opened)
                .map(|(k, _)| k.clone())
            {
                self.windows.remove(&oldest);
            }
        }
        self.windows.insert(
            key.clone(),
            Window {
                opened: now,
                failures: 1,
            },
        );
    }

    /// Forgets `key`'s failures (a password sign-in that succeeded: a person's earlier
    /// typos do not count towards the next lockout).
    pub fn forget(&mut self, key: &K) {
        self.windows.remove(key);
    }

    /// Keys tracked now (at most the capacity).
    pub fn tracked(&self) -> usize {
        self.windows.len()
    }
}

/// The client a request counts for in per-address limits: the TCP `peer`, unless the
/// peer is one of the `trusted` proxies; then the rightmost address of `X-Forwarded-For`
/// (`forwarded`, the header's values in order) that is not itself a trusted proxy. The
/// entries left of that one were written by the client and are never believed, so a
/// client cannot choose the address its failures count for. A trusted peer with no usable
/// header counts as itself.
pub fn client_address(peer: IpAddr, forwarded: &[&str], trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops = forwarded.iter().flat_map(|h| h.split(',')).map(str::trim);
    let mut client = peer;
    for hop in hops.rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => client = ip,
            Ok(ip) => return ip,
            // Garbage where an address should be: stop believing the header.
            Err(_) => return client,
        }
    }
    client
}

/// Why `token` is too weak to guard a listener that is not loopback, or `None`: fewer
/// than 32 characters, or fewer than 10 distinct characters (a repeated pattern such as
/// `aaaa...` or `abab...`). A random token of 32 hex digits or more passes.
pub fn weak_token(token: &str) -> Option<&'static str> {
    if token.chars().count() < 32 {
        return Some("must be at least 32 characters once server.listen is not a loopback address");
    }
    let distinct: std::collections::HashSet<char> = token.chars().collect();
    if distinct.len() < 10 {
        return Some(
            "is too predictable (fewer than 10 distinct characters); use a random secret, e.g. `openssl rand -hex 32`",
        );
    }
    None
}

/// The demo customer page's limit: at most `limit` new conversations per client address
/// in a fixed window of `window_ms` (opening at the address's first new conversation),
/// and which conversation each demo customer writes in.
///
/// The page needs no login, so without it one address could fill the queue. Writing
/// into a conversation that is still open is not limited here: the edge asks the engine
/// whether [`NewConversations::conversation_of`] is still open and, if so, the write joins
/// it and takes nothing. Memory is bounded: at most `capacity` addresses (as
/// [`AuthFailures`] evicts) and `capacity` customers (the oldest remembered goes first;
/// a forgotten customer's next write counts as a new conversation, which errs on the
/// side of the limit).
#[derive(Debug, Clone)]
pub struct NewConversations<A> {
    /// New conversations per address, counted like failures: the first opens a window.
    per_address: AuthFailures<A>,
    /// customer id -> (the conversation it last wrote in, when it was remembered).
    conversations: HashMap<String, (String, u64)>,
    /// Customers in the order they were remembered, with the stamp they were remembered
    /// under; a stale stamp (remembered again since) is skipped when evicting.
    order: std::collections::VecDeque<(String, u64)>,
    /// The next stamp.
    stamp: u64,
    capacity: usize,
}

impl<A: Eq + Hash + Clone> NewConversations<A> {
    /// `limit` new conversations per `window_ms` per address; at most `capacity`
    /// addresses and `capacity` customers remembered.
    pub fn new(limit: u32, window_ms: Millis, capacity: usize) -> Self {
        NewConversations {
            per_address: AuthFailures::new(limit, window_ms, capacity),
            conversations: HashMap::new(),
            order: std::collections::VecDeque::new(),
            stamp: 0,
            capacity: capacity.max(1),
        }
    }

    /// Takes one new conversation for `address` at `now`: `Err(retry_after_ms)` when the
    /// address has opened `limit` in its current window (nothing is counted then).
    pub fn take(&mut self, address: &A, now: Millis) -> Result<(), Millis> {
        self.per_address.check(address, now)?;
        self.per_address.failed(address, now);
        Ok(())
    }

    /// Counts a new conversation that was opened without [`NewConversations::take`]
    /// (a write meant to join a conversation that ended meanwhile), so that such races
    /// cannot open conversations past the limit one after another.
    pub fn opened(&mut self, address: &A, now: Millis) {
        self.per_address.failed(address, now);
    }

    /// The conversation `customer` last wrote in, if remembered (it may have ended since).
    pub fn conversation_of(&self, customer: &str) -> Option<&str> {
        self.conversations.get(customer).map(|(c, _)| c.as_str())
    }

    /// Remembers that `customer` writes in `conversation`.
    pub fn remember(&mut self, customer: &str, conversation: &str) {
        if self.conversation_of(customer) == Some(conversation) {
            return;
        }
        while self.conversations.len() >= self.capacity && !self.conversations.contains_key(customer) {
            let Some((oldest, stamp)) = self.order.pop_front() else {
                break;
            };
            if self.conversations.get(&oldest).is_some_and(|(_, s)| *s == stamp) {
                self.conversations.remove(&oldest);
            }
        }
        self.stamp += 1;
        self.conversations
            .insert(customer.to_string(), (conversation.to_string(), self.stamp));
        self.order.push_back((customer.to_string(), self.stamp));
        // Stale entries (customers remembered again) would let `order` outgrow the map.
        if self.order.len() > 2 * self.capacity {
            let conversations = &self.conversations;
            self.order
                .retain(|(c, s)| conversations.get(c).is_some_and(|(_, stamp)| stamp == s));
        }
    }

    /// Addresses and customers remembered now (each at most the capacity).
    pub fn tracked(&self) -> (usize, usize) {
        (self.per_address.tracked(), self.conversations.len())
    }
}

/// The interval over which [`QueueWait`] takes the least wait (CoDel's default).
pub const QUEUE_WAIT_INTERVAL_MS: Millis = 100;

/// How long commands wait before the engine's router runs them, as admission control
/// reads it: the *least* wait over each interval (the measure of CoDel, RFC 8289). A burst
/// delays some commands and leaves others unqueued, so its least wait stays small; a
/// standing queue, the mark of work arriving faster than it is done, delays every one.
#[derive(Debug, Clone)]
pub struct QueueWait {
    interval_ms: Millis,
    /// The interval being measured: when it opened and its least wait so far.
    opened: Millis,
    least_us: Option<u64>,
}

impl QueueWait {
    pub fn new(interval_ms: Millis) -> Self {
        QueueWait {
            interval_ms: interval_ms.max(1),
            opened: 0,
            least_us: None,
        }
    }

    /// A command waited `waited_us` before it ran at `now`. When that closes an interval,
    /// answers the interval's least wait (the next interval opens with this command).
    pub fn observe(&mut self, waited_us: u64, now: Millis) -> Option<u64> {
        if now >= self.opened.saturating_add(self.interval_ms) {
            let closed = self.least_us.take();
            self.opened = now;
            self.least_us = Some(waited_us);
            return closed;
        }
        self.least_us = Some(self.least_us.map_or(waited_us, |l| l.min(waited_us)));
        None
    }
}

/// Whether the engine takes new work (a new REST conversation) or answers 503
/// `overloaded`: refused while the least wait of the last measured interval is above the
/// target. The measure counts only while it is fresh (two intervals): an engine that
/// measured nothing since is idle, not overloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// `server.overload_wait_ms`: the least wait that means overload.
    pub target_ms: Millis,
    /// The measuring interval ([`QueueWait`]).
    pub interval_ms: Millis,
}

impl Admission {
    /// `Err(retry_after_ms)` when new work must be refused at `now`, given the last
    /// interval's least wait (`least_us`) and when it was measured (`at`).
    pub fn check(&self, least_us: u64, at: Millis, now: Millis) -> Result<(), Millis> {
        let fresh = now.saturating_sub(at) <= 2 * self.interval_ms;
        if fresh && least_us > self.target_ms.saturating_mul(1000) {
            // The queue drains at the rate it built up; a second is a fair first guess and
            // spreads the retries of many clients.
            return Err(1_000);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Step {
        Fail(&'static str, Millis),
        /// key, now, expected: `None` allowed, `Some(retry_after_ms)` refused.
        Check(&'static str, Millis, Option<Millis>),
        Tracked(usize),
    }
    use Step::*;

    /// Runs a script on a limiter of 3 failures per 1,000 ms, at most 2 keys.
    fn check(script: &[Step]) {
        let mut l = AuthFailures::new(3, 1_000, 2);
        for (i, step) in script.iter().enumerate() {
            match step {
                Fail(k, now) => l.failed(&k.to_string(), *now),
                Check(k, now, want) => {
                    assert_eq!(l.check(&k.to_string(), *now).err(), *want, "step {i}")
                }
                Tracked(n) => assert_eq!(l.tracked(), *n, "step {i}"),
            }
        }
    }

    #[test]
    fn the_limit_holds_within_a_window_and_lifts_after_it() {
        check(&[
            Check("a", 0, None),
            Fail("a", 0),
            Fail("a", 100),
            Check("a", 150, None),
            Fail("a", 200),
            Check("a", 200, Some(800)),
            Check("a", 999, Some(1)),
            Check("b", 500, None),
            Check("a", 1_000, None),
            // A failure after the window opens a new one.
            Fail("a", 1_000),
            Check("a", 1_001, None),
        ]);
    }

    #[test]
    fn memory_is_bounded_by_the_capacity() {
        check(&[
            Fail("a", 0),
            Fail("a", 1),
            Fail("a", 2),
            Fail("b", 10),
            Tracked(2),
            // A third key evicts the window that opened first (a's).
            Fail("c", 20),
            Tracked(2),
            Check("a", 30, None),
            // Expired windows go first.
            Fail("d", 1_015),
            Tracked(2),
            Check("c", 1_016, None),
        ]);
    }

    #[test]
    fn weak_tokens_are_named() {
        let cases: &[(&str, bool)] = &[
            ("short-but-random-4f9a", true),
            ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true),
            ("abababababababababababababababababababab", true),
            ("switchboard-dev-admin-token", true),
            ("3f9c1a7e0b6d4e2f8a5c9b1d7e3f6a0c", false),
            ("correct-horse-battery-staple-unit-42", false),
        ];
        for (token, weak) in cases {
            assert_eq!(weak_token(token).is_some(), *weak, "{token}");
        }
    }

    /// A password sign-in that succeeds forgets the id's earlier failures.
    #[test]
    fn forget_clears_a_key() {
        let mut l = AuthFailures::new(2, 1_000, 10);
        l.failed(&"a1", 0);
        l.failed(&"a1", 10);
        assert_eq!(l.check(&"a1", 20), Err(980));
        l.forget(&"a1");
        assert_eq!(l.check(&"a1", 20), Ok(()));
        assert_eq!(l.tracked(), 0);
    }
    /// The demo page: the (limit+1)th new conversation from one address within the window
    /// is refused with the time left; other addresses and a new window are not affected.
    #[test]
    fn new_conversations_are_limited_per_address() {
        let mut l = NewConversations::new(2, 60_000, 10);
        assert_eq!(l.take(&"10.0.0.1", 0), Ok(()));
        assert_eq!(l.take(&"10.0.0.1", 1_000), Ok(()));
        assert_eq!(l.take(&"10.0.0.1", 2_000), Err(58_000));
        // A refusal is not counted: the window still closes at 60 s.
        assert_eq!(l.take(&"10.0.0.1", 59_999), Err(1));
        assert_eq!(l.take(&"10.0.0.2", 2_000), Ok(()));
        assert_eq!(l.take(&"10.0.0.1", 60_000), Ok(()));
        // A conversation opened by a race counts too.
        l.opened(&"10.0.0.1", 60_001);
        assert_eq!(l.take(&"10.0.0.1", 60_002), Err(59_998));
    }

    /// Which conversation a customer writes in is remembered, for at most `capacity`
    /// customers: the one remembered first goes first.
    #[test]
    fn remembered_conversations_are_bounded() {
        let mut l: NewConversations<&str> = NewConversations::new(10, 60_000, 2);
        l.remember("u1", "c-1");
        l.remember("u2", "c-2");
        l.remember("u1", "c-3");
        assert_eq!(l.conversation_of("u1"), Some("c-3"));
        l.remember("u3", "c-4");
        assert_eq!(l.tracked().1, 2);
        assert_eq!(l.conversation_of("u2"), None, "u2 was remembered longest ago");
        assert_eq!(l.conversation_of("u1"), Some("c-3"));
        assert_eq!(l.conversation_of("u3"), Some("c-4"));
        for i in 0..100 {
            l.remember("u1", &format!("c-{i}"));
        }
        assert_eq!(l.tracked().1, 2);
        assert!(l.order.len() <= 4, "the eviction order stays bounded too");
    }

    /// Which address a request counts for, behind no proxy, one trusted proxy, a chain,
    /// and with headers a client forged or mangled.
    #[test]
    fn the_client_behind_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxy = ip("127.0.0.1");
        let edge = ip("10.0.0.2");
        let trusted = [proxy, edge];
        let rows: &[(&str, &[&str], &str)] = &[
            // Not a trusted peer: the header is ignored.
            ("203.0.113.9", &["198.51.100.1"], "203.0.113.9"),
            // A trusted peer names its client.
            ("127.0.0.1", &["198.51.100.1"], "198.51.100.1"),
            // A client's forged entry stands left of the real one: the rightmost untrusted counts.
            ("127.0.0.1", &["6.6.6.6, 198.51.100.1"], "198.51.100.1"),
            ("127.0.0.1", &["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
            // Through two trusted proxies.
            ("127.0.0.1", &["198.51.100.1, 10.0.0.2"], "198.51.100.1"),
            // No header, or one of trusted proxies only: the last trusted hop.
            ("127.0.0.1", &[], "127.0.0.1"),
            ("127.0.0.1", &["10.0.0.2"], "10.0.0.2"),
            // Garbage stops the walk at the last address believed.
            ("127.0.0.1", &["198.51.100.1, not-an-ip"], "127.0.0.1"),
            ("127.0.0.1", &["not-an-ip, 10.0.0.2"], "10.0.0.2"),
            ("127.0.0.1", &["2001:db8::1"], "2001:db8::1"),
        ];
        for (peer, header, want) in rows {
            assert_eq!(
                client_address(ip(peer), header, &trusted),
                ip(want),
                "{peer} {header:?}"
            );
        }
        assert_eq!(client_address(proxy, &["198.51.100.1"], &[]), proxy, "nothing trusted");
    }

    #[test]
    fn the_least_wait_of_each_interval_is_measured() {
        let mut w = QueueWait::new(100);
        // The first command opens the first interval.
        assert_eq!(w.observe(5_000, 1_000), None);
        assert_eq!(w.observe(300, 1_050), None);
        assert_eq!(w.observe(9_000, 1_099), None);
        // The next one closes it with its least wait, and opens the next.
        assert_eq!(w.observe(70_000, 1_100), Some(300));
        assert_eq!(w.observe(60_000, 1_150), None);
        // An interval with no command in between still closes with what it saw.
        assert_eq!(w.observe(10, 5_000), Some(60_000));
    }

    #[test]
    fn new_work_is_refused_only_while_a_fresh_least_wait_is_over_the_target() {
        let a = Admission {
            target_ms: 50,
            interval_ms: 100,
        };
        // A burst: some commands waited long, but the least did not.
        assert_eq!(a.check(2_000, 1_000, 1_010), Ok(()));
        // A standing queue: even the least waited over 50 ms.
        assert_eq!(a.check(50_001, 1_000, 1_010), Err(1_000));
        assert_eq!(a.check(50_000, 1_000, 1_010), Ok(()), "at the target is not over it");
        // Two intervals later with no new measure: idle, not overloaded.
        assert_eq!(a.check(900_000, 1_000, 1_200), Err(1_000));
        assert_eq!(a.check(900_000, 1_000, 1_201), Ok(()));
        // Target 0: any wait at all is over it (what tests use to see a refusal).
        let strict = Admission {
            target_ms: 0,
            interval_ms: 100,
        };
        assert_eq!(strict.check(1, 1_000, 1_000), Err(1_000));
    }
}
