//! What a person signs in with: an agent's password hash and the sessions that password
//! sign-ins opened (API.md "Sign-in with a password").
//!
//! The core never sees a password or a token: the HTTP layer hashes passwords (Argon2id)
//! and keeps only the SHA-256 of each session token, the session's *credential*. This
//! module decides which sessions exist: how many an agent may hold, which are expired,
//! and which end when the password changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Millis;

/// An agent's password hash and open sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    /// Argon2id PHC string of the password; never shown.
    pub password_hash: Option<String>,
    /// Open sessions: credential (hex SHA-256 of the session token) → expiry.
    pub sessions: BTreeMap<String, Millis>,
}

/// A session is valid strictly before its expiry.
pub fn session_valid(expires_at: Millis, now: Millis) -> bool {
    now < expires_at
}

impl SignIn {
    /// Sessions one agent may hold at once; a new one beyond this ends the one that
    /// expires first (the oldest, with one TTL), so the record stays small.
    pub const MAX_SESSIONS: usize = 20;

    /// Opens a session; also drops expired sessions and, over [`Self::MAX_SESSIONS`],
    /// those that expire first. Returns the credentials that stopped being valid.
    pub fn start(&mut self, credential: String, expires_at: Millis, now: Millis) -> Vec<String> {
        let mut ended: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, &at)| !session_valid(at, now))
            .map(|(c, _)| c.clone())
            .collect();
        for c in &ended {
            self.sessions.remove(c);
        }
        self.sessions.insert(credential, expires_at);
        while self.sessions.len() > Self::MAX_SESSIONS {
            let first = self
                .sessions
                .iter()
                .min_by_key(|(c, &at)| (at, (*c).clone()))
                .map(|(c, _)| c.clone());
            match first {
                Some(c) => {
                    self.sessions.remove(&c);
                    ended.push(c);
                }
                None => break,
            }
        }
        ended
    }

    /// Ends one session; false when it was not open.
    pub fn end(&mut self, credential: &str) -> bool {
        self.sessions.remove(credential).is_some()
    }

    /// Ends every session but `keep` (a password change keeps the session that made
    /// it). Returns the credentials ended.
    pub fn end_all_but(&mut self, keep: Option<&str>) -> Vec<String> {
        let ended: Vec<String> = self
            .sessions
            .keys()
            .filter(|c| Some(c.as_str()) != keep)
            .cloned()
            .collect();
        for c in &ended {
            self.sessions.remove(c);
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step: start `(credential, expires_at, now)`, end, or end all but one; then the
    /// credentials that ended and the sessions left.
    enum Op {
        Start(&'static str, Millis, Millis),
        End(&'static str),
        EndAllBut(Option<&'static str>),
    }

    fn check(script: &[(Op, &[&str], &[&str])]) {
        let mut s = SignIn::default();
        for (i, (op, want_ended, want_left)) in script.iter().enumerate() {
            let mut ended = match op {
                Op::Start(c, exp, now) => s.start(c.to_string(), *exp, *now),
                Op::End(c) => {
                    if s.end(c) {
                        vec![c.to_string()]
                    } else {
                        vec![]
                    }
                }
                Op::EndAllBut(keep) => s.end_all_but(*keep),
            };
            ended.sort();
            assert_eq!(ended, *want_ended, "step {i}: ended");
            let left: Vec<&str> = s.sessions.keys().map(String::as_str).collect();
            assert_eq!(left, *want_left, "step {i}: left");
        }
    }

    #[test]
    fn sessions_start_expire_and_end() {
        use Op::*;
        check(&[
            (Start("s1", 100, 0), &[], &["s1"]),
            (Start("s2", 150, 50), &[], &["s1", "s2"]),
            // At 100, s1 has expired: the next start drops it.
            (Start("s3", 200, 100), &["s1"], &["s2", "s3"]),
            (End("s2"), &["s2"], &["s3"]),
            (End("s2"), &[], &["s3"]),
            (Start("s4", 300, 120), &[], &["s3", "s4"]),
            (EndAllBut(Some("s4")), &["s3"], &["s4"]),
            (EndAllBut(None), &["s4"], &[]),
        ]);
    }

    #[test]
    fn an_agent_holds_at_most_max_sessions() {
        let mut s = SignIn::default();
        for i in 0..SignIn::MAX_SESSIONS as u64 {
            assert!(s.start(format!("s{i:02}"), 1000 + i, 0).is_empty());
        }
        let ended = s.start("new".into(), 5000, 1);
        assert_eq!(ended, ["s00"], "the one that expires first goes");
        assert_eq!(s.sessions.len(), SignIn::MAX_SESSIONS);
        assert!(s.sessions.contains_key("new"));
    }

    #[test]
    fn validity_ends_at_expiry() {
        assert!(session_valid(100, 99));
        assert!(!session_valid(100, 100));
        assert!(!session_valid(100, 101));
    }
}
