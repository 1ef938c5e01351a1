//! Passwords of people who sign in at a page (API.md "Sign-in with a password").
//!
//! Only Argon2id hashes are kept (PHC strings, with the `argon2` crate's default cost:
//! 19 MiB, 2 passes, 1 lane, OWASP's recommendation), never the password. Hashing and
//! verifying cost tens of milliseconds on purpose, so callers run them on the blocking
//! pool (`web::block`), never on an HTTP worker's event loop and never on the engine's
//! thread.
//!
//! An unknown id is verified against [`dummy_hash`], a hash made once per process with
//! the same cost, so that "no such agent" and "wrong password" take the same time.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The shortest password accepted (API.md).
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
    Ok(())
}

/// The Argon2id PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
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
        assert!(h.starts_with("$argon2id$"), "{h}");
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
        ];
        for (p, ok) in cases {
            assert_eq!(check_new(p).is_ok(), *ok, "{p:?}");
        }
    }
}
