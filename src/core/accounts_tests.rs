//! The account rules, for agents and supervisors alike: sessions, passwords, reissue,
//! what the edge's index is told, and what authenticates after a restart.

use super::*;
use crate::core::{Change, Command, Reply, Rules};

const T0: Millis = 1_000_000;

/// A step on one [`SignIn`]: start `(credential, expires_at, now)`, end, or end all but one;
/// then the credentials that ended and the sessions left.
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
fn an_account_holds_at_most_max_sessions() {
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

/// A floor with queue `q` and agent `a1` (token `tok-agent`, password hash `password`),
/// with the effects of its creation still to take.
fn floor_with_agent(password: Option<&str>) -> Floor {
    let mut f = Floor::new(Rules::default());
    f.execute(
        Command::CreateQueue {
            id: "q".into(),
            name: "Q".into(),
            routing_steps: Vec::new(),
            hours: None,
            survey: None,
            wait_limit: None,
            service_level_ms: None,
            place_updates: None,
            overflow: None,
        },
        T0,
    )
    .unwrap();
    f.execute(
        Command::CreateAgent {
            id: "a1".into(),
            name: "Ann".into(),
            queues: vec!["q".into()],
            capacity: None,
            credential: Some("tok-agent".into()),
            password_hash: password.map(Into::into),
            skills: Default::default(),
        },
        T0,
    )
    .unwrap();
    f
}

/// A floor with queue `q`, agent `a1` and supervisor `a1` (the same id: two accounts).
fn floor() -> Floor {
    let mut f = floor_with_agent(None);
    f.execute(
        Command::CreateSupervisor {
            id: "a1".into(),
            name: "Sue".into(),
            credential: Some("tok-sup".into()),
            password_hash: None,
        },
        T0,
    )
    .unwrap();
    f.take_changes();
    f.take_effects();
    f
}

/// One operation on an account through [`Floor::execute`].
#[derive(Debug, Clone, Copy)]
enum S {
    /// Set the password hash (admin), keeping one session.
    Password(&'static str, Option<&'static str>),
    /// Change the password from an expected current hash to a new one (the owner).
    OwnChange(&'static str, &'static str),
    /// Start a session verified against a hash: (hash, credential, expires, now).
    Start(&'static str, &'static str, u64, u64),
    /// End one session.
    End(&'static str),
}

fn command(who: &AccountRef, op: S) -> (Command, Millis) {
    let account = who.clone();
    match op {
        S::Password(h, keep) => (
            Command::SetPassword {
                account,
                password_hash: Some(h.into()),
                keep_session: keep.map(Into::into),
                expected: None,
            },
            T0,
        ),
        S::OwnChange(old, new) => (
            Command::SetPassword {
                account,
                password_hash: Some(new.into()),
                keep_session: None,
                expected: Some(old.into()),
            },
            T0,
        ),
        S::Start(h, c, expires_at, now) => (
            Command::StartSession {
                account,
                verified_hash: h.into(),
                credential: c.into(),
                expires_at,
            },
            now,
        ),
        S::End(c) => (
            Command::EndSession {
                account,
                credential: c.into(),
            },
            T0,
        ),
    }
}

/// Sign-in, for an agent and for a supervisor alike: a password, sessions that only a
/// current password opens, expiry, a password change that ends every other session, and
/// sign-out. Each row: the operation, its outcome (`ok`, `ended:<credentials>` as told to
/// the edge, or an error code), and the sessions left. The other account of the same id
/// is never touched.
#[test]
fn sign_in_password_and_sessions_for_both_kinds() {
    use S::*;
    let rows: &[(S, &str, &[&str])] = &[
        (Start("h1", "s0", T0 + 100, T0), "invalid_credentials", &[]),
        (Password("h1", None), "ended:", &[]),
        (Start("h1", "s1", T0 + 100, T0), "started:s1", &["s1"]),
        (Start("h1", "s2", T0 + 200, T0 + 50), "started:s2", &["s1", "s2"]),
        // Verified against a hash that is no longer the account's: refused.
        (
            Start("old", "s3", T0 + 300, T0 + 60),
            "invalid_credentials",
            &["s1", "s2"],
        ),
        // Expired sessions go when the next one starts.
        (
            Start("h1", "s3", T0 + 300, T0 + 150),
            "ended:s1 started:s3",
            &["s2", "s3"],
        ),
        (Password("h2", Some("s3")), "ended:s2", &["s3"]),
        (Start("h1", "s4", T0 + 400, T0 + 160), "invalid_credentials", &["s3"]),
        (Start("h2", "s4", T0 + 400, T0 + 160), "started:s4", &["s3", "s4"]),
        (End("s3"), "ended:s3", &["s4"]),
        (End("s3"), "ended:", &["s4"]),
        // A change verified against an outdated hash is refused and changes nothing.
        (OwnChange("h1", "h9"), "wrong_password", &["s4"]),
        (OwnChange("h2", "h2b"), "ended:s4", &[]),
        (Start("h2b", "s5", T0 + 400, T0 + 170), "started:s5", &["s5"]),
        (Password("h3", None), "ended:s5", &[]),
    ];
    for who in [AccountRef::agent("a1"), AccountRef::supervisor("a1")] {
        let other = match who.kind {
            AccountKind::Agent => AccountRef::supervisor("a1"),
            AccountKind::Supervisor => AccountRef::agent("a1"),
        };
        let mut f = floor();
        for (i, (op, want, left)) in rows.iter().enumerate() {
            let (cmd, now) = command(&who, *op);
            let got = match f.execute(cmd, now) {
                Ok(_) => told(&mut f, &who),
                Err(e) => {
                    assert!(f.take_effects().is_empty(), "{who} row {i}: a refusal tells nothing");
                    e.code().to_string()
                }
            };
            assert_eq!(got, *want, "{who} row {i}: {op:?}");
            let sessions: Vec<String> = sessions_of(&f, &who);
            assert_eq!(sessions, *left, "{who} row {i}: sessions after {op:?}");
            assert!(sessions_of(&f, &other).is_empty(), "{who} row {i}: the other account");
            assert_eq!(f.password_hash(&other), None, "{who} row {i}: the other account");
        }
        let stored = f
            .take_changes()
            .into_iter()
            .filter(|c| match (c, who.kind) {
                (Change::Agent(a), AccountKind::Agent) => a.id == "a1",
                (Change::Supervisor(s), AccountKind::Supervisor) => s.id == "a1",
                _ => false,
            })
            .count();
        assert!(stored >= 1, "{who}: the account's record is written");
    }
}

fn sessions_of(f: &Floor, who: &AccountRef) -> Vec<String> {
    let account = match who.kind {
        AccountKind::Agent => f.agent(&who.id).map(|a| &a.account),
        AccountKind::Supervisor => f.supervisor(&who.id).map(|s| &s.account),
    };
    account
        .and_then(|a| a.sign_in.as_ref())
        .map(|s| s.sessions.keys().cloned().collect())
        .unwrap_or_default()
}

/// What the edge's index was told for `who`, as `ended:a,b started:c` (or `ended:` when a
/// step ended nothing).
fn told(f: &mut Floor, who: &AccountRef) -> String {
    let mut out = Vec::new();
    for e in f.take_effects() {
        match e {
            Effect::Session {
                account,
                ended,
                started,
            } => {
                assert_eq!(&account, who);
                if !ended.is_empty() {
                    out.push(format!("ended:{}", ended.join(",")));
                }
                if let Some((c, _)) = started {
                    out.push(format!("started:{c}"));
                }
            }
            Effect::Credential { .. } => panic!("no token changes here"),
            _ => {}
        }
    }
    if out.is_empty() {
        "ended:".into()
    } else {
        out.join(" ")
    }
}

/// A token reissue revokes the old credential and grants the new one, for either kind;
/// an unknown account is refused with its kind's code and tells nothing.
#[test]
fn reissue_revokes_the_old_token() {
    let mut f = floor();
    for (who, old) in [
        (AccountRef::agent("a1"), "tok-agent"),
        (AccountRef::supervisor("a1"), "tok-sup"),
    ] {
        f.execute(
            Command::SetCredential {
                account: who.clone(),
                credential: format!("{old}-2"),
            },
            T0,
        )
        .unwrap();
        assert_eq!(
            f.take_effects(),
            vec![Effect::Credential {
                account: who.clone(),
                revoked: Some(old.into()),
                granted: Some(format!("{old}-2")),
            }]
        );
    }
    for (who, code) in [
        (AccountRef::agent("nobody"), "unknown_agent"),
        (AccountRef::supervisor("nobody"), "unknown_supervisor"),
    ] {
        let e = f
            .execute(
                Command::SetCredential {
                    account: who,
                    credential: "x".into(),
                },
                T0,
            )
            .unwrap_err();
        assert_eq!(e.code(), code);
        assert!(f.take_effects().is_empty());
    }
}

/// A sign-in answers the account and its holder's name; an unknown account is
/// `invalid_credentials`, as a wrong password is.
#[test]
fn a_sign_in_answers_who_signed_in() {
    let mut f = floor();
    for who in [AccountRef::agent("a1"), AccountRef::supervisor("a1")] {
        f.execute(
            Command::SetPassword {
                account: who.clone(),
                password_hash: Some("h".into()),
                keep_session: None,
                expected: None,
            },
            T0,
        )
        .unwrap();
        match f.execute(
            Command::StartSession {
                account: who.clone(),
                verified_hash: "h".into(),
                credential: format!("s-{}", who.kind.as_str()),
                expires_at: T0 + 10,
            },
            T0,
        ) {
            Ok(Reply::SignedIn { account, name }) => {
                assert_eq!(account, who);
                assert_eq!(name, if who.kind == AccountKind::Agent { "Ann" } else { "Sue" });
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let e = f
        .execute(
            Command::StartSession {
                account: AccountRef::supervisor("nobody"),
                verified_hash: "h".into(),
                credential: "s".into(),
                expires_at: T0 + 10,
            },
            T0,
        )
        .unwrap_err();
    assert_eq!(e.code(), "invalid_credentials");
}

/// What authenticates after a restart comes from the core alone: every account's token
/// and its sessions still valid at `now`, for agents and supervisors; created accounts
/// tell the edge their token by an effect.
#[test]
fn grants_after_a_restart() {
    let mut f = floor_with_agent(Some("h"));
    let created: Vec<Effect> = f
        .take_effects()
        .into_iter()
        .filter(|e| matches!(e, Effect::Credential { .. }))
        .collect();
    assert_eq!(
        created,
        vec![Effect::Credential {
            account: AccountRef::agent("a1"),
            revoked: None,
            granted: Some("tok-agent".into()),
        }]
    );
    f.execute(
        Command::CreateSupervisor {
            id: "s1".into(),
            name: "Sue".into(),
            credential: None,
            password_hash: Some("h".into()),
        },
        T0,
    )
    .unwrap();
    for (who, c, exp) in [
        (AccountRef::agent("a1"), "short", T0 + 10),
        (AccountRef::agent("a1"), "long", T0 + 1000),
        (AccountRef::supervisor("s1"), "sup", T0 + 1000),
    ] {
        f.execute(
            Command::StartSession {
                account: who,
                verified_hash: "h".into(),
                credential: c.into(),
                expires_at: exp,
            },
            T0,
        )
        .unwrap();
    }
    let mut grants = f.account_grants(T0 + 10);
    grants.sort_by(|a, b| a.1.credential.cmp(&b.1.credential));
    let grants: Vec<(String, &str, Option<Millis>)> = grants
        .iter()
        .map(|(who, g)| (who.to_string(), g.credential.as_str(), g.expires_at))
        .collect();
    assert_eq!(
        grants,
        vec![
            ("agent a1".to_string(), "long", Some(T0 + 1000)),
            ("supervisor s1".to_string(), "sup", Some(T0 + 1000)),
            ("agent a1".to_string(), "tok-agent", None),
        ],
        "the expired session is not granted"
    );
}
