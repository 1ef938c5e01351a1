//! The static names of the wire enums (`as_str`, strum's `IntoStaticStr`) are the names
//! serde reads and writes (`rename_all`), for every variant: metrics labels, log fields and
//! the WebSocket's reasons cannot drift from the JSON.
//!
//! Why strum rather than deriving the name from serde at run time: serde can only hand the
//! name to a serializer, so a `&'static str` from it needs a hand-written `Serializer`; strum
//! derives the same snake_case spelling at compile time and is as widely used as serde's
//! derive. This test is what holds the two derives to one spelling.

use serde::{de::DeserializeOwned, Serialize};
use strum::IntoEnumIterator;

use super::{AuthorKind, Channel, ConferenceState, ConversationState, Delivery, OfferKind, Presence, WithdrawReason};

/// Every variant of `T`: serde writes `name(v)`, and reads it back as `v`.
fn agree<T>(name: fn(T) -> &'static str)
where
    T: IntoEnumIterator + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + Copy,
{
    let mut seen = 0;
    for v in T::iter() {
        let json = serde_json::to_value(v).expect("a unit variant serializes");
        assert_eq!(json.as_str(), Some(name(v)), "{v:?}");
        let back: T = serde_json::from_value(serde_json::Value::from(name(v))).expect("serde reads the static name");
        assert_eq!(back, v);
        seen += 1;
    }
    assert!(seen > 0);
}

#[test]
fn static_names_are_serdes_names() {
    agree(Presence::as_str);
    agree(ConversationState::as_str);
    agree(ConferenceState::as_str);
    agree(Channel::as_str);
    agree(OfferKind::as_str);
    agree(AuthorKind::as_str);
    agree(WithdrawReason::as_str);
    agree(Delivery::as_str);
}
