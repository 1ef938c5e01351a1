//! The shape checks of what comes in from outside (ids, names, texts): `invalid_input`
//! before any rule is asked.

use super::*;

/// Refuses an id that is not 1 to 64 characters from `[A-Za-z0-9_.-]`.
pub(super) fn check_id(what: &str, id: &str) -> Result<(), CoreError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(CoreError::InvalidInput(format!(
            "{what} id must be 1 to 64 characters from [A-Za-z0-9_.-]"
        )))
    }
}

pub(super) fn check_name(what: &str, name: &str) -> Result<(), CoreError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.trim().is_empty() {
        return Err(CoreError::InvalidInput(format!(
            "{what} must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

pub(super) fn check_text(text: &str) -> Result<(), CoreError> {
    if text.trim().is_empty() {
        return Err(CoreError::InvalidInput("text must not be empty".into()));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(CoreError::InvalidInput(format!(
            "text must be at most {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_and_texts_are_checked_for_shape() {
        assert!(check_id("queue", "q-1.a_B").is_ok());
        for bad in ["", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(check_id("queue", bad).is_err(), "{bad:?}");
        }
        assert!(check_name("name", "Ana").is_ok());
        for bad in ["", "   ", &"n".repeat(MAX_NAME_CHARS + 1)] {
            assert!(check_name("name", bad).is_err(), "{bad:?}");
        }
        assert!(
            check_name("name", &"ñ".repeat(MAX_NAME_CHARS)).is_ok(),
            "characters, not bytes"
        );
        assert!(check_text("hello").is_ok());
        for bad in ["", " \n ", &"t".repeat(MAX_TEXT_CHARS + 1)] {
            assert!(check_text(bad).is_err(), "{bad:?}");
        }
        assert!(
            matches!(check_text(""), Err(CoreError::InvalidInput(ref m)) if m.contains("empty")),
            "the refusal says why"
        );
    }
}
