//! The sign-in throttle: after `limit` failed sign-ins for one id within `window_ms`,
//! further attempts for that id are refused, whatever the password, until the oldest of
//! those failures is `window_ms` old (API.md: 5 within a minute, then 429 with
//! `Retry-After`).
//!
//! Pure: time comes in as `now`. The HTTP layer holds one behind a mutex. Unknown ids
//! count like known ones, so the throttle says nothing about which ids exist.
//!
//! Memory is bounded: an id keeps at most `limit` failure times, and once more than
//! [`Throttle::MAX_IDS`] ids are held, ids whose failures have all left the window are
//! dropped.

use std::collections::VecDeque;

use super::{FastMap, Millis};

/// Failed sign-ins per id in a sliding window.
#[derive(Debug)]
pub struct Throttle {
    limit: usize,
    window_ms: Millis,
    /// Per id, the times of its recent failures, oldest first (at most `limit`).
    failures: FastMap<String, VecDeque<Millis>>,
}

impl Throttle {
    /// Above this many ids, stale ones are swept out on the next failure.
    pub const MAX_IDS: usize = 10_000;

    pub fn new(limit: usize, window_ms: Millis) -> Self {
        Throttle {
            limit: limit.max(1),
            window_ms,
            failures: FastMap::default(),
        }
    }

    /// `Ok` when `id` may try now; `Err(ms)` with how long until it may.
    pub fn check(&mut self, id: &str, now: Millis) -> Result<(), Millis> {
        let Some(times) = self.failures.get_mut(id) else {
            return Ok(());
        };
        let window = self.window_ms;
        while times.front().is_some_and(|&t| t + window <= now) {
            times.pop_front();
        }
        if times.is_empty() {
            self.failures.remove(id);
            return Ok(());
        }
        match times.front() {
            Some(&oldest) if times.len() >= self.limit => Err(oldest + window - now),
            _ => Ok(()),
        }
    }

    /// Records a failed sign-in for `id`.
    pub fn failed(&mut self, id: &str, now: Millis) {
        if self.failures.len() >= Self::MAX_IDS && !self.failures.contains_key(id) {
            let window = self.window_ms;
            self.failures
                .retain(|_, times| times.back().is_some_and(|&t| t + window > now));
        }
        let times = self.failures.entry(id.to_string()).or_default();
        times.push_back(now);
        while times.len() > self.limit {
            times.pop_front();
        }
    }

    /// A successful sign-in forgets the id's failures.
    pub fn succeeded(&mut self, id: &str) {
        self.failures.remove(id);
    }

    /// How many ids are held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of a script: at `at` ms, for `id`, do `op` and expect `want` from `check`
    /// (the number of ms to wait, or `None` for "may try").
    enum Op {
        Fail,
        Succeed,
        Check(Option<Millis>),
    }

    fn check(limit: usize, window: Millis, script: &[(Millis, &str, Op)]) {
        let mut t = Throttle::new(limit, window);
        for (i, (at, id, op)) in script.iter().enumerate() {
            match op {
                Op::Fail => t.failed(id, *at),
                Op::Succeed => t.succeeded(id),
                Op::Check(want) => assert_eq!(t.check(id, *at).err(), *want, "step {i}: check {id} at {at}"),
            }
        }
    }

    #[test]
    fn five_failures_within_a_minute_block_until_the_minute_passes() {
        use Op::*;
        let five = |id| (0..5).map(move |i| (i * 1000, id, Fail)).collect::<Vec<_>>();
        // Four failures: still allowed.
        let mut s: Vec<_> = (0..4).map(|i| (i * 1000, "a1", Fail)).collect();
        s.push((4_000, "a1", Check(None)));
        check(5, 60_000, &s);
        // The fifth blocks until the first is a minute old.
        let mut s = five("a1");
        s.extend([
            (4_000, "a1", Check(Some(56_000))),
            (59_999, "a1", Check(Some(1))),
            (60_000, "a1", Check(None)),
        ]);
        check(5, 60_000, &s);
        // Other ids are not affected.
        let mut s = five("a1");
        s.push((4_000, "a2", Check(None)));
        check(5, 60_000, &s);
        // Failures spread over more than a minute never block.
        let s: Vec<_> = (0..10)
            .flat_map(|i| [(i * 20_000, "a1", Fail), (i * 20_000, "a1", Check(None))])
            .collect();
        check(5, 60_000, &s);
        // A success forgets earlier failures.
        let mut s: Vec<_> = (0..4).map(|i| (i, "a1", Fail)).collect();
        s.extend([(5, "a1", Succeed), (6, "a1", Fail), (7, "a1", Check(None))]);
        check(5, 60_000, &s);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut t = Throttle::new(5, 60_000);
        for i in 0..Throttle::MAX_IDS {
            t.failed(&format!("id{i}"), 0);
        }
        assert_eq!(t.len(), Throttle::MAX_IDS);
        // A minute later, a new id sweeps the stale ones out.
        t.failed("late", 60_000);
        assert_eq!(t.len(), 1);
        for _ in 0..100 {
            t.failed("late", 60_001);
        }
        assert_eq!(t.failures["late"].len(), 5);
    }
}
