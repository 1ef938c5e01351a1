//! Limits at the edge, decided here without I/O: the failed-authentication limit per
//! client address and the failed password sign-ins per agent id (both [`AuthFailures`]),
//! and the admin token's strength ([`weak_token`]).
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
}
