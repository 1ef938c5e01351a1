//! Accounts: what agents and supervisors authenticate with, one machinery for both
//! (../shared/API.md "Sign-in with a password", "A credential's sockets end with it").
//!
//! An account is an agent or a supervisor, named by an [`AccountRef`] (kind and id). Each
//! holds an [`Account`]: the hash of its token (its *credential*) and, for people who sign
//! in at a page, a password hash and the sessions that password sign-ins opened
//! ([`SignIn`]). The rules of both live here: how a token is reissued, which sessions a
//! password change ends, how many sessions an account holds, which are expired.
//!
//! The core never sees a password or a token: the HTTP layer hashes passwords (Argon2id)
//! and keeps only the SHA-256 of each token. Every change to what authenticates goes out
//! as one of two effects, [`Effect::Credential`] (the token) and [`Effect::Session`]
//! (sessions), which the shell carries out into its one credential index only once the
//! change is durable; at start the index is filled from [`Floor::account_grants`], so
//! what works after a restart is decided here too. Sockets opened with a credential end
//! when an effect revokes it (the edge watches the index).
//!
//! No I/O here: time comes in as `now`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::command::Principal;
use super::event::{Change, Effect};
use super::floor::Floor;
use super::{CoreError, Millis};

/// Who holds an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountKind {
    Agent,
    Supervisor,
}

impl AccountKind {
    /// As ../shared/API.md spells it (`kind` of `POST /api/v1/login`).
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Agent => "agent",
            AccountKind::Supervisor => "supervisor",
        }
    }
}

/// An account: its kind and id. An agent and a supervisor may share an id; they are two
/// accounts (a lockout of one never touches the other).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountRef {
    pub kind: AccountKind,
    pub id: String,
}

impl AccountRef {
    pub fn agent(id: impl Into<String>) -> Self {
        AccountRef {
            kind: AccountKind::Agent,
            id: id.into(),
        }
    }

    pub fn supervisor(id: impl Into<String>) -> Self {
        AccountRef {
            kind: AccountKind::Supervisor,
            id: id.into(),
        }
    }

    /// Who a request authenticated as this account acts as.
    pub fn principal(&self) -> Principal {
        match self.kind {
            AccountKind::Agent => Principal::Agent(self.id.clone()),
            AccountKind::Supervisor => Principal::Supervisor(self.id.clone()),
        }
    }

    fn unknown(&self) -> CoreError {
        match self.kind {
            AccountKind::Agent => CoreError::UnknownAgent(self.id.clone()),
            AccountKind::Supervisor => CoreError::UnknownSupervisor(self.id.clone()),
        }
    }
}

impl std::fmt::Display for AccountRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.id)
    }
}

/// A password hash and the sessions it opened.
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
    /// Sessions one account may hold at once; a new one beyond this ends the one that
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

/// What one account authenticates with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The hash of the account's token (the API layer never hands the core a token).
    pub credential: Option<String>,
    /// Password hash and open sessions. Shared, so that the many clones of an agent
    /// (replies, store changes) do not copy it.
    pub sign_in: Option<Arc<SignIn>>,
}

/// A credential that authenticates an account: the token's (no expiry) or a session's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub credential: String,
    /// `None` for the token; a session's expiry otherwise.
    pub expires_at: Option<Millis>,
}

impl Account {
    /// An account with a token's hash and, optionally, a password hash.
    pub fn new(credential: Option<String>, password_hash: Option<String>) -> Self {
        Account {
            credential,
            sign_in: password_hash.map(|h| {
                Arc::new(SignIn {
                    password_hash: Some(h),
                    ..Default::default()
                })
            }),
        }
    }

    /// The password hash, if the account has a password.
    pub fn password_hash(&self) -> Option<&str> {
        self.sign_in.as_ref().and_then(|s| s.password_hash.as_deref())
    }

    /// What authenticates the account at `now`: its token and its sessions still valid.
    /// Expired sessions stay in the record until the next sign-in drops them.
    pub fn grants(&self, now: Millis) -> impl Iterator<Item = Grant> + '_ {
        let token = self.credential.iter().map(|c| Grant {
            credential: c.clone(),
            expires_at: None,
        });
        let sessions = self
            .sign_in
            .iter()
            .flat_map(|s| s.sessions.iter())
            .filter(move |(_, &at)| session_valid(at, now))
            .map(|(c, &at)| Grant {
                credential: c.clone(),
                expires_at: Some(at),
            });
        token.chain(sessions)
    }

    fn sign_in_mut(&mut self) -> &mut SignIn {
        Arc::make_mut(self.sign_in.get_or_insert_with(Default::default))
    }

    /// Replaces the token's hash; returns the one it revokes.
    pub fn reissue(&mut self, credential: String) -> Option<String> {
        self.credential.replace(credential)
    }

    /// Sets the password hash (`None` removes the password) and ends every session but
    /// `keep`: a password change signs out everyone who signed in with the old one,
    /// except the session that made the change. With `expected` (the hash the caller
    /// verified the current password against), refused with `wrong_password` if the
    /// password changed meanwhile. Returns the credentials that ended.
    pub fn set_password(
        &mut self,
        password_hash: Option<String>,
        keep: Option<&str>,
        expected: Option<&str>,
    ) -> Result<Vec<String>, CoreError> {
        if let Some(expected) = expected {
            if self.password_hash() != Some(expected) {
                return Err(CoreError::WrongPassword);
            }
        }
        let sign_in = self.sign_in_mut();
        sign_in.password_hash = password_hash;
        Ok(sign_in.end_all_but(keep))
    }

    /// Opens a session for a password the caller verified against `verified_hash`:
    /// refused (`invalid_credentials`) when that is no longer the account's hash (the
    /// password changed while it was being verified). Returns the credentials that stopped
    /// being valid (expired, or over [`SignIn::MAX_SESSIONS`]).
    pub fn start_session(
        &mut self,
        verified_hash: &str,
        credential: String,
        expires_at: Millis,
        now: Millis,
    ) -> Result<Vec<String>, CoreError> {
        if self.password_hash() != Some(verified_hash) {
            return Err(CoreError::InvalidCredentials);
        }
        Ok(self.sign_in_mut().start(credential, expires_at, now))
    }

    /// Ends one session (sign-out); false when it was not open.
    pub fn end_session(&mut self, credential: &str) -> bool {
        match self.sign_in.as_mut() {
            Some(s) if s.sessions.contains_key(credential) => Arc::make_mut(s).end(credential),
            _ => false,
        }
    }
}

/// The effect that tells the edge's index a session change, if anything changed.
fn session_effect(account: &AccountRef, ended: Vec<String>, started: Option<(String, Millis)>) -> Option<Effect> {
    (!ended.is_empty() || started.is_some()).then(|| Effect::Session {
        account: account.clone(),
        ended,
        started,
    })
}

impl Floor {
    /// The account of `who`; `unknown_agent` or `unknown_supervisor` when it does not exist.
    fn account_mut(&mut self, who: &AccountRef) -> Result<&mut Account, CoreError> {
        let account = match who.kind {
            AccountKind::Agent => self.agent_account_mut(&who.id),
            AccountKind::Supervisor => self.supervision_mut().account_mut(&who.id),
        };
        account.ok_or_else(|| who.unknown())
    }

    /// The account's record changes: the agent's or the supervisor's is written.
    fn account_stored(&mut self, who: &AccountRef) {
        match who.kind {
            AccountKind::Agent => self.agent_changed(&who.id),
            AccountKind::Supervisor => {
                if let Some(s) = self.supervisor(&who.id) {
                    let record = Change::Supervisor(Box::new(s.clone()));
                    self.journal().change(record);
                }
            }
        }
    }

    /// The name of an account's holder.
    pub fn account_name(&self, who: &AccountRef) -> Option<&str> {
        match who.kind {
            AccountKind::Agent => self.agent(&who.id).map(|a| a.name.as_str()),
            AccountKind::Supervisor => self.supervisor(&who.id).map(|s| s.name.as_str()),
        }
    }

    /// An account's password hash, if the account exists and has a password.
    pub fn password_hash(&self, who: &AccountRef) -> Option<&str> {
        match who.kind {
            AccountKind::Agent => self.agent(&who.id).and_then(|a| a.account.password_hash()),
            AccountKind::Supervisor => self.supervisor(&who.id).and_then(|s| s.account.password_hash()),
        }
    }

    /// Every credential that authenticates at `now`, with its account: what the edge's
    /// index holds after a (re)start. The one way restored accounts reach the edge.
    pub fn account_grants(&self, now: Millis) -> Vec<(AccountRef, Grant)> {
        let agents = self
            .agents()
            .flat_map(|a| a.account.grants(now).map(|g| (AccountRef::agent(a.id.clone()), g)));
        let supervisors = self
            .supervisors()
            .into_iter()
            .flat_map(|s| s.account.grants(now).map(|g| (AccountRef::supervisor(s.id.clone()), g)));
        agents.chain(supervisors).collect()
    }

    /// A new account's token starts to work (once its record is durable).
    pub(super) fn account_created(&mut self, who: AccountRef, account: &Account) {
        if let Some(c) = &account.credential {
            self.journal().effect(Effect::Credential {
                account: who,
                revoked: None,
                granted: Some(c.clone()),
            });
        }
    }

    /// Replaces an account's token (reissue): the old one stops working, and every socket
    /// opened with it ends, once the change is durable.
    pub(crate) fn reissue(&mut self, who: &AccountRef, credential: String) -> Result<(), CoreError> {
        let revoked = self.account_mut(who)?.reissue(credential.clone());
        self.journal().effect(Effect::Credential {
            account: who.clone(),
            revoked,
            granted: Some(credential),
        });
        self.account_stored(who);
        Ok(())
    }

    /// Sets an account's password hash: see [`Account::set_password`]. Returns the
    /// credentials that ended.
    pub(crate) fn set_password(
        &mut self,
        who: &AccountRef,
        password_hash: Option<String>,
        keep: Option<&str>,
        expected: Option<&str>,
    ) -> Result<Vec<String>, CoreError> {
        let ended = self.account_mut(who)?.set_password(password_hash, keep, expected)?;
        self.journal().effects(session_effect(who, ended.clone(), None));
        self.account_stored(who);
        Ok(ended)
    }

    /// Opens a session: see [`Account::start_session`]. An unknown account is
    /// `invalid_credentials`, like a wrong password. Returns the credentials that ended.
    pub(crate) fn start_session(
        &mut self,
        who: &AccountRef,
        verified_hash: &str,
        credential: String,
        expires_at: Millis,
        now: Millis,
    ) -> Result<Vec<String>, CoreError> {
        let account = self.account_mut(who).map_err(|_| CoreError::InvalidCredentials)?;
        let ended = account.start_session(verified_hash, credential.clone(), expires_at, now)?;
        self.journal()
            .effects(session_effect(who, ended.clone(), Some((credential, expires_at))));
        self.account_stored(who);
        Ok(ended)
    }

    /// Ends one session (sign-out); ending one that is not open is not an error. True
    /// when it was open.
    pub(crate) fn end_session(&mut self, who: &AccountRef, credential: &str) -> Result<bool, CoreError> {
        if !self.account_mut(who)?.end_session(credential) {
            return Ok(false);
        }
        self.journal()
            .effects(session_effect(who, vec![credential.to_string()], None));
        self.account_stored(who);
        Ok(true)
    }
}

#[cfg(test)]
#[path = "accounts_tests.rs"]
mod tests;
