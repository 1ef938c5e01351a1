//! Passwords of people who sign in at a page (../shared/API.md "Sign-in with a password").
//!
//! Only Argon2id hashes are kept (PHC strings), never the password. New hashes cost
//! 9 MiB, 4 passes, 1 lane: one of OWASP's equivalent Argon2id settings, the one with the
//! least memory, because memory is what a flood of sign-ins multiplies (a hash made with
//! other settings, such as the crate's default 19 MiB and 2 passes, still verifies: the
//! PHC string carries its own). Hashing and verifying cost tens of milliseconds on
//! purpose, so they run through [`PasswordChecks`]: on the blocking pool, never on an HTTP
//! worker's event loop nor on the engine's thread, and at most a configured number at
//! once, so memory and threads stay bounded whatever arrives.
//!
//! An unknown id is verified against [`dummy_hash`], a hash made once per process with
//! the same cost, so that "no such agent" and "wrong password" take the same time.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Memory of a new hash, in KiB (9 MiB; OWASP: m=9216, t=4, p=1).
pub const MEMORY_KIB: u32 = 9 * 1024;
/// Passes over that memory.
pub const PASSES: u32 = 4;

/// The hasher of new passwords (verification takes the settings from the hash itself).
fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// At most a fixed number of password checks at once (../shared/API.md: `busy` past a short wait).
#[derive(Debug, Clone)]
pub struct PasswordChecks {
    permits: Arc<Semaphore>,
    wait: Duration,
}

/// No password check could start within the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl PasswordChecks {
    /// `max` checks at once (at least one); a check waits up to `wait` for its turn.
    pub fn new(max: usize, wait: Duration) -> Self {
        PasswordChecks {
            permits: Arc::new(Semaphore::new(max.max(1))),
            wait,
        }
    }

    /// Runs `work` on the blocking pool once a check may start, or [`Busy`] after the
    /// wait. The permit is held until `work` has returned, even if the caller went away.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|_| Busy)
    }

    /// Checks running now (tests and metrics).
    pub fn running(&self, max: usize) -> usize {
        max.saturating_sub(self.permits.available_permits())
    }
}

/// The shortest password accepted (../shared/API.md).
pub const MIN_CHARS: usize = 10;
/// The longest: a bound on the work one request can ask for.
pub const MAX_CHARS: usize = 256;

/// Why a new password is refused, in words for the person choosing it.
pub fn check_new(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_CHARS {
        return Err(format!("a password has at least {MIN_CHARS} characters"));
    }
    if n > MAX_CHARS {
        return Err(format!("a password has at most {MAX_CHARS} characters"));
    }
    if password.trim().is_empty() {
        return Err("a password is not all whitespace".into());
    }
    Ok(())
}

/// The Argon2id PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// True when `password` matches the PHC string `phc`; false for a malformed `phc` too.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, made once: unknown ids are verified against it.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = super::auth::new_token();
        hash(&random).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_say_nothing_of_the_password() {
        let h = hash("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=9216,t=4,p=1$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(h, hash("correct horse battery").expect("hash"), "salted");
        assert!(!verify("anything at all", dummy_hash()));
    }

    #[test]
    fn new_passwords_are_checked_for_length() {
        let cases: &[(&str, bool)] = &[
            ("", false),
            ("123456789", false),
            ("1234567890", true),
            ("éééééééééé", true),
            (&"x".repeat(MAX_CHARS), true),
            (&"x".repeat(MAX_CHARS + 1), false),
            ("          ", false),
            ("\t \n        \u{a0}", false),
            ("  spaced password  ", true),
        ];
        for (p, ok) in cases {
            assert_eq!(check_new(p).is_ok(), *ok, "{p:?}");
        }
    }

    /// Hashes made with other settings (the crate's default, 19 MiB and 2 passes, which
    /// stores hold from before) still verify: the PHC string carries its settings.
    #[test]
    fn older_hashes_still_verify() {
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::default()
            .hash_password(b"an older password", &salt)
            .expect("hash")
            .to_string();
        assert!(old.contains("m=19456,t=2,p=1"), "{old}");
        assert!(verify("an older password", &old));
        assert!(!verify("an older passworD", &old));
    }

    /// No more than `max` checks run at once; one that cannot start within the wait is
    /// refused, and a permit comes back when a check ends.
    #[tokio::test]
    async fn checks_are_bounded() {
        let checks = PasswordChecks::new(1, Duration::from_millis(50));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let first = {
            let c = checks.clone();
            tokio::spawn(async move { c.run(move || hold.recv().is_ok()).await })
        };
        // Wait (without a clock) until the first check holds the only permit.
        while checks.running(1) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(checks.run(|| ()).await, Err(Busy), "over the bound: busy");
        release.send(()).expect("the first check waits");
        assert_eq!(first.await.expect("joined"), Ok(true));
        assert_eq!(checks.run(|| 7).await, Ok(7), "the permit came back");
    }
}
